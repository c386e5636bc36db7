/* fuzz-judge.c: a judge file (the classifier `eval --judge FILE` reads) from
 * memory: its 'dims' and six tensors, checked against each other before the
 * weights are allocated. A loaded judge then classifies one image. */
#include "fuzz-common.h"
#include "tf-judge.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  g_autoptr (TfSafetensors) st = tf_fuzz_open_safetensors (data, size, "fuzz-judge.safetensors");
  if (st == NULL)
    return 0;
  GError *error = NULL;
  g_autoptr (TfJudge) judge = tf_judge_load_from (st, "fuzz-judge.safetensors", &error);
  tf_fuzz_check_result ("tf_judge_load_from", judge != NULL, &error);
  if (judge == NULL)
    return 0;
  const TfJudgeDims *dims = tf_judge_dims (judge);
  g_autofree float *pixels = g_new0 (float, (size_t) dims->size * dims->size);
  int predicted = -1;
  tf_judge_classify (judge, pixels, 1, 1, NULL, &predicted);
  if (predicted < 0 || predicted >= dims->classes)
    g_error ("predicted class %d of %d", predicted, dims->classes);
  return 0;
}
