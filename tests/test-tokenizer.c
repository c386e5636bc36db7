/* test-tokenizer.c: the byte-level BPE tokenizer (SPEC §6, issue 3).
 *
 * The engine's trainer and encoder are checked against deliberately naive
 * ones written here from the definition: chunk, then (training) recount
 * every pair and merge the most frequent, (encoding) apply every merge in
 * order, left to right. */
#include "tf-test-util.h"
#include "tf-tokenizer.h"

#include <json-glib/json-glib.h>
#include <string.h>

#define WORDNET_DIR "/usr/share/wordnet"

/* ---- corpora ------------------------------------------------------------ */

static const char *const determiners[] = { "the", "a", "every", "no", "some", "this", "that", "my" };
static const char *const adjectives[] = {
  "quick", "brown", "lazy", "small", "large", "red", "green", "blue", "happy", "quiet",
  "ancient", "modern", "bright", "dark", "heavy", "light", "careful", "strange", "round",
  "square", "wooden", "golden", "naïve", "süß", "grüne",
};
static const char *const nouns[] = {
  "fox", "dog", "cat", "house", "river", "mountain", "teacher", "student", "computer",
  "garden", "window", "table", "story", "country", "language", "picture", "friend", "city",
  "morning", "evening", "island", "machine", "café", "Zürich", "東京", "circle", "triangle",
};
static const char *const verbs[] = {
  "jumps over", "sees", "likes", "builds", "paints", "finds", "remembers", "carries",
  "describes", "follows", "visits", "draws", "answers", "explains", "measures",
};
static const char *const adverbs[] = { "quickly", "slowly", "often", "never", "quietly", "again" };
static const char *const endings[] = { ".", ".", ".", "!", "?", ";", "," };

#define PICK(rng, list) ((list)[g_rand_int_range ((rng), 0, (gint32) G_N_ELEMENTS (list))])

/* English-like sentences from a small grammar; the same seed gives the
 * same text on every machine (GRand is a Mersenne twister). */
static GString *
english_corpus (guint32 seed, size_t bytes)
{
  g_autoptr (GRand) rng = g_rand_new_with_seed (seed);
  GString *s = g_string_new (NULL);
  while (s->len < bytes)
    {
      g_string_append_printf (s, "%s %s %s %s %s %s %s%s",
                              PICK (rng, determiners), PICK (rng, adjectives), PICK (rng, nouns),
                              PICK (rng, adverbs), PICK (rng, verbs), PICK (rng, determiners),
                              PICK (rng, nouns), PICK (rng, endings));
      int r = g_rand_int_range (rng, 0, 20);
      if (r == 0)
        g_string_append_printf (s, " In %d, %d people came.", g_rand_int_range (rng, 1800, 2030),
                                g_rand_int_range (rng, 2, 999));
      g_string_append (s, r == 1 ? "\n\n" : r < 5 ? "\n" : r == 5 ? "  " : " ");
    }
  return s;
}

/* The glosses of WordNet ("| a small dog" → "a small dog"), up to @max
 * bytes, or NULL when WordNet is not installed. */
static GString *
wordnet_glosses (size_t max)
{
  const char *names[] = { "data.noun", "data.verb", "data.adj", "data.adv" };
  GString *s = NULL;
  for (guint f = 0; f < G_N_ELEMENTS (names); f++)
    {
      g_autofree char *path = g_build_filename (WORDNET_DIR, names[f], NULL);
      g_autofree char *data = NULL;
      if (!g_file_get_contents (path, &data, NULL, NULL))
        continue;
      if (s == NULL)
        s = g_string_new (NULL);
      for (char *line = data, *eol; line != NULL && *line != '\0' && s->len < max; line = eol)
        {
          eol = strchr (line, '\n');
          if (eol != NULL)
            *eol++ = '\0';
          const char *bar = strstr (line, "| ");
          if (line[0] != ' ' && bar != NULL)   /* the licence lines start with a space */
            {
              g_string_append (s, bar + 2);
              g_string_append_c (s, '\n');
            }
        }
      if (s->len >= max)
        break;
    }
  return s;
}

static TfTokenizer *
train_one (const char *text, size_t len, int vocab_size)
{
  g_autoptr (GError) error = NULL;
  const char *texts[] = { text };
  TfTokenizer *tok = tf_tokenizer_train (texts, &len, 1, vocab_size, &error);
  g_assert_no_error (error);
  g_assert_nonnull (tok);
  return tok;
}

/* English, plus noise with runs, NULs and invalid UTF-8, so that merges of
 * every kind of chunk exist. Trained once, shared by the tests. */
#define SHARED_VOCAB 800
static TfTokenizer *shared_tok;
static GString *shared_corpus;

static void
add_noise (GString *s, guint32 seed, int n)
{
  g_autoptr (GRand) rng = g_rand_new_with_seed (seed);
  const char alphabet[] = { 'a', 'b', ' ', '\0', '\n', '\t', '1', '.', (char) 0xff, (char) 0x80, (char) 0xc3 };
  for (int i = 0; i < n; i++)
    {
      char c = alphabet[g_rand_int_range (rng, 0, (gint32) sizeof alphabet)];
      int run = g_rand_int_range (rng, 1, 120);
      for (int k = 0; k < run; k++)
        g_string_append_c (s, c);
      for (int k = g_rand_int_range (rng, 0, 8); k > 0; k--)
        g_string_append_c (s, (char) g_rand_int_range (rng, 0, 256));
    }
}

static const TfTokenizer *
get_shared_tokenizer (void)
{
  if (shared_tok == NULL)
    {
      shared_corpus = english_corpus (1, 60000);
      add_noise (shared_corpus, 2, 400);
      shared_tok = train_one (shared_corpus->str, shared_corpus->len, SHARED_VOCAB);
    }
  return shared_tok;
}

/* ---- the reference: chunking, encoding and training, done naively ------- */

static int
ref_class (guint8 c)
{
  if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
    return 0;
  if (c >= '0' && c <= '9')
    return 1;
  if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
    return 2;
  return 3;
}

/* Chunk ends, as the header describes the cut. */
static GArray *
ref_chunk_ends (const guint8 *p, size_t len)
{
  GArray *ends = g_array_new (FALSE, FALSE, sizeof (size_t));
  size_t start = 0;
  while (start < len)
    {
      size_t i = start;
      if (p[i] == ' ' && i + 1 < len && ref_class (p[i + 1]) != 2)
        i++;
      size_t j = i;
      while (j < len && ref_class (p[j]) == ref_class (p[i]))
        j++;
      /* A run of blanks leaves its last space to the word that follows. */
      if (ref_class (p[i]) == 2 && j < len && j - start >= 2 && p[j - 1] == ' ')
        j--;
      g_array_append_val (ends, j);
      start = j;
    }
  return ends;
}

static GArray *
merges_of (const TfTokenizer *tok)
{
  g_autofree char *json = tf_tokenizer_to_json (tok);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, json, -1, NULL));
  JsonArray *merges = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)),
                                                    "merges");
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (guint k = 0; k < json_array_get_length (merges); k++)
    {
      JsonArray *pair = json_array_get_array_element (merges, k);
      gint32 ab[2] = { (gint32) json_array_get_int_element (pair, 0),
                       (gint32) json_array_get_int_element (pair, 1) };
      g_array_append_vals (out, ab, 2);
    }
  return out;
}

/* Merges (a, b) → m everywhere in @syms, left to right. */
static void
ref_replace (GArray *syms, gint32 a, gint32 b, gint32 m)
{
  guint out = 0;
  gint32 *s = (gint32 *) syms->data;
  for (guint i = 0; i < syms->len;)
    if (i + 1 < syms->len && s[i] == a && s[i + 1] == b)
      {
        s[out++] = m;
        i += 2;
      }
    else
      s[out++] = s[i++];
  g_array_set_size (syms, out);
}

static GArray *
ref_encode (const GArray *merges, const char *text, size_t len)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr (GArray) ends = ref_chunk_ends ((const guint8 *) text, len);
  size_t start = 0;
  for (guint c = 0; c < ends->len; c++)
    {
      size_t end = g_array_index (ends, size_t, c);
      g_autoptr (GArray) syms = g_array_new (FALSE, FALSE, sizeof (gint32));
      for (size_t i = start; i < end; i++)
        {
          gint32 byte = (guint8) text[i];
          g_array_append_val (syms, byte);
        }
      for (guint k = 0; k < merges->len / 2 && syms->len > 1; k++)
        ref_replace (syms, g_array_index (merges, gint32, 2 * k),
                     g_array_index (merges, gint32, 2 * k + 1), 256 + (gint32) k);
      g_array_append_vals (out, syms->data, syms->len);
      start = end;
    }
  return out;
}

/* Training by recounting every pair of every distinct chunk at each step. */
static GArray *
ref_train (const char *text, size_t len, int vocab_size)
{
  g_autoptr (GHashTable) counts = g_hash_table_new_full (g_bytes_hash, g_bytes_equal,
                                                         (GDestroyNotify) g_bytes_unref, NULL);
  g_autoptr (GArray) ends = ref_chunk_ends ((const guint8 *) text, len);
  size_t start = 0;
  for (guint c = 0; c < ends->len; c++)
    {
      size_t end = g_array_index (ends, size_t, c);
      GBytes *chunk = g_bytes_new (text + start, end - start);
      gsize n = GPOINTER_TO_SIZE (g_hash_table_lookup (counts, chunk));
      g_hash_table_replace (counts, chunk, GSIZE_TO_POINTER (n + 1));
      start = end;
    }
  g_autoptr (GPtrArray) words = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  g_autoptr (GArray) word_counts = g_array_new (FALSE, FALSE, sizeof (gint64));
  GHashTableIter iter;
  gpointer key, value;
  g_hash_table_iter_init (&iter, counts);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      gsize n;
      const guint8 *p = g_bytes_get_data (key, &n);
      GArray *syms = g_array_new (FALSE, FALSE, sizeof (gint32));
      for (gsize i = 0; i < n; i++)
        {
          gint32 byte = p[i];
          g_array_append_val (syms, byte);
        }
      g_ptr_array_add (words, syms);
      gint64 count = (gint64) GPOINTER_TO_SIZE (value);
      g_array_append_val (word_counts, count);
    }

  GArray *merges = g_array_new (FALSE, FALSE, sizeof (gint32));
  for (int m = 256; m < vocab_size - 7; m++)
    {
      g_autoptr (GHashTable) pairs = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
      for (guint w = 0; w < words->len; w++)
        {
          GArray *syms = words->pdata[w];
          for (guint i = 0; i + 1 < syms->len; i++)
            {
              gint64 k = (gint64) g_array_index (syms, gint32, i) << 32 | g_array_index (syms, gint32, i + 1);
              gint64 *c = g_hash_table_lookup (pairs, &k);
              if (c == NULL)
                g_hash_table_insert (pairs, g_memdup2 (&k, sizeof k), c = g_new0 (gint64, 1));
              *c += g_array_index (word_counts, gint64, w);
            }
        }
      gint64 best_key = -1, best = 1;
      g_hash_table_iter_init (&iter, pairs);
      while (g_hash_table_iter_next (&iter, &key, &value))
        {
          gint64 k = *(gint64 *) key, c = *(gint64 *) value;
          if (c > best || (c == best && best > 1 && k < best_key))
            {
              best = c;
              best_key = k;
            }
        }
      if (best_key < 0)
        break;
      gint32 ab[2] = { (gint32) (best_key >> 32), (gint32) (best_key & 0xffffffff) };
      g_array_append_vals (merges, ab, 2);
      for (guint w = 0; w < words->len; w++)
        ref_replace (words->pdata[w], ab[0], ab[1], m);
    }
  return merges;
}

/* ---- checks ------------------------------------------------------------- */

/* Encodes @text, checks the ids are ordinary tokens and that decoding
 * gives back every byte; returns the ids. */
static GArray *
check_round_trip (const TfTokenizer *tok, const char *text, size_t len)
{
  size_t n = 0, back_len = 0;
  int32_t *ids = tf_tokenizer_encode (tok, text, len, &n);
  g_assert_nonnull (ids);
  int n_ordinary = tf_tokenizer_vocab_size (tok) - TF_N_SPECIAL;
  for (size_t i = 0; i < n; i++)
    {
      g_assert_cmpint (ids[i], >=, 0);
      g_assert_cmpint (ids[i], <, n_ordinary);
    }
  g_autofree char *back = tf_tokenizer_decode (tok, ids, n, &back_len);
  g_assert_cmpmem (back, back_len, text, len);
  g_assert_cmpint (back[back_len], ==, '\0');
  GArray *out = g_array_new (FALSE, FALSE, sizeof (int32_t));
  g_array_append_vals (out, ids, (guint) n);
  g_free (ids);
  return out;
}

static void
check_same_ids (const GArray *got, const GArray *want)
{
  g_assert_cmpmem (got->data, got->len * sizeof (int32_t), want->data, want->len * sizeof (int32_t));
}

/* Every ordinary token lies inside one chunk: an optional leading space,
 * then bytes of one class. */
static void
check_tokens_within_chunks (const TfTokenizer *tok)
{
  for (int32_t id = 0; id < tf_tokenizer_vocab_size (tok) - TF_N_SPECIAL; id++)
    {
      size_t len;
      const guint8 *b = tf_tokenizer_token_bytes (tok, id, &len);
      g_assert_cmpuint (len, >=, 1);
      g_assert_cmpuint (len, <=, 256);
      size_t i = len > 1 && b[0] == ' ' ? 1 : 0;
      for (size_t k = i + 1; k < len; k++)
        if (ref_class (b[k]) != ref_class (b[i]))
          g_error ("token %d ('%.*s') crosses a chunk boundary", id, (int) len, b);
    }
}

static double
tokens_per_byte (const TfTokenizer *tok, const char *text, size_t len)
{
  size_t n;
  g_free (tf_tokenizer_encode (tok, text, len, &n));
  return (double) n / (double) len;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_special_text (void)
{
  const char *want[] = { "<|bos|>", "<|eos|>", "<|boi|>", "<|eoi|>", "<|pad|>", "<|user|>",
                         "<|assistant|>" };
  G_STATIC_ASSERT (G_N_ELEMENTS (want) == TF_N_SPECIAL);
  for (int s = 0; s < TF_N_SPECIAL; s++)
    g_assert_cmpstr (tf_special_text ((TfSpecial) s), ==, want[s]);
}

/* "aaabdaaabac", the example of Gage (1994) that everyone uses. */
static void
test_known_merges (void)
{
  g_autoptr (TfTokenizer) tok = train_one ("aaabdaaabac", 11, 300);
  /* aa ×4 first; then ab and (aa)a both occur twice: the tie goes to the
   * smaller pair, (97, 98) = ab; then (aa)(ab) twice; then nothing twice. */
  g_autoptr (GArray) merges = merges_of (tok);
  const gint32 want[] = { 97, 97, 97, 98, 256, 257 };
  g_assert_cmpmem (merges->data, merges->len * sizeof (gint32), want, sizeof want);
  g_assert_cmpint (tf_tokenizer_vocab_size (tok), ==, 256 + 3 + 7);

  size_t n;
  g_autofree int32_t *ids = tf_tokenizer_encode (tok, "aaabdaaabac", 11, &n);
  const int32_t want_ids[] = { 258, 'd', 258, 'a', 'c' };
  g_assert_cmpmem (ids, n * sizeof *ids, want_ids, sizeof want_ids);

  /* Merges stay inside chunks: "ab" ×3 then " ab" ×2 (space + the merged ab). */
  g_autoptr (TfTokenizer) spaced = train_one ("ab ab ab", 8, 300);
  g_autoptr (GArray) spaced_merges = merges_of (spaced);
  const gint32 want_spaced[] = { 'a', 'b', ' ', 256 };
  g_assert_cmpmem (spaced_merges->data, spaced_merges->len * sizeof (gint32), want_spaced,
                   sizeof want_spaced);
  g_autofree int32_t *spaced_ids = tf_tokenizer_encode (spaced, "ab ab", 5, &n);
  const int32_t want_spaced_ids[] = { 256, 257 };
  g_assert_cmpmem (spaced_ids, n * sizeof *spaced_ids, want_spaced_ids, sizeof want_spaced_ids);

  /* Letters next to digits or punctuation are different chunks: no merges. */
  g_autoptr (TfTokenizer) split = train_one ("a1a1a1a1.b.b.b.b", 16, 300);
  g_assert_cmpint (tf_tokenizer_vocab_size (split), ==, 256 + 7);

  /* "x  y": the run of spaces leaves its last space to the word after it,
   * so " y" is learned rather than "  ". */
  g_autoptr (TfTokenizer) blanks = train_one ("x  y x  y x  y", 14, 300);
  g_autoptr (GArray) blank_merges = merges_of (blanks);
  g_assert_cmpuint (blank_merges->len, ==, 4);
  const gint32 want_blanks[] = { ' ', 'y', ' ', 'x' };   /* " y" ×3, then " x" ×2 */
  g_assert_cmpmem (blank_merges->data, sizeof want_blanks, want_blanks, sizeof want_blanks);
}

static void
test_train_matches_reference (void)
{
  g_autoptr (GString) corpus = english_corpus (7, 20000);
  add_noise (corpus, 8, 60);
  /* One long chunk of words without spaces, as text in Chinese makes. */
  g_autoptr (GRand) rng = g_rand_new_with_seed (9);
  for (int i = 0; i < 600; i++)
    g_string_append (corpus, PICK (rng, nouns));
  g_autoptr (TfTokenizer) tok = train_one (corpus->str, corpus->len, 700);
  g_autoptr (GArray) got = merges_of (tok);
  g_autoptr (GArray) want = ref_train (corpus->str, corpus->len, 700);
  g_assert_cmpuint (got->len, ==, want->len);
  for (guint i = 0; i < got->len; i++)
    if (g_array_index (got, gint32, i) != g_array_index (want, gint32, i))
      g_error ("merge %u is [%d,%d], the reference learned [%d,%d]", i / 2,
               g_array_index (got, gint32, i & ~1u), g_array_index (got, gint32, i | 1u),
               g_array_index (want, gint32, i & ~1u), g_array_index (want, gint32, i | 1u));
  check_tokens_within_chunks (tok);
}

static void
test_train_determinism (void)
{
  g_autoptr (GString) corpus = english_corpus (3, 100000);
  add_noise (corpus, 4, 50);
  g_autoptr (TfTokenizer) a = train_one (corpus->str, corpus->len, 1000);
  g_autoptr (TfTokenizer) b = train_one (corpus->str, corpus->len, 1000);
  g_autofree char *json_a = tf_tokenizer_to_json (a);
  g_autofree char *json_b = tf_tokenizer_to_json (b);
  g_assert_cmpstr (json_a, ==, json_b);

  /* The same text as NUL-terminated lines gives the same merges when the
   * cuts fall between chunks (here after each newline, none doubled). */
  g_autoptr (GString) clean = english_corpus (3, 100000);
  g_string_replace (clean, "\n\n", "\n", 0);
  g_auto (GStrv) lines = g_strsplit (clean->str, "\n", -1);
  guint n_lines = g_strv_length (lines);
  for (guint i = 0; i + 1 < n_lines; i++)
    {
      char *with_newline = g_strconcat (lines[i], "\n", NULL);
      g_free (lines[i]);
      lines[i] = with_newline;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTokenizer) c = tf_tokenizer_train ((const char *const *) lines, NULL, (int) n_lines,
                                                  1000, &error);
  g_assert_no_error (error);
  g_autoptr (TfTokenizer) d = train_one (clean->str, clean->len, 1000);
  g_autofree char *json_c = tf_tokenizer_to_json (c);
  g_autofree char *json_d = tf_tokenizer_to_json (d);
  g_assert_cmpstr (json_c, ==, json_d);
}

static void
test_train_vocab_size (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  g_assert_cmpint (tf_tokenizer_vocab_size (tok), ==, SHARED_VOCAB);
  for (int s = 0; s < TF_N_SPECIAL; s++)
    g_assert_cmpint (tf_tokenizer_special_id (tok, (TfSpecial) s), ==, SHARED_VOCAB - TF_N_SPECIAL + s);
  check_tokens_within_chunks (tok);

  /* Too little text: it stops when no pair occurs twice. */
  g_autoptr (TfTokenizer) tiny = train_one ("abc", 3, 4096);
  g_assert_cmpint (tf_tokenizer_vocab_size (tiny), ==, 263);
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTokenizer) empty = tf_tokenizer_train (NULL, NULL, 0, 300, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_tokenizer_vocab_size (empty), ==, 263);
  g_autoptr (GArray) ids = check_round_trip (empty, "hi\0\xff", 4);
  g_assert_cmpuint (ids->len, ==, 4);

  /* The smallest vocabulary: bytes and specials only. */
  g_autoptr (TfTokenizer) bytes_only = train_one ("aaaa aaaa", 9, 263);
  g_assert_cmpint (tf_tokenizer_vocab_size (bytes_only), ==, 263);

  /* A run longer than any token: tokens stop at 256 bytes. */
  g_autofree char *run = g_malloc (5000);
  memset (run, 'a', 5000);
  g_autoptr (TfTokenizer) runs = train_one (run, 5000, 400);
  check_tokens_within_chunks (runs);
  g_autoptr (GArray) run_ids = check_round_trip (runs, run, 5000);
  g_assert_cmpuint (run_ids->len, <, 5000 / 64);
}

static void
test_train_errors (void)
{
  const char *texts[] = { "hello", NULL };
  g_autoptr (GError) error = NULL;
  g_assert_null (tf_tokenizer_train (texts, NULL, 1, 262, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "vocabulary size 262"));
  g_clear_error (&error);
  g_assert_null (tf_tokenizer_train (texts, NULL, -1, 1000, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_clear_error (&error);
  g_assert_null (tf_tokenizer_train (texts, NULL, 2, 1000, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "text 1 is NULL"));
  g_clear_error (&error);
  g_assert_null (tf_tokenizer_train (NULL, NULL, 1, 1000, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
}

static void
test_round_trip_random (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  g_autoptr (GArray) merges = merges_of (tok);
  g_autoptr (GRand) rng = g_rand_new_with_seed (42);
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  const guint8 alphabet[] = { 'a', 'b', 'Z', ' ', ' ', '\0', '\n', '\t', '1', '.', '<', '|',
                              0xff, 0x80, 0xc3, 0xa9, 0xe6, 0x9d };
  int n_checked = 0, n_long = 0;

  for (int iter = 0; iter < 4000; iter++)
    {
      int kind = iter % 6;
      g_byte_array_set_size (buf, 0);
      if (kind == 0)          /* uniform bytes */
        for (int n = g_rand_int_range (rng, 0, 400); n > 0; n--)
          g_byte_array_append (buf, (guint8[]) { (guint8) g_rand_int_range (rng, 0, 256) }, 1);
      else if (kind == 1)     /* few symbols, many repeats */
        for (int n = g_rand_int_range (rng, 0, 600); n > 0; n--)
          g_byte_array_append (buf, &alphabet[g_rand_int_range (rng, 0, sizeof alphabet)], 1);
      else if (kind == 2)     /* only bytes ≥ 0x80: mostly invalid UTF-8, all "letters" */
        for (int n = g_rand_int_range (rng, 0, 300); n > 0; n--)
          g_byte_array_append (buf, (guint8[]) { (guint8) g_rand_int_range (rng, 0x80, 256) }, 1);
      else if (kind == 3)     /* English with bytes knocked out */
        {
          g_autoptr (GString) text = english_corpus ((guint32) iter, (size_t) g_rand_int_range (rng, 1, 800));
          g_byte_array_append (buf, (const guint8 *) text->str, (guint) text->len);
          for (int n = g_rand_int_range (rng, 0, 6); n > 0 && buf->len > 0; n--)
            buf->data[g_rand_int_range (rng, 0, (gint32) buf->len)] = (guint8) g_rand_int_range (rng, 0, 256);
        }
      else if (kind == 4)     /* runs, some long enough for the heap path */
        for (int n = g_rand_int_range (rng, 1, 5); n > 0; n--)
          {
            guint8 c = alphabet[g_rand_int_range (rng, 0, sizeof alphabet)];
            int run = g_rand_int_range (rng, 1, iter % 60 == 4 ? 4000 : 200);
            for (int k = 0; k < run; k++)
              g_byte_array_append (buf, &c, 1);
          }
      else                    /* long words of mixed letters: the heap path on real merges */
        for (int n = g_rand_int_range (rng, 50, 400); n > 0; n--)
          {
            const char *word = PICK (rng, nouns);
            g_byte_array_append (buf, (const guint8 *) word, (guint) strlen (word));
          }

      g_autoptr (GArray) ids = check_round_trip (tok, (const char *) buf->data, buf->len);
      if (iter < 1200 || kind >= 4)
        {
          g_autoptr (GArray) want = ref_encode (merges, (const char *) buf->data, buf->len);
          check_same_ids (ids, want);
          n_checked++;
          n_long += buf->len > 64;
        }
    }
  g_test_message ("4000 random buffers round-trip; %d matched the reference encoder (%d over 64 bytes)",
                  n_checked, n_long);

  /* Appending keeps what is there and counts what it added. */
  g_autoptr (GArray) out = g_array_new (FALSE, FALSE, sizeof (int32_t));
  int32_t marker = -5;
  g_array_append_val (out, marker);
  size_t added = tf_tokenizer_encode_append (tok, "the quick fox", 13, out);
  g_assert_cmpuint (added, ==, out->len - 1);
  g_assert_cmpint (g_array_index (out, int32_t, 0), ==, -5);
  g_assert_cmpuint (tf_tokenizer_encode_append (tok, "", 0, out), ==, 0);
  size_t n = 99;
  g_autofree int32_t *none = tf_tokenizer_encode (tok, NULL, 0, &n);
  g_assert_nonnull (none);
  g_assert_cmpuint (n, ==, 0);
}

static void
test_round_trip_text (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  g_autoptr (GArray) merges = merges_of (tok);
  g_autoptr (GString) text = english_corpus (99, 20000);
  g_autoptr (GArray) ids = check_round_trip (tok, text->str, text->len);
  g_autoptr (GArray) want = ref_encode (merges, text->str, text->len);
  check_same_ids (ids, want);
  /* Held-out sentences from the same grammar compress well. */
  g_assert_cmpfloat ((double) ids->len / (double) text->len, <, 0.3);

  g_autoptr (GString) glosses = wordnet_glosses (400000);
  if (glosses == NULL)
    {
      g_test_skip ("WordNet (" WORDNET_DIR ") is not installed");
      return;
    }
  g_autoptr (GArray) gloss_ids = check_round_trip (tok, glosses->str, glosses->len);
  /* The reference is slow: a prefix that ends with a line (a chunk boundary). */
  const char *cut = g_strstr_len (glosses->str + MIN (glosses->len, 50000), -1, "\n");
  size_t prefix = cut != NULL ? (size_t) (cut + 1 - glosses->str) : glosses->len;
  g_autoptr (GArray) gloss_want = ref_encode (merges, glosses->str, prefix);
  g_assert_cmpuint (gloss_want->len, <=, gloss_ids->len);
  g_assert_cmpmem (gloss_ids->data, gloss_want->len * sizeof (int32_t), gloss_want->data,
                   gloss_want->len * sizeof (int32_t));
}

/* Tokens per byte well below 1 on English: a merge loop that learned the
 * wrong pairs (or few) cannot get there. */
static void
test_compression (void)
{
  g_autoptr (GString) train = english_corpus (11, 300000);
  g_autoptr (GString) held_out = english_corpus (12, 50000);
  g_autoptr (TfTokenizer) tok = train_one (train->str, train->len, 640);
  g_assert_cmpint (tf_tokenizer_vocab_size (tok), ==, 640);
  double generated = tokens_per_byte (tok, held_out->str, held_out->len);
  g_test_message ("generated English, vocab 640: %.3f tokens per byte", generated);
  g_assert_cmpfloat (generated, <, 0.25);

  g_autoptr (GString) glosses = wordnet_glosses (1200000);
  if (glosses == NULL)
    {
      g_test_skip ("WordNet (" WORDNET_DIR ") is not installed");
      return;
    }
  size_t n_train = glosses->len - 200000;
  g_autoptr (TfTokenizer) wn = train_one (glosses->str, n_train, 1024);
  g_assert_cmpint (tf_tokenizer_vocab_size (wn), ==, 1024);
  check_tokens_within_chunks (wn);
  double real = tokens_per_byte (wn, glosses->str + n_train, glosses->len - n_train);
  g_test_message ("WordNet glosses (1 MB), vocab 1024: %.3f tokens per byte on a held-out 200 kB", real);
  g_assert_cmpfloat (real, <, 0.5);
}

static void
test_json_round_trip (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  g_autofree char *json = tf_tokenizer_to_json (tok);
  g_assert_true (g_str_has_prefix (json, "{\"type\":\"byte-bpe\",\"version\":1,\"merges\":[["));
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTokenizer) back = tf_tokenizer_from_json (json, "test", &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_tokenizer_vocab_size (back), ==, tf_tokenizer_vocab_size (tok));
  for (int s = 0; s < TF_N_SPECIAL; s++)
    g_assert_cmpint (tf_tokenizer_special_id (back, (TfSpecial) s), ==,
                     tf_tokenizer_special_id (tok, (TfSpecial) s));
  g_autofree char *again = tf_tokenizer_to_json (back);
  g_assert_cmpstr (again, ==, json);
  for (int32_t id = 0; id < tf_tokenizer_vocab_size (tok); id++)
    {
      size_t la, lb;
      const uint8_t *a = tf_tokenizer_token_bytes (tok, id, &la);
      const uint8_t *b = tf_tokenizer_token_bytes (back, id, &lb);
      g_assert_cmpmem (a, la, b, lb);
    }
  g_autoptr (GString) text = english_corpus (5, 30000);
  add_noise (text, 6, 40);
  g_autoptr (GArray) ids_a = check_round_trip (tok, text->str, text->len);
  g_autoptr (GArray) ids_b = check_round_trip (back, text->str, text->len);
  check_same_ids (ids_a, ids_b);

  /* Specials in another order among the last seven ids are accepted. */
  g_autofree char *json_swapped = g_strdup (
    "{\"type\":\"byte-bpe\",\"version\":1,\"merges\":[[97,98]],\"special\":{"
    "\"<|eos|>\":257,\"<|bos|>\":258,\"<|boi|>\":259,\"<|eoi|>\":260,\"<|pad|>\":261,"
    "\"<|user|>\":262,\"<|assistant|>\":263},\"comment\":\"extra members are ignored\"}");
  g_autoptr (TfTokenizer) swapped = tf_tokenizer_from_json (json_swapped, "test", &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_tokenizer_special_id (swapped, TF_SPECIAL_BOS), ==, 258);
  g_assert_cmpint (tf_tokenizer_special_id (swapped, TF_SPECIAL_EOS), ==, 257);
  size_t len;
  g_assert_cmpmem (tf_tokenizer_token_bytes (swapped, 257, &len), len, "<|eos|>", 7);
  g_assert_cmpmem (tf_tokenizer_token_bytes (swapped, 256, &len), len, "ab", 2);
}

static void
expect_json_error (const char *json, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTokenizer) tok = tf_tokenizer_from_json (json, "model.safetensors", &error);
  g_assert_null (tok);
  g_assert_error (error, TF_ERROR, TF_ERROR_FORMAT);
  if (!g_str_has_prefix (error->message, "model.safetensors: tokenizer: ") ||
      strstr (error->message, fragment) == NULL)
    g_error ("message '%s' does not name the file and '%s'", error->message, fragment);
}

static char *
valid_json_with (const char *merges, const char *special)
{
  return g_strdup_printf ("{\"type\":\"byte-bpe\",\"version\":1,\"merges\":%s,\"special\":%s}",
                          merges, special);
}

#define SPECIAL_AT_258 "{\"<|bos|>\":258,\"<|eos|>\":259,\"<|boi|>\":260,\"<|eoi|>\":261," \
                       "\"<|pad|>\":262,\"<|user|>\":263,\"<|assistant|>\":264}"

static void
test_json_errors (void)
{
  /* Two merges, so the specials sit at 258..264. */
  const struct { const char *merges, *special, *fragment; } cases[] = {
    { "[[97,97],[97,98]]", SPECIAL_AT_258, NULL },   /* the valid one everything varies */
    { "[[97,97],[97,300]]", SPECIAL_AT_258, "merge 1 refers to id 300, which does not exist yet" },
    { "[[97,97],[257,98]]", SPECIAL_AT_258, "merge 1 refers to id 257, which does not exist yet" },
    { "[[97,97],[-1,98]]", SPECIAL_AT_258, "merge 1 refers to id -1" },
    { "[[97,97],[97,99999999999999]]", SPECIAL_AT_258, "refers to id 99999999999999" },
    { "[[97,97],[97]]", SPECIAL_AT_258, "merge 1 is not a pair of integer ids" },
    { "[[97,97],[97,98,99]]", SPECIAL_AT_258, "merge 1 is not a pair of integer ids" },
    { "[[97,97],[97.0,98]]", SPECIAL_AT_258, "merge 1 is not a pair of integer ids" },
    { "[[97,97],\"ab\"]", SPECIAL_AT_258, "merge 1 is not a pair of integer ids" },
    { "[[97,97],[97,\"b\"]]", SPECIAL_AT_258, "merge 1 is not a pair of integer ids" },
    { "[[97,97],[97,97]]", SPECIAL_AT_258, "merge 1 repeats merge 0 ([97,97])" },
    { "{\"a\":1}", SPECIAL_AT_258, "\"merges\" is missing or not an array" },
    { "[[97,97],[97,98]]", "[258]", "\"special\" is missing or not an object" },
    { "[[97,97],[97,98]]", "{\"<|bos|>\":258}", "\"special\" has 1 entries, expected the 7" },
    { "[[97,97],[97,98]]",
      "{\"<|bos|>\":258,\"<|eos|>\":259,\"<|boi|>\":260,\"<|eoi|>\":261,\"<|pod|>\":262,"
      "\"<|user|>\":263,\"<|assistant|>\":264}", "special token \"<|pad|>\" is missing" },
    { "[[97,97],[97,98]]",
      "{\"<|bos|>\":258,\"<|eos|>\":259,\"<|boi|>\":260,\"<|eoi|>\":261,\"<|pad|>\":262,"
      "\"<|user|>\":263,\"<|assistant|>\":265}",
      "special token \"<|assistant|>\" has id 265, expected one of the last seven ids, 258 to 264" },
    { "[[97,97],[97,98]]",
      "{\"<|bos|>\":98,\"<|eos|>\":259,\"<|boi|>\":260,\"<|eoi|>\":261,\"<|pad|>\":262,"
      "\"<|user|>\":263,\"<|assistant|>\":264}", "\"<|bos|>\" has id 98" },
    { "[[97,97],[97,98]]",
      "{\"<|bos|>\":258,\"<|eos|>\":258,\"<|boi|>\":260,\"<|eoi|>\":261,\"<|pad|>\":262,"
      "\"<|user|>\":263,\"<|assistant|>\":264}", "\"<|bos|>\" and \"<|eos|>\" share id 258" },
    { "[[97,97],[97,98]]",
      "{\"<|bos|>\":\"258\",\"<|eos|>\":259,\"<|boi|>\":260,\"<|eoi|>\":261,\"<|pad|>\":262,"
      "\"<|user|>\":263,\"<|assistant|>\":264}", "\"<|bos|>\" has an id that is not an integer" },
    { "[[97,97],[97,98]]",
      "{\"<|bos|>\":258,\"<|eos|>\":259,\"<|boi|>\":260,\"<|eoi|>\":261,\"<|pad|>\":262,"
      "\"<|user|>\":263,\"<|assistant|>\":264,\"<|extra|>\":265}", "\"special\" has 8 entries" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *json = valid_json_with (cases[i].merges, cases[i].special);
      if (cases[i].fragment == NULL)
        {
          g_autoptr (GError) error = NULL;
          g_autoptr (TfTokenizer) tok = tf_tokenizer_from_json (json, "model.safetensors", &error);
          g_assert_no_error (error);
          g_assert_cmpint (tf_tokenizer_vocab_size (tok), ==, 265);
        }
      else
        expect_json_error (json, cases[i].fragment);
    }

  expect_json_error ("", "not a JSON object");
  expect_json_error ("{\"type\":", "not valid JSON");
  expect_json_error ("[1,2]", "not a JSON object");
  expect_json_error ("{\"version\":1,\"merges\":[],\"special\":{}}", "\"type\" is missing");
  expect_json_error ("{\"type\":\"wordpiece\",\"version\":1}", "type \"wordpiece\" is not supported");
  expect_json_error ("{\"type\":\"byte-bpe\",\"merges\":[]}", "\"version\" is missing");
  expect_json_error ("{\"type\":\"byte-bpe\",\"version\":2}", "version 2 is not supported");
  expect_json_error (NULL, "no JSON given");

  /* json-glib recurses once per level: deep nesting is refused first. */
  g_autoptr (GString) deep = g_string_new ("{\"type\":\"byte-bpe\",\"version\":1,\"merges\":");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  expect_json_error (deep->str, "nested more than 16 levels deep");

  /* A chain that doubles each time: 2, 4, ..., 256 bytes, then 512. */
  g_autoptr (GString) chain = g_string_new ("[[97,97]");
  for (int k = 1; k < 9; k++)
    g_string_append_printf (chain, ",[%d,%d]", 255 + k, 255 + k);
  g_string_append_c (chain, ']');
  g_autofree char *chain_special = g_strdup_printf (
    "{\"<|bos|>\":265,\"<|eos|>\":266,\"<|boi|>\":267,\"<|eoi|>\":268,\"<|pad|>\":269,"
    "\"<|user|>\":270,\"<|assistant|>\":271}");
  g_autofree char *chain_json = valid_json_with (chain->str, chain_special);
  expect_json_error (chain_json, "merge 8 makes a token of 512 bytes, more than the limit of 256");

  /* Too many merges is refused before anything is allocated for them. */
  g_autoptr (GString) many = g_string_new ("{\"type\":\"byte-bpe\",\"version\":1,\"merges\":[");
  for (int k = 0; k <= 1000000; k++)
    g_string_append (many, k == 0 ? "0" : ",0");
  g_string_append (many, "],\"special\":{}}");
  expect_json_error (many->str, "1000001 merges, more than the limit of 1000000");
}

/* The text of a special token is just text: it cannot inject control tokens. */
static void
test_special_injection (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  g_autoptr (GString) text = g_string_new (NULL);
  for (int s = 0; s < TF_N_SPECIAL; s++)
    g_string_append_printf (text, "%s hello %s", tf_special_text ((TfSpecial) s),
                            tf_special_text ((TfSpecial) s));
  g_autoptr (GArray) ids = check_round_trip (tok, text->str, text->len);   /* no special ids */
  g_assert_cmpuint (ids->len, >, 2 * TF_N_SPECIAL);

  int32_t bos = tf_tokenizer_special_id (tok, TF_SPECIAL_BOS);
  int32_t assistant = tf_tokenizer_special_id (tok, TF_SPECIAL_ASSISTANT);
  int32_t seq[] = { bos, 'h', 'i', assistant };
  size_t len;
  g_autofree char *decoded = tf_tokenizer_decode (tok, seq, G_N_ELEMENTS (seq), &len);
  g_assert_cmpstr (decoded, ==, "<|bos|>hi<|assistant|>");
  g_assert_cmpuint (len, ==, strlen ("<|bos|>hi<|assistant|>"));
  for (int s = 0; s < TF_N_SPECIAL; s++)
    {
      const uint8_t *b = tf_tokenizer_token_bytes (tok, tf_tokenizer_special_id (tok, (TfSpecial) s), &len);
      g_assert_cmpmem (b, len, tf_special_text ((TfSpecial) s), strlen (tf_special_text ((TfSpecial) s)));
    }
  /* ... and re-encoding that text gives ordinary tokens, not the specials. */
  g_autoptr (GArray) again = check_round_trip (tok, decoded, len);
  g_assert_cmpuint (again->len, >, 4);
}

static void
test_decode (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  size_t len = 99;
  g_autofree char *empty = tf_tokenizer_decode (tok, NULL, 0, &len);
  g_assert_cmpstr (empty, ==, "");
  g_assert_cmpuint (len, ==, 0);

  /* Streaming: the bytes of each token, concatenated, are the text. */
  const char *text = "Streaming  works, even for caf\xc3\xa9 and \xff\xfe.";
  g_autoptr (GArray) ids = check_round_trip (tok, text, strlen (text));
  g_autoptr (GString) streamed = g_string_new (NULL);
  for (guint i = 0; i < ids->len; i++)
    {
      const uint8_t *b = tf_tokenizer_token_bytes (tok, g_array_index (ids, int32_t, i), &len);
      g_string_append_len (streamed, (const char *) b, (gssize) len);
    }
  g_assert_cmpstr (streamed->str, ==, text);

  /* Out-of-range ids are a programming error: reported, then skipped. */
  int32_t bad[] = { 'o', 1 << 30, -1, 'k' };
  g_test_expect_message (NULL, G_LOG_LEVEL_CRITICAL, "*out of range*");
  g_autofree char *skipped = tf_tokenizer_decode (tok, bad, G_N_ELEMENTS (bad), &len);
  g_test_assert_expected_messages ();
  g_assert_cmpstr (skipped, ==, "ok");
  g_test_expect_message (NULL, G_LOG_LEVEL_CRITICAL, "*assertion*failed*");
  g_assert_null (tf_tokenizer_token_bytes (tok, tf_tokenizer_vocab_size (tok), &len));
  g_test_assert_expected_messages ();
  g_assert_cmpuint (len, ==, 0);
}

static void
test_config (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  TfConfig config;
  g_assert_true (tf_config_preset (&config, "tiny", NULL));
  tf_tokenizer_apply_to_config (tok, &config);
  g_assert_cmpint (config.vocab_size, ==, 800);
  g_assert_cmpint (config.bos_id, ==, 793);
  g_assert_cmpint (config.assistant_id, ==, 799);
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_config_validate (&config, "test", &error));
  g_assert_no_error (error);
  g_assert_true (tf_tokenizer_matches_config (tok, &config, "test", &error));
  g_assert_no_error (error);

  /* The convention the rest of the tests assume. */
  TfConfig tiny = tf_test_tiny_config (SHARED_VOCAB);
  g_assert_true (tf_tokenizer_matches_config (tok, &tiny, "test", &error));
  g_assert_no_error (error);

  TfConfig other = config;
  other.vocab_size = 1000;
  g_assert_false (tf_tokenizer_matches_config (tok, &other, "model.safetensors", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  g_assert_cmpstr (error->message, ==,
                   "model.safetensors: config has vocab_size 1000 but the tokenizer has 800 tokens");
  g_clear_error (&error);
  other = config;
  other.eoi_id = 5;
  g_assert_false (tf_tokenizer_matches_config (tok, &other, "model.safetensors", &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "eoi_id 5 but the tokenizer's <|eoi|> is 796"));
}

typedef struct {
  const TfTokenizer *tok;
  const GString     *text;
  GArray            *ids;
} EncodeJob;

static gpointer
encode_thread (gpointer data)
{
  EncodeJob *job = data;
  for (int rep = 0; rep < 3; rep++)
    {
      g_array_set_size (job->ids, 0);
      tf_tokenizer_encode_append (job->tok, job->text->str, job->text->len, job->ids);
    }
  return NULL;
}

/* A tokenizer is read-only once built: two threads encode at once. */
static void
test_threads (void)
{
  const TfTokenizer *tok = get_shared_tokenizer ();
  g_autoptr (GString) text = english_corpus (21, 200000);
  add_noise (text, 22, 100);
  g_autoptr (GArray) want = check_round_trip (tok, text->str, text->len);
  EncodeJob jobs[2];
  GThread *threads[2];
  for (int i = 0; i < 2; i++)
    {
      jobs[i] = (EncodeJob) { tok, text, g_array_new (FALSE, FALSE, sizeof (int32_t)) };
      threads[i] = g_thread_new ("encode", encode_thread, &jobs[i]);
    }
  for (int i = 0; i < 2; i++)
    {
      g_thread_join (threads[i]);
      check_same_ids (jobs[i].ids, want);
      g_array_unref (jobs[i].ids);
    }
}

/* Not asserted (machines differ); printed for the record. */
static void
test_encode_speed (void)
{
  g_autoptr (GString) text = wordnet_glosses (1 << 20);
  const char *source = "WordNet glosses";
  if (text == NULL)
    {
      text = english_corpus (31, 1 << 20);
      source = "generated English";
    }
  const TfTokenizer *tok = get_shared_tokenizer ();
  gint64 start = g_get_monotonic_time ();
  size_t n;
  g_free (tf_tokenizer_encode (tok, text->str, text->len, &n));
  double seconds = (double) (g_get_monotonic_time () - start) / 1e6;
  g_test_message ("encoded %.2f MB of %s in %.3f s: %.1f MB/s, %.3f tokens per byte (vocab %d)",
                  (double) text->len / 1e6, source, seconds, (double) text->len / 1e6 / seconds,
                  (double) n / (double) text->len, tf_tokenizer_vocab_size (tok));
}

/* With -m perf: the numbers the README quotes. */
static void
test_perf (void)
{
  if (!g_test_perf ())
    {
      g_test_skip ("run with -m perf");
      return;
    }
  g_autoptr (GString) glosses = wordnet_glosses (6 << 20);
  if (glosses == NULL || glosses->len < (6 << 20))
    {
      g_test_skip ("needs 6 MB of WordNet glosses");
      return;
    }
  size_t n_train = 5 << 20;
  gint64 start = g_get_monotonic_time ();
  g_autoptr (TfTokenizer) tok = train_one (glosses->str, n_train, 4096);
  double train_s = (double) (g_get_monotonic_time () - start) / 1e6;
  g_assert_cmpint (tf_tokenizer_vocab_size (tok), ==, 4096);
  start = g_get_monotonic_time ();
  size_t n, held_out = glosses->len - n_train;
  g_free (tf_tokenizer_encode (tok, glosses->str + n_train, held_out, &n));
  double encode_s = (double) (g_get_monotonic_time () - start) / 1e6;
  g_test_minimized_result (train_s, "trained on %.1f MB of WordNet glosses to vocab 4096 in %.2f s",
                           (double) n_train / 1e6, train_s);
  g_test_message ("held-out %.2f MB: encoded in %.3f s (%.1f MB/s), %.4f tokens per byte",
                  (double) held_out / 1e6, encode_s, (double) held_out / 1e6 / encode_s,
                  (double) n / (double) held_out);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tokenizer/special-text", test_special_text);
  g_test_add_func ("/tokenizer/known-merges", test_known_merges);
  g_test_add_func ("/tokenizer/train/matches-reference", test_train_matches_reference);
  g_test_add_func ("/tokenizer/train/determinism", test_train_determinism);
  g_test_add_func ("/tokenizer/train/vocab-size", test_train_vocab_size);
  g_test_add_func ("/tokenizer/train/errors", test_train_errors);
  g_test_add_func ("/tokenizer/round-trip/random", test_round_trip_random);
  g_test_add_func ("/tokenizer/round-trip/text", test_round_trip_text);
  g_test_add_func ("/tokenizer/compression", test_compression);
  g_test_add_func ("/tokenizer/json/round-trip", test_json_round_trip);
  g_test_add_func ("/tokenizer/json/errors", test_json_errors);
  g_test_add_func ("/tokenizer/special-injection", test_special_injection);
  g_test_add_func ("/tokenizer/decode", test_decode);
  g_test_add_func ("/tokenizer/config", test_config);
  g_test_add_func ("/tokenizer/threads", test_threads);
  g_test_add_func ("/tokenizer/encode-speed", test_encode_speed);
  g_test_add_func ("/tokenizer/perf", test_perf);
  int status = g_test_run ();
  g_clear_pointer (&shared_tok, tf_tokenizer_free);
  if (shared_corpus != NULL)
    g_string_free (shared_corpus, TRUE);
  return status;
}
