/* test-data.c: the Fashion-MNIST, WordNet and folder sources, and contact
 * sheets. The Debian data packages are used when installed (the tests that
 * need them skip otherwise); small IDX, WordNet and image folders are made
 * here in temporary directories that are removed afterwards. */
#include "tf-data.h"
#include "tf-config.h"
#include "tf-image.h"
#include "tf-test-util.h"

#include <cairo.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define WORDNET_DIR "/usr/share/wordnet"

/* --- helpers ------------------------------------------------------------ */

static GBytes *
gzip_bytes (const void *data, size_t len)
{
  g_autoptr (GZlibCompressor) gzip = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 6);
  g_autoptr (GOutputStream) memory = g_memory_output_stream_new_resizable ();
  g_autoptr (GOutputStream) out = g_converter_output_stream_new (memory, G_CONVERTER (gzip));
  g_autoptr (GError) error = NULL;
  gsize written = 0;
  g_assert_true (g_output_stream_write_all (out, data, len, &written, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_output_stream_close (out, NULL, &error));
  g_assert_no_error (error);
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (memory));
}

static void
write_gz (const char *dir, const char *name, const void *data, size_t len)
{
  g_autoptr (GBytes) gz = gzip_bytes (data, len);
  tf_test_write_file (dir, name, g_bytes_get_data (gz, NULL), g_bytes_get_size (gz));
}

static gboolean
examples_equal (const TfExample *a, const TfExample *b)
{
  if (a->kind != b->kind || a->size != b->size || a->channels != b->channels
      || a->label != b->label || g_strcmp0 (a->caption, b->caption) != 0
      || g_strcmp0 (a->prompt, b->prompt) != 0 || g_strcmp0 (a->text, b->text) != 0
      || g_strcmp0 (a->subject, b->subject) != 0)
    return FALSE;
  if ((a->pixels == NULL) != (b->pixels == NULL))
    return FALSE;
  return a->pixels == NULL
         || memcmp (a->pixels, b->pixels,
                    sizeof (float) * a->size * a->size * a->channels) == 0;
}

/* Same index and rng state → the same example, and the rng advances the
 * same way; over many indices the rng changes some phrasing. */
static void
check_determinism (TfDataSource *source)
{
  int64_t size = tf_data_source_size (source);
  int changed = 0;
  for (int i = 0; i < 40; i++)
    {
      int64_t index = (int64_t) ((i * 7919u) % (uint64_t) size);
      TfRng r1, r2, r3;
      tf_rng_seed (&r1, 1000 + i);
      tf_rng_seed (&r2, 1000 + i);
      tf_rng_seed (&r3, 5000 + i);
      TfExample a, b, c;
      g_autoptr (GError) error = NULL;
      g_assert_true (tf_data_source_get (source, index, &r1, &a, &error));
      g_assert_no_error (error);
      g_assert_true (tf_data_source_get (source, index, &r2, &b, &error));
      g_assert_no_error (error);
      g_assert_true (examples_equal (&a, &b));
      g_assert_cmpmem (&r1, sizeof r1, &r2, sizeof r2);
      g_assert_true (tf_data_source_get (source, index, &r3, &c, &error));
      g_assert_no_error (error);
      if (!examples_equal (&a, &c))
        changed++;
      tf_example_clear (&a);
      tf_example_clear (&b);
      tf_example_clear (&c);
    }
  g_test_message ("%s: another seed changed %d of 40 examples", tf_data_source_name (source),
                  changed);

  /* Out of range. */
  TfRng rng;
  tf_rng_seed (&rng, 1);
  TfExample e;
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_data_source_get (source, size, &rng, &e, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_null (e.caption);
  g_clear_error (&error);
  g_assert_false (tf_data_source_get (source, -1, &rng, &e, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
}

static void
check_image_example (const TfExample *e, int size, int channels)
{
  g_assert_cmpint (e->kind, ==, TF_EXAMPLE_IMAGE);
  g_assert_cmpint (e->size, ==, size);
  g_assert_cmpint (e->channels, ==, channels);
  g_assert_nonnull (e->pixels);
  g_assert_nonnull (e->caption);
  g_assert_true (g_utf8_validate (e->caption, -1, NULL));
  g_assert_nonnull (e->subject);
  for (int i = 0; i < size * size * channels; i++)
    g_assert_true (e->pixels[i] >= -1.0f && e->pixels[i] <= 1.0f);
}

/* --- Fashion-MNIST ------------------------------------------------------ */

static const char *const fashion_words[10][6] = {
  { "t-shirt", "tee", "top", "tshirt", NULL },
  { "trousers", "pants", "jeans", "slacks", NULL },
  { "pullover", "sweater", "jumper", "sweatshirt", NULL },
  { "dress", "frock", "gown", NULL },
  { "coat", "jacket", "parka", NULL },
  { "sandal", NULL },
  { "shirt", "blouse", NULL },
  { "sneaker", "trainer", "shoe", NULL },
  { "bag", "purse", "clutch", NULL },
  { "boot", NULL },
};

static gboolean
caption_names_class (const char *caption, int label)
{
  for (int i = 0; fashion_words[label][i] != NULL; i++)
    if (strstr (caption, fashion_words[label][i]) != NULL)
      return TRUE;
  return FALSE;
}

static gboolean
have_fashion (void)
{
  if (g_file_test (FASHION_DIR "/train-images-idx3-ubyte.gz", G_FILE_TEST_EXISTS))
    return TRUE;
  g_test_skip ("Fashion-MNIST is not installed (dataset-fashion-mnist)");
  return FALSE;
}

static void
test_fashion (void)
{
  if (!have_fashion ())
    return;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) train = tf_data_fashion_new (NULL, TF_SPLIT_TRAIN, 32, 3, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) heldout = tf_data_fashion_new (NULL, TF_SPLIT_HELDOUT, 32, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (train), ==, 60000);
  g_assert_cmpint (tf_data_source_size (heldout), ==, 10000);
  g_assert_cmpstr (tf_data_source_name (train), ==, "fashion");
  const char *const *subjects = tf_data_source_subjects (train);
  g_assert_cmpuint (g_strv_length ((char **) subjects), ==, 10);
  g_assert_cmpstr (subjects[0], ==, "t-shirt");
  g_assert_cmpstr (subjects[9], ==, "ankle boot");

  TfRng rng;
  tf_rng_seed (&rng, 7);
  int counts[10] = { 0 };
  for (int i = 0; i < 500; i++)
    {
      TfDataSource *source = i % 2 ? heldout : train;
      int64_t index = (int64_t) tf_rng_below (&rng, (uint64_t) tf_data_source_size (source));
      TfExample e;
      g_assert_true (tf_data_source_get (source, index, &rng, &e, &error));
      g_assert_no_error (error);
      check_image_example (&e, 32, 3);
      g_assert_cmpint (e.label, >=, 0);
      g_assert_cmpint (e.label, <, 10);
      counts[e.label]++;
      g_assert_cmpstr (e.subject, ==, subjects[e.label]);
      if (!caption_names_class (e.caption, e.label))
        g_error ("caption '%s' does not name class %d (%s)", e.caption, e.label, e.subject);
      /* 28×28 centred on 32: a 2-pixel black border; grey in all channels. */
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
          {
            const float *p = e.pixels + (y * 32 + x) * 3;
            g_assert_cmpfloat (p[0], ==, p[1]);
            g_assert_cmpfloat (p[0], ==, p[2]);
            if (y < 2 || y >= 30 || x < 2 || x >= 30)
              g_assert_cmpfloat (p[0], ==, -1.0f);
          }
      tf_example_clear (&e);
    }
  for (int c = 0; c < 10; c++)
    g_assert_cmpint (counts[c], >, 20);

  /* The first training image is an ankle boot, as is the first test image. */
  TfExample e;
  g_assert_true (tf_data_source_get (train, 0, &rng, &e, &error));
  g_assert_cmpint (e.label, ==, 9);
  float max = -1.0f;
  for (int i = 0; i < 32 * 32 * 3; i++)
    max = MAX (max, e.pixels[i]);
  g_assert_cmpfloat (max, ==, 1.0f);     /* white on black */
  tf_example_clear (&e);
  g_assert_true (tf_data_source_get (heldout, 0, &rng, &e, &error));
  g_assert_cmpint (e.label, ==, 9);
  tf_example_clear (&e);

  check_determinism (train);
  check_determinism (heldout);
}

/* Other shapes: grey, and smaller than the images. */
static void
test_fashion_shapes (void)
{
  if (!have_fashion ())
    return;
  g_autoptr (GError) error = NULL;
  static const int shapes[][2] = { { 28, 1 }, { 16, 3 }, { 64, 1 } };
  for (size_t s = 0; s < G_N_ELEMENTS (shapes); s++)
    {
      int size = shapes[s][0], channels = shapes[s][1];
      g_autoptr (TfDataSource) heldout = tf_data_fashion_new (FASHION_DIR, TF_SPLIT_HELDOUT,
                                                              size, channels, &error);
      g_assert_no_error (error);
      TfRng rng;
      tf_rng_seed (&rng, 3);
      TfExample e;
      g_assert_true (tf_data_source_get (heldout, 17, &rng, &e, &error));
      g_assert_no_error (error);
      check_image_example (&e, size, channels);
      tf_example_clear (&e);
    }
  g_assert_null (tf_data_fashion_new (NULL, TF_SPLIT_TRAIN, 0, 3, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
}

/* Training never reads t10k: in a copy of the folder whose t10k files are
 * garbage, the train split opens and gives the same examples; with the
 * train files gone, the held-out split still opens. */
static void
test_fashion_split_isolation (void)
{
  if (!have_fashion ())
    return;
  g_autofree char *train_only = tf_test_make_temp_dir ("tf-data-XXXXXX");
  g_autofree char *heldout_only = tf_test_make_temp_dir ("tf-data-XXXXXX");
  static const char *const train_files[] = { "train-images-idx3-ubyte.gz",
                                             "train-labels-idx1-ubyte.gz" };
  static const char *const t10k_files[] = { "t10k-images-idx3-ubyte.gz",
                                            "t10k-labels-idx1-ubyte.gz" };
  for (int i = 0; i < 2; i++)
    {
      g_autofree char *target = g_build_filename (FASHION_DIR, train_files[i], NULL);
      g_autofree char *link = g_build_filename (train_only, train_files[i], NULL);
      g_assert_cmpint (symlink (target, link), ==, 0);
      tf_test_write_file (train_only, t10k_files[i], "garbage, not gzip", 17);

      g_autofree char *t10k_target = g_build_filename (FASHION_DIR, t10k_files[i], NULL);
      g_autofree char *t10k_link = g_build_filename (heldout_only, t10k_files[i], NULL);
      g_assert_cmpint (symlink (t10k_target, t10k_link), ==, 0);
    }

  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) train = tf_data_fashion_new (train_only, TF_SPLIT_TRAIN, 32, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (train), ==, 60000);
  g_autoptr (TfDataSource) reference = tf_data_fashion_new (NULL, TF_SPLIT_TRAIN, 32, 1, &error);
  g_assert_no_error (error);
  for (int64_t index = 0; index < 60000; index += 12345)
    {
      TfRng r1, r2;
      tf_rng_seed (&r1, (uint64_t) index);
      tf_rng_seed (&r2, (uint64_t) index);
      TfExample a, b;
      g_assert_true (tf_data_source_get (train, index, &r1, &a, NULL));
      g_assert_true (tf_data_source_get (reference, index, &r2, &b, NULL));
      g_assert_true (examples_equal (&a, &b));
      tf_example_clear (&a);
      tf_example_clear (&b);
    }
  /* The garbage is there to be found by the held-out split. */
  g_assert_null (tf_data_fashion_new (train_only, TF_SPLIT_HELDOUT, 32, 1, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "t10k-images-idx3-ubyte.gz: corrupt gzip data"));
  g_clear_error (&error);

  g_autoptr (TfDataSource) heldout = tf_data_fashion_new (heldout_only, TF_SPLIT_HELDOUT, 32, 1,
                                                          &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (heldout), ==, 10000);
  g_assert_null (tf_data_fashion_new (heldout_only, TF_SPLIT_TRAIN, 32, 1, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "train-images-idx3-ubyte.gz: could not read"));

  tf_test_remove_tree (train_only);
  tf_test_remove_tree (heldout_only);
}

/* An IDX file of bytes: magic 00 00 08 n_dims, big-endian dimensions. */
static GByteArray *
make_idx (int n_dims, const uint32_t *dims, const uint8_t *data, size_t len)
{
  GByteArray *b = g_byte_array_new ();
  uint8_t magic[4] = { 0, 0, 8, (uint8_t) n_dims };
  g_byte_array_append (b, magic, 4);
  for (int d = 0; d < n_dims; d++)
    {
      uint8_t be[4] = { (uint8_t) (dims[d] >> 24), (uint8_t) (dims[d] >> 16),
                        (uint8_t) (dims[d] >> 8), (uint8_t) dims[d] };
      g_byte_array_append (b, be, 4);
    }
  if (len > 0)
    g_byte_array_append (b, data, (guint) len);
  return b;
}

/* A folder with three 28×28 training images (labels 0, 7, 9) and nothing
 * else; the caller then breaks one file. */
static void
write_small_fashion (const char *dir)
{
  uint8_t pixels[3 * 28 * 28];
  for (size_t i = 0; i < sizeof pixels; i++)
    pixels[i] = (uint8_t) (i * 7);
  uint8_t labels[3] = { 0, 7, 9 };
  uint32_t image_dims[3] = { 3, 28, 28 }, label_dims[1] = { 3 };
  g_autoptr (GByteArray) images = make_idx (3, image_dims, pixels, sizeof pixels);
  g_autoptr (GByteArray) label_file = make_idx (1, label_dims, labels, 3);
  write_gz (dir, "train-images-idx3-ubyte.gz", images->data, images->len);
  write_gz (dir, "train-labels-idx1-ubyte.gz", label_file->data, label_file->len);
}

static void
expect_fashion_error (const char *dir, int code, const char *file, const char *problem)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) source = tf_data_fashion_new (dir, TF_SPLIT_TRAIN, 32, 1, &error);
  g_assert_null (source);
  g_assert_error (error, TF_ERROR, code);
  g_autofree char *expected = g_strdup_printf ("%s: %s", file, problem);
  if (strstr (error->message, expected) == NULL)
    g_error ("message '%s', expected '…%s…'", error->message, expected);
  g_test_message ("%s", error->message);
}

static void
test_fashion_corrupt (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-XXXXXX");
  g_autoptr (GError) error = NULL;

  /* The small set itself is fine. */
  write_small_fashion (dir);
  {
    g_autoptr (TfDataSource) source = tf_data_fashion_new (dir, TF_SPLIT_TRAIN, 32, 1, &error);
    g_assert_no_error (error);
    g_assert_cmpint (tf_data_source_size (source), ==, 3);
    TfRng rng;
    tf_rng_seed (&rng, 1);
    TfExample e;
    g_assert_true (tf_data_source_get (source, 1, &rng, &e, &error));
    g_assert_cmpint (e.label, ==, 7);
    g_assert_cmpstr (e.subject, ==, "sneaker");
    /* Pixel (0, 0) of image 1 sits at (2, 2). */
    g_assert_cmpfloat_with_epsilon (e.pixels[2 * 32 + 2], (uint8_t) (28 * 28 * 7) / 127.5f - 1.0f,
                                    1e-6);
    tf_example_clear (&e);
    check_determinism (source);
  }
  /* The held-out files are absent. */
  {
    g_assert_null (tf_data_fashion_new (dir, TF_SPLIT_HELDOUT, 32, 1, &error));
    g_assert_error (error, TF_ERROR, TF_ERROR_IO);
    g_assert_nonnull (strstr (error->message, "t10k-images-idx3-ubyte.gz: could not read"));
    g_clear_error (&error);
  }

  const char *images_name = "train-images-idx3-ubyte.gz";
  const char *labels_name = "train-labels-idx1-ubyte.gz";
  uint8_t pixels[3 * 28 * 28] = { 0 };
  uint32_t dims[3] = { 3, 28, 28 };

  /* Not gzip. */
  tf_test_write_file (dir, images_name, "plain text", 10);
  expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "corrupt gzip data");

  /* Gzip cut in half. */
  {
    g_autoptr (GByteArray) idx = make_idx (3, dims, pixels, sizeof pixels);
    g_autoptr (GBytes) gz = gzip_bytes (idx->data, idx->len);
    tf_test_write_file (dir, images_name, g_bytes_get_data (gz, NULL),
                        (gssize) g_bytes_get_size (gz) / 2);
    g_autoptr (GError) cut_error = NULL;
    g_assert_null (tf_data_fashion_new (dir, TF_SPLIT_TRAIN, 32, 1, &cut_error));
    g_assert_error (cut_error, TF_ERROR, TF_ERROR_FORMAT);
    g_assert_nonnull (strstr (cut_error->message, images_name));
  }

  /* A damaged gzip trailer (CRC). */
  {
    g_autoptr (GByteArray) idx = make_idx (3, dims, pixels, sizeof pixels);
    g_autoptr (GBytes) gz = gzip_bytes (idx->data, idx->len);
    gsize len = g_bytes_get_size (gz);
    g_autofree uint8_t *copy = g_memdup2 (g_bytes_get_data (gz, NULL), len);
    copy[len - 6] ^= 0xff;
    tf_test_write_file (dir, images_name, copy, len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "corrupt gzip data");
  }

  /* Wrong magic: a labels file where the images should be. */
  {
    uint8_t labels[3] = { 0 };
    uint32_t label_dims[1] = { 3 };
    g_autoptr (GByteArray) idx = make_idx (1, label_dims, labels, 3);
    write_gz (dir, images_name, idx->data, idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name,
                          "not an IDX file of bytes with 3 dimensions");
  }

  /* Float elements (type 0x0D). */
  {
    g_autoptr (GByteArray) idx = make_idx (3, dims, pixels, sizeof pixels);
    idx->data[2] = 0x0d;
    write_gz (dir, images_name, idx->data, idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "not an IDX file");
  }

  /* Header shorter than itself. */
  write_gz (dir, images_name, "\0\0\x08\x03\0\0", 6);
  expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "truncated: the IDX header");

  /* More images announced than present. */
  {
    uint32_t more[3] = { 5, 28, 28 };
    g_autoptr (GByteArray) idx = make_idx (3, more, pixels, sizeof pixels);
    write_gz (dir, images_name, idx->data, idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "truncated: the header announces");
  }

  /* Data after the announced images. */
  {
    uint32_t fewer[3] = { 2, 28, 28 };
    g_autoptr (GByteArray) idx = make_idx (3, fewer, pixels, sizeof pixels);
    write_gz (dir, images_name, idx->data, idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "data continues after");
  }

  /* A zero dimension; a count that would need gigabytes (refused before
   * allocating). */
  {
    uint32_t zero[3] = { 3, 0, 28 };
    g_autoptr (GByteArray) idx = make_idx (3, zero, NULL, 0);
    write_gz (dir, images_name, idx->data, idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "dimension 1 is 0");

    uint32_t huge[3] = { 0xffffffffu, 28, 28 };
    g_autoptr (GByteArray) big = make_idx (3, huge, pixels, 100);
    write_gz (dir, images_name, big->data, big->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, images_name, "the header announces more than");
  }

  /* Labels: fewer than images; a label out of range. */
  write_small_fashion (dir);
  {
    uint8_t labels[2] = { 1, 2 };
    uint32_t label_dims[1] = { 2 };
    g_autoptr (GByteArray) idx = make_idx (1, label_dims, labels, 2);
    write_gz (dir, labels_name, idx->data, idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, labels_name,
                          "has 2 labels, but train-images-idx3-ubyte.gz has 3 images");

    uint8_t bad[3] = { 1, 10, 2 };
    uint32_t bad_dims[1] = { 3 };
    g_autoptr (GByteArray) bad_idx = make_idx (1, bad_dims, bad, 3);
    write_gz (dir, labels_name, bad_idx->data, bad_idx->len);
    expect_fashion_error (dir, TF_ERROR_FORMAT, labels_name, "label 1 is 10 (expected 0 to 9)");
  }

  tf_test_remove_tree (dir);
}

/* --- WordNet ------------------------------------------------------------ */

static gboolean
have_wordnet (void)
{
  if (g_file_test (WORDNET_DIR "/data.noun", G_FILE_TEST_EXISTS))
    return TRUE;
  g_test_skip ("WordNet is not installed (wordnet-base)");
  return FALSE;
}

static void
check_text_example (const TfExample *e)
{
  g_assert_cmpint (e->kind, ==, TF_EXAMPLE_TEXT);
  g_assert_null (e->pixels);
  g_assert_nonnull (e->prompt);
  g_assert_nonnull (e->text);
  g_assert_nonnull (e->subject);
  g_assert_cmpint (e->label, ==, -1);
  g_assert_true (g_utf8_validate (e->prompt, -1, NULL));
  g_assert_true (g_utf8_validate (e->text, -1, NULL));
  g_assert_null (strchr (e->subject, '_'));
  g_assert_cmpuint (strlen (e->text), <, 400);
}

/* Every body of the split, with the number of times it occurs. */
static GHashTable *
collect_texts (TfDataSource *source, GPtrArray *dog_definitions)
{
  GHashTable *texts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  TfRng rng;
  tf_rng_seed (&rng, 11);
  for (int64_t i = 0; i < tf_data_source_size (source); i++)
    {
      TfExample e;
      g_autoptr (GError) error = NULL;
      g_assert_true (tf_data_source_get (source, i, &rng, &e, &error));
      g_assert_no_error (error);
      check_text_example (&e);
      if (g_str_equal (e.subject, "dog") && dog_definitions != NULL)
        g_ptr_array_add (dog_definitions, g_strdup (e.text));
      /* The pair as the model sees it, independent of the prompt's
       * phrasing: the body names the subject or answers a prompt that does. */
      g_hash_table_add (texts, g_strdup_printf ("%s\n%s", e.subject, e.text));
      tf_example_clear (&e);
    }
  return texts;
}

static void
test_wordnet (void)
{
  if (!have_wordnet ())
    return;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) train = tf_data_wordnet_new (NULL, TF_SPLIT_TRAIN, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) heldout = tf_data_wordnet_new (WORDNET_DIR, TF_SPLIT_HELDOUT, &error);
  g_assert_no_error (error);
  int64_t n_train = tf_data_source_size (train), n_heldout = tf_data_source_size (heldout);
  g_test_message ("wordnet: %" G_GINT64_FORMAT " training, %" G_GINT64_FORMAT " held-out",
                  n_train, n_heldout);
  g_assert_cmpint (n_train, >, 150000);
  g_assert_cmpint (n_heldout, >, 1000);
  g_assert_cmpint (n_heldout, <, n_train / 20);
  g_assert_cmpstr (tf_data_source_name (train), ==, "wordnet");

  g_autoptr (GPtrArray) dog = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) train_texts = collect_texts (train, dog);
  g_autoptr (GHashTable) heldout_texts = collect_texts (heldout, dog);
  GHashTableIter iter;
  gpointer key;
  g_hash_table_iter_init (&iter, heldout_texts);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (g_hash_table_contains (train_texts, key))
      g_error ("in both splits: %s", (const char *) key);

  /* The classic: dog's first sense, with its article and usage. The dog
   * emoji makes it a drawable subject: the subjects source has it, the
   * wordnet source none of its definitions (but its other uses). */
  g_autoptr (TfDataSource) subjects = tf_data_subjects_new (NULL, NULL, TF_SPLIT_TRAIN, &error);
  g_assert_no_error (error);
  g_autoptr (GPtrArray) dog_subject = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) subject_texts = collect_texts (subjects, dog_subject);
  gboolean found_definition = FALSE, found_usage = FALSE;
  for (guint i = 0; i < dog_subject->len; i++)
    {
      const char *text = g_ptr_array_index (dog_subject, i);
      if (g_str_has_prefix (text, "a dog is a member of the genus Canis"))
        found_definition = TRUE;
      if (g_str_equal (text, "the dog barked all night"))
        found_usage = TRUE;
    }
  g_assert_true (found_definition);
  g_assert_true (found_usage);
  for (guint i = 0; i < dog->len; i++)
    g_assert_false (g_str_has_prefix (g_ptr_array_index (dog, i), "a dog is "));

  /* The subjects of the two splits do not overlap either. */
  const char *const *train_subjects = tf_data_source_subjects (train);
  const char *const *heldout_subjects = tf_data_source_subjects (heldout);
  g_assert_nonnull (train_subjects[0]);
  g_assert_nonnull (heldout_subjects[0]);
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (int i = 0; train_subjects[i] != NULL; i++)
    g_hash_table_add (seen, (gpointer) train_subjects[i]);
  for (int i = 0; heldout_subjects[i] != NULL; i++)
    g_assert_false (g_hash_table_contains (seen, heldout_subjects[i]));

  check_determinism (train);
  check_determinism (heldout);
}

/* A small WordNet: the licence header, a noun with two words and a usage,
 * an adjective with a marker, a verb with frames, a gloss too long to keep. */
static void
test_wordnet_small (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-XXXXXX");
  const char *header = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
                       "  2 Princeton University under the following license.  \n";
  g_autofree char *long_gloss = g_strnfill (320, 'x');
  g_autofree char *noun = g_strconcat (
    header,
    "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; "
    "\"the dog barked all night\"  \n",
    "14841267 27 n 01 water 0 000 | binary compound that occurs at room temperature as a clear "
    "liquid  \n",
    "09999999 18 n 01 longword 0 000 | ", long_gloss, "  \n", NULL);
  const char *verb = "00004032 29 v 02 sigh 0 suspire 4 000 01 + 02 00 | heave or utter a sigh; "
                     "breathe deeply and heavily; \"She sighed sadly\"  \n";
  const char *adj = "00001740 00 a 01 able(a) 0 000 | (usually followed by `to') having the "
                    "necessary means or skill; \"able to swim\"  \n";
  tf_test_write_file (dir, "data.noun", noun, -1);
  tf_test_write_file (dir, "data.verb", verb, -1);
  tf_test_write_file (dir, "data.adj", adj, -1);
  tf_test_write_file (dir, "data.adv", header, -1);
  /* dog is an emoji's name: a drawable subject, in the animal sense that
   * index.noun lists first. */
  tf_test_write_file (dir, "index.noun", "  1 licence\ndog n 1 1 @ 1 1 02084071  \n", -1);

  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  int64_t total = 0;
  for (int split = 0; split < 2; split++)
    {
      g_autoptr (TfDataSource) source = tf_data_wordnet_new (dir, split, &error);
      if (source == NULL)
        {
          /* A split may be empty in so small a set. */
          g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
          g_clear_error (&error);
          continue;
        }
      total += tf_data_source_size (source);
      TfRng rng;
      tf_rng_seed (&rng, 2);
      for (int64_t i = 0; i < tf_data_source_size (source); i++)
        {
          TfExample e;
          g_assert_true (tf_data_source_get (source, i, &rng, &e, &error));
          check_text_example (&e);
          g_ptr_array_add (texts, g_strdup_printf ("%s | %s", e.subject, e.text));
          tf_example_clear (&e);
        }
    }
  /* water: definition; sigh: definition, usage, synonym; able:
   * definition, usage. The long gloss is skipped; dog is a subject. */
  g_assert_cmpint (total, ==, 6);
  /* The subjects: dog (two definitions, a usage, a synonym) and the
   * subjects whose definitions WordNet lacks ("ankle boot"). */
  int n_dog = 0;
  for (int split = 0; split < 2; split++)
    {
      g_autoptr (TfDataSource) source = tf_data_subjects_new (dir, NULL, split, &error);
      g_assert_no_error (error);
      TfRng rng;
      tf_rng_seed (&rng, 2);
      for (int64_t i = 0; i < tf_data_source_size (source); i++)
        {
          TfExample e;
          g_assert_true (tf_data_source_get (source, i, &rng, &e, &error));
          check_text_example (&e);
          n_dog += g_str_equal (e.subject, "dog");
          if (g_str_equal (e.subject, "dog") || g_str_equal (e.subject, "ankle boot"))
            g_ptr_array_add (texts, g_strdup_printf ("%s | %s", e.subject, e.text));
          tf_example_clear (&e);
        }
    }
  g_assert_cmpint (n_dog, ==, 4);
  g_ptr_array_add (texts, NULL);
  g_autofree char *all = g_strjoinv ("\n", (char **) texts->pdata);
  g_test_message ("%s", all);
  const char *expected[] = {
    "dog | a dog is a member of the genus Canis.",
    "dog | the dog barked all night",
    "dog | another word for dog is domestic dog.",
    "ankle boot | an ankle boot is a boot that reaches just above the ankle.",
    "water | water is binary compound that occurs at room temperature as a clear liquid.",
    "sigh | to sigh is to heave or utter a sigh; breathe deeply and heavily.",
    "sigh | She sighed sadly",
    "sigh | another word for sigh is suspire.",
    "able | able means having the necessary means or skill.",
    "able | able to swim",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (expected); i++)
    if (strstr (all, expected[i]) == NULL)
      g_error ("missing '%s' in:\n%s", expected[i], all);

  /* A malformed line names the file and the line. */
  const char *bad = "  1 licence\n02084071 05 n zz dog 0 | a gloss\n";
  tf_test_write_file (dir, "data.noun", bad, -1);
  g_assert_null (tf_data_wordnet_new (dir, TF_SPLIT_TRAIN, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "data.noun: line 2: "));
  g_clear_error (&error);
  const char *no_gloss = "02084071 05 n 01 dog 0 000\n";
  tf_test_write_file (dir, "data.noun", no_gloss, -1);
  g_assert_null (tf_data_wordnet_new (dir, TF_SPLIT_TRAIN, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "data.noun: line 1: no ' | '"));
  g_clear_error (&error);

  /* A missing file. */
  g_autofree char *verb_path = g_build_filename (dir, "data.verb", NULL);
  g_unlink (verb_path);
  tf_test_write_file (dir, "data.noun", noun, -1);
  g_assert_null (tf_data_wordnet_new (dir, TF_SPLIT_TRAIN, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "data.verb: could not read"));

  tf_test_remove_tree (dir);
}

/* --- user folders ------------------------------------------------------- */

/* A PNG of @w×@h with @channels, a colour gradient keyed by @seed. */
static void
write_png (const char *dir, const char *name, int w, int h, int channels, int seed)
{
  g_autofree uint8_t *pixels = g_new (uint8_t, (size_t) w * h * channels);
  for (int i = 0; i < w * h * channels; i++)
    pixels[i] = (uint8_t) (i * 13 + seed * 29);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_image_write_png (path, pixels, w, h, channels, NULL, NULL, &error));
  g_assert_no_error (error);
}

/* 41 good pictures g00 … g40 of varied sizes and types, a PNG named .dat,
 * and five broken files, each of which is worth one warning. */
static void
make_folder (const char *dir)
{
  for (int i = 0; i <= 40; i++)
    {
      g_autofree char *png = g_strdup_printf ("g%02d.png", i);
      g_autofree char *txt = g_strdup_printf ("g%02d.txt", i);
      g_autofree char *caption = g_strdup_printf ("  picture number %d\n", i);
      static const int channels[] = { 3, 1, 4 };
      write_png (dir, png, 8 + i * 3, 40 - i / 2, channels[i % 3], i);
      tf_test_write_file (dir, txt, caption, -1);
    }
  /* A PNG by its signature, under another extension. */
  write_png (dir, "magic.dat", 5, 5, 3, 99);
  tf_test_write_file (dir, "magic.txt", "found by its signature", -1);

  /* Broken, in name order: */
  tf_test_write_file (dir, "b1-garbage.png", "this is not an image at all", -1);
  tf_test_write_file (dir, "b1-garbage.txt", "garbage", -1);
  write_png (dir, "b2-nocaption.png", 6, 6, 3, 1);
  write_png (dir, "b3-badutf.png", 6, 6, 3, 2);
  tf_test_write_file (dir, "b3-badutf.txt", "caf\xe9 latin-1", -1);
  g_autofree char *good_path = g_build_filename (dir, "g00.png", NULL);
  g_autofree char *good = NULL;
  gsize good_len;
  g_assert_true (g_file_get_contents (good_path, &good, &good_len, NULL));
  tf_test_write_file (dir, "b4-truncated.png", good, good_len - 20);
  tf_test_write_file (dir, "b4-truncated.txt", "truncated", -1);
  tf_test_write_file (dir, "b5-photo.jpg", "\xff\xd8\xff\xe0 not really a JPEG", -1);
  tf_test_write_file (dir, "b5-photo.txt", "a photo", -1);

  /* Ignored without a word: not images. */
  tf_test_write_file (dir, "README.md", "# my pictures", -1);
  tf_test_write_file (dir, "orphan.txt", "a caption without a picture", -1);
  g_autofree char *sub = g_build_filename (dir, "subdir.png", NULL);
  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
}

static void
expect_folder_warnings (const char *dir)
{
  static const char *const broken[][2] = {
    { "b1-garbage.png", "not a PNG or JPEG file" },
    { "b2-nocaption.png", "no caption file b2-nocaption.txt" },
    { "b3-badutf.png", "caption b3-badutf.txt is not valid UTF-8" },
    { "b4-truncated.png", "corrupt PNG: *" },
    { "b5-photo.jpg", "not a readable JPEG image: *" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (broken); i++)
    {
      g_autofree char *pattern = g_strdup_printf ("%s/%s: skipped: %s", dir, broken[i][0],
                                                  broken[i][1]);
      g_test_expect_message (NULL, G_LOG_LEVEL_WARNING, pattern);
    }
}

static void
test_folder (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-XXXXXX");
  make_folder (dir);
  g_autoptr (GError) error = NULL;

  expect_folder_warnings (dir);
  g_autoptr (TfDataSource) train = tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 3, &error);
  g_test_assert_expected_messages ();
  g_assert_no_error (error);
  expect_folder_warnings (dir);
  g_autoptr (TfDataSource) heldout = tf_data_folder_new (dir, TF_SPLIT_HELDOUT, 16, 3, &error);
  g_test_assert_expected_messages ();
  g_assert_no_error (error);

  /* 42 good files: g00 … g40 and magic.dat; every 20th (the 20th and the
   * 40th: g19 and g39) is held out. */
  g_assert_cmpint (tf_data_source_size (train), ==, 40);
  g_assert_cmpint (tf_data_source_size (heldout), ==, 2);
  g_assert_cmpstr (tf_data_source_name (train), ==, dir);

  g_autoptr (GHashTable) train_captions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                                 NULL);
  TfRng rng;
  tf_rng_seed (&rng, 4);
  for (int64_t i = 0; i < 40; i++)
    {
      TfExample e;
      g_assert_true (tf_data_source_get (train, i, &rng, &e, &error));
      check_image_example (&e, 16, 3);
      g_assert_cmpint (e.label, ==, -1);
      g_hash_table_add (train_captions, g_strdup (e.caption));
      tf_example_clear (&e);
    }
  g_assert_cmpuint (g_hash_table_size (train_captions), ==, 40);
  g_assert_true (g_hash_table_contains (train_captions, "picture number 0"));   /* trimmed */
  g_assert_true (g_hash_table_contains (train_captions, "found by its signature"));
  g_assert_false (g_hash_table_contains (train_captions, "garbage"));
  const char *heldout_expected[] = { "picture number 19", "picture number 39" };
  for (int64_t i = 0; i < 2; i++)
    {
      TfExample e;
      g_assert_true (tf_data_source_get (heldout, i, &rng, &e, &error));
      check_image_example (&e, 16, 3);
      g_assert_cmpstr (e.caption, ==, heldout_expected[i]);
      g_assert_false (g_hash_table_contains (train_captions, e.caption));
      tf_example_clear (&e);
    }
  const char *const *subjects = tf_data_source_subjects (heldout);
  g_assert_cmpuint (g_strv_length ((char **) subjects), ==, 2);

  check_determinism (train);
  check_determinism (heldout);
  tf_test_remove_tree (dir);
}

/* The pixels: a red 40×20 image fits as 16×8 in the middle of white. */
static void
test_folder_pixels (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-XXXXXX");
  g_autofree uint8_t *red = g_new0 (uint8_t, 40 * 20 * 3);
  for (int i = 0; i < 40 * 20; i++)
    red[i * 3] = 255;
  g_autofree char *path = g_build_filename (dir, "red.png", NULL);
  g_assert_true (tf_image_write_png (path, red, 40, 20, 3, NULL, NULL, NULL));
  /* A long caption of two-byte characters, cut at a character boundary. */
  GString *caption = g_string_new ("\xef\xbb\xbf");   /* BOM */
  for (int i = 0; i < 400; i++)
    g_string_append (caption, "é");
  tf_test_write_file (dir, "red.txt", caption->str, caption->len);
  g_string_free (caption, TRUE);

  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) rgb = tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (rgb), ==, 1);
  TfRng rng;
  tf_rng_seed (&rng, 1);
  TfExample e;
  g_assert_true (tf_data_source_get (rgb, 0, &rng, &e, &error));
  /* 40×20 fits as 16×8 on the colour of its own edge (tf_image_to_model):
   * red all over. */
  for (int y = 0; y < 16; y++)
    for (int x = 0; x < 16; x++)
      {
        const float *p = e.pixels + (y * 16 + x) * 3;
        g_assert_cmpfloat (p[0], ==, 1.0f);
        g_assert_cmpfloat (p[1], ==, -1.0f);
        g_assert_cmpfloat (p[2], ==, -1.0f);
      }
  g_assert_true (g_utf8_validate (e.caption, -1, NULL));
  g_assert_cmpuint (strlen (e.caption), ==, 500);
  g_assert_true (g_str_has_prefix (e.caption, "éé"));
  tf_example_clear (&e);

  g_autoptr (TfDataSource) grey = tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 1, &error);
  g_assert_no_error (error);
  g_assert_true (tf_data_source_get (grey, 0, &rng, &e, &error));
  check_image_example (&e, 16, 1);
  /* Luminance of red, through 8 bits. */
  g_assert_cmpfloat_with_epsilon (e.pixels[8 * 16 + 8], 2.0f * 76.0f / 255.0f - 1.0f, 1e-6);
  tf_example_clear (&e);

  /* Too few files for a held-out split. */
  g_assert_null (tf_data_folder_new (dir, TF_SPLIT_HELDOUT, 16, 3, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_true (g_str_has_prefix (error->message, dir));
  g_clear_error (&error);
  /* Channels the folder cannot give. */
  g_assert_null (tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 2, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  tf_test_remove_tree (dir);
}

static void
test_folder_empty (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-XXXXXX");
  g_autoptr (GError) error = NULL;

  g_assert_null (tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 3, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_autofree char *expected = g_strdup_printf ("%s: no usable images", dir);
  g_assert_true (g_str_has_prefix (error->message, expected));
  g_clear_error (&error);

  /* Only a broken pair: one warning, then the same error. */
  tf_test_write_file (dir, "x.png", "not a png", -1);
  tf_test_write_file (dir, "x.txt", "caption", -1);
  g_autofree char *pattern = g_strdup_printf ("%s/x.png: skipped: not a PNG or JPEG file", dir);
  g_test_expect_message (NULL, G_LOG_LEVEL_WARNING, pattern);
  g_assert_null (tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 3, &error));
  g_test_assert_expected_messages ();
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_true (g_str_has_prefix (error->message, expected));
  g_clear_error (&error);

  /* An empty caption is a broken pair too. */
  write_png (dir, "x.png", 4, 4, 3, 0);
  tf_test_write_file (dir, "x.txt", " \n\t ", -1);
  g_autofree char *empty = g_strdup_printf ("%s/x.png: skipped: caption x.txt is empty", dir);
  g_test_expect_message (NULL, G_LOG_LEVEL_WARNING, empty);
  g_assert_null (tf_data_folder_new (dir, TF_SPLIT_TRAIN, 16, 3, &error));
  g_test_assert_expected_messages ();
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);

  /* A folder that is not there. */
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  g_assert_null (tf_data_folder_new (missing, TF_SPLIT_TRAIN, 16, 3, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, missing));
  tf_test_remove_tree (dir);
}

/* --- contact sheets ----------------------------------------------------- */

static TfExample
solid_example (int size, float r, float g, float b, const char *caption)
{
  TfExample e = { .kind = TF_EXAMPLE_IMAGE, .size = size, .channels = 3, .label = -1 };
  e.pixels = g_new (float, size * size * 3);
  for (int i = 0; i < size * size; i++)
    {
      e.pixels[i * 3] = r;
      e.pixels[i * 3 + 1] = g;
      e.pixels[i * 3 + 2] = b;
    }
  e.caption = g_strdup (caption);
  return e;
}

static void
test_contact_sheet (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-XXXXXX");
  g_autoptr (GError) error = NULL;

  /* One red image with a one-line caption: the layout is
   * margin 16 + pad 8 + content (160 wide; 8×4 = 32 high + 6 + one 15-pixel
   * line) + pad 8 + margin 16. */
  TfExample one = solid_example (8, 1.0f, -1.0f, -1.0f, "red");
  g_autofree char *one_path = g_build_filename (dir, "one.png", NULL);
  g_assert_true (tf_data_write_contact_sheet (&one, 1, 4, one_path, &error));
  g_assert_no_error (error);
  TfImage image;
  g_assert_true (tf_image_read_png (one_path, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, 16 + 8 + 160 + 8 + 16);
  g_assert_cmpint (image.height, ==, 16 + 8 + 32 + 6 + 15 + 8 + 16);
  /* The image, centred in the tile, nearest-neighbour: solid red. */
  for (int y = 24; y < 24 + 32; y++)
    for (int x = 24 + 64; x < 24 + 64 + 32; x++)
      {
        const uint8_t *p = image.rgba + (y * image.width + x) * 4;
        g_assert_cmpint (p[0], ==, 255);
        g_assert_cmpint (p[1], ==, 0);
        g_assert_cmpint (p[2], ==, 0);
      }
  tf_image_clear (&image);
  tf_example_clear (&one);

  /* A mixed sheet: images, grey, a long caption and text examples. */
  TfExample mixed[7];
  mixed[0] = solid_example (16, 1.0f, 1.0f, -1.0f, "a yellow square");
  mixed[1] = solid_example (16, -1.0f, -1.0f, 1.0f,
                            "a blue square with a caption long enough to need several lines, "
                            "more than fit under the picture: it ends with an ellipsis, "
                            "because a contact sheet keeps every tile the same size anyway");
  mixed[2] = (TfExample) { .kind = TF_EXAMPLE_IMAGE, .size = 16, .channels = 1, .label = -1,
                           .pixels = g_new (float, 16 * 16), .caption = g_strdup ("grey ramp") };
  for (int i = 0; i < 16 * 16; i++)
    mixed[2].pixels[i] = (i % 16) / 7.5f - 1.0f;
  mixed[3] = (TfExample) { .kind = TF_EXAMPLE_TEXT, .label = -1,
                           .prompt = g_strdup ("what is a dog?"),
                           .text = g_strdup ("a dog is a member of the genus Canis (probably "
                                             "descended from the common wolf) that has been "
                                             "domesticated by man since prehistoric times.") };
  mixed[4] = (TfExample) { .kind = TF_EXAMPLE_TEXT, .label = -1,
                           .text = g_strdup ("A body without a prompt.") };
  mixed[5] = solid_example (16, 0.0f, 0.0f, 0.0f, NULL);
  mixed[5].subject = g_strdup ("subject only");
  mixed[6] = (TfExample) { .kind = TF_EXAMPLE_TEXT, .label = -1, .prompt = g_strdup ("spell"),
                           .text = g_strdup ("Supercalifragilisticexpialidocious-and-then-some-"
                                             "more-without-any-spaces-at-all-to-break-on") };
  g_autofree char *path = g_build_filename (dir, "sheet.png", NULL);
  g_assert_true (tf_data_write_contact_sheet (mixed, G_N_ELEMENTS (mixed), 4, path, &error));
  g_assert_no_error (error);
  g_assert_true (tf_image_read_png (path, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, >=, 2 * (16 * 4));
  g_assert_cmpint (image.height, >=, 2 * (16 * 4));
  tf_image_clear (&image);
  if (g_getenv ("TF_TEST_KEEP_SHEET") != NULL)
    {
      g_autofree char *kept = g_build_filename (g_getenv ("TF_TEST_KEEP_SHEET"), "mixed.png",
                                                NULL);
      g_assert_true (tf_data_write_contact_sheet (mixed, G_N_ELEMENTS (mixed), 4, kept, NULL));
    }

  /* Bad requests. */
  g_assert_false (tf_data_write_contact_sheet (mixed, 0, 4, path, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (tf_data_write_contact_sheet (mixed, 1, 0, path, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_autofree char *nowhere = g_build_filename (dir, "missing", "sheet.png", NULL);
  g_assert_false (tf_data_write_contact_sheet (mixed, 1, 1, nowhere, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, nowhere));
  g_clear_error (&error);

  for (size_t i = 0; i < G_N_ELEMENTS (mixed); i++)
    tf_example_clear (&mixed[i]);
  tf_test_remove_tree (dir);
}

/* A sheet of real examples, kept when TF_TEST_KEEP_SHEET names a folder
 * (to look at). */
static void
test_contact_sheet_sources (void)
{
  if (!have_fashion () || !have_wordnet ())
    return;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) fashion = tf_data_fashion_new (NULL, TF_SPLIT_HELDOUT, 32, 1, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) wordnet = tf_data_wordnet_new (NULL, TF_SPLIT_HELDOUT, &error);
  g_assert_no_error (error);
  TfExample examples[12];
  TfRng rng;
  tf_rng_seed (&rng, 99);
  for (int i = 0; i < 12; i++)
    {
      TfDataSource *source = i < 9 ? fashion : wordnet;
      int64_t index = (int64_t) tf_rng_below (&rng, (uint64_t) tf_data_source_size (source));
      g_assert_true (tf_data_source_get (source, index, &rng, &examples[i], &error));
      g_assert_no_error (error);
    }
  const char *keep = g_getenv ("TF_TEST_KEEP_SHEET");
  g_autofree char *dir = keep != NULL ? g_strdup (keep) : tf_test_make_temp_dir ("tf-data-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "sources.png", NULL);
  g_assert_true (tf_data_write_contact_sheet (examples, 12, 3, path, &error));
  g_assert_no_error (error);
  TfImage image;
  g_assert_true (tf_image_read_png (path, &image, &error));
  g_assert_cmpint (image.width, >, 3 * 96);
  tf_image_clear (&image);
  for (int i = 0; i < 12; i++)
    tf_example_clear (&examples[i]);
  if (keep == NULL)
    tf_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/data/fashion", test_fashion);
  g_test_add_func ("/data/fashion/shapes", test_fashion_shapes);
  g_test_add_func ("/data/fashion/split-isolation", test_fashion_split_isolation);
  g_test_add_func ("/data/fashion/corrupt", test_fashion_corrupt);
  g_test_add_func ("/data/wordnet", test_wordnet);
  g_test_add_func ("/data/wordnet/small", test_wordnet_small);
  g_test_add_func ("/data/folder", test_folder);
  g_test_add_func ("/data/folder/pixels", test_folder_pixels);
  g_test_add_func ("/data/folder/empty", test_folder_empty);
  g_test_add_func ("/data/contact-sheet", test_contact_sheet);
  g_test_add_func ("/data/contact-sheet/sources", test_contact_sheet_sources);
  /* fontconfig's cache outlives the process by design: tests/lsan.supp. */
  return g_test_run ();
}
