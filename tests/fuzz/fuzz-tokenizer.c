/* fuzz-tokenizer.c: the input as a tokenizer's JSON (loaded, and when it
 * loads, used), and as text encoded and decoded by a small fixed tokenizer
 * and by the loaded one: decoding what was encoded must give the input back
 * byte for byte, and decoding must take any id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "tf-tokenizer.h"

/* Trained once on a few phrases (training is deterministic), with merges
 * across spaces and multi-byte UTF-8. */
static const TfTokenizer *
fixed_tokenizer (void)
{
  static TfTokenizer *tok = NULL;
  if (tok == NULL)
    {
      static const char *const texts[] = {
        "a red circle on a white background",
        "a blue square in the top left, a green triangle",
        "what is a dog? a domesticated carnivorous mammal",
        "une pâtisserie — très bien ☕ 🍕 ünïcödé",
      };
      GError *error = NULL;
      tok = tf_tokenizer_train (texts, NULL, G_N_ELEMENTS (texts), 256 + TF_N_SPECIAL + 40, &error);
      if (tok == NULL)
        {
          fprintf (stderr, "the fixed tokenizer: %s\n", error->message);
          abort ();
        }
    }
  return tok;
}

static void
round_trip (const char *what, const TfTokenizer *tok, const uint8_t *data, size_t size)
{
  size_t n_ids = 0;
  g_autofree int32_t *ids = tf_tokenizer_encode (tok, (const char *) data, size, &n_ids);
  if (n_ids > size)
    {
      fprintf (stderr, "%s: %zu bytes became %zu tokens\n", what, size, n_ids);
      abort ();
    }
  size_t len = 0;
  g_autofree char *text = tf_tokenizer_decode (tok, ids, n_ids, &len);
  if (len != size || memcmp (text, data, size) != 0)
    {
      fprintf (stderr, "%s: decoding %zu bytes' tokens gave %zu other bytes\n", what, size, len);
      abort ();
    }

  /* The input's bytes as ids, each within the vocabulary (an id outside it
   * is the caller's bug), including the special tokens. */
  int vocab = tf_tokenizer_vocab_size (tok);
  size_t n_raw = size / 2;
  g_autofree int32_t *raw = g_new (int32_t, n_raw + 1);
  for (size_t i = 0; i < n_raw; i++)
    raw[i] = (int32_t) ((data[2 * i] | (data[2 * i + 1] << 8)) % vocab);
  g_autofree char *decoded = tf_tokenizer_decode (tok, raw, n_raw, &len);
  size_t total = 0;
  for (size_t i = 0; i < n_raw; i++)
    {
      size_t token_len = 0;
      tf_tokenizer_token_bytes (tok, raw[i], &token_len);
      total += token_len;
    }
  if (total != len || decoded[len] != '\0')
    {
      fprintf (stderr, "%s: decoding gave %zu bytes, its tokens hold %zu\n", what, len, total);
      abort ();
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  tf_fuzz_init ();
  round_trip ("the fixed tokenizer", fixed_tokenizer (), data, size);

  g_autofree char *json = g_strndup ((const char *) data, size);
  GError *error = NULL;
  g_autoptr (TfTokenizer) loaded = tf_tokenizer_from_json (json, "fuzz.json", &error);
  tf_fuzz_check_result ("tf_tokenizer_from_json", loaded != NULL, &error);
  if (loaded != NULL)
    round_trip ("the loaded tokenizer", loaded, data, size);
  return 0;
}
