/* tf-unet.h: the U-Net patch encoder and decoder (image_encoder = unet;
 * Transfusion §4.4, issue 14), used by the training forward/backward
 * (tf-model.c) and the cached sampler (tf-generate.c) alike.
 *
 * Images are channels-last [H, W, C]. With p = 2^levels the patch size and
 * C = unet_channels at every level:
 *   encoder: conv_in 3×3 (image channels → C); per level: unet_blocks
 *            residual blocks, their output kept as the level's skip, then a
 *            3×3 convolution of stride 2 (halves the side); at the patch grid
 *            a per-cell linear C → d gives the tokens (patch_pos and temb are
 *            added by the caller, as for the linear patches).
 *   decoder: a per-cell linear d → C on the transformer's final (normalised)
 *            hidden states; per level, from the grid up: nearest 2×
 *            up-sampling, a 3×3 convolution, plus the skip of the matching
 *            encoder level (unless unet_skips is false: then all the decoder
 *            draws comes through the transformer), unet_blocks residual blocks; then RMSNorm, SiLU
 *            and a 3×3 convolution to the image's channels: the prediction
 *            (ε, v or x0) as an image.
 *   residual block: h = conv3×3(silu(norm(x))) + W_t·temb + b_t;
 *                   out = x + conv3×3(silu(norm(h)));
 *            norm = RMSNorm over each pixel's channels with a learned scale.
 * Internal to the engine. */
#pragma once

#include "transfusion.h"

#include <stddef.h>

G_BEGIN_DECLS

#define TF_UNET_MAX_LEVELS 11   /* patch_size ≤ image_size ≤ 1024 */

typedef struct {
  size_t norm1, conv1_w, conv1_b, time_w, time_b, norm2, conv2_w, conv2_b;
} TfUnetBlockOffsets;

/* Offsets of the U-Net's tensors in the model's parameter buffer. */
typedef struct {
  size_t in_w, in_b;
  size_t down_w[TF_UNET_MAX_LEVELS], down_b[TF_UNET_MAX_LEVELS];  /* stride-2 conv ending level l */
  size_t proj_in_w, proj_in_b, proj_out_w, proj_out_b;
  size_t up_w[TF_UNET_MAX_LEVELS], up_b[TF_UNET_MAX_LEVELS];      /* conv after up-sampling into level l */
  size_t out_norm, out_w, out_b;
  TfUnetBlockOffsets *down, *up;   /* [levels · blocks], index l · blocks + b */
} TfUnetOffsets;

typedef struct _TfUnetActs TfUnetActs;

TfUnetActs *tf_unet_acts_new (const TfConfig *config);
void        tf_unet_acts_free (TfUnetActs *u);
/* Sizes the buffers for @n images (the encoder does so for its own count;
 * a decoder of more images than its encoder needs them reserved first). */
void        tf_unet_acts_reserve (TfUnetActs *u, int n);

/* Encodes @n images [n, S, S, channels] at timestep embeddings @temb
 * [n, d] (kept by pointer until the backward) into @tokens [n · n_patches, d]
 * (overwritten), in patch order. Keeps what the decoder's skips and the
 * backward need. */
void tf_unet_encode (TfUnetActs *u, const float *params, const TfUnetOffsets *o,
                     const float *images, const float *temb, int n, float *tokens);

/* Decodes @n images' final hidden states @hidden [n · n_patches, d] (kept by
 * pointer until the backward) into @images [n, S, S, channels]. @n is the
 * encoder's count, or any count after an encoder of one image (the sampler's
 * conditional and unconditional rows share one x_t). */
void tf_unet_decode (TfUnetActs *u, const float *params, const TfUnetOffsets *o,
                     const float *hidden, int n, float *images);

/* Backward of the last decode (as many images as encoded): ADDS into the
 * parameter gradients @grads, @d_hidden and @d_temb. */
void tf_unet_decode_backward (TfUnetActs *u, const float *params, float *grads,
                              const TfUnetOffsets *o, const float *d_images, float *d_hidden,
                              float *d_temb);

/* Backward of the last encode, after tf_unet_decode_backward() (the skips'
 * gradients come from there): ADDS into @grads and @d_temb. */
void tf_unet_encode_backward (TfUnetActs *u, const float *params, float *grads,
                              const TfUnetOffsets *o, const float *d_tokens, float *d_temb);

/* The offsets of a model's U-Net tensors, or NULL for the linear patches
 * (defined in tf-model.c). */
const TfUnetOffsets *tf_model_unet_offsets (const TfModel *model);

G_END_DECLS
