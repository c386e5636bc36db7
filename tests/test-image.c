/* test-image.c: PNG reading (every colour type and bit depth, corrupt and
 * truncated files), atomic writing with text chunks, and the conversions to
 * and from model pixels. Every PNG is made here with libpng, in memory or
 * in a temporary directory that is removed afterwards. */
#include "tf-image.h"
#include "tf-config.h"
#include "tf-train.h"
#include "tf-test-util.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>

/* --- helpers ------------------------------------------------------------ */

static uint32_t
crc32_png (const uint8_t *data, size_t len)
{
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < len; i++)
    {
      crc ^= data[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
  return crc ^ 0xffffffffu;
}

static uint32_t
get_be32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void
put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

/* Offset of the first chunk of @type (its length field), or -1. */
static long
find_chunk (const uint8_t *data, size_t len, const char *type)
{
  size_t pos = 8;
  while (pos + 12 <= len)
    {
      uint32_t chunk_len = get_be32 (data + pos);
      if (memcmp (data + pos + 4, type, 4) == 0)
        return (long) pos;
      if (chunk_len > len - pos - 12)
        return -1;
      pos += 12 + chunk_len;
    }
  return -1;
}

/* Recomputes the CRC of the chunk at @pos after an edit. */
static void
fix_crc (uint8_t *data, size_t len, size_t pos)
{
  uint32_t chunk_len = get_be32 (data + pos);
  g_assert_cmpuint (pos + 12 + chunk_len, <=, len);
  put_be32 (data + pos + 8 + chunk_len, crc32_png (data + pos + 4, 4 + chunk_len));
}

/* Recomputes every chunk's CRC that lies wholly inside the data. */
static void
fix_all_crcs (uint8_t *data, size_t len)
{
  size_t pos = 8;
  while (pos + 12 <= len)
    {
      uint32_t chunk_len = get_be32 (data + pos);
      if (chunk_len > len - pos - 12)
        return;
      fix_crc (data, len, pos);
      pos += 12 + chunk_len;
    }
}

/* A test image: samples of @channels per pixel at @depth bits (0 … 2^depth − 1),
 * plus what tf_image_read_png should give for them. */
typedef struct {
  int        color_type;
  int        depth;
  gboolean   interlace;
  gboolean   trns;
  const char *name;
} Format;

typedef struct {
  int        width;
  int        height;
  int        channels;       /* samples per pixel in the file */
  uint16_t  *samples;
  png_color  palette[256];
  uint8_t    palette_alpha[256];
  int        n_palette;
  int        n_trans;
  png_color_16 trans_color;
  uint8_t   *expected;       /* RGBA */
} TestImage;

static void
test_image_clear (TestImage *t)
{
  g_free (t->samples);
  g_free (t->expected);
}

static uint8_t
to8 (uint16_t v, int depth)
{
  if (depth == 16)
    return (uint8_t) lround (v / 257.0);
  return (uint8_t) (v * 255 / ((1 << depth) - 1));
}

static void
make_test_image (const Format *f, int width, int height, uint32_t seed, TestImage *t)
{
  memset (t, 0, sizeof *t);
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  t->width = width;
  t->height = height;
  switch (f->color_type)
    {
    case PNG_COLOR_TYPE_GRAY: t->channels = 1; break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: t->channels = 2; break;
    case PNG_COLOR_TYPE_RGB: t->channels = 3; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: t->channels = 4; break;
    case PNG_COLOR_TYPE_PALETTE: t->channels = 1; break;
    default: g_assert_not_reached ();
    }
  int max = (1 << f->depth) - 1;
  size_t n = (size_t) width * height * t->channels;
  t->samples = g_new (uint16_t, n);
  for (size_t i = 0; i < n; i++)
    t->samples[i] = (uint16_t) g_rand_int_range (rand, 0, max + 1);
  if (f->color_type == PNG_COLOR_TYPE_PALETTE)
    {
      t->n_palette = max + 1;
      for (int i = 0; i < t->n_palette; i++)
        {
          t->palette[i].red = (uint8_t) g_rand_int_range (rand, 0, 256);
          t->palette[i].green = (uint8_t) g_rand_int_range (rand, 0, 256);
          t->palette[i].blue = (uint8_t) g_rand_int_range (rand, 0, 256);
          t->palette_alpha[i] = 255;
        }
      if (f->trns)
        {
          /* tRNS covers the first entries only; the rest are opaque. */
          t->n_trans = MAX (1, t->n_palette / 2);
          for (int i = 0; i < t->n_trans; i++)
            t->palette_alpha[i] = (uint8_t) g_rand_int_range (rand, 0, 256);
        }
    }
  else if (f->trns)
    {
      /* The colour of the first pixel is transparent. */
      t->trans_color.gray = t->samples[0];
      t->trans_color.red = t->samples[0];
      if (t->channels >= 3)
        {
          t->trans_color.green = t->samples[1];
          t->trans_color.blue = t->samples[2];
        }
    }

  t->expected = g_new (uint8_t, (size_t) width * height * 4);
  for (size_t p = 0; p < (size_t) width * height; p++)
    {
      const uint16_t *s = t->samples + p * t->channels;
      uint8_t *e = t->expected + p * 4;
      switch (f->color_type)
        {
        case PNG_COLOR_TYPE_PALETTE:
          e[0] = t->palette[s[0]].red;
          e[1] = t->palette[s[0]].green;
          e[2] = t->palette[s[0]].blue;
          e[3] = t->palette_alpha[s[0]];
          break;
        case PNG_COLOR_TYPE_GRAY:
        case PNG_COLOR_TYPE_GRAY_ALPHA:
          e[0] = e[1] = e[2] = to8 (s[0], f->depth);
          e[3] = t->channels == 2 ? to8 (s[1], f->depth)
               : (f->trns && s[0] == t->trans_color.gray) ? 0 : 255;
          break;
        default:
          for (int c = 0; c < 3; c++)
            e[c] = to8 (s[c], f->depth);
          e[3] = t->channels == 4 ? to8 (s[3], f->depth)
               : (f->trns && s[0] == t->trans_color.red && s[1] == t->trans_color.green
                  && s[2] == t->trans_color.blue) ? 0 : 255;
          break;
        }
    }
}

static void
append_bytes (png_structp png, png_bytep data, size_t n)
{
  g_byte_array_append (png_get_io_ptr (png), data, (guint) n);
}

static void
flush_nothing (png_structp png)
{
}

/* Encodes @t with libpng, packing samples at @f->depth bits. @text (may be
 * NULL) is written as tEXt after the image data. */
static GByteArray *
encode_test_image (const Format *f, const TestImage *t, const char *text_key,
                   const char *text_latin1)
{
  GByteArray *bytes = g_byte_array_new ();
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  g_assert_nonnull (png);
  g_assert_nonnull (info);
  size_t rowbytes = ((size_t) t->width * t->channels * f->depth + 7) / 8;
  uint8_t *packed = g_new0 (uint8_t, rowbytes * t->height);
  png_bytep *rows = g_new (png_bytep, t->height);
  for (int y = 0; y < t->height; y++)
    {
      uint8_t *row = packed + rowbytes * y;
      rows[y] = row;
      for (int i = 0; i < t->width * t->channels; i++)
        {
          uint16_t v = t->samples[(size_t) y * t->width * t->channels + i];
          if (f->depth == 16)
            {
              row[2 * i] = (uint8_t) (v >> 8);
              row[2 * i + 1] = (uint8_t) v;
            }
          else if (f->depth == 8)
            row[i] = (uint8_t) v;
          else
            {
              int bit = i * f->depth;
              row[bit / 8] |= (uint8_t) (v << (8 - f->depth - bit % 8));
            }
        }
    }
  if (setjmp (png_jmpbuf (png)))
    g_assert_not_reached ();
  png_set_write_fn (png, bytes, append_bytes, flush_nothing);
  png_set_IHDR (png, info, t->width, t->height, f->depth, f->color_type,
                f->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (f->color_type == PNG_COLOR_TYPE_PALETTE)
    {
      png_set_PLTE (png, info, t->palette, t->n_palette);
      if (t->n_trans > 0)
        png_set_tRNS (png, info, t->palette_alpha, t->n_trans, NULL);
    }
  else if (f->trns)
    {
      png_color_16 trans = t->trans_color;
      png_set_tRNS (png, info, NULL, 0, &trans);
    }
  png_write_info (png, info);
  png_write_image (png, rows);
  if (text_key != NULL)
    {
      png_text chunk = { .compression = PNG_TEXT_COMPRESSION_NONE,
                         .key = (char *) text_key, .text = (char *) text_latin1,
                         .text_length = strlen (text_latin1) };
      png_set_text (png, info, &chunk, 1);
    }
  png_write_end (png, info);
  png_destroy_write_struct (&png, &info);
  g_free (rows);
  g_free (packed);
  return bytes;
}

static GByteArray *
encode_simple (int color_type, int depth, int width, int height, gboolean interlace,
               uint32_t seed)
{
  Format f = { color_type, depth, interlace, FALSE, "simple" };
  TestImage t;
  make_test_image (&f, width, height, seed, &t);
  GByteArray *bytes = encode_test_image (&f, &t, NULL, NULL);
  test_image_clear (&t);
  return bytes;
}

/* --- decoding ------------------------------------------------------------ */

static const Format formats[] = {
  { PNG_COLOR_TYPE_GRAY, 1, FALSE, FALSE, "grey 1-bit" },
  { PNG_COLOR_TYPE_GRAY, 2, FALSE, FALSE, "grey 2-bit" },
  { PNG_COLOR_TYPE_GRAY, 4, FALSE, FALSE, "grey 4-bit" },
  { PNG_COLOR_TYPE_GRAY, 8, FALSE, FALSE, "grey 8-bit" },
  { PNG_COLOR_TYPE_GRAY, 16, FALSE, FALSE, "grey 16-bit" },
  { PNG_COLOR_TYPE_GRAY, 4, FALSE, TRUE, "grey 4-bit with tRNS" },
  { PNG_COLOR_TYPE_GRAY, 8, FALSE, TRUE, "grey 8-bit with tRNS" },
  { PNG_COLOR_TYPE_GRAY, 16, TRUE, TRUE, "grey 16-bit with tRNS, interlaced" },
  { PNG_COLOR_TYPE_GRAY_ALPHA, 8, FALSE, FALSE, "grey+alpha 8-bit" },
  { PNG_COLOR_TYPE_GRAY_ALPHA, 16, FALSE, FALSE, "grey+alpha 16-bit" },
  { PNG_COLOR_TYPE_RGB, 8, FALSE, FALSE, "RGB 8-bit" },
  { PNG_COLOR_TYPE_RGB, 16, FALSE, FALSE, "RGB 16-bit" },
  { PNG_COLOR_TYPE_RGB, 8, FALSE, TRUE, "RGB 8-bit with tRNS" },
  { PNG_COLOR_TYPE_RGB, 16, FALSE, TRUE, "RGB 16-bit with tRNS" },
  { PNG_COLOR_TYPE_RGB_ALPHA, 8, FALSE, FALSE, "RGBA 8-bit" },
  { PNG_COLOR_TYPE_RGB_ALPHA, 16, FALSE, FALSE, "RGBA 16-bit" },
  { PNG_COLOR_TYPE_PALETTE, 1, FALSE, FALSE, "palette 1-bit" },
  { PNG_COLOR_TYPE_PALETTE, 2, FALSE, TRUE, "palette 2-bit with tRNS" },
  { PNG_COLOR_TYPE_PALETTE, 4, FALSE, TRUE, "palette 4-bit with tRNS" },
  { PNG_COLOR_TYPE_PALETTE, 8, FALSE, TRUE, "palette 8-bit with tRNS" },
  { PNG_COLOR_TYPE_PALETTE, 8, TRUE, TRUE, "palette 8-bit with tRNS, interlaced" },
  { PNG_COLOR_TYPE_RGB, 8, TRUE, FALSE, "RGB 8-bit, interlaced" },
  { PNG_COLOR_TYPE_RGB_ALPHA, 16, TRUE, FALSE, "RGBA 16-bit, interlaced" },
  { PNG_COLOR_TYPE_GRAY, 1, TRUE, FALSE, "grey 1-bit, interlaced" },
};

static void
test_decode_formats (void)
{
  /* Odd sizes exercise sub-byte packing and the Adam7 passes' edges. */
  static const int sizes[][2] = { { 13, 7 }, { 1, 1 }, { 9, 17 } };
  for (size_t i = 0; i < G_N_ELEMENTS (formats); i++)
    for (size_t s = 0; s < G_N_ELEMENTS (sizes); s++)
      {
        const Format *f = &formats[i];
        TestImage t;
        make_test_image (f, sizes[s][0], sizes[s][1], (uint32_t) (i * 31 + s), &t);
        g_autoptr (GByteArray) bytes = encode_test_image (f, &t, NULL, NULL);

        TfImage image;
        g_autoptr (GError) error = NULL;
        gboolean ok = tf_image_read_png_bytes (bytes->data, bytes->len, f->name, &image, &error);
        g_assert_no_error (error);
        g_assert_true (ok);
        g_assert_cmpint (image.width, ==, t.width);
        g_assert_cmpint (image.height, ==, t.height);
        /* 16-bit samples are scaled with rounding: allow one step. */
        int tolerance = f->depth == 16 ? 1 : 0;
        for (size_t p = 0; p < (size_t) t.width * t.height * 4; p++)
          if (abs ((int) image.rgba[p] - (int) t.expected[p]) > tolerance)
            g_error ("%s %dx%d: byte %zu (pixel %zu, channel %zu) is %d, expected %d", f->name,
                     t.width, t.height, p, p / 4, p % 4, image.rgba[p], t.expected[p]);
        tf_image_clear (&image);
        g_assert_null (image.rgba);
        test_image_clear (&t);
      }
}

static void
test_read_file (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-image-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "a.png", NULL);
  Format f = { PNG_COLOR_TYPE_RGB_ALPHA, 8, FALSE, FALSE, "file" };
  TestImage t;
  make_test_image (&f, 20, 10, 7, &t);
  g_autoptr (GByteArray) bytes = encode_test_image (&f, &t, NULL, NULL);
  tf_test_write_file (NULL, path, bytes->data, bytes->len);

  TfImage image;
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_image_read_png (path, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, 20);
  g_assert_cmpint (image.height, ==, 10);
  g_assert_cmpmem (image.rgba, 20 * 10 * 4, t.expected, 20 * 10 * 4);
  tf_image_clear (&image);
  test_image_clear (&t);

  /* Missing file, a directory: I/O errors naming the path. */
  g_autofree char *missing = g_build_filename (dir, "missing.png", NULL);
  g_assert_false (tf_image_read_png (missing, &image, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, missing));
  g_assert_nonnull (strstr (error->message, "No such file"));
  g_assert_null (image.rgba);
  g_clear_error (&error);
  g_assert_false (tf_image_read_png (dir, &image, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, dir));
  g_clear_error (&error);
  g_assert_null (tf_image_read_png_text (missing, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);

  tf_test_remove_tree (dir);
}

/* --- corrupt files ---------------------------------------------------- */

typedef struct {
  const char *what;
  GByteArray *bytes;
  const char *expected;    /* in the message, after "NAME: " */
} Corrupt;

static GByteArray *
copy_bytes (const GByteArray *from, size_t len)
{
  GByteArray *to = g_byte_array_sized_new ((guint) len);
  g_byte_array_append (to, from->data, (guint) MIN (len, from->len));
  return to;
}

static void
expect_corrupt (const char *what, const GByteArray *bytes, const char *expected)
{
  TfImage image = { 1, 1, (uint8_t *) "x" };
  g_autoptr (GError) error = NULL;
  gboolean ok = tf_image_read_png_bytes (bytes->data != NULL ? bytes->data : (const uint8_t *) "",
                                         bytes->len, "bad.png", &image, &error);
  if (ok)
    g_error ("%s: decoded", what);
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_assert_null (image.rgba);
  if (!g_str_has_prefix (error->message, "bad.png: ")
      || strstr (error->message, expected) == NULL)
    g_error ("%s: message '%s', expected 'bad.png: …%s…'", what, error->message, expected);
  g_test_message ("%s: %s", what, error->message);
}

static void
test_corrupt (void)
{
  g_autoptr (GByteArray) good = encode_simple (PNG_COLOR_TYPE_RGB, 8, 16, 16, FALSE, 1);
  g_autoptr (GByteArray) palette = encode_simple (PNG_COLOR_TYPE_PALETTE, 8, 16, 16, FALSE, 2);
  long idat = find_chunk (good->data, good->len, "IDAT");
  long iend = find_chunk (good->data, good->len, "IEND");
  g_assert_cmpint (idat, >, 0);
  g_assert_cmpint (iend, >, idat);
  uint32_t idat_len = get_be32 (good->data + idat);
  g_assert_cmpuint (idat_len, >, 20);

  GByteArray *b;

  b = g_byte_array_new ();
  expect_corrupt ("empty", b, "not a PNG file");
  g_byte_array_unref (b);

  b = copy_bytes (good, 5);
  expect_corrupt ("shorter than the signature", b, "not a PNG file");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  b->data[1] = 'Q';
  expect_corrupt ("bad signature", b, "not a PNG file");
  g_byte_array_unref (b);

  b = g_byte_array_new ();
  g_byte_array_append (b, (const uint8_t *) "hello, this is text\n", 20);
  expect_corrupt ("a text file", b, "not a PNG file");
  g_byte_array_unref (b);

  b = copy_bytes (good, 8 + 8 + 6);
  expect_corrupt ("truncated IHDR", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  b->data[8 + 8 + 13] ^= 0x55;     /* IHDR's CRC */
  expect_corrupt ("bad IHDR CRC", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  b->data[idat + 8 + idat_len] ^= 0x55;   /* the CRC itself */
  expect_corrupt ("bad IDAT CRC", b, "corrupt PNG: IDAT: CRC error");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  b->data[idat + 8 + 3] ^= 0x55;   /* data, CRC left stale */
  expect_corrupt ("damaged IDAT data", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, (size_t) idat + 8 + idat_len / 2);
  expect_corrupt ("truncated IDAT", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, (size_t) iend);
  expect_corrupt ("no IEND", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  /* A tiny file that claims 100000×100000: refused from IHDR, before any
   * allocation (40 GB would not go unnoticed under ASan). */
  b = copy_bytes (good, (size_t) idat);
  put_be32 (b->data + 16, 100000);
  put_be32 (b->data + 20, 100000);
  fix_crc (b->data, b->len, 8);
  expect_corrupt ("huge dimensions", b, "is 100000×100000 pixels, more than the limit");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  put_be32 (b->data + 16, 0x7fffffffu);
  put_be32 (b->data + 20, 1);
  fix_crc (b->data, b->len, 8);
  expect_corrupt ("huge width", b, "more than the limit");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  put_be32 (b->data + 16, 0);
  fix_crc (b->data, b->len, 8);
  expect_corrupt ("zero width", b, "corrupt PNG: the image is 0×16 pixels");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  put_be32 (b->data + 20, 0);
  fix_crc (b->data, b->len, 8);
  expect_corrupt ("zero height", b, "corrupt PNG: the image is 16×0 pixels");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  b->data[24] = 3;                 /* bit depth 3 */
  fix_crc (b->data, b->len, 8);
  expect_corrupt ("bad bit depth", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  b->data[25] = 5;                 /* colour type 5 */
  fix_crc (b->data, b->len, 8);
  expect_corrupt ("bad colour type", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  for (uint32_t i = 0; i < idat_len; i++)
    b->data[idat + 8 + i] = (uint8_t) (i * 37 + 11);
  fix_crc (b->data, b->len, (size_t) idat);
  expect_corrupt ("garbage compressed data", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  b = copy_bytes (good, good->len);
  put_be32 (b->data + idat, 0xfffffff0u);
  expect_corrupt ("huge chunk length", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  /* A text chunk that claims 1.9 GB in a file of a few hundred bytes:
   * refused from its length, before libpng allocates that much (found by
   * tests/fuzz/fuzz-png; its input is corpus/png/regression-text-chunk-length.png). */
  b = copy_bytes (good, (size_t) idat);
  static const uint8_t text_header[] = { 0x71, 0x00, 0x00, 0x0c, 't', 'E', 'X', 't' };
  g_byte_array_append (b, text_header, sizeof text_header);
  g_byte_array_append (b, (const uint8_t *) "caption\0cafe", 12);
  g_byte_array_append (b, good->data + idat, good->len - (guint) idat);
  expect_corrupt ("huge text chunk", b, "claims 1895825420 bytes, more than the file holds");
  g_byte_array_unref (b);

  /* The IDAT chunk first, no IHDR. */
  b = g_byte_array_new ();
  g_byte_array_append (b, good->data, 8);
  g_byte_array_append (b, good->data + idat, good->len - (guint) idat);
  expect_corrupt ("no IHDR", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  /* A palette image without its PLTE. */
  long plte = find_chunk (palette->data, palette->len, "PLTE");
  g_assert_cmpint (plte, >, 0);
  uint32_t plte_len = get_be32 (palette->data + plte);
  b = copy_bytes (palette, (size_t) plte);
  g_byte_array_append (b, palette->data + plte + 12 + plte_len,
                       palette->len - (guint) (plte + 12 + plte_len));
  expect_corrupt ("no PLTE", b, "corrupt PNG: ");
  g_byte_array_unref (b);

  /* Too few rows of image data: the zlib stream ends early. */
  g_autoptr (GByteArray) small = encode_simple (PNG_COLOR_TYPE_RGB, 8, 16, 8, FALSE, 3);
  long small_idat = find_chunk (small->data, small->len, "IDAT");
  b = copy_bytes (good, (size_t) idat);
  g_byte_array_append (b, small->data + small_idat, small->len - (guint) small_idat);
  expect_corrupt ("too little image data", b, "corrupt PNG: ");
  g_byte_array_unref (b);
}

/* Random damage to valid files: each read either decodes or fails with a
 * format error; nothing crashes or leaks (ASan). Half the cases have their
 * CRCs repaired so that the damage reaches the decoder. */
static void
test_fuzz (void)
{
  GByteArray *seeds[] = {
    encode_simple (PNG_COLOR_TYPE_PALETTE, 4, 23, 11, TRUE, 5),
    encode_simple (PNG_COLOR_TYPE_RGB_ALPHA, 16, 9, 12, FALSE, 6),
    encode_simple (PNG_COLOR_TYPE_GRAY, 1, 33, 5, TRUE, 7),
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (12345);
  int decoded = 0, failed = 0;
  for (int round = 0; round < 3000; round++)
    {
      GByteArray *seed = seeds[round % G_N_ELEMENTS (seeds)];
      g_autoptr (GByteArray) b = copy_bytes (seed, seed->len);
      tf_test_mutate (rand, b, 8);   /* past the signature */
      if (round % 2 == 0)
        fix_all_crcs (b->data, b->len);
      if (tf_test_read_mutant (tf_image_read_png_bytes, b, "fuzz.png"))
        decoded++;
      else
        failed++;
    }
  for (size_t i = 0; i < G_N_ELEMENTS (seeds); i++)
    g_byte_array_unref (seeds[i]);
  g_test_message ("fuzz: %d decoded, %d refused", decoded, failed);
  g_assert_cmpint (failed, >, 0);
}

/* --- writing ------------------------------------------------------------ */

static void
test_write_read (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-image-XXXXXX");
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  for (int channels = 1; channels <= 4; channels++)
    {
      if (channels == 2)
        continue;
      int w = 37, h = 19;
      g_autofree uint8_t *pixels = g_new (uint8_t, (size_t) w * h * channels);
      for (int i = 0; i < w * h * channels; i++)
        pixels[i] = (uint8_t) g_rand_int_range (rand, 0, 256);
      g_autofree char *path = g_strdup_printf ("%s/c%d.png", dir, channels);
      g_autoptr (GError) error = NULL;
      g_assert_true (tf_image_write_png (path, pixels, w, h, channels, NULL, NULL, &error));
      g_assert_no_error (error);

      TfImage image;
      g_assert_true (tf_image_read_png (path, &image, &error));
      g_assert_no_error (error);
      g_assert_cmpint (image.width, ==, w);
      g_assert_cmpint (image.height, ==, h);
      for (int p = 0; p < w * h; p++)
        for (int c = 0; c < 4; c++)
          {
            int expected = c == 3 ? (channels == 4 ? pixels[p * 4 + 3] : 255)
                         : pixels[p * channels + (channels == 1 ? 0 : c)];
            g_assert_cmpint (image.rgba[p * 4 + c], ==, expected);
          }
      tf_image_clear (&image);
    }
  g_autofree char *listing = tf_test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "c1.png c3.png c4.png");

  /* Bad arguments: nothing is written. */
  uint8_t pixel[4] = { 0 };
  g_autofree char *path = g_build_filename (dir, "bad.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_image_write_png (path, pixel, 0, 1, 3, NULL, NULL, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (tf_image_write_png (path, pixel, 1, 1, 2, NULL, NULL, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (tf_image_write_png (path, pixel, 100000, 100000, 3, NULL, NULL, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  tf_test_remove_tree (dir);
}

static void
test_text (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-image-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "t.png", NULL);
  const char *parameters = "a café by the sea ☕, 日本語 🌊\n"
                           "Negative prompt: blurry\n"
                           "Steps: 50, Sampler: DDIM, CFG scale: 3, Seed: 42, Size: 32x32, "
                           "Model: tiny, Model hash: 0123abcd";
  const char *keys[] = { "parameters", "Software", NULL };
  const char *values[] = { parameters, "Transfusion", NULL };
  uint8_t pixels[4 * 4 * 3];
  for (size_t i = 0; i < sizeof pixels; i++)
    pixels[i] = (uint8_t) (i * 5);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_image_write_png (path, pixels, 4, 4, 3, keys, values, &error));
  g_assert_no_error (error);

  g_autoptr (GHashTable) text = tf_image_read_png_text (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (text);
  g_assert_cmpuint (g_hash_table_size (text), ==, 2);
  g_assert_cmpstr (g_hash_table_lookup (text, "parameters"), ==, parameters);
  g_assert_cmpstr (g_hash_table_lookup (text, "Software"), ==, "Transfusion");

  /* Our chunks are iTXt, as the A1111 convention has it for UTF-8. */
  g_autofree char *contents = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpint (find_chunk ((const uint8_t *) contents, len, "iTXt"), >, 0);
  g_assert_cmpint (find_chunk ((const uint8_t *) contents, len, "tEXt"), ==, -1);

  /* A Latin-1 tEXt chunk after the image data, in an interlaced file. */
  Format f = { PNG_COLOR_TYPE_PALETTE, 2, TRUE, TRUE, "text" };
  TestImage t;
  make_test_image (&f, 9, 9, 8, &t);
  g_autoptr (GByteArray) bytes = encode_test_image (&f, &t, "Author", "Jos\xe9 Mu\xf1oz");
  test_image_clear (&t);
  g_autofree char *latin = g_build_filename (dir, "latin.png", NULL);
  tf_test_write_file (NULL, latin, bytes->data, bytes->len);
  g_autoptr (GHashTable) latin_text = tf_image_read_png_text (latin, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_hash_table_lookup (latin_text, "Author"), ==, "José Muñoz");

  /* No text at all: an empty table. */
  g_autoptr (GByteArray) plain = encode_simple (PNG_COLOR_TYPE_GRAY, 8, 3, 3, FALSE, 1);
  g_autofree char *plain_path = g_build_filename (dir, "plain.png", NULL);
  tf_test_write_file (NULL, plain_path, plain->data, plain->len);
  g_autoptr (GHashTable) none = tf_image_read_png_text (plain_path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_hash_table_size (none), ==, 0);

  /* A corrupt file gives an error, not a partial table. */
  g_autofree char *bad = g_build_filename (dir, "bad.png", NULL);
  tf_test_write_file (NULL, bad, contents, len / 2);
  g_assert_null (tf_image_read_png_text (bad, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_clear_error (&error);

  /* Bad keys and values are refused before anything is written. */
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  char long_key[81];
  memset (long_key, 'k', 80);
  long_key[80] = '\0';
  const char *bad_keys[][2] = { { "", "x" }, { long_key, "x" }, { " lead", "x" },
                                { "caf\xc3\xa9", "x" }, { "ok", "\xff\xfe" },
                                { "two  spaces", "x" } };
  for (size_t i = 0; i < G_N_ELEMENTS (bad_keys); i++)
    {
      const char *k[] = { bad_keys[i][0], NULL };
      const char *v[] = { bad_keys[i][1], NULL };
      g_assert_false (tf_image_write_png (out, pixels, 4, 4, 3, k, v, &error));
      g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
      g_assert_true (g_str_has_prefix (error->message, out));
      g_clear_error (&error);
    }
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  tf_test_remove_tree (dir);
}

/* A 3×3 grey image, or 128×128 RGB noise: noise does not compress, so far
 * more than 4096 bytes. */
static gboolean
write_test_png (const char *path, gboolean big, GError **error)
{
  if (!big)
    {
      uint8_t pixels[3 * 3] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
      return tf_image_write_png (path, pixels, 3, 3, 1, NULL, NULL, error);
    }
  int w = 128, h = 128;
  g_autofree uint8_t *noise = g_new (uint8_t, (size_t) w * h * 3);
  g_autoptr (GRand) rand = g_rand_new_with_seed (9);
  for (int i = 0; i < w * h * 3; i++)
    noise[i] = (uint8_t) g_rand_int_range (rand, 0, 256);
  return tf_image_write_png (path, noise, w, h, 3, NULL, NULL, error);
}

static void
test_write_errors (void)
{
  tf_test_atomic_write_errors (write_test_png);
}

static void
test_write_short (void)
{
  tf_test_atomic_write_full_disk ("keep.png", write_test_png);
}

/* --- model pixels ------------------------------------------------------- */

static TfImage
solid_image (int w, int h, uint8_t r, uint8_t g, uint8_t b, uint8_t a)
{
  TfImage image = { w, h, g_new (uint8_t, (size_t) w * h * 4) };
  for (int i = 0; i < w * h; i++)
    {
      image.rgba[i * 4] = r;
      image.rgba[i * 4 + 1] = g;
      image.rgba[i * 4 + 2] = b;
      image.rgba[i * 4 + 3] = a;
    }
  return image;
}

static void
assert_near (float got, float expected, const char *what, int index)
{
  if (fabsf (got - expected) > 1e-5f)
    g_error ("%s [%d]: %g, expected %g", what, index, got, expected);
}

static void
test_to_model_fit (void)
{
  /* A wide image, red with a 2-pixel blue top and bottom: 32×16 into 16
   * gives 16×8 at rows 4–11, whose first and last rows are blue; around it
   * the median of its outermost pixels (32 blue and 12 red): blue. */
  TfImage wide = solid_image (32, 16, 255, 0, 0, 255);
  for (int y = 0; y < 16; y++)
    if (y < 2 || y >= 14)
      for (int x = 0; x < 32; x++)
        memcpy (wide.rgba + (y * 32 + x) * 4, (const uint8_t[]) { 0, 0, 255, 255 }, 4);
  float out[16 * 16 * 3];
  tf_image_to_model (&wide, 16, 3, out);
  for (int y = 0; y < 16; y++)
    for (int x = 0; x < 16; x++)
      {
        const float *p = out + (y * 16 + x) * 3;
        const int i = y * 16 + x;
        if (y == 4 || y == 11)
          {
            assert_near (p[0], -1.0f, "wide edge red", i);
            assert_near (p[2], 1.0f, "wide edge blue", i);
          }
        else if (y > 4 && y < 11)
          {
            assert_near (p[0], 1.0f, "wide red", i);
            assert_near (p[2], -1.0f, "wide blue", i);
          }
        else
          {
            assert_near (p[0], -1.0f, "fill red", i);
            assert_near (p[1], -1.0f, "fill green", i);
            assert_near (p[2], 1.0f, "fill blue", i);
          }
      }
  tf_image_clear (&wide);

  /* A 28×28 grey image on black (Fashion-MNIST's kind) keeps its size and
   * sits at 2..29 of 32 on black, as training places it; one on white, on white. */
  for (int ground = 0; ground <= 255; ground += 255)
    {
      TfImage small = solid_image (28, 28, (uint8_t) ground, (uint8_t) ground, (uint8_t) ground, 255);
      for (int y = 9; y < 19; y++)
        for (int x = 6; x < 20; x++)
          memset (small.rgba + (y * 28 + x) * 4, 128, 3);
      float placed[32 * 32];
      tf_image_to_model (&small, 32, 1, placed);
      const float g = 2.0f * ground / 255 - 1;
      for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
          {
            gboolean garment = y >= 2 + 9 && y < 2 + 19 && x >= 2 + 6 && x < 2 + 20;
            assert_near (placed[y * 32 + x], garment ? 2.0f * 128 / 255 - 1 : g, "28×28 placed",
                         y * 32 + x);
          }
      tf_image_clear (&small);
    }

  /* A tall black image: 10×40 into 8 gives 2×8 at columns 3–4, on black. */
  TfImage tall = solid_image (10, 40, 0, 0, 0, 255);
  float grey[8 * 8];
  tf_image_to_model (&tall, 8, 1, grey);
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 8; x++)
      assert_near (grey[y * 8 + x], -1.0f, "tall", y * 8 + x);
  tf_image_clear (&tall);

  /* Luminance, and compositing over white. */
  TfImage green = solid_image (4, 4, 0, 255, 0, 255);
  float lum[4 * 4];
  tf_image_to_model (&green, 4, 1, lum);
  assert_near (lum[5], 2.0f * 0.587f - 1.0f, "green luminance", 5);
  tf_image_clear (&green);

  TfImage clear = solid_image (4, 4, 0, 0, 0, 0);
  float rgb[4 * 4 * 3];
  tf_image_to_model (&clear, 4, 3, rgb);
  for (int i = 0; i < 4 * 4 * 3; i++)
    assert_near (rgb[i], 1.0f, "transparent", i);
  tf_image_clear (&clear);

  TfImage half = solid_image (4, 4, 0, 0, 0, 102);     /* 40% black over white */
  tf_image_to_model (&half, 4, 3, rgb);
  for (int i = 0; i < 4 * 4 * 3; i++)
    assert_near (rgb[i], 2.0f * (1.0f - 102.0f / 255.0f) - 1.0f, "40% black", i);
  tf_image_clear (&half);
}

/* @small (w × h) with every pixel a @k × @k block. */
static TfImage
blown_up (const TfImage *small, int k)
{
  TfImage big = { small->width * k, small->height * k,
                  g_new (uint8_t, (size_t) small->width * small->height * k * k * 4) };
  for (int y = 0; y < big.height; y++)
    for (int x = 0; x < big.width; x++)
      memcpy (big.rgba + ((size_t) y * big.width + x) * 4,
              small->rgba + ((size_t) (y / k) * small->width + x / k) * 4, 4);
  return big;
}

static void
assert_same_pixels (const float *a, const float *b, int n, const char *what)
{
  for (int i = 0; i < n; i++)
    assert_near (a[i], b[i], what, i);
}

/* A picture a person gives: a grey one on black, larger than 28 and cut to
 * its garment, fits within 28 × 28 of 32 as Fashion-MNIST's did in
 * training (four times a 28 × 28 garment reads exactly as the garment
 * itself); one framed as the model's own are (2 in 32 dark all around),
 * colour, grey on white, no grey side, or no larger than it: as
 * tf_image_to_model. */
static void
test_to_model_picture (void)
{
  TfImage garment = solid_image (28, 28, 0, 0, 0, 255);
  for (int y = 0; y < 28; y++)
    for (int x = 8; x < 20; x++)
      memset (garment.rgba + (y * 28 + x) * 4, (uint8_t) (100 + 5 * (x - 8)), 3);
  TfImage big = blown_up (&garment, 4);
  float want[32 * 32 * 3], got[32 * 32 * 3];
  tf_image_to_model (&garment, 32, 3, want);
  tf_image_to_model_picture (&big, 32, 3, 28, got);
  assert_same_pixels (got, want, 32 * 32 * 3, "112 × 112 grey on black, as the 28 × 28");
  /* without the rule it fills all 32: the garment reaches row 31 */
  tf_image_to_model (&big, 32, 3, want);
  g_assert_cmpfloat (got[(31 * 32 + 16) * 3], ==, -1.0f);
  g_assert_cmpfloat (want[(31 * 32 + 16) * 3], >, -0.5f);
  tf_image_to_model_picture (&big, 32, 3, 0, got);
  assert_same_pixels (got, want, 32 * 32 * 3, "no grey side");
  tf_image_to_model_picture (&garment, 32, 3, 28, got);
  tf_image_to_model (&garment, 32, 3, want);
  assert_same_pixels (got, want, 32 * 32 * 3, "28 × 28 itself");

  /* the model's own framing (the garment on 32 × 32, 2 dark all around),
   * eight times larger as the app saves it: the whole image */
  TfImage framed = solid_image (32, 32, 0, 0, 0, 255);
  for (int y = 2; y < 30; y++)
    memcpy (framed.rgba + (y * 32 + 2) * 4, garment.rgba + (y - 2) * 28 * 4, 28 * 4);
  TfImage saved = blown_up (&framed, 8);
  tf_image_to_model (&saved, 32, 3, want);
  tf_image_to_model_picture (&saved, 32, 3, 28, got);
  assert_same_pixels (got, want, 32 * 32 * 3, "framed as the model's own");
  tf_image_to_model (&framed, 32, 3, want);
  assert_same_pixels (got, want, 32 * 32 * 3, "framed, as at 32 × 32");
  tf_image_clear (&saved);
  tf_image_clear (&framed);

  /* one pixel of colour, or a white ground: the whole image */
  memset (big.rgba, 0, 4);
  big.rgba[0] = 200;
  big.rgba[3] = 255;
  tf_image_to_model (&big, 32, 3, want);
  tf_image_to_model_picture (&big, 32, 3, 28, got);
  assert_same_pixels (got, want, 32 * 32 * 3, "colour");
  for (int i = 0; i < big.width * big.height; i++)
    if (big.rgba[i * 4] == 0 || i == 0)
      memset (big.rgba + i * 4, 255, 3);
  tf_image_to_model (&big, 32, 3, want);
  tf_image_to_model_picture (&big, 32, 3, 28, got);
  assert_same_pixels (got, want, 32 * 32 * 3, "grey on white");
  tf_image_clear (&big);
  tf_image_clear (&garment);
}

/* The grey side comes from the run's sources: 28 for a model trained on
 * Fashion-MNIST at more than 28 pixels, else 0. */
static void
test_provenance_grey_side (void)
{
  const char *fashion = "{\"step\":5,\"options\":\"{\\\"data\\\":[\\\"shapes\\\",\\\"fashion\\\"]}\"}";
  const char *shapes = "{\"step\":5,\"options\":\"{\\\"data\\\":[\\\"shapes\\\"]}\"}";
  g_assert_cmpint (tf_provenance_grey_side (fashion, 32), ==, 28);
  g_assert_cmpint (tf_provenance_grey_side (fashion, 28), ==, 0);
  g_assert_cmpint (tf_provenance_grey_side (shapes, 32), ==, 0);
  g_assert_cmpint (tf_provenance_grey_side ("{\"options\": 5}", 32), ==, 0);
  g_assert_cmpint (tf_provenance_grey_side ("not json", 32), ==, 0);
  g_assert_cmpint (tf_provenance_grey_side (NULL, 32), ==, 0);
}

static void
test_to_model_resize (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (4);

  /* 2:1 is a plain 2×2 box average. */
  TfImage img = { 8, 8, g_new (uint8_t, 8 * 8 * 4) };
  for (int i = 0; i < 8 * 8 * 4; i++)
    img.rgba[i] = (i % 4 == 3) ? 255 : (uint8_t) g_rand_int_range (rand, 0, 256);
  float out[4 * 4 * 3];
  tf_image_to_model (&img, 4, 3, out);
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++)
      for (int c = 0; c < 3; c++)
        {
          float sum = 0;
          for (int dy = 0; dy < 2; dy++)
            for (int dx = 0; dx < 2; dx++)
              sum += img.rgba[((2 * y + dy) * 8 + 2 * x + dx) * 4 + c] / 255.0f;
          assert_near (out[(y * 4 + x) * 3 + c], 2.0f * sum / 4.0f - 1.0f, "box 2:1",
                       (y * 4 + x) * 3 + c);
        }
  tf_image_clear (&img);

  /* At a fractional ratio (100 → 32) area averaging keeps the mean and a
   * constant stays constant. */
  TfImage big = { 100, 100, g_new (uint8_t, 100 * 100 * 4) };
  double mean_in = 0;
  for (int i = 0; i < 100 * 100; i++)
    {
      uint8_t v = (uint8_t) g_rand_int_range (rand, 0, 256);
      memset (big.rgba + i * 4, v, 3);
      big.rgba[i * 4 + 3] = 255;
      mean_in += 2.0 * v / 255.0 - 1.0;
    }
  mean_in /= 100 * 100;
  float small[32 * 32];
  tf_image_to_model (&big, 32, 1, small);
  double mean_out = 0;
  for (int i = 0; i < 32 * 32; i++)
    mean_out += small[i];
  mean_out /= 32 * 32;
  g_assert_cmpfloat_with_epsilon (mean_out, mean_in, 1e-4);
  tf_image_clear (&big);

  TfImage flat = solid_image (97, 97, 200, 100, 50, 255);
  float flat_out[32 * 32 * 3];
  tf_image_to_model (&flat, 32, 3, flat_out);
  for (int i = 0; i < 32 * 32; i++)
    {
      assert_near (flat_out[i * 3], 2.0f * 200 / 255 - 1, "flat r", i);
      assert_near (flat_out[i * 3 + 1], 2.0f * 100 / 255 - 1, "flat g", i);
      assert_near (flat_out[i * 3 + 2], 2.0f * 50 / 255 - 1, "flat b", i);
    }
  tf_image_clear (&flat);

  /* Extreme shapes: a 1×4992 line, black with white ends, is one column of
   * 32 (its ends of 156 pixels become its first and last), and a 5000×3
   * black stripe one row; both on the median of their outermost pixels. */
  TfImage line = solid_image (1, 4992, 0, 0, 0, 255);
  for (int y = 0; y < 4992; y++)
    if (y < 156 || y >= 4992 - 156)
      memset (line.rgba + y * 4, 255, 3);
  float line_out[32 * 32];
  tf_image_to_model (&line, 32, 1, line_out);
  const float line_fill = -1.0f;   /* two white pixels of 32: the median is black */
  for (int y = 0; y < 32; y++)
    for (int x = 0; x < 32; x++)
      assert_near (line_out[y * 32 + x],
                   x != 15 ? line_fill : y == 0 || y == 31 ? 1.0f : -1.0f, "1×4992", y * 32 + x);
  tf_image_clear (&line);
  TfImage stripe = solid_image (5000, 3, 0, 0, 0, 255);
  tf_image_to_model (&stripe, 32, 1, line_out);
  for (int i = 0; i < 32 * 32; i++)
    assert_near (line_out[i], -1.0f, "5000×3", i);
  tf_image_clear (&stripe);

  /* Smaller than the model: not stretched. 2×1 sits at row 1, columns 1–2,
   * on the median (the mean) of its two pixels. */
  TfImage two = { 2, 1, g_new (uint8_t, 2 * 4) };
  uint8_t two_px[] = { 0, 0, 0, 255, 255, 255, 255, 255 };
  memcpy (two.rgba, two_px, sizeof two_px);
  float up[4 * 4];
  tf_image_to_model (&two, 4, 1, up);
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++)
      assert_near (up[y * 4 + x], y == 1 && x == 1 ? -1.0f : y == 1 && x == 2 ? 1.0f : 0.0f,
                   "kept", y * 4 + x);
  tf_image_clear (&two);
}

static void
test_model_round_trip (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (5);
  int size = 24;
  TfImage img = { size, size, g_new (uint8_t, (size_t) size * size * 4) };
  for (int i = 0; i < size * size * 4; i++)
    img.rgba[i] = (i % 4 == 3) ? 255 : (uint8_t) g_rand_int_range (rand, 0, 256);
  g_autofree float *model = g_new (float, size * size * 3);
  g_autofree uint8_t *back = g_new (uint8_t, size * size * 3);
  tf_image_to_model (&img, size, 3, model);
  for (int i = 0; i < size * size * 3; i++)
    g_assert_true (model[i] >= -1.0f && model[i] <= 1.0f);
  tf_image_from_model (model, size, 3, back);
  for (int p = 0; p < size * size; p++)
    for (int c = 0; c < 3; c++)
      g_assert_cmpint (back[p * 3 + c], ==, img.rgba[p * 4 + c]);
  tf_image_clear (&img);

  /* Clamping, rounding and NaN. */
  float odd[] = { -2.0f, -1.0f, 0.0f, 1.0f, 5.0f, NAN, INFINITY, -INFINITY, 2.0f / 255.0f - 1.0f };
  uint8_t want[] = { 0, 0, 128, 255, 255, 0, 255, 0, 1 };
  uint8_t got[G_N_ELEMENTS (odd)];
  tf_image_from_model (odd, 3, 1, got);
  g_assert_cmpmem (got, sizeof got, want, sizeof want);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/image/decode-formats", test_decode_formats);
  g_test_add_func ("/image/read-file", test_read_file);
  g_test_add_func ("/image/corrupt", test_corrupt);
  g_test_add_func ("/image/fuzz", test_fuzz);
  g_test_add_func ("/image/write-read", test_write_read);
  g_test_add_func ("/image/text", test_text);
  g_test_add_func ("/image/write-errors", test_write_errors);
  g_test_add_func ("/image/write-short", test_write_short);
  g_test_add_func ("/image/to-model-fit", test_to_model_fit);
  g_test_add_func ("/image/to-model-picture", test_to_model_picture);
  g_test_add_func ("/image/provenance-grey-side", test_provenance_grey_side);
  g_test_add_func ("/image/to-model-resize", test_to_model_resize);
  g_test_add_func ("/image/model-round-trip", test_model_round_trip);
  return g_test_run ();
}
