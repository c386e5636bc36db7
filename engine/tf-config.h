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
} TfError;

GQuark tf_error_quark (void);

#define TF_CONFIG_SCHEDULE_MAX 16

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

/* Fills @config with a named preset ("tiny", "small", "default").
 * The vocabulary size and special ids are left for the tokenizer to set. */
gboolean tf_config_preset (TfConfig *config, const char *name, GError **error);

/* The preset @config has the shape of (any vocabulary), or NULL. */
const char *tf_config_preset_of (const TfConfig *config);

/* Checks every field and the relations between them. @what names the
 * source in messages (a file name, "preset", ...). */
gboolean tf_config_validate (const TfConfig *config, const char *what, GError **error);

/* Serialises to a compact JSON object whose keys are the field names. */
char *tf_config_to_json (const TfConfig *config);

/* Parses what tf_config_to_json() writes; every field is required and
 * validated. */
gboolean tf_config_from_json (TfConfig *config, const char *json, const char *what,
                              GError **error);

/* Derived sizes. */
int tf_config_head_dim (const TfConfig *config);
int tf_config_patches_per_side (const TfConfig *config);
int tf_config_n_patches (const TfConfig *config);   /* image tokens per image */
int tf_config_patch_dim (const TfConfig *config);   /* C·p·p */
int tf_config_image_values (const TfConfig *config); /* H·W·C */
/* round_up(8/3 · d, 32), the SwiGLU default */
int tf_config_default_mlp_hidden (int d_model);

G_END_DECLS
