/* tf-threads.c: threads for the machine's free cores (see tf-threads.h). */
#include "tf-threads.h"

#include <math.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int
cpu_count (void)
{
#ifdef _OPENMP
  return omp_get_num_procs ();
#else
  return 1;
#endif
}

/* The aggregate "cpu" line of /proc/stat: all jiffies, and the idle ones
 * (idle + iowait). FALSE when it cannot be read. */
static gboolean
read_proc_stat (guint64 *total, guint64 *idle)
{
  FILE *f = fopen ("/proc/stat", "re");
  if (f == NULL)
    return FALSE;
  guint64 v[10] = { 0 };
  int n = fscanf (f, "cpu %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                  " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                  " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                  &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose (f);
  if (n < 5)
    return FALSE;
  *total = 0;
  for (int i = 0; i < n; i++)
    *total += v[i];
  *idle = v[3] + v[4];
  return TRUE;
}

static double
self_cpu_seconds (void)
{
  struct rusage u;
  if (getrusage (RUSAGE_SELF, &u) != 0)
    return 0;
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int
tf_threads_rule (int n_cpus, double others_busy, int limit)
{
  int max = limit > 0 ? MIN (limit, n_cpus) : n_cpus;
  /* A core counts as taken when others kept it busy more than half the time. */
  int free = n_cpus - (int) floor (others_busy + 0.5);
  return CLAMP (free, 1, MAX (max, 1));
}

static void
set_threads (int n)
{
#ifdef _OPENMP
  omp_set_num_threads (n);
#endif
}

void
tf_threads_init (TfThreads *t, int limit)
{
#ifdef _OPENMP
  /* By default, what OpenMP would use: OMP_NUM_THREADS, or the cores. */
  if (limit <= 0)
    limit = omp_get_max_threads ();
#endif
  t->limit = limit;
  t->last = tf_threads_rule (cpu_count (), 0, limit);
  t->at = 0;
  if (read_proc_stat (&t->total, &t->idle))
    {
      t->at = g_get_monotonic_time ();
      t->self = self_cpu_seconds ();
    }
}

int
tf_threads_choose (TfThreads *t)
{
  const gint64 now = g_get_monotonic_time ();
  guint64 total, idle;
  if (t->at != 0 && now - t->at >= 100000 && read_proc_stat (&total, &idle) &&
      total > t->total)
    {
      const double self = self_cpu_seconds ();
      const int n = cpu_count ();
      const double ticks = (double) sysconf (_SC_CLK_TCK);
      const guint64 d_total = total - t->total;
      const guint64 d_idle = idle > t->idle ? idle - t->idle : 0;
      /* In CPU-seconds: all that was busy, less this process's share;
       * divided by the wall time, in cores. */
      const double busy = (double) (d_total - MIN (d_idle, d_total)) / ticks;
      const double wall = (double) d_total / n / ticks;
      const double others = MAX (0.0, busy - (self - t->self)) / wall;
      t->last = tf_threads_rule (n, others, t->limit);
      t->total = total;
      t->idle = idle;
      t->self = self;
      t->at = now;
    }
  set_threads (t->last);
  return t->last;
}
