/* tf-generation.c: jobs on a worker thread, reports as signals on the main
 * context.
 *
 * The worker turns the engine's callbacks into events in a queue guarded by
 * a mutex; the first event of a burst schedules one dispatch on the main
 * context, which takes the whole queue and emits it in order. A step that
 * arrives while the step before it is still waiting in the queue replaces
 * it. The job (and with it a reference to the object) ends with its last
 * event: `finished` or `failed`. The jobs run one after another in a thread
 * pool of one thread, so the generator is never used by two at once, not
 * even while a finished job's thread is still returning. */
#include "config.h"

#include "tf-generation.h"
#include "tf-tsan.h"
#include "tf-model-info.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <string.h>
#ifdef __linux__
#include <sys/resource.h>
#include <unistd.h>
#endif

/* How much nicer than the rest of the program the worker thread (and the
 * engine's OpenMP threads, which inherit it) runs: on a busy machine the
 * main loop then gets the processor first and the window never stalls. */
#define WORKER_NICENESS 5

/* ---- TfToken ------------------------------------------------------------- */

TfToken *
tf_token_copy (const TfToken *token)
{
  TfToken *copy = g_memdup2 (token, sizeof *token);
  copy->text = g_strdup (token->text);
  for (int k = 0; k < token->n_alternatives; k++)
    copy->alternative_texts[k] = g_strdup (token->alternative_texts[k]);
  return copy;
}

void
tf_token_free (TfToken *token)
{
  if (token == NULL)
    return;
  g_free (token->text);
  for (int k = 0; k < token->n_alternatives; k++)
    g_free (token->alternative_texts[k]);
  g_free (token);
}

G_DEFINE_BOXED_TYPE (TfToken, tf_token, tf_token_copy, tf_token_free)

/* ---- Jobs and their events ------------------------------------------------ */

typedef enum {
  JOB_IMAGE,
  JOB_CAPTION,
  JOB_CHAT,
  JOB_RESTORE,
} JobKind;

typedef struct {
  TfGeneration       *self;          /* a reference, dropped when the job ends */
  JobKind             kind;
  GCancellable       *cancellable;   /* never NULL */
  gulong              cancelled_id;
  TfGenerateSettings  settings;
  char               *negative;      /* settings.negative points here */
  float              *init_image;    /* settings.init_image points here */
  char               *text;          /* prompt or message */
  float              *image;         /* the caption's or the message's picture */
  TfGeneratorTurn    *turns;         /* chat_restore: texts and images owned */
  guint               n_turns;

  /* worker side: a UTF-8 character split across tokens waits here */
  GString            *pending;
  TfToken             pending_info;  /* probability and alternatives of its first token */
  gboolean            have_info;
  GString            *reply;         /* everything emitted as tokens */
} Job;

typedef enum {
  EVENT_STEP,
  EVENT_TOKEN,
  EVENT_IMAGE_BEGIN,
  EVENT_IMAGE_END,
  EVENT_DONE,
} EventKind;

typedef struct {
  EventKind  kind;
  guint      step, n_steps;
  GBytes    *x_t, *x0;
  TfToken   *token;
  GBytes    *pixels;    /* image-end; done of an image */
  char      *text;      /* done of a caption or reply */
  int        forgotten; /* done of a reply or restore: tf_generator_chat_forgotten() */
  GError    *error;     /* done: failed */
  Job       *job;       /* done: handed back to the main context */
} Event;

struct _TfGeneration {
  GObject       parent_instance;

  TfGenerator  *generator;
  GThreadPool  *pool;
  Job          *job;             /* main context: the running job, or NULL */

  gint          threads;         /* at most this many (0: every core); read by the worker */
  gint          precision;       /* a TfPrecision; read by the worker */
  gboolean      has_sampling;    /* the model's own image settings */
  TfGenerateSettings sampling;
  int           chat_forgotten;  /* as of the last reply or restore */

  TfEventQueue  queue;
};

G_DEFINE_FINAL_TYPE (TfGeneration, tf_generation, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_GENERATOR,
  PROP_BUSY,
  PROP_IMAGE_SIZE,
  PROP_CHANNELS,
  N_PROPS
};
static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_STEP,
  SIGNAL_TOKEN,
  SIGNAL_IMAGE_BEGIN,
  SIGNAL_IMAGE_END,
  SIGNAL_FINISHED,
  SIGNAL_FAILED,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

static void
token_clear (TfToken *token)
{
  g_free (token->text);
  for (int k = 0; k < token->n_alternatives; k++)
    g_free (token->alternative_texts[k]);
  memset (token, 0, sizeof *token);
}

static void
job_free (Job *job)
{
  if (job->cancellable != NULL)
    g_object_unref (job->cancellable);
  g_free (job->negative);
  g_free (job->init_image);
  g_free (job->text);
  g_free (job->image);
  for (guint i = 0; i < job->n_turns; i++)
    {
      g_free ((char *) job->turns[i].text);
      g_free ((float *) job->turns[i].image);
    }
  g_free (job->turns);
  g_string_free (job->pending, TRUE);
  token_clear (&job->pending_info);
  g_string_free (job->reply, TRUE);
  g_clear_object (&job->self);
  g_free (job);
}

static void
event_free (Event *ev)
{
  g_clear_pointer (&ev->x_t, g_bytes_unref);
  g_clear_pointer (&ev->x0, g_bytes_unref);
  g_clear_pointer (&ev->token, tf_token_free);
  g_clear_pointer (&ev->pixels, g_bytes_unref);
  g_free (ev->text);
  g_clear_error (&ev->error);
  g_free (ev);
}

static int
image_values (TfGeneration *self)
{
  return tf_config_image_values (tf_model_config (tf_generator_model (self->generator)));
}

/* ---- Main context side ------------------------------------------------------ */

static void
finish_job (TfGeneration *self, Event *ev)
{
  Job *job = ev->job;

  g_assert (job == self->job);
  ev->job = NULL;
  /* busy is FALSE inside the handlers of finished and failed, so they may
   * start the next job; notify::busy follows them. */
  g_object_freeze_notify (G_OBJECT (self));
  self->job = NULL;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
  if (ev->error == NULL && (job->kind == JOB_CHAT || job->kind == JOB_RESTORE))
    self->chat_forgotten = ev->forgotten;
  if (ev->error != NULL)
    g_signal_emit (self, signals[SIGNAL_FAILED], 0, ev->error);
  else
    g_signal_emit (self, signals[SIGNAL_FINISHED], 0, ev->text, ev->pixels);
  g_object_thaw_notify (G_OBJECT (self));
  job_free (job);
}

static gboolean
dispatch_events (gpointer data)
{
  TfGeneration *self = data;
  GQueue events = G_QUEUE_INIT;
  Event *ev;

  tf_event_queue_take_all (&self->queue, &events);

  while ((ev = g_queue_pop_head (&events)) != NULL)
    {
      switch (ev->kind)
        {
        case EVENT_STEP:
          g_signal_emit (self, signals[SIGNAL_STEP], 0, ev->step, ev->n_steps, ev->x_t, ev->x0);
          break;
        case EVENT_TOKEN:
          g_signal_emit (self, signals[SIGNAL_TOKEN], 0, ev->token);
          break;
        case EVENT_IMAGE_BEGIN:
          g_signal_emit (self, signals[SIGNAL_IMAGE_BEGIN], 0);
          break;
        case EVENT_IMAGE_END:
          g_signal_emit (self, signals[SIGNAL_IMAGE_END], 0, ev->pixels);
          break;
        case EVENT_DONE:
          finish_job (self, ev);
          break;
        default:
          g_assert_not_reached ();
        }
      event_free (ev);
    }
  return G_SOURCE_REMOVE;
}

/* ---- Worker side ----------------------------------------------------------- */

/* A step replaces a step still waiting. */
static gpointer
merge_steps (gpointer last_event, gpointer event)
{
  Event *last = last_event, *ev = event;

  if (ev->kind != EVENT_STEP || last->kind != EVENT_STEP)
    return NULL;
  event_free (last);
  return ev;
}

/* Queues @ev for the main context. */
static void
push_event (TfGeneration *self, Event *ev)
{
  tf_event_queue_push (&self->queue, ev, merge_steps);
}

void
tf_event_queue_init (TfEventQueue *queue, GObject *owner, GSourceFunc dispatch, const char *name)
{
  g_mutex_init (&queue->lock);
  g_queue_init (&queue->events);
  queue->dispatch_pending = FALSE;
  queue->context = g_main_context_ref_thread_default ();
  queue->dispatch = dispatch;
  queue->owner = owner;
  queue->name = name;
}

void
tf_event_queue_clear (TfEventQueue *queue, GDestroyNotify free_event)
{
  g_queue_clear_full (&queue->events, free_event);
  g_mutex_clear (&queue->lock);
  g_main_context_unref (queue->context);
}

void
tf_event_queue_push (TfEventQueue *queue, gpointer event,
                     gpointer (*merge) (gpointer last, gpointer event))
{
  gboolean schedule;

  g_mutex_lock (&queue->lock);
  TF_TSAN_ACQUIRE (&queue->lock);
  gpointer last = g_queue_peek_tail (&queue->events);
  gpointer merged = last != NULL && merge != NULL ? merge (last, event) : NULL;
  if (merged != NULL)
    queue->events.tail->data = merged;
  else
    g_queue_push_tail (&queue->events, event);
  schedule = !queue->dispatch_pending;
  queue->dispatch_pending = TRUE;
  TF_TSAN_RELEASE (&queue->lock);
  g_mutex_unlock (&queue->lock);

  /* The reference keeps the owner alive until the dispatch runs. An idle
   * source, not g_main_context_invoke(): that one runs the function at
   * once, in this thread, whenever the context is this thread's default
   * too (the global default) and nobody is iterating it at the moment. */
  if (schedule)
    {
      GSource *source = g_idle_source_new ();
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, queue->dispatch, g_object_ref (queue->owner), g_object_unref);
      g_source_set_static_name (source, queue->name);
      g_source_attach (source, queue->context);
      g_source_unref (source);
    }
}

void
tf_event_queue_take_all (TfEventQueue *queue, GQueue *out)
{
  g_mutex_lock (&queue->lock);
  TF_TSAN_ACQUIRE (&queue->lock);
  *out = queue->events;
  g_queue_init (&queue->events);
  queue->dispatch_pending = FALSE;
  TF_TSAN_RELEASE (&queue->lock);
  g_mutex_unlock (&queue->lock);
}

/* The engine clears its abort flag when a call starts, so a cancel that
 * comes just before is repeated from the callbacks. */
static void
job_check_cancelled (Job *job)
{
  if (g_cancellable_is_cancelled (job->cancellable))
    tf_generator_abort (job->self->generator);
}

static void
on_cancelled (GCancellable *cancellable, gpointer data)
{
  Job *job = data;
  tf_generator_abort (job->self->generator);
}

static char *
token_text (const TfTokenizer *tok, int32_t id)
{
  size_t len;
  if (id >= tf_tokenizer_vocab_size (tok) - TF_N_SPECIAL)
    {
      for (int s = 0; s < TF_N_SPECIAL; s++)
        if (tf_tokenizer_special_id (tok, s) == id)
          return g_strdup (tf_special_text (s));
      return g_strdup ("");
    }
  const uint8_t *bytes = tf_tokenizer_token_bytes (tok, id, &len);
  return g_utf8_make_valid ((const char *) bytes, len);
}

static void
set_token_info (Job *job, const TfTokenEvent *ev)
{
  const TfTokenizer *tok = tf_generator_tokenizer (job->self->generator);
  TfToken *info = &job->pending_info;

  token_clear (info);
  job->have_info = TRUE;
  info->probability = ev->probability;
  info->n_alternatives = ev->n_alternatives;
  for (int k = 0; k < ev->n_alternatives; k++)
    {
      info->alternative_texts[k] = token_text (tok, ev->alternative_ids[k]);
      info->alternative_probabilities[k] = ev->alternative_probabilities[k];
    }
}

void
tf_utf8_take_complete (GString *pending, GString *out, gboolean flush)
{
  const char *p = pending->str;
  gsize left = pending->len;

  while (left > 0)
    {
      gunichar c = g_utf8_get_char_validated (p, left);
      if (c == (gunichar) -2 && !flush && memchr (p, '\0', left) == NULL)
        break;   /* a character cut short: its other bytes are still to come */
      if (c == (gunichar) -1 || c == (gunichar) -2 || c == 0)
        {
          g_string_append (out, "\xef\xbf\xbd");
          p++;
          left--;
          continue;
        }
      const char *next = g_utf8_next_char (p);
      g_string_append_len (out, p, next - p);
      left -= next - p;
      p = next;
    }
  g_string_erase (pending, 0, pending->len - left);
}

static void
emit_pending (Job *job, gboolean flush)
{
  g_autoptr (GString) text = g_string_new (NULL);

  tf_utf8_take_complete (job->pending, text, flush);
  if (text->len == 0)
    return;
  g_string_append_len (job->reply, text->str, text->len);
  Event *ev = g_new0 (Event, 1);
  ev->kind = EVENT_TOKEN;
  ev->token = g_new0 (TfToken, 1);
  *ev->token = job->pending_info;
  memset (&job->pending_info, 0, sizeof job->pending_info);
  job->have_info = FALSE;
  ev->token->text = g_string_free (g_steal_pointer (&text), FALSE);
  push_event (job->self, ev);
}

static void
on_token (const TfTokenEvent *event, gpointer data)
{
  Job *job = data;

  job_check_cancelled (job);
  /* The emitted piece carries the probability of its first token: one that
   * finishes a held character adds its bytes to that token's. */
  if (!job->have_info)
    set_token_info (job, event);
  g_string_append_len (job->pending, event->text, event->text_len);
  emit_pending (job, FALSE);
  if (job->pending->len > 0 && !job->have_info)
    set_token_info (job, event);
}

static GBytes *
copy_floats (const float *values, int n)
{
  return g_bytes_new (values, sizeof (float) * n);
}

static void
on_step (const TfStepEvent *event, gpointer data)
{
  Job *job = data;
  const int n = event->size * event->size * event->channels;

  job_check_cancelled (job);
  Event *ev = g_new0 (Event, 1);
  ev->kind = EVENT_STEP;
  ev->step = event->step;
  ev->n_steps = event->n_steps;
  ev->x_t = copy_floats (event->x_t, n);
  ev->x0 = copy_floats (event->x0, n);
  push_event (job->self, ev);
}

static void
on_image_begin (gpointer data)
{
  Job *job = data;
  Event *ev = g_new0 (Event, 1);

  /* text written before the image comes before it */
  emit_pending (job, TRUE);
  ev->kind = EVENT_IMAGE_BEGIN;
  push_event (job->self, ev);
}

static void
on_image_end (const float *pixels, int size, int channels, gpointer data)
{
  Job *job = data;
  Event *ev = g_new0 (Event, 1);

  ev->kind = EVENT_IMAGE_END;
  ev->pixels = copy_floats (pixels, size * size * channels);
  push_event (job->self, ev);
}

/* Linux keeps a niceness per thread; elsewhere the worker keeps the
 * process's. */
void
tf_worker_lower_priority (void)
{
#ifdef __linux__
  const id_t thread = (id_t) gettid ();
  errno = 0;
  int current = getpriority (PRIO_PROCESS, thread);
  if (errno == 0 && current < WORKER_NICENESS)
    (void) setpriority (PRIO_PROCESS, thread, WORKER_NICENESS);
#endif
}

static void
run_job (gpointer data, gpointer pool_data)
{
  Job *job = data;
  TF_TSAN_ACQUIRE (job);   /* pushed by start_job() */
  TfGenerator *gen = job->self->generator;
  TfGenerateCallbacks callbacks = {
    .token = on_token,
    .step = on_step,
    .user_data = job,
  };
  g_autoptr (GError) error = NULL;
  Event *done = g_new0 (Event, 1);
  gboolean ok = FALSE;

  tf_worker_lower_priority ();
  tf_generator_set_threads (gen, g_atomic_int_get (&job->self->threads));
  tf_generator_set_precision (gen, (TfPrecision) g_atomic_int_get (&job->self->precision));
  if (job->kind == JOB_CHAT)
    {
      callbacks.image_begin = on_image_begin;
      callbacks.image_end = on_image_end;
    }
  job->cancelled_id = g_cancellable_connect (job->cancellable, G_CALLBACK (on_cancelled),
                                             job, NULL);
  if (!g_cancellable_is_cancelled (job->cancellable))
    switch (job->kind)
      {
      case JOB_IMAGE:
        {
          g_autofree float *pixels = g_new (float, image_values (job->self));
          ok = tf_generator_generate_image (gen, job->text, &job->settings, &callbacks, pixels,
                                            &error);
          if (ok)
            done->pixels = copy_floats (pixels, image_values (job->self));
        }
        break;
      case JOB_CAPTION:
        {
          g_autofree char *text = tf_generator_caption (gen, job->image, &job->settings,
                                                        &callbacks, &error);
          ok = text != NULL;
        }
        break;
      case JOB_CHAT:
        {
          g_autofree char *text = tf_generator_chat (gen, job->text, job->image, &job->settings,
                                                     &callbacks, &error);
          ok = text != NULL;
        }
        break;
      case JOB_RESTORE:
        ok = tf_generator_chat_restore (gen, job->turns, job->n_turns, &error);
        break;
      default:
        g_assert_not_reached ();
      }
  g_cancellable_disconnect (job->cancellable, job->cancelled_id);

  /* A job that completed before a cancel reached it finishes: its result
   * is whole (and a chat reply is already in the conversation). */
  if (ok)
    {
      /* the text is exactly what the tokens said (the engine's own copy is
       * stripped, and may hold invalid UTF-8) */
      emit_pending (job, TRUE);
      if (job->kind == JOB_CAPTION || job->kind == JOB_CHAT)
        done->text = g_strdup (job->reply->str);
      done->forgotten = tf_generator_chat_forgotten (gen);
    }
  else if (g_cancellable_is_cancelled (job->cancellable) ||
           g_error_matches (error, TF_ERROR, TF_ERROR_ABORTED))
    {
      done->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED, _("Stopped"));
    }
  else
    done->error = g_steal_pointer (&error);
  done->kind = EVENT_DONE;
  done->job = job;
  /* after this the job and the object belong to the main context */
  TF_TSAN_RELEASE (job->self);
  push_event (job->self, done);
}

/* ---- Starting jobs ----------------------------------------------------------- */

static Job *
job_new (TfGeneration *self, JobKind kind, const TfGenerateSettings *settings,
         GCancellable *cancellable)
{
  Job *job = g_new0 (Job, 1);

  job->kind = kind;
  job->cancellable = cancellable != NULL ? g_object_ref (cancellable) : g_cancellable_new ();
  if (settings != NULL)
    {
      job->settings = *settings;
      job->negative = g_strdup (settings->negative);
      job->settings.negative = job->negative;
      /* the caller's picture may be gone before the worker is done */
      if (settings->init_image != NULL)
        job->init_image = g_memdup2 (settings->init_image, sizeof (float) * image_values (self));
      job->settings.init_image = job->init_image;
    }
  job->pending = g_string_new (NULL);
  job->reply = g_string_new (NULL);
  return job;
}

static gboolean
check_idle (TfGeneration *self, GError **error)
{
  if (self->job != NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           _("The model is busy with another task"));
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_can_start (TfGeneration *self, const TfGenerateSettings *settings, GError **error)
{
  return check_idle (self, error) &&
         (settings == NULL || tf_generate_settings_validate (settings, error));
}

static void
start_job (TfGeneration *self, Job *job)
{
  job->self = g_object_ref (self);
  self->job = job;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BUSY]);
  TF_TSAN_RELEASE (job);
  g_thread_pool_push (self->pool, job, NULL);
}

/* Starts a job of @kind on copies of @text and @image (either may be NULL). */
static gboolean
start (TfGeneration *self, JobKind kind, const char *text, const float *image,
       const TfGenerateSettings *settings, GCancellable *cancellable, GError **error)
{
  if (!check_can_start (self, settings, error))
    return FALSE;
  Job *job = job_new (self, kind, settings, cancellable);
  job->text = g_strdup (text);
  if (image != NULL)
    job->image = g_memdup2 (image, sizeof (float) * image_values (self));
  start_job (self, job);
  return TRUE;
}

gboolean
tf_generation_generate_image (TfGeneration *self, const char *prompt,
                              const TfGenerateSettings *settings, GCancellable *cancellable,
                              GError **error)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);
  g_return_val_if_fail (settings != NULL, FALSE);
  return start (self, JOB_IMAGE, prompt, NULL, settings, cancellable, error);
}

gboolean
tf_generation_caption (TfGeneration *self, const float *pixels,
                       const TfGenerateSettings *settings, GCancellable *cancellable,
                       GError **error)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);
  g_return_val_if_fail (pixels != NULL && settings != NULL, FALSE);
  return start (self, JOB_CAPTION, NULL, pixels, settings, cancellable, error);
}

gboolean
tf_generation_chat (TfGeneration *self, const char *text, const float *image,
                    const TfGenerateSettings *settings, GCancellable *cancellable,
                    GError **error)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);
  g_return_val_if_fail (settings != NULL, FALSE);
  return start (self, JOB_CHAT, text, image, settings, cancellable, error);
}

gboolean
tf_generation_chat_reset (TfGeneration *self, GError **error)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);

  if (!check_idle (self, error))
    return FALSE;
  tf_generator_chat_reset (self->generator);
  return TRUE;
}

gboolean
tf_generation_chat_restore (TfGeneration *self, const TfChatTurn *turns, guint n_turns,
                            GCancellable *cancellable, GError **error)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);
  g_return_val_if_fail (n_turns == 0 || turns != NULL, FALSE);

  if (!check_can_start (self, NULL, error))
    return FALSE;
  Job *job = job_new (self, JOB_RESTORE, NULL, cancellable);
  job->turns = g_new0 (TfGeneratorTurn, MAX (n_turns, 1));
  job->n_turns = n_turns;
  for (guint i = 0; i < n_turns; i++)
    {
      job->turns[i].from_user = turns[i].from_user;
      job->turns[i].text = g_strdup (turns[i].text);
      if (turns[i].image != NULL)
        job->turns[i].image = g_memdup2 (turns[i].image, sizeof (float) * image_values (self));
    }
  start_job (self, job);
  return TRUE;
}

void
tf_generation_cancel (TfGeneration *self)
{
  g_return_if_fail (TF_IS_GENERATION (self));

  if (self->job != NULL)
    g_cancellable_cancel (self->job->cancellable);
}

/* ---- The object --------------------------------------------------------------- */

void
tf_generation_set_threads (TfGeneration *self, int threads)
{
  g_return_if_fail (TF_IS_GENERATION (self));
  g_atomic_int_set (&self->threads, MAX (0, threads));
}

int
tf_generation_get_threads (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), 0);
  return g_atomic_int_get (&self->threads);
}

void
tf_generation_set_precision (TfGeneration *self, TfPrecision precision)
{
  g_return_if_fail (TF_IS_GENERATION (self));
  g_atomic_int_set (&self->precision, (gint) precision);
}

void
tf_generation_set_model_sampling (TfGeneration *self, const TfGenerateSettings *sampling)
{
  g_return_if_fail (TF_IS_GENERATION (self));
  self->has_sampling = sampling != NULL;
  if (sampling != NULL)
    self->sampling = *sampling;
}

gboolean
tf_generation_get_model_sampling (TfGeneration *self, TfGenerateSettings *settings)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);
  if (!self->has_sampling)
    return FALSE;
  settings->sampler = self->sampling.sampler;
  settings->steps = self->sampling.steps;
  settings->cfg = self->sampling.cfg;
  return TRUE;
}

TfPrecision
tf_generation_get_precision (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), TF_PRECISION_FP32);
  return (TfPrecision) g_atomic_int_get (&self->precision);
}

TfGeneration *
tf_generation_new (TfGenerator *generator)
{
  g_return_val_if_fail (generator != NULL, NULL);

  return g_object_new (TF_TYPE_GENERATION, "generator", generator, NULL);
}

static void
load_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GError *error = NULL;
  TfGenerator *gen = tf_model_info_open_generator (task_data, &error);

  TF_TSAN_RELEASE (task);   /* to tf_generation_new_from_file_finish() */
  if (gen == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, gen, (GDestroyNotify) tf_generator_free);
}

void
tf_generation_new_from_file_async (const char *path, GCancellable *cancellable,
                                   GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = NULL;

  g_return_if_fail (path != NULL);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, tf_generation_new_from_file_async);
  g_task_set_task_data (task, g_strdup (path), g_free);
  g_task_set_return_on_cancel (task, TRUE);
  g_task_run_in_thread (task, load_in_thread);
}

TfGeneration *
tf_generation_new_from_file_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);

  TF_TSAN_ACQUIRE (result);
  /* the object is made here, so its signals come to the caller's context */
  TfGenerator *gen = g_task_propagate_pointer (G_TASK (result), error);
  return gen != NULL ? tf_generation_new (gen) : NULL;
}

TfGenerator *
tf_generation_get_generator (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), NULL);
  return self->generator;
}

gboolean
tf_generation_get_busy (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), FALSE);
  return self->job != NULL;
}

int
tf_generation_get_chat_forgotten (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), 0);
  return self->chat_forgotten;
}

int
tf_generation_get_image_size (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), 0);
  return tf_model_config (tf_generator_model (self->generator))->image_size;
}

int
tf_generation_get_picture_grey_side (TfGeneration *self)
{
  if (self == NULL)
    return 0;
  g_return_val_if_fail (TF_IS_GENERATION (self), 0);
  return tf_generator_picture_grey_side (self->generator);
}

int
tf_generation_get_channels (TfGeneration *self)
{
  g_return_val_if_fail (TF_IS_GENERATION (self), 0);
  return tf_model_config (tf_generator_model (self->generator))->image_channels;
}

static void
tf_generation_finalize (GObject *object)
{
  TfGeneration *self = TF_GENERATION (object);

  /* no job holds a reference any more; wait for the last one's thread to
   * return from its final push */
  g_thread_pool_free (self->pool, FALSE, TRUE);
  TF_TSAN_ACQUIRE (self);   /* released by the worker's last run_job() */
  tf_event_queue_clear (&self->queue, (GDestroyNotify) event_free);
  g_clear_pointer (&self->generator, tf_generator_free);

  G_OBJECT_CLASS (tf_generation_parent_class)->finalize (object);
}

static void
tf_generation_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TfGeneration *self = TF_GENERATION (object);

  switch (prop_id)
    {
    case PROP_GENERATOR:
      g_value_set_pointer (value, self->generator);
      break;
    case PROP_BUSY:
      g_value_set_boolean (value, tf_generation_get_busy (self));
      break;
    case PROP_IMAGE_SIZE:
      g_value_set_int (value, tf_generation_get_image_size (self));
      break;
    case PROP_CHANNELS:
      g_value_set_int (value, tf_generation_get_channels (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tf_generation_set_property (GObject *object, guint prop_id, const GValue *value,
                            GParamSpec *pspec)
{
  TfGeneration *self = TF_GENERATION (object);

  switch (prop_id)
    {
    case PROP_GENERATOR:
      self->generator = g_value_get_pointer (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tf_generation_constructed (GObject *object)
{
  TfGeneration *self = TF_GENERATION (object);

  G_OBJECT_CLASS (tf_generation_parent_class)->constructed (object);
  g_assert (self->generator != NULL);
}

static void
tf_generation_class_init (TfGenerationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = tf_generation_finalize;
  object_class->get_property = tf_generation_get_property;
  object_class->set_property = tf_generation_set_property;
  object_class->constructed = tf_generation_constructed;

  properties[PROP_GENERATOR] =
    g_param_spec_pointer ("generator", NULL, NULL,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_BUSY] =
    g_param_spec_boolean ("busy", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_IMAGE_SIZE] =
    g_param_spec_int ("image-size", NULL, NULL, 0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_CHANNELS] =
    g_param_spec_int ("channels", NULL, NULL, 0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SIGNAL_STEP] =
    g_signal_new ("step", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 4, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_BYTES, G_TYPE_BYTES);
  signals[SIGNAL_TOKEN] =
    g_signal_new ("token", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, TF_TYPE_TOKEN);
  signals[SIGNAL_IMAGE_BEGIN] =
    g_signal_new ("image-begin", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 0);
  signals[SIGNAL_IMAGE_END] =
    g_signal_new ("image-end", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
  signals[SIGNAL_FINISHED] =
    g_signal_new ("finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BYTES);
  signals[SIGNAL_FAILED] =
    g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
tf_generation_init (TfGeneration *self)
{
  tf_event_queue_init (&self->queue, G_OBJECT (self), dispatch_events,
                       "[transfusion] TfGeneration events");
  /* its own thread, since it runs at a lower priority */
  self->pool = g_thread_pool_new (run_job, self, 1, TRUE, NULL);
}
