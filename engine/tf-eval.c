/* tf-eval.c: the measurements of issue 7 (see tf-eval.h). */
#include "tf-eval.h"

#include <cblas.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "tf-data-shapes.h"
#include "tf-diffusion.h"
#include "tf-image.h"
#include "tf-json.h"

/* ---- Linear algebra ---------------------------------------------------- */

gboolean
tf_symmetric_eigen (const double *a, int n, double *values, double *vectors)
{
  g_autofree double *m = g_memdup2 (a, sizeof (double) * (size_t) n * n);
  g_autofree double *own = vectors == NULL ? g_new (double, (size_t) n * n) : NULL;
  double *v = vectors != NULL ? vectors : own;
  double total = 0;

  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      {
        v[i * n + j] = i == j;
        total += m[i * n + j] * m[i * n + j];
      }
  for (int sweep = 0; sweep < 100; sweep++)
    {
      double off = 0;
      for (int p = 0; p < n; p++)
        for (int q = p + 1; q < n; q++)
          off += m[p * n + q] * m[p * n + q];
      if (off <= 1e-30 * total || off == 0)
        {
          for (int i = 0; i < n; i++)
            values[i] = m[i * n + i];
          return TRUE;
        }
      for (int p = 0; p < n; p++)
        for (int q = p + 1; q < n; q++)
          {
            const double apq = m[p * n + q];
            if (apq == 0)
              continue;
            /* The rotation J (c on p,p and q,q; s at p,q; −s at q,p) with
             * (JᵀAJ)_pq = 0: t = tan φ, the smaller root. */
            const double theta = (m[q * n + q] - m[p * n + p]) / (2 * apq);
            const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs (theta) + sqrt (theta * theta + 1));
            const double c = 1 / sqrt (t * t + 1), s = t * c;
            for (int k = 0; k < n; k++)   /* A ← A J */
              {
                double akp = m[k * n + p], akq = m[k * n + q];
                m[k * n + p] = c * akp - s * akq;
                m[k * n + q] = s * akp + c * akq;
              }
            for (int k = 0; k < n; k++)   /* A ← Jᵀ A */
              {
                double apk = m[p * n + k], aqk = m[q * n + k];
                m[p * n + k] = c * apk - s * aqk;
                m[q * n + k] = s * apk + c * aqk;
              }
            for (int k = 0; k < n; k++)   /* V ← V J */
              {
                double vkp = v[k * n + p], vkq = v[k * n + q];
                v[k * n + p] = c * vkp - s * vkq;
                v[k * n + q] = s * vkp + c * vkq;
              }
          }
    }
  return FALSE;
}

void
tf_mean_covariance (const float *rows, int n, int dim, double *mean, double *cov)
{
  g_autofree double *centred = g_new (double, (size_t) n * dim);

  for (int k = 0; k < dim; k++)
    {
      double sum = 0;
      for (int r = 0; r < n; r++)
        sum += rows[(size_t) r * dim + k];
      mean[k] = n > 0 ? sum / n : 0;
    }
  for (int r = 0; r < n; r++)
    for (int k = 0; k < dim; k++)
      centred[(size_t) r * dim + k] = rows[(size_t) r * dim + k] - mean[k];
  memset (cov, 0, sizeof (double) * (size_t) dim * dim);
  if (n > 1)
    cblas_dgemm (CblasRowMajor, CblasTrans, CblasNoTrans, dim, dim, n, 1.0 / (n - 1),
                 centred, dim, centred, dim, 0.0, cov, dim);
}

double
tf_frechet_distance (const double *mean1, const double *cov1, const double *mean2,
                     const double *cov2, int dim)
{
  const size_t nn = (size_t) dim * dim;
  g_autofree double *values = g_new (double, dim);
  g_autofree double *vectors = g_new (double, nn);
  g_autofree double *scaled = g_new (double, nn);
  g_autofree double *root = g_new (double, nn);
  g_autofree double *tmp = g_new (double, nn);
  g_autofree double *inner = g_new (double, nn);
  double d = 0, trace = 0, trace_root = 0;

  for (int k = 0; k < dim; k++)
    {
      d += (mean1[k] - mean2[k]) * (mean1[k] - mean2[k]);
      trace += cov1[k * dim + k] + cov2[k * dim + k];
    }
  /* Σ₁^½ = V diag(√λ) Vᵀ */
  if (!tf_symmetric_eigen (cov1, dim, values, vectors))
    return -1;
  for (int i = 0; i < dim; i++)
    for (int k = 0; k < dim; k++)
      scaled[i * dim + k] = vectors[i * dim + k] * sqrt (MAX (values[k], 0.0));
  cblas_dgemm (CblasRowMajor, CblasNoTrans, CblasTrans, dim, dim, dim, 1.0, scaled, dim,
               vectors, dim, 0.0, root, dim);
  /* Σ₁^½ Σ₂ Σ₁^½ is symmetric and positive semi-definite: the trace of its
   * square root is the sum of the roots of its eigenvalues, and equals
   * tr (Σ₁Σ₂)^½ (the two products have the same eigenvalues). */
  cblas_dgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, root, dim,
               cov2, dim, 0.0, tmp, dim);
  cblas_dgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, tmp, dim,
               root, dim, 0.0, inner, dim);
  for (int i = 0; i < dim; i++)   /* symmetric up to rounding: make it exactly so */
    for (int j = i + 1; j < dim; j++)
      inner[i * dim + j] = inner[j * dim + i] = 0.5 * (inner[i * dim + j] + inner[j * dim + i]);
  if (!tf_symmetric_eigen (inner, dim, values, NULL))
    return -1;
  for (int k = 0; k < dim; k++)
    trace_root += sqrt (MAX (values[k], 0.0));
  return MAX (d + trace - 2 * trace_root, 0.0);
}

/* ---- Options and report ------------------------------------------------ */

static const char *const section_names[] = { "fashion", "caption", "shapes", "emoji", "text",
                                              "steering" };

gboolean
tf_eval_sections_parse (const char *list, guint *sections, GError **error)
{
  g_auto (GStrv) words = g_strsplit (list, ",", -1);
  *sections = 0;
  for (int i = 0; words[i] != NULL; i++)
    {
      const char *word = g_strstrip (words[i]);
      guint k;
      for (k = 0; k < G_N_ELEMENTS (section_names); k++)
        if (strcmp (word, section_names[k]) == 0)
          break;
      if (k == G_N_ELEMENTS (section_names))
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "unknown section '%s' (expected fashion, caption, shapes, emoji, text, "
                       "steering)",
                       word);
          return FALSE;
        }
      *sections |= 1u << k;
    }
  if (*sections == 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "no section named");
      return FALSE;
    }
  return TRUE;
}

void
tf_eval_options_init (TfEvalOptions *o)
{
  memset (o, 0, sizeof *o);
  o->sections = TF_EVAL_ALL;
  o->samples = 10;
  o->text_documents = 400;
  o->answers = 4;
  tf_generate_settings_init (&o->settings);
  o->settings.steps = 25;
  o->settings.sampler = TF_SAMPLER_DDIM;
  o->settings.cfg = 3.0;
}

double
tf_eval_interval95 (int part, int whole)
{
  if (whole <= 0)
    return 0;
  const double z = 1.96, n = whole, p = (double) part / whole;
  const double centre = (p + z * z / (2 * n)) / (1 + z * z / n);
  const double half = z * sqrt (p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n);
  return 100 * MAX (p - (centre - half), centre + half - p);
}

static void
answer_clear (gpointer data)
{
  TfEvalAnswer *a = data;
  g_free (a->prompt);
  g_free (a->answer);
}

void
tf_eval_report_clear (TfEvalReport *r)
{
  for (int c = 0; c < TF_EVAL_FASHION_CLASSES; c++)
    g_free (r->fashion_class[c]);
  g_free (r->caption_example[0]);
  g_free (r->caption_example[1]);
  if (r->answers != NULL)
    g_array_unref (r->answers);
  if (r->drawn != NULL)
    g_array_unref (r->drawn);
  answer_clear (&r->gloss_example);
  answer_clear (&r->chat_example);
  memset (r, 0, sizeof *r);
}

/* ---- Running ------------------------------------------------------------ */

typedef struct {
  TfGenerator *gen;
  TfJudge *judge;
  const TfEvalOptions *o;
  const TfConfig *config;
  int values;                 /* floats per image */
  TfEvalReport *r;
  const char *section;        /* where the run is, for a message when stopped */
  int done, total;
} Eval;

static void
drawn_clear (gpointer data)
{
  g_free (((TfEvalDrawn *) data)->prompt);
}

/* Notes an image drawn for @prompt and whether it came out as asked. */
static void
note_drawn (Eval *ev, const char *section, const char *prompt, int label, gboolean right)
{
  if (ev->r->drawn == NULL)
    {
      ev->r->drawn = g_array_new (FALSE, TRUE, sizeof (TfEvalDrawn));
      g_array_set_clear_func (ev->r->drawn, drawn_clear);
    }
  TfEvalDrawn d = { section, g_strdup (prompt), label, right };
  g_array_append_val (ev->r->drawn, d);
}

static gboolean
step (Eval *ev, const char *section, int done, int total, GError **error)
{
  ev->section = section, ev->done = done, ev->total = total;
  if (ev->o->abort != NULL && g_atomic_int_get (ev->o->abort))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_ABORTED, "stopped");
      return FALSE;
    }
  if (ev->o->progress != NULL)
    ev->o->progress (section, done, total, ev->o->user_data);
  return TRUE;
}

/* Image @item of a section: the options' settings, a seed of its own. */
static gboolean
draw (Eval *ev, const char *prompt, uint64_t item, float *pixels, GError **error)
{
  TfGenerateSettings s = ev->o->settings;
  s.seed = ev->o->settings.seed * 1000003u + item;
  return tf_generator_generate_image (ev->gen, prompt, &s, NULL, pixels, error);
}

static TfDataSource *
open_source (Eval *ev, const char *name, GError **error)
{
  return tf_data_source_open (name, TF_SPLIT_HELDOUT, ev->config->image_size,
                              ev->config->image_channels, error);
}

/* Phrasings the Fashion-MNIST source never writes (the test checks that
 * tf_data_fashion_caption_class() knows none of them), around the class's
 * subject name. */
static const char *const unseen_templates[] = {
  "the %s, photographed from the front",
  "a close-up of the %s",
  "a low-resolution photograph of the %s",
  "here is the %s",
  "the %s on a dark background",
  "a monochrome image showing the %s",
};

char *
tf_eval_unseen_fashion_prompt (const char *subject, int k)
{
  return g_strdup_printf (unseen_templates[k % G_N_ELEMENTS (unseen_templates)], subject);
}

/* One shape in words the shapes source never writes and training's
 * loosened prompts never say ("one", "single", "just", "picture of"…). %s
 * is the shape with its article ("an orange circle") when the template says
 * 'a', else without ("orange circle"). */
static const struct { const char *format; gboolean article; } other_shape_templates[] = {
  { "one %s", FALSE },
  { "a picture of %s", TRUE },
  { "a single %s, nothing else", FALSE },
  { "an image with one %s in it", FALSE },
  { "just %s", TRUE },
  { "%s on white", TRUE },
};

char *
tf_eval_other_shape_prompt (int colour, int shape, int k)
{
  const char *c = tf_shapes_colour_name (colour);
  g_autofree char *noun = g_strdup_printf ("%s %s", c, tf_shapes_shape_name (shape));
  g_autofree char *with_article = g_strdup_printf ("%s %s", strchr ("aeiou", c[0]) ? "an" : "a",
                                                   noun);
  const int t = k % (int) G_N_ELEMENTS (other_shape_templates);
  return g_strdup_printf (other_shape_templates[t].format,
                          other_shape_templates[t].article ? with_article : noun);
}

static double
frechet_of (const float *a, const float *b, int n, int dim)
{
  g_autofree double *m1 = g_new (double, dim), *m2 = g_new (double, dim);
  g_autofree double *c1 = g_new (double, (size_t) dim * dim), *c2 = g_new (double, (size_t) dim * dim);
  tf_mean_covariance (a, n, dim, m1, c1);
  tf_mean_covariance (b, n, dim, m2, c2);
  return tf_frechet_distance (m1, c1, m2, c2, dim);
}

/* Adds one image's neighbour steps to @sum and @count: [0] inside a patch,
 * [1] across a border of the p × p grid. */
static void
seam_steps (const float *im, int size, int channels, int p, double sum[2], gint64 count[2])
{
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++)
      for (int c = 0; c < channels; c++)
        {
          const float v = im[((size_t) y * size + x) * channels + c];
          if (x + 1 < size)
            {
              const int across = (x + 1) % p == 0;
              sum[across] += fabsf (im[((size_t) y * size + x + 1) * channels + c] - v);
              count[across]++;
            }
          if (y + 1 < size)
            {
              const int across = (y + 1) % p == 0;
              sum[across] += fabsf (im[((size_t) (y + 1) * size + x) * channels + c] - v);
              count[across]++;
            }
        }
}

static double
seam_ratio_of (const double sum[2], const gint64 count[2])
{
  const double inside = count[0] > 0 ? sum[0] / count[0] : 0;
  const double across = count[1] > 0 ? sum[1] / count[1] : 0;
  return (across + 1e-6) / (inside + 1e-6);
}

double
tf_eval_seam_ratio (const float *images, int n, int size, int channels, int p)
{
  double sum[2] = { 0, 0 };
  gint64 count[2] = { 0, 0 };
  for (int k = 0; k < n; k++)
    seam_steps (images + (size_t) k * size * size * channels, size, channels, p, sum, count);
  return seam_ratio_of (sum, count);
}

static gboolean
eval_fashion (Eval *ev, GError **error)
{
  const TfJudgeDims *jd = tf_judge_dims (ev->judge);
  const int feat = jd->features, per = ev->o->samples;
  const int n_gen = 2 * per * jd->classes;
  g_autoptr (TfDataSource) src = NULL;
  TfRng rng;

  if (jd->size != ev->config->image_size || jd->classes != TF_EVAL_FASHION_CLASSES)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "the judge takes %d×%d images of %d classes; the model draws %d×%d",
                   jd->size, jd->size, jd->classes, ev->config->image_size,
                   ev->config->image_size);
      return FALSE;
    }
  if (!(src = open_source (ev, "fashion", error)))
    return FALSE;

  /* Every real t10k image: the ceiling, and the real sets of the distance. */
  const int n_real = (int) tf_data_source_size (src);
  g_autofree float *real = g_new (float, (size_t) n_real * ev->values);
  g_autofree int *labels = g_new (int, n_real);
  g_autoptr (GPtrArray) captions = g_ptr_array_new_with_free_func (g_free);
  tf_rng_seed (&rng, ev->o->settings.seed);
  for (int i = 0; i < n_real; i++)
    {
      TfExample ex;
      if (!tf_data_source_get (src, i, &rng, &ex, error))
        return FALSE;
      memcpy (real + (size_t) i * ev->values, ex.pixels, sizeof (float) * ev->values);
      labels[i] = ex.label;
      g_ptr_array_add (captions, g_steal_pointer (&ex.caption));
      tf_example_clear (&ex);
    }
  g_autofree float *real_features = g_new (float, (size_t) n_real * feat);
  g_autofree int *real_predicted = g_new (int, n_real);
  tf_judge_classify (ev->judge, real, n_real, ev->config->image_channels, real_features,
                     real_predicted);
  ev->r->judge_real_n = n_real;
  for (int i = 0; i < n_real; i++)
    ev->r->judge_real_right += real_predicted[i] == labels[i];

  /* Per class, the first 2·per real images form set A (beside the generated
   * images, whose seen prompts are their captions) and the next 2·per set B. */
  g_autofree int *set_a = g_new (int, n_gen), *set_b = g_new (int, n_gen);
  for (int c = 0; c < jd->classes; c++)
    {
      int found = 0;
      for (int i = 0; i < n_real && found < 4 * per; i++)
        if (labels[i] == c)
          {
            if (found < 2 * per)
              set_a[c * 2 * per + found] = i;
            else
              set_b[c * 2 * per + found - 2 * per] = i;
            found++;
          }
      if (found < 4 * per)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "fashion: class %d has fewer than %d held-out images", c, 4 * per);
          return FALSE;
        }
    }

  const char *const *subjects = tf_data_source_subjects (src);
  for (int c = 0; c < TF_EVAL_FASHION_CLASSES; c++)
    {
      g_free (ev->r->fashion_class[c]);
      ev->r->fashion_class[c] = g_strdup (subjects[c]);
    }
  g_autofree float *gen = g_new (float, (size_t) n_gen * ev->values);
  g_autofree int *predicted = g_new (int, n_gen);
  g_autoptr (GPtrArray) prompts = g_ptr_array_new_with_free_func (g_free);
  for (int k = 0; k < n_gen; k++)
    {
      const int c = k / (2 * per), j = k % (2 * per);
      const int unseen = j >= per;
      char *prompt = unseen
        ? tf_eval_unseen_fashion_prompt (subjects[c], c + (j - per))
        : g_strdup (g_ptr_array_index (captions, set_a[k]));
      g_ptr_array_add (prompts, prompt);
      if (!step (ev, "fashion", k, n_gen, error)
          || !draw (ev, prompt, (uint64_t) k, gen + (size_t) k * ev->values, error))
        return FALSE;
    }
  g_autofree float *gen_features = g_new (float, (size_t) n_gen * feat);
  tf_judge_classify (ev->judge, gen, n_gen, ev->config->image_channels, gen_features, predicted);
  for (int k = 0; k < n_gen; k++)
    {
      const int c = k / (2 * per), unseen = k % (2 * per) >= per;
      ev->r->fashion_n[unseen]++;
      ev->r->fashion_right[unseen] += predicted[k] == c;
      ev->r->fashion_judged[c][predicted[k]]++;
      note_drawn (ev, "fashion", g_ptr_array_index (prompts, k), c, predicted[k] == c);
    }

  g_autofree float *fa = g_new (float, (size_t) n_gen * feat), *fb = g_new (float, (size_t) n_gen * feat);
  for (int k = 0; k < n_gen; k++)
    {
      memcpy (fa + (size_t) k * feat, real_features + (size_t) set_a[k] * feat, sizeof (float) * feat);
      memcpy (fb + (size_t) k * feat, real_features + (size_t) set_b[k] * feat, sizeof (float) * feat);
    }
  /* Near-white pixel values, generated and in set A of the real images. */
  const float white = 2.0f * 250 / 255 - 1;
  gint64 sat_gen = 0, sat_real = 0;
  for (int k = 0; k < n_gen; k++)
    for (int v = 0; v < ev->values; v++)
      {
        sat_gen += gen[(size_t) k * ev->values + v] >= white;
        sat_real += real[(size_t) set_a[k] * ev->values + v] >= white;
      }
  ev->r->saturated_generated = 100.0 * sat_gen / ((double) n_gen * ev->values);
  ev->r->saturated_real = 100.0 * sat_real / ((double) n_gen * ev->values);
  /* Patch seams, generated and in set A of the real images (read in place). */
  const TfConfig *cf = ev->config;
  ev->r->seam_generated = tf_eval_seam_ratio (gen, n_gen, cf->image_size, cf->image_channels,
                                              cf->patch_size);
  double seam_sum[2] = { 0, 0 };
  gint64 seam_count[2] = { 0, 0 };
  for (int k = 0; k < n_gen; k++)
    seam_steps (real + (size_t) set_a[k] * ev->values, cf->image_size, cf->image_channels,
                cf->patch_size, seam_sum, seam_count);
  ev->r->seam_real = seam_ratio_of (seam_sum, seam_count);
  ev->r->frechet_n = n_gen;
  ev->r->frechet_generated = frechet_of (gen_features, fa, n_gen, feat);
  ev->r->frechet_floor = frechet_of (fb, fa, n_gen, feat);
  return TRUE;
}

/* The caption of the grey @side × @side picture @grey saved as a PNG at
 * @scale times its size (each pixel a block), read back and fitted as
 * `caption --image` fits a picture; NULL with @error set. */
static char *
caption_of_png (Eval *ev, const char *png, const uint8_t *grey, int side, int scale,
                const TfGenerateSettings *s, float *fitted, GError **error)
{
  const int big = side * scale;
  g_autofree uint8_t *pixels = g_new (uint8_t, (size_t) big * big);
  for (int y = 0; y < big; y++)
    for (int x = 0; x < big; x++)
      pixels[y * big + x] = grey[(y / scale) * side + x / scale];
  TfImage image = { 0 };
  if (!tf_image_write_png (png, pixels, big, big, 1, NULL, NULL, error)
      || !tf_image_read_png (png, &image, error))
    return NULL;
  tf_generator_fit_picture (ev->gen, &image, fitted);
  tf_image_clear (&image);
  char *caption = tf_generator_caption (ev->gen, fitted, s, NULL, error);
  return caption != NULL ? g_strstrip (caption) : NULL;
}

static gboolean
eval_caption (Eval *ev, GError **error)
{
  g_autoptr (TfDataSource) src = open_source (ev, "fashion", error);
  TfGenerateSettings s = ev->o->settings;
  TfRng rng;

  if (src == NULL)
    return FALSE;
  s.temperature = 0;   /* the likeliest caption, as `caption` decodes by default */
  s.max_tokens = 32;
  tf_rng_seed (&rng, ev->o->settings.seed);
  /* Each image goes the way a person's does: saved as an ordinary 28×28 grey
   * PNG, read back and fitted to the model as `caption --image` fits it. */
  g_autofree char *dir = g_dir_make_tmp ("tf-eval-XXXXXX", error);
  if (dir == NULL)
    return FALSE;
  g_autofree char *png = g_build_filename (dir, "t10k.png", NULL);
  const int size = ev->config->image_size, C = ev->config->image_channels;
  const int side = MIN (size, 28), at = (size - side) / 2;
  g_autofree uint8_t *grey = g_new (uint8_t, (size_t) side * side);
  g_autofree float *fitted = g_new (float, ev->values);
  gboolean ok = TRUE;
  /* A caption costs a few milliseconds: enough of them that one in a
   * hundred is a percent (100 images read 80% where 4,000 read 77%). */
  const int n = MIN (100 * ev->o->samples, (int) tf_data_source_size (src));
  for (int i = 0; i < n && ok; i++)
    {
      TfExample ex;
      /* Spread over t10k, whose classes come in no order. */
      int64_t index = (int64_t) i * tf_data_source_size (src) / n;
      if (!step (ev, "caption", i, n, error) || !tf_data_source_get (src, index, &rng, &ex, error))
        {
          ok = FALSE;
          break;
        }
      /* The source centres the 28×28 image unscaled on a model of 28 or more. */
      for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
          grey[y * side + x] = (uint8_t) lrintf (
            (ex.pixels[((size_t) (at + y) * size + at + x) * C] + 1.0f) * 127.5f);
      g_autofree char *caption = caption_of_png (ev, png, grey, side, 1, &s, fitted, error);
      /* and the same picture four times larger, as people may keep it */
      g_autofree char *large = caption != NULL
                                 ? caption_of_png (ev, png, grey, side, 4, &s, fitted, error)
                                 : NULL;
      if (large == NULL)
        {
          tf_example_clear (&ex);
          ok = FALSE;
          break;
        }
      ev->r->caption_n++;
      ev->r->caption_exact += tf_data_fashion_caption_class (caption) == ex.label;
      ev->r->caption_exact_large += tf_data_fashion_caption_class (large) == ex.label;
      if (i == 0)
        {
          ev->r->caption_example[0] = g_utf8_make_valid (caption, -1);
          ev->r->caption_example[1] = g_strdup (ex.subject);
        }
      tf_example_clear (&ex);
    }
  g_remove (png);
  g_rmdir (dir);
  return ok;
}

/* Adds what @found reads right of @asked: objects by cell; the shapes read
 * right also by the size asked, in @shape_by_size when it is not NULL. */
static void
score_scene (const TfShapeScene *asked, const TfShapeScene *found, int *colour, int *shape,
             int *count, int *position, int shape_by_size[TF_SHAPES_N_SIZES])
{
  *count += found->n == asked->n;
  for (int i = 0; i < asked->n; i++)
    for (int j = 0; j < found->n; j++)
      if (found->objects[j].cell == asked->objects[i].cell)
        {
          const gboolean same = found->objects[j].shape == asked->objects[i].shape;
          *position += 1;
          *colour += found->objects[j].colour == asked->objects[i].colour;
          *shape += same;
          if (shape_by_size != NULL)
            shape_by_size[asked->objects[i].size] += same;
          break;
        }
}

/* Whether @found is @asked: as many objects, each in its cell with its
 * colour and shape. */
static gboolean
scene_all_right (const TfShapeScene *asked, const TfShapeScene *found)
{
  int colour = 0, shape = 0, count = 0, position = 0;
  score_scene (asked, found, &colour, &shape, &count, &position, NULL);
  return count == 1 && position == asked->n && colour == asked->n && shape == asked->n;
}

/* The shape every object of @scene has, or −1 when they differ. */
static int
scene_shape (const TfShapeScene *scene)
{
  for (int k = 1; k < scene->n; k++)
    if (scene->objects[k].shape != scene->objects[0].shape)
      return -1;
  return scene->n > 0 ? scene->objects[0].shape : -1;
}

static gboolean
eval_shapes (Eval *ev, GError **error)
{
  g_autoptr (TfDataSource) src = open_source (ev, "shapes", error);
  g_autofree float *pixels = g_new (float, ev->values);
  TfEvalReport *r = ev->r;
  TfRng rng;

  if (src == NULL)
    return FALSE;
  tf_rng_seed (&rng, ev->o->settings.seed);
  const int n = 10 * ev->o->samples, n_other = 5 * ev->o->samples;
  for (int i = 0; i < n; i++)
    {
      TfExample ex;
      TfShapeScene asked, found;
      if (!step (ev, "shapes", i, n + n_other, error) || !tf_data_source_get (src, i, &rng, &ex, error))
        return FALSE;
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &asked);
      gboolean ok = draw (ev, ex.caption, 100000u + (uint64_t) i, pixels, error);
      if (ok)
        {
          r->shapes_scenes++;
          r->shapes_objects += asked.n;
          tf_shapes_analyse (pixels, ev->config->image_size, ev->config->image_channels, &found);
          score_scene (&asked, &found, &r->shapes_colour, &r->shapes_shape, &r->shapes_count,
                       &r->shapes_position, r->shapes_size_shape);
          for (int k = 0; k < asked.n; k++)
            r->shapes_size_objects[asked.objects[k].size]++;
          note_drawn (ev, "shapes", ex.caption, scene_shape (&asked),
                      scene_all_right (&asked, &found));
          tf_shapes_analyse (ex.pixels, ev->config->image_size, ev->config->image_channels,
                             &found);
          score_scene (&asked, &found, &r->shapes_real_colour, &r->shapes_real_shape,
                       &r->shapes_real_count, &r->shapes_real_position, r->shapes_size_real_shape);
        }
      tf_example_clear (&ex);
      if (!ok)
        return FALSE;
    }
  /* One shape in other words: every colour with every shape in turn, the
   * templates in turn. */
  const int combos = TF_SHAPES_N_COLOURS * TF_SHAPES_N_SHAPES;
  for (int i = 0; i < n_other; i++)
    {
      const int combo = (i * 7) % combos;   /* 7 is prime to 48: every pair before a repeat */
      const int colour = combo % TF_SHAPES_N_COLOURS, shape = combo / TF_SHAPES_N_COLOURS;
      g_autofree char *prompt = tf_eval_other_shape_prompt (colour, shape, i);
      TfShapeScene found;
      if (!step (ev, "shapes", n + i, n + n_other, error) ||
          !draw (ev, prompt, 150000u + (uint64_t) i, pixels, error))
        return FALSE;
      tf_shapes_analyse (pixels, ev->config->image_size, ev->config->image_channels, &found);
      r->shapes_other_n++;
      if (found.n == 1)
        {
          r->shapes_other_one++;
          r->shapes_other_colour += found.objects[0].colour == colour;
          r->shapes_other_shape += found.objects[0].shape == shape;
        }
      /* One object of one shape: more evidence of how well that shape is
       * drawn, for the suggestions (tf_eval_pick_examples). */
      note_drawn (ev, "shapes", prompt, shape,
                  found.n == 1 && found.objects[0].colour == colour
                  && found.objects[0].shape == shape);
    }
  return TRUE;
}

static double
squared_distance (const float *a, const float *b, int n)
{
  double sum = 0;
  for (int k = 0; k < n; k++)
    sum += (double) (a[k] - b[k]) * (a[k] - b[k]);
  return sum;
}

static gboolean
eval_emoji (Eval *ev, GError **error)
{
  g_autoptr (TfDataSource) src = open_source (ev, "emoji", error);
  g_autofree float *pixels = g_new (float, ev->values);
  g_autofree float *candidate = g_new (float, ev->values);
  TfRng rng;

  if (src == NULL)
    return FALSE;
  const int n_emoji = (int) g_strv_length ((char **) tf_data_source_subjects (src));
  const int n = MIN (10 * ev->o->samples, (int) tf_data_source_size (src));
  ev->r->emoji_candidates = n_emoji;
  tf_rng_seed (&rng, ev->o->settings.seed);
  for (int i = 0; i < n; i++)
    {
      TfExample ex;
      /* Spread over the held-out pairs, which come emoji by emoji. */
      int64_t index = (int64_t) i * tf_data_source_size (src) / n;
      if (!step (ev, "emoji", i, n, error) || !tf_data_source_get (src, index, &rng, &ex, error))
        return FALSE;
      gboolean ok = draw (ev, ex.caption, 200000u + (uint64_t) i, pixels, error)
                    && tf_data_emoji_render_as (src, index, ex.label, candidate, error);
      const double asked = ok ? squared_distance (candidate, pixels, ev->values) : 0;
      int closer = 0;   /* the asked emoji's rank: how many others are strictly closer */
      for (int e = 0; ok && e < n_emoji; e++)
        if (e != ex.label)
          {
            ok = tf_data_emoji_render_as (src, index, e, candidate, error);
            closer += ok && squared_distance (candidate, pixels, ev->values) < asked;
          }
      if (ok)
        {
          ev->r->emoji_n++;
          ev->r->emoji_top1 += closer < 1;
          ev->r->emoji_top5 += closer < 5;
          note_drawn (ev, "emoji", ex.caption, -1, closer < 1);
        }
      tf_example_clear (&ex);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

/* Size in bytes of @data compressed by @argv (reading stdin, writing
 * stdout); −1 when the program is not installed. */
static gint64
compressed_size (const char *const *argv, GBytes *data, GError **error)
{
  g_autoptr (GError) spawn_error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                                    G_SUBPROCESS_FLAGS_STDOUT_PIPE, &spawn_error);
  g_autoptr (GBytes) out = NULL;

  if (proc == NULL)
    {
      if (g_error_matches (spawn_error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT))
        return -1;
      g_propagate_error (error, g_steal_pointer (&spawn_error));
      return -2;
    }
  if (!g_subprocess_communicate (proc, data, NULL, &out, NULL, error))
    return -2;
  if (!g_subprocess_get_if_exited (proc) || g_subprocess_get_exit_status (proc) != 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s failed", argv[0]);
      return -2;
    }
  return (gint64) g_bytes_get_size (out);
}

/* Whether @answer is the gloss @expected ("a X is GLOSS."), whole or up to
 * its first ';' (a model may stop after the gloss's first sense). */
gboolean
tf_eval_gloss_matches (const char *answer, const char *expected)
{
  g_autofree char *a = g_strstrip (g_strdup (answer));
  g_autofree char *e = g_strstrip (g_strdup (expected));
  if (strcmp (a, e) == 0)
    return TRUE;
  const char *semicolon = strchr (e, ';');
  return semicolon != NULL && strncmp (a, e, (size_t) (semicolon - e)) == 0;
}

/* What eval_questions() asks and how it scores a reply. */
typedef enum {
  QUESTIONS_GLOSS,   /* held-out "what is a X?": the gloss (tf_eval_gloss_matches) */
  QUESTIONS_CHAT,    /* held-out chat phrasings: one of the topic's answers */
} Questions;

/* Every example of the subjects' or the chat topics' held-out split asked
 * as the first turn of a new chat and answered greedily (issue 16). */
static gboolean
eval_questions (Eval *ev, Questions kind, const TfGenerateSettings *settings, GError **error)
{
  g_autoptr (TfDataSource) src = kind == QUESTIONS_GLOSS ? open_source (ev, "subjects", error)
                                                         : tf_data_chat_new (TF_SPLIT_HELDOUT, error);
  TfGenerateSettings s = *settings;
  int *asked = kind == QUESTIONS_GLOSS ? &ev->r->gloss_n : &ev->r->chat_n;
  int *right = kind == QUESTIONS_GLOSS ? &ev->r->gloss_right : &ev->r->chat_right;
  TfEvalAnswer *example = kind == QUESTIONS_GLOSS ? &ev->r->gloss_example : &ev->r->chat_example;
  TfRng rng;

  if (src == NULL)
    return FALSE;
  /* the longest chat answer, "what can you draw?", is 90 tokens */
  s.max_tokens = kind == QUESTIONS_GLOSS ? 64 : 200;
  tf_rng_seed (&rng, ev->o->settings.seed);
  const int n = (int) tf_data_source_size (src);
  for (int i = 0; i < n; i++)
    {
      TfExample ex;
      if (!step (ev, "text", i, n, error) || !tf_data_source_get (src, i, &rng, &ex, error))
        return FALSE;
      /* a chat phrasing as it is written, without the source's random capital */
      if (kind == QUESTIONS_CHAT)
        ex.prompt[0] = g_ascii_tolower (ex.prompt[0]);
      tf_generator_chat_reset (ev->gen);
      g_autofree char *answer = tf_generator_chat (ev->gen, ex.prompt, NULL, &s, NULL, error);
      if (answer == NULL)
        {
          tf_example_clear (&ex);
          return FALSE;
        }
      const gboolean ok = kind == QUESTIONS_GLOSS ? tf_eval_gloss_matches (answer, ex.text)
                                                  : tf_data_chat_answer_matches (ex.subject, answer);
      (*asked)++;
      *right += ok;
      /* the first gloss question; the first chat phrasing missed */
      if (example->prompt == NULL && (kind == QUESTIONS_GLOSS || !ok))
        {
          example->prompt = g_strdup (ex.prompt);
          example->answer = g_utf8_make_valid (answer, -1);
        }
      tf_example_clear (&ex);
    }
  tf_generator_chat_reset (ev->gen);
  return TRUE;
}

static gboolean
eval_text (Eval *ev, GError **error)
{
  g_autoptr (TfDataSource) src = tf_data_source_open ("wordnet", TF_SPLIT_HELDOUT, 0, 0, error);
  const TfTokenizer *tok = tf_generator_tokenizer (ev->gen);
  TfModel *model = tf_generator_model (ev->gen);
  const int L = ev->config->max_seq_len, per_batch = 16;
  g_autoptr (TfActivations) acts = NULL;
  g_autoptr (GString) all = g_string_new (NULL);
  g_autoptr (GPtrArray) docs = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  TfRng rng;

  if (src == NULL)
    return FALSE;
  acts = tf_activations_new (model);
  tf_rng_seed (&rng, ev->o->settings.seed);
  const int n = MIN (ev->o->text_documents, (int) tf_data_source_size (src));
  /* Documents as training writes a text example outside the chat template:
   * <|bos|> text <|eos|>. The model's bits cover the text's tokens and the
   * <|eos|>, which stands for the newline the compressors see after it. */
  for (int i = 0; i < n; i++)
    {
      TfExample ex;
      int64_t index = (int64_t) i * tf_data_source_size (src) / n;
      if (!tf_data_source_get (src, index, &rng, &ex, error))
        return FALSE;
      GArray *ids = g_array_new (FALSE, FALSE, sizeof (int32_t));
      int32_t bos = tf_tokenizer_special_id (tok, TF_SPECIAL_BOS);
      int32_t eos = tf_tokenizer_special_id (tok, TF_SPECIAL_EOS);
      g_array_append_val (ids, bos);
      tf_tokenizer_encode_append (tok, ex.text, strlen (ex.text), ids);
      g_array_append_val (ids, eos);
      if ((int) ids->len <= L)   /* longer ones are cut in training: left out here */
        {
          g_string_append (all, ex.text);
          g_string_append_c (all, '\n');
          g_ptr_array_add (docs, ids);
        }
      else
        g_array_unref (ids);
      tf_example_clear (&ex);
    }
  for (guint d0 = 0; d0 < docs->len; d0 += per_batch)
    {
      TfSegment segs[16];
      TfSequence seqs[16];
      TfLosses losses;
      const int m = MIN (per_batch, (int) (docs->len - d0));
      if (!step (ev, "text", (int) d0, (int) docs->len, error))
        return FALSE;
      for (int k = 0; k < m; k++)
        {
          GArray *ids = g_ptr_array_index (docs, d0 + k);
          segs[k] = (TfSegment) { .kind = TF_SEGMENT_TEXT, .new_document = TRUE,
                                  .tokens = (const int32_t *) ids->data, .n_tokens = (int) ids->len };
          seqs[k] = (TfSequence) { .segments = &segs[k], .n_segments = 1 };
        }
      TfBatch batch = { .sequences = seqs, .n_sequences = m, .lambda = 0 };
      if (!tf_model_forward (model, acts, &batch, &losses, error))
        return FALSE;
      ev->r->text_model_bits += losses.lm * losses.n_text_targets / G_LN2;
    }
  ev->r->text_documents = (int) docs->len;
  ev->r->text_bytes = (int64_t) all->len;

  g_autoptr (GBytes) bytes = g_bytes_new (all->str, all->len);
  const char *xz[] = { "xz", "-9", "-c", NULL };
  const char *gz[] = { "gzip", "-9", "-c", "-n", NULL };
  gint64 xz_size = compressed_size (xz, bytes, error);
  if (xz_size == -2)
    return FALSE;
  gint64 gz_size = compressed_size (gz, bytes, error);
  if (gz_size == -2)
    return FALSE;
  ev->r->text_xz_bits = xz_size < 0 ? -1 : 8.0 * xz_size;
  ev->r->text_gzip_bits = gz_size < 0 ? -1 : 8.0 * gz_size;

  /* A few answers to "what is …?", greedy, in the chat template. */
  TfGenerateSettings s = ev->o->settings;
  s.temperature = 0;
  s.max_tokens = 48;
  ev->r->answers = g_array_new (FALSE, TRUE, sizeof (TfEvalAnswer));
  g_array_set_clear_func (ev->r->answers, answer_clear);
  for (int64_t i = 0; i < tf_data_source_size (src) && (int) ev->r->answers->len < ev->o->answers;
       i++)
    {
      TfExample ex;
      if (!tf_data_source_get (src, i * 7919 % tf_data_source_size (src), &rng, &ex, error))
        return FALSE;
      /* "what is a X?", "what is an X?" (not "what is a synonym for X?") */
      if (ex.prompt != NULL
          && (g_str_has_prefix (ex.prompt, "what is a ") || g_str_has_prefix (ex.prompt, "what is an "))
          && !g_str_has_prefix (ex.prompt, "what is a synonym"))
        {
          tf_generator_chat_reset (ev->gen);
          char *answer = tf_generator_chat (ev->gen, ex.prompt, NULL, &s, NULL, error);
          if (answer == NULL)
            {
              tf_example_clear (&ex);
              return FALSE;
            }
          /* a model may write broken UTF-8: shown with U+FFFD in its place */
          TfEvalAnswer a = { g_strdup (ex.prompt), g_utf8_make_valid (answer, -1) };
          g_free (answer);
          g_array_append_val (ev->r->answers, a);
        }
      tf_example_clear (&ex);
    }
  tf_generator_chat_reset (ev->gen);
  return eval_questions (ev, QUESTIONS_GLOSS, &s, error) &&
         eval_questions (ev, QUESTIONS_CHAT, &s, error);
}

/* The images of the other class: the first image after @index + size/2
 * whose class differs, so every class is paired with others. */
static gboolean
get_other_class (TfDataSource *src, int64_t index, int label, TfRng *rng, TfExample *other,
                 GError **error)
{
  const int64_t size = tf_data_source_size (src);
  for (int64_t j = 0; j < size; j++)
    {
      if (!tf_data_source_get (src, (index + size / 2 + j) % size, rng, other, error))
        return FALSE;
      if (other->label != label)
        return TRUE;
      tf_example_clear (other);
    }
  g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "steering: every held-out image is of one class");
  return FALSE;
}

/* One image, @pixels: its ε error at each level after the three @captions,
 * added to @mse: over every value, or only where @mask is set. */
static gboolean
steering_image (Eval *ev, const float *pixels, const char *const captions[3], const guint8 *mask,
                TfRng *rng, float *x, float *noise, float *eps,
                double mse[TF_EVAL_STEERING_LEVELS][3], GError **error)
{
  const double *alpha_bar = tf_model_alpha_bar (tf_generator_model (ev->gen));
  int32_t *prefixes[3] = { NULL, NULL, NULL };
  int lengths[3];
  gboolean ok = TRUE;

  for (int r = 0; r < 3 && ok; r++)
    ok = (prefixes[r] = tf_generator_image_prefix (ev->gen, captions[r], &lengths[r], error)) != NULL;
  for (int k = 0; k < TF_EVAL_STEERING_LEVELS && ok; k++)
    {
      const int t = ev->r->steering_t[k];
      const double a = sqrt (alpha_bar[t]), b = sqrt (1.0 - alpha_bar[t]);
      for (int v = 0; v < ev->values; v++)
        {
          noise[v] = (float) tf_rng_normal (rng);
          x[v] = (float) (a * pixels[v] + b * noise[v]);
        }
      ok = tf_generator_predict (ev->gen, (const int32_t *const *) prefixes, lengths, 3, x, t,
                                 eps, error);
      /* The ε the prediction implies, whatever the model predicts, so that
       * models of every recipe are measured alike. */
      const TfPrediction prediction = ev->config->prediction;
      for (int r = 0; r < 3 && ok; r++)
        {
          double sum = 0.0;
          int counted = 0;
          for (int v = 0; v < ev->values; v++)
            {
              if (mask != NULL && !mask[v])
                continue;
              const double e = tf_diffusion_eps_of (prediction, a, b, x[v],
                                                    eps[(size_t) r * ev->values + v]);
              const double d = e - noise[v];
              sum += d * d;
              counted++;
            }
          mse[k][r] += sum / MAX (1, counted);
        }
    }
  for (int r = 0; r < 3; r++)
    g_free (prefixes[r]);
  return ok;
}

/* Held-out shapes scenes, each after its own caption, the same caption with
 * every object another shape (same words otherwise), and none; the error is
 * measured only where the two scenes' renders differ: where the shape is. */
static gboolean
steering_shapes (Eval *ev, float *x, float *noise, float *eps, GError **error)
{
  const int size = ev->config->image_size, C = ev->config->image_channels;
  g_autofree float *pixels = g_new (float, ev->values), *other = g_new (float, ev->values);
  g_autofree guint8 *mask = g_new (guint8, ev->values);
  TfRng rng;

  tf_rng_seed (&rng, ev->o->settings.seed);
  const int n = 4 * ev->o->samples;
  for (int i = 0; i < n; i++)
    {
      TfShapeScene scene, swapped;
      if (!step (ev, "steering", ev->done, ev->total, error))
        return FALSE;
      tf_shapes_scene_for_index (TF_SPLIT_HELDOUT, i, &scene);
      swapped = scene;
      for (int k = 0; k < scene.n; k++)
        swapped.objects[k].shape = (scene.objects[k].shape + 1
                                    + (int) tf_rng_below (&rng, TF_SHAPES_N_SHAPES - 1))
                                   % TF_SHAPES_N_SHAPES;
      /* The same phrasing for both: the same draws. */
      TfRng phrasing = rng;
      g_autofree char *right = tf_shapes_caption (&scene, &phrasing);
      phrasing = rng;
      g_autofree char *wrong = tf_shapes_caption (&swapped, &phrasing);
      rng = phrasing;
      tf_shapes_render (&scene, size, C, pixels);
      tf_shapes_render (&swapped, size, C, other);
      for (int v = 0; v < ev->values; v++)
        mask[v] = fabsf (pixels[v] - other[v]) > 1e-3f;
      const char *const captions[3] = { right, wrong, "" };
      if (!steering_image (ev, pixels, captions, mask, &rng, x, noise, eps,
                           ev->r->steering_shape_mse, error))
        return FALSE;
      ev->r->steering_shape_n++;
      ev->done++;
    }
  for (int k = 0; k < TF_EVAL_STEERING_LEVELS; k++)
    for (int r = 0; r < 3; r++)
      ev->r->steering_shape_mse[k][r] /= MAX (1, n);
  return TRUE;
}

static gboolean
eval_steering (Eval *ev, GError **error)
{
  g_autoptr (TfDataSource) src = open_source (ev, "fashion", error);
  g_autofree float *x = g_new (float, ev->values), *noise = g_new (float, ev->values);
  g_autofree float *eps = g_new (float, 3 * (size_t) ev->values);
  TfRng rng;

  if (src == NULL)
    return FALSE;
  tf_rng_seed (&rng, ev->o->settings.seed);
  for (int k = 0; k < TF_EVAL_STEERING_LEVELS; k++)
    ev->r->steering_t[k] = ev->config->diffusion_steps * (3 + 2 * k) / 10;
  const int64_t size = tf_data_source_size (src);
  const int n = (int) MIN (4 * ev->o->samples, size);
  /* Fashion, then shapes on a model of colour images (the shapes are colour) */
  const gboolean shapes = ev->config->image_channels == 3;
  const int total = n + (shapes ? 4 * ev->o->samples : 0);
  for (int i = 0; i < n; i++)
    {
      TfExample ex = { 0 }, other = { 0 };
      const int64_t index = (int64_t) i * size / n;   /* spread over t10k */
      gboolean ok = step (ev, "steering", i, total, error)
                    && tf_data_source_get (src, index, &rng, &ex, error)
                    && get_other_class (src, index, ex.label, &rng, &other, error);
      if (ok)
        {
          const char *const captions[3] = { ex.caption, other.caption, "" };
          ok = steering_image (ev, ex.pixels, captions, NULL, &rng, x, noise, eps,
                               ev->r->steering_mse, error);
        }
      tf_example_clear (&ex);
      tf_example_clear (&other);
      if (!ok)
        return FALSE;
      ev->r->steering_n++;
    }
  for (int k = 0; k < TF_EVAL_STEERING_LEVELS; k++)
    for (int r = 0; r < 3; r++)
      ev->r->steering_mse[k][r] /= n;
  ev->done = n;
  ev->total = total;
  return !shapes || steering_shapes (ev, x, noise, eps, error);
}

static gboolean
eval_run (TfGenerator *gen, TfJudge *judge, const TfEvalOptions *options,
          TfEvalReport *report, GError **error)
{
  Eval ev = { gen, judge, options, tf_model_config (tf_generator_model (gen)), 0, report,
              section_names[0], 0, 0 };
  g_autoptr (GTimer) timer = g_timer_new ();
  static gboolean (*const run[]) (Eval *, GError **) = {
    eval_fashion, eval_caption, eval_shapes, eval_emoji, eval_text, eval_steering,
  };

  memset (report, 0, sizeof *report);
  ev.values = tf_config_image_values (ev.config);
  if (!tf_generate_settings_validate (&options->settings, error))
    return FALSE;
  if (options->samples < 1)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "samples %d is out of range (at least 1)",
                   options->samples);
      return FALSE;
    }
  if ((options->sections & TF_EVAL_FASHION) && judge == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "the fashion section needs a judge");
      return FALSE;
    }
  for (guint k = 0; k < G_N_ELEMENTS (run); k++)
    if (options->sections & (1u << k))
      {
        if (!run[k] (&ev, error))
          {
            if (error != NULL && g_error_matches (*error, TF_ERROR, TF_ERROR_ABORTED))
              g_prefix_error (error, "%s, %d of %d done: ", ev.section, ev.done, ev.total);
            return FALSE;
          }
        report->sections |= 1u << k;
      }
  report->seconds = g_timer_elapsed (timer, NULL);
  report->products = tf_generator_backend (gen);
  report->sampler = options->settings.sampler;
  report->steps = options->settings.steps;
  report->cfg = options->settings.cfg;
  report->sweep_best = -1;
  return TRUE;
}

/* The text section's forward passes run on the generator's backend too. */
gboolean
tf_eval_run (TfGenerator *gen, TfJudge *judge, const TfEvalOptions *options,
             TfEvalReport *report, GError **error)
{
  const TfGemmBackend caller = tf_gemm_use (tf_generator_backend (gen));
  const gboolean ok = eval_run (gen, judge, options, report, error);
  tf_gemm_use (caller);
  return ok;
}

/* ---- Choosing the image settings -------------------------------------- */

void
tf_eval_sweep_candidate (int k, TfGenerateSettings *settings)
{
  static const double cfgs[] = { 2.0, 3.0, 5.0 };
  g_return_if_fail (k >= 0 && k < TF_EVAL_SWEEP_CANDIDATES);
  /* fewer steps first, so that of equals the cheaper is kept */
  settings->steps = k < TF_EVAL_SWEEP_CANDIDATES / 2 ? 25 : 50;
  settings->sampler = (k / 3) % 2 == 0 ? TF_SAMPLER_DDIM : TF_SAMPLER_DDPM;
  settings->cfg = cfgs[k % 3];
}

double
tf_eval_image_score (const TfEvalReport *r)
{
  double sum = 0;
  int n = 0;
  if (r->sections & TF_EVAL_FASHION)
    {
      sum += 100.0 * (r->fashion_right[0] + r->fashion_right[1]) /
             MAX (1, r->fashion_n[0] + r->fashion_n[1]);
      n++;
    }
  if (r->sections & TF_EVAL_SHAPES)
    {
      sum += 50.0 * (r->shapes_colour + r->shapes_shape) / MAX (1, r->shapes_objects);
      n++;
    }
  if (r->sections & TF_EVAL_EMOJI)
    {
      sum += 100.0 * r->emoji_top5 / MAX (1, r->emoji_n);
      n++;
    }
  return n > 0 ? sum / n : -1.0;
}

gboolean
tf_eval_sweep (TfGenerator *gen, TfJudge *judge, const TfEvalOptions *options,
               TfEvalReport *report, GError **error)
{
  const guint images = TF_EVAL_FASHION | TF_EVAL_SHAPES | TF_EVAL_EMOJI;
  double scores[TF_EVAL_SWEEP_CANDIDATES];
  int best = 0;

  memset (report, 0, sizeof *report);
  if ((options->sections & images) == 0)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                   "a sweep measures images: name fashion, shapes or emoji among the sections");
      return FALSE;
    }
  for (int k = 0; k < TF_EVAL_SWEEP_CANDIDATES; k++)
    {
      TfEvalOptions o = *options;
      TfEvalReport r;
      o.sections = options->sections & images;
      tf_eval_sweep_candidate (k, &o.settings);
      if (options->progress != NULL)
        options->progress ("sweep", k, TF_EVAL_SWEEP_CANDIDATES, options->user_data);
      const gboolean ok = tf_eval_run (gen, judge, &o, &r, error);
      scores[k] = ok ? tf_eval_image_score (&r) : 0;
      tf_eval_report_clear (&r);
      if (!ok)
        {
          g_prefix_error (error, "sweep, candidate %d of %d: ", k + 1, TF_EVAL_SWEEP_CANDIDATES);
          return FALSE;
        }
      if (scores[k] > scores[best])
        best = k;
    }
  TfEvalOptions o = *options;
  tf_eval_sweep_candidate (best, &o.settings);
  if (!tf_eval_run (gen, judge, &o, report, error))
    return FALSE;
  report->sweep_n = TF_EVAL_SWEEP_CANDIDATES;
  memcpy (report->sweep_score, scores, sizeof scores);
  report->sweep_best = best;
  return TRUE;
}

/* ---- JSON --------------------------------------------------------------- */

static double
percent (int part, int whole)
{
  return whole > 0 ? 100.0 * part / whole : 0.0;
}

static void
add_measure (JsonBuilder *b, const char *name, double value, double target)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "percent");
  json_builder_add_double_value (b, value);
  if (target >= 0)
    {
      json_builder_set_member_name (b, "target");
      json_builder_add_double_value (b, target);
      json_builder_set_member_name (b, "met");
      json_builder_add_boolean_value (b, value >= target);
    }
  json_builder_end_object (b);
}

static void
add_int (JsonBuilder *b, const char *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

static void
add_double (JsonBuilder *b, const char *name, double value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_double_value (b, value);
}

static void
add_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

char *
tf_eval_report_to_json (const TfEvalReport *r)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  add_double (b, "seconds", r->seconds);
  add_string (b, "products", tf_gemm_backend_name (r->products));
  if (r->sections & TF_EVAL_FASHION)
    {
      json_builder_set_member_name (b, "fashion");
      json_builder_begin_object (b);
      add_measure (b, "seen_phrasings", percent (r->fashion_right[0], r->fashion_n[0]),
                   TF_EVAL_TARGET_FASHION);
      add_measure (b, "unseen_phrasings", percent (r->fashion_right[1], r->fashion_n[1]),
                   TF_EVAL_TARGET_FASHION);
      add_measure (b, "all", percent (r->fashion_right[0] + r->fashion_right[1],
                                      r->fashion_n[0] + r->fashion_n[1]), TF_EVAL_TARGET_FASHION);
      add_int (b, "images", r->fashion_n[0] + r->fashion_n[1]);
      add_measure (b, "judge_on_real_t10k", percent (r->judge_real_right, r->judge_real_n), -1);
      add_int (b, "real_images", r->judge_real_n);
      add_double (b, "frechet_generated", r->frechet_generated);
      add_double (b, "saturated_percent", r->saturated_generated);
      add_double (b, "saturated_real_percent", r->saturated_real);
      add_double (b, "seam_ratio", r->seam_generated);
      add_double (b, "seam_ratio_real", r->seam_real);
      add_double (b, "frechet_real_floor", r->frechet_floor);
      add_int (b, "frechet_set_size", r->frechet_n);
      json_builder_set_member_name (b, "classes");
      json_builder_begin_array (b);
      for (int c = 0; c < TF_EVAL_FASHION_CLASSES; c++)
        json_builder_add_string_value (b, r->fashion_class[c] != NULL ? r->fashion_class[c] : "");
      json_builder_end_array (b);
      json_builder_set_member_name (b, "judged_as");   /* [asked class][judged class] */
      json_builder_begin_array (b);
      for (int c = 0; c < TF_EVAL_FASHION_CLASSES; c++)
        {
          json_builder_begin_array (b);
          for (int j = 0; j < TF_EVAL_FASHION_CLASSES; j++)
            json_builder_add_int_value (b, r->fashion_judged[c][j]);
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  if (r->sections & TF_EVAL_CAPTION)
    {
      json_builder_set_member_name (b, "caption");
      json_builder_begin_object (b);
      add_measure (b, "exact_class", percent (r->caption_exact, r->caption_n),
                   TF_EVAL_TARGET_CAPTION);
      add_int (b, "images", r->caption_n);
      add_measure (b, "exact_class_4x", percent (r->caption_exact_large, r->caption_n), -1);
      json_builder_set_member_name (b, "example");
      json_builder_add_string_value (b, r->caption_example[0] != NULL ? r->caption_example[0] : "");
      json_builder_set_member_name (b, "example_class");
      json_builder_add_string_value (b, r->caption_example[1] != NULL ? r->caption_example[1] : "");
      json_builder_end_object (b);
    }
  if (r->sections & TF_EVAL_SHAPES)
    {
      json_builder_set_member_name (b, "shapes");
      json_builder_begin_object (b);
      add_measure (b, "colour", percent (r->shapes_colour, r->shapes_objects),
                   TF_EVAL_TARGET_SHAPES_COLOUR);
      add_measure (b, "shape", percent (r->shapes_shape, r->shapes_objects),
                   TF_EVAL_TARGET_SHAPES_SHAPE);
      add_measure (b, "count", percent (r->shapes_count, r->shapes_scenes),
                   TF_EVAL_TARGET_SHAPES_COUNT);
      add_measure (b, "position", percent (r->shapes_position, r->shapes_objects),
                   TF_EVAL_TARGET_SHAPES_POSITION);
      add_measure (b, "real_colour", percent (r->shapes_real_colour, r->shapes_objects), -1);
      add_measure (b, "real_shape", percent (r->shapes_real_shape, r->shapes_objects), -1);
      add_measure (b, "real_count", percent (r->shapes_real_count, r->shapes_scenes), -1);
      add_measure (b, "real_position", percent (r->shapes_real_position, r->shapes_objects), -1);
      add_int (b, "scenes", r->shapes_scenes);
      add_int (b, "objects", r->shapes_objects);
      /* the shape by the size asked: {"small": {"percent", "real_percent",
       * "objects"}, "large": …} */
      json_builder_set_member_name (b, "shape_by_size");
      json_builder_begin_object (b);
      for (int z = 0; z < TF_SHAPES_N_SIZES; z++)
        {
          json_builder_set_member_name (b, tf_shapes_size_name (z));
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "percent");
          json_builder_add_double_value (b, percent (r->shapes_size_shape[z],
                                                     r->shapes_size_objects[z]));
          json_builder_set_member_name (b, "real_percent");
          json_builder_add_double_value (b, percent (r->shapes_size_real_shape[z],
                                                     r->shapes_size_objects[z]));
          add_int (b, "objects", r->shapes_size_objects[z]);
          json_builder_end_object (b);
        }
      json_builder_end_object (b);
      json_builder_set_member_name (b, "other_wordings");
      json_builder_begin_object (b);
      add_measure (b, "one_object", percent (r->shapes_other_one, r->shapes_other_n), -1);
      add_measure (b, "colour", percent (r->shapes_other_colour, r->shapes_other_n),
                   TF_EVAL_TARGET_SHAPES_COLOUR);
      add_measure (b, "shape", percent (r->shapes_other_shape, r->shapes_other_n),
                   TF_EVAL_TARGET_SHAPES_SHAPE);
      add_int (b, "prompts", r->shapes_other_n);
      json_builder_end_object (b);
      json_builder_end_object (b);
    }
  if (r->sections & TF_EVAL_EMOJI)
    {
      json_builder_set_member_name (b, "emoji");
      json_builder_begin_object (b);
      add_measure (b, "top1", percent (r->emoji_top1, r->emoji_n), TF_EVAL_TARGET_EMOJI_TOP1);
      add_measure (b, "top5", percent (r->emoji_top5, r->emoji_n), TF_EVAL_TARGET_EMOJI_TOP5);
      add_int (b, "prompts", r->emoji_n);
      add_int (b, "candidates", r->emoji_candidates);
      json_builder_end_object (b);
    }
  if (r->sections & TF_EVAL_TEXT)
    {
      json_builder_set_member_name (b, "text");
      json_builder_begin_object (b);
      const double bytes = MAX (r->text_bytes, 1);
      add_double (b, "model_bits_per_byte", r->text_model_bits / bytes);
      json_builder_set_member_name (b, "xz_bits_per_byte");
      if (r->text_xz_bits >= 0)
        json_builder_add_double_value (b, r->text_xz_bits / bytes);
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "gzip_bits_per_byte");
      if (r->text_gzip_bits >= 0)
        json_builder_add_double_value (b, r->text_gzip_bits / bytes);
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "beats_xz");
      if (r->text_xz_bits >= 0)
        json_builder_add_boolean_value (b, r->text_model_bits < r->text_xz_bits);
      else
        json_builder_add_null_value (b);
      add_int (b, "documents", r->text_documents);
      add_int (b, "bytes", r->text_bytes);
      add_measure (b, "gloss_right", percent (r->gloss_right, r->gloss_n), TF_EVAL_TARGET_GLOSS);
      add_int (b, "gloss_questions", r->gloss_n);
      add_measure (b, "chat_right", percent (r->chat_right, r->chat_n), -1);
      add_int (b, "chat_questions", r->chat_n);
      if (r->chat_example.prompt != NULL)
        {
          json_builder_set_member_name (b, "chat_missed");
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "prompt");
          json_builder_add_string_value (b, r->chat_example.prompt);
          json_builder_set_member_name (b, "answer");
          json_builder_add_string_value (b, r->chat_example.answer);
          json_builder_end_object (b);
        }
      json_builder_set_member_name (b, "answers");
      json_builder_begin_array (b);
      for (guint i = 0; r->answers != NULL && i < r->answers->len; i++)
        {
          const TfEvalAnswer *a = &g_array_index (r->answers, TfEvalAnswer, i);
          json_builder_begin_object (b);
          add_string (b, "prompt", a->prompt);
          add_string (b, "answer", a->answer);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
    }
  if (r->sections & TF_EVAL_STEERING)
    {
      static const char *const names[3] = { "right_caption", "other_class_caption", "no_caption" };
      json_builder_set_member_name (b, "steering");
      json_builder_begin_object (b);
      add_int (b, "images", r->steering_n);
      json_builder_set_member_name (b, "t");
      json_builder_begin_array (b);
      for (int k = 0; k < TF_EVAL_STEERING_LEVELS; k++)
        json_builder_add_int_value (b, r->steering_t[k]);
      json_builder_end_array (b);
      for (int c = 0; c < 3; c++)   /* mean squared ε error per level */
        {
          json_builder_set_member_name (b, names[c]);
          json_builder_begin_array (b);
          for (int k = 0; k < TF_EVAL_STEERING_LEVELS; k++)
            json_builder_add_double_value (b, r->steering_mse[k][c]);
          json_builder_end_array (b);
        }
      if (r->steering_shape_n > 0)
        {
          static const char *const shape_names[3] = { "right_caption", "other_shape_caption",
                                                      "no_caption" };
          json_builder_set_member_name (b, "shapes");
          json_builder_begin_object (b);
          add_int (b, "scenes", r->steering_shape_n);
          for (int c = 0; c < 3; c++)   /* where the shapes differ */
            {
              json_builder_set_member_name (b, shape_names[c]);
              json_builder_begin_array (b);
              for (int k = 0; k < TF_EVAL_STEERING_LEVELS; k++)
                json_builder_add_double_value (b, r->steering_shape_mse[k][c]);
              json_builder_end_array (b);
            }
          json_builder_end_object (b);
        }
      json_builder_end_object (b);
    }
  if (r->drawn != NULL)
    {
      json_builder_set_member_name (b, "drawn");
      json_builder_begin_array (b);
      for (guint i = 0; i < r->drawn->len; i++)
        {
          const TfEvalDrawn *d = &g_array_index (r->drawn, TfEvalDrawn, i);
          json_builder_begin_object (b);
          add_string (b, "section", d->section);
          add_string (b, "prompt", d->prompt);
          if (d->label >= 0)
            {
              json_builder_set_member_name (b, "label");
              json_builder_add_int_value (b, d->label);
            }
          json_builder_set_member_name (b, "right");
          json_builder_add_boolean_value (b, d->right);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
    }
  TfGenerateSettings used;
  tf_generate_settings_init (&used);
  used.sampler = r->sampler;
  used.steps = r->steps;
  used.cfg = r->cfg;
  g_autofree char *sampling = tf_generate_settings_sampling_to_json (&used);
  json_builder_set_member_name (b, "sampling");
  json_builder_add_value (b, json_from_string (sampling, NULL));
  if (r->sweep_n > 0)
    {
      json_builder_set_member_name (b, "sweep");
      json_builder_begin_array (b);
      for (int k = 0; k < r->sweep_n; k++)
        {
          tf_eval_sweep_candidate (k, &used);
          json_builder_begin_object (b);
          add_string (b, "sampler", tf_sampler_name (used.sampler));
          add_int (b, "steps", used.steps);
          add_double (b, "cfg", used.cfg);
          add_double (b, "score", r->sweep_score[k]);
          json_builder_set_member_name (b, "chosen");
          json_builder_add_boolean_value (b, k == r->sweep_best);
          json_builder_end_object (b);
        }
      json_builder_end_array (b);
    }
  g_auto (GStrv) examples = tf_eval_pick_examples (r, 8);
  json_builder_set_member_name (b, "examples");
  json_builder_begin_array (b);
  for (guint i = 0; examples[i] != NULL; i++)
    json_builder_add_string_value (b, examples[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);
  return tf_json_builder_to_string (b);
}

/* ---- Examples ----------------------------------------------------------- */

/* Whether @text's first word (up to a space) is one of @words, in any case. */
static gboolean
first_word_is_one_of (const char *text, const char *const *words, guint n_words)
{
  const char *end = strchr (text, ' ');
  const size_t len = end != NULL ? (size_t) (end - text) : strlen (text);
  for (guint i = 0; i < n_words; i++)
    if (strlen (words[i]) == len && g_ascii_strncasecmp (text, words[i], len) == 0)
      return TRUE;
  return FALSE;
}

/* A prompt that reads as a sentence about a picture ("here is the dress",
 * "this is a coat") rather than as its description ("a dress", "grey
 * trousers"): it begins with a pointing word. */
static gboolean
reads_as_sentence (const char *prompt)
{
  static const char *const openers[] = { "here", "there", "this", "that", "these", "those",
                                         "it", "it's", "here's", "there's" };
  return first_word_is_one_of (prompt, openers, G_N_ELEMENTS (openers));
}

/* "a drawing of ankle boot": training's captions put bare class names in
 * their templates, which reads as broken English on a button. After "of"
 * a suggestion wants an article, a number or a plural. */
static gboolean
lacks_article (const char *prompt)
{
  static const char *const determiners[] = { "a", "an", "the", "one", "two", "three", "some" };
  const char *of = strstr (prompt, " of ");
  if (of == NULL)
    return FALSE;
  const char *rest = of + 4;
  if (first_word_is_one_of (rest, determiners, G_N_ELEMENTS (determiners)))
    return FALSE;
  /* the noun phrase's last word: up to a comma or the end */
  size_t end = strcspn (rest, ",");
  while (end > 0 && rest[end - 1] == ' ')
    end--;
  return end == 0 || g_ascii_tolower (rest[end - 1]) != 's';
}

/* How a prompt reads on a button: a description (0), a sentence about a
 * picture (1), a description missing its article (2). */
static int
prompt_rank (const char *prompt)
{
  if (lacks_article (prompt))
    return 2;
  return reads_as_sentence (prompt) ? 1 : 0;
}

/* Descriptions before sentences before broken English, then shorter
 * prompts (they fit a button), then the order drawn. */
static int
compare_prompts (gconstpointer a, gconstpointer b)
{
  const TfEvalDrawn *x = *(TfEvalDrawn *const *) a, *y = *(TfEvalDrawn *const *) b;
  const int rx = prompt_rank (x->prompt), ry = prompt_rank (y->prompt);
  if (rx != ry)
    return rx > ry ? 1 : -1;
  const size_t lx = g_utf8_strlen (x->prompt, -1), ly = g_utf8_strlen (y->prompt, -1);
  if (lx != ly)
    return lx < ly ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* The classes right at least half the time, best first. */
static int
compare_classes (gconstpointer a, gconstpointer b, gpointer data)
{
  const double *rate = data;
  const int x = *(const int *) a, y = *(const int *) b;
  if (rate[x] != rate[y])
    return rate[x] > rate[y] ? -1 : 1;
  return x - y;
}

char **
tf_eval_pick_examples (const TfEvalReport *r, int n)
{
  g_autoptr (GPtrArray) picked = g_ptr_array_new ();
  g_autoptr (GHashTable) taken = g_hash_table_new (g_str_hash, g_str_equal);
  /* The right images of each section, shortest prompt first. */
  static const char *const sections[] = { "fashion", "shapes", "emoji" };
  GPtrArray *right[3] = { g_ptr_array_new (), g_ptr_array_new (), g_ptr_array_new () };
  double rate[TF_EVAL_FASHION_CLASSES] = { 0 };
  /* Images asked and right by class: [0] Fashion's classes, [1] the shapes */
  enum { N_LABELS = MAX (TF_EVAL_FASHION_CLASSES, TF_SHAPES_N_SHAPES) };
  int asked[2][N_LABELS] = { { 0 } }, got[2][N_LABELS] = { { 0 } };

  for (guint i = 0; r->drawn != NULL && i < r->drawn->len; i++)
    {
      TfEvalDrawn *d = &g_array_index (r->drawn, TfEvalDrawn, i);
      for (int s = 0; s < 3; s++)
        if (strcmp (d->section, sections[s]) == 0)
          {
            const int limit = s == 0 ? TF_EVAL_FASHION_CLASSES : TF_SHAPES_N_SHAPES;
            if (s < 2 && d->label >= 0 && d->label < limit)
              {
                asked[s][d->label]++;
                got[s][d->label] += d->right;
              }
            if (d->right)
              g_ptr_array_add (right[s], d);
          }
    }
  for (int s = 0; s < 3; s++)
    g_ptr_array_sort (right[s], compare_prompts);

  /* Fashion: one prompt per class the model draws right at least half the
   * time, the best classes first. */
  int classes[TF_EVAL_FASHION_CLASSES], n_classes = 0;
  for (int c = 0; c < TF_EVAL_FASHION_CLASSES; c++)
    {
      rate[c] = asked[0][c] > 0 ? (double) got[0][c] / asked[0][c] : 0;
      if (asked[0][c] > 0 && 2 * got[0][c] >= asked[0][c])
        classes[n_classes++] = c;
    }
  g_qsort_with_data (classes, n_classes, sizeof (int), compare_classes, rate);
  GPtrArray *fashion = g_ptr_array_new ();
  for (int k = 0; k < n_classes; k++)
    for (guint i = 0; i < right[0]->len; i++)
      {
        TfEvalDrawn *d = g_ptr_array_index (right[0], i);
        if (d->label == classes[k])
          {
            g_ptr_array_add (fashion, d);
            break;
          }
      }
  g_ptr_array_unref (right[0]);
  right[0] = fashion;

  /* Shapes: the scenes of one shape that the model draws right at least half
   * the time (a scene right once, of a shape right one time in six, would
   * mostly disappoint whoever tries it), counting the single shapes asked in
   * other words as well: a few scenes of a shape are too few to tell. */
  GPtrArray *shapes = g_ptr_array_new ();
  for (guint i = 0; i < right[1]->len; i++)
    {
      TfEvalDrawn *d = g_ptr_array_index (right[1], i);
      if (d->label >= 0 && d->label < TF_SHAPES_N_SHAPES
          && 2 * got[1][d->label] >= asked[1][d->label])
        g_ptr_array_add (shapes, d);
    }
  g_ptr_array_unref (right[1]);
  right[1] = shapes;

  /* In turns: fashion, shapes, emoji, fashion… */
  guint next[3] = { 0, 0, 0 };
  gboolean more = TRUE;
  while ((int) picked->len < n && more)
    {
      more = FALSE;
      for (int s = 0; s < 3 && (int) picked->len < n; s++)
        while (next[s] < right[s]->len)
          {
            TfEvalDrawn *d = g_ptr_array_index (right[s], next[s]++);
            more = TRUE;
            if (g_hash_table_add (taken, d->prompt))
              {
                g_ptr_array_add (picked, g_strdup (d->prompt));
                break;
              }
          }
    }
  for (int s = 0; s < 3; s++)
    g_ptr_array_unref (right[s]);
  g_ptr_array_add (picked, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&picked), FALSE);
}
