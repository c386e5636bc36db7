/* fuzz-chat-store.c: the input as a conversation's log (DIR/ID/chat.jsonl)
 * in a new folder, read back as the application reads it: the listing, the
 * whole chat, and each message's image. The folder is removed after. */
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz-common.h"
#include "tf-chat-store.h"
#include "tf-test-util.h"

#define CHAT_ID "fuzz-chat"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  g_autofree char *dir = tf_test_make_temp_dir ("tf-fuzz-chat-XXXXXX");
  g_autofree char *chat_dir = g_build_filename (dir, CHAT_ID, NULL);
  if (g_mkdir (chat_dir, 0700) != 0)
    abort ();
  tf_test_write_file (chat_dir, "chat.jsonl", data, (gssize) size);

  g_autoptr (TfChatStore) store = tf_chat_store_new (dir);
  GError *error = NULL;
  g_autoptr (GPtrArray) chats = tf_chat_store_list (store, &error);
  tf_fuzz_check_result ("tf_chat_store_list", chats != NULL, &error);

  g_autoptr (TfChat) chat = tf_chat_store_load (store, CHAT_ID, &error);
  tf_fuzz_check_result ("tf_chat_store_load", chat != NULL, &error);
  if (chat != NULL)
    {
      if (chat->messages == NULL || chat->messages->len != chat->n_messages ||
          chat->title == NULL)
        {
          fprintf (stderr, "a loaded chat without a title or whose messages disagree\n");
          abort ();
        }
      for (guint i = 0; i < chat->messages->len; i++)
        {
          const TfChatMessage *message = g_ptr_array_index (chat->messages, i);
          if (message->text == NULL || !g_utf8_validate (message->text, -1, NULL))
            {
              fprintf (stderr, "message %u has no text or text that is not UTF-8\n", i);
              abort ();
            }
          if (message->image_path == NULL)
            continue;
          /* No image is written, so none may load; a path outside the
           * chat's folder must not even be tried. */
          g_autofree float *pixels = tf_chat_message_load_image (message, &error);
          tf_fuzz_check_result ("tf_chat_message_load_image", pixels != NULL, &error);
        }
    }
  tf_test_remove_tree (dir);
  return 0;
}
