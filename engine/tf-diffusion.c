/* tf-diffusion.c: prediction targets, loss weights and training noise levels. */
#include "tf-diffusion.h"

void
tf_diffusion_target (TfPrediction prediction, double alpha_bar, const float *x0,
                     const float *eps, int n, float *target)
{
  const double sa = sqrt (alpha_bar), sb = sqrt (1.0 - alpha_bar);
  for (int k = 0; k < n; k++)
    switch (prediction)
      {
      case TF_PREDICTION_V:
        target[k] = (float) (sa * eps[k] - sb * x0[k]);
        break;
      case TF_PREDICTION_X:
        target[k] = x0[k];
        break;
      case TF_PREDICTION_EPS:
      default:
        target[k] = eps[k];
        break;
      }
}

double
tf_diffusion_loss_weight (const TfConfig *c, double alpha_bar)
{
  if (c->min_snr_gamma <= 0.0)
    return 1.0;
  /* ᾱ(T) can be tiny but never 0 or 1 for t ≥ 1 with the cosine schedule. */
  const double snr = alpha_bar / MAX (1.0 - alpha_bar, 1e-300);
  const double clipped = MIN (snr, c->min_snr_gamma);
  switch (c->prediction)
    {
    case TF_PREDICTION_V:
      return clipped / (snr + 1.0);
    case TF_PREDICTION_X:
      return clipped;
    case TF_PREDICTION_EPS:
    default:
      return clipped / MAX (snr, 1e-300);
    }
}

int
tf_diffusion_sample_t (const TfConfig *c, TfRng *rng, int t_lo, int t_hi)
{
  if (c->t_sampling == TF_T_SAMPLING_LOGIT_NORMAL)
    {
      const double u = 1.0 / (1.0 + exp (-(c->t_mean + c->t_scale * tf_rng_normal (rng))));
      const int t = (int) ceil (u * c->diffusion_steps);
      return CLAMP (t, t_lo, t_hi);
    }
  return t_lo + (int) tf_rng_below (rng, (uint64_t) (t_hi - t_lo + 1));
}
