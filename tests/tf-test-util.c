/* tf-test-util.c: helpers shared by the tests. */
#include "tf-test-util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

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
