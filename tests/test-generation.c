/* test-generation.c: TfGeneration runs the engine in a worker thread and
 * reports on the main context. Steps arrive in order (merged, never out of
 * order, the last one always), cancel ends a job within a step, streamed
 * tokens add up to the reply, a second job while one runs is refused, two
 * objects run side by side, and while an image and a long text are made no
 * dispatch of the main loop costs its thread an engine step's CPU time. No
 * GTK: a plain main context. */
#include "config.h"

#include "tf-generation.h"
#include "tf-test-util.h"

#include <math.h>
#include <string.h>

static char *model_dir;
static char *model_path;   /* the tiny model with a tokenizer */
static GThread *main_thread;

/* Everything one object reported. */
typedef struct {
  GArray  *steps;          /* guint, as delivered */
  guint    n_steps;
  GString *tokens;         /* the tokens' texts, joined */
  guint    n_tokens;
  gboolean tokens_valid;   /* every token valid UTF-8, probabilities in 0..1 */
  guint    n_image_begin, n_image_end;
  guint    n_finished, n_failed;
  char    *text;
  GBytes  *pixels;
  GError  *error;
  GArray  *busy;           /* gboolean at each notify::busy */
  guint    step_wrong_size;
  guint    wrong_thread;   /* signals emitted outside the main thread */
} Record;

static void
check_thread (Record *r)
{
  if (g_thread_self () != main_thread)
    r->wrong_thread++;
}

static void
on_step (TfGeneration *gen, guint step, guint n_steps, GBytes *x_t, GBytes *x0, Record *r)
{
  check_thread (r);
  const gsize bytes = sizeof (float) * tf_generation_get_image_size (gen) *
                      tf_generation_get_image_size (gen) * tf_generation_get_channels (gen);
  g_array_append_val (r->steps, step);
  r->n_steps = n_steps;
  if (g_bytes_get_size (x_t) != bytes || g_bytes_get_size (x0) != bytes)
    r->step_wrong_size++;
}

static void
on_token (TfGeneration *gen, TfToken *token, Record *r)
{
  check_thread (r);
  if (!g_utf8_validate (token->text, -1, NULL) || token->text[0] == '\0' ||
      token->probability < 0 || token->probability > 1 || token->n_alternatives < 1)
    r->tokens_valid = FALSE;
  for (int k = 0; k < token->n_alternatives; k++)
    if (!g_utf8_validate (token->alternative_texts[k], -1, NULL))
      r->tokens_valid = FALSE;
  g_string_append (r->tokens, token->text);
  r->n_tokens++;
}

static void
on_image_begin (TfGeneration *gen, Record *r)
{
  check_thread (r);
  r->n_image_begin++;
}

static void
on_image_end (TfGeneration *gen, GBytes *pixels, Record *r)
{
  check_thread (r);
  r->n_image_end++;
}

static void
on_finished (TfGeneration *gen, const char *text, GBytes *pixels, Record *r)
{
  check_thread (r);
  g_assert_false (tf_generation_get_busy (gen));
  r->n_finished++;
  g_free (r->text);
  r->text = g_strdup (text);
  g_clear_pointer (&r->pixels, g_bytes_unref);
  r->pixels = pixels != NULL ? g_bytes_ref (pixels) : NULL;
}

static void
on_failed (TfGeneration *gen, const GError *error, Record *r)
{
  check_thread (r);
  g_assert_false (tf_generation_get_busy (gen));
  r->n_failed++;
  g_clear_error (&r->error);
  r->error = g_error_copy (error);
}

static void
on_busy (TfGeneration *gen, GParamSpec *pspec, Record *r)
{
  gboolean busy = tf_generation_get_busy (gen);
  g_array_append_val (r->busy, busy);
}

static void
record_init (Record *r, TfGeneration *gen)
{
  memset (r, 0, sizeof *r);
  r->steps = g_array_new (FALSE, FALSE, sizeof (guint));
  r->tokens = g_string_new (NULL);
  r->tokens_valid = TRUE;
  r->busy = g_array_new (FALSE, FALSE, sizeof (gboolean));
  g_signal_connect (gen, "step", G_CALLBACK (on_step), r);
  g_signal_connect (gen, "token", G_CALLBACK (on_token), r);
  g_signal_connect (gen, "image-begin", G_CALLBACK (on_image_begin), r);
  g_signal_connect (gen, "image-end", G_CALLBACK (on_image_end), r);
  g_signal_connect (gen, "finished", G_CALLBACK (on_finished), r);
  g_signal_connect (gen, "failed", G_CALLBACK (on_failed), r);
  g_signal_connect (gen, "notify::busy", G_CALLBACK (on_busy), r);
}

/* Forgets what was reported (the handlers stay). */
static void
record_reset (Record *r)
{
  g_array_set_size (r->steps, 0);
  g_array_set_size (r->busy, 0);
  g_string_truncate (r->tokens, 0);
  r->n_tokens = r->n_image_begin = r->n_image_end = r->n_finished = r->n_failed = 0;
  r->tokens_valid = TRUE;
  g_clear_pointer (&r->text, g_free);
  g_clear_pointer (&r->pixels, g_bytes_unref);
  g_clear_error (&r->error);
}

static void
record_clear (Record *r)
{
  record_reset (r);
  g_array_unref (r->steps);
  g_array_unref (r->busy);
  g_string_free (r->tokens, TRUE);
}

static void
assert_busy_went_true_then_false (const Record *r)
{
  g_assert_cmpuint (r->busy->len, ==, 2);
  g_assert_true (g_array_index (r->busy, gboolean, 0));
  g_assert_false (g_array_index (r->busy, gboolean, 1));
}

static void
wait_for_end (Record *r)
{
  while (r->n_finished + r->n_failed == 0)
    g_main_context_iteration (NULL, TRUE);
  /* nothing more may follow the end of a job */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (r->n_finished + r->n_failed, ==, 1);
  g_assert_cmpuint (r->wrong_thread, ==, 0);
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer data)
{
  TfGeneration **out = data;
  g_autoptr (GError) error = NULL;
  *out = tf_generation_new_from_file_finish (result, &error);
  g_assert_no_error (error);
}

/* Loads @path the way the application does, in a worker thread. */
static TfGeneration *
load (const char *path)
{
  TfGeneration *gen = NULL;
  tf_generation_new_from_file_async (path, NULL, on_loaded, &gen);
  while (gen == NULL)
    g_main_context_iteration (NULL, TRUE);
  return gen;
}

static void
settings_for_test (TfGenerateSettings *s)
{
  tf_generate_settings_init (s);
  s->steps = 12;
  s->seed = 3;
  s->max_tokens = 40;
}

static void
on_load_failed (GObject *source, GAsyncResult *result, gpointer data)
{
  GError **out = data;
  g_assert_null (tf_generation_new_from_file_finish (result, out));
  g_assert_nonnull (*out);
}

typedef struct {
  TfGeneration       *gen;
  Record              r;
  TfGenerateSettings  s;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  f->gen = load (model_path);
  record_init (&f->r, f->gen);
  settings_for_test (&f->s);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  record_clear (&f->r);
  g_object_unref (f->gen);
}

static void
test_load_error (void)
{
  g_autofree char *missing = g_build_filename (model_dir, "missing.safetensors", NULL);
  GError *error = NULL;
  tf_generation_new_from_file_async (missing, NULL, on_load_failed, &error);
  while (error == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, missing));
  g_error_free (error);
}

static void
test_image_steps (Fixture *f, gconstpointer data)
{
  TfGeneration *gen = f->gen;
  g_autoptr (GError) error = NULL;

  g_assert_true (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (tf_generation_get_busy (gen));
  wait_for_end (&f->r);

  g_assert_cmpuint (f->r.n_finished, ==, 1);
  g_assert_no_error (f->r.error);
  g_assert_null (f->r.text);
  g_assert_nonnull (f->r.pixels);
  const int size = tf_generation_get_image_size (gen), channels = tf_generation_get_channels (gen);
  g_assert_cmpuint (g_bytes_get_size (f->r.pixels), ==, sizeof (float) * size * size * channels);
  gsize n;
  const float *px = g_bytes_get_data (f->r.pixels, &n);
  for (gsize k = 0; k < n / sizeof (float); k++)
    g_assert_true (isfinite (px[k]));
  /* steps: strictly increasing, ending at n (merged bursts may skip some) */
  g_assert_cmpuint (f->r.steps->len, >=, 1);
  g_assert_cmpuint (f->r.n_steps, ==, 12);
  for (guint i = 1; i < f->r.steps->len; i++)
    g_assert_cmpuint (g_array_index (f->r.steps, guint, i), >, g_array_index (f->r.steps, guint, i - 1));
  g_assert_cmpuint (g_array_index (f->r.steps, guint, 0), >=, 1);
  g_assert_cmpuint (g_array_index (f->r.steps, guint, f->r.steps->len - 1), ==, 12);
  g_assert_cmpuint (f->r.step_wrong_size, ==, 0);
  g_test_message ("%u of 12 steps delivered", f->r.steps->len);
  /* image-begin and image-end belong to chat replies */
  g_assert_cmpuint (f->r.n_image_begin + f->r.n_image_end, ==, 0);
  /* busy: TRUE when it started, FALSE at the end */
  assert_busy_went_true_then_false (&f->r);
  g_assert_false (tf_generation_get_busy (gen));

  /* the same seed gives the same image again */
  g_autoptr (GBytes) first = g_bytes_ref (f->r.pixels);
  record_reset (&f->r);
  g_assert_true (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_true (g_bytes_equal (first, f->r.pixels));

  /* the precision set applies to the next job: bf16 draws another image
   * (its products round their operands), fp32 the first one again */
  tf_generation_set_precision (gen, TF_PRECISION_BF16);
  record_reset (&f->r);
  g_assert_true (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_cmpuint (f->r.n_finished, ==, 1);
  g_assert_cmpint (tf_generator_backend (tf_generation_get_generator (gen)), ==,
                   tf_gemm_backend_for (TF_PRECISION_BF16));
  g_assert_false (g_bytes_equal (first, f->r.pixels));
  tf_generation_set_precision (gen, TF_PRECISION_FP32);
  record_reset (&f->r);
  g_assert_true (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_true (g_bytes_equal (first, f->r.pixels));

  /* Steps that arrive while the main loop is away are merged: the loop
   * looks only every 50 ms, once, and each look may bring at most one step
   * (the latest), however many the worker made meanwhile. */
  record_reset (&f->r);
  f->s.steps = 40;
  g_assert_true (tf_generation_generate_image (gen, "a blue square", &f->s, NULL, &error));
  guint looks = 0;
  while (f->r.n_finished + f->r.n_failed == 0)
    {
      g_usleep (50 * 1000);
      g_main_context_iteration (NULL, FALSE);
      looks++;
    }
  g_assert_cmpuint (f->r.n_finished, ==, 1);
  g_test_message ("%u of 40 steps delivered in %u looks of the main loop", f->r.steps->len,
                  looks);
  g_assert_cmpuint (f->r.steps->len, <=, looks);
  g_assert_cmpuint (f->r.wrong_thread, ==, 0);
  for (guint i = 1; i < f->r.steps->len; i++)
    g_assert_cmpuint (g_array_index (f->r.steps, guint, i), >,
                      g_array_index (f->r.steps, guint, i - 1));
  g_assert_cmpuint (g_array_index (f->r.steps, guint, f->r.steps->len - 1), ==, 40);
}

/* Stops as soon as the first step is shown. */
static void
cancel_on_first_step (TfGeneration *gen, guint step, guint n_steps, GBytes *x_t, GBytes *x0,
                      gpointer data)
{
  guint *cancelled_at = data;
  if (*cancelled_at == 0)
    {
      *cancelled_at = step;
      tf_generation_cancel (gen);
    }
}

static void
test_cancel (Fixture *f, gconstpointer data)
{
  TfGeneration *gen = f->gen;
  f->s.steps = 1000;   /* far longer than the test waits */
  guint cancelled_at = 0;
  g_signal_connect (gen, "step", G_CALLBACK (cancel_on_first_step), &cancelled_at);
  g_autoptr (GError) error = NULL;

  gint64 start = g_get_monotonic_time ();
  g_assert_true (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  wait_for_end (&f->r);
  gint64 took = g_get_monotonic_time () - start;
  g_assert_cmpuint (f->r.n_failed, ==, 1);
  g_assert_error (f->r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (tf_generation_get_busy (gen));
  assert_busy_went_true_then_false (&f->r);
  /* Within one step of the worker's. How many steps it finished while the
   * dispatch that cancelled ran is the scheduler's business, but they wait
   * merged into one; after that, only the step in flight when the cancel
   * came. So at most two are shown after the one that cancelled, whatever
   * their numbers. */
  guint last = g_array_index (f->r.steps, guint, f->r.steps->len - 1);
  g_test_message ("cancelled at step %u, last step shown %u, %u shown after it, %.0f ms in all",
                  cancelled_at, last, f->r.steps->len - 1, took / 1000.0);
  g_assert_cmpuint (g_array_index (f->r.steps, guint, 0), ==, cancelled_at);
  g_assert_cmpuint (f->r.steps->len - 1, <=, 2);

  /* A chat reply stopped through the caller's cancellable before it starts
   * (cancelled before it is asked for: a short reply can otherwise finish
   * before the cancel reaches the worker, and then it rightly ends with
   * `finished`). */
  record_reset (&f->r);
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_cancellable_cancel (cancellable);
  g_assert_true (tf_generation_chat (gen, "hello", NULL, &f->s, cancellable, &error));
  wait_for_end (&f->r);
  g_assert_error (f->r.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (tf_generation_get_busy (gen));

  /* and the object works again afterwards */
  record_reset (&f->r);
  f->s.steps = 3;
  cancelled_at = 1;   /* no more cancelling */
  g_assert_true (tf_generation_generate_image (gen, "a blue square", &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_cmpuint (f->r.n_finished, ==, 1);
}

static void
test_chat_stream (Fixture *f, gconstpointer data)
{
  TfGeneration *gen = f->gen;
  f->s.temperature = 1.5;   /* a random model writes any byte: split characters */
  f->s.top_p = 1;
  g_autoptr (GError) error = NULL;

  for (int turn = 0; turn < 2; turn++)
    {
      record_reset (&f->r);
      g_assert_true (tf_generation_chat (gen, turn == 0 ? "hello" : "and again", NULL, &f->s, NULL,
                                         &error));
      g_assert_no_error (error);
      wait_for_end (&f->r);
      g_assert_no_error (f->r.error);
      g_assert_nonnull (f->r.text);
      g_assert_null (f->r.pixels);
      g_assert_true (f->r.tokens_valid);
      g_assert_cmpuint (f->r.n_tokens, >, 0);
      g_assert_true (g_utf8_validate (f->r.text, -1, NULL));
      g_assert_cmpstr (f->r.tokens->str, ==, f->r.text);
      g_test_message ("turn %d: %u tokens, %zu bytes", turn, f->r.n_tokens, strlen (f->r.text));
    }

  /* A caption streams the same way. */
  record_reset (&f->r);
  const int values = tf_generation_get_image_size (gen) * tf_generation_get_image_size (gen) *
                     tf_generation_get_channels (gen);
  g_autofree float *picture = g_new0 (float, values);
  g_assert_true (tf_generation_caption (gen, picture, &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_no_error (f->r.error);
  g_assert_cmpstr (f->r.tokens->str, ==, f->r.text);
  g_assert_true (f->r.tokens_valid);

  /* Restoring, then resetting: jobs and calls that end cleanly. */
  record_reset (&f->r);
  const TfChatTurn turns[] = { { TRUE, "hello", NULL }, { FALSE, "hi there", picture } };
  g_assert_true (tf_generation_chat_restore (gen, turns, G_N_ELEMENTS (turns), NULL, &error));
  wait_for_end (&f->r);
  g_assert_cmpuint (f->r.n_finished, ==, 1);
  g_assert_null (f->r.text);
  g_assert_null (f->r.pixels);
  g_assert_true (tf_generation_chat_reset (gen, &error));
  g_assert_no_error (error);
}

static void
remember_first_id (const TfTokenEvent *ev, gpointer data)
{
  int32_t *first = data;
  if (*first < 0)
    *first = ev->id;
}

/* A chat reply that draws: the model is made to write <|boi|> first (its
 * row of the LM head becomes a large copy of the row of the token the reply
 * starts with), and the reply shows the image, every denoising step. */
static void
test_chat_image (Fixture *f, gconstpointer data)
{
  TfGeneration *gen = f->gen;
  f->s.temperature = 0;
  f->s.max_tokens = 3;
  g_autoptr (GError) error = NULL;

  g_assert_true (tf_generation_chat (gen, "draw", NULL, &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_cmpuint (f->r.n_image_begin, ==, 0);

  /* The engine directly (no job runs): the id of the reply's first token. */
  TfGenerator *engine = tf_generation_get_generator (gen);
  g_assert_true (tf_generation_chat_reset (gen, &error));
  int32_t first = -1;
  TfGenerateCallbacks cb = { .token = remember_first_id, .user_data = &first };
  g_autofree char *reply = tf_generator_chat (engine, "draw", NULL, &f->s, &cb, &error);
  g_assert_no_error (error);
  g_assert_cmpint (first, >=, 0);
  g_assert_true (tf_generation_chat_reset (gen, &error));
  TfModel *m = tf_generator_model (engine);
  const TfConfig *c = tf_model_config (m);
  float *lm_head = tf_model_params (m) + tf_model_find_tensor (m, "lm_head.weight")->offset;
  for (int e = 0; e < c->d_model; e++)
    lm_head[(size_t) c->boi_id * c->d_model + e] = 4 * lm_head[(size_t) first * c->d_model + e];

  /* One token, <|boi|>: what a random model writes after its image (maybe
   * another <|boi|>, with no room left in 128 positions) is not the test's. */
  record_reset (&f->r);
  f->s.max_tokens = 1;
  g_assert_true (tf_generation_chat (gen, "draw", NULL, &f->s, NULL, &error));
  wait_for_end (&f->r);
  g_assert_no_error (f->r.error);
  g_assert_cmpuint (f->r.n_image_begin, ==, 1);
  g_assert_cmpuint (f->r.n_image_end, ==, f->r.n_image_begin);
  g_assert_cmpuint (f->r.steps->len, >=, f->r.n_image_begin);
  g_assert_cmpuint (g_array_index (f->r.steps, guint, f->r.steps->len - 1), ==, 12);
  g_assert_cmpstr (f->r.tokens->str, ==, f->r.text);
}

static void
test_busy (Fixture *f, gconstpointer data)
{
  TfGeneration *gen = f->gen;
  f->s.steps = 1000;
  g_autoptr (GError) error = NULL;

  g_assert_true (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  g_assert_false (tf_generation_generate_image (gen, "again", &f->s, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (tf_generation_chat (gen, "hello", NULL, &f->s, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (tf_generation_chat_reset (gen, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_false (tf_generation_chat_restore (gen, NULL, 0, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);
  tf_generation_cancel (gen);
  wait_for_end (&f->r);
  g_assert_cmpuint (f->r.n_failed, ==, 1);

  /* bad settings are refused up front, with no signal */
  record_reset (&f->r);
  f->s.steps = 0;
  g_assert_false (tf_generation_generate_image (gen, "a red circle", &f->s, NULL, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_false (tf_generation_get_busy (gen));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (f->r.n_finished + f->r.n_failed + f->r.busy->len, ==, 0);
}

static void
test_parallel (void)
{
  g_autoptr (TfGeneration) a = load (model_path);
  g_autoptr (TfGeneration) b = load (model_path);
  Record ra, rb;
  record_init (&ra, a);
  record_init (&rb, b);
  TfGenerateSettings s;
  settings_for_test (&s);
  s.steps = 30;
  g_autoptr (GError) error = NULL;

  g_assert_true (tf_generation_generate_image (a, "a red circle", &s, NULL, &error));
  g_assert_true (tf_generation_generate_image (b, "a red circle", &s, NULL, &error));
  g_assert_true (tf_generation_get_busy (a) && tf_generation_get_busy (b));
  wait_for_end (&ra);
  wait_for_end (&rb);
  g_assert_cmpuint (ra.n_finished, ==, 1);
  g_assert_cmpuint (rb.n_finished, ==, 1);
  /* two generators, one model file, one seed: one image */
  g_assert_true (g_bytes_equal (ra.pixels, rb.pixels));
  g_assert_cmpuint (g_array_index (ra.steps, guint, ra.steps->len - 1), ==, 30);
  g_assert_cmpuint (g_array_index (rb.steps, guint, rb.steps->len - 1), ==, 30);
  record_clear (&ra);
  record_clear (&rb);
}

/* ---- The main loop stays responsive ------------------------------------- */

typedef struct {
  gint64 last, max_gap;
  guint  ticks;
} Ticker;

static gboolean
tick (gpointer data)
{
  Ticker *t = data;
  gint64 now = g_get_monotonic_time ();
  if (t->last != 0)
    t->max_gap = MAX (t->max_gap, now - t->last);
  t->last = now;
  t->ticks++;
  return G_SOURCE_CONTINUE;
}

/* Keeps a job going until it has made enough: another image, or another
 * reply in a new conversation, started from the handler of `finished`
 * (busy is FALSE there). */
typedef struct {
  gboolean   image;
  guint      images_left;
  guint      tokens_wanted, tokens;
  TfGenerateSettings settings;
  gboolean   done;
} Workload;

static void
on_token_count (TfGeneration *gen, TfToken *token, Workload *w)
{
  w->tokens++;
}

static void
start_work (TfGeneration *gen, Workload *w)
{
  g_autoptr (GError) error = NULL;
  if (w->image)
    g_assert_true (tf_generation_generate_image (gen, "a red circle on a white background",
                                                 &w->settings, NULL, &error));
  else
    {
      g_assert_true (tf_generation_chat_reset (gen, &error));
      g_assert_true (tf_generation_chat (gen, "tell me a long story about a dog", NULL,
                                         &w->settings, NULL, &error));
    }
  g_assert_no_error (error);
  w->settings.seed++;
}

static void
on_work_finished (TfGeneration *gen, const char *text, GBytes *pixels, Workload *w)
{
  if (w->image ? --w->images_left > 0 : w->tokens < w->tokens_wanted)
    start_work (gen, w);
  else
    w->done = TRUE;
}

static void
on_work_failed (TfGeneration *gen, const GError *error, Workload *w)
{
  /* a long reply may fill the context: that ends it too */
  if (!g_error_matches (error, TF_ERROR, TF_ERROR_INPUT))
    g_error ("a job of the main-loop test failed: %s", error->message);
  on_work_finished (gen, NULL, NULL, w);
}

/* The CPU time a denoising step with @settings costs the thread that runs
 * it alone: @steps of them, here, divided by their number (the prompt's
 * prefill rides along, so this errs high). */
static gint64
engine_step_cpu_time (TfGeneration *gen, const TfGenerateSettings *settings, int steps)
{
  TfGenerator *engine = tf_generation_get_generator (gen);
  const int values = tf_config_image_values (tf_model_config (tf_generator_model (engine)));
  g_autofree float *pixels = g_new (float, values);
  TfGenerateSettings s = *settings;
  g_autoptr (GError) error = NULL;

  /* each job sets the threads again when it starts */
  tf_generator_set_threads (engine, 1);
  s.steps = steps;
  gint64 start = tf_test_thread_cpu_time ();
  g_assert_true (tf_generator_generate_image (engine, "a red circle", &s, NULL, pixels, &error));
  g_assert_no_error (error);
  return (tf_test_thread_cpu_time () - start) / steps;
}

/* While an image and a long text are made at once, the main thread only
 * hands on what the workers made: no iteration of its loop costs it half
 * the CPU time of a denoising step (its share of one step on two threads).
 * The bound is on its own CPU time, not on the wall clock: how long the
 * loop waits for a core is the scheduler's choice (two tests and two
 * workers share two cores), so the longest gap between ticks is only
 * printed. */
static void
test_main_loop_work (void)
{
  /* The bundled model when the tree has one (what the application runs),
   * else the tiny one. */
  g_autofree char *bundled = g_build_filename (g_getenv ("G_TEST_SRCDIR") != NULL ?
                                                 g_getenv ("G_TEST_SRCDIR") : ".",
                                               "..", "resources", "models",
                                               "default.safetensors", NULL);
  const char *path = g_file_test (bundled, G_FILE_TEST_EXISTS) ? bundled : model_path;
  g_autoptr (TfGeneration) image = load (path);
  g_autoptr (TfGeneration) text = load (path);
  Workload wi = { .image = TRUE, .images_left = 2 };
  Workload wt = { .image = FALSE, .tokens_wanted = 300 };
  settings_for_test (&wi.settings);
  wi.settings.steps = 50;
  settings_for_test (&wt.settings);
  wt.settings.max_tokens = 200;
  wt.settings.temperature = 1.0;
  g_signal_connect (image, "finished", G_CALLBACK (on_work_finished), &wi);
  g_signal_connect (image, "failed", G_CALLBACK (on_work_failed), &wi);
  g_signal_connect (text, "finished", G_CALLBACK (on_work_finished), &wt);
  g_signal_connect (text, "failed", G_CALLBACK (on_work_failed), &wt);
  g_signal_connect (text, "token", G_CALLBACK (on_token_count), &wt);

  const gint64 step_cpu = engine_step_cpu_time (image, &wi.settings, 5);

  Ticker ticker = { 0 };
  guint source = g_timeout_add (5, tick, &ticker);
  guint iterations = 0;
  gint64 max_cpu = 0;
  gint64 start = g_get_monotonic_time (), start_cpu = tf_test_thread_cpu_time ();
  start_work (image, &wi);
  start_work (text, &wt);
  while (!wi.done || !wt.done)
    {
      gint64 before = tf_test_thread_cpu_time ();
      g_main_context_iteration (NULL, TRUE);
      max_cpu = MAX (max_cpu, tf_test_thread_cpu_time () - before);
      iterations++;
    }
  gint64 took = g_get_monotonic_time () - start, took_cpu = tf_test_thread_cpu_time () - start_cpu;
  g_source_remove (source);

  g_test_message ("2 images of 50 steps and %u tokens at once (%s): %u iterations of the main "
                  "loop in %.0f ms, %.1f ms of them on its CPU; the longest iteration worked "
                  "%.2f ms, a denoising step takes %.2f ms; the longest gap between ticks was "
                  "%.1f ms (not a bound: the scheduler's)", wt.tokens, path, iterations,
                  took / 1000.0, took_cpu / 1000.0, max_cpu / 1000.0, step_cpu / 1000.0,
                  ticker.max_gap / 1000.0);
#if !defined(__SANITIZE_THREAD__)
  /* Under ThreadSanitizer an iteration's CPU time is partly the sanitizer's
   * own (it symbolizes each suppressed report on the thread that met it):
   * there the test runs for its races alone. */
  g_assert_cmpint (max_cpu, <, step_cpu / 2);
#endif
}

/* ---- UTF-8 pieces ------------------------------------------------------- */

static char *
take (GString *pending, const char *bytes, gboolean flush)
{
  GString *out = g_string_new (NULL);
  g_string_append (pending, bytes);
  tf_utf8_take_complete (pending, out, flush);
  return g_string_free (out, FALSE);
}

static void
test_utf8 (void)
{
  g_autoptr (GString) pending = g_string_new (NULL);
  g_autofree char *a = take (pending, "caf\xc3", FALSE);
  g_assert_cmpstr (a, ==, "caf");
  g_assert_cmpuint (pending->len, ==, 1);
  g_autofree char *b = take (pending, "\xa9!", FALSE);
  g_assert_cmpstr (b, ==, "\xc3\xa9!");
  g_assert_cmpuint (pending->len, ==, 0);

  /* a four-byte emoji in three pieces */
  g_autofree char *c1 = take (pending, "\xf0\x9f", FALSE);
  g_autofree char *c2 = take (pending, "\x8d", FALSE);
  g_autofree char *c3 = take (pending, "\x95 yum", FALSE);
  g_assert_cmpstr (c1, ==, "");
  g_assert_cmpstr (c2, ==, "");
  g_assert_cmpstr (c3, ==, "\xf0\x9f\x8d\x95 yum");

  /* bytes that never make a character: one replacement each, at once */
  g_autofree char *d = take (pending, "a\xff\x80z", FALSE);
  g_assert_cmpstr (d, ==, "a\xef\xbf\xbd\xef\xbf\xbdz");
  /* a start byte followed by a non-continuation */
  g_autofree char *e = take (pending, "\xc3(", FALSE);
  g_assert_cmpstr (e, ==, "\xef\xbf\xbd(");
  /* an unfinished character at the end, flushed */
  g_autofree char *f = take (pending, "x\xe2\x82", FALSE);
  g_assert_cmpstr (f, ==, "x");
  g_autofree char *g = take (pending, "", TRUE);
  g_assert_cmpstr (g, ==, "\xef\xbf\xbd\xef\xbf\xbd");
  g_assert_cmpuint (pending->len, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  main_thread = g_thread_self ();

  model_dir = tf_test_make_temp_dir ("tf-generation-XXXXXX");
  model_path = tf_test_save_tiny_model_with_tokenizer (model_dir, 128);

  g_test_add_func ("/generation/utf8", test_utf8);
  g_test_add_func ("/generation/load-error", test_load_error);
  g_test_add ("/generation/image-steps", Fixture, NULL, fixture_set_up, test_image_steps, fixture_tear_down);
  g_test_add ("/generation/cancel", Fixture, NULL, fixture_set_up, test_cancel, fixture_tear_down);
  g_test_add ("/generation/chat-stream", Fixture, NULL, fixture_set_up, test_chat_stream, fixture_tear_down);
  g_test_add ("/generation/chat-image", Fixture, NULL, fixture_set_up, test_chat_image, fixture_tear_down);
  g_test_add ("/generation/busy", Fixture, NULL, fixture_set_up, test_busy, fixture_tear_down);
  g_test_add_func ("/generation/parallel", test_parallel);
  g_test_add_func ("/generation/main-loop-gap", test_main_loop_work);
  int status = g_test_run ();

  tf_test_remove_tree (model_dir);
  g_free (model_dir);
  g_free (model_path);
  return status;
}
