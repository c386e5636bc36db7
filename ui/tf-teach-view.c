/* tf-teach-view.c: the Teach view (tf-teach-view.h). */
#include "config.h"

#include "tf-teach-view.h"

#include <adwaita.h>
#include <errno.h>
#include <inttypes.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "tf-data.h"
#include "tf-image.h"
#include "tf-image-view.h"
#include "tf-json.h"
#include "tf-loss-plot.h"
#include "tf-model-info.h"
#include "tf-safetensors.h"

/* More pictures than this are not read: a folder of photographs taught at
 * 32 × 32 pixels gains nothing from thousands. */
#define MAX_PICTURES 500
/* Rows per step: enough pictures per step for a small folder. */
#define TEACH_BATCH 4
/* Minutes between sample grids, and between saves. */
#define SAMPLE_MINUTES 3.0
#define SAVE_MINUTES 2.0
/* The model's own prompts added to the user's captions. */
#define N_USUAL_PROMPTS 2
#define N_OWN_PROMPTS 4

/* The learning rates of Gentle, Normal and Strong: a warm start needs far
 * less than a new model. */
static const double warm_rates[3] = { 1e-4, 3e-4, 1e-3 };
static const double scratch_rates[3] = { 3e-4, 1e-3, 3e-3 };

typedef struct {
  char      *name;        /* file name, for people */
  GBytes    *pixels;      /* fitted to the model: size × size × channels floats */
  char      *caption;     /* from NAME.txt, or NULL: the model writes one */
  gboolean   by_model;
  GtkEntry  *entry;       /* main side: the card's caption */
  GtkLabel  *note;
} Picture;

static void
picture_free (Picture *p)
{
  g_free (p->name);
  g_clear_pointer (&p->pixels, g_bytes_unref);
  g_free (p->caption);
  g_free (p);
}

struct _TfTeachView
{
  GtkWidget      parent_instance;

  /* Template children */
  GtkStack      *stack;
  AdwStatusPage *start_page;
  GtkLabel      *start_error_label;
  GtkWidget     *resume_list;
  AdwActionRow  *resume_row;
  GtkLabel      *folder_label;
  GtkLabel      *count_label;
  GtkLabel      *problems_label;
  GtkFlowBox    *picture_grid;
  AdwComboRow   *start_from_row;
  GtkStringList *start_from_list;
  AdwComboRow   *strength_row;
  AdwActionRow  *keep_row;
  GtkSwitch     *keep_switch;
  GtkAdjustment *length_adjustment;
  GtkDropDown   *unit_dropdown;
  AdwEntryRow   *prompts_row;
  GtkLabel      *setup_error_label;
  GtkLabel      *run_title_label;
  GtkLabel      *run_status_label;
  GtkWidget     *pause_button;
  GtkWidget     *resume_run_button;
  GtkWidget     *stop_button;
  GtkProgressBar *progress_bar;
  GtkWidget     *done_box;
  GtkWidget     *back_button;
  GtkDrawingArea *plot_area;
  GtkLabel      *samples_label;
  GtkFlowBox    *samples_grid;

  TfGeneration  *generation;       /* the current model's, or NULL */
  char          *model_path;       /* the current model's file */
  char          *model_provenance; /* its "provenance" metadata, or NULL */
  char          *teach_dir;
  GCancellable  *scan_cancellable;
  GtkNativeDialog *chooser;

  char          *folder;           /* the folder read */
  GPtrArray     *pictures;         /* Picture */
  guint          captioning;       /* index of the picture being captioned, or G_MAXUINT */
  gboolean       caption_job;      /* the generation's job is ours */

  TfTraining    *training;
  char          *run_dir;          /* the run shown */
  char          *run_model;        /* its model file */
  char         **run_prompts;
  char          *resume_dir;       /* the unfinished run offered on the start page */
  char          *previous_model;   /* the model before "use", for going back */
  gboolean       steps_recorded;   /* teach.json has the run's number of steps */
};

G_DEFINE_FINAL_TYPE (TfTeachView, tf_teach_view, GTK_TYPE_WIDGET)

enum {
  SIGNAL_OPEN_MODEL,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

static void update_actions (TfTeachView *self);

/* g_set_str() is GLib 2.76; Debian 12 has 2.74. */
static void
set_string (char **place, const char *value)
{
  if (*place == value)
    return;
  char *copy = g_strdup (value);
  g_free (*place);
  *place = copy;
}
static void caption_next (TfTeachView *self);

/* ---- teach.json -------------------------------------------------------- */

static char *
run_file (const char *run_dir, const char *name)
{
  return g_build_filename (run_dir, name, NULL);
}

/* What a run's teach.json says; NULL when it is missing or broken. */
static JsonObject *
read_run (const char *run_dir)
{
  g_autofree char *path = run_file (run_dir, "teach.json");
  g_autofree char *contents = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (!g_file_get_contents (path, &contents, NULL, NULL)
      || !tf_json_parse (parser, contents, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static void
add_strings (JsonBuilder *b, const char *member, const char *const *strings)
{
  json_builder_set_member_name (b, member);
  json_builder_begin_array (b);
  for (guint i = 0; strings != NULL && strings[i] != NULL; i++)
    json_builder_add_string_value (b, strings[i]);
  json_builder_end_array (b);
}

/* Writes the run's teach.json (atomically, as g_file_set_contents does).
 * @data: what it trains on, the copy of the folder first, as the run's
 * options have it (a resumed run takes them from its state). */
static gboolean
write_run (const char *run_dir, const char *folder, const char *model, const char *base_model,
           const char *const *prompts, const char *const *data, const char *state,
           int64_t step, int64_t steps, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *path = run_file (run_dir, "teach.json");

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "folder");
  json_builder_add_string_value (b, folder);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, model);
  json_builder_set_member_name (b, "base_model");
  json_builder_add_string_value (b, base_model != NULL ? base_model : "");
  add_strings (b, "prompts", prompts);
  add_strings (b, "data", data);
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (b, state);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, step);
  json_builder_set_member_name (b, "steps");
  json_builder_add_int_value (b, steps);
  json_builder_end_object (b);
  g_autofree char *text = tf_json_builder_to_string (b);
  return g_file_set_contents (path, text, -1, error);
}

/* A list of strings of teach.json ("prompts", "data"); empty when missing. */
static char **
strings_of_run (JsonObject *run, const char *member)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  JsonNode *node = json_object_get_member (run, member);
  JsonArray *a = node != NULL && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;

  for (guint i = 0; a != NULL && i < json_array_get_length (a); i++)
    {
      JsonNode *n = json_array_get_element (a, i);
      if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING)
        g_strv_builder_add (b, json_node_get_string (n));
    }
  return g_strv_builder_end (b);
}

/* Updates the state of the run shown, keeping the rest. */
static void
set_run_state (TfTeachView *self, const char *state)
{
  g_autoptr (JsonObject) run = read_run (self->run_dir);
  g_autoptr (GError) error = NULL;
  const TfTrainProgress *p = tf_training_get_progress (self->training);

  if (run == NULL)
    return;
  g_auto (GStrv) data = strings_of_run (run, "data");
  if (!write_run (self->run_dir, json_object_get_string_member_with_default (run, "folder", ""),
                  self->run_model,
                  json_object_get_string_member_with_default (run, "base_model", ""),
                  (const char *const *) self->run_prompts, (const char *const *) data, state,
                  p->step, p->steps, &error))
    gtk_label_set_text (self->run_status_label, error->message);
}

/* The newest run that was neither finished nor given up, with its state
 * file present, as a folder name in @teach_dir; NULL when there is none. */
static char *
newest_unfinished_run (const char *teach_dir)
{
  g_autoptr (GDir) dir = teach_dir != NULL ? g_dir_open (teach_dir, 0, NULL) : NULL;
  char *best = NULL;
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *run_dir = g_build_filename (teach_dir, name, NULL);
      g_autoptr (JsonObject) run = read_run (run_dir);
      if (run == NULL)
        continue;
      const char *state = json_object_get_string_member_with_default (run, "state", "");
      const char *model = json_object_get_string_member_with_default (run, "model", "");
      g_autofree char *state_path = tf_train_state_path (model);
      if ((strcmp (state, "running") == 0 || strcmp (state, "paused") == 0)
          && g_file_test (state_path, G_FILE_TEST_IS_REGULAR)
          && (best == NULL || strcmp (name, best) > 0))
        set_string (&best, name);
    }
  return best;
}

gboolean
tf_teach_has_unfinished_run (const char *teach_dir)
{
  g_autofree char *run = newest_unfinished_run (teach_dir);
  return run != NULL;
}

/* Offers the newest unfinished run on the start page. */
static void
find_unfinished_run (TfTeachView *self)
{
  g_autofree char *best = newest_unfinished_run (self->teach_dir);

  g_clear_pointer (&self->resume_dir, g_free);
  if (best != NULL)
    {
      self->resume_dir = g_build_filename (self->teach_dir, best, NULL);
      g_autoptr (JsonObject) run = read_run (self->resume_dir);
      g_autofree char *folder = g_path_get_basename (
        json_object_get_string_member_with_default (run, "folder", ""));
      /* Translators: "“cats”, stopped at step 40 of 200" */
      g_autofree char *subtitle = g_strdup_printf (
        _("“%s”, stopped at step %" PRId64 " of %" PRId64), folder,
        json_object_get_int_member_with_default (run, "step", 0),
        json_object_get_int_member_with_default (run, "steps", 0));
      adw_action_row_set_subtitle (self->resume_row, subtitle);
    }
  gtk_widget_set_visible (self->resume_list, self->resume_dir != NULL);
  update_actions (self);
}

/* ---- Reading the folder --------------------------------------------------- */

typedef struct {
  char      *dir;
  int        size, channels;
  GPtrArray *pictures;    /* Picture */
  GString   *problems;    /* one line a file not used */
  guint      n_problems;
  gboolean   truncated;
} Scan;

static void
scan_free (Scan *scan)
{
  g_free (scan->dir);
  g_clear_pointer (&scan->pictures, g_ptr_array_unref);
  g_string_free (scan->problems, TRUE);
  g_free (scan);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
scan_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Scan *scan = task_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (scan->dir, 0, &error);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (dir == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  /* By name, as the folder data source reads them. */
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len && !g_cancellable_is_cancelled (cancellable); i++)
    {
      name = g_ptr_array_index (names, i);
      g_autofree char *path = g_build_filename (scan->dir, name, NULL);
      g_autofree char *shown = g_filename_display_name (name);
      if (name[0] == '.' || g_str_has_suffix (name, ".txt")
          || !g_file_test (path, G_FILE_TEST_IS_REGULAR))
        continue;
      if (scan->pictures->len == MAX_PICTURES)
        {
          scan->truncated = TRUE;
          break;
        }
      g_autoptr (GFile) file = g_file_new_for_path (path);
      g_autoptr (GError) picture_error = NULL;
      /* filling the image, as the folder source trains on them */
      GBytes *pixels = tf_pixels_new_from_file (file, scan->size, scan->channels, 0,
                                                &picture_error);
      if (pixels == NULL)
        {
          /* Translators: a file of the folder that is not used, and why */
          g_string_append_printf (scan->problems, _("%s is not a picture Transfusion can read "
                                                    "(PNG, JPEG or TIFF): %s\n"),
                                  shown, picture_error->message);
          scan->n_problems++;
          continue;
        }
      Picture *p = g_new0 (Picture, 1);
      p->name = g_steal_pointer (&shown);
      p->pixels = pixels;
      g_autoptr (GError) caption_error = NULL;
      p->caption = tf_data_folder_caption (path, &caption_error);
      if (p->caption == NULL && !g_error_matches (caption_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        {
          /* Translators: a caption file that is not used, and why; the model writes one */
          g_string_append_printf (scan->problems, _("%s: %s; the model writes a caption instead\n"),
                                  p->name, caption_error->message);
          scan->n_problems++;
        }
      g_ptr_array_add (scan->pictures, p);
    }
  g_task_return_boolean (task, TRUE);
}

static GtkWidget *
picture_card (TfTeachView *self, Picture *p, int size, int channels)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *image = tf_image_view_new ();
  GtkWidget *entry = gtk_entry_new ();
  GtkWidget *name = gtk_label_new (p->name);
  GtkWidget *note = gtk_label_new (NULL);

  gtk_widget_add_css_class (box, "card");
  gtk_widget_add_css_class (box, "teach-card");
  gtk_widget_set_size_request (image, 96, 96);
  tf_image_view_set_bytes (TF_IMAGE_VIEW (image), p->pixels, size, channels);
  gtk_widget_set_tooltip_text (image, _("As training sees it"));
  gtk_label_set_ellipsize (GTK_LABEL (name), PANGO_ELLIPSIZE_MIDDLE);
  gtk_widget_add_css_class (name, "caption");
  gtk_widget_add_css_class (name, "dim-label");
  gtk_editable_set_text (GTK_EDITABLE (entry), p->caption != NULL ? p->caption : "");
  gtk_entry_set_placeholder_text (GTK_ENTRY (entry), _("Caption"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (entry), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  p->name, -1);
  gtk_widget_add_css_class (note, "caption");
  gtk_widget_add_css_class (note, "accent");
  gtk_widget_set_visible (note, FALSE);
  gtk_box_append (GTK_BOX (box), image);
  gtk_box_append (GTK_BOX (box), name);
  gtk_box_append (GTK_BOX (box), entry);
  gtk_box_append (GTK_BOX (box), note);
  p->entry = GTK_ENTRY (entry);
  p->note = GTK_LABEL (note);
  return box;
}

static int
model_image_size (TfTeachView *self)
{
  return self->generation != NULL ? tf_generation_get_image_size (self->generation) : 32;
}

static int
model_channels (TfTeachView *self)
{
  return self->generation != NULL ? tf_generation_get_channels (self->generation) : 3;
}

static void
show_start_error (TfTeachView *self, const char *message)
{
  gtk_label_set_text (self->start_error_label, message);
  gtk_widget_set_visible (GTK_WIDGET (self->start_error_label), message != NULL);
  gtk_stack_set_visible_child_name (self->stack, "start");
}

/* The prompts offered at first: a few of the user's captions and a couple
 * the model was trained on. */
static void
suggest_prompts (TfTeachView *self)
{
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  /* In the model's language (its training data is English), not the user's. */
  static const char *const usual[N_USUAL_PROMPTS] = { "a red circle", "a sneaker" };
  guint n = 0;

  for (guint i = 0; i < self->pictures->len && n < N_OWN_PROMPTS; i++)
    {
      Picture *p = g_ptr_array_index (self->pictures, i);
      const char *text = gtk_editable_get_text (GTK_EDITABLE (p->entry));
      if (*text != '\0' && strchr (text, ';') == NULL && g_hash_table_add (seen, (char *) text))
        {
          g_strv_builder_add (b, text);
          n++;
        }
    }
  for (guint i = 0; i < N_USUAL_PROMPTS; i++)
    if (g_hash_table_add (seen, (char *) usual[i]))
      g_strv_builder_add (b, usual[i]);
  g_auto (GStrv) prompts = g_strv_builder_end (b);
  g_autofree char *text = g_strjoinv ("; ", prompts);
  gtk_editable_set_text (GTK_EDITABLE (self->prompts_row), text);
}

static void
scan_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (TfTeachView) self = user_data;
  Scan *scan = g_task_get_task_data (G_TASK (result));
  g_autoptr (GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_autofree char *shown = g_filename_display_name (scan->dir);
          g_autofree char *message = g_strdup_printf (_("Could not read the folder %s: %s"),
                                                      shown, error->message);
          show_start_error (self, message);
          g_clear_object (&self->scan_cancellable);
          update_actions (self);
        }
      return;
    }
  g_clear_object (&self->scan_cancellable);
  if (scan->pictures->len == 0)
    {
      g_autofree char *shown = g_filename_display_name (scan->dir);
      g_autofree char *message = g_strdup_printf (
        _("%s has no picture to learn from: it needs PNG, JPEG or TIFF files.\n%s"), shown,
        scan->problems->str);
      g_strchomp (message);
      show_start_error (self, message);
      update_actions (self);
      return;
    }

  g_clear_pointer (&self->pictures, g_ptr_array_unref);
  self->pictures = g_steal_pointer (&scan->pictures);
  set_string (&self->folder, scan->dir);
  for (GtkWidget *child; (child = gtk_widget_get_first_child (GTK_WIDGET (self->picture_grid)));)
    gtk_flow_box_remove (self->picture_grid, child);
  guint missing = 0;
  for (guint i = 0; i < self->pictures->len; i++)
    {
      Picture *p = g_ptr_array_index (self->pictures, i);
      gtk_flow_box_append (self->picture_grid,
                           picture_card (self, p, scan->size, scan->channels));
      missing += p->caption == NULL;
    }
  g_autofree char *folder_name = g_filename_display_basename (scan->dir);
  gtk_label_set_text (self->folder_label, folder_name);
  g_autofree char *count = NULL;
  if (missing > 0)
    count = g_strdup_printf (ngettext ("%u picture, %u without a caption: the model writes it",
                                       "%u pictures, %u without a caption: the model writes them",
                                       missing),
                             self->pictures->len, missing);
  else
    count = g_strdup_printf (ngettext ("%u picture with its caption",
                                       "%u pictures with their captions", self->pictures->len),
                             self->pictures->len);
  gtk_label_set_text (self->count_label, count);
  if (scan->truncated)
    g_string_append_printf (scan->problems, _("Only the first %d pictures are used.\n"),
                            MAX_PICTURES);
  g_strchomp (scan->problems->str);
  gtk_label_set_text (self->problems_label, scan->problems->str);
  gtk_widget_set_visible (GTK_WIDGET (self->problems_label), scan->problems->str[0] != '\0');
  gtk_widget_set_visible (GTK_WIDGET (self->setup_error_label), FALSE);
  gtk_widget_set_visible (GTK_WIDGET (self->start_error_label), FALSE);
  gtk_stack_set_visible_child_name (self->stack, "setup");

  self->captioning = 0;
  caption_next (self);
  update_actions (self);
}

void
tf_teach_view_open_folder (TfTeachView *self, GFile *folder)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));

  if (tf_teach_view_get_running (self))
    return;
  if (self->scan_cancellable != NULL)
    g_cancellable_cancel (self->scan_cancellable);
  g_clear_object (&self->scan_cancellable);
  self->scan_cancellable = g_cancellable_new ();

  Scan *scan = g_new0 (Scan, 1);
  scan->dir = g_file_get_path (folder);
  scan->size = model_image_size (self);
  scan->channels = model_channels (self);
  scan->pictures = g_ptr_array_new_with_free_func ((GDestroyNotify) picture_free);
  scan->problems = g_string_new (NULL);
  if (scan->dir == NULL)
    {
      scan_free (scan);
      show_start_error (self, _("Only folders on this computer can be read"));
      return;
    }
  g_autoptr (GTask) task = g_task_new (NULL, self->scan_cancellable, scan_done,
                                       g_object_ref (self));
  g_task_set_task_data (task, scan, (GDestroyNotify) scan_free);
  g_task_run_in_thread (task, scan_thread);
  update_actions (self);
}

/* ---- Captions by the model ------------------------------------------------ */

static void
on_caption_finished (TfGeneration *generation, const char *text, GBytes *pixels,
                     TfTeachView *self)
{
  if (!self->caption_job)
    return;
  self->caption_job = FALSE;
  if (self->pictures != NULL && self->captioning < self->pictures->len)
    {
      Picture *p = g_ptr_array_index (self->pictures, self->captioning);
      g_autofree char *caption = g_strstrip (g_strdup (text));
      p->caption = g_strdup (caption);
      p->by_model = TRUE;
      gtk_editable_set_text (GTK_EDITABLE (p->entry), caption);
      gtk_label_set_text (p->note, _("Written by the model"));
      self->captioning++;
    }
  caption_next (self);
  update_actions (self);
}

static void
on_caption_failed (TfGeneration *generation, const GError *error, TfTeachView *self)
{
  if (!self->caption_job)
    return;
  self->caption_job = FALSE;
  if (self->pictures != NULL && self->captioning < self->pictures->len)
    {
      Picture *p = g_ptr_array_index (self->pictures, self->captioning);
      g_autofree char *note = g_strdup_printf (_("The model could not caption it: %s"),
                                               error->message);
      gtk_label_set_text (p->note, note);
      p->by_model = TRUE;   /* not to be tried again; the user writes it */
      p->caption = g_strdup ("");
      self->captioning++;
    }
  caption_next (self);
  update_actions (self);
}

/* Captions the next picture without one, when the model is free. */
static void
caption_next (TfTeachView *self)
{
  if (self->pictures == NULL || self->caption_job)
    return;
  while (self->captioning < self->pictures->len
         && ((Picture *) g_ptr_array_index (self->pictures, self->captioning))->caption != NULL)
    self->captioning++;
  if (self->captioning >= self->pictures->len)
    {
      self->captioning = G_MAXUINT;
      suggest_prompts (self);
      return;
    }
  if (self->generation == NULL || tf_generation_get_busy (self->generation))
    return;   /* notify::busy brings us back */
  Picture *p = g_ptr_array_index (self->pictures, self->captioning);
  TfGenerateSettings settings;
  tf_generate_settings_init (&settings);
  settings.temperature = 0;
  settings.max_tokens = 32;
  gtk_label_set_text (p->note, _("The model is writing a caption…"));
  gtk_widget_set_visible (GTK_WIDGET (p->note), TRUE);
  g_autoptr (GError) error = NULL;
  self->caption_job = tf_generation_caption (self->generation,
                                             g_bytes_get_data (p->pixels, NULL), &settings,
                                             NULL, &error);
  if (!self->caption_job)
    {
      g_autofree char *note = g_strdup_printf (_("The model could not caption it: %s"),
                                               error->message);
      gtk_label_set_text (p->note, note);
      p->caption = g_strdup ("");
      self->captioning++;
      caption_next (self);
    }
}

static void
on_generation_busy (TfTeachView *self)
{
  if (self->captioning != G_MAXUINT)
    caption_next (self);
}

/* ---- The run ---------------------------------------------------------------- */

static void
on_progress (TfTraining *training, TfTeachView *self)
{
  const TfTrainProgress *p = tf_training_get_progress (training);

  /* A run in minutes knows its steps now: teach.json says so, for the
   * offer to continue should the program end without a word. */
  if (p->step > 0 && !self->steps_recorded)
    {
      self->steps_recorded = TRUE;
      set_run_state (self, "running");
    }
  if (p->steps > 0)
    gtk_progress_bar_set_fraction (self->progress_bar, (double) p->step / (double) p->steps);
  if (p->step > 0 && tf_training_get_running (training))
    {
      g_autofree char *eta = tf_format_duration (p->eta);
      /* Translators: step, steps, tokens per second, time left (h:mm:ss) */
      g_autofree char *status = g_strdup_printf (
        _("Step %" PRId64 " of %" PRId64 " · %.0f tokens/s · %s left"),
        p->step, p->steps, p->tokens_per_second, eta);
      gtk_label_set_text (self->run_status_label, status);
    }
  gtk_widget_queue_draw (GTK_WIDGET (self->plot_area));
}

static void
on_samples (TfTraining *training, guint n_images, guint size, guint channels, GBytes *pixels,
            TfTeachView *self)
{
  const float *values = g_bytes_get_data (pixels, NULL);
  const size_t per_image = (size_t) size * size * channels;

  for (GtkWidget *child; (child = gtk_widget_get_first_child (GTK_WIDGET (self->samples_grid)));)
    gtk_flow_box_remove (self->samples_grid, child);
  for (guint i = 0; i < n_images && self->run_prompts != NULL && self->run_prompts[i]; i++)
    {
      GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
      GtkWidget *image = tf_image_view_new ();
      GtkWidget *label = gtk_label_new (self->run_prompts[i]);
      gtk_widget_set_size_request (image, 96, 96);
      tf_image_view_set_pixels (TF_IMAGE_VIEW (image), values + per_image * i, (int) size,
                                (int) channels);
      gtk_label_set_wrap (GTK_LABEL (label), TRUE);
      gtk_label_set_justify (GTK_LABEL (label), GTK_JUSTIFY_CENTER);
      gtk_label_set_max_width_chars (GTK_LABEL (label), 18);
      gtk_widget_add_css_class (label, "caption");
      gtk_box_append (GTK_BOX (box), image);
      gtk_box_append (GTK_BOX (box), label);
      gtk_flow_box_append (self->samples_grid, box);
    }
  const int64_t step = tf_training_get_samples_step (training);
  /* Translators: the heading of the sample grid */
  g_autofree char *heading = step > 0 ? g_strdup_printf (_("Samples at step %" PRId64), step)
                                      : g_strdup (_("Samples before training"));
  gtk_label_set_text (self->samples_label, heading);
}

static void
on_ended (TfTraining *training, int end, const GError *error, TfTeachView *self)
{
  const TfTrainProgress *p = tf_training_get_progress (training);
  g_autofree char *name = tf_model_name_from_path (self->run_model);

  switch (end)
    {
    case TF_TRAINING_FINISHED:
    case TF_TRAINING_STOPPED:
      set_run_state (self, end == TF_TRAINING_FINISHED ? "finished" : "stopped");
      {
        g_autofree char *title = g_strdup_printf (_("“%s” Has Learnt Your Pictures"), name);
        g_autofree char *status = g_strdup_printf (
          _("%" PRId64 " steps. The model is saved as %s"), p->step, self->run_model);
        gtk_label_set_text (self->run_title_label, title);
        gtk_label_set_text (self->run_status_label, status);
      }
      gtk_progress_bar_set_fraction (self->progress_bar, 1.0);
      break;
    case TF_TRAINING_PAUSED:
      set_run_state (self, "paused");
      {
        g_autofree char *status = g_strdup_printf (
          _("Paused at step %" PRId64 " of %" PRId64 "; saved, and it goes on "
            "exactly where it stopped"), p->step, p->steps);
        gtk_label_set_text (self->run_status_label, status);
      }
      break;
    default:
      {
        /* Without a state there is nothing to resume: teach again. */
        g_autofree char *state_path = tf_train_state_path (self->run_model);
        set_run_state (self, g_file_test (state_path, G_FILE_TEST_EXISTS) ? "paused" : "failed");
      }
      {
        g_autofree char *status = g_strdup_printf (
          _("Training stopped: %s. What was saved before is kept."),
          error != NULL ? error->message : _("unknown error"));
        gtk_label_set_text (self->run_status_label, status);
      }
      break;
    }
  update_actions (self);
}

static void
plot_draw (GtkDrawingArea *area, cairo_t *cr, int width, int height, gpointer data)
{
  TfTeachView *self = data;
  GArray *points = self->training != NULL ? tf_training_get_points (self->training) : NULL;

  if (points == NULL || points->len == 0)
    {
      cairo_set_source_rgb (cr, 0.97, 0.97, 0.96);
      cairo_paint (cr);
      cairo_set_source_rgb (cr, 0.4, 0.4, 0.4);
      cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
      cairo_set_font_size (cr, 14);
      tf_cairo_text_at (cr, width / 2.0, height / 2.0,
                        _("The curves appear after the first step"), 0.5, 0.5);
      return;
    }
  tf_loss_plot_draw (cr, width, height, points, 1, NULL);
}

static void
show_run_page (TfTeachView *self)
{
  self->steps_recorded = FALSE;
  for (GtkWidget *child; (child = gtk_widget_get_first_child (GTK_WIDGET (self->samples_grid)));)
    gtk_flow_box_remove (self->samples_grid, child);
  gtk_label_set_text (self->samples_label, _("Samples"));
  g_autofree char *name = tf_model_name_from_path (self->run_model);
  g_autofree char *title = g_strdup_printf (_("Teaching “%s”"), name);
  gtk_label_set_text (self->run_title_label, title);
  gtk_label_set_text (self->run_status_label, _("Getting ready…"));
  gtk_progress_bar_set_fraction (self->progress_bar, 0);
  gtk_stack_set_visible_child_name (self->stack, "run");
  gtk_widget_queue_draw (GTK_WIDGET (self->plot_area));
}

/* Continues the run in @run_dir from its saved state. */
static gboolean
resume_run (TfTeachView *self, const char *run_dir, GError **error)
{
  g_autoptr (JsonObject) run = read_run (run_dir);
  if (run == NULL)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                   _("%s: the run's teach.json is missing or broken"), run_dir);
      return FALSE;
    }
  const char *model = json_object_get_string_member_with_default (run, "model", "");
  TfTrainOptions o;
  tf_train_options_init (&o);
  if (!tf_train_options_load_saved (&o, model, error))
    {
      tf_train_options_clear (&o);
      return FALSE;
    }
  g_free (o.out);
  o.out = g_strdup (model);
  o.resume = TRUE;
  o.save_every_minutes = SAVE_MINUTES;
  set_string (&self->run_dir, run_dir);
  set_string (&self->run_model, model);
  g_strfreev (self->run_prompts);
  self->run_prompts = strings_of_run (run, "prompts");
  gboolean ok = tf_training_start (self->training, &o, 0,
                                   (const char *const *) self->run_prompts, SAMPLE_MINUTES,
                                   error);
  tf_train_options_clear (&o);
  if (ok)
    {
      set_run_state (self, "running");
      show_run_page (self);
    }
  update_actions (self);
  return ok;
}

/* A file-system-safe name for the run: the folder's, in letters, digits,
 * '-' and '_'. */
static char *
run_name_for (const char *folder)
{
  g_autofree char *base = g_filename_display_basename (folder);
  GString *name = g_string_new (NULL);
  for (const char *c = base; *c != '\0'; c = g_utf8_next_char (c))
    {
      gunichar u = g_utf8_get_char (c);
      if (g_unichar_isalnum (u) || u == '-' || u == '_')
        g_string_append_unichar (name, u);
      else if (name->len > 0 && name->str[name->len - 1] != '-')
        g_string_append_c (name, '-');
    }
  if (name->len == 0)
    g_string_append (name, "pictures");
  return g_string_free (name, FALSE);
}

/* Writes the pictures as training will read them into @dir (0001.png and
 * 0001.txt…); errors name the file. */
static gboolean
write_pictures (TfTeachView *self, const char *dir, GError **error)
{
  const int size = model_image_size (self), channels = model_channels (self);
  g_autofree uint8_t *rgb = g_new (uint8_t, (size_t) size * size * channels);

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved = errno;
      g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved),
                   _("Could not create the folder %s: %s"), dir, g_strerror (saved));
      return FALSE;
    }
  for (guint i = 0; i < self->pictures->len; i++)
    {
      Picture *p = g_ptr_array_index (self->pictures, i);
      g_autofree char *png = g_strdup_printf ("%s/%04u.png", dir, i + 1);
      g_autofree char *txt = g_strdup_printf ("%s/%04u.txt", dir, i + 1);
      g_autofree char *caption = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (p->entry))));
      tf_image_from_model (g_bytes_get_data (p->pixels, NULL), size, channels, rgb);
      if (!tf_image_write_png (png, rgb, size, size, channels, NULL, NULL, error))
        return FALSE;
      if (!g_file_set_contents (txt, caption, -1, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        remove_tree (child);
      else
        g_remove (child);
    }
  return g_rmdir (path) == 0;
}

static void
show_setup_error (TfTeachView *self, const char *message)
{
  gtk_label_set_text (self->setup_error_label, message);
  gtk_widget_set_visible (GTK_WIDGET (self->setup_error_label), TRUE);
}

static void
start_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);
  g_autoptr (GError) error = NULL;

  if (self->pictures == NULL || tf_teach_view_get_preparing (self)
      || tf_teach_view_get_running (self))
    return;
  for (guint i = 0; i < self->pictures->len; i++)
    {
      Picture *p = g_ptr_array_index (self->pictures, i);
      g_autofree char *caption = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (p->entry))));
      if (caption[0] == '\0')
        {
          g_autofree char *message = g_strdup_printf (_("%s has no caption: write what it shows"),
                                                      p->name);
          show_setup_error (self, message);
          gtk_widget_grab_focus (GTK_WIDGET (p->entry));
          return;
        }
    }
  const gboolean scratch = adw_combo_row_get_selected (self->start_from_row) == 1
                           || self->model_path == NULL;
  const char *preset = "tiny";
  if (!scratch)
    {
      TfGenerator *gen = tf_generation_get_generator (self->generation);
      preset = tf_config_preset_of (tf_model_config (tf_generator_model (gen)));
      if (preset == NULL)
        {
          g_autofree char *name = tf_model_name_from_path (self->model_path);
          g_autofree char *message = g_strdup_printf (
            _("%s has a shape of its own, not one of the presets a run can continue; "
              "start from a new tiny model instead"), name);
          show_setup_error (self, message);
          return;
        }
    }

  /* The run's folder: a new one, named by time and folder. */
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");
  g_autofree char *name = run_name_for (self->folder);
  g_autofree char *run_dir = NULL;
  for (int k = 1; run_dir == NULL || g_file_test (run_dir, G_FILE_TEST_EXISTS); k++)
    {
      g_autofree char *leaf = k == 1 ? g_strdup_printf ("%s-%s", stamp, name)
                                     : g_strdup_printf ("%s-%s-%d", stamp, name, k);
      g_free (run_dir);
      run_dir = g_build_filename (self->teach_dir, leaf, NULL);
    }
  g_autofree char *pictures_dir = g_build_filename (run_dir, "pictures", NULL);
  g_autofree char *leaf = g_strconcat (name, ".safetensors", NULL);
  g_autofree char *model = g_build_filename (run_dir, leaf, NULL);
  g_auto (GStrv) prompts_split = g_strsplit (gtk_editable_get_text (GTK_EDITABLE (self->prompts_row)),
                                             ";", -1);
  g_autoptr (GStrvBuilder) pb = g_strv_builder_new ();
  for (guint i = 0; prompts_split[i] != NULL; i++)
    if (*g_strstrip (prompts_split[i]) != '\0')
      g_strv_builder_add (pb, prompts_split[i]);
  g_auto (GStrv) prompts = g_strv_builder_end (pb);

  const double length = gtk_adjustment_get_value (self->length_adjustment);
  const gboolean minutes = gtk_drop_down_get_selected (self->unit_dropdown) == 0;
  const guint strength = MIN (adw_combo_row_get_selected (self->strength_row), 2u);
  TfTrainOptions o;
  tf_train_options_init (&o);
  set_string (&o.preset, preset);
  g_strfreev (o.data);
  g_auto (GStrv) missing = NULL;
  if (!scratch && gtk_switch_get_active (self->keep_switch))
    tf_training_keep_mix (pictures_dir, self->model_provenance, &o.data, &o.weights, &missing);
  else
    {
      o.data = g_new0 (char *, 2);
      o.data[0] = g_strdup (pictures_dir);
    }
  o.out = g_strdup (model);
  o.precision = TF_PRECISION_AUTO;   /* bf16 where the CPU does it natively, as `train` */
  o.batch = TEACH_BATCH;
  o.steps = minutes ? 1000 : (int64_t) length;
  o.lr = scratch ? scratch_rates[strength] : warm_rates[strength];
  o.save_every_minutes = SAVE_MINUTES;
  o.init_from = scratch ? NULL : g_strdup (self->model_path);

  gboolean ok = write_pictures (self, pictures_dir, &error)
    && write_run (run_dir, self->folder, model, self->model_path, (const char *const *) prompts,
                  (const char *const *) o.data, "running", 0, o.steps, &error);
  if (ok)
    {
      set_string (&self->run_dir, run_dir);
      set_string (&self->run_model, model);
      g_strfreev (self->run_prompts);
      self->run_prompts = g_strdupv (prompts);
      ok = tf_training_start (self->training, &o, minutes ? length : 0,
                              (const char *const *) prompts, SAMPLE_MINUTES, &error);
    }
  tf_train_options_clear (&o);
  if (!ok)
    {
      /* Nothing of the user's is touched: only our half-made run goes. */
      remove_tree (run_dir);
      show_setup_error (self, error->message);
      update_actions (self);
      return;
    }
  gtk_widget_set_visible (GTK_WIDGET (self->setup_error_label), FALSE);
  show_run_page (self);
  update_actions (self);
}

static void
pause_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);
  if (tf_teach_view_get_running (self))
    {
      tf_training_pause (self->training);
      gtk_label_set_text (self->run_status_label, _("Pausing after this step…"));
    }
}

static void
stop_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);
  if (tf_teach_view_get_running (self))
    {
      tf_training_stop (self->training);
      gtk_label_set_text (self->run_status_label, _("Saving the model as it is…"));
    }
}

static void
report_resume_error (TfTeachView *self, const GError *error)
{
  if (g_strcmp0 (gtk_stack_get_visible_child_name (self->stack), "run") == 0)
    gtk_label_set_text (self->run_status_label, error->message);
  else
    show_start_error (self, error->message);
}

static void
resume_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);
  g_autoptr (GError) error = NULL;
  g_autofree char *run_dir = g_strdup (self->run_dir);

  if (run_dir != NULL && !tf_teach_view_get_running (self) && !resume_run (self, run_dir, &error))
    report_resume_error (self, error);
}

static void
continue_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);
  g_autoptr (GError) error = NULL;
  g_autofree char *run_dir = g_strdup (self->resume_dir);

  if (run_dir == NULL || tf_teach_view_get_running (self))
    return;
  if (!resume_run (self, run_dir, &error))
    report_resume_error (self, error);
  else
    {
      g_clear_pointer (&self->resume_dir, g_free);
      gtk_widget_set_visible (self->resume_list, FALSE);
    }
}

static void
use_model_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);

  if (self->run_model == NULL || tf_teach_view_get_running (self))
    return;
  if (g_strcmp0 (self->model_path, self->run_model) != 0)
    set_string (&self->previous_model, self->model_path);
  g_signal_emit (self, signals[SIGNAL_OPEN_MODEL], 0, self->run_model);
  update_actions (self);
}

static void
use_previous_model_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);

  if (self->previous_model != NULL)
    g_signal_emit (self, signals[SIGNAL_OPEN_MODEL], 0, self->previous_model);
}

static void
new_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);

  if (tf_teach_view_get_running (self))
    return;
  gtk_stack_set_visible_child_name (self->stack, self->pictures != NULL ? "setup" : "start");
  update_actions (self);
}

/* GtkFileChooserNative is the file chooser of GTK 4.8 (Debian 12). */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

static void
on_chooser_response (GtkNativeDialog *dialog, int response, TfTeachView *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) folder = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      if (folder != NULL)
        tf_teach_view_open_folder (self, folder);
    }
  gtk_native_dialog_destroy (dialog);
  g_clear_object (&self->chooser);
}

static void
choose_folder_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfTeachView *self = TF_TEACH_VIEW (widget);
  GtkFileChooserNative *native;

  if (self->chooser != NULL || tf_teach_view_get_running (self))
    return;
  native = gtk_file_chooser_native_new (_("Choose a Folder of Pictures"),
                                        GTK_WINDOW (gtk_widget_get_root (widget)),
                                        GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, _("_Choose"),
                                        _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (native), TRUE);
  self->chooser = GTK_NATIVE_DIALOG (native);
  g_signal_connect (native, "response", G_CALLBACK (on_chooser_response), self);
  gtk_native_dialog_show (self->chooser);
}

G_GNUC_END_IGNORE_DEPRECATIONS

static void
update_actions (TfTeachView *self)
{
  GtkWidget *w = GTK_WIDGET (self);
  const gboolean running = tf_teach_view_get_running (self);
  const gboolean preparing = tf_teach_view_get_preparing (self);
  const gboolean have_run = self->run_model != NULL;
  const char *state = "";
  g_autoptr (JsonObject) run = have_run ? read_run (self->run_dir) : NULL;

  if (run != NULL)
    state = json_object_get_string_member_with_default (run, "state", "");
  const gboolean ended = have_run && !running
                         && (strcmp (state, "finished") == 0 || strcmp (state, "stopped") == 0);
  const gboolean paused = have_run && !running && strcmp (state, "paused") == 0;

  gtk_widget_action_set_enabled (w, "teach.choose-folder", !running && self->chooser == NULL);
  gtk_widget_action_set_enabled (w, "teach.start", !running && !preparing
                                                   && self->pictures != NULL);
  gtk_widget_action_set_enabled (w, "teach.pause", running);
  gtk_widget_action_set_enabled (w, "teach.stop", running);
  gtk_widget_action_set_enabled (w, "teach.resume", paused);
  gtk_widget_action_set_enabled (w, "teach.continue", !running && self->resume_dir != NULL);
  gtk_widget_action_set_enabled (w, "teach.use-model", ended);
  gtk_widget_action_set_enabled (w, "teach.use-previous-model", self->previous_model != NULL);
  gtk_widget_action_set_enabled (w, "teach.new", !running);

  gtk_widget_set_visible (self->pause_button, running);
  gtk_widget_set_visible (self->stop_button, running);
  gtk_widget_set_visible (self->resume_run_button, paused);
  gtk_widget_set_visible (self->done_box, have_run && !running);
  gtk_widget_set_visible (gtk_widget_get_first_child (self->done_box), ended);
  gtk_widget_set_visible (self->back_button, self->previous_model != NULL);
  if (self->previous_model != NULL)
    {
      g_autofree char *name = tf_model_name_from_path (self->previous_model);
      /* Translators: a button that goes back to the model used before */
      g_autofree char *label = g_strdup_printf (_("_Back to “%s”"), name);
      gtk_button_set_label (GTK_BUTTON (self->back_button), label);
    }
}

/* "Keep What It Knew": offered for a warm start, saying what is mixed in
 * and what this computer lacks. */
static void
update_keep_row (TfTeachView *self)
{
  const gboolean warm = self->model_path != NULL
                        && adw_combo_row_get_selected (self->start_from_row) == 0;
  g_auto (GStrv) data = NULL, missing = NULL;
  g_autofree double *weights = NULL;

  gtk_widget_set_visible (GTK_WIDGET (self->keep_row), warm);
  if (!warm)
    return;
  tf_training_keep_mix ("", self->model_provenance, &data, &weights, &missing);
  g_autoptr (GString) subtitle = g_string_new (NULL);
  if (data[1] != NULL)
    {
      g_autofree char *sources = g_strjoinv (", ", data + 1);
      /* Translators: the sources the model was trained on, "fashion, shapes, emoji" */
      g_string_printf (subtitle, _("About half of what it sees is your pictures, the rest what "
                                   "it learnt from: %s"), sources);
    }
  else
    g_string_assign (subtitle, _("None of what it learnt from is on this computer: it sees "
                                 "your pictures alone"));
  if (missing[0] != NULL)
    {
      g_autofree char *names = g_strjoinv (", ", missing);
      g_string_append_c (subtitle, '\n');
      /* Translators: data sources whose Debian packages are not installed */
      g_string_append_printf (subtitle, _("Left out, not installed on this computer: %s"),
                              names);
    }
  adw_action_row_set_subtitle (self->keep_row, subtitle->str);
}

/* ---- API ------------------------------------------------------------------------ */

TfTeachView *
tf_teach_view_new (void)
{
  return g_object_new (TF_TYPE_TEACH_VIEW, NULL);
}

void
tf_teach_view_set_model (TfTeachView *self, TfGeneration *generation, const char *model_path)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));

  if (self->generation != NULL)
    g_signal_handlers_disconnect_by_data (self->generation, self);
  /* A caption asked of the old model is not coming back. */
  self->caption_job = FALSE;
  g_set_object (&self->generation, generation);
  set_string (&self->model_path, model_path);
  /* What it was trained on, for "Keep What It Knew" (the file is mapped,
   * not read). */
  g_clear_pointer (&self->model_provenance, g_free);
  if (model_path != NULL)
    {
      g_autoptr (TfSafetensors) st = tf_safetensors_open (model_path, NULL);
      if (st != NULL)
        self->model_provenance = g_strdup (tf_safetensors_metadata (st, "provenance"));
    }
  if (generation != NULL)
    {
      g_signal_connect (generation, "finished", G_CALLBACK (on_caption_finished), self);
      g_signal_connect (generation, "failed", G_CALLBACK (on_caption_failed), self);
      g_signal_connect_swapped (generation, "notify::busy", G_CALLBACK (on_generation_busy), self);
    }
  /* The choice of where to start names the model. */
  g_autofree char *name = model_path != NULL ? tf_model_name_from_path (model_path) : NULL;
  /* Translators: the model in use, "“default” (current)" */
  g_autofree char *current = g_strdup_printf (_("“%s” (current)"), name != NULL ? name : "");
  const char *items[] = { current, _("A new tiny model"), NULL };
  gtk_string_list_splice (self->start_from_list, 0,
                          g_list_model_get_n_items (G_LIST_MODEL (self->start_from_list)), items);
  adw_combo_row_set_selected (self->start_from_row, model_path != NULL ? 0 : 1);
  update_keep_row (self);
  if (self->captioning != G_MAXUINT)
    caption_next (self);
  update_actions (self);
}

void
tf_teach_view_set_teach_dir (TfTeachView *self, const char *dir)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  g_return_if_fail (dir != NULL);
  set_string (&self->teach_dir, dir);
  find_unfinished_run (self);
}

const char *
tf_teach_view_get_page (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), NULL);
  return gtk_stack_get_visible_child_name (self->stack);
}

gboolean
tf_teach_view_get_preparing (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), FALSE);
  return self->scan_cancellable != NULL || self->captioning != G_MAXUINT;
}

gboolean
tf_teach_view_get_running (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), FALSE);
  return tf_training_get_running (self->training);
}

TfTraining *
tf_teach_view_get_training (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), NULL);
  return self->training;
}

const char *
tf_teach_view_get_run_dir (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), NULL);
  return self->run_dir;
}

gboolean
tf_teach_view_get_can_continue (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), FALSE);
  return self->resume_dir != NULL;
}

guint
tf_teach_view_get_n_pictures (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), 0);
  return self->pictures != NULL ? self->pictures->len : 0;
}

const char *
tf_teach_view_get_caption (TfTeachView *self, guint index)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), NULL);
  g_return_val_if_fail (index < tf_teach_view_get_n_pictures (self), NULL);
  Picture *p = g_ptr_array_index (self->pictures, index);
  return gtk_editable_get_text (GTK_EDITABLE (p->entry));
}

gboolean
tf_teach_view_get_caption_by_model (TfTeachView *self, guint index)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), FALSE);
  g_return_val_if_fail (index < tf_teach_view_get_n_pictures (self), FALSE);
  return ((Picture *) g_ptr_array_index (self->pictures, index))->by_model;
}

void
tf_teach_view_set_caption (TfTeachView *self, guint index, const char *text)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  g_return_if_fail (index < tf_teach_view_get_n_pictures (self));
  Picture *p = g_ptr_array_index (self->pictures, index);
  gtk_editable_set_text (GTK_EDITABLE (p->entry), text);
}

void
tf_teach_view_set_length (TfTeachView *self, double value, gboolean minutes)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  gtk_drop_down_set_selected (self->unit_dropdown, minutes ? 0 : 1);
  gtk_adjustment_set_value (self->length_adjustment, value);
}

void
tf_teach_view_set_from_scratch (TfTeachView *self, gboolean from_scratch)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  adw_combo_row_set_selected (self->start_from_row, from_scratch ? 1 : 0);
}

void
tf_teach_view_set_keep (TfTeachView *self, gboolean keep)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  gtk_switch_set_active (self->keep_switch, keep);
}

gboolean
tf_teach_view_get_keep_offered (TfTeachView *self)
{
  g_return_val_if_fail (TF_IS_TEACH_VIEW (self), FALSE);
  return gtk_widget_get_visible (GTK_WIDGET (self->keep_row));
}

char *
tf_teach_data_name (const char *data)
{
  g_autofree char *leaf = g_path_get_basename (data);
  g_autofree char *run_dir = g_path_get_dirname (data);
  g_autoptr (JsonObject) run = strcmp (leaf, "pictures") == 0 ? read_run (run_dir) : NULL;
  const char *folder = run != NULL
    ? json_object_get_string_member_with_default (run, "folder", "") : "";

  return g_filename_display_basename (*folder != '\0' ? folder : data);
}

void
tf_teach_view_set_prompts (TfTeachView *self, const char *prompts)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  gtk_editable_set_text (GTK_EDITABLE (self->prompts_row), prompts);
}

void
tf_teach_view_pause_and_wait (TfTeachView *self)
{
  g_return_if_fail (TF_IS_TEACH_VIEW (self));
  if (!tf_teach_view_get_running (self))
    return;
  tf_training_pause (self->training);
  tf_training_wait (self->training);
  /* The worker saved; say so on disk now, whether or not the main loop
   * runs again to deliver `ended`. */
  set_run_state (self, "paused");
}

/* ---- The object ------------------------------------------------------------------ */

static void
tf_teach_view_dispose (GObject *object)
{
  TfTeachView *self = TF_TEACH_VIEW (object);

  tf_teach_view_pause_and_wait (self);
  if (self->training != NULL)
    g_signal_handlers_disconnect_by_data (self->training, self);
  g_clear_object (&self->training);
  if (self->scan_cancellable != NULL)
    g_cancellable_cancel (self->scan_cancellable);
  g_clear_object (&self->scan_cancellable);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (self->chooser);
  g_clear_object (&self->chooser);
  if (self->generation != NULL)
    g_signal_handlers_disconnect_by_data (self->generation, self);
  g_clear_object (&self->generation);
  g_clear_pointer (&self->pictures, g_ptr_array_unref);
  gtk_widget_dispose_template (GTK_WIDGET (self), TF_TYPE_TEACH_VIEW);
  G_OBJECT_CLASS (tf_teach_view_parent_class)->dispose (object);
}

static void
tf_teach_view_finalize (GObject *object)
{
  TfTeachView *self = TF_TEACH_VIEW (object);

  g_free (self->model_path);
  g_free (self->model_provenance);
  g_free (self->teach_dir);
  g_free (self->folder);
  g_free (self->run_dir);
  g_free (self->run_model);
  g_strfreev (self->run_prompts);
  g_free (self->resume_dir);
  g_free (self->previous_model);
  G_OBJECT_CLASS (tf_teach_view_parent_class)->finalize (object);
}

static void
tf_teach_view_class_init (TfTeachViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_teach_view_dispose;
  object_class->finalize = tf_teach_view_finalize;

  signals[SIGNAL_OPEN_MODEL] =
    g_signal_new ("open-model", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/transfusion/Transfusion/tf-teach-view.ui");
  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, stack);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, start_page);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, start_error_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, resume_list);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, resume_row);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, folder_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, count_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, problems_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, picture_grid);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, start_from_row);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, start_from_list);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, strength_row);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, keep_row);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, keep_switch);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, length_adjustment);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, unit_dropdown);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, prompts_row);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, setup_error_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, run_title_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, run_status_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, pause_button);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, resume_run_button);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, stop_button);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, done_box);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, back_button);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, plot_area);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, samples_label);
  gtk_widget_class_bind_template_child (widget_class, TfTeachView, samples_grid);

  gtk_widget_class_install_action (widget_class, "teach.choose-folder", NULL, choose_folder_action);
  gtk_widget_class_install_action (widget_class, "teach.start", NULL, start_action);
  gtk_widget_class_install_action (widget_class, "teach.pause", NULL, pause_action);
  gtk_widget_class_install_action (widget_class, "teach.resume", NULL, resume_action);
  gtk_widget_class_install_action (widget_class, "teach.stop", NULL, stop_action);
  gtk_widget_class_install_action (widget_class, "teach.continue", NULL, continue_action);
  gtk_widget_class_install_action (widget_class, "teach.use-model", NULL, use_model_action);
  gtk_widget_class_install_action (widget_class, "teach.use-previous-model", NULL,
                                   use_previous_model_action);
  gtk_widget_class_install_action (widget_class, "teach.new", NULL, new_action);
}

static void
tf_teach_view_init (TfTeachView *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->captioning = G_MAXUINT;
  /* The window names it too; a view on its own keeps runs in the same place. */
  self->teach_dir = g_build_filename (g_get_user_data_dir (), "transfusion", "teach", NULL);
  self->training = tf_training_new ();
  g_signal_connect (self->training, "progress", G_CALLBACK (on_progress), self);
  g_signal_connect (self->training, "samples", G_CALLBACK (on_samples), self);
  g_signal_connect (self->training, "ended", G_CALLBACK (on_ended), self);
  gtk_drawing_area_set_draw_func (self->plot_area, plot_draw, self, NULL);
  adw_combo_row_set_selected (self->strength_row, 1);   /* Normal */
  g_signal_connect_swapped (self->start_from_row, "notify::selected",
                            G_CALLBACK (update_keep_row), self);
  tf_teach_view_set_model (self, NULL, NULL);
  update_actions (self);
}
