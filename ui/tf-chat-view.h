/* tf-chat-view.h: conversations with the model.
 *
 * A sidebar lists the saved conversations; the current one shows its
 * messages, and a reply streams in token by token, with any image it draws
 * denoising in place. A picture can be attached (button or drop) to ask
 * about it. Actions (group "chat"): send, stop, regenerate, new, delete,
 * attach, remove-attachment. */
#pragma once

#include <gtk/gtk.h>

#include "tf-generation.h"

G_BEGIN_DECLS

#define TF_TYPE_CHAT_VIEW (tf_chat_view_get_type ())
G_DECLARE_FINAL_TYPE (TfChatView, tf_chat_view, TF, CHAT_VIEW, GtkWidget)

/* The model to chat with, or NULL. A conversation continues from its saved
 * messages with the new model. */
void tf_chat_view_set_generation (TfChatView *self, TfGeneration *generation);
/* Temperature and top-p are kept in @settings (may be NULL). */
void tf_chat_view_set_settings (TfChatView *self, GSettings *settings);

void tf_chat_view_set_message (TfChatView *self, const char *text);
/* Keyboard focus to the message being written. */
void tf_chat_view_focus_message (TfChatView *self);
/* Attaches a picture given as a file (PNG, JPEG, ...). */
gboolean tf_chat_view_attach_file (TfChatView *self, GFile *file, GError **error);

/* TRUE while this view's reply (or the restoring before it) runs. */
gboolean tf_chat_view_get_running (TfChatView *self);
guint tf_chat_view_get_n_conversations (TfChatView *self);
/* Opens the conversation at @index of the sidebar (newest first), as a
 * click on it does. */
void tf_chat_view_select_conversation (TfChatView *self, guint index);
/* The messages shown (TfMessageRow widgets) of the current conversation. */
guint tf_chat_view_get_n_messages (TfChatView *self);
GtkWidget *tf_chat_view_get_message (TfChatView *self, guint index);

G_END_DECLS
