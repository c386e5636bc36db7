/* tf-data-private.h: what every data source shares. Each source's struct
 * embeds TfDataSource as its first member and fills in the class. */
#pragma once

#include "tf-data.h"

/* Where the emoji source finds its files (tf_data_source_installed() looks
 * for them too). */
#define EMOJI_DEFAULT_DIR "/usr/share/unicode/emoji"
#define EMOJI_TEST_FILE   "emoji-test.txt"
#define EMOJI_FONT_FILE   "NotoColorEmoji.ttf"
/* Debian's fonts-noto-color-emoji; a copy in @dir takes precedence. */
#define EMOJI_FONT_SYSTEM_PATH "/usr/share/fonts/truetype/noto/" EMOJI_FONT_FILE

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

/* The caption names ("pizza", "flag of japan") and Unicode groups ("Food &
 * Drink") of the emoji of @dir's emoji-test.txt (NULL: the system's), as
 * the emoji source names them but without opening the font: every
 * fully-qualified entry without a skin tone. Appends to @names and @groups
 * (strings the arrays' free functions, if any, free). */
gboolean tf_data_emoji_read_names (const char *dir, GPtrArray *names, GPtrArray *groups,
                                   GError **error);

/* --- the drawable subjects (tf-data-subjects.c) ------------------------- */

typedef enum {
  TF_SUBJECT_CORE   = 1 << 0,  /* a class name, shape or colour: weighted up, never held out */
  TF_SUBJECT_PLURAL = 1 << 1,  /* "what are trousers?" */
  TF_SUBJECT_MASS   = 1 << 2,  /* no article: "red is ..." */
} TfSubjectFlags;

typedef struct {
  const char *word;        /* as the captions say it */
  const char *sense;       /* the start of the WordNet gloss of the sense the pictures show */
  const char *definition;  /* or, where WordNet lacks that sense, the definition */
  guint       flags;       /* TfSubjectFlags */
} TfSubjectSense;

/* The subjects of the fashion and shapes sources, with their senses. */
extern const TfSubjectSense tf_subject_senses[];
extern const int tf_n_subject_senses;

/* The WordNet lexicographer files whose senses fit an emoji of Unicode
 * group @group, in order of preference, 0-terminated; NULL for groups that
 * name no noun to define (flags, components). */
const guint8 *tf_subject_lexfiles_for_group (const char *group);
