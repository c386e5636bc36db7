/* tf-chat-store.h: conversations saved on disk (issue 5).
 *
 * Each conversation is a folder DIR/ID/ with a log, chat.jsonl, and the
 * PNG images of its messages beside it. The log is append-only, one JSON
 * object a line, each line written whole and fsync'd as a message
 * completes: the first line names the chat, each message adds a line, and a
 * rename adds a line with the new title (so a rename is one atomic append).
 * A crash can only cut the last line short; reading drops such a line (a
 * warning) and keeps everything before it, and the next append writes over
 * it.
 *
 * Regenerate writes a reply again: the new reply's line says it "replaces"
 * the one before it, and both stay as versions of one reply (logs written
 * before that flag existed hold two replies in a row: they are read the
 * same way). Which version the conversation continues from is the one
 * written or chosen last: choosing an older one adds a "choice" line.
 *
 * The reader treats the files as hostile: sizes are bounded (the log, a
 * line, a text, the number of messages, an image file), image names cannot
 * leave the folder, and every error names the file, the line and what is
 * wrong. No GTK here.
 *
 * DIR is g_get_user_data_dir()/transfusion/chats unless the store is made
 * with another (tests). Times are microseconds since 1970 (g_get_real_time). */
#pragma once

#include <gio/gio.h>

#include "tf-generation.h"

G_BEGIN_DECLS

#define TF_CHAT_STORE_MAX_LOG_BYTES     (16 * 1024 * 1024)
#define TF_CHAT_STORE_MAX_LINE_BYTES    (1024 * 1024)
#define TF_CHAT_STORE_MAX_TEXT_BYTES    (256 * 1024)
#define TF_CHAT_STORE_MAX_TITLE_BYTES   1024
#define TF_CHAT_STORE_MAX_MESSAGES      10000
#define TF_CHAT_STORE_MAX_IMAGE_BYTES   (4 * 1024 * 1024)
#define TF_CHAT_STORE_MAX_IMAGE_SIZE    1024
#define TF_CHAT_STORE_MAX_TOKENS        16384
#define TF_CHAT_STORE_MAX_TOKEN_BYTES   256

typedef struct {
  gboolean  from_user;           /* TRUE: the user's message; FALSE: the model's reply */
  char     *text;                /* UTF-8, never NULL */
  gint64    time;                /* when it completed */
  /* The message's image, or NULL: a PNG in the chat's folder (absolute
   * path), drawn at image_size × image_size with image_channels. */
  char     *image_path;
  int       image_size, image_channels;
  /* Replies: how they were made; 0 when not known. */
  int       n_tokens;
  double    tokens_per_second;
  double    first_token_seconds; /* time to the first token */
  /* Replies: a version written again by Regenerate, after the reply it
   * replaces (which stays, as an earlier version). */
  gboolean  replaces;
  /* The log line that wrote or last chose this message: of a reply's
   * versions, the one with the highest is the one the conversation holds. */
  guint     chosen_line;
  /* Replies: the tokens as sampled (TfToken: text, probability and the
   * alternatives weighed), which spell the text; NULL when not kept. */
  GPtrArray *tokens;
} TfChatMessage;

TfChatMessage *tf_chat_message_copy (const TfChatMessage *message);
void           tf_chat_message_free (TfChatMessage *message);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfChatMessage, tf_chat_message_free)

/* The message's image as model pixels (image_size² × image_channels floats
 * in [-1, 1]), read back from its PNG; NULL with an error naming the file. */
float *tf_chat_message_load_image (const TfChatMessage *message, GError **error);

typedef struct {
  char      *id;                 /* the folder's name */
  char      *title;
  gint64     created;
  gint64     updated;            /* the last message or rename */
  guint      n_messages;
  GPtrArray *messages;           /* of TfChatMessage; NULL in a listing */
} TfChat;

void tf_chat_free (TfChat *chat);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfChat, tf_chat_free)

/* A message as a person sees it: the user's, or a reply with every version
 * of it written (a reply right after a reply is a later version of it,
 * whether or not its line says "replaces"). */
typedef struct {
  guint first;        /* index of its first version in TfChat.messages */
  guint n_versions;   /* the versions are messages first … first + n_versions − 1 */
  guint current;      /* the version the conversation holds, 0 … n_versions − 1 */
} TfChatEntry;

/* The entries of a loaded chat, in order (an array of TfChatEntry). */
GArray *tf_chat_entries (const TfChat *chat);

#define TF_TYPE_CHAT_STORE (tf_chat_store_get_type ())
G_DECLARE_FINAL_TYPE (TfChatStore, tf_chat_store, TF, CHAT_STORE, GObject)

/* Signal: changed (const char *id): after a create, append, rename or
 * delete of the chat @id through this store. */

/* @dir: where the chats live; NULL for the user's data folder. The folder is
 * made when the first chat is. */
TfChatStore *tf_chat_store_new (const char *dir);
const char  *tf_chat_store_get_dir (TfChatStore *self);

/* The chats, newest (last updated) first, without their messages. A chat
 * that cannot be read is left out with a warning naming the file and the
 * problem, so that one broken file never hides the others. */
GPtrArray *tf_chat_store_list (TfChatStore *self, GError **error);

/* Starts a chat (an empty one, with @title); returns its id. */
char *tf_chat_store_create (TfChatStore *self, const char *title, GError **error);

/* Appends @message (its image_path is ignored): when @pixels is not NULL
 * they are written first as a PNG beside the log (image_size and
 * image_channels of @message say their shape). */
gboolean tf_chat_store_append (TfChatStore *self, const char *id, const TfChatMessage *message,
                               const float *pixels, GError **error);

/* The whole chat, messages in order. */
TfChat *tf_chat_store_load (TfChatStore *self, const char *id, GError **error);

/* Makes the reply that is message @index (in TfChat.messages) the version
 * its conversation continues from. */
gboolean tf_chat_store_choose (TfChatStore *self, const char *id, guint index, GError **error);

gboolean tf_chat_store_rename (TfChatStore *self, const char *id, const char *title,
                               GError **error);
gboolean tf_chat_store_delete (TfChatStore *self, const char *id, GError **error);

G_END_DECLS
