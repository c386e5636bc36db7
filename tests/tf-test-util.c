/* tf-test-util.c: helpers shared by the tests. */
#include "tf-test-util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CLOSE_BODY                                                              \
  size_t bad = 0, worst_i = 0;                                                  \
  double worst_excess = -1.0;                                                   \
  for (size_t i = 0; i < n; i++)                                                \
    {                                                                           \
      double g = got[i], r = ref[i];                                            \
      double err = fabs (g - r), allowed = atol + rtol * fabs (r);              \
      if (!(err <= allowed))                                                    \
        bad++;                                                                  \
      double excess = isfinite (err) ? err / allowed : INFINITY;                \
      if (excess > worst_excess)                                                \
        {                                                                       \
          worst_excess = excess;                                                \
          worst_i = i;                                                          \
        }                                                                       \
    }                                                                           \
  if (worst != NULL)                                                            \
    *worst = n > 0 ? worst_excess : 0.0;                                        \
  if (bad > 0)                                                                  \
    {                                                                           \
      g_printerr ("%s: %zu of %zu elements out of tolerance (atol %g, rtol %g); " \
                  "worst [%zu]: got %.9g, expected %.9g\n", name, bad, n, atol, rtol, \
                  worst_i, (double) got[worst_i], (double) ref[worst_i]);       \
      return FALSE;                                                             \
    }                                                                           \
  return TRUE;

gboolean
tf_test_close_f32 (const char *name, const float *got, const float *ref, size_t n,
                   double atol, double rtol, double *worst)
{
  CLOSE_BODY
}

gboolean
tf_test_close_f64 (const char *name, const double *got, const double *ref, size_t n,
                   double atol, double rtol, double *worst)
{
  CLOSE_BODY
}

char *
tf_test_data_path (const char *first, ...)
{
  const char *srcdir = g_getenv ("G_TEST_SRCDIR");
  va_list args;
  va_start (args, first);
  g_autoptr (GPtrArray) parts = g_ptr_array_new ();
  g_ptr_array_add (parts, (gpointer) (srcdir ? srcdir : "."));
  for (const char *p = first; p != NULL; p = va_arg (args, const char *))
    g_ptr_array_add (parts, (gpointer) p);
  va_end (args);
  g_ptr_array_add (parts, NULL);
  return g_build_filenamev ((char **) parts->pdata);
}

TfConfig
tf_test_tiny_config (int vocab_size)
{
  TfConfig c;
  g_assert_true (tf_config_preset (&c, "tiny", NULL));
  c.vocab_size = vocab_size;
  c.bos_id = vocab_size - 7;
  c.eos_id = vocab_size - 6;
  c.boi_id = vocab_size - 5;
  c.eoi_id = vocab_size - 4;
  c.pad_id = vocab_size - 3;
  c.user_id = vocab_size - 2;
  c.assistant_id = vocab_size - 1;
  return c;
}

char *
tf_test_save_tiny_model (const char *dir, TfConfig *config, guint64 *n_params)
{
  g_autoptr (GError) error = NULL;
  TfConfig c = tf_test_tiny_config (64);
  g_autoptr (TfModel) model = tf_model_new (&c, &error);
  g_assert_no_error (error);
  tf_model_init_random (model, 1);
  char *path = g_build_filename (dir, "tiny.safetensors", NULL);
  g_assert_true (tf_model_save (model, path, TF_DTYPE_F32, NULL, NULL, 0, &error));
  g_assert_no_error (error);
  if (config != NULL)
    *config = c;
  if (n_params != NULL)
    *n_params = tf_model_n_params (model);
  return path;
}
