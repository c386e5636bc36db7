/* tf-unet.c: the U-Net patch encoder and decoder (see tf-unet.h). Every
 * activation is a channels-last image batch [n, r, r, C]: rows are pixels,
 * so the norms run over rows and the convolutions over all images at once. */
#include "config.h"
#include "tf-unet.h"
#include "tf-layers.h"

#include <string.h>

/* One residual block's activations at side r; x is its input (not owned). */
typedef struct {
  const float *x;
  float *n1, *s1, *h1, *n2, *s2, *out;   /* [n, r, r, C] */
  float *rstd1, *rstd2;                  /* [n, r, r] */
} BlockActs;

struct _TfUnetActs {
  int S, Cimg, C, d, levels, blocks, np;
  gboolean skips;          /* encoder levels added into the decoder's */
  double eps;
  int cap;                 /* images the buffers hold */
  int n_enc, n_dec;        /* images of the last encode and decode */
  const float *temb;       /* [n_enc, d], the caller's */
  const float *hidden;     /* [n_dec · np, d], the caller's */

  float *image;            /* [n, S, S, Cimg] the encoder's input */
  float *h_in;             /* conv_in's output */
  BlockActs *down, *up;    /* [levels · blocks] */
  float *down_out[TF_UNET_MAX_LEVELS];  /* stride-2 conv of level l: side S >> (l + 1) */
  float *dec_grid;         /* proj_out's output at the grid */
  float *up_x[TF_UNET_MAX_LEVELS];      /* up-sampled into level l */
  float *up_sum[TF_UNET_MAX_LEVELS];    /* conv(up_x) + skip: level l's first block input */
  float *out_n, *out_s, *out_rstd;      /* the final norm and SiLU */
  float *tproj;            /* [n, C] scratch: a block's timestep projection */

  /* backward scratch, allocated on the first backward */
  float *d_a, *d_b, *t1, *t2;           /* [n, S, S, C] each */
  float *d_skip[TF_UNET_MAX_LEVELS];
};

static int side (const TfUnetActs *u, int level) { return u->S >> level; }

static size_t
pixels (const TfUnetActs *u, int n, int level)
{
  return (size_t) n * side (u, level) * side (u, level);
}

TfUnetActs *
tf_unet_acts_new (const TfConfig *c)
{
  TfUnetActs *u = g_new0 (TfUnetActs, 1);
  u->S = c->image_size;
  u->Cimg = c->image_channels;
  u->C = c->unet_channels;
  u->d = c->d_model;
  u->levels = tf_config_unet_levels (c);
  u->blocks = c->unet_blocks;
  u->skips = c->unet_skips;
  u->np = tf_config_n_patches (c);
  u->eps = c->norm_eps;
  u->down = g_new0 (BlockActs, (size_t) u->levels * MAX (u->blocks, 1));
  u->up = g_new0 (BlockActs, (size_t) u->levels * MAX (u->blocks, 1));
  return u;
}

static void
block_free (BlockActs *b)
{
  g_free (b->n1); g_free (b->s1); g_free (b->h1); g_free (b->n2); g_free (b->s2);
  g_free (b->out); g_free (b->rstd1); g_free (b->rstd2);
  memset (b, 0, sizeof *b);
}

static void
release (TfUnetActs *u)
{
  g_free (u->image); g_free (u->h_in); g_free (u->dec_grid); g_free (u->out_n);
  g_free (u->out_s); g_free (u->out_rstd); g_free (u->tproj);
  g_free (u->d_a); g_free (u->d_b); g_free (u->t1); g_free (u->t2);
  u->image = u->h_in = u->dec_grid = u->out_n = u->out_s = u->out_rstd = u->tproj = NULL;
  u->d_a = u->d_b = u->t1 = u->t2 = NULL;
  for (int l = 0; l < u->levels; l++)
    {
      g_free (u->down_out[l]); g_free (u->up_x[l]); g_free (u->up_sum[l]);
      g_free (u->d_skip[l]);
      u->down_out[l] = u->up_x[l] = u->up_sum[l] = u->d_skip[l] = NULL;
      for (int b = 0; b < u->blocks; b++)
        {
          block_free (&u->down[l * u->blocks + b]);
          block_free (&u->up[l * u->blocks + b]);
        }
    }
}

void
tf_unet_acts_free (TfUnetActs *u)
{
  if (u == NULL)
    return;
  release (u);
  g_free (u->down);
  g_free (u->up);
  g_free (u);
}

static void
block_alloc (BlockActs *b, size_t px, int C)
{
  b->n1 = g_new (float, px * C); b->s1 = g_new (float, px * C);
  b->h1 = g_new (float, px * C); b->n2 = g_new (float, px * C);
  b->s2 = g_new (float, px * C); b->out = g_new (float, px * C);
  b->rstd1 = g_new (float, px); b->rstd2 = g_new (float, px);
}

void
tf_unet_acts_reserve (TfUnetActs *u, int n)
{
  if (n <= u->cap)
    return;
  release (u);
  const int C = u->C;
  const size_t full = pixels (u, n, 0);
  u->image = g_new (float, full * u->Cimg);
  u->h_in = g_new (float, full * C);
  for (int l = 0; l < u->levels; l++)
    {
      const size_t px = pixels (u, n, l);
      u->down_out[l] = g_new (float, pixels (u, n, l + 1) * C);
      u->up_x[l] = g_new (float, px * C);
      u->up_sum[l] = g_new (float, px * C);
      for (int b = 0; b < u->blocks; b++)
        {
          block_alloc (&u->down[l * u->blocks + b], px, C);
          block_alloc (&u->up[l * u->blocks + b], px, C);
        }
    }
  u->dec_grid = g_new (float, (size_t) n * u->np * C);
  u->out_n = g_new (float, full * C);
  u->out_s = g_new (float, full * C);
  u->out_rstd = g_new (float, full);
  u->tproj = g_new (float, (size_t) n * C);
  u->cap = n;
}

#define W(off) (params + (off))
#define G(off) (grads + (off))

/* ---- Residual block ------------------------------------------------------ */

static void
block_forward (TfUnetActs *u, BlockActs *ba, const float *params, const TfUnetBlockOffsets *bo,
               const float *x, int n, int level)
{
  const int C = u->C, r = side (u, level);
  const size_t px = pixels (u, n, level), per_image = (size_t) r * r;
  ba->x = x;
  tf_rmsnorm_forward (ba->n1, ba->rstd1, x, W (bo->norm1), (int) px, C, u->eps);
  tf_silu_forward (ba->s1, ba->n1, (int) (px * C));
  tf_conv2d_forward (ba->h1, ba->s1, W (bo->conv1_w), W (bo->conv1_b), n, r, r, C, C, 3, 1);
  /* the timestep enters every block: W_t·temb + b_t on every pixel (the
   * sampler's rows share the encoder's one temb) */
  tf_linear_forward (u->tproj, u->temb, W (bo->time_w), W (bo->time_b), u->n_enc, u->d, C);
  for (int i = 0; i < n; i++)
    {
      const float *tp = u->tproj + (size_t) (u->n_enc == 1 ? 0 : i) * C;
      float *h = ba->h1 + (size_t) i * per_image * C;
      for (size_t p = 0; p < per_image; p++)
        for (int ch = 0; ch < C; ch++)
          h[p * C + ch] += tp[ch];
    }
  tf_rmsnorm_forward (ba->n2, ba->rstd2, ba->h1, W (bo->norm2), (int) px, C, u->eps);
  tf_silu_forward (ba->s2, ba->n2, (int) (px * C));
  tf_conv2d_forward (ba->out, ba->s2, W (bo->conv2_w), W (bo->conv2_b), n, r, r, C, C, 3, 1);
  for (size_t k = 0; k < px * C; k++)
    ba->out[k] += x[k];
}

/* @d holds d(out) and becomes d(x): the residual passes it through and the
 * block's path adds to it. */
static void
block_backward (TfUnetActs *u, const BlockActs *ba, const float *params, float *grads,
                const TfUnetBlockOffsets *bo, float *d, float *d_temb, int n, int level)
{
  const int C = u->C, r = side (u, level);
  const size_t px = pixels (u, n, level), per_image = (size_t) r * r;
  float *t1 = u->t1, *t2 = u->t2;
  memset (t1, 0, sizeof (float) * px * C);
  tf_conv2d_backward (t1, G (bo->conv2_w), G (bo->conv2_b), d, ba->s2, W (bo->conv2_w), n, r, r,
                      C, C, 3, 1);
  tf_silu_backward (t1, t1, ba->n2, (int) (px * C));
  memset (t2, 0, sizeof (float) * px * C);
  tf_rmsnorm_backward (t2, G (bo->norm2), t1, ba->h1, W (bo->norm2), ba->rstd2, (int) px, C);
  /* the timestep projection: summed over each image's pixels */
  memset (u->tproj, 0, sizeof (float) * n * C);
  for (int i = 0; i < n; i++)
    {
      float *tp = u->tproj + (size_t) i * C;
      const float *g = t2 + (size_t) i * per_image * C;
      for (size_t p = 0; p < per_image; p++)
        for (int ch = 0; ch < C; ch++)
          tp[ch] += g[p * C + ch];
    }
  tf_linear_backward (d_temb, G (bo->time_w), G (bo->time_b), u->tproj, u->temb, W (bo->time_w),
                      n, u->d, C);
  memset (t1, 0, sizeof (float) * px * C);
  tf_conv2d_backward (t1, G (bo->conv1_w), G (bo->conv1_b), t2, ba->s1, W (bo->conv1_w), n, r, r,
                      C, C, 3, 1);
  tf_silu_backward (t1, t1, ba->n1, (int) (px * C));
  tf_rmsnorm_backward (d, G (bo->norm1), t1, ba->x, W (bo->norm1), ba->rstd1, (int) px, C);
}

/* The output of level @l's blocks in the encoder (its skip) or the decoder. */
static const float *
level_out (const TfUnetActs *u, gboolean up, int l)
{
  if (u->blocks > 0)
    return (up ? u->up : u->down)[l * u->blocks + u->blocks - 1].out;
  return up ? u->up_sum[l] : l == 0 ? u->h_in : u->down_out[l - 1];
}

/* ---- Encoder -------------------------------------------------------------- */

void
tf_unet_encode (TfUnetActs *u, const float *params, const TfUnetOffsets *o, const float *images,
                const float *temb, int n, float *tokens)
{
  tf_unet_acts_reserve (u, n);
  u->n_enc = n;
  u->temb = temb;
  if (n <= 0)
    return;
  const int C = u->C, S = u->S;
  memcpy (u->image, images, sizeof (float) * pixels (u, n, 0) * u->Cimg);
  tf_conv2d_forward (u->h_in, u->image, W (o->in_w), W (o->in_b), n, S, S, u->Cimg, C, 3, 1);
  const float *h = u->h_in;
  for (int l = 0; l < u->levels; l++)
    {
      for (int b = 0; b < u->blocks; b++)
        {
          BlockActs *ba = &u->down[l * u->blocks + b];
          block_forward (u, ba, params, &o->down[l * u->blocks + b], h, n, l);
          h = ba->out;
        }
      const int r = side (u, l);
      tf_conv2d_forward (u->down_out[l], h, W (o->down_w[l]), W (o->down_b[l]), n, r, r, C, C,
                         3, 2);
      h = u->down_out[l];
    }
  /* the grid's cells, in patch order, to the model's width */
  tf_linear_forward (tokens, h, W (o->proj_in_w), W (o->proj_in_b), n * u->np, C, u->d);
}

static void
ensure_backward (TfUnetActs *u)
{
  if (u->d_a != NULL)
    return;
  const size_t full = pixels (u, u->cap, 0) * u->C;
  u->d_a = g_new (float, full); u->d_b = g_new (float, full);
  u->t1 = g_new (float, full); u->t2 = g_new (float, full);
  for (int l = 0; l < u->levels; l++)
    u->d_skip[l] = g_new (float, pixels (u, u->cap, l) * u->C);
}

void
tf_unet_encode_backward (TfUnetActs *u, const float *params, float *grads,
                         const TfUnetOffsets *o, const float *d_tokens, float *d_temb)
{
  const int n = u->n_enc, C = u->C, S = u->S;
  if (n <= 0)
    return;
  ensure_backward (u);
  float *d = u->d_a, *spare = u->d_b;
  const int grid = u->levels;
  memset (d, 0, sizeof (float) * pixels (u, n, grid) * C);
  tf_linear_backward (d, G (o->proj_in_w), G (o->proj_in_b), d_tokens, u->down_out[grid - 1],
                      W (o->proj_in_w), n * u->np, C, u->d);
  for (int l = u->levels - 1; l >= 0; l--)
    {
      /* d holds d(down_out[l]); through the stride-2 conv to the blocks' output */
      const int r = side (u, l);
      const size_t px = pixels (u, n, l);
      memcpy (spare, u->d_skip[l], sizeof (float) * px * C);
      tf_conv2d_backward (spare, G (o->down_w[l]), G (o->down_b[l]), d, level_out (u, FALSE, l),
                          W (o->down_w[l]), n, r, r, C, C, 3, 2);
      float *t = d;
      d = spare;
      spare = t;
      for (int b = u->blocks - 1; b >= 0; b--)
        block_backward (u, &u->down[l * u->blocks + b], params, grads, &o->down[l * u->blocks + b],
                        d, d_temb, n, l);
    }
  tf_conv2d_backward (NULL, G (o->in_w), G (o->in_b), d, u->image, W (o->in_w), n, S, S, u->Cimg,
                      C, 3, 1);
}

/* ---- Decoder -------------------------------------------------------------- */

void
tf_unet_decode (TfUnetActs *u, const float *params, const TfUnetOffsets *o, const float *hidden,
                int n, float *images)
{
  g_return_if_fail ((n == u->n_enc || u->n_enc == 1) && n <= u->cap);
  u->n_dec = n;
  u->hidden = hidden;
  if (n <= 0)
    return;
  const int C = u->C, S = u->S;
  tf_linear_forward (u->dec_grid, hidden, W (o->proj_out_w), W (o->proj_out_b), n * u->np, u->d,
                     C);
  const float *h = u->dec_grid;
  for (int l = u->levels - 1; l >= 0; l--)
    {
      const int r = side (u, l);
      const size_t per_image = (size_t) r * r * C;
      tf_upsample2x_forward (u->up_x[l], h, n, r / 2, r / 2, C);
      tf_conv2d_forward (u->up_sum[l], u->up_x[l], W (o->up_w[l]), W (o->up_b[l]), n, r, r, C, C,
                         3, 1);
      /* the skip of the matching encoder level, added */
      const float *skip = level_out (u, FALSE, l);
      for (int i = 0; u->skips && i < n; i++)
        {
          const float *s = skip + (u->n_enc == 1 ? 0 : (size_t) i * per_image);
          float *dst = u->up_sum[l] + (size_t) i * per_image;
          for (size_t k = 0; k < per_image; k++)
            dst[k] += s[k];
        }
      h = u->up_sum[l];
      for (int b = 0; b < u->blocks; b++)
        {
          BlockActs *ba = &u->up[l * u->blocks + b];
          block_forward (u, ba, params, &o->up[l * u->blocks + b], h, n, l);
          h = ba->out;
        }
    }
  const size_t px = pixels (u, n, 0);
  tf_rmsnorm_forward (u->out_n, u->out_rstd, h, W (o->out_norm), (int) px, C, u->eps);
  tf_silu_forward (u->out_s, u->out_n, (int) (px * C));
  tf_conv2d_forward (images, u->out_s, W (o->out_w), W (o->out_b), n, S, S, C, u->Cimg, 3, 1);
}

void
tf_unet_decode_backward (TfUnetActs *u, const float *params, float *grads,
                         const TfUnetOffsets *o, const float *d_images, float *d_hidden,
                         float *d_temb)
{
  const int n = u->n_dec, C = u->C, S = u->S;
  g_return_if_fail (n == u->n_enc);
  if (n <= 0)
    return;
  ensure_backward (u);
  float *d = u->d_a, *spare = u->d_b;
  const size_t full = pixels (u, n, 0);
  memset (u->t1, 0, sizeof (float) * full * C);
  tf_conv2d_backward (u->t1, G (o->out_w), G (o->out_b), d_images, u->out_s, W (o->out_w), n, S, S,
                      C, u->Cimg, 3, 1);
  tf_silu_backward (u->t1, u->t1, u->out_n, (int) (full * C));
  memset (d, 0, sizeof (float) * full * C);
  tf_rmsnorm_backward (d, G (o->out_norm), u->t1, level_out (u, TRUE, 0), W (o->out_norm),
                       u->out_rstd, (int) full, C);
  for (int l = 0; l < u->levels; l++)
    {
      const int r = side (u, l);
      const size_t px = pixels (u, n, l);
      for (int b = u->blocks - 1; b >= 0; b--)
        block_backward (u, &u->up[l * u->blocks + b], params, grads, &o->up[l * u->blocks + b], d,
                        d_temb, n, l);
      /* d is d(up_sum[l]): the skip's share, and through the conv and the up-sampling */
      if (u->skips)
        memcpy (u->d_skip[l], d, sizeof (float) * px * C);
      else
        memset (u->d_skip[l], 0, sizeof (float) * px * C);
      memset (u->t1, 0, sizeof (float) * px * C);
      tf_conv2d_backward (u->t1, G (o->up_w[l]), G (o->up_b[l]), d, u->up_x[l], W (o->up_w[l]), n,
                          r, r, C, C, 3, 1);
      memset (spare, 0, sizeof (float) * pixels (u, n, l + 1) * C);
      tf_upsample2x_backward (spare, u->t1, n, r / 2, r / 2, C);
      float *t = d;
      d = spare;
      spare = t;
    }
  tf_linear_backward (d_hidden, G (o->proj_out_w), G (o->proj_out_b), d, u->hidden,
                      W (o->proj_out_w), n * u->np, u->d, C);
}
