/* tf-gallery.c: the strip of earlier results. */
#include "config.h"

#include "tf-gallery.h"

#include <inttypes.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tf-image.h"
#include "tf-image-view.h"
#include "tf-model-info.h"

/* More would make the strip slow to read at start and long to scroll. */
#define MAX_SHOWN 120
#define THUMBNAIL_SIZE 64

struct _TfGallery
{
  GtkWidget  parent_instance;
  GtkWidget *scroller;
  GtkWidget *box;
  GtkWidget *placeholder;
  char      *dir;
  guint      n_items;
};

G_DEFINE_FINAL_TYPE (TfGallery, tf_gallery, GTK_TYPE_WIDGET)

enum {
  ACTIVATED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

GtkWidget *
tf_gallery_new (void)
{
  return g_object_new (TF_TYPE_GALLERY, NULL);
}

char *
tf_gallery_default_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "transfusion", "gallery", NULL);
}

/* ---- Parameters --------------------------------------------------------- */

void
tf_parameters_clear (TfParameters *parameters)
{
  g_clear_pointer (&parameters->prompt, g_free);
  g_clear_pointer (&parameters->negative, g_free);
  g_clear_pointer (&parameters->model, g_free);
}

static void
parse_setting (TfParameters *parameters, const char *key, const char *value)
{
  TfGenerateSettings *settings = &parameters->settings;

  if (g_str_equal (key, "Steps"))
    settings->steps = (int) g_ascii_strtoll (value, NULL, 10);
  else if (g_str_equal (key, "CFG scale"))
    settings->cfg = g_ascii_strtod (value, NULL);
  else if (g_str_equal (key, "Seed"))
    settings->seed = g_ascii_strtoull (value, NULL, 10);
  else if (g_str_equal (key, "Sampler"))
    {
      g_autofree char *lower = g_ascii_strdown (value, -1);
      TfSampler sampler;

      if (tf_sampler_from_name (lower, &sampler))
        settings->sampler = sampler;
    }
  else if (g_str_equal (key, "Denoising strength"))
    {
      settings->strength = g_ascii_strtod (value, NULL);
      parameters->from_picture = TRUE;
    }
  else if (g_str_equal (key, "Model"))
    {
      g_free (parameters->model);
      parameters->model = g_strdup (value);
    }
}

gboolean
tf_parameters_parse (const char *text, TfParameters *parameters)
{
  g_auto(GStrv) lines = NULL;
  g_autoptr(GString) prompt = g_string_new (NULL);
  guint n;
  int settings_line = -1;

  memset (parameters, 0, sizeof *parameters);
  tf_generate_settings_init (&parameters->settings);
  if (text == NULL)
    return FALSE;

  lines = g_strsplit (text, "\n", -1);
  n = g_strv_length (lines);
  for (int i = (int) n - 1; i >= 0; i--)
    if (g_str_has_prefix (lines[i], "Steps: "))
      {
        settings_line = i;
        break;
      }
  if (settings_line < 0)
    return FALSE;

  /* The prompt may span lines; the negative prompt is the line before the
   * settings that says so. */
  for (int i = 0; i < settings_line; i++)
    {
      if (g_str_has_prefix (lines[i], "Negative prompt: "))
        {
          parameters->negative = g_strdup (lines[i] + strlen ("Negative prompt: "));
          continue;
        }
      if (prompt->len > 0)
        g_string_append_c (prompt, '\n');
      g_string_append (prompt, lines[i]);
    }
  parameters->prompt = g_string_free (g_steal_pointer (&prompt), FALSE);

  g_auto(GStrv) pairs = g_strsplit (lines[settings_line], ", ", -1);
  for (guint i = 0; pairs[i] != NULL; i++)
    {
      char *colon = strstr (pairs[i], ": ");

      if (colon == NULL)
        continue;
      *colon = '\0';
      parse_setting (parameters, pairs[i], colon + 2);
    }
  parameters->settings.negative = parameters->negative;
  return TRUE;
}

/* ---- Thumbnails --------------------------------------------------------- */

typedef struct {
  char   *parameters;
  GBytes *pixels;
  int     size;
  int     channels;
} Item;

static void
item_free (Item *item)
{
  g_free (item->parameters);
  g_bytes_unref (item->pixels);
  g_free (item);
}

static void
on_thumbnail_clicked (GtkButton *button, TfGallery *self)
{
  Item *item = g_object_get_data (G_OBJECT (button), "tf-gallery-item");

  g_signal_emit (self, signals[ACTIVATED], 0, item->parameters, item->pixels, item->size,
                 item->channels);
}

static GtkWidget *
thumbnail_new (TfGallery *self, Item *item)
{
  GtkWidget *button = gtk_button_new ();
  GtkWidget *view = tf_image_view_new ();
  TfParameters parameters;
  g_autofree char *tooltip = NULL;

  tf_image_view_set_bytes (TF_IMAGE_VIEW (view), item->pixels, item->size, item->channels);
  gtk_widget_set_size_request (view, THUMBNAIL_SIZE, THUMBNAIL_SIZE);
  gtk_button_set_child (GTK_BUTTON (button), view);
  gtk_widget_add_css_class (button, "thumbnail");

  if (tf_parameters_parse (item->parameters, &parameters))
    /* Translators: a gallery thumbnail's tooltip: the prompt, then the seed. */
    tooltip = g_strdup_printf (_("%s\nSeed %" PRIu64 " · %d steps · click to restore"),
                               parameters.prompt, (guint64) parameters.settings.seed,
                               parameters.settings.steps);
  else
    tooltip = g_strdup (_("An earlier image"));
  tf_parameters_clear (&parameters);
  gtk_widget_set_tooltip_text (button, tooltip);

  g_object_set_data_full (G_OBJECT (button), "tf-gallery-item", item, (GDestroyNotify) item_free);
  g_signal_connect (button, "clicked", G_CALLBACK (on_thumbnail_clicked), self);
  return button;
}

/* A saved result, or NULL when the file is not one (it is skipped). */
static Item *
item_load (const char *path)
{
  TfImage image = { 0 };
  g_autoptr(GHashTable) text = NULL;
  Item *item;

  if (!tf_image_read_png (path, &image, NULL))
    return NULL;
  if (image.width != image.height)
    {
      tf_image_clear (&image);
      return NULL;
    }
  text = tf_image_read_png_text (path, NULL);

  item = g_new0 (Item, 1);
  item->size = image.width;
  item->channels = 3;
  float *pixels = g_new (float, (size_t) item->size * item->size * item->channels);
  tf_image_to_model (&image, item->size, item->channels, pixels);
  item->pixels = g_bytes_new_take (pixels, (gsize) item->size * item->size * item->channels
                                           * sizeof (float));
  if (text != NULL)
    item->parameters = g_strdup (g_hash_table_lookup (text, "parameters"));
  tf_image_clear (&image);
  return item;
}

static void
clear_strip (TfGallery *self)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_last_child (self->box)) != self->placeholder)
    gtk_box_remove (GTK_BOX (self->box), child);
  self->n_items = 0;
  gtk_widget_set_visible (self->placeholder, TRUE);
}

static int
compare_names_newest_first (gconstpointer a, gconstpointer b)
{
  return -strcmp (*(char *const *) a, *(char *const *) b);
}

void
tf_gallery_set_dir (TfGallery *self, const char *dir)
{
  g_autoptr(GDir) folder = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  g_return_if_fail (TF_IS_GALLERY (self));
  g_return_if_fail (dir != NULL);

  g_free (self->dir);
  self->dir = g_strdup (dir);
  clear_strip (self);

  g_mkdir_with_parents (dir, 0700);
  folder = g_dir_open (dir, 0, NULL);
  while (folder != NULL && (name = g_dir_read_name (folder)) != NULL)
    if (g_str_has_suffix (name, ".png"))
      g_ptr_array_add (names, g_strdup (name));
  /* Names start with the time they were made. */
  g_ptr_array_sort (names, compare_names_newest_first);

  for (guint i = 0; i < names->len && self->n_items < MAX_SHOWN; i++)
    {
      g_autofree char *path = g_build_filename (dir, names->pdata[i], NULL);
      Item *item = item_load (path);

      if (item == NULL)
        continue;
      gtk_box_append (GTK_BOX (self->box), thumbnail_new (self, item));
      self->n_items++;
    }
  gtk_widget_set_visible (self->placeholder, self->n_items == 0);
}

const char *
tf_gallery_get_dir (TfGallery *self)
{
  g_return_val_if_fail (TF_IS_GALLERY (self), NULL);
  return self->dir;
}

guint
tf_gallery_get_n_items (TfGallery *self)
{
  g_return_val_if_fail (TF_IS_GALLERY (self), 0);
  return self->n_items;
}

typedef struct {
  char   *path;
  Item   *item;
} AddJob;

static void
add_job_free (AddJob *job)
{
  g_free (job->path);
  if (job->item != NULL)
    item_free (job->item);
  g_free (job);
}

/* The file is written (and fsync'd) in a worker: that can take longer than
 * a frame. */
static void
add_thread (GTask *task, gpointer source_object, gpointer task_data, GCancellable *cancellable)
{
  AddJob *job = task_data;
  GError *error = NULL;
  g_autofree char *dir = g_path_get_dirname (job->path);

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved),
                               _("%s: could not create the folder: %s"), dir, g_strerror (saved));
      return;
    }
  if (!tf_write_generated_png (job->path, g_bytes_get_data (job->item->pixels, NULL),
                               job->item->size, job->item->channels, 1, job->item->parameters,
                               &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

void
tf_gallery_add_async (TfGallery *self, const float *pixels, int size, int channels,
                      const char *parameters, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y%m%d-%H%M%S");
  g_autoptr(GTask) task = NULL;
  AddJob *job;

  g_return_if_fail (TF_IS_GALLERY (self));
  g_return_if_fail (self->dir != NULL);

  job = g_new0 (AddJob, 1);
  /* Several in one second get a counter. Names sort in the order they were
   * made (the gallery and its restore go by name): '_' sorts after the '.'
   * of the first one, and the counter has three digits. */
  for (int i = 0; job->path == NULL || g_file_test (job->path, G_FILE_TEST_EXISTS); i++)
    {
      g_autofree char *name = i == 0 ? g_strdup_printf ("%s.png", stamp)
                                     : g_strdup_printf ("%s_%03d.png", stamp, i);

      g_free (job->path);
      job->path = g_build_filename (self->dir, name, NULL);
    }
  job->item = g_new0 (Item, 1);
  job->item->size = size;
  job->item->channels = channels;
  job->item->pixels = g_bytes_new (pixels, (gsize) size * size * channels * sizeof (float));
  job->item->parameters = g_strdup (parameters);

  /* The thumbnail shows at once; the file follows. */
  gtk_box_insert_child_after (GTK_BOX (self->box),
                              thumbnail_new (self, g_steal_pointer (&job->item)),
                              self->placeholder);
  self->n_items++;
  gtk_widget_set_visible (self->placeholder, FALSE);
  gtk_adjustment_set_value (gtk_scrolled_window_get_hadjustment (GTK_SCROLLED_WINDOW (self->scroller)),
                            0.0);

  /* The worker needs the pixels too. */
  job->item = g_new0 (Item, 1);
  job->item->size = size;
  job->item->channels = channels;
  job->item->pixels = g_bytes_new (pixels, (gsize) size * size * channels * sizeof (float));
  job->item->parameters = g_strdup (parameters);

  /* No source object: the worker may drop the task's last reference, and
   * a widget must not be finalized there. */
  task = g_task_new (NULL, NULL, callback, user_data);
  g_task_set_source_tag (task, tf_gallery_add_async);
  g_task_set_task_data (task, job, (GDestroyNotify) add_job_free);
  g_task_run_in_thread (task, add_thread);
}

char *
tf_gallery_add_finish (GAsyncResult *result, GError **error)
{
  AddJob *job;

  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == tf_gallery_add_async, NULL);
  job = g_task_get_task_data (G_TASK (result));
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  return g_strdup (job->path);
}

/* ---- The object --------------------------------------------------------- */

static void
tf_gallery_dispose (GObject *object)
{
  TfGallery *self = TF_GALLERY (object);

  g_clear_pointer (&self->scroller, gtk_widget_unparent);
  G_OBJECT_CLASS (tf_gallery_parent_class)->dispose (object);
}

static void
tf_gallery_finalize (GObject *object)
{
  TfGallery *self = TF_GALLERY (object);

  g_free (self->dir);
  G_OBJECT_CLASS (tf_gallery_parent_class)->finalize (object);
}

static void
tf_gallery_class_init (TfGalleryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_gallery_dispose;
  object_class->finalize = tf_gallery_finalize;

  signals[ACTIVATED] = g_signal_new ("activated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                     0, NULL, NULL, NULL, G_TYPE_NONE, 4,
                                     G_TYPE_STRING, G_TYPE_BYTES, G_TYPE_INT, G_TYPE_INT);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "tf-gallery");
}

static void
tf_gallery_init (TfGallery *self)
{
  self->scroller = gtk_scrolled_window_new ();
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (self->scroller),
                                  GTK_POLICY_AUTOMATIC, GTK_POLICY_NEVER);
  self->box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_widget_add_css_class (self->box, "gallery-strip");
  self->placeholder = gtk_label_new (_("Images you make are kept here; click one to restore its settings."));
  gtk_widget_add_css_class (self->placeholder, "dim-label");
  gtk_widget_set_size_request (self->placeholder, -1, THUMBNAIL_SIZE);
  gtk_box_append (GTK_BOX (self->box), self->placeholder);
  gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (self->scroller), self->box);
  gtk_widget_set_parent (self->scroller, GTK_WIDGET (self));
  gtk_accessible_update_property (GTK_ACCESSIBLE (self), GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  _("Earlier results"), -1);
}
