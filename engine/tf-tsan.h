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
