/* tf-conv-patch.h: linear patches with a small convolution around them
 * (image_encoder = conv), used by the training forward/backward (tf-model.c)
 * and the cached sampler (tf-generate.c) alike.
 *
 * Linear patches read the caption well, but each p×p patch is drawn alone,
 * so their pictures show seams; a U-Net has none but squeezes each cell
 * through its channels. This encoder is the middle: a 3×3 convolution at full
 * resolution before the patches and after them lets neighbouring patches
 * share pixels, while every token still carries its cell's full detail.
 * Images are channels-last [S, S, Cimg]; p = patch_size, C = conv_channels:
 *   encoder: x → conv 3×3 (Cimg → C, padding 1) → SiLU → patches of p·p·C
 *            values (ordered as tf_patchify orders them) → linear p·p·C → d:
 *            the tokens (patch_pos and temb are added by the caller, as for
 *            linear patches).
 *   decoder: the transformer's final (normalised) hidden states of the
 *            image's patches → linear d → p·p·C → unpatchify to [S, S, C] →
 *            SiLU → conv 3×3 (C → Cimg): the prediction (ε, v or x0) as an
 *            image.
 * Convolution weights are [Cout, 3·3·Cin] with columns (ky, kx, cin), as
 * tf_conv2d_forward() takes them. Internal to the engine. */
#pragma once

#include "transfusion.h"

#include <stddef.h>

G_BEGIN_DECLS

/* Offsets of the encoder's and decoder's tensors in the model's parameter buffer. */
typedef struct {
  size_t stem_w, stem_b;   /* conv.stem: [C, 9·Cimg], [C] */
  size_t in_w, in_b;       /* conv.in: [d, p·p·C], [d] */
  size_t out_w, out_b;     /* conv.out: [p·p·C, d], [p·p·C] */
  size_t head_w, head_b;   /* conv.head: [Cimg, 9·C], [Cimg] */
} TfConvPatchOffsets;

typedef struct _TfConvPatchActs TfConvPatchActs;

TfConvPatchActs *tf_conv_patch_acts_new (const TfConfig *config);
void             tf_conv_patch_acts_free (TfConvPatchActs *u);
/* Sizes the buffers for @n images (encode and decode do so for their own
 * count; reserving first keeps the sampler from reallocating). */
void             tf_conv_patch_acts_reserve (TfConvPatchActs *u, int n);

/* Encodes @n images [n, S, S, Cimg] (kept by pointer until the backward)
 * into @tokens [n · n_patches, d] (overwritten), in patch order. */
void tf_conv_patch_encode (TfConvPatchActs *u, const float *params, const TfConvPatchOffsets *o,
                           const float *images, int n, float *tokens);

/* Decodes @n images' final hidden states @hidden [n · n_patches, d] (kept by
 * pointer until the backward) into @images [n, S, S, Cimg]. The decoder does
 * not look at the encoder's activations: any @n will do (the sampler encodes
 * its one x_t once and decodes the conditional and unconditional rows). */
void tf_conv_patch_decode (TfConvPatchActs *u, const float *params, const TfConvPatchOffsets *o,
                           const float *hidden, int n, float *images);

/* Backward of the last decode: ADDS into the parameter gradients @grads and
 * into @d_hidden. */
void tf_conv_patch_decode_backward (TfConvPatchActs *u, const float *params, float *grads,
                                    const TfConvPatchOffsets *o, const float *d_images,
                                    float *d_hidden);

/* Backward of the last encode: ADDS into @grads (the image needs no gradient). */
void tf_conv_patch_encode_backward (TfConvPatchActs *u, const float *params, float *grads,
                                    const TfConvPatchOffsets *o, const float *d_tokens);

/* The offsets of a model's conv encoder tensors, or NULL for another image
 * encoder (defined in tf-model.c). */
const TfConvPatchOffsets *tf_model_conv_patch_offsets (const TfModel *model);

G_END_DECLS
