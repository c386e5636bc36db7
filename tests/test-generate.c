/* test-generate.c: sampling. The cached paths equal full recomputation; one
 * denoising step equals the PyTorch twin's; same seed, same bits; abort
 * within one step; context overflow is an error that changes nothing; a
 * random model still gives valid images and text; <|boi|> draws an image. */
#include "tf-generate.h"
#include "tf-data.h"
#include "tf-train.h"
#include "tf-rng.h"
#include "tf-threads.h"
#include "tf-test-util.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>

static const char *corpus[] = {
  "a red circle at the top left", "a small blue square in the centre",
  "what is a dog? a dog is a domestic animal", "draw a green star",
  "a photo of a sneaker", "an ankle boot on a black background",
  "the quick brown fox jumps over the lazy dog", "what is this? a pizza",
};

/* A random model with a real tokenizer. @max_seq_len and @patch shape it;
 * @recipe (or NULL) sets the image side's fields. adaLN weights and the
 * U-Net's and conv encoder's last convolutions, which start at zero, are
 * made random too, so that they act. */
static TfGenerator *
tiny_generator_with (uint64_t seed, int max_seq_len, int patch, const char *recipe)
{
  g_autoptr (GError) error = NULL;
  TfTokenizer *tok = tf_tokenizer_train (corpus, NULL, G_N_ELEMENTS (corpus), 300, &error);
  g_assert_no_error (error);
  TfConfig c = tf_test_tiny_config (tf_tokenizer_vocab_size (tok));
  tf_tokenizer_apply_to_config (tok, &c);
  c.max_seq_len = max_seq_len;
  c.patch_size = patch;
  g_assert_true (tf_config_apply_recipe (&c, recipe, &error));
  TfModel *m = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (m, seed);
  TfRng rng;
  tf_rng_seed (&rng, seed + 100);
  for (int i = 0; i < tf_model_n_tensors (m); i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      const gboolean unet_zero = g_str_has_prefix (t->name, "unet.") &&
                                 (g_str_has_suffix (t->name, "conv2.weight") ||
                                  strcmp (t->name, "unet.out.weight") == 0);
      const gboolean conv_zero = strcmp (t->name, "conv.head.weight") == 0;
      if (strstr (t->name, "adaln") != NULL || unet_zero || conv_zero)
        for (size_t k = 0; k < t->size; k++)
          tf_model_params (m)[t->offset + k] = (float) (0.05 * tf_rng_normal (&rng));
    }
  TfGenerator *g = tf_generator_new (m, tok, &error);
  g_assert_no_error (error);
  return g;
}

static TfGenerator *
tiny_generator (uint64_t seed, int max_seq_len, int patch)
{
  return tiny_generator_with (seed, max_seq_len, patch, NULL);
}

static void
test_cached_text_equals_full (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (1, 128, 4);
  TfModel *m = tf_generator_model (g);
  const int V = tf_model_config (m)->vocab_size;
  g_autoptr (GError) error = NULL;
  size_t n;
  g_autofree int32_t *ids = tf_tokenizer_encode (tf_generator_tokenizer (g),
                                                 "the quick brown fox jumps over a red circle", 43, &n);
  g_assert_cmpuint (n, >, 8);

  /* Full recomputation: one forward over the whole sequence. */
  TfSegment seg = { .kind = TF_SEGMENT_TEXT, .tokens = ids, .n_tokens = (int) n };
  TfSequence seq = { &seg, 1 };
  TfBatch batch = { &seq, 1, 5.0f };
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  g_assert_true (tf_model_forward (m, acts, &batch, NULL, &error));
  g_assert_no_error (error);

  /* Cached: a prefill of 5, then one token at a time. */
  g_autofree float *cached = g_new (float, n * V);
  g_assert_true (tf_generator_cached_logits (g, ids, (int) n, 5, cached, &error));
  g_assert_no_error (error);
  double worst;
  g_assert_true (tf_test_close_f32 ("cached logits", cached, tf_activations_logits (acts), n * V,
                                    1e-4, 1e-4, &worst));
  g_test_message ("largest share of tolerance used: %.3g", worst);
}

/* The prediction for one x_t after two prefixes of different lengths, by
 * full recomputation (@full) and by the cached path (@cached), each
 * [2, values]. */
static void
predict_both_ways (TfGenerator *g, float *full, float *cached)
{
  const TfConfig *c = tf_model_config (tf_generator_model (g));
  const int values = tf_config_image_values (c);
  const int32_t cond[] = { c->bos_id, 5, 17, 42, c->boi_id };
  const int32_t uncond[] = { c->bos_id, c->boi_id };
  const int32_t *prefixes[] = { cond, uncond };
  const int lengths[] = { 5, 2 };
  g_autofree float *x_t = g_new (float, values);
  TfRng rng;
  tf_rng_seed (&rng, 3);
  for (int k = 0; k < values; k++)
    x_t[k] = (float) tf_rng_normal (&rng);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_generator_predict (g, prefixes, lengths, 2, x_t, 640, full, &error));
  g_assert_no_error (error);
  g_assert_true (tf_generator_cached_predict (g, prefixes, lengths, 2, x_t, 640, cached, &error));
  g_assert_no_error (error);
}

/* @recipe: NULL, or an image-side recipe (adaLN-Zero modulates the cached block too). */
static void
test_cached_image_equals_full (gconstpointer recipe)
{
  g_autoptr (TfGenerator) g = tiny_generator_with (2, 128, 4, recipe);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (g)));
  g_autofree float *full = g_new (float, 2 * values);
  g_autofree float *cached = g_new (float, 2 * values);
  predict_both_ways (g, full, cached);
  double worst;
  g_assert_true (tf_test_close_f32 ("cached eps", cached, full, 2 * values, 1e-4, 1e-4, &worst));
  g_test_message ("largest share of tolerance used: %.3g", worst);
}

/* A generator of @recipe whose queries and keys are 16 times the random
 * init's, so that attention, and with it RoPE's positions, matter. */
static TfGenerator *
sharp_generator (const char *recipe)
{
  TfGenerator *g = tiny_generator_with (2, 128, 4, recipe);
  TfModel *m = tf_generator_model (g);
  float *params = tf_model_params (m);
  for (int i = 0; i < tf_model_n_tensors (m); i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      if (g_str_has_suffix (t->name, ".attn.wq") || g_str_has_suffix (t->name, ".attn.wk"))
        for (size_t k = 0; k < t->size; k++)
          params[t->offset + k] *= 16;
    }
  return g;
}

/* Axial RoPE in the cached image block: each row's patches count their grid
 * rows and columns from where that row's image starts (the two prefixes
 * differ in length), as the training forward does. With sharp attention
 * the positions show: 1-D RoPE predicts far outside the tolerance of the
 * axial prediction, which the cached path keeps within it. */
static void
test_cached_image_axial (void)
{
  g_autoptr (TfGenerator) g = sharp_generator ("prediction=v,time_conditioning=adaln_zero,"
                                               "image_rope=axial");
  g_autoptr (TfGenerator) g_1d = sharp_generator ("prediction=v,time_conditioning=adaln_zero");
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (g)));
  g_autofree float *full = g_new (float, 2 * values);
  g_autofree float *cached = g_new (float, 2 * values);
  g_autofree float *full_1d = g_new (float, 2 * values);
  g_autofree float *cached_1d = g_new (float, 2 * values);
  predict_both_ways (g, full, cached);
  predict_both_ways (g_1d, full_1d, cached_1d);
  double worst, apart = 0;
  g_assert_true (tf_test_close_f32 ("cached axial", cached, full, 2 * values, 1e-4, 1e-4, &worst));
  for (int k = 0; k < 2 * values; k++)
    apart = MAX (apart, fabs (full_1d[k] - full[k]) / (1e-4 + 1e-4 * fabs (full[k])));
  g_test_message ("largest share of tolerance used: %.3g; 1-D RoPE is %.3g shares away",
                  worst, apart);
  g_assert_cmpfloat (apart, >, 10);
}

/* One denoising step against the twin (tests/golden/tiny-sampling.safetensors). */
static float *
golden_tensor (TfSafetensors *st, const char *name, size_t n)
{
  const TfTensorInfo *info = tf_safetensors_find (st, name);
  if (info == NULL)
    g_error ("golden tensor '%s' is missing", name);
  g_assert_cmpuint (info->n_elements, ==, n);
  float *out = g_new (float, n);
  g_assert_true (tf_safetensors_read_f32 (st, info, out, n, NULL));
  return out;
}

static int32_t *
golden_ids (TfSafetensors *st, const char *key, int *n)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, tf_safetensors_metadata (st, key), -1, NULL));
  JsonArray *a = json_node_get_array (json_parser_get_root (p));
  *n = json_array_get_length (a);
  int32_t *ids = g_new (int32_t, *n);
  for (int i = 0; i < *n; i++)
    ids[i] = (int32_t) json_array_get_int_element (a, i);
  return ids;
}

static void
test_step_matches_twin (void)
{
  g_autofree char *model_path = tf_test_data_path ("golden", "tiny-model.safetensors", NULL);
  g_autofree char *path = tf_test_data_path ("golden", "tiny-sampling.safetensors", NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_test_skip ("tests/golden/tiny-sampling.safetensors is missing");
      return;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  /* The golden model has no tokenizer: the step needs none. */
  TfModel *m = tf_model_load (model_path, &error);
  g_assert_no_error (error);
  const TfConfig *c = tf_model_config (m);
  const int values = tf_config_image_values (c);
  int n_cond, n_uncond;
  g_autofree int32_t *cond = golden_ids (st, "cond_prefix", &n_cond);
  g_autofree int32_t *uncond = golden_ids (st, "uncond_prefix", &n_uncond);
  const int t = atoi (tf_safetensors_metadata (st, "t"));
  const int t_prev = atoi (tf_safetensors_metadata (st, "t_prev"));
  const float w = (float) g_ascii_strtod (tf_safetensors_metadata (st, "cfg"), NULL);

  /* The golden model has no tokenizer, so the step is assembled here from
   * the model's forward (which the cached path is tested against above) and
   * tf_sampler_update(). */
  g_autofree float *x_t = golden_tensor (st, "x_t", values);
  g_autofree float *z = golden_tensor (st, "z", values);
  g_autofree float *ref_eps = golden_tensor (st, "eps", values);
  g_autofree float *ref_ec = golden_tensor (st, "eps_c", values);
  g_autofree float *ref_eu = golden_tensor (st, "eps_u", values);

  /* ε of both rows through the model's forward (the cached path is checked
   * against this path above). */
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  TfSegment segs[4] = {
    { .kind = TF_SEGMENT_TEXT, .tokens = cond, .n_tokens = n_cond },
    { .kind = TF_SEGMENT_IMAGE, .pixels = x_t, .t = t, .noised = TRUE },
    { .kind = TF_SEGMENT_TEXT, .tokens = uncond, .n_tokens = n_uncond },
    { .kind = TF_SEGMENT_IMAGE, .pixels = x_t, .t = t, .noised = TRUE },
  };
  TfSequence seqs[2] = { { &segs[0], 2 }, { &segs[2], 2 } };
  TfBatch batch = { seqs, 2, 0.0f };
  g_assert_true (tf_model_forward (m, acts, &batch, NULL, &error));
  g_autofree float *eps_c = g_new (float, values), *eps_u = g_new (float, values);
  g_autofree float *eps = g_new (float, values);
  tf_activations_image_pred (acts, 0, eps_c);
  tf_activations_image_pred (acts, 1, eps_u);
  for (int k = 0; k < values; k++)
    eps[k] = eps_u[k] + w * (eps_c[k] - eps_u[k]);
  gboolean ok = tf_test_close_f32 ("eps_c", eps_c, ref_ec, values, 1e-5, 1e-4, NULL);
  ok &= tf_test_close_f32 ("eps_u", eps_u, ref_eu, values, 1e-5, 1e-4, NULL);
  ok &= tf_test_close_f32 ("eps", eps, ref_eps, values, 1e-5, 1e-4, NULL);

  g_autofree float *x0 = g_new (float, values), *x_prev = g_new (float, values);
  const struct { TfSampler s; const char *x0, *x_prev; } cases[] = {
    { TF_SAMPLER_DDPM, "ddpm.x0", "ddpm.x_prev" },
    { TF_SAMPLER_DDIM, "ddim.x0", "ddim.x_prev" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      /* the update from the twin's own ε isolates the sampler arithmetic */
      tf_sampler_update (cases[i].s, TF_PREDICTION_EPS, tf_model_alpha_bar (m), t, t_prev, x_t,
                         ref_eps, z, values, x0, x_prev);
      g_autofree float *r0 = golden_tensor (st, cases[i].x0, values);
      g_autofree float *rp = golden_tensor (st, cases[i].x_prev, values);
      ok &= tf_test_close_f32 (cases[i].x0, x0, r0, values, 1e-5, 1e-4, NULL);
      ok &= tf_test_close_f32 (cases[i].x_prev, x_prev, rp, values, 1e-5, 1e-4, NULL);
      /* and the whole step from our own ε */
      tf_sampler_update (cases[i].s, TF_PREDICTION_EPS, tf_model_alpha_bar (m), t, t_prev, x_t,
                         eps, z, values, x0, x_prev);
      ok &= tf_test_close_f32 (cases[i].x_prev, x_prev, rp, values, 1e-4, 1e-3, NULL);
    }
  /* The same output read as a v- or an x0-prediction (issue 14). */
  const struct { TfPrediction p; const char *name; } readings[] = {
    { TF_PREDICTION_V, "v" }, { TF_PREDICTION_X, "x" },
  };
  for (guint r = 0; r < G_N_ELEMENTS (readings); r++)
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        tf_sampler_update (cases[i].s, readings[r].p, tf_model_alpha_bar (m), t, t_prev, x_t,
                           ref_eps, z, values, x0, x_prev);
        g_autofree char *n0 = g_strconcat (readings[r].name, ".", cases[i].x0, NULL);
        g_autofree char *np = g_strconcat (readings[r].name, ".", cases[i].x_prev, NULL);
        g_autofree float *r0 = golden_tensor (st, n0, values);
        g_autofree float *rp = golden_tensor (st, np, values);
        ok &= tf_test_close_f32 (n0, x0, r0, values, 1e-5, 1e-4, NULL);
        ok &= tf_test_close_f32 (np, x_prev, rp, values, 1e-5, 1e-4, NULL);
      }

  /* Respaced timesteps. */
  const int counts[] = { 50, 7 };
  for (guint i = 0; i < G_N_ELEMENTS (counts); i++)
    {
      char key[32];
      g_snprintf (key, sizeof key, "timesteps.%d", counts[i]);
      int n;
      g_autofree int32_t *ref = golden_ids (st, key, &n);
      g_assert_cmpint (n, ==, counts[i]);
      g_autofree int *ts = g_new (int, n);
      tf_sampler_timesteps (c->diffusion_steps, n, ts);
      for (int k = 0; k < n; k++)
        g_assert_cmpint (ts[k], ==, ref[k]);
    }
  g_assert_true (ok);
  tf_model_free (m);
}

/* ---- whole generations -------------------------------------------------- */

typedef struct {
  int steps_seen, images_begun, images_ended, tokens;
  int abort_at;
  TfGenerator *g;
  gboolean finite;
} Watch;

static void
on_step (const TfStepEvent *ev, gpointer data)
{
  Watch *w = data;
  w->steps_seen++;
  const int n = ev->size * ev->size * ev->channels;
  for (int k = 0; k < n; k++)
    w->finite &= isfinite (ev->x_t[k]) && isfinite (ev->x0[k]) && fabsf (ev->x0[k]) <= 1.0f;
  if (w->abort_at > 0 && ev->step == w->abort_at)
    tf_generator_abort (w->g);
}

static void on_begin (gpointer data) { ((Watch *) data)->images_begun++; }
static void
on_end (const float *pixels, int size, int channels, gpointer data)
{
  ((Watch *) data)->images_ended++;
}
static void
on_token (const TfTokenEvent *ev, gpointer data)
{
  Watch *w = data;
  w->tokens++;
  w->finite &= ev->probability > 0 && ev->probability <= 1;
}

static void
test_image_seed_determinism (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (4, 128, 4);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (g)));
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 8;
  s.seed = 99;
  Watch w = { .finite = TRUE, .g = g };
  TfGenerateCallbacks cb = { on_token, on_begin, on_step, on_end, &w };
  g_autofree float *a = g_new (float, values), *b = g_new (float, values);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, &cb, a, &error));
  g_assert_no_error (error);
  g_assert_cmpint (w.steps_seen, ==, 8);
  g_assert_cmpint (w.images_begun, ==, 1);
  g_assert_cmpint (w.images_ended, ==, 1);
  g_assert_true (w.finite);
  for (int k = 0; k < values; k++)
    g_assert_true (isfinite (a[k]) && a[k] >= -1 && a[k] <= 1);

  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, NULL, b, &error));
  g_assert_cmpmem (a, values * sizeof (float), b, values * sizeof (float));
  s.seed = 100;
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, NULL, b, &error));
  g_assert_true (memcmp (a, b, values * sizeof (float)) != 0);
  s.seed = 99;
  s.sampler = TF_SAMPLER_DDIM;
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, NULL, b, &error));
  g_assert_true (memcmp (a, b, values * sizeof (float)) != 0);
}

/* img2img (SDEdit): the picture noised to strength·T, then the schedule's
 * steps at or below that level. */
typedef struct { int steps, first_t, last_step, n_steps; } StepLog;

static void
log_step (const TfStepEvent *ev, gpointer data)
{
  StepLog *l = data;
  if (l->steps++ == 0)
    l->first_t = ev->t;
  l->last_step = ev->step;
  l->n_steps = ev->n_steps;
}

static void
test_img2img (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (4, 128, 4);
  const TfConfig *c = tf_model_config (tf_generator_model (g));
  const int values = tf_config_image_values (c);
  g_autofree float *init = g_new (float, values), *a = g_new (float, values);
  g_autofree float *b = g_new (float, values);
  for (int k = 0; k < values; k++)
    init[k] = (float) sin (0.05 * k);
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 20;
  s.seed = 5;
  s.sampler = TF_SAMPLER_DDIM;
  s.init_image = init;
  s.strength = 0.5;
  StepLog l = { 0 };
  TfGenerateCallbacks cb = { .step = log_step, .user_data = &l };
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, &cb, a, &error));
  g_assert_no_error (error);
  /* of 1000, 950, …, 50: the ten at or below 500 */
  g_assert_cmpint (l.steps, ==, 10);
  g_assert_cmpint (l.first_t, ==, 500);
  g_assert_cmpint (l.n_steps, ==, 10);
  g_assert_cmpint (l.last_step, ==, 10);
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, NULL, b, &error));
  g_assert_cmpmem (a, values * sizeof (float), b, values * sizeof (float));

  /* A light touch keeps the picture: one step from t = 50. */
  s.strength = 0.05;
  l = (StepLog) { 0 };
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, &cb, a, &error));
  g_assert_cmpint (l.steps, ==, 1);
  g_assert_cmpint (l.first_t, ==, 50);
  double diff = 0, away = 0;
  for (int k = 0; k < values; k++)
    {
      diff += fabs (a[k] - init[k]);
      away += fabs (init[k]);
    }
  g_test_message ("mean |out − init| at strength 0.05: %.3f (|init| %.3f)", diff / values,
                  away / values);
  g_assert_cmpfloat (diff / values, <, 0.25 * away / values);

  /* Between two of the schedule's levels: from the one below. */
  s.strength = 0.96;
  l = (StepLog) { 0 };
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, &cb, a, &error));
  g_assert_cmpint (l.first_t, ==, 950);
  g_assert_cmpint (l.steps, ==, 19);

  /* Out of range. */
  s.strength = 0;
  g_assert_false (tf_generator_generate_image (g, "a red circle", &s, NULL, a, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "denoising strength 0"));
  g_clear_error (&error);
  s.strength = 1.5;
  g_assert_false (tf_generator_generate_image (g, "a red circle", &s, NULL, a, &error));
  g_clear_error (&error);
}

static void
test_abort_within_a_step (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (5, 128, 4);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (g)));
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 20;
  Watch w = { .finite = TRUE, .g = g, .abort_at = 3 };
  TfGenerateCallbacks cb = { NULL, NULL, on_step, NULL, &w };
  g_autofree float *x = g_new (float, values);
  g_autoptr (GError) error = NULL;
  g_assert_false (tf_generator_generate_image (g, "a dog", &s, &cb, x, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_ABORTED);
  g_assert_cmpint (w.steps_seen, ==, 3);

  /* The next call runs normally. */
  g_clear_error (&error);
  w = (Watch) { .finite = TRUE, .g = g };
  s.steps = 4;
  g_assert_true (tf_generator_generate_image (g, "a dog", &s, &cb, x, &error));
  g_assert_cmpint (w.steps_seen, ==, 4);
}

static void
test_caption_and_chat_are_valid (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (6, 256, 4);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (g)));
  g_autofree float *image = g_new (float, values);
  for (int k = 0; k < values; k++)
    image[k] = (float) sin (k * 0.1);
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.max_tokens = 12;
  Watch w = { .finite = TRUE, .g = g };
  TfGenerateCallbacks cb = { on_token, on_begin, on_step, on_end, &w };
  g_autoptr (GError) error = NULL;
  g_autofree char *caption = tf_generator_caption (g, image, &s, &cb, &error);
  g_assert_no_error (error);
  g_assert_nonnull (caption);
  g_assert_true (w.finite);
  g_assert_cmpint (w.tokens, <=, 12);

  /* Same seed, same caption. */
  g_autofree char *again = tf_generator_caption (g, image, &s, NULL, &error);
  g_assert_cmpstr (caption, ==, again);

  g_autofree char *reply = tf_generator_chat (g, "what is a dog?", NULL, &s, &cb, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);
  g_autofree char *reply2 = tf_generator_chat (g, "what is this?", image, &s, &cb, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply2);
}

static void
test_context_overflow (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (7, 96, 4);   /* 64 patches + 32 tokens */
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (g)));
  g_autofree float *x = g_new (float, values);
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 2;
  s.max_tokens = 4;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) long_prompt = g_string_new (NULL);
  for (int i = 0; i < 40; i++)
    g_string_append (long_prompt, "quick brown fox ");
  g_assert_false (tf_generator_generate_image (g, long_prompt->str, &s, NULL, x, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "does not fit"));
  g_clear_error (&error);

  /* A chat turn that does not fit fails and leaves the conversation as it was. */
  g_autofree char *first = tf_generator_chat (g, "hi", NULL, &s, NULL, &error);
  g_assert_no_error (error);
  g_autofree char *too_long = tf_generator_chat (g, long_prompt->str, NULL, &s, NULL, &error);
  g_assert_null (too_long);
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "context is full"));
  g_clear_error (&error);
  g_autofree char *next = tf_generator_chat (g, "hi", NULL, &s, NULL, &error);
  g_assert_no_error (error);

  /* 10^9 steps and NaN guidance are refused before any work. */
  s.steps = 1000000000;
  g_assert_false (tf_generator_generate_image (g, "x", &s, NULL, x, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  s.steps = 2;
  s.cfg = NAN;
  g_assert_false (tf_generator_generate_image (g, "x", &s, NULL, x, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  s.cfg = 3;

  /* A prompt of a gigabyte is refused before it is encoded: no allocation
   * of its size (its token ids would take 4 GB) happens on the way. */
  const size_t huge = (size_t) 1 << 30;
  char *gigabyte = g_malloc (huge + 1);
  memset (gigabyte, 'a', huge);
  gigabyte[huge] = '\0';
  struct rusage before, after;
  getrusage (RUSAGE_SELF, &before);
  g_assert_false (tf_generator_generate_image (g, gigabyte, &s, NULL, x, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_true (g_str_has_prefix (error->message, "the prompt is 1.1"));
  g_assert_nonnull (strstr (error->message, "can ever hold (at most 24576 bytes)"));
  g_clear_error (&error);
  s.negative = gigabyte;
  g_assert_false (tf_generator_generate_image (g, "x", &s, NULL, x, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "negative prompt"));
  g_clear_error (&error);
  s.negative = NULL;
  g_autofree char *reply = tf_generator_chat (g, gigabyte, NULL, &s, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_true (g_str_has_prefix (error->message, "the message is 1.1"));
  g_clear_error (&error);
  getrusage (RUSAGE_SELF, &after);
  g_assert_cmpint (after.ru_maxrss - before.ru_maxrss, <, 64 * 1024);   /* KiB */
  g_free (gigabyte);
  /* ... and the conversation goes on. */
  g_autofree char *again = tf_generator_chat (g, "hi", NULL, &s, NULL, &error);
  g_assert_no_error (error);
}

/* A model built so that <|boi|> is always the most likely token: the residual
 * stream's dimension 0 is a positive constant that no layer changes, and only
 * the <|boi|> row of the LM head reads it. The chat must then draw images. */
static void
test_boi_draws_an_image (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (8, 512, 8);
  TfModel *m = tf_generator_model (g);
  const TfConfig *c = tf_model_config (m);
  float *p = tf_model_params (m);
  const int d = c->d_model;
  for (int i = 0; i < tf_model_n_tensors (m); i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      float *w = p + t->offset;
      if (strcmp (t->name, "tok_emb.weight") == 0)
        for (int r = 0; r < t->shape[0]; r++)
          w[(size_t) r * d] = 1.0f;
      else if (strcmp (t->name, "patch_in.bias") == 0)
        w[0] = 1.0f;
      else if (strcmp (t->name, "patch_in.weight") == 0 || strcmp (t->name, "patch_pos") == 0 ||
               strcmp (t->name, "time_mlp.2.weight") == 0)
        {
          /* row 0 of [d, *] weights, or column 0 of patch_pos [n, d] */
          if (strcmp (t->name, "patch_pos") == 0)
            for (int r = 0; r < t->shape[0]; r++)
              w[(size_t) r * d] = 0.0f;
          else
            memset (w, 0, sizeof (float) * t->shape[1]);
        }
      else if (strcmp (t->name, "time_mlp.2.bias") == 0)
        w[0] = 0.0f;
      else if (g_str_has_suffix (t->name, "attn.wo") || g_str_has_suffix (t->name, "mlp.w2"))
        memset (w, 0, sizeof (float) * t->shape[1]);   /* output row 0 */
      else if (strcmp (t->name, "lm_head.weight") == 0)
        {
          for (int r = 0; r < t->shape[0]; r++)
            w[(size_t) r * d] = r == c->boi_id ? 50.0f : 0.0f;
        }
    }
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 3;
  s.max_tokens = 2;
  s.temperature = 0;
  Watch w = { .finite = TRUE, .g = g };
  TfGenerateCallbacks cb = { on_token, on_begin, on_step, on_end, &w };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = tf_generator_chat (g, "draw a dog", NULL, &s, &cb, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w.images_begun, ==, 2);
  g_assert_cmpint (w.images_ended, ==, 2);
  g_assert_cmpint (w.steps_seen, ==, 6);
  g_assert_cmpint (w.tokens, ==, 0);
  g_assert_true (w.finite);
}

/* Two generators in two threads: each gets what it gets alone. */
typedef struct {
  TfGenerator *g;
  float *pixels;
  char *caption;
  gboolean ok;
} ThreadJob;

static gpointer
run_job (gpointer data)
{
  ThreadJob *job = data;
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 12;
  s.max_tokens = 20;
  s.seed = 5;
  job->ok = tf_generator_generate_image (job->g, "a green star", &s, NULL, job->pixels, NULL);
  job->caption = tf_generator_caption (job->g, job->pixels, &s, NULL, NULL);
  job->ok &= job->caption != NULL;
  return NULL;
}

static void
test_two_generators_in_two_threads (void)
{
  g_autoptr (TfGenerator) a = tiny_generator (9, 128, 4);
  g_autoptr (TfGenerator) b = tiny_generator (9, 128, 4);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (a)));
  ThreadJob alone = { a, g_new (float, values), NULL, FALSE };
  run_job (&alone);
  g_assert_true (alone.ok);

  ThreadJob ja = { a, g_new (float, values), NULL, FALSE };
  ThreadJob jb = { b, g_new (float, values), NULL, FALSE };
  GThread *ta = g_thread_new ("generator-a", run_job, &ja);
  GThread *tb = g_thread_new ("generator-b", run_job, &jb);
  g_thread_join (ta);
  g_thread_join (tb);
  g_assert_true (ja.ok && jb.ok);
  g_assert_cmpmem (ja.pixels, values * sizeof (float), alone.pixels, values * sizeof (float));
  g_assert_cmpmem (jb.pixels, values * sizeof (float), alone.pixels, values * sizeof (float));
  g_assert_cmpstr (ja.caption, ==, alone.caption);
  g_assert_cmpstr (jb.caption, ==, alone.caption);
  ThreadJob *jobs[] = { &alone, &ja, &jb };
  for (int i = 0; i < 3; i++)
    {
      g_free (jobs[i]->pixels);
      g_free (jobs[i]->caption);
    }
}

/* End to end: a tiny model trained on one picture draws that picture. */
static void
test_trained_model_draws_its_picture (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-generate-XXXXXX");
  g_autofree char *out = g_build_filename (dir, "one.safetensors", NULL);
  TfTrainOptions o;
  tf_train_options_init (&o);
  g_free (o.preset);
  o.preset = g_strdup ("tiny");
  g_strfreev (o.data);
  o.data = g_strsplit ("shapes", ",", -1);
  o.out = g_strdup (out);
  o.max_examples = 1;
  o.batch = 4;
  o.vocab_size = 300;
  o.lr = 3e-3;
  o.steps = 300;
  o.warmup_steps = 20;
  o.chat_fraction = 0;
  o.image_first = 0;
  {
    g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
    g_assert_no_error (error);
    g_assert_true (tf_trainer_run (tr, NULL, NULL, NULL, &error));
    g_assert_no_error (error);
  }
  tf_train_options_clear (&o);

  g_autoptr (TfGenerator) g = tf_generator_new_from_file (out, &error);
  g_assert_no_error (error);
  const TfConfig *c = tf_model_config (tf_generator_model (g));
  const int values = tf_config_image_values (c);
  g_autoptr (TfDataSource) shapes = tf_data_shapes_new (TF_SPLIT_TRAIN, c->image_size,
                                                        c->image_channels, &error);
  g_assert_no_error (error);
  TfRng rng;
  tf_rng_seed (&rng, 1);
  TfExample ex = { 0 };
  g_assert_true (tf_data_source_get (shapes, 0, &rng, &ex, &error));

  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.cfg = 1;
  g_autofree float *pixels = g_new (float, values);
  g_assert_true (tf_generator_generate_image (g, ex.caption, &s, NULL, pixels, &error));
  g_assert_no_error (error);
  double mse = 0, spread = 0;
  for (int k = 0; k < values; k++)
    {
      mse += (pixels[k] - ex.pixels[k]) * (pixels[k] - ex.pixels[k]);
      spread += (ex.pixels[k] + 1) * (ex.pixels[k] + 1);   /* against black */
    }
  g_test_message ("'%s': MSE %.4f against the picture, %.4f for a black image",
                  ex.caption, mse / values, spread / values);
  /* A broken sampler or cache gives noise or a flat colour: far above this. */
  g_assert_cmpfloat (mse / values, <, 0.05);
  tf_example_clear (&ex);
  tf_test_remove_tree (dir);
}

/* ---- The token sampler's distribution ------------------------------------ */

static void
record_first_token (const TfTokenEvent *event, gpointer user_data)
{
  int32_t *first = user_data;
  if (*first < 0)
    *first = event->id;
}

static int
compare_desc (const void *a, const void *b, void *data)
{
  const double *p = data;
  double pa = p[*(const int *) a], pb = p[*(const int *) b];
  if (pa != pb)
    return pa > pb ? -1 : 1;
  return *(const int *) a - *(const int *) b;
}

/* Samples the first reply token of a chat many times (one seed each) and
 * compares the counts with the distribution the settings define, computed
 * here from the model's logits: softmax at the temperature, the top-k, then
 * the smallest head whose mass reaches top-p, renormalised. Special tokens
 * (the last ids) are not reported as text, so they count together. A
 * chi-square over the support (its 12 most probable ordinary tokens, the
 * rest together, the specials together) must stay below a bound that a
 * correct sampler exceeds with a probability far below 1e-6. */
static void
check_sampler (TfGenerator *g, double temperature, int top_k, double top_p)
{
  const TfTokenizer *tok = tf_generator_tokenizer (g);
  const int V = tf_tokenizer_vocab_size (tok);
  const char *text = "what is a dog?";
  size_t n_text;
  g_autofree int32_t *ids = tf_tokenizer_encode (tok, text, strlen (text), &n_text);
  g_autofree int32_t *prompt = g_new (int32_t, n_text + 3);
  int n = 0;
  prompt[n++] = tf_tokenizer_special_id (tok, TF_SPECIAL_BOS);
  prompt[n++] = tf_tokenizer_special_id (tok, TF_SPECIAL_USER);
  for (size_t i = 0; i < n_text; i++)
    prompt[n++] = ids[i];
  prompt[n++] = tf_tokenizer_special_id (tok, TF_SPECIAL_ASSISTANT);
  g_autofree float *logits = g_new (float, (size_t) n * V);
  g_assert_true (tf_generator_cached_logits (g, prompt, n, n, logits, NULL));
  const float *last = logits + (size_t) (n - 1) * V;

  /* The expected distribution. */
  g_autofree double *p = g_new (double, V);
  g_autofree int *order = g_new (int, V);
  double max = -INFINITY, sum = 0;
  for (int v = 0; v < V; v++)
    max = MAX (max, (double) last[v]);
  for (int v = 0; v < V; v++)
    sum += p[v] = exp ((last[v] - max) / temperature);
  for (int v = 0; v < V; v++)
    {
      p[v] /= sum;
      order[v] = v;
    }
  g_qsort_with_data (order, V, sizeof (int), compare_desc, p);
  int keep = top_k > 0 ? top_k : V;
  double mass = 0;
  for (int k = 0; k < keep; k++)
    if ((mass += p[order[k]]) >= top_p)
      {
        keep = k + 1;
        break;
      }
  g_autofree double *expected = g_new0 (double, V);
  double kept = 0;
  for (int k = 0; k < keep; k++)
    kept += p[order[k]];
  for (int k = 0; k < keep; k++)
    expected[order[k]] = p[order[k]] / kept;

  /* The sampler's counts. */
  const int trials = 1500;
  g_autofree int *count = g_new0 (int, V);
  int specials = 0;
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.temperature = temperature;
  s.top_k = top_k;
  s.top_p = top_p;
  s.max_tokens = 1;
  s.steps = 1;
  for (int t = 0; t < trials; t++)
    {
      int32_t first = -1;
      TfGenerateCallbacks cb = { .token = record_first_token, .user_data = &first };
      s.seed = 1000 + t;
      tf_generator_chat_reset (g);
      g_autofree char *reply = tf_generator_chat (g, text, NULL, &s, &cb, NULL);
      g_assert_nonnull (reply);
      if (first >= 0)
        {
          g_assert_cmpfloat (expected[first], >, 0);   /* never outside the support */
          count[first]++;
        }
      else
        specials++;
    }

  double chi2 = 0, e_rest = 0, e_special = 0;
  int o_rest = 0, categories = 0, seen = 0;
  for (int k = 0; k < keep; k++)
    {
      const int v = order[k];
      const double e = expected[v] * trials;
      if (v >= V - TF_N_SPECIAL)
        e_special += e;
      else if (seen++ < 12)
        {
          chi2 += (count[v] - e) * (count[v] - e) / e;
          categories++;
        }
      else
        {
          e_rest += e;
          o_rest += count[v];
        }
    }
  if (e_rest > 0)
    {
      chi2 += (o_rest - e_rest) * (o_rest - e_rest) / e_rest;
      categories++;
    }
  if (e_special > 0.5)
    {
      chi2 += (specials - e_special) * (specials - e_special) / e_special;
      categories++;
    }
  else
    g_assert_cmpint (specials, <=, 3);
  const double df = MAX (1, categories - 1);
  const double bound = df + 8 * sqrt (2 * df) + 10;
  g_test_message ("temperature %g, top-k %d, top-p %g: support %d, chi² %.1f on %g degrees "
                  "of freedom (bound %.1f)", temperature, top_k, top_p, keep, chi2, df, bound);
  g_assert_cmpfloat (chi2, <, bound);
}

static void
test_sampling_distribution (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (3, 128, 4);
  check_sampler (g, 1.0, 3, 1.0);     /* top-k */
  check_sampler (g, 0.5, 0, 0.3);     /* the nucleus */
  check_sampler (g, 0.2, 0, 1.0);     /* everything, sharpened */
  check_sampler (g, 1.0, 5, 0.02);    /* top-p cuts inside top-k */
}

/* ---- The model's own image settings --------------------------------------- */

/* The "sampling" metadata: written and read back; anything else leaves the
 * settings as they were and says what is wrong. */
static void
test_sampling_json (void)
{
  TfGenerateSettings s, back;
  g_autoptr (GError) error = NULL;

  tf_generate_settings_init (&s);
  s.sampler = TF_SAMPLER_DDIM;
  s.steps = 25;
  s.cfg = 2.5;
  g_autofree char *json = tf_generate_settings_sampling_to_json (&s);
  g_assert_cmpstr (json, ==, "{\"sampler\":\"ddim\",\"steps\":25,\"cfg\":2.5}");
  tf_generate_settings_init (&back);
  back.temperature = 0.3;
  g_assert_true (tf_generate_settings_sampling_from_json (&back, json, &error));
  g_assert_no_error (error);
  g_assert_cmpint (back.sampler, ==, TF_SAMPLER_DDIM);
  g_assert_cmpint (back.steps, ==, 25);
  g_assert_cmpfloat (back.cfg, ==, 2.5);
  g_assert_cmpfloat (back.temperature, ==, 0.3);   /* only the three are set */
  /* an integer guidance scale is a number too */
  g_assert_true (tf_generate_settings_sampling_from_json (&back, "{\"sampler\":\"DDPM\","
                                                          "\"steps\":50,\"cfg\":3}", &error));
  g_assert_no_error (error);
  g_assert_cmpint (back.sampler, ==, TF_SAMPLER_DDPM);
  g_assert_cmpint (back.steps, ==, 50);
  g_assert_cmpfloat (back.cfg, ==, 3.0);

  const struct { const char *json; const char *says; } bad[] = {
    { "not json", "not JSON" },
    { "[1, 2]", "not an object" },
    { "{\"sampler\":\"euler\",\"steps\":25,\"cfg\":3}", "not an object" },
    { "{\"sampler\":\"ddim\",\"steps\":\"25\",\"cfg\":3}", "not an object" },
    { "{\"sampler\":\"ddim\",\"cfg\":3}", "not an object" },
    { "{\"sampler\":\"ddim\",\"steps\":0,\"cfg\":3}", "steps 0 is out of range" },
    { "{\"sampler\":\"ddim\",\"steps\":99999999999,\"cfg\":3}", "steps 99999999999 is out of range" },
    { "{\"sampler\":\"ddim\",\"steps\":25,\"cfg\":-1}", "guidance scale -1 is out of range" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      TfGenerateSettings kept = back;
      g_autoptr (GError) e = NULL;
      g_assert_false (tf_generate_settings_sampling_from_json (&kept, bad[i].json, &e));
      g_assert_error (e, TF_ERROR, e->code);
      g_test_message ("%s → %s", bad[i].json, e->message);
      g_assert_nonnull (strstr (e->message, bad[i].says));
      g_assert_cmpmem (&kept, sizeof kept, &back, sizeof back);
    }
}

/* ---- Threads --------------------------------------------------------------- */

static void
test_threads_rule (void)
{
  /* two cores: a core counts as taken when others kept it busy over half the time */
  g_assert_cmpint (tf_threads_rule (2, 0.0, 2), ==, 2);
  g_assert_cmpint (tf_threads_rule (2, 0.4, 2), ==, 2);
  g_assert_cmpint (tf_threads_rule (2, 0.6, 2), ==, 1);
  g_assert_cmpint (tf_threads_rule (2, 3.0, 2), ==, 1);   /* never fewer than one */
  g_assert_cmpint (tf_threads_rule (8, 2.2, 8), ==, 6);
  g_assert_cmpint (tf_threads_rule (8, 0.0, 3), ==, 3);   /* the limit holds */
  g_assert_cmpint (tf_threads_rule (1, 0.0, 4), ==, 1);   /* and the cores */

  TfThreads t;
  tf_threads_init (&t, 1);
  g_assert_cmpint (tf_threads_choose (&t), ==, 1);
  g_usleep (150000);
  g_assert_cmpint (tf_threads_choose (&t), ==, 1);
  tf_threads_init (&t, 0);
  int n = tf_threads_choose (&t);
  g_assert_cmpint (n, >=, 1);
  g_assert_cmpint (n, <=, g_get_num_processors ());
}

/* The threads change with the machine's load; the pictures and the words
 * must not. */
static void
test_same_bits_on_any_threads (void)
{
  g_autoptr (TfGenerator) g = tiny_generator (5, 128, 4);
  const TfConfig *c = tf_model_config (tf_generator_model (g));
  const int values = tf_config_image_values (c);
  g_autofree float *one = g_new (float, values), *two = g_new (float, values);
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 8;
  s.seed = 11;
  s.temperature = 1;
  tf_generator_set_threads (g, 1);
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, NULL, one, NULL));
  tf_generator_chat_reset (g);
  g_autofree char *reply_one = tf_generator_chat (g, "what is a dog?", NULL, &s, NULL, NULL);
  tf_generator_set_threads (g, 2);
  g_assert_true (tf_generator_generate_image (g, "a red circle", &s, NULL, two, NULL));
  tf_generator_chat_reset (g);
  g_autofree char *reply_two = tf_generator_chat (g, "what is a dog?", NULL, &s, NULL, NULL);
  g_assert_cmpmem (one, sizeof (float) * values, two, sizeof (float) * values);
  g_assert_cmpstr (reply_one, ==, reply_two);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/generate/cached-text", test_cached_text_equals_full);
  g_test_add_data_func ("/generate/cached-image", NULL, test_cached_image_equals_full);
  g_test_add_data_func ("/generate/cached-image/adaln", "prediction=v,time_conditioning=adaln_zero",
                        test_cached_image_equals_full);
  /* the U-Net encoder and decoder around the cached transformer, with adaLN
   * (whose final modulation feeds the decoder) */
  g_test_add_data_func ("/generate/cached-image/unet",
                        "prediction=v,time_conditioning=adaln_zero,image_encoder=unet,"
                        "unet_channels=8,unet_blocks=1", test_cached_image_equals_full);
  g_test_add_data_func ("/generate/cached-image/unet-noskip",
                        "prediction=v,image_encoder=unet,unet_channels=8,unet_blocks=1,"
                        "unet_skips=false", test_cached_image_equals_full);
  /* linear patches between full-resolution convolutions, with adaLN */
  g_test_add_data_func ("/generate/cached-image/conv",
                        "prediction=v,time_conditioning=adaln_zero,image_encoder=conv,"
                        "conv_channels=6", test_cached_image_equals_full);
  g_test_add_func ("/generate/cached-image/axial", test_cached_image_axial);
  g_test_add_func ("/generate/step-matches-twin", test_step_matches_twin);
  g_test_add_func ("/generate/sampling-json", test_sampling_json);
  g_test_add_func ("/generate/seed-determinism", test_image_seed_determinism);
  g_test_add_func ("/generate/img2img", test_img2img);
  g_test_add_func ("/generate/abort", test_abort_within_a_step);
  g_test_add_func ("/generate/caption-and-chat", test_caption_and_chat_are_valid);
  g_test_add_func ("/generate/context-overflow", test_context_overflow);
  g_test_add_func ("/generate/boi-draws-an-image", test_boi_draws_an_image);
  g_test_add_func ("/generate/two-threads", test_two_generators_in_two_threads);
  g_test_add_func ("/generate/sampling-distribution", test_sampling_distribution);
  g_test_add_func ("/generate/threads-rule", test_threads_rule);
  g_test_add_func ("/generate/same-bits-on-any-threads", test_same_bits_on_any_threads);
  g_test_add_func ("/generate/trained-model-draws-its-picture", test_trained_model_draws_its_picture);
  return g_test_run ();
}
