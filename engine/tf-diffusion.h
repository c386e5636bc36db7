/* tf-diffusion.h: what the image head predicts and how training weighs and
 * draws noise levels (issue 14), in one place for the model, the trainer, the
 * samplers and eval.
 *
 * At noise level t with a = ᾱ(t), x_t = √a·x0 + √(1−a)·ε. The head predicts
 * ε, v = √a·ε − √(1−a)·x0, or x0 itself (TfConfig.prediction). Whatever it
 * predicts, the samplers turn it into an estimate of x0 here. */
#pragma once

#include <glib.h>
#include <math.h>

#include "tf-config.h"
#include "tf-rng.h"

G_BEGIN_DECLS

/* The training target for clean @x0 and noise @eps at ᾱ = @alpha_bar. */
void tf_diffusion_target (TfPrediction prediction, double alpha_bar, const float *x0,
                          const float *eps, int n, float *target);

/* The weight of one image's loss at ᾱ: 1, or with Min-SNR-γ (Hang et al.
 * 2023) min(SNR, γ) divided by what the target's MSE already weighs by
 * (SNR for ε, SNR + 1 for v, 1 for x0), SNR = ᾱ/(1−ᾱ). */
double tf_diffusion_loss_weight (const TfConfig *config, double alpha_bar);

/* A training image's noise level in t_lo..t_hi (1 ≤ t_lo): uniform, or with
 * logit-normal sampling t = ⌈T·sigmoid(mean + scale·n)⌉ clamped to the range. */
int tf_diffusion_sample_t (const TfConfig *config, TfRng *rng, int t_lo, int t_hi);

/* The x0 that a prediction implies at x_t, with sa = √ᾱ, sb = √(1−ᾱ)
 * (not clamped). In double: at t = T, √ᾱ is about 1e-6 and ε → x0 divides by it. */
static inline double
tf_diffusion_x0_of (TfPrediction prediction, double sa, double sb, double x_t, double pred)
{
  switch (prediction)
    {
    case TF_PREDICTION_V:
      return sa * x_t - sb * pred;
    case TF_PREDICTION_X:
      return pred;
    case TF_PREDICTION_EPS:
    default:
      return (x_t - sb * pred) / sa;
    }
}

/* The ε that a prediction implies at x_t. */
static inline double
tf_diffusion_eps_of (TfPrediction prediction, double sa, double sb, double x_t, double pred)
{
  switch (prediction)
    {
    case TF_PREDICTION_V:
      return sb * x_t + sa * pred;
    case TF_PREDICTION_X:
      return (x_t - sa * pred) / sb;
    case TF_PREDICTION_EPS:
    default:
      return pred;
    }
}

G_END_DECLS
