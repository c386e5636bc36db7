/* tf-model.c: parameters, checkpoints, and the Transfusion forward/backward.
 *
 * A batch is B rows of L positions (the longest row; shorter rows are padded
 * at the end). Each position is a text token, an image patch or padding. The
 * forward keeps every activation the backward needs, as in llm.c. */
#include "config.h"
#include "transfusion.h"
#include "tf-diffusion.h"
#include "tf-layers.h"
#include "tf-rng.h"
#include "tf-unet.h"
#include "tf-conv-patch.h"

#include <math.h>
#include <string.h>

/* ---- Parameter layout ------------------------------------------------- */

/* Offsets (in floats) of each tensor; the same offsets index the gradient
 * buffer. Inside a layer wq, wk, wv are adjacent (one [3d, d] product) and
 * so are w1, w3 (one [2h, d] product). */
typedef struct {
  size_t attn_norm, wqkv, wo, mlp_norm, w13, w2;
  size_t adaln_w, adaln_b;   /* adaLN-Zero only: [6d, d], [6d] */
} TfLayerOffsets;

typedef struct {
  size_t tok_emb, patch_in_w, patch_in_b, patch_pos;
  size_t time0_w, time0_b, time2_w, time2_b;
  size_t norm, lm_head, patch_out_w, patch_out_b;
  size_t final_adaln_w, final_adaln_b;   /* adaLN-Zero only: [2d, d], [2d] */
  TfLayerOffsets *layers;
  TfUnetOffsets unet;        /* image_encoder = unet only (then no patch_in, patch_out) */
  TfConvPatchOffsets conv;   /* image_encoder = conv only (then no patch_in, patch_out) */
} TfOffsets;

struct _TfModel {
  TfConfig     config;
  TfParamInfo *tensors;
  int          n_tensors;
  GHashTable  *by_name;     /* name → TfParamInfo* */
  TfOffsets    off;
  size_t       n_params;
  float       *params;
  float       *grads;
  double      *alpha_bar;   /* T + 1 values */
  guint64      weights_version;   /* counts tf_model_params() and the model's own writes */
};

static void
add_tensor (TfModel *m, const char *name, int rows, int cols,
            gboolean is_matrix, size_t *cursor, size_t *offset_out)
{
  TfParamInfo *info = &m->tensors[m->n_tensors++];
  info->name = g_strdup (name);   /* freed by tf_model_free() */
  info->n_dims = cols > 0 ? 2 : 1;
  info->shape[0] = rows;
  info->shape[1] = cols > 0 ? cols : 0;
  info->size = (size_t) rows * (cols > 0 ? (size_t) cols : 1);
  info->offset = *cursor;
  info->is_matrix = is_matrix;
  *cursor += info->size;
  if (offset_out != NULL)
    *offset_out = info->offset;
}

static void
compute_alpha_bar (TfModel *m)
{
  /* Cosine schedule (Nichol & Dhariwal 2021): f(t) = cos²(((t/T + s)/(1 + s))·π/2),
   * β_t = min(1 − f(t)/f(t−1), 0.999), ᾱ_t = Π (1 − β). */
  const int T = m->config.diffusion_steps;
  const double s = 0.008;
  m->alpha_bar = g_new (double, T + 1);
  m->alpha_bar[0] = 1.0;
  double f_prev = cos ((s / (1.0 + s)) * G_PI / 2);
  f_prev *= f_prev;
  for (int t = 1; t <= T; t++)
    {
      double f = cos ((((double) t / T + s) / (1.0 + s)) * G_PI / 2);
      f *= f;
      double beta = MIN (1.0 - f / f_prev, 0.999);
      m->alpha_bar[t] = m->alpha_bar[t - 1] * (1.0 - beta);
      f_prev = f;
    }
}

/* A residual block's tensors, named after @prefix ("unet.down.0.block.1"). */
static void
unet_block_tensors (TfModel *m, const char *prefix, size_t *cur, TfUnetBlockOffsets *bo)
{
  const int C = m->config.unet_channels, d = m->config.d_model;
  char name[96];
#define BLOCK_TENSOR(suffix, rows, cols, mat, field)                      \
  g_snprintf (name, sizeof name, "%s." suffix, prefix);                 \
  add_tensor (m, name, rows, cols, mat, cur, field);
  BLOCK_TENSOR ("conv1_norm.weight", C, 0, FALSE, &bo->norm1)
  BLOCK_TENSOR ("conv1.weight", C, 9 * C, TRUE, &bo->conv1_w)
  BLOCK_TENSOR ("conv1.bias", C, 0, FALSE, &bo->conv1_b)
  BLOCK_TENSOR ("time.weight", C, d, TRUE, &bo->time_w)
  BLOCK_TENSOR ("time.bias", C, 0, FALSE, &bo->time_b)
  BLOCK_TENSOR ("conv2_norm.weight", C, 0, FALSE, &bo->norm2)
  BLOCK_TENSOR ("conv2.weight", C, 9 * C, TRUE, &bo->conv2_w)
  BLOCK_TENSOR ("conv2.bias", C, 0, FALSE, &bo->conv2_b)
#undef BLOCK_TENSOR
}

/* The U-Net's tensors: the encoder where patch_in stands (@encoder), the
 * decoder where patch_out does. Convolution weights are [Cout, 3·3·Cin]
 * with columns (ky, kx, cin), as tf_conv2d_forward() takes them. */
static void
unet_tensors (TfModel *m, size_t *cur, gboolean encoder)
{
  const TfConfig *c = &m->config;
  TfUnetOffsets *uo = &m->off.unet;
  const int C = c->unet_channels, d = c->d_model, Ci = c->image_channels;
  const int levels = tf_config_unet_levels (c), blocks = c->unet_blocks;
  char name[96];
  if (encoder)
    {
      add_tensor (m, "unet.in.weight", C, 9 * Ci, TRUE, cur, &uo->in_w);
      add_tensor (m, "unet.in.bias", C, 0, FALSE, cur, &uo->in_b);
      for (int l = 0; l < levels; l++)
        {
          for (int b = 0; b < blocks; b++)
            {
              g_snprintf (name, sizeof name, "unet.down.%d.block.%d", l, b);
              unet_block_tensors (m, name, cur, &uo->down[l * blocks + b]);
            }
          g_snprintf (name, sizeof name, "unet.down.%d.conv.weight", l);
          add_tensor (m, name, C, 9 * C, TRUE, cur, &uo->down_w[l]);
          g_snprintf (name, sizeof name, "unet.down.%d.conv.bias", l);
          add_tensor (m, name, C, 0, FALSE, cur, &uo->down_b[l]);
        }
      add_tensor (m, "unet.proj_in.weight", d, C, TRUE, cur, &uo->proj_in_w);
      add_tensor (m, "unet.proj_in.bias", d, 0, FALSE, cur, &uo->proj_in_b);
      return;
    }
  add_tensor (m, "unet.proj_out.weight", C, d, TRUE, cur, &uo->proj_out_w);
  add_tensor (m, "unet.proj_out.bias", C, 0, FALSE, cur, &uo->proj_out_b);
  for (int l = levels - 1; l >= 0; l--)
    {
      g_snprintf (name, sizeof name, "unet.up.%d.conv.weight", l);
      add_tensor (m, name, C, 9 * C, TRUE, cur, &uo->up_w[l]);
      g_snprintf (name, sizeof name, "unet.up.%d.conv.bias", l);
      add_tensor (m, name, C, 0, FALSE, cur, &uo->up_b[l]);
      for (int b = 0; b < blocks; b++)
        {
          g_snprintf (name, sizeof name, "unet.up.%d.block.%d", l, b);
          unet_block_tensors (m, name, cur, &uo->up[l * blocks + b]);
        }
    }
  add_tensor (m, "unet.out_norm.weight", C, 0, FALSE, cur, &uo->out_norm);
  add_tensor (m, "unet.out.weight", Ci, 9 * C, TRUE, cur, &uo->out_w);
  add_tensor (m, "unet.out.bias", Ci, 0, FALSE, cur, &uo->out_b);
}

/* The conv encoder's tensors: the stem and the patches' map in where
 * patch_in stands (@encoder), the map out and the head where patch_out does.
 * Convolution weights are [Cout, 3·3·Cin] as the U-Net's. */
static void
conv_patch_tensors (TfModel *m, size_t *cur, gboolean encoder)
{
  const TfConfig *c = &m->config;
  TfConvPatchOffsets *co = &m->off.conv;
  const int C = c->conv_channels, d = c->d_model, Ci = c->image_channels;
  const int cell = c->patch_size * c->patch_size * C;
  if (encoder)
    {
      add_tensor (m, "conv.stem.weight", C, 9 * Ci, TRUE, cur, &co->stem_w);
      add_tensor (m, "conv.stem.bias", C, 0, FALSE, cur, &co->stem_b);
      add_tensor (m, "conv.in.weight", d, cell, TRUE, cur, &co->in_w);
      add_tensor (m, "conv.in.bias", d, 0, FALSE, cur, &co->in_b);
      return;
    }
  add_tensor (m, "conv.out.weight", cell, d, TRUE, cur, &co->out_w);
  add_tensor (m, "conv.out.bias", cell, 0, FALSE, cur, &co->out_b);
  add_tensor (m, "conv.head.weight", Ci, 9 * C, TRUE, cur, &co->head_w);
  add_tensor (m, "conv.head.bias", Ci, 0, FALSE, cur, &co->head_b);
}

/* Builds the tensor table without allocating parameters, so a loader can
 * check a file against it before committing memory. */
static TfModel *
model_plan (const TfConfig *config, const char *what, GError **error)
{
  if (!tf_config_validate (config, what, error))
    return NULL;

  TfModel *m = g_new0 (TfModel, 1);
  m->config = *config;
  const TfConfig *c = &m->config;
  const int d = c->d_model, h = c->mlp_hidden, V = c->vocab_size;
  const int pd = tf_config_patch_dim (c), np = tf_config_n_patches (c);

  const gboolean adaln = c->time_conditioning == TF_TIME_ADALN_ZERO;
  const gboolean unet = c->image_encoder == TF_IMAGE_ENCODER_UNET;
  const gboolean conv = c->image_encoder == TF_IMAGE_ENCODER_CONV;
  const int levels = unet ? tf_config_unet_levels (c) : 0, blocks = c->unet_blocks;
  m->tensors = g_new0 (TfParamInfo, 14 + 11 * c->n_layers +
                                    (unet ? 9 + levels * (4 + 16 * blocks) : 0) + (conv ? 4 : 0));
  m->off.layers = g_new0 (TfLayerOffsets, c->n_layers);
  size_t cur = 0;
  TfOffsets *o = &m->off;
  TfUnetOffsets *uo = &o->unet;
  if (unet)
    {
      uo->down = g_new0 (TfUnetBlockOffsets, (size_t) levels * MAX (blocks, 1));
      uo->up = g_new0 (TfUnetBlockOffsets, (size_t) levels * MAX (blocks, 1));
    }

  add_tensor (m, "tok_emb.weight", V, d, TRUE, &cur, &o->tok_emb);
  if (unet)
    unet_tensors (m, &cur, TRUE);
  else if (conv)
    conv_patch_tensors (m, &cur, TRUE);
  else
    {
      add_tensor (m, "patch_in.weight", d, pd, TRUE, &cur, &o->patch_in_w);
      add_tensor (m, "patch_in.bias", d, 0, FALSE, &cur, &o->patch_in_b);
    }
  add_tensor (m, "patch_pos", np, d, TRUE, &cur, &o->patch_pos);
  add_tensor (m, "time_mlp.0.weight", d, d, TRUE, &cur, &o->time0_w);
  add_tensor (m, "time_mlp.0.bias", d, 0, FALSE, &cur, &o->time0_b);
  add_tensor (m, "time_mlp.2.weight", d, d, TRUE, &cur, &o->time2_w);
  add_tensor (m, "time_mlp.2.bias", d, 0, FALSE, &cur, &o->time2_b);
  for (int l = 0; l < c->n_layers; l++)
    {
      TfLayerOffsets *lo = &o->layers[l];
      char name[64];
#define LAYER_TENSOR(suffix, rows, cols, mat, field)                         \
      g_snprintf (name, sizeof name, "layers.%d." suffix, l);               \
      add_tensor (m, name, rows, cols, mat, &cur, field);
      LAYER_TENSOR ("attn_norm.weight", d, 0, FALSE, &lo->attn_norm)
      LAYER_TENSOR ("attn.wq", d, d, TRUE, &lo->wqkv)
      LAYER_TENSOR ("attn.wk", d, d, TRUE, NULL)
      LAYER_TENSOR ("attn.wv", d, d, TRUE, NULL)
      LAYER_TENSOR ("attn.wo", d, d, TRUE, &lo->wo)
      LAYER_TENSOR ("mlp_norm.weight", d, 0, FALSE, &lo->mlp_norm)
      LAYER_TENSOR ("mlp.w1", h, d, TRUE, &lo->w13)
      LAYER_TENSOR ("mlp.w3", h, d, TRUE, NULL)
      LAYER_TENSOR ("mlp.w2", d, h, TRUE, &lo->w2)
      /* adaLN-Zero: shift, scale and gate of both sublayers, from silu(temb) */
      if (adaln)
        {
          LAYER_TENSOR ("adaln.weight", 6 * d, d, TRUE, &lo->adaln_w)
          LAYER_TENSOR ("adaln.bias", 6 * d, 0, FALSE, &lo->adaln_b)
        }
#undef LAYER_TENSOR
    }
  add_tensor (m, "norm.weight", d, 0, FALSE, &cur, &o->norm);
  add_tensor (m, "lm_head.weight", V, d, TRUE, &cur, &o->lm_head);
  if (unet)
    unet_tensors (m, &cur, FALSE);
  else if (conv)
    conv_patch_tensors (m, &cur, FALSE);
  else
    {
      add_tensor (m, "patch_out.weight", pd, d, TRUE, &cur, &o->patch_out_w);
      add_tensor (m, "patch_out.bias", pd, 0, FALSE, &cur, &o->patch_out_b);
    }
  if (adaln)
    {
      /* shift and scale of the final norm at image positions */
      add_tensor (m, "final_adaln.weight", 2 * d, d, TRUE, &cur, &o->final_adaln_w);
      add_tensor (m, "final_adaln.bias", 2 * d, 0, FALSE, &cur, &o->final_adaln_b);
    }
  m->n_params = cur;

  m->by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, NULL);
  for (int i = 0; i < m->n_tensors; i++)
    g_hash_table_insert (m->by_name, (gpointer) m->tensors[i].name, &m->tensors[i]);

  compute_alpha_bar (m);
  return m;
}

TfModel *
tf_model_new (const TfConfig *config, GError **error)
{
  TfModel *m = model_plan (config, "config", error);
  if (m == NULL)
    return NULL;
  m->params = g_try_new0 (float, m->n_params);
  if (m->params == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_CONFIG,
                   "config: %zu parameters do not fit in memory", m->n_params);
      tf_model_free (m);
      return NULL;
    }
  return m;
}

gboolean
tf_config_count_params (const TfConfig *config, size_t *n_params, const char *what,
                        GError **error)
{
  TfModel *m = model_plan (config, what, error);
  if (m == NULL)
    return FALSE;
  *n_params = m->n_params;
  tf_model_free (m);
  return TRUE;
}

void
tf_model_free (TfModel *m)
{
  if (m == NULL)
    return;
  for (int i = 0; i < m->n_tensors; i++)
    g_free ((char *) m->tensors[i].name);
  g_free (m->tensors);
  g_free (m->off.layers);
  g_free (m->off.unet.down);
  g_free (m->off.unet.up);
  if (m->by_name)
    g_hash_table_unref (m->by_name);
  g_free (m->params);
  g_free (m->grads);
  g_free (m->alpha_bar);
  g_free (m);
}

const TfConfig *tf_model_config (const TfModel *m) { return &m->config; }
size_t tf_model_n_params (const TfModel *m) { return m->n_params; }
int tf_model_n_tensors (const TfModel *m) { return m->n_tensors; }
const double *tf_model_alpha_bar (const TfModel *m) { return m->alpha_bar; }
const float *tf_model_weights (const TfModel *m) { return m->params; }
guint64 tf_model_weights_version (const TfModel *m) { return m->weights_version; }

float *
tf_model_params (TfModel *m)
{
  m->weights_version++;   /* the caller may change them */
  return m->params;
}

const TfUnetOffsets *
tf_model_unet_offsets (const TfModel *m)
{
  return m->config.image_encoder == TF_IMAGE_ENCODER_UNET ? &m->off.unet : NULL;
}

const TfConvPatchOffsets *
tf_model_conv_patch_offsets (const TfModel *m)
{
  return m->config.image_encoder == TF_IMAGE_ENCODER_CONV ? &m->off.conv : NULL;
}

const TfParamInfo *
tf_model_tensor (const TfModel *m, int index)
{
  g_return_val_if_fail (index >= 0 && index < m->n_tensors, NULL);
  return &m->tensors[index];
}

const TfParamInfo *
tf_model_find_tensor (const TfModel *m, const char *name)
{
  return g_hash_table_lookup (m->by_name, name);
}

float *
tf_model_grads (TfModel *m)
{
  if (m->grads == NULL)
    m->grads = g_new0 (float, m->n_params);
  return m->grads;
}

void
tf_model_zero_grads (TfModel *m)
{
  memset (tf_model_grads (m), 0, sizeof (float) * m->n_params);
}

void
tf_model_init_random (TfModel *m, uint64_t seed)
{
  TfRng rng;
  tf_rng_seed (&rng, seed);
  m->weights_version++;
  const double out_scale = 1.0 / sqrt (2.0 * m->config.n_layers);
  for (int i = 0; i < m->n_tensors; i++)
    {
      const TfParamInfo *t = &m->tensors[i];
      float *p = m->params + t->offset;
      if (!t->is_matrix)
        {
          /* norms start at 1, biases at 0 */
          float v = g_str_has_suffix (t->name, "norm.weight") ? 1.0f : 0.0f;
          for (size_t k = 0; k < t->size; k++)
            p[k] = v;
          continue;
        }
      if (g_str_has_suffix (t->name, "adaln.weight"))
        {
          /* adaLN-Zero: every image sublayer starts as the identity */
          memset (p, 0, sizeof (float) * t->size);
          continue;
        }
      /* The image decoders' final convolutions (the U-Net's, the conv
       * encoder's head) start at zero, so that the prediction starts at 0,
       * and so does the last convolution of each U-Net block, so that every
       * block starts as the identity. */
      const gboolean unet_other = g_str_has_prefix (t->name, "unet.") &&
                                  g_strcmp0 (t->name, "unet.proj_in.weight") != 0;
      if (g_strcmp0 (t->name, "unet.out.weight") == 0 ||
          g_strcmp0 (t->name, "conv.head.weight") == 0 ||
          (unet_other && g_str_has_suffix (t->name, "conv2.weight")))
        {
          memset (p, 0, sizeof (float) * t->size);
          continue;
        }
      /* The U-Net's other tensors except proj_in (below) and the conv
       * encoder's stem: normal with a fan-in scale. */
      if (unet_other || g_strcmp0 (t->name, "conv.stem.weight") == 0)
        {
          const double scale = 1.0 / sqrt ((double) t->shape[1]);
          for (size_t k = 0; k < t->size; k++)
            p[k] = (float) (scale * tf_rng_normal (&rng));
          continue;
        }
      /* Everything that writes into the transformer's residual stream starts
       * at its scale, the U-Net's tokens (unet.proj_in) and the conv
       * encoder's (conv.in) as linear patches' do: with a fan-in scale the
       * U-Net's entered about 7× larger than those and 50× larger than text
       * embeddings, so that what attention brings from the caption was small
       * beside them. The conv encoder's map out (conv.out) starts at this
       * scale too, as patch_out does. */
      double std = 0.02;
      if (g_str_has_suffix (t->name, "attn.wo") || g_str_has_suffix (t->name, "mlp.w2"))
        std *= out_scale;   /* residual projections, as in GPT-2 */
      for (size_t k = 0; k < t->size; k++)
        p[k] = (float) (std * tf_rng_normal (&rng));
    }
}

/* ---- Checkpoints ------------------------------------------------------ */

#define TF_FORMAT_NAME "transfusion"

static char *
shape_string (int n_dims, const int64_t *shape)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < n_dims; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

TfModel *
tf_model_load (const char *path, GError **error)
{
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, error);
  return st != NULL ? tf_model_load_from (st, error) : NULL;
}

TfModel *
tf_model_load_from (TfSafetensors *st, GError **error)
{
  const char *path = tf_safetensors_display_name (st);

  const char *format = tf_safetensors_metadata (st, "format");
  if (g_strcmp0 (format, TF_FORMAT_NAME) != 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: __metadata__ 'format' is %s%s%s, expected '" TF_FORMAT_NAME "'",
                   path, format ? "'" : "", format ? format : "missing", format ? "'" : "");
      return NULL;
    }
  const char *config_json = tf_safetensors_metadata (st, "config");
  if (config_json == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: __metadata__ has no 'config'", path);
      return NULL;
    }
  TfConfig config;
  if (!tf_config_from_json (&config, config_json, path, error))
    return NULL;

  g_autoptr (TfModel) m = model_plan (&config, path, error);
  if (m == NULL)
    return NULL;

  /* Check every tensor before allocating: the file then holds at least two
   * bytes per parameter, so memory stays proportional to the file. */
  for (int i = 0; i < m->n_tensors; i++)
    {
      const TfParamInfo *t = &m->tensors[i];
      const TfTensorInfo *f = tf_safetensors_find (st, t->name);
      if (f == NULL)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: tensor '%s' is missing",
                       path, t->name);
          return NULL;
        }
      int64_t want[2] = { t->shape[0], t->shape[1] };
      gboolean same = f->n_dims == t->n_dims;
      for (int k = 0; same && k < t->n_dims; k++)
        same = f->shape[k] == want[k];
      if (!same)
        {
          g_autofree char *got = shape_string (f->n_dims, f->shape);
          g_autofree char *exp = shape_string (t->n_dims, want);
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: tensor '%s' has shape %s, expected %s", path, t->name, got, exp);
          return NULL;
        }
      if (f->dtype != TF_DTYPE_F32 && f->dtype != TF_DTYPE_F16 &&
          f->dtype != TF_DTYPE_BF16 && f->dtype != TF_DTYPE_F64)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 or F64",
                       path, t->name, tf_dtype_name (f->dtype));
          return NULL;
        }
    }
  if (tf_safetensors_n_tensors (st) != m->n_tensors)
    for (int i = 0; i < tf_safetensors_n_tensors (st); i++)
      {
        const TfTensorInfo *f = tf_safetensors_tensor (st, i);
        if (tf_model_find_tensor (m, f->name) == NULL)
          {
            g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                         "%s: tensor '%s' is not part of this model", path, f->name);
            return NULL;
          }
      }

  m->params = g_try_new (float, m->n_params);
  if (m->params == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: not enough memory for %zu parameters",
                   path, m->n_params);
      return NULL;
    }
  for (int i = 0; i < m->n_tensors; i++)
    {
      const TfParamInfo *t = &m->tensors[i];
      const TfTensorInfo *f = tf_safetensors_find (st, t->name);
      if (!tf_safetensors_read_f32 (st, f, m->params + t->offset, t->size, error))
        return NULL;
      for (size_t k = 0; k < t->size; k++)
        if (!isfinite (m->params[t->offset + k]))
          {
            g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                         "%s: tensor '%s' holds a non-finite value at element %zu",
                         path, t->name, k);
            return NULL;
          }
    }
  return g_steal_pointer (&m);
}

gboolean
tf_model_save (TfModel *m, const char *path, TfDtype dtype,
               const char *const *meta_keys, const char *const *meta_values, int n_meta,
               GError **error)
{
  return tf_model_save_weights (m, m->params, path, dtype, meta_keys, meta_values, n_meta, error);
}

gboolean
tf_model_save_weights (TfModel *m, const float *weights, const char *path, TfDtype dtype,
                       const char *const *meta_keys, const char *const *meta_values, int n_meta,
                       GError **error)
{
  if (dtype != TF_DTYPE_F32 && dtype != TF_DTYPE_F16 && dtype != TF_DTYPE_BF16)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s: weights can be saved as F32, F16 or BF16, not %s",
                   path, tf_dtype_name (dtype));
      return FALSE;
    }
  g_autofree TfTensorOut *out = g_new0 (TfTensorOut, m->n_tensors);
  for (int i = 0; i < m->n_tensors; i++)
    {
      const TfParamInfo *t = &m->tensors[i];
      out[i].name = t->name;
      out[i].dtype = dtype;
      out[i].n_dims = t->n_dims;
      out[i].shape[0] = t->shape[0];
      out[i].shape[1] = t->shape[1];
      out[i].data = weights + t->offset;
    }
  g_autofree char *config_json = tf_config_to_json (&m->config);
  g_autofree const char **keys = g_new (const char *, n_meta + 2);
  g_autofree const char **values = g_new (const char *, n_meta + 2);
  keys[0] = "format";
  values[0] = TF_FORMAT_NAME;
  keys[1] = "config";
  values[1] = config_json;
  for (int i = 0; i < n_meta; i++)
    {
      if (g_strcmp0 (meta_keys[i], "format") == 0 || g_strcmp0 (meta_keys[i], "config") == 0)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "%s: metadata key '%s' is reserved", path, meta_keys[i]);
          return FALSE;
        }
      keys[i + 2] = meta_keys[i];
      values[i + 2] = meta_values[i];
    }
  return tf_safetensors_write (path, out, m->n_tensors, keys, values, n_meta + 2, error);
}

/* ---- Activations -------------------------------------------------------- */

typedef struct {
  float *x_in;    /* [N, d] the residual stream entering the layer */
  float *rstd1;   /* [N] */
  float *xn1;     /* [N, d] */
  float *qkv;     /* [N, 3d], after RoPE */
  float *probs;   /* [B, H, L, L] */
  float *att;     /* [N, d] attention output before wo */
  float *x_mid;   /* [N, d] after the attention residual */
  float *rstd2;   /* [N] */
  float *xn2;     /* [N, d] */
  float *gu;      /* [N, 2h] gate | up */
  float *act;     /* [N, h] silu(gate)·up */
  /* adaLN-Zero only */
  float *mod;     /* [n_images, 6d] shift, scale, gate (attention), then (MLP); not owned */
  float *xm1;     /* [N, d] xn1 modulated (the input of wqkv) */
  float *ao;      /* [N, d] attention output after wo, before its gate */
  float *xm2;     /* [N, d] xn2 modulated */
  float *mo;      /* [N, d] MLP output before its gate */
} TfLayerActs;

struct _TfActivations {
  TfModel *model;
  int      n_layers;                 /* kept so freeing never touches the model */
  int      batch, seq_len;          /* shape of the last forward */
  size_t   cap_positions, cap_probs; /* what the buffers hold */

  /* per position [N] */
  int     *kind, *pos, *doc, *lo, *hi, *image, *patch_row;
  int     *pos_col;                  /* image_rope = axial only: RoPE's second position
                                      * (pos is then a patch's row position) */
  int32_t *tokens, *targets;

  /* images, in batch order; patch rows [n_patch_rows] in the same order */
  int      n_images, n_patch_rows;
  int     *image_t, *image_loss, *image_first_row;
  int     *patch_row_position;       /* patch row → position index */
  float   *patch_x;                  /* [Np, pd] patches of x_t */
  float   *patch_target;             /* [Np, pd] patches of what the head predicts (ε, v or x0) */
  double  *image_weight;             /* [n_images] Min-SNR-γ loss weight (1 without) */
  float   *time_code, *time_h1, *time_s1, *time_emb;  /* [n_images, d] */
  /* adaLN-Zero only */
  float   *time_silu;                /* [n_images, d] silu(temb) */
  float   *mods;                     /* [n_layers, n_images, 6d] */
  float   *final_mod;                /* [n_images, 2d] */
  float   *xm_patch;                 /* [Np, d] xn_patch modulated */
  int     *patch_group;              /* [Np] the image of each patch row */
  float   *d_mod, *d_final_mod, *d_time_silu, *d_gated;
  /* image_encoder = unet or conv: they take whole images, not patches */
  TfUnetActs *unet;
  TfConvPatchActs *conv;
  float   *image_x;                  /* [n_images, S, S, C] x_t of each image */
  float   *image_pred;               /* [n_images, S, S, C] the decoder's output */
  float   *d_image_pred;             /* [n_images, S, S, C] */
  float   *d_time_unet;              /* [n_images, d] temb's gradient through the U-Net */

  TfLayerActs *layers;
  float   *x_final;                  /* [N, d] */
  float   *rstd_final;               /* [N] */
  float   *xn_final;                 /* [N, d] */
  /* The LM head runs on text positions only (patches and padding have no
   * next token): they are gathered into rows [n_text]. */
  int      n_text;
  int     *text_position;            /* text row → position index */
  int32_t *text_targets;             /* [n_text] */
  float   *xn_text;                  /* [n_text, d] */
  float   *logits;                   /* [n_text, V] */
  float   *logits_full;              /* [N, V], filled on request */
  float   *ce_losses;                /* [n_text] */
  float   *xn_patch;                 /* [Np, d] xn_final at patch rows */
  float   *pred;                     /* [Np, pd] the image head's output */
  float   *pred_full;                /* [N, pd] for tf_activations_pred */

  /* backward scratch */
  float   *d_x, *d_xn, *d_qkv, *d_att, *d_gu, *d_act, *d_logits, *d_xn_text;
  float   *d_patch, *d_pred, *d_time_emb, *d_time_s1, *d_time_h1;

  TfLosses losses;
  float    lambda;
  int      n_loss_images;
};

TfActivations *
tf_activations_new (TfModel *model)
{
  TfActivations *a = g_new0 (TfActivations, 1);
  a->model = model;
  a->n_layers = model->config.n_layers;
  a->layers = g_new0 (TfLayerActs, a->n_layers);
  if (model->config.image_encoder == TF_IMAGE_ENCODER_UNET)
    a->unet = tf_unet_acts_new (&model->config);
  else if (model->config.image_encoder == TF_IMAGE_ENCODER_CONV)
    a->conv = tf_conv_patch_acts_new (&model->config);
  return a;
}

static void
activations_release (TfActivations *a)
{
  /* Each pointer left NULL: a plan that fails half-way releases, and
   * tf_activations_free() releases again. */
#define FREE(p) g_clear_pointer (&(p), g_free)
  FREE (a->kind); FREE (a->pos); FREE (a->pos_col); FREE (a->doc); FREE (a->lo); FREE (a->hi);
  FREE (a->image); FREE (a->patch_row); FREE (a->tokens); FREE (a->targets);
  FREE (a->image_t); FREE (a->image_loss); FREE (a->image_first_row);
  FREE (a->patch_row_position); FREE (a->patch_x); FREE (a->patch_target);
  FREE (a->image_weight);
  FREE (a->time_code); FREE (a->time_h1); FREE (a->time_s1); FREE (a->time_emb);
  FREE (a->time_silu); FREE (a->mods); FREE (a->final_mod); FREE (a->xm_patch);
  FREE (a->patch_group); FREE (a->d_mod); FREE (a->d_final_mod); FREE (a->d_time_silu);
  FREE (a->d_gated);
  FREE (a->image_x); FREE (a->image_pred); FREE (a->d_image_pred); FREE (a->d_time_unet);
  for (int l = 0; l < a->n_layers; l++)
    {
      TfLayerActs *la = &a->layers[l];
      FREE (la->x_in); FREE (la->rstd1); FREE (la->xn1); FREE (la->qkv);
      FREE (la->probs); FREE (la->att); FREE (la->x_mid); FREE (la->rstd2);
      FREE (la->xn2); FREE (la->gu); FREE (la->act);
      FREE (la->xm1); FREE (la->ao); FREE (la->xm2); FREE (la->mo);
      memset (la, 0, sizeof *la);
    }
  FREE (a->x_final); FREE (a->rstd_final); FREE (a->xn_final); FREE (a->logits);
  FREE (a->text_position); FREE (a->text_targets); FREE (a->xn_text);
  FREE (a->logits_full); FREE (a->d_xn_text);
  FREE (a->ce_losses); FREE (a->xn_patch); FREE (a->pred); FREE (a->pred_full);
  FREE (a->d_x); FREE (a->d_xn); FREE (a->d_qkv); FREE (a->d_att); FREE (a->d_gu);
  FREE (a->d_act); FREE (a->d_logits); FREE (a->d_patch); FREE (a->d_pred);
  FREE (a->d_time_emb); FREE (a->d_time_s1); FREE (a->d_time_h1);
#undef FREE
}

void
tf_activations_free (TfActivations *a)
{
  if (a == NULL)
    return;
  activations_release (a);
  tf_unet_acts_free (a->unet);
  tf_conv_patch_acts_free (a->conv);
  g_free (a->layers);
  g_free (a);
}

/* Sizes every buffer for N = B·L positions (patch rows and images can never
 * exceed that) and B·H·L² attention probabilities. */
static gboolean
activations_plan (TfActivations *a, int batch, int seq_len, GError **error)
{
  const TfConfig *c = &a->model->config;
  const size_t N = (size_t) batch * seq_len;
  const size_t probs = N * c->n_heads * (size_t) seq_len;
  a->batch = batch;
  a->seq_len = seq_len;
  if (N <= a->cap_positions && probs <= a->cap_probs)
    return TRUE;

  activations_release (a);
  const size_t d = c->d_model, h = c->mlp_hidden, V = c->vocab_size;
  const size_t pd = tf_config_patch_dim (c);
  const size_t n_img = N / tf_config_n_patches (c) + 1;

  a->kind = g_new (int, N); a->pos = g_new (int, N); a->doc = g_new (int, N);
  a->lo = g_new (int, N); a->hi = g_new (int, N); a->image = g_new (int, N);
  a->patch_row = g_new (int, N); a->tokens = g_new (int32_t, N);
  a->targets = g_new (int32_t, N);
  a->image_t = g_new (int, n_img); a->image_loss = g_new (int, n_img);
  a->image_first_row = g_new (int, n_img);
  a->patch_row_position = g_new (int, N);
  a->patch_x = g_new (float, N * pd); a->patch_target = g_new (float, N * pd);
  a->image_weight = g_new (double, n_img);
  a->time_code = g_new (float, n_img * d); a->time_h1 = g_new (float, n_img * d);
  a->time_s1 = g_new (float, n_img * d); a->time_emb = g_new (float, n_img * d);
  for (int l = 0; l < c->n_layers; l++)
    {
      TfLayerActs *la = &a->layers[l];
      la->x_in = g_new (float, N * d); la->rstd1 = g_new (float, N);
      la->xn1 = g_new (float, N * d); la->qkv = g_new (float, N * 3 * d);
      la->probs = g_try_new (float, probs);
      if (la->probs == NULL)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "a batch of %d × %d positions needs more memory than there is",
                       batch, seq_len);
          activations_release (a);
          a->cap_positions = a->cap_probs = 0;
          return FALSE;
        }
      la->att = g_new (float, N * d); la->x_mid = g_new (float, N * d);
      la->rstd2 = g_new (float, N); la->xn2 = g_new (float, N * d);
      la->gu = g_new (float, N * 2 * h); la->act = g_new (float, N * h);
    }
  if (c->time_conditioning == TF_TIME_ADALN_ZERO)
    {
      for (int l = 0; l < c->n_layers; l++)
        {
          TfLayerActs *la = &a->layers[l];
          la->xm1 = g_new (float, N * d); la->ao = g_new (float, N * d);
          la->xm2 = g_new (float, N * d); la->mo = g_new (float, N * d);
        }
      a->time_silu = g_new (float, n_img * d);
      a->mods = g_new (float, (size_t) c->n_layers * n_img * 6 * d);
      a->final_mod = g_new (float, n_img * 2 * d);
      a->xm_patch = g_new (float, N * d);
      a->patch_group = g_new (int, N);
      a->d_mod = g_new (float, n_img * 6 * d);
      a->d_final_mod = g_new (float, n_img * 2 * d);
      a->d_time_silu = g_new (float, n_img * d);
      a->d_gated = g_new (float, N * d);
    }
  if (c->image_rope == TF_IMAGE_ROPE_AXIAL)
    a->pos_col = g_new (int, N);
  if (a->unet != NULL || a->conv != NULL)
    {
      const size_t values = tf_config_image_values (c);
      a->image_x = g_new (float, n_img * values);
      a->image_pred = g_new (float, n_img * values);
      a->d_image_pred = g_new (float, n_img * values);
    }
  if (a->unet != NULL)
    a->d_time_unet = g_new (float, n_img * d);
  a->x_final = g_new (float, N * d); a->rstd_final = g_new (float, N);
  a->xn_final = g_new (float, N * d); a->logits = g_new (float, N * V);
  a->text_position = g_new (int, N); a->text_targets = g_new (int32_t, N);
  a->xn_text = g_new (float, N * d); a->d_xn_text = g_new (float, N * d);
  a->logits_full = NULL;
  a->ce_losses = g_new (float, N); a->xn_patch = g_new (float, N * d);
  a->pred = g_new (float, N * pd); a->pred_full = g_new (float, N * pd);
  a->d_x = g_new (float, N * d); a->d_xn = g_new (float, N * d);
  a->d_qkv = g_new (float, N * 3 * d); a->d_att = g_new (float, N * d);
  a->d_gu = g_new (float, N * 2 * h); a->d_act = g_new (float, N * h);
  a->d_logits = g_new (float, N * V); a->d_patch = g_new (float, N * d);
  a->d_pred = g_new (float, N * pd);
  a->d_time_emb = g_new (float, n_img * d); a->d_time_s1 = g_new (float, n_img * d);
  a->d_time_h1 = g_new (float, n_img * d);
  a->cap_positions = N;
  a->cap_probs = probs;
  return TRUE;
}

/* ---- Batch layout ------------------------------------------------------- */

static gboolean
sequence_length (const TfConfig *c, const TfSequence *seq, int row, int *len, GError **error)
{
  const int np = tf_config_n_patches (c);
  size_t n = 0;
  for (int s = 0; s < seq->n_segments; s++)
    {
      const TfSegment *seg = &seq->segments[s];
      if (seg->kind == TF_SEGMENT_TEXT)
        {
          if (seg->n_tokens < 0 || (seg->n_tokens > 0 && seg->tokens == NULL))
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           "batch row %d, segment %d: text has no tokens array", row, s);
              return FALSE;
            }
          for (int k = 0; k < seg->n_tokens; k++)
            if (seg->tokens[k] < 0 || seg->tokens[k] >= c->vocab_size)
              {
                g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                             "batch row %d, segment %d: token %d is %d, outside the vocabulary of %d",
                             row, s, k, seg->tokens[k], c->vocab_size);
                return FALSE;
              }
          n += (size_t) seg->n_tokens;
        }
      else if (seg->kind == TF_SEGMENT_IMAGE)
        {
          if (seg->pixels == NULL)
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           "batch row %d, segment %d: image has no pixels", row, s);
              return FALSE;
            }
          if (seg->t < 0 || seg->t > c->diffusion_steps)
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           "batch row %d, segment %d: noise level t = %d, expected 0 to %d",
                           row, s, seg->t, c->diffusion_steps);
              return FALSE;
            }
          if (seg->t > 0 && seg->noise == NULL && !seg->noised)
            {
              g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                           "batch row %d, segment %d: image at t = %d has no noise",
                           row, s, seg->t);
              return FALSE;
            }
          n += (size_t) np;
        }
      else
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "batch row %d, segment %d: unknown segment kind %d", row, s, seg->kind);
          return FALSE;
        }
      if (n > (size_t) c->max_seq_len)
        break;
    }
  if (n > (size_t) c->max_seq_len)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "batch row %d is longer than max_seq_len %d", row, c->max_seq_len);
      return FALSE;
    }
  *len = (int) n;
  return TRUE;
}

/* Lays the batch out as positions: kinds, tokens, RoPE positions, the mask
 * ranges, LM targets, and the noised patches of every image. */
static void
layout_batch (TfActivations *a, const TfBatch *batch)
{
  TfModel *m = a->model;
  const TfConfig *c = &m->config;
  const int L = a->seq_len, np = tf_config_n_patches (c);
  const int pd = tf_config_patch_dim (c), values = tf_config_image_values (c);
  g_autofree float *x_t = g_new (float, values);
  g_autofree float *target = g_new (float, values);

  a->n_images = 0;
  a->n_patch_rows = 0;
  a->n_loss_images = 0;
  int doc_id = -1;
  for (int b = 0; b < batch->n_sequences; b++)
    {
      const TfSequence *seq = &batch->sequences[b];
      int i = b * L, row_end = b * L;
      int doc_start = i, doc_pos = 0;
      for (int s = 0; s < seq->n_segments; s++)
        {
          const TfSegment *seg = &seq->segments[s];
          if (s == 0 || seg->new_document)
            {
              doc_id++;
              doc_start = i - b * L;
              doc_pos = 0;
            }
          if (seg->kind == TF_SEGMENT_TEXT)
            {
              for (int k = 0; k < seg->n_tokens; k++, i++)
                {
                  a->kind[i] = TF_POS_TEXT;
                  a->tokens[i] = seg->tokens[k];
                  if (a->pos_col != NULL)
                    a->pos_col[i] = doc_pos;
                  a->pos[i] = doc_pos++;
                  a->doc[i] = doc_id;
                  a->lo[i] = doc_start;
                  a->hi[i] = i - b * L;
                  a->image[i] = -1;
                  a->patch_row[i] = -1;
                }
              continue;
            }
          /* An image: x_t = sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·ε on the whole image, then patches. */
          const int g = a->n_images++;
          const double ab = m->alpha_bar[seg->t];
          const double ca = sqrt (ab), cb = sqrt (1.0 - ab);
          for (int k = 0; k < values; k++)
            x_t[k] = seg->t == 0 || seg->noised
                     ? seg->pixels[k] : (float) (ca * seg->pixels[k] + cb * seg->noise[k]);
          const int first = a->n_patch_rows;
          tf_patchify (a->patch_x + (size_t) first * pd, x_t, c->image_size,
                       c->image_channels, c->patch_size);
          a->image_t[g] = seg->t;
          a->image_loss[g] = seg->diffusion_loss && seg->t > 0 && !seg->noised;
          a->image_weight[g] = 1.0;
          if (a->image_loss[g] && seg->noise != NULL)
            {
              tf_diffusion_target (c->prediction, ab, seg->pixels, seg->noise, values, target);
              tf_patchify (a->patch_target + (size_t) first * pd, target, c->image_size,
                           c->image_channels, c->patch_size);
              a->image_weight[g] = tf_diffusion_loss_weight (c, ab);
            }
          else
            memset (a->patch_target + (size_t) first * pd, 0, sizeof (float) * np * pd);
          a->image_first_row[g] = first;
          a->n_loss_images += a->image_loss[g];
          const int image_end = i - b * L + np;   /* exclusive, row-relative */
          /* axial RoPE: the patches' grid rows and columns from the first's index */
          if (a->pos_col != NULL)
            tf_rope_image_positions (a->pos + i, a->pos_col + i, doc_pos,
                                     tf_config_patches_per_side (c));
          for (int k = 0; k < np; k++, i++)
            {
              a->kind[i] = TF_POS_PATCH;
              a->tokens[i] = 0;
              if (a->pos_col == NULL)
                a->pos[i] = doc_pos;
              doc_pos++;   /* after the image, document indices go on (either RoPE) */
              a->doc[i] = doc_id;
              a->lo[i] = doc_start;
              a->hi[i] = image_end - 1;
              a->image[i] = g;
              a->patch_row[i] = first + k;
              a->patch_row_position[first + k] = i;
              if (a->patch_group != NULL)
                a->patch_group[first + k] = g;
            }
          a->n_patch_rows += np;
        }
      row_end = i;
      for (; i < (b + 1) * L; i++)
        {
          a->kind[i] = TF_POS_PAD;
          a->tokens[i] = 0;
          a->pos[i] = 0;
          if (a->pos_col != NULL)
            a->pos_col[i] = 0;
          a->doc[i] = -1;
          a->lo[i] = 0;
          a->hi[i] = -1;
          a->image[i] = -1;
          a->patch_row[i] = -1;
        }
      /* LM targets: the next token, when it is text of the same document. */
      for (int j = b * L; j < (b + 1) * L; j++)
        {
          gboolean has = a->kind[j] == TF_POS_TEXT && j + 1 < row_end &&
                         a->kind[j + 1] == TF_POS_TEXT && a->doc[j + 1] == a->doc[j];
          a->targets[j] = has ? a->tokens[j + 1] : -1;
        }
    }
  a->n_text = 0;
  for (int j = 0; j < batch->n_sequences * L; j++)
    if (a->kind[j] == TF_POS_TEXT)
      {
        a->text_position[a->n_text] = j;
        a->text_targets[a->n_text++] = a->targets[j];
      }
}

/* ---- Forward ------------------------------------------------------------ */

#define P(off) (m->params + (off))
#define G(off) (grads + (off))

gboolean
tf_model_forward (TfModel *m, TfActivations *a, const TfBatch *batch, TfLosses *losses,
                  GError **error)
{
  const TfConfig *c = &m->config;
  g_return_val_if_fail (a->model == m, FALSE);

  if (batch->n_sequences < 1)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "the batch has no sequences");
      return FALSE;
    }
  if (!isfinite (batch->lambda) || batch->lambda < 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "the batch's λ is %g, expected a finite value ≥ 0", batch->lambda);
      return FALSE;
    }
  int L = 1;
  for (int b = 0; b < batch->n_sequences; b++)
    {
      int len;
      if (!sequence_length (c, &batch->sequences[b], b, &len, error))
        return FALSE;
      L = MAX (L, len);
    }
  if (!activations_plan (a, batch->n_sequences, L, error))
    return FALSE;
  layout_batch (a, batch);
  a->lambda = batch->lambda;

  const int B = a->batch, N = B * L, d = c->d_model, h = c->mlp_hidden;
  const int V = c->vocab_size, H = c->n_heads, hd = tf_config_head_dim (c);
  const int pd = tf_config_patch_dim (c), np = tf_config_n_patches (c);
  const int Np = a->n_patch_rows, n_img = a->n_images;
  const TfOffsets *o = &m->off;

  /* Input embeddings. Padding rows stay zero through the whole network. */
  float *x = a->layers[0].x_in;
  memset (x, 0, sizeof (float) * N * d);
  for (int i = 0; i < N; i++)
    if (a->kind[i] == TF_POS_TEXT)
      tf_embedding_forward (x + (size_t) i * d, &a->tokens[i], P (o->tok_emb), 1, d);

  for (int g = 0; g < n_img; g++)
    tf_timestep_code (a->time_code + (size_t) g * d, a->image_t[g], d);
  tf_linear_forward (a->time_h1, a->time_code, P (o->time0_w), P (o->time0_b), n_img, d, d);
  tf_silu_forward (a->time_s1, a->time_h1, n_img * d);
  tf_linear_forward (a->time_emb, a->time_s1, P (o->time2_w), P (o->time2_b), n_img, d, d);
  /* adaLN-Zero: each layer's shift, scale and gate for each image, from silu(temb).
   * The embedding is added to the patches too, so that t reaches the image
   * from the first step, before the zero-initialised modulations open. */
  const gboolean adaln = c->time_conditioning == TF_TIME_ADALN_ZERO;
  const int ms = 6 * d;   /* a layer's modulation row */
  if (adaln)
    {
      tf_silu_forward (a->time_silu, a->time_emb, n_img * d);
      for (int l = 0; l < c->n_layers; l++)
        {
          a->layers[l].mod = a->mods + (size_t) l * n_img * ms;
          tf_linear_forward (a->layers[l].mod, a->time_silu, P (o->layers[l].adaln_w),
                             P (o->layers[l].adaln_b), n_img, d, ms);
        }
      tf_linear_forward (a->final_mod, a->time_silu, P (o->final_adaln_w), P (o->final_adaln_b),
                         n_img, d, 2 * d);
    }

  const int values = tf_config_image_values (c);
  if (a->unet != NULL || a->conv != NULL)
    {
      /* the U-Net or conv encoder on each whole x_t, to a token per grid cell */
      for (int g = 0; g < n_img; g++)
        tf_unpatchify (a->image_x + (size_t) g * values,
                       a->patch_x + (size_t) a->image_first_row[g] * pd, c->image_size,
                       c->image_channels, c->patch_size);
      if (a->unet != NULL)
        tf_unet_encode (a->unet, m->params, &o->unet, a->image_x, a->time_emb, n_img, a->d_patch);
      else
        tf_conv_patch_encode (a->conv, m->params, &o->conv, a->image_x, n_img, a->d_patch);
    }
  else
    tf_linear_forward (a->d_patch, a->patch_x, P (o->patch_in_w), P (o->patch_in_b), Np, pd, d);
  for (int r = 0; r < Np; r++)
    {
      const int i = a->patch_row_position[r];
      const int k = r - a->image_first_row[a->image[i]];
      const float *proj = a->d_patch + (size_t) r * d;
      const float *pe = P (o->patch_pos) + (size_t) k * d;
      const float *te = a->time_emb + (size_t) a->image[i] * d;
      float *dst = x + (size_t) i * d;
      for (int e = 0; e < d; e++)
        dst[e] = proj[e] + pe[e] + te[e];
    }

  for (int l = 0; l < c->n_layers; l++)
    {
      TfLayerActs *la = &a->layers[l];
      const TfLayerOffsets *lo = &o->layers[l];
      float *x_out = l + 1 < c->n_layers ? a->layers[l + 1].x_in : a->x_final;

      tf_rmsnorm_forward (la->xn1, la->rstd1, la->x_in, P (lo->attn_norm), N, d, c->norm_eps);
      const float *in1 = la->xn1;
      if (adaln)
        {
          tf_modulate_forward (la->xm1, la->xn1, la->mod, la->mod + d, ms, a->image, N, d);
          in1 = la->xm1;
        }
      tf_linear_forward (la->qkv, in1, P (lo->wqkv), NULL, N, d, 3 * d);
      tf_rope_forward (la->qkv, 3 * d, a->pos, a->pos_col, N, H, hd, c->rope_theta);
      tf_rope_forward (la->qkv + d, 3 * d, a->pos, a->pos_col, N, H, hd, c->rope_theta);
      tf_attention_forward (la->att, la->probs, la->qkv, a->lo, a->hi, B, L, H, hd);
      if (adaln)
        {
          tf_linear_forward (la->ao, la->att, P (lo->wo), NULL, N, d, d);
          memcpy (la->x_mid, la->x_in, sizeof (float) * N * d);
          tf_gate_residual_forward (la->x_mid, la->ao, la->mod + 2 * d, ms, a->image, N, d);
        }
      else
        {
          tf_linear_forward (la->x_mid, la->att, P (lo->wo), NULL, N, d, d);
          for (size_t k = 0; k < (size_t) N * d; k++)
            la->x_mid[k] += la->x_in[k];
        }

      tf_rmsnorm_forward (la->xn2, la->rstd2, la->x_mid, P (lo->mlp_norm), N, d, c->norm_eps);
      const float *in2 = la->xn2;
      if (adaln)
        {
          tf_modulate_forward (la->xm2, la->xn2, la->mod + 3 * d, la->mod + 4 * d, ms, a->image,
                               N, d);
          in2 = la->xm2;
        }
      tf_linear_forward (la->gu, in2, P (lo->w13), NULL, N, d, 2 * h);
      tf_swiglu_forward (la->act, la->gu, N, h);
      if (adaln)
        {
          tf_linear_forward (la->mo, la->act, P (lo->w2), NULL, N, h, d);
          memcpy (x_out, la->x_mid, sizeof (float) * N * d);
          tf_gate_residual_forward (x_out, la->mo, la->mod + 5 * d, ms, a->image, N, d);
        }
      else
        {
          tf_linear_forward (x_out, la->act, P (lo->w2), NULL, N, h, d);
          for (size_t k = 0; k < (size_t) N * d; k++)
            x_out[k] += la->x_mid[k];
        }
    }

  tf_rmsnorm_forward (a->xn_final, a->rstd_final, a->x_final, P (o->norm), N, d, c->norm_eps);
  const int Nt = a->n_text;
  for (int r = 0; r < Nt; r++)
    memcpy (a->xn_text + (size_t) r * d, a->xn_final + (size_t) a->text_position[r] * d,
            sizeof (float) * d);
  tf_linear_forward (a->logits, a->xn_text, P (o->lm_head), NULL, Nt, d, V);
  g_clear_pointer (&a->logits_full, g_free);
  for (int r = 0; r < Np; r++)
    memcpy (a->xn_patch + (size_t) r * d, a->xn_final + (size_t) a->patch_row_position[r] * d,
            sizeof (float) * d);
  const float *head_in = a->xn_patch;
  if (adaln)
    {
      tf_modulate_forward (a->xm_patch, a->xn_patch, a->final_mod, a->final_mod + d, 2 * d,
                           a->patch_group, Np, d);
      head_in = a->xm_patch;
    }
  if (a->unet != NULL || a->conv != NULL)
    {
      /* the decoder gives whole images; the loss compares them in patch
       * order, which is the same per-image MSE */
      if (a->unet != NULL)
        tf_unet_decode (a->unet, m->params, &o->unet, head_in, n_img, a->image_pred);
      else
        tf_conv_patch_decode (a->conv, m->params, &o->conv, head_in, n_img, a->image_pred);
      for (int g = 0; g < n_img; g++)
        tf_patchify (a->pred + (size_t) a->image_first_row[g] * pd,
                     a->image_pred + (size_t) g * values, c->image_size, c->image_channels,
                     c->patch_size);
    }
  else
    tf_linear_forward (a->pred, head_in, P (o->patch_out_w), P (o->patch_out_b), Np, d, pd);

  /* Losses. */
  TfLosses *out = &a->losses;
  memset (out, 0, sizeof *out);
  double ce_sum = tf_cross_entropy_forward (a->ce_losses, a->logits, a->text_targets, Nt, V);
  for (int i = 0; i < N; i++)
    {
      out->n_text_targets += a->targets[i] >= 0;
      out->n_positions += a->kind[i] != TF_POS_PAD;
    }
  out->lm = out->n_text_targets > 0 ? ce_sum / out->n_text_targets : 0.0;
  double ddpm_sum = 0.0;
  for (int g = 0; g < n_img; g++)
    if (a->image_loss[g])
      {
        const size_t first = (size_t) a->image_first_row[g] * pd;
        ddpm_sum += a->image_weight[g] *
                    tf_squared_error_forward (a->pred + first, a->patch_target + first,
                                              np * pd) / (np * pd);
      }
  out->n_images = a->n_loss_images;
  out->ddpm = a->n_loss_images > 0 ? ddpm_sum / a->n_loss_images : 0.0;
  out->loss = out->lm + batch->lambda * out->ddpm;
  out->seq_len = L;
  if (losses != NULL)
    *losses = *out;
  return TRUE;
}

/* ---- Backward ----------------------------------------------------------- */

void
tf_model_backward (TfModel *m, TfActivations *a)
{
  const TfConfig *c = &m->config;
  float *grads = tf_model_grads (m);
  const int B = a->batch, L = a->seq_len, N = B * L, d = c->d_model, h = c->mlp_hidden;
  const int V = c->vocab_size, H = c->n_heads, hd = tf_config_head_dim (c);
  const int pd = tf_config_patch_dim (c), np = tf_config_n_patches (c);
  const int Np = a->n_patch_rows, n_img = a->n_images;
  const TfOffsets *o = &m->off;
  const TfLosses *ls = &a->losses;

  /* Heads: d(loss)/d(logits) and d(loss)/d(prediction). */
  const int Nt = a->n_text;
  tf_cross_entropy_backward (a->d_logits, a->logits, a->text_targets, Nt, V,
                             ls->n_text_targets > 0 ? 1.0 / ls->n_text_targets : 0.0);
  for (int g = 0; g < n_img; g++)
    {
      const size_t first = (size_t) a->image_first_row[g] * pd;
      if (a->image_loss[g])
        tf_squared_error_backward (a->d_pred + first, a->pred + first, a->patch_target + first,
                                   np * pd, a->lambda * a->image_weight[g] /
                                            ((double) a->n_loss_images * np * pd));
      else
        memset (a->d_pred + first, 0, sizeof (float) * np * pd);
    }

  float *d_xn = a->d_xn;
  memset (d_xn, 0, sizeof (float) * N * d);
  memset (a->d_xn_text, 0, sizeof (float) * Nt * d);
  tf_linear_backward (a->d_xn_text, G (o->lm_head), NULL, a->d_logits, a->xn_text,
                      P (o->lm_head), Nt, d, V);
  for (int r = 0; r < Nt; r++)
    {
      float *dst = d_xn + (size_t) a->text_position[r] * d;
      const float *src = a->d_xn_text + (size_t) r * d;
      for (int e = 0; e < d; e++)
        dst[e] += src[e];
    }
  const gboolean adaln = c->time_conditioning == TF_TIME_ADALN_ZERO;
  const int ms = 6 * d;
  memset (a->d_patch, 0, sizeof (float) * Np * d);
  if (a->unet != NULL || a->conv != NULL)
    {
      const int values = tf_config_image_values (c);
      for (int g = 0; g < n_img; g++)
        tf_unpatchify (a->d_image_pred + (size_t) g * values,
                       a->d_pred + (size_t) a->image_first_row[g] * pd, c->image_size,
                       c->image_channels, c->patch_size);
      if (a->unet != NULL)
        {
          memset (a->d_time_unet, 0, sizeof (float) * n_img * d);
          tf_unet_decode_backward (a->unet, m->params, grads, &o->unet, a->d_image_pred,
                                   a->d_patch, a->d_time_unet);
        }
      else
        tf_conv_patch_decode_backward (a->conv, m->params, grads, &o->conv, a->d_image_pred,
                                       a->d_patch);
    }
  else
    tf_linear_backward (a->d_patch, G (o->patch_out_w), G (o->patch_out_b), a->d_pred,
                        adaln ? a->xm_patch : a->xn_patch, P (o->patch_out_w), Np, d, pd);
  if (adaln)
    {
      memset (a->d_final_mod, 0, sizeof (float) * n_img * 2 * d);
      tf_modulate_backward (a->d_patch, a->d_final_mod, a->d_final_mod + d, a->d_patch,
                            a->xn_patch, a->final_mod + d, 2 * d, a->patch_group, Np, d);
      memset (a->d_time_silu, 0, sizeof (float) * n_img * d);
      tf_linear_backward (a->d_time_silu, G (o->final_adaln_w), G (o->final_adaln_b),
                          a->d_final_mod, a->time_silu, P (o->final_adaln_w), n_img, d, 2 * d);
    }
  for (int r = 0; r < Np; r++)
    {
      float *dst = d_xn + (size_t) a->patch_row_position[r] * d;
      const float *src = a->d_patch + (size_t) r * d;
      for (int e = 0; e < d; e++)
        dst[e] += src[e];
    }

  float *d_x = a->d_x;
  memset (d_x, 0, sizeof (float) * N * d);
  tf_rmsnorm_backward (d_x, G (o->norm), d_xn, a->x_final, P (o->norm), a->rstd_final, N, d);

  for (int l = c->n_layers - 1; l >= 0; l--)
    {
      TfLayerActs *la = &a->layers[l];
      const TfLayerOffsets *lo = &o->layers[l];

      /* MLP: x_out = x_mid + W2·(silu(W1·xn2) ⊙ W3·xn2); d_x flows through the
       * residual. With adaLN-Zero, image rows gate the MLP's output and
       * modulate its input: d_mod collects this layer's shift/scale/gate. */
      const float *d_mlp_out = d_x;
      if (adaln)
        {
          memset (a->d_mod, 0, sizeof (float) * n_img * ms);
          tf_gate_residual_backward (a->d_gated, a->d_mod + 5 * d, d_x, la->mo, la->mod + 5 * d,
                                     ms, a->image, N, d);
          d_mlp_out = a->d_gated;
        }
      memset (a->d_act, 0, sizeof (float) * N * h);
      tf_linear_backward (a->d_act, G (lo->w2), NULL, d_mlp_out, la->act, P (lo->w2), N, h, d);
      tf_swiglu_backward (a->d_gu, a->d_act, la->gu, N, h);
      memset (d_xn, 0, sizeof (float) * N * d);
      tf_linear_backward (d_xn, G (lo->w13), NULL, a->d_gu, adaln ? la->xm2 : la->xn2,
                          P (lo->w13), N, d, 2 * h);
      if (adaln)
        tf_modulate_backward (d_xn, a->d_mod + 3 * d, a->d_mod + 4 * d, d_xn, la->xn2,
                              la->mod + 4 * d, ms, a->image, N, d);
      tf_rmsnorm_backward (d_x, G (lo->mlp_norm), d_xn, la->x_mid, P (lo->mlp_norm),
                           la->rstd2, N, d);

      /* Attention: x_mid = x_in + Wo·attn(rope(Wq·xn1), rope(Wk·xn1), Wv·xn1). */
      const float *d_attn_out = d_x;
      if (adaln)
        {
          tf_gate_residual_backward (a->d_gated, a->d_mod + 2 * d, d_x, la->ao, la->mod + 2 * d,
                                     ms, a->image, N, d);
          d_attn_out = a->d_gated;
        }
      memset (a->d_att, 0, sizeof (float) * N * d);
      tf_linear_backward (a->d_att, G (lo->wo), NULL, d_attn_out, la->att, P (lo->wo), N, d, d);
      tf_attention_backward (a->d_qkv, a->d_att, la->qkv, la->probs, a->lo, a->hi, B, L, H, hd);
      tf_rope_backward (a->d_qkv, 3 * d, a->pos, a->pos_col, N, H, hd, c->rope_theta);
      tf_rope_backward (a->d_qkv + d, 3 * d, a->pos, a->pos_col, N, H, hd, c->rope_theta);
      /* The forward stored q and k after RoPE; Wqkv's gradient needs its input
       * xn1 only, which is unrotated, so the stored qkv is not needed here. */
      memset (d_xn, 0, sizeof (float) * N * d);
      tf_linear_backward (d_xn, G (lo->wqkv), NULL, a->d_qkv, adaln ? la->xm1 : la->xn1,
                          P (lo->wqkv), N, d, 3 * d);
      if (adaln)
        {
          tf_modulate_backward (d_xn, a->d_mod, a->d_mod + d, d_xn, la->xn1, la->mod + d, ms,
                                a->image, N, d);
          tf_linear_backward (a->d_time_silu, G (lo->adaln_w), G (lo->adaln_b), a->d_mod,
                              a->time_silu, P (lo->adaln_w), n_img, d, ms);
        }
      tf_rmsnorm_backward (d_x, G (lo->attn_norm), d_xn, la->x_in, P (lo->attn_norm),
                           la->rstd1, N, d);
    }

  /* Input embeddings. */
  for (int i = 0; i < N; i++)
    if (a->kind[i] == TF_POS_TEXT)
      tf_embedding_backward (G (o->tok_emb), d_x + (size_t) i * d, &a->tokens[i], 1, d);

  memset (a->d_time_emb, 0, sizeof (float) * n_img * d);
  for (int r = 0; r < Np; r++)
    {
      const int i = a->patch_row_position[r];
      const int g = a->image[i];
      const int k = r - a->image_first_row[g];
      const float *src = d_x + (size_t) i * d;
      float *dp = a->d_patch + (size_t) r * d;
      float *dpos = G (o->patch_pos) + (size_t) k * d;
      float *dt = a->d_time_emb + (size_t) g * d;
      for (int e = 0; e < d; e++)
        {
          dp[e] = src[e];
          dpos[e] += src[e];
          dt[e] += src[e];
        }
    }
  if (a->unet != NULL)
    {
      tf_unet_encode_backward (a->unet, m->params, grads, &o->unet, a->d_patch, a->d_time_unet);
      for (size_t k = 0; k < (size_t) n_img * d; k++)
        a->d_time_emb[k] += a->d_time_unet[k];
    }
  else if (a->conv != NULL)
    tf_conv_patch_encode_backward (a->conv, m->params, grads, &o->conv, a->d_patch);
  else
    tf_linear_backward (NULL, G (o->patch_in_w), G (o->patch_in_b), a->d_patch, a->patch_x,
                        P (o->patch_in_w), Np, pd, d);
  if (adaln)
    {
      /* temb reaches the modulations through silu: add that path's gradient */
      tf_silu_backward (a->d_time_s1, a->d_time_silu, a->time_emb, n_img * d);
      for (size_t k = 0; k < (size_t) n_img * d; k++)
        a->d_time_emb[k] += a->d_time_s1[k];
    }
  memset (a->d_time_s1, 0, sizeof (float) * n_img * d);
  tf_linear_backward (a->d_time_s1, G (o->time2_w), G (o->time2_b), a->d_time_emb,
                      a->time_s1, P (o->time2_w), n_img, d, d);
  tf_silu_backward (a->d_time_h1, a->d_time_s1, a->time_h1, n_img * d);
  tf_linear_backward (NULL, G (o->time0_w), G (o->time0_b), a->d_time_h1, a->time_code,
                      P (o->time0_w), n_img, d, d);
}

#undef P
#undef G

/* ---- Accessors ---------------------------------------------------------- */

const float *
tf_activations_logits (TfActivations *a)
{
  if (a->logits_full == NULL)
    {
      const size_t V = a->model->config.vocab_size;
      a->logits_full = g_new0 (float, (size_t) a->batch * a->seq_len * V);
      for (int r = 0; r < a->n_text; r++)
        memcpy (a->logits_full + a->text_position[r] * V, a->logits + r * V,
                sizeof (float) * V);
    }
  return a->logits_full;
}
int tf_activations_batch (const TfActivations *a) { return a->batch; }
int tf_activations_seq_len (const TfActivations *a) { return a->seq_len; }

const float *
tf_activations_pred (const TfActivations *a)
{
  const TfConfig *c = &a->model->config;
  const size_t pd = tf_config_patch_dim (c), N = (size_t) a->batch * a->seq_len;
  memset (a->pred_full, 0, sizeof (float) * N * pd);
  for (int r = 0; r < a->n_patch_rows; r++)
    memcpy (a->pred_full + (size_t) a->patch_row_position[r] * pd,
            a->pred + (size_t) r * pd, sizeof (float) * pd);
  return a->pred_full;
}

void
tf_activations_image_pred (const TfActivations *a, int index, float *out)
{
  const TfConfig *c = &a->model->config;
  g_return_if_fail (index >= 0 && index < a->n_images);
  tf_unpatchify (out, a->pred + (size_t) a->image_first_row[index] * tf_config_patch_dim (c),
                 c->image_size, c->image_channels, c->patch_size);
}

gboolean
tf_activations_can_attend (const TfActivations *a, int b, int i, int j)
{
  g_return_val_if_fail (b >= 0 && b < a->batch, FALSE);
  g_return_val_if_fail (i >= 0 && i < a->seq_len && j >= 0 && j < a->seq_len, FALSE);
  const int pi = b * a->seq_len + i;
  return j >= a->lo[pi] && j <= a->hi[pi];
}

int
tf_activations_position_kind (const TfActivations *a, int b, int i)
{
  g_return_val_if_fail (b >= 0 && b < a->batch && i >= 0 && i < a->seq_len, TF_POS_PAD);
  return a->kind[b * a->seq_len + i];
}

const char *
tf_version (void)
{
  return PACKAGE_VERSION;
}
