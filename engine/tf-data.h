/* tf-data.h: training and evaluation data (SPEC §5, issue 3).
 *
 * A data source is an indexed, deterministic list of examples: the same
 * (source, split, index, rng state) always gives the same example, so a
 * trainer that saves its position and RNG resumes exactly. Each source has a
 * held-out split that training never reads. Nothing is downloaded: the files
 * come from Debian packages or the user's folder. */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "tf-rng.h"

G_BEGIN_DECLS

typedef enum {
  TF_SPLIT_TRAIN,
  TF_SPLIT_HELDOUT,
} TfSplit;

typedef enum {
  TF_EXAMPLE_IMAGE,   /* an image and its caption */
  TF_EXAMPLE_TEXT,    /* text only: a prompt (may be NULL) and a body */
} TfExampleKind;

typedef struct {
  TfExampleKind kind;
  /* TF_EXAMPLE_IMAGE: size × size × channels, channels-last, in [-1, 1] */
  float *pixels;
  int    size;
  int    channels;
  /* What the image shows, as a sentence fragment ("a small red circle at the
   * top left"); varied by the rng where the source has several phrasings. */
  char  *caption;
  /* TF_EXAMPLE_TEXT: a question or term (e.g. "what is a dog?"), may be NULL,
   * and the body (a definition, an answer, a sentence). */
  char  *prompt;
  char  *text;
  /* TF_EXAMPLE_TEXT: a conversation turn, always put in the chat template
   * (the chat source); otherwise the trainer's --chat fraction decides. */
  gboolean chat;
  /* A short name of the subject ("sneaker", "pizza", "dog"): evaluation and
   * the prompt completions of the app use it. */
  char  *subject;
  /* Subject class index within the source (Fashion-MNIST label, emoji index,
   * ...) or -1. */
  int    label;
} TfExample;

void tf_example_clear (TfExample *example);

typedef struct _TfDataSource TfDataSource;

/* Fashion-MNIST's images are 28 × 28 grey pictures. */
#define TF_FASHION_SIDE 28

/* Fashion-MNIST from @dir (NULL: /usr/share/datasets/fashion-mnist). The
 * train split reads only train-*.gz; the held-out split reads only t10k-*.gz.
 * 28×28 grey images centred on the model's image size (grey replicated to
 * all channels), captions from varied templates per class. */
TfDataSource *tf_data_fashion_new (const char *dir, TfSplit split, int image_size,
                                   int channels, GError **error);
/* The class a caption names when it is, word for word, one the Fashion-MNIST
 * source writes (a template filled with one of a class's phrases), else −1. */
int tf_data_fashion_caption_class (const char *caption);
/* Cairo-rendered scenes of 1–3 objects (shape, colour, size, position) with
 * captions from a grammar, generated from the index as seed; the held-out
 * split is a disjoint seed range. */
TfDataSource *tf_data_shapes_new (TfSplit split, int image_size, int channels, GError **error);
/* Noto Color Emoji rendered by Cairo, named from Unicode's emoji-test.txt
 * (@dir NULL: /usr/share/unicode/emoji; a NotoColorEmoji.ttf inside @dir is
 * used before the system's font), with scale, position and background
 * augmentations stated in the caption; a fixed set of (emoji, augmentation)
 * pairs is held out. */
TfDataSource *tf_data_emoji_new (const char *dir, TfSplit split, int image_size, int channels,
                                 GError **error);
/* The image of example @index of an emoji source (made by
 * tf_data_emoji_new) with emoji @emoji (0 ≤ emoji < the number of subjects)
 * in place of its own: the same scale, place and background. */
gboolean tf_data_emoji_render_as (TfDataSource *source, int64_t index, int emoji,
                                  float *pixels, GError **error);
/* WordNet glosses and examples (@dir NULL: /usr/share/wordnet) as
 * definitions ("what is a X?" → "a X is ...") and short dialogues; a fixed
 * slice is held out. */
TfDataSource *tf_data_wordnet_new (const char *dir, TfSplit split, GError **error);
/* The drawable subjects of the image sources, in the sense their pictures
 * show: the Fashion-MNIST class names and the other nouns of its captions,
 * the shape and colour words, and the emoji names that are WordNet nouns
 * (@wordnet_dir and @emoji_dir NULL: the system's). Each is defined
 * ("define sneaker" → "a sneaker is a canvas shoe with a pliable rubber
 * sole."), used in a sentence and given a synonym where WordNet has them;
 * the class names, shapes and colours 8 times as often as the others. The
 * wordnet source leaves these synsets out, and every definition of
 * another noun sense of a subject word.
 *
 * Held out: a quarter of the subjects other than class names, shapes and
 * colours (by a hash of the word). Their gloss is trained, but never after
 * a "what is" question ("what is a X?", "what's a X?", "tell me what a X
 * is"; for plurals "what are X?", "tell me what X are") — in no source.
 * The held-out split is one example per held-out subject: the prompt
 * "what is a X?" (or "what are X?") and, as text, the answer training
 * teaches for the other phrasings ("a X is GLOSS."). A model that answers
 * it with that text, or that text's start up to its first ';', has
 * carried the gloss over to the question it never saw for that word. */
TfDataSource *tf_data_subjects_new (const char *wordnet_dir, const char *emoji_dir,
                                    TfSplit split, GError **error);
/* Conversation turns that say truthfully what the model does ("hello",
 * "what can you draw?", "who are you?", "thanks", "help", ...), as text
 * examples with example.chat set. The held-out split is the last user
 * phrasing of every topic that has three or more. */
TfDataSource *tf_data_chat_new (TfSplit split, GError **error);
/* Whether @reply (surrounding white space aside) is one of the answers the
 * chat source gives for @topic (an example's subject). */
gboolean tf_data_chat_answer_matches (const char *topic, const char *reply);
/* A folder of images (PNG or JPEG) with same-named .txt captions, resized
 * to the model's size. Broken files are skipped with one g_warning each
 * naming the file and the problem; the held-out split is every 20th file by
 * sorted name. An empty or unreadable folder is an error. */
TfDataSource *tf_data_folder_new (const char *dir, TfSplit split, int image_size, int channels,
                                  GError **error);

/* The caption of the picture at @image_path as a folder source reads it:
 * the same-named .txt file beside it, UTF-8, each run of white space one
 * space, at most 500 bytes. NULL with @error naming the problem when it is
 * missing (G_FILE_ERROR_NOENT), unreadable, not UTF-8 or empty. */
char *tf_data_folder_caption (const char *image_path, GError **error);

/* Opens a source by the name a user gives: "fashion", "shapes", "emoji",
 * "wordnet", "subjects" (from their Debian packages), "chat" or the path of
 * a folder. */
TfDataSource *tf_data_source_open (const char *name, TfSplit split, int image_size,
                                   int channels, GError **error);
/* Whether the source @name would find its files on this computer (a
 * standard source its Debian package's, a folder itself), without reading
 * them: FALSE with @error naming the missing file and its package. */
gboolean tf_data_source_installed (const char *name, GError **error);

void tf_data_source_free (TfDataSource *source);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfDataSource, tf_data_source_free)

/* "fashion", "shapes", "emoji", "wordnet", "subjects", "chat" or the
 * folder's path. */
const char *tf_data_source_name (const TfDataSource *source);
/* Number of distinct examples (generated sources report the size of their
 * seed range). Always ≥ 1 for a source that opened. */
int64_t tf_data_source_size (const TfDataSource *source);
/* Fills @example with example @index (0 ≤ index < size). Random choices
 * (caption phrasing, augmentations) come from @rng only. */
gboolean tf_data_source_get (TfDataSource *source, int64_t index, TfRng *rng,
                             TfExample *example, GError **error);
/* Names of the subjects the source can show (class names, emoji names, shape
 * and colour words; for WordNet the words it defines), NULL-terminated,
 * owned by the source. */
const char *const *tf_data_source_subjects (const TfDataSource *source);
/* Whether the source has images (all but WordNet). */
gboolean tf_data_source_has_images (const TfDataSource *source);

/* Writes a contact sheet PNG of @n examples: images (nearest-neighbour
 * scaled by @scale) with their captions, or text examples as text. */
gboolean tf_data_write_contact_sheet (const TfExample *examples, int n, int scale,
                                      const char *path, GError **error);

G_END_DECLS
