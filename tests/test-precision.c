/* test-precision.c: the matrix products' backends and precisions (tf-gemm.h,
 * issue 15). oneDNN's plumbing (strides, transposes, alpha, accumulating
 * into C, parts of C) against OpenBLAS in fp32 on every CPU; the bf16
 * emulation against its definition; bf16 layers, the model and a short
 * training run against fp32 within stated bands; and the same bits whatever
 * the thread count. oneDNN's own bf16 runs where the CPU has it (AMX or
 * AVX512-BF16), and is skipped, saying so, elsewhere. */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#include <omp.h>

#include "tf-gemm.h"
#include "tf-generate.h"
#include "tf-layers.h"
#include "tf-rng.h"
#include "tf-tokenizer.h"
#include "tf-test-util.h"
#include "tf-train.h"
#include "transfusion.h"

static char *tmp_dir;

static float *
random_floats (TfRng *rng, size_t n)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = (float) tf_rng_normal (rng);
  return x;
}

/* ‖got − ref‖₂ / ‖ref‖₂ */
static double
relative_error (const float *got, const float *ref, size_t n)
{
  double diff = 0, norm = 0;
  for (size_t i = 0; i < n; i++)
    {
      diff += ((double) got[i] - ref[i]) * ((double) got[i] - ref[i]);
      norm += (double) ref[i] * ref[i];
    }
  return sqrt (diff / norm);
}

static void
test_parse (void)
{
  TfPrecision p;
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_precision_parse ("bf16", &p, &error));
  g_assert_cmpint (p, ==, TF_PRECISION_BF16);
  g_assert_true (tf_precision_parse ("auto", &p, &error));
  g_assert_cmpint (p, ==, TF_PRECISION_AUTO);
  g_assert_true (tf_precision_parse ("fp32", &p, &error));
  g_assert_cmpint (p, ==, TF_PRECISION_FP32);
  g_assert_false (tf_precision_parse ("fp16", &p, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "'fp16'"));
  g_assert_cmpstr (tf_precision_name (TF_PRECISION_BF16), ==, "bf16");

  /* fp32 is OpenBLAS everywhere; auto never picks the emulation */
  const gboolean native = tf_gemm_bf16_native ();
  g_test_message ("bf16 native here: %s", native ? "yes" : "no");
  /* the fallback, forced (the precision-avx2 test) */
  if (g_strcmp0 (g_getenv ("ONEDNN_MAX_CPU_ISA"), "AVX2") == 0)
    g_assert_false (native);
  g_assert_cmpint (tf_gemm_backend_for (TF_PRECISION_FP32), ==, TF_GEMM_OPENBLAS_F32);
  g_assert_cmpint (tf_gemm_backend_for (TF_PRECISION_BF16), ==,
                   native ? TF_GEMM_DNNL_BF16 : TF_GEMM_OPENBLAS_BF16);
  g_assert_cmpint (tf_gemm_backend_for (TF_PRECISION_AUTO), ==,
                   native ? TF_GEMM_DNNL_BF16 : TF_GEMM_OPENBLAS_F32);
  g_assert_cmpstr (tf_gemm_backend_name (TF_GEMM_OPENBLAS_BF16), ==, "bf16 (emulated)");
}

static float
from_bits (uint32_t u)
{
  float f;
  memcpy (&f, &u, sizeof f);
  return f;
}

static void
test_bf16_rounding (void)
{
  /* exact values stay */
  g_assert_cmpfloat (tf_bf16_round (1.0f), ==, 1.0f);
  g_assert_cmpfloat (tf_bf16_round (-0.375f), ==, -0.375f);
  /* 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: to the even one, 1 */
  g_assert_cmpfloat (tf_bf16_round (1.0f + 0x1p-8f), ==, 1.0f);
  /* 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: to the even one */
  g_assert_cmpfloat (tf_bf16_round (1.0f + 3 * 0x1p-8f), ==, 1.0f + 0x1p-6f);
  /* just above halfway rounds up, just below down */
  g_assert_cmpfloat (tf_bf16_round (from_bits (0x3f808001u)), ==, 1.0f + 0x1p-7f);
  g_assert_cmpfloat (tf_bf16_round (from_bits (0x3f807fffu)), ==, 1.0f);
  g_assert_cmpfloat (tf_bf16_round (-from_bits (0x3f808001u)), ==, -1.0f - 0x1p-7f);
  g_assert_cmpuint (tf_bf16_bits (1.0f), ==, 0x3f80);
  /* infinities stay, the largest floats overflow to one, NaN stays NaN */
  g_assert_true (isinf (tf_bf16_round (INFINITY)));
  g_assert_true (isinf (tf_bf16_round (from_bits (0x7f7fffffu))));
  g_assert_true (isnan (tf_bf16_round (NAN)));
  g_assert_true (isnan (tf_bf16_round (from_bits (0x7f800001u))));   /* payload in the low bits */
}

typedef struct {
  CBLAS_TRANSPOSE ta, tb;
  int M, N, K, pad;     /* pad: extra columns in every leading dimension */
  float alpha, beta;
} Case;

static const Case cases[] = {
  { CblasNoTrans, CblasTrans, 70, 45, 33, 0, 1.0f, 0.0f },
  { CblasNoTrans, CblasNoTrans, 37, 64, 50, 3, 1.0f, 1.0f },
  { CblasTrans, CblasNoTrans, 24, 90, 41, 5, 1.0f, 1.0f },
  { CblasTrans, CblasTrans, 65, 17, 29, 1, 0.5f, 0.0f },
  { CblasNoTrans, CblasTrans, 8, 8, 300, 2, 0.125f, 1.0f },
};

/* One case on @backend, computed in @n_parts parts of C's rows or columns,
 * into @c (which holds C before); the reference is cblas_sgemm on the same
 * operands (rounded to bf16 first when @round). */
static void
run_case (const Case *k, TfGemmBackend backend, gboolean rows, int n_parts, uint64_t seed,
          float **got, float **ref, size_t *n_c)
{
  TfRng rng;
  tf_rng_seed (&rng, seed);
  const int a_rows = k->ta == CblasNoTrans ? k->M : k->K;
  const int a_cols = (k->ta == CblasNoTrans ? k->K : k->M), lda = a_cols + k->pad;
  const int b_rows = k->tb == CblasNoTrans ? k->K : k->N;
  const int b_cols = (k->tb == CblasNoTrans ? k->N : k->K), ldb = b_cols + k->pad;
  const int ldc = k->N + k->pad;
  g_autofree float *a = random_floats (&rng, (size_t) a_rows * lda);
  g_autofree float *b = random_floats (&rng, (size_t) b_rows * ldb);
  *n_c = (size_t) k->M * ldc;
  *got = random_floats (&rng, *n_c);
  *ref = g_memdup2 (*got, *n_c * sizeof (float));
  if (k->beta == 0)   /* C's old values must not count, NaN included */
    for (int r = 0; r < k->M; r++)
      for (int col = r % 7; col < k->N; col += 7)
        (*got)[(size_t) r * ldc + col] = NAN;

  g_autofree float *ra = g_memdup2 (a, (size_t) a_rows * lda * sizeof (float));
  g_autofree float *rb = g_memdup2 (b, (size_t) b_rows * ldb * sizeof (float));
  if (tf_gemm_backend_is_bf16 (backend))
    {
      for (size_t i = 0; i < (size_t) a_rows * lda; i++)
        ra[i] = tf_bf16_round (ra[i]);
      for (size_t i = 0; i < (size_t) b_rows * ldb; i++)
        rb[i] = tf_bf16_round (rb[i]);
    }
  cblas_sgemm (CblasRowMajor, k->ta, k->tb, k->M, k->N, k->K, k->alpha, ra, lda, rb, ldb,
               k->beta, *ref, ldc);

  const TfGemmBackend caller = tf_gemm_use (backend);
  TfGemm g;
  tf_gemm_prepare (&g, k->ta, k->tb, k->M, k->N, k->K, k->alpha, a, lda, b, ldb, k->beta,
                   *got, ldc);
  tf_gemm_use (caller);
  const int len = rows ? k->M : k->N, part = (len + n_parts - 1) / n_parts;
  for (int s = 0; s < len; s += part)
    tf_gemm_part (&g, rows, s, MIN (len, s + part));
  tf_gemm_finish (&g);
  /* the padding columns of C are nobody's: they keep their values */
  for (int r = 0; r < k->M; r++)
    for (int col = k->N; col < ldc; col++)
      g_assert_cmpfloat ((*got)[(size_t) r * ldc + col], ==, (*ref)[(size_t) r * ldc + col]);
}

/* oneDNN fp32 against OpenBLAS: |got − ref| ≤ 1e-4 + 1e-4·|ref|, on values
 * whose sums of K products of N(0, 1) numbers are about √K in size (fp32
 * differences in summation order are about 1e-6 of that). */
static void
test_onednn_f32 (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    for (int rows = 0; rows < 2; rows++)
      for (int n_parts = 1; n_parts <= 3; n_parts += 2)
        {
          float *got, *ref;
          size_t n;
          run_case (&cases[i], TF_GEMM_DNNL_F32, rows, n_parts, 10 + i, &got, &ref, &n);
          g_autofree char *name = g_strdup_printf ("case %u, %s, %d parts", i,
                                                   rows ? "rows" : "columns", n_parts);
          g_assert_true (tf_test_close_f32 (name, got, ref, n, 1e-4, 1e-4, NULL));
          g_free (got);
          g_free (ref);
        }
  g_autofree char *kernel = tf_gemm_kernel_name (TF_GEMM_DNNL_F32, CblasNoTrans, CblasTrans,
                                                 64, 64, 64);
  g_test_message ("oneDNN fp32 kernel: %s", kernel);
  g_assert_cmpstr (kernel, !=, "");
}

/* The emulation is its definition: OpenBLAS on operands rounded to bf16,
 * bit for bit; and it does round (fp32 differs). */
static void
test_emulation_exact (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      float *got, *ref, *got32, *ref32;
      size_t n;
      run_case (&cases[i], TF_GEMM_OPENBLAS_BF16, TRUE, 1, 20 + i, &got, &ref, &n);
      g_assert_cmpmem (got, n * sizeof (float), ref, n * sizeof (float));
      run_case (&cases[i], TF_GEMM_OPENBLAS_F32, TRUE, 1, 20 + i, &got32, &ref32, &n);
      g_assert_cmpmem (got32, n * sizeof (float), ref32, n * sizeof (float));
      g_assert_cmpfloat (relative_error (got, got32, n), >, 1e-4);
      g_free (got); g_free (ref); g_free (got32); g_free (ref32);
    }
}

/* oneDNN's bf16, where the CPU has it: the same rounded operands as the
 * emulation, so only the fp32 accumulation order differs. */
static void
test_onednn_bf16 (void)
{
  if (!tf_gemm_bf16_native ())
    {
      g_test_skip ("this CPU has no native bf16 (AMX or AVX512-BF16): oneDNN has no bf16 "
                   "matmul here; the emulation stands in");
      return;
    }
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    for (int rows = 0; rows < 2; rows++)
      {
        float *got, *ref;
        size_t n;
        run_case (&cases[i], TF_GEMM_DNNL_BF16, rows, 3, 30 + i, &got, &ref, &n);
        g_assert_true (tf_test_close_f32 ("oneDNN bf16", got, ref, n, 1e-4, 1e-4, NULL));
        g_free (got);
        g_free (ref);
      }
  g_autofree char *kernel = tf_gemm_kernel_name (TF_GEMM_DNNL_BF16, CblasNoTrans, CblasTrans,
                                                 256, 256, 256);
  g_test_message ("oneDNN bf16 kernel: %s", kernel);
}

/* C = op(A)·op(B) on the calling thread's backend and pack, in one part. */
static void
product (const Case *k, const float *a, int lda, const float *b, int ldb, float *c, int ldc)
{
  TfGemm g;
  tf_gemm_prepare (&g, k->ta, k->tb, k->M, k->N, k->K, k->alpha, a, lda, b, ldb, 0.0f, c, ldc);
  tf_gemm_part (&g, TRUE, 0, k->M);
  tf_gemm_finish (&g);
}

/* Weights packed once (tf_gemm_pack): a product whose operands lie in a
 * pack's region gives the same bits as one that converts them itself, the
 * region is converted once however many products read it, only the part
 * that was read, and after tf_gemm_pack_clear() changed floats are read
 * again. Operands start inside the region, with its leading dimension. */
static void
test_pack (void)
{
  TfGemmBackend backends[2] = { TF_GEMM_OPENBLAS_BF16 };
  int n_backends = 1;
  if (tf_gemm_bf16_native ())
    backends[n_backends++] = TF_GEMM_DNNL_BF16;
  for (int i = 0; i < n_backends; i++)
    for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++)
      {
        const Case *k = &cases[ci];
        TfRng rng;
        tf_rng_seed (&rng, 40 + ci);
        const int a_rows = k->ta == CblasNoTrans ? k->M : k->K;
        const int a_cols = k->ta == CblasNoTrans ? k->K : k->M, lda = a_cols + k->pad;
        const int b_rows = k->tb == CblasNoTrans ? k->K : k->N;
        const int b_cols = k->tb == CblasNoTrans ? k->N : k->K, ldb = b_cols + k->pad;
        /* one buffer holds both operands, 5 floats in, as a model's weights do */
        const size_t n_a = (size_t) a_rows * lda, n_b = (size_t) b_rows * ldb;
        const size_t n_all = 5 + n_a + n_b + 100000;
        g_autofree float *all = random_floats (&rng, n_all);
        float *a = all + 5, *b = all + 5 + n_a;
        const size_t n_c = (size_t) k->M * k->N;
        g_autofree float *plain = g_new (float, n_c), *packed = g_new (float, n_c);

        const TfGemmBackend caller = tf_gemm_use (backends[i]);
        product (k, a, lda, b, ldb, plain, k->N);
        TfGemmPack *pack = tf_gemm_pack_new ();
        tf_gemm_pack_add (pack, all, n_all);
        TfGemmPack *caller_pack = tf_gemm_pack_use (pack);
        product (k, a, lda, b, ldb, packed, k->N);
        g_assert_cmpmem (packed, n_c * sizeof (float), plain, n_c * sizeof (float));
        const size_t converted = tf_gemm_pack_converted (pack);
        g_assert_cmpuint (converted, >=, n_a + n_b - (k->pad > 0 ? (size_t) k->pad : 0));
        g_assert_cmpuint (converted, <, n_all);   /* the 100,000 floats after B were not read */
        product (k, a, lda, b, ldb, packed, k->N);
        g_assert_cmpuint (tf_gemm_pack_converted (pack), ==, converted);
        g_assert_cmpmem (packed, n_c * sizeof (float), plain, n_c * sizeof (float));

        /* B changes: the pack's copy is stale until it is cleared */
        for (size_t j = 0; j < n_b; j++)
          b[j] = -2 * b[j];
        tf_gemm_pack_clear (pack);
        product (k, a, lda, b, ldb, packed, k->N);
        g_assert_cmpuint (tf_gemm_pack_converted (pack), >, converted);
        tf_gemm_pack_use (NULL);
        product (k, a, lda, b, ldb, plain, k->N);
        g_assert_cmpmem (packed, n_c * sizeof (float), plain, n_c * sizeof (float));

        /* operands outside every region convert as always */
        g_autofree float *outside = g_memdup2 (b, n_b * sizeof (float));
        tf_gemm_pack_use (pack);
        const size_t before = tf_gemm_pack_converted (pack);
        product (k, a, lda, outside, ldb, packed, k->N);
        g_assert_cmpuint (tf_gemm_pack_converted (pack), ==, before);
        g_assert_cmpmem (packed, n_c * sizeof (float), plain, n_c * sizeof (float));
        g_assert_true (tf_gemm_pack_use (caller_pack) == pack);
        tf_gemm_pack_free (pack);
        tf_gemm_use (caller);
      }
}

static void check_bf16 (const char *name, const float *got, const float *ref, size_t n);

/* Decoding's matrix–vector product in bf16 (tf_gemv_bf16): against the
 * same rounded operands summed in double, within fp32 accumulation's error;
 * beta = 0 never reads C (NaN there stays out), beta = 1 adds into it. Then,
 * where oneDNN runs bf16, tf_linear_forward of one row with its weights in
 * the thread's pack takes that path, bit for bit, and stays within the
 * bf16 band of fp32. */
static void
test_gemv_bf16 (void)
{
  static const int Ks[] = { 1, 15, 16, 33, 256, 1000 };
  for (guint ki = 0; ki < G_N_ELEMENTS (Ks); ki++)
    for (int inc = 1; inc <= 3; inc += 2)
      for (int beta = 0; beta <= 1; beta++)
        {
          const int K = Ks[ki], N = 37, ldw = K + 3;
          TfRng rng;
          tf_rng_seed (&rng, 60 + ki);
          g_autofree float *a = random_floats (&rng, (size_t) K * inc);
          g_autofree float *w = random_floats (&rng, (size_t) N * ldw);
          g_autofree float *c = random_floats (&rng, N);
          g_autofree uint16_t *wb = g_new (uint16_t, (size_t) N * ldw);
          for (size_t i = 0; i < (size_t) N * ldw; i++)
            wb[i] = tf_bf16_bits (w[i]);
          g_autofree double *ref = g_new (double, N);
          for (int n = 0; n < N; n++)
            {
              double sum = 0;
              for (int k = 0; k < K; k++)
                sum += (double) tf_bf16_round (a[(size_t) k * inc]) *
                       tf_bf16_round (w[(size_t) n * ldw + k]);
              ref[n] = 0.5 * sum + (beta ? c[n] : 0);
              if (!beta)
                c[n] = NAN;
            }
          tf_gemv_bf16 (0, N, K, 0.5f, a, inc, wb, ldw, beta ? 1.0f : 0.0f, c);
          for (int n = 0; n < N; n++)
            if (!(fabs (c[n] - ref[n]) <= 1e-5 * sqrt ((double) K) * (1 + fabs (ref[n]))))
              g_error ("K %d, inc %d, beta %d, row %d: %.9g, expected %.9g", K, inc, beta, n,
                       c[n], ref[n]);
        }

  if (!tf_gemm_bf16_native ())
    {
      g_test_message ("no native bf16 here: the linear layer's bf16 decode path was not run");
      return;
    }
  const int in_dim = 200, out_dim = 70;
  TfRng rng;
  tf_rng_seed (&rng, 70);
  g_autofree float *w = random_floats (&rng, (size_t) out_dim * in_dim);
  g_autofree float *x = random_floats (&rng, in_dim);
  g_autofree float *b = random_floats (&rng, out_dim);
  g_autofree float *got = g_new (float, out_dim), *fp32 = g_new (float, out_dim);
  g_autofree float *direct = g_new (float, out_dim);
  g_autofree uint16_t *wb = g_new (uint16_t, (size_t) out_dim * in_dim);
  for (size_t i = 0; i < (size_t) out_dim * in_dim; i++)
    wb[i] = tf_bf16_bits (w[i]);
  tf_linear_forward (fp32, x, w, b, 1, in_dim, out_dim);
  TfGemmPack *pack = tf_gemm_pack_new ();
  tf_gemm_pack_add (pack, w, (size_t) out_dim * in_dim);
  const TfGemmBackend caller = tf_gemm_use (TF_GEMM_DNNL_BF16);
  TfGemmPack *caller_pack = tf_gemm_pack_use (pack);
  tf_linear_forward (got, x, w, b, 1, in_dim, out_dim);
  tf_gemm_pack_use (caller_pack);
  tf_gemm_use (caller);
  g_assert_cmpuint (tf_gemm_pack_converted (pack), ==, (size_t) out_dim * in_dim);
  tf_gemm_pack_free (pack);
  tf_gemv_bf16 (0, out_dim, in_dim, 1.0f, x, 1, wb, in_dim, 0.0f, direct);
  for (int o = 0; o < out_dim; o++)
    direct[o] += b[o];
  g_assert_cmpmem (got, out_dim * sizeof (float), direct, out_dim * sizeof (float));
  check_bf16 ("linear, one row", got, fp32, out_dim);
}

/* A generator packs its weights once per call and forgets them between
 * calls: a weight changed between two calls is seen by the second. Its
 * predictions in bf16 are those of a new generator on the changed model. */
static void
test_generator_pack (void)
{
  static const char *corpus[] = { "a red circle", "a small blue square", "draw a green star" };
  g_autoptr (GError) error = NULL;
  TfTokenizer *toks[2];
  TfModel *models[2];
  TfConfig c;
  for (int i = 0; i < 2; i++)
    {
      toks[i] = tf_tokenizer_train (corpus, NULL, G_N_ELEMENTS (corpus), 300, &error);
      g_assert_no_error (error);
      c = tf_test_tiny_config (tf_tokenizer_vocab_size (toks[i]));
      tf_tokenizer_apply_to_config (toks[i], &c);
      models[i] = tf_model_new (&c, &error);
      g_assert_no_error (error);
      tf_model_init_random (models[i], 8);
    }
  g_autoptr (TfGenerator) g = tf_generator_new (models[0], toks[0], &error);
  g_assert_no_error (error);
  tf_generator_set_precision (g, TF_PRECISION_BF16);
  const int values = tf_config_image_values (&c);
  TfRng rng;
  tf_rng_seed (&rng, 9);
  g_autofree float *x_t = random_floats (&rng, values);
  g_autofree float *before = g_new (float, values), *after = g_new (float, values);
  g_autofree float *fresh = g_new (float, values);
  const int32_t prefix[] = { c.bos_id, 7, 9, c.boi_id };
  const int32_t *prefixes[] = { prefix };
  const int lengths[] = { 4 };

  g_assert_true (tf_generator_cached_predict (g, prefixes, lengths, 1, x_t, 500, before,
                                              &error));
  g_assert_no_error (error);
  /* the first layer's MLP output doubled, in the generator's model and in a
   * copy that a new generator reads */
  for (int i = 0; i < 2; i++)
    {
      TfModel *m = i == 0 ? tf_generator_model (g) : models[1];
      const TfParamInfo *w2 = tf_model_find_tensor (m, "layers.0.mlp.w2");
      float *w = tf_model_params (m) + w2->offset;
      for (size_t j = 0; j < w2->size; j++)
        w[j] *= 2;
    }
  g_assert_true (tf_generator_cached_predict (g, prefixes, lengths, 1, x_t, 500, after,
                                              &error));
  g_assert_no_error (error);
  g_autoptr (TfGenerator) g2 = tf_generator_new (models[1], toks[1], &error);
  g_assert_no_error (error);
  tf_generator_set_precision (g2, TF_PRECISION_BF16);
  g_assert_true (tf_generator_cached_predict (g2, prefixes, lengths, 1, x_t, 500, fresh,
                                              &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (relative_error (after, before, values), >, 1e-3);
  g_assert_cmpmem (after, values * sizeof (float), fresh, values * sizeof (float));
}

/* bf16's tolerance for one layer: operands rounded to 8 significant bits
 * put a relative error of about 2⁻⁹ on each, so a sum of products is off by
 * a few 10⁻³ of its size; the bound is ‖bf16 − fp32‖₂ ≤ 1e-2·‖fp32‖₂, and
 * the error must be there (above 1e-5), or bf16 did not run. */
#define BF16_LAYER_RTOL 1e-2

static void
check_bf16 (const char *name, const float *got, const float *ref, size_t n)
{
  const double e = relative_error (got, ref, n);
  g_test_message ("%s: relative error %.2e", name, e);
  if (!(e <= BF16_LAYER_RTOL && e > 1e-5))
    g_error ("%s: bf16 against fp32, relative error %.3e (expected 1e-5 to %g)", name, e,
             BF16_LAYER_RTOL);
}

static void
test_layers (void)
{
  TfRng rng;
  tf_rng_seed (&rng, 5);
  const TfGemmBackend bf16 = tf_gemm_backend_for (TF_PRECISION_BF16);
  /* a linear layer: 96 rows, 64 → 80, with a bias */
  const int n = 96, in_dim = 64, out_dim = 80;
  g_autofree float *x = random_floats (&rng, (size_t) n * in_dim);
  g_autofree float *w = random_floats (&rng, (size_t) out_dim * in_dim);
  g_autofree float *bias = random_floats (&rng, out_dim);
  g_autofree float *dy = random_floats (&rng, (size_t) n * out_dim);
  float *y[2], *dx[2], *dw[2], *db[2];
  for (int p = 0; p < 2; p++)
    {
      const TfGemmBackend caller = tf_gemm_use (p ? bf16 : TF_GEMM_OPENBLAS_F32);
      y[p] = g_new (float, (size_t) n * out_dim);
      dx[p] = g_new0 (float, (size_t) n * in_dim);
      dw[p] = g_new0 (float, (size_t) out_dim * in_dim);
      db[p] = g_new0 (float, out_dim);
      tf_linear_forward (y[p], x, w, bias, n, in_dim, out_dim);
      tf_linear_backward (dx[p], dw[p], db[p], dy, x, w, n, in_dim, out_dim);
      tf_gemm_use (caller);
    }
  check_bf16 ("linear out", y[1], y[0], (size_t) n * out_dim);
  check_bf16 ("linear d_in", dx[1], dx[0], (size_t) n * in_dim);
  check_bf16 ("linear d_w", dw[1], dw[0], (size_t) out_dim * in_dim);
  /* the bias gradient is a sum in fp32, no product: the same bits */
  g_assert_cmpmem (db[1], out_dim * sizeof (float), db[0], out_dim * sizeof (float));
  for (int p = 0; p < 2; p++)
    {
      g_free (y[p]); g_free (dx[p]); g_free (dw[p]); g_free (db[p]);
    }

  /* a U-Net convolution: 2 images of 8×8×6, 3×3, stride 2, 10 channels out */
  const int imgs = 2, H = 8, Cin = 6, Cout = 10, k = 3, stride = 2, Ho = 4;
  const size_t n_in = (size_t) imgs * H * H * Cin, n_out = (size_t) imgs * Ho * Ho * Cout;
  const size_t n_w = (size_t) Cout * k * k * Cin;
  g_autofree float *cx = random_floats (&rng, n_in);
  g_autofree float *cw = random_floats (&rng, n_w);
  g_autofree float *cdy = random_floats (&rng, n_out);
  float *cy[2], *cdx[2], *cdw[2];
  for (int p = 0; p < 2; p++)
    {
      const TfGemmBackend caller = tf_gemm_use (p ? bf16 : TF_GEMM_OPENBLAS_F32);
      cy[p] = g_new (float, n_out);
      cdx[p] = g_new0 (float, n_in);
      cdw[p] = g_new0 (float, n_w);
      tf_conv2d_forward (cy[p], cx, cw, NULL, imgs, H, H, Cin, Cout, k, stride);
      tf_conv2d_backward (cdx[p], cdw[p], NULL, cdy, cx, cw, imgs, H, H, Cin, Cout, k, stride);
      tf_gemm_use (caller);
    }
  check_bf16 ("conv out", cy[1], cy[0], n_out);
  check_bf16 ("conv d_in", cdx[1], cdx[0], n_in);
  check_bf16 ("conv d_w", cdw[1], cdw[0], n_w);
  for (int p = 0; p < 2; p++)
    {
      g_free (cy[p]); g_free (cdx[p]); g_free (cdw[p]);
    }
}

/* The whole model, forward and backward, on a caption-and-image batch: the
 * losses within 2% of fp32's and the gradient within 3% (‖·‖₂), errors
 * that build up through the layers from each product's few 10⁻³. */
static void
test_model (void)
{
  TfConfig c = tf_test_tiny_config (64);
  g_autoptr (GError) error = NULL;
  g_autoptr (TfModel) m = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (m, 3);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  TfRng rng;
  tf_rng_seed (&rng, 4);
  const int values = tf_config_image_values (&c);
  g_autofree float *pixels = g_new (float, values), *noise = random_floats (&rng, values);
  for (int v = 0; v < values; v++)
    pixels[v] = (float) (2 * tf_rng_uniform (&rng) - 1);
  int32_t tokens[2][12];
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < 12; i++)
      tokens[r][i] = (int32_t) tf_rng_below (&rng, 50);
  tokens[0][0] = c.bos_id;
  tokens[0][11] = c.boi_id;
  TfSegment segs[3] = {
    { .kind = TF_SEGMENT_TEXT, .tokens = tokens[0], .n_tokens = 12 },
    { .kind = TF_SEGMENT_IMAGE, .pixels = pixels, .noise = noise, .t = 300,
      .diffusion_loss = TRUE },
    { .kind = TF_SEGMENT_TEXT, .tokens = tokens[1], .n_tokens = 12 },
  };
  TfSequence seq = { segs, 3 };
  TfBatch batch = { &seq, 1, 5.0f };
  const size_t n = tf_model_n_params (m);
  float *grads[2];
  TfLosses losses[2];
  for (int p = 0; p < 2; p++)
    {
      const TfGemmBackend caller =
        tf_gemm_use (p ? tf_gemm_backend_for (TF_PRECISION_BF16) : TF_GEMM_OPENBLAS_F32);
      g_assert_true (tf_model_forward (m, acts, &batch, &losses[p], &error));
      g_assert_no_error (error);
      tf_model_zero_grads (m);
      tf_model_backward (m, acts);
      grads[p] = g_memdup2 (tf_model_grads (m), n * sizeof (float));
      tf_gemm_use (caller);
    }
  g_test_message ("LM loss %.5f / %.5f, diffusion loss %.5f / %.5f (fp32 / bf16)",
                  losses[0].lm, losses[1].lm, losses[0].ddpm, losses[1].ddpm);
  g_assert_cmpfloat (fabs (losses[1].lm - losses[0].lm), <=, 0.02 * losses[0].lm);
  g_assert_cmpfloat (fabs (losses[1].ddpm - losses[0].ddpm), <=, 0.02 * losses[0].ddpm);
  const double e = relative_error (grads[1], grads[0], n);
  g_test_message ("gradient: relative error %.2e", e);
  g_assert_cmpfloat (e, <=, 0.03);
  g_assert_cmpfloat (e, >, 1e-5);
  g_free (grads[0]);
  g_free (grads[1]);
}

/* The same bits on one thread and on two, for every backend this CPU runs:
 * the engine cuts C by the core count, never by the threads. */
static void
test_threads_same_bits (void)
{
  const TfGemmBackend backends[] = { TF_GEMM_OPENBLAS_F32, TF_GEMM_DNNL_F32,
                                     tf_gemm_backend_for (TF_PRECISION_BF16) };
  TfRng rng;
  tf_rng_seed (&rng, 6);
  const int n = 256, in_dim = 192, out_dim = 160;
  g_autofree float *x = random_floats (&rng, (size_t) n * in_dim);
  g_autofree float *w = random_floats (&rng, (size_t) out_dim * in_dim);
  const int threads = omp_get_max_threads ();
  for (guint b = 0; b < G_N_ELEMENTS (backends); b++)
    {
      float *y[2];
      const TfGemmBackend caller = tf_gemm_use (backends[b]);
      for (int t = 0; t < 2; t++)
        {
          omp_set_num_threads (t + 1);
          y[t] = g_new (float, (size_t) n * out_dim);
          tf_linear_forward (y[t], x, w, NULL, n, in_dim, out_dim);
        }
      omp_set_num_threads (threads);
      tf_gemm_use (caller);
      g_assert_cmpmem (y[0], (size_t) n * out_dim * sizeof (float), y[1],
                       (size_t) n * out_dim * sizeof (float));
      g_free (y[0]);
      g_free (y[1]);
    }
}

static void
tiny_run_options (TfTrainOptions *o, const char *out, TfPrecision precision, int64_t steps)
{
  tf_test_tiny_train_options (o, out);
  o->steps = steps;
  o->warmup_steps = 10;
  o->precision = precision;
}

#define TRAIN_STEPS 200
#define TRAIN_WINDOW 25

/* A 200-step run of the tiny preset in bf16 beside the same run in fp32
 * (the same batches: every draw comes from the seed, not the model). The
 * band: each 25-step mean of the loss within 5% of fp32's, plus 0.02. */
static void
test_train_band (void)
{
  double curve[2][TRAIN_STEPS / TRAIN_WINDOW] = { { 0 } };
  for (int p = 0; p < 2; p++)
    {
      g_autofree char *out = g_strdup_printf ("%s/band-%d.safetensors", tmp_dir, p);
      TfTrainOptions o;
      tiny_run_options (&o, out, p ? TF_PRECISION_BF16 : TF_PRECISION_FP32, TRAIN_STEPS);
      g_autoptr (GError) error = NULL;
      g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
      g_assert_no_error (error);
      tf_train_options_clear (&o);
      g_assert_cmpint (tf_trainer_backend (tr), ==,
                       p ? tf_gemm_backend_for (TF_PRECISION_BF16) : TF_GEMM_OPENBLAS_F32);
      for (int s = 0; s < TRAIN_STEPS; s++)
        {
          TfTrainProgress progress;
          g_assert_true (tf_trainer_train_step (tr, &progress, &error));
          g_assert_no_error (error);
          curve[p][s / TRAIN_WINDOW] += progress.loss / TRAIN_WINDOW;
        }
      /* the calling thread's backend is left as it was */
      g_assert_cmpint (tf_gemm_current (), ==, TF_GEMM_OPENBLAS_F32);
      g_assert_true (tf_trainer_save (tr, &error));
      g_assert_no_error (error);
      g_autoptr (TfSafetensors) st = tf_safetensors_open (out, &error);
      g_assert_no_error (error);
      g_autofree char *needle = g_strdup_printf ("\"precision\":\"%s\"",
                                                 tf_gemm_backend_name (tf_trainer_backend (tr)));
      g_assert_nonnull (strstr (tf_safetensors_metadata (st, "provenance"), needle));
    }
  for (int w = 0; w < TRAIN_STEPS / TRAIN_WINDOW; w++)
    {
      g_test_message ("steps %3d-%3d: loss %.4f fp32, %.4f bf16", w * TRAIN_WINDOW + 1,
                      (w + 1) * TRAIN_WINDOW, curve[0][w], curve[1][w]);
      g_assert_cmpfloat (fabs (curve[1][w] - curve[0][w]), <=, 0.05 * curve[0][w] + 0.02);
    }
  /* and both learnt */
  g_assert_cmpfloat (curve[1][TRAIN_STEPS / TRAIN_WINDOW - 1], <, 0.8 * curve[1][0]);
}

/* bf16 resumes bit for bit: 6 steps in one go, or 3, a save, and 3 more
 * with the precision read back from the state. */
static void
test_resume_exact (void)
{
  g_autofree char *one = g_strdup_printf ("%s/one.safetensors", tmp_dir);
  g_autofree char *two = g_strdup_printf ("%s/two.safetensors", tmp_dir);
  g_autoptr (GError) error = NULL;
  TfTrainOptions o;
  tiny_run_options (&o, one, TF_PRECISION_BF16, 6);
  g_autoptr (TfTrainer) a = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);
  g_assert_true (tf_trainer_run (a, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  tiny_run_options (&o, two, TF_PRECISION_BF16, 6);
  o.until_step = 3;
  g_autoptr (TfTrainer) b = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);
  g_assert_true (tf_trainer_run (b, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_clear_pointer (&b, tf_trainer_free);

  tf_train_options_init (&o);
  g_assert_true (tf_train_options_load_saved (&o, two, &error));
  g_assert_no_error (error);
  g_assert_cmpint (o.precision, ==, TF_PRECISION_BF16);
  g_free (o.out);
  o.out = g_strdup (two);
  o.resume = TRUE;
  o.save_every_minutes = 60;
  b = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);
  g_assert_true (tf_trainer_run (b, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  const size_t n = tf_model_n_params (tf_trainer_model (a));
  g_assert_cmpmem (tf_model_params (tf_trainer_model (a)), n * sizeof (float),
                   tf_model_params (tf_trainer_model (b)), n * sizeof (float));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = tf_test_make_temp_dir ("tf-precision-XXXXXX");
  g_test_add_func ("/precision/parse", test_parse);
  g_test_add_func ("/precision/bf16-rounding", test_bf16_rounding);
  g_test_add_func ("/precision/onednn-f32", test_onednn_f32);
  g_test_add_func ("/precision/emulation-exact", test_emulation_exact);
  g_test_add_func ("/precision/onednn-bf16", test_onednn_bf16);
  g_test_add_func ("/precision/pack", test_pack);
  g_test_add_func ("/precision/generator-pack", test_generator_pack);
  g_test_add_func ("/precision/gemv-bf16", test_gemv_bf16);
  g_test_add_func ("/precision/layers", test_layers);
  g_test_add_func ("/precision/model", test_model);
  g_test_add_func ("/precision/threads-same-bits", test_threads_same_bits);
  g_test_add_func ("/precision/train-band", test_train_band);
  g_test_add_func ("/precision/resume-exact", test_resume_exact);
  int status = g_test_run ();
  tf_test_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return status;
}
