/* fuzz-png.c: a PNG through the engine's reader: the pixels from memory, then
 * resized to model pixels both ways (down and up, grey and RGB), and its text
 * chunks from a file (a memfd, so nothing is left on disk). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz-common.h"
#include "tf-image.h"

static void
read_text (const uint8_t *data, size_t size)
{
  int fd = memfd_create ("fuzz.png", MFD_CLOEXEC);
  if (fd < 0)
    abort ();
  for (size_t done = 0; done < size;)
    {
      ssize_t n = write (fd, data + done, size - done);
      if (n <= 0)
        abort ();
      done += (size_t) n;
    }
  g_autofree char *path = g_strdup_printf ("/proc/self/fd/%d", fd);
  GError *error = NULL;
  GHashTable *text = tf_image_read_png_text (path, &error);
  close (fd);
  tf_fuzz_check_result ("tf_image_read_png_text", text != NULL, &error);
  if (text == NULL)
    return;
  GHashTableIter iter;
  gpointer key, value;
  g_hash_table_iter_init (&iter, text);
  while (g_hash_table_iter_next (&iter, &key, &value))
    if (!g_utf8_validate (key, -1, NULL) || !g_utf8_validate (value, -1, NULL))
      {
        fprintf (stderr, "a text chunk that is not UTF-8\n");
        abort ();
      }
  g_hash_table_unref (text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  TfImage image = { 0 };
  GError *error = NULL;
  gboolean ok = tf_image_read_png_bytes (data, size, "fuzz.png", &image, &error);
  tf_fuzz_check_result ("tf_image_read_png_bytes", ok, &error);
  if (ok)
    {
      tf_fuzz_check_image (&image);
      tf_image_clear (&image);
    }
  read_text (data, size);
  return 0;
}
