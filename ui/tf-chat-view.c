/* tf-chat-view.c: conversations with the model. */
#include "config.h"

#include "tf-chat-view.h"

#include <adwaita.h>
#include <glib/gi18n.h>
#include <string.h>

#include "tf-chat-store.h"
#include "tf-image-view.h"
#include "tf-message-row.h"
#include "tf-model-info.h"

#define TITLE_CHARS 40

typedef struct {
  gboolean  from_user;
  char     *text;
  GBytes   *image;      /* size × size × channels floats, or NULL */
  /* Replies: how they were made (0: not known). */
  int       n_tokens;
  double    tokens_per_second;
  double    first_token_seconds;
  gboolean  replaces;   /* a reply written again by Regenerate */
  GPtrArray *tokens;    /* replies: TfToken as sampled, spelling text; or NULL */
  guint     store_index;  /* its place in the saved log, or G_MAXUINT */
} ChatMessage;

/* A message as shown: the user's, or a reply with every version of it
 * (Regenerate adds one; ← → on the reply shows the others). */
typedef struct {
  GPtrArray *versions;  /* ChatMessage, in the order written */
  guint      current;   /* the one shown, which the conversation continues from */
} ChatEntry;

typedef struct {
  char      *id;        /* the store's, or NULL before the first message */
  char      *title;
  GPtrArray *entries;   /* ChatEntry, NULL until loaded */
  guint      n_stored;  /* messages in the saved log */
} Conversation;

typedef enum {
  JOB_NONE,
  JOB_RESTORE,   /* putting the conversation back into the generator */
  JOB_REPLY,
} JobKind;

struct _TfChatView
{
  GtkWidget        parent_instance;

  /* Template children */
  GtkListBox      *conversation_list;
  GtkMenuButton   *rename_button;
  GtkPopover      *rename_popover;
  GtkEntry        *rename_entry;
  GtkStack        *messages_stack;
  GtkScrolledWindow *messages_scroller;
  GtkBox          *messages_box;
  GtkBox          *starters_box;
  GtkRevealer     *attachment_revealer;
  TfImageView     *attachment_view;
  GtkLabel        *attachment_label;
  GtkTextView     *message_entry;
  GtkStack        *send_stack;
  GtkWidget       *send_button;
  GtkToggleButton *tokens_toggle;
  GtkSpinButton   *temperature_spin;
  GtkSpinButton   *top_p_spin;
  GtkLabel        *status_label;     /* the problem's details */
  AdwFlap         *flap;
  GtkRevealer     *problem_revealer;
  GtkLabel        *problem_title;
  GtkWidget       *problem_retry_button;
  GtkWidget       *problem_new_button;
  GtkBox          *legend_scale;

  TfGeneration    *generation;
  gulong           handlers[7];
  int              image_size;
  int              channels;
  GSettings       *settings;
  TfChatStore     *store;

  GPtrArray       *conversations;   /* Conversation, newest first, as listed */
  Conversation    *current;         /* or NULL: a new one, not yet saved */
  /* FALSE when the generator's conversation is not the one shown (another
   * was selected, a reply was stopped, a model was loaded). */
  gboolean         context_in_sync;
  /* TRUE while the messages are scrolled to their end (see on_scroll_changed). */
  gboolean         follow_end;
  guint            follow_tick;

  GBytes          *attachment;      /* pixels, or NULL */

  /* The job in flight. */
  JobKind          job;
  GCancellable    *cancellable;
  TfMessageRow    *reply_row;
  GBytes          *reply_image;
  char            *pending_text;    /* sent once a restore finishes */
  guint            pending_n_before;
  GtkWidget       *replaced_row;    /* hidden while Regenerate writes its new version */
  gboolean         another_version; /* the reply in the works is a Regenerate */
  GBytes          *pending_image;
  gint64           sent_us;
  gint64           first_token_us;
  gint64           image_started_us;  /* while the reply draws, else 0 */
  gint64           image_us;          /* the reply's drawing, not decoding */
  guint            n_reply_tokens;

  GtkNativeDialog *attach_dialog;
};

G_DEFINE_FINAL_TYPE (TfChatView, tf_chat_view, GTK_TYPE_WIDGET)

static void
chat_message_free (ChatMessage *message)
{
  g_free (message->text);
  g_clear_pointer (&message->image, g_bytes_unref);
  g_clear_pointer (&message->tokens, g_ptr_array_unref);
  g_free (message);
}

static ChatMessage *
chat_message_new (gboolean from_user, const char *text, GBytes *image)
{
  ChatMessage *message = g_new0 (ChatMessage, 1);

  message->from_user = from_user;
  message->text = g_strdup (text != NULL ? text : "");
  message->image = image != NULL ? g_bytes_ref (image) : NULL;
  message->store_index = G_MAXUINT;
  return message;
}

static void
chat_entry_free (ChatEntry *entry)
{
  g_ptr_array_unref (entry->versions);
  g_free (entry);
}

static ChatEntry *
chat_entry_new (ChatMessage *first)
{
  ChatEntry *entry = g_new0 (ChatEntry, 1);

  entry->versions = g_ptr_array_new_with_free_func ((GDestroyNotify) chat_message_free);
  g_ptr_array_add (entry->versions, first);
  return entry;
}

static ChatMessage *
chat_entry_shown (const ChatEntry *entry)
{
  return g_ptr_array_index (entry->versions, entry->current);
}

static gboolean
chat_entry_from_user (const ChatEntry *entry)
{
  return chat_entry_shown (entry)->from_user;
}

static void
conversation_free (Conversation *conversation)
{
  g_free (conversation->id);
  g_free (conversation->title);
  g_clear_pointer (&conversation->entries, g_ptr_array_unref);
  g_free (conversation);
}

static ChatEntry *
conversation_entry (Conversation *conversation, guint index)
{
  return g_ptr_array_index (conversation->entries, index);
}

/* ---- State -------------------------------------------------------------- */

static void
update_actions (TfChatView *self)
{
  gboolean busy = self->generation != NULL && tf_generation_get_busy (self->generation);
  gboolean running = self->job != JOB_NONE;
  gboolean can_regenerate = FALSE;

  /* A reply to write again, or a question still without one. */
  if (self->current != NULL && self->current->entries != NULL)
    for (guint i = 0; i < self->current->entries->len && !can_regenerate; i++)
      can_regenerate = chat_entry_from_user (conversation_entry (self->current, i));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.send", self->generation != NULL && !busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.stop", running);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.regenerate",
                                 self->generation != NULL && !busy && can_regenerate);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.new", !running);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.delete", !running && self->current != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.attach", self->generation != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "chat.remove-attachment",
                                 self->attachment != NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->rename_button), !running && self->current != NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->conversation_list), !running);
  gtk_stack_set_visible_child_name (self->send_stack, running ? "stop" : "send");
  /* Why Send is insensitive while Imagine uses the model. */
  gtk_widget_set_tooltip_text (self->send_button,
                               busy && !running
                               ? _("The model is busy drawing in Imagine; Escape stops it")
                               : _("Send the message (Ctrl+Enter)"));
}

typedef enum {
  OFFER_NOTHING = 0,
  OFFER_RETRY = 1 << 0,   /* Regenerate */
  OFFER_NEW = 1 << 1,     /* a new conversation */
} Offer;

/* A problem above the conversation: what happened in plain words
 * (@summary), the details (@details: the message naming the file), and the
 * actions that help. NULL @summary hides it. */
static void
show_problem (TfChatView *self, const char *summary, const char *details, Offer offer)
{
  gtk_revealer_set_reveal_child (self->problem_revealer, summary != NULL);
  if (summary == NULL)
    return;
  gtk_label_set_text (self->problem_title, summary);
  gtk_label_set_text (self->status_label, details != NULL ? details : "");
  gtk_widget_set_visible (GTK_WIDGET (self->status_label), details != NULL);
  gtk_widget_set_visible (self->problem_retry_button, (offer & OFFER_RETRY) != 0);
  gtk_widget_set_visible (self->problem_new_button, (offer & OFFER_NEW) != 0);
}

static void
on_problem_dismiss_clicked (TfChatView *self)
{
  show_problem (self, NULL, NULL, OFFER_NOTHING);
}

static char *
message_text (TfChatView *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->message_entry);
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

/* The view follows the conversation's end while it shows it: whatever
 * grows there (a streamed token, an image once laid out, a reply's footer)
 * moves the end into view, unless the reader has scrolled up. */
static gboolean
adjustment_at_end (GtkAdjustment *adjustment)
{
  return gtk_adjustment_get_value (adjustment) + gtk_adjustment_get_page_size (adjustment)
         >= gtk_adjustment_get_upper (adjustment) - 1.0;
}

static void
on_scroll_value_changed (GtkAdjustment *adjustment, TfChatView *self)
{
  self->follow_end = adjustment_at_end (adjustment);
}

static gboolean
follow_end_tick (GtkWidget *widget, GdkFrameClock *clock, gpointer data)
{
  TfChatView *self = TF_CHAT_VIEW (widget);
  GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (self->messages_scroller);

  self->follow_tick = 0;
  if (self->follow_end)
    gtk_adjustment_set_value (adjustment, gtk_adjustment_get_upper (adjustment)
                                              - gtk_adjustment_get_page_size (adjustment));
  return G_SOURCE_REMOVE;
}

/* Moves the view to the end at the next frame's start, before that frame's
 * layout (inside the viewport's allocation the move would be lost). */
static void
queue_follow (TfChatView *self)
{
  if (self->follow_tick == 0)
    self->follow_tick = gtk_widget_add_tick_callback (GTK_WIDGET (self), follow_end_tick, NULL, NULL);
}

/* The content or the page changed size (emitted by layout). */
static void
on_scroll_changed (GtkAdjustment *adjustment, TfChatView *self)
{
  if (self->follow_end && !adjustment_at_end (adjustment))
    queue_follow (self);
}

/* A new message, or another conversation: show its end, and follow it. */
static void
queue_scroll_to_end (TfChatView *self)
{
  self->follow_end = TRUE;
  queue_follow (self);
}

static char *
reply_footer (const ChatMessage *message)
{
  if (message->n_tokens == 0)
    return NULL;
  if (message->first_token_seconds < 1.0)
    /* Translators: under a reply, "12.3 tokens/s · first token after 41 ms" */
    return g_strdup_printf (_("%.1f tokens/s · first token after %.0f ms"),
                            message->tokens_per_second, message->first_token_seconds * 1000.0);
  /* Translators: under a reply, "12.3 tokens/s · first token after 1.41 s" */
  return g_strdup_printf (_("%.1f tokens/s · first token after %.2f s"),
                          message->tokens_per_second, message->first_token_seconds);
}

static TfMessageRow *
row_new (TfChatView *self, const ChatMessage *message)
{
  g_autofree char *footer = reply_footer (message);

  TfMessageRow *row = TF_MESSAGE_ROW (tf_message_row_new (message->from_user));

  if (message->image != NULL)
    tf_message_row_add_image (row, message->image, self->image_size, self->channels);
  /* With the tokens kept, a reopened reply shows their colours too. */
  if (message->tokens != NULL)
    for (guint i = 0; i < message->tokens->len; i++)
      tf_message_row_append_token (row, g_ptr_array_index (message->tokens, i));
  else
    tf_message_row_append_text (row, message->text);
  tf_message_row_set_show_tokens (row, gtk_toggle_button_get_active (self->tokens_toggle));
  tf_message_row_set_footer (row, footer);
  return row;
}

static TfMessageRow *
add_row (TfChatView *self, const ChatMessage *message)
{
  TfMessageRow *row = row_new (self, message);

  gtk_box_append (self->messages_box, GTK_WIDGET (row));
  gtk_stack_set_visible_child_name (self->messages_stack, "messages");
  queue_scroll_to_end (self);
  return row;
}

static void on_show_version (TfMessageRow *row, guint version, TfChatView *self);

static void
row_set_versions (TfChatView *self, TfMessageRow *row, const ChatEntry *entry)
{
  tf_message_row_set_versions (row, entry->current, entry->versions->len);
  g_signal_handlers_disconnect_by_func (row, on_show_version, self);
  g_signal_connect (row, "show-version", G_CALLBACK (on_show_version), self);
}

/* The row of @entry's shown version, with ← → when it has several. */
static TfMessageRow *
entry_row_new (TfChatView *self, const ChatEntry *entry)
{
  TfMessageRow *row = add_row (self, chat_entry_shown (entry));

  row_set_versions (self, row, entry);
  return row;
}

static void
clear_rows (TfChatView *self)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box))) != NULL)
    gtk_box_remove (self->messages_box, child);
  gtk_stack_set_visible_child_name (self->messages_stack, "empty");
}

static void
show_conversation (TfChatView *self)
{
  clear_rows (self);
  if (self->current == NULL || self->current->entries == NULL)
    return;
  for (guint i = 0; i < self->current->entries->len; i++)
    entry_row_new (self, conversation_entry (self->current, i));
}

/* ---- The conversation list ---------------------------------------------- */

static GtkWidget *
conversation_row_new (Conversation *conversation)
{
  GtkWidget *label = gtk_label_new (conversation->title);

  gtk_label_set_xalign (GTK_LABEL (label), 0.0f);
  gtk_label_set_ellipsize (GTK_LABEL (label), PANGO_ELLIPSIZE_END);
  gtk_widget_set_tooltip_text (label, conversation->title);
  g_object_set_data (G_OBJECT (label), "tf-conversation", conversation);
  return label;
}

static void
refill_list (TfChatView *self)
{
  GtkWidget *child;

  g_signal_handlers_block_matched (self->conversation_list, G_SIGNAL_MATCH_DATA, 0, 0, NULL,
                                   NULL, self);
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->conversation_list))) != NULL)
    gtk_list_box_remove (self->conversation_list, child);
  for (guint i = 0; i < self->conversations->len; i++)
    {
      Conversation *conversation = g_ptr_array_index (self->conversations, i);
      GtkWidget *label = conversation_row_new (conversation);

      gtk_list_box_append (self->conversation_list, label);
      if (conversation == self->current)
        gtk_list_box_select_row (self->conversation_list,
                                 GTK_LIST_BOX_ROW (gtk_widget_get_parent (label)));
    }
  g_signal_handlers_unblock_matched (self->conversation_list, G_SIGNAL_MATCH_DATA, 0, 0, NULL,
                                     NULL, self);
}

/* ---- Persistence -------------------------------------------------------- */

/* Reads a saved conversation's messages; images drawn at another size than
 * the loaded model's are left out (the model could not read them). */
static gboolean
store_load_messages (TfChatView *self, Conversation *conversation, GError **error)
{
  g_autoptr(TfChat) chat = tf_chat_store_load (self->store, conversation->id, error);
  g_autoptr(GArray) saved_entries = NULL;
  g_autoptr(GPtrArray) messages = NULL;
  GPtrArray *entries;

  if (chat == NULL)
    return FALSE;
  messages = g_ptr_array_new_with_free_func ((GDestroyNotify) chat_message_free);
  for (guint i = 0; i < chat->messages->len; i++)
    {
      const TfChatMessage *saved = g_ptr_array_index (chat->messages, i);
      g_autoptr(GBytes) image = NULL;
      ChatMessage *message;

      if (saved->image_path != NULL && saved->image_size == self->image_size
          && saved->image_channels == self->channels)
        {
          g_autoptr(GError) image_error = NULL;
          float *pixels = tf_chat_message_load_image (saved, &image_error);
          gsize n = (gsize) saved->image_size * saved->image_size * saved->image_channels;

          if (pixels != NULL)
            image = g_bytes_new_take (pixels, n * sizeof (float));
          else
            g_warning ("%s", image_error->message);
        }
      message = chat_message_new (saved->from_user, saved->text, image);
      message->n_tokens = saved->n_tokens;
      message->tokens_per_second = saved->tokens_per_second;
      message->first_token_seconds = saved->first_token_seconds;
      message->replaces = saved->replaces;
      message->store_index = i;
      message->tokens = saved->tokens != NULL ? g_ptr_array_ref (saved->tokens) : NULL;
      g_ptr_array_add (messages, message);
    }
  /* The messages move into their entries. */
  g_ptr_array_set_free_func (messages, NULL);
  saved_entries = tf_chat_entries (chat);
  entries = g_ptr_array_new_with_free_func ((GDestroyNotify) chat_entry_free);
  for (guint e = 0; e < saved_entries->len; e++)
    {
      const TfChatEntry *saved = &g_array_index (saved_entries, TfChatEntry, e);
      ChatEntry *entry = chat_entry_new (g_ptr_array_index (messages, saved->first));

      for (guint v = 1; v < saved->n_versions; v++)
        g_ptr_array_add (entry->versions, g_ptr_array_index (messages, saved->first + v));
      entry->current = saved->current;
      g_ptr_array_add (entries, entry);
    }
  g_clear_pointer (&conversation->entries, g_ptr_array_unref);
  conversation->entries = entries;
  conversation->n_stored = chat->messages->len;
  return TRUE;
}

static gboolean
store_append (TfChatView *self, Conversation *conversation, ChatMessage *message,
              GError **error)
{
  TfChatMessage saved = {
    .replaces = message->replaces,
    .tokens = message->tokens,
    .from_user = message->from_user,
    .text = message->text,
    .time = g_get_real_time (),
    .image_size = self->image_size,
    .image_channels = self->channels,
    .n_tokens = message->n_tokens,
    .tokens_per_second = message->tokens_per_second,
    .first_token_seconds = message->first_token_seconds,
  };

  if (!tf_chat_store_append (self->store, conversation->id, &saved,
                             message->image != NULL ? g_bytes_get_data (message->image, NULL)
                                                    : NULL,
                             error))
    return FALSE;
  message->store_index = conversation->n_stored++;
  return TRUE;
}

/* Reads the list of conversations again; none is open afterwards. */
static void
reload_conversations (TfChatView *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) chats = tf_chat_store_list (self->store, &error);

  self->current = NULL;
  g_ptr_array_set_size (self->conversations, 0);
  if (chats == NULL)
    show_problem (self, _("Saved conversations could not be listed"), error->message, OFFER_NOTHING);
  for (guint i = 0; chats != NULL && i < chats->len; i++)
    {
      TfChat *chat = g_ptr_array_index (chats, i);
      Conversation *conversation = g_new0 (Conversation, 1);

      conversation->id = g_strdup (chat->id);
      conversation->title = g_strdup (chat->title);
      g_ptr_array_add (self->conversations, conversation);
    }
  refill_list (self);
  clear_rows (self);
  self->context_in_sync = FALSE;
}

/* A conversation to add to: the current one, or a new one named after its
 * first message. */
static gboolean
ensure_current (TfChatView *self, const char *first_text, GError **error)
{
  g_autofree char *title = NULL;
  g_autofree char *id = NULL;
  Conversation *conversation;
  const char *end;

  if (self->current != NULL)
    return TRUE;
  /* The first line, cut at a character boundary. */
  end = first_text;
  for (int n = 0; *end != '\0' && *end != '\n' && n < TITLE_CHARS; n++)
    end = g_utf8_next_char (end);
  title = *end == '\0' || *end == '\n' ? g_strndup (first_text, (gsize) (end - first_text))
                                        : g_strdup_printf ("%.*s…", (int) (end - first_text),
                                                           first_text);
  id = tf_chat_store_create (self->store, title, error);
  if (id == NULL)
    return FALSE;

  conversation = g_new0 (Conversation, 1);
  conversation->id = g_steal_pointer (&id);
  conversation->title = g_steal_pointer (&title);
  conversation->entries = g_ptr_array_new_with_free_func ((GDestroyNotify) chat_entry_free);
  g_ptr_array_insert (self->conversations, 0, conversation);
  self->current = conversation;
  refill_list (self);
  return TRUE;
}

/* ---- Replies ------------------------------------------------------------ */

/* A reply takes the likeliest tokens by default (temperature 0), as `eval`
 * measures answers and captions; Regenerate asks for another reply, which
 * then has to be sampled: at this temperature unless one is set. */
#define ANOTHER_VERSION_TEMPERATURE 0.8

static void
fill_settings (TfChatView *self, TfGenerateSettings *settings)
{
  tf_generate_settings_init (settings);
  settings->temperature = gtk_spin_button_get_value (self->temperature_spin);
  if (self->another_version && settings->temperature == 0)
    settings->temperature = ANOTHER_VERSION_TEMPERATURE;
  settings->top_p = gtk_spin_button_get_value (self->top_p_spin);
  settings->seed = g_random_int ();
  /* Images the model draws in a reply follow the Imagine defaults. */
  if (self->settings != NULL)
    {
      TfGenerateSettings model;
      const gboolean has_model = self->generation != NULL &&
                                 tf_generation_get_model_sampling (self->generation, &model);
      tf_image_defaults (self->settings, has_model ? &model : NULL, settings);
    }
}

/* Puts the first @n_entries of the conversation back into the generator,
 * each with the version shown. */
static gboolean
start_restore (TfChatView *self, guint n_entries, GError **error)
{
  g_autofree TfChatTurn *turns = g_new0 (TfChatTurn, MAX (1u, n_entries));
  guint n_turns = 0;

  for (guint i = 0; i < n_entries; i++)
    {
      ChatMessage *message = chat_entry_shown (conversation_entry (self->current, i));

      /* A reply with no question before it (a log edited by hand) cannot
       * be put back; what follows can. */
      if (!message->from_user && (n_turns == 0 || !turns[n_turns - 1].from_user))
        continue;
      turns[n_turns].from_user = message->from_user;
      turns[n_turns].text = message->text;
      turns[n_turns].image = message->image != NULL ? g_bytes_get_data (message->image, NULL)
                                                    : NULL;
      n_turns++;
    }
  if (n_turns == 0)
    {
      if (!tf_generation_chat_reset (self->generation, error))
        return FALSE;
      self->context_in_sync = TRUE;
      return TRUE;
    }
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  if (!tf_generation_chat_restore (self->generation, turns, n_turns, self->cancellable, error))
    return FALSE;
  self->job = JOB_RESTORE;
  return TRUE;
}

/* Asks for a reply to the user's @text and @image, the message after the
 * first @n_before of the conversation, first putting those back into the
 * generator when it does not hold them. */
static void
start_reply (TfChatView *self, guint n_before, const char *text, GBytes *image)
{
  g_autoptr(GError) error = NULL;
  TfGenerateSettings settings;

  show_problem (self, NULL, NULL, OFFER_NOTHING);
  if (!self->context_in_sync)
    {
      if (!start_restore (self, n_before, &error))
        {
          show_problem (self, _("The conversation could not be continued"), error->message, OFFER_NEW);
          update_actions (self);
          return;
        }
      if (self->job == JOB_RESTORE)
        {
          g_free (self->pending_text);
          self->pending_text = g_strdup (text);
          self->pending_n_before = n_before;
          g_clear_pointer (&self->pending_image, g_bytes_unref);
          self->pending_image = image != NULL ? g_bytes_ref (image) : NULL;
          update_actions (self);
          return;
        }
    }

  fill_settings (self, &settings);
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();
  if (!tf_generation_chat (self->generation, text,
                           image != NULL ? g_bytes_get_data (image, NULL) : NULL,
                           &settings, self->cancellable, &error))
    {
      show_problem (self, _("The model could not answer"), error->message, OFFER_RETRY | OFFER_NEW);
      update_actions (self);
      return;
    }
  /* From here on the generator holds this turn. */
  self->context_in_sync = FALSE;
  self->job = JOB_REPLY;
  self->sent_us = g_get_monotonic_time ();
  self->first_token_us = 0;
  self->image_started_us = 0;
  self->image_us = 0;
  self->n_reply_tokens = 0;
  g_clear_pointer (&self->reply_image, g_bytes_unref);
  self->reply_row = add_row (self, &(ChatMessage) { FALSE, (char *) "", NULL });
  tf_message_row_set_waiting (self->reply_row, TRUE);
  update_actions (self);
}

/* Keeps the reply (@stopped: cut short, or @problem: failed) in the
 * conversation and on disk. */
static void
finish_reply (TfChatView *self, const char *text, gboolean stopped, const char *problem)
{
  g_autoptr(GError) error = NULL;
  ChatMessage *message = chat_message_new (FALSE, text, self->reply_image);
  g_autofree char *footer = NULL;
  gint64 now = g_get_monotonic_time ();
  GPtrArray *entries;
  ChatEntry *last;

  if (self->image_started_us > 0)
    self->image_us += now - self->image_started_us;
  self->image_started_us = 0;
  if (self->first_token_us > 0)
    {
      /* The speed of writing: the time spent drawing is not decoding. */
      double decoding = (now - self->first_token_us - self->image_us) / 1e6;

      message->n_tokens = (int) self->n_reply_tokens;
      message->first_token_seconds = (self->first_token_us - self->sent_us) / 1e6;
      message->tokens_per_second = decoding > 0 && self->n_reply_tokens > 1
                                   ? (self->n_reply_tokens - 1) / decoding : 0.0;
    }
  {
    /* The tokens are kept (for their colours) when they spell the text. */
    g_autoptr(GPtrArray) tokens = tf_message_row_get_tokens (self->reply_row);
    g_autoptr(GString) spelled = g_string_new (NULL);

    for (guint i = 0; tokens != NULL && i < tokens->len; i++)
      g_string_append (spelled, ((TfToken *) g_ptr_array_index (tokens, i))->text);
    if (tokens != NULL && strcmp (spelled->str, message->text) == 0)
      message->tokens = g_steal_pointer (&tokens);
  }
  footer = reply_footer (message);
  if (footer == NULL && self->reply_image != NULL)
    /* Translators: under a reply that is only a picture, "Drawn in 12.3 s" */
    footer = g_strdup_printf (_("Drawn in %.1f s"), (now - self->sent_us) / 1e6);
  else if (footer != NULL && self->image_us > 0)
    {
      /* Translators: a reply's speed, then how long its picture took:
       * "12.3 tokens/s · first token after 41 ms · picture in 4.0 s" */
      char *with_picture = g_strdup_printf (_("%s · picture in %.1f s"), footer,
                                            self->image_us / 1e6);

      g_free (footer);
      footer = with_picture;
    }
  if (problem != NULL)
    {
      g_free (footer);
      footer = g_strdup (problem);
    }
  else if (stopped)
    {
      /* Translators: under a reply cut short by Stop */
      char *marked = g_strdup_printf (_("Stopped · %s"), footer != NULL ? footer : "");

      g_free (footer);
      footer = marked;
    }

  tf_message_row_set_waiting (self->reply_row, FALSE);
  tf_message_row_set_footer (self->reply_row, footer);
  /* Written again: a new version of the reply it replaces, shown in its
   * place. */
  entries = self->current->entries;
  last = entries->len > 0 ? g_ptr_array_index (entries, entries->len - 1) : NULL;
  if (self->replaced_row != NULL && last != NULL && !chat_entry_from_user (last))
    {
      message->replaces = TRUE;
      g_ptr_array_add (last->versions, message);
      last->current = last->versions->len - 1;
      gtk_box_remove (self->messages_box, self->replaced_row);
      self->replaced_row = NULL;
    }
  else
    {
      last = chat_entry_new (message);
      g_ptr_array_add (entries, last);
    }
  row_set_versions (self, self->reply_row, last);
  if (!store_append (self, self->current, message, &error))
    show_problem (self, _("The reply could not be saved"), error->message, OFFER_NOTHING);
  self->reply_row = NULL;
  g_clear_pointer (&self->reply_image, g_bytes_unref);
}

static void
on_token (TfGeneration *generation, TfToken *token, TfChatView *self)
{
  if (self->job != JOB_REPLY || self->reply_row == NULL)
    return;
  if (self->first_token_us == 0)
    self->first_token_us = g_get_monotonic_time ();
  self->n_reply_tokens++;
  tf_message_row_append_token (self->reply_row, token);
}

static void
on_image_begin (TfGeneration *generation, TfChatView *self)
{
  if (self->job != JOB_REPLY || self->reply_row == NULL)
    return;
  if (self->first_token_us == 0)
    self->first_token_us = g_get_monotonic_time ();
  self->image_started_us = g_get_monotonic_time ();
  tf_message_row_begin_image (self->reply_row);
}

static void
on_step (TfGeneration *generation, guint step, guint n_steps, GBytes *x_t, GBytes *x0,
         TfChatView *self)
{
  if (self->job != JOB_REPLY || self->reply_row == NULL)
    return;
  tf_message_row_update_image (self->reply_row, x0, self->image_size, self->channels);
  {
    /* Translators: under a reply while it draws, "Drawing: step 12 of 50" */
    g_autofree char *progress = g_strdup_printf (_("Drawing: step %u of %u"), step, n_steps);

    tf_message_row_set_footer (self->reply_row, progress);
  }
}

static void
on_image_end (TfGeneration *generation, GBytes *pixels, TfChatView *self)
{
  if (self->job != JOB_REPLY || self->reply_row == NULL)
    return;
  tf_message_row_update_image (self->reply_row, pixels, self->image_size, self->channels);
  tf_message_row_set_footer (self->reply_row, NULL);
  if (self->image_started_us > 0)
    self->image_us += g_get_monotonic_time () - self->image_started_us;
  self->image_started_us = 0;
  /* A message keeps one image: the last the model drew. */
  g_clear_pointer (&self->reply_image, g_bytes_unref);
  self->reply_image = g_bytes_ref (pixels);
}

static GtkWidget *
next_visible_row (GtkWidget *row)
{
  do
    row = gtk_widget_get_next_sibling (row);
  while (row != NULL && !gtk_widget_get_visible (row));
  return row;
}

/* Dims the messages the model no longer sees: the generator left out the
 * conversation's earliest exchanges to make room in its context. It counts
 * the turns it was given as they are put back (a message with a reply
 * after it, and that reply), so the rows are counted the same way. */
static void
mark_forgotten_rows (TfChatView *self)
{
  const int forgotten = tf_generation_get_chat_forgotten (self->generation);
  GtkWidget *last = NULL, *previous = NULL, *next;
  GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box));
  int counted = 0;

  if (row != NULL && !gtk_widget_get_visible (row))
    row = next_visible_row (row);
  for (; row != NULL && counted < forgotten; previous = row, row = next)
    {
      gboolean given;

      next = next_visible_row (row);
      given = tf_message_row_get_from_user (TF_MESSAGE_ROW (row))
              ? next != NULL && !tf_message_row_get_from_user (TF_MESSAGE_ROW (next))
              : previous != NULL && tf_message_row_get_from_user (TF_MESSAGE_ROW (previous));
      if (given)
        {
          counted++;
          last = row;
        }
    }

  gboolean before_last = last != NULL;
  for (row = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box));
       row != NULL; row = gtk_widget_get_next_sibling (row))
    {
      if (before_last)
        {
          gtk_widget_add_css_class (row, "forgotten");
          gtk_widget_set_tooltip_text (row, _("The model no longer sees this message: its "
                                              "context is full, and the earliest messages "
                                              "made room for the latest"));
        }
      else if (gtk_widget_has_css_class (row, "forgotten"))
        {
          gtk_widget_remove_css_class (row, "forgotten");
          gtk_widget_set_tooltip_text (row, NULL);
        }
      if (row == last)
        before_last = FALSE;
    }
}

static void
on_finished (TfGeneration *generation, const char *text, GBytes *pixels, TfChatView *self)
{
  JobKind job = self->job;

  if (job == JOB_NONE)
    return;
  self->job = JOB_NONE;
  g_clear_object (&self->cancellable);

  if (job == JOB_RESTORE)
    {
      g_autofree char *pending = g_steal_pointer (&self->pending_text);
      g_autoptr(GBytes) image = g_steal_pointer (&self->pending_image);

      self->context_in_sync = TRUE;
      mark_forgotten_rows (self);
      if (pending != NULL)
        start_reply (self, self->pending_n_before, pending, image);
      update_actions (self);
      return;
    }

  finish_reply (self, text, FALSE, NULL);
  mark_forgotten_rows (self);
  /* The generator holds the turns before the question, the question and
   * this reply: the conversation as shown (a reply this one replaces was
   * left out when the turns before were put back). */
  self->context_in_sync = TRUE;
  update_actions (self);
}

static void
on_failed (TfGeneration *generation, GError *error, TfChatView *self)
{
  JobKind job = self->job;

  if (job == JOB_NONE)
    return;
  self->job = JOB_NONE;
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->pending_text, g_free);
  g_clear_pointer (&self->pending_image, g_bytes_unref);
  /* Whatever the generator holds now, the next turn puts the conversation
   * back first. */
  self->context_in_sync = FALSE;

  if (job == JOB_REPLY && self->reply_row != NULL)
    {
      g_autofree char *partial = tf_message_row_get_text (self->reply_row);
      gboolean stopped = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

      if (partial[0] != '\0' || self->reply_image != NULL)
        /* What was written so far stays, marked. */
        finish_reply (self, partial, stopped, stopped ? NULL : error->message);
      else
        {
          /* Nothing to keep: the question waits for Regenerate or a new
           * message. */
          gtk_box_remove (self->messages_box, GTK_WIDGET (self->reply_row));
          self->reply_row = NULL;
          if (!stopped)
            show_problem (self, _("The model could not answer"), error->message, OFFER_RETRY | OFFER_NEW);
        }
    }
  /* A reply that was to be replaced stays as it was. */
  if (self->replaced_row != NULL)
    {
      gtk_widget_set_visible (self->replaced_row, TRUE);
      self->replaced_row = NULL;
    }
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    show_problem (self, _("The conversation could not be continued"), error->message, OFFER_NEW);
  update_actions (self);
}

static void
on_busy_changed (TfChatView *self)
{
  update_actions (self);
}

/* ---- Actions ------------------------------------------------------------ */

static void
send_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfChatView *self = TF_CHAT_VIEW (widget);
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GBytes) image = NULL;
  ChatMessage *message;

  if (self->generation == NULL || self->job != JOB_NONE)
    return;
  self->another_version = FALSE;
  text = g_strstrip (message_text (self));
  if (text[0] == '\0' && self->attachment == NULL)
    {
      gtk_widget_grab_focus (GTK_WIDGET (self->message_entry));
      return;
    }
  if (!ensure_current (self, text[0] != '\0' ? text : _("A picture"), &error))
    {
      show_problem (self, _("The conversation could not be saved"), error->message, OFFER_NOTHING);
      return;
    }

  image = self->attachment != NULL ? g_bytes_ref (self->attachment) : NULL;
  message = chat_message_new (TRUE, text, image);
  g_ptr_array_add (self->current->entries, chat_entry_new (message));
  add_row (self, message);
  if (!store_append (self, self->current, message, &error))
    show_problem (self, _("The message could not be saved"), error->message, OFFER_NOTHING);

  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->message_entry), "", -1);
  gtk_widget_activate_action (widget, "chat.remove-attachment", NULL);
  start_reply (self, self->current->entries->len - 1, text, image);
}

static void
stop_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfChatView *self = TF_CHAT_VIEW (widget);

  if (self->cancellable != NULL)
    g_cancellable_cancel (self->cancellable);
}

static void
regenerate_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfChatView *self = TF_CHAT_VIEW (widget);
  GPtrArray *entries;
  ChatMessage *question;
  guint index;

  if (self->job != JOB_NONE || self->current == NULL || self->current->entries == NULL)
    return;
  entries = self->current->entries;

  /* The last question is asked again from the turns before it; the new
   * reply becomes the shown version of the old one, which stays reachable
   * with ← → (and in the log, marked as replaced). */
  for (index = entries->len; index > 0; index--)
    if (chat_entry_from_user (conversation_entry (self->current, index - 1)))
      break;
  if (index == 0)
    return;
  question = chat_entry_shown (conversation_entry (self->current, index - 1));
  self->context_in_sync = FALSE;
  self->another_version = TRUE;
  /* After a question left without a reply, the new reply replaces nothing. */
  if (index < entries->len)
    {
      self->replaced_row = gtk_widget_get_last_child (GTK_WIDGET (self->messages_box));
      gtk_widget_set_visible (self->replaced_row, FALSE);
    }
  start_reply (self, index - 1, question->text, question->image);
  if (self->job == JOB_NONE && self->replaced_row != NULL)
    {
      gtk_widget_set_visible (self->replaced_row, TRUE);
      self->replaced_row = NULL;
    }
}

/* ← → on a reply: shows another version, which the conversation then
 * continues from (the log records the choice, so a restart shows it too). */
static void
on_show_version (TfMessageRow *row, guint version, TfChatView *self)
{
  g_autoptr(GError) error = NULL;
  ChatEntry *entry;
  TfMessageRow *shown;
  guint index = 0;

  if (self->job != JOB_NONE || self->current == NULL || self->current->entries == NULL)
    return;
  for (GtkWidget *child = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box));
       child != NULL && child != GTK_WIDGET (row); child = gtk_widget_get_next_sibling (child))
    index++;
  if (index >= self->current->entries->len)
    return;
  entry = conversation_entry (self->current, index);
  if (version >= entry->versions->len || version == entry->current)
    return;
  entry->current = version;
  self->context_in_sync = FALSE;
  if (chat_entry_shown (entry)->store_index != G_MAXUINT
      && !tf_chat_store_choose (self->store, self->current->id,
                                chat_entry_shown (entry)->store_index, &error))
    show_problem (self, _("The choice could not be saved"), error->message, OFFER_NOTHING);

  shown = row_new (self, chat_entry_shown (entry));
  row_set_versions (self, shown, entry);
  gtk_box_insert_child_after (self->messages_box, GTK_WIDGET (shown),
                              gtk_widget_get_prev_sibling (GTK_WIDGET (row)));
  gtk_box_remove (self->messages_box, GTK_WIDGET (row));
  tf_message_row_focus_versions (shown);
}

static void
new_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfChatView *self = TF_CHAT_VIEW (widget);

  if (self->job != JOB_NONE)
    return;
  self->current = NULL;
  self->context_in_sync = FALSE;
  gtk_list_box_unselect_all (self->conversation_list);
  clear_rows (self);
  show_problem (self, NULL, NULL, OFFER_NOTHING);
  update_actions (self);
  gtk_widget_grab_focus (GTK_WIDGET (self->message_entry));
}

static void
on_delete_response (GtkDialog *dialog, int response, TfChatView *self)
{
  gtk_window_destroy (GTK_WINDOW (dialog));
  if (response == GTK_RESPONSE_ACCEPT && self->current != NULL && self->job == JOB_NONE)
    {
      g_autoptr(GError) error = NULL;

      if (!tf_chat_store_delete (self->store, self->current->id, &error))
        {
          show_problem (self, _("The conversation could not be deleted"), error->message, OFFER_NOTHING);
          return;
        }
      g_ptr_array_remove (self->conversations, self->current);
      self->current = NULL;
      refill_list (self);
      gtk_widget_activate_action (GTK_WIDGET (self), "chat.new", NULL);
    }
}

static void
delete_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfChatView *self = TF_CHAT_VIEW (widget);
  GtkWidget *dialog;

  if (self->current == NULL || self->job != JOB_NONE)
    return;
  dialog = gtk_message_dialog_new (GTK_WINDOW (gtk_widget_get_root (widget)),
                                   GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT,
                                   GTK_MESSAGE_QUESTION, GTK_BUTTONS_NONE,
                                   _("Delete “%s”?"), self->current->title);
  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog),
                                            _("The conversation and its pictures are removed for good."));
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), _("_Cancel"), GTK_RESPONSE_CANCEL,
                          _("_Delete"), GTK_RESPONSE_ACCEPT, NULL);
  gtk_widget_add_css_class (gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog),
                                                                GTK_RESPONSE_ACCEPT),
                            "destructive-action");
  g_signal_connect (dialog, "response", G_CALLBACK (on_delete_response), self);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* ---- Attachments -------------------------------------------------------- */

static void
set_attachment (TfChatView *self, GBytes *pixels, const char *name)
{
  g_clear_pointer (&self->attachment, g_bytes_unref);
  if (pixels != NULL)
    self->attachment = g_bytes_ref (pixels);
  tf_image_view_set_bytes (self->attachment_view, pixels, self->image_size, self->channels);
  gtk_label_set_text (self->attachment_label, name != NULL ? name : "");
  gtk_revealer_set_reveal_child (self->attachment_revealer, pixels != NULL);
  update_actions (self);
}

gboolean
tf_chat_view_attach_file (TfChatView *self, GFile *file, GError **error)
{
  g_autoptr(GBytes) pixels = NULL;
  g_autofree char *name = NULL;

  g_return_val_if_fail (TF_IS_CHAT_VIEW (self), FALSE);
  if (self->generation == NULL)
    return FALSE;
  pixels = tf_pixels_new_from_file (file, self->image_size, self->channels,
                                    tf_generation_get_picture_grey_side (self->generation), error);
  if (pixels == NULL)
    return FALSE;
  name = g_file_get_basename (file);
  set_attachment (self, pixels, name);
  gtk_widget_grab_focus (GTK_WIDGET (self->message_entry));
  return TRUE;
}

static void
remove_attachment_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  set_attachment (TF_CHAT_VIEW (widget), NULL, NULL);
}

/* GtkFileChooserNative is the file chooser of GTK 4.8 (Debian 12). */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

static void
on_attach_response (GtkNativeDialog *dialog, int response, TfChatView *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autoptr(GError) error = NULL;

      if (file != NULL && !tf_chat_view_attach_file (self, file, &error))
        show_problem (self, _("The picture could not be attached"), error->message, OFFER_NOTHING);
    }
  gtk_native_dialog_destroy (dialog);
  g_clear_object (&self->attach_dialog);
}

static void
attach_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TfChatView *self = TF_CHAT_VIEW (widget);

  if (self->attach_dialog == NULL)
    {
      self->attach_dialog = tf_picture_chooser_new (widget, _("Attach a Picture"), _("_Attach"));
      g_signal_connect (self->attach_dialog, "response", G_CALLBACK (on_attach_response), self);
    }
  gtk_native_dialog_show (self->attach_dialog);
}

G_GNUC_END_IGNORE_DEPRECATIONS

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y, TfChatView *self)
{
  g_autoptr(GError) error = NULL;

  if (self->generation == NULL)
    return FALSE;
  if (G_VALUE_HOLDS (value, GDK_TYPE_TEXTURE))
    {
      g_autoptr(GBytes) pixels =
        tf_pixels_new_from_texture (g_value_get_object (value), self->image_size, self->channels,
                                    tf_generation_get_picture_grey_side (self->generation));

      set_attachment (self, pixels, _("Dropped picture"));
      return TRUE;
    }
  if (G_VALUE_HOLDS (value, G_TYPE_FILE))
    {
      if (tf_chat_view_attach_file (self, g_value_get_object (value), &error))
        return TRUE;
      show_problem (self, _("The picture could not be attached"), error->message, OFFER_NOTHING);
    }
  return FALSE;
}

/* ---- Template callbacks ------------------------------------------------- */

/* Enter sends, as in chat programs; Shift+Enter starts a new line. */
static gboolean
on_message_key_pressed (GtkEventControllerKey *controller, guint keyval, guint keycode,
                        GdkModifierType state, TfChatView *self)
{
  if ((keyval != GDK_KEY_Return && keyval != GDK_KEY_KP_Enter && keyval != GDK_KEY_ISO_Enter)
      || (state & GDK_SHIFT_MASK) != 0)
    return FALSE;
  gtk_widget_activate_action (GTK_WIDGET (self), "chat.send", NULL);
  return TRUE;
}

static void
on_tokens_toggled (TfChatView *self)
{
  gboolean show = gtk_toggle_button_get_active (self->tokens_toggle);

  for (GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box)); row != NULL;
       row = gtk_widget_get_next_sibling (row))
    if (!tf_message_row_get_from_user (TF_MESSAGE_ROW (row)))
      tf_message_row_set_show_tokens (TF_MESSAGE_ROW (row), show);
}

static void
on_conversation_selected (TfChatView *self, GtkListBoxRow *row)
{
  g_autoptr(GError) error = NULL;
  Conversation *conversation;

  if (row == NULL || self->job != JOB_NONE)
    return;
  conversation = g_object_get_data (G_OBJECT (gtk_list_box_row_get_child (row)), "tf-conversation");
  if (conversation == self->current)
    return;
  if (conversation->entries == NULL && !store_load_messages (self, conversation, &error))
    {
      show_problem (self, _("This conversation could not be read"), error->message, OFFER_NEW);
      return;
    }
  self->current = conversation;
  self->context_in_sync = FALSE;
  show_problem (self, NULL, NULL, OFFER_NOTHING);
  show_conversation (self);
  update_actions (self);
  if (adw_flap_get_folded (self->flap))
    adw_flap_set_reveal_flap (self->flap, FALSE);
}

static void
on_rename_popover_show (TfChatView *self)
{
  if (self->current != NULL)
    gtk_editable_set_text (GTK_EDITABLE (self->rename_entry), self->current->title);
  gtk_widget_grab_focus (GTK_WIDGET (self->rename_entry));
}

static void
on_rename_activate (TfChatView *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *title = g_strstrip (g_strdup (gtk_editable_get_text (GTK_EDITABLE (self->rename_entry))));

  gtk_popover_popdown (self->rename_popover);
  if (self->current == NULL || title[0] == '\0')
    return;
  if (!tf_chat_store_rename (self->store, self->current->id, title, &error))
    {
      show_problem (self, _("The conversation could not be renamed"), error->message, OFFER_NOTHING);
      return;
    }
  g_free (self->current->title);
  self->current->title = g_steal_pointer (&title);
  refill_list (self);
}

static void
on_starter_clicked (GtkButton *button, TfChatView *self)
{
  tf_chat_view_set_message (self, gtk_button_get_label (button));
  gtk_widget_activate_action (GTK_WIDGET (self), "chat.send", NULL);
}

/* ---- Public ------------------------------------------------------------- */

void
tf_chat_view_set_generation (TfChatView *self, TfGeneration *generation)
{
  static const char *const names[G_N_ELEMENTS (((TfChatView *) NULL)->handlers)] = {
    "token", "image-begin", "step", "image-end", "finished", "failed", "notify::busy",
  };
  const GCallback callbacks[G_N_ELEMENTS (names)] = {
    G_CALLBACK (on_token), G_CALLBACK (on_image_begin), G_CALLBACK (on_step),
    G_CALLBACK (on_image_end), G_CALLBACK (on_finished), G_CALLBACK (on_failed), NULL,
  };

  g_return_if_fail (TF_IS_CHAT_VIEW (self));
  g_return_if_fail (generation == NULL || TF_IS_GENERATION (generation));

  if (self->generation != NULL)
    {
      if (self->cancellable != NULL)
        g_cancellable_cancel (self->cancellable);
      for (guint i = 0; i < G_N_ELEMENTS (self->handlers); i++)
        g_clear_signal_handler (&self->handlers[i], self->generation);
      g_clear_object (&self->generation);
    }
  /* A reply of the old model ends here, with what it wrote. */
  if (self->job == JOB_REPLY && self->reply_row != NULL)
    {
      g_autofree char *partial = tf_message_row_get_text (self->reply_row);

      finish_reply (self, partial, TRUE, NULL);
    }
  self->job = JOB_NONE;
  if (self->replaced_row != NULL)
    {
      gtk_widget_set_visible (self->replaced_row, TRUE);
      self->replaced_row = NULL;
    }
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->pending_text, g_free);
  g_clear_pointer (&self->pending_image, g_bytes_unref);
  self->context_in_sync = FALSE;

  if (generation != NULL)
    {
      int size = tf_generation_get_image_size (generation);
      int channels = tf_generation_get_channels (generation);

      self->generation = g_object_ref (generation);
      for (guint i = 0; i < G_N_ELEMENTS (names); i++)
        self->handlers[i] = callbacks[i] != NULL
                            ? g_signal_connect (generation, names[i], callbacks[i], self)
                            : g_signal_connect_swapped (generation, names[i],
                                                        G_CALLBACK (on_busy_changed), self);
      /* Pictures of another size cannot be shown to this model. */
      if (size != self->image_size || channels != self->channels)
        {
          self->image_size = size;
          self->channels = channels;
          set_attachment (self, NULL, NULL);
          for (guint i = 0; i < self->conversations->len; i++)
            {
              Conversation *conversation = g_ptr_array_index (self->conversations, i);

              if (conversation != self->current)
                g_clear_pointer (&conversation->entries, g_ptr_array_unref);
            }
          if (self->current != NULL)
            {
              g_autoptr(GError) error = NULL;

              if (!store_load_messages (self, self->current, &error))
                show_problem (self, _("This conversation could not be read"), error->message, OFFER_NEW);
              show_conversation (self);
            }
        }
    }
  update_actions (self);
}

void
tf_chat_view_set_settings (TfChatView *self, GSettings *settings)
{
  g_return_if_fail (TF_IS_CHAT_VIEW (self));
  if (settings == NULL)
    return;
  g_set_object (&self->settings, settings);
  g_settings_bind (settings, "chat-temperature",
                   gtk_spin_button_get_adjustment (self->temperature_spin), "value",
                   G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "chat-top-p", gtk_spin_button_get_adjustment (self->top_p_spin),
                   "value", G_SETTINGS_BIND_DEFAULT);
  g_settings_bind (settings, "show-tokens", self->tokens_toggle, "active",
                   G_SETTINGS_BIND_DEFAULT);
}

void
tf_chat_view_set_message (TfChatView *self, const char *text)
{
  g_return_if_fail (TF_IS_CHAT_VIEW (self));
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->message_entry);
  GtkTextIter end;

  gtk_text_buffer_set_text (buffer, text, -1);
  gtk_text_buffer_get_end_iter (buffer, &end);
  gtk_text_buffer_place_cursor (buffer, &end);
}

void
tf_chat_view_focus_message (TfChatView *self)
{
  g_return_if_fail (TF_IS_CHAT_VIEW (self));
  gtk_widget_grab_focus (GTK_WIDGET (self->message_entry));
}

gboolean
tf_chat_view_get_running (TfChatView *self)
{
  g_return_val_if_fail (TF_IS_CHAT_VIEW (self), FALSE);
  return self->job != JOB_NONE;
}

guint
tf_chat_view_get_n_conversations (TfChatView *self)
{
  g_return_val_if_fail (TF_IS_CHAT_VIEW (self), 0);
  return self->conversations->len;
}

void
tf_chat_view_select_conversation (TfChatView *self, guint index)
{
  GtkListBoxRow *row;

  g_return_if_fail (TF_IS_CHAT_VIEW (self));
  row = gtk_list_box_get_row_at_index (self->conversation_list, (int) index);
  g_return_if_fail (row != NULL);
  gtk_list_box_select_row (self->conversation_list, row);
}

guint
tf_chat_view_get_n_messages (TfChatView *self)
{
  guint n = 0;

  g_return_val_if_fail (TF_IS_CHAT_VIEW (self), 0);
  for (GtkWidget *row = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box)); row != NULL;
       row = gtk_widget_get_next_sibling (row))
    n++;
  return n;
}

GtkWidget *
tf_chat_view_get_message (TfChatView *self, guint index)
{
  GtkWidget *row;

  g_return_val_if_fail (TF_IS_CHAT_VIEW (self), NULL);
  for (row = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box)); row != NULL && index > 0;
       row = gtk_widget_get_next_sibling (row))
    index--;
  return row;
}

/* ---- The object --------------------------------------------------------- */

static void
tf_chat_view_dispose (GObject *object)
{
  TfChatView *self = TF_CHAT_VIEW (object);
  GtkWidget *child;

  tf_chat_view_set_generation (self, NULL);
  if (self->follow_tick != 0)
    gtk_widget_remove_tick_callback (GTK_WIDGET (self), self->follow_tick);
  self->follow_tick = 0;
  if (self->attach_dialog != NULL)
    gtk_native_dialog_destroy (self->attach_dialog);
  g_clear_object (&self->attach_dialog);
  g_clear_object (&self->settings);
  /* The template's root box is not bound to a field: unparent it here. */
  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self))) != NULL)
    gtk_widget_unparent (child);
  gtk_widget_dispose_template (GTK_WIDGET (self), TF_TYPE_CHAT_VIEW);
  G_OBJECT_CLASS (tf_chat_view_parent_class)->dispose (object);
}

static void
tf_chat_view_finalize (GObject *object)
{
  TfChatView *self = TF_CHAT_VIEW (object);

  g_ptr_array_unref (self->conversations);
  g_clear_object (&self->store);
  g_clear_pointer (&self->attachment, g_bytes_unref);
  g_clear_pointer (&self->reply_image, g_bytes_unref);
  G_OBJECT_CLASS (tf_chat_view_parent_class)->finalize (object);
}

static void
tf_chat_view_class_init (TfChatViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tf_chat_view_dispose;
  object_class->finalize = tf_chat_view_finalize;

  g_type_ensure (TF_TYPE_IMAGE_VIEW);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/transfusion/Transfusion/tf-chat-view.ui");
  gtk_widget_class_bind_template_child (widget_class, TfChatView, conversation_list);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, rename_button);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, rename_popover);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, rename_entry);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, messages_stack);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, messages_scroller);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, messages_box);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, starters_box);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, attachment_revealer);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, attachment_view);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, attachment_label);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, message_entry);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, send_stack);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, send_button);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, tokens_toggle);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, temperature_spin);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, top_p_spin);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, status_label);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, flap);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, problem_revealer);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, problem_title);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, problem_retry_button);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, problem_new_button);
  gtk_widget_class_bind_template_child (widget_class, TfChatView, legend_scale);
  gtk_widget_class_bind_template_callback (widget_class, on_problem_dismiss_clicked);
  gtk_widget_class_bind_template_callback (widget_class, on_tokens_toggled);
  gtk_widget_class_bind_template_callback (widget_class, on_conversation_selected);
  gtk_widget_class_bind_template_callback (widget_class, on_rename_popover_show);
  gtk_widget_class_bind_template_callback (widget_class, on_rename_activate);

  gtk_widget_class_install_action (widget_class, "chat.send", NULL, send_action);
  gtk_widget_class_install_action (widget_class, "chat.stop", NULL, stop_action);
  gtk_widget_class_install_action (widget_class, "chat.regenerate", NULL, regenerate_action);
  gtk_widget_class_install_action (widget_class, "chat.new", NULL, new_action);
  gtk_widget_class_install_action (widget_class, "chat.delete", NULL, delete_action);
  gtk_widget_class_install_action (widget_class, "chat.attach", NULL, attach_action);
  gtk_widget_class_install_action (widget_class, "chat.remove-attachment", NULL,
                                   remove_attachment_action);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "tf-chat-view");
}

static void
tf_chat_view_init (TfChatView *self)
{
  /* Messages the model reads, so in the one language it knows, whatever
   * the interface's: not for translation. */
  const char *starters[] = {
    "What is a bicycle?",
    "Draw a large red heart",
    "Draw a sneaker",
  };
  GtkDropTarget *drop = gtk_drop_target_new (G_TYPE_INVALID, GDK_ACTION_COPY);
  GType types[] = { GDK_TYPE_TEXTURE, G_TYPE_FILE };

  gtk_widget_init_template (GTK_WIDGET (self));
  self->conversations = g_ptr_array_new_with_free_func ((GDestroyNotify) conversation_free);

  for (guint i = 0; i < G_N_ELEMENTS (starters); i++)
    {
      GtkWidget *button = gtk_button_new_with_label (starters[i]);

      gtk_widget_add_css_class (button, "example");
      gtk_widget_set_tooltip_text (button, _("Send this message"));
      g_signal_connect (button, "clicked", G_CALLBACK (on_starter_clicked), self);
      gtk_box_append (self->starters_box, button);
    }

  {
    GtkEventController *keys = gtk_event_controller_key_new ();

    /* Before the text view's own handling, which would break the line. */
    gtk_event_controller_set_propagation_phase (keys, GTK_PHASE_CAPTURE);
    g_signal_connect (keys, "key-pressed", G_CALLBACK (on_message_key_pressed), self);
    gtk_widget_add_controller (GTK_WIDGET (self->message_entry), keys);
  }
  tf_message_row_fill_legend (self->legend_scale);

  gtk_drop_target_set_gtypes (drop, types, G_N_ELEMENTS (types));
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));

  {
    GtkAdjustment *adjustment = gtk_scrolled_window_get_vadjustment (self->messages_scroller);

    self->follow_end = TRUE;
    g_signal_connect_object (adjustment, "value-changed", G_CALLBACK (on_scroll_value_changed),
                             self, 0);
    g_signal_connect_object (adjustment, "changed", G_CALLBACK (on_scroll_changed), self, 0);
  }

  self->store = tf_chat_store_new (NULL);
  reload_conversations (self);
  update_actions (self);
}
