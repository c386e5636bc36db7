/* test-chat-restore.c: tf_generator_chat_restore() puts a conversation back
 * in the cache as it was when it happened: the next turn after a restored
 * conversation has the same next-token probabilities (and draws the same
 * image) as after the live one; a different conversation does not; replies
 * without a question are refused. A conversation longer than the context
 * keeps its latest exchanges, live as restored, the same way. */
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

/* Makes the model write <|boi|> where it would have written @token: the
 * <|boi|> row of the LM head becomes twice that token's row. Returns the
 * row as it was, for put_back_boi(). */
static float *
draw_instead_of (TfGenerator *g, int32_t token)
{
  TfModel *m = tf_generator_model (g);
  const TfConfig *c = tf_model_config (m);
  float *lm_head = tf_model_params (m) + tf_model_find_tensor (m, "lm_head.weight")->offset;
  const int d = c->d_model;
  float *saved = g_memdup2 (lm_head + (size_t) c->boi_id * d, sizeof (float) * d);

  for (int e = 0; e < d; e++)
    lm_head[(size_t) c->boi_id * d + e] = 2 * lm_head[(size_t) token * d + e];
  return saved;
}

static void
put_back_boi (TfGenerator *g, float *saved)
{
  TfModel *m = tf_generator_model (g);
  const TfConfig *c = tf_model_config (m);
  float *lm_head = tf_model_params (m) + tf_model_find_tensor (m, "lm_head.weight")->offset;

  memcpy (lm_head + (size_t) c->boi_id * c->d_model, saved, sizeof (float) * c->d_model);
  g_free (saved);
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
 * <|boi|> (draw_instead_of() the token it would have chosen), then the head
 * is put back, so both generators have the same weights for the next turn. */
static void
test_image_reply (void)
{
  g_autoptr (TfGenerator) live = byte_generator (256);
  Streamed probe = { 0 }, reply = { 0 }, next_live = { 0 }, next_restored = { 0 };
  chat_turn (live, "draw a red circle", NULL, 1, &probe);
  g_assert_true (probe.have_first);
  tf_generator_chat_reset (live);
  float *saved = draw_instead_of (live, probe.first.id);
  chat_turn (live, "draw a red circle", NULL, 1, &reply);
  g_assert_nonnull (reply.image);
  g_assert_cmpuint (reply.bytes->len, ==, 0);
  put_back_boi (live, saved);
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

  /* Nothing to restore is an empty conversation. */
  restore (g, NULL, 0);
  assert_fresh (g);
}

/* 128 positions: two images (64 patches each) do not fit; the latest
 * exchange is kept, as if the conversation had begun there. */
static void
test_restore_too_long (void)
{
  g_autoptr (TfGenerator) g = byte_generator (128);
  g_autoptr (TfGenerator) last_only = byte_generator (128);
  g_autofree float *picture = test_image (g);
  Streamed a = { 0 }, b = { 0 };
  const TfGeneratorTurn too_long[] = {
    { TRUE, "look", picture }, { FALSE, "yes", NULL },
    { TRUE, "and this", picture }, { FALSE, "too", NULL },
  };
  restore (g, too_long, G_N_ELEMENTS (too_long));
  g_assert_cmpint (tf_generator_chat_forgotten (g), ==, 2);
  restore (last_only, too_long + 2, 2);
  g_assert_cmpint (tf_generator_chat_forgotten (last_only), ==, 0);
  chat_turn (g, "ok", NULL, 1, &a);
  chat_turn (last_only, "ok", NULL, 1, &b);
  g_assert_true (same_first_token (&a, &b));
  streamed_clear (&a);
  streamed_clear (&b);
}

/* A live chat longer than the context: each message keeps room for a
 * reply (here half the context, 64 positions) by leaving out the earliest
 * exchanges, and the model then answers as after a conversation that began
 * with the first exchange kept. */
static void
test_live_forgets_earliest (void)
{
  g_autoptr (TfGenerator) live = byte_generator (128);
  g_autoptr (GPtrArray) replies = g_ptr_array_new_with_free_func (g_free);
  Streamed r = { 0 }, restored_reply = { 0 };
  int turn = 0;

  /* "hi" holds 4 positions and each reply at most 5: 1 + 9 n + 4 + 64
   * passes 128 at the eighth message. */
  while (tf_generator_chat_forgotten (live) == 0)
    {
      g_assert_cmpint (turn, <, 8);
      chat_turn (live, "hi", NULL, 4, &r);
      g_ptr_array_add (replies, g_strdup (r.bytes->str));
      turn++;
    }
  g_assert_cmpint (turn, ==, 8);
  g_assert_cmpint (tf_generator_chat_forgotten (live), ==, 2);

  /* The seven exchanges before the eighth message, the first left out. */
  TfGeneratorTurn kept[12];
  for (int i = 0; i < 6; i++)
    {
      kept[2 * i] = (TfGeneratorTurn) { TRUE, "hi", NULL };
      kept[2 * i + 1] = (TfGeneratorTurn) { FALSE, g_ptr_array_index (replies, i + 1), NULL };
    }
  g_autoptr (TfGenerator) restored = byte_generator (128);
  restore (restored, kept, 12);
  g_assert_cmpint (tf_generator_chat_forgotten (restored), ==, 0);
  chat_turn (restored, "hi", NULL, 4, &restored_reply);
  g_assert_true (same_first_token (&r, &restored_reply));
  g_assert_cmpstr (r.bytes->str, ==, restored_reply.bytes->str);

  /* A reply the context cannot hold ends where it is full, closed by its
   * <|eos|>: after a message of 120 bytes (123 positions with <|bos|>,
   * <|user|> and <|assistant|>) there is room for 4 bytes (this model's
   * reply is longer), and the next message makes room again. */
  g_autoptr (TfGenerator) g = byte_generator (128);
  g_autoptr (GString) long_message = g_string_new (NULL);
  while (long_message->len < 120)
    g_string_append (long_message, "tell me more, ");
  g_string_truncate (long_message, 120);
  chat_turn (g, long_message->str, NULL, 1000, &r);
  g_assert_cmpuint (r.bytes->len, ==, 4);
  chat_turn (g, "hi", NULL, 4, &r);
  g_assert_cmpint (tf_generator_chat_forgotten (g), ==, 2);

  streamed_clear (&r);
  streamed_clear (&restored_reply);
}

/* A reply that starts a picture it has no room for: the earliest exchange
 * makes room in the middle of the reply. 128 positions, 64 kept for a
 * reply; the picture needs 67 (<|boi|>, 64 patches, <|eoi|>, <|eos|>).
 * After a first exchange of 13 positions (<|bos|>, a message of 7, a reply
 * cut at 4 tokens, one of them special and not text, and its <|eos|>), a
 * message of 50 leaves 65: the message goes in as it is, the picture does
 * not fit until the first exchange is gone. */
static void
test_room_for_a_picture (void)
{
  g_autoptr (TfGenerator) probe_gen = byte_generator (128);
  g_autoptr (TfGenerator) live = byte_generator (128);
  g_autofree char *message = g_strnfill (48, 'x');
  Streamed first = { 0 }, probe = { 0 }, reply = { 0 }, next = { 0 };

  chat_turn (probe_gen, "hello", NULL, 4, &first);
  g_assert_cmpuint (first.bytes->len, ==, 3);
  chat_turn (probe_gen, message, NULL, 1, &probe);
  chat_turn (live, "hello", NULL, 4, &first);
  g_free (draw_instead_of (live, probe.first.id));
  chat_turn (live, message, NULL, 1, &reply);
  g_assert_nonnull (reply.image);
  g_assert_cmpint (tf_generator_chat_forgotten (live), ==, 2);
  chat_turn (live, "thanks", NULL, 1, &next);

  streamed_clear (&first);
  streamed_clear (&probe);
  streamed_clear (&reply);
  streamed_clear (&next);
}

/* Drawing or captioning between two turns reuses the cache's row: the next
 * turn puts the conversation back first and answers as without them. */
static void
test_other_work_between_turns (void)
{
  g_autoptr (TfGenerator) plain = byte_generator (256);
  g_autoptr (TfGenerator) busy = byte_generator (256);
  g_autofree float *picture = test_image (busy);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (busy)));
  g_autofree float *drawn = g_new (float, values);
  g_autoptr (GError) error = NULL;
  Streamed a = { 0 }, b = { 0 };
  TfGenerateSettings s;

  chat_turn (plain, "a red circle", NULL, 3, &a);
  chat_turn (busy, "a red circle", NULL, 3, &b);
  settings_for_test (&s, 4);
  g_assert_true (tf_generator_generate_image (busy, "a blue square", &s, NULL, drawn, &error));
  g_assert_no_error (error);
  g_autofree char *caption = tf_generator_caption (busy, picture, &s, NULL, &error);
  g_assert_no_error (error);
  chat_turn (plain, "and now?", NULL, 1, &a);
  chat_turn (busy, "and now?", NULL, 1, &b);
  g_assert_true (same_first_token (&a, &b));
  g_assert_cmpint (tf_generator_chat_forgotten (busy), ==, 0);
  streamed_clear (&a);
  streamed_clear (&b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/chat-restore/text-and-user-image", test_text_and_user_image);
  g_test_add_func ("/chat-restore/image-reply", test_image_reply);
  g_test_add_func ("/chat-restore/errors", test_errors);
  g_test_add_func ("/chat-restore/too-long", test_restore_too_long);
  g_test_add_func ("/chat-restore/live-forgets-earliest", test_live_forgets_earliest);
  g_test_add_func ("/chat-restore/other-work-between-turns", test_other_work_between_turns);
  g_test_add_func ("/chat-restore/room-for-a-picture", test_room_for_a_picture);
  return g_test_run ();
}
