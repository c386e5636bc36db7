/* fuzz-train-state.c: a training state from memory, read as `train --resume`
 * reads one (tf_train_state_check: metadata, configuration, tokenizer, step,
 * random state and the four F32 tensors), all but the comparison of the
 * run's options. A refusal must say why; memory must stay proportional to
 * the input (the replay runs with a 1 GB allocation limit). */
#include "fuzz-common.h"
#include "tf-train.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  g_autoptr (TfSafetensors) st = tf_fuzz_open_safetensors (data, size, "fuzz.state.safetensors");
  if (st == NULL)
    return 0;
  GError *error = NULL;
  gboolean ok = tf_train_state_check (st, "fuzz.state.safetensors", &error);
  tf_fuzz_check_result ("tf_train_state_check", ok, &error);
  return 0;
}
