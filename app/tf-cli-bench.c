/* tf-cli-bench.c: `transfusion-cli bench`: how fast this machine runs the
 * engine, beside the machine's own limits measured in the same run.
 *
 * Each part (the sgemm peak and the engine's products in each backend,
 * memory bandwidth, training, image generation, text) runs in a child
 * process of its own, so that its peak resident memory
 * is its own; the child prints one JSON object and the parent gathers them.
 * Every figure is a median over --repeat repetitions after a warm-up.
 *
 * The training batch is synthetic and fixed, so that the PyTorch twin
 * (tests/reference/bench_twin.py) runs exactly the same layout: each row is
 * 128 positions, document A = [bos] 10 caption tokens [boi] image (64
 * patches, noised at a random t, in the diffusion loss) [eoi] [eos], then
 * document B = [bos] and 49 text tokens. No padding. */
#include "config.h"

#include "tf-cli-private.h"

#include <cblas.h>
#include <errno.h>
#include <glib/gi18n.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "tf-gemm.h"
#include "tf-generate.h"
#include "tf-json.h"
#include "tf-layers.h"
#include "tf-rng.h"
#include "tf-tokenizer.h"
#include "transfusion.h"

#define BENCH_SEQ_LEN 128
#define CAPTION_TOKENS 10
#define PROMPT_TOKENS 14      /* the image prompt: [bos] + 14 + [boi] = 16 */
#define TEXT_PROMPT 64
#define TEXT_DECODE 128
#define IMAGE_STEPS 50
#define SGEMM_N 1024
#define BANDWIDTH_BYTES (512u << 20)

typedef struct {
  const char *preset;
  int         threads;
  int         repeat;
  int         batch;       /* training rows; 0: the preset's */
  const char *recipe;      /* "key=value,…" applied to the preset's config, or "" */
  TfPrecision precision;   /* of training, images and text */
} BenchOptions;

/* ---- Helpers ------------------------------------------------------------- */

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (double *values, int n)
{
  qsort (values, n, sizeof (double), compare_doubles);
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

static double
now_seconds (void)
{
  return g_get_monotonic_time () / 1e6;
}

static void
set_threads (int threads)
{
#ifdef _OPENMP
  omp_set_num_threads (threads);
#endif
  openblas_set_num_threads (1);
}

/* The preset's model under @recipe (the image side's fields), random
 * weights, with a vocabulary of the preset's size (the trainer's defaults). */
static TfModel *
bench_model (const char *preset, const char *recipe, GError **error)
{
  TfConfig config;
  if (!tf_config_preset (&config, preset, error) ||
      !tf_config_apply_recipe (&config, recipe, error))
    return NULL;
  config.vocab_size = g_str_equal (preset, "tiny") ? 512
                      : g_str_equal (preset, "small") ? 2048 : 4096;
  /* Specials are the last ids, as the tokenizer lays them out. */
  int32_t *ids[] = { &config.bos_id, &config.eos_id, &config.boi_id, &config.eoi_id,
                     &config.pad_id, &config.user_id, &config.assistant_id };
  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    *ids[i] = config.vocab_size - (int) G_N_ELEMENTS (ids) + (int) i;
  TfModel *model = tf_model_new (&config, error);
  if (model != NULL)
    tf_model_init_random (model, 1);
  return model;
}

/* ---- sgemm and memory bandwidth ------------------------------------------ */

static void
part_sgemm (const BenchOptions *o, JsonBuilder *b)
{
  const int n = SGEMM_N;
  float *a = g_new (float, (size_t) n * n), *x = g_new (float, (size_t) n * n);
  float *c = g_new0 (float, (size_t) n * n);
  TfRng rng;
  tf_rng_seed (&rng, 1);
  for (size_t i = 0; i < (size_t) n * n; i++)
    {
      a[i] = (float) tf_rng_normal (&rng);
      x[i] = (float) tf_rng_normal (&rng);
    }
  const int counts[2] = { 1, o->threads };
  const char *keys[2] = { "gflops_1", "gflops_n" };
  json_builder_set_member_name (b, "n");
  json_builder_add_int_value (b, n);
  for (int k = 0; k < 2; k++)
    {
      openblas_set_num_threads (counts[k]);
      double *times = g_new (double, o->repeat);
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, x, n, 0, c, n);
      for (int r = 0; r < o->repeat; r++)
        {
          double t0 = now_seconds ();
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, x, n, 0, c, n);
          times[r] = now_seconds () - t0;
        }
      json_builder_set_member_name (b, keys[k]);
      json_builder_add_double_value (b, 2.0 * n * n * (double) n / median (times, o->repeat) / 1e9);
      g_free (times);
    }
  openblas_set_num_threads (1);

  /* The same product through the engine (tf_linear_forward: its bands on
   * the OpenMP threads) in each backend this CPU runs, with the kernel each
   * ran, side by side in one process. */
  const TfGemmBackend backends[] = { TF_GEMM_OPENBLAS_F32, TF_GEMM_DNNL_F32,
                                     tf_gemm_backend_for (TF_PRECISION_BF16) };
  json_builder_set_member_name (b, "products");
  json_builder_begin_array (b);
  for (guint k = 0; k < G_N_ELEMENTS (backends); k++)
    {
      const TfGemmBackend caller = tf_gemm_use (backends[k]);
      double *times = g_new (double, o->repeat);
      tf_linear_forward (c, a, x, NULL, n, n, n);
      for (int r = 0; r < o->repeat; r++)
        {
          double t0 = now_seconds ();
          tf_linear_forward (c, a, x, NULL, n, n, n);
          times[r] = now_seconds () - t0;
        }
      tf_gemm_use (caller);
      /* one band of rows, as the engine cuts them (tf-layers-impl.h) */
      const int procs = (int) g_get_num_processors ();
      const int band = MIN (n, ((n + procs - 1) / procs + 7) / 8 * 8);
      g_autofree char *kernel = tf_gemm_kernel_name (backends[k], CblasNoTrans, CblasTrans,
                                                     band, n, n);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "backend");
      json_builder_add_string_value (b, tf_gemm_backend_name (backends[k]));
      json_builder_set_member_name (b, "kernel");
      json_builder_add_string_value (b, kernel);
      json_builder_set_member_name (b, "gflops");
      json_builder_add_double_value (b, 2.0 * n * n * (double) n / median (times, o->repeat) / 1e9);
      json_builder_end_object (b);
      g_free (times);
    }
  json_builder_end_array (b);
  g_free (a); g_free (x); g_free (c);
}

/* Reads @n floats with @threads threads; returns the sum so the reads stay. */
static double
read_all (const float *p, size_t n, int threads)
{
  double total = 0;
#pragma omp parallel for num_threads(threads) reduction(+:total) schedule(static)
  for (size_t blk = 0; blk < n / 1024; blk++)
    {
      float s[8] = { 0 };
      const float *q = p + blk * 1024;
      for (int i = 0; i < 1024; i += 8)
        for (int k = 0; k < 8; k++)
          s[k] += q[i + k];
      total += s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    }
  return total;
}

static void
part_bandwidth (const BenchOptions *o, JsonBuilder *b)
{
  const size_t n = BANDWIDTH_BYTES / sizeof (float);
  float *p = g_new (float, n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++)
    p[i] = (float) (i & 1023);
  const int counts[2] = { 1, o->threads };
  const char *keys[2] = { "gbps_1", "gbps_n" };
  volatile double sink = 0;
  for (int k = 0; k < 2; k++)
    {
      double *times = g_new (double, o->repeat);
      sink += read_all (p, n, counts[k]);
      for (int r = 0; r < o->repeat; r++)
        {
          double t0 = now_seconds ();
          sink += read_all (p, n, counts[k]);
          times[r] = now_seconds () - t0;
        }
      json_builder_set_member_name (b, keys[k]);
      json_builder_add_double_value (b, BANDWIDTH_BYTES / median (times, o->repeat) / 1e9);
      g_free (times);
    }
  g_free (p);
}

/* ---- Training ------------------------------------------------------------ */

typedef struct {
  int32_t *tokens;    /* per row: 12 + 2 + 50 */
  float   *pixels, *noise;
  TfSegment *segments;
  TfSequence *rows;
  TfBatch batch;
} BenchBatch;

static int
bench_batch_rows (const char *preset)
{
  return g_str_equal (preset, "tiny") ? 8 : 16;
}

static void
bench_batch_init (BenchBatch *bb, const TfConfig *c, int n_rows, TfRng *rng)
{
  const int values = tf_config_image_values (c), per_row = 12 + 2 + 50;
  const int ordinary = c->vocab_size - TF_N_SPECIAL;
  bb->tokens = g_new (int32_t, (size_t) n_rows * per_row);
  bb->pixels = g_new (float, (size_t) n_rows * values);
  bb->noise = g_new (float, (size_t) n_rows * values);
  bb->segments = g_new0 (TfSegment, (size_t) n_rows * 4);
  bb->rows = g_new0 (TfSequence, n_rows);
  for (int r = 0; r < n_rows; r++)
    {
      int32_t *tk = bb->tokens + (size_t) r * per_row;
      float *px = bb->pixels + (size_t) r * values, *nz = bb->noise + (size_t) r * values;
      for (int i = 0; i < per_row; i++)
        tk[i] = (int32_t) tf_rng_below (rng, ordinary);
      tk[0] = c->bos_id;
      tk[11] = c->boi_id;
      tk[12] = c->eoi_id;
      tk[13] = c->eos_id;
      tk[14] = c->bos_id;
      for (int k = 0; k < values; k++)
        {
          px[k] = (float) (2.0 * tf_rng_uniform (rng) - 1.0);
          nz[k] = (float) tf_rng_normal (rng);
        }
      TfSegment *s = bb->segments + (size_t) r * 4;
      s[0] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = tk, .n_tokens = 12 };
      s[1] = (TfSegment) { .kind = TF_SEGMENT_IMAGE, .pixels = px, .noise = nz,
                           .t = 1 + (int) tf_rng_below (rng, c->diffusion_steps),
                           .diffusion_loss = TRUE };
      s[2] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = tk + 12, .n_tokens = 2 };
      s[3] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .new_document = TRUE, .tokens = tk + 14,
                           .n_tokens = 50 };
      bb->rows[r] = (TfSequence) { .segments = s, .n_segments = 4 };
    }
  bb->batch = (TfBatch) { .sequences = bb->rows, .n_sequences = n_rows, .lambda = 5 };
}

static void
bench_batch_clear (BenchBatch *bb)
{
  g_free (bb->tokens); g_free (bb->pixels); g_free (bb->noise);
  g_free (bb->segments); g_free (bb->rows);
}

/* The useful floating-point work of one forward pass: matrix products and
 * attention over the keys each position sees; logits only where there is a
 * target. Backward is twice this. */
static double
forward_flops (const TfConfig *c, TfActivations *acts, const TfLosses *losses)
{
  const double d = c->d_model, h = c->mlp_hidden, pd = tf_config_patch_dim (c);
  const int B = tf_activations_batch (acts), L = tf_activations_seq_len (acts);
  double keys = 0, positions = 0, patches = 0;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < L; i++)
      {
        int kind = tf_activations_position_kind (acts, b, i);
        if (kind == TF_POS_PAD)
          continue;
        positions++;
        patches += kind == TF_POS_PATCH;
        for (int j = 0; j < L; j++)
          keys += tf_activations_can_attend (acts, b, i, j);
      }
  double per_layer = positions * 2 * (4 * d * d + 3 * d * h) + 4 * d * keys;
  double images = c->n_layers * per_layer + 2.0 * d * c->vocab_size * losses->n_text_targets;
  if (c->image_encoder == TF_IMAGE_ENCODER_LINEAR)
    return images + patches * 2 * 2 * pd * d;
  const double Ci = c->image_channels, S = c->image_size;
  if (c->image_encoder == TF_IMAGE_ENCODER_CONV)
    {
      /* The conv encoder's 3×3 convolutions at every pixel, in and out, and
       * its maps of each patch's p·p·C values to and from the tokens. */
      const double C = c->conv_channels;
      const double macs = 2 * S * S * 9 * C * Ci + 2 * S * S * C * d;
      return images + patches / tf_config_n_patches (c) * 2 * macs;
    }
  /* The U-Net's convolutions (multiply-adds of 3×3 kernels at each level's
   * pixels, in and out) and its per-cell maps to and from the tokens. */
  const double C = c->unet_channels;
  double macs = 2 * S * S * 9 * C * Ci + 2 * tf_config_n_patches (c) * C * d;
  for (int l = 0; l < tf_config_unet_levels (c); l++)
    {
      const double px = (S / (1 << l)) * (S / (1 << l));
      macs += 2 * c->unet_blocks * 2 * px * 9 * C * C   /* blocks, encoder and decoder */
              + px / 4 * 9 * C * C + px * 9 * C * C;   /* down (stride 2) and up */
    }
  return images + patches / tf_config_n_patches (c) * 2 * macs;
}

static gboolean
part_train (const BenchOptions *o, JsonBuilder *b, GError **error)
{
  g_autoptr (TfModel) model = bench_model (o->preset, o->recipe, error);
  if (model == NULL)
    return FALSE;
  tf_gemm_use (tf_gemm_backend_for (o->precision));   /* this process does nothing else */
  const TfConfig *c = tf_model_config (model);
  g_autoptr (TfActivations) acts = tf_activations_new (model);
  BenchBatch bb;
  TfRng rng;
  TfLosses losses;
  tf_rng_seed (&rng, 2);
  bench_batch_init (&bb, c, o->batch > 0 ? o->batch : bench_batch_rows (o->preset), &rng);

  /* as the trainer does: one bf16 copy of the weights a step */
  TfGemmPack *pack = tf_gemm_pack_new ();
  tf_gemm_pack_add (pack, tf_model_params (model), tf_model_n_params (model));
  tf_gemm_pack_use (pack);
  double *times = g_new (double, o->repeat);
  gboolean ok = TRUE;
  for (int r = -2; r < o->repeat && ok; r++)   /* two warm-up steps */
    {
      double t0 = now_seconds ();
      tf_gemm_pack_clear (pack);
      tf_model_zero_grads (model);
      ok = tf_model_forward (model, acts, &bb.batch, &losses, error);
      if (ok)
        tf_model_backward (model, acts);
      if (r >= 0)
        times[r] = now_seconds () - t0;
    }
  if (ok)
    {
      const double step = median (times, o->repeat);
      const double positions = (double) bb.batch.n_sequences * BENCH_SEQ_LEN;
      const double flops = 3 * forward_flops (c, acts, &losses);
      json_builder_set_member_name (b, "batch");
      json_builder_add_int_value (b, bb.batch.n_sequences);
      json_builder_set_member_name (b, "seq_len");
      json_builder_add_int_value (b, losses.seq_len);
      json_builder_set_member_name (b, "ms_per_step");
      json_builder_add_double_value (b, 1e3 * step);
      json_builder_set_member_name (b, "tokens_per_second");
      json_builder_add_double_value (b, positions / step);
      json_builder_set_member_name (b, "gflop_per_step");
      json_builder_add_double_value (b, flops / 1e9);
      json_builder_set_member_name (b, "gflops");
      json_builder_add_double_value (b, flops / step / 1e9);
      /* what ran the products: the backend, and the kernel of one band of
       * the attention's input product (rows × d → 3d), the commonest shape */
      const TfGemmBackend backend = tf_gemm_backend_for (o->precision);
      const int rows = (int) positions, procs = (int) g_get_num_processors ();
      const int band = MIN (rows, ((rows + procs - 1) / procs + 7) / 8 * 8);
      g_autofree char *kernel = tf_gemm_kernel_name (backend, CblasNoTrans, CblasTrans, band,
                                                     3 * c->d_model, c->d_model);
      json_builder_set_member_name (b, "products");
      json_builder_add_string_value (b, tf_gemm_backend_name (backend));
      json_builder_set_member_name (b, "kernel");
      json_builder_add_string_value (b, kernel);
    }
  g_free (times);
  tf_gemm_pack_use (NULL);
  tf_gemm_pack_free (pack);
  bench_batch_clear (&bb);
  return ok;
}

/* ---- Sampling ------------------------------------------------------------- */

/* A tokenizer of the model's vocabulary, learnt from made-up words (the
 * vocabulary's size, not its content, is what costs time). */
static TfTokenizer *
bench_tokenizer (const TfConfig *c, GError **error)
{
  static const char *const syllables[] = {
    "ka", "to", "ri", "men", "sa", "lo", "ve", "du", "pi", "nar", "el", "ost",
    "ba", "qui", "ze", "run", "ha", "mi", "tro", "gle", "fa", "ne", "spo", "wi",
  };
  TfRng rng;
  tf_rng_seed (&rng, 3);
  GString *text = g_string_new (NULL);
  while (text->len < 600000)
    {
      int n = 1 + (int) tf_rng_below (&rng, 4);
      for (int i = 0; i < n; i++)
        g_string_append (text, syllables[tf_rng_below (&rng, G_N_ELEMENTS (syllables))]);
      g_string_append_c (text, tf_rng_below (&rng, 12) == 0 ? '\n' : ' ');
    }
  const char *texts[1] = { text->str };
  TfTokenizer *tok = tf_tokenizer_train (texts, NULL, 1, c->vocab_size, error);
  g_string_free (text, TRUE);
  if (tok != NULL && tf_tokenizer_vocab_size (tok) != c->vocab_size)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "the benchmark's tokenizer learnt %d tokens, not %d",
                   tf_tokenizer_vocab_size (tok), c->vocab_size);
      g_clear_pointer (&tok, tf_tokenizer_free);
    }
  return tok;
}

static TfGenerator *
bench_generator (const BenchOptions *o, GError **error)
{
  g_autoptr (TfModel) model = bench_model (o->preset, o->recipe, error);
  if (model == NULL)
    return NULL;
  g_autoptr (TfTokenizer) tok = bench_tokenizer (tf_model_config (model), error);
  if (tok == NULL)
    return NULL;
  TfConfig config = *tf_model_config (model);
  tf_tokenizer_apply_to_config (tok, &config);
  g_autoptr (TfModel) matched = tf_model_new (&config, error);
  if (matched == NULL)
    return NULL;
  memcpy (tf_model_params (matched), tf_model_params (model),
          sizeof (float) * tf_model_n_params (model));
  TfGenerator *gen = tf_generator_new (g_steal_pointer (&matched), g_steal_pointer (&tok), error);
  if (gen != NULL)
    tf_generator_set_precision (gen, o->precision);
  return gen;
}

typedef struct {
  double *times;
  int     n;
  double  last;
} StepClock;

static void
on_step (const TfStepEvent *event, gpointer user_data)
{
  StepClock *clock = user_data;
  double now = now_seconds ();
  clock->times[clock->n++] = now - clock->last;
  clock->last = now;
}

static gboolean
part_image (const BenchOptions *o, JsonBuilder *b, GError **error)
{
  g_autoptr (TfGenerator) gen = bench_generator (o, error);
  if (gen == NULL)
    return FALSE;
  const TfConfig *c = tf_model_config (tf_generator_model (gen));
  const TfTokenizer *tok = tf_generator_tokenizer (gen);

  /* A prompt of PROMPT_TOKENS tokens: words that keep it within the count,
   * until it is reached (or no word fits). */
  static const char *const words[] = { "a", "red", "circle", "above", "two", "blue",
                                       "squares", "on", "the", "left", "small", "green",
                                       "i", "o", "e" };
  GString *prompt = g_string_new (NULL);
  size_t n_tokens = 0;
  for (gboolean grew = TRUE; grew && n_tokens < PROMPT_TOKENS;)
    {
      grew = FALSE;
      for (guint w = 0; w < G_N_ELEMENTS (words) && !grew; w++)
        {
          size_t len = prompt->len, count;
          g_string_append_printf (prompt, "%s%s", len ? " " : "", words[(w + n_tokens) % G_N_ELEMENTS (words)]);
          g_free (tf_tokenizer_encode (tok, prompt->str, prompt->len, &count));
          if (count <= PROMPT_TOKENS)
            {
              n_tokens = count;
              grew = TRUE;
            }
          else
            g_string_truncate (prompt, len);
        }
    }

  TfGenerateSettings settings;
  tf_generate_settings_init (&settings);
  settings.steps = IMAGE_STEPS;
  settings.seed = 7;
  float *pixels = g_new (float, tf_config_image_values (c));
  StepClock clock = { .times = g_new (double, IMAGE_STEPS) };
  TfGenerateCallbacks callbacks = { .step = on_step, .user_data = &clock };
  double *images = g_new (double, o->repeat), *steps = g_new (double, o->repeat * IMAGE_STEPS);
  gboolean ok = TRUE;
  int n_steps = 0;
  for (int r = -1; r < o->repeat && ok; r++)
    {
      clock.n = 0;
      clock.last = now_seconds ();
      double t0 = clock.last;
      ok = tf_generator_generate_image (gen, prompt->str, &settings, &callbacks, pixels, error);
      if (ok && r >= 0)
        {
          images[r] = now_seconds () - t0;
          /* The first step also fills the cache with the prompt. */
          for (int k = 1; k < clock.n; k++)
            steps[n_steps++] = clock.times[k];
        }
    }
  if (ok)
    {
      json_builder_set_member_name (b, "prefix_tokens");
      json_builder_add_int_value (b, (gint64) n_tokens + 2);
      json_builder_set_member_name (b, "steps");
      json_builder_add_int_value (b, IMAGE_STEPS);
      json_builder_set_member_name (b, "ms_per_step");
      json_builder_add_double_value (b, 1e3 * median (steps, n_steps));
      json_builder_set_member_name (b, "seconds_per_image");
      json_builder_add_double_value (b, median (images, o->repeat));
    }
  g_string_free (prompt, TRUE);
  g_free (pixels); g_free (clock.times); g_free (images); g_free (steps);
  return ok;
}

/* The bytes of weights that decoding one token reads: every matrix of the
 * layers, the final norm and the LM head, and one row of the embedding;
 * the matrices in bf16 when the generator reads them so (tf-gemm.h). */
static double
decode_weight_bytes (TfModel *model, gboolean bf16)
{
  const TfConfig *c = tf_model_config (model);
  double bytes = 4.0 * c->d_model;
  for (int i = 0; i < tf_model_n_tensors (model); i++)
    {
      const TfParamInfo *info = tf_model_tensor (model, i);
      if (g_str_has_prefix (info->name, "layers.") || g_str_equal (info->name, "norm.weight") ||
          g_str_equal (info->name, "lm_head.weight"))
        bytes += (bf16 && info->n_dims == 2 ? 2.0 : 4.0) * (double) info->size;
    }
  return bytes;
}

static int32_t
argmax (const float *x, int n)
{
  int32_t best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

static gboolean
part_text (const BenchOptions *o, JsonBuilder *b, double bandwidth, GError **error)
{
  g_autoptr (TfGenerator) gen = bench_generator (o, error);
  if (gen == NULL)
    return FALSE;
  TfModel *model = tf_generator_model (gen);
  const TfConfig *c = tf_model_config (model);
  const int V = c->vocab_size;
  const int n_decode = MIN (TEXT_DECODE, c->max_seq_len - TEXT_PROMPT);
  int32_t prompt[TEXT_PROMPT];
  TfRng rng;
  tf_rng_seed (&rng, 4);
  for (int i = 0; i < TEXT_PROMPT; i++)
    prompt[i] = (int32_t) tf_rng_below (&rng, V - TF_N_SPECIAL);
  prompt[0] = c->bos_id;

  float *logits = g_new (float, V);
  double *prefill = g_new (double, o->repeat), *decode = g_new (double, o->repeat);
  gboolean ok = TRUE;
  for (int r = -1; r < o->repeat && ok; r++)
    {
      double t0 = now_seconds ();
      ok = tf_generator_prefill (gen, prompt, TEXT_PROMPT, TRUE, logits, error);
      double t1 = now_seconds ();
      for (int k = 0; k < n_decode && ok; k++)
        {
          int32_t next = argmax (logits, V);
          ok = tf_generator_prefill (gen, &next, 1, FALSE, logits, error);
        }
      if (r >= 0)
        {
          prefill[r] = t1 - t0;
          decode[r] = now_seconds () - t1;
        }
    }
  if (ok)
    {
      const double bytes =
        decode_weight_bytes (model, tf_generator_backend (gen) == TF_GEMM_DNNL_BF16);
      json_builder_set_member_name (b, "prompt_tokens");
      json_builder_add_int_value (b, TEXT_PROMPT);
      json_builder_set_member_name (b, "decode_tokens");
      json_builder_add_int_value (b, n_decode);
      json_builder_set_member_name (b, "prefill_tokens_per_second");
      json_builder_add_double_value (b, TEXT_PROMPT / median (prefill, o->repeat));
      json_builder_set_member_name (b, "decode_tokens_per_second");
      json_builder_add_double_value (b, n_decode / median (decode, o->repeat));
      json_builder_set_member_name (b, "weight_bytes_per_token");
      json_builder_add_double_value (b, bytes);
      if (bandwidth > 0)
        {
          json_builder_set_member_name (b, "bound_tokens_per_second");
          json_builder_add_double_value (b, bandwidth * 1e9 / bytes);
        }
    }
  g_free (logits); g_free (prefill); g_free (decode);
  return ok;
}

/* ---- Parts in child processes -------------------------------------------- */

static const char *const part_names[] = { "sgemm", "bandwidth", "train", "image", "text", NULL };
#define N_PARTS (G_N_ELEMENTS (part_names) - 1)

/* Runs one part in this process and prints its JSON object. */
static int
run_part (TfCli *cli, const BenchOptions *o, const char *part, double bandwidth)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (GError) error = NULL;
  gboolean ok = TRUE;

  set_threads (o->threads);
  json_builder_begin_object (b);
  if (g_str_equal (part, "sgemm"))
    part_sgemm (o, b);
  else if (g_str_equal (part, "bandwidth"))
    part_bandwidth (o, b);
  else if (g_str_equal (part, "train"))
    ok = part_train (o, b, &error);
  else if (g_str_equal (part, "image"))
    ok = part_image (o, b, &error);
  else
    ok = part_text (o, b, bandwidth, &error);
  json_builder_end_object (b);
  if (!ok)
    {
      fprintf (cli->err, "%s bench: %s: %s\n", PROGRAM, part, error->message);
      return TF_CLI_EXIT_FAILURE;
    }
  g_autofree char *json = tf_json_builder_to_string (b);
  fprintf (cli->out, "%s\n", json);
  return TF_CLI_EXIT_OK;
}

/* Runs `transfusion-cli bench --part NAME` as a child and parses what it
 * prints; *rss_mb gets the child's peak resident memory. */
static JsonObject *
spawn_part (const BenchOptions *o, const char *part, double bandwidth, double *rss_mb,
            GError **error)
{
  g_autofree char *threads = g_strdup_printf ("%d", o->threads);
  g_autofree char *repeat = g_strdup_printf ("%d", o->repeat);
  g_autofree char *batch = g_strdup_printf ("%d", o->batch);
  char bw[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr (bw, sizeof bw, bandwidth);
  const char *argv[] = { "/proc/self/exe", "bench", "--part", part, "--preset", o->preset,
                         "--threads", threads, "--repeat", repeat, "--batch", batch,
                         "--bandwidth", bw, "--recipe", o->recipe,
                         "--precision", tf_precision_name (o->precision), NULL };
  int out[2];
  if (pipe (out) != 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "pipe: %s",
                   g_strerror (errno));
      return NULL;
    }
  fflush (NULL);
  pid_t pid = fork ();
  if (pid < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "fork: %s",
                   g_strerror (errno));
      close (out[0]); close (out[1]);
      return NULL;
    }
  if (pid == 0)
    {
      dup2 (out[1], STDOUT_FILENO);
      close (out[0]); close (out[1]);
      execv (argv[0], (char **) argv);
      _exit (127);
    }
  close (out[1]);
  GString *text = g_string_new (NULL);
  char buf[4096];
  ssize_t got;
  while ((got = read (out[0], buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR))
    if (got > 0)
      g_string_append_len (text, buf, got);
  close (out[0]);

  int status;
  struct rusage usage;
  while (wait4 (pid, &status, 0, &usage) < 0 && errno == EINTR)
    ;
  *rss_mb = usage.ru_maxrss / 1024.0;
  g_autofree char *output = g_string_free (text, FALSE);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "the %s part failed", part);
      return NULL;
    }
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, output, -1, error))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "the %s part printed no object", part);
      return NULL;
    }
  return json_object_ref (json_node_get_object (root));
}

static double
member (JsonObject *o, const char *name)
{
  return o != NULL && json_object_has_member (o, name)
         ? json_object_get_double_member (o, name) : NAN;
}

static void
print_table (TfCli *cli, const BenchOptions *o, JsonObject **parts, const double *rss)
{
  JsonObject *sg = parts[0], *bw = parts[1], *tr = parts[2], *im = parts[3], *tx = parts[4];
  FILE *out = cli->out;
  fprintf (out, _("Preset %s, %d threads, medians of %d runs\n"), o->preset, o->threads,
           o->repeat);
  fprintf (out, _("Matrix products of training, images and text: %s\n"),
           tf_gemm_backend_name (tf_gemm_backend_for (o->precision)));
  if (*o->recipe != '\0')
    {
      /* Through a string: GCC 12's -Wformat-overflow takes the translated
       * format for a null one when it inlines this under ASan. */
      g_autofree char *recipe = g_strdup_printf (_("Recipe %s\n"), o->recipe);
      fputs (recipe, out);
    }
  fputc ('\n', out);
  fprintf (out, "%-34s %14s   %s\n", _("measure"), _("value"), _("limit measured in this run"));
  if (sg != NULL)
    fprintf (out, "%-34s %10.1f GF/s\n", _("sgemm 1024³, 1 thread"), member (sg, "gflops_1"));
  if (sg != NULL)
    fprintf (out, "%-34s %10.1f GF/s\n", _("sgemm 1024³, all threads"), member (sg, "gflops_n"));
  JsonArray *products = sg != NULL && json_object_has_member (sg, "products")
                        ? json_object_get_array_member (sg, "products") : NULL;
  for (guint i = 0; products != NULL && i < json_array_get_length (products); i++)
    {
      JsonObject *p = json_array_get_object_element (products, i);
      g_autofree char *label = g_strdup_printf (_("engine 1024³, %s"),
                                                json_object_get_string_member (p, "backend"));
      fprintf (out, "%-34s %10.1f GF/s   %s\n", label, member (p, "gflops"),
               json_object_get_string_member (p, "kernel"));
    }
  if (bw != NULL)
    fprintf (out, "%-34s %10.1f GB/s\n%-34s %10.1f GB/s\n", _("memory read, 1 thread"),
             member (bw, "gbps_1"), _("memory read, all threads"), member (bw, "gbps_n"));
  if (tr != NULL)
    {
      fprintf (out, "%-34s %10.1f ms     %.0f × %.0f positions\n", _("training step"),
               member (tr, "ms_per_step"), member (tr, "batch"), member (tr, "seq_len"));
      fprintf (out, "%-34s %10.0f tok/s\n", _("training throughput"),
               member (tr, "tokens_per_second"));
      fprintf (out, "%-34s %10.1f GF/s", _("training arithmetic"), member (tr, "gflops"));
      if (sg != NULL)
        {
          g_autofree char *share = g_strdup_printf (_("%.0f%% of sgemm (all threads)"),
                                                    100 * member (tr, "gflops") /
                                                    member (sg, "gflops_n"));
          fprintf (out, "   %s", share);
        }
      fputc ('\n', out);
      fprintf (out, "%-34s %10.0f MB\n", _("training peak memory"), rss[2]);
      if (json_object_has_member (tr, "kernel"))
        fprintf (out, "%-34s %s: %s\n", _("training products"),
                 json_object_get_string_member (tr, "products"),
                 json_object_get_string_member (tr, "kernel"));
    }
  if (im != NULL)
    {
      fprintf (out, "%-34s %10.2f ms     %.0f-token prefix, CFG batch of 2\n",
               _("denoising step"), member (im, "ms_per_step"), member (im, "prefix_tokens"));
      fprintf (out, "%-34s %10.2f s\n", _("50-step image"), member (im, "seconds_per_image"));
      fprintf (out, "%-34s %10.0f MB\n", _("image peak memory"), rss[3]);
    }
  if (tx != NULL)
    {
      fprintf (out, "%-34s %10.0f tok/s\n", _("prefill (64 tokens)"),
               member (tx, "prefill_tokens_per_second"));
      fprintf (out, "%-34s %10.0f tok/s  ", _("decode"), member (tx, "decode_tokens_per_second"));
      fprintf (out, _("bound %.0f tok/s (%.1f MB of weights a token at %.1f GB/s)\n"),
               member (tx, "bound_tokens_per_second"),
               member (tx, "weight_bytes_per_token") / 1e6, member (bw, "gbps_n"));
      fprintf (out, "%-34s %10.0f MB\n", _("text peak memory"), rss[4]);
    }
}

int
tf_cli_bench (TfCli *cli, const TfCliCommand *command, int argc, char **argv)
{
  g_autofree char *line = tf_cli_command_line (command);
  g_autofree char *usage = tf_cli_command_usage (command);
  g_autofree char *preset = NULL, *part = NULL, *only = NULL, *recipe = NULL;
  g_autofree char *precision_text = NULL;
  int threads = 0, repeat = 5, batch = 0;
  double bandwidth = 0;
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "preset", 0, 0, G_OPTION_ARG_STRING, &preset,
      N_("Model size: tiny, small, default or large (default)"), N_("NAME") },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads,
      N_("Threads to use (all cores)"), "N" },
    { "repeat", 0, 0, G_OPTION_ARG_INT, &repeat,
      N_("Repetitions of each measurement; medians are reported (5)"), "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch,
      N_("Training rows of 128 positions (8 for tiny, else 16)"), "B" },
    { "only", 0, 0, G_OPTION_ARG_STRING, &only,
      N_("Comma-separated parts: sgemm, bandwidth, train, image, text (all)"), N_("LIST") },
    { "recipe", 0, 0, G_OPTION_ARG_STRING, &recipe,
      N_("The image side's recipe on the preset: KEY=VALUE,… (e.g. image_encoder=unet,unet_channels=32)"),
      N_("LIST") },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON instead of a table"), NULL },
    TF_CLI_PRECISION_ENTRY (precision_text),
    { "part", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &part, NULL, NULL },
    { "bandwidth", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_DOUBLE, &bandwidth, NULL, NULL },
    G_OPTION_ENTRY_NULL
  };
  g_autofree char *summary = g_strdup_printf (
    "%s\n\n%s", _(command->summary),
    _("Measures, each part in a process of its own after a warm-up: the machine's\n"
      "sgemm rate and memory bandwidth (the limits), a training step on a fixed\n"
      "synthetic batch (rows of 128 positions: a caption, an image and a text\n"
      "document), a 50-step image with guidance, and text prefill and decoding.\n"
      "The weights are random: speed does not depend on them."));
  int status = tf_cli_parse_flags (cli, line, usage, summary, entries, argc, argv);
  if (status >= 0)
    return status;

  BenchOptions o = { .preset = preset != NULL ? preset : "default", .threads = threads,
                     .repeat = repeat, .batch = batch, .recipe = recipe != NULL ? recipe : "" };
  if ((status = tf_cli_precision (cli, line, precision_text, &o.precision)) >= 0)
    return status;
  TfConfig check;
  g_autoptr (GError) error = NULL;
  if (!tf_config_preset (&check, o.preset, &error) ||
      !tf_config_apply_recipe (&check, o.recipe, &error) ||
      !tf_config_validate_recipe (&check, "--recipe", &error))
    return tf_cli_usage_error (cli, line, error->message);
  if (o.threads == 0)
    o.threads = (int) g_get_num_processors ();
  if (o.threads < 1 || o.threads > 256)
    return tf_cli_usage_error (cli, line, _("--threads must be between 1 and 256"));
  if (o.batch < 0 || o.batch > 4096)
    return tf_cli_usage_error (cli, line, _("--batch must be between 1 and 4096"));
  if (o.repeat < 1 || o.repeat > 1000)
    return tf_cli_usage_error (cli, line, _("--repeat must be between 1 and 1000"));

  if (part != NULL)
    {
      if (!g_strv_contains (part_names, part))
        return tf_cli_usage_error (cli, line, _("unknown part"));
      return run_part (cli, &o, part, bandwidth);
    }

  g_auto (GStrv) wanted = g_strsplit (only != NULL ? only : "sgemm,bandwidth,train,image,text",
                                      ",", -1);
  for (guint i = 0; wanted[i] != NULL; i++)
    if (!g_strv_contains (part_names, wanted[i]))
      {
        g_autofree char *message = g_strdup_printf (_("unknown part '%s' in --only"), wanted[i]);
        return tf_cli_usage_error (cli, line, message);
      }

  JsonObject *parts[N_PARTS] = { NULL };
  double rss[N_PARTS] = { 0 };
  status = TF_CLI_EXIT_OK;
  for (guint i = 0; i < N_PARTS; i++)
    {
      /* The text part needs the bandwidth for its bound. */
      gboolean need = g_strv_contains ((const char *const *) wanted, part_names[i]) ||
                      (i == 1 && g_strv_contains ((const char *const *) wanted, "text"));
      if (!need)
        continue;
      if (!json)
        fprintf (cli->err, _("measuring %s…\n"), part_names[i]);
      g_autoptr (GError) part_error = NULL;
      parts[i] = spawn_part (&o, part_names[i], i == 4 ? member (parts[1], "gbps_n") : 0,
                             &rss[i], &part_error);
      if (parts[i] == NULL)
        {
          fprintf (cli->err, "%s: %s\n", line, part_error->message);
          status = TF_CLI_EXIT_FAILURE;
        }
      else
        json_object_set_double_member (parts[i], "peak_rss_mb", rss[i]);
    }

  if (json)
    {
      g_autoptr (JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "preset");
      json_builder_add_string_value (b, o.preset);
      json_builder_set_member_name (b, "threads");
      json_builder_add_int_value (b, o.threads);
      json_builder_set_member_name (b, "repeat");
      json_builder_add_int_value (b, o.repeat);
      json_builder_set_member_name (b, "recipe");
      json_builder_add_string_value (b, o.recipe);
      json_builder_set_member_name (b, "precision");
      json_builder_add_string_value (b, tf_gemm_backend_name (tf_gemm_backend_for (o.precision)));
      for (guint i = 0; i < N_PARTS; i++)
        if (parts[i] != NULL)
          {
            JsonNode *node = json_node_new (JSON_NODE_OBJECT);
            json_node_set_object (node, parts[i]);
            json_builder_set_member_name (b, part_names[i]);
            json_builder_add_value (b, node);
          }
      json_builder_end_object (b);
      g_autofree char *text = tf_json_builder_to_string (b);
      fprintf (cli->out, "%s\n", text);
    }
  else
    print_table (cli, &o, parts, rss);
  for (guint i = 0; i < N_PARTS; i++)
    g_clear_pointer (&parts[i], json_object_unref);
  return status;
}
