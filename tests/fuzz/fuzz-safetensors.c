/* fuzz-safetensors.c: a safetensors file from memory, then every tensor and
 * every metadata value read back the way the engine reads them. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz-common.h"
#include "transfusion.h"

/* The loader's promises about an opened file, checked on every tensor. */
static void
check_tensor (const TfSafetensors *st, const TfTensorInfo *info)
{
  if (info->end < info->begin || info->end - info->begin != info->n_elements * tf_dtype_size (info->dtype) ||
      tf_safetensors_find (st, info->name) != info)
    {
      fprintf (stderr, "tensor '%s': its offsets, size or name do not agree\n", info->name);
      abort ();
    }
  /* Touch every byte, so that a tensor reaching past the data is seen. */
  tf_fuzz_touch (tf_safetensors_data (st, info), info->end - info->begin);

  GError *error = NULL;
  gboolean ok;
  switch (info->dtype)
    {
    case TF_DTYPE_F32: case TF_DTYPE_F16: case TF_DTYPE_BF16: case TF_DTYPE_F64:
      {
        g_autofree float *out = g_new (float, info->n_elements);
        ok = tf_safetensors_read_f32 (st, info, out, info->n_elements, &error);
        break;
      }
    default:
      {
        g_autofree int32_t *out = g_new (int32_t, info->n_elements);
        ok = tf_safetensors_read_i32 (st, info, out, info->n_elements, &error);
        break;
      }
    }
  tf_fuzz_check_result ("tf_safetensors_read", ok, &error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  g_autoptr (TfSafetensors) st = tf_fuzz_open_safetensors (data, size, "fuzz.safetensors");
  if (st == NULL)
    return 0;

  for (int i = 0; i < tf_safetensors_n_tensors (st); i++)
    check_tensor (st, tf_safetensors_tensor (st, i));
  guint n_keys = 0;
  g_autofree const char **keys = tf_safetensors_metadata_keys (st, &n_keys);
  for (guint i = 0; i < n_keys; i++)
    if (tf_safetensors_metadata (st, keys[i]) == NULL)
      {
        fprintf (stderr, "metadata key '%s' is listed but has no value\n", keys[i]);
        abort ();
      }
  return 0;
}
