/* tf-gemm.c: precision names, the per-thread backend, bf16 rounding and the
 * dispatch of prepared products to a backend (see tf-gemm.h). */
#include "tf-gemm.h"
#include "tf-tsan.h"
#include "tf-vector.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "transfusion.h"

static _Thread_local TfGemmBackend current_backend = TF_GEMM_OPENBLAS_F32;

static const char *const precision_names[] = { "fp32", "bf16", "auto" };

gboolean
tf_precision_parse (const char *name, TfPrecision *precision, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (precision_names); i++)
    if (g_strcmp0 (name, precision_names[i]) == 0)
      {
        *precision = (TfPrecision) i;
        return TRUE;
      }
  g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
               "precision '%s' is not one of fp32, bf16, auto", name ? name : "");
  return FALSE;
}

const char *
tf_precision_name (TfPrecision precision)
{
  return precision_names[CLAMP ((int) precision, 0, 2)];
}

gboolean
tf_gemm_bf16_native (void)
{
  return tf_gemm_dnnl_bf16_native ();
}

TfGemmBackend
tf_gemm_backend_for (TfPrecision precision)
{
  switch (precision)
    {
    case TF_PRECISION_BF16:
      return tf_gemm_bf16_native () ? TF_GEMM_DNNL_BF16 : TF_GEMM_OPENBLAS_BF16;
    case TF_PRECISION_AUTO:
      return tf_gemm_bf16_native () ? TF_GEMM_DNNL_BF16 : TF_GEMM_OPENBLAS_F32;
    case TF_PRECISION_FP32:
    default:
      return TF_GEMM_OPENBLAS_F32;
    }
}

const char *
tf_gemm_backend_name (TfGemmBackend backend)
{
  switch (backend)
    {
    case TF_GEMM_OPENBLAS_BF16: return "bf16 (emulated)";
    case TF_GEMM_DNNL_F32:      return "fp32 (oneDNN)";
    case TF_GEMM_DNNL_BF16:     return "bf16 (oneDNN)";
    case TF_GEMM_OPENBLAS_F32:
    default:                    return "fp32";
    }
}

gboolean
tf_gemm_backend_is_bf16 (TfGemmBackend backend)
{
  return backend == TF_GEMM_OPENBLAS_BF16 || backend == TF_GEMM_DNNL_BF16;
}

TfGemmBackend
tf_gemm_use (TfGemmBackend backend)
{
  TfGemmBackend previous = current_backend;
  current_backend = backend;
  return previous;
}

TfGemmBackend
tf_gemm_current (void)
{
  return current_backend;
}

/* The bf16 bits of the float with bits @u: to nearest, ties to even; a NaN
 * stays one (quiet), whatever its payload. No branch, so that the loops
 * converting whole operands vectorise. */
static inline uint32_t
bf16_bits_of (uint32_t u)
{
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet = (u >> 16) | 0x0040u;
  return (u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded;
}

/* n floats (as bits) converted: bf16 bits into @out when @bits, else the
 * floats rounded to bf16. The one loop of every conversion. */
static inline void
convert_run (const uint32_t *in, void *out, size_t n, gboolean bits)
{
  if (bits)
    for (size_t k = 0; k < n; k++)
      ((uint16_t *) out)[k] = (uint16_t) bf16_bits_of (in[k]);
  else
    for (size_t k = 0; k < n; k++)
      ((uint32_t *) out)[k] = bf16_bits_of (in[k]) << 16;
}

uint16_t
tf_bf16_bits (float x)
{
  uint32_t u;
  memcpy (&u, &x, sizeof u);
  return (uint16_t) bf16_bits_of (u);
}

float
tf_bf16_round (float x)
{
  uint32_t u = (uint32_t) tf_bf16_bits (x) << 16;
  float y;
  memcpy (&y, &u, sizeof y);
  return y;
}

/* A rows × cols operand (leading dimension ld) copied tight and rounded to
 * bf16: as floats for the emulation, as bf16 bits for oneDNN. Element by
 * element, so the threads that share the rows change nothing. */
static void *
convert_operand (const float *src, int rows, int cols, int ld, gboolean bits)
{
  const size_t n = (size_t) rows * cols;
  void *dst = g_malloc (n * (bits ? sizeof (uint16_t) : sizeof (float)));
  gboolean spread = FALSE;
#ifdef _OPENMP
  spread = !omp_in_parallel () && n >= 65536;
#endif
  TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (spread)
  for (int r = 0; r < rows; r++)
    {
      TF_TSAN_MEMBER (team);
      convert_run ((const uint32_t *) (src + (size_t) r * ld),
                   (char *) dst + (size_t) r * cols * (bits ? sizeof (uint16_t) : sizeof (float)),
                   (size_t) cols, bits);
    }
  TF_TSAN_JOIN (team);
  return dst;
}

/* ---- Packs of constant operands ---------------------------------------- */

#define PACK_BLOCK 4096   /* floats converted at a time, on first use */

typedef struct {
  const float *data;
  size_t       n;
  void        *copy;      /* bf16 bits or rounded floats, as @bits; NULL until used */
  gboolean     bits;
  guint8      *done;      /* per PACK_BLOCK: converted */
} PackRegion;

struct _TfGemmPack {
  GArray *regions;        /* PackRegion */
  size_t  converted;
};

static _Thread_local TfGemmPack *current_pack;

static void
pack_region_clear (gpointer p)
{
  PackRegion *r = p;
  g_clear_pointer (&r->copy, g_free);
  g_clear_pointer (&r->done, g_free);
}

TfGemmPack *
tf_gemm_pack_new (void)
{
  TfGemmPack *pack = g_new0 (TfGemmPack, 1);
  pack->regions = g_array_new (FALSE, TRUE, sizeof (PackRegion));
  g_array_set_clear_func (pack->regions, pack_region_clear);
  return pack;
}

void
tf_gemm_pack_free (TfGemmPack *pack)
{
  if (pack == NULL)
    return;
  if (current_pack == pack)
    current_pack = NULL;
  g_array_unref (pack->regions);
  g_free (pack);
}

void
tf_gemm_pack_add (TfGemmPack *pack, const float *data, size_t n)
{
  PackRegion r = { .data = data, .n = n };
  g_array_append_val (pack->regions, r);
}

/* The copies stay allocated, marked not converted: they are made again as
 * they are used. */
void
tf_gemm_pack_clear (TfGemmPack *pack)
{
  for (guint i = 0; i < pack->regions->len; i++)
    {
      PackRegion *r = &g_array_index (pack->regions, PackRegion, i);
      if (r->done != NULL)
        memset (r->done, 0, (r->n + PACK_BLOCK - 1) / PACK_BLOCK);
    }
}

TfGemmPack *
tf_gemm_pack_use (TfGemmPack *pack)
{
  TfGemmPack *previous = current_pack;
  current_pack = pack;
  return previous;
}

size_t
tf_gemm_pack_converted (const TfGemmPack *pack)
{
  return pack->converted;
}

/* The copy of [src, src + extent) as @bits asks, converted where it was
 * not yet, or NULL when no region of the calling thread's pack holds it. */
static const void *
pack_lookup (const float *src, size_t extent, gboolean bits)
{
  TfGemmPack *pack = current_pack;
  if (pack == NULL)
    return NULL;
  for (guint i = 0; i < pack->regions->len; i++)
    {
      PackRegion *r = &g_array_index (pack->regions, PackRegion, i);
      if (src < r->data || src + extent > r->data + r->n)
        continue;
      if (r->copy != NULL && r->bits != bits)
        pack_region_clear (r);   /* made for the other backend */
      if (r->copy == NULL)
        {
          r->copy = g_malloc (r->n * (bits ? sizeof (uint16_t) : sizeof (float)));
          r->done = g_malloc0 ((r->n + PACK_BLOCK - 1) / PACK_BLOCK);
          r->bits = bits;
        }
      const size_t first = (size_t) (src - r->data);
      const size_t b0 = first / PACK_BLOCK, b1 = (first + extent - 1) / PACK_BLOCK;
      for (size_t b = b0; b <= b1; b++)
        if (!r->done[b])
          {
            const size_t s = b * PACK_BLOCK, n = MIN ((size_t) PACK_BLOCK, r->n - s);
            convert_run ((const uint32_t *) (r->data + s),
                         (char *) r->copy + s * (bits ? sizeof (uint16_t) : sizeof (float)), n,
                         bits);
            r->done[b] = 1;
            pack->converted += n;
          }
      return (const char *) r->copy + first * (bits ? sizeof (uint16_t) : sizeof (float));
    }
  return NULL;
}

const uint16_t *
tf_gemm_packed_rows (const float *W, int N, int K, int ldb)
{
  if (current_backend != TF_GEMM_DNNL_BF16 || N <= 0 || K <= 0)
    return NULL;
  return pack_lookup (W, (size_t) (N - 1) * ldb + K, TRUE);
}

#define GEMV_LANES 16
#define GEMV_MAX_K 8192   /* longer vectors are rounded into the heap */

TF_VECTOR_CLONES void
tf_gemv_bf16 (int n0, int n1, int K, float alpha, const float *a, int inc,
              const uint16_t *W, int ldw, float beta, float *c)
{
  float stack[GEMV_MAX_K];
  float *x = K <= GEMV_MAX_K ? stack : g_new (float, K);
  for (int k = 0; k < K; k++)
    x[k] = tf_bf16_round (a[(size_t) k * inc]);
  for (int n = n0; n < n1; n++)
    {
      const uint16_t *w = W + (size_t) n * ldw;
      float s[GEMV_LANES] = { 0 };
      int k = 0;
      for (; k + GEMV_LANES <= K; k += GEMV_LANES)
        for (int l = 0; l < GEMV_LANES; l++)
          {
            const uint32_t bits = (uint32_t) w[k + l] << 16;
            float wf;
            memcpy (&wf, &bits, sizeof wf);
            s[l] += x[k + l] * wf;
          }
      for (; k < K; k++)
        {
          const uint32_t bits = (uint32_t) w[k] << 16;
          float wf;
          memcpy (&wf, &bits, sizeof wf);
          s[0] += x[k] * wf;
        }
      float sum = 0;
      for (int l = 0; l < GEMV_LANES; l++)
        sum += s[l];
      c[n] = beta == 0 ? alpha * sum : alpha * sum + beta * c[n];
    }
  if (x != stack)
    g_free (x);
}

/* An operand of rows × cols (leading dimension ld) for a bf16 product: its
 * pack's copy when it has one (same leading dimension), else a converted
 * copy, tight, that the product owns (*owned). */
static const void *
bf16_operand (const float *src, int rows, int cols, int *ld, gboolean bits, void **owned)
{
  const size_t extent = rows > 0 && cols > 0 ? (size_t) (rows - 1) * *ld + cols : 0;
  const void *packed = extent > 0 ? pack_lookup (src, extent, bits) : NULL;
  if (packed != NULL)
    return packed;
  *owned = convert_operand (src, rows, cols, *ld, bits);
  *ld = cols;
  return *owned;
}

void
tf_gemm_prepare (TfGemm *g, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                 float *C, int ldc)
{
  *g = (TfGemm) { .backend = current_backend, .ta = ta, .tb = tb, .M = M, .N = N, .K = K,
                  .alpha = alpha, .beta = beta, .a = A, .b = B, .lda = lda, .ldb = ldb,
                  .c = C, .ldc = ldc };
  if (!tf_gemm_backend_is_bf16 (g->backend))
    return;
  const gboolean bits = g->backend == TF_GEMM_DNNL_BF16;
  /* As stored: A is M×K, or K×M when transposed; B is K×N, or N×K. */
  const int a_rows = ta == CblasNoTrans ? M : K, a_cols = ta == CblasNoTrans ? K : M;
  const int b_rows = tb == CblasNoTrans ? K : N, b_cols = tb == CblasNoTrans ? N : K;
  g->a = bf16_operand (A, a_rows, a_cols, &g->lda, bits, &g->owned_a);
  g->b = bf16_operand (B, b_rows, b_cols, &g->ldb, bits, &g->owned_b);
}

void
tf_gemm_part (const TfGemm *g, gboolean rows, int s, int e)
{
  if (s >= e)
    return;
  if (g->backend == TF_GEMM_DNNL_F32 || g->backend == TF_GEMM_DNNL_BF16)
    tf_gemm_dnnl_part (g, rows, s, e);
  else
    tf_gemm_openblas_part (g, rows, s, e);
}

void
tf_gemm_finish (TfGemm *g)
{
  g_clear_pointer (&g->owned_a, g_free);
  g_clear_pointer (&g->owned_b, g_free);
}

char *
tf_gemm_kernel_name (TfGemmBackend backend, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M,
                     int N, int K)
{
  if (backend == TF_GEMM_DNNL_F32 || backend == TF_GEMM_DNNL_BF16)
    return tf_gemm_dnnl_kernel_name (backend, ta, tb, M, N, K);
  return g_strdup_printf ("OpenBLAS %s sgemm (%s)", openblas_get_corename (),
                          backend == TF_GEMM_OPENBLAS_BF16 ? "bf16-rounded operands" : "fp32");
}
