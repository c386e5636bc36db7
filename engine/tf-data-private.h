/* tf-data-private.h: what every data source shares. Each source's struct
 * embeds TfDataSource as its first member and fills in the class. */
#pragma once

#include "tf-data.h"

typedef struct {
  /* Fills @example (already zeroed) with example @index. */
  gboolean (*get) (TfDataSource *source, int64_t index, TfRng *rng, TfExample *example,
                   GError **error);
  /* Frees what the source added beyond TfDataSource (may be NULL). */
  void (*finalize) (TfDataSource *source);
  /* The source writes text only (WordNet): its subjects are words it
   * defines, not things a model learns to draw. */
  gboolean text_only;
} TfDataSourceClass;

struct _TfDataSource {
  const TfDataSourceClass *klass;
  char    *name;
  TfSplit  split;
  int64_t  size;
  int      image_size;
  int      channels;
  char   **subjects;    /* NULL-terminated, freed with g_strfreev */
};

/* Allocates @struct_size bytes (≥ sizeof (TfDataSource)), zeroed, with the
 * common fields set. */
TfDataSource *tf_data_source_alloc (const TfDataSourceClass *klass, size_t struct_size,
                                    const char *name, TfSplit split, int image_size,
                                    int channels);
