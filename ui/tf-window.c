/* tf-window.c: the main window. */
#include "config.h"

#include "tf-window.h"

#include <glib/gi18n.h>
#include <string.h>

#include "tf-chat-view.h"
#include "tf-gallery.h"
#include "tf-generation.h"
#include "tf-imagine-view.h"
#include "tf-model-info-window.h"
#include "tf-prompt-suggestions.h"

struct _TfWindow
{
  AdwApplicationWindow  parent_instance;

  /* Template children */
  AdwToastOverlay      *toast_overlay;
  AdwViewSwitcherTitle *switcher;
  GtkWidget            *switcher_bar;
  GtkWidget            *error_bundled_button;
  GtkWidget            *model_button;
  GtkWidget            *bundled_button;
  GtkLabel             *model_label;
  GtkRevealer          *error_revealer;
  GtkLabel             *error_label;
  GtkStack             *stack;
  AdwViewStack         *views_stack;
  GtkSpinner           *spinner;
  GtkLabel             *loading_label;
  TfImagineView        *imagine_view;
  TfChatView           *chat_view;
  GtkBox               *teach_box;
  TfTeachView          *teach_view;        /* NULL until Teach is first shown */
  char                 *teach_dir;
  AdwToast             *resume_toast;      /* the offer of an unfinished run, while shown */

  GSettings            *settings;          /* NULL when the schema is not installed */
  TfModelInfo          *info;              /* the loaded model, or NULL */
  TfGeneration         *generation;        /* its generator, or NULL */
  GCancellable         *load_cancellable;  /* the load in flight, or NULL */
  GtkNativeDialog      *chooser;           /* while the file chooser is up */
  gboolean              closing;           /* the user agreed to pause a Teach run */
};

G_DEFINE_FINAL_TYPE (TfWindow, tf_window, ADW_TYPE_APPLICATION_WINDOW)

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

/* Everything a load gives, made in the worker thread. */
typedef struct {
  TfModelInfo         *info;
  TfGenerator         *generator;
  char                *hash;
  TfPromptSuggestions *suggestions;
} LoadedModel;

static void
loaded_model_free (LoadedModel *loaded)
{
  g_clear_pointer (&loaded->info, tf_model_info_free);
  g_clear_pointer (&loaded->generator, tf_generator_free);
  g_free (loaded->hash);
  g_clear_pointer (&loaded->suggestions, tf_prompt_suggestions_free);
  g_free (loaded);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (LoadedModel, loaded_model_free)

static void on_busy_changed (TfWindow *self);
static TfTeachView *ensure_teach_view (TfWindow *self);

/* The Threads and Precision preferences apply to the next job. */
static void
on_threads_changed (TfWindow *self)
{
  if (self->generation == NULL || self->settings == NULL)
    return;
  tf_generation_set_threads (self->generation, g_settings_get_int (self->settings, "threads"));
  TfPrecision precision = TF_PRECISION_AUTO;
  g_autofree char *name = g_settings_get_string (self->settings, "precision");
  tf_precision_parse (name, &precision, NULL);
  tf_generation_set_precision (self->generation, precision);
}

static void
tf_window_show_model (TfWindow *self, LoadedModel *loaded)
{
  g_autofree char *title = NULL;

  g_clear_pointer (&self->info, tf_model_info_free);
  self->info = g_steal_pointer (&loaded->info);
  if (self->generation != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->generation, self);
      tf_generation_cancel (self->generation);
    }
  g_clear_object (&self->generation);
  self->generation = tf_generation_new (g_steal_pointer (&loaded->generator));
  tf_generation_set_model_sampling (self->generation,
                                    self->info->has_sampling ? &self->info->sampling : NULL);
  g_signal_connect_swapped (self->generation, "notify::busy", G_CALLBACK (on_busy_changed), self);
  on_threads_changed (self);

  tf_imagine_view_set_model (self->imagine_view, self->generation, self->info->name,
                             loaded->hash, loaded->suggestions);
  tf_chat_view_set_generation (self->chat_view, self->generation);
  if (self->teach_view != NULL)
    tf_teach_view_set_model (self->teach_view, self->generation, self->info->path);

  /* Translators: the window's title, "default — Transfusion" */
  title = g_strdup_printf (_("%s — Transfusion"), self->info->name);
  gtk_window_set_title (GTK_WINDOW (self), title);
  adw_view_switcher_title_set_subtitle (self->switcher, self->info->name);
  adw_view_switcher_title_set_view_switcher_enabled (self->switcher, TRUE);
  gtk_widget_set_visible (self->switcher_bar, TRUE);
  gtk_label_set_text (self->model_label, self->info->name);
  gtk_widget_set_visible (self->model_button, TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.model-info", TRUE);
  gtk_stack_set_visible_child_name (self->stack, "views");
}

/* ---- Loading ------------------------------------------------------------ */

static void
tf_window_set_loading (TfWindow *self, gboolean loading)
{
  gtk_spinner_set_spinning (self->spinner, loading);
  if (loading)
    gtk_stack_set_visible_child_name (self->stack, "loading");
  else
    gtk_stack_set_visible_child_name (self->stack, self->info != NULL ? "views" : "empty");
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_LOADING]);
}

static gboolean
bundled_model_exists (void)
{
  g_autofree char *bundled = tf_default_model_path ();

  return bundled != NULL && g_file_test (bundled, G_FILE_TEST_EXISTS);
}

/* The problem in plain words above, the file's own message below, and what
 * to do: another model, or the bundled one (unless that is what failed). */
static void
tf_window_show_error (TfWindow *self, const GError *error)
{
  g_autofree char *bundled = tf_default_model_path ();

  gtk_label_set_text (self->error_label, error->message);
  gtk_widget_set_visible (self->error_bundled_button,
                          bundled != NULL && g_file_test (bundled, G_FILE_TEST_EXISTS)
                          && strstr (error->message, bundled) == NULL);
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
  const char *path = task_data;
  GError *error = NULL;
  g_autoptr(LoadedModel) loaded = g_new0 (LoadedModel, 1);
  const TfConfig *config;

  /* The info and the generator each read the file; the info keeps only
   * what the Model Info window shows. */
  loaded->info = tf_model_info_load (path, &error);
  if (loaded->info == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  loaded->generator = tf_model_info_open_generator (path, &error);
  if (loaded->generator == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  loaded->hash = tf_model_file_hash (path, &error);
  if (loaded->hash == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  config = tf_model_config (tf_generator_model (loaded->generator));
  loaded->suggestions = tf_prompt_suggestions_load (path, tf_generator_tokenizer (loaded->generator),
                                                    config->image_size, config->image_channels);
  g_task_return_pointer (task, g_steal_pointer (&loaded), (GDestroyNotify) loaded_model_free);
}

static void
load_model_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(TfWindow) self = user_data;
  GTask *task = G_TASK (result);
  g_autoptr(GError) error = NULL;
  g_autoptr(LoadedModel) loaded = g_task_propagate_pointer (task, &error);

  /* Superseded by a newer load, cancelled, or the window is gone. */
  if (self->load_cancellable == NULL || g_task_get_cancellable (task) != self->load_cancellable)
    return;
  g_clear_object (&self->load_cancellable);

  if (loaded == NULL)
    {
      tf_window_set_loading (self, FALSE);
      tf_window_show_error (self, error);
      g_signal_emit (self, signals[MODEL_FAILED], 0, error);
      return;
    }

  tf_window_show_model (self, loaded);
  if (self->settings != NULL)
    g_settings_set_string (self->settings, "last-model", self->info->path);
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

  /* The window is the callback's, not the task's: the worker may drop the
   * task's last reference after the callback ran, and a window closed by
   * then would be finalized on the worker thread. */
  task = g_task_new (NULL, self->load_cancellable, load_model_done, g_object_ref (self));
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

/* ---- Actions ------------------------------------------------------------ */

static void
model_info_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfWindow *self = TF_WINDOW (widget);

  if (self->info != NULL)
    gtk_window_present (GTK_WINDOW (tf_model_info_window_new (GTK_WINDOW (self), self->info)));
}

static gboolean
showing_chat (TfWindow *self)
{
  return g_strcmp0 (adw_view_stack_get_visible_child_name (self->views_stack), "chat") == 0;
}

/* Ctrl+Enter: generate in Imagine, send in Chat. */
static void
generate_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfWindow *self = TF_WINDOW (widget);

  if (showing_chat (self))
    gtk_widget_activate_action (GTK_WIDGET (self->chat_view), "chat.send", NULL);
  else
    gtk_widget_activate_action (GTK_WIDGET (self->imagine_view), "imagine.generate", NULL);
}

static void
stop_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfWindow *self = TF_WINDOW (widget);

  if (self->generation != NULL)
    tf_generation_cancel (self->generation);
}

static void
save_image_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfWindow *self = TF_WINDOW (widget);

  if (!showing_chat (self))
    gtk_widget_activate_action (GTK_WIDGET (self->imagine_view), "imagine.save-as", NULL);
}

/* "Open Folder" on the toast of a saved file: the folder it is in. */
static void
show_file_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  g_autoptr(GFile) file = g_file_new_for_path (g_variant_get_string (param, NULL));
  g_autoptr(GFile) folder = g_file_get_parent (file);
  g_autofree char *uri = folder != NULL ? g_file_get_uri (folder) : NULL;

  if (uri != NULL)
    gtk_show_uri (GTK_WINDOW (widget), uri, GDK_CURRENT_TIME);
}

static void
open_bundled_model_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  tf_window_open_default_model (TF_WINDOW (widget));
}

/* Ctrl+N: application keys reach the window's actions, not the views'. */
static void
new_conversation_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfWindow *self = TF_WINDOW (widget);

  if (self->info == NULL)
    return;
  adw_view_stack_set_visible_child_name (self->views_stack, "chat");
  gtk_widget_activate_action (GTK_WIDGET (self->chat_view), "chat.new", NULL);
}

static void
show_view_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfWindow *self = TF_WINDOW (widget);

  if (self->info != NULL)
    adw_view_stack_set_visible_child_name (self->views_stack, g_variant_get_string (param, NULL));
}

/* Chat opens on the message being written, not on its first button. */
static void
on_view_changed (TfWindow *self)
{
  if (g_strcmp0 (adw_view_stack_get_visible_child_name (self->views_stack), "teach") == 0)
    ensure_teach_view (self);
  if (showing_chat (self) && self->info != NULL)
    tf_chat_view_focus_message (self->chat_view);
}

static void
on_busy_changed (TfWindow *self)
{
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop",
                                 self->generation != NULL
                                 && tf_generation_get_busy (self->generation));
}

/* ---- Getters ------------------------------------------------------------ */

TfGeneration *
tf_window_get_generation (TfWindow *self)
{
  g_return_val_if_fail (TF_IS_WINDOW (self), NULL);
  return self->generation;
}

TfImagineView *
tf_window_get_imagine_view (TfWindow *self)
{
  g_return_val_if_fail (TF_IS_WINDOW (self), NULL);
  return self->imagine_view;
}

TfChatView *
tf_window_get_chat_view (TfWindow *self)
{
  g_return_val_if_fail (TF_IS_WINDOW (self), NULL);
  return self->chat_view;
}

static void on_teach_open_model (TfWindow *self, const char *path);

/* Teach is built the first time it is needed: a window that never shows it
 * never pays for its widgets. */
static TfTeachView *
ensure_teach_view (TfWindow *self)
{
  if (self->teach_view != NULL)
    return self->teach_view;
  /* Teach itself offers the run now. */
  if (self->resume_toast != NULL)
    adw_toast_dismiss (self->resume_toast);
  self->teach_view = tf_teach_view_new ();
  gtk_widget_set_hexpand (GTK_WIDGET (self->teach_view), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self->teach_view), TRUE);
  tf_teach_view_set_teach_dir (self->teach_view, self->teach_dir);
  if (self->info != NULL)
    tf_teach_view_set_model (self->teach_view, self->generation, self->info->path);
  g_signal_connect_swapped (self->teach_view, "open-model", G_CALLBACK (on_teach_open_model),
                            self);
  gtk_box_append (self->teach_box, GTK_WIDGET (self->teach_view));
  return self->teach_view;
}

TfTeachView *
tf_window_get_teach_view (TfWindow *self)
{
  g_return_val_if_fail (TF_IS_WINDOW (self), NULL);
  return ensure_teach_view (self);
}

/* Teach's "use this model" and "back": the model opens as any other. */
static void
on_teach_open_model (TfWindow *self, const char *path)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);

  tf_window_open_model (self, file);
  adw_view_stack_set_visible_child_name (self->views_stack, "imagine");
}

void
tf_window_show_view (TfWindow *self, const char *name)
{
  g_return_if_fail (TF_IS_WINDOW (self));
  gtk_widget_activate_action (GTK_WIDGET (self), "win.show-view", "s", name);
}

void
tf_window_add_toast (TfWindow *self, const char *title, const char *button_label,
                     const char *action_name, GVariant *action_target)
{
  AdwToast *toast;

  g_return_if_fail (TF_IS_WINDOW (self));
  toast = adw_toast_new (title);
  adw_toast_set_timeout (toast, 4);
  if (action_name != NULL)
    {
      adw_toast_set_button_label (toast, button_label);
      adw_toast_set_action_name (toast, action_name);
      if (action_target != NULL)
        adw_toast_set_action_target_value (toast, action_target);
    }
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

void
tf_widget_add_toast (GtkWidget *widget, const char *title, const char *button_label,
                     const char *action_name, GVariant *action_target)
{
  GtkRoot *root = gtk_widget_get_root (widget);

  if (TF_IS_WINDOW (root))
    tf_window_add_toast (TF_WINDOW (root), title, button_label, action_name, action_target);
  else if (action_target != NULL)
    g_variant_unref (g_variant_ref_sink (action_target));
}

void
tf_window_open_default_model (TfWindow *self)
{
  g_autofree char *path = tf_default_model_path ();
  g_autoptr(GFile) file = NULL;

  g_return_if_fail (TF_IS_WINDOW (self));

  /* Without one, the empty state offers Open Model…. */
  if (path == NULL)
    return;
  file = g_file_new_for_path (path);
  tf_window_open_model (self, file);
}

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
      g_signal_connect_object (settings, "changed::threads", G_CALLBACK (on_threads_changed),
                               self, G_CONNECT_SWAPPED);
      g_signal_connect_object (settings, "changed::precision", G_CALLBACK (on_threads_changed),
                               self, G_CONNECT_SWAPPED);
    }
  tf_imagine_view_set_settings (self->imagine_view, settings);
  tf_chat_view_set_settings (self->chat_view, settings);
  return self;
}

static gboolean
close_when_idle (gpointer data)
{
  gtk_window_close (GTK_WINDOW (data));
  return G_SOURCE_REMOVE;
}

static void
on_close_response (AdwMessageDialog *dialog, const char *response, TfWindow *self)
{
  if (g_strcmp0 (response, "pause") != 0)
    return;
  tf_teach_view_pause_and_wait (self->teach_view);
  self->closing = TRUE;
  /* After the dialog is done with its response: closing the window now
   * would destroy the dialog, a transient of it, under its own feet. */
  g_idle_add_full (G_PRIORITY_DEFAULT, close_when_idle, g_object_ref (self), g_object_unref);
}

static gboolean
tf_window_close_request (GtkWindow *window)
{
  TfWindow *self = TF_WINDOW (window);

  /* A Teach run is never cut off without a word: it is saved and paused,
   * and the next start offers to continue it. */
  if (!self->closing && self->teach_view != NULL && tf_teach_view_get_running (self->teach_view))
    {
      g_autofree char *body = NULL;
      GtkWidget *dialog;

      body = g_strdup (_("The run is saved where it is and paused. Transfusion offers to "
                         "continue it, exactly from there, when you open Teach again."));
      dialog = adw_message_dialog_new (window, _("Pause Teaching and Close?"), body);
      adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                        "cancel", _("_Keep Teaching"),
                                        "pause", _("_Pause and Close"), NULL);
      adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
      adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
      g_signal_connect_object (dialog, "response", G_CALLBACK (on_close_response), self, 0);
      gtk_window_present (GTK_WINDOW (dialog));
      return TRUE;
    }
  tf_window_save_state (self);
  return GTK_WINDOW_CLASS (tf_window_parent_class)->close_request (window);
}

static void
tf_window_dispose (GObject *object)
{
  TfWindow *self = TF_WINDOW (object);

  /* A load still running keeps the window alive through its callback and
   * finds load_cancellable cleared when it returns. */
  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);
  g_clear_object (&self->load_cancellable);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (self->chooser);
  g_clear_object (&self->chooser);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->teach_dir, g_free);
  if (self->resume_toast != NULL)
    g_object_remove_weak_pointer (G_OBJECT (self->resume_toast), (gpointer *) &self->resume_toast);
  self->resume_toast = NULL;
  g_clear_pointer (&self->info, tf_model_info_free);
  if (self->generation != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->generation, self);
      tf_generation_cancel (self->generation);
    }
  g_clear_object (&self->generation);

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
  g_type_ensure (TF_TYPE_IMAGINE_VIEW);
  g_type_ensure (TF_TYPE_CHAT_VIEW);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, switcher);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, switcher_bar);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, error_bundled_button);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, model_button);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, bundled_button);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, model_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, error_revealer);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, error_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, views_stack);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, spinner);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, loading_label);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, imagine_view);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, chat_view);
  gtk_widget_class_bind_template_child (widget_class, TfWindow, teach_box);
  gtk_widget_class_bind_template_callback (widget_class, on_error_dismiss_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_cancel_clicked);

  gtk_widget_class_install_action (widget_class, "win.model-info", NULL, model_info_action);
  gtk_widget_class_install_action (widget_class, "win.generate", NULL, generate_action);
  gtk_widget_class_install_action (widget_class, "win.stop", NULL, stop_action);
  gtk_widget_class_install_action (widget_class, "win.save-image", NULL, save_image_action);
  gtk_widget_class_install_action (widget_class, "win.show-view", "s", show_view_action);
  gtk_widget_class_install_action (widget_class, "win.new-conversation", NULL,
                                   new_conversation_action);
  gtk_widget_class_install_action (widget_class, "win.open-bundled-model", NULL,
                                   open_bundled_model_action);
  gtk_widget_class_install_action (widget_class, "win.show-file", "s", show_file_action);
}

static void
tf_window_init (TfWindow *self)
{
  g_autofree char *gallery_dir = tf_gallery_default_dir ();

  gtk_widget_init_template (GTK_WIDGET (self));
  tf_imagine_view_set_gallery_dir (self->imagine_view, gallery_dir);
  self->teach_dir = g_build_filename (g_get_user_data_dir (), "transfusion", "teach", NULL);
  /* A run that was paused (or cut off) is offered at once, not only when
   * Teach is opened. */
  if (tf_teach_has_unfinished_run (self->teach_dir))
    {
      /* Until it is taken up or dismissed: an offer, not a confirmation. */
      AdwToast *toast = adw_toast_new (_("A Teach run was paused before it finished"));
      adw_toast_set_timeout (toast, 0);
      adw_toast_set_button_label (toast, _("_Continue…"));
      adw_toast_set_action_name (toast, "win.show-view");
      adw_toast_set_action_target_value (toast, g_variant_new_string ("teach"));
      self->resume_toast = toast;
      g_object_add_weak_pointer (G_OBJECT (toast), (gpointer *) &self->resume_toast);
      adw_toast_overlay_add_toast (self->toast_overlay, toast);
    }
  g_signal_connect_swapped (self->views_stack, "notify::visible-child-name",
                            G_CALLBACK (on_view_changed), self);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.model-info", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop", FALSE);
  /* Offered only when there is one to open. */
  gtk_widget_set_visible (self->bundled_button, bundled_model_exists ());
}
