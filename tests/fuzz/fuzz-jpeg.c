/* fuzz-jpeg.c: any file through the engine's reader of pictures by content
 * (a JPEG here, upright by its EXIF orientation; a PNG or anything else
 * too), then resized to model pixels both ways. */
#include "fuzz-common.h"
#include "tf-image.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  TfImage image = { 0 };
  GError *error = NULL;
  gboolean ok = tf_image_read_bytes (data, size, "fuzz.jpg", &image, &error);
  tf_fuzz_check_result ("tf_image_read_bytes", ok, &error);
  if (ok)
    {
      tf_fuzz_check_image (&image);
      tf_image_clear (&image);
    }
  return 0;
}
