/* tf-gemm.h: the engine's float matrix products, behind one interface so the
 * model code does not know which library runs them (issue 15).
 *
 * Backends, one file each:
 *   tf-gemm-openblas.c  fp32 through OpenBLAS (the default), and bf16
 *                       emulated: both operands rounded to bf16 (to nearest,
 *                       ties to even), then an fp32 product, so bf16 runs and
 *                       is tested on CPUs without bf16 instructions;
 *   tf-gemm-dnnl.c      oneDNN's matmul: bf16 operands with fp32
 *                       accumulation where the CPU has AMX or AVX512-BF16,
 *                       and fp32 (to test its plumbing on any CPU).
 *
 * A product is prepared once (its operands converted when the backend reads
 * bf16), then computed in parts, bands of C's rows or columns, that may run
 * on different threads at once; every part is a one-thread call, so the
 * bits depend on how C is cut, never on how many threads run. Master
 * weights, gradients, Adam moments, norms, softmax and losses stay fp32:
 * only the operands of these products are rounded.
 *
 * Which backend runs is set per thread (tf_gemm_use), like OpenMP's thread
 * count: a trainer or generator sets it before each job on the thread that
 * runs the job. */
#pragma once

#include <cblas.h>
#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* What a person asks for (--precision). */
typedef enum {
  TF_PRECISION_FP32,
  TF_PRECISION_BF16,
  TF_PRECISION_AUTO,   /* bf16 where the CPU does it natively, else fp32 */
} TfPrecision;

/* What runs. */
typedef enum {
  TF_GEMM_OPENBLAS_F32,
  TF_GEMM_OPENBLAS_BF16,   /* bf16 emulated: rounded operands, fp32 products */
  TF_GEMM_DNNL_F32,
  TF_GEMM_DNNL_BF16,       /* oneDNN: bf16 operands, fp32 accumulation */
} TfGemmBackend;

/* "fp32", "bf16", "auto"; FALSE (and @error names the value) otherwise. */
gboolean tf_precision_parse (const char *name, TfPrecision *precision, GError **error);
const char *tf_precision_name (TfPrecision precision);

/* TRUE when oneDNN can run bf16 products natively here (AMX or
 * AVX512-BF16; ONEDNN_MAX_CPU_ISA can turn it off). */
gboolean tf_gemm_bf16_native (void);

/* The backend for a precision on this CPU: fp32 → OpenBLAS; bf16 → oneDNN
 * when native, else the emulation; auto → oneDNN bf16 when native, else
 * OpenBLAS fp32 (auto never picks the emulation). */
TfGemmBackend tf_gemm_backend_for (TfPrecision precision);

/* For people and provenance: "fp32", "bf16 (emulated)", "bf16 (oneDNN)",
 * "fp32 (oneDNN)". */
const char *tf_gemm_backend_name (TfGemmBackend backend);

/* TRUE for the backends whose operands are bf16. */
gboolean tf_gemm_backend_is_bf16 (TfGemmBackend backend);

/* Sets the backend of products started from the calling thread; returns the
 * one it replaces. Threads start with TF_GEMM_OPENBLAS_F32. */
TfGemmBackend tf_gemm_use (TfGemmBackend backend);
TfGemmBackend tf_gemm_current (void);

/* x rounded to the nearest bf16 (ties to even), NaN kept a NaN, as a float
 * and as its 16 bits. */
float tf_bf16_round (float x);
uint16_t tf_bf16_bits (float x);

/* Weights that stay the same for a while, converted once (issue 15: "weights
 * packed once"). A generator's weights do not change during one of its
 * calls, yet each product would convert its operands again: a denoising
 * step spent a seventh of its time converting the same weights. A pack
 * holds regions of floats (tf_gemm_pack_add: say, a model's whole parameter
 * buffer) and, made on first use, their bf16 copies: a product prepared on
 * a thread whose pack is set (tf_gemm_pack_use) whose operand lies inside a
 * region reads the copy, converted once, instead of converting it again.
 * The copies hold the same bits a product's own conversion would, so the
 * results do not change. tf_gemm_pack_clear() forgets the copies (the
 * floats may have changed); nothing else checks that they did not. */
typedef struct _TfGemmPack TfGemmPack;

TfGemmPack *tf_gemm_pack_new (void);
void        tf_gemm_pack_free (TfGemmPack *pack);
void        tf_gemm_pack_add (TfGemmPack *pack, const float *data, size_t n);
void        tf_gemm_pack_clear (TfGemmPack *pack);
/* Sets the pack of products prepared on the calling thread (NULL: none);
 * returns the one it replaces. */
TfGemmPack *tf_gemm_pack_use (TfGemmPack *pack);
/* Floats converted so far, since the pack was made (for tests). */
size_t      tf_gemm_pack_converted (const TfGemmPack *pack);

/* Decoding's matrix–vector products, c = alpha·W·a + beta·c for one row a,
 * are bound by reading W: in bf16 they read half the bytes. The bf16 bits
 * of W [N, K] (row-major, leading dimension ldb, as the products' B given
 * transposed) from the calling thread's pack, when its backend is oneDNN
 * bf16 and a region holds W (converted now if not yet); NULL otherwise, and
 * the product stays fp32. */
const uint16_t *tf_gemm_packed_rows (const float *W, int N, int K, int ldb);

/* c[n] = alpha·Σ_k bf16(a[k·inc])·W[n, k] + beta·c[n] for n in [n0, n1):
 * the vector rounded to bf16 as oneDNN's bf16 products round their
 * operands, products and sums in fp32, each row's sum in fixed lanes (the
 * same bits on every machine). W holds bf16 bits, leading dimension ldw. */
void tf_gemv_bf16 (int n0, int n1, int K, float alpha, const float *a, int inc,
                   const uint16_t *W, int ldw, float beta, float *c);

/* One product C = alpha·op(A)·op(B) + beta·C (row-major, C is M×N), as
 * tf_gemm_prepare() left it for tf_gemm_part(). */
typedef struct {
  TfGemmBackend   backend;
  CBLAS_TRANSPOSE ta, tb;
  int             M, N, K;
  float           alpha, beta;
  const void     *a, *b;       /* float, or uint16_t bf16 for oneDNN bf16 */
  int             lda, ldb;
  float          *c;
  int             ldc;
  void           *owned_a, *owned_b;   /* converted copies, or NULL */
} TfGemm;

/* Prepares a product with the calling thread's backend: converts the
 * operands once when the backend reads bf16. */
void tf_gemm_prepare (TfGemm *g, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                      float alpha, const float *A, int lda, const float *B, int ldb, float beta,
                      float *C, int ldc);
/* Computes C's rows [s, e) (@rows) or columns [s, e); parts of one product
 * may run at once on different threads. */
void tf_gemm_part (const TfGemm *g, gboolean rows, int s, int e);
void tf_gemm_finish (TfGemm *g);

/* The same for the double-precision build of the kernels (finite-difference
 * tests): always cblas_dgemm. */
typedef struct {
  CBLAS_TRANSPOSE ta, tb;
  int             M, N, K;
  double          alpha, beta;
  const double   *a, *b;
  int             lda, ldb;
  double         *c;
  int             ldc;
} TfGemmF64;

void tf_gemm_prepare_f64 (TfGemmF64 *g, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N,
                          int K, double alpha, const double *A, int lda, const double *B,
                          int ldb, double beta, double *C, int ldc);
void tf_gemm_part_f64 (const TfGemmF64 *g, gboolean rows, int s, int e);
void tf_gemm_finish_f64 (TfGemmF64 *g);

/* The kernel a backend runs for this shape (oneDNN's implementation name,
 * e.g. "brg:avx512_core_amx"; "OpenBLAS sgemm" for OpenBLAS), for benchmark
 * figures. g_free() it. */
char *tf_gemm_kernel_name (TfGemmBackend backend, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb,
                           int M, int N, int K);

/* ---- Backend entry points (tf-gemm-openblas.c, tf-gemm-dnnl.c) ---------- */

/* C rows/columns of a prepared product, one thread. */
void tf_gemm_openblas_part (const TfGemm *g, gboolean rows, int s, int e);
void tf_gemm_dnnl_part (const TfGemm *g, gboolean rows, int s, int e);
gboolean tf_gemm_dnnl_bf16_native (void);
char *tf_gemm_dnnl_kernel_name (TfGemmBackend backend, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb,
                                int M, int N, int K);

G_END_DECLS
