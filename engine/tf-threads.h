/* tf-threads.h: how many threads a piece of work should use.
 *
 * The engine's loops run on OpenMP threads that wait for each other at the
 * end of every loop. When other programs keep the cores busy, a thread the
 * system has not scheduled holds all the others up: measured on two cores
 * with two other busy processes, a denoising step took 50 ms on two threads
 * and 14 ms on one. So before each job (an image, a reply, a training step)
 * the engine asks how busy the machine has been since it last looked and
 * uses as many threads as there are cores left free, at least one.
 *
 * A TfThreads belongs to one object (a generator, a trainer); it reads
 * /proc/stat and the process's own CPU time, so what this process does
 * never counts as "busy". Where /proc/stat cannot be read, every core is
 * used. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  int     limit;          /* at most this many */
  int     last;           /* the last choice */
  gint64  at;             /* when the last sample was taken (monotonic µs), 0: never */
  guint64 total, idle;    /* /proc/stat jiffies of all CPUs at that sample */
  double  self;           /* this process's CPU seconds at that sample */
} TfThreads;

/* Starts watching: takes the first sample. At most @limit threads; 0: as
 * many as OpenMP would start from the calling thread (OMP_NUM_THREADS, or
 * every core). */
void tf_threads_init (TfThreads *threads, int limit);

/* The threads to use now, and sets them for OpenMP loops started from the
 * calling thread. Samples at most every 100 ms; in between, the last choice
 * stands. */
int tf_threads_choose (TfThreads *threads);

/* The rule, for tests: with @n_cpus cores of which @others_busy (in cores)
 * were used by other programs, how many threads (1..limit). */
int tf_threads_rule (int n_cpus, double others_busy, int limit);

G_END_DECLS
