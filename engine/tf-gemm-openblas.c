/* tf-gemm-openblas.c: the OpenBLAS backend of tf-gemm.h. fp32 products,
 * and the bf16 emulation (tf_gemm_prepare rounded the operands already:
 * products of bf16 values are exact in fp32, so only the accumulation is
 * OpenBLAS's). Also the double-precision products of the test build. */
#include "tf-gemm.h"

/* Rows [s, e) of C start s rows into C and into op(A) (s columns into A as
 * stored, when transposed); columns [s, e) start s columns into C and into
 * op(B). Both element types, one rule. */
#define PART(REAL, gemm, g, rows, s, e)                                                   \
  do                                                                                      \
    {                                                                                     \
      const REAL *A_ = (const REAL *) (g)->a, *B_ = (const REAL *) (g)->b;                \
      if (rows)                                                                           \
        gemm (CblasRowMajor, (g)->ta, (g)->tb, (e) - (s), (g)->N, (g)->K, (g)->alpha,     \
              (g)->ta == CblasNoTrans ? A_ + (size_t) (s) * (g)->lda : A_ + (s), (g)->lda, \
              B_, (g)->ldb, (g)->beta, (g)->c + (size_t) (s) * (g)->ldc, (g)->ldc);       \
      else                                                                                \
        gemm (CblasRowMajor, (g)->ta, (g)->tb, (g)->M, (e) - (s), (g)->K, (g)->alpha,     \
              A_, (g)->lda,                                                               \
              (g)->tb == CblasNoTrans ? B_ + (s) : B_ + (size_t) (s) * (g)->ldb, (g)->ldb, \
              (g)->beta, (g)->c + (s), (g)->ldc);                                         \
    }                                                                                     \
  while (0)

void
tf_gemm_openblas_part (const TfGemm *g, gboolean rows, int s, int e)
{
  PART (float, cblas_sgemm, g, rows, s, e);
}

void
tf_gemm_prepare_f64 (TfGemmF64 *g, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
                     int K, double alpha, const double *A, int lda, const double *B, int ldb,
                     double beta, double *C, int ldc)
{
  *g = (TfGemmF64) { .ta = ta, .tb = tb, .M = M, .N = N, .K = K, .alpha = alpha,
                     .beta = beta, .a = A, .b = B, .lda = lda, .ldb = ldb, .c = C,
                     .ldc = ldc };
}

void
tf_gemm_part_f64 (const TfGemmF64 *g, gboolean rows, int s, int e)
{
  if (s < e)
    PART (double, cblas_dgemm, g, rows, s, e);
}

void
tf_gemm_finish_f64 (TfGemmF64 *g)
{
}
