/* tf-model-info.h: what a model file holds, for people.
 *
 * Shared by the window and the command-line tool so that both read a file
 * the same way and call its parts by the same names. No GTK here. */
#pragma once

#include <gio/gio.h>

#include "tf-generate.h"
#include "transfusion.h"

G_BEGIN_DECLS

typedef struct {
  char     *path;           /* as given */
  char     *name;           /* the file's name without ".safetensors" */
  guint64   file_size;      /* bytes on disk */
  int       n_tensors;
  char     *dtypes;         /* "F32", or "F16 (40 tensors), F32 (17 tensors)" */
  char    **metadata_keys;  /* sorted, NULL-terminated */
  char     *provenance;     /* the "provenance" metadata (JSON: how it was trained), or NULL */
  gboolean  has_sampling;   /* the file names its own image settings: */
  TfGenerateSettings sampling;   /* tf_model_file_sampling(); the rest as initialised */
  TfModel  *model;
} TfModelInfo;

/* Opens @path as a model file the one way every command and the window
 * do: a valid safetensors file, a model its config describes, and a
 * tokenizer whose vocabulary size and special-token ids are the config's
 * (the check tf_generator_new() makes). A file without a tokenizer is a
 * model of weights alone (the golden files): accepted unless
 * @need_tokenizer. @st_out and @tokenizer_out may be NULL (else the file
 * and the tokenizer, or NULL when there is none, are handed over). Every
 * message names the file. Blocking. */
TfModel *tf_model_file_open (const char *path, gboolean need_tokenizer, TfSafetensors **st_out,
                             TfTokenizer **tokenizer_out, GError **error);

/* The image settings the file names as the model's own: the "sampling"
 * metadata that `convert --examples-from` stores from an `eval --sweep`
 * report ({"sampler":"ddim","steps":25,"cfg":3}). Sets the sampler, steps
 * and guidance of @settings and returns TRUE; FALSE, with @settings as it
 * was, when the file has none or they are not valid (they are then not
 * used: the program's own defaults are). */
gboolean tf_model_file_sampling (TfSafetensors *st, TfGenerateSettings *settings);

/* The image settings a new image starts with, each of sampler, steps and
 * guidance on its own: the one a person chose in the app's preferences
 * (@settings, the GSettings default-sampler, default-steps, default-cfg,
 * when set there), else the model's own (@model_sampling, NULL when it has
 * none), else the preferences' default. */
void tf_image_defaults (GSettings *settings, const TfGenerateSettings *model_sampling,
                        TfGenerateSettings *out);

/* What tf_model_file_open() finds in @path, for people. Blocking: call it
 * from a worker thread in the UI. */
TfModelInfo *tf_model_info_load (const char *path, GError **error);
void tf_model_info_free (TfModelInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfModelInfo, tf_model_info_free)

/* ---- The config's fields ---------------------------------------------- */

typedef enum {
  TF_CONFIG_GROUP_TRANSFORMER,
  TF_CONFIG_GROUP_TEXT,
  TF_CONFIG_GROUP_IMAGE,
  TF_CONFIG_GROUP_DIFFUSION,
  TF_CONFIG_GROUP_TOKENS,
  TF_N_CONFIG_GROUPS
} TfConfigGroup;

typedef enum {
  TF_CONFIG_FIELD_INT,
  TF_CONFIG_FIELD_FLOAT,
  TF_CONFIG_FIELD_DOUBLE,
  TF_CONFIG_FIELD_STRING,
  /* the image side's recipe, written by name */
  TF_CONFIG_FIELD_PREDICTION,
  TF_CONFIG_FIELD_T_SAMPLING,
  TF_CONFIG_FIELD_TIME_CONDITIONING,
  TF_CONFIG_FIELD_IMAGE_ENCODER,
  TF_CONFIG_FIELD_IMAGE_ROPE,
  TF_CONFIG_FIELD_BOOLEAN,   /* a gboolean */
} TfConfigFieldKind;

typedef struct {
  const char       *key;    /* as in the checkpoint's config JSON: "d_model" */
  const char       *label;  /* for people, untranslated: pass it to gettext() */
  TfConfigGroup     group;
  TfConfigFieldKind kind;
  size_t            offset; /* into TfConfig */
} TfConfigField;

/* Every field of TfConfig, in the order of the header. */
const TfConfigField *tf_config_fields (guint *n_fields);
/* Whether @field says anything about a model of @config: the U-Net's
 * fields only when its image encoder is the U-Net, the conv encoder's only
 * when it is that. */
gboolean tf_config_field_applies (const TfConfigField *field, const TfConfig *config);
/* The group's title, translated. */
const char *tf_config_group_title (TfConfigGroup group);
/* The field's value as text, as the checkpoint writes it: integers in
 * decimal, floats with %g (in the C locale), names, true or false. */
char *tf_config_field_format (const TfConfigField *field, const TfConfig *config);

/* ---- Numbers for people ------------------------------------------------ */

/* Seconds as "m:ss" or "h:mm:ss"; "--:--" when not known (negative or
 * not finite): the progress line of `train` and the Teach view. */
char *tf_format_duration (double seconds);

/* 1234567 → "1.23 M": three significant digits, SI prefixes k, M, G, T. */
char *tf_format_count (guint64 n);

/* The file's name without its folder and ".safetensors": what a person
 * calls the model ("default" for models/default.safetensors). */
char *tf_model_name_from_path (const char *path);

/* Loads @path as a generator (model and tokenizer), checked by
 * tf_model_file_open() with the tokenizer required. Blocking. */
TfGenerator *tf_model_info_open_generator (const char *path, GError **error);

/* ---- The bundled model ------------------------------------------------- */

/* Where a model is looked for when none is named, in order:
 * $TRANSFUSION_MODEL when set (and then only there: a wrong override is an
 * error, not a silent fallback), else, for a program run from the build
 * tree, the source tree's resources/models/default.safetensors, then the
 * installed DATADIR/transfusion/models/default.safetensors (DATADIR as
 * tf_installed_data_dir() finds it, then as configured). */
GStrv tf_default_model_locations (void);
/* The first of those that exists; $TRANSFUSION_MODEL whether or not it
 * exists, so that loading it names what is wrong. NULL when there is none. */
char *tf_default_model_path (void);

/* ---- Where the program's files are ----------------------------------- */

/* Whether this program is the build tree's, not an installed one. */
gboolean tf_running_uninstalled (void);
/* The installed data folder (PREFIX/share), found from where the program
 * is (PREFIX/bin), so that an installation staged with DESTDIR or moved to
 * another prefix finds its own files; the configured one when that cannot
 * be told (an uninstalled program, or folders outside the prefix). */
char *tf_installed_data_dir (void);
/* The translations: the build tree's po/ for an uninstalled program, else
 * the installed locale folder, found the same way. */
char *tf_locale_dir (void);
/* Binds the program's gettext domain to tf_locale_dir() in UTF-8. Call at
 * the start of main(), after setlocale() where the program calls it. */
void tf_bind_translations (void);

/* Sets the engine's threading for this process: the engine parallelises its
 * own loops with OpenMP, and OpenBLAS's threads competing with them made
 * training 1.5× slower and sampling erratic on two cores, so OpenBLAS runs
 * single-threaded unless OPENBLAS_NUM_THREADS says otherwise. Call once at
 * the start of main(). */
void tf_configure_threads (void);

/* ---- Generated images ------------------------------------------------- */

/* The first 10 hex digits of the SHA-256 of the file @path (as A1111's
 * "Model hash"). Reads the whole file. */
char *tf_model_file_hash (const char *path, GError **error);

/* The "parameters" text of a generated PNG in the A1111 form (SPEC §6):
 *   PROMPT
 *   Negative prompt: NEGATIVE          (only when @settings->negative is set)
 *   Steps: 50, Sampler: DDPM, CFG scale: 3, Seed: 7, Size: 32x32, Model: NAME, Model hash: H
 * Numbers in the C locale. */
char *tf_png_parameters_text (const char *prompt, const TfGenerateSettings *settings,
                              int size, const char *model_name, const char *model_hash);

/* Writes model pixels (size × size × @channels in [-1, 1]) as an 8-bit RGB
 * PNG, each pixel drawn as a @scale × @scale block (nearest neighbour, 1:
 * as is), with the iTXt chunk "parameters" when @parameters is not NULL.
 * Atomic: a failure leaves nothing behind. */
gboolean tf_write_generated_png (const char *path, const float *pixels, int size, int channels,
                                 int scale, const char *parameters, GError **error);

G_END_DECLS
