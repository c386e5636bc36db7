/* tf-layers.c: instantiates the kernels of tf-layers-impl.h in float (the
 * engine) and double (finite-difference tests). */
#include "tf-layers.h"

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
#define EXP expf
#include "tf-layers-impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef GEMV
#undef EXP

#define REAL double
#define FN(name) name##_f64
#define GEMM cblas_dgemm
#define GEMV cblas_dgemv
#define EXP exp
#include "tf-layers-impl.h"
#undef REAL
#undef FN
#undef GEMM
#undef GEMV
#undef EXP
