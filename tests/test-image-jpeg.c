/* test-image-jpeg.c: JPEG reading (RGB, grey, Adobe CMYK, the eight EXIF
 * orientations in both byte orders), corrupt, truncated and oversized files,
 * reading by content whatever the name, and a training folder of JPEGs.
 * Every JPEG is made here with libjpeg (tf_test_encode_jpeg). */
#include "tf-image.h"
#include "tf-image-private.h"
#include "tf-config.h"
#include "tf-data.h"
#include "tf-test-util.h"

#include <string.h>

/* A width × height RGB image in four flat quadrants: top left @a, top right
 * @b, bottom left @c, bottom right @d. */
static uint8_t *
quadrants (int width, int height, const uint8_t a[3], const uint8_t b[3], const uint8_t c[3],
           const uint8_t d[3])
{
  uint8_t *rgb = g_new (uint8_t, (size_t) width * height * 3);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        const uint8_t *v = y < height / 2 ? (x < width / 2 ? a : b) : (x < width / 2 ? c : d);
        memcpy (rgb + ((size_t) y * width + x) * 3, v, 3);
      }
  return rgb;
}

/* The mean colour of the 4 × 4 pixels around the centre of a quadrant of
 * @image (qx, qy ∈ {0, 1}), and whether it is @want within @tol. */
static gboolean
quadrant_is (const TfImage *image, int qx, int qy, const uint8_t want[3], int tol)
{
  const int cx = image->width / 4 + qx * image->width / 2;
  const int cy = image->height / 4 + qy * image->height / 2;
  for (int c = 0; c < 3; c++)
    {
      int sum = 0;
      for (int y = cy - 2; y < cy + 2; y++)
        for (int x = cx - 2; x < cx + 2; x++)
          sum += image->rgba[((size_t) y * image->width + x) * 4 + c];
      if (ABS (sum / 16 - want[c]) > tol)
        return FALSE;
    }
  return TRUE;
}

static const uint8_t red[3] = { 230, 20, 20 }, green[3] = { 20, 200, 40 },
                     blue[3] = { 30, 40, 220 }, white[3] = { 250, 250, 250 };

static void
test_rgb (void)
{
  /* A smooth gradient: quality 95 keeps every pixel close. */
  const int w = 40, h = 24;
  g_autofree uint8_t *rgb = g_new (uint8_t, w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        rgb[(y * w + x) * 3 + 0] = (uint8_t) (x * 6);
        rgb[(y * w + x) * 3 + 1] = (uint8_t) (y * 10);
        rgb[(y * w + x) * 3 + 2] = 128;
      }
  g_autoptr (GByteArray) jpeg = tf_test_encode_jpeg (rgb, w, h, 3, 95, 0, NULL);
  TfImage image;
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_image_read_bytes (jpeg->data, jpeg->len, "gradient.jpg", &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, w);
  g_assert_cmpint (image.height, ==, h);
  double err = 0;
  for (int i = 0; i < w * h; i++)
    {
      for (int c = 0; c < 3; c++)
        err += ABS (image.rgba[i * 4 + c] - rgb[i * 3 + c]);
      g_assert_cmpint (image.rgba[i * 4 + 3], ==, 255);
    }
  err /= w * h * 3;
  g_assert_cmpfloat (err, <, 3.0);
  tf_image_clear (&image);
}

static void
test_grey_and_cmyk (void)
{
  const int w = 16, h = 16;
  uint8_t grey[16 * 16];
  for (int i = 0; i < w * h; i++)
    grey[i] = (uint8_t) (i % w * 16);
  g_autoptr (GByteArray) jpeg = tf_test_encode_jpeg (grey, w, h, 1, 95, 0, NULL);
  TfImage image;
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_image_read_bytes (jpeg->data, jpeg->len, "grey.jpg", &image, &error));
  g_assert_no_error (error);
  for (int i = 0; i < w * h; i++)
    {
      g_assert_cmpint (image.rgba[i * 4], ==, image.rgba[i * 4 + 1]);
      g_assert_cmpint (image.rgba[i * 4], ==, image.rgba[i * 4 + 2]);
      g_assert_cmpint (ABS (image.rgba[i * 4] - grey[i]), <=, 6);
    }
  tf_image_clear (&image);

  /* CMYK as Adobe stores it (inverted): red is C 0, M 100%, Y 100%, K 0,
   * stored 255, 0, 0, 255; a 50% grey is K 50% alone. */
  uint8_t cmyk[16 * 16 * 4];
  for (int i = 0; i < w * h; i++)
    {
      const gboolean left = i % w < w / 2;
      const uint8_t v[4] = { 255, left ? 0 : 255, left ? 0 : 255, left ? 255 : 128 };
      memcpy (cmyk + i * 4, v, 4);
    }
  g_autoptr (GByteArray) c = tf_test_encode_jpeg (cmyk, w, h, 4, 95, 0, NULL);
  g_assert_true (tf_image_read_bytes (c->data, c->len, "cmyk.jpg", &image, &error));
  g_assert_no_error (error);
  const uint8_t want_red[3] = { 255, 0, 0 }, want_grey[3] = { 128, 128, 128 };
  g_assert_true (quadrant_is (&image, 0, 0, want_red, 8));
  g_assert_true (quadrant_is (&image, 1, 1, want_grey, 8));
  tf_image_clear (&image);
}

/* Each EXIF orientation, stored as the camera stored it, comes out upright:
 * where each stored quadrant (A B / C D) is seen. */
static void
test_orientation (void)
{
  const int w = 32, h = 16;
  g_autofree uint8_t *rgb = quadrants (w, h, red, green, blue, white);
  const uint8_t *A = red, *B = green, *C = blue, *D = white;
  const struct { int orientation; const uint8_t *tl, *tr, *bl, *br; } cases[] = {
    { 1, A, B, C, D },
    { 2, B, A, D, C },   /* mirrored */
    { 3, D, C, B, A },   /* turned half way */
    { 4, C, D, A, B },   /* mirrored upside down */
    { 5, A, C, B, D },   /* transposed */
    { 6, C, A, D, B },   /* to be turned clockwise */
    { 7, D, B, C, A },   /* transversed */
    { 8, B, D, A, C },   /* to be turned counter-clockwise */
  };
  for (int order = 0; order < 2; order++)
    for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autoptr (GByteArray) jpeg = tf_test_encode_jpeg (rgb, w, h, 3, 95,
                                                           cases[i].orientation,
                                                           order ? "MM" : "II");
        TfImage image;
        g_autoptr (GError) error = NULL;
        g_assert_true (tf_image_read_bytes (jpeg->data, jpeg->len, "photo.jpg", &image, &error));
        g_assert_no_error (error);
        const gboolean turned = cases[i].orientation >= 5;
        g_test_message ("orientation %d, %s", cases[i].orientation, order ? "MM" : "II");
        g_assert_cmpint (image.width, ==, turned ? h : w);
        g_assert_cmpint (image.height, ==, turned ? w : h);
        g_assert_true (quadrant_is (&image, 0, 0, cases[i].tl, 12));
        g_assert_true (quadrant_is (&image, 1, 0, cases[i].tr, 12));
        g_assert_true (quadrant_is (&image, 0, 1, cases[i].bl, 12));
        g_assert_true (quadrant_is (&image, 1, 1, cases[i].br, 12));
        tf_image_clear (&image);
      }
}

static void
expect_error (const void *data, size_t len, const char *why, const char *message_part)
{
  TfImage image = { 0 };
  g_autoptr (GError) error = NULL;
  g_test_message ("%s", why);
  g_assert_false (tf_image_read_bytes (data, len, "broken.jpg", &image, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_assert_true (g_str_has_prefix (error->message, "broken.jpg: "));
  g_assert_nonnull (strstr (error->message, message_part));
  g_assert_null (image.rgba);
}

/* Offset of the first SOF0 marker's height field, or -1. */
static long
sof_dimensions (const GByteArray *jpeg)
{
  for (guint i = 2; i + 9 < jpeg->len; i++)
    if (jpeg->data[i] == 0xff && jpeg->data[i + 1] == 0xc0)
      return (long) i + 5;
  return -1;
}

static void
test_corrupt (void)
{
  const int w = 24, h = 24;
  g_autofree uint8_t *rgb = quadrants (w, h, red, green, blue, white);
  g_autoptr (GByteArray) good = tf_test_encode_jpeg (rgb, w, h, 3, 90, 6, "II");

  expect_error (good->data, 3, "only the start of image", "not a readable JPEG image");
  expect_error (good->data, good->len / 2, "cut in half", "Premature end of JPEG file");
  expect_error (good->data, 0, "empty", "the file is empty");
  TfImage image = { 0 };
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_image_read_bytes ("GIF89a....", 10, "broken.gif", &image, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_UNSUPPORTED);
  g_assert_cmpstr (error->message, ==, "broken.gif: not a PNG or JPEG file");

  /* A frame of 16,383 × 16,383 pixels: refused before anything is allocated. */
  g_autoptr (GByteArray) huge = g_byte_array_sized_new (good->len);
  g_byte_array_append (huge, good->data, good->len);
  long sof = sof_dimensions (huge);
  g_assert_cmpint (sof, >, 0);
  const uint8_t side[4] = { 0x3f, 0xff, 0x3f, 0xff };
  memcpy (huge->data + sof, side, 4);
  expect_error (huge->data, huge->len, "16,383 squared",
                "image is 16383×16383 pixels, more than the limit of 67108864");

  /* A broken EXIF segment is no orientation, not an error. */
  static const uint8_t bad_exif[][14] = {
    { 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 0xff, 0xff, 0xff, 0x7f },   /* IFD far out */
    { 'E', 'x', 'i', 'f', 0, 0, 'X', 'X', 42, 0, 8, 0, 0, 0 },              /* no byte order */
    { 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 43, 0, 8, 0, 0, 0 },              /* not 42 */
  };
  for (size_t i = 0; i < G_N_ELEMENTS (bad_exif); i++)
    g_assert_cmpint (tf_image_exif_orientation (bad_exif[i], sizeof bad_exif[i]), ==, 1);

  /* Mutations of good files: an image or an error that names the file,
   * never a crash (ASan and UBSan builds run this too). */
  g_autoptr (GByteArray) grey = tf_test_encode_jpeg (rgb, w * 3, h / 2, 1, 50, 0, NULL);
  GByteArray *seeds[] = { good, grey };
  g_autoptr (GRand) rand = g_rand_new_with_seed (4242);
  int decoded = 0, failed = 0;
  for (int round = 0; round < 2000; round++)
    {
      GByteArray *seed = seeds[round % G_N_ELEMENTS (seeds)];
      g_autoptr (GByteArray) b = g_byte_array_sized_new (seed->len);
      g_byte_array_append (b, seed->data, seed->len);
      tf_test_mutate (rand, b, 3);   /* past the start-of-image marker */
      if (tf_test_read_mutant (tf_image_read_bytes, b, "fuzz.jpg"))
        decoded++;
      else
        failed++;
    }
  g_test_message ("%d decoded, %d refused", decoded, failed);
  g_assert_cmpint (decoded, >, 0);
  g_assert_cmpint (failed, >, 0);
}

/* A file is read by what it holds: a JPEG named .png is a JPEG; a text file
 * named .jpg is named as neither. And a training folder takes JPEGs. */
static void
test_files_and_folders (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("test-jpeg-XXXXXX");
  const int w = 56, h = 28;
  g_autofree uint8_t *rgb = quadrants (w, h, red, green, blue, white);
  g_autoptr (GByteArray) jpeg = tf_test_encode_jpeg (rgb, w, h, 3, 90, 0, NULL);
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("photo-%d.%s", i, i == 2 ? "png" : "jpg");
      g_autofree char *caption = g_strdup_printf ("photo-%d.txt", i);
      tf_test_write_file (dir, name, jpeg->data, jpeg->len);
      tf_test_write_file (dir, caption, "four colours in squares", -1);
    }
  g_autofree char *named_png = g_build_filename (dir, "photo-2.png", NULL);
  TfImage image;
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_image_read (named_png, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, w);
  g_assert_true (quadrant_is (&image, 1, 0, green, 12));
  tf_image_clear (&image);

  g_autoptr (TfDataSource) source = tf_data_folder_new (dir, TF_SPLIT_TRAIN, 32, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (source), ==, 3);

  tf_test_write_file (dir, "notes.jpg", "these are my notes", -1);
  g_autofree char *notes = g_build_filename (dir, "notes.jpg", NULL);
  g_assert_false (tf_image_read (notes, &image, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_UNSUPPORTED);
  g_autofree char *want = g_strdup_printf ("%s: not a PNG or JPEG file", notes);
  g_assert_cmpstr (error->message, ==, want);
  tf_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/image-jpeg/rgb", test_rgb);
  g_test_add_func ("/image-jpeg/grey-and-cmyk", test_grey_and_cmyk);
  g_test_add_func ("/image-jpeg/orientation", test_orientation);
  g_test_add_func ("/image-jpeg/corrupt", test_corrupt);
  g_test_add_func ("/image-jpeg/files-and-folders", test_files_and_folders);
  return g_test_run ();
}
