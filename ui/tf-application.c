/* tf-application.c: the application: its actions, accelerators and windows. */
#include "config.h"

#include "tf-application.h"
#include "tf-preferences-window.h"
#include "tf-window.h"

#include <glib/gi18n.h>
#include <string.h>

struct _TfApplication
{
  AdwApplication  parent_instance;
  GSettings      *settings;
};

G_DEFINE_FINAL_TYPE (TfApplication, tf_application, ADW_TYPE_APPLICATION)

TfApplication *
tf_application_new (void)
{
  return g_object_new (TF_TYPE_APPLICATION,
                       "application-id", APPLICATION_ID,
                       "flags", G_APPLICATION_HANDLES_OPEN,
                       NULL);
}

GSettings *
tf_application_get_settings (TfApplication *self)
{
  g_return_val_if_fail (TF_IS_APPLICATION (self), NULL);
  return self->settings;
}

/* The window to act in: the focused one, or a new one. */
static TfWindow *
tf_application_get_window (TfApplication *self)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (self));

  if (TF_IS_WINDOW (window))
    return TF_WINDOW (window);
  return tf_window_new (self);
}

static void
tf_application_open_model_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  TfApplication *self = user_data;
  TfWindow *window = tf_application_get_window (self);

  gtk_window_present (GTK_WINDOW (window));
  tf_window_choose_model (window);
}

static void
tf_application_preferences_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  TfApplication *self = user_data;
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));

  if (self->settings == NULL)
    return;
  gtk_window_present (GTK_WINDOW (tf_preferences_window_new (parent, self->settings)));
}

static void
tf_application_about_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  TfApplication *self = user_data;
  static const char *developers[] = { "The Transfusion authors", NULL };
  GtkWidget *about = g_object_new (ADW_TYPE_ABOUT_WINDOW,
                                   "transient-for",
                                   gtk_application_get_active_window (GTK_APPLICATION (self)),
                                   "application-name", _("Transfusion"),
                                   "application-icon", APPLICATION_ID,
                                   "version", PACKAGE_VERSION,
                                   "developer-name", _("The Transfusion authors"),
                                   "developers", developers,
                                   /* What the window does; training is the
                                    * command-line tool's. */
                                   "comments", _("Draw pictures and chat with a model that writes "
                                                 "text and draws images, on your own computer."),
                                   "license-type", GTK_LICENSE_MIT_X11,
                                   "translator-credits", _("translator-credits"),
                                   NULL);

  gtk_window_present (GTK_WINDOW (about));
}

static void
tf_application_quit_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  TfApplication *self = user_data;
  g_autoptr(GList) windows = g_list_copy (gtk_application_get_windows (GTK_APPLICATION (self)));

  /* Closing (not destroying) lets each window save its state; the
   * application ends when the last one is gone. */
  for (GList *l = windows; l != NULL; l = l->next)
    gtk_window_close (GTK_WINDOW (l->data));
}

static const GActionEntry app_actions[] = {
  { .name = "open-model", .activate = tf_application_open_model_action },
  { .name = "preferences", .activate = tf_application_preferences_action },
  { .name = "about", .activate = tf_application_about_action },
  { .name = "quit", .activate = tf_application_quit_action },
};

static GSettings *
settings_if_installed (void)
{
  GSettingsSchemaSource *source = g_settings_schema_source_get_default ();
  g_autoptr(GSettingsSchema) schema = NULL;

  if (source != NULL)
    schema = g_settings_schema_source_lookup (source, APPLICATION_ID, TRUE);
  if (schema == NULL)
    return NULL;
  return g_settings_new_full (schema, NULL, NULL);
}

static gboolean
color_scheme_from_setting (GValue *value, GVariant *variant, gpointer user_data)
{
  g_value_set_enum (value, g_variant_get_boolean (variant) ? ADW_COLOR_SCHEME_FORCE_DARK
                                                           : ADW_COLOR_SCHEME_DEFAULT);
  return TRUE;
}

static void
tf_application_startup (GApplication *app)
{
  TfApplication *self = TF_APPLICATION (app);
  static const struct { const char *action; const char *accels[2]; } accels[] = {
    { "app.open-model", { "<Control>o", NULL } },
    { "app.preferences", { "<Control>comma", NULL } },
    { "app.quit", { "<Control>q", NULL } },
    { "window.close", { "<Control>w", NULL } },
    { "win.show-help-overlay", { "<Control>question", NULL } },
    { "win.generate", { "<Control>Return", NULL } },
    { "win.stop", { "Escape", NULL } },
    { "win.save-image", { "<Control>s", NULL } },
    { "win.model-info", { "<Control>i", NULL } },
    { "win.show-view('imagine')", { "<Alt>1", NULL } },
    { "win.show-view('chat')", { "<Alt>2", NULL } },
    { "win.new-conversation", { "<Control>n", NULL } },
  };

  G_APPLICATION_CLASS (tf_application_parent_class)->startup (app);

  self->settings = settings_if_installed ();
  /* The Dark Style preference forces dark; otherwise the system's choice. */
  if (self->settings != NULL)
    g_settings_bind_with_mapping (self->settings, "prefer-dark",
                                  adw_style_manager_get_default (), "color-scheme",
                                  G_SETTINGS_BIND_GET, color_scheme_from_setting, NULL, NULL,
                                  NULL);

  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions,
                                   G_N_ELEMENTS (app_actions), self);
  /* Nothing to keep preferences in without the schema. */
  g_simple_action_set_enabled (G_SIMPLE_ACTION (g_action_map_lookup_action (G_ACTION_MAP (self),
                                                                            "preferences")),
                               self->settings != NULL);
  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    gtk_application_set_accels_for_action (GTK_APPLICATION (self), accels[i].action,
                                           accels[i].accels);

  /* AdwApplication loads style.css from the resources by itself. */
  gtk_window_set_default_icon_name (APPLICATION_ID);
}

static void
tf_application_activate (GApplication *app)
{
  GtkWindow *active = gtk_application_get_active_window (GTK_APPLICATION (app));
  TfWindow *window;

  if (TF_IS_WINDOW (active))
    {
      gtk_window_present (active);
      return;
    }
  /* A new window starts with the bundled model. */
  window = tf_window_new (TF_APPLICATION (app));
  tf_window_open_default_model (window);
  gtk_window_present (GTK_WINDOW (window));
}

static void
tf_application_open (GApplication *app, GFile **files, int n_files, const char *hint)
{
  TfApplication *self = TF_APPLICATION (app);

  /* The first file goes to the current window, each further one gets its own. */
  for (int i = 0; i < n_files; i++)
    {
      TfWindow *window = i == 0 ? tf_application_get_window (self) : tf_window_new (self);

      tf_window_open_model (window, files[i]);
      gtk_window_present (GTK_WINDOW (window));
    }
}

static int
tf_application_handle_local_options (GApplication *app, GVariantDict *options)
{
  if (g_variant_dict_contains (options, "version"))
    {
      g_print ("transfusion %s\n", PACKAGE_VERSION);
      return 0;
    }
  return -1;
}

static void
tf_application_dispose (GObject *object)
{
  TfApplication *self = TF_APPLICATION (object);

  g_clear_object (&self->settings);
  G_OBJECT_CLASS (tf_application_parent_class)->dispose (object);
}

static void
tf_application_class_init (TfApplicationClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->dispose = tf_application_dispose;
  app_class->startup = tf_application_startup;
  app_class->activate = tf_application_activate;
  app_class->open = tf_application_open;
  app_class->handle_local_options = tf_application_handle_local_options;
}

static void
tf_application_init (TfApplication *self)
{
  static const GOptionEntry options[] = {
    { "version", 'v', G_OPTION_FLAG_NONE, G_OPTION_ARG_NONE, NULL,
      N_("Show the version and exit"), NULL },
    G_OPTION_ENTRY_NULL
  };

  g_application_add_main_option_entries (G_APPLICATION (self), options);
  g_application_set_option_context_parameter_string (G_APPLICATION (self),
                                                      _("[MODEL.safetensors…]"));
  g_application_set_option_context_summary (G_APPLICATION (self),
                                            _("Opens each model file given in its own window."));
}

/* ---- The renderer ------------------------------------------------------- */

const char *
tf_renderer_choice (const char *gsk_renderer, const char *libgl_always_software,
                    gboolean have_render_node)
{
  if (gsk_renderer != NULL && *gsk_renderer != '\0')
    return NULL;
  if (libgl_always_software != NULL && *libgl_always_software != '\0'
      && strcmp (libgl_always_software, "0") != 0)
    return "cairo";
  return have_render_node ? NULL : "cairo";
}

static gboolean
have_render_node (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/dev/dri", 0, NULL);
  const char *name;

  if (dir == NULL)
    return FALSE;
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, "renderD"))
      return TRUE;
  return FALSE;
}

void
tf_choose_renderer (void)
{
  const char *renderer = tf_renderer_choice (g_getenv ("GSK_RENDERER"),
                                             g_getenv ("LIBGL_ALWAYS_SOFTWARE"),
                                             have_render_node ());

  if (renderer != NULL)
    g_setenv ("GSK_RENDERER", renderer, TRUE);
}
