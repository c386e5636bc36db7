/* tf-chat-store.c: conversations as append-only logs (see the header). */
#include "config.h"

#include "tf-chat-store.h"
#include "tf-image.h"
#include "tf-json.h"
#include "tf-model-info.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_NAME "chat.jsonl"
#define LOG_VERSION 1
#define MAX_ID_LENGTH 64

struct _TfChatStore {
  GObject  parent_instance;
  char    *dir;
};

G_DEFINE_FINAL_TYPE (TfChatStore, tf_chat_store, G_TYPE_OBJECT)

enum { SIGNAL_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* ---- Messages and chats ------------------------------------------------ */

TfChatMessage *
tf_chat_message_copy (const TfChatMessage *message)
{
  TfChatMessage *copy = g_memdup2 (message, sizeof *message);
  copy->text = g_strdup (message->text);
  copy->image_path = g_strdup (message->image_path);
  copy->tokens = message->tokens != NULL
                 ? g_ptr_array_copy (message->tokens, (GCopyFunc) (void (*) (void)) tf_token_copy, NULL)
                 : NULL;
  if (copy->tokens != NULL)
    g_ptr_array_set_free_func (copy->tokens, (GDestroyNotify) tf_token_free);
  return copy;
}

void
tf_chat_message_free (TfChatMessage *message)
{
  if (message == NULL)
    return;
  g_free (message->text);
  g_free (message->image_path);
  g_clear_pointer (&message->tokens, g_ptr_array_unref);
  g_free (message);
}

void
tf_chat_free (TfChat *chat)
{
  if (chat == NULL)
    return;
  g_free (chat->id);
  g_free (chat->title);
  g_clear_pointer (&chat->messages, g_ptr_array_unref);
  g_free (chat);
}

float *
tf_chat_message_load_image (const TfChatMessage *message, GError **error)
{
  GStatBuf st;
  TfImage image = { 0 };

  g_return_val_if_fail (message != NULL && message->image_path != NULL, NULL);

  if (g_stat (message->image_path, &st) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("%s: cannot read: %s"),
                   message->image_path, g_strerror (saved));
      return NULL;
    }
  if (st.st_size > TF_CHAT_STORE_MAX_IMAGE_BYTES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("%s: the image file is larger than %d bytes"), message->image_path,
                   TF_CHAT_STORE_MAX_IMAGE_BYTES);
      return NULL;
    }
  if (!tf_image_read_png (message->image_path, &image, error))
    return NULL;
  const int size = message->image_size, channels = message->image_channels;
  float *pixels = g_new (float, (gsize) size * size * channels);
  tf_image_to_model (&image, size, channels, pixels);
  tf_image_clear (&image);
  return pixels;
}

/* ---- Reading a log -------------------------------------------------------- */

typedef struct {
  const char *path;
  guint       line;
  GError    **error;
} Reader;

static gboolean G_GNUC_PRINTF (2, 3)
reader_fail (Reader *r, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *what = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (r->error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("%s: line %u: %s"), r->path,
               r->line, what);
  return FALSE;
}

/* The member @name of @object as a string of at most @max bytes. */
static gboolean
read_string (Reader *r, JsonObject *object, const char *name, gsize max, gboolean required,
             const char **out)
{
  JsonNode *node = json_object_get_member (object, name);
  *out = NULL;
  if (node == NULL && !required)
    return TRUE;
  if (node == NULL)
    return reader_fail (r, _("“%s” is missing"), name);
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return reader_fail (r, _("“%s” is not a string"), name);
  *out = json_node_get_string (node);
  if (strlen (*out) > max)
    return reader_fail (r, _("“%s” is longer than %zu bytes"), name, max);
  return TRUE;
}

static gboolean
read_number (Reader *r, JsonObject *object, const char *name, double min, double max,
             gboolean required, gboolean integer, double *out)
{
  JsonNode *node = json_object_get_member (object, name);
  if (node == NULL && !required)
    return TRUE;
  if (node == NULL)
    return reader_fail (r, _("“%s” is missing"), name);
  GType type = JSON_NODE_HOLDS_VALUE (node) ? json_node_get_value_type (node) : G_TYPE_INVALID;
  if (type == G_TYPE_INT64)
    *out = (double) json_node_get_int (node);
  else if (type == G_TYPE_DOUBLE && !integer)
    *out = json_node_get_double (node);
  else
    return reader_fail (r, integer ? _("“%s” is not a whole number") : _("“%s” is not a number"),
                        name);
  if (!isfinite (*out) || *out < min || *out > max)
    return reader_fail (r, _("“%s” is %g, out of range (%g to %g)"), name, *out, min, max);
  return TRUE;
}

static gboolean
read_boolean (Reader *r, JsonObject *object, const char *name, gboolean *out)
{
  JsonNode *node = json_object_get_member (object, name);
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return reader_fail (r, _("“%s” is neither true nor false"), name);
  *out = json_node_get_boolean (node);
  return TRUE;
}

/* "sampled": [{"t": TEXT, "p": P, "alt": [[TEXT, P], …]}, …], the tokens,
 * which must spell @text ("tokens" is their count). */
static gboolean
read_tokens (Reader *r, JsonObject *object, const char *text, GPtrArray **out)
{
  JsonNode *node = json_object_get_member (object, "sampled");
  *out = NULL;
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return reader_fail (r, _("“%s” is not a list"), "sampled");
  JsonArray *array = json_node_get_array (node);
  const guint n = json_array_get_length (array);
  if (n > TF_CHAT_STORE_MAX_TOKENS)
    return reader_fail (r, _("more than %d tokens"), TF_CHAT_STORE_MAX_TOKENS);
  g_autoptr (GPtrArray) tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) tf_token_free);
  g_autoptr (GString) spelled = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    {
      JsonNode *item = json_array_get_element (array, i);
      if (!JSON_NODE_HOLDS_OBJECT (item))
        return reader_fail (r, _("token %u is not an object"), i + 1);
      JsonObject *o = json_node_get_object (item);
      const char *t;
      double p = 0;
      if (!read_string (r, o, "t", TF_CHAT_STORE_MAX_TOKEN_BYTES, TRUE, &t) ||
          !read_number (r, o, "p", 0, 1, TRUE, FALSE, &p))
        return FALSE;
      g_autoptr (TfToken) token = g_new0 (TfToken, 1);
      token->text = g_strdup (t);
      token->probability = p;
      JsonNode *alt = json_object_get_member (o, "alt");
      if (alt != NULL)
        {
          if (!JSON_NODE_HOLDS_ARRAY (alt) ||
              json_array_get_length (json_node_get_array (alt)) > TF_TOP_ALTERNATIVES)
            return reader_fail (r, _("token %u: “alt” is not a list of at most %d"), i + 1,
                                TF_TOP_ALTERNATIVES);
          JsonArray *alts = json_node_get_array (alt);
          for (guint a = 0; a < json_array_get_length (alts); a++)
            {
              JsonNode *pair = json_array_get_element (alts, a);
              JsonArray *pa = JSON_NODE_HOLDS_ARRAY (pair) ? json_node_get_array (pair) : NULL;
              JsonNode *at = pa != NULL && json_array_get_length (pa) == 2
                             ? json_array_get_element (pa, 0) : NULL;
              JsonNode *ap = at != NULL ? json_array_get_element (pa, 1) : NULL;
              if (at == NULL || !JSON_NODE_HOLDS_VALUE (at) ||
                  json_node_get_value_type (at) != G_TYPE_STRING ||
                  strlen (json_node_get_string (at)) > TF_CHAT_STORE_MAX_TOKEN_BYTES ||
                  !g_utf8_validate (json_node_get_string (at), -1, NULL) ||
                  !JSON_NODE_HOLDS_VALUE (ap) ||
                  (json_node_get_value_type (ap) != G_TYPE_DOUBLE &&
                   json_node_get_value_type (ap) != G_TYPE_INT64) ||
                  !(json_node_get_double (ap) >= 0 && json_node_get_double (ap) <= 1))
                return reader_fail (r, _("token %u: alternative %u is not [text, probability]"),
                                    i + 1, a + 1);
              token->alternative_texts[a] = g_strdup (json_node_get_string (at));
              token->alternative_probabilities[a] = json_node_get_double (ap);
              token->n_alternatives = (int) a + 1;
            }
        }
      g_string_append (spelled, t);
      g_ptr_array_add (tokens, g_steal_pointer (&token));
    }
  if (strcmp (spelled->str, text) != 0)
    return reader_fail (r, _("the tokens do not spell the message's text"));
  *out = g_steal_pointer (&tokens);
  return TRUE;
}

/* Image files are named by the writer; a name from the file must not lead
 * anywhere else. */
static gboolean
image_name_is_valid (const char *name)
{
  gsize len = strlen (name);
  if (len < 5 || len > 64 || name[0] == '.' || !g_str_has_suffix (name, ".png"))
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

static gboolean
parse_message (Reader *r, JsonObject *object, const char *chat_dir, TfChatMessage *m)
{
  const char *role, *text, *image;
  double time = 0, size = 0, channels = 0, n_tokens = 0, speed = 0, first = 0;
  gboolean replaces = FALSE;

  if (!read_boolean (r, object, "replaces", &replaces) ||
      !read_string (r, object, "role", 16, TRUE, &role) ||
      !read_string (r, object, "text", TF_CHAT_STORE_MAX_TEXT_BYTES, TRUE, &text) ||
      !read_number (r, object, "time", 0, 1e17, TRUE, TRUE, &time) ||
      !read_string (r, object, "image", 64, FALSE, &image) ||
      !read_number (r, object, "tokens", 0, 1e9, FALSE, TRUE, &n_tokens) ||
      !read_number (r, object, "tokens_per_second", 0, 1e9, FALSE, FALSE, &speed) ||
      !read_number (r, object, "first_token_seconds", 0, 1e9, FALSE, FALSE, &first))
    return FALSE;
  if (strcmp (role, "user") != 0 && strcmp (role, "model") != 0)
    return reader_fail (r, _("the role “%s” is neither “user” nor “model”"), role);
  if (image != NULL)
    {
      if (!image_name_is_valid (image))
        return reader_fail (r, _("“%s” is not the name of an image file of this chat"), image);
      if (!read_number (r, object, "image_size", 1, TF_CHAT_STORE_MAX_IMAGE_SIZE, TRUE, TRUE,
                        &size) ||
          !read_number (r, object, "image_channels", 1, 3, TRUE, TRUE, &channels))
        return FALSE;
      if (channels == 2)
        return reader_fail (r, _("“image_channels” must be 1 or 3"));
    }
  m->from_user = strcmp (role, "user") == 0;
  m->text = g_strdup (text);
  m->time = (gint64) time;
  m->image_path = image != NULL ? g_build_filename (chat_dir, image, NULL) : NULL;
  m->image_size = (int) size;
  m->image_channels = (int) channels;
  m->n_tokens = (int) n_tokens;
  m->tokens_per_second = speed;
  m->first_token_seconds = first;
  m->replaces = replaces && !m->from_user;
  m->chosen_line = r->line;
  return m->from_user || read_tokens (r, object, text, &m->tokens);
}

/* One line (without its newline) into @chat. */
static gboolean
parse_line (Reader *r, const char *line, gsize len, const char *chat_dir, TfChat *chat)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) json_error = NULL;
  const char *kind;

  if (len > TF_CHAT_STORE_MAX_LINE_BYTES)
    return reader_fail (r, _("the line is longer than %d bytes"), TF_CHAT_STORE_MAX_LINE_BYTES);
  if (!tf_json_parse (parser, line, len, &json_error))
    return reader_fail (r, _("not JSON: %s"), json_error->message);
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return reader_fail (r, _("not a JSON object"));
  JsonObject *object = json_node_get_object (root);
  if (!read_string (r, object, "kind", 16, TRUE, &kind))
    return FALSE;

  const gboolean first = r->line == 1;
  if ((strcmp (kind, "chat") == 0) != first)
    return reader_fail (r, first ? _("the first line is not the chat's (“kind”: “chat”)")
                                 : _("a second “chat” line"));
  if (first)
    {
      const char *title;
      double version = 0, created = 0;
      if (!read_number (r, object, "version", 0, G_MAXINT, TRUE, TRUE, &version) ||
          !read_string (r, object, "title", TF_CHAT_STORE_MAX_TITLE_BYTES, TRUE, &title) ||
          !read_number (r, object, "created", 0, 1e17, TRUE, TRUE, &created))
        return FALSE;
      if (version != LOG_VERSION)
        return reader_fail (r, _("version %g is not one this program reads (%d)"), version,
                            LOG_VERSION);
      chat->title = g_strdup (title);
      chat->created = chat->updated = (gint64) created;
      return TRUE;
    }
  if (strcmp (kind, "title") == 0)
    {
      const char *title;
      double time = 0;
      if (!read_string (r, object, "title", TF_CHAT_STORE_MAX_TITLE_BYTES, TRUE, &title) ||
          !read_number (r, object, "time", 0, 1e17, TRUE, TRUE, &time))
        return FALSE;
      g_free (chat->title);
      chat->title = g_strdup (title);
      chat->updated = MAX (chat->updated, (gint64) time);
      return TRUE;
    }
  if (strcmp (kind, "message") == 0)
    {
      g_autoptr (TfChatMessage) m = g_new0 (TfChatMessage, 1);
      if (chat->n_messages >= TF_CHAT_STORE_MAX_MESSAGES)
        return reader_fail (r, _("more than %d messages"), TF_CHAT_STORE_MAX_MESSAGES);
      if (!parse_message (r, object, chat_dir, m))
        return FALSE;
      chat->n_messages++;
      chat->updated = MAX (chat->updated, m->time);
      if (chat->messages != NULL)
        g_ptr_array_add (chat->messages, g_steal_pointer (&m));
      return TRUE;
    }
  if (strcmp (kind, "choice") == 0)
    {
      double index = 0, time = 0;
      if (!read_number (r, object, "message", 0, G_MAXUINT, TRUE, TRUE, &index) ||
          !read_number (r, object, "time", 0, 1e17, TRUE, TRUE, &time))
        return FALSE;
      if (index >= chat->n_messages)
        return reader_fail (r, _("“message” is %g, not the index of a message before this line"),
                            index);
      chat->updated = MAX (chat->updated, (gint64) time);
      if (chat->messages != NULL)
        {
          TfChatMessage *chosen = g_ptr_array_index (chat->messages, (guint) index);
          if (chosen->from_user)
            return reader_fail (r, _("message %g is the user's, not a reply to choose"), index);
          chosen->chosen_line = r->line;
        }
      return TRUE;
    }
  return reader_fail (r, _("unknown kind “%s”"), kind);
}

/* The length of @data up to and including its last newline: what is whole. */
static gsize
whole_lines_length (const char *data, gsize len)
{
  while (len > 0 && data[len - 1] != '\n')
    len--;
  return len;
}

static gboolean
id_is_valid (const char *id)
{
  gsize len = strlen (id);
  if (len == 0 || len > MAX_ID_LENGTH)
    return FALSE;
  for (const char *p = id; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_')
      return FALSE;
  return TRUE;
}

static gboolean
check_id (const char *id, GError **error)
{
  if (!id_is_valid (id))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not the name of a chat"), id);
      return FALSE;
    }
  return TRUE;
}

static TfChat *
read_chat (TfChatStore *self, const char *id, gboolean with_messages, GError **error)
{
  g_autofree char *chat_dir = g_build_filename (self->dir, id, NULL);
  g_autofree char *path = g_build_filename (chat_dir, LOG_NAME, NULL);
  g_autofree char *data = NULL;
  g_autoptr (GError) local = NULL;
  gsize len;
  GStatBuf st;

  if (!check_id (id, error))
    return NULL;
  if (g_stat (path, &st) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), _("%s: cannot read: %s"),
                   path, g_strerror (saved));
      return NULL;
    }
  if (!S_ISREG (st.st_mode) || st.st_size > TF_CHAT_STORE_MAX_LOG_BYTES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("%s: not a chat log (a regular file of at most %d bytes)"), path,
                   TF_CHAT_STORE_MAX_LOG_BYTES);
      return NULL;
    }
  if (!g_file_get_contents (path, &data, &len, &local))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("%s: cannot read: %s"), path,
                   local->message);
      return NULL;
    }
  if (len > TF_CHAT_STORE_MAX_LOG_BYTES)   /* it grew since */
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("%s: not a chat log (a regular file of at most %d bytes)"), path,
                   TF_CHAT_STORE_MAX_LOG_BYTES);
      return NULL;
    }

  g_autoptr (TfChat) chat = g_new0 (TfChat, 1);
  chat->id = g_strdup (id);
  if (with_messages)
    chat->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) tf_chat_message_free);
  Reader r = { path, 0, error };
  const gsize whole = whole_lines_length (data, len);
  for (gsize start = 0; start < whole;)
    {
      const char *nl = memchr (data + start, '\n', whole - start);
      r.line++;
      if (!parse_line (&r, data + start, nl - (data + start), chat_dir, chat))
        return NULL;
      start = nl - data + 1;
    }
  if (whole < len)
    g_warning ("%s: line %u is cut short (the program stopped while writing it); it is left out",
               path, r.line + 1);
  if (r.line == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("%s: the chat log is empty"),
                   path);
      return NULL;
    }
  return g_steal_pointer (&chat);
}

/* ---- Writing ----------------------------------------------------------------- */

static gboolean
fail_io (GError **error, const char *path, const char *doing)
{
  int saved = errno;
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s: %s", path, doing,
               g_strerror (saved));
  return FALSE;
}

static gboolean
sync_dir (const char *dir, GError **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync (fd) != 0)
    {
      fail_io (error, dir, _("cannot write"));
      if (fd >= 0)
        close (fd);
      return FALSE;
    }
  close (fd);
  return TRUE;
}

/* Appends @line and a newline to the log @path, whole and synced. A line cut
 * short at the end of the file (a crash) is cut off first; if the write
 * fails, the file is put back to its length before. */
static gboolean
append_line (const char *path, const char *line, gboolean create, GError **error)
{
  g_autofree char *text = g_strconcat (line, "\n", NULL);
  const gsize len = strlen (text);
  int fd = open (path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0666);
  if (fd < 0)
    return fail_io (error, path, _("cannot write"));
  /* another program appending at the same time waits its turn */
  if (flock (fd, LOCK_EX) != 0)
    goto fail;

  struct stat st;
  off_t end;
  if (fstat (fd, &st) != 0)
    goto fail;
  end = st.st_size;
  /* back to the last newline */
  while (end > 0)
    {
      char c;
      if (pread (fd, &c, 1, end - 1) != 1)
        goto fail;
      if (c == '\n')
        break;
      end--;
    }
  if (end != st.st_size && ftruncate (fd, end) != 0)
    goto fail;

  for (gsize done = 0; done < len;)
    {
      ssize_t n = pwrite (fd, text + done, len - done, end + done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            errno = ENOSPC;
          goto fail_restore;
        }
      done += n;
    }
  if (fsync (fd) != 0)
    goto fail_restore;
  close (fd);
  return TRUE;

fail_restore:
  {
    int saved = errno;
    if (ftruncate (fd, end) == 0)
      fsync (fd);
    errno = saved;
  }
fail:
  fail_io (error, path, _("cannot write"));
  close (fd);
  return FALSE;
}

static char *
message_line (const TfChatMessage *m, const char *image_name)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "kind");
  json_builder_add_string_value (b, "message");
  json_builder_set_member_name (b, "role");
  json_builder_add_string_value (b, m->from_user ? "user" : "model");
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, m->text != NULL ? m->text : "");
  json_builder_set_member_name (b, "time");
  json_builder_add_int_value (b, m->time);
  if (m->replaces && !m->from_user)
    {
      json_builder_set_member_name (b, "replaces");
      json_builder_add_boolean_value (b, TRUE);
    }
  if (image_name != NULL)
    {
      json_builder_set_member_name (b, "image");
      json_builder_add_string_value (b, image_name);
      json_builder_set_member_name (b, "image_size");
      json_builder_add_int_value (b, m->image_size);
      json_builder_set_member_name (b, "image_channels");
      json_builder_add_int_value (b, m->image_channels);
    }
  if (!m->from_user)
    {
      json_builder_set_member_name (b, "tokens");
      json_builder_add_int_value (b, m->n_tokens);
      json_builder_set_member_name (b, "tokens_per_second");
      json_builder_add_double_value (b, m->tokens_per_second);
      json_builder_set_member_name (b, "first_token_seconds");
      json_builder_add_double_value (b, m->first_token_seconds);
      if (m->tokens != NULL)
        {
          json_builder_set_member_name (b, "sampled");
          json_builder_begin_array (b);
          for (guint i = 0; i < m->tokens->len; i++)
            {
              const TfToken *token = g_ptr_array_index (m->tokens, i);
              json_builder_begin_object (b);
              json_builder_set_member_name (b, "t");
              json_builder_add_string_value (b, token->text);
              json_builder_set_member_name (b, "p");
              json_builder_add_double_value (b, token->probability);
              json_builder_set_member_name (b, "alt");
              json_builder_begin_array (b);
              for (int a = 0; a < token->n_alternatives; a++)
                {
                  json_builder_begin_array (b);
                  json_builder_add_string_value (b, token->alternative_texts[a]);
                  json_builder_add_double_value (b, token->alternative_probabilities[a]);
                  json_builder_end_array (b);
                }
              json_builder_end_array (b);
              json_builder_end_object (b);
            }
          json_builder_end_array (b);
        }
    }
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

/* A title (@is_title) or a message's text: UTF-8 of bounded size. */
static gboolean
check_text (gboolean is_title, const char *text, GError **error)
{
  const gsize max = is_title ? TF_CHAT_STORE_MAX_TITLE_BYTES : TF_CHAT_STORE_MAX_TEXT_BYTES;
  if (text != NULL && (strlen (text) > max || !g_utf8_validate (text, -1, NULL)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   is_title ? _("The title is not UTF-8 text of at most %zu bytes")
                            : _("The message is not UTF-8 text of at most %zu bytes"),
                   max);
      return FALSE;
    }
  return TRUE;
}

/* The first line of a log (@first), or a rename. */
static char *
title_line (gboolean first, const char *title, gint64 time)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "kind");
  json_builder_add_string_value (b, first ? "chat" : "title");
  if (first)
    {
      json_builder_set_member_name (b, "version");
      json_builder_add_int_value (b, LOG_VERSION);
    }
  json_builder_set_member_name (b, "title");
  json_builder_add_string_value (b, title);
  json_builder_set_member_name (b, first ? "created" : "time");
  json_builder_add_int_value (b, time);
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

/* The log of the chat @id, or NULL when there is no such chat. */
static char *
existing_log (TfChatStore *self, const char *id, GError **error)
{
  char *path = g_build_filename (self->dir, id, LOG_NAME, NULL);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, _("%s: no such chat"), path);
      g_free (path);
      return NULL;
    }
  return path;
}

char *
tf_chat_store_create (TfChatStore *self, const char *title, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), NULL);
  g_return_val_if_fail (title != NULL, NULL);

  if (!check_text (TRUE, title, error))
    return NULL;
  if (g_mkdir_with_parents (self->dir, 0700) != 0)
    {
      fail_io (error, self->dir, _("cannot make the folder"));
      return NULL;
    }
  const gint64 now = g_get_real_time ();
  g_autoptr (GDateTime) date = g_date_time_new_from_unix_utc (now / G_USEC_PER_SEC);
  g_autofree char *stamp = g_date_time_format (date, "%Y%m%d-%H%M%S");
  g_autofree char *id = NULL, *chat_dir = NULL;
  for (int attempt = 0;; attempt++)
    {
      g_free (id);
      g_free (chat_dir);
      id = g_strdup_printf ("%s-%08x", stamp, g_random_int ());
      chat_dir = g_build_filename (self->dir, id, NULL);
      if (g_mkdir (chat_dir, 0700) == 0)
        break;
      if (errno != EEXIST || attempt == 100)
        {
          fail_io (error, chat_dir, _("cannot make the folder"));
          return NULL;
        }
    }

  g_autofree char *line = title_line (TRUE, title, now);
  g_autofree char *path = g_build_filename (chat_dir, LOG_NAME, NULL);
  if (!append_line (path, line, TRUE, error) || !sync_dir (chat_dir, error) ||
      !sync_dir (self->dir, error))
    return NULL;
  g_signal_emit (self, signals[SIGNAL_CHANGED], 0, id);
  return g_steal_pointer (&id);
}

gboolean
tf_chat_store_append (TfChatStore *self, const char *id, const TfChatMessage *message,
                      const float *pixels, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), FALSE);
  g_return_val_if_fail (id != NULL && message != NULL, FALSE);

  if (!check_id (id, error) ||
      !check_text (FALSE, message->text, error))
    return FALSE;
  if (message->tokens != NULL)
    {
      /* what the reader would refuse is not written */
      g_autoptr (GString) spelled = g_string_new (NULL);
      gboolean too_long = FALSE;
      for (guint i = 0; i < message->tokens->len; i++)
        {
          const TfToken *token = g_ptr_array_index (message->tokens, i);
          g_string_append (spelled, token->text);
          too_long |= strlen (token->text) > TF_CHAT_STORE_MAX_TOKEN_BYTES;
          for (int a = 0; a < token->n_alternatives; a++)
            too_long |= strlen (token->alternative_texts[a]) > TF_CHAT_STORE_MAX_TOKEN_BYTES;
        }
      if (message->from_user || message->tokens->len > TF_CHAT_STORE_MAX_TOKENS || too_long ||
          strcmp (spelled->str, message->text != NULL ? message->text : "") != 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("The tokens do not spell the reply"));
          return FALSE;
        }
    }
  g_autofree char *chat_dir = g_build_filename (self->dir, id, NULL);
  g_autofree char *path = existing_log (self, id, error);
  if (path == NULL)
    return FALSE;

  g_autofree char *image_name = NULL;
  if (pixels != NULL)
    {
      if (message->image_size < 1 || message->image_size > TF_CHAT_STORE_MAX_IMAGE_SIZE ||
          (message->image_channels != 1 && message->image_channels != 3))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       _("An image of %d × %d pixels with %d channels cannot be saved"),
                       message->image_size, message->image_size, message->image_channels);
          return FALSE;
        }
      /* the image first: a line never names a file that is not there */
      g_autofree char *image_path = NULL;
      for (gint64 n = g_get_real_time ();; n++)
        {
          g_free (image_name);
          g_free (image_path);
          image_name = g_strdup_printf ("image-%016" G_GINT64_MODIFIER "x.png", n);
          image_path = g_build_filename (chat_dir, image_name, NULL);
          if (!g_file_test (image_path, G_FILE_TEST_EXISTS))
            break;
        }
      if (!tf_write_generated_png (image_path, pixels, message->image_size,
                                   message->image_channels, 1, NULL, error))
        return FALSE;
    }
  g_autofree char *line = message_line (message, image_name);
  if (!append_line (path, line, FALSE, error))
    return FALSE;
  g_signal_emit (self, signals[SIGNAL_CHANGED], 0, id);
  return TRUE;
}

gboolean
tf_chat_store_choose (TfChatStore *self, const char *id, guint index, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), FALSE);
  g_return_val_if_fail (id != NULL, FALSE);

  if (!check_id (id, error))
    return FALSE;
  g_autofree char *path = existing_log (self, id, error);
  if (path == NULL)
    return FALSE;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "kind");
  json_builder_add_string_value (b, "choice");
  json_builder_set_member_name (b, "message");
  json_builder_add_int_value (b, index);
  json_builder_set_member_name (b, "time");
  json_builder_add_int_value (b, g_get_real_time ());
  json_builder_end_object (b);
  g_autofree char *line = tf_json_builder_to_string (b);
  if (!append_line (path, line, FALSE, error))
    return FALSE;
  g_signal_emit (self, signals[SIGNAL_CHANGED], 0, id);
  return TRUE;
}

gboolean
tf_chat_store_rename (TfChatStore *self, const char *id, const char *title, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), FALSE);
  g_return_val_if_fail (id != NULL && title != NULL, FALSE);

  if (!check_id (id, error) ||
      !check_text (TRUE, title, error))
    return FALSE;
  g_autofree char *path = existing_log (self, id, error);
  if (path == NULL)
    return FALSE;
  g_autofree char *line = title_line (FALSE, title, g_get_real_time ());
  if (!append_line (path, line, FALSE, error))
    return FALSE;
  g_signal_emit (self, signals[SIGNAL_CHANGED], 0, id);
  return TRUE;
}

gboolean
tf_chat_store_delete (TfChatStore *self, const char *id, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), FALSE);
  g_return_val_if_fail (id != NULL, FALSE);

  if (!check_id (id, error))
    return FALSE;
  /* Out of sight in one rename (listing skips hidden names), then removed. */
  g_autofree char *chat_dir = g_build_filename (self->dir, id, NULL);
  g_autofree char *hidden_name = g_strdup_printf (".deleted-%s", id);
  g_autofree char *hidden = g_build_filename (self->dir, hidden_name, NULL);
  if (g_rename (chat_dir, hidden) != 0)
    return fail_io (error, chat_dir, _("cannot delete"));
  sync_dir (self->dir, NULL);
  /* a chat folder holds only files the store wrote */
  g_autoptr (GDir) dir = g_dir_open (hidden, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *file = g_build_filename (hidden, name, NULL);
      if (g_unlink (file) != 0)
        g_warning ("%s: cannot delete: %s", file, g_strerror (errno));
    }
  if (g_rmdir (hidden) != 0)
    g_warning ("%s: cannot delete: %s", hidden, g_strerror (errno));
  g_signal_emit (self, signals[SIGNAL_CHANGED], 0, id);
  return TRUE;
}

TfChat *
tf_chat_store_load (TfChatStore *self, const char *id, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), NULL);
  g_return_val_if_fail (id != NULL, NULL);

  return read_chat (self, id, TRUE, error);
}

GArray *
tf_chat_entries (const TfChat *chat)
{
  g_return_val_if_fail (chat != NULL && chat->messages != NULL, NULL);

  GArray *entries = g_array_new (FALSE, TRUE, sizeof (TfChatEntry));
  for (guint i = 0; i < chat->messages->len; i++)
    {
      const TfChatMessage *m = g_ptr_array_index (chat->messages, i);
      TfChatEntry *last = entries->len > 0 ? &g_array_index (entries, TfChatEntry, entries->len - 1)
                                           : NULL;
      if (!m->from_user && last != NULL &&
          !((TfChatMessage *) g_ptr_array_index (chat->messages, last->first))->from_user)
        {
          const TfChatMessage *current = g_ptr_array_index (chat->messages,
                                                            last->first + last->current);
          if (m->chosen_line > current->chosen_line)
            last->current = last->n_versions;
          last->n_versions++;
          continue;
        }
      TfChatEntry entry = { i, 1, 0 };
      g_array_append_val (entries, entry);
    }
  return entries;
}

static int
compare_newest_first (gconstpointer a, gconstpointer b)
{
  const TfChat *x = *(TfChat *const *) a, *y = *(TfChat *const *) b;
  if (x->updated != y->updated)
    return x->updated > y->updated ? -1 : 1;
  return -strcmp (x->id, y->id);
}

GPtrArray *
tf_chat_store_list (TfChatStore *self, GError **error)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), NULL);

  GPtrArray *chats = g_ptr_array_new_with_free_func ((GDestroyNotify) tf_chat_free);
  g_autoptr (GError) local = NULL;
  g_autoptr (GDir) dir = g_dir_open (self->dir, 0, &local);
  if (dir == NULL)
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return chats;   /* no chat yet */
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", local->message);
      g_ptr_array_unref (chats);
      return NULL;
    }
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      if (!id_is_valid (name))
        continue;
      g_autoptr (GError) chat_error = NULL;
      TfChat *chat = read_chat (self, name, FALSE, &chat_error);
      if (chat != NULL)
        g_ptr_array_add (chats, chat);
      else
        g_warning ("%s", chat_error->message);
    }
  g_ptr_array_sort (chats, compare_newest_first);
  return chats;
}

/* ---- The object ----------------------------------------------------------------- */

TfChatStore *
tf_chat_store_new (const char *dir)
{
  TfChatStore *self = g_object_new (TF_TYPE_CHAT_STORE, NULL);
  self->dir = dir != NULL ? g_strdup (dir)
                          : g_build_filename (g_get_user_data_dir (), "transfusion", "chats",
                                              NULL);
  return self;
}

const char *
tf_chat_store_get_dir (TfChatStore *self)
{
  g_return_val_if_fail (TF_IS_CHAT_STORE (self), NULL);
  return self->dir;
}

static void
tf_chat_store_finalize (GObject *object)
{
  TfChatStore *self = TF_CHAT_STORE (object);
  g_free (self->dir);
  G_OBJECT_CLASS (tf_chat_store_parent_class)->finalize (object);
}

static void
tf_chat_store_class_init (TfChatStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = tf_chat_store_finalize;
  signals[SIGNAL_CHANGED] =
    g_signal_new ("changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
tf_chat_store_init (TfChatStore *self)
{
}
