/* tf-layers.h: the model's layers, each a forward/backward pair.
 *
 * Conventions (as in llm.c): row-major activations [n, dim]; weights
 * [out, in] as in PyTorch, y = W x + b; every backward ADDS into the weight
 * gradients it is given, and into d_in unless documented to overwrite.
 * A NULL gradient pointer means "not needed".
 *
 * Each kernel exists in float (the engine) and, with the suffix _f64, in
 * double: both are compiled from the same source (tf-layers-impl.h), so the
 * double version's finite-difference test checks the float version's math. */
#pragma once

#include <stdint.h>
#include <string.h>

/* Attention masks are ranges: query i of a row sees keys lo[i]..hi[i]
 * (inclusive) of the same row; hi < lo means it sees nothing (padding).
 * The Transfusion mask is such a range: from the start of the query's
 * document to the query itself (text) or to the end of its image (patches). */

/* e^x in float within 2 ulp of the correctly rounded result for x in
 * [−87, 88] (clamped outside: 0 < e^x < ∞ always; NaN gives NaN), written without calls
 * or branches so that loops over it vectorize: x = k·ln2 + r with k an
 * integer found by the 1.5·2²³ rounding trick, e^r by its Taylor series
 * to r⁷ (|r| ≤ ln2/2), 2^k put straight into the exponent bits. */
static inline float
tf_expf (float x)
{
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  const float shift = 12582912.0f;   /* 1.5·2²³ */
  const float shifted = x * 1.44269504088896341f + shift;
  float k = shifted - shift;
  float r = x - k * 0.693145751953125f;      /* ln2, high part (exact product) */
  r = r - k * 1.42860682030941723e-6f;       /* ln2, low part */
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  /* k as an integer from the low bits of @shifted, not by converting k: a
   * NaN (which the clamp lets through, so that it comes out as NaN) has no
   * integer value, and converting it is undefined. Unsigned, so that the
   * shift is defined for it too. */
  uint32_t shifted_bits;
  memcpy (&shifted_bits, &shifted, sizeof shifted_bits);
  uint32_t bits = (shifted_bits - 0x4b400000u + 127u) << 23;
  float scale;
  memcpy (&scale, &bits, sizeof scale);
  return p * scale;
}

#define TF_LAYER_DECLS(REAL, SUF)                                                      \
  /* out[n,o] = in[n,i] · Wᵀ + b (b may be NULL) */                                   \
  void tf_linear_forward##SUF (REAL *out, const REAL *in, const REAL *w, const REAL *b, \
                               int n, int in_dim, int out_dim);                         \
  /* out[n,o] += in[n,i] · Wᵀ (a residual connection in the product) */              \
  void tf_linear_forward_add##SUF (REAL *out, const REAL *in, const REAL *w,           \
                                   int n, int in_dim, int out_dim);                     \
  void tf_linear_backward##SUF (REAL *d_in, REAL *d_w, REAL *d_b, const REAL *d_out,   \
                                const REAL *in, const REAL *w,                          \
                                int n, int in_dim, int out_dim);                        \
  /* out[n] = table[ids[n]] */                                                          \
  void tf_embedding_forward##SUF (REAL *out, const int32_t *ids, const REAL *table,     \
                                  int n, int dim);                                      \
  void tf_embedding_backward##SUF (REAL *d_table, const REAL *d_out, const int32_t *ids, \
                                   int n, int dim);                                     \
  /* out = x / sqrt(mean(x²) + eps) · w; rstd[n] saved for backward */                 \
  void tf_rmsnorm_forward##SUF (REAL *out, REAL *rstd, const REAL *in, const REAL *w,   \
                                int n, int dim, double eps);                            \
  void tf_rmsnorm_backward##SUF (REAL *d_in, REAL *d_w, const REAL *d_out,              \
                                 const REAL *in, const REAL *w, const REAL *rstd,       \
                                 int n, int dim);                                       \
  /* Rotary embedding in place on x[n, stride] (heads at columns h·head_dim),         \
   * interleaved pairs, pair j turned by pos·theta^(−2j/head_dim) with pos from        \
   * pos_row[n] for even j and pos_col[n] for odd j (axial RoPE: an image patch's     \
   * row and column); @pos_col NULL: pos_row for every pair (1-D RoPE).               \
   * Backward rotates back. */                                                          \
  void tf_rope_forward##SUF (REAL *x, int stride, const int *pos_row, const int *pos_col, \
                             int n, int n_heads, int head_dim, double theta);           \
  /* table[p, j] = (cos, sin) of (p0 + p)·theta^(−2j/head_dim) for n_pos positions;  \
   * tf_rope_forward_table rotates with a table that starts at position 0. */         \
  void tf_rope_table##SUF (REAL *table, int p0, int n_pos, int head_dim, double theta); \
  void tf_rope_forward_table##SUF (REAL *x, int stride, const int *pos_row,             \
                                   const int *pos_col, int n, int n_heads, int head_dim, \
                                   const REAL *table);                                  \
  void tf_rope_backward##SUF (REAL *d_x, int stride, const int *pos_row,                \
                              const int *pos_col, int n, int n_heads, int head_dim,     \
                              double theta);                                            \
  /* qkv[b·L + i, 3d] → out[b·L + i, d]; probs[b, h, L, L] saved (only the           \
   * visible range of each row is written). */                                        \
  void tf_attention_forward##SUF (REAL *out, REAL *probs, const REAL *qkv,              \
                                  const int *lo, const int *hi,                         \
                                  int batch, int seq_len, int n_heads, int head_dim);   \
  /* d_qkv is OVERWRITTEN. */                                                           \
  void tf_attention_backward##SUF (REAL *d_qkv, const REAL *d_out, const REAL *qkv,     \
                                   const REAL *probs, const int *lo, const int *hi,     \
                                   int batch, int seq_len, int n_heads, int head_dim);  \
  /* Sampling: n new queries (q rows @q_stride apart) over a KV cache [*, d]     \
   * that already holds the new keys at p0..p0+n−1: query i sees keys 0..p0+i     \
   * (causal) or, with @block (an image), 0..p0+n−1. @scores is scratch of        \
   * n_heads·n·(p0+n) values. Forward only. */                                    \
  void tf_attention_cached_forward##SUF (REAL *out, REAL *scores, const REAL *q,       \
                                         int q_stride, const REAL *k_cache,             \
                                         const REAL *v_cache, int p0, int n, int block, \
                                         int n_heads, int head_dim);                    \
  /* gate_up[n, 2h] = [g | u] → out[n, h] = silu(g) · u; d_gate_up OVERWRITTEN. */    \
  void tf_swiglu_forward##SUF (REAL *out, const REAL *gate_up, int n, int hidden);      \
  void tf_swiglu_backward##SUF (REAL *d_gate_up, const REAL *d_out, const REAL *gate_up, \
                                int n, int hidden);                                     \
  /* out = silu(in), elementwise; d_in OVERWRITTEN */                                   \
  void tf_silu_forward##SUF (REAL *out, const REAL *in, int n);                         \
  void tf_silu_backward##SUF (REAL *d_in, const REAL *d_out, const REAL *in, int n);    \
  /* adaLN (DiT): out[r] = in[r]·(1 + scale[g]) + shift[g] for rows of group       \
   * g = group[r] ≥ 0 (an image; its values at g·mod_stride), out[r] = in[r] for   \
   * group −1. out may be in. Backward OVERWRITES d_in, ADDS into d_shift, d_scale. */ \
  void tf_modulate_forward##SUF (REAL *out, const REAL *in, const REAL *shift,          \
                                 const REAL *scale, int mod_stride, const int *group,  \
                                 int n, int dim);                                       \
  void tf_modulate_backward##SUF (REAL *d_in, REAL *d_shift, REAL *d_scale,             \
                                  const REAL *d_out, const REAL *in, const REAL *scale, \
                                  int mod_stride, const int *group, int n, int dim);    \
  /* A gated residual: x[r] += gate[g] ⊙ y[r] (group g ≥ 0) or += y[r] (−1).         \
   * Backward OVERWRITES d_y, ADDS into d_gate; d_x passes through the residual.     */ \
  void tf_gate_residual_forward##SUF (REAL *x, const REAL *y, const REAL *gate,         \
                                      int mod_stride, const int *group, int n, int dim); \
  void tf_gate_residual_backward##SUF (REAL *d_y, REAL *d_gate, const REAL *d_x,        \
                                       const REAL *y, const REAL *gate, int mod_stride, \
                                       const int *group, int n, int dim);               \
  /* Sinusoidal code of t: [cos(t·f_0..), sin(t·f_0..)], f_i = 10000^(−i/half) */      \
  void tf_timestep_code##SUF (REAL *out, double t, int dim);                            \
  /* Cross-entropy per position with target ≥ 0 (others give 0); returns the sum.    \
   * Backward OVERWRITES d_logits: scale·(softmax − onehot), 0 without target. */     \
  double tf_cross_entropy_forward##SUF (REAL *losses, const REAL *logits,               \
                                        const int32_t *targets, int n, int vocab);      \
  void tf_cross_entropy_backward##SUF (REAL *d_logits, const REAL *logits,              \
                                       const int32_t *targets, int n, int vocab,        \
                                       double scale);                                   \
  /* Σ (pred − target)² over n values; backward OVERWRITES d_pred = 2·scale·(pred − target) */ \
  double tf_squared_error_forward##SUF (const REAL *pred, const REAL *target, int n);   \
  void tf_squared_error_backward##SUF (REAL *d_pred, const REAL *pred,                  \
                                       const REAL *target, int n, double scale);        \
  /* 2-D convolution on channels-last images (U-Net, issue 14): in [n, H, W, Cin] → \
   * out [n, Ho, Wo, Cout], a k×k kernel (k odd) with zero padding k/2 and stride  \
   * 1 or 2 (Ho = (H − 1)/stride + 1); w [Cout, k·k·Cin] with columns (ky, kx, cin), \
   * b [Cout] or NULL. As im2col and one product. Backward ADDS into d_in, d_w, d_b  \
   * (each may be NULL). */                                                          \
  void tf_conv2d_forward##SUF (REAL *out, const REAL *in, const REAL *w, const REAL *b, \
                               int n, int H, int W, int Cin, int Cout, int k, int stride); \
  void tf_conv2d_backward##SUF (REAL *d_in, REAL *d_w, REAL *d_b, const REAL *d_out,   \
                                const REAL *in, const REAL *w, int n, int H, int W,     \
                                int Cin, int Cout, int k, int stride);                  \
  /* Nearest-neighbour 2× up-sampling: in [n, H, W, C] → out [n, 2H, 2W, C].         \
   * Backward ADDS into d_in (the sum of each pixel's four copies). */                \
  void tf_upsample2x_forward##SUF (REAL *out, const REAL *in, int n, int H, int W, int C); \
  void tf_upsample2x_backward##SUF (REAL *d_in, const REAL *d_out, int n, int H, int W, \
                                    int C);                                             \
  /* image[H, W, C] ↔ patches[(H/p)·(W/p), p·p·C], row-major patches,                \
   * channels-last inside a patch */                                                    \
  void tf_patchify##SUF (REAL *patches, const REAL *image, int size, int channels, int p); \
  void tf_unpatchify##SUF (REAL *image, const REAL *patches, int size, int channels, int p);

TF_LAYER_DECLS (float, )
TF_LAYER_DECLS (double, _f64)

/* Axial RoPE's positions for the side × side patches of an image, row-major,
 * the first at document index @first: the patch at grid row r, column c
 * turns by first + r (pos_row) and first + c (pos_col). */
void tf_rope_image_positions (int *pos_row, int *pos_col, int first, int side);
