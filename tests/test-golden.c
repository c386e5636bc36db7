/* test-golden.c: the C engine against the PyTorch twin.
 *
 * tests/golden/ holds a tiny model written by the twin and a batch with a
 * caption-first pair, packed documents, a clean image, an image-first pair with
 * a second image, and a padded text-only row, together with the twin's
 * float64 logits, ε-predictions, losses and the gradient of every parameter
 * (regenerate with /usr/bin/python3 tests/reference/make_golden.py).
 * The same weights and batch under the other recipes of the image side are
 * tiny-model-V and tiny-batch-V (V = v, x, adaln, unet, unet-noskip, conv,
 * axial). TF_GOLDEN_MODEL and TF_GOLDEN_BATCH name another pair of files for
 * the first test. */
#include "transfusion.h"

#include <glib/gstdio.h>
#include "tf-test-util.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

/* Tolerances: |c − ref| ≤ atol + rtol·|ref|. */
#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 2e-6
#define GRAD_RTOL 1e-3

typedef struct {
  TfModel        *model;
  TfSafetensors  *golden;
  TfSequence     *sequences;
  TfSegment     **segments;
  int32_t       **tokens;
  float         **pixels;
  float         **noise;
  int             n_rows, n_images, n_alloc_tokens;
  float           lambda;
} Golden;

static float *
read_tensor (TfSafetensors *st, const char *name, size_t expect)
{
  const TfTensorInfo *info = tf_safetensors_find (st, name);
  g_assert_nonnull (info);
  if (expect > 0)
    g_assert_cmpuint (info->n_elements, ==, expect);
  float *out = g_new (float, info->n_elements ? info->n_elements : 1);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_safetensors_read_f32 (st, info, out, info->n_elements, &error));
  g_assert_no_error (error);
  return out;
}

static gboolean
json_bool (JsonObject *o, const char *key)
{
  return json_object_has_member (o, key) && json_object_get_boolean_member (o, key);
}

/* @variant: NULL for the committed ε pair, or a recipe's suffix ("v", "x"). */
static void
golden_load (Golden *g, const char *variant)
{
  g_autoptr (GError) error = NULL;
  /* Another model and batch (written by make_golden.write_batch_file, e.g.
   * for a model the PyTorch trainer made: tests/reference/check_distributed.sh)
   * can take the place of the committed pair. */
  const char *model_env = g_getenv ("TF_GOLDEN_MODEL"), *batch_env = g_getenv ("TF_GOLDEN_BATCH");
  g_autofree char *model_name = variant ? g_strdup_printf ("tiny-model-%s.safetensors", variant)
                                         : g_strdup ("tiny-model.safetensors");
  g_autofree char *batch_name = variant ? g_strdup_printf ("tiny-batch-%s.safetensors", variant)
                                        : g_strdup ("tiny-batch.safetensors");
  if (variant != NULL)
    model_env = batch_env = NULL;
  g_autofree char *model_path = model_env ? g_strdup (model_env)
                                          : tf_test_data_path ("golden", model_name, NULL);
  g_autofree char *batch_path = batch_env ? g_strdup (batch_env)
                                          : tf_test_data_path ("golden", batch_name, NULL);

  memset (g, 0, sizeof *g);
  g->model = tf_model_load (model_path, &error);
  g_assert_no_error (error);
  g->golden = tf_safetensors_open (batch_path, &error);
  g_assert_no_error (error);

  const TfConfig *c = tf_model_config (g->model);
  const size_t values = tf_config_image_values (c);
  g->lambda = (float) g_ascii_strtod (tf_safetensors_metadata (g->golden, "lambda"), NULL);

  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, tf_safetensors_metadata (g->golden, "batch"),
                                             -1, &error));
  JsonArray *rows = json_node_get_array (json_parser_get_root (parser));
  g->n_rows = json_array_get_length (rows);
  g->sequences = g_new0 (TfSequence, g->n_rows);
  g->segments = g_new0 (TfSegment *, g->n_rows);
  g->tokens = g_new0 (int32_t *, 64);
  g->pixels = g_new0 (float *, 64);
  g->noise = g_new0 (float *, 64);

  for (int b = 0; b < g->n_rows; b++)
    {
      JsonArray *segs = json_array_get_array_element (rows, b);
      int n = json_array_get_length (segs);
      g->segments[b] = g_new0 (TfSegment, n);
      for (int s = 0; s < n; s++)
        {
          JsonObject *o = json_array_get_object_element (segs, s);
          TfSegment *seg = &g->segments[b][s];
          seg->new_document = json_bool (o, "new_document");
          if (json_object_has_member (o, "text"))
            {
              JsonArray *ids = json_object_get_array_member (o, "text");
              g_assert_cmpint (g->n_alloc_tokens, <, 64);
              int32_t *t = g->tokens[g->n_alloc_tokens++] = g_new (int32_t, json_array_get_length (ids) + 1);
              for (guint k = 0; k < json_array_get_length (ids); k++)
                t[k] = (int32_t) json_array_get_int_element (ids, k);
              seg->kind = TF_SEGMENT_TEXT;
              seg->tokens = t;
              seg->n_tokens = json_array_get_length (ids);
            }
          else
            {
              int index = json_object_get_int_member (o, "image");
              g_assert_cmpint (index, ==, g->n_images);
              g_assert_cmpint (index, <, 64);
              char name[64];
              g_snprintf (name, sizeof name, "image.%d.pixels", index);
              g->pixels[index] = read_tensor (g->golden, name, values);
              g_snprintf (name, sizeof name, "image.%d.noise", index);
              g->noise[index] = read_tensor (g->golden, name, values);
              g->n_images++;
              seg->kind = TF_SEGMENT_IMAGE;
              seg->pixels = g->pixels[index];
              seg->noise = g->noise[index];
              seg->t = json_object_get_int_member (o, "t");
              seg->diffusion_loss = json_bool (o, "diffusion_loss");
            }
        }
      g->sequences[b].segments = g->segments[b];
      g->sequences[b].n_segments = n;
    }
}

static void
golden_free (Golden *g)
{
  for (int b = 0; b < g->n_rows; b++)
    g_free (g->segments[b]);
  for (int i = 0; i < g->n_alloc_tokens; i++)
    g_free (g->tokens[i]);
  for (int i = 0; i < g->n_images; i++)
    {
      g_free (g->pixels[i]);
      g_free (g->noise[i]);
    }
  g_free (g->segments);
  g_free (g->tokens);
  g_free (g->pixels);
  g_free (g->noise);
  g_free (g->sequences);
  tf_safetensors_free (g->golden);
  tf_model_free (g->model);
}

static double
golden_scalar (Golden *g, const char *name)
{
  g_autofree float *v = read_tensor (g->golden, name, 1);
  return v[0];
}

static void
test_golden_forward_backward (gconstpointer variant)
{
  Golden g;
  golden_load (&g, variant);
  const TfConfig *c = tf_model_config (g.model);
  g_autoptr (TfActivations) acts = tf_activations_new (g.model);
  g_autoptr (GError) error = NULL;
  TfBatch batch = { g.sequences, g.n_rows, g.lambda };
  TfLosses losses;

  g_assert_true (tf_model_forward (g.model, acts, &batch, &losses, &error));
  g_assert_no_error (error);
  tf_model_zero_grads (g.model);
  tf_model_backward (g.model, acts);

  gboolean ok = TRUE;
  double worst, worst_fwd = 0, worst_grad = 0;
  const char *worst_fwd_name = "", *worst_grad_name = "";

  /* Losses. */
  const struct { const char *name; double got; } scalars[] = {
    { "loss", losses.loss }, { "lm", losses.lm }, { "ddpm", losses.ddpm },
  };
  for (guint i = 0; i < G_N_ELEMENTS (scalars); i++)
    {
      double ref = golden_scalar (&g, scalars[i].name);
      ok &= tf_test_close_f64 (scalars[i].name, &scalars[i].got, &ref, 1, FWD_ATOL, FWD_RTOL, &worst);
      if (worst > worst_fwd) { worst_fwd = worst; worst_fwd_name = scalars[i].name; }
    }

  /* Logits at text positions (the LM head runs nowhere else). */
  const int B = tf_activations_batch (acts), L = tf_activations_seq_len (acts), V = c->vocab_size;
  g_autofree float *ref_logits = read_tensor (g.golden, "logits", (size_t) B * L * V);
  const float *logits = tf_activations_logits (acts);
  for (int b = 0; b < B; b++)
    for (int i = 0; i < L; i++)
      if (tf_activations_position_kind (acts, b, i) == TF_POS_TEXT)
        {
          size_t at = ((size_t) b * L + i) * V;
          char name[64];
          g_snprintf (name, sizeof name, "logits[%d,%d]", b, i);
          ok &= tf_test_close_f32 (name, logits + at, ref_logits + at, V, FWD_ATOL, FWD_RTOL, &worst);
          if (worst > worst_fwd) { worst_fwd = worst; worst_fwd_name = "logits"; }
        }

  /* The image head's outputs (ε, v or x0 as the recipe says), one image at a time. */
  const size_t values = tf_config_image_values (c);
  g_autofree float *eps = g_new (float, values);
  for (int k = 0; k < g.n_images; k++)
    {
      char name[64];
      g_snprintf (name, sizeof name, "pred.%d", k);
      g_autofree float *ref = read_tensor (g.golden, name, values);
      tf_activations_image_pred (acts, k, eps);
      ok &= tf_test_close_f32 (name, eps, ref, values, FWD_ATOL, FWD_RTOL, &worst);
      if (worst > worst_fwd) { worst_fwd = worst; worst_fwd_name = "pred"; }
    }

  /* Every parameter's gradient. */
  const float *grads = tf_model_grads (g.model);
  for (int i = 0; i < tf_model_n_tensors (g.model); i++)
    {
      const TfParamInfo *t = tf_model_tensor (g.model, i);
      g_autofree char *name = g_strconcat ("grad.", t->name, NULL);
      g_autofree float *ref = read_tensor (g.golden, name, t->size);
      ok &= tf_test_close_f32 (name, grads + t->offset, ref, t->size, GRAD_ATOL, GRAD_RTOL, &worst);
      if (worst > worst_grad) { worst_grad = worst; worst_grad_name = t->name; }
    }

  g_test_message ("largest share of tolerance used: forward %.3g (%s), gradients %.3g (%s)",
                  worst_fwd, worst_fwd_name, worst_grad, worst_grad_name);
  g_assert_true (ok);
  golden_free (&g);
}

/* The twin's checkpoint round-trips through our writer bit for bit. */
static void
test_golden_resave (void)
{
  Golden g;
  golden_load (&g, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-golden-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "resaved.safetensors", NULL);
  g_assert_true (tf_model_save (g.model, path, TF_DTYPE_F32, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  g_autoptr (TfModel) again = tf_model_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (tf_model_n_params (again), ==, tf_model_n_params (g.model));
  g_assert_cmpmem (tf_model_params (again), tf_model_n_params (again) * sizeof (float),
                   tf_model_params (g.model), tf_model_n_params (g.model) * sizeof (float));
  tf_test_remove_tree (dir);
  golden_free (&g);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/golden/forward-backward", NULL, test_golden_forward_backward);
  /* The image side's recipes (issue 14): the v target with Min-SNR-γ weights,
   * the x0 target with them. */
  g_test_add_data_func ("/golden/forward-backward/v", "v", test_golden_forward_backward);
  g_test_add_data_func ("/golden/forward-backward/x", "x", test_golden_forward_backward);
  /* adaLN-Zero time conditioning (with random, not zero, modulation weights) */
  g_test_add_data_func ("/golden/forward-backward/adaln", "adaln", test_golden_forward_backward);
  /* the U-Net patch encoder and decoder (random, not zero, weights everywhere) */
  g_test_add_data_func ("/golden/forward-backward/unet", "unet", test_golden_forward_backward);
  /* the same without the skips (unet_skips false) */
  g_test_add_data_func ("/golden/forward-backward/unet-noskip", "unet-noskip",
                        test_golden_forward_backward);
  /* linear patches between 3×3 convolutions at full resolution (image_encoder conv) */
  g_test_add_data_func ("/golden/forward-backward/conv", "conv", test_golden_forward_backward);
  /* axial RoPE: patches turn by their grid row and column (image_rope axial) */
  g_test_add_data_func ("/golden/forward-backward/axial", "axial", test_golden_forward_backward);
  g_test_add_func ("/golden/resave", test_golden_resave);
  return g_test_run ();
}
