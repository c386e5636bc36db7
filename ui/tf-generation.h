/* tf-generation.h: the engine's generator, driven from a worker thread.
 *
 * A TfGeneration owns one TfGenerator. Each job (an image, a caption, a chat
 * reply) runs in a worker thread; everything it reports arrives as signals
 * emitted on the main context that was the thread-default when the object
 * was created (the main loop, in the application). Consecutive `step`
 * reports that the main loop has not yet taken are merged so the UI only
 * draws the latest; tokens are never merged or dropped, and the order of
 * tokens, image begin/steps/end and the end of the job is kept.
 *
 * One job at a time: starting a job while another runs fails with
 * G_IO_ERROR_BUSY (returned, no signal). Cancelling the job's GCancellable
 * (or tf_generation_cancel()) raises the engine's abort flag; the job then
 * ends within one denoising step or one token with `failed`
 * (G_IO_ERROR_CANCELLED). Exactly one of `finished` or `failed` ends every
 * job that started, and after it `busy` is FALSE again.
 *
 * No GTK here: the tests drive it with a plain GMainLoop.
 *
 * What the first version left open, as built:
 * - `finished`'s text of a caption or reply is exactly the concatenation
 *   of its `token` texts (not stripped: save it as it is, so that
 *   tf_generation_chat_restore() gives the model back what it wrote).
 * - Inside the handlers of `finished` and `failed`, busy is already FALSE
 *   (a handler may start the next job); notify::busy comes after them.
 * - A job that completed before a cancel reached it ends with `finished`.
 * - The worker is one thread per object, run slightly nicer than the main
 *   thread (and the engine's OpenMP threads with it), so the main loop gets
 *   the processor first on a busy machine.
 * - Added, source-compatible: tf_utf8_take_complete(), for tests. */
#pragma once

#include <gio/gio.h>

#include "tf-generate.h"

G_BEGIN_DECLS

/* ---- A streamed token (boxed, for the `token` signal) ------------------- */

typedef struct {
  char   *text;                    /* valid UTF-8: partial characters are held
                                    * back and joined with the next token */
  double  probability;             /* of the (first) token, 0..1 */
  int     n_alternatives;
  char   *alternative_texts[TF_TOP_ALTERNATIVES];     /* most probable first */
  double  alternative_probabilities[TF_TOP_ALTERNATIVES];
} TfToken;

#define TF_TYPE_TOKEN (tf_token_get_type ())
GType    tf_token_get_type (void) G_GNUC_CONST;
TfToken *tf_token_copy (const TfToken *token);
void     tf_token_free (TfToken *token);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfToken, tf_token_free)

/* ---- The object ------------------------------------------------------- */

#define TF_TYPE_GENERATION (tf_generation_get_type ())
G_DECLARE_FINAL_TYPE (TfGeneration, tf_generation, TF, GENERATION, GObject)

/* Signals (all on the creating thread's main context):
 *
 *   step (guint step, guint n_steps, GBytes *x_t, GBytes *x0)
 *       step 1..n_steps of the image being denoised; x_t and x0 hold
 *       image-size × image-size × channels floats in [-1, 1] (row-major, RGB
 *       interleaved), the noisy image and the predicted clean image.
 *   token (TfToken *token)
 *       a piece of text of a caption or chat reply.
 *   image-begin ()
 *       the chat reply starts an image (the model wrote <|boi|>).
 *   image-end (GBytes *pixels)
 *       the chat reply's image is done (same layout as x0).
 *   finished (const char *text, GBytes *pixels)
 *       the job is done: for an image, text NULL and pixels the image; for a
 *       caption or chat reply, the whole text and pixels NULL.
 *   failed (GError *error)
 *       the job ended without a result; G_IO_ERROR_CANCELLED when cancelled.
 *
 * Properties: "busy" (gboolean, read-only, notifies), "image-size",
 * "channels" (gint, read-only), "generator" (the TfGenerator, pointer). */

/* Takes ownership of @generator. */
TfGeneration *tf_generation_new (TfGenerator *generator);

/* Loads a model file (with its tokenizer) in a worker thread: error messages
 * name the file. */
void          tf_generation_new_from_file_async  (const char          *path,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
TfGeneration *tf_generation_new_from_file_finish (GAsyncResult        *result,
                                                  GError             **error);

TfGenerator *tf_generation_get_generator (TfGeneration *self);
gboolean     tf_generation_get_busy (TfGeneration *self);
/* How many of the chat's earliest turns the model no longer sees, as the
 * last reply or restore left it (tf_generator_chat_forgotten()); read in
 * the handlers of `finished`. */
int          tf_generation_get_chat_forgotten (TfGeneration *self);
int          tf_generation_get_image_size (TfGeneration *self);
int          tf_generation_get_channels (TfGeneration *self);
/* The side a grey picture on black that a person gives this model is
 * fitted within (tf_generator_fit_picture; 0: none, also for @self NULL,
 * no model). */
int          tf_generation_get_picture_grey_side (TfGeneration *self);

/* Jobs. The settings (and the negative prompt and init image they point
 * to) are copied. @cancellable may be NULL. FALSE with G_IO_ERROR_BUSY when a job runs, or
 * with the settings' validation error; no signal is emitted then. */
gboolean tf_generation_generate_image (TfGeneration              *self,
                                       const char                *prompt,
                                       const TfGenerateSettings  *settings,
                                       GCancellable              *cancellable,
                                       GError                   **error);
/* @pixels: image-size × image-size × channels floats in [-1, 1] (copied). */
gboolean tf_generation_caption (TfGeneration              *self,
                                const float               *pixels,
                                const TfGenerateSettings  *settings,
                                GCancellable              *cancellable,
                                GError                   **error);
/* One chat turn: @image may be NULL. The conversation continues from the
 * previous turn until tf_generation_chat_reset() or _chat_restore(). */
gboolean tf_generation_chat (TfGeneration              *self,
                             const char                *text,
                             const float               *image,
                             const TfGenerateSettings  *settings,
                             GCancellable              *cancellable,
                             GError                   **error);

/* A conversation's earlier turns, to continue it after a restart. A
 * reply's image is put back before its text; a user turn with no reply
 * after it is left out (see tf_generator_chat_restore()). */
typedef struct {
  gboolean     from_user;     /* TRUE: a user turn; FALSE: a model reply */
  const char  *text;
  const float *image;         /* NULL, or one image (user attachment or drawn by the model) */
} TfChatTurn;

/* Forgets the conversation (cheap; not a job). FALSE with G_IO_ERROR_BUSY
 * while a job runs. */
gboolean tf_generation_chat_reset (TfGeneration *self, GError **error);
/* Replaces the conversation with @turns (a job: prefilling runs in the
 * worker and ends with `finished` (NULL, NULL) or `failed`). */
gboolean tf_generation_chat_restore (TfGeneration      *self,
                                     const TfChatTurn  *turns,
                                     guint              n_turns,
                                     GCancellable      *cancellable,
                                     GError           **error);

/* At most @threads threads for the jobs that start from now on (0: every
 * core); each job uses only the cores other programs leave free. */
void tf_generation_set_threads (TfGeneration *self, int threads);
int  tf_generation_get_threads (TfGeneration *self);
/* The precision of the matrix products of the jobs that start from now on
 * (fp32 until set). */
void        tf_generation_set_precision (TfGeneration *self, TfPrecision precision);

/* The image settings the model's file names as its own (TfModelInfo's
 * sampling), kept for the views that start new images; NULL: none. The
 * getter copies them into @settings (sampler, steps, guidance only) and
 * returns TRUE when there are some. Main thread. */
void     tf_generation_set_model_sampling (TfGeneration *self, const TfGenerateSettings *sampling);
gboolean tf_generation_get_model_sampling (TfGeneration *self, TfGenerateSettings *settings);
TfPrecision tf_generation_get_precision (TfGeneration *self);

/* Cancels the running job, if any. */
void tf_generation_cancel (TfGeneration *self);

/* Run first in a worker thread: it (and the engine's OpenMP threads, which
 * inherit it) runs slightly nicer than the main thread, so that the main
 * loop gets the processor first on a busy machine. TfTraining's worker
 * does the same. */
void tf_worker_lower_priority (void);
/* Events from a worker to the main context: a queue under a mutex, and
 * one dispatch scheduled for the first event of each burst. TfGeneration
 * and TfTraining share it. */
typedef struct {
  GMutex        lock;
  GQueue        events;
  gboolean      dispatch_pending;
  GMainContext *context;
  GSourceFunc   dispatch;      /* runs on @context with the owner as data */
  GObject      *owner;         /* referenced by each scheduled dispatch */
  const char   *name;          /* static: the source's name */
} TfEventQueue;

void tf_event_queue_init (TfEventQueue *queue, GObject *owner, GSourceFunc dispatch,
                          const char *name);
void tf_event_queue_clear (TfEventQueue *queue, GDestroyNotify free_event);
/* Worker side: queues @event, or, when @merge (may be NULL) returns
 * non-NULL for the last event still queued and @event, puts what it returns
 * in the last one's place. Schedules the dispatch when none is pending. */
void tf_event_queue_push (TfEventQueue *queue, gpointer event,
                          gpointer (*merge) (gpointer last, gpointer event));
/* Main side, first in the dispatch: moves every queued event to @out. */
void tf_event_queue_take_all (TfEventQueue *queue, GQueue *out);

/* ---- Exposed for tests -------------------------------------------------- */

/* Moves the whole UTF-8 characters at the start of @pending to @out, as the
 * `token` signal's text is made from the engine's bytes: bytes that cannot
 * start or continue a character become U+FFFD; a character still missing
 * bytes at the end stays in @pending, or becomes U+FFFD with @flush. */
void tf_utf8_take_complete (GString *pending, GString *out, gboolean flush);

G_END_DECLS
