/* tf-training.h: the trainer, driven from a worker thread (issue 19).
 *
 * A TfTraining runs one training run at a time (engine/tf-train.h) in a
 * thread of its own and reports on the main context that was the
 * thread-default when it was created, as signals, the way TfGeneration
 * does: every step's losses (bursts merged into one `progress`), a grid of
 * sample images now and then, and the end. The run's files are the
 * trainer's: the model, its state and its log beside options->out.
 *
 * Pausing raises the trainer's abort flag: it saves between two steps and
 * the run ends with TF_TRAINING_PAUSED; starting again with
 * options->resume continues it bit for bit, in this process or another.
 * Stopping is the same save, but the run ends with TF_TRAINING_STOPPED:
 * the model as it is is the result.
 *
 * Samples: each prompt drawn with the model file as just saved (EMA
 * weights; DDIM, 25 steps, guidance 3, seed 1 + its index, so grids from
 * different moments compare), before the first step, every
 * `sample_minutes` and at the end.
 *
 * No GTK here: the tests could drive it with a plain GMainLoop. */
#pragma once

#include <gio/gio.h>

#include "tf-train.h"

G_BEGIN_DECLS

typedef enum {
  TF_TRAINING_FINISHED,   /* all steps done, model saved */
  TF_TRAINING_PAUSED,     /* saved; resume with options->resume */
  TF_TRAINING_STOPPED,    /* saved before the end, on request: the model is the result */
  TF_TRAINING_FAILED,     /* the error says why; what was saved before is intact */
} TfTrainingEnd;

#define TF_TYPE_TRAINING (tf_training_get_type ())
G_DECLARE_FINAL_TYPE (TfTraining, tf_training, TF, TRAINING, GObject)

/* Signals (on the creating thread's main context):
 *
 *   progress ()
 *       new steps are done: tf_training_get_points() has them and
 *       tf_training_get_progress() the latest. Also once when a resumed
 *       run has read its earlier log (points, no progress yet).
 *   samples (guint n_images, guint size, guint channels, GBytes *pixels)
 *       n_images images of size × size × channels floats in [-1, 1], one
 *       per prompt, in the prompts' order, drawn at step tf_training_get_samples_step().
 *   ended (TfTrainingEnd end, GError *error)
 *       the run is over (error NULL unless end is TF_TRAINING_FAILED);
 *       running is FALSE inside the handlers.
 *
 * Property: "running" (gboolean, read-only, notifies). */

TfTraining *tf_training_new (void);

/* Starts a run with @options (copied). @minutes > 0 (and not resuming):
 * options->steps is replaced by as many steps as fit in that time, measured
 * on two throwaway steps first. @prompts: what to draw in the samples (may
 * be NULL or empty: no samples). FALSE with G_IO_ERROR_BUSY while a run
 * goes on. */
gboolean tf_training_start (TfTraining           *self,
                            const TfTrainOptions *options,
                            double                minutes,
                            const char *const    *prompts,
                            double                sample_minutes,
                            GError              **error);

/* Save and end, to resume later / save and end for good. */
void tf_training_pause (TfTraining *self);
void tf_training_stop (TfTraining *self);
/* Waits for the worker to end (after a pause or stop: one step and a save
 * at most); `ended` still comes on the main context. */
void tf_training_wait (TfTraining *self);

gboolean tf_training_get_running (TfTraining *self);
/* TfLossPoint (tf-loss-plot.h) of every step of the run, earlier runs of a
 * resumed one included. */
GArray *tf_training_get_points (TfTraining *self);
/* The latest step's report (step 0 before any). */
const TfTrainProgress *tf_training_get_progress (TfTraining *self);
/* The model file of the run (options->out), or NULL before a start. */
const char *tf_training_get_model_path (TfTraining *self);
/* How many sample grids have come, and the step of the latest. */
guint   tf_training_get_n_sample_grids (TfTraining *self);
int64_t tf_training_get_samples_step (TfTraining *self);

/* The data of a warm start that keeps what the model knew: @folder first,
 * then the sources the model was trained on with their weights, as its
 * @provenance (the "provenance" metadata, or NULL) names them, else the
 * standard image sources (fashion, shapes, emoji). The folder weighs as
 * much as all of them together: about half the documents are the folder's.
 * A source this computer does not have (tf_data_source_installed()) is left
 * out and named in @missing. @data (NULL-terminated) and @weights as
 * TfTrainOptions holds them; free with g_strfreev() and g_free(). */
void tf_training_keep_mix (const char  *folder,
                           const char  *provenance,
                           char      ***data,
                           double     **weights,
                           char      ***missing);

G_END_DECLS
