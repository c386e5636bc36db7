/* tf-prompt-suggestions.c: what to suggest in the prompt field. */
#include "config.h"

#include "tf-prompt-suggestions.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "tf-data.h"
#include "tf-rng.h"
#include "tf-safetensors.h"
#include "tf-json.h"

#define N_EXAMPLES_PER_SOURCE 4
#define MAX_STORED_SUBJECTS 4096

void
tf_prompt_suggestions_free (TfPromptSuggestions *suggestions)
{
  if (suggestions == NULL)
    return;
  g_strfreev (suggestions->subjects);
  g_strfreev (suggestions->examples);
  g_free (suggestions);
}

/* The strings of a JSON array, or NULL when @text is not one. */
static char **
strings_from_json_array (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GPtrArray) strings = g_ptr_array_new ();
  JsonArray *array;

  if (text == NULL || !tf_json_parse (parser, text, -1, NULL))
    return NULL;
  if (!JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser)))
    return NULL;
  array = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonNode *node = json_array_get_element (array, i);

      if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
        g_ptr_array_add (strings, g_strdup (json_node_get_string (node)));
    }
  g_ptr_array_add (strings, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&strings), FALSE);
}

/* provenance.options (itself JSON text).data: the data sets' names. */
static char **
training_data_names (const char *provenance)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(JsonParser) options_parser = json_parser_new ();
  JsonObject *object;
  const char *options;

  if (provenance == NULL || !tf_json_parse (parser, provenance, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  object = json_node_get_object (json_parser_get_root (parser));
  options = json_object_get_string_member_with_default (object, "options", NULL);
  if (options == NULL || !tf_json_parse (options_parser, options, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (options_parser)))
    return NULL;
  object = json_node_get_object (json_parser_get_root (options_parser));
  if (!json_object_has_member (object, "data"))
    return NULL;
  g_autofree char *data = tf_json_node_to_string (json_object_get_member (object, "data"));
  return strings_from_json_array (data);
}

typedef struct {
  char   *text;
  double  tokens_per_word;
  guint   order;
} RankedSubject;

static int
compare_ranked (gconstpointer a, gconstpointer b)
{
  const RankedSubject *x = a, *y = b;

  if (x->tokens_per_word != y->tokens_per_word)
    return x->tokens_per_word < y->tokens_per_word ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static double
tokens_per_word (const TfTokenizer *tokenizer, const char *text)
{
  g_autofree char *spaced = g_strconcat (" ", text, NULL);
  g_auto(GStrv) words = g_strsplit (text, " ", -1);
  size_t n_tokens = 0;
  g_autofree int32_t *ids = NULL;

  if (tokenizer == NULL)
    return 1.0;   /* > 0: stored subjects (0) stay first */
  /* As in a caption: after a space. */
  ids = tf_tokenizer_encode (tokenizer, spaced, strlen (spaced), &n_tokens);
  return (double) n_tokens / MAX (1u, g_strv_length (words));
}

TfPromptSuggestions *
tf_prompt_suggestions_load (const char *model_path, const TfTokenizer *tokenizer,
                            int image_size, int channels)
{
  TfPromptSuggestions *suggestions = g_new0 (TfPromptSuggestions, 1);
  g_autoptr(TfSafetensors) st = tf_safetensors_open (model_path, NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GArray) ranked = g_array_new (FALSE, FALSE, sizeof (RankedSubject));
  /* One list of example captions per data set, shown in turns. */
  g_autoptr(GPtrArray) per_source = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  g_autoptr(GPtrArray) examples = g_ptr_array_new ();
  g_auto(GStrv) stored = NULL;
  g_auto(GStrv) names = NULL;
  g_auto(GStrv) measured = NULL;

  if (st != NULL)
    {
      /* The subjects the trainer stored, if it did; the example captions
       * come from the prompts eval found the model draws as asked
       * (`convert --examples-from`), else from the data sets the
       * provenance names. */
      stored = strings_from_json_array (tf_safetensors_metadata (st, "prompt_subjects"));
      names = training_data_names (tf_safetensors_metadata (st, "provenance"));
      measured = strings_from_json_array (tf_safetensors_metadata (st, "example_prompts"));
      if (measured != NULL && measured[0] == NULL)
        g_clear_pointer (&measured, g_strfreev);
    }

  /* Stored subjects keep their order, ahead of derived ones. A file may
   * store very many (earlier trainers stored WordNet's 87,000 words too):
   * the completion list filters on the main thread at every keystroke, so
   * only the first MAX_STORED_SUBJECTS are kept (image subjects come first). */
  for (guint i = 0; stored != NULL && stored[i] != NULL && i < MAX_STORED_SUBJECTS; i++)
    if (g_hash_table_add (seen, g_strdup (stored[i])))
      g_array_append_val (ranked, ((RankedSubject) { g_strdup (stored[i]), 0.0, i }));

  for (guint s = 0; names != NULL && names[s] != NULL; s++)
    {
      g_autoptr(TfDataSource) source = NULL;
      const char *const *subjects;
      TfRng rng;

      /* WordNet is text only: it names no image subjects, and reading it
       * all takes seconds. */
      if (g_str_equal (names[s], "wordnet"))
        continue;
      source = tf_data_source_open (names[s], TF_SPLIT_TRAIN, image_size, channels, NULL);
      if (source == NULL)
        continue;   /* not on this machine: suggest what the others know */

      subjects = tf_data_source_subjects (source);
      for (guint i = 0; stored == NULL && subjects[i] != NULL; i++)
        if (g_hash_table_add (seen, g_strdup (subjects[i])))
          g_array_append_val (ranked, ((RankedSubject) {
                                         g_strdup (subjects[i]),
                                         tokens_per_word (tokenizer, subjects[i]),
                                         ranked->len }));

      GPtrArray *mine = g_ptr_array_new ();

      g_ptr_array_add (per_source, mine);
      tf_rng_seed (&rng, 1 + s);
      /* Measured examples replace these: no training image to render. */
      for (int i = 0; measured == NULL && i < N_EXAMPLES_PER_SOURCE; i++)
        {
          TfExample example = { 0 };
          int64_t index = (int64_t) tf_rng_below (&rng, (uint64_t) tf_data_source_size (source));

          if (tf_data_source_get (source, index, &rng, &example, NULL)
              && example.kind == TF_EXAMPLE_IMAGE && example.caption != NULL)
            g_ptr_array_add (mine, g_strdup (example.caption));
          tf_example_clear (&example);
        }
    }

  g_array_sort (ranked, compare_ranked);
  suggestions->subjects = g_new0 (char *, ranked->len + 1);
  for (guint i = 0; i < ranked->len; i++)
    {
      RankedSubject *r = &g_array_index (ranked, RankedSubject, i);

      suggestions->subjects[i] = r->text;
    }
  if (measured != NULL)
    {
      suggestions->examples = g_steal_pointer (&measured);
      return suggestions;
    }
  for (guint i = 0; i < N_EXAMPLES_PER_SOURCE; i++)
    for (guint s = 0; s < per_source->len; s++)
      {
        GPtrArray *mine = g_ptr_array_index (per_source, s);

        if (i < mine->len)
          g_ptr_array_add (examples, g_ptr_array_index (mine, i));
      }
  g_ptr_array_add (examples, NULL);
  suggestions->examples = (char **) g_ptr_array_free (g_steal_pointer (&examples), FALSE);
  return suggestions;
}
