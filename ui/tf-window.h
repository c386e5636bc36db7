/* tf-window.h: the main window: a model, and three views of it, Imagine
 * (prompt to image), Chat and Teach (fine-tuning it on the user's
 * pictures), switched from the header bar. Closing the window while a
 * Teach run goes on asks first, then pauses the run (saved, offered again
 * at the next start). */
#pragma once

#include <adwaita.h>

#include "tf-application.h"
#include "tf-chat-view.h"
#include "tf-generation.h"
#include "tf-imagine-view.h"
#include "tf-model-info.h"
#include "tf-teach-view.h"

G_BEGIN_DECLS

#define TF_TYPE_WINDOW (tf_window_get_type ())
G_DECLARE_FINAL_TYPE (TfWindow, tf_window, TF, WINDOW, AdwApplicationWindow)

TfWindow *tf_window_new (TfApplication *application);

/* Asks the user for a model file, then opens it. */
void tf_window_choose_model (TfWindow *self);

/* Loads @file in a worker thread, with a spinner meanwhile; a later call
 * supersedes an earlier one. Ends with ::model-loaded, or with
 * ::model-failed and the problem shown in the window. */
void tf_window_open_model (TfWindow *self, GFile *file);

/* Opens the bundled model (tf_default_model_path()); without one the window
 * stays in its empty state. */
void tf_window_open_default_model (TfWindow *self);

TfTeachView *tf_window_get_teach_view (TfWindow *self);

/* The loaded model, or NULL. */
const TfModelInfo *tf_window_get_model_info (TfWindow *self);
/* Whether a model is being loaded (the "loading" property). */
gboolean tf_window_get_loading (TfWindow *self);

/* The loaded model's generator, or NULL. */
TfGeneration *tf_window_get_generation (TfWindow *self);
TfImagineView *tf_window_get_imagine_view (TfWindow *self);
TfChatView *tf_window_get_chat_view (TfWindow *self);
/* "imagine", "chat" or "teach". */
void tf_window_show_view (TfWindow *self, const char *name);

/* A quiet confirmation at the bottom of the window ("Copied"), with a
 * button for @action_name (may be NULL) labelled @button_label. */
void tf_window_add_toast (TfWindow *self, const char *title, const char *button_label,
                          const char *action_name, GVariant *action_target);
/* The toast of the window @widget is in; nothing when it is in none. */
void tf_widget_add_toast (GtkWidget *widget, const char *title, const char *button_label,
                          const char *action_name, GVariant *action_target);

G_END_DECLS
