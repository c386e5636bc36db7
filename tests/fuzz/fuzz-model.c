/* fuzz-model.c: a model file from memory loaded as the command-line tool and
 * the application load one: the training its provenance adds up (with the
 * runs it was warm-started from), the weights (tf_model_load_from), then the
 * tokenizer from its metadata, checked against the model's configuration. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz-common.h"
#include "tf-tokenizer.h"
#include "tf-train.h"
#include "transfusion.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  g_autoptr (TfSafetensors) st = tf_fuzz_open_safetensors (data, size, "fuzz.safetensors");
  if (st == NULL)
    return 0;
  /* Read by `info` and Model Info from any file: a chain of any depth and
   * any text gives counts that are never negative. */
  TfLineage lineage;
  if (tf_provenance_lineage (tf_safetensors_metadata (st, "provenance"), &lineage)
      && (lineage.runs < 1 || lineage.steps < lineage.run_steps || lineage.run_steps < 0
          || !(lineage.wall_seconds >= lineage.run_wall_seconds)
          || !(lineage.run_wall_seconds >= 0)))
    {
      fprintf (stderr, "lineage out of range: %d runs, %" G_GINT64_FORMAT " steps\n",
               lineage.runs, lineage.steps);
      abort ();
    }

  GError *error = NULL;
  g_autoptr (TfModel) model = tf_model_load_from (st, &error);
  tf_fuzz_check_result ("tf_model_load_from", model != NULL, &error);
  if (model == NULL)
    return 0;

  /* Every tensor of the model lies inside its parameter buffer. */
  size_t n_params = tf_model_n_params (model);
  for (int i = 0; i < tf_model_n_tensors (model); i++)
    {
      const TfParamInfo *info = tf_model_tensor (model, i);
      if (info->offset > n_params || info->size > n_params - info->offset)
        {
          fprintf (stderr, "tensor '%s' reaches past the parameters\n", info->name);
          abort ();
        }
    }

  const char *tok_json = tf_safetensors_metadata (st, "tokenizer");
  if (tok_json == NULL)
    return 0;
  g_autoptr (TfTokenizer) tok = tf_tokenizer_from_json (tok_json, "fuzz.safetensors", &error);
  tf_fuzz_check_result ("tf_tokenizer_from_json", tok != NULL, &error);
  if (tok != NULL)
    {
      gboolean ok = tf_tokenizer_matches_config (tok, tf_model_config (model), "fuzz.safetensors",
                                                 &error);
      tf_fuzz_check_result ("tf_tokenizer_matches_config", ok, &error);
    }
  return 0;
}
