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

/* GTK 4 draws with OpenGL where it can; on a computer without a GPU that
 * is Mesa's llvmpipe, which renders on the very cores the engine computes
 * on: the live view's redraws made an image 3× slower to draw (25 steps in
 * 0.9 s against 0.3 s with GTK's Cairo renderer, 2 cores). The renderer to
 * ask GTK for: "cairo" when OpenGL would be software (no GPU render node,
 * or LIBGL_ALWAYS_SOFTWARE set), NULL to leave GTK's choice; a GSK_RENDERER
 * the person set always wins. */
const char *tf_renderer_choice (const char *gsk_renderer, const char *libgl_always_software,
                                gboolean have_render_node);
/* Sets GSK_RENDERER from tf_renderer_choice() for this machine (looking
 * for /dev/dri/renderD*). Call at the start of main(), before GTK starts. */
void tf_choose_renderer (void);

G_END_DECLS
