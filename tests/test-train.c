/* test-train.c: the trainer. A tiny model overfits a few examples; resuming
 * (after a save, after kill -9, after Ctrl-C) continues bit for bit; bad
 * options are refused with clear messages. */
#include "tf-train.h"
#include "tf-test-util.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

static char *tmp_dir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmp_dir, name, NULL);
}

static void
test_overfit (void)
{
  g_autofree char *out = tmp_path ("overfit.safetensors");
  TfTrainOptions o;
  tf_test_tiny_train_options (&o, out);
  o.max_examples = 4;   /* a handful of examples */
  o.steps = 150;
  o.warmup_steps = 10;
  o.chat_fraction = 0;
  o.cfg_drop = 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);

  /* Averages over the first and last 20 steps (t is random per image, so
   * one step's diffusion loss is noisy). */
  double lm_first = 0, ddpm_first = 0, lm_last = 0, ddpm_last = 0, padding = 0;
  for (int s = 0; s < 150; s++)
    {
      TfTrainProgress p;
      g_assert_true (tf_trainer_train_step (tr, &p, &error));
      g_assert_no_error (error);
      if (s < 20)
        lm_first += p.lm / 20, ddpm_first += p.ddpm / 20;
      if (s >= 130)
        lm_last += p.lm / 20, ddpm_last += p.ddpm / 20;
      padding += p.padding / 150;
    }
  g_test_message ("LM loss %.3f -> %.3f, diffusion loss %.3f -> %.3f, padding %.1f%%",
                  lm_first, lm_last, ddpm_first, ddpm_last, 100 * padding);
  /* Thresholds: the LM memorises the few captions (to under 30% of its
   * start) and the ε-prediction error halves. A broken gradient, optimizer
   * or data pipeline stays near the start on both. */
  g_assert_cmpfloat (lm_last, <, 0.3 * lm_first);
  g_assert_cmpfloat (ddpm_last, <, 0.5 * ddpm_first);
  g_assert_true (tf_trainer_save (tr, &error));
  g_assert_no_error (error);

  /* The saved model loads, with its tokenizer. */
  g_autoptr (TfModel) m = tf_model_load (out, &error);
  g_assert_no_error (error);
  g_autoptr (TfSafetensors) st = tf_safetensors_open (out, &error);
  g_assert_nonnull (tf_safetensors_metadata (st, "tokenizer"));
  g_assert_nonnull (tf_safetensors_metadata (st, "provenance"));

  /* It names what its captions spoke of, once each, for completions. */
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, tf_safetensors_metadata (st, "prompt_subjects"),
                                             -1, &error));
  g_assert_no_error (error);
  JsonArray *subjects = json_node_get_array (json_parser_get_root (parser));
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < json_array_get_length (subjects); i++)
    g_assert_true (g_hash_table_add (seen, (gpointer) json_array_get_string_element (subjects, i)));
  g_assert_true (g_hash_table_contains (seen, "circle"));
  g_assert_true (g_hash_table_contains (seen, "red square"));
}

/* Completions name what the model draws: a text-only source (WordNet's
 * 87,000 defined words) adds none. */
static void
test_prompt_subjects_images_only (void)
{
  if (!g_file_test ("/usr/share/wordnet/data.noun", G_FILE_TEST_EXISTS))
    {
      g_test_skip ("WordNet (wordnet-base) is not installed");
      return;
    }
  g_autofree char *out = tmp_path ("subjects.safetensors");
  TfTrainOptions o;
  tf_test_tiny_train_options (&o, out);
  g_strfreev (o.data);
  o.data = g_strsplit ("shapes,wordnet", ",", -1);
  o.max_examples = 8;
  o.steps = 1;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);
  TfTrainProgress p;
  g_assert_true (tf_trainer_train_step (tr, &p, &error));
  g_assert_true (tf_trainer_save (tr, &error));
  g_assert_no_error (error);

  g_autoptr (TfSafetensors) st = tf_safetensors_open (out, &error);
  g_assert_no_error (error);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, tf_safetensors_metadata (st, "prompt_subjects"),
                                             -1, &error));
  JsonArray *subjects = json_node_get_array (json_parser_get_root (parser));
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < json_array_get_length (subjects); i++)
    g_hash_table_add (seen, (gpointer) json_array_get_string_element (subjects, i));
  g_test_message ("%u subjects", json_array_get_length (subjects));
  g_assert_true (g_hash_table_contains (seen, "circle"));
  g_assert_false (g_hash_table_contains (seen, "dog"));
  g_assert_cmpuint (json_array_get_length (subjects), <, 1000);
}

/* Compares two runs' saved weights, moments and EMA, bit for bit. */
static void
assert_same_run (const char *a_model, const char *b_model)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *a_state = tf_train_state_path (a_model);
  g_autofree char *b_state = tf_train_state_path (b_model);
  g_autoptr (TfSafetensors) a = tf_safetensors_open (a_state, &error);
  g_assert_no_error (error);
  g_autoptr (TfSafetensors) b = tf_safetensors_open (b_state, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_safetensors_metadata (a, "step"), ==, tf_safetensors_metadata (b, "step"));
  g_assert_cmpstr (tf_safetensors_metadata (a, "rng"), ==, tf_safetensors_metadata (b, "rng"));
  const char *names[] = { "params", "adam.m", "adam.v", "ema" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      const TfTensorInfo *ta = tf_safetensors_find (a, names[i]);
      const TfTensorInfo *tb = tf_safetensors_find (b, names[i]);
      g_assert_nonnull (ta);
      g_assert_nonnull (tb);
      g_assert_cmpmem (tf_safetensors_data (a, ta), ta->end - ta->begin,
                       tf_safetensors_data (b, tb), tb->end - tb->begin);
    }
  g_autoptr (TfModel) ma = tf_model_load (a_model, &error);
  g_assert_no_error (error);
  g_autoptr (TfModel) mb = tf_model_load (b_model, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (tf_model_params (ma), tf_model_n_params (ma) * sizeof (float),
                   tf_model_params (mb), tf_model_n_params (mb) * sizeof (float));
}

/* Trains to @steps, or stops at @until_step (> 0) through tf_trainer_run(),
 * which saves when it stops. */
static void
run_to_end (const char *out, int64_t steps, gboolean resume, int64_t until_step)
{
  TfTrainOptions o;
  tf_test_tiny_train_options (&o, out);
  o.steps = steps;
  o.resume = resume;
  o.until_step = until_step;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);
  g_assert_true (tf_trainer_run (tr, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (tf_trainer_step (tr), ==, until_step > 0 ? until_step : steps);
}

static void
test_resume_exact (void)
{
  g_autofree char *straight = tmp_path ("straight.safetensors");
  g_autofree char *split = tmp_path ("split.safetensors");
  run_to_end (straight, 10, FALSE, 0);
  run_to_end (split, 10, FALSE, 4);     /* stop after 4 steps (saved) */
  /* The resumed part on one thread: the threads follow the machine's load,
   * the numbers must not. */
  const int threads = omp_get_max_threads ();
  omp_set_num_threads (1);
  run_to_end (split, 10, TRUE, 0);      /* resume to 10 */
  omp_set_num_threads (threads);
  assert_same_run (straight, split);
}

/* Prompts for shapes and emoji are loosened now and then, as people write:
 * the colour and the shape (or the emoji) always stay, the articles stay
 * right, and other sources' text is left alone. */
static void
test_loosen_prompts (void)
{
  TfRng rng;
  tf_rng_seed (&rng, 5);
  const char *scene = "two objects: a large orange circle in the centre and a small blue star "
                      "in the top left corner";
  const char *emoji = "a medium emoji of unicorn at the bottom right on a yellow background";
  int no_where = 0, no_size = 0, big = 0, center = 0, full = 0, no_background = 0, n = 2000;
  for (int i = 0; i < n; i++)
    {
      g_autofree char *s = tf_train_loosen_prompt ("shapes", scene, &rng);
      g_assert_nonnull (strstr (s, "orange circle"));
      g_assert_nonnull (strstr (s, "blue star"));
      g_assert_true (g_str_has_prefix (s, "two objects: a"));
      g_assert_null (strstr (s, "a orange"));
      g_assert_null (strstr (s, "  "));
      no_where += strstr (s, "corner") == NULL;
      no_size += strstr (s, "large") == NULL && strstr (s, "big") == NULL;
      big += strstr (s, "a big orange circle") != NULL;
      center += strstr (s, " center ") != NULL;
      full += strcmp (s, scene) == 0;
      if (strstr (s, "corner") == NULL)
        g_assert_null (strstr (s, "in the cent"));   /* every place goes together */

      g_autofree char *e = tf_train_loosen_prompt ("emoji", emoji, &rng);
      if (i < 6)
        g_test_message ("%s | %s", s, e);
      g_assert_nonnull (strstr (e, "unicorn"));
      g_assert_null (strstr (e, "a emoji"));
      /* "an unicorn" would be wrong: before a u the size stays */
      g_autofree char *u = tf_train_loosen_prompt ("emoji", "a small unicorn on a white background",
                                                   &rng);
      g_assert_null (strstr (u, "an unicorn"));
      g_assert_null (strstr (u, "a unicorn"));
      no_background += strstr (e, "background") == NULL;
    }
  g_test_message ("of %d: %d without places, %d without a size, %d \"big\", %d \"center\", "
                  "%d unchanged; emoji: %d without a background", n, no_where, no_size, big,
                  center, full, no_background);
  /* 40% without places, 30% without sizes, 15% in other words */
  g_assert_cmpint (no_where, >, n * 35 / 100);
  g_assert_cmpint (no_where, <, n * 45 / 100);
  g_assert_cmpint (no_size, >, n / 4);
  g_assert_cmpint (no_size, <, n * 35 / 100);
  g_assert_cmpint (big, >, n / 10);
  g_assert_cmpint (center, >, n / 20);
  g_assert_cmpint (full, >, n / 6);
  g_assert_cmpint (no_background, >, n / 5);
  g_assert_cmpint (no_background, <, n * 3 / 10);

  /* other sources, unchanged */
  g_autofree char *fashion = tf_train_loosen_prompt ("fashion", "a large coat in the centre", &rng);
  g_assert_cmpstr (fashion, ==, "a large coat in the centre");
}

/* The schedules: cosine as before; with a decay fraction, the peak held,
 * then a linear decay over the last part. */
static void
test_schedule_values (void)
{
  TfTrainOptions o;
  tf_train_options_init (&o);
  o.steps = 100;
  o.warmup_steps = 10;
  o.lr = 1e-3;
  o.min_lr_ratio = 0.1;
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 0), 1e-4, 1e-15);
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 9), 1e-3, 1e-15);
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 55), 0.55e-3, 1e-15);  /* cosine's middle */
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 100), 1e-4, 1e-15);
  o.decay_fraction = 0.2;
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 0), 1e-4, 1e-15);
  for (int step = 9; step <= 80; step++)
    g_assert_cmpfloat (tf_train_learning_rate (&o, step), ==, 1e-3);
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 90), 0.55e-3, 1e-15);
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 99), 0.145e-3, 1e-15);
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 100), 1e-4, 1e-15);
  /* a decay longer than what follows the warm-up starts after it */
  o.decay_fraction = 1.0;
  g_assert_cmpfloat (tf_train_learning_rate (&o, 10), ==, 1e-3);
  g_assert_cmpfloat_with_epsilon (tf_train_learning_rate (&o, 55), 0.55e-3, 1e-15);
  tf_train_options_clear (&o);
}

/* A warm restart: a new run from a model's weights and tokenizer, said so in
 * its provenance, and still so after a resume; a model of another shape is
 * refused. */
static void
test_warm_start (void)
{
  g_autofree char *first = tmp_path ("first.safetensors");
  g_autofree char *warm = tmp_path ("warm.safetensors");
  g_autoptr (GError) error = NULL;
  run_to_end (first, 6, FALSE, 0);
  g_autoptr (TfModel) from = tf_model_load (first, &error);
  g_assert_no_error (error);

  TfTrainOptions o;
  tf_test_tiny_train_options (&o, warm);
  o.steps = 4;
  o.until_step = 2;
  o.init_from = g_strdup (first);
  g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  /* it starts where the first run's model is, with the same tokenizer */
  g_assert_cmpmem (tf_model_params (tf_trainer_model (tr)), tf_model_n_params (from) * sizeof (float),
                   tf_model_params (from), tf_model_n_params (from) * sizeof (float));
  g_assert_true (tf_trainer_run (tr, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_clear_pointer (&tr, tf_trainer_free);

  /* resumed without --init-from, the provenance still tells */
  g_free (o.init_from);
  o.init_from = NULL;
  o.until_step = 0;
  o.resume = TRUE;
  tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  g_assert_true (tf_trainer_run (tr, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_autoptr (TfSafetensors) st = tf_safetensors_open (warm, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (tf_safetensors_metadata (st, "provenance"), "\"warm_start\""));
  g_assert_nonnull (strstr (tf_safetensors_metadata (st, "provenance"), "first.safetensors"));
  /* The start is an object that holds the first model's provenance as JSON. */
  {
    g_autoptr (JsonParser) parser = json_parser_new ();
    g_assert_true (json_parser_load_from_data (parser, tf_safetensors_metadata (st, "provenance"),
                                               -1, NULL));
    JsonObject *ws = json_object_get_object_member (
      json_node_get_object (json_parser_get_root (parser)), "warm_start");
    g_assert_nonnull (ws);
    g_assert_cmpstr (json_object_get_string_member (ws, "from"), ==, "first.safetensors");
    g_assert_cmpstr (json_object_get_string_member (ws, "optimizer"), ==, "moments started at zero");
    JsonObject *before = json_object_get_object_member (ws, "provenance");
    g_assert_nonnull (before);
    g_assert_cmpint (json_object_get_int_member (before, "step"), ==, 6);
    g_assert_false (json_object_has_member (before, "warm_start"));
  }
  TfLineage lineage;
  g_autoptr (TfSafetensors) first_st = tf_safetensors_open (first, &error);
  g_assert_no_error (error);
  g_assert_true (tf_provenance_lineage (tf_safetensors_metadata (first_st, "provenance"), &lineage));
  g_assert_cmpint (lineage.runs, ==, 1);
  g_assert_cmpint (lineage.steps, ==, 6);
  const double first_seconds = lineage.wall_seconds;
  g_assert_true (tf_provenance_lineage (tf_safetensors_metadata (st, "provenance"), &lineage));
  g_assert_cmpint (lineage.runs, ==, 2);
  g_assert_cmpint (lineage.run_steps, ==, 4);
  {
    g_autofree char *started = tf_provenance_started_from (tf_safetensors_metadata (st, "provenance"));
    g_assert_cmpstr (started, ==, "first.safetensors");
    g_assert_null (tf_provenance_started_from (tf_safetensors_metadata (first_st, "provenance")));
  }
  g_assert_cmpint (lineage.steps, ==, 10);
  g_assert_cmpfloat (lineage.wall_seconds, ==, lineage.run_wall_seconds + first_seconds);

  /* A third run from the second: the chain nests as objects, so its text
   * does not grow by escaping every level's quotes again. */
  {
    g_autofree char *third = tmp_path ("third.safetensors");
    TfTrainOptions o3;
    tf_test_tiny_train_options (&o3, third);
    o3.steps = 2;
    o3.init_from = g_strdup (warm);
    g_autoptr (TfTrainer) tr3 = tf_trainer_new (&o3, &error);
    g_assert_no_error (error);
    g_assert_true (tf_trainer_run (tr3, NULL, NULL, NULL, &error));
    g_assert_no_error (error);
    tf_train_options_clear (&o3);
    g_autoptr (TfSafetensors) st3 = tf_safetensors_open (third, &error);
    g_assert_no_error (error);
    const char *p1 = tf_safetensors_metadata (first_st, "provenance");
    const char *p3 = tf_safetensors_metadata (st3, "provenance");
    gsize escapes1 = 0, escapes3 = 0;
    for (const char *c = p1; *c != '\0'; c++)
      escapes1 += *c == '\\';
    for (const char *c = p3; *c != '\0'; c++)
      escapes3 += *c == '\\';
    g_assert_cmpuint (escapes1, >, 0);   /* its options, as text */
    g_assert_cmpuint (escapes3, ==, 3 * escapes1);
    g_assert_true (tf_provenance_lineage (p3, &lineage));
    g_assert_cmpint (lineage.runs, ==, 3);
    g_assert_cmpint (lineage.run_steps, ==, 2);
    g_assert_cmpint (lineage.steps, ==, 12);
  }

  /* not with --resume, and not from another shape */
  o.init_from = g_strdup (first);
  g_assert_null (tf_trainer_new (&o, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "--init-from"));
  g_clear_error (&error);
  g_autofree char *other = tmp_path ("other.safetensors");
  o.resume = FALSE;
  g_free (o.out);
  o.out = g_strdup (other);
  g_free (o.preset);
  o.preset = g_strdup ("small");
  g_assert_null (tf_trainer_new (&o, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  g_assert_nonnull (strstr (error->message, "is a d 64, 2-layer model"));
  tf_train_options_clear (&o);
}

/* The chain of warm starts as files written before it was JSON hold it:
 * each provenance as text inside the next one's "warm_start" text, its
 * quotes escaped once more at each level. A link that does not read ends
 * the chain; what is not a provenance is refused. */
static void
test_lineage_text_chain (void)
{
  /* Each level as the trainer wrote it: JSON whose warm_start is a string. */
  const char *inner = "{\"step\":3,\"wall_seconds\":10.0,\"options\":\"{\\\"a\\\":\\\"}{\\\"}\"}";
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *middle_ws = g_strdup_printf ("weights of a.safetensors (its provenance: %s); "
                                                "optimizer moments started at zero", inner);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, 5);
  json_builder_set_member_name (b, "wall_seconds");
  json_builder_add_double_value (b, 20);
  json_builder_set_member_name (b, "warm_start");
  json_builder_add_string_value (b, middle_ws);
  json_builder_end_object (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) middle_node = json_builder_get_root (b);
  json_generator_set_root (gen, middle_node);
  g_autofree char *middle = json_generator_to_data (gen, NULL);
  g_autofree char *outer_ws = g_strdup_printf ("weights of b.safetensors (its provenance: %s); "
                                               "optimizer moments started at zero; new tensors "
                                               "initialised from the seed: x", middle);
  json_builder_reset (b);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, 7);
  json_builder_set_member_name (b, "wall_seconds");
  json_builder_add_double_value (b, 30);
  json_builder_set_member_name (b, "warm_start");
  json_builder_add_string_value (b, outer_ws);
  json_builder_end_object (b);
  g_autoptr (JsonNode) outer_node = json_builder_get_root (b);
  json_generator_set_root (gen, outer_node);
  g_autofree char *outer = json_generator_to_data (gen, NULL);

  TfLineage lineage;
  g_assert_true (tf_provenance_lineage (inner, &lineage));
  g_assert_cmpint (lineage.runs, ==, 1);
  g_assert_true (tf_provenance_lineage (outer, &lineage));
  g_assert_cmpint (lineage.runs, ==, 3);
  g_assert_cmpint (lineage.run_steps, ==, 7);
  g_assert_cmpfloat (lineage.run_wall_seconds, ==, 30);
  g_assert_cmpint (lineage.steps, ==, 15);
  g_assert_cmpfloat (lineage.wall_seconds, ==, 60);
  {
    g_autofree char *from = tf_provenance_started_from (outer);
    g_assert_cmpstr (from, ==, "b.safetensors");
  }
  /* a warm start of another type than the trainer writes names nothing */
  g_assert_null (tf_provenance_started_from ("{\"step\": 3, \"warm_start\": 5}"));
  g_assert_null (tf_provenance_started_from ("{\"step\": 3, \"warm_start\": {\"from\": 7}}"));
  g_assert_null (tf_provenance_started_from ("not json"));

  /* A broken link: the chain ends with the run that names it. */
  g_assert_true (tf_provenance_lineage ("{\"step\":2,\"wall_seconds\":1,\"warm_start\":"
                                        "\"weights of c (its provenance: {\\\"step\\\":9\"}",
                                        &lineage));
  g_assert_cmpint (lineage.runs, ==, 1);
  g_assert_cmpint (lineage.steps, ==, 2);
  g_assert_true (tf_provenance_lineage ("{\"step\":2,\"warm_start\":{\"provenance\":null}}",
                                        &lineage));
  g_assert_cmpint (lineage.runs, ==, 1);
  /* Not a provenance at all. */
  g_assert_false (tf_provenance_lineage (NULL, &lineage));
  g_assert_false (tf_provenance_lineage ("not json", &lineage));
  g_assert_false (tf_provenance_lineage ("[1, 2]", &lineage));
  g_assert_false (tf_provenance_lineage ("{\"tool\": \"make_golden.py\"}", &lineage));
  g_assert_cmpint (lineage.runs, ==, 0);
}

/* The string member @key of the "warm_start" object in @provenance. */
static char *
warm_start_member (const char *provenance, const char *key)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, provenance, -1, NULL));
  JsonObject *ws = json_object_get_object_member (
    json_node_get_object (json_parser_get_root (parser)), "warm_start");
  g_assert_nonnull (ws);
  g_assert_true (json_object_has_member (ws, key));
  return g_strdup (json_object_get_string_member (ws, key));
}

/* A plain model trained for @first_steps into tmp/@first, and a trainer of
 * @steps that starts from it (--init-from) with @recipe, writing tmp/@warm;
 * @o holds the trainer's options, @from the plain model. */
static TfTrainer *
warm_trainer (const char *first, int64_t first_steps, const char *warm, int64_t steps,
              const char *recipe, TfTrainOptions *o, TfModel **from)
{
  g_autofree char *first_path = tmp_path (first);
  g_autofree char *warm_path = tmp_path (warm);
  g_autoptr (GError) error = NULL;
  run_to_end (first_path, first_steps, FALSE, 0);
  *from = tf_model_load (first_path, &error);
  g_assert_no_error (error);
  tf_test_tiny_train_options (o, warm_path);
  o->steps = steps;
  o->init_from = g_strdup (first_path);
  o->recipe = g_strdup (recipe);
  TfTrainer *tr = tf_trainer_new (o, &error);
  g_assert_no_error (error);
  return tr;
}

/* A warm restart may bring in adaLN-Zero and the U-Net: every tensor the old
 * model has carries over; the new ones start as in a new run (adaLN-Zero's
 * at zero), the linear patches are left behind, and the provenance names
 * both. The result trains. */
static void
test_warm_start_new_image_side (void)
{
  g_autofree char *warm = tmp_path ("grafted.safetensors");
  g_autoptr (GError) error = NULL;
  TfTrainOptions o;
  g_autoptr (TfModel) from = NULL;
  g_autoptr (TfTrainer) tr = warm_trainer ("plain.safetensors", 4, "grafted.safetensors", 3,
                                           "prediction=v,time_conditioning=adaln_zero,"
                                           "image_encoder=unet,unet_channels=8,unet_blocks=1",
                                           &o, &from);
  TfModel *m = tf_trainer_model (tr);
  g_assert_cmpint (tf_model_config (m)->time_conditioning, ==, TF_TIME_ADALN_ZERO);
  g_assert_cmpint (tf_model_config (m)->image_encoder, ==, TF_IMAGE_ENCODER_UNET);
  int carried = 0, adaln = 0, unet = 0;
  for (int i = 0; i < tf_model_n_tensors (m); i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      const TfParamInfo *old = tf_model_find_tensor (from, t->name);
      const float *p = tf_model_params (m) + t->offset;
      if (old != NULL)
        {
          g_assert_cmpmem (p, t->size * sizeof (float),
                           tf_model_params (from) + old->offset, old->size * sizeof (float));
          carried++;
        }
      else if (strstr (t->name, "adaln.weight") != NULL)
        {
          for (size_t k = 0; k < t->size; k++)
            g_assert_cmpfloat (p[k], ==, 0.0f);
          adaln++;
        }
      else if (g_str_has_prefix (t->name, "unet."))
        unet++;
    }
  g_assert_cmpint (carried, >, 0);
  g_assert_cmpint (adaln, >, 0);
  g_assert_cmpint (unet, >, 0);
  g_assert_nonnull (tf_model_find_tensor (from, "patch_in.weight"));
  g_assert_null (tf_model_find_tensor (m, "patch_in.weight"));

  g_assert_true (tf_trainer_run (tr, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_autoptr (TfSafetensors) st = tf_safetensors_open (warm, &error);
  g_assert_no_error (error);
  const char *provenance = tf_safetensors_metadata (st, "provenance");
  g_autofree char *fresh = warm_start_member (provenance, "new_tensors");
  g_autofree char *dropped = warm_start_member (provenance, "dropped_tensors");
  g_assert_nonnull (strstr (fresh, "adaln.weight"));
  g_assert_null (strstr (fresh, "patch_in.weight"));
  g_assert_nonnull (strstr (dropped, "patch_in.weight"));
  tf_train_options_clear (&o);
}

/* A warm restart into the conv encoder: its tensors start exactly as a new
 * run's of the same recipe and seed would (the head at zero), the rest
 * carries over, and the result trains. */
static void
test_warm_start_conv (void)
{
  g_autofree char *warm = tmp_path ("conv.safetensors");
  g_autoptr (GError) error = NULL;
  TfTrainOptions o;
  g_autoptr (TfModel) from = NULL;
  g_autoptr (TfTrainer) tr = warm_trainer ("plain-for-conv.safetensors", 2, "conv.safetensors", 2,
                                           "prediction=v,image_encoder=conv,conv_channels=6",
                                           &o, &from);
  TfModel *m = tf_trainer_model (tr);
  g_assert_cmpint (tf_model_config (m)->image_encoder, ==, TF_IMAGE_ENCODER_CONV);
  g_autoptr (TfModel) fresh = tf_model_new (tf_model_config (m), &error);
  g_assert_no_error (error);
  tf_model_init_random (fresh, o.seed);
  int carried = 0, conv = 0;
  for (int i = 0; i < tf_model_n_tensors (m); i++)
    {
      const TfParamInfo *t = tf_model_tensor (m, i);
      const TfParamInfo *old = tf_model_find_tensor (from, t->name);
      const float *p = tf_model_params (m) + t->offset;
      const float *expect = old != NULL ? tf_model_params (from) + old->offset
                                        : tf_model_params (fresh) + t->offset;
      g_assert_cmpmem (p, t->size * sizeof (float), expect, t->size * sizeof (float));
      carried += old != NULL;
      conv += g_str_has_prefix (t->name, "conv.");
    }
  g_assert_cmpint (carried, ==, tf_model_n_tensors (m) - 8);
  g_assert_cmpint (conv, ==, 8);
  const TfParamInfo *head = tf_model_find_tensor (m, "conv.head.weight");
  for (size_t k = 0; k < head->size; k++)
    g_assert_cmpfloat (tf_model_params (m)[head->offset + k], ==, 0.0f);
  g_assert_null (tf_model_find_tensor (m, "patch_out.weight"));

  g_assert_true (tf_trainer_run (tr, NULL, NULL, NULL, &error));
  g_assert_no_error (error);
  g_autoptr (TfSafetensors) st = tf_safetensors_open (warm, &error);
  g_assert_no_error (error);
  const char *provenance = tf_safetensors_metadata (st, "provenance");
  g_autofree char *started = warm_start_member (provenance, "new_tensors");
  g_autofree char *dropped = warm_start_member (provenance, "dropped_tensors");
  g_assert_true (g_str_has_prefix (started, "conv.stem.weight"));
  g_assert_nonnull (strstr (dropped, "patch_out.weight"));
  tf_train_options_clear (&o);
}

/* The command-line tool, killed with SIGKILL at a random moment after its
 * first checkpoint, then resumed, ends where an uninterrupted run ends. */
static char *
cli_path (void)
{
  return g_build_filename (g_getenv ("G_TEST_BUILDDIR"), "..", "app", "transfusion-cli", NULL);
}

/* `transfusion-cli train` of the tiny preset, saving every @every steps. */
/* Skips the test when transfusion-cli is not there. */
static gboolean
have_cli (void)
{
  g_autofree char *cli = cli_path ();
  if (!g_file_test (cli, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("transfusion-cli is not built");
      return FALSE;
    }
  return TRUE;
}

static GPid
spawn_train_every (const char *out, const char *steps, gboolean resume, const char *every)
{
  g_autofree char *cli = cli_path ();
  const char *argv[] = { cli, "train", "--preset", "tiny", "--data", "shapes", "--batch", "4",
                         "--vocab", "300", "--lr", "0.003", "--seed", "42", "--steps", steps,
                         "--save-every-steps", every, "--out", out, resume ? "--resume" : NULL,
                         NULL };
  GPid pid;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_async (NULL, (char **) argv, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                                G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &pid, &error));
  g_assert_no_error (error);
  return pid;
}

static GPid
spawn_train (const char *out, const char *steps, gboolean resume)
{
  return spawn_train_every (out, steps, resume, "2");
}

/* How many temporary files of unfinished saves ("NAME.safetensors.XXXXXX")
 * the test folder holds. */
static int
count_temp_files (void)
{
  g_autoptr (GDir) dir = g_dir_open (tmp_dir, 0, NULL);
  int n = 0;
  for (const char *name; (name = g_dir_read_name (dir)) != NULL;)
    {
      const char *dot = strstr (name, ".safetensors.");
      n += dot != NULL && strlen (dot + strlen (".safetensors.")) == 6;
    }
  return n;
}

static int
wait_child (GPid pid)
{
  int status;
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  return status;
}

static gint64
saved_step (const char *model)
{
  g_autofree char *state = tf_train_state_path (model);
  g_autoptr (TfSafetensors) st = tf_safetensors_open (state, NULL);
  const char *step = st ? tf_safetensors_metadata (st, "step") : NULL;
  return step ? g_ascii_strtoll (step, NULL, 10) : -1;
}

/* Whether the child @pid has ended; it stays for wait_child() to reap. */
static gboolean
child_ended (GPid pid)
{
  siginfo_t info = { 0 };
  g_assert_cmpint (waitid (P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT), ==, 0);
  return info.si_pid == pid;
}

/* Waits until the run @pid, saving to @model, has saved @step, or has ended
 * without it (the caller's checks then fail). No deadline: how long a busy
 * machine takes is not what the test checks, and meson's timeout ends a
 * hang. */
static void
wait_for_saved_step (GPid pid, const char *model, gint64 step)
{
  while (saved_step (model) < step && !child_ended (pid))
    g_usleep (2000);
}

static void
test_kill_and_resume (void)
{
  if (!have_cli ())
    return;
  g_autofree char *straight = tmp_path ("cli-straight.safetensors");
  g_autofree char *killed = tmp_path ("cli-killed.safetensors");
  g_assert_true (WIFEXITED (wait_child (spawn_train (straight, "12", FALSE))));

  /* Kill once a checkpoint exists, at a moment that depends on the test's
   * random seed (printed by GLib), so repeated runs probe different ones. */
  GPid pid = spawn_train (killed, "12", FALSE);
  wait_for_saved_step (pid, killed, 2);
  g_usleep (g_test_rand_int_range (0, 30000));
  kill (pid, SIGKILL);
  int status = wait_child (pid);
  g_test_message ("killed at saved step %" G_GINT64_FORMAT " (%s)", saved_step (killed),
                  WIFSIGNALED (status) ? "by the signal" : "it had already finished");
  g_assert_cmpint (saved_step (killed), >=, 2);

  /* As a kill in the middle of a write would leave it: a partial last line. */
  g_autofree char *killed_log = tmp_path ("cli-killed.log.jsonl");
  FILE *log = fopen (killed_log, "a");
  fputs ("{\"step\":1,\"loss\":", log);
  fclose (log);

  status = wait_child (spawn_train (killed, "12", TRUE));
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  assert_same_run (straight, killed);

  /* The log holds each step once, complete, like the straight run's. */
  g_autofree char *straight_log = tmp_path ("cli-straight.log.jsonl");
  g_autofree char *a = NULL, *b = NULL;
  g_assert_true (g_file_get_contents (straight_log, &a, NULL, NULL));
  g_assert_true (g_file_get_contents (killed_log, &b, NULL, NULL));
  g_auto (GStrv) la = g_strsplit (g_strstrip (a), "\n", -1);
  g_auto (GStrv) lb = g_strsplit (g_strstrip (b), "\n", -1);
  g_assert_cmpint (g_strv_length (la), ==, 12);
  g_assert_cmpint (g_strv_length (lb), ==, 12);
  for (int i = 0; i < 12; i++)
    {
      /* Everything but the timing fields matches. */
      g_assert_cmpint (strncmp (la[i], lb[i], strstr (la[i], ",\"tokens_per_second\"") - la[i]), ==, 0);
    }
  /* No temporary files are left beside the model. */
  g_assert_cmpint (count_temp_files (), ==, 0);
}

/* `train --resume --out FILE` needs no other option: the run goes on with
 * the ones it was started with, exactly; an option given that differs from
 * them is refused. `--init-from` needs no --preset. */
/* `train --precision bf16`, stopped: `--resume` alone goes on in bf16 (the
 * state keeps it), `--resume --precision fp32` in fp32, which the provenance
 * then names. */
static void
test_resume_keeps_precision (void)
{
  if (!have_cli ())
    return;
  g_autofree char *out = tmp_path ("precision.safetensors");
  g_autofree char *cli = cli_path ();
  const char *first[] = { cli, "train", "--preset", "tiny", "--data", "shapes", "--batch", "2",
                          "--vocab", "300", "--seed", "7", "--steps", "6", "--until-step", "2",
                          "--precision", "bf16", "--out", out, NULL };
  const char *again[] = { cli, "train", "--resume", "--until-step", "4", "--out", out, NULL };
  const char *fp32[] = { cli, "train", "--resume", "--precision", "fp32", "--out", out, NULL };
  const char *const *runs[] = { first, again, fp32 };
  const char *expect[] = { "matrix products: bf16", "matrix products: bf16",
                           "matrix products: fp32\n" };
  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      g_autofree char *err = NULL;
      int status;
      g_assert_true (g_spawn_sync (NULL, (char **) runs[i], NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                                   NULL, NULL, NULL, &err, &status, NULL));
      g_assert_true (g_spawn_check_wait_status (status, NULL));
      g_assert_nonnull (strstr (err, expect[i]));
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (TfSafetensors) st = tf_safetensors_open (out, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (tf_safetensors_metadata (st, "provenance"), "\"precision\":\"fp32\""));
}

/* With --decay, a run lengthened by --resume --steps before its decay begins
 * is bit for bit the run started with those steps; lengthened later, the
 * trainer says the rate jumps. A decay fraction other than the run's own is
 * refused on resume. */
static void
test_decay_lengthen (void)
{
  if (!have_cli ())
    return;
  g_autofree char *cli = cli_path ();
  g_autofree char *straight = tmp_path ("decay-straight.safetensors");
  g_autofree char *split = tmp_path ("decay-split.safetensors");
  g_autofree char *late = tmp_path ("decay-late.safetensors");
#define TRAIN(out, steps) cli, "train", "--preset", "tiny", "--data", "shapes", "--batch", "4", \
    "--vocab", "300", "--lr", "0.003", "--seed", "42", "--warmup", "2", "--decay", "0.5", \
    "--steps", steps, "--out", out
  const char *whole[] = { TRAIN (straight, "12"), NULL };
  const char *first[] = { TRAIN (split, "8"), "--until-step", "4", NULL };
  const char *longer[] = { cli, "train", "--resume", "--steps", "12", "--out", split, NULL };
  const char *late_first[] = { TRAIN (late, "8"), "--until-step", "6", NULL };
  const char *late_longer[] = { cli, "train", "--resume", "--steps", "12", "--until-step", "7",
                                "--out", late, NULL };
  const char *other[] = { cli, "train", "--resume", "--decay", "0.25", "--out", late, NULL };
#undef TRAIN
  const char *const *runs[] = { whole, first, longer, late_first, late_longer, other };
  char *said[G_N_ELEMENTS (runs)] = { NULL };   /* each freed at the end */
  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      int status;
      g_assert_true (g_spawn_sync (NULL, (char **) runs[i], NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                                   NULL, NULL, NULL, &said[i], &status, NULL));
      g_test_message ("run %u: %s", i, said[i]);
      g_assert_true (g_spawn_check_wait_status (status, NULL) == (i != 5));
    }
  assert_same_run (straight, split);
  g_assert_nonnull (strstr (said[2], "the schedule now spans 12 steps (it spanned 8)"));
  g_assert_null (strstr (said[2], "warning"));
  g_assert_nonnull (strstr (said[4], "the learning rate of step 7 moves from"));
  g_assert_cmpint (saved_step (late), ==, 7);
  g_assert_nonnull (strstr (said[5], "started with other options"));
  for (guint i = 0; i < G_N_ELEMENTS (said); i++)
    g_free (said[i]);
}

static void
test_resume_needs_only_out (void)
{
  if (!have_cli ())
    return;
  g_autofree char *straight = tmp_path ("only-out-straight.safetensors");
  g_autofree char *split = tmp_path ("only-out-split.safetensors");
  int status = wait_child (spawn_train (straight, "8", FALSE));
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_autofree char *cli = cli_path ();
  const char *first[] = { cli, "train", "--preset", "tiny", "--data", "shapes", "--batch", "4",
                          "--vocab", "300", "--lr", "0.003", "--seed", "42", "--steps", "8",
                          "--save-every-steps", "2", "--until-step", "4", "--out", split, NULL };
  const char *again[] = { cli, "train", "--resume", "--out", split, NULL };
  const char *other[] = { cli, "train", "--resume", "--batch", "5", "--out", split, NULL };
  g_autofree char *err = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) first, NULL, G_SPAWN_STDOUT_TO_DEV_NULL |
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_cmpint (saved_step (split), ==, 4);
  g_assert_true (g_spawn_sync (NULL, (char **) other, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                               NULL, NULL, &err, &status, NULL));
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (err, "started with other options"));
  g_assert_true (g_spawn_sync (NULL, (char **) again, NULL, G_SPAWN_STDOUT_TO_DEV_NULL |
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  assert_same_run (straight, split);

  /* A warm restart without --preset takes the size of its model. */
  g_autofree char *warm = tmp_path ("only-out-warm.safetensors");
  const char *restart[] = { cli, "train", "--init-from", straight, "--data", "shapes",
                            "--batch", "2", "--steps", "2", "--out", warm, NULL };
  g_assert_true (g_spawn_sync (NULL, (char **) restart, NULL, G_SPAWN_STDOUT_TO_DEV_NULL |
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_autoptr (GError) error = NULL;
  g_autoptr (TfModel) model = tf_model_load (warm, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_config_preset_of (tf_model_config (model)), ==, "tiny");
}

/* kill -9 at random moments, again and again, each run going on from what
 * the one before left; the runs save every step, so kills land inside saves
 * too. After each kill the training state opens and its step never goes
 * back, the model beside it loads, and in the end the run is the straight
 * run's, bit for bit, with no temporary file left. TF_KILL_ROUNDS sets the
 * number of kills (6; scripts/crash-test runs many more). */
static void
test_kill_many (void)
{
  if (!have_cli ())
    return;
  const char *env = g_getenv ("TF_KILL_ROUNDS");
  const int rounds = env != NULL ? atoi (env) : 6;
  g_assert_cmpint (rounds, >, 0);
  const int total = 20 + 15 * rounds;
  g_autofree char *steps = g_strdup_printf ("%d", total);
  g_autofree char *straight = tmp_path ("many-straight.safetensors");
  g_autofree char *killed = tmp_path ("many-killed.safetensors");
  g_autofree char *killed_state = tf_train_state_path (killed);
  gint64 start = g_get_monotonic_time ();
  int status = wait_child (spawn_train_every (straight, steps, FALSE, "1"));
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  /* Kills come at most one round's share of the straight run's time after
   * the start (a sanitizer build or a busy machine is slower throughout). */
  const gint64 straight_us = g_get_monotonic_time () - start;
  const gint32 max_delay = (gint32) MIN (MAX (straight_us / rounds, 50000), 5000000);

  gint64 last = -1;
  int kills = 0, in_first_save = 0, mid_save = 0, after_save = 0;
  while (kills < rounds && last < total)
    {
      gboolean resume = g_file_test (killed_state, G_FILE_TEST_EXISTS);
      GPid pid = spawn_train_every (killed, steps, resume, "1");
      g_usleep (g_test_rand_int_range (0, max_delay));
      kill (pid, SIGKILL);
      status = wait_child (pid);
      if (WIFSIGNALED (status))
        {
          kills++;
          mid_save += count_temp_files () > 0;   /* removed by the next run */
        }
      else
        g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
      gint64 now = saved_step (killed);
      after_save += WIFSIGNALED (status) && now >= 0;
      if (now < 0)
        {
          /* nothing saved yet, and nothing broken */
          g_assert_cmpint (last, ==, -1);
          g_assert_false (g_file_test (killed_state, G_FILE_TEST_EXISTS));
          continue;
        }
      g_assert_cmpint (now, >=, last);
      last = now;
      if (!g_file_test (killed, G_FILE_TEST_EXISTS))
        {
          /* killed between the first state and the first model */
          in_first_save++;
          continue;
        }
      g_autoptr (GError) error = NULL;
      g_autoptr (TfModel) model = tf_model_load (killed, &error);
      g_assert_no_error (error);
    }
  if (last < total)
    {
      status = wait_child (spawn_train_every (killed, steps, last >= 0, "1"));
      g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
  g_test_message ("%d kills in a run of %d steps: %d once a checkpoint existed, %d in the middle "
                  "of a save, %d between the first state and model", kills, total, after_save,
                  mid_save, in_first_save);
  assert_same_run (straight, killed);
  g_assert_cmpint (count_temp_files (), ==, 0);
}

/* A full disk (here a file size limit) while saving: a clear error naming
 * the file, the model and state of the last save untouched, no temporary
 * file left; once there is room again the next save works. */
static void
test_full_disk (void)
{
  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      return;
    }
  g_autofree char *out = tmp_path ("full.safetensors");
  g_autofree char *state = tf_train_state_path (out);
  run_to_end (out, 4, FALSE, 2);
  g_autofree char *model_before = NULL, *state_before = NULL;
  gsize model_len, state_len;
  g_assert_true (g_file_get_contents (out, &model_before, &model_len, NULL));
  g_assert_true (g_file_get_contents (state, &state_before, &state_len, NULL));

  TfTrainOptions o;
  tf_test_tiny_train_options (&o, out);
  o.steps = 4;
  o.resume = TRUE;
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTrainer) tr = tf_trainer_new (&o, &error);
  g_assert_no_error (error);
  tf_train_options_clear (&o);
  TfTrainProgress p;
  g_assert_true (tf_trainer_train_step (tr, &p, &error));

  signal (SIGXFSZ, SIG_IGN);   /* write() fails with EFBIG instead */
  struct rlimit limit = { .rlim_cur = 64 * 1024, .rlim_max = RLIM_INFINITY };
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  g_assert_false (tf_trainer_save (tr, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_IO);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, state));
  g_assert_nonnull (strstr (error->message, "could not write: File too large"));
  g_clear_error (&error);

  g_autofree char *model_after = NULL, *state_after = NULL;
  gsize model_after_len, state_after_len;
  g_assert_true (g_file_get_contents (out, &model_after, &model_after_len, NULL));
  g_assert_true (g_file_get_contents (state, &state_after, &state_after_len, NULL));
  g_assert_cmpmem (model_after, model_after_len, model_before, model_len);
  g_assert_cmpmem (state_after, state_after_len, state_before, state_len);
  g_assert_cmpint (count_temp_files (), ==, 0);

  limit.rlim_cur = RLIM_INFINITY;
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  g_assert_true (tf_trainer_save (tr, &error));
  g_assert_no_error (error);
  g_assert_cmpint (saved_step (out), ==, 3);
}

/* Ctrl-C saves and exits cleanly; the log keeps every step done. */
static void
test_interrupt_saves (void)
{
  if (!have_cli ())
    return;
  g_autofree char *out = tmp_path ("interrupted.safetensors");
  GPid pid = spawn_train (out, "100000", FALSE);
  g_autofree char *log = tmp_path ("interrupted.log.jsonl");
  wait_for_saved_step (pid, out, 2);
  kill (pid, SIGINT);
  int status = wait_child (pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  gint64 step = saved_step (out);
  g_assert_cmpint (step, >=, 2);
  g_autofree char *contents = NULL;
  g_assert_true (g_file_get_contents (log, &contents, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (contents), "\n", -1);
  g_assert_cmpint (g_strv_length (lines), ==, step);
  g_autoptr (GError) error = NULL;
  g_autoptr (TfModel) m = tf_model_load (out, &error);
  g_assert_no_error (error);
}

static void
expect_options_error (TfTrainOptions *o, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (TfTrainer) tr = tf_trainer_new (o, &error);
  g_assert_null (tr);
  g_assert_nonnull (error);
  if (strstr (error->message, fragment) == NULL)
    g_error ("message '%s' does not mention '%s'", error->message, fragment);
  tf_train_options_clear (o);
}

static void
test_bad_options (void)
{
  TfTrainOptions o;
  g_autofree char *out = tmp_path ("bad.safetensors");

  tf_test_tiny_train_options (&o, "model.bin");
  expect_options_error (&o, "must end in .safetensors");
  tf_test_tiny_train_options (&o, out);
  o.steps = 0;
  expect_options_error (&o, "--steps 0");
  tf_test_tiny_train_options (&o, out);
  g_strfreev (o.data);
  o.data = g_strsplit ("shapes,no-such-thing", ",", -1);
  expect_options_error (&o, "'no-such-thing' is neither");
  tf_test_tiny_train_options (&o, out);
  g_free (o.preset);
  o.preset = g_strdup ("huge");
  expect_options_error (&o, "unknown preset 'huge'");
  tf_test_tiny_train_options (&o, out);
  o.lr = NAN;
  expect_options_error (&o, "--lr");

  /* Resuming needs a saved run. */
  g_autofree char *nothing = tmp_path ("nothing.safetensors");
  tf_test_tiny_train_options (&o, nothing);
  o.resume = TRUE;
  expect_options_error (&o, "no training state to resume");

  /* Resuming with other options would not continue the same run. */
  g_autofree char *run = tmp_path ("options.safetensors");
  run_to_end (run, 4, FALSE, 2);
  tf_test_tiny_train_options (&o, run);
  o.steps = 4;
  o.resume = TRUE;
  o.batch = 3;
  expect_options_error (&o, "started with other options");

  /* A new run never overwrites an existing one. */
  tf_test_tiny_train_options (&o, run);
  o.steps = 4;
  expect_options_error (&o, "already exists: continue its run with --resume");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = tf_test_make_temp_dir ("tf-train-XXXXXX");
  g_test_add_func ("/train/overfit", test_overfit);
  g_test_add_func ("/train/prompt-subjects-images-only", test_prompt_subjects_images_only);
  g_test_add_func ("/train/resume-exact", test_resume_exact);
  g_test_add_func ("/train/schedule-values", test_schedule_values);
  g_test_add_func ("/train/loosen-prompts", test_loosen_prompts);
  g_test_add_func ("/train/decay-lengthen", test_decay_lengthen);
  g_test_add_func ("/train/warm-start", test_warm_start);
  g_test_add_func ("/train/lineage-text-chain", test_lineage_text_chain);
  g_test_add_func ("/train/warm-start-new-image-side", test_warm_start_new_image_side);
  g_test_add_func ("/train/warm-start-conv", test_warm_start_conv);
  g_test_add_func ("/train/kill-and-resume", test_kill_and_resume);
  g_test_add_func ("/train/resume-needs-only-out", test_resume_needs_only_out);
  g_test_add_func ("/train/resume-keeps-precision", test_resume_keeps_precision);
  g_test_add_func ("/train/kill-many", test_kill_many);
  g_test_add_func ("/train/full-disk", test_full_disk);
  g_test_add_func ("/train/interrupt-saves", test_interrupt_saves);
  g_test_add_func ("/train/bad-options", test_bad_options);
  int status = g_test_run ();
  tf_test_remove_tree (tmp_dir);
  g_free (tmp_dir);
  return status;
}
