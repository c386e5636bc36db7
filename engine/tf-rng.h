/* tf-rng.h: the engine's one random generator (xoshiro256**, seeded through
 * splitmix64). Its state is four words, so training can save and restore it
 * exactly; the same seed gives the same stream on every build. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct {
  uint64_t s[4];
} TfRng;

void     tf_rng_seed (TfRng *rng, uint64_t seed);
uint64_t tf_rng_next (TfRng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double   tf_rng_uniform (TfRng *rng);
/* Uniform integer in [0, n), without modulo bias. n > 0. */
uint64_t tf_rng_below (TfRng *rng, uint64_t n);
/* Standard normal (Box–Muller; one draw per call, so the stream position is
 * simple to reason about). */
double   tf_rng_normal (TfRng *rng);

G_END_DECLS
