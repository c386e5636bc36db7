/* tf-config.h: the model's shape, as stored in every checkpoint (SPEC §2). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define TF_ERROR (tf_error_quark ())

typedef enum {
  TF_ERROR_IO,          /* a file could not be read or written */
  TF_ERROR_FORMAT,      /* a file is not what it claims to be */
  TF_ERROR_CONFIG,      /* a config value is out of range or inconsistent */
  TF_ERROR_INPUT,       /* a batch or request the model cannot take */
  TF_ERROR_ABORTED,     /* the caller asked us to stop */
  TF_ERROR_UNSUPPORTED, /* a file of a kind this program does not read (a GIF, say) */
} TfError;

GQuark tf_error_quark (void);

#define TF_CONFIG_SCHEDULE_MAX 16

/* What the image head predicts (the diffusion loss's target). */
typedef enum {
  TF_PREDICTION_EPS,    /* the noise ε (SPEC §3; a config without the field) */
  TF_PREDICTION_V,      /* v = √ᾱ·ε − √(1−ᾱ)·x0 (Salimans & Ho 2022) */
  TF_PREDICTION_X,      /* the clean image x0 */
} TfPrediction;

/* How training draws the noise level of an image it generates from a caption. */
typedef enum {
  TF_T_SAMPLING_UNIFORM,       /* t uniform in 1..T */
  TF_T_SAMPLING_LOGIT_NORMAL,  /* t/T = sigmoid(mean + scale·n), n ~ N(0, 1) (SD3) */
} TfTSampling;

/* How the timestep reaches the image positions. */
typedef enum {
  TF_TIME_ADD,          /* its embedding added to every patch (SPEC §2) */
  TF_TIME_ADALN_ZERO,   /* DiT's adaLN-Zero: shift, scale and gate per layer */
} TfTimeConditioning;

/* How image pixels become the transformer's tokens and its outputs pixels. */
typedef enum {
  TF_IMAGE_ENCODER_LINEAR,  /* a linear map of each patch, in and out (SPEC §2) */
  TF_IMAGE_ENCODER_UNET,    /* U-Net down and up blocks around the transformer (issue 14) */
  TF_IMAGE_ENCODER_CONV,    /* linear patches with a 3×3 convolution at full resolution
                             * before and after them (tf-conv-patch.h) */
} TfImageEncoder;

/* RoPE's positions for image patches (issue 14). */
typedef enum {
  TF_IMAGE_ROPE_1D,     /* the patch's index in the document, as text's (SPEC §2) */
  TF_IMAGE_ROPE_AXIAL,  /* two: even rotation pairs by the patch's grid row, odd
                         * pairs by its column, each counted from the image's first
                         * patch's index (tf_rope_image_positions) */
} TfImageRope;

typedef struct {
  int vocab_size;
  int d_model;
  int n_layers;
  int n_heads;
  int mlp_hidden;
  int max_seq_len;
  int image_size;       /* images are image_size × image_size pixels */
  int image_channels;
  int patch_size;
  int diffusion_steps;  /* T */
  char schedule[TF_CONFIG_SCHEDULE_MAX]; /* "cosine" */
  /* The image side's recipe (issue 14). Each is optional in a file: one
   * without the field has today's value (the first of each enum). */
  TfPrediction       prediction;
  TfTSampling        t_sampling;
  double             t_mean, t_scale;   /* logit-normal's location and scale (0, 1) */
  double             min_snr_gamma;     /* > 0: Min-SNR-γ loss weights; 0: none */
  TfTimeConditioning time_conditioning;
  TfImageEncoder     image_encoder;
  int                unet_channels;     /* U-Net only: channels at every level */
  int                unet_blocks;       /* U-Net only: residual blocks per level */
  gboolean           unet_skips;        /* U-Net only: encoder levels added into the
                                         * decoder's (TRUE); FALSE: every pixel the
                                         * decoder draws comes through the transformer */
  int                conv_channels;     /* conv only: the convolutions' channels at full
                                         * resolution (a patch is p·p·conv_channels values) */
  TfImageRope        image_rope;
  double rope_theta;
  double norm_eps;
  /* special token ids */
  int bos_id;
  int eos_id;
  int boi_id;
  int eoi_id;
  int pad_id;
  int user_id;
  int assistant_id;
} TfConfig;

/* Fills @config with a named preset ("tiny", "small", "default", "large") and the
 * recipe a new model trains with (v target, logit-normal t; the other
 * recipe fields as a file without them reads). The vocabulary size and
 * special ids are left for the tokenizer to set. */
gboolean tf_config_preset (TfConfig *config, const char *name, GError **error);

/* The preset @config has the shape of (any vocabulary), or NULL. */
const char *tf_config_preset_of (const TfConfig *config);

/* Checks every field and the relations between them. @what names the
 * source in messages (a file name, "preset", ...). */
gboolean tf_config_validate (const TfConfig *config, const char *what, GError **error);

/* Checks the image side's recipe fields only. */
gboolean tf_config_validate_recipe (const TfConfig *config, const char *what, GError **error);

/* Serialises to a compact JSON object whose keys are the field names. */
char *tf_config_to_json (const TfConfig *config);

/* Parses what tf_config_to_json() writes; every field is required and
 * validated. */
gboolean tf_config_from_json (TfConfig *config, const char *json, const char *what,
                              GError **error);

/* Sets one field of the image side's recipe from text ("prediction", "v"),
 * as the command line gives it: prediction (eps, v, x), t_sampling (uniform,
 * logit_normal), t_mean, t_scale, min_snr_gamma, time_conditioning (add,
 * adaln_zero), image_encoder (linear, unet, conv), unet_channels, unet_blocks,
 * unet_skips, conv_channels, image_rope (1d, axial). Does not validate the
 * whole config. */
gboolean tf_config_set_recipe_field (TfConfig *config, const char *key, const char *value,
                                     GError **error);
/* Applies "key=value,key=value" with tf_config_set_recipe_field(). */
gboolean tf_config_apply_recipe (TfConfig *config, const char *recipe, GError **error);

const char *tf_prediction_name (TfPrediction prediction);
const char *tf_t_sampling_name (TfTSampling sampling);
const char *tf_time_conditioning_name (TfTimeConditioning conditioning);
const char *tf_image_encoder_name (TfImageEncoder encoder);
const char *tf_image_rope_name (TfImageRope rope);
/* U-Net levels: log2(patch_size) (each halves the image's side) */
int tf_config_unet_levels (const TfConfig *config);

/* Derived sizes. */
int tf_config_head_dim (const TfConfig *config);
int tf_config_patches_per_side (const TfConfig *config);
int tf_config_n_patches (const TfConfig *config);   /* image tokens per image */
int tf_config_patch_dim (const TfConfig *config);   /* C·p·p */
int tf_config_image_values (const TfConfig *config); /* H·W·C */
/* round_up(8/3 · d, 32), the SwiGLU default */
int tf_config_default_mlp_hidden (int d_model);

G_END_DECLS
