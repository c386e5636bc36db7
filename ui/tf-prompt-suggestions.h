/* tf-prompt-suggestions.h: what to suggest in the prompt field.
 *
 * A model only draws what its training captions named, so the prompt field
 * offers those names and phrases. The trainer stores them in the checkpoint
 * as the metadata key "prompt_subjects" (a JSON array of strings); for a
 * file without it they are derived when the model loads from the data sets
 * its provenance names, each image data set listing its subjects
 * (tf_data_source_subjects()), those that the model's tokenizer writes in
 * fewer tokens per word first (its merges were learnt from the training
 * text, so they are the words it saw most). The example prompts are those
 * an eval found the model draws as asked, when the file stores them
 * ("example_prompts", written by `transfusion-cli convert --examples-from`);
 * otherwise captions from those data sets, when they are on this machine.
 * No GTK here. */
#pragma once

#include <glib.h>

#include "tf-generate.h"

G_BEGIN_DECLS

typedef struct {
  char **subjects;   /* NULL-terminated, best first; may be empty */
  char **examples;   /* whole example captions, NULL-terminated; may be empty */
} TfPromptSuggestions;

/* Blocking (it may render a few training images): call it from a worker
 * thread. Never fails: a model without provenance gets empty lists. */
TfPromptSuggestions *tf_prompt_suggestions_load (const char *model_path,
                                                 const TfTokenizer *tokenizer,
                                                 int image_size, int channels);
void tf_prompt_suggestions_free (TfPromptSuggestions *suggestions);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfPromptSuggestions, tf_prompt_suggestions_free)

G_END_DECLS
