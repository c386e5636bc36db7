/* tf-safetensors.h: reading and writing .safetensors files (SPEC §6).
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 * (padded with spaces), then the tensor data. The header maps each tensor
 * name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
 * to the start of the data), plus an optional "__metadata__" object whose
 * values are strings.
 *
 * Opening validates every rule of the format and reports the first problem as
 * "FILE: tensor 'NAME': what is wrong" (or "FILE: what is wrong" for problems
 * that are not about one tensor). Nothing is allocated beyond what the file
 * size implies. */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <stddef.h>

G_BEGIN_DECLS

#define TF_SAFETENSORS_MAX_DIMS 8
/* The header is bounded, as in the reference implementation. */
#define TF_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef enum {
  TF_DTYPE_F32,
  TF_DTYPE_F16,
  TF_DTYPE_BF16,
  TF_DTYPE_F64,
  TF_DTYPE_I32,
  TF_DTYPE_I64,
  TF_DTYPE_U8,
  TF_DTYPE_I8,
  TF_DTYPE_I16,
  TF_DTYPE_U16,
  TF_DTYPE_U32,
  TF_DTYPE_U64,
  TF_DTYPE_BOOL,
  TF_N_DTYPES
} TfDtype;

const char *tf_dtype_name (TfDtype dtype);          /* "F32", ... */
gboolean    tf_dtype_from_name (const char *name, TfDtype *dtype);
size_t      tf_dtype_size (TfDtype dtype);          /* bytes per element */

typedef struct {
  char    *name;
  TfDtype  dtype;
  int      n_dims;
  int64_t  shape[TF_SAFETENSORS_MAX_DIMS];
  uint64_t n_elements;
  uint64_t begin;       /* byte offsets into the data section */
  uint64_t end;
} TfTensorInfo;

typedef struct _TfSafetensors TfSafetensors;

/* Opens and validates a file. @path is used in messages. */
TfSafetensors *tf_safetensors_open (const char *path, GError **error);
/* Same, from bytes in memory (tests, fuzzing). @display_name is used in messages. */
TfSafetensors *tf_safetensors_open_bytes (GBytes *bytes, const char *display_name,
                                          GError **error);
void tf_safetensors_free (TfSafetensors *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfSafetensors, tf_safetensors_free)

const char *tf_safetensors_display_name (const TfSafetensors *st);
int  tf_safetensors_n_tensors (const TfSafetensors *st);
/* Tensors in file order (sorted by offset). */
const TfTensorInfo *tf_safetensors_tensor (const TfSafetensors *st, int index);
const TfTensorInfo *tf_safetensors_find (const TfSafetensors *st, const char *name);
/* Raw bytes of a tensor (little-endian, as stored). */
const void *tf_safetensors_data (const TfSafetensors *st, const TfTensorInfo *info);
/* Converts a floating-point tensor (F32, F16, BF16, F64) or integer tensor
 * to float32. @n must equal info->n_elements. */
gboolean tf_safetensors_read_f32 (const TfSafetensors *st, const TfTensorInfo *info,
                                  float *out, size_t n, GError **error);
/* Converts an integer tensor (I32, I64, ...) to int32, failing on overflow. */
gboolean tf_safetensors_read_i32 (const TfSafetensors *st, const TfTensorInfo *info,
                                  int32_t *out, size_t n, GError **error);
/* __metadata__ value for @key, or NULL. */
const char *tf_safetensors_metadata (const TfSafetensors *st, const char *key);
/* All metadata keys, sorted; free the container with g_free() only. */
const char **tf_safetensors_metadata_keys (const TfSafetensors *st, guint *n_keys);

/* A tensor to write. Float data is given as float32 and converted to @dtype
 * (F32, F16 or BF16, round-to-nearest-even); for other dtypes @raw is written
 * as is (little-endian, n_elements × dtype size bytes). */
typedef struct {
  const char  *name;
  TfDtype      dtype;
  int          n_dims;
  int64_t      shape[TF_SAFETENSORS_MAX_DIMS];
  const float *data;     /* for F32/F16/BF16 */
  const void  *raw;      /* for the other dtypes, used when data is NULL */
} TfTensorOut;

/* Writes a conforming file atomically: a temporary file beside @path,
 * fsync, rename. On failure the previous @path is untouched and the message
 * names the file and the problem (for example "No space left on device").
 * Tensors are laid out in the order given; @meta_keys/@meta_values may be NULL
 * when @n_meta is 0. Header padded with spaces to a multiple of 8. */
gboolean tf_safetensors_write (const char *path,
                               const TfTensorOut *tensors, int n_tensors,
                               const char *const *meta_keys,
                               const char *const *meta_values, int n_meta,
                               GError **error);

/* Half-precision conversions (round to nearest even; NaN and Inf preserved). */
uint16_t tf_f32_to_f16 (float f);
float    tf_f16_to_f32 (uint16_t h);
uint16_t tf_f32_to_bf16 (float f);
float    tf_bf16_to_f32 (uint16_t h);

G_END_DECLS
