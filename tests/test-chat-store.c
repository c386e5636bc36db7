/* test-chat-store.c: saved conversations. What is appended comes back
 * (texts, images, numbers), also through a new store on the same folder (a
 * restart); a line cut short by a crash is dropped with a warning and the
 * next append writes over it; rename and delete; hostile files give errors
 * that name the file and the problem, and never hide the other chats; kill -9
 * while writing and a full disk lose no finished message. A reply written
 * again (Regenerate) is a version of the one before it: the log marks it,
 * tf_chat_entries() groups the versions showing the latest or the one chosen
 * last, and logs written before the mark (two replies in a row) read the
 * same way. */
#include "config.h"

#include "tf-chat-store.h"
#include "tf-test-util.h"

#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define SIZE 8

typedef struct {
  char        *dir;
  TfChatStore *store;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  f->dir = tf_test_make_temp_dir ("tf-chat-store-XXXXXX");
  g_autofree char *chats = g_build_filename (f->dir, "chats", NULL);
  f->store = tf_chat_store_new (chats);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_object_unref (f->store);
  tf_test_remove_tree (f->dir);
  g_free (f->dir);
}

static float *
test_pixels (int channels)
{
  float *px = g_new (float, SIZE * SIZE * channels);
  for (int k = 0; k < SIZE * SIZE * channels; k++)
    px[k] = (float) ((k * 37 % 255) / 127.5 - 1.0);
  return px;
}

/* @replaces: a reply written again (Regenerate). */
static void
append_full (TfChatStore *store, const char *id, gboolean from_user, const char *text,
             const float *pixels, gboolean replaces)
{
  g_autoptr (GError) error = NULL;
  TfChatMessage m = {
    .from_user = from_user, .text = (char *) text, .time = g_get_real_time (),
    .image_size = SIZE, .image_channels = 3,
    .n_tokens = from_user ? 0 : 12, .tokens_per_second = from_user ? 0 : 41.5,
    .first_token_seconds = from_user ? 0 : 0.125, .replaces = replaces,
  };
  g_assert_true (tf_chat_store_append (store, id, &m, pixels, &error));
  g_assert_no_error (error);
}

static void
append (TfChatStore *store, const char *id, gboolean from_user, const char *text,
        const float *pixels)
{
  append_full (store, id, from_user, text, pixels, FALSE);
}

static char *
create (TfChatStore *store, const char *title)
{
  g_autoptr (GError) error = NULL;
  char *id = tf_chat_store_create (store, title, &error);
  g_assert_no_error (error);
  g_assert_nonnull (id);
  return id;
}

static TfChat *
load (TfChatStore *store, const char *id)
{
  g_autoptr (GError) error = NULL;
  TfChat *chat = tf_chat_store_load (store, id, &error);
  g_assert_no_error (error);
  g_assert_nonnull (chat);
  return chat;
}

static TfChatMessage *
message (TfChat *chat, guint i)
{
  return g_ptr_array_index (chat->messages, i);
}

static char *
log_path (Fixture *f, const char *id)
{
  return g_build_filename (tf_chat_store_get_dir (f->store), id, "chat.jsonl", NULL);
}

static void
on_changed (TfChatStore *store, const char *id, guint *count)
{
  (*count)++;
}

static void
test_round_trip (Fixture *f, gconstpointer data)
{
  guint changed = 0;
  g_signal_connect (f->store, "changed", G_CALLBACK (on_changed), &changed);
  g_autofree char *id = create (f->store, "Dogs and “quotes”\nand lines");
  g_autofree float *pixels = test_pixels (3);
  append (f->store, id, TRUE, "draw a dog \xf0\x9f\x90\x95", NULL);
  append (f->store, id, FALSE, " Here is a dog:", pixels);
  append (f->store, id, TRUE, "", NULL);
  g_assert_cmpuint (changed, ==, 4);

  g_autoptr (TfChat) chat = load (f->store, id);
  g_assert_cmpstr (chat->id, ==, id);
  g_assert_cmpstr (chat->title, ==, "Dogs and “quotes”\nand lines");
  g_assert_cmpuint (chat->n_messages, ==, 3);
  g_assert_cmpuint (chat->messages->len, ==, 3);
  g_assert_true (message (chat, 0)->from_user);
  g_assert_cmpstr (message (chat, 0)->text, ==, "draw a dog \xf0\x9f\x90\x95");
  g_assert_null (message (chat, 0)->image_path);
  TfChatMessage *reply = message (chat, 1);
  g_assert_false (reply->from_user);
  g_assert_cmpstr (reply->text, ==, " Here is a dog:");   /* as written, not stripped */
  g_assert_cmpint (reply->n_tokens, ==, 12);
  g_assert_cmpfloat (reply->tokens_per_second, ==, 41.5);
  g_assert_cmpfloat (reply->first_token_seconds, ==, 0.125);
  g_assert_cmpint (reply->time, >=, chat->created);
  g_assert_cmpint (chat->updated, ==, message (chat, 2)->time);
  g_assert_nonnull (reply->image_path);
  g_assert_true (g_path_is_absolute (reply->image_path));
  g_assert_true (g_file_test (reply->image_path, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpint (reply->image_size, ==, SIZE);
  g_assert_cmpint (reply->image_channels, ==, 3);
  g_autoptr (GError) error = NULL;
  g_autofree float *back = tf_chat_message_load_image (reply, &error);
  g_assert_no_error (error);
  /* 8-bit PNG: within half a level */
  g_assert_true (tf_test_close_f32 ("image", back, pixels, SIZE * SIZE * 3, 1.0 / 255, 0, NULL));
  g_assert_cmpstr (message (chat, 2)->text, ==, "");

  /* A message that is not text is refused and nothing is written. */
  TfChatMessage bad = { .from_user = TRUE, .text = (char *) "\xff\xfe" };
  g_assert_false (tf_chat_store_append (f->store, id, &bad, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (tf_chat_store_append (f->store, "../escape", &bad, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (tf_chat_store_append (f->store, "nosuchchat", reply, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_autoptr (TfChat) again = load (f->store, id);
  g_assert_cmpuint (again->n_messages, ==, 3);
}

static void
test_restart_and_list (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) none = tf_chat_store_list (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (none->len, ==, 0);   /* no folder yet */

  g_autofree char *a = create (f->store, "first");
  append (f->store, a, TRUE, "one", NULL);
  g_usleep (2000);
  g_autofree char *b = create (f->store, "second");
  append (f->store, b, TRUE, "two", NULL);
  g_usleep (2000);
  append (f->store, a, FALSE, "three", NULL);   /* a is the newest again */

  /* Another store on the same folder: what a restarted program sees. */
  g_autoptr (TfChatStore) restarted = tf_chat_store_new (tf_chat_store_get_dir (f->store));
  g_autoptr (GPtrArray) chats = tf_chat_store_list (restarted, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chats->len, ==, 2);
  TfChat *newest = g_ptr_array_index (chats, 0), *older = g_ptr_array_index (chats, 1);
  g_assert_cmpstr (newest->id, ==, a);
  g_assert_cmpstr (newest->title, ==, "first");
  g_assert_cmpuint (newest->n_messages, ==, 2);
  g_assert_null (newest->messages);
  g_assert_cmpstr (older->id, ==, b);
  g_assert_cmpint (newest->updated, >, older->updated);
  g_autoptr (TfChat) chat = load (restarted, a);
  g_assert_cmpstr (message (chat, 1)->text, ==, "three");
}

static void
test_torn_last_line (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "torn");
  append (f->store, id, TRUE, "kept", NULL);
  append (f->store, id, FALSE, "also kept", NULL);
  /* a crash in the middle of writing the next line */
  g_autofree char *path = log_path (f, id);
  g_autofree char *contents = NULL;
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  g_autofree char *torn = g_strconcat (contents, "{\"kind\":\"message\",\"role\":\"us", NULL);
  g_assert_true (g_file_set_contents (path, torn, -1, NULL));

  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "*chat.jsonl: line 4 is cut short*");
  g_autoptr (TfChat) chat = load (f->store, id);
  g_test_assert_expected_messages ();
  g_assert_cmpuint (chat->n_messages, ==, 2);
  g_assert_cmpstr (message (chat, 1)->text, ==, "also kept");

  /* the next message replaces the torn line */
  append (f->store, id, TRUE, "after the crash", NULL);
  g_autoptr (TfChat) after = load (f->store, id);
  g_assert_cmpuint (after->n_messages, ==, 3);
  g_assert_cmpstr (message (after, 2)->text, ==, "after the crash");
}

static void
test_rename_delete (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *id = create (f->store, "old name");
  g_autofree float *pixels = test_pixels (3);
  append (f->store, id, FALSE, "with a picture", pixels);
  g_assert_true (tf_chat_store_rename (f->store, id, "new name", &error));
  g_assert_no_error (error);
  g_autoptr (TfChatStore) restarted = tf_chat_store_new (tf_chat_store_get_dir (f->store));
  g_autoptr (TfChat) chat = load (restarted, id);
  g_assert_cmpstr (chat->title, ==, "new name");
  g_assert_cmpuint (chat->n_messages, ==, 1);

  g_assert_false (tf_chat_store_rename (f->store, "missing", "x", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_autofree char *other = create (f->store, "stays");
  g_assert_true (tf_chat_store_delete (f->store, id, &error));
  g_assert_no_error (error);
  g_autoptr (GPtrArray) chats = tf_chat_store_list (restarted, &error);
  g_assert_cmpuint (chats->len, ==, 1);
  g_assert_cmpstr (((TfChat *) g_ptr_array_index (chats, 0))->id, ==, other);
  /* nothing of it is left, not even its image */
  g_autofree char *listing = tf_test_list_dir (tf_chat_store_get_dir (f->store));
  g_assert_cmpstr (listing, ==, other);
  g_assert_null (tf_chat_store_load (f->store, id, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (tf_chat_store_delete (f->store, id, &error));
  g_assert_nonnull (error);
}

/* A log with @contents: load fails with an error that names the log and
 * contains @expected; listing leaves it out with that warning and still
 * shows a good chat beside it. */
static void
assert_hostile (Fixture *f, const char *contents, gssize len, const char *expected)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *good = create (f->store, "good");
  g_autofree char *bad = create (f->store, "bad");
  g_autofree char *path = log_path (f, bad);
  tf_test_write_file (NULL, path, contents, len);

  g_assert_null (tf_chat_store_load (f->store, bad, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, path));
  if (strstr (error->message, expected) == NULL)
    g_error ("“%s” does not say “%s”", error->message, expected);
  g_clear_error (&error);

  g_autofree char *pattern = g_strdup_printf ("*%s*%s*", path, expected);
  g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, pattern);
  g_autoptr (GPtrArray) chats = tf_chat_store_list (f->store, &error);
  g_test_assert_expected_messages ();
  g_assert_no_error (error);
  g_assert_cmpuint (chats->len, ==, 1);
  g_assert_cmpstr (((TfChat *) g_ptr_array_index (chats, 0))->id, ==, good);
  g_assert_true (tf_chat_store_delete (f->store, bad, &error));
  g_assert_true (tf_chat_store_delete (f->store, good, &error));
}

#define HEAD "{\"kind\":\"chat\",\"version\":1,\"title\":\"t\",\"created\":1}\n"

static void
test_hostile (Fixture *f, gconstpointer data)
{
  assert_hostile (f, "", 0, "empty");
  assert_hostile (f, "not json\n", -1, "line 1: not JSON");
  assert_hostile (f, "[1,2]\n", -1, "line 1: not a JSON object");
  /* json-glib alone would load the first of two objects on a line */
  assert_hostile (f, HEAD "{\"kind\":\"message\"}{\"kind\":\"message\"}\n", -1,
                  "line 2: not JSON: unexpected text after the JSON value, at byte 18");
  assert_hostile (f, HEAD "\"a\" \"b\"\n", -1, "line 2: not JSON: unexpected text");
  assert_hostile (f, "9{\"kind\":\"chat\"}\n", -1, "line 1: not JSON: unexpected text");
  assert_hostile (f, "{\"kind\":\"message\"}\n", -1, "line 1: the first line is not");
  assert_hostile (f, "{\"kind\":\"chat\",\"version\":2,\"title\":\"t\",\"created\":1}\n", -1,
                  "version 2");
  assert_hostile (f, "{\"kind\":\"chat\",\"version\":1,\"created\":1}\n", -1, "“title” is missing");
  assert_hostile (f, HEAD HEAD, -1, "line 2: a second “chat” line");
  assert_hostile (f, HEAD "{\"kind\":\"spam\"}\n", -1, "unknown kind");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"admin\",\"text\":\"\",\"time\":1}\n",
                  -1, "the role “admin”");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":5,\"time\":1}\n", -1,
                  "“text” is not a string");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\",\"time\":-5}\n",
                  -1, "“time” is -5, out of range");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\",\"time\":1.5}\n",
                  -1, "“time” is not a whole number");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\",\"time\":1,"
                  "\"image\":\"../../etc/passwd.png\",\"image_size\":8,\"image_channels\":3}\n",
                  -1, "is not the name of an image file");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\",\"time\":1,"
                  "\"image\":\"a.png\",\"image_size\":100000,\"image_channels\":3}\n",
                  -1, "“image_size” is 100000");
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\",\"time\":1,"
                  "\"image\":\"a.png\",\"image_size\":8,\"image_channels\":2}\n",
                  -1, "must be 1 or 3");
  /* invalid UTF-8 inside a string */
  assert_hostile (f, HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\xff\",\"time\":1}\n",
                  -1, "line 2: not JSON");
  /* a NUL byte in a line */
  static const char with_nul[] = HEAD "{\"kind\":\"title\",\"title\":\"a\0b\",\"time\":1}\n";
  assert_hostile (f, with_nul, sizeof with_nul - 1, "line 2");

  /* too long: a text, a line, the whole file */
  g_autofree char *long_text = g_strnfill (TF_CHAT_STORE_MAX_TEXT_BYTES + 1, 'a');
  g_autofree char *long_message = g_strdup_printf (
    HEAD "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"%s\",\"time\":1}\n", long_text);
  assert_hostile (f, long_message, -1, "“text” is longer than");
  g_autofree char *long_line = g_strdup_printf (HEAD "{\"kind\":\"spam\",\"x\":\"%s%s%s%s\"}\n",
                                                long_text, long_text, long_text, long_text);
  assert_hostile (f, long_line, -1, "line 2: the line is longer than");
  g_autoptr (GString) huge = g_string_new (HEAD);
  g_autofree char *msg = g_strdup_printf (
    "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"%s\",\"time\":1}\n", long_text + 1);
  while (huge->len <= TF_CHAT_STORE_MAX_LOG_BYTES)
    g_string_append (huge, msg);
  assert_hostile (f, huge->str, huge->len, "at most");

  /* too many messages */
  g_autoptr (GString) many = g_string_new (HEAD);
  for (int i = 0; i <= TF_CHAT_STORE_MAX_MESSAGES; i++)
    g_string_append (many, "{\"kind\":\"message\",\"role\":\"user\",\"text\":\"\",\"time\":1}\n");
  assert_hostile (f, many->str, many->len, "more than");

  /* An image file that is not a PNG: an error naming it when read. */
  g_autoptr (GError) error = NULL;
  g_autofree char *id = create (f->store, "picture");
  g_autofree float *pixels = test_pixels (1);
  TfChatMessage m = { .from_user = TRUE, .text = (char *) "look", .image_size = SIZE,
                      .image_channels = 1 };
  g_assert_true (tf_chat_store_append (f->store, id, &m, pixels, &error));
  g_autoptr (TfChat) chat = load (f->store, id);
  tf_test_write_file (NULL, message (chat, 0)->image_path, "not a png", -1);
  g_assert_null (tf_chat_message_load_image (message (chat, 0), &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, message (chat, 0)->image_path));
}

/* A valid log changed at random, many times over (what issue 8's fuzzing
 * will do at length): every load either succeeds with sane contents or
 * fails with an error that names the log; nothing crashes (AddressSanitizer
 * watches in the sanitizer build). */
static void
test_mutations (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "mutated “chat”");
  g_autofree float *pixels = test_pixels (3);
  append (f->store, id, TRUE, "draw a dog", NULL);
  append (f->store, id, FALSE, " here it is \xf0\x9f\x90\x95", pixels);
  g_assert_true (tf_chat_store_rename (f->store, id, "dogs", NULL));
  append (f->store, id, TRUE, "thanks", NULL);
  g_autofree char *path = log_path (f, id);
  g_autofree char *chat_dir = g_path_get_dirname (path);
  g_autofree char *original = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (path, &original, &len, NULL));

  g_autoptr (GRand) rand = g_rand_new_with_seed (8);
  guint loaded = 0, refused = 0;
  for (int round = 0; round < 1500; round++)
    {
      g_autoptr (GByteArray) bytes = g_byte_array_new ();
      g_byte_array_append (bytes, (const guint8 *) original, len);
      const int n_changes = g_rand_int_range (rand, 1, 5);
      for (int c = 0; c < n_changes && bytes->len > 1; c++)
        {
          const guint at = g_rand_int_range (rand, 0, bytes->len);
          const guint wanted = g_rand_int_range (rand, 1, 40);
          const guint span = MIN (bytes->len - at, wanted);
          switch (g_rand_int_range (rand, 0, 4))
            {
            case 0:   /* a byte changed */
              bytes->data[at] = (guint8) g_rand_int_range (rand, 0, 256);
              break;
            case 1:   /* bytes removed */
              g_byte_array_remove_range (bytes, at, span);
              break;
            case 2:   /* bytes repeated */
              {
                g_autofree guint8 *copy = g_memdup2 (bytes->data + at, span);
                g_byte_array_append (bytes, copy, span);
              }
              break;
            default:  /* a character JSON cares about, or NUL (the string's end) */
              bytes->data[at] = "{}[]\",:0-\\\n"[g_rand_int_range (rand, 0, 12)];
              break;
            }
        }
      /* a whole last line: a torn one is the warning tested above */
      if (bytes->len == 0 || bytes->data[bytes->len - 1] != '\n')
        g_byte_array_append (bytes, (const guint8 *) "\n", 1);
      /* written in place, without syncing: 1500 rounds stay quick */
      FILE *file = fopen (path, "wb");
      g_assert_nonnull (file);
      g_assert_cmpuint (fwrite (bytes->data, 1, bytes->len, file), ==, bytes->len);
      g_assert_cmpint (fclose (file), ==, 0);

      g_autoptr (GError) error = NULL;
      g_autoptr (TfChat) chat = tf_chat_store_load (f->store, id, &error);
      if (chat == NULL)
        {
          g_assert_nonnull (error);
          g_assert_true (g_str_has_prefix (error->message, path));
          refused++;
          continue;
        }
      g_assert_no_error (error);
      loaded++;
      g_assert_true (g_utf8_validate (chat->title, -1, NULL));
      g_assert_cmpuint (chat->n_messages, ==, chat->messages->len);
      for (guint i = 0; i < chat->messages->len; i++)
        {
          TfChatMessage *m = message (chat, i);
          g_assert_true (g_utf8_validate (m->text, -1, NULL));
          if (m->image_path != NULL)
            {
              g_autofree char *dir = g_path_get_dirname (m->image_path);
              g_assert_cmpstr (dir, ==, chat_dir);
              g_assert_true (m->image_size >= 1 && m->image_size <= TF_CHAT_STORE_MAX_IMAGE_SIZE);
              g_assert_true (m->image_channels == 1 || m->image_channels == 3);
            }
        }
    }
  g_test_message ("1500 changed logs: %u loaded, %u refused with an error", loaded, refused);
  g_assert_cmpuint (loaded, >, 0);
  g_assert_cmpuint (refused, >, 0);
}

/* ---- kill -9 and a full disk -------------------------------------------- */

/* The text of message @i of the chats written below: sizes vary, so that a
 * kill lands at many places in a line. */
static char *
kill_text (guint i)
{
  g_autofree char *filler = g_strnfill (i * 37 % 700, 'a' + i % 26);
  return g_strdup_printf ("message %u %s", i, filler);
}

/* Ignores the warning about a line cut short by a kill (and counts it). */
static guint torn_lines;

static gboolean
allow_torn_line (const char *domain, GLogLevelFlags level, const char *text, gpointer data)
{
  if ((level & G_LOG_LEVEL_WARNING) && strstr (text, "is cut short") != NULL)
    {
      torn_lines++;
      return FALSE;
    }
  return TRUE;
}

static void
set_log_handler (void)
{
  g_test_log_set_fatal_handler (allow_torn_line, NULL);
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
}

/* The child of /chat-store/kill-9, not a test of its own: appends messages
 * to the chat TF_CHAT_KILL_ID in TF_CHAT_KILL_DIR, as the chat window does
 * when a message completes (a picture with every fifth), printing the index
 * of each once the store has returned, until it is killed. */
static void
test_kill_child (Fixture *f, gconstpointer data)
{
  const char *dir = g_getenv ("TF_CHAT_KILL_DIR"), *id = g_getenv ("TF_CHAT_KILL_ID");
  if (dir == NULL || id == NULL)
    {
      g_test_skip ("the writer that /chat-store/kill-9 kills");
      return;
    }
  set_log_handler ();
  g_autoptr (TfChatStore) store = tf_chat_store_new (dir);
  g_autoptr (TfChat) chat = load (store, id);
  g_autofree float *pixels = test_pixels (3);
  for (guint i = chat->n_messages; i < TF_CHAT_STORE_MAX_MESSAGES; i++)
    {
      g_autofree char *text = kill_text (i);
      append (store, id, i % 2 == 0, text, i % 5 == 0 ? pixels : NULL);
      printf ("%u\n", i);
      fflush (stdout);
    }
}

/* kill -9 at random moments while a chat is being written, again and again
 * (TF_KILL_ROUNDS, 10): each time the history opens and holds every message
 * the writer had finished, each one whole, pictures included, and at most
 * one more than it held before and the writer reported (one finished but
 * not yet reported). */
static void
test_kill_9 (Fixture *f, gconstpointer data)
{
  const char *env = g_getenv ("TF_KILL_ROUNDS");
  const int rounds = env != NULL ? atoi (env) : 10;
  g_assert_cmpint (rounds, >, 0);
  set_log_handler ();
  torn_lines = 0;
  g_autofree char *id = NULL;
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  g_assert_nonnull (self);
  g_auto (GStrv) envp = g_get_environ ();
  envp = g_environ_setenv (envp, "TF_CHAT_KILL_DIR", tf_chat_store_get_dir (f->store), TRUE);
  const char *argv[] = { self, "-q", "-p", "/chat-store/kill-child", NULL };
  gint64 finished = -1, total = 0;
  guint held = 0;   /* messages the chat held after the round before */
  for (int r = 0; r < rounds; r++)
    {
      /* a new chat every ten kills, far from the limit on messages */
      if (r % 10 == 0)
        {
          total += held;
          finished = -1;
          held = 0;
          g_free (id);
          id = create (f->store, "killed");
          envp = g_environ_setenv (envp, "TF_CHAT_KILL_ID", id, TRUE);
        }
      GPid pid;
      int out;
      g_autoptr (GError) error = NULL;
      g_assert_true (g_spawn_async_with_pipes (NULL, (char **) argv, envp,
                                               G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid,
                                               NULL, &out, NULL, &error));
      g_assert_no_error (error);
      /* The kill comes once the writer has finished a number of messages
       * drawn from the test's seed (none in some rounds, one at least in a
       * chat's first), then after a pause that puts it anywhere in the
       * writes that follow: a moment in the writer's work rather than in
       * time, so what a round tests does not depend on how fast a busy
       * machine runs the writer. */
      const int wait_for = g_test_rand_int_range (r % 10 == 0 ? 1 : 0, 200);
      FILE *printed = fdopen (out, "r");
      g_assert_nonnull (printed);
      g_autofree char *line = NULL;
      size_t line_size = 0;
      for (int seen = 0; seen < wait_for && getline (&line, &line_size, printed) >= 0;)
        if (g_ascii_isdigit (line[0]))   /* the indices, among GTest's own lines */
          {
            finished = g_ascii_strtoll (line, NULL, 10);
            seen++;
          }
      g_usleep (g_test_rand_int_range (0, 5000));
      kill (pid, SIGKILL);
      int status;
      g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
      g_assert_true (WIFSIGNALED (status));
      g_assert_cmpint (WTERMSIG (status), ==, SIGKILL);
      while (getline (&line, &line_size, printed) >= 0)
        if (g_ascii_isdigit (line[0]))
          finished = g_ascii_strtoll (line, NULL, 10);
      fclose (printed);

      g_autoptr (TfChatStore) reader = tf_chat_store_new (tf_chat_store_get_dir (f->store));
      g_autoptr (TfChat) chat = load (reader, id);
      g_assert_cmpint (chat->n_messages, >=, MAX (finished + 1, held));
      g_assert_cmpint (chat->n_messages, <=, MAX (finished + 1, held) + 1);
      held = chat->n_messages;
      for (guint i = 0; i < chat->n_messages; i++)
        {
          g_autofree char *text = kill_text (i);
          g_assert_cmpstr (message (chat, i)->text, ==, text);
          g_assert_cmpint (message (chat, i)->from_user, ==, i % 2 == 0);
          g_assert_cmpint (message (chat, i)->image_path != NULL, ==, i % 5 == 0);
          if (i % 5 == 0)
            {
              g_autofree float *px = tf_chat_message_load_image (message (chat, i), &error);
              g_assert_no_error (error);
            }
        }
    }
  total += held;
  g_test_message ("%d kills, %" G_GINT64_FORMAT " messages saved, %u torn last lines dropped",
                  rounds, total, torn_lines);
  g_assert_cmpint (total, >, 0);
}

/* A full disk (a file size limit) while a message is saved: an error naming
 * the log, the history as it was, and no stray file (with a picture, its PNG
 * fails first). */
static void
test_full_disk (Fixture *f, gconstpointer data)
{
  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      return;
    }
  g_autofree char *id = create (f->store, "full");
  g_autofree float *pixels = test_pixels (3);
  append (f->store, id, TRUE, "first", pixels);
  append (f->store, id, FALSE, "second", NULL);
  g_autofree char *path = log_path (f, id);
  g_autofree char *chat_dir = g_path_get_dirname (path);
  g_autofree char *before = NULL, *listing_before = tf_test_list_dir (chat_dir);
  gsize before_len;
  g_assert_true (g_file_get_contents (path, &before, &before_len, NULL));

  signal (SIGXFSZ, SIG_IGN);   /* write() fails with EFBIG instead */
  struct rlimit limit = { .rlim_cur = before_len + 64, .rlim_max = RLIM_INFINITY };
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  g_autofree char *long_text = g_strnfill (1000, 'x');
  TfChatMessage m = { .from_user = TRUE, .text = long_text, .time = g_get_real_time (),
                      .image_size = SIZE, .image_channels = 3 };
  for (int with_picture = 0; with_picture < 2; with_picture++)
    {
      g_autoptr (GError) error = NULL;
      limit.rlim_cur = with_picture ? 32 : before_len + 64;
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
      g_assert_false (tf_chat_store_append (f->store, id, &m, with_picture ? pixels : NULL,
                                            &error));
      g_assert_nonnull (error);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, "File too large"));
      if (!with_picture)
        g_assert_true (g_str_has_prefix (error->message, path));
      g_autofree char *after = NULL, *listing_after = tf_test_list_dir (chat_dir);
      gsize after_len;
      g_assert_true (g_file_get_contents (path, &after, &after_len, NULL));
      g_assert_cmpmem (after, after_len, before, before_len);
      g_assert_cmpstr (listing_after, ==, listing_before);
    }
  limit.rlim_cur = RLIM_INFINITY;
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  g_autoptr (TfChat) chat = load (f->store, id);
  g_assert_cmpuint (chat->n_messages, ==, 2);
  g_assert_cmpstr (message (chat, 1)->text, ==, "second");
}

/* The entries as text: "Q | R1 [R2] | Q2 | …", the current version in
 * brackets when a reply has several. */
static char *
describe (TfChat *chat)
{
  g_autoptr (GArray) entries = tf_chat_entries (chat);
  GString *out = g_string_new (NULL);

  for (guint e = 0; e < entries->len; e++)
    {
      const TfChatEntry *entry = &g_array_index (entries, TfChatEntry, e);

      if (e > 0)
        g_string_append (out, " | ");
      for (guint v = 0; v < entry->n_versions; v++)
        {
          const TfChatMessage *m = g_ptr_array_index (chat->messages, entry->first + v);
          gboolean mark = entry->n_versions > 1 && v == entry->current;

          g_string_append_printf (out, "%s%s%s%s", v > 0 ? " " : "", mark ? "[" : "", m->text,
                                  mark ? "]" : "");
        }
    }
  return g_string_free (out, FALSE);
}

static void
test_versions_regenerate_replaces (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "versions");
  append (f->store, id, TRUE, "Q", NULL);
  append_full (f->store, id, FALSE, "R1", NULL, FALSE);
  append_full (f->store, id, FALSE, "R2", NULL, TRUE);
  append (f->store, id, TRUE, "Q2", NULL);
  append_full (f->store, id, FALSE, "S", NULL, FALSE);

  g_autoptr (TfChat) chat = load (f->store, id);
  g_autofree char *shown = describe (chat);
  g_assert_cmpstr (shown, ==, "Q | R1 [R2] | Q2 | S");
  g_assert_false (message (chat, 1)->replaces);
  g_assert_true (message (chat, 2)->replaces);

  /* The mark is on the line, for other readers of the log. */
  g_autofree char *log = log_path (f, id);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (log, &text, NULL, NULL));
  const char *mark = strstr (text, "\"replaces\":true");
  g_assert_nonnull (mark);
  g_assert_true (mark > strstr (text, "\"R2\""));
  g_assert_null (strstr (mark + 1, "\"replaces\""));
}

static void
test_versions_old_log_latest_wins (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "versions");
  /* As the program before the mark wrote it: Regenerate appended a second
   * reply, then a question went unanswered (the restore failed). */
  append (f->store, id, TRUE, "Q", NULL);
  append_full (f->store, id, FALSE, "R1", NULL, FALSE);
  append_full (f->store, id, FALSE, "R2", NULL, FALSE);
  append_full (f->store, id, FALSE, "R3", NULL, FALSE);
  append (f->store, id, TRUE, "Q2", NULL);
  append (f->store, id, TRUE, "Q3", NULL);

  g_autoptr (TfChat) chat = load (f->store, id);
  g_autofree char *shown = describe (chat);
  g_assert_cmpstr (shown, ==, "Q | R1 R2 [R3] | Q2 | Q3");
}

static void
test_versions_choice (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "versions");
  g_autoptr (GError) error = NULL;

  append (f->store, id, TRUE, "Q", NULL);
  append_full (f->store, id, FALSE, "R1", NULL, FALSE);
  append_full (f->store, id, FALSE, "R2", NULL, TRUE);
  g_assert_true (tf_chat_store_choose (f->store, id, 1, &error));
  g_assert_no_error (error);
  append (f->store, id, TRUE, "Q2", NULL);
  append_full (f->store, id, FALSE, "S1", NULL, FALSE);
  append_full (f->store, id, FALSE, "S2", NULL, TRUE);
  append_full (f->store, id, FALSE, "S3", NULL, TRUE);
  g_assert_true (tf_chat_store_choose (f->store, id, 5, &error));
  g_assert_no_error (error);

  /* Through a new store on the same folder, as after a restart. */
  g_autoptr (TfChatStore) again = tf_chat_store_new (tf_chat_store_get_dir (f->store));
  g_autoptr (TfChat) chat = load (again, id);
  g_autofree char *shown = describe (chat);
  g_assert_cmpstr (shown, ==, "Q | [R1] R2 | Q2 | S1 [S2] S3");
  g_assert_cmpuint (chat->n_messages, ==, 7);

  /* Regenerating after a choice: the new version is current again. */
  append_full (f->store, id, FALSE, "S4", NULL, TRUE);
  g_autoptr (TfChat) after = load (again, id);
  g_autofree char *shown_after = describe (after);
  g_assert_cmpstr (shown_after, ==, "Q | [R1] R2 | Q2 | S1 S2 S3 [S4]");

  /* A listing reads choices too (without the messages). */
  g_autoptr (GPtrArray) list = tf_chat_store_list (again, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpuint (((TfChat *) g_ptr_array_index (list, 0))->n_messages, ==, 8);
}

static void
test_versions_bad_choice (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "versions");
  g_autoptr (GError) error = NULL;

  append (f->store, id, TRUE, "Q", NULL);
  append_full (f->store, id, FALSE, "R1", NULL, FALSE);
  /* a user's message is no reply to choose */
  g_assert_true (tf_chat_store_choose (f->store, id, 0, &error));
  g_assert_no_error (error);
  g_assert_null (tf_chat_store_load (f->store, id, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_nonnull (strstr (error->message, "chat.jsonl: line 4: "));
  g_assert_nonnull (strstr (error->message, "message 0 is the user's"));
  g_clear_error (&error);

  /* nor is a message that is not there */
  g_autofree char *other = create (f->store, "other");
  append (f->store, other, TRUE, "Q", NULL);
  g_assert_true (tf_chat_store_choose (f->store, other, 1, &error));
  g_assert_null (tf_chat_store_load (f->store, other, &error));
  g_assert_nonnull (strstr (error->message, "line 3: "));
  g_assert_nonnull (strstr (error->message, "not the index of a message before"));
}

/* A reply's tokens (for their colours when the chat is reopened) come back
 * as written; tokens that do not spell the text are neither written nor
 * read. */
static void
test_tokens (Fixture *f, gconstpointer data)
{
  g_autofree char *id = create (f->store, "tokens");
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) tokens = g_ptr_array_new_with_free_func ((GDestroyNotify) tf_token_free);
  const char *const texts[] = { "A", " dog", " \xc3\xa9t\xc3\xa9" };

  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      TfToken *token = g_new0 (TfToken, 1);

      token->text = g_strdup (texts[i]);
      token->probability = 0.25 * (i + 1);
      token->n_alternatives = 2;
      token->alternative_texts[0] = g_strdup (texts[i]);
      token->alternative_probabilities[0] = token->probability;
      token->alternative_texts[1] = g_strdup ("\"x\"");
      token->alternative_probabilities[1] = 0.0001;
      g_ptr_array_add (tokens, token);
    }
  append (f->store, id, TRUE, "what is a dog?", NULL);
  TfChatMessage m = { .from_user = FALSE, .text = (char *) "A dog \xc3\xa9t\xc3\xa9",
                      .time = g_get_real_time (), .tokens = tokens };
  g_assert_true (tf_chat_store_append (f->store, id, &m, NULL, &error));
  g_assert_no_error (error);

  g_autoptr (TfChat) chat = load (f->store, id);
  const TfChatMessage *back = message (chat, 1);
  g_assert_nonnull (back->tokens);
  g_assert_cmpuint (back->tokens->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      const TfToken *token = g_ptr_array_index (back->tokens, i);

      g_assert_cmpstr (token->text, ==, texts[i]);
      g_assert_cmpfloat (token->probability, ==, 0.25 * (i + 1));
      g_assert_cmpint (token->n_alternatives, ==, 2);
      g_assert_cmpstr (token->alternative_texts[1], ==, "\"x\"");
      g_assert_cmpfloat (token->alternative_probabilities[1], ==, 0.0001);
    }
  g_autoptr (TfChatMessage) copy = tf_chat_message_copy (back);
  g_assert_cmpuint (copy->tokens->len, ==, 3);
  g_assert_null (message (chat, 0)->tokens);

  /* tokens that spell something else are refused, on both sides */
  m.text = (char *) "A cat";
  g_assert_false (tf_chat_store_append (f->store, id, &m, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_autofree char *path = log_path (f, id);
  g_autofree char *log = NULL;
  g_assert_true (g_file_get_contents (path, &log, NULL, NULL));
  g_autoptr (GString) edited = g_string_new (log);
  g_assert_cmpuint (g_string_replace (edited, "\"t\":\" dog\"", "\"t\":\" cat\"", 1), ==, 1);
  g_assert_true (g_file_set_contents (path, edited->str, -1, NULL));
  g_assert_null (tf_chat_store_load (f->store, id, &error));
  g_assert_nonnull (strstr (error->message, "line 3: the tokens do not spell"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/chat-store/round-trip", test_round_trip);
  ADD ("/chat-store/restart-and-list", test_restart_and_list);
  ADD ("/chat-store/torn-last-line", test_torn_last_line);
  ADD ("/chat-store/rename-delete", test_rename_delete);
  ADD ("/chat-store/hostile", test_hostile);
  ADD ("/chat-store/mutations", test_mutations);
  ADD ("/chat-store/kill-9", test_kill_9);
  ADD ("/chat-store/kill-child", test_kill_child);
  ADD ("/chat-store/full-disk", test_full_disk);
  ADD ("/chat-store/versions/regenerate-replaces", test_versions_regenerate_replaces);
  ADD ("/chat-store/versions/old-log-latest-wins", test_versions_old_log_latest_wins);
  ADD ("/chat-store/versions/choice", test_versions_choice);
  ADD ("/chat-store/versions/bad-choice", test_versions_bad_choice);
  ADD ("/chat-store/tokens", test_tokens);
#undef ADD
  return g_test_run ();
}
