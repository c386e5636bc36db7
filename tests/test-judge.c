/* test-judge.c: the evaluation judge (tf-judge.h) and the Fréchet distance
 * (tf-eval.h): the judge's backward against finite differences in double,
 * a short training that learns, its file; the eigen-decomposition and the
 * distance against cases with known answers. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "tf-eval.h"
#include "tf-judge.h"
#include "tf-rng.h"
#include "tf-test-util.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---- The judge ------------------------------------------------------------ */

static double
judge_loss_f64 (const TfJudgeDims *d, const double *params, const double *input, int n,
                const int32_t *labels)
{
  g_autofree double *acts = g_new (double, tf_judge_n_activations (d, n));
  g_autofree double *grads = g_new0 (double, tf_judge_n_params (d));
  g_autofree double *scratch = g_new (double, (size_t) n * (d->hidden + d->features + d->classes));
  tf_judge_forward_f64 (d, params, input, n, acts);
  return tf_judge_backward_f64 (d, params, input, n, acts, labels, grads, scratch);
}

static void
test_judge_finite_differences (void)
{
  const TfJudgeDims d = { .size = 3, .hidden = 5, .features = 4, .classes = 3 };
  const int n = 4, in = d.size * d.size;
  const size_t np = tf_judge_n_params (&d);
  g_autofree double *params = g_new (double, np);
  g_autofree double *input = g_new (double, (size_t) n * in);
  g_autofree double *grads = g_new (double, np);
  g_autofree double *numeric = g_new (double, np);
  g_autofree double *acts = g_new (double, tf_judge_n_activations (&d, n));
  g_autofree double *scratch = g_new (double, (size_t) n * (d.hidden + d.features + d.classes));
  const int32_t labels[4] = { 0, 2, 1, 2 };
  TfRng rng;

  tf_rng_seed (&rng, 7);
  for (size_t k = 0; k < np; k++)
    params[k] = 0.5 * tf_rng_normal (&rng);
  for (int k = 0; k < n * in; k++)
    input[k] = 2 * tf_rng_uniform (&rng) - 1;

  /* backward ADDS: start from a known value and take it off again */
  for (size_t k = 0; k < np; k++)
    grads[k] = 1.0;
  tf_judge_forward_f64 (&d, params, input, n, acts);
  tf_judge_backward_f64 (&d, params, input, n, acts, labels, grads, scratch);
  for (size_t k = 0; k < np; k++)
    grads[k] -= 1.0;

  const double h = 1e-6;
  for (size_t k = 0; k < np; k++)
    {
      const double keep = params[k];
      params[k] = keep + h;
      double up = judge_loss_f64 (&d, params, input, n, labels);
      params[k] = keep - h;
      double down = judge_loss_f64 (&d, params, input, n, labels);
      params[k] = keep;
      numeric[k] = (up - down) / (2 * h);
    }
  g_assert_true (tf_test_close_f64 ("judge gradient", grads, numeric, np, 1e-8, 1e-6, NULL));

  /* The float judge is the same source: its logits follow the double's. */
  g_autofree float *pf = g_new (float, np);
  g_autofree float *xf = g_new (float, (size_t) n * in);
  g_autofree float *af = g_new (float, tf_judge_n_activations (&d, n));
  for (size_t k = 0; k < np; k++)
    pf[k] = (float) params[k];
  for (int k = 0; k < n * in; k++)
    xf[k] = (float) input[k];
  tf_judge_forward (&d, pf, xf, n, af);
  const float *zf = tf_judge_acts_logits (&d, af, n);
  const double *zd = tf_judge_acts_logits_f64 (&d, acts, n);
  g_autofree float *zd_f = g_new (float, (size_t) n * d.classes);
  for (int k = 0; k < n * d.classes; k++)
    zd_f[k] = (float) zd[k];
  g_assert_true (tf_test_close_f32 ("judge logits float vs double", zf, zd_f,
                                    (size_t) n * d.classes, 1e-5, 1e-4, NULL));
}

static void
test_judge_learns (void)
{
  g_autoptr (GError) error = NULL;
  TfJudgeDims d;
  TfJudgeTrainOptions o;
  double before, after;

  if (!g_file_test (FASHION_DIR, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("Fashion-MNIST is not installed (dataset-fashion-mnist)");
      return;
    }
  tf_judge_dims_default (&d, 32);
  d.hidden = 64;
  g_autoptr (TfDataSource) train = tf_data_fashion_new (NULL, TF_SPLIT_TRAIN, 32, 1, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) test = tf_data_fashion_new (NULL, TF_SPLIT_HELDOUT, 32, 1, &error);
  g_assert_no_error (error);
  g_autoptr (TfJudge) judge = tf_judge_new (&d, 3);
  g_assert_true (tf_judge_accuracy (judge, test, 1000, &before, &error));
  g_assert_no_error (error);

  tf_judge_train_options_init (&o);
  o.max_examples = 3000;
  o.epochs = 3;
  g_assert_true (tf_judge_train (judge, train, &o, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (tf_judge_accuracy (judge, test, 1000, &after, &error));
  g_test_message ("accuracy on 1000 t10k images: %.3f before, %.3f after", before, after);
  /* Ten classes: chance is 0.1; 2400 images and three passes give ~0.75. */
  g_assert_cmpfloat (after, >, 0.6);
  g_assert_cmpfloat (after, >, before + 0.3);
}

static void
test_judge_file (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-judge-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "judge.safetensors", NULL);
  const TfJudgeDims d = { .size = 8, .hidden = 6, .features = 5, .classes = 10 };
  g_autoptr (TfJudge) judge = tf_judge_new (&d, 11);
  const size_t np = tf_judge_n_params (&d);
  float pixels[2 * 8 * 8 * 3];
  float f1[10], f2[10];
  int p1[2], p2[2];
  TfRng rng;

  /* F16 in the file: round the parameters first so the two judges agree. */
  float *params = tf_judge_params (judge);
  for (size_t k = 0; k < np; k++)
    params[k] = tf_f16_to_f32 (tf_f32_to_f16 (params[k]));
  g_assert_true (tf_judge_save (judge, path, "{\"note\":\"test\"}", &error));
  g_assert_no_error (error);
  g_autoptr (TfJudge) loaded = tf_judge_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_judge_dims (loaded)->hidden, ==, 6);
  g_assert_cmpstr (tf_judge_provenance (loaded), ==, "{\"note\":\"test\"}");
  g_assert_cmpmem (tf_judge_params (loaded), np * sizeof (float), params, np * sizeof (float));

  tf_rng_seed (&rng, 1);
  for (guint k = 0; k < G_N_ELEMENTS (pixels); k++)
    pixels[k] = 2 * (float) tf_rng_uniform (&rng) - 1;
  tf_judge_classify (judge, pixels, 2, 3, f1, p1);
  tf_judge_classify (loaded, pixels, 2, 3, f2, p2);
  g_assert_cmpmem (f1, sizeof f1, f2, sizeof f2);
  g_assert_cmpint (p1[0], ==, p2[0]);
  g_assert_cmpint (p1[1], ==, p2[1]);

  /* A model file is not a judge. */
  g_autofree char *model = tf_test_save_tiny_model (dir, NULL, NULL);
  g_autoptr (TfJudge) wrong = tf_judge_load (model, &error);
  g_assert_null (wrong);
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "not a judge file"));
  tf_test_remove_tree (dir);
}

/* ---- Eigen-decomposition and Fréchet distance ------------------------------ */

/* A random orthogonal n × n matrix (Gram–Schmidt of a normal one). */
static void
random_rotation (TfRng *rng, int n, double *q)
{
  for (int k = 0; k < n * n; k++)
    q[k] = tf_rng_normal (rng);
  for (int j = 0; j < n; j++)   /* columns */
    {
      for (int i = 0; i < j; i++)
        {
          double dot = 0;
          for (int r = 0; r < n; r++)
            dot += q[r * n + i] * q[r * n + j];
          for (int r = 0; r < n; r++)
            q[r * n + j] -= dot * q[r * n + i];
        }
      double norm = 0;
      for (int r = 0; r < n; r++)
        norm += q[r * n + j] * q[r * n + j];
      for (int r = 0; r < n; r++)
        q[r * n + j] /= sqrt (norm);
    }
}

/* Q diag(values) Qᵀ */
static void
compose_symmetric (const double *q, const double *values, int n, double *out)
{
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      {
        double s = 0;
        for (int k = 0; k < n; k++)
          s += q[i * n + k] * values[k] * q[j * n + k];
        out[i * n + j] = s;
      }
}

static void
test_eigen (void)
{
  const int n = 12;
  double q[144], a[144], values[12], vectors[144], want[12], got[12];
  TfRng rng;

  tf_rng_seed (&rng, 5);
  random_rotation (&rng, n, q);
  for (int k = 0; k < n; k++)
    want[k] = k < 3 ? 0.0 : (k - 5) * 0.7;   /* zeros and negatives too */
  compose_symmetric (q, want, n, a);
  g_assert_true (tf_symmetric_eigen (a, n, values, vectors));
  /* A v = λ v and VᵀV = I */
  for (int k = 0; k < n; k++)
    for (int i = 0; i < n; i++)
      {
        double av = 0;
        for (int j = 0; j < n; j++)
          av += a[i * n + j] * vectors[j * n + k];
        g_assert_cmpfloat (fabs (av - values[k] * vectors[i * n + k]), <, 1e-12);
      }
  for (int k = 0; k < n; k++)
    for (int l = 0; l < n; l++)
      {
        double dot = 0;
        for (int i = 0; i < n; i++)
          dot += vectors[i * n + k] * vectors[i * n + l];
        g_assert_cmpfloat (fabs (dot - (k == l)), <, 1e-12);
      }
  /* the same eigenvalues, as sets */
  memcpy (got, values, sizeof got);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      {
        if (got[j] < got[i])
          {
            double t = got[i];
            got[i] = got[j];
            got[j] = t;
          }
        if (want[j] < want[i])
          {
            double t = want[i];
            want[i] = want[j];
            want[j] = t;
          }
      }
  g_assert_true (tf_test_close_f64 ("eigenvalues", got, want, n, 1e-12, 1e-12, NULL));
}

static void
test_frechet_known (void)
{
  const int n = 10;
  double q[100], s1[100], s2[100], a[10], b[10], m1[10], m2[10];
  TfRng rng;

  tf_rng_seed (&rng, 9);
  random_rotation (&rng, n, q);
  for (int k = 0; k < n; k++)
    {
      a[k] = 0.1 + tf_rng_uniform (&rng) * 3;
      b[k] = 0.1 + tf_rng_uniform (&rng) * 3;
      m1[k] = tf_rng_normal (&rng);
      m2[k] = m1[k];
    }
  compose_symmetric (q, a, n, s1);
  compose_symmetric (q, b, n, s2);

  /* identical distributions: 0 */
  g_assert_cmpfloat (fabs (tf_frechet_distance (m1, s1, m1, s1, n)), <, 1e-9);

  /* the same covariance, shifted mean: ‖Δμ‖² */
  double shift = 0;
  for (int k = 0; k < n; k++)
    {
      m2[k] = m1[k] + 0.1 * (k + 1);
      shift += 0.01 * (k + 1) * (k + 1);
    }
  g_assert_cmpfloat (fabs (tf_frechet_distance (m1, s1, m2, s1, n) - shift), <, 1e-9);

  /* covariances with the same eigenvectors: ‖Δμ‖² + Σ (√a − √b)² */
  double want = shift;
  for (int k = 0; k < n; k++)
    want += (sqrt (a[k]) - sqrt (b[k])) * (sqrt (a[k]) - sqrt (b[k]));
  g_assert_cmpfloat (fabs (tf_frechet_distance (m1, s1, m2, s2, n) - want), <, 1e-9);

  /* 2 × 2 covariances that do not commute: for a 2 × 2 positive matrix M,
   * (tr M^½)² = tr M + 2 √det M, with M = Σ₁Σ₂. */
  const double c1[4] = { 2.0, 0.6, 0.6, 1.0 }, c2[4] = { 0.5, -0.2, -0.2, 1.5 };
  const double mu0[2] = { 0, 0 }, mu1[2] = { 1, -2 };
  const double tr12 = c1[0] * c2[0] + c1[1] * c2[2] + c1[2] * c2[1] + c1[3] * c2[3];
  const double det = (c1[0] * c1[3] - c1[1] * c1[2]) * (c2[0] * c2[3] - c2[1] * c2[2]);
  const double want2 = 5.0 + (c1[0] + c1[3]) + (c2[0] + c2[3]) - 2 * sqrt (tr12 + 2 * sqrt (det));
  g_assert_cmpfloat (fabs (tf_frechet_distance (mu0, c1, mu1, c2, 2) - want2), <, 1e-12);
}

static void
test_mean_covariance (void)
{
  /* Rows (1, 2), (3, 2), (5, 8): mean (3, 4); covariance /(n − 1). */
  const float rows[6] = { 1, 2, 3, 2, 5, 8 };
  const double want_cov[4] = { 4, 6, 6, 12 };
  double mean[2], cov[4];

  tf_mean_covariance (rows, 3, 2, mean, cov);
  g_assert_cmpfloat (fabs (mean[0] - 3), <, 1e-12);
  g_assert_cmpfloat (fabs (mean[1] - 4), <, 1e-12);
  g_assert_true (tf_test_close_f64 ("covariance", cov, want_cov, 4, 1e-12, 1e-12, NULL));
}

/* The "unseen phrasing" prompts are not captions the source writes, while
 * every caption it does write is read back as its class. */
static void
test_unseen_phrasings (void)
{
  g_autoptr (GError) error = NULL;
  TfRng rng;

  if (!g_file_test (FASHION_DIR, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("Fashion-MNIST is not installed (dataset-fashion-mnist)");
      return;
    }
  g_autoptr (TfDataSource) src = tf_data_fashion_new (NULL, TF_SPLIT_TRAIN, 32, 1, &error);
  g_assert_no_error (error);
  tf_rng_seed (&rng, 2);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (int i = 0; i < 3000; i++)
    {
      TfExample ex;
      g_assert_true (tf_data_source_get (src, i, &rng, &ex, &error));
      g_assert_cmpint (tf_data_fashion_caption_class (ex.caption), ==, ex.label);
      g_hash_table_add (seen, g_steal_pointer (&ex.caption));
      tf_example_clear (&ex);
    }
  const char *const *subjects = tf_data_source_subjects (src);
  for (int c = 0; subjects[c] != NULL; c++)
    for (int k = 0; k < TF_EVAL_N_UNSEEN_PHRASINGS; k++)
      {
        g_autofree char *prompt = tf_eval_unseen_fashion_prompt (subjects[c], k);
        g_assert_cmpint (tf_data_fashion_caption_class (prompt), ==, -1);
        g_assert_false (g_hash_table_contains (seen, prompt));
      }
  g_assert_cmpint (tf_data_fashion_caption_class ("a sneaker!"), ==, -1);
  g_assert_cmpint (tf_data_fashion_caption_class ("a photo of a boot"), ==, 9);
  g_assert_cmpint (tf_data_fashion_caption_class (""), ==, -1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/judge/finite-differences", test_judge_finite_differences);
  g_test_add_func ("/judge/learns", test_judge_learns);
  g_test_add_func ("/judge/file", test_judge_file);
  g_test_add_func ("/frechet/eigen", test_eigen);
  g_test_add_func ("/frechet/known-answers", test_frechet_known);
  g_test_add_func ("/frechet/mean-covariance", test_mean_covariance);
  g_test_add_func ("/eval/unseen-phrasings", test_unseen_phrasings);
  return g_test_run ();
}
