/* tf-message-row.h: one message of a chat, from the user or the model.
 *
 * A message is a run of pieces: text and images, in the order they came.
 * A reply grows as it streams: tokens are appended to its text, an image
 * appears when the model starts one and sharpens with each denoising step.
 * With token view on, each token of a reply gets a background whose colour
 * says how probable it was, and its tooltip lists the alternatives the model
 * weighed. */
#pragma once

#include <gtk/gtk.h>

#include "tf-generation.h"

G_BEGIN_DECLS

#define TF_TYPE_MESSAGE_ROW (tf_message_row_get_type ())
G_DECLARE_FINAL_TYPE (TfMessageRow, tf_message_row, TF, MESSAGE_ROW, GtkWidget)

GtkWidget *tf_message_row_new (gboolean from_user);

gboolean tf_message_row_get_from_user (TfMessageRow *self);

/* Text without token details (the user's, or a reply read back). */
void tf_message_row_append_text (TfMessageRow *self, const char *text);
/* One streamed token of a reply. */
void tf_message_row_append_token (TfMessageRow *self, const TfToken *token);
/* An image: begin adds an empty one, update draws a step, (pixels in model
 * units, size × size × channels floats). add_image adds a finished one. */
void tf_message_row_begin_image (TfMessageRow *self);
void tf_message_row_update_image (TfMessageRow *self, GBytes *pixels, int size, int channels);
void tf_message_row_add_image (TfMessageRow *self, GBytes *pixels, int size, int channels);

/* The whole text, as written. */
char *tf_message_row_get_text (TfMessageRow *self);
guint tf_message_row_get_n_tokens (TfMessageRow *self);
/* The streamed tokens in order (TfToken), or NULL when there were none. */
GPtrArray *tf_message_row_get_tokens (TfMessageRow *self);

/* The line under a reply ("12.3 tokens/s · first token after 0.41 s"), or
 * a state ("Stopped"); NULL hides it. */
void tf_message_row_set_footer (TfMessageRow *self, const char *footer);
/* While a reply is awaited, before its first token. */
void tf_message_row_set_waiting (TfMessageRow *self, gboolean waiting);

void tf_message_row_set_show_tokens (TfMessageRow *self, gboolean show_tokens);
/* Fills @box with the token colours from improbable to certain (a legend). */
void tf_message_row_fill_legend (GtkBox *box);

/* A reply written several times (Regenerate): "← 2 / 3 →" under it, whose
 * buttons emit show-version (guint version, from 0) for the one before or
 * after @shown. Hidden when @n_versions < 2. */
void  tf_message_row_set_versions (TfMessageRow *self, guint shown, guint n_versions);
guint tf_message_row_get_n_versions (TfMessageRow *self);
/* Keyboard focus to the version buttons (after one replaced the row). */
void  tf_message_row_focus_versions (TfMessageRow *self);

G_END_DECLS
