/* tf-application.h: the application: its actions, accelerators and windows. */
#pragma once

#include <adwaita.h>

G_BEGIN_DECLS

#define TF_TYPE_APPLICATION (tf_application_get_type ())
G_DECLARE_FINAL_TYPE (TfApplication, tf_application, TF, APPLICATION, AdwApplication)

TfApplication *tf_application_new (void);

/* The application's settings, or NULL when the schema is not installed
 * (an uninstalled run without GSETTINGS_SCHEMA_DIR): everything works
 * without them, nothing is remembered. */
GSettings *tf_application_get_settings (TfApplication *self);

G_END_DECLS
