/* tf-preferences-window.c: the application's preferences. */
#include "config.h"

#include "tf-preferences-window.h"

#include "tf-generate.h"

struct _TfPreferencesWindow
{
  AdwPreferencesWindow parent_instance;

  /* Template children */
  GtkSpinButton  *steps_spin;
  GtkSpinButton  *cfg_spin;
  AdwComboRow    *sampler_row;
  GtkSpinButton  *preview_spin;
  GtkSpinButton  *threads_spin;
  AdwComboRow    *precision_row;
  GtkSwitch      *dark_switch;
};

G_DEFINE_FINAL_TYPE (TfPreferencesWindow, tf_preferences_window, ADW_TYPE_PREFERENCES_WINDOW)

/* The drop-downs and the combo row list the samplers in TfSampler's order. */
gboolean
tf_settings_get_sampler_position (GValue *value, GVariant *variant, gpointer user_data)
{
  TfSampler sampler;

  if (!tf_sampler_from_name (g_variant_get_string (variant, NULL), &sampler))
    return FALSE;
  g_value_set_uint (value, (guint) sampler);
  return TRUE;
}

GVariant *
tf_settings_set_sampler_position (const GValue *value, const GVariantType *type,
                                  gpointer user_data)
{
  guint position = g_value_get_uint (value);

  if (position > TF_SAMPLER_DDIM)
    return NULL;
  return g_variant_new_string (tf_sampler_name ((TfSampler) position));
}

/* The combo row lists the precisions in TfPrecision's order. */
static gboolean
get_precision_position (GValue *value, GVariant *variant, gpointer user_data)
{
  TfPrecision precision;

  if (!tf_precision_parse (g_variant_get_string (variant, NULL), &precision, NULL))
    return FALSE;
  g_value_set_uint (value, (guint) precision);
  return TRUE;
}

static GVariant *
set_precision_position (const GValue *value, const GVariantType *type, gpointer user_data)
{
  guint position = g_value_get_uint (value);

  if (position > TF_PRECISION_AUTO)
    return NULL;
  return g_variant_new_string (tf_precision_name ((TfPrecision) position));
}

GtkWidget *
tf_preferences_window_new (GtkWindow *parent, GSettings *settings)
{
  TfPreferencesWindow *self;

  g_return_val_if_fail (G_IS_SETTINGS (settings), NULL);

  self = g_object_new (TF_TYPE_PREFERENCES_WINDOW, "transient-for", parent, NULL);
  g_settings_bind (settings, "default-steps", gtk_spin_button_get_adjustment (self->steps_spin),
                   "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "default-cfg", gtk_spin_button_get_adjustment (self->cfg_spin),
                   "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind_with_mapping (settings, "default-sampler", self->sampler_row, "selected",
                                G_SETTINGS_BIND_DEFAULT, tf_settings_get_sampler_position,
                                tf_settings_set_sampler_position, NULL, NULL);
  g_settings_bind (settings, "preview-interval",
                   gtk_spin_button_get_adjustment (self->preview_spin), "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "threads", gtk_spin_button_get_adjustment (self->threads_spin),
                   "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind_with_mapping (settings, "precision", self->precision_row, "selected",
                                G_SETTINGS_BIND_DEFAULT, get_precision_position,
                                set_precision_position, NULL, NULL);
  g_settings_bind (settings, "prefer-dark", self->dark_switch, "active", G_SETTINGS_BIND_DEFAULT);
  return GTK_WIDGET (self);
}

static void
tf_preferences_window_dispose (GObject *object)
{
  gtk_widget_dispose_template (GTK_WIDGET (object), TF_TYPE_PREFERENCES_WINDOW);
  G_OBJECT_CLASS (tf_preferences_window_parent_class)->dispose (object);
}

static void
tf_preferences_window_class_init (TfPreferencesWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_preferences_window_dispose;
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/transfusion/Transfusion/tf-preferences-window.ui");
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, steps_spin);
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, cfg_spin);
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, sampler_row);
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, preview_spin);
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, threads_spin);
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, precision_row);
  gtk_widget_class_bind_template_child (widget_class, TfPreferencesWindow, dark_switch);
}

static void
tf_preferences_window_init (TfPreferencesWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}
