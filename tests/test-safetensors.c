/* test-safetensors.c: the .safetensors reader and writer, and the half-precision
 * conversions they use. Malformed files are built in memory; written files go
 * to a temporary directory that is removed afterwards. */
#include "tf-safetensors.h"
#include "tf-config.h"
#include "tf-test-util.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* --- helpers ------------------------------------------------------------ */

/* A file: @header_len as the length field, @header_len bytes of @header
 * (zero-filled past its end), then @data_size bytes of data. */
static GBytes *
make_file_with_length (uint64_t header_len, const char *header, size_t header_bytes,
                       size_t data_size)
{
  GByteArray *file = g_byte_array_new ();
  uint64_t le = GUINT64_TO_LE (header_len);
  g_byte_array_append (file, (const guint8 *) &le, 8);
  g_byte_array_append (file, (const guint8 *) header, (guint) header_bytes);
  for (size_t i = 0; i < data_size; i++)
    {
      guint8 b = (guint8) (i * 7 + 1);
      g_byte_array_append (file, &b, 1);
    }
  return g_byte_array_free_to_bytes (file);
}

static GBytes *
make_file (const char *header, size_t data_size)
{
  return make_file_with_length (strlen (header), header, strlen (header), data_size);
}

static void
assert_error_contains (const GError *error, int code, const char *prefix, const char *fragment)
{
  g_assert_nonnull (error);
  if (error->domain != TF_ERROR || error->code != code ||
      !g_str_has_prefix (error->message, prefix) || strstr (error->message, fragment) == NULL)
    g_error ("expected error %d starting with '%s' containing '%s', got %s %d: %s",
             code, prefix, fragment, g_quark_to_string (error->domain), error->code,
             error->message);
}

/* Opening @bytes must fail with TF_ERROR_FORMAT and a message naming the file
 * and containing @fragment. */
static void
expect_format_error (GBytes *bytes, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TfSafetensors) st = tf_safetensors_open_bytes (bytes, "bad.safetensors", &error);
  if (st != NULL)
    g_error ("expected a failure containing '%s', but the file opened", fragment);
  assert_error_contains (error, TF_ERROR_FORMAT, "bad.safetensors: ", fragment);
  g_test_message ("%s", error->message);
}

static TfSafetensors *
open_ok (GBytes *bytes)
{
  g_autoptr (GError) error = NULL;
  TfSafetensors *st = tf_safetensors_open_bytes (bytes, "good.safetensors", &error);
  g_assert_no_error (error);
  g_assert_nonnull (st);
  return st;
}

static uint32_t
bits_of (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  return u;
}

static float
float_of (uint32_t u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

/* --- dtypes ------------------------------------------------------------- */

static void
test_dtypes (void)
{
  static const struct { const char *name; TfDtype dtype; size_t size; } expected[] = {
    { "F64", TF_DTYPE_F64, 8 }, { "F32", TF_DTYPE_F32, 4 }, { "F16", TF_DTYPE_F16, 2 },
    { "BF16", TF_DTYPE_BF16, 2 }, { "I64", TF_DTYPE_I64, 8 }, { "I32", TF_DTYPE_I32, 4 },
    { "I16", TF_DTYPE_I16, 2 }, { "I8", TF_DTYPE_I8, 1 }, { "U8", TF_DTYPE_U8, 1 },
    { "U16", TF_DTYPE_U16, 2 }, { "U32", TF_DTYPE_U32, 4 }, { "U64", TF_DTYPE_U64, 8 },
    { "BOOL", TF_DTYPE_BOOL, 1 },
  };
  g_assert_cmpint (G_N_ELEMENTS (expected), ==, TF_N_DTYPES);
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      TfDtype dtype;
      g_assert_true (tf_dtype_from_name (expected[i].name, &dtype));
      g_assert_cmpint (dtype, ==, expected[i].dtype);
      g_assert_cmpstr (tf_dtype_name (dtype), ==, expected[i].name);
      g_assert_cmpuint (tf_dtype_size (dtype), ==, expected[i].size);
    }
  TfDtype unused;
  g_assert_false (tf_dtype_from_name ("f32", &unused));
  g_assert_false (tf_dtype_from_name ("F8_E4M3", &unused));
  g_assert_false (tf_dtype_from_name ("", &unused));
}

/* --- half precision ----------------------------------------------------- */

/* The value of a finite half, computed from its fields in double. */
static double
f16_reference_value (uint16_t h)
{
  int e = (h >> 10) & 0x1f;
  int m = h & 0x3ff;
  double v = e == 0 ? ldexp (m, -24) : ldexp (1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

static void
test_f16_exhaustive (void)
{
  for (uint32_t i = 0; i < 65536; i++)
    {
      uint16_t h = (uint16_t) i;
      float f = tf_f16_to_f32 (h);
      int e = (h >> 10) & 0x1f;
      int m = h & 0x3ff;
      if (e == 31 && m != 0)
        {
          g_assert_true (isnan (f));
          g_assert_cmpint (!!signbit (f), ==, !!(h & 0x8000));
          /* The payload survives; the quiet bit is forced. */
          g_assert_cmphex (tf_f32_to_f16 (f), ==, h | 0x200);
          continue;
        }
      if (e == 31)
        g_assert_true (isinf (f) && !!signbit (f) == !!(h & 0x8000));
      else
        {
          g_assert_cmpfloat ((double) f, ==, f16_reference_value (h));
          g_assert_cmpint (!!signbit (f), ==, !!(h & 0x8000));
        }
      g_assert_cmphex (tf_f32_to_f16 (f), ==, h);
    }
}

/* The nearest half to @f found by searching the table of all finite halves,
 * ties to the even pattern: a different method from the bit arithmetic. */
static double f16_table[0x7c01];

static uint16_t
f16_reference_round (float f)
{
  uint16_t sign = signbit (f) ? 0x8000 : 0;
  double a = fabs ((double) f);
  if (a >= 65536.0)
    return sign | 0x7c00;
  /* Largest h in [0, 0x7c00] with f16_table[h] <= a. */
  int lo = 0, hi = 0x7c00;
  while (lo < hi)
    {
      int mid = (lo + hi + 1) / 2;
      if (f16_table[mid] <= a)
        lo = mid;
      else
        hi = mid - 1;
    }
  if (f16_table[lo] == a)
    return sign | (uint16_t) lo;
  double below = a - f16_table[lo], above = f16_table[lo + 1] - a;
  int pick = below < above ? lo : above < below ? lo + 1 : (lo & 1) ? lo + 1 : lo;
  return sign | (uint16_t) pick;
}

static void
check_f16_rounding (float f)
{
  uint16_t got = tf_f32_to_f16 (f);
  uint16_t want = f16_reference_round (f);
  if (got != want)
    g_error ("tf_f32_to_f16 (%a = 0x%08x) = 0x%04x, expected 0x%04x", (double) f, bits_of (f), got, want);
}

static void
test_f16_rounding (void)
{
  for (int h = 0; h < 0x7c00; h++)
    f16_table[h] = f16_reference_value ((uint16_t) h);
  f16_table[0x7c00] = 65536.0;  /* where the exponent range would continue */

  /* Every halfway point between neighbouring halves, and one float either side. */
  for (int h = 0; h < 0x7c00; h++)
    {
      float mid = (float) ((f16_table[h] + f16_table[h + 1]) / 2);
      g_assert_cmpfloat ((double) mid, ==, (f16_table[h] + f16_table[h + 1]) / 2);
      float probes[] = { mid, nextafterf (mid, 0), nextafterf (mid, INFINITY) };
      for (guint k = 0; k < G_N_ELEMENTS (probes); k++)
        {
          check_f16_rounding (probes[k]);
          check_f16_rounding (-probes[k]);
        }
    }
  /* A stride through every finite float, and random ones. */
  for (uint64_t u = 0; u < 0x100000000ull; u += 997)
    if (!isnan (float_of ((uint32_t) u)))
      check_f16_rounding (float_of ((uint32_t) u));
  g_autoptr (GRand) rand = g_rand_new_with_seed (1234);
  for (int i = 0; i < 1000000; i++)
    {
      float f = float_of (g_rand_int (rand));
      if (!isnan (f))
        check_f16_rounding (f);
    }
  /* Named edges. */
  g_assert_cmphex (tf_f32_to_f16 (65504.0f), ==, 0x7bff);
  g_assert_cmphex (tf_f32_to_f16 (65519.99f), ==, 0x7bff);
  g_assert_cmphex (tf_f32_to_f16 (65520.0f), ==, 0x7c00);
  g_assert_cmphex (tf_f32_to_f16 (0x1p-24f), ==, 0x0001);
  g_assert_cmphex (tf_f32_to_f16 (0x1p-25f), ==, 0x0000);       /* tie to even zero */
  g_assert_cmphex (tf_f32_to_f16 (0x1.8p-24f), ==, 0x0002);     /* tie to even 2 */
  g_assert_cmphex (tf_f32_to_f16 (0x1.ff8p-15f), ==, 0x03ff);   /* the largest subnormal */
  g_assert_cmphex (tf_f32_to_f16 (0x1.ffcp-15f), ==, 0x0400);   /* ties up into the normals */
  g_assert_cmphex (tf_f32_to_f16 (-0.0f), ==, 0x8000);
  g_assert_cmphex (tf_f32_to_f16 (-INFINITY), ==, 0xfc00);
  g_assert_true (isnan (tf_f16_to_f32 (tf_f32_to_f16 (NAN))));
  g_assert_true (isnan (tf_f16_to_f32 (tf_f32_to_f16 (float_of (0x7f800001)))));  /* signalling */
  g_assert_true (isnan (tf_f16_to_f32 (tf_f32_to_f16 (float_of (0xffc00000)))));
  g_assert_cmphex (tf_f32_to_f16 (float_of (0xffc00000)) & 0x8000, ==, 0x8000);
}

static void
test_bf16_exhaustive (void)
{
  for (uint32_t i = 0; i < 65536; i++)
    {
      uint16_t h = (uint16_t) i;
      float f = tf_bf16_to_f32 (h);
      g_assert_cmphex (bits_of (f), ==, (uint32_t) h << 16);
      if ((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0)
        g_assert_cmphex (tf_f32_to_bf16 (f), ==, h | 0x40);
      else
        g_assert_cmphex (tf_f32_to_bf16 (f), ==, h);
    }
}

/* Value of the bf16 magnitude @m as a double; 0x7f80 stands for 2^128, where
 * the exponent range would continue, so that ties there go to infinity. */
static double
bf16_magnitude_value (uint32_t m)
{
  return m == 0x7f80 ? ldexp (1, 128) : (double) float_of (m << 16);
}

static uint16_t
bf16_reference_round (float f)
{
  uint32_t x = bits_of (f);
  uint32_t sign = x & 0x80000000u;
  uint32_t lo = (x & 0x7fffffffu) >> 16;
  double a = fabs ((double) f);
  uint32_t pick;
  if (bf16_magnitude_value (lo) == a)
    pick = lo;
  else
    {
      double below = a - bf16_magnitude_value (lo), above = bf16_magnitude_value (lo + 1) - a;
      pick = below < above ? lo : above < below ? lo + 1 : (lo & 1) ? lo + 1 : lo;
    }
  return (uint16_t) ((sign >> 16) | pick);
}

static void
check_bf16_rounding (float f)
{
  uint16_t got = tf_f32_to_bf16 (f);
  uint16_t want = bf16_reference_round (f);
  if (got != want)
    g_error ("tf_f32_to_bf16 (%a = 0x%08x) = 0x%04x, expected 0x%04x", (double) f, bits_of (f), got, want);
}

static void
test_bf16_rounding (void)
{
  for (uint32_t m = 0; m < 0x7f80; m++)
    for (int sign = 0; sign < 2; sign++)
      {
        uint32_t mid = (m << 16) | 0x8000u | (sign ? 0x80000000u : 0);
        check_bf16_rounding (float_of (mid));
        check_bf16_rounding (float_of (mid - 1));
        check_bf16_rounding (float_of (mid + 1));
      }
  for (uint64_t u = 0; u < 0x100000000ull; u += 997)
    if (!isnan (float_of ((uint32_t) u)))
      check_bf16_rounding (float_of ((uint32_t) u));
  g_assert_cmphex (tf_f32_to_bf16 (FLT_MAX), ==, 0x7f80);  /* ties up into Inf */
  g_assert_cmphex (tf_f32_to_bf16 (-0.0f), ==, 0x8000);
  g_assert_true (isnan (tf_bf16_to_f32 (tf_f32_to_bf16 (float_of (0x7f800001)))));
  g_assert_true (isnan (tf_bf16_to_f32 (tf_f32_to_bf16 (float_of (0xff800001)))));
  g_assert_cmphex (tf_f32_to_bf16 (float_of (0xff800001)) & 0x8000, ==, 0x8000);
}

/* --- round trip --------------------------------------------------------- */

static const char *const weird_name = "a\"b\\c\nd/\xc3\xa9 \xe2\x98\x83";

static void
test_round_trip (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-safetensors-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);

  static const guint8 bytes_u8[3] = { 0, 200, 255 };
  static const float w[6] = { 1.0f, -2.5f, 3.14159265f, 1e-30f, -0.0f, 65536.5f };
  static const float h[5] = { 1.0f / 3.0f, 65504.0f, 1e-7f, -0.0f, 70000.0f };
  static const float bf[3] = { 1.0f / 3.0f, -3e38f, 1e-40f };
  static const float scalar = 42.5f;
  int32_t ids_le[4];
  static const int32_t ids[4] = { 0, -1, 2147483647, -2147483647 - 1 };
  for (int i = 0; i < 4; i++)
    ids_le[i] = (int32_t) GUINT32_TO_LE ((uint32_t) ids[i]);
  int64_t big_le[2] = { (int64_t) GUINT64_TO_LE (7), (int64_t) GUINT64_TO_LE ((uint64_t) -9) };
  static const guint8 flags[2] = { 2, 0 };  /* any nonzero byte is true */
  static const float weird_values[1] = { 5.0f };
  char ascii[128];
  for (int i = 1; i < 128; i++)
    ascii[i - 1] = (char) i;
  ascii[127] = '\0';

  TfTensorOut tensors[] = {
    /* U8 first, so every later tensor starts at an odd offset. */
    { .name = "u", .dtype = TF_DTYPE_U8, .n_dims = 1, .shape = { 3 }, .raw = bytes_u8 },
    { .name = "w", .dtype = TF_DTYPE_F32, .n_dims = 2, .shape = { 2, 3 }, .data = w },
    { .name = "h", .dtype = TF_DTYPE_F16, .n_dims = 1, .shape = { 5 }, .data = h },
    { .name = "bf", .dtype = TF_DTYPE_BF16, .n_dims = 3, .shape = { 1, 3, 1 }, .data = bf },
    { .name = "s", .dtype = TF_DTYPE_F32, .n_dims = 0, .data = &scalar },
    { .name = "z", .dtype = TF_DTYPE_F16, .n_dims = 2, .shape = { 0, 4 } },
    { .name = "ids", .dtype = TF_DTYPE_I32, .n_dims = 1, .shape = { 4 }, .raw = ids_le },
    { .name = "big", .dtype = TF_DTYPE_I64, .n_dims = 1, .shape = { 2 }, .raw = big_le },
    { .name = "flag", .dtype = TF_DTYPE_BOOL, .n_dims = 1, .shape = { 2 }, .raw = flags },
    { .name = weird_name, .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { 1 }, .data = weird_values },
    { .name = ascii, .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { 1 }, .data = weird_values },
  };
  /* Every ASCII character, control characters included, in a name and a value. */
  const char *keys[] = { "format", "config", "empty", "control" };
  const char *values[] = { "pt", "{\"d_model\": 64, \"name\": \"x\\\"y\"}", "", ascii };

  g_autoptr (GError) error = NULL;
  g_assert_true (tf_safetensors_write (path, tensors, G_N_ELEMENTS (tensors), keys, values, 4, &error));
  g_assert_no_error (error);
  g_autofree char *listing = tf_test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "model.safetensors");

  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_safetensors_display_name (st), ==, path);
  g_assert_cmpint (tf_safetensors_n_tensors (st), ==, G_N_ELEMENTS (tensors));

  /* File order is the order given, with contiguous offsets. */
  uint64_t offset = 0;
  for (int i = 0; i < (int) G_N_ELEMENTS (tensors); i++)
    {
      const TfTensorInfo *info = tf_safetensors_tensor (st, i);
      g_assert_cmpstr (info->name, ==, tensors[i].name);
      g_assert_true (tf_safetensors_find (st, tensors[i].name) == info);
      g_assert_cmpint (info->dtype, ==, tensors[i].dtype);
      g_assert_cmpint (info->n_dims, ==, tensors[i].n_dims);
      uint64_t n = 1;
      for (int d = 0; d < info->n_dims; d++)
        {
          g_assert_cmpint (info->shape[d], ==, tensors[i].shape[d]);
          n *= (uint64_t) info->shape[d];
        }
      g_assert_cmpuint (info->n_elements, ==, n);
      g_assert_cmpuint (info->begin, ==, offset);
      g_assert_cmpuint (info->end - info->begin, ==, n * tf_dtype_size (info->dtype));
      offset = info->end;
    }
  g_assert_null (tf_safetensors_find (st, "missing"));
  g_assert_null (tf_safetensors_find (st, "__metadata__"));

  float out[6];
  const TfTensorInfo *info = tf_safetensors_find (st, "w");
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 6, &error));
  for (int i = 0; i < 6; i++)
    g_assert_cmphex (bits_of (out[i]), ==, bits_of (w[i]));
  g_assert_cmpmem (tf_safetensors_data (st, info), 24, w, 24);  /* little-endian host */

  info = tf_safetensors_find (st, "h");
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 5, &error));
  for (int i = 0; i < 5; i++)
    g_assert_cmphex (bits_of (out[i]), ==, bits_of (tf_f16_to_f32 (tf_f32_to_f16 (h[i]))));
  g_assert_true (isinf (out[4]));  /* 70000 does not fit in a half */

  info = tf_safetensors_find (st, "bf");
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 3, &error));
  for (int i = 0; i < 3; i++)
    g_assert_cmphex (bits_of (out[i]), ==, bits_of (tf_bf16_to_f32 (tf_f32_to_bf16 (bf[i]))));

  info = tf_safetensors_find (st, "s");
  g_assert_cmpint (info->n_dims, ==, 0);
  g_assert_cmpuint (info->n_elements, ==, 1);
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 1, &error));
  g_assert_cmpfloat (out[0], ==, 42.5f);

  info = tf_safetensors_find (st, "z");
  g_assert_cmpuint (info->n_elements, ==, 0);
  g_assert_cmpuint (info->begin, ==, info->end);
  g_assert_true (tf_safetensors_read_f32 (st, info, NULL, 0, &error));

  int32_t ints[4];
  info = tf_safetensors_find (st, "ids");
  g_assert_true (tf_safetensors_read_i32 (st, info, ints, 4, &error));
  g_assert_cmpmem (ints, sizeof ints, ids, sizeof ids);
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 4, &error));
  g_assert_cmpfloat (out[1], ==, -1.0f);
  g_assert_cmpfloat (out[3], ==, -2147483648.0f);

  info = tf_safetensors_find (st, "big");
  g_assert_true (tf_safetensors_read_i32 (st, info, ints, 2, &error));
  g_assert_cmpint (ints[0], ==, 7);
  g_assert_cmpint (ints[1], ==, -9);

  info = tf_safetensors_find (st, "u");
  g_assert_true (tf_safetensors_read_i32 (st, info, ints, 3, &error));
  g_assert_cmpint (ints[2], ==, 255);
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 3, &error));
  g_assert_cmpfloat (out[1], ==, 200.0f);

  info = tf_safetensors_find (st, "flag");
  g_assert_true (tf_safetensors_read_i32 (st, info, ints, 2, &error));
  g_assert_cmpint (ints[0], ==, 1);
  g_assert_cmpint (ints[1], ==, 0);

  info = tf_safetensors_find (st, weird_name);
  g_assert_nonnull (info);
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 1, &error));
  g_assert_cmpfloat (out[0], ==, 5.0f);
  g_assert_nonnull (tf_safetensors_find (st, ascii));
  g_assert_no_error (error);

  g_assert_cmpstr (tf_safetensors_metadata (st, "format"), ==, "pt");
  g_assert_cmpstr (tf_safetensors_metadata (st, "config"), ==, values[1]);
  g_assert_cmpstr (tf_safetensors_metadata (st, "empty"), ==, "");
  g_assert_cmpstr (tf_safetensors_metadata (st, "control"), ==, ascii);
  g_assert_null (tf_safetensors_metadata (st, "missing"));
  guint n_keys = 0;
  g_autofree const char **sorted = tf_safetensors_metadata_keys (st, &n_keys);
  g_assert_cmpuint (n_keys, ==, 4);
  g_assert_cmpstr (sorted[0], ==, "config");
  g_assert_cmpstr (sorted[1], ==, "control");
  g_assert_cmpstr (sorted[2], ==, "empty");
  g_assert_cmpstr (sorted[3], ==, "format");
  g_assert_null (sorted[4]);

  /* Writing over an existing file replaces it. */
  g_assert_true (tf_safetensors_write (path, tensors, 1, NULL, NULL, 0, &error));
  g_autoptr (TfSafetensors) again = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_safetensors_n_tensors (again), ==, 1);
  g_autofree const char **none = tf_safetensors_metadata_keys (again, &n_keys);
  g_assert_cmpuint (n_keys, ==, 0);
  g_assert_null (none[0]);
  /* The first file is still readable through its mapping. */
  info = tf_safetensors_find (st, "w");
  g_assert_true (tf_safetensors_read_f32 (st, info, out, 6, &error));
  g_assert_cmpfloat (out[0], ==, 1.0f);

  tf_test_remove_tree (dir);
}

/* The exact bytes the writer produces, padding included. */
static void
check_written_bytes (const char *path, const char *header, const void *data, size_t data_size)
{
  size_t header_len = strlen (header);
  size_t padded = (header_len + 7) / 8 * 8;
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  uint64_t le = GUINT64_TO_LE ((uint64_t) padded);
  g_byte_array_append (expected, (const guint8 *) &le, 8);
  g_byte_array_append (expected, (const guint8 *) header, (guint) header_len);
  for (size_t i = header_len; i < padded; i++)
    g_byte_array_append (expected, (const guint8 *) " ", 1);
  g_byte_array_append (expected, data, (guint) data_size);

  g_autofree char *contents = NULL;
  gsize length;
  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  g_assert_cmpuint (length % 8, ==, data_size % 8);
  g_assert_cmpmem (contents, length, expected->data, expected->len);
}

static void
test_header_bytes (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-safetensors-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "x.safetensors", NULL);
  g_autoptr (GError) error = NULL;

  static const float x[2] = { 1.0f, 2.0f };
  static const guint8 x_bytes[8] = { 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40 };
  TfTensorOut one = { .name = "x", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { 2 }, .data = x };
  const char *key = "format", *value = "pt";
  g_assert_true (tf_safetensors_write (path, &one, 1, &key, &value, 1, &error));
  g_assert_no_error (error);
  /* 85 bytes of JSON, padded with 3 spaces to 88. */
  check_written_bytes (path,
                       "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                       x_bytes, 8);

  /* Names and values are escaped: quotes, backslashes and every byte below
   * 0x20 (json-glib 1.6.6 left U+001F raw), and DEL; '/' and UTF-8 are not. */
  const char *ctl_key = "k\x1f\x01", *ctl_value = "\"\\/\b\f\n\r\t\x7f\xc3\xa9";
  TfTensorOut ctl = { .name = "a\x1f", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { 2 }, .data = x };
  g_assert_true (tf_safetensors_write (path, &ctl, 1, &ctl_key, &ctl_value, 1, &error));
  g_assert_no_error (error);
  check_written_bytes (path,
                       "{\"__metadata__\":{\"k\\u001f\\u0001\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u007f\xc3\xa9\"},"
                       "\"a\\u001f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                       x_bytes, 8);
  g_autoptr (TfSafetensors) ctl_st = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (tf_safetensors_find (ctl_st, "a\x1f"));
  g_assert_cmpstr (tf_safetensors_metadata (ctl_st, ctl_key), ==, ctl_value);

  /* No tensors, no metadata: "{}" and six spaces. */
  g_assert_true (tf_safetensors_write (path, NULL, 0, NULL, NULL, 0, &error));
  check_written_bytes (path, "{}", NULL, 0);
  g_autoptr (TfSafetensors) empty = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_safetensors_n_tensors (empty), ==, 0);

  /* Half data and a header that is already a multiple of 8 long. */
  static const float hx[3] = { 1.0f, -2.0f, 0.5f };
  static const guint8 hx_bytes[6] = { 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38 };
  TfTensorOut half = { .name = "abcdefghijk", .dtype = TF_DTYPE_F16, .n_dims = 1, .shape = { 3 }, .data = hx };
  g_assert_true (tf_safetensors_write (path, &half, 1, NULL, NULL, 0, &error));
  const char *half_header = "{\"abcdefghijk\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}";
  g_assert_cmpuint (strlen (half_header) % 8, ==, 0);
  check_written_bytes (path, half_header, hx_bytes, 6);

  tf_test_remove_tree (dir);
}

/* Files other writers produce: unpadded, pretty-printed, keys in another
 * order, tensors listed out of offset order, metadata last. */
static void
test_foreign_files (void)
{
  const char *header =
    "{\n  \"b\": {\"data_offsets\": [8, 16], \"shape\": [2], \"dtype\": \"F32\"},\r\n"
    "\t\"a\": {\"shape\": [1, 2], \"dtype\": \"BF16\", \"data_offsets\": [4, 8]},\n"
    "  \"e1\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [0, 0]},\n"
    "  \"c\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},\n"
    "  \"e2\": {\"dtype\": \"F64\", \"shape\": [3, 0], \"data_offsets\": [16, 16]},\n"
    "  \"__metadata__\": {\"format\": \"pt\", \"note\": \"caf\\u00e9 \\ud83d\\ude00\"}\n}  \n\t";
  g_autoptr (GBytes) bytes = make_file (header, 16);
  g_autoptr (TfSafetensors) st = open_ok (bytes);
  g_assert_cmpint (tf_safetensors_n_tensors (st), ==, 5);
  const char *order[] = { "e1", "c", "a", "b", "e2" };
  for (int i = 0; i < 5; i++)
    g_assert_cmpstr (tf_safetensors_tensor (st, i)->name, ==, order[i]);
  g_assert_cmpstr (tf_safetensors_metadata (st, "note"), ==, "caf\xc3\xa9 \xf0\x9f\x98\x80");
  const TfTensorInfo *a = tf_safetensors_find (st, "a");
  g_assert_cmpint (a->dtype, ==, TF_DTYPE_BF16);
  g_assert_cmpuint (a->begin, ==, 4);
  g_assert_cmpuint (a->end, ==, 8);
  g_assert_cmpuint (tf_safetensors_find (st, "e2")->n_elements, ==, 0);

  /* Escapes are decoded wherever they appear. */
  g_autoptr (GBytes) escaped = make_file (
    "{\"\\u0077\\t\\/\":{\"\\u0064type\":\"\\u0046\\u00332\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"__metadata__\":{\"k\\\\\":\"\\\"\\b\\f\\n\\r\\u001f\"}}", 8);
  g_autoptr (TfSafetensors) decoded = open_ok (escaped);
  const TfTensorInfo *w = tf_safetensors_find (decoded, "w\t/");
  g_assert_nonnull (w);
  g_assert_cmpint (w->dtype, ==, TF_DTYPE_F32);
  g_assert_cmpstr (tf_safetensors_metadata (decoded, "k\\"), ==, "\"\b\f\n\r\x1f");

  /* The smallest file: an empty header object and no data. */
  g_autoptr (GBytes) tiny = make_file ("{}", 0);
  g_autoptr (TfSafetensors) empty = open_ok (tiny);
  g_assert_cmpint (tf_safetensors_n_tensors (empty), ==, 0);

  /* Nesting at the limit is still read (and then refused for what it is). */
  GString *deep = g_string_new ("{\"__metadata__\":");
  for (int i = 0; i < 63; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < 63; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');
  g_autoptr (GBytes) deep_bytes = make_file (deep->str, 0);
  expect_format_error (deep_bytes, "__metadata__ is not an object");
  g_string_free (deep, TRUE);

  /* Integers at the edge of the int64 range are parsed, then judged. */
  g_autoptr (GBytes) edge = make_file (
    "{\"a\":{\"dtype\":\"U8\",\"shape\":[9223372036854775807],\"data_offsets\":[0,0]}}", 0);
  expect_format_error (edge, "needs 9223372036854775807 bytes, data_offsets give 0");
}

/* --- malformed files ----------------------------------------------------- */

#define T8 "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

typedef struct {
  const char *what;
  const char *header;
  size_t      data_size;
  const char *fragment;
} BadHeader;

static const BadHeader bad_headers[] = {
  { "not JSON", "{\"a\":", 8, "header is not valid JSON" },
  { "JSON comment", "{/* c */\"a\":" T8 "}", 8, "header is not valid JSON" },
  { "single quotes", "{'a':" T8 "}", 8, "header is not valid JSON" },
  { "text after the object", "{\"a\":" T8 "} {}", 8, "unexpected text after the end" },
  { "trailing comma", "{\"a\":" T8 ",}", 8, "header is not valid JSON" },
  { "leading zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8,
    "number with a leading zero" },
  { "hex number", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0x2],\"data_offsets\":[0,8]}}", 8,
    "header is not valid JSON" },
  { "integer out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,18446744073709551616]}}", 0,
    "integer out of range (18446744073709551616)" },
  { "NUL escape", "{\"a\\u0000b\":" T8 "}", 8, "\\u0000 in a string" },
  { "lone surrogate", "{\"a\\ud800\":" T8 "}", 8, "unpaired surrogate" },
  { "raw control character", "{\"a\tb\":" T8 "}", 8, "control character in a string" },
  { "array at the top", "[" T8 "]", 8, "header does not start with '{'" },
  { "leading space", " {\"a\":" T8 "}", 8, "header does not start with '{'" },
  { "empty header", "", 8, "header does not start with '{'" },
  { "duplicate tensor", "{\"a\":" T8 ",\"a\":" T8 "}", 8, "tensor 'a' appears twice" },
  { "duplicate dtype key", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': key 'dtype' appears twice" },
  { "duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
    "__metadata__: key 'k' appears twice" },
  { "duplicate metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "'__metadata__' appears twice" },
  /* Names are compared decoded, and duplicates are reported in the order a
   * parser meets them (when a member's value ends), before any other problem. */
  { "duplicate spelled with an escape", "{\"a\":" T8 ",\"\\u0061\":" T8 "}", 8, "tensor 'a' appears twice" },
  { "duplicate with a surrogate pair",
    "{\"__metadata__\":{\"\\ud83d\\ude00\":\"1\",\"\xf0\x9f\x98\x80\":\"2\"}}", 0,
    "__metadata__: key '\xf0\x9f\x98\x80' appears twice" },
  { "duplicate deep inside an entry", "{\"a\":{\"x\":[{\"k\":1,\"k\":2}]}}", 0,
    "tensor 'a': key 'k' appears twice" },
  { "duplicate inside a metadata array", "{\"__metadata__\":[{\"k\":1,\"k\":2}]}", 0,
    "__metadata__: key 'k' appears twice" },
  { "outer duplicate met first", "{\"a\":1,\"a\":2,\"b\":{\"x\":1,\"x\":2}}", 0, "tensor 'a' appears twice" },
  { "inner duplicate met first", "{\"a\":{\"x\":1,\"x\":2},\"a\":3}", 0, "tensor 'a': key 'x' appears twice" },
  { "inner duplicate in the repeated member", "{\"a\":1,\"a\":{\"x\":1,\"x\":2}}", 0,
    "tensor 'a': key 'x' appears twice" },
  { "earliest of two duplicates", "{\"b\":1,\"a\":1,\"a\":2,\"b\":2}", 0, "tensor 'a' appears twice" },
  { "duplicate after a bad entry", "{\"a\":{\"dtype\":4},\"b\":" T8 ",\"b\":" T8 "}", 8, "tensor 'b' appears twice" },
  { "syntax error after a duplicate", "{\"a\":1,\"a\":2,}", 0, "header is not valid JSON" },
  { "escaped unknown dtype", "{\"a\":{\"dtype\":\"F\\u00e9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': unknown dtype 'F\xc3\xa9'" },
  { "escaped unknown key", "{\"a\\n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\\\"y\":1}}", 8,
    "tensor 'a\n': unknown key 'x\"y'" },
  { "first bad entry in file order",
    "{\"b\":{\"dtype\":\"F32\",\"shape\":[2]},\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'b': missing 'data_offsets'" },
  { "unknown key before missing ones", "{\"a\":{\"extra\":1}}", 8, "tensor 'a': unknown key 'extra'" },
  { "nested shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[[2]],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': shape[0] is not a non-negative integer" },
  { "offsets not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"0\":8}}}", 8,
    "tensor 'a': data_offsets is not [begin,end]" },
  { "one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0]}}", 0,
    "tensor 'a': data_offsets is not [begin,end]" },
  { "unknown dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': unknown dtype 'F8'" },
  { "dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': dtype is not a string" },
  { "negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': shape[0] is not a non-negative integer" },
  { "fractional shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': shape[0] is not a non-negative integer" },
  { "shape not an array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': shape is not an array" },
  { "non-integer offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8,
    "tensor 'a': data_offsets is not [begin,end]" },
  { "exponent offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}", 8,
    "tensor 'a': data_offsets is not [begin,end]" },
  { "three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8,
    "tensor 'a': data_offsets is not [begin,end]" },
  { "negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[-0,-1]}}", 8,
    "tensor 'a': data_offsets is not [begin,end]" },
  { "begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
    "tensor 'a': data_offsets [8,0] end before they begin" },
  { "size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
    "tensor 'a': shape [2,3] \xc3\x97 F32 needs 24 bytes, data_offsets give 20" },
  { "gap between tensors",
    "{\"a\":" T8 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20,
    "tensor 'b': data_offsets [12,20] leave a gap after tensor 'a', which ends at 8" },
  { "gap at the start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
    "tensor 'a': data_offsets [4,12] leave a gap: the data begins at 0" },
  { "overlap",
    "{\"a\":" T8 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
    "tensor 'b': data_offsets [4,12] overlap tensor 'a' [0,8]" },
  { "same range twice",
    "{\"a\":" T8 ",\"b\":" T8 "}", 8, "tensor 'b': data_offsets [0,8] overlap tensor 'a' [0,8]" },
  { "trailing bytes", "{\"a\":" T8 "}", 12,
    "the tensors cover 8 bytes of data but the data section has 12 (4 trailing bytes)" },
  { "data but no tensors", "{}", 8, "(8 trailing bytes)" },
  { "data shorter than offsets", "{\"a\":" T8 "}", 4,
    "tensor 'a': data_offsets [0,8] go past the end of the data (4 bytes)" },
  { "metadata value not a string", "{\"__metadata__\":{\"k\":1}}", 0,
    "__metadata__: value of 'k' is not a string" },
  { "metadata not an object", "{\"__metadata__\":\"pt\"}", 0, "__metadata__ is not an object" },
  { "unknown key in an entry",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8,
    "tensor 'a': unknown key 'extra'" },
  { "missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'a': missing 'dtype'" },
  { "missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8,
    "tensor 'a': missing 'data_offsets'" },
  { "entry not an object", "{\"a\":[0,8]}", 8, "tensor 'a': entry is not an object" },
  { "too many dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
    "tensor 'a': shape has 9 dimensions, at most 8 are supported" },
  { "shape product overflow",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}", 0,
    "tensor 'a': shape [4294967296,4294967296,2] \xc3\x97 F32 is too large" },
  { "byte size overflow",
    "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0,
    "tensor 'a': shape [2305843009213693952] \xc3\x97 F64 is too large" },
};

static void
test_malformed_headers (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (bad_headers); i++)
    {
      g_test_message ("case: %s", bad_headers[i].what);
      g_autoptr (GBytes) bytes = make_file (bad_headers[i].header, bad_headers[i].data_size);
      expect_format_error (bytes, bad_headers[i].fragment);
    }
}

/* Cases that are not a header string followed by data. */
static void
test_malformed_framing (void)
{
  /* Too short to hold the length. */
  g_autoptr (GBytes) short_file = g_bytes_new_static ("\x02\x00\x00\x00\x00", 5);
  expect_format_error (short_file, "file is 5 bytes, too short for the 8-byte header length");
  g_autoptr (GBytes) no_file = g_bytes_new_static ("", 0);
  expect_format_error (no_file, "file is 0 bytes");

  /* A length beyond the limit, and one beyond the end of the file. */
  g_autoptr (GBytes) huge = make_file_with_length (G_GUINT64_CONSTANT (0xffffffffffffff00), "{}", 2, 0);
  expect_format_error (huge, "header length 18446744073709551360 exceeds the limit of 104857600 bytes");
  g_autoptr (GBytes) past_end = make_file_with_length (1234567, "{}", 2, 90);
  expect_format_error (past_end, "header length 1234567 exceeds the file size (100 bytes)");
  g_autoptr (GBytes) one_past = make_file_with_length (3, "{}", 2, 0);
  expect_format_error (one_past, "header length 3 exceeds the file size (10 bytes)");

  /* Invalid UTF-8 in a name, and a NUL inside the header. */
  g_autoptr (GBytes) bad_utf8 = make_file ("{\"a\xff\":" T8 "}", 8);
  expect_format_error (bad_utf8, "header is not valid UTF-8");
  g_autoptr (GBytes) overlong = make_file ("{\"a\xc0\xaf\":" T8 "}", 8);
  expect_format_error (overlong, "header is not valid UTF-8");
  g_autoptr (GBytes) nul_padding = make_file_with_length (8, "{}\0\0\0\0\0\0", 8, 0);
  expect_format_error (nul_padding, "header contains a NUL byte");

  /* Nesting deep enough to hurt a recursive parser. */
  GString *deep = g_string_new ("{\"a\":");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  g_autoptr (GBytes) deep_bytes = make_file (deep->str, 0);
  expect_format_error (deep_bytes, "nested more than 64 levels deep");
  g_string_truncate (deep, 0);
  for (int i = 0; i < 1000; i++)
    g_string_append (deep, "{\"a\":");
  g_autoptr (GBytes) deep_objects = make_file (deep->str, 0);
  expect_format_error (deep_objects, "nested more than 64 levels deep");
  g_string_truncate (deep, 0);
  g_string_append (deep, "{\"__metadata__\":");
  for (int i = 0; i < 64; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < 64; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');
  g_autoptr (GBytes) just_over = make_file (deep->str, 0);
  expect_format_error (just_over, "nested more than 64 levels deep");
  g_string_free (deep, TRUE);
}

/* --- files on disk ------------------------------------------------------ */

static void
test_open_errors (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-safetensors-XXXXXX");
  g_autofree char *missing = g_build_filename (dir, "missing.safetensors", NULL);
  g_autofree char *empty = g_build_filename (dir, "empty.safetensors", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_null (tf_safetensors_open (missing, &error));
  g_autofree char *prefix = g_strconcat (missing, ": ", NULL);
  assert_error_contains (error, TF_ERROR_IO, prefix, "could not read: No such file or directory");
  g_clear_error (&error);

  g_assert_null (tf_safetensors_open (dir, &error));
  g_free (prefix);
  prefix = g_strconcat (dir, ": ", NULL);
  assert_error_contains (error, TF_ERROR_IO, prefix, "not a regular file");
  g_clear_error (&error);

  /* A FIFO is refused at once rather than waited on. */
  g_autofree char *fifo = g_build_filename (dir, "fifo", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  g_assert_null (tf_safetensors_open (fifo, &error));
  g_free (prefix);
  prefix = g_strconcat (fifo, ": ", NULL);
  assert_error_contains (error, TF_ERROR_IO, prefix, "not a regular file");
  g_clear_error (&error);

  g_assert_true (g_file_set_contents (empty, "", 0, NULL));
  g_assert_null (tf_safetensors_open (empty, &error));
  g_free (prefix);
  prefix = g_strconcat (empty, ": ", NULL);
  assert_error_contains (error, TF_ERROR_FORMAT, prefix, "too short");
  g_clear_error (&error);

  tf_test_remove_tree (dir);
}

static void
test_read_conversions (void)
{
  const char *header =
    "{\"i64\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},"
    "\"u32\":{\"dtype\":\"U32\",\"shape\":[2],\"data_offsets\":[24,32]},"
    "\"i8\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[32,34]},"
    "\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[34,36]},"
    "\"u16\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[36,38]},"
    "\"u64\":{\"dtype\":\"U64\",\"shape\":[1],\"data_offsets\":[38,46]},"
    "\"f64\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[46,54]},"
    "\"f32\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[54,58]}}";
  guint8 data[58] = { 0 };
  int64_t i64[3] = { 1, -5, G_GINT64_CONSTANT (2147483648) };
  uint32_t u32[2] = { 7, 4294967295u };
  int8_t i8[2] = { -128, 127 };
  int16_t i16 = -300;
  uint16_t u16 = 65535;
  uint64_t u64 = G_GUINT64_CONSTANT (9223372036854775809);
  double f64 = 0.1;
  float f32 = 2.5f;
  memcpy (data, i64, 24);
  memcpy (data + 24, u32, 8);
  memcpy (data + 32, i8, 2);
  memcpy (data + 34, &i16, 2);
  memcpy (data + 36, &u16, 2);
  memcpy (data + 38, &u64, 8);
  memcpy (data + 46, &f64, 8);
  memcpy (data + 54, &f32, 4);
  GByteArray *file = g_byte_array_new ();
  uint64_t le = GUINT64_TO_LE ((uint64_t) strlen (header));
  g_byte_array_append (file, (const guint8 *) &le, 8);
  g_byte_array_append (file, (const guint8 *) header, (guint) strlen (header));
  g_byte_array_append (file, data, sizeof data);
  g_autoptr (GBytes) bytes = g_byte_array_free_to_bytes (file);
  g_autoptr (TfSafetensors) st = open_ok (bytes);
  g_autoptr (GError) error = NULL;
  int32_t ints[3];
  float floats[3];

  const TfTensorInfo *info = tf_safetensors_find (st, "i64");
  g_assert_false (tf_safetensors_read_i32 (st, info, ints, 3, &error));
  assert_error_contains (error, TF_ERROR_FORMAT, "good.safetensors: tensor 'i64': ",
                         "element 2 (2147483648) does not fit in int32");
  g_clear_error (&error);
  g_assert_true (tf_safetensors_read_f32 (st, info, floats, 3, &error));
  g_assert_cmpfloat (floats[1], ==, -5.0f);
  g_assert_cmpfloat (floats[2], ==, 2147483648.0f);

  info = tf_safetensors_find (st, "u32");
  g_assert_false (tf_safetensors_read_i32 (st, info, ints, 2, &error));
  assert_error_contains (error, TF_ERROR_FORMAT, "good.safetensors: tensor 'u32': ",
                         "element 1 (4294967295) does not fit in int32");
  g_clear_error (&error);

  info = tf_safetensors_find (st, "i8");
  g_assert_true (tf_safetensors_read_i32 (st, info, ints, 2, &error));
  g_assert_cmpint (ints[0], ==, -128);
  g_assert_cmpint (ints[1], ==, 127);
  g_assert_true (tf_safetensors_read_i32 (st, tf_safetensors_find (st, "i16"), ints, 1, &error));
  g_assert_cmpint (ints[0], ==, -300);
  g_assert_true (tf_safetensors_read_i32 (st, tf_safetensors_find (st, "u16"), ints, 1, &error));
  g_assert_cmpint (ints[0], ==, 65535);
  g_assert_false (tf_safetensors_read_i32 (st, tf_safetensors_find (st, "u64"), ints, 1, &error));
  assert_error_contains (error, TF_ERROR_FORMAT, "good.safetensors: tensor 'u64': ", "does not fit");
  g_clear_error (&error);

  g_assert_true (tf_safetensors_read_f32 (st, tf_safetensors_find (st, "f64"), floats, 1, &error));
  g_assert_cmpfloat (floats[0], ==, 0.1f);
  g_assert_false (tf_safetensors_read_i32 (st, tf_safetensors_find (st, "f64"), ints, 1, &error));
  assert_error_contains (error, TF_ERROR_FORMAT, "good.safetensors: tensor 'f64': ",
                         "has dtype F64, expected an integer dtype");
  g_clear_error (&error);

  info = tf_safetensors_find (st, "f32");
  g_assert_false (tf_safetensors_read_f32 (st, info, floats, 2, &error));
  assert_error_contains (error, TF_ERROR_INPUT, "good.safetensors: tensor 'f32': ",
                         "has shape [1] (1 elements), 2 were asked for");
  g_clear_error (&error);
  g_assert_true (tf_safetensors_read_f32 (st, info, floats, 1, &error));
  g_assert_cmpfloat (floats[0], ==, 2.5f);
  g_assert_no_error (error);
}

/* --- writer failures ------------------------------------------------------ */

static const float four[4] = { 1, 2, 3, 4 };

static void
expect_write_error (const char *path, const TfTensorOut *tensors, int n,
                    const char *const *keys, const char *const *values, int n_meta,
                    int code, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_safetensors_write (path, tensors, n, keys, values, n_meta, &error));
  g_autofree char *prefix = g_strconcat (path, ": ", NULL);
  assert_error_contains (error, code, prefix, fragment);
  g_test_message ("%s", error->message);
}

static void
test_write_bad_input (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-safetensors-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "m.safetensors", NULL);
  TfTensorOut a = { .name = "a", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { 4 }, .data = four };
  TfTensorOut twice[2] = { a, a };
  expect_write_error (path, twice, 2, NULL, NULL, 0, TF_ERROR_INPUT, "tensor 'a' appears twice");

  TfTensorOut t = a;
  t.name = "";
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "a tensor has an empty name");
  t.name = "__metadata__";
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "'__metadata__' cannot name a tensor");
  t.name = "bad\xff";
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "not valid UTF-8");
  t = a;
  t.n_dims = TF_SAFETENSORS_MAX_DIMS + 1;
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "tensor 'a': 9 dimensions, expected 0 to 8");
  t.n_dims = -1;
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "tensor 'a': -1 dimensions");
  t = a;
  t.shape[0] = -4;
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "tensor 'a': shape[0] is -4");
  t = a;
  t.n_dims = 3;
  t.shape[0] = t.shape[1] = t.shape[2] = G_GINT64_CONSTANT (1) << 40;
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "is too large");
  /* Each fits, together they do not. */
  TfTensorOut huge[2] = { a, a };
  huge[0].shape[0] = huge[1].shape[0] = G_GINT64_CONSTANT (1) << 60;
  huge[1].name = "b";
  expect_write_error (path, huge, 2, NULL, NULL, 0, TF_ERROR_INPUT, "tensor 'b': shape [1152921504606846976] \xc3\x97 F32 is too large");
  t = a;
  t.data = NULL;
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT, "tensor 'a': no data given");
  t = a;
  t.dtype = TF_DTYPE_I32;
  expect_write_error (path, &t, 1, NULL, NULL, 0, TF_ERROR_INPUT,
                      "tensor 'a': float data can be written as F32, F16 or BF16, not I32");
  const char *keys[2] = { "k", "k" }, *values[2] = { "1", "2" };
  expect_write_error (path, &a, 1, keys, values, 2, TF_ERROR_INPUT, "__metadata__: key 'k' appears twice");

  /* Nothing was created. */
  g_autofree char *listing = tf_test_list_dir (dir);
  g_assert_cmpstr (listing, ==, "");
  tf_test_remove_tree (dir);
}

/* One tensor of 4 floats, or of 100000. */
static gboolean
write_test_tensors (const char *path, gboolean big, GError **error)
{
  g_autofree float *zeros = big ? g_new0 (float, 100000) : NULL;
  TfTensorOut t = { .name = "a", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { 4 }, .data = four };
  if (big)
    {
      t.shape[0] = 100000;
      t.data = zeros;
    }
  return tf_safetensors_write (path, &t, 1, NULL, NULL, 0, error);
}

static void
test_write_io_errors (void)
{
  tf_test_atomic_write_errors (write_test_tensors);
}

static void
test_write_short (void)
{
  tf_test_atomic_write_full_disk ("m.safetensors", write_test_tensors);
}

/* --- memory ---------------------------------------------------------------- */

/* AddressSanitizer maps terabytes of shadow memory, so an address-space
 * limit means nothing under it. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Headers of about 8 MB, and the address space opening one may add. Parsing
 * them into a json-glib tree took 150 to 550 MB; we need 8 to 22 MB (a copy
 * of the header, the decoded strings, 112 bytes per tensor). */
#define BIG_HEADER ((size_t) 8 << 20)
#define OPEN_BUDGET ((size_t) 40 << 20)

/* The process's address space in bytes, or 0 when /proc does not say. */
static size_t
vm_size (void)
{
  g_autofree char *status = NULL;
  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  const char *line = strstr (status, "\nVmSize:");
  return line != NULL ? (size_t) g_ascii_strtoull (line + 9, NULL, 10) * 1024 : 0;
}

/* A string with room for a big header after 8 bytes for its length, sized
 * once so that no reallocation leaves free memory behind to skew the budget. */
static GString *
big_file_new (void)
{
  GString *file = g_string_sized_new (BIG_HEADER + 4096);
  g_string_append_len (file, "01234567", 8);
  return file;
}

static GBytes *
big_file_finish (GString *file, size_t data_size)
{
  uint64_t le = GUINT64_TO_LE ((uint64_t) (file->len - 8));
  memcpy (file->str, &le, 8);
  for (size_t i = 0; i < data_size; i++)
    g_string_append_c (file, (char) (i * 7 + 1));
  return g_string_free_to_bytes (file);
}

/* Valid: about 120 000 one-byte tensors. */
static GBytes *
many_tensors_file (guint *n)
{
  GString *file = big_file_new ();
  g_string_append_c (file, '{');
  for (*n = 0; file->len < BIG_HEADER; (*n)++)
    g_string_append_printf (file, "%s\"t%u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%u,%u]}",
                            *n ? "," : "", *n, *n, *n + 1);
  g_string_append_c (file, '}');
  return big_file_finish (file, *n);
}

/* Valid: one metadata value of 8 MB, escapes included. */
static GBytes *
big_value_file (size_t *value_len)
{
  GString *file = big_file_new ();
  g_string_append (file, "{\"__metadata__\":{\"big\":\"");
  /* 13 bytes of JSON, 6 decoded. */
  for (*value_len = 0; file->len < BIG_HEADER; *value_len += 6)
    g_string_append (file, "ab\\n\\u00e9\\\"");
  g_string_append (file, "\"}}");
  return big_file_finish (file, 0);
}

/* Hostile: a million tiny metadata members, the last a duplicate. */
static GBytes *
many_keys_file (void)
{
  GString *file = big_file_new ();
  g_string_append (file, "{\"__metadata__\":{\"0\":\"\"");
  for (guint i = 1; file->len < BIG_HEADER; i++)
    g_string_append_printf (file, ",\"%x\":\"\"", i);
  g_string_append (file, ",\"0\":\"\"}}");
  return big_file_finish (file, 0);
}

/* Hostile: millions of empty arrays, nested 30 deep. */
static GBytes *
nested_arrays_file (void)
{
  GString *file = big_file_new ();
  g_string_append (file, "{\"x\":[[]");
  while (file->len < BIG_HEADER)
    g_string_append (file, ",[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
  g_string_append (file, "]}");
  return big_file_finish (file, 0);
}

/* Hostile: a million empty entries. */
static GBytes *
empty_entries_file (void)
{
  GString *file = big_file_new ();
  g_string_append (file, "{\"0\":{}");
  for (guint i = 1; file->len < BIG_HEADER; i++)
    g_string_append_printf (file, ",\"%x\":{}", i);
  g_string_append_c (file, '}');
  return big_file_finish (file, 0);
}

/* In a subprocess: every file is built first, then the address space is
 * capped at what is in use plus OPEN_BUDGET. An allocation beyond it makes
 * g_malloc abort, which fails the test. */
static void
memory_bound_child (void)
{
  guint n_tensors = 0;
  size_t value_len = 0;
  g_autoptr (GBytes) tensors = many_tensors_file (&n_tensors);
  g_autoptr (GBytes) value = big_value_file (&value_len);
  g_autoptr (GBytes) keys = many_keys_file ();
  g_autoptr (GBytes) arrays = nested_arrays_file ();
  g_autoptr (GBytes) entries = empty_entries_file ();

  size_t in_use = vm_size ();
  g_assert_cmpuint (in_use, >, 0);
  struct rlimit limit;
  g_assert_cmpint (getrlimit (RLIMIT_AS, &limit), ==, 0);
  limit.rlim_cur = in_use + OPEN_BUDGET;
  g_assert_cmpint (setrlimit (RLIMIT_AS, &limit), ==, 0);

  {
    g_autoptr (TfSafetensors) st = open_ok (tensors);
    g_assert_cmpint (tf_safetensors_n_tensors (st), ==, (int) n_tensors);
    g_autofree char *last = g_strdup_printf ("t%u", n_tensors - 1);
    const TfTensorInfo *info = tf_safetensors_find (st, last);
    g_assert_true (info == tf_safetensors_tensor (st, (int) n_tensors - 1));
    g_assert_cmpuint (info->begin, ==, n_tensors - 1);
    int32_t byte;
    g_assert_true (tf_safetensors_read_i32 (st, info, &byte, 1, NULL));
    g_assert_cmpint (byte, ==, (guint8) ((n_tensors - 1) * 7 + 1));
  }
  {
    g_autoptr (TfSafetensors) st = open_ok (value);
    const char *big = tf_safetensors_metadata (st, "big");
    g_assert_nonnull (big);
    g_assert_cmpuint (strlen (big), ==, value_len);
    g_assert_cmpmem (big, 12, "ab\n\xc3\xa9\"ab\n\xc3\xa9\"", 12);
  }
  expect_format_error (keys, "__metadata__: key '0' appears twice");
  expect_format_error (arrays, "tensor 'x': entry is not an object");
  expect_format_error (entries, "tensor '0': missing 'dtype'");
}

static void
test_memory_bound (void)
{
  if (UNDER_ASAN)
    {
      g_test_skip ("AddressSanitizer reserves too much address space for a limit to mean anything");
      return;
    }
  if (vm_size () == 0)
    {
      g_test_skip ("/proc/self/status does not give the address space size");
      return;
    }
  if (g_test_subprocess ())
    {
      memory_bound_child ();
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* --- fuzzing -------------------------------------------------------------- */

/* Everything a caller might do with a file that opened. */
static void
exercise (TfSafetensors *st)
{
  for (int i = 0; i < tf_safetensors_n_tensors (st); i++)
    {
      const TfTensorInfo *info = tf_safetensors_tensor (st, i);
      g_assert_true (tf_safetensors_find (st, info->name) == info);
      g_autofree float *floats = g_new (float, info->n_elements + 1);
      g_assert_true (tf_safetensors_read_f32 (st, info, floats, info->n_elements, NULL));
      g_autofree int32_t *ints = g_new (int32_t, info->n_elements + 1);
      g_autoptr (GError) error = NULL;
      if (!tf_safetensors_read_i32 (st, info, ints, info->n_elements, &error))
        g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
    }
  guint n;
  g_autofree const char **keys = tf_safetensors_metadata_keys (st, &n);
  for (guint i = 0; i < n; i++)
    g_assert_nonnull (tf_safetensors_metadata (st, keys[i]));
}

static void
test_fuzz (void)
{
  const char *header =
    "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]},"
    "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[22,30]},"
    "\"d\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[30,30]},"
    "\"e\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[30,32]}}";
  g_autoptr (GBytes) valid = make_file (header, 32);
  g_autoptr (TfSafetensors) check = open_ok (valid);
  exercise (check);

  gsize size;
  const guint8 *base = g_bytes_get_data (valid, &size);
  size_t header_end = 8 + strlen (header);
  g_autoptr (GRand) rand = g_rand_new_with_seed (20240601);
  int opened = 0;
  for (int iteration = 0; iteration < 5000; iteration++)
    {
      g_autofree guint8 *buf = g_malloc (size + 16);
      memcpy (buf, base, size);
      size_t len = size;
      switch (g_rand_int_range (rand, 0, 6))
        {
        case 0:  /* a few random bytes in the header */
          for (int k = g_rand_int_range (rand, 1, 5); k > 0; k--)
            buf[g_rand_int_range (rand, 8, (gint32) header_end)] = (guint8) g_rand_int (rand);
          break;
        case 1:  /* one bit anywhere */
          {
            size_t at = (size_t) g_rand_int_range (rand, 0, (gint32) len);
            buf[at] ^= (guint8) (1u << g_rand_int_range (rand, 0, 8));
          }
          break;
        case 2:  /* truncated */
          len = (size_t) g_rand_int_range (rand, 0, (gint32) len);
          break;
        case 3:  /* a digit changed, so the numbers still parse */
          for (int tries = 0; tries < 100; tries++)
            {
              size_t at = (size_t) g_rand_int_range (rand, 8, (gint32) header_end);
              if (g_ascii_isdigit (buf[at]))
                {
                  buf[at] = (guint8) ('0' + g_rand_int_range (rand, 0, 10));
                  break;
                }
            }
          break;
        case 4:  /* the length field off by a little, or wildly */
          {
            uint64_t n = GUINT64_FROM_LE (*(uint64_t *) (void *) buf);
            n = g_rand_boolean (rand) ? n + (uint64_t) g_rand_int_range (rand, -16, 17)
                                      : ((uint64_t) g_rand_int (rand) << 32) | g_rand_int (rand);
            n = GUINT64_TO_LE (n);
            memcpy (buf, &n, 8);
          }
          break;
        case 5:  /* structural characters swapped in */
          {
            static const char structural[] = "{}[]\":,\\-0 e.";
            for (int k = g_rand_int_range (rand, 1, 3); k > 0; k--)
              buf[g_rand_int_range (rand, 8, (gint32) header_end)] =
                (guint8) structural[g_rand_int_range (rand, 0, (gint32) sizeof structural - 1)];
          }
          break;
        }
      g_autoptr (GBytes) bytes = g_bytes_new (buf, len);
      g_autoptr (GError) error = NULL;
      g_autoptr (TfSafetensors) st = tf_safetensors_open_bytes (bytes, "fuzz", &error);
      if (st != NULL)
        {
          g_assert_no_error (error);
          exercise (st);
          opened++;
        }
      else
        {
          g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
          g_assert_true (g_str_has_prefix (error->message, "fuzz: "));
          g_assert_true (g_utf8_validate (error->message, -1, NULL));
        }
    }
  g_test_message ("%d of 5000 mutated files opened", opened);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/safetensors/dtypes", test_dtypes);
  g_test_add_func ("/safetensors/f16-exhaustive", test_f16_exhaustive);
  g_test_add_func ("/safetensors/f16-rounding", test_f16_rounding);
  g_test_add_func ("/safetensors/bf16-exhaustive", test_bf16_exhaustive);
  g_test_add_func ("/safetensors/bf16-rounding", test_bf16_rounding);
  g_test_add_func ("/safetensors/round-trip", test_round_trip);
  g_test_add_func ("/safetensors/header-bytes", test_header_bytes);
  g_test_add_func ("/safetensors/foreign-files", test_foreign_files);
  g_test_add_func ("/safetensors/malformed-headers", test_malformed_headers);
  g_test_add_func ("/safetensors/malformed-framing", test_malformed_framing);
  g_test_add_func ("/safetensors/open-errors", test_open_errors);
  g_test_add_func ("/safetensors/read-conversions", test_read_conversions);
  g_test_add_func ("/safetensors/write-bad-input", test_write_bad_input);
  g_test_add_func ("/safetensors/write-io-errors", test_write_io_errors);
  g_test_add_func ("/safetensors/write-short", test_write_short);
  g_test_add_func ("/safetensors/memory-bound", test_memory_bound);
  g_test_add_func ("/safetensors/fuzz", test_fuzz);

  return g_test_run ();
}
