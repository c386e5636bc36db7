/* tf-tsan.h: telling ThreadSanitizer about hand-offs it cannot see.
 *
 * GLib is not built with ThreadSanitizer, so the ordering its mutexes,
 * thread pools and tasks give (a job pushed to a worker, an event queued
 * under a GMutex, a pool joined) is invisible to it, and everything handed
 * over that way looks like a race. Each such hand-off is marked: the giving
 * thread releases an address after its last write, the taking thread
 * acquires the same address before its first read. Outside ThreadSanitizer
 * builds the marks are nothing. */
#pragma once

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire (void *addr);
void __tsan_release (void *addr);
#define TF_TSAN_ACQUIRE(addr) __tsan_acquire ((void *) (addr))
#define TF_TSAN_RELEASE(addr) __tsan_release ((void *) (addr))
#else
#define TF_TSAN_ACQUIRE(addr) ((void) (addr))
#define TF_TSAN_RELEASE(addr) ((void) (addr))
#endif

/* An OpenMP parallel region: libgomp's fork and its closing barrier are
 * just as invisible, and OpenBLAS, called inside the region, is not
 * instrumented either. TF_TSAN_FORK (team) before the region gives the
 * team what the starting thread wrote; TF_TSAN_MEMBER (team) first in the
 * region's body (or in each iteration of a `parallel for`) takes it and,
 * when that scope ends, by `continue` too, gives back what the member
 * wrote; TF_TSAN_JOIN (team) after the region takes every member's work.
 * The mark is a local of the forking call, so two regions running at once
 * in different threads are not ordered by it: a race between them, or
 * between two members of one team, is still reported. */
#if defined(__SANITIZE_THREAD__)
static inline void
tf_tsan_member_leave (char *const *team)
{
  __tsan_release (*team);
}
#define TF_TSAN_FORK(team) \
  char team##_mark;        \
  char *const team = &team##_mark; \
  __tsan_release (team)
#define TF_TSAN_MEMBER(team) \
  __attribute__ ((cleanup (tf_tsan_member_leave))) char *const team##_member = team; \
  __tsan_acquire (team##_member)
#define TF_TSAN_JOIN(team) __tsan_acquire (team)
#else
#define TF_TSAN_FORK(team) ((void) 0)
#define TF_TSAN_MEMBER(team) ((void) 0)
#define TF_TSAN_JOIN(team) ((void) 0)
#endif
