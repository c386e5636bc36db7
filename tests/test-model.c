/* test-model.c: the whole model: the Transfusion attention mask, batch
 * validation, checkpoints (round trips and broken files), determinism. */
#include "transfusion.h"
#include "tf-rng.h"
#include "tf-test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static TfConfig
tiny_config (void)
{
  TfConfig c = tf_test_tiny_config (40);
  c.d_model = 32;
  c.patch_size = 8;   /* 16 patches: the layouts below count on it */
  c.n_heads = 4;
  c.mlp_hidden = 64;
  c.max_seq_len = 96;
  return c;
}

static TfModel *
tiny_model (uint64_t seed)
{
  TfConfig c = tiny_config ();
  g_autoptr (GError) error = NULL;
  TfModel *m = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (m, seed);
  return m;
}

/* A batch with every kind of layout: caption → image, image → caption with a
 * second image, two packed documents, a clean image, and padding. */
typedef struct {
  int32_t tokens[8][16];
  float  *pixels[4], *noise[4];
  TfSegment rows[3][8];
  TfSequence seqs[3];
  TfBatch batch;
} MixedBatch;

static void
mixed_batch_init (MixedBatch *mb, const TfConfig *c, uint64_t seed)
{
  TfRng rng;
  tf_rng_seed (&rng, seed);
  const int values = tf_config_image_values (c);
  for (int k = 0; k < 4; k++)
    {
      mb->pixels[k] = g_new (float, values);
      mb->noise[k] = g_new (float, values);
      for (int v = 0; v < values; v++)
        {
          mb->pixels[k][v] = (float) (2 * tf_rng_uniform (&rng) - 1);
          mb->noise[k][v] = (float) tf_rng_normal (&rng);
        }
    }
  for (int s = 0; s < 8; s++)
    for (int k = 0; k < 16; k++)
      mb->tokens[s][k] = (int32_t) tf_rng_below (&rng, 33);

  TfSegment *r0 = mb->rows[0], *r1 = mb->rows[1], *r2 = mb->rows[2];
  mb->tokens[0][0] = c->bos_id; mb->tokens[0][4] = c->boi_id;
  r0[0] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = mb->tokens[0], .n_tokens = 5 };
  r0[1] = (TfSegment) { .kind = TF_SEGMENT_IMAGE, .pixels = mb->pixels[0], .noise = mb->noise[0],
                        .t = 400, .diffusion_loss = TRUE };
  r0[2] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = mb->tokens[1], .n_tokens = 3 };
  r0[3] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .new_document = TRUE, .tokens = mb->tokens[2],
                        .n_tokens = 4 };
  mb->seqs[0] = (TfSequence) { r0, 4 };

  r1[0] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = mb->tokens[3], .n_tokens = 2 };
  r1[1] = (TfSegment) { .kind = TF_SEGMENT_IMAGE, .pixels = mb->pixels[1], .noise = mb->noise[1],
                        .t = 100, .diffusion_loss = TRUE };
  r1[2] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = mb->tokens[4], .n_tokens = 6 };
  r1[3] = (TfSegment) { .kind = TF_SEGMENT_IMAGE, .pixels = mb->pixels[2], .noise = NULL, .t = 0 };
  r1[4] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = mb->tokens[5], .n_tokens = 3 };
  mb->seqs[1] = (TfSequence) { r1, 5 };

  r2[0] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = mb->tokens[6], .n_tokens = 9 };
  mb->seqs[2] = (TfSequence) { r2, 1 };

  mb->batch = (TfBatch) { mb->seqs, 3, 5.0f };
}

static void
mixed_batch_clear (MixedBatch *mb)
{
  for (int k = 0; k < 4; k++)
    {
      g_free (mb->pixels[k]);
      g_free (mb->noise[k]);
    }
}

/* Expected visibility, derived from the segments independently of the
 * engine: same document, not padding, and earlier-or-same position, or the
 * same image. */
typedef struct { int doc, image, kind; } PosTag;

static int
tag_row (const TfSequence *seq, int n_patches, PosTag *tags, int L)
{
  int i = 0, doc = -1, image = 0;
  for (int s = 0; s < seq->n_segments; s++)
    {
      const TfSegment *seg = &seq->segments[s];
      if (s == 0 || seg->new_document)
        doc++;
      int n = seg->kind == TF_SEGMENT_TEXT ? seg->n_tokens : n_patches;
      for (int k = 0; k < n; k++, i++)
        tags[i] = (PosTag) { doc, seg->kind == TF_SEGMENT_IMAGE ? image : -1,
                             seg->kind == TF_SEGMENT_IMAGE ? TF_POS_PATCH : TF_POS_TEXT };
      image += seg->kind == TF_SEGMENT_IMAGE;
    }
  int len = i;
  for (; i < L; i++)
    tags[i] = (PosTag) { -1, -1, TF_POS_PAD };
  return len;
}

static void
test_mask_is_transfusion_mask (void)
{
  g_autoptr (TfModel) m = tiny_model (1);
  const TfConfig *c = tf_model_config (m);
  MixedBatch mb;
  mixed_batch_init (&mb, c, 7);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_model_forward (m, acts, &mb.batch, NULL, &error));
  g_assert_no_error (error);

  const int L = tf_activations_seq_len (acts);
  g_assert_cmpint (L, ==, 2 + 16 + 6 + 16 + 3);   /* row 1 is the longest */
  g_autofree PosTag *tags = g_new (PosTag, L);
  int checked = 0;
  for (int b = 0; b < 3; b++)
    {
      tag_row (&mb.seqs[b], tf_config_n_patches (c), tags, L);
      for (int i = 0; i < L; i++)
        {
          g_assert_cmpint (tf_activations_position_kind (acts, b, i), ==, tags[i].kind);
          for (int j = 0; j < L; j++)
            {
              gboolean real = tags[i].kind != TF_POS_PAD && tags[j].kind != TF_POS_PAD;
              gboolean same_doc = tags[i].doc == tags[j].doc;
              gboolean same_image = tags[i].image >= 0 && tags[i].image == tags[j].image;
              gboolean expect = real && same_doc && (j <= i || same_image);
              if (tf_activations_can_attend (acts, b, i, j) != expect)
                g_error ("row %d: position %d %s see position %d", b, i,
                         expect ? "should" : "should not", j);
              checked++;
            }
        }
    }
  /* Spot checks that name the rules: a patch sees its whole image (first
   * patch sees the last); text before an image never sees it; the caption of
   * a later document never sees the earlier one; nothing sees padding. */
  g_assert_true (tf_activations_can_attend (acts, 0, 5, 20));
  g_assert_false (tf_activations_can_attend (acts, 0, 4, 5));
  g_assert_false (tf_activations_can_attend (acts, 0, 24, 23));
  g_assert_true (tf_activations_can_attend (acts, 0, 24, 24));
  g_assert_false (tf_activations_can_attend (acts, 2, 9, 8));
  g_assert_false (tf_activations_can_attend (acts, 2, 8, 9));
  g_test_message ("%d pairs checked", checked);
  mixed_batch_clear (&mb);
}

/* The mask as the kernels apply it: changing a later image must not change
 * earlier text, and changing the last patch of an image changes its first. */
static void
test_mask_in_effect (void)
{
  g_autoptr (TfModel) m = tiny_model (2);
  const TfConfig *c = tf_model_config (m);
  MixedBatch mb;
  mixed_batch_init (&mb, c, 8);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  g_assert_true (tf_model_forward (m, acts, &mb.batch, NULL, NULL));

  const int L = tf_activations_seq_len (acts), V = c->vocab_size;
  const int pd = tf_config_patch_dim (c);
  const size_t n_logits = (size_t) 3 * L * V, n_eps = (size_t) 3 * L * pd;
  g_autofree float *logits = g_memdup2 (tf_activations_logits (acts), n_logits * sizeof (float));
  g_autofree float *eps = g_memdup2 (tf_activations_pred (acts), n_eps * sizeof (float));

  /* Perturb the bottom-right pixel of image 0 (its last patch). */
  const int values = tf_config_image_values (c);
  for (int k = values - c->image_channels; k < values; k++)
    mb.pixels[0][k] = -mb.pixels[0][k] + 0.5f;
  g_assert_true (tf_model_forward (m, acts, &mb.batch, NULL, NULL));
  const float *logits2 = tf_activations_logits (acts);
  const float *eps2 = tf_activations_pred (acts);

  /* Row 0 text before the image (positions 0..4) is unchanged, bit for bit. */
  g_assert_cmpmem (logits, sizeof (float) * 5 * V, logits2, sizeof (float) * 5 * V);
  /* The second document of row 0 (positions 24..27) is unchanged. */
  g_assert_cmpmem (logits + 24 * V, sizeof (float) * 4 * V, logits2 + 24 * V, sizeof (float) * 4 * V);
  /* Other rows are unchanged. */
  g_assert_cmpmem (logits + L * V, sizeof (float) * 2 * L * V, logits2 + L * V, sizeof (float) * 2 * L * V);
  /* The image's first patch (position 5) sees its last patch: it changed. */
  gboolean changed = FALSE;
  for (int e = 0; e < pd; e++)
    changed |= eps[5 * pd + e] != eps2[5 * pd + e];
  g_assert_true (changed);
  /* Text after the image (position 21) sees it. */
  changed = FALSE;
  for (int v = 0; v < V; v++)
    changed |= logits[21 * V + v] != logits2[21 * V + v];
  g_assert_true (changed);
  mixed_batch_clear (&mb);
}

/* Padding and packing change nothing: a row computed alone equals the same
 * row in a padded batch, and a packed second document equals it alone. */
static void
test_padding_and_packing_are_invisible (void)
{
  g_autoptr (TfModel) m = tiny_model (3);
  const TfConfig *c = tf_model_config (m);
  MixedBatch mb;
  mixed_batch_init (&mb, c, 9);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  g_assert_true (tf_model_forward (m, acts, &mb.batch, NULL, NULL));
  const int L = tf_activations_seq_len (acts), V = c->vocab_size;
  g_autofree float *all = g_memdup2 (tf_activations_logits (acts), sizeof (float) * 3 * L * V);

  /* Row 2 alone (9 text tokens, no padding). */
  TfBatch alone = { &mb.seqs[2], 1, 5.0f };
  g_assert_true (tf_model_forward (m, acts, &alone, NULL, NULL));
  g_assert_cmpint (tf_activations_seq_len (acts), ==, 9);
  g_assert_true (tf_test_close_f32 ("padded row", all + 2 * L * V, tf_activations_logits (acts),
                                    9 * V, 1e-6, 1e-5, NULL));

  /* Row 0's second document alone. */
  TfSegment doc = mb.rows[0][3];
  doc.new_document = FALSE;
  TfSequence seq = { &doc, 1 };
  TfBatch packed = { &seq, 1, 5.0f };
  g_assert_true (tf_model_forward (m, acts, &packed, NULL, NULL));
  g_assert_true (tf_test_close_f32 ("packed document", all + 24 * V, tf_activations_logits (acts),
                                    4 * V, 1e-6, 1e-5, NULL));
  mixed_batch_clear (&mb);
}

static void
expect_batch_error (TfModel *m, TfActivations *acts, const TfBatch *batch, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  TfLosses losses;
  g_assert_false (tf_model_forward (m, acts, batch, &losses, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  if (strstr (error->message, fragment) == NULL)
    g_error ("message '%s' does not mention '%s'", error->message, fragment);
}

static void
test_bad_batches (void)
{
  g_autoptr (TfModel) m = tiny_model (4);
  const TfConfig *c = tf_model_config (m);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  const int values = tf_config_image_values (c);
  g_autofree float *pixels = g_new0 (float, values);
  int32_t tokens[200] = { 0 };

  TfSegment seg = { .kind = TF_SEGMENT_TEXT, .tokens = tokens, .n_tokens = 3 };
  TfSequence seq = { &seg, 1 };
  TfBatch batch = { &seq, 1, 5.0f };

  tokens[1] = c->vocab_size;
  expect_batch_error (m, acts, &batch, "outside the vocabulary");
  tokens[1] = -1;
  expect_batch_error (m, acts, &batch, "token 1 is -1");
  tokens[1] = 0;

  seg.n_tokens = c->max_seq_len + 1;
  expect_batch_error (m, acts, &batch, "longer than max_seq_len");
  seg.n_tokens = 3;

  seg = (TfSegment) { .kind = TF_SEGMENT_IMAGE, .pixels = pixels, .noise = NULL, .t = 10 };
  expect_batch_error (m, acts, &batch, "has no noise");
  seg.t = c->diffusion_steps + 1;
  seg.noise = pixels;
  expect_batch_error (m, acts, &batch, "noise level");
  seg.pixels = NULL;
  seg.t = 0;
  expect_batch_error (m, acts, &batch, "no pixels");

  TfBatch empty = { &seq, 0, 5.0f };
  expect_batch_error (m, acts, &empty, "no sequences");
  seg = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = tokens, .n_tokens = 3 };
  batch.lambda = NAN;
  expect_batch_error (m, acts, &batch, "λ");

  /* After all that, a good batch still runs. */
  batch.lambda = 5.0f;
  g_assert_true (tf_model_forward (m, acts, &batch, NULL, NULL));
}

/* Same inputs, same bits; backward adds into the gradients. */
static void
test_deterministic_and_accumulating (void)
{
  g_autoptr (TfModel) m = tiny_model (5);
  MixedBatch mb;
  mixed_batch_init (&mb, tf_model_config (m), 10);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  TfLosses a, b;
  const size_t n = tf_model_n_params (m);

  g_assert_true (tf_model_forward (m, acts, &mb.batch, &a, NULL));
  tf_model_zero_grads (m);
  tf_model_backward (m, acts);
  g_autofree float *once = g_memdup2 (tf_model_grads (m), n * sizeof (float));

  g_assert_true (tf_model_forward (m, acts, &mb.batch, &b, NULL));
  g_assert_cmpmem (&a.loss, sizeof a.loss, &b.loss, sizeof b.loss);
  tf_model_zero_grads (m);
  tf_model_backward (m, acts);
  g_assert_cmpmem (once, n * sizeof (float), tf_model_grads (m), n * sizeof (float));

  tf_model_backward (m, acts);
  g_autofree float *twice = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    twice[i] = 2 * once[i];
  /* Adding into a gradient rounds differently from doubling it (BLAS adds
   * the product into C block by block), so equal to float precision. */
  g_assert_true (tf_test_close_f32 ("accumulated", tf_model_grads (m), twice, n, 1e-9, 1e-5, NULL));

  g_assert_cmpint (a.n_images, ==, 2);   /* the t = 0 image is not in L_DDPM */
  g_assert_true (isfinite (a.loss) && a.lm > 0 && a.ddpm > 0);
  g_assert_cmpfloat_with_epsilon (a.loss, a.lm + 5.0 * a.ddpm, 1e-9);
  mixed_batch_clear (&mb);
}

/* A few steps of plain gradient descent lower the loss: the gradient points
 * downhill for the whole model, not only per layer. */
static void
test_gradient_descends (void)
{
  g_autoptr (TfModel) m = tiny_model (6);
  MixedBatch mb;
  mixed_batch_init (&mb, tf_model_config (m), 11);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  TfLosses first, last;
  float *p = tf_model_params (m);
  for (int step = 0; step < 20; step++)
    {
      g_assert_true (tf_model_forward (m, acts, &mb.batch, step == 0 ? &first : &last, NULL));
      tf_model_zero_grads (m);
      tf_model_backward (m, acts);
      const float *g = tf_model_grads (m);
      for (size_t i = 0; i < tf_model_n_params (m); i++)
        p[i] -= 0.05f * g[i];
    }
  g_test_message ("loss %.4f -> %.4f (lm %.4f -> %.4f, ddpm %.4f -> %.4f)", first.loss, last.loss,
                  first.lm, last.lm, first.ddpm, last.ddpm);
  g_assert_cmpfloat (last.lm, <, first.lm * 0.9);
  g_assert_cmpfloat (last.ddpm, <, first.ddpm);
  mixed_batch_clear (&mb);
}

/* ---- checkpoints -------------------------------------------------------- */

static char *tmp_dir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

static void
test_checkpoint_round_trip (void)
{
  g_autoptr (TfModel) m = tiny_model (7);
  g_autoptr (GError) error = NULL;
  g_autofree char *path = tmp_path ("rt.safetensors");
  const char *keys[] = { "provenance" };
  const char *values[] = { "{\"steps\":0}" };

  g_assert_true (tf_model_save (m, path, TF_DTYPE_F32, keys, values, 1, &error));
  g_assert_no_error (error);
  g_autoptr (TfModel) back = tf_model_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (tf_model_config (back), sizeof (TfConfig), tf_model_config (m), sizeof (TfConfig));
  g_assert_cmpmem (tf_model_params (back), tf_model_n_params (m) * sizeof (float),
                   tf_model_params (m), tf_model_n_params (m) * sizeof (float));
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, &error);
  g_assert_cmpstr (tf_safetensors_metadata (st, "provenance"), ==, "{\"steps\":0}");
  g_assert_cmpstr (tf_safetensors_metadata (st, "format"), ==, "transfusion");

  /* F16 and BF16: within their rounding. */
  const TfDtype halves[] = { TF_DTYPE_F16, TF_DTYPE_BF16 };
  const double rtol[] = { 1.0 / 1024, 1.0 / 128 };
  for (int k = 0; k < 2; k++)
    {
      g_assert_true (tf_model_save (m, path, halves[k], NULL, NULL, 0, &error));
      g_autoptr (TfModel) half = tf_model_load (path, &error);
      g_assert_no_error (error);
      g_assert_true (tf_test_close_f32 (tf_dtype_name (halves[k]), tf_model_params (half),
                                        tf_model_params (m), tf_model_n_params (m),
                                        1e-7, rtol[k], NULL));
    }
  g_assert_false (tf_model_save (m, path, TF_DTYPE_I32, NULL, NULL, 0, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_false (tf_model_save (m, path, TF_DTYPE_F32, (const char *[]) { "config" },
                                 (const char *[]) { "x" }, 1, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_unlink (path);
}

/* Writes a checkpoint whose tensors are the model's, with @edit applied. */
typedef enum { EDIT_SHAPE, EDIT_MISSING, EDIT_EXTRA, EDIT_DTYPE, EDIT_NAN, EDIT_NO_FORMAT,
               EDIT_BAD_CONFIG, EDIT_NO_CONFIG, EDIT_HUGE_CONFIG } Edit;

static void
expect_load_error (Edit edit, const char *fragment)
{
  g_autoptr (TfModel) m = tiny_model (8);
  g_autofree char *path = tmp_path ("edited.safetensors");
  int n = tf_model_n_tensors (m);
  g_autofree TfTensorOut *out = g_new0 (TfTensorOut, n + 1);
  g_autofree float *nan_copy = NULL;
  g_autofree int32_t *ints = NULL;
  int n_out = 0;
  for (int i = 0; i < n; i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      TfTensorOut *o = &out[n_out];
      *o = (TfTensorOut) { .name = t->name, .dtype = TF_DTYPE_F32, .n_dims = t->n_dims,
                           .shape = { t->shape[0], t->shape[1] },
                           .data = tf_model_params (m) + t->offset };
      if (strcmp (t->name, "layers.1.attn.wk") == 0)
        {
          if (edit == EDIT_MISSING)
            continue;
          if (edit == EDIT_SHAPE)
            o->shape[1] -= 1;    /* fewer elements: the data still fits */
          if (edit == EDIT_DTYPE)
            {
              ints = g_new0 (int32_t, t->size);
              o->dtype = TF_DTYPE_I32;
              o->data = NULL;
              o->raw = ints;
            }
          if (edit == EDIT_NAN)
            {
              nan_copy = g_memdup2 (o->data, t->size * sizeof (float));
              nan_copy[3] = NAN;
              o->data = nan_copy;
            }
        }
      n_out++;
    }
  if (edit == EDIT_EXTRA)
    out[n_out++] = (TfTensorOut) { .name = "layers.9.attn.wq", .dtype = TF_DTYPE_F32, .n_dims = 1,
                                   .shape = { 1 }, .data = tf_model_params (m) };

  g_autofree char *config = tf_config_to_json (tf_model_config (m));
  const char *keys[2] = { "format", "config" };
  const char *values[2] = { "transfusion", config };
  int n_meta = 2;
  if (edit == EDIT_NO_FORMAT)
    {
      keys[0] = "config"; values[0] = config; n_meta = 1;
    }
  if (edit == EDIT_NO_CONFIG)
    n_meta = 1;
  g_autofree char *bad_config = NULL;
  if (edit == EDIT_BAD_CONFIG)
    {
      g_autoptr (GRegex) re = g_regex_new ("\"n_heads\":4", 0, 0, NULL);
      bad_config = g_regex_replace_literal (re, config, -1, 0, "\"n_heads\":5", 0, NULL);
      values[1] = bad_config;
    }
  if (edit == EDIT_HUGE_CONFIG)
    {
      /* Claims a vocabulary of a million × d 16384: must be refused before
       * any allocation, because the file cannot hold those tensors. */
      g_autoptr (GRegex) re = g_regex_new ("\"d_model\":32", 0, 0, NULL);
      g_autofree char *tmp = g_regex_replace_literal (re, config, -1, 0, "\"d_model\":16384", 0, NULL);
      g_autoptr (GRegex) re2 = g_regex_new ("\"vocab_size\":40", 0, 0, NULL);
      bad_config = g_regex_replace_literal (re2, tmp, -1, 0, "\"vocab_size\":1000000", 0, NULL);
      values[1] = bad_config;
    }

  g_autoptr (GError) error = NULL;
  g_assert_true (tf_safetensors_write (path, out, n_out, keys, values, n_meta, &error));
  g_assert_no_error (error);
  g_autoptr (TfModel) back = tf_model_load (path, &error);
  g_assert_null (back);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  if (strstr (error->message, fragment) == NULL || strstr (error->message, path) == NULL)
    g_error ("message '%s' does not name the file and '%s'", error->message, fragment);
  g_unlink (path);
}

static void
test_checkpoint_errors (void)
{
  expect_load_error (EDIT_SHAPE, "tensor 'layers.1.attn.wk' has shape [32,31], expected [32,32]");
  expect_load_error (EDIT_MISSING, "tensor 'layers.1.attn.wk' is missing");
  expect_load_error (EDIT_EXTRA, "tensor 'layers.9.attn.wq' is not part of this model");
  expect_load_error (EDIT_DTYPE, "tensor 'layers.1.attn.wk' has dtype I32");
  expect_load_error (EDIT_NAN, "tensor 'layers.1.attn.wk' holds a non-finite value at element 3");
  expect_load_error (EDIT_NO_FORMAT, "'format' is missing");
  expect_load_error (EDIT_NO_CONFIG, "no 'config'");
  expect_load_error (EDIT_BAD_CONFIG, "d_model 32 must split into 5 heads");
  expect_load_error (EDIT_HUGE_CONFIG, "tensor 'tok_emb.weight' has shape [40,32], expected [1000000,16384]");

  g_autoptr (GError) error = NULL;
  g_autofree char *missing = tmp_path ("does-not-exist.safetensors");
  g_assert_null (tf_model_load (missing, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, missing));
}

static void
test_alpha_bar (void)
{
  g_autoptr (TfModel) m = tiny_model (9);
  const double *ab = tf_model_alpha_bar (m);
  const int T = tf_model_config (m)->diffusion_steps;
  g_assert_cmpfloat (ab[0], ==, 1.0);
  for (int t = 1; t <= T; t++)
    g_assert_cmpfloat (ab[t], <, ab[t - 1]);
  /* Nichol & Dhariwal's cosine schedule: ᾱ(T/2) ≈ 0.49, ᾱ(T) ≈ 0 */
  g_assert_cmpfloat_with_epsilon (ab[T / 2], 0.4937, 2e-3);
  g_assert_cmpfloat (ab[T], <, 1e-4);
}

static double
tensor_std (TfModel *m, const char *name)
{
  const TfParamInfo *t = tf_model_find_tensor (m, name);
  g_assert_nonnull (t);
  const float *p = tf_model_params (m) + t->offset;
  double ss = 0;
  for (size_t k = 0; k < t->size; k++)
    ss += (double) p[k] * p[k];
  return sqrt (ss / (double) t->size);
}

/* A new model's U-Net: its blocks start as the identity and its head at 0;
 * its tokens enter the transformer at the scale of linear patches' (the
 * weights into the residual stream are normal(0, 0.02)), its convolutions
 * with a fan-in scale. */
static void
test_unet_init (void)
{
  TfConfig c = tiny_config ();
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_config_apply_recipe (&c, "prediction=v,image_encoder=unet,unet_channels=16,"
                                         "unet_blocks=1", &error));
  g_autoptr (TfModel) m = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (m, 3);
  g_assert_cmpfloat (tensor_std (m, "unet.out.weight"), ==, 0);
  g_assert_cmpfloat (tensor_std (m, "unet.down.0.block.0.conv2.weight"), ==, 0);
  g_assert_cmpfloat_with_epsilon (tensor_std (m, "unet.proj_in.weight"), 0.02, 0.002);
  g_assert_cmpfloat_with_epsilon (tensor_std (m, "unet.down.0.conv.weight"), 1.0 / sqrt (9 * 16),
                                  0.01);
}

/* A new model's conv encoder: its tensors stand where patch_in and
 * patch_out would, its tokens enter the transformer at the scale of linear
 * patches' and its map out starts as patch_out does (normal(0, 0.02)), its
 * stem with a fan-in scale, its head at 0: the prediction starts at 0, and
 * the head is the first to learn. */
static void
test_conv_init (void)
{
  TfConfig c = tiny_config ();
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_config_apply_recipe (&c, "prediction=v,image_encoder=conv,conv_channels=16",
                                         &error));
  g_autoptr (TfModel) m = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (m, 3);

  const int cell = c.patch_size * c.patch_size * 16, Ci = c.image_channels;
  const struct { const char *name; int rows, cols; } order[] = {
    { "tok_emb.weight", c.vocab_size, c.d_model },
    { "conv.stem.weight", 16, 9 * Ci }, { "conv.stem.bias", 16, 0 },
    { "conv.in.weight", c.d_model, cell }, { "conv.in.bias", c.d_model, 0 },
    { "patch_pos", tf_config_n_patches (&c), c.d_model },
  };
  for (guint i = 0; i < G_N_ELEMENTS (order); i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      g_assert_cmpstr (t->name, ==, order[i].name);
      g_assert_cmpint (t->shape[0], ==, order[i].rows);
      g_assert_cmpint (t->shape[1], ==, order[i].cols);
    }
  const int n = tf_model_n_tensors (m);
  const char *last[] = { "lm_head.weight", "conv.out.weight", "conv.out.bias",
                         "conv.head.weight", "conv.head.bias" };
  for (guint i = 0; i < G_N_ELEMENTS (last); i++)
    g_assert_cmpstr (tf_model_tensor (m, n - G_N_ELEMENTS (last) + i)->name, ==, last[i]);
  g_assert_cmpint (tf_model_find_tensor (m, "conv.out.weight")->shape[0], ==, cell);
  g_assert_cmpint (tf_model_find_tensor (m, "conv.head.weight")->shape[1], ==, 9 * 16);
  g_assert_null (tf_model_find_tensor (m, "patch_in.weight"));
  g_assert_null (tf_model_find_tensor (m, "patch_out.weight"));

  g_assert_cmpfloat (tensor_std (m, "conv.head.weight"), ==, 0);
  g_assert_cmpfloat (tensor_std (m, "conv.head.bias"), ==, 0);
  g_assert_cmpfloat (tensor_std (m, "conv.stem.bias"), ==, 0);
  g_assert_cmpfloat_with_epsilon (tensor_std (m, "conv.in.weight"), 0.02, 0.002);
  g_assert_cmpfloat_with_epsilon (tensor_std (m, "conv.out.weight"), 0.02, 0.002);
  g_assert_cmpfloat_with_epsilon (tensor_std (m, "conv.stem.weight"), 1.0 / sqrt (9 * Ci), 0.02);

  MixedBatch mb;
  mixed_batch_init (&mb, &c, 12);
  g_autoptr (TfActivations) acts = tf_activations_new (m);
  g_assert_true (tf_model_forward (m, acts, &mb.batch, NULL, &error));
  g_assert_no_error (error);
  const float *pred = tf_activations_pred (acts);
  const size_t n_pred = (size_t) tf_activations_batch (acts) * tf_activations_seq_len (acts) *
                        tf_config_patch_dim (&c);
  for (size_t k = 0; k < n_pred; k++)
    g_assert_cmpfloat (pred[k], ==, 0);
  tf_model_zero_grads (m);
  tf_model_backward (m, acts);
  const TfParamInfo *head = tf_model_find_tensor (m, "conv.head.weight");
  double g2 = 0;
  for (size_t k = 0; k < head->size; k++)
    g2 += (double) tf_model_grads (m)[head->offset + k] * tf_model_grads (m)[head->offset + k];
  g_assert_cmpfloat (g2, >, 0);
  mixed_batch_clear (&mb);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = tf_test_make_temp_dir ("tf-model-XXXXXX");
  g_test_add_func ("/model/mask/transfusion", test_mask_is_transfusion_mask);
  g_test_add_func ("/model/mask/in-effect", test_mask_in_effect);
  g_test_add_func ("/model/padding-and-packing", test_padding_and_packing_are_invisible);
  g_test_add_func ("/model/bad-batches", test_bad_batches);
  g_test_add_func ("/model/deterministic", test_deterministic_and_accumulating);
  g_test_add_func ("/model/gradient-descends", test_gradient_descends);
  g_test_add_func ("/model/checkpoint/round-trip", test_checkpoint_round_trip);
  g_test_add_func ("/model/checkpoint/errors", test_checkpoint_errors);
  g_test_add_func ("/model/alpha-bar", test_alpha_bar);
  g_test_add_func ("/model/unet-init", test_unet_init);
  g_test_add_func ("/model/conv-init", test_conv_init);
  int status = g_test_run ();
  tf_test_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return status;
}
