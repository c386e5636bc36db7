/* tf-safetensors.c: reading and writing .safetensors files (SPEC §6).
 *
 * Reading validates the whole file before anything is handed out, so a
 * caller never sees a tensor whose bytes lie outside the file. The header is
 * read by a strict JSON scanner of our own (RFC 8259: no comments, single
 * quotes, hex or leading-zero numbers; integers must fit in 64 bits; nesting
 * is bounded so the recursion cannot run out of stack), in four walks over a
 * private copy of it that allocate only what is kept:
 *
 *   1. syntax, and how many member names are ever open at once;
 *   2. duplicate member names, at any depth: each open object's name offsets
 *      sit on one stack (4 bytes a name), sorted when the object closes;
 *   3. the meaning of every entry, counting the tensors, metadata pairs and
 *      string bytes to keep;
 *   4. the same walk again, filling arrays allocated to the exact counts.
 *
 * So opening allocates the copy (1× the header), the stack (under 1×, freed
 * before walk 3), the decoded names, keys and values (never more than 1×),
 * 112 bytes per tensor (each takes ~50 header bytes) and 16 per metadata
 * pair (each takes 7 or more): at most about 3× the header, where
 * json-glib's tree took 20 to 70×. Sorting is in place. The problems are reported in the order
 * json-glib found them: syntax first, then the first duplicate name as a
 * parser meets it, then the first bad entry in file order, then the layout
 * of the data.
 *
 * Writing is atomic (tf-file.h): a crash leaves either the old file or the
 * new one. */
#include "tf-safetensors.h"
#include "tf-config.h"
#include "tf-file.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Deeper headers are refused. */
#define HEADER_MAX_DEPTH 64
/* Elements converted per write() when the writer changes the dtype. */
#define WRITE_CHUNK_ELEMENTS 16384

/* Offsets into the header are kept as 32-bit numbers. */
G_STATIC_ASSERT (TF_SAFETENSORS_MAX_HEADER < G_MAXUINT32);

typedef struct {
  char *key;
  char *value;
} MetaPair;

struct _TfSafetensors {
  char          *display_name;
  GBytes        *bytes;        /* the whole file; keeps the data valid */
  const guint8  *data;         /* start of the data section */
  uint64_t       data_size;
  TfTensorInfo  *tensors;      /* sorted by offset */
  int            n_tensors;
  guint32       *by_name;      /* indices into tensors, sorted by name */
  MetaPair      *metadata;     /* sorted by key */
  guint          n_metadata;
  char          *strings;      /* every name, key and value, NUL-terminated, end to end */
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
G_GNUC_PRINTF (5, 0)
static gboolean
fail_va (GError **error, int code, const char *file, const char *tensor, const char *format,
         va_list args)
{
  g_autofree char *problem = g_strdup_vprintf (format, args);
  if (tensor != NULL)
    g_set_error (error, TF_ERROR, code, "%s: tensor '%s': %s", file, tensor, problem);
  else
    g_set_error (error, TF_ERROR, code, "%s: %s", file, problem);
  return FALSE;
}

G_GNUC_PRINTF (5, 6)
static gboolean
fail (GError **error, int code, const char *file, const char *tensor, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  fail_va (error, code, file, tensor, format, args);
  va_end (args);
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

/* --- sorting without allocating ------------------------------------------ */

/* Heapsort: O(n log n) whatever the input, and no scratch memory (qsort
 * may allocate a copy of the array). Elements of at most 16 bytes. */
static void
swap_elements (char *a, char *b, size_t size)
{
  char tmp[16];
  memcpy (tmp, a, size);
  memcpy (a, b, size);
  memcpy (b, tmp, size);
}

static void
sift_down (char *base, size_t root, size_t n, size_t size, GCompareDataFunc compare,
           gpointer data)
{
  for (;;)
    {
      size_t child = 2 * root + 1;
      if (child >= n)
        return;
      if (child + 1 < n && compare (base + child * size, base + (child + 1) * size, data) < 0)
        child++;
      if (compare (base + root * size, base + child * size, data) >= 0)
        return;
      swap_elements (base + root * size, base + child * size, size);
      root = child;
    }
}

static void
heap_sort (void *array, size_t n, size_t size, GCompareDataFunc compare, gpointer data)
{
  char *base = array;
  g_assert (size <= 16);
  if (n < 2)
    return;
  for (size_t i = n / 2; i-- > 0;)
    sift_down (base, i, n, size, compare, data);
  for (size_t last = n - 1; last > 0; last--)
    {
      swap_elements (base, base + last * size, size);
      sift_down (base, 0, last, size, compare, data);
    }
}

/* --- strict JSON scan --------------------------------------------------- */

typedef struct {
  const char *p;
  const char *start;
  const char *end;
  const char *problem;        /* static text */
  char        detail[96];     /* the offending token, when useful */
  /* Walk 1 measures how many member names are open at once... */
  gsize       open_keys;
  gsize       max_open_keys;
  /* ...so that walk 2 can keep them (keys != NULL) to find duplicates. */
  guint32    *keys;           /* offsets of the open objects' names, innermost last */
  gsize       n_keys;
  guint32     top_key;        /* the header member being scanned */
  gboolean    have_dup;       /* the first duplicate in the order a parser meets them: */
  guint32     dup_key;        /* its name, */
  int         dup_depth;      /* its object's depth (1 = the header) */
  guint32     dup_top;        /* and the header member that holds it */
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
      unsigned u = 0;
      if (!scan_hex4 (s, &u))
        return FALSE;
      /* Names and values become C strings, so U+0000 cannot be represented. */
      if (u == 0)
        return scan_error (s, "\\u0000 in a string");
      if (u >= 0xdc00 && u <= 0xdfff)
        return scan_error (s, "unpaired surrogate in a string");
      if (u >= 0xd800 && u <= 0xdbff)
        {
          unsigned low = 0;
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
  /* No size or offset can be that big; refusing here means every integer
   * the later walks see fits in an int64. */
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

/* --- decoding string literals ---------------------------------------------- */

/* Reads, a byte at a time, the text of a string literal the scan accepted
 * (so it is well formed and ends with '"' inside the header). */
typedef struct {
  const char *p;
  char        utf8[6];   /* a \u escape, encoded */
  int         n, i;
} StringReader;

static void
reader_init (StringReader *r, const char *literal)
{
  r->p = literal + 1;
  r->n = r->i = 0;
}

static unsigned
read_hex4 (const char *p)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++)
    v = v * 16 + (unsigned) MAX (hex_value (p[i]), 0);
  return v;
}

/* The next byte, or -1 at the closing quote. */
static int
reader_next (StringReader *r)
{
  if (r->i < r->n)
    return (unsigned char) r->utf8[r->i++];
  char c = *r->p;
  if (c == '"')
    return -1;
  r->p++;
  if (c != '\\')
    return (unsigned char) c;
  c = *r->p++;
  switch (c)
    {
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    case 'u':
      break;
    default:  /* '"', '\\', '/' */
      return (unsigned char) c;
    }
  gunichar u = read_hex4 (r->p);
  r->p += 4;
  if (u >= 0xd800 && u <= 0xdbff)  /* the scan checked that a low half follows */
    {
      gunichar low = read_hex4 (r->p + 2);
      r->p += 6;
      u = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
    }
  r->n = g_unichar_to_utf8 (u, r->utf8);
  r->i = 1;
  return (unsigned char) r->utf8[0];
}

/* Decodes @literal into @out (if not NULL, without a NUL); returns the length. */
static gsize
decode_string (const char *literal, char *out)
{
  StringReader r;
  gsize n = 0;
  int c;
  reader_init (&r, literal);
  while ((c = reader_next (&r)) >= 0)
    {
      if (out != NULL)
        out[n] = (char) c;
      n++;
    }
  return n;
}

static char *
decode_dup (const char *literal)
{
  char *out = g_malloc (decode_string (literal, NULL) + 1);
  out[decode_string (literal, out)] = '\0';
  return out;
}

static gboolean
literal_equals (const char *literal, const char *word)
{
  StringReader r;
  int c;
  reader_init (&r, literal);
  for (; (c = reader_next (&r)) >= 0; word++)
    if (*word == '\0' || (unsigned char) *word != c)
      return FALSE;
  return *word == '\0';
}

/* Orders two literals by their decoded bytes. */
static int
compare_literals (const char *a, const char *b)
{
  /* Equal raw bytes other than '\\' and '"' decode alike, and at the first
   * difference without a backslash the raw bytes decide ('"', the end, first). */
  size_t i = 1;
  while (a[i] == b[i] && a[i] != '\\' && a[i] != '"')
    i++;
  if (a[i] != '\\' && b[i] != '\\')
    {
      int ca = a[i] == '"' ? -1 : (unsigned char) a[i];
      int cb = b[i] == '"' ? -1 : (unsigned char) b[i];
      return ca < cb ? -1 : ca > cb;
    }
  StringReader ra, rb;
  reader_init (&ra, a + i - 1);
  reader_init (&rb, b + i - 1);
  for (;;)
    {
      int ca = reader_next (&ra), cb = reader_next (&rb);
      if (ca != cb)
        return ca < cb ? -1 : 1;
      if (ca < 0)
        return 0;
    }
}

/* --- duplicate member names -------------------------------------------- */

/* Name offsets by decoded name, then by position. */
static int
compare_key_offsets (gconstpointer a, gconstpointer b, gpointer text)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  int order = compare_literals ((const char *) text + x, (const char *) text + y);
  if (order != 0)
    return order;
  return x < y ? -1 : x > y;
}

/* An object at @depth has just closed; its names are s->keys[base...]. A
 * parser that builds the tree meets a member when its value ends, so the
 * duplicate it would report is the one whose member ends first. */
static void
note_duplicates (JsonScan *s, gsize base, int depth)
{
  guint32 *keys = s->keys + base;
  gsize n = s->n_keys - base;
  guint32 dup = G_MAXUINT32, next = G_MAXUINT32;

  if (n < 2)
    return;
  heap_sort (keys, n, sizeof *keys, compare_key_offsets, (gpointer) s->start);
  /* In each run of equal names all but the first are duplicates; the
   * earliest of them is this object's first. */
  for (gsize i = 1; i < n; i++)
    if (keys[i] < dup && compare_literals (s->start + keys[i - 1], s->start + keys[i]) == 0)
      dup = keys[i];
  if (dup == G_MAXUINT32)
    return;
  /* Its member ends before the next name of this object begins. An earlier
   * find lies in an object that closed already: one wholly before this one
   * (met first), or one nested in a member of this one, which is met first
   * unless that member comes after the duplicate. */
  for (gsize i = 0; i < n; i++)
    if (keys[i] > dup && keys[i] < next)
      next = keys[i];
  if (s->have_dup && (next == G_MAXUINT32 || s->dup_key < next))
    return;
  s->have_dup = TRUE;
  s->dup_key = dup;
  s->dup_depth = depth;
  s->dup_top = s->top_key;
}

/* A member name at s->p, in an object at @depth. */
static gboolean
note_key (JsonScan *s, int depth)
{
  guint32 at = (guint32) (s->p - s->start);
  if (depth == 1)
    s->top_key = at;
  if (s->keys == NULL)
    {
      s->open_keys++;
      s->max_open_keys = MAX (s->max_open_keys, s->open_keys);
      return TRUE;
    }
  /* Walk 1 sized the stack for this very text. */
  if (s->n_keys >= s->max_open_keys)
    return scan_error (s, "too many names");
  s->keys[s->n_keys++] = at;
  return TRUE;
}

static gboolean scan_value (JsonScan *s, int depth);

static gboolean
scan_container (JsonScan *s, int depth)
{
  gboolean object = *s->p == '{';
  char close = object ? '}' : ']';
  gsize base = s->n_keys, members = 0;

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
          if (!note_key (s, depth))
            return FALSE;
          members++;
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
          if (object && s->keys != NULL)
            {
              note_duplicates (s, base, depth);
              s->n_keys = base;
            }
          else if (object)
            s->open_keys -= members;
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

static gboolean
report_scan_error (const JsonScan *s, const char *file, GError **error)
{
  if (s->detail[0] != '\0')
    return fail (error, TF_ERROR_FORMAT, file, NULL,
                 "header is not valid JSON: %s (%s) at byte %td of the header",
                 s->problem, s->detail, s->p - s->start);
  return fail (error, TF_ERROR_FORMAT, file, NULL,
               "header is not valid JSON: %s at byte %td of the header",
               s->problem, s->p - s->start);
}

/* Walk 1: checks that @text is exactly one JSON value (RFC 8259) plus
 * whitespace, and measures the stack walk 2 needs. */
static gboolean
check_json_syntax (const char *file, const char *text, size_t len, gsize *max_open_keys,
                   GError **error)
{
  JsonScan s = { .p = text, .start = text, .end = text + len };
  gboolean ok = scan_value (&s, 0);
  if (ok)
    {
      scan_ws (&s);
      if (s.p < s.end)
        ok = scan_error (&s, "unexpected text after the end");
    }
  if (!ok)
    return report_scan_error (&s, file, error);
  *max_open_keys = s.max_open_keys;
  return TRUE;
}

/* Walk 2: no object may name a member twice, at any depth. */
static gboolean
check_duplicates (const char *file, const char *text, size_t len, gsize max_open_keys,
                  GError **error)
{
  if (max_open_keys < 2)
    return TRUE;
  JsonScan s = { .p = text, .start = text, .end = text + len, .max_open_keys = max_open_keys };
  s.keys = g_new (guint32, max_open_keys);
  gboolean ok = scan_value (&s, 0);
  g_free (s.keys);
  if (!ok)  /* walk 1 accepted the same text */
    return report_scan_error (&s, file, error);
  if (!s.have_dup)
    return TRUE;

  g_autofree char *key = decode_dup (text + s.dup_key);
  if (s.dup_depth == 1)
    {
      if (strcmp (key, "__metadata__") == 0)
        return fail (error, TF_ERROR_FORMAT, file, NULL, "'__metadata__' appears twice");
      return fail (error, TF_ERROR_FORMAT, file, NULL, "tensor '%s' appears twice", key);
    }
  g_autofree char *top = decode_dup (text + s.dup_top);
  if (strcmp (top, "__metadata__") == 0)
    return fail (error, TF_ERROR_FORMAT, file, NULL,
                 "__metadata__: key '%s' appears twice", key);
  return fail (error, TF_ERROR_FORMAT, file, top, "key '%s' appears twice", key);
}

/* --- walking a header the scan accepted ---------------------------------- */

/* These step through text that walk 1 accepted; they still never read
 * outside it. */

/* At a container's opening bracket: steps inside and returns TRUE, or past
 * the closing bracket and returns FALSE when it is empty. */
static gboolean
container_first (JsonScan *c)
{
  char close = *c->p == '{' ? '}' : ']';
  c->p++;
  scan_ws (c);
  if (c->p < c->end && *c->p == close)
    {
      c->p++;
      return FALSE;
    }
  return c->p < c->end;
}

/* After an element: steps to the next one and returns TRUE, or past the
 * closing bracket and returns FALSE. */
static gboolean
container_next (JsonScan *c)
{
  scan_ws (c);
  if (c->p < c->end && *c->p == ',')
    {
      c->p++;
      scan_ws (c);
      return c->p < c->end;
    }
  if (c->p < c->end)
    c->p++;
  return FALSE;
}

/* At a member: returns its name literal and moves to its value. */
static const char *
member_name (JsonScan *c)
{
  const char *name = c->p;
  scan_string (c);
  scan_ws (c);
  if (c->p < c->end)
    c->p++;  /* ':' */
  scan_ws (c);
  return name;
}

/* Skips the value at c->p. */
static void
skip_value (JsonScan *c)
{
  /* The depth was checked by walk 1; only the scan's own recursion counts here. */
  scan_value (c, 0);
}

/* Reads a non-negative integer (or -0, which json-glib read as 0) and moves
 * past it. FALSE for anything else: a fraction, an exponent, another type. */
static gboolean
read_uint (JsonScan *c, uint64_t *out)
{
  const char *begin = c->p;
  if (c->p >= c->end || (*c->p != '-' && !g_ascii_isdigit (*c->p)) || !scan_number (c))
    return FALSE;
  gboolean negative = *begin == '-';
  uint64_t v = 0;
  for (const char *q = begin + negative; q < c->p; q++)
    if (!g_ascii_isdigit (*q) ||
        !g_uint64_checked_mul (&v, v, 10) || !g_uint64_checked_add (&v, v, (uint64_t) (*q - '0')))
      return FALSE;
  if (v > G_MAXINT64 || (negative && v != 0))
    return FALSE;
  *out = v;
  return TRUE;
}

/* Elements of the array at @array. */
static guint64
count_elements (const JsonScan *at, const char *array)
{
  JsonScan c = *at;
  guint64 n = 0;
  c.p = array;
  if (container_first (&c))
    do
      {
        skip_value (&c);
        n++;
      }
    while (container_next (&c));
  return n;
}

/* [begin, end] with two non-negative integers. */
static gboolean
read_offsets (const JsonScan *at, const char *array, uint64_t *begin, uint64_t *end)
{
  JsonScan c = *at;
  c.p = array;
  return *array == '[' && container_first (&c) &&
         read_uint (&c, begin) && container_next (&c) &&
         read_uint (&c, end) && !container_next (&c);
}

/* Walks 3 and 4. The first validates and counts, the second, into arrays of
 * the counted sizes, stores; it meets exactly what the first did. */
typedef struct {
  TfSafetensors *st;
  const char    *text;
  size_t         len;
  gboolean       fill;
  int            n_tensors;
  guint          n_metadata;
  gsize          n_string_bytes;
  /* Sizes from walk 3, for walk 4. */
  int            max_tensors;
  guint          max_metadata;
  gsize          max_string_bytes;
} HeaderWalk;

/* Fails with "FILE: tensor 'NAME': problem", NAME decoded from @name. */
G_GNUC_PRINTF (4, 5)
static gboolean
entry_fail (HeaderWalk *w, GError **error, const char *name, const char *format, ...)
{
  g_autofree char *decoded = decode_dup (name);
  va_list args;
  va_start (args, format);
  fail_va (error, TF_ERROR_FORMAT, w->st->display_name, decoded, format, args);
  va_end (args);
  return FALSE;
}

/* Copies the decoded @literal into the string store; walk 3 only counts. */
static char *
keep_string (HeaderWalk *w, const char *literal)
{
  gsize len = decode_string (literal, NULL);
  char *kept = NULL;
  if (w->fill && w->n_string_bytes + len + 1 <= w->max_string_bytes)
    {
      kept = w->st->strings + w->n_string_bytes;
      decode_string (literal, kept);
      kept[len] = '\0';
    }
  w->n_string_bytes += len + 1;
  return kept;
}

static gboolean
parse_metadata (HeaderWalk *w, JsonScan *c, GError **error)
{
  const char *file = w->st->display_name;
  if (*c->p != '{')
    return fail (error, TF_ERROR_FORMAT, file, NULL, "__metadata__ is not an object");
  if (!container_first (c))
    return TRUE;
  do
    {
      const char *key = member_name (c);
      if (c->p >= c->end || *c->p != '"')
        {
          g_autofree char *decoded = decode_dup (key);
          return fail (error, TF_ERROR_FORMAT, file, NULL,
                       "__metadata__: value of '%s' is not a string", decoded);
        }
      const char *value = c->p;
      scan_string (c);
      char *kept_key = keep_string (w, key);
      char *kept_value = keep_string (w, value);
      if (w->fill && w->n_metadata < w->max_metadata)
        w->st->metadata[w->n_metadata] = (MetaPair) { kept_key, kept_value };
      w->n_metadata++;
    }
  while (container_next (c));
  return TRUE;
}

static gboolean
dtype_from_literal (const char *literal, TfDtype *dtype)
{
  for (int i = 0; i < TF_N_DTYPES; i++)
    if (literal_equals (literal, dtype_table[i].name))
      {
        *dtype = (TfDtype) i;
        return TRUE;
      }
  return FALSE;
}

/* The entry at c->p, for the tensor named by the literal @name; moves past it. */
static gboolean
parse_tensor (HeaderWalk *w, JsonScan *c, const char *name, TfTensorInfo *info, GError **error)
{
  const char *dtype = NULL, *shape = NULL, *offsets = NULL;

  if (*c->p != '{')
    return entry_fail (w, error, name, "entry is not an object");
  if (container_first (c))
    do
      {
        const char *key = member_name (c);
        if (literal_equals (key, "dtype"))
          dtype = c->p;
        else if (literal_equals (key, "shape"))
          shape = c->p;
        else if (literal_equals (key, "data_offsets"))
          offsets = c->p;
        else
          {
            g_autofree char *decoded = decode_dup (key);
            return entry_fail (w, error, name, "unknown key '%s'", decoded);
          }
        skip_value (c);
      }
    while (container_next (c));
  if (dtype == NULL)
    return entry_fail (w, error, name, "missing 'dtype'");
  if (shape == NULL)
    return entry_fail (w, error, name, "missing 'shape'");
  if (offsets == NULL)
    return entry_fail (w, error, name, "missing 'data_offsets'");

  if (*dtype != '"')
    return entry_fail (w, error, name, "dtype is not a string");
  if (!dtype_from_literal (dtype, &info->dtype))
    {
      g_autofree char *decoded = decode_dup (dtype);
      return entry_fail (w, error, name, "unknown dtype '%s'", decoded);
    }

  if (*shape != '[')
    return entry_fail (w, error, name, "shape is not an array");
  guint64 n_dims = count_elements (c, shape);
  if (n_dims > TF_SAFETENSORS_MAX_DIMS)
    return entry_fail (w, error, name,
                       "shape has %" G_GUINT64_FORMAT " dimensions, at most %d are supported",
                       n_dims, TF_SAFETENSORS_MAX_DIMS);
  info->n_dims = (int) n_dims;
  JsonScan dims = *c;
  dims.p = shape;
  if (container_first (&dims))
    for (int i = 0; i < info->n_dims; i++)
      {
        uint64_t dim = 0;
        if (!read_uint (&dims, &dim))
          return entry_fail (w, error, name, "shape[%d] is not a non-negative integer", i);
        info->shape[i] = (int64_t) dim;
        container_next (&dims);
      }

  uint64_t begin = 0, end = 0;
  if (!read_offsets (c, offsets, &begin, &end))
    return entry_fail (w, error, name,
                       "data_offsets is not [begin,end] with two non-negative integers");
  if (begin > end)
    return entry_fail (w, error, name,
                       "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] end before they begin",
                       begin, end);
  info->begin = begin;
  info->end = end;

  g_autofree char *shape_text = format_shape (info->shape, info->n_dims);
  uint64_t n_bytes = 0;
  if (!shape_size (info->shape, info->n_dims, info->dtype, &info->n_elements, &n_bytes))
    return entry_fail (w, error, name, "shape %s × %s is too large",
                       shape_text, tf_dtype_name (info->dtype));
  if (n_bytes != end - begin)
    return entry_fail (w, error, name,
                       "shape %s × %s needs %" G_GUINT64_FORMAT " bytes, data_offsets give %" G_GUINT64_FORMAT,
                       shape_text, tf_dtype_name (info->dtype), n_bytes, end - begin);
  if (end > w->st->data_size)
    return entry_fail (w, error, name,
                       "data_offsets [%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "] go past the end of the data (%" G_GUINT64_FORMAT " bytes)",
                       begin, end, w->st->data_size);
  return TRUE;
}

/* Walk 3 (or 4, with w->fill): every header member, in file order. */
static gboolean
walk_header (HeaderWalk *w, GError **error)
{
  JsonScan c = { .p = w->text, .start = w->text, .end = w->text + w->len };
  w->n_tensors = 0;
  w->n_metadata = 0;
  w->n_string_bytes = 0;
  if (!container_first (&c))
    return TRUE;
  do
    {
      const char *name = member_name (&c);
      if (c.p >= c.end)
        break;
      if (literal_equals (name, "__metadata__"))
        {
          if (!parse_metadata (w, &c, error))
            return FALSE;
          continue;
        }
      TfTensorInfo info = { 0 };
      if (!parse_tensor (w, &c, name, &info, error))
        return FALSE;
      info.name = keep_string (w, name);
      if (w->fill && w->n_tensors < w->max_tensors)
        w->st->tensors[w->n_tensors] = info;
      /* A valid entry takes dozens of header bytes, so this cannot overflow. */
      w->n_tensors++;
    }
  while (container_next (&c));
  return TRUE;
}

/* --- reading ------------------------------------------------------------ */

void
tf_safetensors_free (TfSafetensors *st)
{
  if (st == NULL)
    return;
  g_free (st->tensors);
  g_free (st->by_name);
  g_free (st->metadata);
  g_free (st->strings);
  g_clear_pointer (&st->bytes, g_bytes_unref);
  g_free (st->display_name);
  g_free (st);
}

/* By offset; equal ranges keep their order in the header. */
static int
compare_order (gconstpointer a, gconstpointer b, gpointer tensors)
{
  guint32 i = *(const guint32 *) a, j = *(const guint32 *) b;
  const TfTensorInfo *x = (const TfTensorInfo *) tensors + i, *y = (const TfTensorInfo *) tensors + j;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return i < j ? -1 : i > j;
}

static int
compare_tensor_names (gconstpointer a, gconstpointer b, gpointer tensors)
{
  const TfTensorInfo *t = tensors;
  return strcmp (t[*(const guint32 *) a].name, t[*(const guint32 *) b].name);
}

static int
compare_meta_keys (gconstpointer a, gconstpointer b, gpointer unused)
{
  return strcmp (((const MetaPair *) a)->key, ((const MetaPair *) b)->key);
}

/* Sorts the tensors by offset, in place. */
static void
sort_tensors (TfSafetensors *st)
{
  guint32 n = (guint32) st->n_tensors;
  g_autofree guint32 *order = g_new (guint32, n);
  for (guint32 i = 0; i < n; i++)
    order[i] = i;
  heap_sort (order, n, sizeof *order, compare_order, st->tensors);
  /* tensors[i] = old tensors[order[i]], one cycle of the permutation at a time. */
  for (guint32 i = 0; i < n; i++)
    {
      if (order[i] == i)
        continue;
      TfTensorInfo first = st->tensors[i];
      guint32 j = i;
      while (order[j] != i)
        {
          guint32 k = order[j];
          st->tensors[j] = st->tensors[k];
          order[j] = j;
          j = k;
        }
      st->tensors[j] = first;
      order[j] = j;
    }
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
      if (t->begin < expected && previous != NULL)
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
parse_header (TfSafetensors *st, const char *mapped, size_t len, GError **error)
{
  const char *file = st->display_name;
  /* The walks after the first trust what it checked, and a mapped file can
   * change under us if another program writes to it in place: read a copy. */
  g_autofree char *text = g_malloc (len + 1);
  memcpy (text, mapped, len);
  text[len] = '\0';

  if (memchr (text, '\0', len) != NULL)
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header contains a NUL byte");
  if (!g_utf8_validate_len (text, len, NULL))
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header is not valid UTF-8");
  if (len == 0 || text[0] != '{')
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header does not start with '{'");
  gsize max_open_keys = 0;
  if (!check_json_syntax (file, text, len, &max_open_keys, error) ||
      !check_duplicates (file, text, len, max_open_keys, error))
    return FALSE;

  HeaderWalk w = { .st = st, .text = text, .len = len };
  if (!walk_header (&w, error))
    return FALSE;
  w.fill = TRUE;
  w.max_tensors = w.n_tensors;
  w.max_metadata = w.n_metadata;
  w.max_string_bytes = w.n_string_bytes;
  st->tensors = g_new0 (TfTensorInfo, w.max_tensors);
  st->metadata = g_new0 (MetaPair, w.max_metadata);
  st->strings = g_malloc (w.max_string_bytes);
  if (!walk_header (&w, error))
    return FALSE;
  /* Cannot happen: the text is ours and the walks are the same. */
  if (w.n_tensors != w.max_tensors || w.n_metadata != w.max_metadata ||
      w.n_string_bytes != w.max_string_bytes)
    return fail (error, TF_ERROR_FORMAT, file, NULL, "header could not be read consistently");
  st->n_tensors = w.n_tensors;
  st->n_metadata = w.n_metadata;

  sort_tensors (st);
  if (!check_layout (st, error))
    return FALSE;
  st->by_name = g_new (guint32, st->n_tensors);
  for (int i = 0; i < st->n_tensors; i++)
    st->by_name[i] = (guint32) i;
  heap_sort (st->by_name, (size_t) st->n_tensors, sizeof (guint32), compare_tensor_names,
             st->tensors);
  heap_sort (st->metadata, st->n_metadata, sizeof (MetaPair), compare_meta_keys, NULL);
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
  size_t lo = 0, hi = (size_t) st->n_tensors;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      const TfTensorInfo *info = &st->tensors[st->by_name[mid]];
      int order = strcmp (name, info->name);
      if (order == 0)
        return info;
      if (order < 0)
        hi = mid;
      else
        lo = mid + 1;
    }
  return NULL;
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
  size_t lo = 0, hi = st->n_metadata;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      int order = strcmp (key, st->metadata[mid].key);
      if (order == 0)
        return st->metadata[mid].value;
      if (order < 0)
        hi = mid;
      else
        lo = mid + 1;
    }
  return NULL;
}

const char **
tf_safetensors_metadata_keys (const TfSafetensors *st, guint *n_keys)
{
  g_return_val_if_fail (st != NULL, NULL);
  if (n_keys != NULL)
    *n_keys = st->n_metadata;
  const char **keys = g_new (const char *, st->n_metadata + 1);
  for (guint i = 0; i < st->n_metadata; i++)
    keys[i] = st->metadata[i].key;
  keys[st->n_metadata] = NULL;
  return keys;
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

/* @s (valid UTF-8) as a JSON string literal. Every byte below 0x20 is
 * escaped (json-glib 1.6.6, which we used before, left U+001F raw); DEL
 * too, as json-glib did, so that the bytes written do not change. */
static void
append_json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const unsigned char *p = (const unsigned char *) s; *p != '\0'; p++)
    switch (*p)
      {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\b':
        g_string_append (out, "\\b");
        break;
      case '\f':
        g_string_append (out, "\\f");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      default:
        if (*p < 0x20 || *p == 0x7f)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (char) *p);
        break;
      }
  g_string_append_c (out, '"');
}

/* The compact JSON header, unpadded: metadata first, then the tensors in
 * the order given. */
static char *
build_header (const TfTensorOut *tensors, int n_tensors,
              const char *const *meta_keys, const char *const *meta_values, int n_meta,
              gsize *length)
{
  GString *out = g_string_new ("{");
  if (n_meta > 0)
    {
      g_string_append (out, "\"__metadata__\":{");
      for (int i = 0; i < n_meta; i++)
        {
          if (i > 0)
            g_string_append_c (out, ',');
          append_json_string (out, meta_keys[i]);
          g_string_append_c (out, ':');
          append_json_string (out, meta_values[i]);
        }
      g_string_append_c (out, '}');
    }
  uint64_t offset = 0;
  for (int i = 0; i < n_tensors; i++)
    {
      const TfTensorOut *t = &tensors[i];
      uint64_t n_elements = 0, n_bytes = 0;
      shape_size (t->shape, t->n_dims, t->dtype, &n_elements, &n_bytes);
      if (i > 0 || n_meta > 0)
        g_string_append_c (out, ',');
      append_json_string (out, t->name);
      g_string_append_printf (out, ":{\"dtype\":\"%s\",\"shape\":[", tf_dtype_name (t->dtype));
      for (int d = 0; d < t->n_dims; d++)
        g_string_append_printf (out, "%s%" G_GINT64_FORMAT, d ? "," : "", t->shape[d]);
      g_string_append_printf (out, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}",
                              offset, offset + n_bytes);
      offset += n_bytes;
    }
  g_string_append_c (out, '}');
  *length = out->len;
  return g_string_free (out, FALSE);
}

static gboolean
write_tensor_data (TfAtomicFile *file, const TfTensorOut *t, void *chunk, GError **error)
{
  uint64_t n_elements, n_bytes;
  shape_size (t->shape, t->n_dims, t->dtype, &n_elements, &n_bytes);
  if (n_elements == 0)
    return TRUE;
  if (t->data == NULL)
    return tf_atomic_file_write (file, t->raw, (size_t) n_bytes, error);

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
      if (!tf_atomic_file_write (file, chunk, size, error))
        return FALSE;
    }
  return TRUE;
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

  g_autoptr (TfAtomicFile) file = tf_atomic_file_new (path, error);
  if (file == NULL || !tf_atomic_file_write (file, prefix, 8 + padded_len, error))
    return FALSE;
  g_autofree void *chunk = g_malloc (WRITE_CHUNK_ELEMENTS * sizeof (float));
  for (int i = 0; i < n_tensors; i++)
    if (!write_tensor_data (file, &tensors[i], chunk, error))
      return FALSE;
  return tf_atomic_file_commit (g_steal_pointer (&file), error);
}
