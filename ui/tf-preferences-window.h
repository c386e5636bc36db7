/* tf-preferences-window.h: the application's preferences, kept in
 * GSettings: what a new image starts with, how often the live view redraws,
 * the threads the engine uses, and the dark style. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define TF_TYPE_PREFERENCES_WINDOW (tf_preferences_window_get_type ())
G_DECLARE_FINAL_TYPE (TfPreferencesWindow, tf_preferences_window, TF, PREFERENCES_WINDOW, AdwPreferencesWindow)

GtkWidget *tf_preferences_window_new (GtkWindow *parent, GSettings *settings);

/* The sampler keys (an enum in the schema) as a GtkDropDown's position. */
gboolean tf_settings_get_sampler_position (GValue *value, GVariant *variant, gpointer user_data);
GVariant *tf_settings_set_sampler_position (const GValue *value, const GVariantType *type,
                                            gpointer user_data);

G_END_DECLS
