/* tf-generate.h: sampling from a Transfusion model (SPEC §4, issue 4).
 *
 * A TfGenerator owns a model, its tokenizer, the KV caches, one random
 * generator and the abort flag. Text is decoded with a KV cache; an image is
 * denoised as one block of patches that attends to the cached prefix, so each
 * step costs only the block. Classifier-free guidance runs the conditional and
 * the unconditional prefix as one batch of two. Every random draw comes from
 * the generator's seeded RNG: same model, inputs, settings and seed give the
 * same result, bit for bit, on the same build.
 *
 * No process-wide state: two generators may run in two threads. One generator
 * is used by one thread at a time, except tf_generator_abort(), which any
 * thread may call. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "transfusion.h"
#include "tf-gemm.h"
#include "tf-image.h"
#include "tf-tokenizer.h"

G_BEGIN_DECLS

typedef enum {
  TF_SAMPLER_DDPM,   /* ancestral, respaced to any step count */
  TF_SAMPLER_DDIM,   /* deterministic (η = 0) */
} TfSampler;

const char *tf_sampler_name (TfSampler sampler);            /* "ddpm", "ddim" */
gboolean    tf_sampler_from_name (const char *name, TfSampler *sampler);

#define TF_MAX_STEPS 10000
#define TF_TOP_ALTERNATIVES 5

typedef struct {
  /* text */
  double    temperature;  /* 0: greedy */
  int       top_k;        /* 0: off */
  double    top_p;        /* 1: off */
  int       max_tokens;   /* per reply */
  /* images */
  int       steps;        /* 1..TF_MAX_STEPS (50); more than the model's T run T */
  double    cfg;          /* guidance scale w (3); 1 turns the unconditional branch off */
  TfSampler sampler;      /* DDPM */
  const char *negative;   /* unconditional prompt; NULL or "": the empty caption */
  uint64_t  seed;
  /* Starting from a picture (img2img, SDEdit): @init_image (size × size ×
   * channels model pixels) noised to t = strength·T, then only the steps of
   * the @steps-step schedule at or below that level are run. NULL: from
   * pure noise. Strength in (0, 1]; 1 keeps nothing of the picture but its
   * faint trace at t = T. */
  const float *init_image;
  double    strength;     /* (0.75) */
} TfGenerateSettings;

void tf_generate_settings_init (TfGenerateSettings *settings);
/* Checks ranges; errors name the setting ("steps 0 is out of range (1 to 10000)"). */
gboolean tf_generate_settings_validate (const TfGenerateSettings *settings, GError **error);

/* The image settings `eval --sweep` chose for a model, as the model file
 * keeps them (the "sampling" metadata): {"sampler":"ddim","steps":25,"cfg":3}.
 * From JSON: sets those three fields of @settings, and nothing else, when
 * the text is such an object with every value in range; otherwise returns
 * FALSE with @error saying what is wrong and leaves @settings as it was. */
char *tf_generate_settings_sampling_to_json (const TfGenerateSettings *settings);
gboolean tf_generate_settings_sampling_from_json (TfGenerateSettings *settings, const char *json,
                                                  GError **error);

/* Only ordinary tokens are reported; special ones (<|eoi|>, ...) are not text. */
typedef struct {
  int32_t     id;
  const char *text;       /* the token's bytes (may be part of a UTF-8 character) */
  size_t      text_len;
  double      probability;
  int         n_alternatives;
  int32_t     alternative_ids[TF_TOP_ALTERNATIVES];   /* most probable first */
  double      alternative_probabilities[TF_TOP_ALTERNATIVES];
} TfTokenEvent;

typedef struct {
  int          step;       /* 1..n_steps */
  int          n_steps;
  int          t;          /* the noise level of x_t */
  int          size, channels;
  const float *x_t;        /* size × size × channels in model units ([-1, 1] for pixels) */
  const float *x0;         /* the predicted clean image */
} TfStepEvent;

typedef struct {
  void (*token) (const TfTokenEvent *event, gpointer user_data);
  /* called when the model starts an image (<|boi|>) and when it is done */
  void (*image_begin) (gpointer user_data);
  void (*step) (const TfStepEvent *event, gpointer user_data);
  void (*image_end) (const float *pixels, int size, int channels, gpointer user_data);
  gpointer user_data;
} TfGenerateCallbacks;

typedef struct _TfGenerator TfGenerator;

/* Loads a checkpoint with its tokenizer (and the grey side of the pictures
 * people give it, from its provenance: tf_generator_fit_picture). */
TfGenerator *tf_generator_new_from_file (const char *path, GError **error);
/* Takes ownership of @model and @tokenizer; with @st, the file they came
 * from, also what it says of the pictures people give the model (its
 * provenance: tf_generator_fit_picture). */
TfGenerator *tf_generator_new_with_file (TfModel *model, TfTokenizer *tokenizer,
                                         const TfSafetensors *st, GError **error);
/* Takes ownership of @model and @tokenizer. */
TfGenerator *tf_generator_new (TfModel *model, TfTokenizer *tokenizer, GError **error);
void tf_generator_free (TfGenerator *gen);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfGenerator, tf_generator_free)

TfModel *tf_generator_model (TfGenerator *gen);
const TfTokenizer *tf_generator_tokenizer (TfGenerator *gen);

/* At most @limit threads (0: OMP_NUM_THREADS, or every core); before each step
 * and token the generator uses as many of them as other programs leave
 * cores free (tf-threads.h). Not while a call runs. */
void tf_generator_set_threads (TfGenerator *gen, int limit);

/* The precision of the generator's matrix products (tf-gemm.h; fp32 until
 * set). Not while a call runs. */
void tf_generator_set_precision (TfGenerator *gen, TfPrecision precision);
/* What runs them. */
TfGemmBackend tf_generator_backend (TfGenerator *gen);

/* A picture a person gives the model (to caption, in a chat, to start an
 * image from) into @pixels (the model's size × size × channels), fitted as
 * training placed its kind: tf_image_to_model_picture() with the grey side
 * set here (0 until set: every picture fills the image), which
 * tf_model_info_open_generator() sets from the file's provenance. */
void tf_generator_set_picture_grey_side (TfGenerator *gen, int grey_side);
int  tf_generator_picture_grey_side (TfGenerator *gen);
void tf_generator_fit_picture (TfGenerator *gen, const TfImage *image, float *pixels);

/* Asks the running call to stop; it returns within one step or token with
 * TF_ERROR_ABORTED. The flag clears when the next call starts. */
void tf_generator_abort (TfGenerator *gen);

/* Prompt → image: [bos] prompt [boi] then @settings->steps denoising steps
 * (the unconditional row: [bos] negative [boi]), or, from an init image,
 * those of them at or below strength·T. @pixels receives size × size ×
 * channels values in [-1, 1]. */
gboolean tf_generator_generate_image (TfGenerator *gen, const char *prompt,
                                      const TfGenerateSettings *settings,
                                      const TfGenerateCallbacks *callbacks,
                                      float *pixels, GError **error);

/* Image → text: [bos] [boi] image (t = 0) [eoi], then decoding to <|eos|>.
 * Returns the caption (UTF-8 where the model wrote UTF-8). */
char *tf_generator_caption (TfGenerator *gen, const float *pixels,
                            const TfGenerateSettings *settings,
                            const TfGenerateCallbacks *callbacks, GError **error);

/* A chat: each turn is [<|user|>] (<|boi|> image <|eoi|>) text [<|assistant|>]
 * (the image optional, the first turn starts with <|bos|>); the reply streams
 * through the callbacks and ends at <|eos|> (or when the model starts a user
 * turn). When the model writes <|boi|> it draws an image, guided against the
 * unconditional [<|bos|> <|boi|>] (the dropped caption of training); the
 * clean image replaces the noise, <|eoi|> follows and text continues. The
 * conversation stays in the generator's cache until tf_generator_chat_reset().
 * When the message and room for a reply (a picture and a sentence, or half
 * of a small context) do not fit after the conversation, its earliest
 * exchanges (a message and the reply to it) are left out until they do, or
 * until only the latest that fit with the message are left (see
 * tf_generator_chat_forgotten()); a reply that fills the context ends there.
 * When the message cannot fit even alone, the call fails with TF_ERROR_INPUT
 * and the conversation is as it was before the call. Other work on the
 * generator (drawing, captioning) keeps the conversation: its next turn
 * puts the turns back first. */
void tf_generator_chat_reset (TfGenerator *gen);
/* How many of the conversation's earliest turns (messages and replies) the
 * model no longer sees, left out to make room, since the last reset or
 * restore (a restore counts the given turns it left out). */
int  tf_generator_chat_forgotten (TfGenerator *gen);
char *tf_generator_chat (TfGenerator *gen, const char *user_text, const float *user_image,
                         const TfGenerateSettings *settings,
                         const TfGenerateCallbacks *callbacks, GError **error);

/* ---- Pieces, exposed for tests ---------------------------------------- */

/* The respaced timesteps of a sampler run: @n_steps values from T down to
 * ≥ 1, strictly decreasing; the step after the last goes to t = 0. */
void tf_sampler_timesteps (int T, int n_steps, int *timesteps);

/* One denoising update from t to t_prev (t_prev < t, ᾱ(0) = 1) given the
 * model's (guided) prediction @pred of ε, v or x0 as @prediction says:
 * fills x0 (clipped to [-1, 1]) and x_prev; DDPM adds sqrt(variance)·z with
 * the given z (NULL when t_prev == 0). */
void tf_sampler_update (TfSampler sampler, TfPrediction prediction, const double *alpha_bar,
                        int t, int t_prev, const float *x_t, const float *pred, const float *z,
                        int n, float *x0, float *x_prev);

/* [bos] @prompt [boi], the tokens an image of @prompt follows (*n of them;
 * free with g_free), or NULL and @error for a prompt no context can hold. */
int32_t *tf_generator_image_prefix (TfGenerator *gen, const char *prompt, int *n,
                                    GError **error);

/* The model's prediction (ε, v or x0, as its config says) for the image
 * block x_t at noise level t after each of @n_rows prefixes (token arrays, no
 * caching across calls): the reference the cached path is tested against,
 * and what the twin's golden step compares with. @pred receives n_rows ×
 * image values. */
gboolean tf_generator_predict (TfGenerator *gen, const int32_t *const *prefixes,
                               const int *prefix_lengths, int n_rows, const float *x_t,
                               int t, float *pred, GError **error);

/* For benchmarks: feeds @n tokens into the cache of the first row as one
 * block (after what it holds, or from empty with @reset) and writes the
 * logits [V] after the last one. One token at a time is decoding. */
gboolean tf_generator_prefill (TfGenerator *gen, const int32_t *tokens, int n, gboolean reset,
                               float *logits, GError **error);
/* The cached path, for tests: logits [n × V] of @tokens decoded with a KV
 * cache (the first @prefill tokens as one block, then one at a time). */
gboolean tf_generator_cached_logits (TfGenerator *gen, const int32_t *tokens, int n,
                                     int prefill, float *logits, GError **error);
/* The cached path of tf_generator_predict(): prefixes prefilled into the
 * cache, the image block computed against it. */
gboolean tf_generator_cached_predict (TfGenerator *gen, const int32_t *const *prefixes,
                                      const int *prefix_lengths, int n_rows, const float *x_t,
                                      int t, float *pred, GError **error);

/* ---- Continuing a conversation ------------------------------------------ */

/* One earlier turn of a chat, as a person saw it. */
typedef struct {
  gboolean     from_user;   /* TRUE: the user's message; FALSE: the model's reply */
  const char  *text;        /* may be NULL or "" */
  const float *image;       /* NULL, or size × size × channels values in [-1, 1] */
} TfGeneratorTurn;

/* Replaces the conversation in the cache with @turns, laid out as
 * tf_generator_chat() lays out a live one: a user turn is
 * [<|user|>] (<|boi|> image <|eoi|>) text [<|assistant|>] (after <|bos|> for
 * the first), a reply is (<|boi|> image <|eoi|>) text <|eos|>; a reply's
 * image (one the model drew) is placed before its text. A user turn without
 * a reply after it is left out, as a live turn that failed or was stopped
 * leaves nothing behind; a reply without a user turn before it is an error.
 * Replies are encoded from their text, so the cache equals the live one when
 * the text is the reply's bytes as streamed (not stripped) and encodes to the
 * tokens the model sampled. When they do not all fit, the latest exchanges
 * that fit are kept, with room for a next turn when there is (as a live chat
 * leaves out its earliest). On any error (TF_ERROR_INPUT, TF_ERROR_ABORTED)
 * the conversation is empty. */
gboolean tf_generator_chat_restore (TfGenerator *gen, const TfGeneratorTurn *turns, int n_turns,
                                    GError **error);

G_END_DECLS
