/* tf-window.h: the main window. For now it opens a model and shows what the
 * model holds; later views (chat, training, generation) join it as pages. */
#pragma once

#include <gtk/gtk.h>

#include "tf-application.h"
#include "tf-model-info.h"

G_BEGIN_DECLS

#define TF_TYPE_WINDOW (tf_window_get_type ())
G_DECLARE_FINAL_TYPE (TfWindow, tf_window, TF, WINDOW, GtkApplicationWindow)

TfWindow *tf_window_new (TfApplication *application);

/* Asks the user for a model file, then opens it. */
void tf_window_choose_model (TfWindow *self);

/* Loads @file in a worker thread, with a spinner meanwhile; a later call
 * supersedes an earlier one. Ends with ::model-loaded, or with
 * ::model-failed and the problem shown in the window. */
void tf_window_open_model (TfWindow *self, GFile *file);

/* The loaded model, or NULL. */
const TfModelInfo *tf_window_get_model_info (TfWindow *self);
/* Whether a model is being loaded (the "loading" property). */
gboolean tf_window_get_loading (TfWindow *self);

G_END_DECLS
