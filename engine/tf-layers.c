/* tf-layers.c: instantiates the kernels of tf-layers-impl.h in float (the
 * engine) and double (finite-difference tests). */
#include "tf-layers.h"
#include "tf-gemm.h"
#include "tf-tsan.h"
#include "tf-vector.h"

#include <cblas.h>
#include <glib.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define REAL float
#define FN(name) name
#define GEMM cblas_sgemm
#define GEMV cblas_sgemv
#define GEMM_T TfGemm
#define GEMM_PREPARE tf_gemm_prepare
#define GEMM_PART tf_gemm_part
#define GEMM_FINISH tf_gemm_finish
#define EXP tf_expf
#define GEMV_BF16 1
#include "tf-layers-impl.h"
#undef GEMV_BF16
#undef REAL
#undef FN
#undef GEMM
#undef GEMV
#undef GEMM_T
#undef GEMM_PREPARE
#undef GEMM_PART
#undef GEMM_FINISH
#undef EXP

#define REAL double
#define FN(name) name##_f64
#define GEMM cblas_dgemm
#define GEMV cblas_dgemv
#define GEMM_T TfGemmF64
#define GEMM_PREPARE tf_gemm_prepare_f64
#define GEMM_PART tf_gemm_part_f64
#define GEMM_FINISH tf_gemm_finish_f64
#define EXP exp
#include "tf-layers-impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef GEMV
#undef GEMM_T
#undef GEMM_PREPARE
#undef GEMM_PART
#undef GEMM_FINISH
#undef EXP

void
tf_rope_image_positions (int *pos_row, int *pos_col, int first, int side)
{
  for (int k = 0; k < side * side; k++)
    {
      pos_row[k] = first + k / side;
      pos_col[k] = first + k % side;
    }
}
