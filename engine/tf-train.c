/* tf-train.c: the Transfusion objective on mixed data, AdamW, EMA, and
 * checkpoints that resume exactly (SPEC §3). */
#include "config.h"
#include "tf-train.h"
#include "tf-file.h"
#include "tf-threads.h"
#include "tf-tsan.h"
#include "tf-data.h"
#include "tf-diffusion.h"
#include "tf-rng.h"

#include <errno.h>
#include <json-glib/json-glib.h>

#include "tf-json.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define STATE_FORMAT "transfusion-train-state"

struct _TfTrainer {
  TfTrainOptions opt;
  TfModel       *model;
  TfActivations *acts;
  TfTokenizer   *tok;
  TfDataSource **sources;
  double        *cum_weights;   /* cumulative, normalised */
  int            n_sources;
  float         *adam_m, *adam_v, *ema;
  TfRng          rng;
  TfThreads      threads;         /* chosen before each step */
  int64_t        step;
  double         elapsed_before;  /* seconds spent in earlier runs */
  GTimer        *timer;
  double         last_save;       /* timer seconds at the last save */
  double         step_seconds;    /* smoothed, for the ETA */
  char          *state_path;
  char          *log_path;
  char          *warm_start;      /* what a warm restart started from, or NULL */
  FILE          *log;
  int64_t       *images_seen;     /* [n_sources] images trained on, by data source */
  int            n_images_seen;
  TfGemmBackend  backend;         /* what runs the products, from opt.precision */
  TfGemmPack    *pack;            /* the weights' bf16 copies, made once per step */
};

/* ---- Options ------------------------------------------------------------ */

void
tf_train_options_init (TfTrainOptions *o)
{
  memset (o, 0, sizeof *o);
  o->preset = g_strdup ("small");
  o->data = g_strsplit ("fashion,emoji,shapes,wordnet", ",", -1);
  o->steps = 1000;
  o->batch = 8;
  o->lr = 1e-3;
  o->min_lr_ratio = 0.1;
  o->warmup_steps = -1;
  o->weight_decay = 0.1;
  o->beta1 = 0.9;
  o->beta2 = 0.95;
  o->adam_eps = 1e-8;
  o->clip = 1.0;
  o->ema_decay = 0.999;
  o->seed = 1;
  o->save_every_minutes = 5.0;
  o->image_first = 0.2;
  o->cfg_drop = 0.1;
  o->chat_fraction = 0.25;
  o->lambda = 5.0;
}

void
tf_train_options_clear (TfTrainOptions *o)
{
  g_free (o->preset);
  g_strfreev (o->data);
  g_free (o->weights);
  g_free (o->out);
  g_free (o->init_from);
  g_free (o->recipe);
  memset (o, 0, sizeof *o);
}

static void
options_copy (TfTrainOptions *dst, const TfTrainOptions *src)
{
  *dst = *src;
  dst->preset = g_strdup (src->preset);
  dst->data = g_strdupv (src->data);
  dst->out = g_strdup (src->out);
  dst->init_from = g_strdup (src->init_from);
  dst->recipe = g_strdup (src->recipe);
  guint n = src->data ? g_strv_length (src->data) : 0;
  dst->weights = src->weights ? g_memdup2 (src->weights, sizeof (double) * n) : NULL;
}

/* The numeric options a resumed run must repeat, in the order its
 * identity lists them (after preset, data and weights; SEED is where the
 * seed goes): one list for writing the identity and reading it back. */
#define RUN_OPTIONS(INT, DBL, SEED)                                            \
  INT ("batch", batch) DBL ("lr", lr) DBL ("min_lr_ratio", min_lr_ratio)       \
  INT ("warmup_steps", warmup_steps) DBL ("weight_decay", weight_decay)        \
  DBL ("beta1", beta1) DBL ("beta2", beta2) DBL ("adam_eps", adam_eps)         \
  DBL ("clip", clip) DBL ("ema_decay", ema_decay) SEED                         \
  DBL ("image_first", image_first) DBL ("cfg_drop", cfg_drop)                  \
  DBL ("chat_fraction", chat_fraction) DBL ("lambda", lambda)                  \
  INT ("vocab_size", vocab_size) INT ("max_examples", max_examples)

/* The options that shape a run, as one canonical JSON object: a resumed run
 * must have the same ones, or it would not continue the same run. */
static char *
options_identity (const TfTrainOptions *o)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
#define STR(k, v) json_builder_set_member_name (b, k); json_builder_add_string_value (b, v);
#define DBL(k, v) json_builder_set_member_name (b, k); json_builder_add_double_value (b, v);
#define INT(k, v) json_builder_set_member_name (b, k); json_builder_add_int_value (b, v);
  STR ("preset", o->preset)
  json_builder_set_member_name (b, "data");
  json_builder_begin_array (b);
  for (int i = 0; o->data && o->data[i]; i++)
    json_builder_add_string_value (b, o->data[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "weights");
  json_builder_begin_array (b);
  for (int i = 0; o->data && o->data[i]; i++)
    json_builder_add_double_value (b, o->weights ? o->weights[i] : 1.0);
  json_builder_end_array (b);
  g_autofree char *seed = g_strdup_printf ("%" G_GUINT64_FORMAT, o->seed);
#define W_INT(k, f) INT (k, o->f)
#define W_DBL(k, f) DBL (k, o->f)
#define W_SEED STR ("seed", seed)
  RUN_OPTIONS (W_INT, W_DBL, W_SEED)
  /* Only when there is one, so that runs from before recipes resume. */
  if (o->recipe != NULL && *o->recipe != '\0')
    {
      STR ("recipe", o->recipe)
    }
  /* Only when the schedule holds its peak, as for the recipe. */
  if (o->decay_fraction > 0)
    {
      DBL ("decay_fraction", o->decay_fraction)
    }
#undef W_INT
#undef W_DBL
#undef W_SEED
#undef STR
#undef DBL
#undef INT
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

/* Reads back what options_identity() wrote. */
static gboolean
options_from_identity (TfTrainOptions *o, const char *json, const char *path, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *obj = NULL;
  if (json != NULL && tf_json_parse (parser, json, -1, NULL) &&
      JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    obj = json_node_get_object (json_parser_get_root (parser));
  JsonArray *data = obj != NULL ? json_object_get_array_member (obj, "data") : NULL;
  JsonArray *weights = obj != NULL ? json_object_get_array_member (obj, "weights") : NULL;
  const char *preset = obj != NULL ? json_object_get_string_member_with_default (obj, "preset",
                                                                                 NULL) : NULL;
  const char *seed = obj != NULL ? json_object_get_string_member_with_default (obj, "seed",
                                                                               NULL) : NULL;
  if (obj == NULL || data == NULL || weights == NULL || preset == NULL || seed == NULL ||
      json_array_get_length (data) != json_array_get_length (weights) ||
      json_array_get_length (data) == 0 ||
      !g_ascii_string_to_unsigned (seed, 10, 0, G_MAXUINT64, &o->seed, NULL))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: __metadata__ 'options' is missing or malformed", path);
      return FALSE;
    }
  const guint n = json_array_get_length (data);
  g_free (o->preset);
  o->preset = g_strdup (preset);
  g_strfreev (o->data);
  o->data = g_new0 (char *, n + 1);
  g_free (o->weights);
  o->weights = g_new (double, n);
  for (guint i = 0; i < n; i++)
    {
      o->data[i] = g_strdup (json_array_get_string_element (data, i));
      o->weights[i] = json_array_get_double_element (weights, i);
      if (o->data[i] == NULL)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: __metadata__ 'options' is missing or malformed", path);
          return FALSE;
        }
    }
#define R_DBL(k, f) o->f = json_object_get_double_member_with_default (obj, k, o->f);
#define R_INT(k, f) o->f = json_object_get_int_member_with_default (obj, k, o->f);
  RUN_OPTIONS (R_INT, R_DBL, /* read above */)
  g_free (o->recipe);
  o->recipe = g_strdup (json_object_get_string_member_with_default (obj, "recipe", ""));
  o->decay_fraction = json_object_get_double_member_with_default (obj, "decay_fraction", 0.0);
#undef R_DBL
#undef R_INT
  return TRUE;
}

gboolean
tf_train_options_load_saved (TfTrainOptions *o, const char *model_path, GError **error)
{
  g_autofree char *path = tf_train_state_path (model_path);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s: no training state to resume (it would be %s)", model_path, path);
      return FALSE;
    }
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, error);
  if (st == NULL)
    return FALSE;
  const char *steps = tf_safetensors_metadata (st, "steps");
  if (g_strcmp0 (tf_safetensors_metadata (st, "format"), STATE_FORMAT) != 0 || steps == NULL ||
      !g_ascii_string_to_signed (steps, 10, 1, G_MAXINT64, &o->steps, NULL))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: not a training state, or its 'steps' is missing", path);
      return FALSE;
    }
  if (!options_from_identity (o, tf_safetensors_metadata (st, "options"), path, error))
    return FALSE;
  /* Runs from before precisions were saved ran in fp32. */
  const char *precision = tf_safetensors_metadata (st, "precision");
  o->precision = TF_PRECISION_FP32;
  if (precision != NULL && !tf_precision_parse (precision, &o->precision, NULL))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: __metadata__ 'precision' is '%s', expected fp32, bf16 or auto", path,
                   precision);
      return FALSE;
    }
  return TRUE;
}

static gboolean
options_validate (const TfTrainOptions *o, GError **error)
{
#define REQUIRE(cond, ...)                                                     \
  if (!(cond))                                                                 \
    {                                                                          \
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, __VA_ARGS__);              \
      return FALSE;                                                            \
    }
  REQUIRE (o->out != NULL && *o->out, "no output model path given");
  REQUIRE (g_str_has_suffix (o->out, ".safetensors"),
           "%s: the model path must end in .safetensors", o->out);
  REQUIRE (o->data != NULL && o->data[0] != NULL, "no training data given");
  REQUIRE (o->steps >= 1 && o->steps <= (G_GINT64_CONSTANT (1) << 40),
           "--steps %" G_GINT64_FORMAT " is out of range (1 to 2^40)", o->steps);
  REQUIRE (o->until_step >= 0, "--until-step must be ≥ 0");
  REQUIRE (o->save_every_steps >= 0, "--save-every-steps must be ≥ 0");
  REQUIRE (o->max_examples >= 0, "--max-examples must be ≥ 0");
  REQUIRE (o->batch >= 1 && o->batch <= 4096, "--batch %d is out of range (1 to 4096)", o->batch);
  REQUIRE (isfinite (o->lr) && o->lr > 0 && o->lr < 1, "--lr %g is out of range (0 to 1)", o->lr);
  REQUIRE (o->min_lr_ratio >= 0 && o->min_lr_ratio <= 1, "the minimum learning-rate ratio must be 0 to 1");
  REQUIRE (isfinite (o->decay_fraction) && o->decay_fraction >= 0 && o->decay_fraction <= 1,
           "--decay %g is out of range (0: cosine; up to 1)", o->decay_fraction);
  REQUIRE (o->weight_decay >= 0 && o->weight_decay < 1, "weight decay must be 0 to 1");
  REQUIRE (o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1, "Adam betas must be in [0, 1)");
  REQUIRE (o->adam_eps > 0 && o->clip > 0, "Adam eps and the clipping norm must be positive");
  REQUIRE (o->ema_decay >= 0 && o->ema_decay < 1, "the EMA decay must be in [0, 1)");
  REQUIRE (o->image_first >= 0 && o->image_first <= 1, "--image-first must be 0 to 1");
  REQUIRE (o->cfg_drop >= 0 && o->cfg_drop <= 1, "--cfg-drop must be 0 to 1");
  REQUIRE (!(o->resume && o->init_from != NULL),
           "--init-from starts a new run; it cannot go with --resume");
  REQUIRE (o->chat_fraction >= 0 && o->chat_fraction <= 1, "--chat must be 0 to 1");
  REQUIRE (isfinite (o->lambda) && o->lambda >= 0, "--lambda must be ≥ 0");
  REQUIRE (isfinite (o->save_every_minutes) && o->save_every_minutes > 0,
           "--save-every must be a positive number of minutes");
  REQUIRE (o->vocab_size == 0 || (o->vocab_size >= 256 + TF_N_SPECIAL && o->vocab_size <= 65536),
           "--vocab %d is out of range (%d to 65536)", o->vocab_size, 256 + TF_N_SPECIAL);
  for (int i = 0; o->data[i]; i++)
    REQUIRE (o->weights == NULL || (isfinite (o->weights[i]) && o->weights[i] >= 0),
             "the weight of data '%s' must be ≥ 0", o->data[i]);
#undef REQUIRE
  return TRUE;
}

char *
tf_train_state_path (const char *model_path)
{
  if (g_str_has_suffix (model_path, ".safetensors"))
    {
      g_autofree char *stem = g_strndup (model_path, strlen (model_path) - strlen (".safetensors"));
      return g_strconcat (stem, ".state.safetensors", NULL);
    }
  return g_strconcat (model_path, ".state.safetensors", NULL);
}

char *
tf_train_log_path (const char *model_path)
{
  g_autofree char *stem = g_str_has_suffix (model_path, ".safetensors")
    ? g_strndup (model_path, strlen (model_path) - strlen (".safetensors"))
    : g_strdup (model_path);
  return g_strconcat (stem, ".log.jsonl", NULL);
}

/* ---- Data --------------------------------------------------------------- */

static gboolean
open_sources (TfTrainer *tr, const TfConfig *c, GError **error)
{
  const TfTrainOptions *o = &tr->opt;
  tr->n_sources = g_strv_length (o->data);
  tr->sources = g_new0 (TfDataSource *, tr->n_sources);
  tr->cum_weights = g_new (double, tr->n_sources);
  double total = 0;
  for (int i = 0; i < tr->n_sources; i++)
    {
      TfDataSource *s = tf_data_source_open (o->data[i], TF_SPLIT_TRAIN, c->image_size,
                                             c->image_channels, error);
      if (s == NULL)
        return FALSE;
      tr->sources[i] = s;
      total += o->weights ? o->weights[i] : 1.0;
      tr->cum_weights[i] = total;
    }
  if (!(total > 0))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "the data weights add up to zero");
      return FALSE;
    }
  for (int i = 0; i < tr->n_sources; i++)
    tr->cum_weights[i] /= total;
  return TRUE;
}

static gboolean
draw_example (TfTrainer *tr, TfRng *rng, TfExample *ex, int *source, GError **error)
{
  double u = tf_rng_uniform (rng);
  int s = 0;
  while (s + 1 < tr->n_sources && u >= tr->cum_weights[s])
    s++;
  int64_t n = tf_data_source_size (tr->sources[s]);
  if (tr->opt.max_examples > 0 && tr->opt.max_examples < n)
    n = tr->opt.max_examples;
  int64_t index = (int64_t) tf_rng_below (rng, (uint64_t) n);
  memset (ex, 0, sizeof *ex);
  if (source != NULL)
    *source = s;
  return tf_data_source_get (tr->sources[s], index, rng, ex, error);
}

static const char *const draw_phrases[] = {
  "draw ", "draw me ", "make a picture of ", "show me ", "paint ", "create an image of ",
  "please draw ", "generate ", "i would like a picture of ", "sketch ",
  "make an image of ",
};
static const char *const caption_questions[] = {
  "what is this?", "what is in this picture?", "describe this image.", "caption this.",
  "what do you see?", "what's this?", "what is shown here?", "can you describe this?",
  "what is it?", "what's in the picture?",
};

/* People ask for less than training's captions say, and in words of their
 * own: a prompt for shapes or emoji sometimes leaves out where the object
 * is, how large, or (emoji) on what background, or says "big", "little"
 * and "center". Only prompts (text the model reads before drawing) are
 * loosened; the captions it writes and eval's prompts keep the full form.
 * The image is the same either way: what a prompt leaves out, the drawing
 * may do as it likes. */
typedef struct {
  GRegex *where, *size, *background, *centre;
} Loosen;

static const Loosen *
loosen_patterns (void)
{
  static Loosen patterns;
  static gsize done = 0;
  if (g_once_init_enter (&done))
    {
      patterns.where = g_regex_new ("\\s+(?:at the (?:top|bottom)(?: (?:left|right))?"
                                    "|in the (?:top|bottom) (?:left|right) corner"
                                    "|on the (?:left|right)|in the (?:centre|middle))\\b",
                                    G_REGEX_OPTIMIZE, 0, NULL);
      patterns.size = g_regex_new ("\\ba (small|medium|large) (\\S+)", G_REGEX_OPTIMIZE, 0, NULL);
      patterns.background = g_regex_new (" on an? [a-z]+ background$", G_REGEX_OPTIMIZE, 0, NULL);
      patterns.centre = g_regex_new ("\\bcentre\\b", G_REGEX_OPTIMIZE, 0, NULL);
      g_once_init_leave (&done, 1);
    }
  return &patterns;
}

/* "a large X" → "a big X" (@data points to FALSE), or → "an X" / "a X"
 * without the size (TRUE). */
static gboolean
edit_size (const GMatchInfo *match, GString *out, gpointer data)
{
  const gboolean drop = *(const gboolean *) data;
  g_autofree char *size = g_match_info_fetch (match, 1);
  g_autofree char *word = g_match_info_fetch (match, 2);
  if (!drop)
    {
      const char *other = strcmp (size, "large") == 0   ? "big"
                          : strcmp (size, "small") == 0 ? "little"
                                                        : size;
      g_string_append_printf (out, "a %s %s", other, word);
    }
  else if (word[0] == 'u')   /* "a unicorn", "an umbrella": left as it was */
    g_string_append_printf (out, "a %s %s", size, word);
  else
    g_string_append_printf (out, "%s %s", strchr ("aeio", word[0]) != NULL ? "an" : "a", word);
  return FALSE;
}

/* @text with @regex's matches replaced by @with, or through @eval when
 * given; @text is freed. */
static char *
replace (GRegex *regex, char *text, const char *with, GRegexEvalCallback eval, gpointer data)
{
  char *next = eval != NULL ? g_regex_replace_eval (regex, text, -1, 0, 0, eval, data, NULL)
                            : g_regex_replace_literal (regex, text, -1, 0, with, 0, NULL);
  if (next == NULL)
    return text;
  g_free (text);
  return next;
}

char *
tf_train_loosen_prompt (const char *source, const char *caption, TfRng *rng)
{
  const gboolean shapes = g_strcmp0 (source, "shapes") == 0;
  const gboolean emoji = g_strcmp0 (source, "emoji") == 0;
  char *text = g_strdup (caption);
  if (!shapes && !emoji)
    return text;
  const Loosen *p = loosen_patterns ();
  /* "a red heart" (no place, no size) is what people type most: one prompt
   * in eight says no more (at one in 27 the model drew such prompts as two
   * objects more often than one: eval's shapes in other words) */
  if (tf_rng_uniform (rng) < 0.4)
    text = replace (p->where, text, "", NULL, NULL);
  if (emoji && tf_rng_uniform (rng) < 0.25)
    text = replace (p->background, text, "", NULL, NULL);
  const double u = tf_rng_uniform (rng);
  if (u < 0.45)   /* two thirds of that without the size, a third in other words */
    {
      gboolean drop = u < 0.3;
      text = replace (p->size, text, NULL, edit_size, &drop);
    }
  if (tf_rng_uniform (rng) < 0.3)
    text = replace (p->centre, text, "center", NULL, NULL);
  return text;
}

/* People write a prompt as they write anything else: a capital first,
 * a full stop at the end. Training's own captions have neither, so text
 * the model reads (a caption before its image, a chat message) gets them
 * now and then; text it writes keeps the plain form that eval parses. */
static char *
as_people_write (TfRng *rng, const char *text)
{
  char *out = g_strdup (text);
  if (tf_rng_uniform (rng) < 0.25)
    out[0] = g_ascii_toupper (out[0]);
  size_t len = strlen (out);
  if (len > 0 && g_ascii_isalnum (out[len - 1]) && tf_rng_uniform (rng) < 0.15)
    {
      char *dotted = g_strconcat (out, ".", NULL);
      g_free (out);
      out = dotted;
    }
  return out;
}

/* ---- Tokenizer corpus --------------------------------------------------- */

static TfTokenizer *
train_tokenizer (TfTrainer *tr, int vocab_size, GError **error)
{
  /* Text drawn from the same data (its own generator, so the training
   * stream does not depend on how much text this takes). */
  TfRng rng;
  tf_rng_seed (&rng, tr->opt.seed ^ 0x746f6b656e697a65ull);
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  const int n_draw = 6000;
  for (int i = 0; i < n_draw; i++)
    {
      TfExample ex;
      if (!draw_example (tr, &rng, &ex, NULL, error))
        return NULL;
      if (ex.caption)
        g_ptr_array_add (texts, g_strdup (ex.caption));
      if (ex.prompt)
        g_ptr_array_add (texts, g_strdup (ex.prompt));
      if (ex.text)
        g_ptr_array_add (texts, g_strdup (ex.text));
      tf_example_clear (&ex);
    }
  for (guint i = 0; i < G_N_ELEMENTS (draw_phrases); i++)
    for (int k = 0; k < 20; k++)
      g_ptr_array_add (texts, g_strdup (draw_phrases[i]));
  for (guint i = 0; i < G_N_ELEMENTS (caption_questions); i++)
    for (int k = 0; k < 20; k++)
      g_ptr_array_add (texts, g_strdup (caption_questions[i]));
  return tf_tokenizer_train ((const char *const *) texts->pdata, NULL, texts->len, vocab_size,
                             error);
}

/* ---- Documents and batches ---------------------------------------------- */

/* One step's batch: segments and the memory they point into. */
typedef struct {
  GArray    *rows;       /* TfSequence */
  GPtrArray *segments;   /* TfSegment arrays, one per row */
  GPtrArray *owned;      /* token arrays, pixels, noise */
  int64_t    positions;  /* real positions */
  int        max_row;
  int       *images;     /* [n_sources] images in the batch, by data source */
} StepBatch;

typedef struct {
  GArray    *segs;       /* TfSegment */
  int        length;
  /* Images per data source in the document (NULL: not counted). */
  int       *images;
  int        source;     /* the source of the example being added */
} Doc;

static void
doc_text (TfTrainer *tr, Doc *doc, GPtrArray *owned, const int32_t *ids, size_t n)
{
  if (n == 0)
    return;
  int32_t *copy = g_memdup2 (ids, n * sizeof (int32_t));
  g_ptr_array_add (owned, copy);
  TfSegment seg = { .kind = TF_SEGMENT_TEXT, .tokens = copy, .n_tokens = (int) n };
  g_array_append_val (doc->segs, seg);
  doc->length += (int) n;
}

static void
doc_special (TfTrainer *tr, Doc *doc, GPtrArray *owned, TfSpecial special)
{
  int32_t id = tf_tokenizer_special_id (tr->tok, special);
  doc_text (tr, doc, owned, &id, 1);
}

static void
doc_string (TfTrainer *tr, Doc *doc, GPtrArray *owned, const char *text, int max_tokens)
{
  if (text == NULL || *text == '\0')
    return;
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
  tf_tokenizer_encode_append (tr->tok, text, strlen (text), ids);
  doc_text (tr, doc, owned, (int32_t *) ids->data, MIN ((int) ids->len, max_tokens));
}

/* The image with ε drawn now, at a noise level for generating it (1..T,
 * as config.t_sampling draws it) or, when @image_first, for reading it: t
 * uniform in 0..T/2, the paper's noise limiting for captioning. */
static void
doc_image (TfTrainer *tr, TfRng *rng, Doc *doc, GPtrArray *owned, float *pixels,
           gboolean image_first)
{
  const TfConfig *c = tf_model_config (tr->model);
  const int values = tf_config_image_values (c);
  const int T = c->diffusion_steps;
  int t = image_first ? (int) tf_rng_below (rng, (uint64_t) (T / 2 + 1))
                      : tf_diffusion_sample_t (c, rng, 1, T);
  float *noise = g_new (float, values);
  for (int k = 0; k < values; k++)
    noise[k] = (float) tf_rng_normal (rng);
  g_ptr_array_add (owned, noise);
  TfSegment seg = { .kind = TF_SEGMENT_IMAGE, .pixels = pixels, .noise = noise, .t = t,
                    .diffusion_loss = TRUE };
  g_array_append_val (doc->segs, seg);
  if (doc->images != NULL)
    doc->images[doc->source]++;
  doc->length += tf_config_n_patches (c);
}

/* Half of the chat documents go on for more turns, up to this many in all:
 * drawing, captioning and questions in any order, so that "draw a sneaker"
 * as the third message draws too. */
#define CHAT_MORE_TURNS 0.5
#define CHAT_MAX_TURNS 4

/* One chat turn made from @ex, ending with <|eos|>: "draw X" → image, or
 * image + "what is this?" → caption, or question → answer. FALSE (nothing
 * added) for a text example without a question. */
static gboolean
doc_chat_turn (TfTrainer *tr, TfRng *rng, TfExample *ex, Doc *doc, GPtrArray *owned)
{
  const TfConfig *c = tf_model_config (tr->model);
  const int max_caption = c->max_seq_len / 4;
  if (ex->kind == TF_EXAMPLE_IMAGE)
    {
      float *pixels = g_steal_pointer (&ex->pixels);
      g_ptr_array_add (owned, pixels);
      doc_special (tr, doc, owned, TF_SPECIAL_USER);
      if (tf_rng_uniform (rng) < 0.5)
        {
          /* "draw X" → image */
          const char *phrase = draw_phrases[tf_rng_below (rng, G_N_ELEMENTS (draw_phrases))];
          g_autofree char *loose = tf_train_loosen_prompt (tr->opt.data[doc->source], ex->caption,
                                                          rng);
          g_autofree char *plain = g_strconcat (phrase, loose, NULL);
          g_autofree char *ask = as_people_write (rng, plain);
          doc_string (tr, doc, owned, ask, max_caption);
          doc_special (tr, doc, owned, TF_SPECIAL_ASSISTANT);
          doc_special (tr, doc, owned, TF_SPECIAL_BOI);
          doc_image (tr, rng, doc, owned, pixels, FALSE);
          doc_special (tr, doc, owned, TF_SPECIAL_EOI);
        }
      else
        {
          /* image + "what is this?" → caption; the image first, so t ≤ T/2 */
          const char *plain = caption_questions[tf_rng_below (rng,
                                                              G_N_ELEMENTS (caption_questions))];
          doc_special (tr, doc, owned, TF_SPECIAL_BOI);
          doc_image (tr, rng, doc, owned, pixels, TRUE);
          doc_special (tr, doc, owned, TF_SPECIAL_EOI);
          g_autofree char *q = as_people_write (rng, plain);
          doc_string (tr, doc, owned, q, max_caption);
          doc_special (tr, doc, owned, TF_SPECIAL_ASSISTANT);
          doc_string (tr, doc, owned, ex->caption, max_caption);
        }
    }
  else
    {
      if (ex->prompt == NULL)
        return FALSE;
      doc_special (tr, doc, owned, TF_SPECIAL_USER);
      g_autofree char *prompt = as_people_write (rng, ex->prompt);
      doc_string (tr, doc, owned, prompt, max_caption);
      doc_special (tr, doc, owned, TF_SPECIAL_ASSISTANT);
      doc_string (tr, doc, owned, ex->text, c->max_seq_len - 4 - doc->length);
    }
  doc_special (tr, doc, owned, TF_SPECIAL_EOS);
  return TRUE;
}

/* Turns an example into a document of the SPEC §3/§5 mix, of at most
 * @room positions when it is a conversation of several turns (a first
 * turn that does not fit is the caller's to drop). */
static void
build_doc (TfTrainer *tr, TfRng *rng, TfExample *ex, Doc *doc, GPtrArray *owned, int room,
           GError **error)
{
  const TfConfig *c = tf_model_config (tr->model);
  const TfTrainOptions *o = &tr->opt;
  const int max_caption = c->max_seq_len / 4;
  const gboolean chat = tf_rng_uniform (rng) < o->chat_fraction || ex->chat;

  doc_special (tr, doc, owned, TF_SPECIAL_BOS);
  if (chat && doc_chat_turn (tr, rng, ex, doc, owned))
    {
      if (tf_rng_uniform (rng) >= CHAT_MORE_TURNS)
        return;
      /* More turns, each from an example drawn now; one that does not fit
       * is left out and the next tried, so short talk can still come
       * before a late "draw X". */
      const int turns = 2 + (int) tf_rng_below (rng, CHAT_MAX_TURNS - 1);
      for (int k = 1; k < turns; k++)
        {
          TfExample next;
          Doc turn = { g_array_new (FALSE, FALSE, sizeof (TfSegment)), 0,
                       doc->images != NULL ? g_new0 (int, tr->n_sources) : NULL, 0 };
          if (!draw_example (tr, rng, &next, &turn.source, error))
            {
              g_array_unref (turn.segs);
              g_free (turn.images);
              return;
            }
          GPtrArray *turn_owned = g_ptr_array_new_with_free_func (g_free);
          gboolean fits = doc_chat_turn (tr, rng, &next, &turn, turn_owned)
                          && doc->length + turn.length <= room;
          if (fits)
            {
              g_array_append_vals (doc->segs, turn.segs->data, turn.segs->len);
              doc->length += turn.length;
              for (int i = 0; doc->images != NULL && i < tr->n_sources; i++)
                doc->images[i] += turn.images[i];
              for (guint i = 0; i < turn_owned->len; i++)
                g_ptr_array_add (owned, turn_owned->pdata[i]);
              g_ptr_array_set_free_func (turn_owned, NULL);
            }
          g_ptr_array_unref (turn_owned);
          g_array_unref (turn.segs);
          g_free (turn.images);
          tf_example_clear (&next);
        }
      return;
    }
  if (ex->kind == TF_EXAMPLE_IMAGE)
    {
      float *pixels = g_steal_pointer (&ex->pixels);
      g_ptr_array_add (owned, pixels);
      if (tf_rng_uniform (rng) < o->image_first)
        {
          doc_special (tr, doc, owned, TF_SPECIAL_BOI);
          doc_image (tr, rng, doc, owned, pixels, TRUE);
          doc_special (tr, doc, owned, TF_SPECIAL_EOI);
          doc_string (tr, doc, owned, ex->caption, max_caption);
        }
      else
        {
          /* caption first; sometimes no caption, for classifier-free guidance */
          if (tf_rng_uniform (rng) >= o->cfg_drop)
            {
              g_autofree char *loose = tf_train_loosen_prompt (tr->opt.data[doc->source],
                                                              ex->caption, rng);
              g_autofree char *caption = as_people_write (rng, loose);
              doc_string (tr, doc, owned, caption, max_caption);
            }
          doc_special (tr, doc, owned, TF_SPECIAL_BOI);
          doc_image (tr, rng, doc, owned, pixels, FALSE);
          doc_special (tr, doc, owned, TF_SPECIAL_EOI);
        }
    }
  else
    doc_string (tr, doc, owned, ex->text, c->max_seq_len - 4 - doc->length);
  doc_special (tr, doc, owned, TF_SPECIAL_EOS);
}

static void
step_batch_clear (StepBatch *sb)
{
  if (sb->segments)
    g_ptr_array_unref (sb->segments);
  if (sb->owned)
    g_ptr_array_unref (sb->owned);
  if (sb->rows)
    g_array_unref (sb->rows);
  g_free (sb->images);
  memset (sb, 0, sizeof *sb);
}

/* Packs documents into batch rows of at most max_seq_len positions. A
 * document that does not fit is dropped (its draw is part of the
 * deterministic stream) and the row closes after eight such misses. */
static gboolean
build_batch (TfTrainer *tr, StepBatch *sb, GError **error)
{
  const TfConfig *c = tf_model_config (tr->model);
  const int L = c->max_seq_len;
  memset (sb, 0, sizeof *sb);
  sb->rows = g_array_new (FALSE, FALSE, sizeof (TfSequence));
  sb->segments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  sb->owned = g_ptr_array_new_with_free_func (g_free);
  sb->images = g_new0 (int, tr->n_sources);

  for (int b = 0; b < tr->opt.batch; b++)
    {
      GArray *row = g_array_new (FALSE, FALSE, sizeof (TfSegment));
      g_ptr_array_add (sb->segments, row);
      int used = 0, misses = 0;
      while (misses < 8 && L - used >= 8)
        {
          TfExample ex;
          Doc doc = { g_array_new (FALSE, FALSE, sizeof (TfSegment)), 0,
                      g_new0 (int, tr->n_sources), 0 };
          if (!draw_example (tr, &tr->rng, &ex, &doc.source, error))
            {
              g_array_unref (doc.segs);
              g_free (doc.images);
              return FALSE;
            }
          GPtrArray *doc_owned = g_ptr_array_new_with_free_func (g_free);
          GError *doc_error = NULL;
          build_doc (tr, &tr->rng, &ex, &doc, doc_owned, L - used, &doc_error);
          tf_example_clear (&ex);
          if (doc_error != NULL)
            {
              g_propagate_error (error, doc_error);
              g_ptr_array_unref (doc_owned);
              g_array_unref (doc.segs);
              g_free (doc.images);
              return FALSE;
            }
          if (doc.length <= L - used)
            {
              g_array_index (doc.segs, TfSegment, 0).new_document = TRUE;
              g_array_append_vals (row, doc.segs->data, doc.segs->len);
              used += doc.length;
              for (guint k = 0; k < doc_owned->len; k++)
                g_ptr_array_add (sb->owned, doc_owned->pdata[k]);
              g_ptr_array_set_free_func (doc_owned, NULL);
              for (int k = 0; k < tr->n_sources; k++)
                sb->images[k] += doc.images[k];
            }
          else
            misses++;
          g_ptr_array_unref (doc_owned);
          g_array_unref (doc.segs);
          g_free (doc.images);
        }
      sb->positions += used;
      sb->max_row = MAX (sb->max_row, used);
    }
  for (guint b = 0; b < sb->segments->len; b++)
    {
      GArray *row = sb->segments->pdata[b];
      TfSequence seq = { (TfSegment *) row->data, (int) row->len };
      g_array_append_val (sb->rows, seq);
    }
  return TRUE;
}

char **
tf_trainer_sample_documents (TfTrainer *tr, uint64_t seed, int n, int **positions,
                             GError **error)
{
  const TfConfig *c = tf_model_config (tr->model);
  TfRng rng;
  tf_rng_seed (&rng, seed);
  g_autoptr (GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree int *lengths = g_new0 (int, MAX (n, 1));
  for (int i = 0; i < n; i++)
    {
      TfExample ex;
      Doc doc = { g_array_new (FALSE, FALSE, sizeof (TfSegment)), 0, NULL, 0 };
      if (!draw_example (tr, &rng, &ex, &doc.source, error))
        {
          g_array_unref (doc.segs);
          return NULL;
        }
      g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
      GError *doc_error = NULL;
      build_doc (tr, &rng, &ex, &doc, owned, c->max_seq_len, &doc_error);
      tf_example_clear (&ex);
      GString *text = g_string_new (NULL);
      for (guint k = 0; k < doc.segs->len; k++)
        {
          const TfSegment *seg = &g_array_index (doc.segs, TfSegment, k);
          if (seg->kind == TF_SEGMENT_IMAGE)
            g_string_append_printf (text, "<|image t=%d|>", seg->t);
          else
            {
              g_autofree char *decoded = tf_tokenizer_decode (tr->tok, seg->tokens,
                                                              (size_t) seg->n_tokens, NULL);
              g_string_append (text, decoded);
            }
        }
      g_ptr_array_add (texts, g_string_free (text, FALSE));
      lengths[i] = doc.length;
      g_array_unref (doc.segs);
      if (doc_error != NULL)
        {
          g_propagate_error (error, doc_error);
          return NULL;
        }
    }
  g_ptr_array_add (texts, NULL);
  if (positions != NULL)
    *positions = g_steal_pointer (&lengths);
  return (char **) g_ptr_array_steal (texts, NULL);
}

/* ---- Optimizer ---------------------------------------------------------- */

static int64_t
warmup_steps (const TfTrainOptions *o)
{
  if (o->warmup_steps >= 0)
    return o->warmup_steps;
  return MIN ((int64_t) 1000, MAX ((int64_t) 1, o->steps / 20));
}

/* Linear warm-up; then either a cosine decay to lr · min_lr_ratio at the
 * last step, or (decay_fraction > 0) the peak held until the last
 * decay_fraction of the steps, which decay linearly to it. */
double
tf_train_learning_rate (const TfTrainOptions *o, int64_t step)
{
  int64_t warm = warmup_steps (o);
  if (step < warm)
    return o->lr * (double) (step + 1) / warm;
  if (o->decay_fraction > 0)
    {
      const int64_t decay = (int64_t) llround (o->decay_fraction * (double) o->steps);
      const int64_t start = MAX (warm, o->steps - decay);
      if (step < start)
        return o->lr;
      double progress = MIN (1.0, (double) (step - start) / (double) MAX ((int64_t) 1,
                                                                          o->steps - start));
      return o->lr * (o->min_lr_ratio + (1.0 - o->min_lr_ratio) * (1.0 - progress));
    }
  double span = (double) MAX ((int64_t) 1, o->steps - warm);
  double progress = MIN (1.0, (double) (step - warm) / span);
  double cosine = 0.5 * (1.0 + cos (G_PI * progress));
  return o->lr * (o->min_lr_ratio + (1.0 - o->min_lr_ratio) * cosine);
}

static double
clip_gradients (TfTrainer *tr)
{
  float *g = tf_model_grads (tr->model);
  const size_t n = tf_model_n_params (tr->model);
  double ss = 0.0;
  for (size_t i = 0; i < n; i++)
    ss += (double) g[i] * g[i];
  double norm = sqrt (ss);
  if (norm > tr->opt.clip)
    {
      float scale = (float) (tr->opt.clip / (norm + 1e-6));
      for (size_t i = 0; i < n; i++)
        g[i] *= scale;
    }
  return norm;
}

/* AdamW with decoupled weight decay on matrices only, then the EMA. */
static void
adamw_update (TfTrainer *tr, double lr)
{
  const TfTrainOptions *o = &tr->opt;
  TfModel *m = tr->model;
  float *p = tf_model_params (m), *g = tf_model_grads (m);
  const double t = (double) (tr->step + 1);
  const double bc1 = 1.0 - pow (o->beta1, t), bc2 = 1.0 - pow (o->beta2, t);
  const float b1 = (float) o->beta1, b2 = (float) o->beta2;
  const float step_size = (float) (lr / bc1), inv_sqrt_bc2 = (float) (1.0 / sqrt (bc2));
  const float eps = (float) o->adam_eps;
  const double ema_d = MIN (o->ema_decay, (1.0 + tr->step) / (10.0 + tr->step));
  const float ema_a = (float) ema_d, ema_b = (float) (1.0 - ema_d);

  for (int i = 0; i < tf_model_n_tensors (m); i++)
    {
      const TfParamInfo *info = tf_model_tensor (m, i);
      const float decay = info->is_matrix ? (float) (lr * o->weight_decay) : 0.0f;
      const size_t lo = info->offset, hi = info->offset + info->size;
      TF_TSAN_FORK (team);
#pragma omp parallel for schedule(static) if (hi - lo > 65536)
      for (size_t k = lo; k < hi; k++)
        {
          TF_TSAN_MEMBER (team);
          float mk = tr->adam_m[k] = b1 * tr->adam_m[k] + (1 - b1) * g[k];
          float vk = tr->adam_v[k] = b2 * tr->adam_v[k] + (1 - b2) * g[k] * g[k];
          p[k] -= step_size * mk / (sqrtf (vk) * inv_sqrt_bc2 + eps) + decay * p[k];
          tr->ema[k] = ema_a * tr->ema[k] + ema_b * p[k];
        }
      TF_TSAN_JOIN (team);
    }
}

/* ---- Save and resume ---------------------------------------------------- */

static char *
rng_to_string (const TfRng *rng)
{
  return g_strdup_printf ("%016" G_GINT64_MODIFIER "x%016" G_GINT64_MODIFIER "x%016"
                          G_GINT64_MODIFIER "x%016" G_GINT64_MODIFIER "x",
                          (guint64) rng->s[0], (guint64) rng->s[1],
                          (guint64) rng->s[2], (guint64) rng->s[3]);
}

static gboolean
rng_from_string (TfRng *rng, const char *s)
{
  if (s == NULL || strlen (s) != 64)
    return FALSE;
  for (int i = 0; i < 4; i++)
    {
      char word[17];
      memcpy (word, s + 16 * i, 16);
      word[16] = '\0';
      char *end;
      rng->s[i] = g_ascii_strtoull (word, &end, 16);
      if (*end != '\0')
        return FALSE;
    }
  return (rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) != 0;
}

static char *
provenance_json (TfTrainer *tr, double elapsed)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autofree char *identity = options_identity (&tr->opt);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "trainer");
  json_builder_add_string_value (b, "transfusion-cli train " PACKAGE_VERSION);
  json_builder_set_member_name (b, "step");
  json_builder_add_int_value (b, tr->step);
  json_builder_set_member_name (b, "steps");
  json_builder_add_int_value (b, tr->opt.steps);
  json_builder_set_member_name (b, "wall_seconds");
  json_builder_add_double_value (b, round (elapsed));
  json_builder_set_member_name (b, "weights");
  json_builder_add_string_value (b, "ema");
  json_builder_set_member_name (b, "options");
  json_builder_add_string_value (b, identity);
  /* what ran the products in this run (the last, when resumed) */
  json_builder_set_member_name (b, "precision");
  json_builder_add_string_value (b, tf_gemm_backend_name (tr->backend));
  /* images trained on per source, over this run and the runs it resumed */
  json_builder_set_member_name (b, "images_seen");
  json_builder_begin_object (b);
  for (int i = 0; i < tr->n_images_seen && tr->opt.data[i] != NULL; i++)
    {
      json_builder_set_member_name (b, tr->opt.data[i]);
      json_builder_add_int_value (b, tr->images_seen[i]);
    }
  json_builder_end_object (b);
  if (tr->warm_start != NULL)
    {
      /* An object, the model it started from with that model's provenance
       * inside, as JSON rather than as text: text would escape every quote
       * of the chain once more at each warm restart. A run resumed from a
       * state written before keeps its text. */
      g_autoptr (JsonParser) parser = json_parser_new ();
      json_builder_set_member_name (b, "warm_start");
      if (tf_json_parse (parser, tr->warm_start, -1, NULL)
          && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
        json_builder_add_value (b, json_node_copy (json_parser_get_root (parser)));
      else
        json_builder_add_string_value (b, tr->warm_start);
    }
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

/* What the model was shown, for people writing prompts: the subjects of
 * its captions (class names, shapes, emoji names), each once, in the order
 * of the sources. The application suggests them as completions. Text-only
 * sources name none: WordNet's 87,000 defined words are not things to
 * draw, and a completion list that long took the application's main
 * thread 35 ms per keystroke. */
static char *
prompt_subjects_json (TfTrainer *tr)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  json_builder_begin_array (b);
  for (int i = 0; i < tr->n_sources; i++)
    for (const char *const *s = tf_data_source_subjects (tr->sources[i]);
         tf_data_source_has_images (tr->sources[i]) && *s != NULL; s++)
      if (g_hash_table_add (seen, (gpointer) *s))
        json_builder_add_string_value (b, *s);
  json_builder_end_array (b);
  return tf_json_builder_to_string (b);
}

static double
trainer_elapsed (TfTrainer *tr)
{
  return tr->elapsed_before + g_timer_elapsed (tr->timer, NULL);
}

gboolean
tf_trainer_save (TfTrainer *tr, GError **error)
{
  TfModel *m = tr->model;
  const int64_t n = (int64_t) tf_model_n_params (m);
  const double elapsed = trainer_elapsed (tr);
  g_autofree char *config = tf_config_to_json (tf_model_config (m));
  g_autofree char *tokenizer = tf_tokenizer_to_json (tr->tok);
  g_autofree char *identity = options_identity (&tr->opt);
  g_autofree char *step = g_strdup_printf ("%" G_GINT64_FORMAT, tr->step);
  g_autofree char *steps = g_strdup_printf ("%" G_GINT64_FORMAT, tr->opt.steps);
  g_autofree char *rng = rng_to_string (&tr->rng);
  g_autofree char *elapsed_s = g_strdup_printf ("%.3f", elapsed);
  g_autofree char *provenance = provenance_json (tr, elapsed);
  g_autoptr (GString) images = g_string_new ("[");
  for (int i = 0; i < tr->n_images_seen; i++)
    g_string_append_printf (images, "%s%" G_GINT64_FORMAT, i ? "," : "", tr->images_seen[i]);
  g_string_append_c (images, ']');

  /* The state first: if the model write then fails, resuming still works. */
  const char *keys[] = { "format", "config", "tokenizer", "options", "step", "steps", "rng",
                         "elapsed", "images_seen", "precision", "warm_start" };
  const char *values[] = { STATE_FORMAT, config, tokenizer, identity, step, steps, rng,
                           elapsed_s, images->str, tf_precision_name (tr->opt.precision),
                           tr->warm_start };
  TfTensorOut tensors[] = {
    { .name = "params", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { n },
      .data = tf_model_params (m) },
    { .name = "adam.m", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { n }, .data = tr->adam_m },
    { .name = "adam.v", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { n }, .data = tr->adam_v },
    { .name = "ema", .dtype = TF_DTYPE_F32, .n_dims = 1, .shape = { n }, .data = tr->ema },
  };
  if (!tf_safetensors_write (tr->state_path, tensors, G_N_ELEMENTS (tensors), keys, values,
                             G_N_ELEMENTS (keys) - (tr->warm_start == NULL), error))
    return FALSE;

  g_autofree char *subjects = prompt_subjects_json (tr);
  const char *mkeys[] = { "tokenizer", "provenance", "prompt_subjects" };
  const char *mvalues[] = { tokenizer, provenance, subjects };
  if (!tf_model_save_weights (m, tr->ema, tr->opt.out, TF_DTYPE_F32, mkeys, mvalues,
                              G_N_ELEMENTS (mkeys), error))
    return FALSE;
  if (tr->log != NULL)
    fflush (tr->log);
  tr->last_save = g_timer_elapsed (tr->timer, NULL);
  return TRUE;
}

static gboolean
check_state_tensor (TfSafetensors *st, const char *path, const char *name, size_t n,
                    GError **error)
{
  const TfTensorInfo *info = tf_safetensors_find (st, name);
  if (info == NULL || info->dtype != TF_DTYPE_F32 || info->n_elements != n)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: tensor '%s' is missing or is not F32 [%zu]", path, name, n);
      return FALSE;
    }
  return TRUE;
}

static const char *const state_tensors[] = { "params", "adam.m", "adam.v", "ema" };

/* Restores everything from an open state file; the options that shape the
 * run must be the ones it was started with (unless @check_options is
 * FALSE). The four tensors are checked against the configuration before
 * anything of their size is allocated, so memory stays proportional to the
 * file, whatever its metadata claims. */
static gboolean
load_state_from (TfTrainer *tr, TfSafetensors *st, const char *path, gboolean check_options,
                 GError **error)
{
  if (g_strcmp0 (tf_safetensors_metadata (st, "format"), STATE_FORMAT) != 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: not a training state (format is not '"
                   STATE_FORMAT "')", path);
      return FALSE;
    }
  if (check_options)
    {
      g_autofree char *identity = options_identity (&tr->opt);
      const char *saved = tf_safetensors_metadata (st, "options");
      if (g_strcmp0 (saved, identity) != 0)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "%s: this run was started with other options, so it cannot be resumed "
                       "exactly with these.\n  saved: %s\n  given: %s", path,
                       saved ? saved : "(none)", identity);
          return FALSE;
        }
    }
  TfConfig config;
  const char *config_json = tf_safetensors_metadata (st, "config");
  if (config_json == NULL || !tf_config_from_json (&config, config_json, path, error))
    {
      if (error && *error == NULL)
        g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: __metadata__ has no 'config'", path);
      return FALSE;
    }
  const char *tok_json = tf_safetensors_metadata (st, "tokenizer");
  if (tok_json == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: __metadata__ has no 'tokenizer'", path);
      return FALSE;
    }
  tr->tok = tf_tokenizer_from_json (tok_json, path, error);
  if (tr->tok == NULL || !tf_tokenizer_matches_config (tr->tok, &config, path, error))
    return FALSE;

  const char *step = tf_safetensors_metadata (st, "step");
  const char *elapsed = tf_safetensors_metadata (st, "elapsed");
  char *elapsed_end = NULL;
  if (step == NULL || !g_ascii_string_to_signed (step, 10, 0, G_MAXINT64, &tr->step, NULL) ||
      !rng_from_string (&tr->rng, tf_safetensors_metadata (st, "rng")) || elapsed == NULL ||
      !(tr->elapsed_before = g_ascii_strtod (elapsed, &elapsed_end), *elapsed_end == '\0') ||
      !(tr->elapsed_before >= 0 && tr->elapsed_before < 1e12))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: __metadata__ 'step', 'rng' or 'elapsed' is missing or malformed", path);
      return FALSE;
    }
  tr->warm_start = g_strdup (tf_safetensors_metadata (st, "warm_start"));
  /* Images per source so far: absent from states written before it was kept. */
  const char *images = tf_safetensors_metadata (st, "images_seen");
  if (images != NULL)
    {
      g_auto (GStrv) counts = NULL;
      gsize len = strlen (images);
      gboolean ok = len >= 2 && images[0] == '[' && images[len - 1] == ']';
      if (ok)
        {
          g_autofree char *inner = g_strndup (images + 1, len - 2);
          counts = *inner != '\0' ? g_strsplit (inner, ",", -1) : g_new0 (char *, 1);
          ok = tr->images_seen == NULL || g_strv_length (counts) == (guint) tr->n_images_seen;
          for (int i = 0; ok && counts[i] != NULL; i++)
            {
              guint64 v;
              ok = g_ascii_string_to_unsigned (counts[i], 10, 0, G_MAXINT64, &v, NULL);
              if (ok && tr->images_seen != NULL)
                tr->images_seen[i] = (int64_t) v;
            }
        }
      if (!ok)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: __metadata__ 'images_seen' is not a list of one count per data source",
                       path);
          return FALSE;
        }
    }

  size_t n;
  if (!tf_config_count_params (&config, &n, path, error))
    return FALSE;
  for (size_t i = 0; i < G_N_ELEMENTS (state_tensors); i++)
    if (!check_state_tensor (st, path, state_tensors[i], n, error))
      return FALSE;

  tr->model = tf_model_new (&config, error);
  if (tr->model == NULL)
    return FALSE;
  tr->adam_m = g_try_new (float, n);
  tr->adam_v = g_try_new (float, n);
  tr->ema = g_try_new (float, n);
  if (tr->adam_m == NULL || tr->adam_v == NULL || tr->ema == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO,
                   "%s: not enough memory for the training state of %zu parameters", path, n);
      return FALSE;
    }
  float *dest[] = { tf_model_params (tr->model), tr->adam_m, tr->adam_v, tr->ema };
  for (size_t i = 0; i < G_N_ELEMENTS (state_tensors); i++)
    if (!tf_safetensors_read_f32 (st, tf_safetensors_find (st, state_tensors[i]), dest[i], n,
                                  error))
      return FALSE;
  return TRUE;
}

static gboolean
load_state (TfTrainer *tr, GError **error)
{
  g_autoptr (TfSafetensors) st = tf_safetensors_open (tr->state_path, error);
  return st != NULL && load_state_from (tr, st, tr->state_path, TRUE, error);
}

gboolean
tf_train_state_check (TfSafetensors *st, const char *path, GError **error)
{
  TfTrainer *tr = g_new0 (TfTrainer, 1);
  gboolean ok = load_state_from (tr, st, path, FALSE, error);
  tf_trainer_free (tr);
  return ok;
}

/* The step of one log line, or −1 when the line is not a complete record
 * (a run killed mid-write leaves a partial last line). */
static gint64
log_line_step (const char *line)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (*line == '\0' || !tf_json_parse (parser, line, -1, NULL))
    return -1;
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return -1;
  JsonNode *step = json_object_get_member (json_node_get_object (root), "step");
  if (step == NULL || json_node_get_value_type (step) != G_TYPE_INT64)
    return -1;
  return json_node_get_int (step);
}

/* Keeps only complete log lines of steps already done: a resumed run redoes
 * the steps after its checkpoint and logs them again. */
static gboolean
open_log (TfTrainer *tr, GError **error)
{
  g_autofree char *contents = NULL;
  if (tr->opt.resume && g_file_get_contents (tr->log_path, &contents, NULL, NULL))
    {
      g_autoptr (GString) kept = g_string_new (NULL);
      g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);
      for (int i = 0; lines[i]; i++)
        {
          gint64 step = log_line_step (lines[i]);
          if (step >= 1 && step <= tr->step)
            g_string_append_printf (kept, "%s\n", lines[i]);
        }
      if (!g_file_set_contents (tr->log_path, kept->str, kept->len, error))
        return FALSE;
    }
  tr->log = fopen (tr->log_path, tr->opt.resume ? "a" : "w");
  if (tr->log == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not open the log: %s",
                   tr->log_path, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* ---- The trainer -------------------------------------------------------- */

/* The JSON object that starts at @text ('{'), as far as its braces
 * balance outside strings; NULL when they never do. */
static char *
balanced_object (const char *text)
{
  int depth = 0;
  gboolean in_string = FALSE, escaped = FALSE;
  for (const char *r = text; *r != '\0'; r++)
    {
      if (in_string)
        {
          if (escaped)
            escaped = FALSE;
          else if (*r == '\\')
            escaped = TRUE;
          else if (*r == '"')
            in_string = FALSE;
        }
      else if (*r == '"')
        in_string = TRUE;
      else if (*r == '{')
        depth++;
      else if (*r == '}' && --depth == 0)
        return g_strndup (text, (gsize) (r - text + 1));
    }
  return NULL;
}

gboolean
tf_provenance_lineage (const char *provenance, TfLineage *lineage)
{
  g_return_val_if_fail (lineage != NULL, FALSE);
  memset (lineage, 0, sizeof *lineage);
  if (provenance == NULL)
    return FALSE;
  /* Each link's parser stays alive while the next one is read from it. */
  g_autoptr (GPtrArray) parsers = g_ptr_array_new_with_free_func (g_object_unref);
  JsonParser *parser = json_parser_new ();
  g_ptr_array_add (parsers, parser);
  if (!tf_json_parse (parser, provenance, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return FALSE;
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  /* What the trainer writes: steps at least (other tools write their own). */
  if (!json_object_has_member (o, "step"))
    return FALSE;
  /* A bound on the chain: a file is not trusted to end it. */
  for (int link = 0; o != NULL && link < 10000; link++)
    {
      const int64_t steps = MAX (0, json_object_get_int_member_with_default (o, "step", 0));
      const double seconds = MAX (0.0, json_object_get_double_member_with_default (o, "wall_seconds", 0));
      if (link == 0)
        {
          lineage->run_steps = steps;
          lineage->run_wall_seconds = seconds;
        }
      lineage->runs++;
      lineage->steps += steps;
      lineage->wall_seconds += seconds;
      JsonNode *ws = json_object_get_member (o, "warm_start");
      o = NULL;
      if (ws != NULL && JSON_NODE_HOLDS_OBJECT (ws))
        {
          JsonNode *from = json_object_get_member (json_node_get_object (ws), "provenance");
          if (from != NULL && JSON_NODE_HOLDS_OBJECT (from))
            o = json_node_get_object (from);
        }
      else if (ws != NULL && JSON_NODE_HOLDS_VALUE (ws)
               && json_node_get_value_type (ws) == G_TYPE_STRING)
        {
          const char *at = strstr (json_node_get_string (ws), "(its provenance: {");
          g_autofree char *inner = at != NULL ? balanced_object (at + strlen ("(its provenance: ")) : NULL;
          if (inner != NULL)
            {
              parser = json_parser_new ();
              g_ptr_array_add (parsers, parser);
              if (tf_json_parse (parser, inner, -1, NULL)
                  && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
                o = json_node_get_object (json_parser_get_root (parser));
            }
        }
    }
  return TRUE;
}

char *
tf_provenance_started_from (const char *provenance)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (provenance == NULL || !tf_json_parse (parser, provenance, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  JsonNode *ws = json_object_get_member (json_node_get_object (json_parser_get_root (parser)),
                                         "warm_start");
  if (ws != NULL && JSON_NODE_HOLDS_OBJECT (ws))
    {
      JsonNode *from = json_object_get_member (json_node_get_object (ws), "from");
      if (from != NULL && JSON_NODE_HOLDS_VALUE (from)
          && json_node_get_value_type (from) == G_TYPE_STRING)
        return g_strdup (json_node_get_string (from));
    }
  else if (ws != NULL && JSON_NODE_HOLDS_VALUE (ws)
           && json_node_get_value_type (ws) == G_TYPE_STRING)
    {
      /* "weights of X (its provenance: …); …" */
      const char *text = json_node_get_string (ws);
      const char *end = strstr (text, " (its provenance");
      if (g_str_has_prefix (text, "weights of "))
        text += strlen ("weights of ");
      return end != NULL && end >= text ? g_strndup (text, (gsize) (end - text)) : g_strdup (text);
    }
  return NULL;
}

int
tf_provenance_grey_side (const char *provenance, int image_size)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonParser) options_parser = json_parser_new ();
  if (image_size <= TF_FASHION_SIDE || provenance == NULL
      || !tf_json_parse (parser, provenance, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return 0;
  /* "options" is the run's options as a JSON string */
  JsonNode *options = json_object_get_member (json_node_get_object (json_parser_get_root (parser)),
                                              "options");
  if (options == NULL || !JSON_NODE_HOLDS_VALUE (options)
      || json_node_get_value_type (options) != G_TYPE_STRING
      || !tf_json_parse (options_parser, json_node_get_string (options), -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (options_parser)))
    return 0;
  JsonNode *data = json_object_get_member (json_node_get_object (json_parser_get_root (options_parser)),
                                           "data");
  if (data == NULL || !JSON_NODE_HOLDS_ARRAY (data))
    return 0;
  JsonArray *sources = json_node_get_array (data);
  for (guint i = 0; i < json_array_get_length (sources); i++)
    {
      JsonNode *s = json_array_get_element (sources, i);
      if (JSON_NODE_HOLDS_VALUE (s) && json_node_get_value_type (s) == G_TYPE_STRING
          && strcmp (json_node_get_string (s), "fashion") == 0)
        return TF_FASHION_SIDE;
    }
  return 0;
}

/* What a warm restart from @path records (the trainer's "warm_start"):
 * {"from": its file name, "optimizer": "moments started at zero",
 * "provenance": its provenance as an object (null when it has none that
 * reads), and the tensors that a recipe started afresh or dropped,
 * comma-separated, when there are any}. */
static char *
warm_start_json (const char *path, const char *provenance, const char *fresh, const char *dropped)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *base = g_path_get_basename (path);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "from");
  json_builder_add_string_value (b, base);
  json_builder_set_member_name (b, "optimizer");
  json_builder_add_string_value (b, "moments started at zero");
  json_builder_set_member_name (b, "provenance");
  if (provenance != NULL && tf_json_parse (parser, provenance, -1, NULL)
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    json_builder_add_value (b, json_node_copy (json_parser_get_root (parser)));
  else
    json_builder_add_null_value (b);
  if (fresh != NULL)
    {
      json_builder_set_member_name (b, "new_tensors");
      json_builder_add_string_value (b, fresh);
    }
  if (dropped != NULL)
    {
      json_builder_set_member_name (b, "dropped_tensors");
      json_builder_add_string_value (b, dropped);
    }
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

/* A new run from a model's weights and tokenizer: the model must have the
 * preset's shape (@config, before the tokenizer sets its vocabulary). */
static gboolean
warm_start (TfTrainer *tr, const TfConfig *config, const char *path, GError **error)
{
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, error);
  if (st == NULL)
    return FALSE;
  const char *tok_json = tf_safetensors_metadata (st, "tokenizer");
  if (tok_json == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: __metadata__ has no 'tokenizer' to continue with", path);
      return FALSE;
    }
  g_autoptr (TfModel) m = tf_model_load_from (st, error);
  if (m == NULL)
    return FALSE;
  const TfConfig *c = tf_model_config (m);
  if (c->d_model != config->d_model || c->n_layers != config->n_layers ||
      c->n_heads != config->n_heads || c->mlp_hidden != config->mlp_hidden ||
      c->max_seq_len != config->max_seq_len || c->image_size != config->image_size ||
      c->image_channels != config->image_channels || c->patch_size != config->patch_size)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s is a d %d, %d-layer model; --preset %s is d %d, %d layers",
                   path, c->d_model, c->n_layers, tr->opt.preset, config->d_model,
                   config->n_layers);
      return FALSE;
    }
  tr->tok = tf_tokenizer_from_json (tok_json, path, error);
  if (tr->tok == NULL || !tf_tokenizer_matches_config (tr->tok, c, path, error))
    return FALSE;
  /* A recipe may change what the weights learn from here on (the target, the
   * noise levels, the loss weights) and which image-side weights there are. */
  TfConfig recipe = *c;
  if (!tf_config_apply_recipe (&recipe, tr->opt.recipe, error) ||
      !tf_config_validate (&recipe, "--recipe", error))
    return FALSE;
  g_autofree char *before = tf_config_to_json (c), *after = tf_config_to_json (&recipe);
  g_autoptr (GString) fresh = g_string_new (NULL), dropped = g_string_new (NULL);
  if (strcmp (before, after) != 0)
    {
      /* A new model with the recipe's tensors: those the old model has
       * (same name, same shape) carry over; the rest (adaLN-Zero's
       * modulation, a U-Net in place of the linear patches) start as they
       * would in a new run, from --seed. */
      g_autoptr (TfModel) changed = tf_model_new (&recipe, error);
      if (changed == NULL)
        return FALSE;
      tf_model_init_random (changed, tr->opt.seed);
      for (int i = 0; i < tf_model_n_tensors (changed); i++)
        {
          const TfParamInfo *to = tf_model_tensor (changed, i);
          const TfParamInfo *from = tf_model_find_tensor (m, to->name);
          if (from != NULL && from->n_dims == to->n_dims && from->size == to->size &&
              from->shape[0] == to->shape[0] && from->shape[1] == to->shape[1])
            memcpy (tf_model_params (changed) + to->offset, tf_model_params (m) + from->offset,
                    to->size * sizeof (float));
          else
            g_string_append_printf (fresh, "%s%s", fresh->len ? ", " : "", to->name);
        }
      for (int i = 0; i < tf_model_n_tensors (m); i++)
        if (tf_model_find_tensor (changed, tf_model_tensor (m, i)->name) == NULL)
          g_string_append_printf (dropped, "%s%s", dropped->len ? ", " : "",
                                  tf_model_tensor (m, i)->name);
      g_clear_pointer (&m, tf_model_free);
      m = g_steal_pointer (&changed);
    }
  tr->model = g_steal_pointer (&m);
  tr->warm_start = warm_start_json (path, tf_safetensors_metadata (st, "provenance"),
                                    fresh->len ? fresh->str : NULL,
                                    dropped->len ? dropped->str : NULL);
  return TRUE;
}

TfTrainer *
tf_trainer_new (const TfTrainOptions *options, GError **error)
{
  if (!options_validate (options, error))
    return NULL;
  g_autoptr (TfTrainer) tr = g_new0 (TfTrainer, 1);
  options_copy (&tr->opt, options);
  tr->n_images_seen = (int) g_strv_length (options->data);
  tr->images_seen = g_new0 (int64_t, MAX (tr->n_images_seen, 1));
  tr->state_path = tf_train_state_path (options->out);
  tr->log_path = tf_train_log_path (options->out);
  tr->timer = g_timer_new ();
  tf_threads_init (&tr->threads, 0);
  tr->backend = tf_gemm_backend_for (options->precision);

  TfConfig config;
  if (!tf_config_preset (&config, options->preset, error) ||
      !tf_config_apply_recipe (&config, options->recipe, error) ||
      !tf_config_validate_recipe (&config, "--recipe", error))
    return NULL;

  /* Never overwrite a run by accident, and never start afresh by accident. */
  gboolean resuming = options->resume;
  if (resuming && !g_file_test (tr->state_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s: no training state to resume (it would be %s)", options->out,
                   tr->state_path);
      return NULL;
    }
  if (!resuming && (g_file_test (options->out, G_FILE_TEST_EXISTS) ||
                    g_file_test (tr->state_path, G_FILE_TEST_EXISTS)))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "%s already exists: continue its run with --resume, or choose another --out",
                   g_file_test (options->out, G_FILE_TEST_EXISTS) ? options->out : tr->state_path);
      return NULL;
    }
  /* What a run killed in the middle of a save left behind. */
  tf_atomic_file_remove_stale (options->out);
  tf_atomic_file_remove_stale (tr->state_path);
  if (resuming)
    {
      if (!load_state (tr, error))
        return NULL;
      if (tr->step > tr->opt.steps)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "%s: the run is at step %" G_GINT64_FORMAT ", past --steps %" G_GINT64_FORMAT,
                       tr->state_path, tr->step, tr->opt.steps);
          return NULL;
        }
      config = *tf_model_config (tr->model);
      if (!open_sources (tr, &config, error))
        return NULL;
    }
  else
    {
      /* The sources do not depend on the vocabulary: open them with the
       * preset's image shape, then learn the tokenizer from them. */
      if (!open_sources (tr, &config, error))
        return NULL;
      if (options->init_from != NULL)
        {
          if (!warm_start (tr, &config, options->init_from, error))
            return NULL;
        }
      else
        {
          int vocab = options->vocab_size;
          if (vocab == 0)
            vocab = g_strcmp0 (options->preset, "tiny") == 0 ? 512
                  : g_strcmp0 (options->preset, "small") == 0 ? 2048 : 4096;
          tr->tok = train_tokenizer (tr, vocab, error);
          if (tr->tok == NULL)
            return NULL;
          tf_tokenizer_apply_to_config (tr->tok, &config);
          tr->model = tf_model_new (&config, error);
          if (tr->model == NULL)
            return NULL;
          tf_model_init_random (tr->model, options->seed);
        }
      const size_t n = tf_model_n_params (tr->model);
      tr->adam_m = g_new0 (float, n);
      tr->adam_v = g_new0 (float, n);
      tr->ema = g_memdup2 (tf_model_params (tr->model), n * sizeof (float));
      tf_rng_seed (&tr->rng, options->seed);
      tr->step = 0;
    }
  tr->opt.resume = resuming;
  tr->acts = tf_activations_new (tr->model);
  tf_model_grads (tr->model);
  if (!open_log (tr, error))
    return NULL;
  return g_steal_pointer (&tr);
}

void
tf_trainer_free (TfTrainer *tr)
{
  if (tr == NULL)
    return;
  for (int i = 0; i < tr->n_sources; i++)
    if (tr->sources[i])
      tf_data_source_free (tr->sources[i]);
  g_free (tr->sources);
  g_free (tr->cum_weights);
  tf_activations_free (tr->acts);
  tf_model_free (tr->model);
  if (tr->tok)
    tf_tokenizer_free (tr->tok);
  g_free (tr->adam_m);
  g_free (tr->adam_v);
  g_free (tr->ema);
  if (tr->timer)
    g_timer_destroy (tr->timer);
  if (tr->log)
    fclose (tr->log);
  g_free (tr->state_path);
  g_free (tr->log_path);
  g_free (tr->warm_start);
  g_free (tr->images_seen);
  tf_gemm_pack_free (tr->pack);
  tf_train_options_clear (&tr->opt);
  g_free (tr);
}

TfModel *tf_trainer_model (TfTrainer *tr) { return tr->model; }
const TfTokenizer *tf_trainer_tokenizer (TfTrainer *tr) { return tr->tok; }
int64_t tf_trainer_step (TfTrainer *tr) { return tr->step; }

static gboolean
train_step (TfTrainer *tr, TfTrainProgress *progress, GError **error)
{
  const double start = g_timer_elapsed (tr->timer, NULL);
  tf_threads_choose (&tr->threads);
  StepBatch sb;
  if (!build_batch (tr, &sb, error))
    {
      step_batch_clear (&sb);
      return FALSE;
    }
  TfBatch batch = { (TfSequence *) sb.rows->data, (int) sb.rows->len, (float) tr->opt.lambda };
  TfLosses losses;
  if (!tf_model_forward (tr->model, tr->acts, &batch, &losses, error))
    {
      step_batch_clear (&sb);
      return FALSE;
    }
  tf_model_zero_grads (tr->model);
  tf_model_backward (tr->model, tr->acts);
  const double lr = tf_train_learning_rate (&tr->opt, tr->step);
  const double norm = clip_gradients (tr);
  if (!isfinite (losses.loss) || !isfinite (norm))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "step %" G_GINT64_FORMAT ": the loss or the gradient is not finite "
                   "(loss %g, gradient norm %g); lower --lr", tr->step + 1, losses.loss, norm);
      step_batch_clear (&sb);
      return FALSE;
    }
  adamw_update (tr, lr);
  tr->step++;

  const double seconds = g_timer_elapsed (tr->timer, NULL) - start;
  tr->step_seconds = tr->step_seconds == 0 ? seconds : 0.9 * tr->step_seconds + 0.1 * seconds;
  TfTrainProgress p = {
    .step = tr->step,
    .steps = tr->opt.steps,
    .loss = losses.loss,
    .lm = losses.lm,
    .ddpm = losses.ddpm,
    .lr = lr,
    .grad_norm = norm,
    .tokens_per_second = seconds > 0 ? sb.positions / seconds : 0,
    .padding = 1.0 - (double) sb.positions / ((double) batch.n_sequences * losses.seq_len),
    .positions = sb.positions,
    .elapsed = trainer_elapsed (tr),
    .eta = tr->step_seconds * (double) (tr->opt.steps - tr->step),
  };
  g_autoptr (GString) images = g_string_new ("[");
  for (int i = 0; i < tr->n_sources && i < tr->n_images_seen; i++)
    {
      tr->images_seen[i] += sb.images[i];
      g_string_append_printf (images, "%s%d", i ? "," : "", sb.images[i]);
    }
  g_string_append_c (images, ']');
  if (tr->log != NULL)
    fprintf (tr->log,
             "{\"step\":%" G_GINT64_FORMAT ",\"loss\":%.6f,\"lm\":%.6f,\"ddpm\":%.6f,"
             "\"lr\":%.6g,\"grad_norm\":%.5g,\"positions\":%" G_GINT64_FORMAT
             ",\"padding\":%.4f,\"tokens_per_second\":%.1f,\"images\":%s,"
             "\"elapsed\":%.2f}\n",
             p.step, p.loss, p.lm, p.ddpm, p.lr, p.grad_norm, p.positions, p.padding,
             p.tokens_per_second, images->str, p.elapsed);
  if (tr->log != NULL)
    fflush (tr->log);   /* a kill loses at most the line being written */
  if (progress != NULL)
    *progress = p;
  step_batch_clear (&sb);
  return TRUE;
}

/* The step's products on the run's backend; the calling thread's own is
 * left as it was. The weights do not change until the update that ends the
 * step, so the forward and the backward pass read one bf16 copy of them
 * (tf_gemm_pack), made again at every step. */
gboolean
tf_trainer_train_step (TfTrainer *tr, TfTrainProgress *progress, GError **error)
{
  if (tr->pack == NULL)
    {
      tr->pack = tf_gemm_pack_new ();
      tf_gemm_pack_add (tr->pack, tf_model_params (tr->model), tf_model_n_params (tr->model));
    }
  tf_gemm_pack_clear (tr->pack);
  const TfGemmBackend caller = tf_gemm_use (tr->backend);
  TfGemmPack *caller_pack = tf_gemm_pack_use (tr->pack);
  const gboolean ok = train_step (tr, progress, error);
  tf_gemm_pack_use (caller_pack);
  tf_gemm_use (caller);
  return ok;
}

TfGemmBackend
tf_trainer_backend (TfTrainer *tr)
{
  return tr->backend;
}

gboolean
tf_trainer_run (TfTrainer *tr, TfTrainCallback callback, gpointer user_data,
                volatile gint *abort, GError **error)
{
  const int64_t end = tr->opt.until_step > 0 ? MIN (tr->opt.until_step, tr->opt.steps)
                                             : tr->opt.steps;
  tr->last_save = g_timer_elapsed (tr->timer, NULL);
  while (tr->step < end)
    {
      if (abort != NULL && g_atomic_int_get (abort))
        {
          if (!tf_trainer_save (tr, error))
            return FALSE;
          g_set_error (error, TF_ERROR, TF_ERROR_ABORTED,
                       "stopped at step %" G_GINT64_FORMAT "; saved %s", tr->step, tr->opt.out);
          return FALSE;
        }
      TfTrainProgress p;
      if (!tf_trainer_train_step (tr, &p, error))
        return FALSE;
      if (callback != NULL)
        callback (&p, user_data);
      gboolean by_steps = tr->opt.save_every_steps > 0 && tr->step % tr->opt.save_every_steps == 0;
      gboolean by_time = g_timer_elapsed (tr->timer, NULL) - tr->last_save >=
                         tr->opt.save_every_minutes * 60.0;
      if ((by_steps || by_time) && tr->step < end && !tf_trainer_save (tr, error))
        return FALSE;
    }
  return tf_trainer_save (tr, error);
}
