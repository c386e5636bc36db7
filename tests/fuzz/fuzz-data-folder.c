/* fuzz-data-folder.c: a user's dataset folder of one picture and its
 * caption: the input is the caption, a NUL byte, then the picture (a PNG).
 * Both splits are opened and every example read; the folder is removed
 * after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "tf-data.h"
#include "tf-rng.h"
#include "tf-test-util.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  const uint8_t *nul = memchr (data, '\0', size);
  size_t caption_len = nul != NULL ? (size_t) (nul - data) : size;
  size_t image_start = nul != NULL ? caption_len + 1 : size;

  g_autofree char *dir = tf_test_make_temp_dir ("tf-fuzz-folder-XXXXXX");
  tf_test_write_file (dir, "picture.txt", data, (gssize) caption_len);
  tf_test_write_file (dir, "picture.png", data + image_start, (gssize) (size - image_start));

  static const TfSplit splits[] = { TF_SPLIT_TRAIN, TF_SPLIT_HELDOUT };
  for (size_t s = 0; s < G_N_ELEMENTS (splits); s++)
    {
      GError *error = NULL;
      g_autoptr (TfDataSource) source = tf_data_folder_new (dir, splits[s], 16, 3, &error);
      tf_fuzz_check_result ("tf_data_folder_new", source != NULL, &error);
      if (source == NULL)
        continue;
      for (int64_t i = 0; i < tf_data_source_size (source); i++)
        {
          TfRng rng;
          tf_rng_seed (&rng, 1);
          TfExample example = { 0 };
          gboolean ok = tf_data_source_get (source, i, &rng, &example, &error);
          tf_fuzz_check_result ("tf_data_source_get", ok, &error);
          if (ok && (example.caption == NULL || !g_utf8_validate (example.caption, -1, NULL)))
            {
              fprintf (stderr, "example %" G_GINT64_FORMAT ": no caption, or not UTF-8\n", i);
              abort ();
            }
          tf_example_clear (&example);
        }
    }
  tf_test_remove_tree (dir);
  return 0;
}
