/* tf-image.c: PNG files (libpng), reading PNG or JPEG by their content
 * (JPEG in tf-image-jpeg.c), and the conversions between 8-bit pixels and
 * the model's [-1, 1] pixels.
 *
 * Reading decodes from memory (a mapped file or caller's bytes) so that one
 * code path serves both, and a truncated file is an ordinary libpng error.
 * libpng reports errors by longjmp: every pointer that is assigned after
 * setjmp and freed after the jump is volatile, and nothing is allocated with
 * g_autofree inside the protected region.
 *
 * Writing encodes into memory first, then writes the bytes atomically
 * (tf-file.h): a failure leaves the previous file as it was. */
#include "tf-image.h"
#include "tf-image-private.h"
#include "tf-config.h"
#include "tf-file.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Text chunks (and any other ancillary chunk) larger than this are refused:
 * a "parameters" chunk is a few hundred bytes. */
#define TF_IMAGE_MAX_CHUNK (8u * 1024u * 1024u)

void
tf_image_clear (TfImage *image)
{
  if (image == NULL)
    return;
  g_free (image->rgba);
  image->rgba = NULL;
  image->width = 0;
  image->height = 0;
}

/* libpng's error pointer, reading and writing: the last error's message. */
typedef struct {
  char text[256];
} PngMessage;

static void
keep_png_error (png_structp png, png_const_charp message)
{
  PngMessage *kept = png_get_error_ptr (png);
  g_strlcpy (kept->text, message != NULL ? message : "unknown error", sizeof kept->text);
  png_longjmp (png, 1);
}

/* libpng's warnings (an odd sRGB profile, an unknown chunk) are not our
 * caller's business: the image decodes, or encodes. */
static void
ignore_png_warning (png_structp png, png_const_charp message)
{
}

/* --- reading ------------------------------------------------------------- */

typedef struct {
  const uint8_t *data;
  size_t         len;
  size_t         pos;
  PngMessage     message;
  gboolean       own_message;    /* not libpng's: no "corrupt PNG" */
} PngReader;

static void
reader_read (png_structp png, png_bytep out, size_t n)
{
  PngReader *reader = png_get_io_ptr (png);
  if (n > reader->len - reader->pos)
    png_error (png, "file is truncated");
  memcpy (out, reader->data + reader->pos, n);
  reader->pos += n;
}

/* tEXt is Latin-1; iTXt is UTF-8 (checked, since a file can lie). */
static char *
text_to_utf8 (const png_text *text)
{
  if (text->compression == PNG_ITXT_COMPRESSION_NONE
      || text->compression == PNG_ITXT_COMPRESSION_zTXt)
    {
      size_t len = text->itxt_length;
      if (g_utf8_validate (text->text, (gssize) len, NULL))
        return g_strndup (text->text, len);
      return g_utf8_make_valid (text->text, (gssize) len);
    }
  return g_convert (text->text, (gssize) text->text_length, "UTF-8", "ISO-8859-1", NULL, NULL,
                    NULL);
}

static char *
key_to_utf8 (const char *key)
{
  char *utf8 = g_convert (key, -1, "UTF-8", "ISO-8859-1", NULL, NULL, NULL);
  return utf8 != NULL ? utf8 : g_strdup (key);
}

/* Decodes @data into @image (if non-NULL, as 8-bit RGBA) and collects the
 * text chunks into @text (if non-NULL). */
static gboolean
read_png (const uint8_t *data, size_t len, const char *name, TfImage *image, GHashTable *text,
          GError **error)
{
  if (len < 8 || png_sig_cmp (data, 0, 8) != 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: not a PNG file", name);
      return FALSE;
    }

  /* The size from IHDR, before libpng allocates anything: a tiny file may
   * claim a huge image. (libpng's user limits below are a second guard.) */
  if (len >= 24 && memcmp (data + 12, "IHDR", 4) == 0)
    {
      uint32_t w = (uint32_t) data[16] << 24 | (uint32_t) data[17] << 16
                   | (uint32_t) data[18] << 8 | data[19];
      uint32_t h = (uint32_t) data[20] << 24 | (uint32_t) data[21] << 16
                   | (uint32_t) data[22] << 8 | data[23];
      if (w == 0 || h == 0)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: corrupt PNG: the image is %u×%u pixels", name, w, h);
          return FALSE;
        }
      if ((uint64_t) w * h > TF_IMAGE_MAX_PIXELS)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: image is %u×%u pixels, more than the limit of %u", name, w, h,
                       TF_IMAGE_MAX_PIXELS);
          return FALSE;
        }
    }

  /* Every chunk's length against what the file holds: libpng allocates a
   * text chunk's claimed length before reading it (a 100-byte file claiming
   * a 2 GB tEXt chunk), whatever png_set_chunk_malloc_max says. */
  for (size_t pos = 8; len - pos >= 8;)
    {
      uint32_t chunk_len = (uint32_t) data[pos] << 24 | (uint32_t) data[pos + 1] << 16
                           | (uint32_t) data[pos + 2] << 8 | data[pos + 3];
      if (chunk_len > len - pos - 8 || len - pos - 8 - chunk_len < 4)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: corrupt PNG: a chunk at byte %zu claims %u bytes, more than the "
                       "file holds", name, pos, chunk_len);
          return FALSE;
        }
      if (memcmp (data + pos + 4, "IEND", 4) == 0)
        break;
      pos += 12 + (size_t) chunk_len;
    }

  PngReader reader = { .data = data, .len = len, .pos = 0 };
  png_structp png = png_create_read_struct (PNG_LIBPNG_VER_STRING, &reader.message,
                                            keep_png_error, ignore_png_warning);
  if (png == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: out of memory", name);
      return FALSE;
    }
  png_infop info = png_create_info_struct (png);
  if (info == NULL)
    {
      png_destroy_read_struct (&png, NULL, NULL);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: out of memory", name);
      return FALSE;
    }

  /* Assigned after setjmp and freed after a jump. */
  uint8_t *volatile pixels = NULL;
  png_bytep *volatile rows = NULL;

  if (setjmp (png_jmpbuf (png)))
    {
      g_free (rows);
      g_free (pixels);
      png_destroy_read_struct (&png, &info, NULL);
      if (reader.own_message)
        g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: %s", name, reader.message.text);
      else
        g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: corrupt PNG: %s", name,
                     reader.message.text);
      return FALSE;
    }

  png_set_read_fn (png, &reader, reader_read);
  /* Each dimension alone may not exceed the pixel limit; the product is
   * checked below, before anything is allocated. */
  png_set_user_limits (png, TF_IMAGE_MAX_PIXELS, TF_IMAGE_MAX_PIXELS);
  png_set_chunk_malloc_max (png, TF_IMAGE_MAX_CHUNK);
  png_set_chunk_cache_max (png, 1000);
  png_read_info (png, info);

  png_uint_32 width = png_get_image_width (png, info);
  png_uint_32 height = png_get_image_height (png, info);
  if (width == 0 || height == 0 || (uint64_t) width * height > TF_IMAGE_MAX_PIXELS)
    {
      g_snprintf (reader.message.text, sizeof reader.message.text,
                  "image is %u×%u pixels, more than the limit of %u", (unsigned) width,
                  (unsigned) height, TF_IMAGE_MAX_PIXELS);
      reader.own_message = TRUE;
      png_longjmp (png, 1);
    }

  int color_type = png_get_color_type (png, info);
  gboolean has_trns = png_get_valid (png, info, PNG_INFO_tRNS) != 0;
  png_set_expand (png);    /* palette → RGB, grey < 8 bits → 8, tRNS → alpha */
#ifdef PNG_READ_SCALE_16_TO_8_SUPPORTED
  png_set_scale_16 (png);
#else
  png_set_strip_16 (png);
#endif
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA)
    png_set_gray_to_rgb (png);
  if (!(color_type & PNG_COLOR_MASK_ALPHA) && !has_trns)
    png_set_add_alpha (png, 0xff, PNG_FILLER_AFTER);
  int passes = png_set_interlace_handling (png);
  png_read_update_info (png, info);

  size_t rowbytes = png_get_rowbytes (png, info);
  if (rowbytes != (size_t) width * 4)
    png_error (png, "unexpected row layout after conversion");

  if (image != NULL)
    {
      pixels = g_try_malloc ((size_t) width * height * 4);
      rows = g_try_new (png_bytep, height);
      if (pixels == NULL || rows == NULL)
        {
          reader.own_message = TRUE;
          png_error (png, "out of memory");
        }
      for (png_uint_32 y = 0; y < height; y++)
        rows[y] = pixels + (size_t) y * width * 4;
      png_read_image (png, rows);
    }
  else
    {
      /* Only the text is wanted: run the rows through one scratch row. */
      pixels = g_try_malloc (rowbytes);
      if (pixels == NULL)
        {
          reader.own_message = TRUE;
          png_error (png, "out of memory");
        }
      for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < height; y++)
          png_read_row (png, pixels, NULL);
    }
  png_read_end (png, info);

  if (text != NULL)
    {
      png_textp chunks = NULL;
      int n_chunks = png_get_text (png, info, &chunks, NULL);
      for (int i = 0; i < n_chunks; i++)
        {
          char *value = text_to_utf8 (&chunks[i]);
          if (value != NULL)
            g_hash_table_replace (text, key_to_utf8 (chunks[i].key), value);
        }
    }

  png_destroy_read_struct (&png, &info, NULL);
  g_free (rows);
  if (image != NULL)
    {
      image->width = (int) width;
      image->height = (int) height;
      image->rgba = pixels;
    }
  else
    g_free (pixels);
  return TRUE;
}

gboolean
tf_image_read_png_bytes (const void *data, size_t len, const char *display_name,
                         TfImage *image, GError **error)
{
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (image, 0, sizeof *image);
  return read_png (data, len, display_name != NULL ? display_name : "PNG data", image, NULL,
                   error);
}

/* What a file's first bytes say it is. */
typedef enum { FORMAT_PNG, FORMAT_JPEG, FORMAT_OTHER } Format;

static Format
sniff (const uint8_t *data, size_t len)
{
  static const uint8_t png[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  if (len >= 8 && memcmp (data, png, 8) == 0)
    return FORMAT_PNG;
  if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
    return FORMAT_JPEG;
  return FORMAT_OTHER;
}

/* Reads @path as a PNG (text chunks into @text when not NULL) or, when
 * @any_format, as whatever sniff() finds. */
static gboolean
read_file (const char *path, gboolean any_format, TfImage *image, GHashTable *text,
           GError **error)
{
  g_autofree char *shown = g_filename_display_name (path);
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int err = errno;
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not read: %s", shown,
                   g_strerror (err));
      return FALSE;
    }
  GStatBuf st;
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not read: not a regular file",
                   shown);
      return FALSE;
    }
  g_autoptr (GError) map_error = NULL;
  g_autoptr (GMappedFile) file = g_mapped_file_new_from_fd (fd, FALSE, &map_error);
  close (fd);
  if (file == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not read: %s", shown,
                   map_error->message);
      return FALSE;
    }
  const uint8_t *data = (const uint8_t *) g_mapped_file_get_contents (file);
  size_t len = g_mapped_file_get_length (file);
  if (any_format)
    return tf_image_read_bytes (data, len, shown, image, error);
  return read_png (data, len, shown, image, text, error);
}

gboolean
tf_image_read_bytes (const void *data, size_t len, const char *display_name, TfImage *image,
                     GError **error)
{
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (image != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  const char *shown = display_name != NULL ? display_name : "image data";
  memset (image, 0, sizeof *image);
  switch (sniff (data, len))
    {
    case FORMAT_PNG:
      return read_png (data, len, shown, image, NULL, error);
    case FORMAT_JPEG:
      return tf_image_read_jpeg_bytes (data, len, shown, image, error);
    default:
      if (len == 0)
        g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: the file is empty", shown);
      else
        g_set_error (error, TF_ERROR, TF_ERROR_UNSUPPORTED, "%s: not a PNG or JPEG file", shown);
      return FALSE;
    }
}

gboolean
tf_image_read (const char *path, TfImage *image, GError **error)
{
  g_return_val_if_fail (path != NULL && image != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (image, 0, sizeof *image);
  return read_file (path, TRUE, image, NULL, error);
}

gboolean
tf_image_read_png (const char *path, TfImage *image, GError **error)
{
  g_return_val_if_fail (path != NULL && image != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  memset (image, 0, sizeof *image);
  return read_file (path, FALSE, image, NULL, error);
}

GHashTable *
tf_image_read_png_text (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  GHashTable *text = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!read_file (path, FALSE, NULL, text, error))
    {
      g_hash_table_unref (text);
      return NULL;
    }
  return text;
}

/* --- writing ------------------------------------------------------------- */

static void
writer_write (png_structp png, png_bytep data, size_t n)
{
  GByteArray *bytes = png_get_io_ptr (png);
  g_byte_array_append (bytes, data, (guint) n);
}

static void
writer_flush (png_structp png)
{
}

/* A PNG keyword: 1–79 printable Latin-1 characters, no leading, trailing or
 * double spaces. We accept the ASCII subset. */
static gboolean
valid_png_key (const char *key)
{
  size_t len = strlen (key);
  if (len == 0 || len > 79 || key[0] == ' ' || key[len - 1] == ' ')
    return FALSE;
  for (size_t i = 0; i < len; i++)
    {
      if (key[i] < 32 || key[i] > 126)
        return FALSE;
      if (key[i] == ' ' && key[i + 1] == ' ')
        return FALSE;
    }
  return TRUE;
}

static gboolean
encode_png (const uint8_t *pixels, int width, int height, int channels,
            const char *const *keys, const char *const *values, int n_text,
            GByteArray *bytes, const char *name, GError **error)
{
  PngMessage message = { "" };
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, &message, keep_png_error,
                                             ignore_png_warning);
  if (png == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: out of memory", name);
      return FALSE;
    }
  png_infop info = png_create_info_struct (png);
  if (info == NULL)
    {
      png_destroy_write_struct (&png, NULL);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: out of memory", name);
      return FALSE;
    }
  png_textp volatile chunks = NULL;
  png_bytep *volatile rows = NULL;
  if (setjmp (png_jmpbuf (png)))
    {
      g_free (chunks);
      g_free (rows);
      png_destroy_write_struct (&png, &info);
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not encode PNG: %s", name,
                   message.text);
      return FALSE;
    }

  png_set_write_fn (png, bytes, writer_write, writer_flush);
  int color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY
                 : channels == 3 ? PNG_COLOR_TYPE_RGB
                                 : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR (png, info, (png_uint_32) width, (png_uint_32) height, 8, color_type,
                PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (n_text > 0)
    {
      chunks = g_new0 (png_text, n_text);
      for (int i = 0; i < n_text; i++)
        {
          chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
          chunks[i].key = (char *) keys[i];
          chunks[i].text = (char *) values[i];
          chunks[i].itxt_length = strlen (values[i]);
          chunks[i].lang = (char *) "";
          chunks[i].lang_key = (char *) "";
        }
      png_set_text (png, info, chunks, n_text);
    }
  png_write_info (png, info);
  rows = g_new (png_bytep, height);
  for (int y = 0; y < height; y++)
    rows[y] = (png_bytep) pixels + (size_t) y * width * channels;
  png_write_image (png, rows);
  png_write_end (png, info);
  png_destroy_write_struct (&png, &info);
  g_free (rows);
  g_free (chunks);
  return TRUE;
}

gboolean
tf_image_write_png (const char *path, const uint8_t *rgb, int width, int height, int channels,
                    const char *const *keys, const char *const *values, GError **error)
{
  g_return_val_if_fail (path != NULL && rgb != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_autofree char *shown = g_filename_display_name (path);

  if (width <= 0 || height <= 0 || (uint64_t) width * (uint64_t) height > TF_IMAGE_MAX_PIXELS)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s: cannot write an image of %d×%d pixels", shown, width, height);
      return FALSE;
    }
  if (channels != 1 && channels != 3 && channels != 4)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s: cannot write %d channels (expected 1, 3 or 4)", shown, channels);
      return FALSE;
    }
  int n_text = 0;
  if (keys != NULL)
    {
      g_return_val_if_fail (values != NULL, FALSE);
      for (; keys[n_text] != NULL; n_text++)
        {
          if (values[n_text] == NULL)
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "%s: text '%s' has no value",
                           shown, keys[n_text]);
              return FALSE;
            }
          if (!valid_png_key (keys[n_text]))
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           "%s: '%s' is not a valid PNG text key (1–79 printable ASCII "
                           "characters, no leading, trailing or double spaces)",
                           shown, keys[n_text]);
              return FALSE;
            }
          if (!g_utf8_validate (values[n_text], -1, NULL))
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           "%s: text '%s' is not valid UTF-8", shown, keys[n_text]);
              return FALSE;
            }
        }
    }

  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  if (!encode_png (rgb, width, height, channels, keys, values, n_text, bytes, shown, error))
    return FALSE;

  g_autoptr (TfAtomicFile) file = tf_atomic_file_new (path, error);
  if (file == NULL || !tf_atomic_file_write (file, bytes->data, bytes->len, error))
    return FALSE;
  return tf_atomic_file_commit (g_steal_pointer (&file), error);
}

/* --- model pixels ------------------------------------------------------- */

/* Resampling only ever shrinks (out ≤ in: a smaller picture keeps its size)
 * and is separable and streams the rows, so that memory stays small whatever
 * the input's shape (a 1×64M-pixel image is legal): area averaging written
 * as a scatter, input pixel i covering [i·out/in, (i+1)·out/in) in output
 * coordinates, at most two output pixels, each weighted by the length it
 * covers. At out = in the weights are exactly 1 and 0: a copy. */
static void
area_weights (int i, int in, int out, int *o, float *w0, float *w1)
{
  double lo = (double) i * out / in, hi = (double) (i + 1) * out / in;
  int first = MIN ((int) floor (lo), out - 1);
  double split = first + 1.0;
  *o = first;
  *w0 = (float) (MIN (hi, split) - lo);
  *w1 = first + 1 < out && hi > split ? (float) (hi - split) : 0.0f;
}

/* One input row, composited over white, resampled to @fw ≤ @w × RGB. */
static void
resample_row (const uint8_t *rgba, int w, int fw, float *out)
{
  memset (out, 0, sizeof (float) * fw * 3);
  for (int x = 0; x < w; x++)
    {
      const uint8_t *p = rgba + (size_t) x * 4;
      float a = p[3] / 255.0f, rgb[3];
      for (int c = 0; c < 3; c++)
        rgb[c] = p[c] / 255.0f * a + (1.0f - a);
      int o;
      float w0, w1;
      area_weights (x, w, fw, &o, &w0, &w1);
      for (int c = 0; c < 3; c++)
        {
          out[o * 3 + c] += w0 * rgb[c];
          if (w1 > 0.0f)
            out[(o + 1) * 3 + c] += w1 * rgb[c];
        }
    }
}

static int
compare_floats (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return (x > y) - (x < y);
}

/* Fits @image within @within × @within (at most @size), centred in
 * size × size: tf_image_to_model() with @within = @size. */
static void
fit_within (const TfImage *image, int size, int channels, int within, float *out)
{
  g_return_if_fail (image != NULL && image->rgba != NULL && image->width > 0
                    && image->height > 0);
  g_return_if_fail (size > 0 && (channels == 1 || channels == 3) && out != NULL);
  g_return_if_fail (within >= 1 && within <= size);
  int w = image->width, h = image->height;

  /* The fitted rectangle inside the square: larger images shrink to fit,
   * smaller ones keep their size (as training places a 28×28 Fashion-MNIST
   * image on 32×32), so that a picture is never blurred by stretching. */
  int long_side = MAX (w, h);
  int fw = w, fh = h;
  if (long_side > within)
    {
      fw = CLAMP ((int) lround ((double) w * within / long_side), 1, within);
      fh = CLAMP ((int) lround ((double) h * within / long_side), 1, within);
    }
  int ox = (size - fw) / 2, oy = (size - fh) / 2;

  float *fitted = g_new0 (float, (size_t) fw * fh * 3);
  float *row = g_new (float, (size_t) fw * 3);
  /* Each input row adds into at most two output rows. */
  for (int y = 0; y < h; y++)
    {
      resample_row (image->rgba + (size_t) y * w * 4, w, fw, row);
      int o;
      float w0, w1;
      area_weights (y, h, fh, &o, &w0, &w1);
      for (int i = 0; i < fw * 3; i++)
        {
          fitted[(size_t) o * fw * 3 + i] += w0 * row[i];
          if (w1 > 0.0f)
            fitted[(size_t) (o + 1) * fw * 3 + i] += w1 * row[i];
        }
    }
  g_free (row);

  /* Around it, the median colour of its outermost pixels: black around a
   * Fashion-MNIST garment even where it touches the edge (a model trained
   * on them reads a grey ring as part of the picture), white around an
   * icon, the sky around a photo. */
  const int n_edge = fh > 1 && fw > 1 ? 2 * fw + 2 * (fh - 2) : fw * fh;
  float *edge = g_new (float, (size_t) n_edge);
  float fill[3];
  for (int c = 0; c < 3; c++)
    {
      int k = 0;
      for (int y = 0; y < fh; y++)
        for (int x = 0; x < fw; x++)
          if (y == 0 || y == fh - 1 || x == 0 || x == fw - 1)
            edge[k++] = fitted[((size_t) y * fw + x) * 3 + c];
      qsort (edge, (size_t) k, sizeof (float), compare_floats);
      fill[c] = k % 2 ? edge[k / 2] : 0.5f * (edge[k / 2 - 1] + edge[k / 2]);
    }
  g_free (edge);
  for (size_t i = 0; i < (size_t) size * size; i++)
    {
      float *dst = out + i * channels;
      if (channels == 1)
        dst[0] = CLAMP (2.0f * (0.299f * fill[0] + 0.587f * fill[1] + 0.114f * fill[2]) - 1.0f,
                        -1.0f, 1.0f);
      else
        for (int c = 0; c < 3; c++)
          dst[c] = CLAMP (2.0f * fill[c] - 1.0f, -1.0f, 1.0f);
    }
  for (int y = 0; y < fh; y++)
    for (int x = 0; x < fw; x++)
      {
        const float *rgb = fitted + ((size_t) y * fw + x) * 3;
        float *dst = out + ((size_t) (oy + y) * size + (ox + x)) * channels;
        /* Rounding in the sums may step a hair outside [-1, 1]. */
        if (channels == 1)
          dst[0] = CLAMP (2.0f * (0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2]) - 1.0f,
                          -1.0f, 1.0f);
        else
          for (int c = 0; c < 3; c++)
            dst[c] = CLAMP (2.0f * rgb[c] - 1.0f, -1.0f, 1.0f);
      }
  g_free (fitted);
}

void
tf_image_to_model (const TfImage *image, int size, int channels, float *out)
{
  fit_within (image, size, channels, size, out);
}

/* Whether @image is a grey picture on black cut to its subject, as
 * Fashion-MNIST's are: every pixel, over white as the fitting composites
 * it, has its red, green and blue within 2/255 of each other; most of the
 * outermost pixels are dark (black shapes on white are not one); and it is
 * not framed as the model's own pictures are (below). */
static gboolean
is_grey_cut_to_subject (const TfImage *image)
{
  const int w = image->width, h = image->height;
  int edge = 0, dark = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x += (y == 0 || y == h - 1 || x == w - 1) ? 1 : MAX (w - 1, 1))
      {
        const uint8_t *p = image->rgba + ((size_t) y * w + x) * 4;
        /* over white; grey, so red stands for all three */
        const double v = p[0] * (p[3] / 255.0) + 255 * (1 - p[3] / 255.0);
        edge++;
        dark += v < 128;
      }
  if (2 * dark <= edge)
    return FALSE;
  const size_t n = (size_t) image->width * image->height;
  for (size_t i = 0; i < n; i++)
    {
      const uint8_t *p = image->rgba + i * 4;
      const double a = p[3] / 255.0;
      double lo = 255, hi = 0;
      for (int c = 0; c < 3; c++)
        {
          const double v = p[c] * a + 255 * (1 - a);
          lo = MIN (lo, v);
          hi = MAX (hi, v);
        }
      if (hi - lo > 2)
        return FALSE;
    }
  /* A picture already framed as the model's own are, with a dark margin of
   * 2 in 32 all around (say the model's drawing, saved 8 times larger),
   * fills the image: only one cut to its garment, as Fashion-MNIST's 28 × 28
   * are, is framed anew. The margin: rows and columns from each side
   * with nothing brighter than a quarter grey. */
  int top = h, bottom = -1, left = w, right = -1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        const uint8_t *p = image->rgba + ((size_t) y * w + x) * 4;
        if (p[0] * (p[3] / 255.0) + 255 * (1 - p[3] / 255.0) >= 64)
          {
            top = MIN (top, y);
            bottom = MAX (bottom, y);
            left = MIN (left, x);
            right = MAX (right, x);
          }
      }
  const int margin = bottom < 0 ? MIN (w, h)
                                 : MIN (MIN (top, h - 1 - bottom), MIN (left, w - 1 - right));
  /* margin / side < 1.5 / 32 */
  return 64 * margin < 3 * MAX (w, h);
}

void
tf_image_to_model_picture (const TfImage *image, int size, int channels, int grey_side,
                           float *out)
{
  g_return_if_fail (image != NULL && image->rgba != NULL);
  const gboolean fits = grey_side >= 1 && grey_side < size &&
                        MAX (image->width, image->height) > grey_side &&
                        is_grey_cut_to_subject (image);
  fit_within (image, size, channels, fits ? grey_side : size, out);
}

void
tf_image_from_model (const float *pixels, int size, int channels, uint8_t *out)
{
  g_return_if_fail (pixels != NULL && out != NULL && size > 0 && channels > 0);
  size_t n = (size_t) size * size * channels;
  for (size_t i = 0; i < n; i++)
    {
      float v = (pixels[i] + 1.0f) * 127.5f;
      /* NaN fails both comparisons and lands on 0. */
      if (!(v > 0.0f))
        v = 0.0f;
      else if (v > 255.0f)
        v = 255.0f;
      out[i] = (uint8_t) lrintf (v);
    }
}
