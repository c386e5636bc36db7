/* tf-model-info.h: what a model file holds, for people.
 *
 * Shared by the window and the command-line tool so that both read a file
 * the same way and call its parts by the same names. No GTK here. */
#pragma once

#include <glib.h>

#include "transfusion.h"

G_BEGIN_DECLS

typedef struct {
  char     *path;           /* as given */
  char     *name;           /* the file's name without ".safetensors" */
  guint64   file_size;      /* bytes on disk */
  int       n_tensors;
  char     *dtypes;         /* "F32", or "F16 (40 tensors), F32 (17 tensors)" */
  char    **metadata_keys;  /* sorted, NULL-terminated */
  TfModel  *model;
} TfModelInfo;

/* Opens @path as a safetensors file, then loads it as a Transfusion model.
 * Every message names the file. Blocking: call it from a worker thread in
 * the UI. */
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
/* The group's title, translated. */
const char *tf_config_group_title (TfConfigGroup group);
/* The field's value as text: integers in decimal, floats with %g (in the C
 * locale, as in the checkpoint). */
char *tf_config_field_format (const TfConfigField *field, const TfConfig *config);

/* ---- Numbers for people ------------------------------------------------ */

/* 1234567 → "1.23 M": three significant digits, SI prefixes k, M, G, T. */
char *tf_format_count (guint64 n);

G_END_DECLS
