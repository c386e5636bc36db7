/* tf-test-util.c: helpers shared by the tests. */
#include "tf-test-util.h"


#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jpeglib.h>   /* after stdio.h: it uses FILE */

#include "tf-safetensors.h"
#include "tf-tokenizer.h"
#include "tf-train.h"

#define CLOSE_BODY                                                              \
  size_t bad = 0, worst_i = 0;                                                  \
  double worst_excess = -1.0;                                                   \
  for (size_t i = 0; i < n; i++)                                                \
    {                                                                           \
      double g = got[i], r = ref[i];                                            \
      double err = fabs (g - r), allowed = atol + rtol * fabs (r);              \
      if (!(err <= allowed))                                                    \
        bad++;                                                                  \
      double excess = isfinite (err) ? err / allowed : INFINITY;                \
      if (excess > worst_excess)                                                \
        {                                                                       \
          worst_excess = excess;                                                \
          worst_i = i;                                                          \
        }                                                                       \
    }                                                                           \
  if (worst != NULL)                                                            \
    *worst = n > 0 ? worst_excess : 0.0;                                        \
  if (bad > 0)                                                                  \
    {                                                                           \
      g_printerr ("%s: %zu of %zu elements out of tolerance (atol %g, rtol %g); " \
                  "worst [%zu]: got %.9g, expected %.9g\n", name, bad, n, atol, rtol, \
                  worst_i, (double) got[worst_i], (double) ref[worst_i]);       \
      return FALSE;                                                             \
    }                                                                           \
  return TRUE;

gboolean
tf_test_close_f32 (const char *name, const float *got, const float *ref, size_t n,
                   double atol, double rtol, double *worst)
{
  CLOSE_BODY
}

gboolean
tf_test_close_f64 (const char *name, const double *got, const double *ref, size_t n,
                   double atol, double rtol, double *worst)
{
  CLOSE_BODY
}

static char *
path_under (const char *root, const char *first, va_list args)
{
  g_autoptr (GPtrArray) parts = g_ptr_array_new ();
  g_ptr_array_add (parts, (gpointer) root);
  for (const char *p = first; p != NULL; p = va_arg (args, const char *))
    g_ptr_array_add (parts, (gpointer) p);
  g_ptr_array_add (parts, NULL);
  return g_build_filenamev ((char **) parts->pdata);
}

char *
tf_test_data_path (const char *first, ...)
{
  const char *srcdir = g_getenv ("G_TEST_SRCDIR");
  va_list args;
  va_start (args, first);
  char *path = path_under (srcdir ? srcdir : ".", first, args);
  va_end (args);
  return path;
}

char *
tf_test_path (const char *root, const char *first, ...)
{
  va_list args;
  va_start (args, first);
  char *path = path_under (root, first, args);
  va_end (args);
  return path;
}

TfConfig
tf_test_tiny_config (int vocab_size)
{
  TfConfig c;
  g_assert_true (tf_config_preset (&c, "tiny", NULL));
  c.vocab_size = vocab_size;
  c.bos_id = vocab_size - 7;
  c.eos_id = vocab_size - 6;
  c.boi_id = vocab_size - 5;
  c.eoi_id = vocab_size - 4;
  c.pad_id = vocab_size - 3;
  c.user_id = vocab_size - 2;
  c.assistant_id = vocab_size - 1;
  return c;
}

char *
tf_test_save_tiny_model (const char *dir, TfConfig *config, guint64 *n_params)
{
  g_autoptr (GError) error = NULL;
  TfConfig c = tf_test_tiny_config (64);
  g_autoptr (TfModel) model = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (model, 1);
  char *path = g_build_filename (dir, "tiny.safetensors", NULL);
  g_assert_true (tf_model_save (model, path, TF_DTYPE_F32, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  if (config != NULL)
    *config = c;
  if (n_params != NULL)
    *n_params = tf_model_n_params (model);
  return path;
}

char *
tf_test_make_temp_dir (const char *template)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp (template, &error);
  g_assert_no_error (error);
  return dir;
}

void
tf_test_remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
    {
      g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
      const char *name;
      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          tf_test_remove_tree (child);
        }
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

char *
tf_test_list_dir (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  g_assert_nonnull (dir);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

gint64
tf_test_thread_cpu_time (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (gint64) ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000;
}

guint
tf_test_count_files (const char *path, const char *suffix)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  guint n = 0;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    n += g_str_has_suffix (name, suffix);
  return n;
}

void
tf_test_write_file (const char *dir, const char *name, const void *data, gssize len)
{
  g_autofree char *path = dir != NULL ? g_build_filename (dir, name, NULL) : g_strdup (name);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_set_contents (path, data, len, &error));
  g_assert_no_error (error);
}

/* Asserts that @error is "PATH: could not write: REASON", or starts with
 * "PATH: could not write: " when @reason is NULL. */
static void
assert_write_error (const GError *error, const char *path, const char *reason)
{
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_autofree char *expected = g_strdup_printf ("%s: could not write: %s", path,
                                               reason != NULL ? reason : "");
  if (reason != NULL)
    g_assert_cmpstr (error->message, ==, expected);
  else if (!g_str_has_prefix (error->message, expected))
    g_error ("'%s' does not start with '%s'", error->message, expected);
}

void
tf_test_atomic_write_errors (TfTestWriteFunc writer)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-atomic-write-XXXXXX");
  g_autoptr (GError) error = NULL;

  g_autofree char *nowhere = g_build_filename (dir, "no-such-dir", "out", NULL);
  g_assert_false (writer (nowhere, FALSE, &error));
  assert_write_error (error, nowhere, "No such file or directory");
  g_clear_error (&error);

  /* Root can do most things, not this. */
  g_autofree char *file = g_build_filename (dir, "file", NULL);
  tf_test_write_file (NULL, file, "x", 1);
  g_autofree char *under_file = g_build_filename (file, "out", NULL);
  g_assert_false (writer (under_file, FALSE, &error));
  assert_write_error (error, under_file, "Not a directory");
  g_clear_error (&error);

  /* The rename fails at the very end. */
  g_autofree char *target = g_build_filename (dir, "taken", NULL);
  g_autofree char *inside = g_build_filename (target, "keep", NULL);
  g_assert_cmpint (g_mkdir (target, 0755), ==, 0);
  tf_test_write_file (NULL, inside, "keep", 4);
  g_assert_false (writer (target, FALSE, &error));
  assert_write_error (error, target, NULL);
  g_assert_true (g_file_test (inside, G_FILE_TEST_IS_REGULAR));

  g_autofree char *listing = tf_test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "file taken");
  tf_test_remove_tree (dir);
}

#define FULL_DISK_DIR_VARIABLE "TF_TEST_FULL_DISK_DIR"

void
tf_test_atomic_write_full_disk (const char *name, TfTestWriteFunc writer)
{
  g_autoptr (GError) error = NULL;
  if (g_test_subprocess ())
    {
      const char *dir = g_getenv (FULL_DISK_DIR_VARIABLE);
      g_assert_nonnull (dir);
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_autofree char *before = NULL;
      gsize before_len;
      g_assert_true (g_file_get_contents (path, &before, &before_len, NULL));

      /* write() fails with EFBIG instead of raising SIGXFSZ. */
      signal (SIGXFSZ, SIG_IGN);
      struct rlimit limit = { .rlim_cur = 4096, .rlim_max = RLIM_INFINITY };
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);

      g_assert_false (writer (path, TRUE, &error));
      assert_write_error (error, path, "File too large");
      g_autofree char *after = NULL;
      gsize after_len;
      g_assert_true (g_file_get_contents (path, &after, &after_len, NULL));
      g_assert_cmpmem (after, after_len, before, before_len);
      g_autofree char *listing = tf_test_list_dir (dir);
      g_assert_cmpstr (listing, ==, name);
      return;
    }

  g_autofree char *dir = tf_test_make_temp_dir ("tf-atomic-write-XXXXXX");
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_assert_true (writer (path, FALSE, &error));
  g_assert_no_error (error);
  g_setenv (FULL_DISK_DIR_VARIABLE, dir, TRUE);
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_unsetenv (FULL_DISK_DIR_VARIABLE);
  tf_test_remove_tree (dir);
}

char *
tf_test_save_tiny_model_with_tokenizer (const char *dir, int max_seq_len)
{
  static const char *const corpus[] = {
    "a red circle", "a small blue square on a white background", "draw a green star",
    "what is this? a red circle", "the quick brown fox jumps over the lazy dog",
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTokenizer) tok = tf_tokenizer_train (corpus, NULL, G_N_ELEMENTS (corpus), 300,
                                                    &error);
  g_assert_no_error (error);
  TfConfig c = tf_test_tiny_config (tf_tokenizer_vocab_size (tok));
  tf_tokenizer_apply_to_config (tok, &c);
  c.max_seq_len = max_seq_len;
  g_autoptr (TfModel) model = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (model, 1);
  g_autofree char *json = tf_tokenizer_to_json (tok);
  const char *const keys[] = { "tokenizer" };
  const char *const values[] = { json };
  char *path = g_build_filename (dir, "tiny-text.safetensors", NULL);
  g_assert_true (tf_model_save (model, path, TF_DTYPE_F32, keys, values, 1, &error));
  g_assert_no_error (error);
  return path;
}

void
tf_test_assert_same_tensors (const char *a_path, const char *b_path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TfSafetensors) a = tf_safetensors_open (a_path, &error);
  g_assert_no_error (error);
  g_autoptr(TfSafetensors) b = tf_safetensors_open (b_path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_safetensors_n_tensors (a), ==, tf_safetensors_n_tensors (b));
  g_assert_cmpint (tf_safetensors_n_tensors (a), >, 0);
  for (int i = 0; i < tf_safetensors_n_tensors (a); i++)
    {
      const TfTensorInfo *ta = tf_safetensors_tensor (a, i);
      const TfTensorInfo *tb = tf_safetensors_find (b, ta->name);
      g_assert_nonnull (tb);
      g_assert_cmpuint (ta->end - ta->begin, ==, tb->end - tb->begin);
      if (memcmp (tf_safetensors_data (a, ta), tf_safetensors_data (b, tb), ta->end - ta->begin) != 0)
        g_error ("%s and %s differ in tensor '%s'", a_path, b_path, ta->name);
    }
}

void
tf_test_tiny_train_options (TfTrainOptions *o, const char *out)
{
  tf_train_options_init (o);
  g_free (o->preset);
  o->preset = g_strdup ("tiny");
  g_strfreev (o->data);
  o->data = g_strsplit ("shapes", ",", -1);
  o->out = g_strdup (out);
  o->batch = 4;
  o->vocab_size = 300;
  o->lr = 3e-3;
  o->seed = 42;
  o->save_every_minutes = 60;
}

GByteArray *
tf_test_encode_jpeg (const uint8_t *pixels, int width, int height, int channels, int quality,
                     int orientation, const char *byte_order)
{
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  unsigned char *out = NULL;
  unsigned long out_len = 0;

  cinfo.err = jpeg_std_error (&jerr);   /* a failure here exits: a test's own data */
  jpeg_create_compress (&cinfo);
  jpeg_mem_dest (&cinfo, &out, &out_len);
  cinfo.image_width = (JDIMENSION) width;
  cinfo.image_height = (JDIMENSION) height;
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults (&cinfo);
  jpeg_set_quality (&cinfo, quality, TRUE);
  jpeg_start_compress (&cinfo, TRUE);
  if (orientation > 0)
    {
      /* "Exif\0\0", a TIFF header, IFD0 with one entry: 0x0112, SHORT, 1 */
      const gboolean little = g_strcmp0 (byte_order, "II") == 0;
      uint8_t exif[6 + 8 + 2 + 12 + 4] = { 'E', 'x', 'i', 'f', 0, 0 };
      uint8_t *t = exif + 6;
#define PUT16(p, v) do { if (little) { (p)[0] = (uint8_t) (v); (p)[1] = (uint8_t) ((v) >> 8); } \
                         else { (p)[0] = (uint8_t) ((v) >> 8); (p)[1] = (uint8_t) (v); } } while (0)
      memcpy (t, little ? "II" : "MM", 2);
      PUT16 (t + 2, 42);
      PUT16 (t + 4, 0);      /* the IFD's offset, 8, as 32 bits */
      PUT16 (t + 6, 0);
      if (little)
        t[4] = 8;
      else
        t[7] = 8;
      PUT16 (t + 8, 1);      /* one entry */
      PUT16 (t + 10, 0x0112);
      PUT16 (t + 12, 3);
      PUT16 (t + 14, 0);     /* count 1, as 32 bits */
      PUT16 (t + 16, 0);
      if (little)
        t[14] = 1;
      else
        t[17] = 1;
      PUT16 (t + 18, orientation);
#undef PUT16
      jpeg_write_marker (&cinfo, JPEG_APP0 + 1, exif, sizeof exif);
    }
  const size_t stride = (size_t) width * channels;
  while (cinfo.next_scanline < cinfo.image_height)
    {
      JSAMPROW row = (JSAMPROW) (pixels + cinfo.next_scanline * stride);
      jpeg_write_scanlines (&cinfo, &row, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  GByteArray *bytes = g_byte_array_new ();
  g_byte_array_append (bytes, out, (guint) out_len);
  free (out);
  return bytes;
}

void
tf_test_mutate (GRand *rand, GByteArray *b, guint keep)
{
  const int n_edits = g_rand_int_range (rand, 1, 4);
  for (int e = 0; e < n_edits && b->len > keep + 1; e++)
    {
      const guint pos = (guint) g_rand_int_range (rand, (gint32) keep, (gint32) b->len);
      switch (g_rand_int_range (rand, 0, 3))
        {
        case 0: b->data[pos] ^= (uint8_t) (1 << g_rand_int_range (rand, 0, 8)); break;
        case 1: b->data[pos] = (uint8_t) g_rand_int_range (rand, 0, 256); break;
        default: g_byte_array_set_size (b, pos); break;
        }
    }
}

gboolean
tf_test_read_mutant (TfTestImageReader read, const GByteArray *b, const char *name)
{
  TfImage image;
  g_autoptr (GError) error = NULL;
  if (read (b->data, b->len, name, &image, &error))
    {
      g_assert_no_error (error);
      g_assert_cmpint (image.width, >, 0);
      g_assert_cmpint (image.height, >, 0);
      g_assert_cmpuint ((guint64) image.width * image.height, <=, TF_IMAGE_MAX_PIXELS);
      tf_image_clear (&image);
      return TRUE;
    }
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_autofree char *prefix = g_strdup_printf ("%s: ", name);
  g_assert_true (g_str_has_prefix (error->message, prefix));
  return FALSE;
}
