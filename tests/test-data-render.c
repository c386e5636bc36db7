/* test-data-render.c: the two rendered data sources, shapes and emoji
 * (SPEC §5): determinism, pixel range, disjoint splits, captions that state
 * what was drawn, the shapes' pixel analysis, and the emoji files' errors.
 * Speeds are printed, never asserted. The emoji tests skip when
 * emoji-test.txt (unicode-data) or Noto Color Emoji (fonts-noto-color-emoji)
 * is not installed. */
#include "tf-data.h"
#include "tf-data-shapes.h"
#include "tf-config.h"
#include "tf-test-util.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define EMOJI_TEST_PATH "/usr/share/unicode/emoji/emoji-test.txt"
#define EMOJI_FONT_PATH "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"

/* --- helpers ------------------------------------------------------------ */

static size_t
n_floats (const TfExample *example)
{
  return (size_t) example->size * example->size * example->channels;
}

static void
assert_in_range (const TfExample *example)
{
  g_assert_cmpint (example->kind, ==, TF_EXAMPLE_IMAGE);
  g_assert_nonnull (example->pixels);
  for (size_t i = 0; i < n_floats (example); i++)
    {
      g_assert_true (isfinite (example->pixels[i]));
      g_assert_cmpfloat (example->pixels[i], >=, -1.0f);
      g_assert_cmpfloat (example->pixels[i], <=, 1.0f);
    }
}

static void
assert_same_example (const TfExample *a, const TfExample *b)
{
  g_assert_cmpint (a->size, ==, b->size);
  g_assert_cmpint (a->channels, ==, b->channels);
  g_assert_cmpmem (a->pixels, n_floats (a) * sizeof (float), b->pixels,
                   n_floats (b) * sizeof (float));
  g_assert_cmpstr (a->caption, ==, b->caption);
  g_assert_cmpstr (a->subject, ==, b->subject);
  g_assert_cmpint (a->label, ==, b->label);
}

/* Example @i of @a and of @b, each drawn with an rng seeded @seed: the same
 * example, in range, with @channels channels, and the rngs end in the same
 * state. Returns @a's. */
static TfExample
assert_same_draw (TfDataSource *a, TfDataSource *b, int64_t i, uint64_t seed, int channels)
{
  TfRng ra, rb;
  tf_rng_seed (&ra, seed);
  tf_rng_seed (&rb, seed);
  TfExample ea, eb;
  g_assert_true (tf_data_source_get (a, i, &ra, &ea, NULL));
  g_assert_true (tf_data_source_get (b, i, &rb, &eb, NULL));
  assert_same_example (&ea, &eb);
  assert_in_range (&ea);
  g_assert_cmpint (ea.channels, ==, channels);
  g_assert_cmpmem (ra.s, sizeof ra.s, rb.s, sizeof rb.s);
  tf_example_clear (&eb);
  return ea;
}

static int
n_strings (const char *const *strv)
{
  int n = 0;
  while (strv[n] != NULL)
    n++;
  return n;
}

static gboolean
strv_has (const char *const *strv, const char *s)
{
  return g_strv_contains (strv, s);
}

/* --- shapes ------------------------------------------------------------- */

static void
test_shapes_names (void)
{
  /* The vocabulary the captions and the evaluation share. */
  static const char *const cells[TF_SHAPES_N_CELLS] = {
    "at the top left", "at the top", "at the top right",
    "on the left", "in the centre", "on the right",
    "at the bottom left", "at the bottom", "at the bottom right",
  };
  for (int c = 0; c < TF_SHAPES_N_CELLS; c++)
    g_assert_cmpstr (tf_shapes_cell_phrase (c), ==, cells[c]);
  g_assert_cmpstr (tf_shapes_shape_name (TF_SHAPE_CIRCLE), ==, "circle");
  g_assert_cmpstr (tf_shapes_colour_name (TF_SHAPE_RED), ==, "red");
  g_assert_cmpstr (tf_shapes_size_name (TF_SHAPE_LARGE), ==, "large");
  g_assert_cmpstr (tf_shapes_shape_name (-1), ==, "?");

  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) source = tf_data_shapes_new (TF_SPLIT_TRAIN, 32, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (tf_data_source_name (source), ==, "shapes");
  g_assert_cmpint (tf_data_source_size (source), ==, INT64_C (1) << 30);
  const char *const *subjects = tf_data_source_subjects (source);
  g_assert_cmpint (n_strings (subjects), ==,
                   TF_SHAPES_N_SHAPES + TF_SHAPES_N_COLOURS
                   + TF_SHAPES_N_SHAPES * TF_SHAPES_N_COLOURS + TF_SHAPES_N_CELLS);
  g_assert_true (strv_has (subjects, "circle"));
  g_assert_true (strv_has (subjects, "red"));
  g_assert_true (strv_has (subjects, "red circle"));
  g_assert_true (strv_has (subjects, "at the top left"));

  g_autoptr (TfDataSource) heldout = tf_data_shapes_new (TF_SPLIT_HELDOUT, 32, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tf_data_source_size (heldout), ==, 10000);

  g_assert_null (tf_data_shapes_new (TF_SPLIT_TRAIN, 32, 2, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
}

static void
test_shapes_determinism (void)
{
  for (int channels = 1; channels <= 3; channels += 2)
    {
      g_autoptr (TfDataSource) a = tf_data_shapes_new (TF_SPLIT_TRAIN, 32, channels, NULL);
      g_autoptr (TfDataSource) b = tf_data_shapes_new (TF_SPLIT_TRAIN, 32, channels, NULL);
      for (int64_t index = 0; index < 200; index++)
        {
          int64_t i = index * 5368709 % tf_data_source_size (a);
          TfExample ea = assert_same_draw (a, b, i, 42 + (uint64_t) index, channels);
          g_assert_cmpint (ea.size, ==, 32);
          g_assert_cmpint (ea.label, ==, -1);

          /* Another rng phrases it differently but draws the same scene. */
          TfRng rc;
          tf_rng_seed (&rc, 7777 + (uint64_t) index);
          TfExample ec;
          g_assert_true (tf_data_source_get (a, i, &rc, &ec, NULL));
          g_assert_cmpmem (ea.pixels, n_floats (&ea) * sizeof (float), ec.pixels,
                           n_floats (&ec) * sizeof (float));
          tf_example_clear (&ea);
          tf_example_clear (&ec);
        }
    }

  /* Out of range. */
  g_autoptr (TfDataSource) heldout = tf_data_shapes_new (TF_SPLIT_HELDOUT, 32, 3, NULL);
  g_autoptr (GError) error = NULL;
  TfRng rng;
  tf_rng_seed (&rng, 1);
  TfExample example;
  g_assert_false (tf_data_source_get (heldout, 10000, &rng, &example, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
}

static gboolean
same_scene (const TfShapeScene *a, const TfShapeScene *b)
{
  if (a->n != b->n)
    return FALSE;
  for (int i = 0; i < a->n; i++)
    {
      const TfShapeObject *x = &a->objects[i], *y = &b->objects[i];
      if (x->shape != y->shape || x->colour != y->colour || x->size != y->size
          || x->cell != y->cell || x->dx != y->dx || x->dy != y->dy)
        return FALSE;
    }
  return TRUE;
}

/* The scene without the jitter, objects in cell order: "4:1.2.0 …". */
static char *
scene_key (const TfShapeScene *scene)
{
  int by_cell[TF_SHAPES_N_CELLS];
  for (int c = 0; c < TF_SHAPES_N_CELLS; c++)
    by_cell[c] = -1;
  for (int i = 0; i < scene->n; i++)
    by_cell[scene->objects[i].cell] = i;
  GString *key = g_string_new (NULL);
  for (int c = 0; c < TF_SHAPES_N_CELLS; c++)
    if (by_cell[c] >= 0)
      {
        const TfShapeObject *o = &scene->objects[by_cell[c]];
        g_string_append_printf (key, "%d:%d.%d.%d ", c, o->shape, o->colour, o->size);
      }
  return g_string_free (key, FALSE);
}

static void
test_shapes_splits (void)
{
  /* The held-out split is its own seed range (from 2^40): its scenes are
   * not the train split's scenes at any index we can reach. Identical
   * scenes still occur by chance, mostly single objects: counted. */
  TfShapeScene a, b;
  int same_index = 0;
  for (int64_t i = 0; i < 10000; i++)
    {
      tf_shapes_scene_for_index (TF_SPLIT_TRAIN, i, &a);
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &b);
      same_index += same_scene (&a, &b);
      g_assert_cmpint (b.n, >=, 1);
      g_assert_cmpint (b.n, <=, TF_SHAPES_MAX_OBJECTS);
      for (int k = 0; k < b.n; k++)
        for (int j = 0; j < k; j++)
          g_assert_cmpint (b.objects[k].cell, !=, b.objects[j].cell);
    }
  g_assert_cmpint (same_index, <, 10);

  g_autoptr (GHashTable) train = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (int64_t i = 0; i < 100000; i++)
    {
      tf_shapes_scene_for_index (TF_SPLIT_TRAIN, i * 10007, &a);
      g_hash_table_add (train, scene_key (&a));
    }
  int seen[TF_SHAPES_MAX_OBJECTS + 1] = { 0 }, total[TF_SHAPES_MAX_OBJECTS + 1] = { 0 };
  for (int64_t i = 0; i < 10000; i++)
    {
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &b);
      g_autofree char *key = scene_key (&b);
      total[b.n]++;
      seen[b.n] += g_hash_table_contains (train, key);
    }
  for (int n = 1; n <= TF_SHAPES_MAX_OBJECTS; n++)
    g_test_message ("held-out scenes with %d object(s) also among 100000 train scenes "
                    "(ignoring jitter): %d of %d", n, seen[n], total[n]);
  g_assert_cmpint (seen[3], <, total[3] / 100);
}

/* Whether @caption says "a SIZE COLOUR SHAPE" followed by the cell's phrase
 * (or its other wording). */
static gboolean
caption_mentions (const char *caption, const TfShapeObject *o)
{
  static const char *const variants[TF_SHAPES_N_CELLS] = {
    "in the top left corner", NULL, "in the top right corner",
    NULL, "in the middle", NULL,
    "in the bottom left corner", NULL, "in the bottom right corner",
  };
  g_autofree char *object = g_strdup_printf ("a %s %s %s ", tf_shapes_size_name (o->size),
                                             tf_shapes_colour_name (o->colour),
                                             tf_shapes_shape_name (o->shape));
  for (const char *p = strstr (caption, object); p != NULL; p = strstr (p + 1, object))
    {
      const char *where = p + strlen (object);
      const char *phrases[2] = { tf_shapes_cell_phrase (o->cell), variants[o->cell] };
      for (int k = 0; k < 2; k++)
        if (phrases[k] != NULL && g_str_has_prefix (where, phrases[k]))
          {
            char next = where[strlen (phrases[k])];
            if (next == '\0' || next == ',' || next == ' ')
              return TRUE;
          }
    }
  return FALSE;
}

static int
count_occurrences (const char *haystack, const char *needle)
{
  int n = 0;
  for (const char *p = strstr (haystack, needle); p != NULL; p = strstr (p + 1, needle))
    n++;
  return n;
}

static void
test_shapes_captions (void)
{
  g_autoptr (TfDataSource) source = tf_data_shapes_new (TF_SPLIT_HELDOUT, 32, 3, NULL);
  TfRng rng;
  tf_rng_seed (&rng, 3);
  g_autoptr (GHashTable) phrasings = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  float *pixels = g_new (float, 32 * 32 * 3);
  for (int64_t i = 0; i < 2000; i++)
    {
      TfExample example;
      g_assert_true (tf_data_source_get (source, i, &rng, &example, NULL));
      TfShapeScene scene;
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &scene);

      /* The pixels are the scene's. */
      tf_shapes_render (&scene, 32, 3, pixels);
      g_assert_cmpmem (example.pixels, n_floats (&example) * sizeof (float), pixels,
                       32 * 32 * 3 * sizeof (float));

      for (int k = 0; k < scene.n; k++)
        if (!caption_mentions (example.caption, &scene.objects[k]))
          g_error ("scene %" G_GINT64_FORMAT ": caption '%s' does not mention %s %s %s %s", i,
                   example.caption, tf_shapes_size_name (scene.objects[k].size),
                   tf_shapes_colour_name (scene.objects[k].colour),
                   tf_shapes_shape_name (scene.objects[k].shape),
                   tf_shapes_cell_phrase (scene.objects[k].cell));
      /* Nothing else: one "a SIZE" per object. */
      int n_objects = count_occurrences (example.caption, "a small ")
                      + count_occurrences (example.caption, "a large ");
      g_assert_cmpint (n_objects, ==, scene.n);
      if (strchr (example.caption, ':') != NULL)
        g_assert_true (g_str_has_prefix (example.caption, scene.n == 2 ? "two " : "three "));

      g_autofree char *subject = g_strdup_printf ("%s %s",
                                                  tf_shapes_colour_name (scene.objects[0].colour),
                                                  tf_shapes_shape_name (scene.objects[0].shape));
      g_assert_cmpstr (example.subject, ==, subject);
      g_assert_cmpint (example.label, ==, -1);

      /* Phrasing variety: the caption with the objects' words taken out. */
      if (scene.n == 2)
        {
          g_auto (GStrv) words = g_strsplit (example.caption, " ", -1);
          g_hash_table_add (phrasings, g_strdup_printf ("%s %s", words[0], words[1]));
        }
      if (i < 5)
        g_test_message ("%s", example.caption);
      tf_example_clear (&example);
    }
  g_free (pixels);
  /* "a …", "two shapes: …", "two objects: …". */
  g_assert_cmpint (g_hash_table_size (phrasings), >=, 3);
}

static int
find_by_cell (const TfShapeScene *scene, int cell)
{
  for (int i = 0; i < scene->n; i++)
    if (scene->objects[i].cell == cell)
      return i;
  return -1;
}

/* Renders @n held-out scenes and reads them back. Per scene: the count is
 * right, every object is found in its cell (position), with its colour.
 * Per object: size and shape. */
static void
measure_analysis (int size, int channels, int n, double *count, double *position,
                  double *colour, double *object_size, double *shape)
{
  float *pixels = g_new (float, (size_t) size * size * channels);
  int ok_count = 0, ok_position = 0, ok_colour = 0, ok_size = 0, ok_shape = 0, n_objects = 0;
  int confusion[TF_SHAPES_N_SHAPES][TF_SHAPES_N_SHAPES + 1] = { { 0 } };
  for (int64_t i = 0; i < n; i++)
    {
      TfShapeScene scene, found;
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &scene);
      tf_shapes_render (&scene, size, channels, pixels);
      tf_shapes_analyse (pixels, size, channels, &found);
      ok_count += found.n == scene.n;
      gboolean positions = TRUE, colours = TRUE;
      for (int k = 0; k < scene.n; k++)
        {
          const TfShapeObject *o = &scene.objects[k];
          int j = find_by_cell (&found, o->cell);
          n_objects++;
          if (j < 0)
            {
              positions = colours = FALSE;
              continue;
            }
          const TfShapeObject *f = &found.objects[j];
          colours &= f->colour == o->colour;
          ok_size += f->size == o->size;
          ok_shape += f->shape == o->shape;
          confusion[o->shape][f->shape + 1]++;
        }
      ok_position += positions;
      ok_colour += colours;
    }
  g_free (pixels);
  *count = (double) ok_count / n;
  *position = (double) ok_position / n;
  *colour = (double) ok_colour / n;
  *object_size = (double) ok_size / n_objects;
  *shape = (double) ok_shape / n_objects;
  g_test_message ("analysis at %d×%d×%d of %d held-out scenes: count %.1f%%, position %.1f%%, "
                  "colour %.1f%%; per object: size %.1f%%, shape %.1f%%", size, size, channels, n,
                  100 * *count, 100 * *position, 100 * *colour, 100 * *object_size,
                  100 * *shape);
  for (int s = 0; s < TF_SHAPES_N_SHAPES; s++)
    {
      GString *row = g_string_new (NULL);
      g_string_append_printf (row, "  %-9s → ?:%d", tf_shapes_shape_name (s), confusion[s][0]);
      for (int t = 0; t < TF_SHAPES_N_SHAPES; t++)
        g_string_append_printf (row, " %s:%d", tf_shapes_shape_name (t), confusion[s][t + 1]);
      g_test_message ("%s", row->str);
      g_string_free (row, TRUE);
    }
}

static void
test_shapes_analysis (void)
{
  double count, position, colour, object_size, shape;
  measure_analysis (32, 3, 500, &count, &position, &colour, &object_size, &shape);
  g_assert_cmpfloat (count, >=, 0.95);
  g_assert_cmpfloat (position, >=, 0.95);
  g_assert_cmpfloat (colour, >=, 0.95);

  measure_analysis (64, 3, 500, &count, &position, &colour, &object_size, &shape);
  g_assert_cmpfloat (count, >=, 0.95);
  g_assert_cmpfloat (position, >=, 0.95);
  g_assert_cmpfloat (colour, >=, 0.95);

  /* Grey pixels: no colour, the rest still. */
  measure_analysis (32, 1, 500, &count, &position, &colour, &object_size, &shape);
  g_assert_cmpfloat (count, >=, 0.95);
  g_assert_cmpfloat (position, >=, 0.95);

  /* A blank image has no objects; noise specks are not objects. */
  float blank[32 * 32 * 3];
  for (int i = 0; i < 32 * 32 * 3; i++)
    blank[i] = 1.0f;
  blank[5 * 32 * 3 + 7 * 3] = -1.0f;
  TfShapeScene found;
  tf_shapes_analyse (blank, 32, 3, &found);
  g_assert_cmpint (found.n, ==, 0);
}

static void
test_shapes_speed (void)
{
  g_autoptr (TfDataSource) source = tf_data_shapes_new (TF_SPLIT_TRAIN, 32, 3, NULL);
  TfRng rng;
  tf_rng_seed (&rng, 5);
  const int n = 5000;
  gint64 start = g_get_monotonic_time ();
  for (int i = 0; i < n; i++)
    {
      TfExample example;
      g_assert_true (tf_data_source_get (source, i, &rng, &example, NULL));
      tf_example_clear (&example);
    }
  double seconds = (g_get_monotonic_time () - start) / 1e6;
  g_test_message ("shapes at 32×32: %.0f examples/s", n / seconds);

  float *pixels = g_new (float, 32 * 32 * 3);
  TfShapeScene scene, found;
  tf_shapes_scene_for_index (TF_SPLIT_TRAIN, 1, &scene);
  tf_shapes_render (&scene, 32, 3, pixels);
  start = g_get_monotonic_time ();
  for (int i = 0; i < n; i++)
    tf_shapes_analyse (pixels, 32, 3, &found);
  seconds = (g_get_monotonic_time () - start) / 1e6;
  g_test_message ("shapes analysis at 32×32: %.0f images/s", n / seconds);
  g_free (pixels);
}

/* --- emoji -------------------------------------------------------------- */

static gboolean
emoji_files_missing (void)
{
  if (!g_file_test (EMOJI_TEST_PATH, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip (EMOJI_TEST_PATH " is not installed (unicode-data)");
      return TRUE;
    }
  if (!g_file_test (EMOJI_FONT_PATH, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip (EMOJI_FONT_PATH " is not installed (fonts-noto-color-emoji)");
      return TRUE;
    }
  return FALSE;
}

static TfDataSource *
open_emoji (TfSplit split, int size, int channels)
{
  g_autoptr (GError) error = NULL;
  TfDataSource *source = tf_data_emoji_new (NULL, split, size, channels, &error);
  g_assert_no_error (error);
  g_assert_nonnull (source);
  return source;
}

static void
test_emoji_count (void)
{
  if (emoji_files_missing ())
    return;
  g_autoptr (TfDataSource) train = open_emoji (TF_SPLIT_TRAIN, 32, 3);
  g_autoptr (TfDataSource) heldout = open_emoji (TF_SPLIT_HELDOUT, 32, 3);
  g_assert_cmpstr (tf_data_source_name (train), ==, "emoji");
  const char *const *names = tf_data_source_subjects (train);
  int n = n_strings (names);
  g_test_message ("usable emoji: %d (fully-qualified, no skin tones, one glyph each); "
                  "pairs: %" G_GINT64_FORMAT " train, %" G_GINT64_FORMAT " held out", n,
                  tf_data_source_size (train), tf_data_source_size (heldout));
  g_assert_cmpint (n, >=, 1000);
  g_assert_cmpint (n_strings (tf_data_source_subjects (heldout)), ==, n);
  g_assert_true (strv_has (names, "pizza"));
  g_assert_true (strv_has (names, "grinning face"));
  g_assert_true (strv_has (names, "flag of japan"));
  g_assert_true (strv_has (names, "woman with red hair"));
  /* Names are lower case and distinct. */
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (int i = 0; i < n; i++)
    {
      g_autofree char *lower = g_utf8_strdown (names[i], -1);
      g_assert_cmpstr (lower, ==, names[i]);
      g_assert_false (g_hash_table_contains (seen, names[i]));
      g_hash_table_add (seen, (gpointer) names[i]);
      g_assert_null (strstr (names[i], "skin tone"));
    }
}

static const char *const emoji_scales[] = { "small", "medium", "large" };

typedef struct {
  int scale;
  int cell;
  int background;
} ParsedAugmentation;

/* Reads the augmentation back from a caption of emoji @name:
 * "a SCALE NAME[ emoji]|a SCALE emoji of NAME", then "[ POSITION]" (only a
 * large emoji may leave it out: it is centred), then " on a BG background".
 * Background words get numbers in @backgrounds as they are met. */
static gboolean
parse_emoji_caption (const char *caption, const char *name, GHashTable *backgrounds,
                     ParsedAugmentation *out)
{
  if (!g_str_has_prefix (caption, "a "))
    return FALSE;
  const char *p = caption + 2;
  out->scale = -1;
  for (int s = 0; s < (int) G_N_ELEMENTS (emoji_scales); s++)
    if (g_str_has_prefix (p, emoji_scales[s]) && p[strlen (emoji_scales[s])] == ' ')
      {
        out->scale = s;
        p += strlen (emoji_scales[s]) + 1;
        break;
      }
  if (out->scale < 0)
    return FALSE;
  gboolean emoji_of = g_str_has_prefix (p, "emoji of ");
  if (emoji_of)
    p += strlen ("emoji of ");
  if (!g_str_has_prefix (p, name))
    return FALSE;
  p += strlen (name);
  if (!emoji_of && g_str_has_prefix (p, " emoji"))
    p += strlen (" emoji");

  out->cell = -1;
  for (int c = 0; c < TF_SHAPES_N_CELLS; c++)
    {
      const char *phrase = tf_shapes_cell_phrase (c);
      if (p[0] == ' ' && g_str_has_prefix (p + 1, phrase)
          && g_str_has_prefix (p + 1 + strlen (phrase), " on a "))
        {
          out->cell = c;
          p += 1 + strlen (phrase);
          break;
        }
    }
  if (out->cell < 0)
    {
      if (out->scale != 2)
        return FALSE;
      out->cell = 4;
    }
  if (!g_str_has_prefix (p, " on a ") || !g_str_has_suffix (p, " background"))
    return FALSE;
  p += strlen (" on a ");
  g_autofree char *bg = g_strndup (p, strlen (p) - strlen (" background"));
  if (strchr (bg, ' ') != NULL)
    return FALSE;
  if (!g_hash_table_contains (backgrounds, bg))
    g_hash_table_insert (backgrounds, g_strdup (bg),
                         GINT_TO_POINTER (g_hash_table_size (backgrounds)));
  out->background = GPOINTER_TO_INT (g_hash_table_lookup (backgrounds, bg));
  return TRUE;
}

#define MAX_BACKGROUNDS 16
#define PAIRS_PER_EMOJI (3 * TF_SHAPES_N_CELLS * MAX_BACKGROUNDS)

static void
test_emoji_splits (void)
{
  if (emoji_files_missing ())
    return;
  /* Every example of both splits, read back as (emoji, scale, position,
   * background) from its label and caption: a pair is in one split only,
   * once, and the captions state the augmentation. */
  g_autoptr (TfDataSource) train = open_emoji (TF_SPLIT_TRAIN, 16, 3);
  g_autoptr (TfDataSource) heldout = open_emoji (TF_SPLIT_HELDOUT, 16, 3);
  int n_emoji = n_strings (tf_data_source_subjects (train));
  g_autofree guint8 *split_of = g_new0 (guint8, (size_t) n_emoji * PAIRS_PER_EMOJI);
  g_autofree int *train_per_emoji = g_new0 (int, n_emoji);
  g_autoptr (GHashTable) backgrounds = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                              NULL);
  int per_scale[3] = { 0 };
  TfRng rng;
  tf_rng_seed (&rng, 11);
  gint64 start = g_get_monotonic_time ();
  TfDataSource *sources[2] = { train, heldout };
  for (int s = 0; s < 2; s++)
    for (int64_t i = 0; i < tf_data_source_size (sources[s]); i++)
      {
        TfExample example;
        g_assert_true (tf_data_source_get (sources[s], i, &rng, &example, NULL));
        g_assert_cmpint (example.label, >=, 0);
        g_assert_cmpint (example.label, <, n_emoji);
        g_assert_cmpstr (example.subject, ==, tf_data_source_subjects (train)[example.label]);
        ParsedAugmentation aug;
        if (!parse_emoji_caption (example.caption, example.subject, backgrounds, &aug))
          g_error ("caption '%s' of '%s' does not state scale, position and background",
                   example.caption, example.subject);
        g_assert_cmpint (g_hash_table_size (backgrounds), <=, MAX_BACKGROUNDS);
        size_t pair = (size_t) example.label * PAIRS_PER_EMOJI
                      + (size_t) (aug.scale * TF_SHAPES_N_CELLS + aug.cell) * MAX_BACKGROUNDS
                      + (size_t) aug.background;
        if (split_of[pair] != 0)
          g_error ("'%s' (%s) appears twice: split %d and split %d", example.caption,
                   example.subject, split_of[pair] - 1, s);
        split_of[pair] = (guint8) (s + 1);
        if (s == 0)
          {
            train_per_emoji[example.label]++;
            per_scale[aug.scale]++;
          }
        tf_example_clear (&example);
      }
  double seconds = (g_get_monotonic_time () - start) / 1e6;
  int64_t total = tf_data_source_size (train) + tf_data_source_size (heldout);
  g_test_message ("%" G_GINT64_FORMAT " pairs (%.2f%% held out) read in %.1f s; %u backgrounds; "
                  "train examples per scale: %d small, %d medium, %d large", total,
                  100.0 * tf_data_source_size (heldout) / total, seconds,
                  g_hash_table_size (backgrounds), per_scale[0], per_scale[1], per_scale[2]);
  /* Every pair of emoji × augmentations is somewhere: the splits partition
   * them. */
  g_assert_cmpint (total % n_emoji, ==, 0);
  int n_augmentations = (int) (total / n_emoji);
  for (int e = 0; e < n_emoji; e++)
    {
      int n = 0;
      for (int a = 0; a < PAIRS_PER_EMOJI; a++)
        n += split_of[(size_t) e * PAIRS_PER_EMOJI + a] != 0;
      g_assert_cmpint (n, ==, n_augmentations);
      /* Every emoji is trained on. */
      g_assert_cmpint (train_per_emoji[e], >, 0);
    }
  /* About one pair in 20 is held out. */
  g_assert_cmpfloat ((double) tf_data_source_size (heldout) / total, >, 0.03);
  g_assert_cmpfloat ((double) tf_data_source_size (heldout) / total, <, 0.07);
}

static void
test_emoji_determinism (void)
{
  if (emoji_files_missing ())
    return;
  /* A source whose glyph cache is warm and a fresh one agree. */
  g_autoptr (TfDataSource) warm = open_emoji (TF_SPLIT_TRAIN, 32, 3);
  TfRng rng;
  tf_rng_seed (&rng, 2);
  for (int i = 0; i < 3000; i++)
    {
      TfExample example;
      int64_t index = (int64_t) tf_rng_below (&rng, (uint64_t) tf_data_source_size (warm));
      g_assert_true (tf_data_source_get (warm, index, &rng, &example, NULL));
      tf_example_clear (&example);
    }
  for (int channels = 1; channels <= 3; channels += 2)
    {
      g_autoptr (TfDataSource) a = open_emoji (TF_SPLIT_TRAIN, 32, channels);
      /* RGB against the warm source, grey against a second fresh one. */
      g_autoptr (TfDataSource) b = channels == 3 ? NULL : open_emoji (TF_SPLIT_TRAIN, 32,
                                                                      channels);
      TfDataSource *other = channels == 3 ? warm : b;
      for (int64_t k = 0; k < 300; k++)
        {
          int64_t i = k * 7919 % tf_data_source_size (a);
          TfExample ea = assert_same_draw (a, other, i, 100 + (uint64_t) k, channels);
          tf_example_clear (&ea);
        }
    }
}

/* The example of @name, large, centred on white. Examples come in emoji
 * order, so a binary search finds the emoji's first one. */
static TfExample
find_large_on_white (TfDataSource *source, const char *name)
{
  const char *const *names = tf_data_source_subjects (source);
  int label = -1;
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp (names[i], name) == 0)
      label = i;
  g_assert_cmpint (label, >=, 0);

  TfRng rng;
  tf_rng_seed (&rng, 9);
  TfExample example;
  int64_t lo = 0, hi = tf_data_source_size (source);
  while (lo < hi)
    {
      int64_t mid = lo + (hi - lo) / 2;
      g_assert_true (tf_data_source_get (source, mid, &rng, &example, NULL));
      if (example.label < label)
        lo = mid + 1;
      else
        hi = mid;
      tf_example_clear (&example);
    }
  for (int64_t i = lo; i < tf_data_source_size (source); i++)
    {
      g_assert_true (tf_data_source_get (source, i, &rng, &example, NULL));
      g_assert_cmpint (example.label, ==, label);
      if (g_str_has_prefix (example.caption, "a large ")
          && g_str_has_suffix (example.caption, " on a white background"))
        return example;
      tf_example_clear (&example);
    }
  g_assert_not_reached ();
}

static void
test_emoji_pixels (void)
{
  if (emoji_files_missing ())
    return;
  g_autoptr (TfDataSource) source = open_emoji (TF_SPLIT_TRAIN, 32, 3);
  TfExample pizza = find_large_on_white (source, "pizza");
  TfExample face = find_large_on_white (source, "grinning face");
  assert_in_range (&pizza);
  /* Not blank: most of the large glyph is drawn, and in colour. */
  int drawn = 0, coloured = 0;
  double difference = 0;
  for (int i = 0; i < 32 * 32; i++)
    {
      const float *p = pizza.pixels + 3 * i, *q = face.pixels + 3 * i;
      drawn += p[0] < 0.9f || p[1] < 0.9f || p[2] < 0.9f;
      float hi = MAX (p[0], MAX (p[1], p[2])), lo = MIN (p[0], MIN (p[1], p[2]));
      coloured += hi - lo > 0.5f;
      for (int k = 0; k < 3; k++)
        difference += fabsf (p[k] - q[k]);
    }
  difference /= 32 * 32 * 3;
  g_test_message ("pizza at 32×32: %d pixels drawn, %d coloured; mean difference from the "
                  "grinning face %.3f", drawn, coloured, difference);
  g_assert_cmpint (drawn, >, 200);
  g_assert_cmpint (coloured, >, 100);
  g_assert_cmpfloat (difference, >, 0.1);
  tf_example_clear (&pizza);
  tf_example_clear (&face);

  /* No emoji is blank: each one large, on white. */
  g_autoptr (TfDataSource) heldout = open_emoji (TF_SPLIT_HELDOUT, 16, 3);
  int n_emoji = n_strings (tf_data_source_subjects (heldout));
  g_autofree gboolean *checked = g_new0 (gboolean, n_emoji);
  int n_checked = 0, n_blank = 0;
  TfRng rng;
  tf_rng_seed (&rng, 4);
  for (int64_t i = 0; i < tf_data_source_size (heldout); i++)
    {
      TfExample example;
      g_assert_true (tf_data_source_get (heldout, i, &rng, &example, NULL));
      if (!checked[example.label] && g_str_has_prefix (example.caption, "a large "))
        {
          /* Whatever the background, the glyph changes some pixels. */
          int changed = 0;
          for (int k = 0; k < 16 * 16; k++)
            for (int c = 0; c < 3; c++)
              changed += fabsf (example.pixels[3 * k + c] - example.pixels[c]) > 0.2f;
          n_blank += changed < 10;
          if (changed < 10)
            g_test_message ("blank: %s", example.caption);
          checked[example.label] = TRUE;
          n_checked++;
        }
      tf_example_clear (&example);
    }
  g_test_message ("%d emoji checked large in the held-out split, %d blank", n_checked, n_blank);
  g_assert_cmpint (n_blank, ==, 0);
}

static void
test_emoji_speed (void)
{
  if (emoji_files_missing ())
    return;
  gint64 start = g_get_monotonic_time ();
  g_autoptr (TfDataSource) source = open_emoji (TF_SPLIT_TRAIN, 32, 3);
  double open_seconds = (g_get_monotonic_time () - start) / 1e6;
  TfRng rng;
  tf_rng_seed (&rng, 6);
  const int n = 20000;
  for (int pass = 0; pass < 2; pass++)
    {
      start = g_get_monotonic_time ();
      for (int i = 0; i < n; i++)
        {
          TfExample example;
          int64_t index = (int64_t) tf_rng_below (&rng, (uint64_t) tf_data_source_size (source));
          g_assert_true (tf_data_source_get (source, index, &rng, &example, NULL));
          tf_example_clear (&example);
        }
      double seconds = (g_get_monotonic_time () - start) / 1e6;
      g_test_message ("emoji at 32×32, random indices, %s glyph cache: %.0f examples/s",
                      pass == 0 ? "cold" : "warm", n / seconds);
    }
  g_test_message ("opening the emoji source: %.2f s", open_seconds);
}

static const char mini_emoji_test[] =
  "# emoji-test.txt, a few lines\n"
  "# group: Food & Drink\n"
  "# subgroup: food-prepared\n"
  "1F355                  ; fully-qualified     # \U0001F355 E0.6 pizza\n"
  "\n"
  "# group: People & Body\n"
  "# subgroup: hand-fingers-open\n"
  "1F44B                  ; fully-qualified     # \U0001F44B E0.6 waving hand\n"
  "1F44B 1F3FB            ; fully-qualified     # \U0001F44B\U0001F3FB E1.0 waving hand: light skin tone\n"
  "263A FE0F              ; fully-qualified     # \u263A\uFE0F E0.6 smiling face\n"
  "263A                   ; unqualified         # \u263A E0.6 smiling face\n"
  "1F1EF 1F1F5            ; fully-qualified     # \U0001F1EF\U0001F1F5 E0.6 flag: Japan\n"
  "1F468 200D 1F9B0       ; fully-qualified     # \U0001F468\u200D\U0001F9B0 E11.0 man: red hair\n"
  "1F3FB                  ; component           # \U0001F3FB E1.0 light skin tone\n"
  "1F355 200D 1F355       ; fully-qualified     # \U0001F355\u200D\U0001F355 E99.0 pizza pair\n"
  "#EOF\n";

static void
test_emoji_parsing (void)
{
  if (emoji_files_missing ())
    return;
  /* Only fully-qualified entries without skin tones that the font draws
   * as one glyph (the made-up "pizza pair" has none). */
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-render-XXXXXX");
  tf_test_write_file (dir, "emoji-test.txt", mini_emoji_test, -1);
  g_autoptr (GError) error = NULL;
  g_autoptr (TfDataSource) train = tf_data_emoji_new (dir, TF_SPLIT_TRAIN, 32, 3, &error);
  g_assert_no_error (error);
  g_autoptr (TfDataSource) heldout = tf_data_emoji_new (dir, TF_SPLIT_HELDOUT, 32, 3, &error);
  g_assert_no_error (error);
  const char *const expected[] = {
    "pizza", "waving hand", "smiling face", "flag of japan", "man with red hair", NULL,
  };
  const char *const *names = tf_data_source_subjects (train);
  g_assert_cmpint (n_strings (names), ==, n_strings (expected));
  for (int i = 0; expected[i] != NULL; i++)
    g_assert_cmpstr (names[i], ==, expected[i]);
  int64_t total = tf_data_source_size (train) + tf_data_source_size (heldout);
  g_assert_cmpint (total % 5, ==, 0);
  g_test_message ("augmentations per emoji: %" G_GINT64_FORMAT, total / 5);
  tf_test_remove_tree (dir);
}

static void
assert_emoji_error (const char *dir, int code, const char *must_mention)
{
  g_autoptr (GError) error = NULL;
  TfDataSource *source = tf_data_emoji_new (dir, TF_SPLIT_TRAIN, 32, 3, &error);
  g_assert_null (source);
  g_assert_error (error, TF_ERROR, code);
  g_test_message ("%s", error->message);
  if (strstr (error->message, must_mention) == NULL)
    g_error ("error '%s' does not mention '%s'", error->message, must_mention);
}

static void
test_emoji_errors (void)
{
  g_autofree char *dir = tf_test_make_temp_dir ("tf-data-render-XXXXXX");
  g_autofree char *test_path = g_build_filename (dir, "emoji-test.txt", NULL);
  g_autofree char *font_path = g_build_filename (dir, "NotoColorEmoji.ttf", NULL);

  /* No emoji-test.txt. */
  assert_emoji_error (dir, TF_ERROR_IO, test_path);

  if (g_file_test (EMOJI_FONT_PATH, G_FILE_TEST_IS_REGULAR))
    {
      /* Lines that are not entries. */
      tf_test_write_file (dir, "emoji-test.txt", "# group: Food\n1F355 fully-qualified pizza\n",
                          -1);
      g_autofree char *line2 = g_strdup_printf ("%s:2", test_path);
      assert_emoji_error (dir, TF_ERROR_FORMAT, line2);
      tf_test_write_file (dir, "emoji-test.txt", "1F3G5 ; fully-qualified # x E0.6 pizza\n", -1);
      assert_emoji_error (dir, TF_ERROR_FORMAT, "1F3G5");
      tf_test_write_file (dir, "emoji-test.txt", "1F355 ; fully-qualified # \U0001F355 pizza\n",
                          -1);
      assert_emoji_error (dir, TF_ERROR_FORMAT, test_path);
      /* Nothing usable. */
      tf_test_write_file (dir, "emoji-test.txt",
                          "# only comments\n263A ; unqualified # x E0.6 smile\n", -1);
      assert_emoji_error (dir, TF_ERROR_FORMAT, test_path);
    }

  /* A font file in @dir comes first: not a font, not a colour font. */
  tf_test_write_file (dir, "emoji-test.txt", mini_emoji_test, -1);
  tf_test_write_file (dir, "NotoColorEmoji.ttf", "not a font", -1);
  assert_emoji_error (dir, TF_ERROR_FORMAT, font_path);
  const char *mono = "/usr/share/fonts/truetype/noto/NotoMono-Regular.ttf";
  if (g_file_test (mono, G_FILE_TEST_IS_REGULAR))
    {
      g_unlink (font_path);
      g_assert_cmpint (symlink (mono, font_path), ==, 0);
      assert_emoji_error (dir, TF_ERROR_FORMAT, font_path);
    }

  /* Sizes the model cannot have. */
  g_autoptr (GError) error = NULL;
  g_assert_null (tf_data_emoji_new (dir, TF_SPLIT_TRAIN, 32, 4, &error));
  g_assert_error (error, TF_ERROR, TF_ERROR_INPUT);
  tf_test_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/data-render/shapes/names", test_shapes_names);
  g_test_add_func ("/data-render/shapes/determinism", test_shapes_determinism);
  g_test_add_func ("/data-render/shapes/splits", test_shapes_splits);
  g_test_add_func ("/data-render/shapes/captions", test_shapes_captions);
  g_test_add_func ("/data-render/shapes/analysis", test_shapes_analysis);
  g_test_add_func ("/data-render/shapes/speed", test_shapes_speed);
  g_test_add_func ("/data-render/emoji/count", test_emoji_count);
  g_test_add_func ("/data-render/emoji/splits", test_emoji_splits);
  g_test_add_func ("/data-render/emoji/determinism", test_emoji_determinism);
  g_test_add_func ("/data-render/emoji/pixels", test_emoji_pixels);
  g_test_add_func ("/data-render/emoji/speed", test_emoji_speed);
  g_test_add_func ("/data-render/emoji/parsing", test_emoji_parsing);
  g_test_add_func ("/data-render/emoji/errors", test_emoji_errors);
  return g_test_run ();
}
