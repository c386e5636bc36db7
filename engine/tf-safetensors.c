/* tf-safetensors.c: reading and writing .safetensors files (SPEC §6).
 *
 * Reading validates the whole file before anything is handed out, so a
 * caller never sees a tensor whose bytes lie outside the file. The header is
 * checked twice: first by a strict JSON scanner of our own (json-glib 1.6
 * accepts comments, single quotes, hex and leading-zero numbers, and clamps
 * integers that do not fit in 64 bits; the scanner also bounds the nesting
 * depth so the recursive parser cannot run out of stack), then json-glib
 * builds the tree. Duplicate names, which json-glib silently merges, are
 * caught from its "object-member" signal.
 *
 * Writing goes to "PATH.XXXXXX" beside the target, fsync, rename, fsync of
 * the directory: a crash leaves either the old file or the new one. */
#include "tf-safetensors.h"
#include "tf-config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deeper headers are refused before json-glib sees them. */
#define HEADER_MAX_DEPTH 64
/* Elements converted per write() when the writer changes the dtype. */
#define WRITE_CHUNK_ELEMENTS 16384

struct _TfSafetensors {
  char          *display_name;
  GBytes        *bytes;        /* the whole file; keeps the data valid */
  const guint8  *data;         /* start of the data section */
  uint64_t       data_size;
  TfTensorInfo  *tensors;      /* sorted by offset */
  int            n_tensors;
  GHashTable    *by_name;      /* name → TfTensorInfo*, borrowed */
  GHashTable    *metadata;     /* key → value, owned */
  char         **metadata_keys; /* sorted, NULL-terminated, strings borrowed from metadata */
  guint          n_metadata;
};

/* --- dtypes ------------------------------------------------------------ */

static const struct {
  const char *name;
  size_t      size;
} dtype_table[TF_N_DTYPES] = {
  [TF_DTYPE_F32]  = { "F32",  4 },
  [TF_DTYPE_F16]  = { "F16",  2 },
  [TF_DTYPE_BF16] = { "BF16", 2 },
  [TF_DTYPE_F64]  = { "F64",  8 },
  [TF_DTYPE_I32]  = { "I32",  4 },
  [TF_DTYPE_I64]  = { "I64",  8 },
  [TF_DTYPE_U8]   = { "U8",   1 },
  [TF_DTYPE_I8]   = { "I8",   1 },
  [TF_DTYPE_I16]  = { "I16",  2 },
  [TF_DTYPE_U16]  = { "U16",  2 },
  [TF_DTYPE_U32]  = { "U32",  4 },
  [TF_DTYPE_U64]  = { "U64",  8 },
  [TF_DTYPE_BOOL] = { "BOOL", 1 },
};

const char *
tf_dtype_name (TfDtype dtype)
{
  g_return_val_if_fail ((unsigned) dtype < TF_N_DTYPES, "?");
  return dtype_table[dtype].name;
}

gboolean
tf_dtype_from_name (const char *name, TfDtype *dtype)
{
  for (int i = 0; i < TF_N_DTYPES; i++)
    if (g_strcmp0 (name, dtype_table[i].name) == 0)
      {
        if (dtype != NULL)
          *dtype = (TfDtype) i;
        return TRUE;
      }
  return FALSE;
}

size_t
tf_dtype_size (TfDtype dtype)
{
  g_return_val_if_fail ((unsigned) dtype < TF_N_DTYPES, 0);
  return dtype_table[dtype].size;
}

static gboolean
dtype_is_float (TfDtype dtype)
{
  return dtype == TF_DTYPE_F32 || dtype == TF_DTYPE_F16 ||
         dtype == TF_DTYPE_BF16 || dtype == TF_DTYPE_F64;
}

/* --- half-precision conversions ----------------------------------------- */

static uint32_t
f32_bits (float f)
{
  uint32_t u;
  memcpy (&u, &f, sizeof u);
  return u;
}

static float
f32_from_bits (uint32_t u)
{
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

uint16_t
tf_f32_to_f16 (float f)
{
  uint32_t x = f32_bits (f);
  uint16_t sign = (uint16_t) ((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;

  if (x >= 0x7f800000u)  /* Inf, or NaN: keep the top payload bits, force quiet */
    return x == 0x7f800000u ? (uint16_t) (sign | 0x7c00u)
                            : (uint16_t) (sign | 0x7e00u | ((x >> 13) & 0x3ffu));
  /* 65520 lies halfway between 65504 (odd mantissa) and 2^16: ties go up to Inf. */
  if (x >= 0x477ff000u)
    return (uint16_t) (sign | 0x7c00u);
  if (x >= 0x38800000u)  /* a normal half: rebias, round the 13 dropped bits */
    {
      uint32_t rounded = x + 0x0fffu + ((x >> 13) & 1u);
      return (uint16_t) (sign | ((rounded - 0x38000000u) >> 13));
    }
  /* Subnormal half, in units of 2^-24. Below 2^-25 everything rounds to zero,
   * and 2^-25 itself is a tie that goes to the even zero. */
  uint32_t e = x >> 23;
  if (e < 102)
    return sign;
  uint32_t m = (x & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126 - e;  /* 14..24 */
  uint32_t q = m >> shift;
  uint32_t rem = m & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u)))
    q++;
  return (uint16_t) (sign | q);  /* q may carry into 0x400, the smallest normal */
}

float
tf_f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;

  if (e == 0x1f)
    return f32_from_bits (sign | 0x7f800000u | (m << 13));
  if (e == 0)  /* zero or subnormal: m · 2^-24, exact in float */
    {
      float v = (float) m * 0x1p-24f;
      return sign ? -v : v;
    }
  return f32_from_bits (sign | ((e + 112) << 23) | (m << 13));
}

uint16_t
tf_f32_to_bf16 (float f)
{
  uint32_t x = f32_bits (f);
  if ((x & 0x7fffffffu) > 0x7f800000u)  /* NaN: truncate, force quiet */
    return (uint16_t) ((x >> 16) | 0x0040u);
  /* Round to nearest even; a carry into the exponent rounds up to Inf. */
  return (uint16_t) ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float
tf_bf16_to_f32 (uint16_t h)
{
  return f32_from_bits ((uint32_t) h << 16);
}

/* --- messages ----------------------------------------------------------- */

/* Sets "FILE: tensor 'NAME': problem" or "FILE: problem". Returns FALSE. */
G_GNUC_PRINTF (5, 6)
static gboolean
fail (GError **error, int code, const char *file, const char *tensor, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *problem = g_strdup_vprintf (format, args);
  va_end (args);
  if (tensor != NULL)
    g_set_error (error, TF_ERROR, code, "%s: tensor '%s': %s", file, tensor, problem);
  else
    g_set_error (error, TF_ERROR, code, "%s: %s", file, problem);
  return FALSE;
}

static char *
format_shape (const int64_t *shape, int n_dims)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < n_dims; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* Element count and byte size of a shape, or FALSE when either overflows. */
static gboolean
shape_size (const int64_t *shape, int n_dims, TfDtype dtype,
            uint64_t *n_elements, uint64_t *n_bytes)
{
  uint64_t n = 1;
  *n_elements = 0;
  *n_bytes = 0;
  for (int i = 0; i < n_dims; i++)
    if (!g_uint64_checked_mul (&n, n, (uint64_t) shape[i]))
      return FALSE;
  *n_elements = n;
  return g_uint64_checked_mul (n_bytes, n, tf_dtype_size (dtype));
}

/* --- strict JSON scan --------------------------------------------------- */

typedef struct {
  const char *p;
  const char *start;
  const char *end;
  const char *problem;        /* static text */
  char        detail[96];     /* the offending token, when useful */
} JsonScan;

static gboolean
scan_error (JsonScan *s, const char *problem)
{
  s->problem = problem;
  return FALSE;
}

static void
scan_ws (JsonScan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Reads the 4 hex digits of a \u escape at s->p. */
static gboolean
scan_hex4 (JsonScan *s, unsigned *out)
{
  unsigned v = 0;
  if (s->end - s->p < 4)
    return scan_error (s, "a \\u escape needs four hex digits");
  for (int i = 0; i < 4; i++)
    {
      int d = hex_value (s->p[i]);
      if (d < 0)
        return scan_error (s, "a \\u escape needs four hex digits");
      v = v * 16 + (unsigned) d;
    }
  s->p += 4;
  *out = v;
  return TRUE;
}

static gboolean
scan_string (JsonScan *s)
{
  s->p++;  /* opening quote */
  while (s->p < s->end)
    {
      unsigned char c = (unsigned char) *s->p;
      if (c == '"')
        {
          s->p++;
          return TRUE;
        }
      if (c < 0x20)
        return scan_error (s, "control character in a string");
      if (c != '\\')
        {
          s->p++;
          continue;
        }
      s->p++;
      if (s->p >= s->end)
        break;
      char esc = *s->p++;
      if (strchr ("\"\\/bfnrt", esc) != NULL && esc != '\0')
        continue;
      if (esc != 'u')
        return scan_error (s, "invalid escape in a string");
      unsigned u;
      if (!scan_hex4 (s, &u))
        return FALSE;
      /* Names and values become C strings, so U+0000 cannot be represented. */
      if (u == 0)
        return scan_error (s, "\\u0000 in a string");
      if (u >= 0xdc00 && u <= 0xdfff)
        return scan_error (s, "unpaired surrogate in a string");
      if (u >= 0xd800 && u <= 0xdbff)
        {
          unsigned low;
          if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
            return scan_error (s, "unpaired surrogate in a string");
          s->p += 2;
          if (!scan_hex4 (s, &low))
            return FALSE;
          if (low < 0xdc00 || low > 0xdfff)
            return scan_error (s, "unpaired surrogate in a string");
        }
    }
  return scan_error (s, "unterminated string");
}

static gboolean
scan_number (JsonScan *s)
{
  const char *begin = s->p;
  gboolean negative = FALSE, integral = TRUE, overflow = FALSE;
  uint64_t magnitude = 0;

  if (*s->p == '-')
    {
      negative = TRUE;
      s->p++;
    }
  if (s->p >= s->end || !g_ascii_isdigit (*s->p))
    return scan_error (s, "invalid number");
  if (*s->p == '0')
    {
      s->p++;
      if (s->p < s->end && g_ascii_isdigit (*s->p))
        return scan_error (s, "number with a leading zero");
    }
  else
    while (s->p < s->end && g_ascii_isdigit (*s->p))
      {
        if (!g_uint64_checked_mul (&magnitude, magnitude, 10) ||
            !g_uint64_checked_add (&magnitude, magnitude, (uint64_t) (*s->p - '0')))
          overflow = TRUE;
        s->p++;
      }
  if (s->p < s->end && *s->p == '.')
    {
      integral = FALSE;
      s->p++;
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return scan_error (s, "invalid number");
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        s->p++;
    }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
    {
      integral = FALSE;
      s->p++;
      if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
        s->p++;
      if (s->p >= s->end || !g_ascii_isdigit (*s->p))
        return scan_error (s, "invalid number");
      while (s->p < s->end && g_ascii_isdigit (*s->p))
        s->p++;
    }
  /* json-glib would clamp these silently; no size or offset can be that big. */
  if (integral && (overflow || magnitude > (negative ? (uint64_t) G_MAXINT64 + 1 : (uint64_t) G_MAXINT64)))
    {
      int len = (int) MIN (s->p - begin, (ptrdiff_t) sizeof s->detail - 1);
      memcpy (s->detail, begin, (size_t) len);
      s->detail[len] = '\0';
      s->p = begin;
      return scan_error (s, "integer out of range");
    }
  return TRUE;
}

static gboolean
scan_literal (JsonScan *s, const char *word)
{
  size_t n = strlen (word);
  if ((size_t) (s->end - s->p) < n || memcmp (s->p, word, n) != 0)
    return scan_error (s, "unexpected character");
  s->p += n;
  return TRUE;
}

static gboolean scan_value (JsonScan *s, int depth);

static gboolean
scan_container (JsonScan *s, int depth)
{
  gboolean object = *s->p == '{';
  char close = object ? '}' : ']';

  if (depth > HEADER_MAX_DEPTH)
    return scan_error (s, "nested more than 64 levels deep");
  s->p++;
  scan_ws (s);
  if (s->p < s->end && *s->p == close)
    {
      s->p++;
      return TRUE;
    }
  for (;;)
    {
      if (object)
        {
          if (s->p >= s->end || *s->p != '"')
            return scan_error (s, s->p >= s->end ? "unexpected end" : "expected a string key");
          if (!scan_string (s))
            return FALSE;
          scan_ws (s);
          if (s->p >= s->end || *s->p != ':')
            return scan_error (s, s->p >= s->end ? "unexpected end" : "expected ':'");
          s->p++;
          scan_ws (s);
        }
      if (!scan_value (s, depth))
        return FALSE;
      scan_ws (s);
      if (s->p >= s->end)
        return scan_error (s, "unexpected end");
      if (*s->p == close)
        {
          s->p++;
          return TRUE;
        }
      if (*s->p != ',')
        return scan_error (s, object ? "expected ',' or '}'" : "expected ',' or ']'");
      s->p++;
      scan_ws (s);
    }
}

static gboolean
scan_value (JsonScan *s, int depth)
{
  if (s->p >= s->end)
    return scan_error (s, "unexpected end");
  switch (*s->p)
    {
    case '{':
    case '[':
      return scan_container (s, depth + 1);
    case '"':
      return scan_string (s);
    case 't':
      return scan_literal (s, "true");
    case 'f':
      return scan_literal (s, "false");
    case 'n':
      return scan_literal (s, "null");
    default:
      if (*s->p == '-' || g_ascii_isdigit (*s->p))
        return scan_number (s);
      return scan_error (s, "unexpected character");
    }
}

/* Checks that @text is exactly one JSON value (RFC 8259) plus whitespace. */
static gboolean
check_json_syntax (const char *file, const char *text, size_t len, GError **error)
{
  JsonScan s = { .p = text, .start = text, .end = text + len };
  gboolean ok = scan_value (&s, 0);
  if (ok)
    {
      scan_ws (&s);
      if (s.p < s.end)
        ok = scan_error (&s, "unexpected text after the end");
    }
  if (ok)
    return TRUE;
  if (s.detail[0] != '\0')
    return fail (error, TF_ERROR_FORMAT, file, NULL,
                 "header is not valid JSON: %s (%s) at byte %td of the header",
                 s.problem, s.detail, s.p - s.start);
  return fail (error, TF_ERROR_FORMAT, file, NULL,
               "header is not valid JSON: %s at byte %td of the header",
               s.problem, s.p - s.start);
}

/* --- duplicate members ------------------------------------------------ */

/* json-glib keeps the last of two equal member names without a word. A
 * member is a duplicate exactly when adding it did not grow its object,
 * which is what "object-member" lets us see (it fires after the insert). */
typedef struct {
  GHashTable *sizes;      /* JsonObject* → size after its previous member */
  int         depth;      /* object nesting, 1 = the header object */
  char       *dup_key;    /* the first duplicate found */
  int         dup_depth;
  char       *dup_top;    /* the header member that holds it */
} DupScan;

static void
on_object_start (JsonParser *parser, gpointer user_data)
{
  (void) parser;
  ((DupScan *) user_data)->depth++;
}

static void
on_object_end (JsonParser *parser, JsonObject *object, gpointer user_data)
{
  DupScan *d = user_data;
  (void) parser;
  /* Forget it: a later object may reuse the address. */
  g_hash_table_remove (d->sizes, object);
  d->depth--;
}

static void
on_object_member (JsonParser *parser, JsonObject *object, const char *name, gpointer user_data)
{
  DupScan *d = user_data;
  guint before = GPOINTER_TO_UINT (g_hash_table_lookup (d->sizes, object));
  guint after = json_object_get_size (object);
  (void) parser;

  g_hash_table_insert (d->sizes, object, GUINT_TO_POINTER (after));
  if (after == before && d->dup_key == NULL)
    {
      d->dup_key = g_strdup (name);
      d->dup_depth = d->depth;
    }
  /* The first header member to finish after a nested duplicate contains it. */
  if (d->depth == 1 && d->dup_key != NULL && d->dup_top == NULL)
    d->dup_top = g_strdup (name);
}

static gboolean
report_duplicate (const DupScan *d, const char *file, GError **error)
{
  if (d->dup_depth == 1)
    {
      if (strcmp (d->dup_key, "__metadata__") == 0)
        return fail (error, TF_ERROR_FORMAT, file, NULL, "'__metadata__' appears twice");
      return fail (error, TF_ERROR_FORMAT, file, NULL, "tensor '%s' appears twice", d->dup_key);
    }
  if (strcmp (d->dup_top, "__metadata__") == 0)
    return fail (error, TF_ERROR_FORMAT, file, NULL,
                 "__metadata__: key '%s' appears twice", d->dup_key);
  return fail (error, TF_ERROR_FORMAT, file, d->dup_top, "key '%s' appears twice", d->dup_key);
}

/* --- reading ------------------------------------------------------------ */

void
tf_safetensors_free (TfSafetensors *st)
{
  if (st == NULL)
    return;
  for (int i = 0; i < st->n_tensors; i++)
    g_free (st->tensors[i].name);
  g_free (st->tensors);
  g_clear_pointer (&st->by_name, g_hash_table_unref);
  g_clear_pointer (&st->metadata, g_hash_table_unref);
  g_free (st->metadata_keys);
  g_clear_pointer (&st->bytes, g_bytes_unref);
  g_free (st->display_name);
  g_free (st);
}

/* A non-negative integral JSON number. */
static gboolean
node_get_uint (JsonNode *node, uint64_t *out)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int (node);
  if (v < 0)
    return FALSE;
  *out = (uint64_t) v;
  return TRUE;
}

static gboolean
parse_metadata (TfSafetensors *st, JsonNode *node, GError **error)
{
  const char *file = st->display_name;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, TF_ERROR_FORMAT, file, NULL, "__metadata__ is not an object");
  JsonObject *object = json_node_get_object (node);
  g_autoptr (GList) keys = json_object_get_members (object);
  for (GList *l = keys; l != NULL; l = l->next)
    {
      JsonNode *value = json_object_get_member (object, l->data);
      if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_STRING)
        return fail (error, TF_ERROR_FORMAT, file, NULL,
                     "__metadata__: value of '%s' is not a string", (const char *) l->data);
      g_hash_table_insert (st->metadata, g_strdup (l->data),
                           g_strdup (json_node_get_string (value)));
    }
  return TRUE;
}

static gboolean
parse_tensor (TfSafetensors *st, const char *name, JsonNode *node, TfTensorInfo *info,
              GError **error)
{
  const char *file = st->display_name;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, TF_ERROR_FORMAT, file, name, "entry is not an object");
  JsonObject *object = json_node_get_object (node);

  g_autoptr (GList) keys = json_object_get_members (object);
  for (GList *l = keys; l != NULL; l = l->next)
    if (strcmp (l->data, "dtype") != 0 && strcmp (l->data, "shape") != 0 &&
        strcmp (l->data, "data_offsets") != 0)
      return fail (error, TF_ERROR_FORMAT, file, name, "unknown key '%s'", (const char *) l->data);

  JsonNode *dtype = json_object_get_member (object, "dtype");
  JsonNode *shape = json_object_get_member (object, "shape");
  JsonNode *offsets = json_object_get_member (object, "data_offsets");
  if (dtype == NULL)
    return fail (error, TF_ERROR_FORMAT, file, name, "missing 'dtype'");
  if (shape == NULL)
    return fail (error, TF_ERROR_FORMAT, file, name, "missing 'shape'");
  if (offsets == NULL)
    return fail (error, TF_ERROR_FORMAT, file, name, "missing 'data_offsets'");

  if (!JSON_NODE_HOLDS_VALUE (dtype) || json_node_get_value_type (dtype) != G_TYPE_STRING)
    return fail (error, TF_ERROR_FORMAT, file, name, "dtype is not a string");
  if (!tf_dtype_from_name (json_node_get_string (dtype), &info->dtype))
    return fail (error, TF_ERROR_FORMAT, file, name, "unknown dtype '%s'",
                 json_node_get_string (dtype));

  if (!JSON_NODE_HOLDS_ARRAY (shape))
    return fail (error, TF_ERROR_FORMAT, file, name, "shape is not an array");
  JsonArray *dims = json_node_get_array (shape);
  guint n_dims = json_array_get_length (dims);
  if (n_dims > TF_SAFETENSORS_MAX_DIMS)
    return fail (error, TF_ERROR_FORMAT, file, name,
                 "shape has %u dimensions, at most %d are supported",
                 n_dims, TF_SAFETENSORS_MAX_DIMS);
  info->n_dims = (int) n_dims;
  for (guint i = 0; i < n_dims; i++)
    {
      uint64_t dim;
      if (!node_get_uint (json_array_get_element (dims, i), &dim))
        return fail (error, TF_ERROR_FORMAT, file, name,
                     "shape[%u] is not a non-negative integer", i);
      info->shape[i] = (int64_t) dim;
    }

  uint64_t begin, end;
  if (!JSON_NODE_HOLDS_ARRAY (offsets) ||
      json_array_get_length (json_node_get_array (offsets)) != 2 ||
      !node_get_uint (json_array_get_element (json_node_get_array (offsets), 0), &begin) ||
      !node_get_uint (json_array_get_element (json_node_get_array (offsets), 1), &end))
    return fail (error, TF_ERROR_FORMAT, file, name,
                 "data_offsets is not [begin,end] with two non-negative integers");
  if (begin > end)
    return fail (error, TF_ERROR_FORMAT, file, name,
                 "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] end before they begin",
                 begin, end);
  info->begin = begin;
  info->end = end;

  g_autofree char *shape_text = format_shape (info->shape, info->n_dims);
  uint64_t n_bytes;
  if (!shape_size (info->shape, info->n_dims, info->dtype, &info->n_elements, &n_bytes))
    return fail (error, TF_ERROR_FORMAT, file, name, "shape %s × %s is too large",
                 shape_text, tf_dtype_name (info->dtype));
  if (n_bytes != end - begin)
    return fail (error, TF_ERROR_FORMAT, file, name,
                 "shape %s × %s needs %" G_GUINT64_FORMAT " bytes, data_offsets give %" G_GUINT64_FORMAT,
                 shape_text, tf_dtype_name (info->dtype), n_bytes, end - begin);
  if (end > st->data_size)
    return fail (error, TF_ERROR_FORMAT, file, name,
                 "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] go past the end of the data (%" G_GUINT64_FORMAT " bytes)",
                 begin, end, st->data_size);
  return TRUE;
}

static int
compare_offsets (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const TfTensorInfo *x = a, *y = b;
  (void) user_data;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The ranges, sorted, must tile the data section exactly. */
static gboolean
check_layout (TfSafetensors *st, GError **error)
{
  const char *file = st->display_name;
  uint64_t expected = 0;
  const TfTensorInfo *previous = NULL;

  for (int i = 0; i < st->n_tensors; i++)
    {
      const TfTensorInfo *t = &st->tensors[i];
      if (t->begin < expected)
        return fail (error, TF_ERROR_FORMAT, file, t->name,
                     "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] overlap tensor '%s' [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]",
                     t->begin, t->end, previous->name, previous->begin, previous->end);
      if (t->begin > expected)
        {
          if (previous == NULL)
            return fail (error, TF_ERROR_FORMAT, file, t->name,
                         "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] leave a gap: the data begins at 0",
                         t->begin, t->end);
          return fail (error, TF_ERROR_FORMAT, file, t->name,
                       "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] leave a gap after tensor '%s', which ends at %" G_GUINT64_FORMAT,
                       t->begin, t->end, previous->name, expected);
        }
      expected = t->end;
      previous = t;
    }
  if (expected != st->data_size)
    return fail (error, TF_ERROR_FORMAT, file, NULL,
                 "the tensors cover %" G_GUINT64_FORMAT " bytes of data but the data section has %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " trailing bytes)",
                 expected, st->data_size, st->data_size - expected);
  return TRUE;
}

static gboolean
parse_header (TfSafetensors *st, const char *text, size_t len, GError **error)
{
  const char *file = st->display_name;

  if (memchr (text, '\0', len) != NULL)
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header contains a NUL byte");
  if (!g_utf8_validate_len (text, len, NULL))
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header is not valid UTF-8");
  if (len == 0 || text[0] != '{')
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header does not start with '{'");
  if (!check_json_syntax (file, text, len, error))
    return FALSE;

  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  DupScan dups = { .sizes = g_hash_table_new (NULL, NULL) };
  g_signal_connect (parser, "object-start", G_CALLBACK (on_object_start), &dups);
  g_signal_connect (parser, "object-end", G_CALLBACK (on_object_end), &dups);
  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &dups);
  g_autoptr (GError) json_error = NULL;
  gboolean parsed = json_parser_load_from_data (parser, text, (gssize) len, &json_error);
  gboolean ok;
  if (!parsed)
    ok = fail (error, TF_ERROR_FORMAT, file, NULL, "header is not valid JSON: %s",
               json_error->message);
  else if (dups.dup_key != NULL)
    ok = report_duplicate (&dups, file, error);
  else
    ok = TRUE;
  g_hash_table_unref (dups.sizes);
  g_free (dups.dup_key);
  g_free (dups.dup_top);
  if (!ok)
    return FALSE;

  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header is not a JSON object");
  JsonObject *object = json_node_get_object (root);

  g_autoptr (GList) names = json_object_get_members (object);
  for (GList *l = names; l != NULL; l = l->next)
    {
      const char *name = l->data;
      JsonNode *node = json_object_get_member (object, name);
      if (strcmp (name, "__metadata__") == 0)
        {
          if (!parse_metadata (st, node, error))
            return FALSE;
          continue;
        }
      TfTensorInfo info = { 0 };
      if (!parse_tensor (st, name, node, &info, error))
        return FALSE;
      /* Grown only for valid entries, each of which takes dozens of header bytes. */
      if ((st->n_tensors & (st->n_tensors - 1)) == 0)
        st->tensors = g_renew (TfTensorInfo, st->tensors, st->n_tensors ? 2 * (gsize) st->n_tensors : 1);
      info.name = g_strdup (name);
      st->tensors[st->n_tensors++] = info;
    }

  g_qsort_with_data (st->tensors, st->n_tensors, sizeof (TfTensorInfo), compare_offsets, NULL);
  if (!check_layout (st, error))
    return FALSE;
  for (int i = 0; i < st->n_tensors; i++)
    g_hash_table_insert (st->by_name, st->tensors[i].name, &st->tensors[i]);

  st->metadata_keys = (char **) g_hash_table_get_keys_as_array (st->metadata, &st->n_metadata);
  qsort (st->metadata_keys, st->n_metadata, sizeof (char *), compare_strings);
  return TRUE;
}

TfSafetensors *
tf_safetensors_open_bytes (GBytes *bytes, const char *display_name, GError **error)
{
  g_return_val_if_fail (bytes != NULL, NULL);
  g_return_val_if_fail (display_name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  gsize size;
  const guint8 *p = g_bytes_get_data (bytes, &size);
  if (size < 8)
    {
      fail (error, TF_ERROR_FORMAT, display_name, NULL,
            "file is %" G_GSIZE_FORMAT " bytes, too short for the 8-byte header length", size);
      return NULL;
    }
  uint64_t header_len;
  memcpy (&header_len, p, sizeof header_len);
  header_len = GUINT64_FROM_LE (header_len);
  if (header_len > TF_SAFETENSORS_MAX_HEADER)
    {
      fail (error, TF_ERROR_FORMAT, display_name, NULL,
            "header length %" G_GUINT64_FORMAT " exceeds the limit of %u bytes",
            header_len, TF_SAFETENSORS_MAX_HEADER);
      return NULL;
    }
  if (header_len > size - 8)
    {
      fail (error, TF_ERROR_FORMAT, display_name, NULL,
            "header length %" G_GUINT64_FORMAT " exceeds the file size (%" G_GSIZE_FORMAT " bytes)",
            header_len, size);
      return NULL;
    }

  g_autoptr (TfSafetensors) st = g_new0 (TfSafetensors, 1);
  st->display_name = g_strdup (display_name);
  st->bytes = g_bytes_ref (bytes);
  st->data = p + 8 + header_len;
  st->data_size = size - 8 - header_len;
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!parse_header (st, (const char *) p + 8, (size_t) header_len, error))
    return NULL;
  return g_steal_pointer (&st);
}

TfSafetensors *
tf_safetensors_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* File names need not be UTF-8; messages must be. */
  g_autofree char *shown = g_filename_display_name (path);

  /* O_NONBLOCK so that a FIFO is refused below instead of blocking here. */
  int fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0)
    {
      int saved = errno;
      fail (error, TF_ERROR_IO, shown, NULL, "could not read: %s", g_strerror (saved));
      return NULL;
    }
  struct stat info;
  if (fstat (fd, &info) != 0)
    {
      int saved = errno;
      close (fd);
      fail (error, TF_ERROR_IO, shown, NULL, "could not read: %s", g_strerror (saved));
      return NULL;
    }
  if (!S_ISREG (info.st_mode))
    {
      close (fd);
      fail (error, TF_ERROR_IO, shown, NULL, "could not read: not a regular file");
      return NULL;
    }
  /* Mapped, so a large checkpoint is paged in on demand. Our writer replaces
   * files by rename, which leaves the mapped inode intact. */
  g_autoptr (GError) map_error = NULL;
  GMappedFile *mapped = g_mapped_file_new_from_fd (fd, FALSE, &map_error);
  close (fd);
  if (mapped == NULL)
    {
      fail (error, TF_ERROR_IO, shown, NULL, "could not read: %s", map_error->message);
      return NULL;
    }
  g_autoptr (GBytes) bytes = g_mapped_file_get_bytes (mapped);
  g_mapped_file_unref (mapped);
  return tf_safetensors_open_bytes (bytes, shown, error);
}

const char *
tf_safetensors_display_name (const TfSafetensors *st)
{
  g_return_val_if_fail (st != NULL, NULL);
  return st->display_name;
}

int
tf_safetensors_n_tensors (const TfSafetensors *st)
{
  g_return_val_if_fail (st != NULL, 0);
  return st->n_tensors;
}

const TfTensorInfo *
tf_safetensors_tensor (const TfSafetensors *st, int index)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (index >= 0 && index < st->n_tensors, NULL);
  return &st->tensors[index];
}

const TfTensorInfo *
tf_safetensors_find (const TfSafetensors *st, const char *name)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return g_hash_table_lookup (st->by_name, name);
}

static gboolean
info_belongs (const TfSafetensors *st, const TfTensorInfo *info)
{
  return info >= st->tensors && info < st->tensors + st->n_tensors;
}

const void *
tf_safetensors_data (const TfSafetensors *st, const TfTensorInfo *info)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (info_belongs (st, info), NULL);
  return st->data + info->begin;
}

/* Element @i of an integer or BOOL tensor, widened. Unaligned, little-endian. */
static gboolean
load_integer (const guint8 *src, TfDtype dtype, size_t i, int64_t *as_signed, uint64_t *as_unsigned)
{
  *as_unsigned = 0;
  *as_signed = 0;
  switch (dtype)
    {
    case TF_DTYPE_U8:
      *as_unsigned = src[i];
      return FALSE;
    case TF_DTYPE_BOOL:
      *as_unsigned = src[i] != 0;
      return FALSE;
    case TF_DTYPE_I8:
      *as_signed = (int8_t) src[i];
      return TRUE;
    case TF_DTYPE_I16:
    case TF_DTYPE_U16:
      {
        uint16_t v;
        memcpy (&v, src + 2 * i, 2);
        v = GUINT16_FROM_LE (v);
        if (dtype == TF_DTYPE_U16)
          {
            *as_unsigned = v;
            return FALSE;
          }
        *as_signed = (int16_t) v;
        return TRUE;
      }
    case TF_DTYPE_I32:
    case TF_DTYPE_U32:
      {
        uint32_t v;
        memcpy (&v, src + 4 * i, 4);
        v = GUINT32_FROM_LE (v);
        if (dtype == TF_DTYPE_U32)
          {
            *as_unsigned = v;
            return FALSE;
          }
        *as_signed = (int32_t) v;
        return TRUE;
      }
    case TF_DTYPE_I64:
    case TF_DTYPE_U64:
      {
        uint64_t v;
        memcpy (&v, src + 8 * i, 8);
        v = GUINT64_FROM_LE (v);
        if (dtype == TF_DTYPE_U64)
          {
            *as_unsigned = v;
            return FALSE;
          }
        *as_signed = (int64_t) v;
        return TRUE;
      }
    default:
      g_assert_not_reached ();
    }
}

static gboolean
check_count (const TfSafetensors *st, const TfTensorInfo *info, size_t n, GError **error)
{
  if (n == info->n_elements)
    return TRUE;
  g_autofree char *shape = format_shape (info->shape, info->n_dims);
  return fail (error, TF_ERROR_INPUT, st->display_name, info->name,
               "has shape %s (%" G_GUINT64_FORMAT " elements), %" G_GSIZE_FORMAT " were asked for",
               shape, info->n_elements, n);
}

gboolean
tf_safetensors_read_f32 (const TfSafetensors *st, const TfTensorInfo *info,
                         float *out, size_t n, GError **error)
{
  g_return_val_if_fail (st != NULL, FALSE);
  g_return_val_if_fail (info_belongs (st, info), FALSE);
  g_return_val_if_fail (out != NULL || n == 0, FALSE);
  if (!check_count (st, info, n, error))
    return FALSE;

  const guint8 *src = st->data + info->begin;
  switch (info->dtype)
    {
    case TF_DTYPE_F32:
      for (size_t i = 0; i < n; i++)
        {
          uint32_t v;
          memcpy (&v, src + 4 * i, 4);
          out[i] = f32_from_bits (GUINT32_FROM_LE (v));
        }
      break;
    case TF_DTYPE_F16:
    case TF_DTYPE_BF16:
      for (size_t i = 0; i < n; i++)
        {
          uint16_t v;
          memcpy (&v, src + 2 * i, 2);
          v = GUINT16_FROM_LE (v);
          out[i] = info->dtype == TF_DTYPE_F16 ? tf_f16_to_f32 (v) : tf_bf16_to_f32 (v);
        }
      break;
    case TF_DTYPE_F64:
      for (size_t i = 0; i < n; i++)
        {
          uint64_t v;
          double d;
          memcpy (&v, src + 8 * i, 8);
          v = GUINT64_FROM_LE (v);
          memcpy (&d, &v, 8);
          out[i] = (float) d;
        }
      break;
    default:
      for (size_t i = 0; i < n; i++)
        {
          int64_t s;
          uint64_t u;
          if (load_integer (src, info->dtype, i, &s, &u))
            out[i] = (float) s;
          else
            out[i] = (float) u;
        }
      break;
    }
  return TRUE;
}

gboolean
tf_safetensors_read_i32 (const TfSafetensors *st, const TfTensorInfo *info,
                         int32_t *out, size_t n, GError **error)
{
  g_return_val_if_fail (st != NULL, FALSE);
  g_return_val_if_fail (info_belongs (st, info), FALSE);
  g_return_val_if_fail (out != NULL || n == 0, FALSE);
  if (dtype_is_float (info->dtype))
    return fail (error, TF_ERROR_FORMAT, st->display_name, info->name,
                 "has dtype %s, expected an integer dtype", tf_dtype_name (info->dtype));
  if (!check_count (st, info, n, error))
    return FALSE;

  const guint8 *src = st->data + info->begin;
  for (size_t i = 0; i < n; i++)
    {
      int64_t s;
      uint64_t u;
      if (load_integer (src, info->dtype, i, &s, &u))
        {
          if (s < G_MININT32 || s > G_MAXINT32)
            return fail (error, TF_ERROR_FORMAT, st->display_name, info->name,
                         "element %" G_GSIZE_FORMAT " (%" G_GINT64_FORMAT ") does not fit in int32",
                         i, s);
          out[i] = (int32_t) s;
        }
      else
        {
          if (u > G_MAXINT32)
            return fail (error, TF_ERROR_FORMAT, st->display_name, info->name,
                         "element %" G_GSIZE_FORMAT " (%" G_GUINT64_FORMAT ") does not fit in int32",
                         i, u);
          out[i] = (int32_t) u;
        }
    }
  return TRUE;
}

const char *
tf_safetensors_metadata (const TfSafetensors *st, const char *key)
{
  g_return_val_if_fail (st != NULL, NULL);
  g_return_val_if_fail (key != NULL, NULL);
  return g_hash_table_lookup (st->metadata, key);
}

const char **
tf_safetensors_metadata_keys (const TfSafetensors *st, guint *n_keys)
{
  g_return_val_if_fail (st != NULL, NULL);
  if (n_keys != NULL)
    *n_keys = st->n_metadata;
  return (const char **) g_memdup2 (st->metadata_keys, (st->n_metadata + 1) * sizeof (char *));
}

/* --- writing ------------------------------------------------------------ */

/* Checks one tensor to write and adds its size to @total. @path is for messages. */
static gboolean
check_tensor_out (const char *path, const TfTensorOut *t, GHashTable *seen, uint64_t *total,
                  GError **error)
{
  if (t->name == NULL || t->name[0] == '\0')
    return fail (error, TF_ERROR_INPUT, path, NULL, "a tensor has an empty name");
  if (!g_utf8_validate (t->name, -1, NULL))
    return fail (error, TF_ERROR_INPUT, path, NULL, "a tensor name is not valid UTF-8");
  if (strcmp (t->name, "__metadata__") == 0)
    return fail (error, TF_ERROR_INPUT, path, NULL, "'__metadata__' cannot name a tensor");
  if (!g_hash_table_add (seen, (gpointer) t->name))
    return fail (error, TF_ERROR_INPUT, path, NULL, "tensor '%s' appears twice", t->name);
  if ((unsigned) t->dtype >= TF_N_DTYPES)
    return fail (error, TF_ERROR_INPUT, path, t->name, "invalid dtype %d", (int) t->dtype);
  if (t->n_dims < 0 || t->n_dims > TF_SAFETENSORS_MAX_DIMS)
    return fail (error, TF_ERROR_INPUT, path, t->name,
                 "%d dimensions, expected 0 to %d", t->n_dims, TF_SAFETENSORS_MAX_DIMS);
  for (int i = 0; i < t->n_dims; i++)
    if (t->shape[i] < 0)
      return fail (error, TF_ERROR_INPUT, path, t->name,
                   "shape[%d] is %" G_GINT64_FORMAT ", expected a size of 0 or more", i, t->shape[i]);

  uint64_t n_elements, n_bytes;
  g_autofree char *shape = format_shape (t->shape, t->n_dims);
  /* Offsets are written as JSON integers, which we read as int64. */
  if (!shape_size (t->shape, t->n_dims, t->dtype, &n_elements, &n_bytes) ||
      n_bytes > (uint64_t) G_MAXSIZE || !g_uint64_checked_add (total, *total, n_bytes) ||
      *total > (uint64_t) G_MAXINT64)
    return fail (error, TF_ERROR_INPUT, path, t->name, "shape %s × %s is too large",
                 shape, tf_dtype_name (t->dtype));
  gboolean half_or_single = t->dtype == TF_DTYPE_F32 || t->dtype == TF_DTYPE_F16 ||
                            t->dtype == TF_DTYPE_BF16;
  if (t->data != NULL && !half_or_single)
    return fail (error, TF_ERROR_INPUT, path, t->name,
                 "float data can be written as F32, F16 or BF16, not %s", tf_dtype_name (t->dtype));
  if (t->data == NULL && t->raw == NULL && n_elements > 0)
    return fail (error, TF_ERROR_INPUT, path, t->name, "no data given");
  return TRUE;
}

/* The compact JSON header, unpadded. */
static char *
build_header (const TfTensorOut *tensors, int n_tensors,
              const char *const *meta_keys, const char *const *meta_values, int n_meta,
              gsize *length)
{
  g_autoptr (JsonBuilder) builder = json_builder_new_immutable ();
  json_builder_begin_object (builder);
  if (n_meta > 0)
    {
      json_builder_set_member_name (builder, "__metadata__");
      json_builder_begin_object (builder);
      for (int i = 0; i < n_meta; i++)
        {
          json_builder_set_member_name (builder, meta_keys[i]);
          json_builder_add_string_value (builder, meta_values[i]);
        }
      json_builder_end_object (builder);
    }
  uint64_t offset = 0;
  for (int i = 0; i < n_tensors; i++)
    {
      const TfTensorOut *t = &tensors[i];
      uint64_t n_elements, n_bytes;
      shape_size (t->shape, t->n_dims, t->dtype, &n_elements, &n_bytes);
      json_builder_set_member_name (builder, t->name);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "dtype");
      json_builder_add_string_value (builder, tf_dtype_name (t->dtype));
      json_builder_set_member_name (builder, "shape");
      json_builder_begin_array (builder);
      for (int d = 0; d < t->n_dims; d++)
        json_builder_add_int_value (builder, t->shape[d]);
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "data_offsets");
      json_builder_begin_array (builder);
      json_builder_add_int_value (builder, (gint64) offset);
      json_builder_add_int_value (builder, (gint64) (offset + n_bytes));
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      offset += n_bytes;
    }
  json_builder_end_object (builder);

  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  json_generator_set_root (generator, root);
  gsize raw_length;
  g_autofree char *raw = json_generator_to_data (generator, &raw_length);

  /* json-glib 1.6 leaves U+001F unescaped, which is not JSON. A raw byte
   * below 0x20 can only be inside a string here, so escape any we find. */
  GString *text = g_string_sized_new (raw_length);
  for (gsize i = 0; i < raw_length; i++)
    {
      if ((unsigned char) raw[i] < 0x20)
        g_string_append_printf (text, "\\u%04x", (unsigned) raw[i]);
      else
        g_string_append_c (text, raw[i]);
    }
  *length = text->len;
  return g_string_free (text, FALSE);
}

/* Writes all of @buf; returns 0 or an errno value. */
static int
write_all (int fd, const void *buf, size_t len)
{
  const guint8 *p = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, p, MIN (len, (size_t) 1 << 30));
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return errno;
        }
      if (n == 0)
        return ENOSPC;
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

static int
write_tensor_data (int fd, const TfTensorOut *t, void *chunk)
{
  uint64_t n_elements, n_bytes;
  shape_size (t->shape, t->n_dims, t->dtype, &n_elements, &n_bytes);
  if (n_elements == 0)
    return 0;
  if (t->data == NULL)
    return write_all (fd, t->raw, (size_t) n_bytes);

  for (uint64_t start = 0; start < n_elements; start += WRITE_CHUNK_ELEMENTS)
    {
      size_t count = (size_t) MIN (n_elements - start, (uint64_t) WRITE_CHUNK_ELEMENTS);
      const float *src = t->data + start;
      size_t size;
      if (t->dtype == TF_DTYPE_F32)
        {
          uint32_t *dst = chunk;
          for (size_t i = 0; i < count; i++)
            dst[i] = GUINT32_TO_LE (f32_bits (src[i]));
          size = count * 4;
        }
      else
        {
          uint16_t *dst = chunk;
          for (size_t i = 0; i < count; i++)
            dst[i] = GUINT16_TO_LE (t->dtype == TF_DTYPE_F16 ? tf_f32_to_f16 (src[i])
                                                             : tf_f32_to_bf16 (src[i]));
          size = count * 2;
        }
      int err = write_all (fd, chunk, size);
      if (err != 0)
        return err;
    }
  return 0;
}

/* Makes the rename durable. Some file systems cannot sync a directory. */
static int
sync_directory (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  int err = 0;
  if (fsync (fd) != 0 && errno != EINVAL && errno != ENOTSUP)
    err = errno;
  close (fd);
  return err;
}

gboolean
tf_safetensors_write (const char *path,
                      const TfTensorOut *tensors, int n_tensors,
                      const char *const *meta_keys,
                      const char *const *meta_values, int n_meta,
                      GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (n_tensors >= 0 && (tensors != NULL || n_tensors == 0), FALSE);
  g_return_val_if_fail (n_meta >= 0 && ((meta_keys != NULL && meta_values != NULL) || n_meta == 0),
                        FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_autofree char *shown = g_filename_display_name (path);
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  uint64_t total = 0;
  for (int i = 0; i < n_tensors; i++)
    if (!check_tensor_out (shown, &tensors[i], seen, &total, error))
      return FALSE;
  g_hash_table_remove_all (seen);
  for (int i = 0; i < n_meta; i++)
    {
      if (meta_keys[i] == NULL || meta_values[i] == NULL)
        return fail (error, TF_ERROR_INPUT, shown, NULL, "metadata key or value %d is NULL", i);
      if (!g_utf8_validate (meta_keys[i], -1, NULL) || !g_utf8_validate (meta_values[i], -1, NULL))
        return fail (error, TF_ERROR_INPUT, shown, NULL,
                     "metadata key or value %d is not valid UTF-8", i);
      if (!g_hash_table_add (seen, (gpointer) meta_keys[i]))
        return fail (error, TF_ERROR_INPUT, shown, NULL,
                     "__metadata__: key '%s' appears twice", meta_keys[i]);
    }

  gsize header_len;
  g_autofree char *header = build_header (tensors, n_tensors, meta_keys, meta_values, n_meta,
                                          &header_len);
  /* Pad with spaces so that the data starts on an 8-byte boundary. */
  gsize padded_len = (header_len + 7) & ~(gsize) 7;
  if (padded_len > TF_SAFETENSORS_MAX_HEADER)
    return fail (error, TF_ERROR_INPUT, shown, NULL,
                 "header would be %" G_GSIZE_FORMAT " bytes, more than the limit of %u",
                 padded_len, TF_SAFETENSORS_MAX_HEADER);
  g_autofree char *prefix = g_malloc (8 + padded_len);
  uint64_t le_len = GUINT64_TO_LE ((uint64_t) padded_len);
  memcpy (prefix, &le_len, 8);
  memcpy (prefix + 8, header, header_len);
  memset (prefix + 8 + header_len, ' ', padded_len - header_len);

  g_autofree char *tmp_path = g_strconcat (path, ".XXXXXX", NULL);
  int fd = g_mkstemp_full (tmp_path, O_RDWR | O_CLOEXEC, 0666);
  if (fd < 0)
    return fail (error, TF_ERROR_IO, shown, NULL, "could not write: %s", g_strerror (errno));

  g_autofree void *chunk = g_malloc (WRITE_CHUNK_ELEMENTS * sizeof (float));
  int err = write_all (fd, prefix, 8 + padded_len);
  for (int i = 0; i < n_tensors && err == 0; i++)
    err = write_tensor_data (fd, &tensors[i], chunk);
  if (err == 0 && fsync (fd) != 0)
    err = errno;
  if (close (fd) != 0 && err == 0)
    err = errno;
  if (err == 0 && g_rename (tmp_path, path) != 0)
    err = errno;
  if (err != 0)
    {
      g_unlink (tmp_path);
      return fail (error, TF_ERROR_IO, shown, NULL, "could not write: %s", g_strerror (err));
    }
  /* The new file is in place; only its durability is in question now. */
  err = sync_directory (path);
  if (err != 0)
    return fail (error, TF_ERROR_IO, shown, NULL, "could not write: %s", g_strerror (err));
  return TRUE;
}
