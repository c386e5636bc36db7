/* replay.c: runs LLVMFuzzerTestOneInput on every file of the given folders
 * (or on the given files), in sorted order, without libFuzzer: the `fuzz`
 * test suite replays the committed corpora this way under the sanitizers of
 * the build. Each input is copied to a buffer of exactly its size, so that a
 * read past its end is seen by AddressSanitizer. An empty or missing folder
 * fails: a test that replays nothing proves nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

static gboolean
replay_file (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len = 0;
  g_autoptr (GError) error = NULL;
  if (!g_file_get_contents (path, &contents, &len, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return FALSE;
    }
  /* malloc (0) may return NULL; libFuzzer passes a valid pointer. */
  uint8_t *data = malloc (len > 0 ? len : 1);
  if (data == NULL)
    abort ();
  memcpy (data, contents, len);
  LLVMFuzzerTestOneInput (data, len);
  free (data);
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Returns the number of inputs replayed, or -1. */
static int
replay_path (const char *path)
{
  if (!g_file_test (path, G_FILE_TEST_IS_DIR))
    return replay_file (path) ? 1 : -1;

  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (path, 0, &error);
  if (dir == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return -1;
    }
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_build_filename (path, name, NULL));
  g_ptr_array_sort (names, compare_names);
  int n = 0;
  for (guint i = 0; i < names->len; i++)
    {
      const char *file = g_ptr_array_index (names, i);
      if (!g_file_test (file, G_FILE_TEST_IS_REGULAR))
        continue;
      if (!replay_file (file))
        return -1;
      n++;
    }
  return n;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fprintf (stderr, "usage: %s CORPUS_FOLDER_OR_FILE…\n", argv[0]);
      return 2;
    }
  for (int i = 1; i < argc; i++)
    {
      int n = replay_path (argv[i]);
      if (n <= 0)
        {
          fprintf (stderr, "%s: %s\n", argv[i], n == 0 ? "no inputs to replay" : "could not replay");
          return 1;
        }
      printf ("%s: replayed %d inputs\n", argv[i], n);
    }
  return 0;
}
