/* test-eval.c: `transfusion-cli eval`, `plot` and `samples` end to end on a
 * tiny model, and the bundled model: it loads, its config is the preset its
 * provenance names, its file is the one whose SHA-256 is recorded beside it,
 * and it draws a valid image and writes valid text. */
#include <glib.h>
#include "tf-eval.h"
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tf-cli.h"
#include "tf-generate.h"
#include "tf-data.h"
#include "tf-image.h"
#include "tf-data-shapes.h"
#include "tf-model-info.h"
#include "tf-judge.h"
#include "tf-safetensors.h"
#include "tf-test-util.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* Runs transfusion-cli with @args (NULL-terminated); returns the exit
 * status, stdout and stderr. */
static int
run_cli (const char *const *args, char **out, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  char *out_buf = NULL, *err_buf = NULL;
  size_t out_len = 0, err_len = 0;
  FILE *o = open_memstream (&out_buf, &out_len);
  FILE *e = open_memstream (&err_buf, &err_len);

  g_ptr_array_add (argv, (gpointer) "transfusion-cli");
  for (int i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  int status = tf_cli_run ((int) argv->len - 1, (char **) argv->pdata, o, e);
  fclose (o);
  fclose (e);
  *out = out_buf;
  *err = err_buf;
  return status;
}

static gboolean
have_data (void)
{
  return g_file_test (FASHION_DIR, G_FILE_TEST_IS_DIR)
         && g_file_test ("/usr/share/wordnet", G_FILE_TEST_IS_DIR)
         && g_file_test ("/usr/share/unicode/emoji/emoji-test.txt", G_FILE_TEST_EXISTS);
}

static double
member_percent (JsonObject *section, const char *name)
{
  g_assert_true (json_object_has_member (section, name));
  JsonObject *m = json_object_get_object_member (section, name);
  g_assert_nonnull (m);
  double v = json_object_get_double_member (m, "percent");
  g_assert_cmpfloat (v, >=, 0);
  g_assert_cmpfloat (v, <=, 100);
  return v;
}

/* The ε errors of a steering block: after the right caption, @other and
 * none, each at the four levels, finite and positive. */
static void
assert_steering_errors (JsonObject *block, const char *other)
{
  const char *prefixes[] = { "right_caption", other, "no_caption" };
  for (guint c = 0; c < 3; c++)
    {
      JsonArray *mse = json_object_get_array_member (block, prefixes[c]);
      g_assert_nonnull (mse);
      g_assert_cmpint (json_array_get_length (mse), ==, 4);
      for (guint k = 0; k < 4; k++)
        {
          const double v = json_array_get_double_element (mse, k);
          g_assert_true (isfinite (v));
          g_assert_cmpfloat (v, >, 0);
        }
    }
}

/* Runs `eval` with @args, which ask for JSON, and parses what it prints:
 * the root object (owned by @parser). */
static JsonObject *
run_eval_json (const char *const *args, JsonParser *parser)
{
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (GError) error = NULL;
  int status = run_cli (args, &out, &err);
  g_test_message ("stderr: %s", err);
  g_assert_cmpint (status, ==, 0);
  g_assert_true (json_parser_load_from_data (parser, out, -1, &error));
  g_assert_no_error (error);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  g_assert_nonnull (root);
  return root;
}

static void
test_eval_end_to_end (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-eval-XXXXXX");
  g_autofree char *judge_path = g_build_filename (dir, "judge.safetensors", NULL);
  g_autofree char *out = NULL, *err = NULL;

  if (!have_data ())
    {
      g_test_skip ("the data sets are not installed (fashion-mnist, wordnet, unicode emoji)");
      tf_test_remove_tree (dir);
      return;
    }
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 256);
  TfJudgeDims dims = { .size = 32, .hidden = 8, .features = 4, .classes = 10 };
  g_autoptr (TfJudge) judge = tf_judge_new (&dims, 1);
  g_assert_true (tf_judge_save (judge, judge_path, NULL, &error));
  g_assert_no_error (error);

  const char *args[] = { "eval", "--model", model, "--judge", judge_path, "--json",
                         "--samples", "1", "--steps", "1", "--text-documents", "12", NULL };
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *root = run_eval_json (args, parser);
  g_assert_cmpfloat (json_object_get_double_member (root, "seconds"), >, 0);

  JsonObject *fashion = json_object_get_object_member (root, "fashion");
  g_assert_nonnull (fashion);
  member_percent (fashion, "seen_phrasings");
  member_percent (fashion, "unseen_phrasings");
  member_percent (fashion, "all");
  member_percent (fashion, "judge_on_real_t10k");
  g_assert_cmpint (json_object_get_int_member (fashion, "images"), ==, 20);
  g_assert_cmpint (json_object_get_int_member (fashion, "real_images"), ==, 10000);
  g_assert_cmpint (json_object_get_int_member (fashion, "frechet_set_size"), ==, 20);
  g_assert_cmpfloat (json_object_get_double_member (fashion, "frechet_generated"), >=, 0);
  g_assert_cmpfloat (json_object_get_double_member (fashion, "frechet_real_floor"), >=, 0);
  /* Real Fashion-MNIST pictures do not know the model's patch grid. */
  const double seam_real = json_object_get_double_member (fashion, "seam_ratio_real");
  g_test_message ("seam ratio: generated %.3f, real %.3f",
                  json_object_get_double_member (fashion, "seam_ratio"), seam_real);
  g_assert_cmpfloat (seam_real, >, 0.75);
  g_assert_cmpfloat (seam_real, <, 1.33);
  g_assert_cmpfloat (json_object_get_double_member (fashion, "seam_ratio"), >, 0);
  /* What each image was judged to be: a row per asked class, each row as
   * many images as were asked of it, the diagonal the right ones. */
  JsonArray *classes = json_object_get_array_member (fashion, "classes");
  JsonArray *judged = json_object_get_array_member (fashion, "judged_as");
  g_assert_cmpint (json_array_get_length (classes), ==, 10);
  g_assert_cmpstr (json_array_get_string_element (classes, 9), ==, "ankle boot");
  g_assert_cmpint (json_array_get_length (judged), ==, 10);
  gint64 right = 0;
  for (guint c = 0; c < 10; c++)
    {
      JsonArray *row = json_array_get_array_element (judged, c);
      gint64 sum = 0;
      g_assert_cmpint (json_array_get_length (row), ==, 10);
      for (guint j = 0; j < 10; j++)
        sum += json_array_get_int_element (row, j);
      g_assert_cmpint (sum, ==, 2);   /* one seen, one unseen phrasing */
      right += json_array_get_int_element (row, c);
    }
  JsonObject *all = json_object_get_object_member (fashion, "all");
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (all, "percent"),
                                  100.0 * right / 20, 1e-9);
  JsonObject *seen = json_object_get_object_member (fashion, "seen_phrasings");
  g_assert_cmpfloat (json_object_get_double_member (seen, "target"), ==, 85);
  g_assert_true (json_object_has_member (seen, "met"));

  JsonObject *caption = json_object_get_object_member (root, "caption");
  g_assert_nonnull (caption);
  member_percent (caption, "exact_class");
  g_assert_cmpint (json_object_get_int_member (caption, "images"), ==, 100);
  member_percent (caption, "exact_class_4x");
  g_assert_true (json_object_has_member (caption, "example"));

  JsonObject *shapes = json_object_get_object_member (root, "shapes");
  g_assert_nonnull (shapes);
  const char *shape_measures[] = { "colour", "shape", "count", "position" };
  for (guint i = 0; i < G_N_ELEMENTS (shape_measures); i++)
    {
      g_autofree char *real = g_strconcat ("real_", shape_measures[i], NULL);
      member_percent (shapes, shape_measures[i]);
      /* the analysis reads the real renders back (nearly) perfectly */
      g_assert_cmpfloat (member_percent (shapes, real), >=, 90);
    }
  g_assert_cmpint (json_object_get_int_member (shapes, "scenes"), ==, 10);
  /* the shape by the size asked: every object in one size, and the two
   * add up to the shape measure, for the model and for the real renders */
  {
    JsonObject *by_size = json_object_get_object_member (shapes, "shape_by_size");
    g_assert_nonnull (by_size);
    const gint64 objects = json_object_get_int_member (shapes, "objects");
    gint64 n = 0;
    double shape_right = 0, real_right = 0;
    for (int z = 0; z < TF_SHAPES_N_SIZES; z++)
      {
        JsonObject *size = json_object_get_object_member (by_size, tf_shapes_size_name (z));
        g_assert_nonnull (size);
        const gint64 k = json_object_get_int_member (size, "objects");
        n += k;
        shape_right += json_object_get_double_member (size, "percent") * k / 100;
        real_right += json_object_get_double_member (size, "real_percent") * k / 100;
      }
    g_assert_cmpint (n, ==, objects);
    g_assert_cmpfloat_with_epsilon (shape_right, member_percent (shapes, "shape") * objects / 100,
                                    1e-6);
    g_assert_cmpfloat_with_epsilon (real_right, member_percent (shapes, "real_shape") * objects / 100,
                                    1e-6);
  }
  JsonObject *other = json_object_get_object_member (shapes, "other_wordings");
  g_assert_nonnull (other);
  g_assert_cmpint (json_object_get_int_member (other, "prompts"), ==, 5);
  const double one = member_percent (other, "one_object");
  g_assert_cmpfloat (member_percent (other, "colour"), <=, one);
  g_assert_cmpfloat (member_percent (other, "shape"), <=, one);

  JsonObject *emoji = json_object_get_object_member (root, "emoji");
  g_assert_nonnull (emoji);
  double top1 = member_percent (emoji, "top1"), top5 = member_percent (emoji, "top5");
  g_assert_cmpfloat (top1, <=, top5);
  g_assert_cmpint (json_object_get_int_member (emoji, "prompts"), ==, 10);
  g_assert_cmpint (json_object_get_int_member (emoji, "candidates"), >, 1000);

  JsonObject *text = json_object_get_object_member (root, "text");
  g_assert_nonnull (text);
  /* A random model over 64 tokens: about log2(64)·tokens/bytes bits. */
  g_assert_cmpfloat (json_object_get_double_member (text, "model_bits_per_byte"), >, 0.5);
  g_assert_true (json_object_has_member (text, "xz_bits_per_byte"));
  g_assert_true (json_object_has_member (text, "gzip_bits_per_byte"));
  g_assert_cmpint (json_object_get_int_member (text, "documents"), >, 0);
  g_assert_cmpint (json_object_get_int_member (text, "bytes"), >, 100);
  JsonArray *answers = json_object_get_array_member (text, "answers");
  g_assert_nonnull (answers);
  g_assert_cmpint (json_array_get_length (answers), >, 0);
  /* every held-out "what is a X?" of the subjects source, scored: the
   * whole gloss, or its first sense, and nothing less */
  const char *gloss = "a coat is an outer garment that has sleeves; covers the body.";
  g_assert_true (tf_eval_gloss_matches (" a coat is an outer garment that has sleeves; covers the body.\n", gloss));
  g_assert_true (tf_eval_gloss_matches ("a coat is an outer garment that has sleeves", gloss));
  g_assert_true (tf_eval_gloss_matches ("a coat is an outer garment that has sleeves; and more", gloss));
  g_assert_false (tf_eval_gloss_matches ("a coat is an outer garment", gloss));
  g_assert_false (tf_eval_gloss_matches ("a coat is a thin layer", gloss));
  g_assert_false (tf_eval_gloss_matches ("", gloss));
  g_assert_false (tf_eval_gloss_matches ("a sneaker is a shoe", "a sneaker is a canvas shoe."));
  g_assert_true (tf_eval_gloss_matches ("a sneaker is a canvas shoe.", "a sneaker is a canvas shoe."));
  g_assert_cmpint (json_object_get_int_member (text, "gloss_questions"), >, 100);
  double gloss_right = member_percent (text, "gloss_right");
  g_assert_cmpfloat (gloss_right, >=, 0);
  g_assert_cmpfloat (gloss_right, <=, 100);
  /* every held-out chat phrasing asked, one per topic with three or more */
  g_autoptr (TfDataSource) chat_heldout = tf_data_chat_new (TF_SPLIT_HELDOUT, NULL);
  g_assert_cmpint (json_object_get_int_member (text, "chat_questions"), ==,
                   tf_data_source_size (chat_heldout));
  g_assert_cmpint (tf_data_source_size (chat_heldout), >=, 20);
  const double chat_right = member_percent (text, "chat_right");
  g_assert_cmpfloat (chat_right, >=, 0);
  g_assert_cmpfloat (chat_right, <=, 100);

  /* steering: four noise levels rising through the schedule, the ε error
   * after each kind of prefix; 4 images for --samples 1 */
  JsonObject *steering = json_object_get_object_member (root, "steering");
  g_assert_nonnull (steering);
  g_assert_cmpint (json_object_get_int_member (steering, "images"), ==, 4);
  JsonArray *levels = json_object_get_array_member (steering, "t");
  g_assert_cmpint (json_array_get_length (levels), ==, 4);
  for (guint k = 1; k < 4; k++)
    g_assert_cmpint (json_array_get_int_element (levels, k), >,
                     json_array_get_int_element (levels, k - 1));
  assert_steering_errors (steering, "other_class_caption");

  /* and on 4 shapes scenes, where the shapes are: after their caption,
   * other shapes named, none */
  JsonObject *shape_steering = json_object_get_object_member (steering, "shapes");
  g_assert_nonnull (shape_steering);
  g_assert_cmpint (json_object_get_int_member (shape_steering, "scenes"), ==, 4);
  assert_steering_errors (shape_steering, "other_shape_caption");

  /* every image drawn, with its prompt and whether it came out as asked:
   * as many right fashion ones as the judge found; then the examples */
  JsonArray *drawn = json_object_get_array_member (root, "drawn");
  g_assert_nonnull (drawn);
  g_assert_cmpint (json_array_get_length (drawn), ==, 20 + 10 + 5 + 10);
  gint64 drawn_right = 0;
  for (guint i = 0; i < 20; i++)
    {
      JsonObject *d = json_array_get_object_element (drawn, i);
      g_assert_cmpstr (json_object_get_string_member (d, "section"), ==, "fashion");
      g_assert_cmpuint (strlen (json_object_get_string_member (d, "prompt")), >, 0);
      drawn_right += json_object_get_boolean_member (d, "right");
      const gint64 label = json_object_get_int_member_with_default (d, "label", -1);
      g_assert_cmpint (label, >=, 0);
      g_assert_cmpint (label, <, TF_EVAL_FASHION_CLASSES);
    }
  g_assert_cmpint (drawn_right, ==, right);
  /* a shapes scene's label: the shape all its objects have, if one */
  for (guint i = 0; i < 10; i++)
    {
      TfShapeScene asked;
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &asked);
      int shape = asked.objects[0].shape;
      for (int k = 1; k < asked.n; k++)
        shape = asked.objects[k].shape == shape ? shape : -1;
      JsonObject *d = json_array_get_object_element (drawn, 20 + i);
      g_assert_cmpint (json_object_get_int_member_with_default (d, "label", -1), ==, shape);
    }
  /* then the single shapes asked in other words, labelled with their shape;
   * right only as one object of the colour and shape asked */
  JsonObject *shapes_report = json_object_get_object_member (root, "shapes");
  gint64 other_right = 0;
  for (guint i = 0; i < 5; i++)
    {
      JsonObject *d = json_array_get_object_element (drawn, 30 + i);
      const int combo = (int) (i * 7) % (TF_SHAPES_N_COLOURS * TF_SHAPES_N_SHAPES);
      g_autofree char *prompt = tf_eval_other_shape_prompt (combo % TF_SHAPES_N_COLOURS,
                                                           combo / TF_SHAPES_N_COLOURS, (int) i);
      g_assert_cmpstr (json_object_get_string_member (d, "section"), ==, "shapes");
      g_assert_cmpstr (json_object_get_string_member (d, "prompt"), ==, prompt);
      g_assert_cmpint (json_object_get_int_member (d, "label"), ==, combo / TF_SHAPES_N_COLOURS);
      other_right += json_object_get_boolean_member (d, "right");
    }
  /* none can be right without its shape being right */
  g_assert_cmpfloat (other_right, <=,
                     json_object_get_double_member (
                       json_object_get_object_member (
                         json_object_get_object_member (shapes_report, "other_wordings"), "shape"),
                       "percent") * 5 / 100 + 1e-9);
  g_assert_false (json_object_has_member (json_array_get_object_element (drawn, 44), "label"));
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (drawn, 20),
                                                  "section"), ==, "shapes");
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (drawn, 35),
                                                  "section"), ==, "emoji");
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (drawn, 44),
                                                  "section"), ==, "emoji");
  g_assert_nonnull (json_object_get_array_member (root, "examples"));

  /* --only takes known names; a missing judge says how to make one */
  g_free (out);
  g_free (err);
  const char *bad[] = { "eval", "--model", model, "--only", "fashion,poetry", NULL };
  g_assert_cmpint (run_cli (bad, &out, &err), ==, 2);
  g_assert_nonnull (strstr (err, "unknown section 'poetry'"));
  g_free (out);
  g_free (err);
  g_autofree char *missing = g_build_filename (dir, "none.safetensors", NULL);
  const char *no_judge[] = { "eval", "--model", model, "--judge", missing, "--only", "fashion", NULL };
  g_assert_cmpint (run_cli (no_judge, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "judge-train"));

  /* samples: a labelled row per class, the images drawn in it */
  g_autofree char *grid = g_build_filename (dir, "grid.png", NULL);
  g_free (out);
  g_free (err);
  const char *samples[] = { "samples", "--model", model, "--output", grid, "--columns", "2",
                            "--steps", "1", "--scale", "1", "--fashion-only", NULL };
  g_assert_cmpint (run_cli (samples, &out, &err), ==, 0);
  g_assert_true (g_str_has_suffix (out, "grid.png (1 step DDIM, guidance 3)\n"));
  TfImage image = { 0 };
  g_assert_true (tf_image_read_png (grid, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, 120 + 2 * (32 + 4) + 4);
  g_assert_cmpint (image.height, ==, 36 + 10 * (32 + 4) + 4);
  int not_white = 0;   /* inside the first image cell */
  for (int y = 36; y < 36 + 32; y++)
    for (int x = 120; x < 120 + 32; x++)
      {
        const uint8_t *p = image.rgba + ((size_t) y * image.width + x) * 4;
        not_white += p[0] != 255 || p[1] != 255 || p[2] != 255;
      }
  g_assert_cmpint (not_white, >, 32 * 32 / 2);
  tf_image_clear (&image);

  /* one source: a row per prompt, the prompt written beside it */
  g_free (out);
  g_free (err);
  const char *one_source[] = { "samples", "--model", model, "--output", grid, "--columns", "1",
                               "--steps", "1", "--scale", "1", "--source", "shapes", "--rows",
                               "2", NULL };
  g_assert_cmpint (run_cli (one_source, &out, &err), ==, 0);
  g_assert_true (tf_image_read_png (grid, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, 300 + 1 * (32 + 4) + 4);
  g_assert_cmpint (image.height, ==, 36 + 2 * (32 + 4) + 4);
  int ink = 0;   /* the label: text left of the first image */
  for (int y = 36; y < 36 + 32; y++)
    for (int x = 0; x < 290; x++)
      ink += image.rgba[((size_t) y * image.width + x) * 4] < 128;
  g_assert_cmpint (ink, >, 20);
  tf_image_clear (&image);
  g_free (out);
  g_free (err);
  const char *bad_source[] = { "samples", "--model", model, "--output", grid, "--source",
                               "poetry", NULL };
  g_assert_cmpint (run_cli (bad_source, &out, &err), ==, 2);
  g_assert_nonnull (strstr (err, "--source must be fashion, shapes or emoji"));
  tf_test_remove_tree (dir);
}

/* The examples to suggest: Fashion classes right at least half the time,
 * best first, the shortest right prompt of each; shapes scenes that came
 * out, of one shape right at least half the time, and emoji that came out,
 * shortest first; in turns; no prompt twice; at most n. */
static void
add_drawn (TfEvalReport *r, const char *section, const char *prompt, int label, gboolean right)
{
  TfEvalDrawn d = { section, g_strdup (prompt), label, right };
  g_array_append_val (r->drawn, d);
}

static void
free_drawn_prompts (TfEvalReport *r)
{
  for (guint i = 0; i < r->drawn->len; i++)
    g_free (g_array_index (r->drawn, TfEvalDrawn, i).prompt);
  g_array_unref (r->drawn);
  r->drawn = NULL;
}

static void
test_pick_examples (void)
{
  TfEvalReport r = { 0 };
  r.drawn = g_array_new (FALSE, TRUE, sizeof (TfEvalDrawn));
  /* class 7 (sneaker): 3 of 4; class 1 (trousers): 2 of 4; class 0 (t-shirt): 2 of 4;
   * class 3 (dress): 2 of 2; class 5 (sandal): 1 of 3, too few */
  add_drawn (&r, "fashion", "a long photo of a white sneaker", 7, TRUE);
  add_drawn (&r, "fashion", "a sneaker", 7, TRUE);
  add_drawn (&r, "fashion", "sneakers, seen from the side", 7, TRUE);
  add_drawn (&r, "fashion", "a shoe", 7, FALSE);
  add_drawn (&r, "fashion", "grey trousers", 1, TRUE);
  add_drawn (&r, "fashion", "trousers", 1, FALSE);
  add_drawn (&r, "fashion", "a pair of trousers", 1, TRUE);
  add_drawn (&r, "fashion", "pants", 1, FALSE);
  /* the sentence is shorter, the description comes first */
  add_drawn (&r, "fashion", "here is the t-shirt", 0, TRUE);
  add_drawn (&r, "fashion", "a photo of a t-shirt", 0, TRUE);
  for (int i = 0; i < 2; i++)
    add_drawn (&r, "fashion", "a tee", 0, FALSE);
  add_drawn (&r, "fashion", "a sandal", 5, TRUE);
  for (int i = 0; i < 2; i++)
    add_drawn (&r, "fashion", "a sandal", 5, FALSE);
  /* only sentences came out right: the shortest of them */
  add_drawn (&r, "fashion", "this is the dress, seen from the front", 3, TRUE);
  add_drawn (&r, "fashion", "here is the dress", 3, TRUE);
  /* circles 2 of 3, squares 1 of 2: suggested; stars 1 of 3: not */
  add_drawn (&r, "shapes", "a large red circle in the centre", TF_SHAPE_CIRCLE, TRUE);
  add_drawn (&r, "shapes", "two red circles", TF_SHAPE_CIRCLE, TRUE);
  add_drawn (&r, "shapes", "a blue circle", TF_SHAPE_CIRCLE, FALSE);
  add_drawn (&r, "shapes", "two blue squares", TF_SHAPE_SQUARE, TRUE);
  add_drawn (&r, "shapes", "a square", TF_SHAPE_SQUARE, FALSE);
  add_drawn (&r, "shapes", "a star", TF_SHAPE_STAR, TRUE);
  add_drawn (&r, "shapes", "a green star", TF_SHAPE_STAR, FALSE);
  add_drawn (&r, "shapes", "a large star", TF_SHAPE_STAR, FALSE);
  /* hearts: 2 of 3 scenes, but the single hearts asked in other words came
   * out wrong: 2 of 5 in all, not suggested */
  add_drawn (&r, "shapes", "a large pink heart on the left", TF_SHAPE_HEART, TRUE);
  add_drawn (&r, "shapes", "two pink hearts", TF_SHAPE_HEART, TRUE);
  add_drawn (&r, "shapes", "a heart", TF_SHAPE_HEART, FALSE);
  add_drawn (&r, "shapes", "one pink heart", TF_SHAPE_HEART, FALSE);
  add_drawn (&r, "shapes", "a pink heart, please", TF_SHAPE_HEART, FALSE);
  /* a scene of two shapes has no one shape to rate: not suggested */
  add_drawn (&r, "shapes", "a heart and a cross", -1, TRUE);
  add_drawn (&r, "emoji", "a cat emoji", -1, TRUE);
  add_drawn (&r, "emoji", "a cat emoji", -1, TRUE);   /* twice: suggested once */

  g_auto (GStrv) all = tf_eval_pick_examples (&r, 8);
  const char *want[] = { "here is the dress", "two red circles", "a cat emoji", "a sneaker",
                         "two blue squares", "a photo of a t-shirt",
                         "a large red circle in the centre", "grey trousers", NULL };
  g_assert_cmpstrv (all, want);
  g_auto (GStrv) two = tf_eval_pick_examples (&r, 2);
  const char *want_two[] = { "here is the dress", "two red circles", NULL };
  g_assert_cmpstrv (two, want_two);
  free_drawn_prompts (&r);

  /* "a drawing of ankle boot" reads as broken English: the longer prompt
   * with its article comes first; a plural needs none */
  r.drawn = g_array_new (FALSE, TRUE, sizeof (TfEvalDrawn));
  add_drawn (&r, "fashion", "a drawing of ankle boot", 9, TRUE);
  add_drawn (&r, "fashion", "an illustration of an ankle boot", 9, TRUE);
  add_drawn (&r, "fashion", "a photo of a pair of trousers", 1, TRUE);
  add_drawn (&r, "fashion", "a photo of trousers", 1, TRUE);
  add_drawn (&r, "fashion", "a sketch of bag, isolated", 8, TRUE);
  add_drawn (&r, "fashion", "a sketch of the bag, isolated", 8, TRUE);
  g_auto (GStrv) worded = tf_eval_pick_examples (&r, 8);
  const char *want_worded[] = { "a photo of trousers", "a sketch of the bag, isolated",
                                "an illustration of an ankle boot", NULL };
  g_assert_cmpstrv (worded, want_worded);
  free_drawn_prompts (&r);

  /* nothing came out: nothing to suggest */
  r.drawn = g_array_new (FALSE, TRUE, sizeof (TfEvalDrawn));
  add_drawn (&r, "fashion", "a bag", 8, FALSE);
  g_auto (GStrv) none = tf_eval_pick_examples (&r, 8);
  g_assert_null (none[0]);
  free_drawn_prompts (&r);
}

/* eval --sweep draws the image sections at every candidate and measures
 * with the best: on the same prompts and noise the final run repeats the
 * chosen candidate's images, so its score is the sweep's. */
static void
test_eval_sweep (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-eval-XXXXXX");
  g_autofree char *out = NULL, *err = NULL;

  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 256);
  const char *args[] = { "eval", "--model", model, "--json", "--sweep", "--only", "shapes",
                         "--samples", "1", NULL };
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *root = run_eval_json (args, parser);
  JsonArray *sweep = json_object_get_array_member (root, "sweep");
  g_assert_cmpint (json_array_get_length (sweep), ==, TF_EVAL_SWEEP_CANDIDATES);
  int chosen = -1;
  double best = -1;
  g_autoptr (GHashTable) tried = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint k = 0; k < TF_EVAL_SWEEP_CANDIDATES; k++)
    {
      JsonObject *c = json_array_get_object_element (sweep, k);
      const double score = json_object_get_double_member (c, "score");
      g_assert_cmpfloat (score, >=, 0);
      g_assert_cmpfloat (score, <=, 100);
      best = MAX (best, score);
      g_hash_table_add (tried, g_strdup_printf ("%s %" G_GINT64_FORMAT " %g",
                                                json_object_get_string_member (c, "sampler"),
                                                json_object_get_int_member (c, "steps"),
                                                json_object_get_double_member (c, "cfg")));
      if (json_object_get_boolean_member (c, "chosen"))
        {
          g_assert_cmpint (chosen, ==, -1);
          chosen = (int) k;
        }
    }
  g_assert_cmpuint (g_hash_table_size (tried), ==, TF_EVAL_SWEEP_CANDIDATES);   /* all differ */
  g_assert_cmpint (chosen, >=, 0);
  JsonObject *c = json_array_get_object_element (sweep, chosen);
  /* the best, and of equals the first */
  g_assert_cmpfloat (json_object_get_double_member (c, "score"), ==, best);
  for (int k = 0; k < chosen; k++)
    g_assert_cmpfloat (json_object_get_double_member (json_array_get_object_element (sweep, k),
                                                      "score"), <, best);
  /* measured with it */
  JsonObject *sampling = json_object_get_object_member (root, "sampling");
  g_assert_cmpstr (json_object_get_string_member (sampling, "sampler"), ==,
                   json_object_get_string_member (c, "sampler"));
  g_assert_cmpint (json_object_get_int_member (sampling, "steps"), ==,
                   json_object_get_int_member (c, "steps"));
  g_assert_cmpfloat (json_object_get_double_member (sampling, "cfg"), ==,
                     json_object_get_double_member (c, "cfg"));
  JsonObject *shapes = json_object_get_object_member (root, "shapes");
  const double colour = json_object_get_double_member (json_object_get_object_member (shapes, "colour"),
                                                       "percent");
  const double shape = json_object_get_double_member (json_object_get_object_member (shapes, "shape"),
                                                      "percent");
  g_assert_cmpfloat_with_epsilon ((colour + shape) / 2, best, 1e-9);

  /* The table names every candidate and marks the one chosen. */
  g_free (out);
  g_free (err);
  const char *table[] = { "eval", "--model", model, "--sweep", "--only", "shapes", "--samples", "1",
                          NULL };
  g_assert_cmpint (run_cli (table, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "ddim 25 steps, guidance 2"));
  g_assert_nonnull (strstr (out, "ddpm 50 steps, guidance 5"));
  g_assert_nonnull (strstr (out, "← chosen"));
  /* each percentage with its 95% interval */
  g_assert_nonnull (strstr (out, "% ±"));
  g_assert_nonnull (strstr (err, "eval: sweep, setting 1 of 12…\neval: shapes (15 items)…\n"));
  g_assert_nonnull (strstr (err, "eval: sweep, setting 12 of 12…\n"));

  /* Without an image section there is nothing to choose by. */
  g_free (out);
  g_free (err);
  const char *text_only[] = { "eval", "--model", model, "--sweep", "--only", "text", NULL };
  g_assert_cmpint (run_cli (text_only, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "a sweep measures images"));
  tf_test_remove_tree (dir);
}

/* convert --examples-from stores a report's examples in the model, checked;
 * without --dtype the weights keep their type. A report of a sweep also
 * gives the model its image settings ("sampling"), which `generate` then
 * starts with where it is not told otherwise. */
static void
test_convert_examples (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-eval-XXXXXX");
  g_autofree char *model = tf_test_save_tiny_model_with_tokenizer (dir, 256);
  g_autofree char *report = g_build_filename (dir, "report.json", NULL);
  g_autofree char *out_path = g_build_filename (dir, "with-examples.safetensors", NULL);
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (GError) error = NULL;

  tf_test_write_file (NULL, report, "{\"fashion\": {}, \"examples\": [\"a sneaker\", \"two blue squares\"]}",
                      -1);
  const char *args[] = { "convert", model, "--examples-from", report, "--out", out_path, NULL };
  g_assert_cmpint (run_cli (args, &out, &err), ==, 0);
  g_autoptr (TfSafetensors) st = tf_safetensors_open (out_path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_safetensors_metadata (st, "example_prompts"), ==,
                   "[\"a sneaker\",\"two blue squares\"]");
  g_autoptr (TfSafetensors) before = tf_safetensors_open (model, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_safetensors_tensor (st, 0)->dtype, ==, tf_safetensors_tensor (before, 0)->dtype);
  g_assert_cmpstr (tf_safetensors_metadata (st, "tokenizer"), ==,
                   tf_safetensors_metadata (before, "tokenizer"));
  g_assert_null (tf_safetensors_metadata (st, "sampling"));   /* no sweep, no settings */

  /* A sweep's report: its settings, stored in the engine's own form. */
  g_autofree char *swept = g_build_filename (dir, "swept.safetensors", NULL);
  tf_test_write_file (NULL, report, "{\"sampling\": {\"cfg\": 2.0, \"steps\": 7, \"sampler\": \"ddim\"},"
                      " \"sweep\": [], \"examples\": [\"a sneaker\"]}", -1);
  const char *sweep_args[] = { "convert", out_path, "--examples-from", report, "--out", swept, NULL };
  g_free (out);
  g_free (err);
  g_assert_cmpint (run_cli (sweep_args, &out, &err), ==, 0);
  {
    g_autoptr (TfSafetensors) s2 = tf_safetensors_open (swept, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (tf_safetensors_metadata (s2, "sampling"), ==,
                     "{\"sampler\":\"ddim\",\"steps\":7,\"cfg\":2.0}");
    g_assert_cmpstr (tf_safetensors_metadata (s2, "example_prompts"), ==, "[\"a sneaker\"]");
  }
  /* generate starts with them; what it is told wins, each on its own */
  const struct { const char *option, *value, *says; } runs[] = {
    { NULL, NULL, "Steps: 7, Sampler: DDIM, CFG scale: 2," },
    { "--steps", "3", "Steps: 3, Sampler: DDIM, CFG scale: 2," },
    { "--sampler", "ddpm", "Steps: 7, Sampler: DDPM, CFG scale: 2," },
    { "--cfg", "1", "Steps: 7, Sampler: DDIM, CFG scale: 1," },
  };
  g_autofree char *png = g_build_filename (dir, "drawn.png", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      const char *gen[] = { "generate", "--model", swept, "--prompt", "a sneaker", "--seed", "1",
                            "--out", png, runs[i].option, runs[i].value, NULL };
      g_free (out);
      g_free (err);
      g_assert_cmpint (run_cli (gen, &out, &err), ==, 0);
      g_autoptr (GHashTable) text = tf_image_read_png_text (png, &error);
      g_assert_no_error (error);
      g_assert_nonnull (strstr (g_hash_table_lookup (text, "parameters"), runs[i].says));
    }
  /* eval measures as people draw: with them, unless told otherwise */
  for (int told = 0; told < 2; told++)
    {
      const char *eval_args[] = { "eval", "--model", swept, "--json", "--only", "shapes",
                                  "--samples", "1", told ? "--steps" : NULL, "3", NULL };
      g_autoptr (JsonParser) parser = json_parser_new ();
      JsonObject *sampling = json_object_get_object_member (run_eval_json (eval_args, parser),
                                                            "sampling");
      g_assert_cmpstr (json_object_get_string_member (sampling, "sampler"), ==, "ddim");
      g_assert_cmpint (json_object_get_int_member (sampling, "steps"), ==, told ? 3 : 7);
      g_assert_cmpfloat (json_object_get_double_member (sampling, "cfg"), ==, 2.0);
    }
  /* samples draws its grid so too, and says how */
  for (int told = 0; told < 2; told++)
    {
      g_autofree char *grid = g_build_filename (dir, "grid.png", NULL);
      const char *samples[] = { "samples", "--model", swept, "--output", grid, "--columns", "1",
                                "--scale", "1", "--fashion-only",
                                told ? "--sampler" : NULL, "ddpm", NULL };
      g_autofree char *says = g_strdup_printf ("%s (7 steps %s, guidance 2)\n", grid,
                                               told ? "DDPM" : "DDIM");
      g_free (out);
      g_free (err);
      g_assert_cmpint (run_cli (samples, &out, &err), ==, 0);
      g_assert_cmpstr (out, ==, says);
    }
  /* a model without them: the program's defaults */
  {
    const char *gen[] = { "generate", "--model", out_path, "--prompt", "a sneaker", "--seed", "1",
                          "--steps", "2", "--out", png, NULL };
    g_free (out);
    g_free (err);
    g_assert_cmpint (run_cli (gen, &out, &err), ==, 0);
    g_autoptr (GHashTable) text = tf_image_read_png_text (png, &error);
    g_assert_no_error (error);
    g_assert_nonnull (strstr (g_hash_table_lookup (text, "parameters"),
                              "Steps: 2, Sampler: DDPM, CFG scale: 3,"));
  }

  /* Reports that do not hold examples are named, and nothing is written. */
  struct { const char *json; const char *says; } bad[] = {
    { "not json", "report.json: not JSON" },
    { "{\"fashion\": {}}", "report.json: no \"examples\" list" },
    { "{\"examples\": []}", "report.json: the report has no prompt the model drew as asked" },
    { "{\"examples\": [\"a bag\", 3]}", "report.json: example 2 is not a prompt" },
    { "{\"sweep\": [], \"examples\": [\"a bag\"]}", "report.json: the sweep's \"sampling\": missing" },
    { "{\"sweep\": [], \"sampling\": {\"sampler\": \"ddim\", \"steps\": 0, \"cfg\": 3},"
      " \"examples\": [\"a bag\"]}", "report.json: the sweep's \"sampling\": steps 0 is out of range" },
  };
  g_autofree char *other = g_build_filename (dir, "other.safetensors", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_free (out);
      g_free (err);
      tf_test_write_file (NULL, report, bad[i].json, -1);
      const char *again[] = { "convert", model, "--examples-from", report, "--out", other, NULL };
      g_assert_cmpint (run_cli (again, &out, &err), ==, 1);
      g_assert_nonnull (strstr (err, bad[i].says));
      g_assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
    }
  tf_test_remove_tree (dir);
}

/* The nearest-emoji measure draws every emoji where a held-out example has
 * its own: drawn as itself, that is the example's image; drawn as another,
 * it differs. */
static void
test_emoji_render_as (void)
{
  g_autoptr (GError) error = NULL;
  float own[32 * 32 * 3], other[32 * 32 * 3];
  TfRng rng;

  if (!have_data ())
    {
      g_test_skip ("the data sets are not installed (fashion-mnist, wordnet, unicode emoji)");
      return;
    }
  g_autoptr (TfDataSource) src = tf_data_emoji_new (NULL, TF_SPLIT_HELDOUT, 32, 3, &error);
  g_assert_no_error (error);
  tf_rng_seed (&rng, 1);
  for (int64_t index = 0; index < tf_data_source_size (src); index += tf_data_source_size (src) / 5)
    {
      TfExample ex;
      g_assert_true (tf_data_source_get (src, index, &rng, &ex, &error));
      g_assert_true (tf_data_emoji_render_as (src, index, ex.label, own, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (own, sizeof own, ex.pixels, sizeof own);
      g_assert_true (tf_data_emoji_render_as (src, index, (ex.label + 1) % 100, other, &error));
      g_assert_false (memcmp (own, other, sizeof own) == 0);
      tf_example_clear (&ex);
    }
  g_assert_false (tf_data_emoji_render_as (src, 0, -1, own, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
}

/* ---- plot ----------------------------------------------------------------- */

static gboolean
near_colour (const uint8_t *p, int r, int g, int b)
{
  return abs (p[0] - r) <= 40 && abs (p[1] - g) <= 40 && abs (p[2] - b) <= 40;
}

/* The topmost row of column @x in rows [y0, y1) whose pixel is near (r, g, b), or −1. */
static int
find_row (const TfImage *image, int x, int y0, int y1, int r, int g, int b)
{
  for (int y = y0; y < y1; y++)
    if (near_colour (image->rgba + ((size_t) y * image->width + x) * 4, r, g, b))
      return y;
  return -1;
}

static void
test_plot_synthetic_log (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-plot-XXXXXX");
  g_autofree char *log = g_build_filename (dir, "run.log.jsonl", NULL);
  g_autofree char *png = g_build_filename (dir, "curves.png", NULL);
  g_autoptr (GString) text = g_string_new (NULL);
  g_autofree char *out = NULL, *err = NULL;

  /* Two runs: steps 1–300, then a resume from step 201 to 400; LM loss 2,
   * diffusion loss 0.05 throughout; the learning rate falls linearly. */
  for (int run = 0; run < 2; run++)
    for (int s = run == 0 ? 1 : 201; s <= (run == 0 ? 300 : 400); s++)
      g_string_append_printf (text, "{\"step\":%d,\"loss\":2.25,\"lm\":2.0,\"ddpm\":0.05,"
                              "\"lr\":%g,\"grad_norm\":1,\"elapsed\":%d}\n", s,
                              1e-3 * (1.0 - s / 500.0), s);
  g_string_append (text, "{\"step\":401,\"lm\":");   /* a killed run's last line */
  tf_test_write_file (NULL, log, text->str, (gssize) text->len);

  const char *args[] = { "plot", log, "--output", png, NULL };
  g_assert_cmpint (run_cli (args, &out, &err), ==, 0);
  g_assert_nonnull (strstr (err, "1 line(s) were not complete records"));
  TfImage image = { 0 };
  g_assert_true (tf_image_read_png (png, &image, &error));
  g_assert_no_error (error);
  g_assert_cmpint (image.width, ==, 1200);
  g_assert_cmpint (image.height, ==, 800);

  /* A column left of the legend: the LM curve (blue) above the diffusion
   * curve (orange) in the loss panel, which is the upper two thirds; their
   * distance is the log-ratio of 2 and 0.05 over the panel's range (the
   * range is that ratio padded by 5% each side). */
  const int x = 400;
  int lm = find_row (&image, x, 0, 560, 31, 102, 191);
  int dd = find_row (&image, x, 0, 560, 217, 89, 26);
  g_test_message ("LM row %d, diffusion row %d", lm, dd);
  g_assert_cmpint (lm, >, 40);
  g_assert_cmpint (dd, >, lm + 300);
  /* The learning rate (green) in the lower panel falls from left to right. */
  int lr_left = find_row (&image, 200, 560, 800, 51, 140, 64);
  int lr_right = find_row (&image, 1100, 560, 800, 51, 140, 64);
  g_test_message ("learning rate rows %d (left), %d (right)", lr_left, lr_right);
  g_assert_cmpint (lr_left, >, 560);
  g_assert_cmpint (lr_right, >, lr_left + 20);
  /* Outside the curves the panel is white. */
  g_assert_true (near_colour (image.rgba + ((size_t) ((lm + dd) / 2) * image.width + x + 7) * 4,
                              255, 255, 255));
  tf_image_clear (&image);

  /* A file with no records is an error that names it. */
  g_free (out);
  g_free (err);
  tf_test_write_file (NULL, log, "not json\n", -1);
  g_assert_cmpint (run_cli (args, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "no training records"));
  tf_test_remove_tree (dir);
}

/* Two logs, the second a warm restart of the first: one step axis, the
 * second log's steps following the first's, a solid purple line where it
 * starts. */
static void
test_plot_two_logs (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = tf_test_make_temp_dir ("tf-plot-XXXXXX");
  g_autofree char *first = g_build_filename (dir, "a.log.jsonl", NULL);
  g_autofree char *second = g_build_filename (dir, "b.log.jsonl", NULL);
  g_autofree char *missing = g_build_filename (dir, "none.log.jsonl", NULL);
  g_autofree char *png = g_build_filename (dir, "curves.png", NULL);
  g_autofree char *out = NULL, *err = NULL;

  /* Steps 1–200 in each; LM loss 2 then 1, diffusion loss 0.05 then 0.1. */
  for (int log = 0; log < 2; log++)
    {
      g_autoptr (GString) text = g_string_new (NULL);
      for (int s = 1; s <= 200; s++)
        g_string_append_printf (text, "{\"step\":%d,\"lm\":%g,\"ddpm\":%g,\"lr\":1e-3}\n", s,
                                log == 0 ? 2.0 : 1.0, log == 0 ? 0.05 : 0.1);
      tf_test_write_file (NULL, log == 0 ? first : second, text->str, (gssize) text->len);
    }
  const char *args[] = { "plot", first, second, "--output", png, NULL };
  g_assert_cmpint (run_cli (args, &out, &err), ==, 0);
  g_assert_cmpstr (err, ==, "");
  TfImage image = { 0 };
  g_assert_true (tf_image_read_png (png, &image, &error));
  g_assert_no_error (error);

  /* Steps 1 to 400 over the panel's 1,084 pixels from x = 92: the second
   * log starts at step 201, x ≈ 635. */
  int warm_x = -1;
  for (int x = 560; x < 720 && warm_x < 0; x++)
    if (find_row (&image, x, 300, 301, 140, 64, 153) == 300)
      warm_x = x;
  g_test_message ("warm restart line at x = %d", warm_x);
  g_assert_cmpint (warm_x, >=, 630);
  g_assert_cmpint (warm_x, <=, 641);
  /* Left of it the first log's curves, right of it the second's: the LM
   * curve lower (a smaller loss) and the diffusion curve higher. */
  int lm_a = find_row (&image, 300, 0, 560, 31, 102, 191);
  int lm_b = find_row (&image, 1000, 0, 560, 31, 102, 191);
  int dd_a = find_row (&image, 300, 0, 560, 217, 89, 26);
  int dd_b = find_row (&image, 1000, 0, 560, 217, 89, 26);
  g_test_message ("LM rows %d, %d; diffusion rows %d, %d", lm_a, lm_b, dd_a, dd_b);
  g_assert_cmpint (lm_a, >, 40);
  g_assert_cmpint (lm_b, >, lm_a + 20);
  g_assert_cmpint (dd_a, >, lm_b);
  g_assert_cmpint (dd_b, <, dd_a - 20);
  tf_image_clear (&image);

  /* A log that is not there is named. */
  g_free (out);
  g_free (err);
  const char *bad[] = { "plot", first, missing, "--output", png, NULL };
  g_assert_cmpint (run_cli (bad, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "none.log.jsonl"));
  tf_test_remove_tree (dir);
}

/* ---- The bundled model ------------------------------------------------------ */

#define BUNDLED_DIR TF_SOURCE_ROOT "/resources/models"

static void
test_bundled_model (void)
{
  g_autoptr (GError) error = NULL;
  const char *path = BUNDLED_DIR "/default.safetensors";
  const char *hash_path = BUNDLED_DIR "/default.sha256";
  g_autofree char *contents = NULL, *recorded = NULL;
  gsize len;

  /* The file is the one recorded. */
  g_assert_true (g_file_get_contents (path, &contents, &len, &error));
  g_assert_no_error (error);
  g_autofree char *hash = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guchar *) contents, len);
  g_assert_true (g_file_get_contents (hash_path, &recorded, NULL, &error));
  g_assert_no_error (error);
  if (strncmp (recorded, hash, 64) != 0)
    {
      g_test_fail_printf ("resources/models/default.safetensors has SHA-256 %s, but "
                          "resources/models/default.sha256 records %.64s. If the bundled model "
                          "was retrained on purpose, update the record: cd resources/models && "
                          "sha256sum default.safetensors > default.sha256 (and the README's "
                          "table of the model)", hash, recorded);
      return;
    }

  /* It loads, and its config is the preset its provenance names, with the
   * vocabulary of its tokenizer. */
  gint64 start = g_get_monotonic_time ();
  g_autoptr (TfGenerator) gen = tf_generator_new_from_file (path, &error);
  g_assert_no_error (error);
  g_test_message ("loaded in %.3f s", (g_get_monotonic_time () - start) / 1e6);
  const TfConfig *c = tf_model_config (tf_generator_model (gen));
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, &error);
  g_assert_no_error (error);
  const char *provenance = tf_safetensors_metadata (st, "provenance");
  g_assert_nonnull (provenance);
  /* It trained on Fashion-MNIST: a grey picture on black larger than 28
   * is fitted within 28 × 28, as those were (a garment four times larger
   * reads as the garment). */
  g_assert_cmpint (tf_generator_picture_grey_side (gen), ==, TF_FASHION_SIDE);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, provenance, -1, &error));
  JsonObject *prov = json_node_get_object (json_parser_get_root (parser));
  g_autoptr (JsonParser) options_parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (options_parser,
                                             json_object_get_string_member (prov, "options"),
                                             -1, &error));
  JsonObject *options = json_node_get_object (json_parser_get_root (options_parser));
  const char *preset = json_object_get_string_member (options, "preset");
  TfConfig want;
  g_assert_true (tf_config_preset (&want, preset, &error));
  g_test_message ("preset %s: d_model %d, %d layers, %d heads, trained %" G_GINT64_FORMAT
                  " steps", preset, c->d_model, c->n_layers, c->n_heads,
                  json_object_get_int_member (prov, "step"));
  g_assert_cmpint (c->d_model, ==, want.d_model);
  g_assert_cmpint (c->n_layers, ==, want.n_layers);
  g_assert_cmpint (c->n_heads, ==, want.n_heads);
  g_assert_cmpint (c->mlp_hidden, ==, want.mlp_hidden);
  g_assert_cmpint (c->max_seq_len, ==, want.max_seq_len);
  g_assert_cmpint (c->image_size, ==, want.image_size);
  g_assert_cmpint (c->image_channels, ==, want.image_channels);
  g_assert_cmpint (c->patch_size, ==, want.patch_size);
  g_assert_cmpint (c->diffusion_steps, ==, want.diffusion_steps);
  g_assert_cmpint (c->vocab_size, ==, tf_tokenizer_vocab_size (tf_generator_tokenizer (gen)));
  g_assert_cmpint (json_object_get_int_member (prov, "step"), >, 0);
  /* issue 7: at most 25 MB */
  g_assert_cmpuint (len, <=, 25u * 1000 * 1000);

  /* A valid image: finite, in range, not flat. */
  TfGenerateSettings s;
  tf_generate_settings_init (&s);
  s.steps = 4;
  s.sampler = TF_SAMPLER_DDIM;
  s.temperature = 0;
  s.max_tokens = 24;
  const int values = tf_config_image_values (c);
  g_autofree float *pixels = g_new (float, values);
  g_assert_true (tf_generator_generate_image (gen, "a sneaker", &s, NULL, pixels, &error));
  g_assert_no_error (error);
  float lo = INFINITY, hi = -INFINITY;
  for (int k = 0; k < values; k++)
    {
      g_assert_true (isfinite (pixels[k]));
      lo = MIN (lo, pixels[k]);
      hi = MAX (hi, pixels[k]);
    }
  g_assert_cmpfloat (lo, >=, -1);
  g_assert_cmpfloat (hi, <=, 1);
  g_assert_cmpfloat (hi - lo, >, 0.1);

  /* Valid text: an answer and a caption, non-empty UTF-8. */
  g_autofree char *answer = tf_generator_chat (gen, "what is a dog?", NULL, &s, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("what is a dog? → %s", answer);
  g_assert_true (g_utf8_validate (answer, -1, NULL));
  g_assert_cmpuint (strlen (answer), >, 0);
  g_autofree char *caption = tf_generator_caption (gen, pixels, &s, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("caption → %s", caption);
  g_assert_true (g_utf8_validate (caption, -1, NULL));
  g_assert_cmpuint (strlen (caption), >, 0);

  /* Its prompts steer: where the shapes are, at high noise, the ε error is
   * lowest after the scene's caption, higher with other shapes named, and
   * highest with no caption (paired: the same noise for all three). */
  TfEvalOptions eo;
  tf_eval_options_init (&eo);
  eo.sections = TF_EVAL_STEERING;
  eo.samples = 2;
  TfEvalReport report;
  g_assert_true (tf_eval_run (gen, NULL, &eo, &report, &error));
  g_assert_no_error (error);
  g_assert_cmpint (report.steering_shape_n, ==, 8);
  for (int k = 2; k < TF_EVAL_STEERING_LEVELS; k++)
    {
      g_test_message ("shapes at t = %d: right %.4f, other shapes %.4f, none %.4f",
                      report.steering_t[k], report.steering_shape_mse[k][0],
                      report.steering_shape_mse[k][1], report.steering_shape_mse[k][2]);
      g_assert_cmpfloat (report.steering_shape_mse[k][0], <, report.steering_shape_mse[k][1]);
      g_assert_cmpfloat (report.steering_shape_mse[k][1], <, report.steering_shape_mse[k][2]);
    }
  tf_eval_report_clear (&report);
}

/* One shape in other words: the article agrees ("just an orange circle"),
 * no size or place is said, and 48 prompts ask for every colour with every
 * shape. */
/* The 95% Wilson interval's farther end, against published values: 80 of
 * 100 lies in [71.1, 86.7]%, 0 of 50 in [0, 7.1]% (where p ± 1.96·se
 * would say ±0), 50 of 50 in [92.9, 100]%. */
static void
test_interval95 (void)
{
  g_assert_cmpfloat_with_epsilon (tf_eval_interval95 (80, 100), 8.883, 1e-3);
  g_assert_cmpfloat_with_epsilon (tf_eval_interval95 (0, 50), 7.135, 1e-3);
  g_assert_cmpfloat_with_epsilon (tf_eval_interval95 (50, 50), 7.135, 1e-3);
  g_assert_cmpfloat_with_epsilon (tf_eval_interval95 (40, 50), 13.037, 1e-3);
  g_assert_cmpfloat (tf_eval_interval95 (0, 0), ==, 0);
}

/* Fills @n images of [32, 32, 3] with flat @cell × @cell cells, moved by
 * @shift pixels, of values that differ from each neighbour's. */
static void
fill_cells (float *im, int n, int cell, int shift)
{
  for (int k = 0; k < n; k++)
    for (int y = 0; y < 32; y++)
      for (int x = 0; x < 32; x++)
        for (int c = 0; c < 3; c++)
          im[(((size_t) k * 32 + y) * 32 + x) * 3 + c] =
            (float) ((((x + shift) / cell) * 7 + ((y + shift) / cell) * 3 + c) % 5) / 4;
}

/* The seam measure: 1 where the image does not know the grid, far above it
 * for a patchwork of flat cells, below it when the edges fall inside the
 * patches. */
static void
test_seam_ratio (void)
{
  enum { S = 32, C = 3, P = 4, N = 2 };
  g_autofree float *im = g_new0 (float, (size_t) N * S * S * C);
  g_assert_cmpfloat (tf_eval_seam_ratio (im, N, S, C, P), ==, 1.0);   /* blank */

  /* a ramp: every step the same, across a border or not */
  for (size_t i = 0; i < (size_t) N * S * S * C; i++)
    {
      const int x = (int) (i / C % S), y = (int) (i / C / S % S);
      im[i] = (float) (x + y) / S - 1;
    }
  g_assert_cmpfloat_with_epsilon (tf_eval_seam_ratio (im, N, S, C, P), 1.0, 1e-4);

  /* noise: no grid either */
  TfRng rng;
  tf_rng_seed (&rng, 3);
  for (size_t i = 0; i < (size_t) N * S * S * C; i++)
    im[i] = (float) tf_rng_uniform (&rng) * 2 - 1;
  const double noise = tf_eval_seam_ratio (im, N, S, C, P);
  g_assert_cmpfloat (noise, >, 0.95);
  g_assert_cmpfloat (noise, <, 1.05);

  /* flat cells of the grid's size: seams only (and at p = 8, a grid the
   * cells do not match, half their edges fall inside the patches, so the
   * ratio is finite, though still far above 1) */
  fill_cells (im, N, P, 0);
  g_assert_cmpfloat (tf_eval_seam_ratio (im, N, S, C, P), >, 1e4);
  const double coarse = tf_eval_seam_ratio (im, N, S, C, 2 * P);
  g_assert_cmpfloat (coarse, >, 3.0);
  g_assert_cmpfloat (coarse, <, 1e4);

  /* the same cells moved by half a patch: their edges fall inside patches */
  fill_cells (im, N, P, P / 2);
  g_assert_cmpfloat (tf_eval_seam_ratio (im, N, S, C, P), <, 0.5);
}

static void
test_other_shape_prompts (void)
{
  g_autofree char *orange = tf_eval_other_shape_prompt (TF_SHAPE_ORANGE, 0, 4);
  g_autofree char *one = tf_eval_other_shape_prompt (TF_SHAPE_ORANGE, 0, 0);
  g_test_message ("%s / %s", orange, one);
  g_assert_true (g_str_has_prefix (orange, "just an orange "));
  g_assert_true (g_str_has_prefix (one, "one orange "));
  gboolean seen[TF_SHAPES_N_COLOURS * TF_SHAPES_N_SHAPES] = { FALSE };
  for (int i = 0; i < TF_SHAPES_N_COLOURS * TF_SHAPES_N_SHAPES; i++)
    {
      const int combo = (i * 7) % (TF_SHAPES_N_COLOURS * TF_SHAPES_N_SHAPES);
      g_assert_false (seen[combo]);
      seen[combo] = TRUE;
      g_autofree char *p = tf_eval_other_shape_prompt (combo % TF_SHAPES_N_COLOURS,
                                                       combo / TF_SHAPES_N_COLOURS, i);
      g_assert_null (strstr (p, "small"));
      g_assert_null (strstr (p, "large"));
      g_assert_null (strstr (p, " the "));
      g_assert_null (strstr (p, "a a"));
      g_assert_nonnull (strstr (p, tf_shapes_colour_name (combo % TF_SHAPES_N_COLOURS)));
      g_assert_nonnull (strstr (p, tf_shapes_shape_name (combo / TF_SHAPES_N_COLOURS)));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* The commands run in this process: threaded as the program's main sets
   * them (OpenBLAS's own threads, spinning beside the engine's, made the
   * tiny models' many small products 10× slower on a busy machine). */
  tf_configure_threads ();
  g_test_add_func ("/eval/end-to-end", test_eval_end_to_end);
  g_test_add_func ("/eval/emoji-render-as", test_emoji_render_as);
  g_test_add_func ("/eval/other-shape-prompts", test_other_shape_prompts);
  g_test_add_func ("/eval/seam-ratio", test_seam_ratio);
  g_test_add_func ("/eval/interval95", test_interval95);
  g_test_add_func ("/eval/pick-examples", test_pick_examples);
  g_test_add_func ("/eval/convert-examples", test_convert_examples);
  g_test_add_func ("/eval/sweep", test_eval_sweep);
  g_test_add_func ("/eval/plot", test_plot_synthetic_log);
  g_test_add_func ("/eval/plot-two-logs", test_plot_two_logs);
  g_test_add_func ("/eval/bundled-model", test_bundled_model);
  return g_test_run ();
}
