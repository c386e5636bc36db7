/* tf-train.h: training a Transfusion model (SPEC §3, issue 3).
 *
 * A TfTrainer owns the model, its gradients, the AdamW moments, the EMA copy,
 * the tokenizer, the data sources and one random generator. Every random
 * draw (which source, which example, caption phrasing, caption dropping,
 * order, t and ε) comes from that generator, and its state is saved with the
 * step: resuming from a checkpoint continues bit for bit as if the run had
 * never stopped.
 *
 * Files: OUT (the model for sampling: EMA weights, F32, with tokenizer and
 * provenance metadata) and the training state beside it (OUT with
 * ".safetensors" replaced by ".state.safetensors": raw weights, moments,
 * EMA, step, RNG and options). Both are written atomically, state first. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "transfusion.h"
#include "tf-gemm.h"
#include "tf-tokenizer.h"
#include "tf-safetensors.h"
#include "tf-rng.h"

G_BEGIN_DECLS

typedef struct {
  char    *preset;          /* "tiny", "small", "default", "large" */
  char   **data;            /* NULL-terminated: fashion, emoji, shapes, wordnet, or a folder */
  double  *weights;         /* mixing weight per data entry (NULL: 1 each) */
  char    *out;             /* OUT.safetensors */
  int64_t  steps;           /* total optimizer steps */
  int      batch;           /* rows per step, each up to max_seq_len positions */
  double   lr;              /* peak learning rate */
  double   min_lr_ratio;    /* the schedule ends at lr · this */
  /* 0: cosine decay from the warm-up's end to the last step. F > 0:
   * warm-up, then the peak held, then a linear decay over the last F of the
   * steps (warmup-stable-decay): until the decay begins, a resumed run may
   * be given more --steps and goes on as if it had been started with them. */
  double   decay_fraction;
  int64_t  warmup_steps;    /* −1: 5% of steps, at most 1000 */
  double   weight_decay;    /* on matrices only */
  double   beta1, beta2, adam_eps;
  double   clip;            /* global gradient-norm clip */
  double   ema_decay;
  uint64_t seed;
  double   save_every_minutes;
  int64_t  save_every_steps; /* 0: by time only */
  int64_t  until_step;      /* > 0: stop (and save) there; the schedule still
                             * runs to steps, so a later --resume continues */
  double   image_first;     /* fraction of image–caption pairs put image first */
  double   cfg_drop;        /* fraction of caption-first pairs with the caption dropped */
  double   chat_fraction;   /* fraction of examples put in the chat template */
  double   lambda;          /* weight of L_DDPM */
  int      vocab_size;      /* for a new tokenizer; 0: by preset */
  int64_t  max_examples;    /* > 0: use only the first N examples of each source */
  /* The image side's recipe over the preset's, "key=value,…" as
   * tf_config_apply_recipe() reads it (NULL or "": the preset's). */
  char    *recipe;
  gboolean resume;
  /* A new run that starts from this model's weights (and tokenizer) rather
   * than random ones: a warm restart, when the data mix or options change.
   * The optimizer moments start at zero and the provenance says so. Not part
   * of the options a resumed run must repeat. */
  char    *init_from;
  /* The matrix products' precision (tf-gemm.h): a run-time choice, not part
   * of the run's identity. The state saves it, and a resumed run repeats it
   * unless told otherwise (only the same precision continues bit for bit).
   * The provenance names what ran: "fp32", "bf16 (oneDNN)", "bf16
   * (emulated)". */
  TfPrecision precision;
} TfTrainOptions;

/* Defaults as in SPEC §3: AdamW (0.9, 0.95), eps 1e-8, wd 0.1, clip 1,
 * λ = 5, 20% image first, 10% caption dropped, EMA 0.999. */
void tf_train_options_init (TfTrainOptions *options);
void tf_train_options_clear (TfTrainOptions *options);

/* Sets every option a resumed run must repeat (and --steps) to what the
 * run saved beside @model_path was started with, so that `--resume` needs
 * nothing else. */
gboolean tf_train_options_load_saved (TfTrainOptions *options, const char *model_path,
                                      GError **error);

/* A prompt as people might write it for @caption of data source @source
 * (shapes and emoji: now and then without where, how large or on what
 * background, or with "big", "little", "center"; others unchanged). Newly
 * allocated; draws from @rng. */
char *tf_train_loosen_prompt (const char *source, const char *caption, TfRng *rng);

/* The learning rate of step @step (0-based) of a run with @options. */
double tf_train_learning_rate (const TfTrainOptions *options, int64_t step);

/* The path of the training state for a model path. */
char *tf_train_state_path (const char *model_path);
/* The path of the log of every step (OUT.log.jsonl for OUT.safetensors). */
char *tf_train_log_path (const char *model_path);

/* How much training a model's weights hold: the run that wrote them and
 * every run it was warm-started from, by the chain of "warm_start" in its
 * provenance (also as the text that files written before the chain was
 * JSON hold: "weights of X (its provenance: {…}); …"). */
typedef struct {
  int64_t run_steps;        /* the run that wrote them */
  double  run_wall_seconds;
  int     runs;             /* it and those it started from */
  int64_t steps;            /* their steps added up */
  double  wall_seconds;     /* their training time added up */
} TfLineage;

/* FALSE when @provenance is NULL or not the trainer's (a JSON object with
 * its "step"); a link of the chain that does not read ends it there. */
gboolean tf_provenance_lineage (const char *provenance, TfLineage *lineage);

/* The file name of the model a warm start began from, as @provenance
 * records it (either form); NULL when it records none that reads. */
char *tf_provenance_started_from (const char *provenance);

/* The side a grey picture a person gives the model is fitted within
 * (tf_image_to_model_picture): 28 when the run that wrote @provenance
 * trained on Fashion-MNIST, whose grey 28 × 28 images it placed unscaled on
 * @image_size (larger than 28); else 0, and pictures fill the image. */
int tf_provenance_grey_side (const char *provenance, int image_size);

typedef struct {
  int64_t step;             /* steps done, after this one */
  int64_t steps;            /* total */
  double  loss, lm, ddpm;
  double  lr;
  double  grad_norm;        /* before clipping */
  double  tokens_per_second; /* real (non-padding) positions per second, this step */
  double  padding;          /* fraction of the batch's positions that are padding */
  int64_t positions;        /* real positions this step */
  double  elapsed;          /* seconds in this run (and earlier runs, when resumed) */
  double  eta;              /* seconds left at the recent rate */
} TfTrainProgress;

typedef struct _TfTrainer TfTrainer;

/* Opens the data, then either starts a new run (trains the tokenizer on text
 * drawn from the data, initialises the model from the seed; refused when the
 * model or its state already exists) or, with options->resume, continues the
 * saved one (the options that shape the run must match the saved ones;
 * steps may grow). */
TfTrainer *tf_trainer_new (const TfTrainOptions *options, GError **error);
void tf_trainer_free (TfTrainer *trainer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfTrainer, tf_trainer_free)

TfModel *tf_trainer_model (TfTrainer *trainer);
const TfTokenizer *tf_trainer_tokenizer (TfTrainer *trainer);
int64_t tf_trainer_step (TfTrainer *trainer);
/* What runs the matrix products (from options->precision). */
TfGemmBackend tf_trainer_backend (TfTrainer *trainer);

/* One optimizer step. */
gboolean tf_trainer_train_step (TfTrainer *trainer, TfTrainProgress *progress, GError **error);
/* Writes OUT and its state atomically. */
gboolean tf_trainer_save (TfTrainer *trainer, GError **error);

/* Builds @n documents as training builds them (same sources, options and
 * tokenizer), from a generator seeded with @seed rather than the trainer's
 * own, which is left as it was, each with a whole row of room. Returns them
 * as text, NULL-terminated: the tokens decoded with the specials as their
 * text ("<|user|>"), an image as "<|image t=T|>" (T its noise level; it
 * takes a whole image's positions); @positions, if not NULL, gets each
 * document's length in positions (g_free it). To look at the data and to
 * test it. */
char **tf_trainer_sample_documents (TfTrainer *tr, uint64_t seed, int n, int **positions,
                                    GError **error);

/* Reads a training state from @st (named @path in errors) as --resume does,
 * checking all of it except the run's options, then drops it: the fuzz
 * target of the state loader. */
gboolean tf_train_state_check (TfSafetensors *st, const char *path, GError **error);

typedef void (*TfTrainCallback) (const TfTrainProgress *progress, gpointer user_data);

/* Runs to options->steps (or until_step), saving every save_every_minutes
 * or save_every_steps and at the end; checks *abort between steps and, when
 * set, saves and returns FALSE with TF_ERROR_ABORTED. */
gboolean tf_trainer_run (TfTrainer *trainer, TfTrainCallback callback, gpointer user_data,
                         volatile gint *abort, GError **error);

G_END_DECLS
