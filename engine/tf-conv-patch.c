/* tf-conv-patch.c: linear patches with a 3×3 convolution at full resolution
 * before and after them (see tf-conv-patch.h). Every full-resolution
 * activation is a channels-last image batch [n, S, S, C], so each
 * convolution runs over all images at once; the per-patch linear maps run
 * over all patches at once. */
#include "config.h"
#include "tf-conv-patch.h"
#include "tf-layers.h"

#include <string.h>

struct _TfConvPatchActs {
  int S, Cimg, C, d, p, np, cell;   /* cell = p·p·C, a patch's values */
  int cap;                 /* images the buffers hold */
  int n_enc, n_dec;        /* images of the last encode and decode */
  const float *image;      /* [n_enc, S, S, Cimg], the caller's */
  const float *hidden;     /* [n_dec · np, d], the caller's */

  float *stem;             /* [n, S, S, C] the stem convolution's output */
  float *stem_s;           /* [n, S, S, C] silu(stem) */
  float *cells;            /* [n · np, cell] silu(stem) in patches: conv.in's input */
  float *dec_cells;        /* [n · np, cell] conv.out's output */
  float *dec;              /* [n, S, S, C] dec_cells as images */
  float *dec_s;            /* [n, S, S, C] silu(dec): conv.head's input */

  /* backward scratch, allocated on the first backward */
  float *d_cells;          /* [n · np, cell] */
  float *d_full;           /* [n, S, S, C] */
};

static size_t
full_values (const TfConvPatchActs *u, int n)
{
  return (size_t) n * u->S * u->S * u->C;
}

TfConvPatchActs *
tf_conv_patch_acts_new (const TfConfig *c)
{
  TfConvPatchActs *u = g_new0 (TfConvPatchActs, 1);
  u->S = c->image_size;
  u->Cimg = c->image_channels;
  u->C = c->conv_channels;
  u->d = c->d_model;
  u->p = c->patch_size;
  u->np = tf_config_n_patches (c);
  u->cell = c->patch_size * c->patch_size * c->conv_channels;
  return u;
}

static void
release (TfConvPatchActs *u)
{
  g_clear_pointer (&u->stem, g_free);
  g_clear_pointer (&u->stem_s, g_free);
  g_clear_pointer (&u->cells, g_free);
  g_clear_pointer (&u->dec_cells, g_free);
  g_clear_pointer (&u->dec, g_free);
  g_clear_pointer (&u->dec_s, g_free);
  g_clear_pointer (&u->d_cells, g_free);
  g_clear_pointer (&u->d_full, g_free);
  u->cap = 0;
}

void
tf_conv_patch_acts_free (TfConvPatchActs *u)
{
  if (u == NULL)
    return;
  release (u);
  g_free (u);
}

void
tf_conv_patch_acts_reserve (TfConvPatchActs *u, int n)
{
  if (n <= u->cap)
    return;
  release (u);
  const size_t full = full_values (u, n);   /* = n · np · cell */
  u->stem = g_new (float, full);
  u->stem_s = g_new (float, full);
  u->cells = g_new (float, full);
  u->dec_cells = g_new (float, full);
  u->dec = g_new (float, full);
  u->dec_s = g_new (float, full);
  u->cap = n;
}

static void
ensure_backward (TfConvPatchActs *u)
{
  if (u->d_cells != NULL)
    return;
  u->d_cells = g_new (float, full_values (u, u->cap));
  u->d_full = g_new (float, full_values (u, u->cap));
}

#define W(off) (params + (off))
#define G(off) (grads + (off))

/* ---- Encoder -------------------------------------------------------------- */

void
tf_conv_patch_encode (TfConvPatchActs *u, const float *params, const TfConvPatchOffsets *o,
                      const float *images, int n, float *tokens)
{
  tf_conv_patch_acts_reserve (u, n);
  u->n_enc = n;
  u->image = images;
  if (n <= 0)
    return;
  const int S = u->S, C = u->C;
  const size_t per_image = (size_t) S * S * C;
  tf_conv2d_forward (u->stem, images, W (o->stem_w), W (o->stem_b), n, S, S, u->Cimg, C, 3, 1);
  tf_silu_forward (u->stem_s, u->stem, (int) full_values (u, n));
  for (int i = 0; i < n; i++)
    tf_patchify (u->cells + (size_t) i * u->np * u->cell, u->stem_s + i * per_image, S, C, u->p);
  tf_linear_forward (tokens, u->cells, W (o->in_w), W (o->in_b), n * u->np, u->cell, u->d);
}

void
tf_conv_patch_encode_backward (TfConvPatchActs *u, const float *params, float *grads,
                               const TfConvPatchOffsets *o, const float *d_tokens)
{
  const int n = u->n_enc, S = u->S, C = u->C;
  if (n <= 0)
    return;
  ensure_backward (u);
  const size_t per_image = (size_t) S * S * C, full = full_values (u, n);
  memset (u->d_cells, 0, sizeof (float) * full);
  tf_linear_backward (u->d_cells, G (o->in_w), G (o->in_b), d_tokens, u->cells, W (o->in_w),
                      n * u->np, u->cell, u->d);
  for (int i = 0; i < n; i++)
    tf_unpatchify (u->d_full + i * per_image, u->d_cells + (size_t) i * u->np * u->cell, S, C,
                   u->p);
  tf_silu_backward (u->d_full, u->d_full, u->stem, (int) full);
  tf_conv2d_backward (NULL, G (o->stem_w), G (o->stem_b), u->d_full, u->image, W (o->stem_w), n,
                      S, S, u->Cimg, C, 3, 1);
}

/* ---- Decoder -------------------------------------------------------------- */

void
tf_conv_patch_decode (TfConvPatchActs *u, const float *params, const TfConvPatchOffsets *o,
                      const float *hidden, int n, float *images)
{
  tf_conv_patch_acts_reserve (u, n);
  u->n_dec = n;
  u->hidden = hidden;
  if (n <= 0)
    return;
  const int S = u->S, C = u->C;
  const size_t per_image = (size_t) S * S * C;
  tf_linear_forward (u->dec_cells, hidden, W (o->out_w), W (o->out_b), n * u->np, u->d, u->cell);
  for (int i = 0; i < n; i++)
    tf_unpatchify (u->dec + i * per_image, u->dec_cells + (size_t) i * u->np * u->cell, S, C,
                   u->p);
  tf_silu_forward (u->dec_s, u->dec, (int) full_values (u, n));
  tf_conv2d_forward (images, u->dec_s, W (o->head_w), W (o->head_b), n, S, S, C, u->Cimg, 3, 1);
}

void
tf_conv_patch_decode_backward (TfConvPatchActs *u, const float *params, float *grads,
                               const TfConvPatchOffsets *o, const float *d_images,
                               float *d_hidden)
{
  const int n = u->n_dec, S = u->S, C = u->C;
  if (n <= 0)
    return;
  ensure_backward (u);
  const size_t per_image = (size_t) S * S * C, full = full_values (u, n);
  memset (u->d_full, 0, sizeof (float) * full);
  tf_conv2d_backward (u->d_full, G (o->head_w), G (o->head_b), d_images, u->dec_s, W (o->head_w),
                      n, S, S, C, u->Cimg, 3, 1);
  tf_silu_backward (u->d_full, u->d_full, u->dec, (int) full);
  for (int i = 0; i < n; i++)
    tf_patchify (u->d_cells + (size_t) i * u->np * u->cell, u->d_full + i * per_image, S, C,
                 u->p);
  tf_linear_backward (d_hidden, G (o->out_w), G (o->out_b), u->d_cells, u->hidden, W (o->out_w),
                      n * u->np, u->d, u->cell);
}
