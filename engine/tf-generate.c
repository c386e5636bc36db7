/* tf-generate.c: text decoding with a KV cache, image denoising against a
 * cached prefix, captioning and interleaved chat (SPEC §4). */
#include "config.h"
#include "tf-generate.h"
#include "tf-threads.h"
#include "tf-diffusion.h"
#include "tf-layers.h"
#include "tf-train.h"
#include "tf-rng.h"
#include "tf-unet.h"
#include "tf-conv-patch.h"
#include "tf-json.h"

#include <math.h>
#include <string.h>

#define N_ROWS 2   /* conditional and unconditional */

typedef struct {
  const float *attn_norm, *wqkv, *wo, *mlp_norm, *w13, *w2;
  const float *adaln_w, *adaln_b;   /* adaLN-Zero only */
} LayerWeights;

/* One turn of the chat in row 0: what it was fed from, and how many
 * positions it holds there (without the conversation's <|bos|>). */
typedef struct {
  gboolean  from_user;
  char     *text;
  float    *image;       /* NULL, or the picture's values */
  int       positions;
} ChatTurn;

static void
chat_turn_clear (gpointer data)
{
  ChatTurn *turn = data;
  g_free (turn->text);
  g_free (turn->image);
}

struct _TfGenerator {
  TfModel       *model;
  TfTokenizer   *tok;
  TfActivations *acts;          /* the uncached reference path */
  TfRng          rng;
  TfThreads      threads;        /* chosen before each step and token */
  TfGemmPack    *pack;           /* the weights' bf16 copies, made on first use */
  guint64        pack_version;   /* the model's weights version they were made of */
  int            calls;          /* depth of the API calls running */
  volatile gint  abort;
  int            grey_side;      /* tf_image_to_model_picture()'s, for people's pictures */

  /* KV cache per row: [n_layers][max_seq_len][d] for keys and for values */
  float         *k_cache[N_ROWS], *v_cache[N_ROWS];
  int            n_cached[N_ROWS];

  /* The chat's turns in row 0 (ChatTurn), so that the earliest can make
   * room: @chat_live when row 0 holds them (other work reuses the row). */
  GArray        *chat_turns;
  gboolean       chat_live;
  int            chat_forgotten;  /* turns left out since the last reset or restore */

  /* the weights, looked up by name once */
  struct {
    const float *tok_emb, *patch_in_w, *patch_in_b, *patch_pos;
    const float *time0_w, *time0_b, *time2_w, *time2_b;
    const float *norm, *lm_head, *patch_out_w, *patch_out_b;
    const float *final_adaln_w, *final_adaln_b;   /* adaLN-Zero only */
  } w;
  LayerWeights  *layer_w;

  /* scratch for a block of up to N_ROWS × max_seq_len positions */
  int            cap;            /* positions */
  int           *pos;
  int           *pos_col;        /* image_rope = axial: an image block's column positions */
  float         *rstd;
  float         *x, *xn, *qkv, *att, *gu, *act, *proj;
  float         *scores;         /* attention scratch [n_heads, max_seq_len, max_seq_len] */
  float         *rope;           /* RoPE's cos and sin for every position (tf_rope_table) */
  float         *logits;         /* [V] */
  float         *patches;        /* [n_patches, patch_dim] */
  float         *time_buf;       /* 4 × d */
  float         *pred_rows;      /* [N_ROWS, values] */
  float         *mods;           /* adaLN-Zero: [n_layers, 6d] then [2d], for one t */
  int           *no_group;       /* [cap] zeros: every row of a block is one image */
  TfUnetActs    *unet;           /* image_encoder = unet: one x_t encoded, N_ROWS decoded */
  TfConvPatchActs *conv;         /* image_encoder = conv: the same */
  int           *order;          /* [V] sorting scratch */
  double        *probs;          /* [V] */
  TfGemmBackend  backend;        /* of the products (tf-gemm.h) */
};

/* ---- Settings ----------------------------------------------------------- */

const char *
tf_sampler_name (TfSampler sampler)
{
  return sampler == TF_SAMPLER_DDIM ? "ddim" : "ddpm";
}

gboolean
tf_sampler_from_name (const char *name, TfSampler *sampler)
{
  if (g_ascii_strcasecmp (name, "ddpm") == 0)
    *sampler = TF_SAMPLER_DDPM;
  else if (g_ascii_strcasecmp (name, "ddim") == 0)
    *sampler = TF_SAMPLER_DDIM;
  else
    return FALSE;
  return TRUE;
}

void
tf_generate_settings_init (TfGenerateSettings *s)
{
  memset (s, 0, sizeof *s);
  s->temperature = 0.8;
  s->top_k = 0;
  s->top_p = 0.95;
  s->max_tokens = 200;
  s->steps = 50;
  s->cfg = 3.0;
  s->sampler = TF_SAMPLER_DDPM;
  s->seed = 1;
  s->strength = 0.75;
}

gboolean
tf_generate_settings_validate (const TfGenerateSettings *s, GError **error)
{
#define REQUIRE(cond, ...)                                                     \
  if (!(cond))                                                                 \
    {                                                                          \
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, __VA_ARGS__);              \
      return FALSE;                                                            \
    }
  REQUIRE (s->steps >= 1 && s->steps <= TF_MAX_STEPS,
           "steps %d is out of range (1 to %d)", s->steps, TF_MAX_STEPS);
  REQUIRE (isfinite (s->cfg) && s->cfg >= 0 && s->cfg <= 100,
           "guidance scale %g is out of range (0 to 100)", s->cfg);
  REQUIRE (isfinite (s->temperature) && s->temperature >= 0 && s->temperature <= 10,
           "temperature %g is out of range (0 to 10)", s->temperature);
  REQUIRE (isfinite (s->top_p) && s->top_p > 0 && s->top_p <= 1,
           "top-p %g is out of range (above 0, up to 1)", s->top_p);
  REQUIRE (s->top_k >= 0, "top-k %d is negative", s->top_k);
  REQUIRE (s->max_tokens >= 1 && s->max_tokens <= 1000000,
           "max tokens %d is out of range (1 to 1000000)", s->max_tokens);
  REQUIRE (s->sampler == TF_SAMPLER_DDPM || s->sampler == TF_SAMPLER_DDIM,
           "unknown sampler %d", (int) s->sampler);
  REQUIRE (isfinite (s->strength) && s->strength > 0 && s->strength <= 1,
           "denoising strength %g is out of range (above 0, up to 1)", s->strength);
#undef REQUIRE
  return TRUE;
}

char *
tf_generate_settings_sampling_to_json (const TfGenerateSettings *s)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "sampler");
  json_builder_add_string_value (b, tf_sampler_name (s->sampler));
  json_builder_set_member_name (b, "steps");
  json_builder_add_int_value (b, s->steps);
  json_builder_set_member_name (b, "cfg");
  json_builder_add_double_value (b, s->cfg);
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

gboolean
tf_generate_settings_sampling_from_json (TfGenerateSettings *settings, const char *json,
                                         GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) parse_error = NULL;
  if (!json_parser_load_from_data (parser, json, -1, &parse_error))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "the sampling settings are not JSON: %s",
                   parse_error->message);
      return FALSE;
    }
  JsonNode *root = json_parser_get_root (parser);
  JsonObject *o = root != NULL && JSON_NODE_HOLDS_OBJECT (root) ? json_node_get_object (root) : NULL;
  JsonNode *sampler = o != NULL ? json_object_get_member (o, "sampler") : NULL;
  JsonNode *steps = o != NULL ? json_object_get_member (o, "steps") : NULL;
  JsonNode *cfg = o != NULL ? json_object_get_member (o, "cfg") : NULL;
  const gboolean numbers = steps != NULL && cfg != NULL &&
                           json_node_get_value_type (steps) == G_TYPE_INT64 &&
                           (json_node_get_value_type (cfg) == G_TYPE_DOUBLE ||
                            json_node_get_value_type (cfg) == G_TYPE_INT64);
  TfGenerateSettings s = *settings;
  if (sampler == NULL || json_node_get_value_type (sampler) != G_TYPE_STRING || !numbers ||
      !tf_sampler_from_name (json_node_get_string (sampler), &s.sampler))
    {
      g_set_error_literal (error, TF_ERROR, TF_ERROR_FORMAT,
                           "the sampling settings are not an object of \"sampler\" (ddpm or "
                           "ddim), \"steps\" and \"cfg\"");
      return FALSE;
    }
  const gint64 n = json_node_get_int (steps);
  if (n < 1 || n > TF_MAX_STEPS)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "steps %" G_GINT64_FORMAT
                   " is out of range (1 to %d)", n, TF_MAX_STEPS);
      return FALSE;
    }
  s.steps = (int) n;
  s.cfg = json_node_get_double (cfg);
  if (!tf_generate_settings_validate (&s, error))
    return FALSE;
  *settings = s;
  return TRUE;
}

/* ---- The generator ------------------------------------------------------ */

static const float *
weight (TfModel *model, const char *name)
{
  const TfParamInfo *info = tf_model_find_tensor (model, name);
  g_assert (info != NULL);   /* every model has every tensor of its config */
  return tf_model_weights (model) + info->offset;
}

/* wq, wk, wv are adjacent in the parameter buffer (one [3d, d] product), and
 * so are w1, w3 (one [2h, d] product). */
static void
resolve_weights (TfGenerator *g)
{
  TfModel *m = g->model;
  g->w.tok_emb = weight (m, "tok_emb.weight");
  /* the U-Net's and the conv encoder's weights are reached through their offsets */
  if (tf_model_config (m)->image_encoder == TF_IMAGE_ENCODER_LINEAR)
    {
      g->w.patch_in_w = weight (m, "patch_in.weight");
      g->w.patch_in_b = weight (m, "patch_in.bias");
      g->w.patch_out_w = weight (m, "patch_out.weight");
      g->w.patch_out_b = weight (m, "patch_out.bias");
    }
  g->w.patch_pos = weight (m, "patch_pos");
  g->w.time0_w = weight (m, "time_mlp.0.weight");
  g->w.time0_b = weight (m, "time_mlp.0.bias");
  g->w.time2_w = weight (m, "time_mlp.2.weight");
  g->w.time2_b = weight (m, "time_mlp.2.bias");
  g->w.norm = weight (m, "norm.weight");
  g->w.lm_head = weight (m, "lm_head.weight");
  const gboolean adaln = tf_model_config (m)->time_conditioning == TF_TIME_ADALN_ZERO;
  if (adaln)
    {
      g->w.final_adaln_w = weight (m, "final_adaln.weight");
      g->w.final_adaln_b = weight (m, "final_adaln.bias");
    }
  const int n_layers = tf_model_config (m)->n_layers;
  g->layer_w = g_new0 (LayerWeights, n_layers);
  for (int l = 0; l < n_layers; l++)
    {
      char name[64];
#define LAYER(field, suffix)                                            \
      g_snprintf (name, sizeof name, "layers.%d." suffix, l);           \
      g->layer_w[l].field = weight (m, name);
      LAYER (attn_norm, "attn_norm.weight")
      LAYER (wqkv, "attn.wq")
      LAYER (wo, "attn.wo")
      LAYER (mlp_norm, "mlp_norm.weight")
      LAYER (w13, "mlp.w1")
      LAYER (w2, "mlp.w2")
      if (adaln)
        {
          LAYER (adaln_w, "adaln.weight")
          LAYER (adaln_b, "adaln.bias")
        }
#undef LAYER
    }
}


TfGenerator *
tf_generator_new (TfModel *model, TfTokenizer *tokenizer, GError **error)
{
  const TfConfig *c = tf_model_config (model);
  if (!tf_tokenizer_matches_config (tokenizer, c, "model", error))
    {
      tf_model_free (model);
      tf_tokenizer_free (tokenizer);
      return NULL;
    }
  TfGenerator *g = g_new0 (TfGenerator, 1);
  g->model = model;
  g->tok = tokenizer;
  g->acts = tf_activations_new (model);
  const size_t d = c->d_model, L = c->max_seq_len, h = c->mlp_hidden;
  for (int r = 0; r < N_ROWS; r++)
    {
      g->k_cache[r] = g_new0 (float, (size_t) c->n_layers * L * d);
      g->v_cache[r] = g_new0 (float, (size_t) c->n_layers * L * d);
    }
  g->cap = N_ROWS * (int) L;
  const size_t N = g->cap;
  g->x = g_new (float, N * d);
  g->xn = g_new (float, N * d);
  g->qkv = g_new (float, N * 3 * d);
  g->att = g_new (float, N * d);
  g->scores = g_new (float, (size_t) c->n_heads * L * L);
  g->rope = g_new (float, L * (size_t) tf_config_head_dim (c));
  tf_rope_table (g->rope, 0, (int) L, tf_config_head_dim (c), c->rope_theta);
  g->gu = g_new (float, N * 2 * h);
  g->act = g_new (float, N * h);
  g->proj = g_new (float, N * MAX (d, (size_t) tf_config_patch_dim (c)));
  g->logits = g_new (float, c->vocab_size);
  g->patches = g_new (float, (size_t) tf_config_n_patches (c) * tf_config_patch_dim (c));
  g->time_buf = g_new (float, 4 * d);
  g->pred_rows = g_new (float, (size_t) N_ROWS * tf_config_image_values (c));
  g->mods = g_new (float, ((size_t) c->n_layers * 6 + 2) * d);
  g->no_group = g_new0 (int, N);
  g->pos = g_new (int, N);
  g->pos_col = g_new (int, N);
  g->rstd = g_new (float, N);
  g->order = g_new (int, c->vocab_size);
  g->probs = g_new (double, c->vocab_size);
  resolve_weights (g);
  if (c->image_encoder == TF_IMAGE_ENCODER_UNET)
    {
      g->unet = tf_unet_acts_new (c);
      tf_unet_acts_reserve (g->unet, N_ROWS);
    }
  else if (c->image_encoder == TF_IMAGE_ENCODER_CONV)
    {
      g->conv = tf_conv_patch_acts_new (c);
      tf_conv_patch_acts_reserve (g->conv, N_ROWS);
    }
  g->chat_turns = g_array_new (FALSE, FALSE, sizeof (ChatTurn));
  g_array_set_clear_func (g->chat_turns, chat_turn_clear);
  tf_rng_seed (&g->rng, 1);
  tf_threads_init (&g->threads, 0);
  g->pack = tf_gemm_pack_new ();
  tf_gemm_pack_add (g->pack, tf_model_weights (model), tf_model_n_params (model));
  g->pack_version = tf_model_weights_version (model);
  return g;
}

TfGenerator *
tf_generator_new_from_file (const char *path, GError **error)
{
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, error);
  if (st == NULL)
    return NULL;
  TfModel *model = tf_model_load_from (st, error);
  if (model == NULL)
    return NULL;
  const char *json = tf_safetensors_metadata (st, "tokenizer");
  if (json == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: __metadata__ has no 'tokenizer', so text cannot be read or written",
                   path);
      tf_model_free (model);
      return NULL;
    }
  TfTokenizer *tok = tf_tokenizer_from_json (json, path, error);
  if (tok == NULL)
    {
      tf_model_free (model);
      return NULL;
    }
  return tf_generator_new_with_file (model, tok, st, error);
}

TfGenerator *
tf_generator_new_with_file (TfModel *model, TfTokenizer *tokenizer, const TfSafetensors *st,
                            GError **error)
{
  const int grey_side = tf_provenance_grey_side (tf_safetensors_metadata (st, "provenance"),
                                                 tf_model_config (model)->image_size);
  TfGenerator *g = tf_generator_new (model, tokenizer, error);
  if (g != NULL)
    tf_generator_set_picture_grey_side (g, grey_side);
  return g;
}

void
tf_generator_free (TfGenerator *g)
{
  if (g == NULL)
    return;
  tf_activations_free (g->acts);
  tf_model_free (g->model);
  tf_tokenizer_free (g->tok);
  for (int r = 0; r < N_ROWS; r++)
    {
      g_free (g->k_cache[r]);
      g_free (g->v_cache[r]);
    }
  g_free (g->x); g_free (g->xn); g_free (g->qkv); g_free (g->att); g_free (g->scores); g_free (g->rope); g_free (g->gu);
  g_free (g->act); g_free (g->proj); g_free (g->logits); g_free (g->patches);
  g_free (g->time_buf); g_free (g->pred_rows); g_free (g->mods); g_free (g->no_group); g_free (g->order); g_free (g->probs);
  g_free (g->pos); g_free (g->pos_col); g_free (g->rstd); g_free (g->layer_w);
  tf_unet_acts_free (g->unet);
  tf_conv_patch_acts_free (g->conv);
  g_array_unref (g->chat_turns);
  tf_gemm_pack_free (g->pack);
  g_free (g);
}

TfModel *tf_generator_model (TfGenerator *g) { return g->model; }
const TfTokenizer *tf_generator_tokenizer (TfGenerator *g) { return g->tok; }

void
tf_generator_set_threads (TfGenerator *g, int limit)
{
  tf_threads_init (&g->threads, MAX (0, limit));
}

void
tf_generator_set_precision (TfGenerator *g, TfPrecision precision)
{
  g->backend = tf_gemm_backend_for (precision);
}

void
tf_generator_set_picture_grey_side (TfGenerator *g, int grey_side)
{
  g->grey_side = MAX (grey_side, 0);
}

int
tf_generator_picture_grey_side (TfGenerator *g)
{
  return g->grey_side;
}

void
tf_generator_fit_picture (TfGenerator *g, const TfImage *image, float *pixels)
{
  const TfConfig *c = tf_model_config (g->model);
  tf_image_to_model_picture (image, c->image_size, c->image_channels, g->grey_side, pixels);
}

TfGemmBackend
tf_generator_backend (TfGenerator *g)
{
  return g->backend;
}

void
tf_generator_abort (TfGenerator *g)
{
  g_atomic_int_set (&g->abort, 1);
}

static gboolean
check_abort (TfGenerator *g, GError **error)
{
  if (g_atomic_int_get (&g->abort))
    {
      g_set_error_literal (error, TF_ERROR, TF_ERROR_ABORTED, "stopped");
      return FALSE;
    }
  return TRUE;
}

/* ---- The cached forward -------------------------------------------------- */

/* Runs @n new positions for each of @n_rows rows (their input embeddings in
 * g->x, row-major [n_rows × n, d]) through the transformer against each
 * row's cache, writing their keys and values at the row's next slots. With
 * @block the positions see each other both ways (an image), and with @mods
 * (adaLN-Zero) their sublayers are modulated and gated by them (g->mods'
 * layout). @commit keeps them in the cache; otherwise the next block
 * overwrites them. Leaves the final normalised hidden states in g->xn.
 * Positions count on from each row's cache, an image's as
 * tf_model_forward() places them (1-D, or axial RoPE's rows and columns). */
static void
forward_block (TfGenerator *g, const int *rows, int n_rows, int n, gboolean block,
               const float *mods, gboolean commit)
{
  const TfConfig *c = tf_model_config (g->model);
  const int d = c->d_model, h = c->mlp_hidden, H = c->n_heads, hd = tf_config_head_dim (c);
  const int L = c->max_seq_len, N = n_rows * n;
  int *pos = g->pos;
  const int *pos_col = NULL;
  float *rstd = g->rstd;
  for (int r = 0; r < n_rows; r++)
    for (int i = 0; i < n; i++)
      pos[r * n + i] = g->n_cached[rows[r]] + i;
  if (block && c->image_rope == TF_IMAGE_ROPE_AXIAL)
    {
      for (int r = 0; r < n_rows; r++)
        tf_rope_image_positions (pos + r * n, g->pos_col + r * n, g->n_cached[rows[r]],
                                 tf_config_patches_per_side (c));
      pos_col = g->pos_col;
    }

  for (int l = 0; l < c->n_layers; l++)
    {
      const LayerWeights *lw = &g->layer_w[l];
      const float *mod = mods != NULL ? mods + (size_t) l * 6 * d : NULL;
      tf_rmsnorm_forward (g->xn, rstd, g->x, lw->attn_norm, N, d, c->norm_eps);
      if (mod != NULL)
        tf_modulate_forward (g->xn, g->xn, mod, mod + d, 0, g->no_group, N, d);
      tf_linear_forward (g->qkv, g->xn, lw->wqkv, NULL, N, d, 3 * d);
      tf_rope_forward_table (g->qkv, 3 * d, pos, pos_col, N, H, hd, g->rope);
      tf_rope_forward_table (g->qkv + d, 3 * d, pos, pos_col, N, H, hd, g->rope);
      for (int r = 0; r < n_rows; r++)
        {
          const int p0 = g->n_cached[rows[r]];
          float *kc = g->k_cache[rows[r]] + (size_t) l * L * d;
          float *vc = g->v_cache[rows[r]] + (size_t) l * L * d;
          for (int i = 0; i < n; i++)
            {
              const float *src = g->qkv + (size_t) (r * n + i) * 3 * d;
              memcpy (kc + (size_t) (p0 + i) * d, src + d, sizeof (float) * d);
              memcpy (vc + (size_t) (p0 + i) * d, src + 2 * d, sizeof (float) * d);
            }
          tf_attention_cached_forward (g->att + (size_t) r * n * d, g->scores,
                                       g->qkv + (size_t) r * n * 3 * d, 3 * d, kc, vc,
                                       p0, n, block, H, hd);
        }
      if (mod != NULL)
        {
          tf_linear_forward (g->proj, g->att, lw->wo, NULL, N, d, d);
          tf_gate_residual_forward (g->x, g->proj, mod + 2 * d, 0, g->no_group, N, d);
        }
      else
        tf_linear_forward_add (g->x, g->att, lw->wo, N, d, d);

      tf_rmsnorm_forward (g->xn, rstd, g->x, lw->mlp_norm, N, d, c->norm_eps);
      if (mod != NULL)
        tf_modulate_forward (g->xn, g->xn, mod + 3 * d, mod + 4 * d, 0, g->no_group, N, d);
      tf_linear_forward (g->gu, g->xn, lw->w13, NULL, N, d, 2 * h);
      tf_swiglu_forward (g->act, g->gu, N, h);
      if (mod != NULL)
        {
          tf_linear_forward (g->proj, g->act, lw->w2, NULL, N, h, d);
          tf_gate_residual_forward (g->x, g->proj, mod + 5 * d, 0, g->no_group, N, d);
        }
      else
        tf_linear_forward_add (g->x, g->act, lw->w2, N, h, d);
    }
  tf_rmsnorm_forward (g->xn, rstd, g->x, g->w.norm, N, d, c->norm_eps);
  if (mods != NULL)
    {
      const float *final = mods + (size_t) c->n_layers * 6 * d;
      tf_modulate_forward (g->xn, g->xn, final, final + d, 0, g->no_group, N, d);
    }
  if (commit)
    for (int r = 0; r < n_rows; r++)
      g->n_cached[rows[r]] += n;
}

static gboolean
check_room (TfGenerator *g, int row, int n, GError **error)
{
  const int L = tf_model_config (g->model)->max_seq_len;
  if (g->n_cached[row] + n > L)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "the context is full: %d positions are in use and %d more do not fit in the "
                   "model's %d", g->n_cached[row], n, L);
      return FALSE;
    }
  return TRUE;
}

/* Appends text tokens to one row; with @logits, the logits after the last. */
static gboolean
feed_tokens_now (TfGenerator *g, int row, const int32_t *tokens, int n, float *logits,
                 GError **error)
{
  if (n == 0)
    return TRUE;
  if (!check_room (g, row, n, error))
    return FALSE;
  tf_threads_choose (&g->threads);
  const TfConfig *c = tf_model_config (g->model);
  const int d = c->d_model;
  tf_embedding_forward (g->x, tokens, g->w.tok_emb, n, d);
  forward_block (g, &row, 1, n, FALSE, NULL, TRUE);
  if (logits != NULL)
    tf_linear_forward (logits, g->xn + (size_t) (n - 1) * d, g->w.lm_head, NULL, 1,
                       d, c->vocab_size);
  return TRUE;
}

/* The image block x_t at level t after each row's cached prefix: fills
 * @pred (n_rows × image values) with the image head's output; with @commit
 * keeps its keys and values. */
static gboolean
feed_image_now (TfGenerator *g, const int *rows, int n_rows, const float *x_t, int t,
                gboolean commit, float *pred, GError **error)
{
  const TfConfig *c = tf_model_config (g->model);
  const int d = c->d_model, np = tf_config_n_patches (c), pd = tf_config_patch_dim (c);
  for (int r = 0; r < n_rows; r++)
    if (!check_room (g, rows[r], np, error))
      return FALSE;
  tf_threads_choose (&g->threads);

  /* x = patch_in(patches) + patch_pos + temb(t), the same for every row
   * (with the U-Net or the conv encoder, its tokens in place of patch_in's) */
  float *code = g->time_buf, *h1 = code + d, *s1 = h1 + d, *temb = s1 + d;
  tf_timestep_code (code, t, d);
  tf_linear_forward (h1, code, g->w.time0_w, g->w.time0_b, 1, d, d);
  tf_silu_forward (s1, h1, d);
  tf_linear_forward (temb, s1, g->w.time2_w, g->w.time2_b, 1, d, d);
  const float *params = tf_model_weights (g->model);
  const TfUnetOffsets *uo = tf_model_unet_offsets (g->model);
  const TfConvPatchOffsets *co = tf_model_conv_patch_offsets (g->model);
  if (g->unet != NULL)
    tf_unet_encode (g->unet, params, uo, x_t, temb, 1, g->x);
  else if (g->conv != NULL)
    tf_conv_patch_encode (g->conv, params, co, x_t, 1, g->x);
  else
    {
      tf_patchify (g->patches, x_t, c->image_size, c->image_channels, c->patch_size);
      tf_linear_forward (g->x, g->patches, g->w.patch_in_w, g->w.patch_in_b, np, pd, d);
    }
  const float *mods = NULL;
  if (c->time_conditioning == TF_TIME_ADALN_ZERO)
    {
      /* every layer's shift, scale and gate at t, from silu(temb) (s1 is free now) */
      tf_silu_forward (s1, temb, d);
      for (int l = 0; l < c->n_layers; l++)
        tf_linear_forward (g->mods + (size_t) l * 6 * d, s1, g->layer_w[l].adaln_w,
                           g->layer_w[l].adaln_b, 1, d, 6 * d);
      tf_linear_forward (g->mods + (size_t) c->n_layers * 6 * d, s1, g->w.final_adaln_w,
                         g->w.final_adaln_b, 1, d, 2 * d);
      mods = g->mods;
    }
  const float *pe = g->w.patch_pos;
  for (int k = 0; k < np; k++)
    for (int e = 0; e < d; e++)
      g->x[(size_t) k * d + e] += pe[(size_t) k * d + e] + temb[e];
  for (int r = 1; r < n_rows; r++)
    memcpy (g->x + (size_t) r * np * d, g->x, sizeof (float) * np * d);

  forward_block (g, rows, n_rows, np, TRUE, mods, commit);
  if (pred != NULL && g->unet != NULL)   /* every row decoded against the one encoding */
    tf_unet_decode (g->unet, params, uo, g->xn, n_rows, pred);
  else if (pred != NULL && g->conv != NULL)   /* the rows' decoders share nothing */
    tf_conv_patch_decode (g->conv, params, co, g->xn, n_rows, pred);
  else if (pred != NULL)
    {
      const int values = tf_config_image_values (c);
      tf_linear_forward (g->proj, g->xn, g->w.patch_out_w, g->w.patch_out_b,
                         n_rows * np, d, pd);
      for (int r = 0; r < n_rows; r++)
        tf_unpatchify (pred + (size_t) r * values, g->proj + (size_t) r * np * pd,
                       c->image_size, c->image_channels, c->patch_size);
    }
  return TRUE;
}

/* Every product of the generator runs through these two (and predict's
 * reference path): each job's products on the generator's backend, reading
 * the weights' bf16 copies from its pack, the calling thread's own backend
 * and pack left as they were. */
static gboolean
feed_tokens (TfGenerator *g, int row, const int32_t *tokens, int n, float *logits,
             GError **error)
{
  const TfGemmBackend caller = tf_gemm_use (g->backend);
  TfGemmPack *caller_pack = tf_gemm_pack_use (g->pack);
  const gboolean ok = feed_tokens_now (g, row, tokens, n, logits, error);
  tf_gemm_pack_use (caller_pack);
  tf_gemm_use (caller);
  return ok;
}

static gboolean
feed_image (TfGenerator *g, const int *rows, int n_rows, const float *x_t, int t,
            gboolean commit, float *pred, GError **error)
{
  const TfGemmBackend caller = tf_gemm_use (g->backend);
  TfGemmPack *caller_pack = tf_gemm_pack_use (g->pack);
  const gboolean ok = feed_image_now (g, rows, n_rows, x_t, t, commit, pred, error);
  tf_gemm_pack_use (caller_pack);
  tf_gemm_use (caller);
  return ok;
}

/* One call of the generator's API, from its start to its return
 * (g_auto (GeneratorCall) call = generator_call (g)): the weights cannot
 * change while it runs. Their bf16 copies, made on first use, last from
 * call to call (decoding one token per call reads them all) until the
 * model says its weights may have changed (tf_model_weights_version: a
 * caller took them to change with tf_model_params()). */
typedef struct {
  TfGenerator *g;
} GeneratorCall;

static GeneratorCall
generator_call (TfGenerator *g)
{
  if (g->calls++ == 0 && tf_model_weights_version (g->model) != g->pack_version)
    {
      tf_gemm_pack_clear (g->pack);
      g->pack_version = tf_model_weights_version (g->model);
    }
  return (GeneratorCall) { g };
}

static void
generator_call_end (GeneratorCall *call)
{
  call->g->calls--;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (GeneratorCall, generator_call_end)

/* ---- Samplers ----------------------------------------------------------- */

void
tf_sampler_timesteps (int T, int n_steps, int *timesteps)
{
  for (int i = 0; i < n_steps; i++)
    timesteps[i] = (int) ((int64_t) (n_steps - i) * T / n_steps);
}

void
tf_sampler_update (TfSampler sampler, TfPrediction prediction, const double *alpha_bar,
                   int t, int t_prev, const float *x_t, const float *pred, const float *z,
                   int n, float *x0, float *x_prev)
{
  const double a_t = alpha_bar[t], a_p = alpha_bar[t_prev];
  const double sa = sqrt (a_t), sb = sqrt (1.0 - a_t);
  if (sampler == TF_SAMPLER_DDIM)
    {
      for (int k = 0; k < n; k++)
        {
          double x0k = CLAMP (tf_diffusion_x0_of (prediction, sa, sb, x_t[k], pred[k]),
                              -1.0, 1.0);
          double e = (x_t[k] - sa * x0k) / sb;
          x0[k] = (float) x0k;
          x_prev[k] = (float) (sqrt (a_p) * x0k + sqrt (1.0 - a_p) * e);
        }
      return;
    }
  /* DDPM posterior q(x_prev | x_t, x0) for the respaced pair (t, t_prev) */
  const double beta = 1.0 - a_t / a_p;
  const double c0 = sqrt (a_p) * beta / (1.0 - a_t);
  const double ct = sqrt (1.0 - beta) * (1.0 - a_p) / (1.0 - a_t);
  const double sigma = sqrt (beta * (1.0 - a_p) / (1.0 - a_t));
  for (int k = 0; k < n; k++)
    {
      double x0k = CLAMP (tf_diffusion_x0_of (prediction, sa, sb, x_t[k], pred[k]), -1.0, 1.0);
      double xp = c0 * x0k + ct * x_t[k];
      if (t_prev > 0 && z != NULL)
        xp += sigma * z[k];
      x0[k] = (float) x0k;
      x_prev[k] = (float) xp;
    }
}

/* Denoises from pure noise after the prefixes already in rows 0 (and 1 for
 * guidance), reporting every step; leaves the clean image in @pixels. */
static gboolean
denoise (TfGenerator *g, const TfGenerateSettings *s, gboolean guided,
         const TfGenerateCallbacks *cb, float *pixels, GError **error)
{
  TfModel *m = g->model;
  const TfConfig *c = tf_model_config (m);
  const int values = tf_config_image_values (c);
  const int S = MIN (s->steps, c->diffusion_steps);
  g_autofree int *ts = g_new (int, S);
  g_autofree float *x = g_new (float, values);
  g_autofree float *x0 = g_new (float, values);
  g_autofree float *x_prev = g_new (float, values);
  g_autofree float *pred = g_new (float, values);
  g_autofree float *z = g_new (float, values);
  const int rows[N_ROWS] = { 0, 1 };
  const int n_rows = guided ? 2 : 1;

  tf_sampler_timesteps (c->diffusion_steps, S, ts);
  int first = 0, n = S;
  for (int k = 0; k < values; k++)
    x[k] = (float) tf_rng_normal (&g->rng);
  if (s->init_image != NULL)
    {
      /* SDEdit: the picture at the level the strength asks, as training
       * noises one, then the schedule's remaining steps (at least one). */
      const int t_start = MAX (1, (int) lround (s->strength * c->diffusion_steps));
      while (first < S - 1 && ts[first] > t_start)
        first++;
      if (ts[first] > t_start)
        ts[first] = t_start;
      n = S - first;
      const double ab = tf_model_alpha_bar (m)[ts[first]];
      for (int k = 0; k < values; k++)
        x[k] = (float) (sqrt (ab) * s->init_image[k] + sqrt (1.0 - ab) * x[k]);
    }
  for (int i = first; i < S; i++)
    {
      if (!check_abort (g, error))
        return FALSE;
      const int t = ts[i], t_prev = i + 1 < S ? ts[i + 1] : 0;
      if (!feed_image (g, rows, n_rows, x, t, FALSE, g->pred_rows, error))
        return FALSE;
      /* Guidance on the model's output, whatever it predicts: ε, v and x0
       * are each linear in the others at a given x_t. */
      const float *pred_c = g->pred_rows, *pred_u = g->pred_rows + values;
      const float w = (float) s->cfg;
      for (int k = 0; k < values; k++)
        pred[k] = guided ? pred_u[k] + w * (pred_c[k] - pred_u[k]) : pred_c[k];
      const gboolean noisy = s->sampler == TF_SAMPLER_DDPM && t_prev > 0;
      if (noisy)
        for (int k = 0; k < values; k++)
          z[k] = (float) tf_rng_normal (&g->rng);
      tf_sampler_update (s->sampler, c->prediction, tf_model_alpha_bar (m), t, t_prev, x, pred,
                         noisy ? z : NULL, values, x0, x_prev);
      if (cb != NULL && cb->step != NULL)
        {
          TfStepEvent ev = { i - first + 1, n, t, c->image_size, c->image_channels, x, x0 };
          cb->step (&ev, cb->user_data);
        }
      memcpy (x, x_prev, sizeof (float) * values);
    }
  memcpy (pixels, x, sizeof (float) * values);
  return TRUE;
}

/* ---- Text sampling ------------------------------------------------------ */

static int
compare_probs_desc (const void *a, const void *b, void *data)
{
  const double *p = data;
  double pa = p[*(const int *) a], pb = p[*(const int *) b];
  if (pa != pb)
    return pa > pb ? -1 : 1;
  return *(const int *) a - *(const int *) b;   /* ties: smaller id first */
}

/* Puts into g->order[0..n) the most probable tokens in descending order
 * (ties: smaller id first), exactly the first n of the full order, with n
 * large enough that they hold at least @mass of the probability and number
 * at least @count (or n = V). Sorting all V tokens for every token decoded
 * cost as much as the model's forward pass; the head is what sampling uses. */
static int
sorted_head (TfGenerator *g, int V, double mass, int count)
{
  double tau = 1.0 / 64;
  int n;
  for (;;)
    {
      double held = 0;
      n = 0;
      for (int v = 0; v < V; v++)
        if (g->probs[v] >= tau)
          {
            g->order[n++] = v;
            held += g->probs[v];
          }
      if (n == V || (held >= mass && n >= count))
        break;
      tau = tau > 1e-300 ? tau / 64 : 0;
    }
  g_qsort_with_data (g->order, n, sizeof (int), compare_probs_desc, g->probs);
  return n;
}

/* Samples the next token from g->logits; fills the event. */
static int32_t
sample_token (TfGenerator *g, const TfGenerateSettings *s, TfTokenEvent *ev)
{
  const int V = tf_model_config (g->model)->vocab_size;
  const double temp = s->temperature > 0 ? s->temperature : 1.0;
  double max = -INFINITY;
  for (int v = 0; v < V; v++)
    max = MAX (max, (double) g->logits[v]);
  double sum = 0;
  for (int v = 0; v < V; v++)
    sum += g->probs[v] = exp ((g->logits[v] - max) / temp);
  for (int v = 0; v < V; v++)
    g->probs[v] /= sum;

  const int keep_max = s->top_k > 0 ? MIN (s->top_k, V) : V;
  const gboolean truncated = s->temperature > 0 && (keep_max < V || s->top_p < 1);
  const int n_head = sorted_head (g, V, truncated ? s->top_p : 0,
                                  MIN (V, MAX (TF_TOP_ALTERNATIVES, truncated && keep_max < V
                                                                    ? keep_max : 1)));
  int32_t id;
  if (s->temperature <= 0)
    id = g->order[0];
  else if (!truncated)
    {
      /* The whole distribution: walk it in id order. */
      double u = tf_rng_uniform (&g->rng);
      id = V - 1;
      for (int v = 0; v < V; v++)
        {
          u -= g->probs[v];
          if (u < 0)
            {
              id = v;
              break;
            }
        }
    }
  else
    {
      /* keep the top-k, then the smallest set whose mass reaches top-p */
      int keep = MIN (keep_max, n_head);
      double mass = 0;
      for (int k = 0; k < keep; k++)
        {
          mass += g->probs[g->order[k]];
          if (mass >= s->top_p)
            {
              keep = k + 1;
              break;
            }
        }
      double kept = 0;
      for (int k = 0; k < keep; k++)
        kept += g->probs[g->order[k]];
      double u = tf_rng_uniform (&g->rng) * kept;
      id = g->order[keep - 1];
      for (int k = 0; k < keep; k++)
        {
          u -= g->probs[g->order[k]];
          if (u < 0)
            {
              id = g->order[k];
              break;
            }
        }
    }
  memset (ev, 0, sizeof *ev);
  ev->id = id;
  ev->probability = g->probs[id];
  ev->n_alternatives = MIN (TF_TOP_ALTERNATIVES, n_head);
  for (int k = 0; k < ev->n_alternatives; k++)
    {
      ev->alternative_ids[k] = g->order[k];
      ev->alternative_probabilities[k] = g->probs[g->order[k]];
    }
  const uint8_t *bytes = tf_tokenizer_token_bytes (g->tok, id, &ev->text_len);
  ev->text = (const char *) bytes;
  return id;
}

static void
reset_rows (TfGenerator *g, const TfGenerateSettings *s)
{
  for (int r = 0; r < N_ROWS; r++)
    g->n_cached[r] = 0;
  g->chat_live = FALSE;
  tf_rng_seed (&g->rng, s->seed);
  g_atomic_int_set (&g->abort, 0);
}

/* Appends the tokens of @text (NULL: none) to @ids. A text that could not
 * fit in the context even if every token were as long as a token may be is
 * refused before it is encoded, so a prompt of a gigabyte costs nothing. */
static gboolean
encode_append (TfGenerator *g, const char *what, const char *text, GArray *ids, GError **error)
{
  if (text == NULL)
    return TRUE;
  const size_t len = strlen (text);
  const size_t limit = (size_t) tf_model_config (g->model)->max_seq_len * TF_TOKEN_MAX_BYTES;
  if (len > limit)
    {
      g_autofree char *size = g_format_size (len);
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "the %s is %s long, more than the model's context of %d tokens can ever "
                   "hold (at most %zu bytes)", what, size,
                   tf_model_config (g->model)->max_seq_len, limit);
      return FALSE;
    }
  tf_tokenizer_encode_append (g->tok, text, len, ids);
  return TRUE;
}

static void
append_special (TfGenerator *g, GArray *ids, TfSpecial special)
{
  int32_t id = tf_tokenizer_special_id (g->tok, special);
  g_array_append_val (ids, id);
}

/* [bos] text [boi]: what the image of @text follows; @what names the text
 * in an error. */
static GArray *
image_prefix (TfGenerator *g, const char *what, const char *text, GError **error)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  append_special (g, ids, TF_SPECIAL_BOS);
  if (!encode_append (g, what, text, ids, error))
    {
      g_array_unref (ids);
      return NULL;
    }
  append_special (g, ids, TF_SPECIAL_BOI);
  return ids;
}

int32_t *
tf_generator_image_prefix (TfGenerator *g, const char *prompt, int *n, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  GArray *ids = image_prefix (g, "prompt", prompt, error);
  if (ids == NULL)
    return NULL;
  *n = (int) ids->len;
  return (int32_t *) (void *) g_array_free (ids, FALSE);
}

/* Feeds [bos] negative [boi] into row 1, the unconditional branch. */
static gboolean
feed_unconditional (TfGenerator *g, const char *negative, GError **error)
{
  g_autoptr (GArray) ids = image_prefix (g, "negative prompt", negative, error);
  if (ids == NULL)
    return FALSE;
  g->n_cached[1] = 0;
  return feed_tokens (g, 1, (int32_t *) ids->data, ids->len, NULL, error);
}

gboolean
tf_generator_generate_image (TfGenerator *g, const char *prompt, const TfGenerateSettings *s,
                             const TfGenerateCallbacks *cb, float *pixels, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  if (!tf_generate_settings_validate (s, error))
    return FALSE;
  reset_rows (g, s);
  const TfConfig *c = tf_model_config (g->model);
  g_autoptr (GArray) ids = image_prefix (g, "prompt", prompt, error);
  if (ids == NULL)
    return FALSE;
  if ((int) ids->len + tf_config_n_patches (c) > c->max_seq_len)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "the prompt is %u tokens long; with the image's %d positions it does not fit "
                   "in the model's context of %d", ids->len - 2, tf_config_n_patches (c),
                   c->max_seq_len);
      return FALSE;
    }
  const gboolean guided = s->cfg != 1.0;
  if (!feed_tokens (g, 0, (int32_t *) ids->data, ids->len, NULL, error) ||
      (guided && !feed_unconditional (g, s->negative, error)))
    return FALSE;
  if (cb != NULL && cb->image_begin != NULL)
    cb->image_begin (cb->user_data);
  if (!denoise (g, s, guided, cb, pixels, error))
    return FALSE;
  if (cb != NULL && cb->image_end != NULL)
    cb->image_end (pixels, c->image_size, c->image_channels, cb->user_data);
  return TRUE;
}

/* The chat turn being answered, so that the earliest exchanges can make
 * room in the middle of its reply: the message's tokens around its picture
 * (without <|bos|>), the reply's tokens so far, where the turn begins in
 * row 0, and the last picture the reply drew. */
typedef struct {
  GArray      *head, *tail;
  const float *image;
  int          message;   /* the positions of head, picture and tail */
  GArray      *reply;
  int          start;
  float       *drawn;
} ChatLive;

static int      chat_first_kept (TfGenerator *g, int need);
static gboolean chat_refeed (TfGenerator *g, int first, GError **error);

/* Feeds the message of the turn being answered into row 0 after what it
 * holds (after <|bos|> when it holds nothing), with the logits after it
 * into @logits (may be NULL). */
static gboolean
chat_feed_message (TfGenerator *g, ChatLive *live, float *logits, GError **error)
{
  const int32_t bos = tf_tokenizer_special_id (g->tok, TF_SPECIAL_BOS);
  const int row = 0;

  if (g->n_cached[0] == 0 && !feed_tokens (g, 0, &bos, 1, NULL, error))
    return FALSE;
  live->start = g->n_cached[0];
  return feed_tokens (g, 0, (int32_t *) live->head->data, live->head->len, NULL, error) &&
         (live->image == NULL || feed_image (g, &row, 1, live->image, 0, TRUE, NULL, error)) &&
         feed_tokens (g, 0, (int32_t *) live->tail->data, live->tail->len, logits, error);
}

/* Leaves out the conversation's earliest exchanges until @need more
 * positions fit after the turn being answered, and puts that turn back
 * after those kept. Nothing happens when the reply drew a picture already
 * (its tokens alone are not the turn) or no exchange can make the room:
 * the caller sees that the room is still missing. */
static gboolean
chat_room_mid_reply (TfGenerator *g, ChatLive *live, int need, GError **error)
{
  if (live->drawn != NULL)
    return TRUE;
  const int first = chat_first_kept (g, live->message + (int) live->reply->len + need);
  if (first <= 0)
    return TRUE;
  return chat_refeed (g, first, error) && chat_feed_message (g, live, NULL, error) &&
         feed_tokens (g, 0, (int32_t *) live->reply->data, live->reply->len, NULL, error);
}

/* Decodes from the logits in g->logits into row 0 until <|eos|> (or a user
 * turn, or max_tokens); in a chat (@live), <|boi|> draws an image, and the
 * earliest exchanges make room for the reply when the context is full
 * (without them, the reply ends there). Appends the reply's text to
 * @reply. */
static gboolean
decode (TfGenerator *g, const TfGenerateSettings *s, const TfGenerateCallbacks *cb,
        ChatLive *live, GString *reply, GError **error)
{
  const TfConfig *c = tf_model_config (g->model);
  const int L = c->max_seq_len;
  const int32_t eos = tf_tokenizer_special_id (g->tok, TF_SPECIAL_EOS);
  const int32_t boi = tf_tokenizer_special_id (g->tok, TF_SPECIAL_BOI);
  const int32_t eoi = tf_tokenizer_special_id (g->tok, TF_SPECIAL_EOI);
  const int32_t user = tf_tokenizer_special_id (g->tok, TF_SPECIAL_USER);
  for (int n = 0; n < s->max_tokens; n++)
    {
      if (!check_abort (g, error))
        return FALSE;
      TfTokenEvent ev;
      int32_t id = sample_token (g, s, &ev);
      if (id == eos || id == user)
        {
          /* the reply ends; <|eos|> closes it in the cache */
          return feed_tokens (g, 0, &eos, 1, NULL, error);
        }
      if (id == boi && live != NULL)
        {
          const int values = tf_config_image_values (c);
          g_autofree float *pixels = g_new (float, values);
          const gboolean guided = s->cfg != 1.0;
          /* <|boi|>, the picture, <|eoi|> and the <|eos|> that may close the reply */
          const int need = tf_config_n_patches (c) + 3;
          if ((g->n_cached[0] + need > L && !chat_room_mid_reply (g, live, need, error)) ||
              !feed_tokens (g, 0, &boi, 1, NULL, error) ||
              !check_room (g, 0, tf_config_n_patches (c) + 2, error) ||
              (guided && !feed_unconditional (g, s->negative, error)))
            return FALSE;
          if (cb != NULL && cb->image_begin != NULL)
            cb->image_begin (cb->user_data);
          /* a picture the model draws in a reply starts from noise */
          TfGenerateSettings from_noise = *s;
          from_noise.init_image = NULL;
          if (!denoise (g, &from_noise, guided, cb, pixels, error))
            return FALSE;
          /* the clean image replaces the noise: its keys and values at t = 0 */
          const int row = 0;
          if (!feed_image (g, &row, 1, pixels, 0, TRUE, NULL, error) ||
              !feed_tokens (g, 0, &eoi, 1, g->logits, error))
            return FALSE;
          if (cb != NULL && cb->image_end != NULL)
            cb->image_end (pixels, c->image_size, c->image_channels, cb->user_data);
          g_free (live->drawn);
          live->drawn = g_steal_pointer (&pixels);
          continue;
        }
      /* A chat's reply makes room when the context is full, or ends there,
       * closed. */
      if (live != NULL && g->n_cached[0] + 2 > L)
        {
          if (!chat_room_mid_reply (g, live, 2, error))
            return FALSE;
          if (g->n_cached[0] + 2 > L)
            return feed_tokens (g, 0, &eos, 1, NULL, error);
        }
      /* Other special tokens go into the cache but are not text to show. */
      const gboolean special = id >= tf_tokenizer_vocab_size (g->tok) - TF_N_SPECIAL;
      if (!special && cb != NULL && cb->token != NULL)
        cb->token (&ev, cb->user_data);
      if (!special)
        g_string_append_len (reply, ev.text, ev.text_len);
      if (!feed_tokens (g, 0, &id, 1, g->logits, error))
        return FALSE;
      if (live != NULL)
        g_array_append_val (live->reply, id);
    }
  /* Cut at max_tokens: close the reply, so a next turn follows a whole one. */
  return live == NULL || feed_tokens (g, 0, &eos, 1, NULL, error);
}

char *
tf_generator_caption (TfGenerator *g, const float *pixels, const TfGenerateSettings *s,
                      const TfGenerateCallbacks *cb, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  if (!tf_generate_settings_validate (s, error))
    return NULL;
  reset_rows (g, s);
  const int32_t head[] = { tf_tokenizer_special_id (g->tok, TF_SPECIAL_BOS),
                           tf_tokenizer_special_id (g->tok, TF_SPECIAL_BOI) };
  const int32_t eoi = tf_tokenizer_special_id (g->tok, TF_SPECIAL_EOI);
  const int row = 0;
  if (!feed_tokens (g, 0, head, 2, NULL, error) ||
      !feed_image (g, &row, 1, pixels, 0, TRUE, NULL, error) ||
      !feed_tokens (g, 0, &eoi, 1, g->logits, error))
    return NULL;
  g_autoptr (GString) reply = g_string_new (NULL);
  if (!decode (g, s, cb, NULL, reply, error))
    return NULL;
  return g_strdup (g_strstrip (reply->str));
}

/* ---- The chat's turns --------------------------------------------------- */

static gboolean feed_turn (TfGenerator *g, const TfGeneratorTurn *turn, gboolean first,
                           GError **error);

/* The room a new turn keeps for its reply when the earliest turns are left
 * out to make it: a picture and a sentence, or half of a small context. */
static int
chat_reserve (TfGenerator *g)
{
  const TfConfig *c = tf_model_config (g->model);
  return MIN (c->max_seq_len / 2, tf_config_n_patches (c) + 2 + 32);
}

/* The first of the chat's turns to keep so that they, the conversation's
 * <|bos|> and @need more positions fit in the context, leaving out the
 * earliest whole exchanges (a message and the reply to it): the number of
 * turns when only @need fits, -1 when not even that. */
static int
chat_first_kept (TfGenerator *g, int need)
{
  const int L = tf_model_config (g->model)->max_seq_len;
  GArray *turns = g->chat_turns;
  int held = 0, first = 0;

  for (guint i = 0; i < turns->len; i++)
    held += g_array_index (turns, ChatTurn, i).positions;
  while (first < (int) turns->len && 1 + held + need > L)
    {
      held -= g_array_index (turns, ChatTurn, first).positions;
      first++;
      while (first < (int) turns->len && !g_array_index (turns, ChatTurn, first).from_user)
        {
          held -= g_array_index (turns, ChatTurn, first).positions;
          first++;
        }
    }
  return 1 + held + need <= L ? first : -1;
}

/* The first turn to keep for @need more positions and @reserve for a
 * reply, unless keeping the reserve would leave out every turn: then the
 * latest that fit with @need alone (a reply cut short, rather than one
 * that does not know what it answers). -1 when @need cannot fit at all. */
static int
chat_choose_first (TfGenerator *g, int need, int reserve)
{
  const int len = (int) g->chat_turns->len;
  int first = chat_first_kept (g, need + reserve);
  if (first < 0 || (first == len && len > 0))
    {
      const int without = chat_first_kept (g, need);
      if (without >= 0)
        first = without;
    }
  return first;
}

/* Puts the chat's turns from @first on back into row 0, forgetting those
 * before it. On failure the row holds none of them and the next turn puts
 * them back first. */
static gboolean
chat_refeed (TfGenerator *g, int first, GError **error)
{
  g->n_cached[0] = 0;
  g->chat_live = FALSE;
  g->chat_forgotten += first;
  g_array_remove_range (g->chat_turns, 0, first);
  for (guint i = 0; i < g->chat_turns->len; i++)
    {
      ChatTurn *t = &g_array_index (g->chat_turns, ChatTurn, i);
      const TfGeneratorTurn turn = { t->from_user, t->text, t->image };
      const int before = g->n_cached[0];
      if (!check_abort (g, error) || !feed_turn (g, &turn, before == 0, error))
        {
          g->n_cached[0] = 0;
          return FALSE;
        }
      t->positions = g->n_cached[0] - before - (before == 0);
    }
  g->chat_live = TRUE;
  return TRUE;
}

static void
chat_push (TfGenerator *g, gboolean from_user, const char *text, float *image, int positions)
{
  ChatTurn turn = { from_user, g_strdup (text != NULL ? text : ""), image, positions };
  g_array_append_val (g->chat_turns, turn);
}

void
tf_generator_chat_reset (TfGenerator *g)
{
  g->n_cached[0] = g->n_cached[1] = 0;
  g_array_set_size (g->chat_turns, 0);
  g->chat_forgotten = 0;
  g->chat_live = TRUE;
}

int
tf_generator_chat_forgotten (TfGenerator *g)
{
  return g->chat_forgotten;
}

char *
tf_generator_chat (TfGenerator *g, const char *user_text, const float *user_image,
                   const TfGenerateSettings *s, const TfGenerateCallbacks *cb, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  if (!tf_generate_settings_validate (s, error))
    return NULL;
  const TfConfig *c = tf_model_config (g->model);
  g_atomic_int_set (&g->abort, 0);

  g_autoptr (GArray) head = g_array_new (FALSE, FALSE, sizeof (int32_t));
  append_special (g, head, TF_SPECIAL_USER);
  if (user_image != NULL)
    append_special (g, head, TF_SPECIAL_BOI);
  g_autoptr (GArray) tail = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (!encode_append (g, "message", user_text, tail, error))
    return NULL;
  if (user_image != NULL)
    {
      int32_t eoi = tf_tokenizer_special_id (g->tok, TF_SPECIAL_EOI);
      g_array_prepend_val (tail, eoi);
    }
  append_special (g, tail, TF_SPECIAL_ASSISTANT);

  /* Room for the message and a reply: the earliest exchanges make it when
   * they must (and the turns go back into the row when other work used it). */
  const int message = (int) (head->len + tail->len) +
                      (user_image != NULL ? tf_config_n_patches (c) : 0);
  if (!g->chat_live || g->n_cached[0] + message + chat_reserve (g) > c->max_seq_len)
    {
      const int first = chat_choose_first (g, message, chat_reserve (g));
      if ((!g->chat_live || first > 0) && !chat_refeed (g, MAX (first, 0), error))
        return NULL;
    }

  const int before = g->n_cached[0];
  /* Each turn its own stream: the seed mixed with the turn's position. */
  tf_rng_seed (&g->rng, s->seed ^ ((uint64_t) before * 0x9e3779b97f4a7c15ull));
  g_autoptr (GString) reply = g_string_new (NULL);
  g_autoptr (GArray) reply_ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  ChatLive live = { head, tail, user_image, message, reply_ids, before + (before == 0), NULL };
  gboolean ok = chat_feed_message (g, &live, g->logits, error) &&
                decode (g, s, cb, &live, reply, error);
  if (!ok)
    {
      /* the conversation is as it was (but for the exchanges that made room
       * for the reply): later positions are overwritten */
      if (g->chat_live)
        g->n_cached[0] = g->chat_turns->len > 0 ? live.start : 0;
      g_free (live.drawn);
      return NULL;
    }
  chat_push (g, TRUE, user_text,
             user_image != NULL ? g_memdup2 (user_image, sizeof (float) * tf_config_image_values (c))
                                : NULL,
             message);
  chat_push (g, FALSE, reply->str, live.drawn, g->n_cached[0] - live.start - message);
  return g_strdup (g_strstrip (reply->str));
}

/* ---- Reference and test hooks -------------------------------------------- */

gboolean
tf_generator_predict (TfGenerator *g, const int32_t *const *prefixes,
                      const int *prefix_lengths, int n_rows, const float *x_t, int t,
                      float *pred, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  const TfConfig *c = tf_model_config (g->model);
  g_autofree TfSegment *segs = g_new0 (TfSegment, 2 * n_rows);
  g_autofree TfSequence *seqs = g_new0 (TfSequence, n_rows);
  for (int r = 0; r < n_rows; r++)
    {
      segs[2 * r] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .tokens = prefixes[r],
                                  .n_tokens = prefix_lengths[r] };
      segs[2 * r + 1] = (TfSegment) { .kind = TF_SEGMENT_IMAGE, .pixels = x_t, .t = t,
                                      .noised = TRUE };
      seqs[r] = (TfSequence) { &segs[2 * r], 2 };
    }
  TfBatch batch = { seqs, n_rows, 0.0f };
  const TfGemmBackend caller = tf_gemm_use (g->backend);
  TfGemmPack *caller_pack = tf_gemm_pack_use (g->pack);
  const gboolean ok = tf_model_forward (g->model, g->acts, &batch, NULL, error);
  tf_gemm_pack_use (caller_pack);
  tf_gemm_use (caller);
  if (!ok)
    return FALSE;
  for (int r = 0; r < n_rows; r++)
    tf_activations_image_pred (g->acts, r, pred + (size_t) r * tf_config_image_values (c));
  return TRUE;
}

gboolean
tf_generator_cached_predict (TfGenerator *g, const int32_t *const *prefixes,
                             const int *prefix_lengths, int n_rows, const float *x_t, int t,
                             float *pred, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  g_return_val_if_fail (n_rows >= 1 && n_rows <= N_ROWS, FALSE);
  const int rows[N_ROWS] = { 0, 1 };
  g->chat_live = FALSE;
  for (int r = 0; r < n_rows; r++)
    {
      g->n_cached[r] = 0;
      if (!feed_tokens (g, r, prefixes[r], prefix_lengths[r], NULL, error))
        return FALSE;
    }
  return feed_image (g, rows, n_rows, x_t, t, FALSE, pred, error);
}

gboolean
tf_generator_prefill (TfGenerator *g, const int32_t *tokens, int n, gboolean reset,
                      float *logits, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  if (reset)
    g->n_cached[0] = 0;
  g->chat_live = FALSE;
  return feed_tokens (g, 0, tokens, n, logits, error);
}

gboolean
tf_generator_cached_logits (TfGenerator *g, const int32_t *tokens, int n, int prefill,
                            float *logits, GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  const TfConfig *c = tf_model_config (g->model);
  const int d = c->d_model, V = c->vocab_size;
  g->n_cached[0] = 0;
  g->chat_live = FALSE;
  if (prefill > 0)
    {
      if (!feed_tokens (g, 0, tokens, prefill, NULL, error))
        return FALSE;
      tf_linear_forward (logits, g->xn, g->w.lm_head, NULL, prefill, d, V);
    }
  for (int i = prefill; i < n; i++)
    if (!feed_tokens (g, 0, tokens + i, 1, logits + (size_t) i * V, error))
      return FALSE;
  return TRUE;
}

/* ---- Continuing a conversation ------------------------------------------ */

/* Appends one turn to row 0 as a live chat leaves it in the cache. */
static gboolean
feed_turn (TfGenerator *g, const TfGeneratorTurn *turn, gboolean first, GError **error)
{
  g_autoptr (GArray) head = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (first)
    append_special (g, head, TF_SPECIAL_BOS);
  if (turn->from_user)
    append_special (g, head, TF_SPECIAL_USER);
  if (turn->image != NULL)
    append_special (g, head, TF_SPECIAL_BOI);
  g_autoptr (GArray) tail = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (turn->image != NULL)
    append_special (g, tail, TF_SPECIAL_EOI);
  if (!encode_append (g, "message", turn->text, tail, error))
    return FALSE;
  append_special (g, tail, turn->from_user ? TF_SPECIAL_ASSISTANT : TF_SPECIAL_EOS);

  const int row = 0;
  return feed_tokens (g, 0, (int32_t *) head->data, head->len, NULL, error) &&
         (turn->image == NULL || feed_image (g, &row, 1, turn->image, 0, TRUE, NULL, error)) &&
         feed_tokens (g, 0, (int32_t *) tail->data, tail->len, NULL, error);
}

/* The positions @turn takes in a conversation after its first turn. */
static gboolean
turn_positions (TfGenerator *g, const TfGeneratorTurn *turn, int *positions, GError **error)
{
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  if (!encode_append (g, "message", turn->text, ids, error))
    return FALSE;
  *positions = (turn->from_user ? 1 : 0) + (int) ids->len + 1 +
               (turn->image != NULL ? 2 + tf_config_n_patches (tf_model_config (g->model)) : 0);
  return TRUE;
}

gboolean
tf_generator_chat_restore (TfGenerator *g, const TfGeneratorTurn *turns, int n_turns,
                           GError **error)
{
  g_auto (GeneratorCall) call = generator_call (g);
  g_return_val_if_fail (n_turns == 0 || turns != NULL, FALSE);
  const int values = tf_config_image_values (tf_model_config (g->model));
  tf_generator_chat_reset (g);
  g_atomic_int_set (&g->abort, 0);
  for (int i = 0; i < n_turns; i++)
    {
      const gboolean answered = i + 1 < n_turns && !turns[i + 1].from_user;
      int positions;
      if (turns[i].from_user && !answered)
        continue;
      if (!turns[i].from_user && (i == 0 || !turns[i - 1].from_user))
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "turn %d is a reply with no message of the user before it", i + 1);
          tf_generator_chat_reset (g);
          return FALSE;
        }
      if (!turn_positions (g, &turns[i], &positions, error))
        {
          tf_generator_chat_reset (g);
          return FALSE;
        }
      chat_push (g, turns[i].from_user, turns[i].text,
                 turns[i].image != NULL ? g_memdup2 (turns[i].image, sizeof (float) * values) : NULL,
                 positions);
    }
  /* The latest exchanges that fit, with room for a next turn if they can. */
  if (!chat_refeed (g, MAX (chat_choose_first (g, 0, chat_reserve (g)), 0), error))
    {
      tf_generator_chat_reset (g);
      return FALSE;
    }
  return TRUE;
}
