/* tf-window.c: the main window. */
#include "config.h"

#include "tf-window.h"

#include <glib/gi18n.h>

struct _TfWindow
{
  GtkApplicationWindow  parent_instance;

  /* Template children */
  GtkLabel             *subtitle_label;
  GtkRevealer          *error_revealer;
  GtkLabel             *error_label;
  GtkStack             *stack;
  GtkSpinner           *spinner;
  GtkLabel             *loading_label;
  GtkLabel             *model_title_label;
  GtkLabel             *model_summary_label;
  GtkBox               *left_column;
  GtkBox               *right_column;

  GSettings            *settings;          /* NULL when the schema is not installed */
  TfModelInfo          *info;              /* the loaded model, or NULL */
  GCancellable         *load_cancellable;  /* the load in flight, or NULL */
  GtkNativeDialog      *chooser;           /* while the file chooser is up */
};

G_DEFINE_FINAL_TYPE (TfWindow, tf_window, GTK_TYPE_APPLICATION_WINDOW)

enum {
  PROP_0,
  PROP_LOADING,
  N_PROPS
};

enum {
  MODEL_LOADED,
  MODEL_FAILED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

/* ---- Window state ------------------------------------------------------- */

static void
tf_window_restore_state (TfWindow *self)
{
  if (self->settings == NULL)
    return;

  gtk_window_set_default_size (GTK_WINDOW (self),
                               g_settings_get_int (self->settings, "window-width"),
                               g_settings_get_int (self->settings, "window-height"));
  if (g_settings_get_boolean (self->settings, "window-maximized"))
    gtk_window_maximize (GTK_WINDOW (self));
}

static void
tf_window_save_state (TfWindow *self)
{
  int width, height;

  if (self->settings == NULL)
    return;

  /* The default size is the unmaximized size, which is what to restore. */
  gtk_window_get_default_size (GTK_WINDOW (self), &width, &height);
  g_settings_set_int (self->settings, "window-width", width);
  g_settings_set_int (self->settings, "window-height", height);
  g_settings_set_boolean (self->settings, "window-maximized",
                          gtk_window_is_maximized (GTK_WINDOW (self)));
}

/* ---- Showing a model ---------------------------------------------------- */

static void
clear_box (GtkBox *box)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (box))) != NULL)
    gtk_box_remove (box, child);
}

static GtkWidget *
card_new (GtkBox *column, const char *title)
{
  GtkWidget *group = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *heading = gtk_label_new (title);
  GtkWidget *card = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);

  gtk_label_set_xalign (GTK_LABEL (heading), 0.0f);
  gtk_widget_add_css_class (heading, "card-heading");
  gtk_widget_add_css_class (card, "card");
  gtk_box_append (GTK_BOX (group), heading);
  gtk_box_append (GTK_BOX (group), card);
  gtk_box_append (column, group);
  return card;
}

static void
card_add_row (GtkWidget *card, const char *key, const char *value)
{
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  GtkWidget *key_label = gtk_label_new (key);
  GtkWidget *value_label = gtk_label_new (value);

  gtk_widget_add_css_class (row, "row");
  gtk_label_set_xalign (GTK_LABEL (key_label), 0.0f);
  gtk_widget_set_hexpand (key_label, TRUE);
  gtk_widget_add_css_class (key_label, "row-key");
  gtk_label_set_xalign (GTK_LABEL (value_label), 1.0f);
  gtk_label_set_ellipsize (GTK_LABEL (value_label), PANGO_ELLIPSIZE_START);
  gtk_widget_set_tooltip_text (value_label, value);
  gtk_widget_add_css_class (value_label, "row-value");
  gtk_box_append (GTK_BOX (row), key_label);
  gtk_box_append (GTK_BOX (row), value_label);
  gtk_box_append (GTK_BOX (card), row);
}

static void
card_add_int_row (GtkWidget *card, const char *key, int value)
{
  g_autofree char *text = g_strdup_printf ("%d", value);

  card_add_row (card, key, text);
}

static void
tf_window_show_model (TfWindow *self)
{
  const TfModelInfo *info = self->info;
  const TfConfig *config = tf_model_config (info->model);
  guint64 n_params = tf_model_n_params (info->model);
  g_autofree char *count = tf_format_count (n_params);
  g_autofree char *size = g_format_size (info->file_size);
  g_autofree char *title = g_strdup_printf (_("%s — Transfusion"), info->name);
  g_autofree char *exact = g_strdup_printf ("%'" G_GUINT64_FORMAT, n_params);
  g_autofree char *params = g_strdup_printf ("%s (%s)", exact, count);
  g_autofree char *keys = info->metadata_keys[0] != NULL
                          ? g_strjoinv (", ", info->metadata_keys) : g_strdup (_("none"));
  g_autofree char *folder = g_path_get_dirname (info->path);
  g_autofree char *summary = NULL;
  GtkWidget *cards[TF_N_CONFIG_GROUPS];
  GtkWidget *card;
  const TfConfigField *fields;
  guint n_fields;

  /* Translators: "1.23 M parameters · 57 tensors · F32 · 4.9 MB" */
  summary = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                          "%s parameters · %d tensor · %s · %s",
                                          "%s parameters · %d tensors · %s · %s",
                                          info->n_tensors),
                             count, info->n_tensors, info->dtypes, size);

  gtk_window_set_title (GTK_WINDOW (self), title);
  gtk_label_set_text (self->subtitle_label, info->name);
  gtk_widget_set_visible (GTK_WIDGET (self->subtitle_label), TRUE);
  gtk_label_set_text (self->model_title_label, info->name);
  gtk_label_set_text (self->model_summary_label, summary);

  clear_box (self->left_column);
  clear_box (self->right_column);

  card = card_new (self->left_column, _("File"));
  card_add_row (card, _("Parameters"), params);
  card_add_int_row (card, _("Tensors"), info->n_tensors);
  card_add_row (card, _("Data type"), info->dtypes);
  card_add_row (card, _("Size on disk"), size);
  card_add_row (card, _("Metadata"), keys);
  card_add_row (card, _("Folder"), folder);

  /* Columns of about the same height. */
  cards[TF_CONFIG_GROUP_TEXT] = card_new (self->left_column,
                                          tf_config_group_title (TF_CONFIG_GROUP_TEXT));
  cards[TF_CONFIG_GROUP_TOKENS] = card_new (self->left_column,
                                            tf_config_group_title (TF_CONFIG_GROUP_TOKENS));
  cards[TF_CONFIG_GROUP_TRANSFORMER] =
    card_new (self->right_column, tf_config_group_title (TF_CONFIG_GROUP_TRANSFORMER));
  cards[TF_CONFIG_GROUP_IMAGE] = card_new (self->right_column,
                                           tf_config_group_title (TF_CONFIG_GROUP_IMAGE));
  cards[TF_CONFIG_GROUP_DIFFUSION] =
    card_new (self->right_column, tf_config_group_title (TF_CONFIG_GROUP_DIFFUSION));

  fields = tf_config_fields (&n_fields);
  for (guint i = 0; i < n_fields; i++)
    {
      g_autofree char *value = tf_config_field_format (&fields[i], config);

      card_add_row (cards[fields[i].group], _(fields[i].label), value);
    }
  /* What follows from the fields. */
  card_add_int_row (cards[TF_CONFIG_GROUP_TRANSFORMER], _("Head size"),
                    tf_config_head_dim (config));
  card_add_int_row (cards[TF_CONFIG_GROUP_IMAGE], _("Patches per image"),
                    tf_config_n_patches (config));
  card_add_int_row (cards[TF_CONFIG_GROUP_IMAGE], _("Values per patch"),
                    tf_config_patch_dim (config));

  gtk_stack_set_visible_child_name (self->stack, "model");
}

/* ---- Loading ------------------------------------------------------------ */

static void
tf_window_set_loading (TfWindow *self, gboolean loading)
{
  gtk_spinner_set_spinning (self->spinner, loading);
  if (loading)
    gtk_stack_set_visible_child_name (self->stack, "loading");
  else
    gtk_stack_set_visible_child_name (self->stack, self->info != NULL ? "model" : "empty");
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

static void
tf_window_show_error (TfWindow *self, const GError *error)
{
  gtk_label_set_text (self->error_label, error->message);
  gtk_revealer_set_reveal_child (self->error_revealer, TRUE);
}

static void
on_error_dismiss_clicked (TfWindow *self)
{
  gtk_revealer_set_reveal_child (self->error_revealer, FALSE);
}

static void
on_cancel_clicked (TfWindow *self)
{
  if (self->load_cancellable == NULL)
    return;
  /* The engine's loader cannot be interrupted; its result is dropped. */
  g_cancellable_cancel (self->load_cancellable);
  g_clear_object (&self->load_cancellable);
  tf_window_set_loading (self, FALSE);
}

static void
load_model_thread (GTask *task, gpointer source_object, gpointer task_data,
                   GCancellable *cancellable)
{
  GError *error = NULL;
  TfModelInfo *info = tf_model_info_load (task_data, &error);

  if (info == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, info, (GDestroyNotify) tf_model_info_free);
}

static void
load_model_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  TfWindow *self = TF_WINDOW (source);
  GTask *task = G_TASK (result);
  g_autoptr(GError) error = NULL;
  g_autoptr(TfModelInfo) info = g_task_propagate_pointer (task, &error);

  /* Superseded by a newer load, cancelled, or the window is gone. */
  if (self->load_cancellable == NULL || g_task_get_cancellable (task) != self->load_cancellable)
    return;
  g_clear_object (&self->load_cancellable);

  if (info == NULL)
    {
      tf_window_set_loading (self, FALSE);
      tf_window_show_error (self, error);
      g_signal_emit (self, signals[MODEL_FAILED], 0, error);
      return;
    }

  g_clear_pointer (&self->info, tf_model_info_free);
  self->info = g_steal_pointer (&info);
  if (self->settings != NULL)
    g_settings_set_string (self->settings, "last-model", self->info->path);

  tf_window_show_model (self);
  tf_window_set_loading (self, FALSE);
  g_signal_emit (self, signals[MODEL_LOADED], 0);
}

void
tf_window_open_model (TfWindow *self, GFile *file)
{
  g_autofree char *path = NULL;
  g_autofree char *name = NULL;
  g_autofree char *message = NULL;
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (TF_IS_WINDOW (self));
  g_return_if_fail (G_IS_FILE (file));

  path = g_file_get_path (file);
  if (path == NULL)
    {
      g_autofree char *uri = g_file_get_uri (file);
      g_autoptr(GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                             _("%s: only local files can be opened"), uri);

      tf_window_show_error (self, error);
      g_signal_emit (self, signals[MODEL_FAILED], 0, error);
      return;
    }

  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);
  g_clear_object (&self->load_cancellable);
  self->load_cancellable = g_cancellable_new ();

  gtk_revealer_set_reveal_child (self->error_revealer, FALSE);
  name = g_file_get_basename (file);
  message = g_strdup_printf (_("Opening %s…"), name);
  gtk_label_set_text (self->loading_label, message);
  tf_window_set_loading (self, TRUE);

  task = g_task_new (self, self->load_cancellable, load_model_done, NULL);
  g_task_set_source_tag (task, tf_window_open_model);
  g_task_set_task_data (task, g_steal_pointer (&path), g_free);
  g_task_run_in_thread (task, load_model_thread);
}

/* ---- Choosing a file ---------------------------------------------------- */

/* GtkFileChooserNative is the file chooser of GTK 4.8 (Debian 12); newer
 * GTK deprecates it in favour of GtkFileDialog. */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

static void
on_chooser_response (GtkNativeDialog *dialog, int response, TfWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));

      if (file != NULL)
        tf_window_open_model (self, file);
    }
  gtk_native_dialog_destroy (dialog);
  g_clear_object (&self->chooser);
}

void
tf_window_choose_model (TfWindow *self)
{
  GtkFileChooserNative *native;
  g_autoptr(GtkFileFilter) models = gtk_file_filter_new ();
  g_autoptr(GtkFileFilter) all = gtk_file_filter_new ();
  g_autofree char *last = NULL;

  g_return_if_fail (TF_IS_WINDOW (self));

  if (self->chooser != NULL)
    {
      gtk_native_dialog_show (self->chooser);
      return;
    }

  native = gtk_file_chooser_native_new (_("Open Model"), GTK_WINDOW (self),
                                        GTK_FILE_CHOOSER_ACTION_OPEN,
                                        _("_Open"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (native), TRUE);

  gtk_file_filter_set_name (models, _("Transfusion models"));
  gtk_file_filter_add_pattern (models, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), models);
  gtk_file_filter_set_name (all, _("All files"));
  gtk_file_filter_add_pattern (all, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), all);

  if (self->settings != NULL)
    last = g_settings_get_string (self->settings, "last-model");
  if (last != NULL && *last != '\0')
    {
      g_autoptr(GFile) file = g_file_new_for_path (last);
      g_autoptr(GFile) folder = g_file_get_parent (file);

      if (folder != NULL && g_file_query_exists (folder, NULL))
        gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (native), folder, NULL);
    }

  g_signal_connect (native, "response", G_CALLBACK (on_chooser_response), self);
  self->chooser = GTK_NATIVE_DIALOG (native);
  gtk_native_dialog_show (self->chooser);
}

G_GNUC_END_IGNORE_DEPRECATIONS

/* ---- The object --------------------------------------------------------- */

const TfModelInfo *
tf_window_get_model_info (TfWindow *self)
{
  g_return_val_if_fail (TF_IS_WINDOW (self), NULL);
  return self->info;
}

gboolean
tf_window_get_loading (TfWindow *self)
{
  g_return_val_if_fail (TF_IS_WINDOW (self), FALSE);
  return self->load_cancellable != NULL;
}

TfWindow *
tf_window_new (TfApplication *application)
{
  TfWindow *self;
  GSettings *settings;

  g_return_val_if_fail (TF_IS_APPLICATION (application), NULL);

  self = g_object_new (TF_TYPE_WINDOW, "application", application, NULL);
  settings = tf_application_get_settings (application);
  if (settings != NULL)
    {
      self->settings = g_object_ref (settings);
      tf_window_restore_state (self);
    }
  return self;
}

static gboolean
tf_window_close_request (GtkWindow *window)
{
  tf_window_save_state (TF_WINDOW (window));
  return GTK_WINDOW_CLASS (tf_window_parent_class)->close_request (window);
}

static void
tf_window_dispose (GObject *object)
{
  TfWindow *self = TF_WINDOW (object);

  /* A load still running keeps the window alive through its GTask and
   * finds load_cancellable cleared when it returns. */
  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);
  g_clear_object (&self->load_cancellable);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (self->chooser);
  g_clear_object (&self->chooser);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->info, tf_model_info_free);

  gtk_widget_dispose_template (GTK_WIDGET (self), TF_TYPE_WINDOW);
  G_OBJECT_CLASS (tf_window_parent_class)->dispose (object);
}

static void
tf_window_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TfWindow *self = TF_WINDOW (object);

  switch (prop_id)
    {
    case PROP_LOADING:
      g_value_set_boolean (value, tf_window_get_loading (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tf_window_class_init (TfWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = tf_window_dispose;
  object_class->get_property = tf_window_get_property;
  window_class->close_request = tf_window_close_request;

  properties[PROP_LOADING] =
    g_param_spec_boolean ("loading", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * TfWindow::model-loaded:
   *
   * A model finished loading and is shown.
   */
  signals[MODEL_LOADED] =
    g_signal_new ("model-loaded", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /**
   * TfWindow::model-failed:
   * @error: what went wrong, naming the file
   *
   * A model could not be loaded; the window shows why.
   */
  signals[MODEL_FAILED] =
    g_signal_new ("model-failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/transfusion/Transfusion/tf-window.ui");
  gtk_widget_class_bind_template_child (widget_class, TfWindow, subtitle_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, error_revealer);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, error_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, spinner);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, loading_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, model_title_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, model_summary_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, left_column);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, right_column);
  gtk_widget_class_bind_template_callback (widget_class, on_error_dismiss_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_cancel_clicked);
}

static void
tf_window_init (TfWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}
