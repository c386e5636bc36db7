/* transfusion.h: the engine's public API.
 *
 * One transformer over mixed sequences of text tokens and image patches
 * (Zhou et al., 2024). A TfModel owns the parameters (one contiguous buffer)
 * and, when training, the gradients that mirror them. A TfBatch describes
 * sequences as segments; tf_model_forward() computes the losses and keeps the
 * activations that tf_model_backward() needs. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "tf-config.h"
#include "tf-safetensors.h"

G_BEGIN_DECLS

/* ---- Parameters ------------------------------------------------------- */

typedef struct {
  const char *name;     /* "layers.3.attn.wq" */
  int         n_dims;
  int         shape[2];
  size_t      offset;   /* in floats, into the parameter buffer */
  size_t      size;     /* elements */
  gboolean    is_matrix; /* weight decay applies (2-D weights, not norms/biases) */
} TfParamInfo;

typedef struct _TfModel TfModel;

TfModel *tf_model_new (const TfConfig *config, GError **error);
/* The parameters a valid @config has, without allocating them (@what names
 * the config in the error). */
gboolean tf_config_count_params (const TfConfig *config, size_t *n_params, const char *what,
                                 GError **error);
void     tf_model_free (TfModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfModel, tf_model_free)

const TfConfig *tf_model_config (const TfModel *model);
size_t tf_model_n_params (const TfModel *model);       /* floats */
int    tf_model_n_tensors (const TfModel *model);
const TfParamInfo *tf_model_tensor (const TfModel *model, int index);
const TfParamInfo *tf_model_find_tensor (const TfModel *model, const char *name);
/* The weights, to change: every call counts as a change, so that copies
 * made of them (a generator's bf16 weights) are made again; change them
 * through a pointer got after the last use of the old ones. To read them,
 * tf_model_weights(). */
float *tf_model_params (TfModel *model);
const float *tf_model_weights (const TfModel *model);
/* Goes up with every tf_model_params() and every load or initialisation. */
guint64 tf_model_weights_version (const TfModel *model);
/* The gradient buffer (same layout), allocated on first use. */
float *tf_model_grads (TfModel *model);
void   tf_model_zero_grads (TfModel *model);

/* Deterministic initialisation from @seed: normal(0, 0.02) matrices,
 * output projections scaled by 1/sqrt(2·n_layers), norms at 1, biases at 0. */
void tf_model_init_random (TfModel *model, uint64_t seed);

/* Loads a checkpoint: config from __metadata__, every tensor checked against
 * the config's shapes (F32/F16/BF16/F64 accepted). Errors name the file and
 * the tensor. */
TfModel *tf_model_load (const char *path, GError **error);
/* The same from a file already open (its other metadata, such as the
 * tokenizer, can then be read without opening it again). */
TfModel *tf_model_load_from (TfSafetensors *st, GError **error);
/* Writes the parameters (F32 or F16/BF16) with "format", "config" and the
 * extra metadata given (e.g. "tokenizer", "provenance"). Atomic. */
gboolean tf_model_save (TfModel *model, const char *path, TfDtype dtype,
                        const char *const *meta_keys, const char *const *meta_values,
                        int n_meta, GError **error);
/* The same for another buffer of this model's layout (an EMA copy, say). */
gboolean tf_model_save_weights (TfModel *model, const float *weights, const char *path,
                                TfDtype dtype, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta, GError **error);

/* ---- Noise schedule -------------------------------------------------- */

/* ᾱ(t) for t = 0..T of the cosine schedule (Nichol & Dhariwal, s = 0.008,
 * betas clipped at 0.999); ᾱ(0) = 1 (clean). Returns a table of T+1 values
 * owned by the model. */
const double *tf_model_alpha_bar (const TfModel *model);

/* ---- Batches ----------------------------------------------------------- */

typedef enum {
  TF_SEGMENT_TEXT,
  TF_SEGMENT_IMAGE,
} TfSegmentKind;

typedef struct {
  TfSegmentKind kind;
  /* Starts a new document: attention does not cross documents and RoPE
   * positions restart at 0 (for packing several examples in one row). The
   * first segment of a sequence always starts a document. */
  gboolean      new_document;
  /* TF_SEGMENT_TEXT */
  const int32_t *tokens;
  int            n_tokens;
  /* TF_SEGMENT_IMAGE: clean pixels x0 in [-1, 1], H×W×C channels-last,
   * the noise ε (same size; may be NULL when t == 0) and the noise level t in
   * 0..T. The model sees x_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·ε. */
  const float   *pixels;
  const float   *noise;
  int            t;
  /* Whether this image contributes to L_DDPM (ignored when t == 0). */
  gboolean       diffusion_loss;
  /* The pixels are already x_t (sampling): they are used as they are, noise
   * is not needed and there is no diffusion loss. */
  gboolean       noised;
} TfSegment;

typedef struct {
  const TfSegment *segments;
  int              n_segments;
} TfSequence;

typedef struct {
  const TfSequence *sequences;
  int               n_sequences;
  float             lambda;      /* weight of L_DDPM (SPEC: 5) */
} TfBatch;

typedef struct {
  double loss;        /* L_LM + λ·L_DDPM */
  double lm;          /* mean cross-entropy over text targets (0 if none) */
  double ddpm;        /* mean over images of per-image MSE of the prediction
                       * (times its Min-SNR-γ weight; 0 if none) */
  int    n_text_targets;
  int    n_images;    /* images in the diffusion loss */
  int    n_positions; /* real (non-padding) positions */
  int    seq_len;     /* padded row length used */
} TfLosses;

/* Activations for one forward/backward, planned for a batch shape and
 * reused while later batches fit. */
typedef struct _TfActivations TfActivations;

TfActivations *tf_activations_new (TfModel *model);
void tf_activations_free (TfActivations *acts);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfActivations, tf_activations_free)

/* Runs the model on @batch, fills @losses. Fails (without touching the
 * model) on a malformed batch: token ids out of range, a row longer than
 * max_seq_len, t out of range, missing noise. */
gboolean tf_model_forward (TfModel *model, TfActivations *acts, const TfBatch *batch,
                           TfLosses *losses, GError **error);
/* Adds d(loss)/d(params) of the last forward into the gradient buffer. */
void tf_model_backward (TfModel *model, TfActivations *acts);

/* Outputs of the last forward, for tests and samplers. Row-major over the
 * padded batch: logits [B, L, V] (text positions only: the LM head does not
 * run elsewhere, and those rows are zero); pred [B, L, patch_dim], the image
 * head's output: ε, v or x0 as config.prediction says (rows of non-patch
 * positions are zero). */
const float *tf_activations_logits (TfActivations *acts);
const float *tf_activations_pred (const TfActivations *acts);
/* The image head's output for image @index (in batch order) un-patchified to H×W×C. */
void tf_activations_image_pred (const TfActivations *acts, int index, float *out);
int tf_activations_batch (const TfActivations *acts);
int tf_activations_seq_len (const TfActivations *acts);

/* Kinds of position, for tests of the mask. */
enum { TF_POS_PAD = 0, TF_POS_TEXT = 1, TF_POS_PATCH = 2 };
/* Whether position @j is visible from position @i of row @b in the last
 * forward's mask. */
gboolean tf_activations_can_attend (const TfActivations *acts, int b, int i, int j);
int tf_activations_position_kind (const TfActivations *acts, int b, int i);

const char *tf_version (void);

G_END_DECLS
