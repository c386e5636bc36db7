/* test-chat-restore.c: tf_generator_chat_restore() puts a conversation back
 * in the cache as it was when it happened: the next turn after a restored
 * conversation has the same next-token probabilities (and draws the same
 * image) as after the live one; a different conversation does not; replies
 * without a question are refused; an overflow leaves an empty conversation. */
#include "tf-generate.h"
#include "tf-test-util.h"

#include <math.h>
#include <string.h>

/* Byte-level vocabulary without merges: every streamed token is one byte, so
 * a reply's streamed bytes encode back to exactly the tokens sampled. */
static TfGenerator *
byte_generator (int max_seq_len)
{
  static const char *const corpus[] = { "no merges" };
  g_autoptr (GError) error = NULL;
  TfTokenizer *tok = tf_tokenizer_train (corpus, NULL, 1, 256 + TF_N_SPECIAL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_tokenizer_vocab_size (tok), ==, 256 + TF_N_SPECIAL);
  TfConfig c = tf_test_tiny_config (tf_tokenizer_vocab_size (tok));
  tf_tokenizer_apply_to_config (tok, &c);
  c.max_seq_len = max_seq_len;
  TfModel *m = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (m, 11);
  TfGenerator *g = tf_generator_new (m, tok, &error);
  g_assert_no_error (error);
  return g;
}

/* What one chat turn streamed. */
typedef struct {
  GString *bytes;          /* the reply's token bytes, unstripped */
  gboolean have_first;
  TfTokenEvent first;      /* the first token (its alternatives: the distribution's top) */
  float   *image;          /* the last image drawn, or NULL */
  int      values;
} Streamed;

static void
on_token (const TfTokenEvent *ev, gpointer user_data)
{
  Streamed *s = user_data;
  if (!s->have_first)
    {
      s->first = *ev;
      s->first.text = NULL;
      s->have_first = TRUE;
    }
  g_string_append_len (s->bytes, ev->text, ev->text_len);
}

static void
on_image_end (const float *pixels, int size, int channels, gpointer user_data)
{
  Streamed *s = user_data;
  s->values = size * size * channels;
  g_free (s->image);
  s->image = g_memdup2 (pixels, sizeof (float) * s->values);
}

static void
streamed_clear (Streamed *s)
{
  if (s->bytes != NULL)
    g_string_free (s->bytes, TRUE);
  g_free (s->image);
  memset (s, 0, sizeof *s);
}

static void
settings_for_test (TfGenerateSettings *s, int max_tokens)
{
  tf_generate_settings_init (s);
  s->temperature = 0;
  s->max_tokens = max_tokens;
  s->steps = 3;
  s->seed = 5;
}

/* One live turn; fills @out (cleared first). */
static void
chat_turn (TfGenerator *g, const char *text, const float *image, int max_tokens, Streamed *out)
{
  streamed_clear (out);
  out->bytes = g_string_new (NULL);
  TfGenerateSettings s;
  settings_for_test (&s, max_tokens);
  TfGenerateCallbacks cb = { .token = on_token, .image_end = on_image_end, .user_data = out };
  g_autoptr (GError) error = NULL;
  g_autofree char *reply = tf_generator_chat (g, text, image, &s, &cb, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);
}

static float *
test_image (TfGenerator *g)
{
  const TfConfig *c = tf_model_config (tf_generator_model (g));
  const int values = tf_config_image_values (c);
  float *pixels = g_new (float, values);
  for (int k = 0; k < values; k++)
    pixels[k] = (float) sin (0.37 * k);
  return pixels;
}

/* The next turn's first token: same choice and its top probabilities within
 * float rounding (a restored reply is prefilled as one block, a live one was
 * decoded token by token). */
static gboolean
same_first_token (const Streamed *a, const Streamed *b)
{
  g_assert_true (a->have_first && b->have_first);
  if (a->first.id != b->first.id || a->first.n_alternatives != b->first.n_alternatives)
    return FALSE;
  for (int k = 0; k < a->first.n_alternatives; k++)
    if (a->first.alternative_ids[k] != b->first.alternative_ids[k] ||
        fabs (a->first.alternative_probabilities[k] - b->first.alternative_probabilities[k]) >
          1e-5 + 1e-4 * fabs (a->first.alternative_probabilities[k]))
      return FALSE;
  return TRUE;
}

static void
restore (TfGenerator *g, const TfGeneratorTurn *turns, int n)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (tf_generator_chat_restore (g, turns, n, &error));
  g_assert_no_error (error);
}

static void
test_text_and_user_image (void)
{
  g_autoptr (TfGenerator) live = byte_generator (256);
  g_autofree float *picture = test_image (live);
  Streamed r1 = { 0 }, r2 = { 0 }, next_live = { 0 }, next_restored = { 0 };
  chat_turn (live, "a red circle", NULL, 2, &r1);
  chat_turn (live, "what is this?", picture, 6, &r2);
  /* One byte a token: every token sampled was text. (A special token the
   * model writes mid-reply stays in the live cache but is not text, so no
   * restore from text can bring it back.) */
  g_assert_cmpuint (r1.bytes->len, ==, 2);
  g_assert_cmpuint (r2.bytes->len, ==, 6);
  chat_turn (live, "draw a green star", NULL, 1, &next_live);

  /* An unanswered message first: a live turn that was stopped left nothing. */
  const TfGeneratorTurn turns[] = {
    { TRUE, "this one was stopped", NULL },
    { TRUE, "a red circle", NULL }, { FALSE, r1.bytes->str, NULL },
    { TRUE, "what is this?", picture }, { FALSE, r2.bytes->str, NULL },
  };
  g_autoptr (TfGenerator) restored = byte_generator (256);
  restore (restored, turns, G_N_ELEMENTS (turns));
  chat_turn (restored, "draw a green star", NULL, 1, &next_restored);
  g_test_message ("live first token %d p=%.6f, restored %d p=%.6f", next_live.first.id,
                  next_live.first.probability, next_restored.first.id,
                  next_restored.first.probability);
  g_assert_true (same_first_token (&next_live, &next_restored));

  /* The check sees the conversation: another reply gives another distribution. */
  TfGeneratorTurn other[G_N_ELEMENTS (turns)];
  memcpy (other, turns, sizeof turns);
  other[2].text = "something else entirely";
  restore (restored, other, G_N_ELEMENTS (other));
  chat_turn (restored, "draw a green star", NULL, 1, &next_restored);
  g_assert_false (same_first_token (&next_live, &next_restored));

  /* So does the user's picture. */
  memcpy (other, turns, sizeof turns);
  other[3].image = NULL;
  restore (restored, other, G_N_ELEMENTS (other));
  chat_turn (restored, "draw a green star", NULL, 1, &next_restored);
  g_assert_false (same_first_token (&next_live, &next_restored));

  streamed_clear (&r1);
  streamed_clear (&r2);
  streamed_clear (&next_live);
  streamed_clear (&next_restored);
}

/* A reply that is an image: the live model is made to start its reply with
 * <|boi|> (its <|boi|> row of the LM head becomes twice the row of the token
 * it would have chosen), then the head is put back, so both generators have
 * the same weights for the next turn. */
static void
test_image_reply (void)
{
  g_autoptr (TfGenerator) live = byte_generator (256);
  TfModel *m = tf_generator_model (live);
  const TfConfig *c = tf_model_config (m);
  const TfParamInfo *head = tf_model_find_tensor (m, "lm_head.weight");
  float *lm_head = tf_model_params (m) + head->offset;
  const int d = c->d_model;

  Streamed probe = { 0 }, reply = { 0 }, next_live = { 0 }, next_restored = { 0 };
  chat_turn (live, "draw a red circle", NULL, 1, &probe);
  g_assert_true (probe.have_first);
  tf_generator_chat_reset (live);
  g_autofree float *saved = g_memdup2 (lm_head + (size_t) c->boi_id * d, sizeof (float) * d);
  for (int e = 0; e < d; e++)
    lm_head[(size_t) c->boi_id * d + e] = 2 * lm_head[(size_t) probe.first.id * d + e];
  chat_turn (live, "draw a red circle", NULL, 1, &reply);
  g_assert_nonnull (reply.image);
  g_assert_cmpuint (reply.bytes->len, ==, 0);
  memcpy (lm_head + (size_t) c->boi_id * d, saved, sizeof (float) * d);
  chat_turn (live, "what did you draw?", NULL, 1, &next_live);

  const TfGeneratorTurn turns[] = {
    { TRUE, "draw a red circle", NULL }, { FALSE, "", reply.image },
  };
  g_autoptr (TfGenerator) restored = byte_generator (256);
  restore (restored, turns, G_N_ELEMENTS (turns));
  chat_turn (restored, "what did you draw?", NULL, 1, &next_restored);
  g_assert_true (same_first_token (&next_live, &next_restored));

  /* Without the image the next turn sees another conversation. */
  const TfGeneratorTurn no_image[] = {
    { TRUE, "draw a red circle", NULL }, { FALSE, "", NULL },
  };
  restore (restored, no_image, G_N_ELEMENTS (no_image));
  chat_turn (restored, "what did you draw?", NULL, 1, &next_restored);
  g_assert_false (same_first_token (&next_live, &next_restored));

  streamed_clear (&probe);
  streamed_clear (&reply);
  streamed_clear (&next_live);
  streamed_clear (&next_restored);
}

/* An empty conversation after a failed restore: the next turn is a first one. */
static void
assert_fresh (TfGenerator *g)
{
  g_autoptr (TfGenerator) fresh = byte_generator (128);
  Streamed a = { 0 }, b = { 0 };
  chat_turn (fresh, "hello", NULL, 1, &a);
  chat_turn (g, "hello", NULL, 1, &b);
  g_assert_true (same_first_token (&a, &b));
  streamed_clear (&a);
  streamed_clear (&b);
}

static void
test_errors (void)
{
  g_autoptr (TfGenerator) g = byte_generator (128);
  g_autoptr (GError) error = NULL;
  const TfGeneratorTurn orphan[] = {
    { TRUE, "hello", NULL }, { FALSE, "hi", NULL }, { FALSE, "and again", NULL },
  };
  g_assert_false (tf_generator_chat_restore (g, orphan, G_N_ELEMENTS (orphan), &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "turn 3"));
  g_clear_error (&error);
  assert_fresh (g);

  /* 128 positions: two images (64 patches each) do not fit. */
  g_autofree float *picture = test_image (g);
  const TfGeneratorTurn too_long[] = {
    { TRUE, "look", picture }, { FALSE, "yes", NULL },
    { TRUE, "and this", picture }, { FALSE, "too", NULL },
  };
  g_assert_false (tf_generator_chat_restore (g, too_long, G_N_ELEMENTS (too_long), &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "context is full"));
  g_clear_error (&error);
  assert_fresh (g);

  /* Nothing to restore is an empty conversation. */
  restore (g, NULL, 0);
  assert_fresh (g);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/chat-restore/text-and-user-image", test_text_and_user_image);
  g_test_add_func ("/chat-restore/image-reply", test_image_reply);
  g_test_add_func ("/chat-restore/errors", test_errors);
  return g_test_run ();
}
