/* tf-training.c: a training run on a worker thread, reports as signals on
 * the main context (tf-training.h).
 *
 * The worker queues events under a mutex; the first event of a burst
 * schedules one dispatch on the main context, which takes the whole queue.
 * Steps that the main context has not taken yet are merged into one event
 * (all their points kept), so a fast run costs one redraw per turn of the
 * main loop, not one per step. The worker holds a reference to the object
 * until its last event, `ended`, is dispatched. */
#include "config.h"

#include "tf-training.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "tf-generate.h"
#include "tf-data.h"
#include "tf-generation.h"
#include "tf-json.h"
#include "tf-loss-plot.h"
#include "tf-tsan.h"

#define SAMPLE_STEPS 25
#define SAMPLE_CFG 3.0
/* A run in minutes has at least this many steps. */
#define MIN_STEPS 10

typedef enum {
  EVENT_POINTS,
  EVENT_SAMPLES,
  EVENT_ENDED,
} EventKind;

typedef struct {
  EventKind        kind;
  GArray          *points;     /* POINTS: TfLossPoint to append */
  gboolean         replace;    /* POINTS: the earlier log of a resumed run */
  gboolean         has_progress;
  TfTrainProgress  progress;
  GBytes          *pixels;     /* SAMPLES */
  guint            n_images, size, channels;
  int64_t          step;
  TfTrainingEnd    end;        /* ENDED */
  GError          *error;
} Event;

typedef struct {
  TfTraining     *self;        /* a reference, dropped with the last event */
  TfTrainOptions  options;
  double          minutes;
  char          **prompts;
  double          sample_minutes;
  gint64          last_sample; /* monotonic µs */
  TfTrainer      *trainer;     /* worker side */
  GError         *sample_error; /* a save for the samples failed: the run ends with it */
} Job;

struct _TfTraining {
  GObject          parent_instance;

  GThread         *thread;      /* the running worker, or NULL */
  Job             *job;
  volatile gint    abort;       /* the trainer's abort flag */
  volatile gint    stopping;    /* TRUE: stop for good, FALSE: pause */

  /* main context side */
  GArray          *points;
  TfTrainProgress  progress;
  char            *model_path;
  guint            n_sample_grids;
  int64_t          samples_step;

  TfEventQueue     queue;
};

G_DEFINE_FINAL_TYPE (TfTraining, tf_training, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_RUNNING,
  N_PROPS
};
static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_PROGRESS,
  SIGNAL_SAMPLES,
  SIGNAL_ENDED,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

static void
event_free (Event *ev)
{
  g_clear_pointer (&ev->points, g_array_unref);
  g_clear_pointer (&ev->pixels, g_bytes_unref);
  g_clear_error (&ev->error);
  g_free (ev);
}

static void
job_free (Job *job)
{
  tf_train_options_clear (&job->options);
  g_strfreev (job->prompts);
  g_clear_pointer (&job->trainer, tf_trainer_free);
  g_clear_error (&job->sample_error);
  g_clear_object (&job->self);
  g_free (job);
}

/* ---- Main context side ---------------------------------------------------- */

/* After the worker's last event: its thread is returning (or gone). */
static void
join_worker (TfTraining *self)
{
  if (self->thread != NULL)
    g_thread_join (self->thread);
  self->thread = NULL;
  TF_TSAN_ACQUIRE (self->job);   /* released by the worker before its last event */
  g_clear_pointer (&self->job, job_free);
}

static gboolean
dispatch_events (gpointer data)
{
  TfTraining *self = data;
  GQueue events;
  Event *ev;

  tf_event_queue_take_all (&self->queue, &events);

  while ((ev = g_queue_pop_head (&events)) != NULL)
    {
      switch (ev->kind)
        {
        case EVENT_POINTS:
          if (ev->replace)
            g_array_set_size (self->points, 0);
          g_array_append_vals (self->points, ev->points->data, ev->points->len);
          if (ev->has_progress)
            self->progress = ev->progress;
          g_signal_emit (self, signals[SIGNAL_PROGRESS], 0);
          break;
        case EVENT_SAMPLES:
          self->n_sample_grids++;
          self->samples_step = ev->step;
          g_signal_emit (self, signals[SIGNAL_SAMPLES], 0, ev->n_images, ev->size, ev->channels,
                         ev->pixels);
          break;
        case EVENT_ENDED:
          join_worker (self);
          g_object_freeze_notify (G_OBJECT (self));
          g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RUNNING]);
          g_signal_emit (self, signals[SIGNAL_ENDED], 0, ev->end, ev->error);
          g_object_thaw_notify (G_OBJECT (self));
          break;
        default:
          g_assert_not_reached ();
        }
      event_free (ev);
    }
  return G_SOURCE_REMOVE;
}

/* ---- Worker side ------------------------------------------------------------ */

/* New points join those still waiting. */
static gpointer
merge_points (gpointer last_event, gpointer event)
{
  Event *last = last_event, *ev = event;

  if (ev->kind != EVENT_POINTS || ev->replace || last->kind != EVENT_POINTS)
    return NULL;
  g_array_append_vals (last->points, ev->points->data, ev->points->len);
  if (ev->has_progress)
    {
      last->has_progress = TRUE;
      last->progress = ev->progress;
    }
  event_free (ev);
  return last;
}

static void
push_event (TfTraining *self, Event *ev)
{
  tf_event_queue_push (&self->queue, ev, merge_points);
}

/* Draws the prompts with the model as just saved. FALSE when the save
 * failed (the run must end); a failure to draw only costs the grid. */
static gboolean
draw_samples (Job *job, int64_t step)
{
  TfTraining *self = job->self;
  g_autoptr (GError) error = NULL;

  if (job->prompts == NULL || job->prompts[0] == NULL)
    return TRUE;
  if (!tf_trainer_save (job->trainer, &job->sample_error))
    return FALSE;
  g_autoptr (TfGenerator) gen = tf_generator_new_from_file (job->options.out, &error);
  if (gen == NULL)
    {
      g_warning ("%s", error->message);
      return TRUE;
    }
  const TfConfig *c = tf_model_config (tf_generator_model (gen));
  const guint n = g_strv_length (job->prompts);
  const size_t per_image = (size_t) c->image_size * c->image_size * c->image_channels;
  float *pixels = g_new0 (float, per_image * n);
  for (guint i = 0; i < n; i++)
    {
      TfGenerateSettings settings;
      tf_generate_settings_init (&settings);
      settings.steps = SAMPLE_STEPS;
      settings.cfg = SAMPLE_CFG;
      settings.sampler = TF_SAMPLER_DDIM;
      settings.seed = 1 + i;
      /* A pause or stop does not wait for the grid. */
      if (g_atomic_int_get (&self->abort)
          || !tf_generator_generate_image (gen, job->prompts[i], &settings, NULL,
                                           pixels + per_image * i, &error))
        {
          g_free (pixels);
          if (error != NULL && !g_error_matches (error, TF_ERROR, TF_ERROR_ABORTED))
            g_warning ("%s", error->message);
          return TRUE;
        }
    }
  Event *ev = g_new0 (Event, 1);
  ev->kind = EVENT_SAMPLES;
  ev->n_images = n;
  ev->size = (guint) c->image_size;
  ev->channels = (guint) c->image_channels;
  ev->step = step;
  ev->pixels = g_bytes_new_take (pixels, per_image * n * sizeof (float));
  push_event (self, ev);
  job->last_sample = g_get_monotonic_time ();
  return TRUE;
}

static void
on_step (const TfTrainProgress *p, gpointer data)
{
  Job *job = data;
  Event *ev = g_new0 (Event, 1);

  ev->kind = EVENT_POINTS;
  ev->points = tf_loss_points_new ();
  TfLossPoint point = { (double) p->step, p->lm, p->ddpm, p->lr, 0, 0 };
  g_array_append_val (ev->points, point);
  ev->has_progress = TRUE;
  ev->progress = *p;
  push_event (job->self, ev);

  if (p->step < p->steps
      && g_get_monotonic_time () - job->last_sample >= job->sample_minutes * 60e6
      && !draw_samples (job, p->step))
    g_atomic_int_set (&job->self->abort, 1);   /* the run saves once more and ends */
}

/* Seconds per step of these options, measured on the second of two steps of
 * a throwaway run in a folder beside the real one. */
static gboolean
measure_step_seconds (const TfTrainOptions *options, double *seconds, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (options->out);
  g_autofree char *probe_dir = g_build_filename (dir, "speed-probe", NULL);
  g_autofree char *probe_out = g_build_filename (probe_dir, "probe.safetensors", NULL);
  g_autofree char *probe_log = tf_train_log_path (probe_out);
  TfTrainOptions probe = *options;   /* the trainer copies what it keeps */

  if (g_mkdir_with_parents (probe_dir, 0700) != 0)
    {
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
                   _("Could not create the folder %s: %s"), probe_dir, g_strerror (errno));
      return FALSE;
    }
  probe.out = probe_out;
  probe.steps = 1000;
  probe.resume = FALSE;
  TfTrainer *trainer = tf_trainer_new (&probe, error);
  gboolean ok = trainer != NULL;
  for (int i = 0; ok && i < 2; i++)
    {
      TfTrainProgress p;
      gint64 start = g_get_monotonic_time ();
      ok = tf_trainer_train_step (trainer, &p, error);
      *seconds = (g_get_monotonic_time () - start) / 1e6;
    }
  g_clear_pointer (&trainer, tf_trainer_free);
  g_remove (probe_log);
  g_rmdir (probe_dir);
  return ok;
}

static gpointer
run_worker (gpointer data)
{
  Job *job = data;
  TfTraining *self = job->self;
  g_autoptr (GError) error = NULL;
  TfTrainingEnd end = TF_TRAINING_FAILED;

  TF_TSAN_ACQUIRE (job);   /* handed over by tf_training_start() */
  tf_worker_lower_priority ();

  if (job->minutes > 0 && !job->options.resume)
    {
      double seconds = 0;
      if (!measure_step_seconds (&job->options, &seconds, &error))
        goto out;
      job->options.steps = MAX (MIN_STEPS, (int64_t) (job->minutes * 60 / MAX (seconds, 1e-3)));
    }
  job->trainer = tf_trainer_new (&job->options, &error);
  if (job->trainer == NULL)
    goto out;

  /* A resumed run's curves start with what it did before. */
  if (job->options.resume)
    {
      g_autofree char *log_path = tf_train_log_path (job->options.out);
      Event *ev = g_new0 (Event, 1);
      int segment = -1, skipped = 0;
      ev->kind = EVENT_POINTS;
      ev->replace = TRUE;
      ev->points = tf_loss_points_new ();
      if (!tf_loss_log_read (log_path, 0, 0, ev->points, &segment, &skipped, NULL))
        g_array_set_size (ev->points, 0);   /* paused before its first step */
      push_event (self, ev);
    }

  if (!draw_samples (job, tf_trainer_step (job->trainer)))
    {
      g_propagate_error (&error, g_steal_pointer (&job->sample_error));
      goto out;
    }
  if (tf_trainer_run (job->trainer, on_step, job, &self->abort, &error))
    {
      end = TF_TRAINING_FINISHED;
      if (!draw_samples (job, tf_trainer_step (job->trainer)))
        {
          end = TF_TRAINING_FAILED;
          g_propagate_error (&error, g_steal_pointer (&job->sample_error));
        }
    }
  else if (job->sample_error != NULL)
    {
      /* The save for a grid failed first: that is the news. */
      g_clear_error (&error);
      g_propagate_error (&error, g_steal_pointer (&job->sample_error));
    }
  else if (g_error_matches (error, TF_ERROR, TF_ERROR_ABORTED))
    {
      end = g_atomic_int_get (&self->stopping) ? TF_TRAINING_STOPPED : TF_TRAINING_PAUSED;
      g_clear_error (&error);
    }

out:
  g_clear_pointer (&job->trainer, tf_trainer_free);
  {
    Event *ev = g_new0 (Event, 1);
    ev->kind = EVENT_ENDED;
    ev->end = end;
    ev->error = g_steal_pointer (&error);
    TF_TSAN_RELEASE (job);
    push_event (self, ev);
  }
  return NULL;
}

/* ---- API ---------------------------------------------------------------------- */

TfTraining *
tf_training_new (void)
{
  return g_object_new (TF_TYPE_TRAINING, NULL);
}

gboolean
tf_training_start (TfTraining *self, const TfTrainOptions *options, double minutes,
                   const char *const *prompts, double sample_minutes, GError **error)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), FALSE);
  g_return_val_if_fail (options != NULL && options->out != NULL, FALSE);

  if (self->job != NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY, _("A training run is going on"));
      return FALSE;
    }
  Job *job = g_new0 (Job, 1);
  job->self = g_object_ref (self);
  job->options = *options;   /* then a deep copy of what it points to */
  job->options.preset = g_strdup (options->preset);
  job->options.data = g_strdupv (options->data);
  job->options.weights = options->weights != NULL
    ? g_memdup2 (options->weights, sizeof (double) * g_strv_length (options->data)) : NULL;
  job->options.out = g_strdup (options->out);
  job->options.recipe = g_strdup (options->recipe);
  job->options.init_from = g_strdup (options->init_from);
  job->minutes = minutes;
  job->prompts = g_strdupv ((char **) prompts);
  job->sample_minutes = sample_minutes;
  job->last_sample = g_get_monotonic_time ();

  g_free (self->model_path);
  self->model_path = g_strdup (options->out);
  g_array_set_size (self->points, 0);
  memset (&self->progress, 0, sizeof self->progress);
  self->progress.steps = options->steps;
  g_atomic_int_set (&self->abort, 0);
  g_atomic_int_set (&self->stopping, 0);
  self->job = job;
  TF_TSAN_RELEASE (job);
  self->thread = g_thread_new ("tf-training", run_worker, job);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_RUNNING]);
  return TRUE;
}

void
tf_training_pause (TfTraining *self)
{
  g_return_if_fail (TF_IS_TRAINING (self));
  g_atomic_int_set (&self->abort, 1);
}

void
tf_training_stop (TfTraining *self)
{
  g_return_if_fail (TF_IS_TRAINING (self));
  g_atomic_int_set (&self->stopping, 1);
  g_atomic_int_set (&self->abort, 1);
}

void
tf_training_wait (TfTraining *self)
{
  g_return_if_fail (TF_IS_TRAINING (self));
  if (self->thread == NULL)
    return;
  g_thread_join (self->thread);
  self->thread = NULL;
  /* The job goes with the `ended` event (still queued for the main context). */
}

gboolean
tf_training_get_running (TfTraining *self)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), FALSE);
  return self->job != NULL;
}

GArray *
tf_training_get_points (TfTraining *self)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), NULL);
  return self->points;
}

const TfTrainProgress *
tf_training_get_progress (TfTraining *self)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), NULL);
  return &self->progress;
}

const char *
tf_training_get_model_path (TfTraining *self)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), NULL);
  return self->model_path;
}

guint
tf_training_get_n_sample_grids (TfTraining *self)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), 0);
  return self->n_sample_grids;
}

int64_t
tf_training_get_samples_step (TfTraining *self)
{
  g_return_val_if_fail (TF_IS_TRAINING (self), 0);
  return self->samples_step;
}

void
tf_training_keep_mix (const char *folder, const char *provenance, char ***data, double **weights,
                      char ***missing)
{
  static const char *const image_sources[] = { "fashion", "shapes", "emoji" };
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonParser) options_parser = json_parser_new ();
  g_autoptr (GStrvBuilder) names = g_strv_builder_new ();
  g_autoptr (GStrvBuilder) left_out = g_strv_builder_new ();
  g_autoptr (GArray) mix = g_array_new (FALSE, FALSE, sizeof (double));
  JsonArray *known = NULL, *known_weights = NULL;

  /* The provenance holds the run's options as a JSON string of their own. */
  if (provenance != NULL && tf_json_parse (parser, provenance, -1, NULL)
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      JsonObject *p = json_node_get_object (json_parser_get_root (parser));
      const char *options = json_object_get_string_member_with_default (p, "options", NULL);
      if (options != NULL && tf_json_parse (options_parser, options, -1, NULL)
          && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (options_parser)))
        {
          JsonObject *o = json_node_get_object (json_parser_get_root (options_parser));
          JsonNode *d = json_object_get_member (o, "data");
          JsonNode *w = json_object_get_member (o, "weights");
          known = d != NULL && JSON_NODE_HOLDS_ARRAY (d) ? json_node_get_array (d) : NULL;
          known_weights = w != NULL && JSON_NODE_HOLDS_ARRAY (w) ? json_node_get_array (w) : NULL;
          if (known_weights != NULL && known != NULL
              && json_array_get_length (known_weights) != json_array_get_length (known))
            known_weights = NULL;
        }
    }

  const guint n = known != NULL ? json_array_get_length (known) : G_N_ELEMENTS (image_sources);
  double others = 0;
  g_strv_builder_add (names, folder);
  g_array_set_size (mix, 1);
  for (guint i = 0; i < n; i++)
    {
      JsonNode *node = known != NULL ? json_array_get_element (known, i) : NULL;
      const char *name = known == NULL ? image_sources[i]
        : JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING
        ? json_node_get_string (node) : NULL;
      const double w = known_weights != NULL ? json_array_get_double_element (known_weights, i)
                                             : 1.0;
      if (name == NULL || !isfinite (w) || w <= 0 || strcmp (name, folder) == 0)
        continue;
      if (!tf_data_source_installed (name, NULL))
        {
          g_autofree char *shown = g_filename_display_basename (name);
          g_strv_builder_add (left_out, shown);
          continue;
        }
      g_strv_builder_add (names, name);
      g_array_append_val (mix, w);
      others += w;
    }
  g_array_index (mix, double, 0) = others > 0 ? others : 1.0;
  *data = g_strv_builder_end (names);
  *weights = (double *) g_array_free (g_steal_pointer (&mix), FALSE);
  *missing = g_strv_builder_end (left_out);
}

/* ---- The object ----------------------------------------------------------------- */

static void
tf_training_finalize (GObject *object)
{
  TfTraining *self = TF_TRAINING (object);

  /* The worker's job holds a reference until its last event is
   * dispatched: no run is left now. */
  g_assert (self->thread == NULL && self->job == NULL);
  tf_event_queue_clear (&self->queue, (GDestroyNotify) event_free);
  g_array_unref (self->points);
  g_free (self->model_path);
  G_OBJECT_CLASS (tf_training_parent_class)->finalize (object);
}

static void
tf_training_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TfTraining *self = TF_TRAINING (object);

  switch (prop_id)
    {
    case PROP_RUNNING:
      g_value_set_boolean (value, tf_training_get_running (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tf_training_class_init (TfTrainingClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = tf_training_finalize;
  object_class->get_property = tf_training_get_property;

  properties[PROP_RUNNING] =
    g_param_spec_boolean ("running", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[SIGNAL_PROGRESS] =
    g_signal_new ("progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 0);
  signals[SIGNAL_SAMPLES] =
    g_signal_new ("samples", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 4, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_UINT, G_TYPE_BYTES);
  signals[SIGNAL_ENDED] =
    g_signal_new ("ended", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_ERROR);
}

static void
tf_training_init (TfTraining *self)
{
  self->points = tf_loss_points_new ();
  tf_event_queue_init (&self->queue, G_OBJECT (self), dispatch_events,
                       "[transfusion] TfTraining events");
}
