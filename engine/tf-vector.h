/* tf-vector.h: TF_VECTOR_CLONES, for the engine's element-wise loops.
 *
 * The loops vectorise; on CPUs with AVX2 a second copy of each function so
 * marked runs eight floats at a time, chosen once at load time. Without
 * fused multiply-adds (C17 contracts nothing) both copies give the same
 * bits. ThreadSanitizer instruments the resolver that chooses, which then
 * runs before it is set up and crashes: one copy there. */
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && \
    !defined(__SANITIZE_THREAD__)
#define TF_VECTOR_CLONES __attribute__ ((target_clones ("arch=x86-64-v3", "default")))
#else
#define TF_VECTOR_CLONES
#endif
