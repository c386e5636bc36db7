/* tf-judge.h: the independent classifier that evaluation judges generated
 * Fashion-MNIST images with (issue 7).
 *
 * A small MLP built from the engine's layers: grey pixels (size², the mean of
 * the channels, in [-1, 1]) → linear + SiLU (hidden) → linear + SiLU
 * (features) → linear (ten class logits). It is trained on the Fashion-MNIST
 * train split only; its feature layer is the space the Fréchet distance of
 * evaluation is measured in. Parameters live in one contiguous buffer, in the
 * order fc1.weight, fc1.bias, fc2.weight, fc2.bias, fc3.weight, fc3.bias.
 *
 * Forward and backward exist in float (what the judge runs) and, with the
 * suffix _f64, in double (the finite-difference test), compiled from one
 * source (tf-judge-impl.h). */
#pragma once

#include <glib.h>

#include "tf-safetensors.h"
#include <stdint.h>

#include "tf-data.h"

G_BEGIN_DECLS

typedef struct {
  int size;       /* image side; input = size² */
  int hidden;
  int features;
  int classes;
} TfJudgeDims;

/* Floats in the parameter buffer, and in the activations of @n images. */
size_t tf_judge_n_params (const TfJudgeDims *dims);
size_t tf_judge_n_activations (const TfJudgeDims *dims, int n);

#define TF_JUDGE_DECLS(REAL, SUF)                                                       \
  /* @acts (tf_judge_n_activations floats) receives every layer's output; the      \
   * features and logits of image r are read with the accessors below. */            \
  void tf_judge_forward##SUF (const TfJudgeDims *dims, const REAL *params,             \
                              const REAL *input, int n, REAL *acts);                   \
  /* Mean cross-entropy of the last forward against @labels; ADDS its gradient     \
   * into @grads. @scratch holds n·(hidden + features + classes) values. */          \
  double tf_judge_backward##SUF (const TfJudgeDims *dims, const REAL *params,          \
                                 const REAL *input, int n, const REAL *acts,           \
                                 const int32_t *labels, REAL *grads, REAL *scratch);   \
  const REAL *tf_judge_acts_features##SUF (const TfJudgeDims *dims, const REAL *acts, int n); \
  const REAL *tf_judge_acts_logits##SUF (const TfJudgeDims *dims, const REAL *acts, int n);

TF_JUDGE_DECLS (float, )
TF_JUDGE_DECLS (double, _f64)

typedef struct _TfJudge TfJudge;

/* The default shape for 32×32 images: 1024 → 256 → 64 → 10. */
void tf_judge_dims_default (TfJudgeDims *dims, int size);

TfJudge *tf_judge_new (const TfJudgeDims *dims, uint64_t seed);
void     tf_judge_free (TfJudge *judge);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfJudge, tf_judge_free)

const TfJudgeDims *tf_judge_dims (const TfJudge *judge);
float *tf_judge_params (TfJudge *judge);

/* safetensors with tensors fc1.weight … fc3.bias and metadata "format"
 * ("transfusion-judge"), "dims" (JSON) and @provenance (may be NULL). */
gboolean tf_judge_save (TfJudge *judge, const char *path, const char *provenance,
                        GError **error);
TfJudge *tf_judge_load (const char *path, GError **error);
/* The same from an open file (@path names it in errors): every tensor is
 * checked against 'dims' before anything of their size is allocated. */
TfJudge *tf_judge_load_from (TfSafetensors *st, const char *path, GError **error);
/* The provenance a loaded judge carried, or NULL. */
const char *tf_judge_provenance (const TfJudge *judge);

/* Model pixels (size × size × channels in [-1, 1]) of @n images → the
 * judge's features (n × features, may be NULL) and predicted classes (may
 * be NULL). The images must have the judge's size. */
void tf_judge_classify (TfJudge *judge, const float *pixels, int n, int channels,
                        float *features, int *predicted);

typedef struct {
  int      epochs;
  int      batch;
  double   lr;           /* Adam, decayed by cosine to lr/20 */
  uint64_t seed;
  int      max_examples; /* > 0: only the first N train examples (tests) */
  int      validation;   /* train examples kept aside to report accuracy */
} TfJudgeTrainOptions;

void tf_judge_train_options_init (TfJudgeTrainOptions *options);

typedef struct {
  int    epoch, epochs;
  double loss;             /* mean training loss of the epoch */
  double validation_accuracy;
  double seconds;
} TfJudgeProgress;

/* Trains @judge on @train (the Fashion-MNIST train split: every example's
 * label is its class), one pixel of random shift as augmentation. Checks
 * *abort (may be NULL) between batches. */
gboolean tf_judge_train (TfJudge *judge, TfDataSource *train,
                         const TfJudgeTrainOptions *options,
                         void (*progress) (const TfJudgeProgress *p, gpointer user_data),
                         gpointer user_data, volatile gint *abort, GError **error);

/* Accuracy of @judge on the first @max (≤ 0: all) examples of @source. */
gboolean tf_judge_accuracy (TfJudge *judge, TfDataSource *source, int max, double *accuracy,
                            GError **error);

G_END_DECLS
