/* tf-rng.c: xoshiro256** (Blackman & Vigna) with splitmix64 seeding. */
#include "tf-rng.h"

#include <math.h>

static uint64_t
splitmix64 (uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void
tf_rng_seed (TfRng *rng, uint64_t seed)
{
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64 (&x);
}

static inline uint64_t
rotl (uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

uint64_t
tf_rng_next (TfRng *rng)
{
  uint64_t *s = rng->s;
  uint64_t result = rotl (s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

double
tf_rng_uniform (TfRng *rng)
{
  return (double) (tf_rng_next (rng) >> 11) * 0x1.0p-53;
}

uint64_t
tf_rng_below (TfRng *rng, uint64_t n)
{
  /* Rejection sampling: accept only draws below the largest multiple of n. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do
    x = tf_rng_next (rng);
  while (x >= limit);
  return x % n;
}

double
tf_rng_normal (TfRng *rng)
{
  double u1 = 1.0 - tf_rng_uniform (rng);   /* (0, 1]: log is finite */
  double u2 = tf_rng_uniform (rng);
  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}
