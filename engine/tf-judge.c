/* tf-judge.c: the Fashion-MNIST judge of evaluation (see tf-judge.h). */
#include "tf-judge.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

#include "tf-config.h"
#include "tf-json.h"
#include "tf-layers.h"
#include "tf-rng.h"
#include "tf-safetensors.h"

#define JUDGE_FORMAT "transfusion-judge"

#define REAL float
#define FN(name) name
#define LAYER(name) name
#include "tf-judge-impl.h"
#undef REAL
#undef FN
#undef LAYER

#define REAL double
#define FN(name) name##_f64
#define LAYER(name) name##_f64
#include "tf-judge-impl.h"
#undef REAL
#undef FN
#undef LAYER

struct _TfJudge {
  TfJudgeDims dims;
  float      *params;
  char       *provenance;
};

static const char *const tensor_names[] = {
  "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias",
};

/* Shapes of the six tensors, in buffer order. */
static void
tensor_shapes (const TfJudgeDims *dims, int64_t shapes[6][2], int n_dims[6])
{
  const int64_t in = (int64_t) dims->size * dims->size;
  const int64_t outs[3] = { dims->hidden, dims->features, dims->classes };
  const int64_t ins[3] = { in, dims->hidden, dims->features };
  for (int l = 0; l < 3; l++)
    {
      shapes[2 * l][0] = outs[l], shapes[2 * l][1] = ins[l], n_dims[2 * l] = 2;
      shapes[2 * l + 1][0] = outs[l], shapes[2 * l + 1][1] = 0, n_dims[2 * l + 1] = 1;
    }
}

size_t
tf_judge_n_params (const TfJudgeDims *dims)
{
  const size_t in = (size_t) dims->size * dims->size;
  return (size_t) dims->hidden * (in + 1) + (size_t) dims->features * (dims->hidden + 1) +
         (size_t) dims->classes * (dims->features + 1);
}

size_t
tf_judge_n_activations (const TfJudgeDims *dims, int n)
{
  return (size_t) n * (2 * (size_t) dims->hidden + 2 * (size_t) dims->features + dims->classes);
}

void
tf_judge_dims_default (TfJudgeDims *dims, int size)
{
  dims->size = size;
  dims->hidden = 256;
  dims->features = 64;
  dims->classes = 10;
}

TfJudge *
tf_judge_new (const TfJudgeDims *dims, uint64_t seed)
{
  TfJudge *judge = g_new0 (TfJudge, 1);
  int64_t shapes[6][2];
  int n_dims[6];
  TfRng rng;

  judge->dims = *dims;
  judge->params = g_new0 (float, tf_judge_n_params (dims));
  tensor_shapes (dims, shapes, n_dims);
  tf_rng_seed (&rng, seed);
  /* Weights normal with variance 1/fan_in, biases 0. */
  float *p = judge->params;
  for (int t = 0; t < 6; t++)
    {
      size_t n = (size_t) shapes[t][0] * (n_dims[t] == 2 ? (size_t) shapes[t][1] : 1);
      if (n_dims[t] == 2)
        for (size_t k = 0; k < n; k++)
          p[k] = (float) (tf_rng_normal (&rng) / sqrt ((double) shapes[t][1]));
      p += n;
    }
  return judge;
}

void
tf_judge_free (TfJudge *judge)
{
  if (judge == NULL)
    return;
  g_free (judge->params);
  g_free (judge->provenance);
  g_free (judge);
}

const TfJudgeDims *
tf_judge_dims (const TfJudge *judge)
{
  return &judge->dims;
}

float *
tf_judge_params (TfJudge *judge)
{
  return judge->params;
}

const char *
tf_judge_provenance (const TfJudge *judge)
{
  return judge->provenance;
}

/* ---- Files -------------------------------------------------------------- */

gboolean
tf_judge_save (TfJudge *judge, const char *path, const char *provenance, GError **error)
{
  const TfJudgeDims *d = &judge->dims;
  int64_t shapes[6][2];
  int n_dims[6];
  TfTensorOut tensors[6];
  const float *p = judge->params;

  tensor_shapes (d, shapes, n_dims);
  for (int t = 0; t < 6; t++)
    {
      memset (&tensors[t], 0, sizeof tensors[t]);
      tensors[t].name = tensor_names[t];
      tensors[t].dtype = TF_DTYPE_F16;
      tensors[t].n_dims = n_dims[t];
      tensors[t].shape[0] = shapes[t][0];
      tensors[t].shape[1] = shapes[t][1];
      tensors[t].data = p;
      p += shapes[t][0] * (n_dims[t] == 2 ? shapes[t][1] : 1);
    }
  g_autofree char *dims = g_strdup_printf ("{\"size\":%d,\"hidden\":%d,\"features\":%d,"
                                           "\"classes\":%d}", d->size, d->hidden, d->features,
                                           d->classes);
  const char *keys[] = { "format", "dims", "provenance" };
  const char *values[] = { JUDGE_FORMAT, dims, provenance };
  return tf_safetensors_write (path, tensors, 6, keys, values, provenance != NULL ? 3 : 2,
                               error);
}

static gboolean
read_dim (JsonObject *object, const char *key, int *out, const char *path, GError **error)
{
  if (!json_object_has_member (object, key))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: metadata 'dims' has no '%s'", path,
                   key);
      return FALSE;
    }
  JsonNode *node = json_object_get_member (object, key);
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: metadata 'dims': '%s' is not a whole number", path, key);
      return FALSE;
    }
  gint64 v = json_node_get_int (node);
  if (v < 1 || v > 4096)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: metadata 'dims': '%s' is %" G_GINT64_FORMAT " (expected 1 to 4096)",
                   path, key, v);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

TfJudge *
tf_judge_load (const char *path, GError **error)
{
  g_autoptr (TfSafetensors) st = tf_safetensors_open (path, error);
  return st != NULL ? tf_judge_load_from (st, path, error) : NULL;
}

TfJudge *
tf_judge_load_from (TfSafetensors *st, const char *path, GError **error)
{
  const char *format = tf_safetensors_metadata (st, "format");
  const char *dims_json = tf_safetensors_metadata (st, "dims");
  if (g_strcmp0 (format, JUDGE_FORMAT) != 0 || dims_json == NULL)
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                   "%s: not a judge file (expected metadata format '%s' and 'dims')", path,
                   JUDGE_FORMAT);
      return NULL;
    }
  g_autoptr (JsonParser) parser = json_parser_new ();
  if (!tf_json_parse (parser, dims_json, -1, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, TF_ERROR, TF_ERROR_FORMAT, "%s: metadata 'dims' is not a JSON object",
                   path);
      return NULL;
    }
  JsonObject *object = json_node_get_object (json_parser_get_root (parser));
  TfJudgeDims dims;
  if (!read_dim (object, "size", &dims.size, path, error)
      || !read_dim (object, "hidden", &dims.hidden, path, error)
      || !read_dim (object, "features", &dims.features, path, error)
      || !read_dim (object, "classes", &dims.classes, path, error))
    return NULL;

  /* Every tensor is checked before the parameters are allocated: the file
   * then holds at least two bytes for each, whatever 'dims' claims. */
  int64_t shapes[6][2];
  int n_dims[6];
  const TfTensorInfo *infos[6];
  tensor_shapes (&dims, shapes, n_dims);
  for (int t = 0; t < 6; t++)
    {
      const TfTensorInfo *info = infos[t] = tf_safetensors_find (st, tensor_names[t]);
      if (info == NULL || info->n_dims != n_dims[t] || info->shape[0] != shapes[t][0]
          || (n_dims[t] == 2 && info->shape[1] != shapes[t][1]))
        {
          g_autofree char *shape = n_dims[t] == 2
            ? g_strdup_printf ("[%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", shapes[t][0],
                               shapes[t][1])
            : g_strdup_printf ("[%" G_GINT64_FORMAT "]", shapes[t][0]);
          g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                       "%s: tensor '%s' is missing or not of shape %s", path, tensor_names[t],
                       shape);
          return NULL;
        }
    }
  g_autoptr (TfJudge) judge = tf_judge_new (&dims, 0);
  float *p = judge->params;
  for (int t = 0; t < 6; t++)
    {
      const size_t n = (size_t) infos[t]->n_elements;
      if (!tf_safetensors_read_f32 (st, infos[t], p, n, error))
        return NULL;
      for (size_t k = 0; k < n; k++)
        if (!isfinite (p[k]))
          {
            g_set_error (error, TF_ERROR, TF_ERROR_FORMAT,
                         "%s: tensor '%s' holds a value that is not finite (element %zu)", path,
                         tensor_names[t], k);
            return NULL;
          }
      p += n;
    }
  const char *provenance = tf_safetensors_metadata (st, "provenance");
  judge->provenance = g_strdup (provenance);
  return g_steal_pointer (&judge);
}

/* ---- Running ------------------------------------------------------------ */

void
tf_judge_classify (TfJudge *judge, const float *pixels, int n, int channels, float *features,
                   int *predicted)
{
  const TfJudgeDims *d = &judge->dims;
  const int in = d->size * d->size;
  const int chunk = 256;
  g_autofree float *input = g_new (float, (size_t) chunk * in);
  g_autofree float *acts = g_new (float, tf_judge_n_activations (d, chunk));

  for (int r0 = 0; r0 < n; r0 += chunk)
    {
      int m = MIN (chunk, n - r0);
      for (int r = 0; r < m; r++)
        for (int k = 0; k < in; k++)
          {
            const float *px = pixels + ((size_t) (r0 + r) * in + k) * channels;
            float sum = 0;
            for (int c = 0; c < channels; c++)
              sum += px[c];
            input[(size_t) r * in + k] = sum / channels;
          }
      tf_judge_forward (d, judge->params, input, m, acts);
      const float *f = tf_judge_acts_features (d, acts, m);
      const float *z = tf_judge_acts_logits (d, acts, m);
      if (features != NULL)
        memcpy (features + (size_t) r0 * d->features, f, sizeof (float) * (size_t) m * d->features);
      if (predicted != NULL)
        for (int r = 0; r < m; r++)
          {
            const float *row = z + (size_t) r * d->classes;
            int best = 0;
            for (int c = 1; c < d->classes; c++)
              if (row[c] > row[best])
                best = c;
            predicted[r0 + r] = best;
          }
    }
}

/* ---- Training ----------------------------------------------------------- */

void
tf_judge_train_options_init (TfJudgeTrainOptions *options)
{
  options->epochs = 8;
  options->batch = 64;
  options->lr = 2e-3;
  options->seed = 1;
  options->max_examples = 0;
  options->validation = 5000;
}

/* Every example of @source (the first @max when > 0) as grey bytes. */
static gboolean
load_examples (TfDataSource *source, int size, int max, guint8 **images, int32_t **labels,
               int *n_out, GError **error)
{
  int64_t n = tf_data_source_size (source);
  const int in = size * size;
  TfRng rng;

  if (max > 0 && max < n)
    n = max;
  tf_rng_seed (&rng, 0);
  *images = g_new (guint8, (size_t) n * in);
  *labels = g_new (int32_t, n);
  for (int64_t i = 0; i < n; i++)
    {
      TfExample ex;
      if (!tf_data_source_get (source, i, &rng, &ex, error))
        return FALSE;
      if (ex.kind != TF_EXAMPLE_IMAGE || ex.size != size || ex.label < 0)
        {
          g_set_error (error, TF_ERROR, TF_ERROR_INPUT,
                       "%s: example %" G_GINT64_FORMAT " is not a labelled %d×%d image",
                       tf_data_source_name (source), i, size, size);
          tf_example_clear (&ex);
          return FALSE;
        }
      for (int k = 0; k < in; k++)
        {
          float sum = 0;
          for (int c = 0; c < ex.channels; c++)
            sum += ex.pixels[(size_t) k * ex.channels + c];
          (*images)[(size_t) i * in + k] =
            (guint8) lrintf (CLAMP ((sum / ex.channels + 1.0f) * 127.5f, 0.0f, 255.0f));
        }
      (*labels)[i] = ex.label;
      tf_example_clear (&ex);
    }
  *n_out = (int) n;
  return TRUE;
}

/* Image @src shifted by (dx, dy), the uncovered border black (−1). */
static void
shifted_input (const guint8 *src, int size, int dx, int dy, float *out)
{
  for (int y = 0; y < size; y++)
    for (int x = 0; x < size; x++)
      {
        int sx = x - dx, sy = y - dy;
        out[y * size + x] = sx >= 0 && sx < size && sy >= 0 && sy < size
                            ? src[sy * size + sx] / 127.5f - 1.0f : -1.0f;
      }
}

static double
accuracy_of (TfJudge *judge, const guint8 *images, const int32_t *labels, int n)
{
  const int in = judge->dims.size * judge->dims.size;
  g_autofree float *pixels = g_new (float, (size_t) n * in);
  g_autofree int *predicted = g_new (int, MAX (n, 1));
  int right = 0;

  for (int i = 0; i < n; i++)
    shifted_input (images + (size_t) i * in, judge->dims.size, 0, 0, pixels + (size_t) i * in);
  tf_judge_classify (judge, pixels, n, 1, NULL, predicted);
  for (int i = 0; i < n; i++)
    right += predicted[i] == labels[i];
  return n > 0 ? (double) right / n : 0.0;
}

gboolean
tf_judge_train (TfJudge *judge, TfDataSource *train, const TfJudgeTrainOptions *o,
                void (*progress) (const TfJudgeProgress *p, gpointer user_data),
                gpointer user_data, volatile gint *abort, GError **error)
{
  const TfJudgeDims *d = &judge->dims;
  const int in = d->size * d->size;
  const size_t n_params = tf_judge_n_params (d);
  g_autofree guint8 *images = NULL;
  g_autofree int32_t *labels = NULL;
  int n_all;

  if (!load_examples (train, d->size, o->max_examples, &images, &labels, &n_all, error))
    return FALSE;
  for (int i = 0; i < n_all; i++)
    if (labels[i] >= d->classes)
      {
        g_set_error (error, TF_ERROR, TF_ERROR_INPUT, "%s: example %d has label %d (expected "
                     "0 to %d)", tf_data_source_name (train), i, labels[i], d->classes - 1);
        return FALSE;
      }
  const int n_val = MIN (o->validation, n_all / 5);
  const int n_train = n_all - n_val;
  const int batch = MAX (1, MIN (o->batch, n_train));
  const int64_t steps_per_epoch = (n_train + batch - 1) / batch;
  const int64_t total = steps_per_epoch * o->epochs;

  g_autofree float *grads = g_new (float, n_params);
  g_autofree float *m = g_new0 (float, n_params);
  g_autofree float *v = g_new0 (float, n_params);
  g_autofree float *input = g_new (float, (size_t) batch * in);
  g_autofree float *acts = g_new (float, tf_judge_n_activations (d, batch));
  g_autofree float *scratch = g_new (float, (size_t) batch * (d->hidden + d->features + d->classes));
  g_autofree int32_t *batch_labels = g_new (int32_t, batch);
  g_autofree int *order = g_new (int, n_train);
  g_autoptr (GTimer) timer = g_timer_new ();
  TfRng rng;
  int64_t step = 0;

  tf_rng_seed (&rng, o->seed);
  for (int i = 0; i < n_train; i++)
    order[i] = i;
  for (int epoch = 0; epoch < o->epochs; epoch++)
    {
      double loss_sum = 0;
      for (int i = n_train - 1; i > 0; i--)
        {
          int j = (int) tf_rng_below (&rng, (uint64_t) i + 1);
          int t = order[i];
          order[i] = order[j];
          order[j] = t;
        }
      for (int64_t s = 0; s < steps_per_epoch; s++, step++)
        {
          if (abort != NULL && g_atomic_int_get (abort))
            {
              g_set_error (error, TF_ERROR, TF_ERROR_ABORTED, "stopped at epoch %d", epoch + 1);
              return FALSE;
            }
          int nb = (int) MIN ((int64_t) batch, n_train - s * batch);
          for (int r = 0; r < nb; r++)
            {
              int idx = order[s * batch + r];
              int dx = (int) tf_rng_below (&rng, 3) - 1, dy = (int) tf_rng_below (&rng, 3) - 1;
              shifted_input (images + (size_t) idx * in, d->size, dx, dy, input + (size_t) r * in);
              batch_labels[r] = labels[idx];
            }
          memset (grads, 0, sizeof (float) * n_params);
          tf_judge_forward (d, judge->params, input, nb, acts);
          loss_sum += tf_judge_backward (d, judge->params, input, nb, acts, batch_labels, grads,
                                         scratch);
          /* Adam with bias correction; cosine decay to lr/20. */
          const double lr = o->lr * (0.05 + 0.95 * 0.5 * (1 + cos (G_PI * step / (double) total)));
          const double b1 = 0.9, b2 = 0.999;
          const double c1 = 1 - pow (b1, step + 1), c2 = 1 - pow (b2, step + 1);
          float *p = judge->params;
          for (size_t k = 0; k < n_params; k++)
            {
              m[k] = (float) (b1 * m[k] + (1 - b1) * grads[k]);
              v[k] = (float) (b2 * v[k] + (1 - b2) * (double) grads[k] * grads[k]);
              p[k] -= (float) (lr * (m[k] / c1) / (sqrt (v[k] / c2) + 1e-8));
            }
        }
      if (progress != NULL)
        {
          TfJudgeProgress p = {
            .epoch = epoch + 1,
            .epochs = o->epochs,
            .loss = loss_sum / steps_per_epoch,
            .validation_accuracy = accuracy_of (judge, images + (size_t) n_train * in,
                                                labels + n_train, n_val),
            .seconds = g_timer_elapsed (timer, NULL),
          };
          progress (&p, user_data);
        }
    }
  /* The file keeps F16: the judge in memory is made to be the one it will
   * load, so the accuracy measured now is the committed judge's. */
  for (size_t k = 0; k < n_params; k++)
    judge->params[k] = tf_f16_to_f32 (tf_f32_to_f16 (judge->params[k]));
  return TRUE;
}

gboolean
tf_judge_accuracy (TfJudge *judge, TfDataSource *source, int max, double *accuracy,
                   GError **error)
{
  g_autofree guint8 *images = NULL;
  g_autofree int32_t *labels = NULL;
  int n;

  if (!load_examples (source, judge->dims.size, max, &images, &labels, &n, error))
    return FALSE;
  *accuracy = accuracy_of (judge, images, labels, n);
  return TRUE;
}
