/* tf-model-info-window.h: what the loaded model file holds, for people:
 * its size, tensors, data types, metadata and every config field. */
#pragma once

#include <gtk/gtk.h>

#include "tf-model-info.h"

G_BEGIN_DECLS

#define TF_TYPE_MODEL_INFO_WINDOW (tf_model_info_window_get_type ())
G_DECLARE_FINAL_TYPE (TfModelInfoWindow, tf_model_info_window, TF, MODEL_INFO_WINDOW, GtkWindow)

/* @info is read now, not kept. */
GtkWidget *tf_model_info_window_new (GtkWindow *parent, const TfModelInfo *info);

G_END_DECLS
