/* test-chat-data.c: text that is true about what the model draws (issue 16):
 * the drawable subjects' glosses and their held-out questions, the
 * conversation templates, and chat documents of several turns. */
#include "tf-data-private.h"
#include "tf-train.h"
#include "tf-test-util.h"

#include <stdlib.h>
#include <string.h>

static gboolean
have_packages (void)
{
  if (g_file_test ("/usr/share/wordnet/index.noun", G_FILE_TEST_EXISTS)
      && g_file_test ("/usr/share/unicode/emoji/emoji-test.txt", G_FILE_TEST_EXISTS))
    return TRUE;
  g_test_skip ("WordNet or emoji-test.txt is not installed (wordnet-base, unicode-data)");
  return FALSE;
}

static GPtrArray *
all_examples (TfDataSource *source, uint64_t seed)
{
  GPtrArray *examples = g_ptr_array_new_with_free_func (g_free);
  TfRng rng;
  tf_rng_seed (&rng, seed);
  for (int64_t i = 0; i < tf_data_source_size (source); i++)
    {
      TfExample *e = g_new0 (TfExample, 1);
      g_autoptr (GError) error = NULL;
      g_assert_true (tf_data_source_get (source, i, &rng, e, &error));
      g_assert_no_error (error);
      g_assert_nonnull (e->prompt);
      g_assert_nonnull (e->text);
      g_assert_true (g_utf8_validate (e->prompt, -1, NULL) && g_utf8_validate (e->text, -1, NULL));
      g_ptr_array_add (examples, e);
    }
  return examples;
}

static void
free_examples (GPtrArray *examples)
{
  for (guint i = 0; i < examples->len; i++)
    tf_example_clear (g_ptr_array_index (examples, i));
  g_ptr_array_unref (examples);
}

static const TfSubjectSense *
listed (const char *word)
{
  for (int i = 0; i < tf_n_subject_senses; i++)
    if (strcmp (tf_subject_senses[i].word, word) == 0)
      return &tf_subject_senses[i];
  return NULL;
}

/* Every listed subject is found in Debian's WordNet, defined in its sense,
 * and the core ones 8 times, the others twice. */
static void
test_subjects_glosses (void)
{
  if (!have_packages ())
    return;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) train = tf_data_subjects_new (NULL, NULL, TF_SPLIT_TRAIN, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_data_source_name (train), ==, "subjects");
  g_assert_false (tf_data_source_has_images (train));
  GPtrArray *examples = all_examples (train, 3);
  g_autoptr (GHashTable) definitions = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < examples->len; i++)
    {
      const TfExample *e = g_ptr_array_index (examples, i);
      g_autofree char *is = g_strdup_printf ("%s is ", e->subject);
      g_autofree char *are = g_strdup_printf ("%s are ", e->subject);
      const char *def = strstr (e->text, is) != NULL ? strstr (e->text, is) : strstr (e->text, are);
      /* a definition: "a sneaker is ...", "red is ...", "trousers are ..."
       * (not a usage: "use trackball in a sentence" → "a trackball is ...") */
      const gboolean usage = strstr (e->prompt, "sentence") != NULL
                             || strstr (e->prompt, "use ") != NULL;
      if (def != NULL && def - e->text <= 3 && !usage)
        {
          const char *first = g_hash_table_lookup (definitions, e->subject);
          if (first != NULL)
            g_assert_cmpstr (first, ==, e->text);   /* one sense only */
          g_hash_table_insert (definitions, e->subject, e->text);
          g_hash_table_insert (counts, e->subject,
                               GINT_TO_POINTER (GPOINTER_TO_INT (g_hash_table_lookup (counts,
                                                                                      e->subject)) + 1));
        }
    }
  g_test_message ("%u subjects, %" G_GINT64_FORMAT " training examples",
                  g_hash_table_size (definitions), tf_data_source_size (train));
  g_assert_cmpuint (g_hash_table_size (definitions), >, 400);
  for (int i = 0; i < tf_n_subject_senses; i++)
    {
      const TfSubjectSense *sense = &tf_subject_senses[i];
      const char *text = g_hash_table_lookup (definitions, sense->word);
      if (text == NULL)
        g_error ("subject '%s' has no definition", sense->word);
      g_assert_nonnull (strstr (text, sense->sense != NULL ? sense->sense : sense->definition));
      int n = GPOINTER_TO_INT (g_hash_table_lookup (counts, sense->word));
      g_assert_cmpint (n, ==, sense->flags & TF_SUBJECT_CORE ? 8 : 2);
    }
  const char *expected[][2] = {
    { "sneaker", "a sneaker is a canvas shoe with a pliable rubber sole." },
    { "coat", "a coat is an outer garment that has sleeves and covers the body from shoulder "
              "down; worn outdoors." },
    { "star", "a star is a plane figure with 5 or more points; often used as an emblem." },
    { "bag", "a bag is a flexible container with a single opening." },
    { "red", "red is red color or pigment; the chromatic color resembling the hue of blood." },
    { "bat", NULL },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (expected); i++)
    if (expected[i][1] != NULL)
      g_assert_cmpstr (g_hash_table_lookup (definitions, expected[i][0]), ==, expected[i][1]);
  /* an emoji's sense by its group: the bat of "Animals & Nature" */
  g_assert_nonnull (strstr (g_hash_table_lookup (definitions, "bat"), "mammal"));

  /* The wordnet source defines no subject word: "what is a coat?" gets
   * one answer in all the training data. */
  g_autoptr (TfDataSource) wordnet = tf_data_wordnet_new (NULL, TF_SPLIT_TRAIN, &error);
  g_assert_no_error (error);
  TfRng rng;
  tf_rng_seed (&rng, 4);
  for (int64_t i = 0; i < tf_data_source_size (wordnet); i++)
    {
      TfExample e;
      g_assert_true (tf_data_source_get (wordnet, i, &rng, &e, &error));
      g_autofree char *lower = g_ascii_strdown (e.subject, -1);
      g_autofree char *is = g_strdup_printf ("%s is ", lower);
      g_autofree char *a_is = g_strdup_printf ("a %s is ", lower);
      g_autofree char *an_is = g_strdup_printf ("an %s is ", lower);
      /* noun definitions only: "to bat is to wink briefly" is the verb */
      if (g_hash_table_contains (definitions, lower)
          && (g_str_has_prefix (e.text, is) || g_str_has_prefix (e.text, a_is)
              || g_str_has_prefix (e.text, an_is)))
        g_error ("wordnet defines the subject '%s': %s", e.subject, e.text);
      tf_example_clear (&e);
    }
  free_examples (examples);
}

/* The held-out subjects: never asked "what is" in training, by any source;
 * their gloss is trained under other questions; the split asks "what is
 * a X?" with that gloss as the answer. */
static void
test_subjects_heldout (void)
{
  if (!have_packages ())
    return;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) heldout = tf_data_subjects_new (NULL, NULL, TF_SPLIT_HELDOUT, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) train = tf_data_subjects_new (NULL, NULL, TF_SPLIT_TRAIN, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) wordnet = tf_data_wordnet_new (NULL, TF_SPLIT_TRAIN, &error);
  g_assert_no_error (error);
  GPtrArray *questions = all_examples (heldout, 1);
  g_test_message ("%u held-out subjects", questions->len);
  g_assert_cmpuint (questions->len, >, 80);

  /* The questions no training example may ask, and the answers training
   * must teach. */
  g_autoptr (GHashTable) forbidden = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GHashTable) answers = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < questions->len; i++)
    {
      const TfExample *q = g_ptr_array_index (questions, i);
      const TfSubjectSense *sense = listed (q->subject);
      g_assert_true (sense == NULL || !(sense->flags & TF_SUBJECT_CORE));
      g_assert_true (g_str_has_prefix (q->prompt, "what is ") || g_str_has_prefix (q->prompt, "what are "));
      g_assert_nonnull (strstr (q->prompt, q->subject));
      g_hash_table_add (answers, q->text);
      /* the term between "what is " (or "what are ") and "?" */
      const size_t skip = g_str_has_prefix (q->prompt, "what is ") ? 8 : 9;
      g_autofree char *term = g_strndup (q->prompt + skip, strlen (q->prompt) - skip - 1);
      const char *forms[] = { "what is %s?", "what's %s?", "tell me what %s is",
                              "what are %s?", "tell me what %s are" };
      for (size_t f = 0; f < G_N_ELEMENTS (forms); f++)
        {
          g_hash_table_add (forbidden, g_strdup_printf (forms[f], term));
          g_hash_table_add (forbidden, g_strdup_printf (forms[f], q->subject));
        }
    }
  TfDataSource *sources[] = { train, wordnet };
  guint n_taught = 0;
  g_autoptr (GHashTable) taught = g_hash_table_new (g_str_hash, g_str_equal);
  for (size_t s = 0; s < G_N_ELEMENTS (sources); s++)
    {
      TfRng rng;
      tf_rng_seed (&rng, 5);
      for (int64_t i = 0; i < tf_data_source_size (sources[s]); i++)
        {
          TfExample e;
          g_assert_true (tf_data_source_get (sources[s], i, &rng, &e, &error));
          if (g_hash_table_contains (forbidden, e.prompt))
            g_error ("%s asks a held-out question in training: %s", tf_data_source_name (sources[s]),
                     e.prompt);
          const char *answer = NULL;
          if (g_hash_table_lookup_extended (answers, e.text, (gpointer *) &answer, NULL)
              && g_hash_table_add (taught, (gpointer) answer))
            n_taught++;
          tf_example_clear (&e);
        }
    }
  /* every held-out answer is trained after another question */
  g_assert_cmpuint (n_taught, ==, g_hash_table_size (answers));
  free_examples (questions);
}

/* The conversation turns: well formed, both splits disjoint, and what
 * they say about the model matches the sources. */
static void
test_chat_templates (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) train = tf_data_source_open ("chat", TF_SPLIT_TRAIN, 32, 3, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) heldout = tf_data_source_open ("chat", TF_SPLIT_HELDOUT, 32, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (train), >=, 50);
  g_assert_cmpint (tf_data_source_size (heldout), >=, 10);
  GPtrArray *examples = all_examples (train, 7);
  GPtrArray *held = all_examples (heldout, 7);
  g_autoptr (GHashTable) prompts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GHashTable) topics = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < examples->len; i++)
    {
      const TfExample *e = g_ptr_array_index (examples, i);
      g_assert_true (e->chat);
      g_assert_cmpint (e->kind, ==, TF_EXAMPLE_TEXT);
      g_assert_cmpuint (strlen (e->prompt), >, 0);
      g_assert_cmpuint (strlen (e->text), >, 0);
      g_assert_cmpuint (strlen (e->text), <, 400);
      g_assert_null (strstr (e->text, "<|"));
      g_assert_null (strstr (e->prompt, "<|"));
      g_hash_table_add (prompts, g_ascii_strdown (e->prompt, -1));
      g_hash_table_add (topics, e->subject);
    }
  for (guint i = 0; i < held->len; i++)
    {
      const TfExample *e = g_ptr_array_index (held, i);
      g_autofree char *lower = g_ascii_strdown (e->prompt, -1);
      g_assert_false (g_hash_table_contains (prompts, lower));
      g_assert_true (g_hash_table_contains (topics, e->subject));   /* still trained */
    }
  const char *asked[] = { "hello", "hi", "what can you draw?", "who are you?", "thanks", "help" };
  for (size_t i = 0; i < G_N_ELEMENTS (asked); i++)
    if (!g_hash_table_contains (prompts, asked[i]))
      g_error ("no training turn for '%s'", asked[i]);

  /* "what can you draw?" names every class, shape and colour. */
  TfRng rng;
  tf_rng_seed (&rng, 1);
  const char *plurals[] = { "t-shirts", "trousers", "pullovers", "dresses", "coats", "sandals",
                            "shirts", "sneakers", "bags", "ankle boots", "circles", "squares",
                            "triangles", "stars", "hearts", "crosses", "emoji" };
  gboolean found = FALSE;
  for (guint i = 0; i < examples->len; i++)
    {
      const TfExample *e = g_ptr_array_index (examples, i);
      if (g_ascii_strcasecmp (e->prompt, "what can you draw?") != 0)
        continue;
      found = TRUE;
      for (size_t k = 0; k < G_N_ELEMENTS (plurals); k++)
        g_assert_nonnull (strstr (e->text, plurals[k]));
    }
  g_assert_true (found);
  for (guint i = 0; i < examples->len; i++)
    {
      const TfExample *e = g_ptr_array_index (examples, i);
      if (strcmp (e->subject, "colours") != 0)
        continue;
      const char *colours[] = { "red", "orange", "yellow", "green", "blue", "purple", "pink",
                                "black" };
      for (size_t k = 0; k < G_N_ELEMENTS (colours); k++)
        g_assert_nonnull (strstr (e->text, colours[k]));
    }

  /* Questions beyond it are answered "I cannot", and none of them is a
   * "what is a X?", which gets a gloss. */
  const char *beyond[] = { "facts", "tasks" };
  for (size_t k = 0; k < G_N_ELEMENTS (beyond); k++)
    g_assert_true (g_hash_table_contains (topics, beyond[k]));
  for (guint i = 0; i < examples->len; i++)
    {
      const TfExample *e = g_ptr_array_index (examples, i);
      if (strcmp (e->subject, "facts") == 0 || strcmp (e->subject, "tasks") == 0)
        {
          g_autofree char *lower = g_ascii_strdown (e->prompt, -1);
          g_assert_false (g_str_has_prefix (lower, "what is a ") ||
                          g_str_has_prefix (lower, "what is an "));
          g_assert_true (strstr (e->text, "I cannot") != NULL ||
                         strstr (e->text, "I do not know") != NULL);
        }
    }

  /* A reply is one of its topic's answers, white space aside, and not
   * another topic's. */
  const TfExample *first = g_ptr_array_index (examples, 0);
  g_autofree char *padded = g_strdup_printf ("  %s\n", first->text);
  g_assert_true (tf_data_chat_answer_matches (first->subject, first->text));
  g_assert_true (tf_data_chat_answer_matches (first->subject, padded));
  g_assert_false (tf_data_chat_answer_matches (first->subject, "a sneaker is a shoe."));
  g_assert_false (tf_data_chat_answer_matches ("no such topic", first->text));
  for (guint i = 0; i < examples->len; i++)
    {
      const TfExample *e = g_ptr_array_index (examples, i);
      if (strcmp (e->subject, first->subject) != 0)
        {
          g_assert_false (tf_data_chat_answer_matches (first->subject, e->text));
          break;
        }
    }
  free_examples (examples);
  free_examples (held);
}

static char *tmp_dir;

static const char *const draw_starts[] = {
  "draw ", "draw me ", "make a picture of ", "show me ", "paint ", "create an image of ",
  "please draw ", "generate ", "i would like a picture of ", "sketch ",
  "make an image of ",
};

/* Documents of several turns: specials in order, an image as the reply
 * exactly where the user asked to draw, within max_seq_len, the same for
 * the same seed. */
static void
test_chat_documents (void)
{
  g_autofree char *out = g_build_filename (tmp_dir, "docs.safetensors", NULL);
  TfTrainOptions o;
  tf_train_options_init (&o);
  g_free (o.preset);
  /* 256 positions, as the default preset: room for three images and talk */
  o.preset = g_strdup ("small");
  g_strfreev (o.data);
  o.data = g_strsplit ("shapes,chat", ",", -1);
  o.out = g_strdup (out);
  o.vocab_size = 1000;   /* short texts, as a real vocabulary makes them */
  o.chat_fraction = 0.5;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  const int max_seq_len = tf_model_config (tf_trainer_model (tr))->max_seq_len;
  tf_train_options_clear (&o);

  const int n = 400;
  g_autofree int *positions = NULL;
  g_auto (GStrv) docs = tf_trainer_sample_documents (tr, 9, n, &positions, &error);
  g_assert_no_error (error);
  g_auto (GStrv) again = tf_trainer_sample_documents (tr, 9, n, NULL, &error);
  g_assert_no_error (error);
  int multi = 0, late_draws = 0, captions = 0, talk = 0, capitals = 0, plain = 0;
  for (int d = 0; d < n; d++)
    {
      g_assert_cmpstr (docs[d], ==, again[d]);
      if (d < 40)
        g_test_message ("[%d] %s", positions[d], docs[d]);
      g_assert_cmpint (positions[d], <=, max_seq_len);
      g_assert_true (g_str_has_prefix (docs[d], "<|bos|>"));
      g_assert_true (g_str_has_suffix (docs[d], "<|eos|>"));
      if (strstr (docs[d], "<|user|>") == NULL)
        {
          g_assert_null (strstr (docs[d], "<|assistant|>"));
          continue;
        }
      /* <|bos|> then turns: <|user|> message <|assistant|> reply <|eos|> */
      g_auto (GStrv) turns = g_strsplit (docs[d] + strlen ("<|bos|>"), "<|eos|>", -1);
      int n_turns = (int) g_strv_length (turns) - 1;
      g_assert_cmpstr (turns[n_turns], ==, "");
      multi += n_turns > 1;
      for (int k = 0; k < n_turns; k++)
        {
          const char *turn = turns[k];
          g_assert_true (g_str_has_prefix (turn, "<|user|>"));
          const char *assistant = strstr (turn, "<|assistant|>");
          g_assert_nonnull (assistant);
          g_autofree char *user = g_strndup (turn + strlen ("<|user|>"),
                                             (gsize) (assistant - turn) - strlen ("<|user|>"));
          const char *reply = assistant + strlen ("<|assistant|>");
          g_assert_null (strstr (reply, "<|user|>"));
          g_assert_null (strstr (reply, "<|assistant|>"));
          /* messages start with a capital now and then, as people write */
          g_autofree char *lower = g_ascii_strdown (user, -1);
          capitals += g_ascii_isupper (user[0]);
          plain += g_ascii_islower (user[0]);
          gboolean asks_draw = FALSE;
          for (size_t p = 0; p < G_N_ELEMENTS (draw_starts); p++)
            asks_draw |= g_str_has_prefix (lower, draw_starts[p]);
          gboolean draws = g_str_has_prefix (reply, "<|boi|><|image t=")
                           && g_str_has_suffix (reply, "|><|eoi|>");
          if (asks_draw != draws)
            g_test_message ("asks to draw? %d; draws? %d: %s", asks_draw, draws, turn);
          g_assert_cmpint (asks_draw, ==, draws);
          g_assert_true (draws || strstr (reply, "<|image") == NULL);
          if (draws && k >= 2)
            late_draws++;
          if (g_str_has_prefix (user, "<|boi|><|image t="))
            {
              /* an image to describe, noised at most halfway */
              int t = atoi (user + strlen ("<|boi|><|image t="));
              g_assert_cmpint (t, <=, 500);
              g_assert_nonnull (strstr (user, "|><|eoi|>"));
              captions++;
            }
          else
            g_assert_null (strstr (user, "<|boi|>"));
          talk += !draws && strstr (user, "<|boi|>") == NULL;
        }
    }
  g_test_message ("%d of %d documents with several turns, %d draws at the third turn or "
                  "later, %d captions, %d spoken turns", multi, n, late_draws, captions, talk);
  g_assert_cmpint (multi, >, n / 20);
  g_assert_cmpint (late_draws, >, 0);
  g_assert_cmpint (captions, >, 0);
  g_assert_cmpint (talk, >, 0);
  /* a quarter of messages start with a capital, as people write them */
  g_test_message ("%d messages start with a capital, %d without", capitals, plain);
  g_assert_cmpint (capitals, >, 0);
  g_assert_cmpint (plain, >, capitals);

  /* Another seed, other documents; the trainer's own stream untouched. */
  g_auto (GStrv) other = tf_trainer_sample_documents (tr, 10, n, NULL, &error);
  g_assert_no_error (error);
  int same = 0;
  for (int d = 0; d < n; d++)
    same += strcmp (docs[d], other[d]) == 0;
  g_assert_cmpint (same, <, n / 2);
  g_assert_cmpint (tf_trainer_step (tr), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = tf_test_make_temp_dir ("tf-chat-data-XXXXXX");
  g_test_add_func ("/chat-data/subjects/glosses", test_subjects_glosses);
  g_test_add_func ("/chat-data/subjects/heldout", test_subjects_heldout);
  g_test_add_func ("/chat-data/chat/templates", test_chat_templates);
  g_test_add_func ("/chat-data/documents", test_chat_documents);
  int status = g_test_run ();
  tf_test_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return status;
}
