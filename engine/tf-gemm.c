/* tf-gemm.c: precision names, the per-thread backend, bf16 rounding and the
 * dispatch of prepared products to a backend (see tf-gemm.h). */
#include "tf-gemm.h"
#include "tf-tsan.h"

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

uint16_t
tf_bf16_bits (float x)
{
  uint32_t u;
  memcpy (&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)   /* NaN: stays one (quiet), whatever its payload */
    return (uint16_t) ((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);       /* to nearest, ties to even */
  return (uint16_t) (u >> 16);
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
      const float *in = src + (size_t) r * ld;
      if (bits)
        {
          uint16_t *out = (uint16_t *) dst + (size_t) r * cols;
          for (int c = 0; c < cols; c++)
            out[c] = tf_bf16_bits (in[c]);
        }
      else
        {
          float *out = (float *) dst + (size_t) r * cols;
          for (int c = 0; c < cols; c++)
            out[c] = tf_bf16_round (in[c]);
        }
    }
  TF_TSAN_JOIN (team);
  return dst;
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
  g->a = g->owned_a = convert_operand (A, a_rows, a_cols, lda, bits);
  g->lda = a_cols;
  g->b = g->owned_b = convert_operand (B, b_rows, b_cols, ldb, bits);
  g->ldb = b_cols;
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
