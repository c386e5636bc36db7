/* tf-test-util.h: helpers shared by the tests. */
#pragma once

#include <glib.h>
#include <stddef.h>

#include "transfusion.h"
#include "tf-train.h"
#include "tf-image.h"

/* Compares got against ref element-wise with |got − ref| ≤ atol + rtol·|ref|.
 * On failure prints the tensor name, the worst element (index, got, ref) and
 * the number of elements out of tolerance, and returns FALSE. Always records
 * in *worst (if non-NULL) the largest share of its tolerance that any element
 * used, max |got − ref| / (atol + rtol·|ref|): ≤ 1 passes. */
gboolean tf_test_close_f32 (const char *name, const float *got, const float *ref, size_t n,
                            double atol, double rtol, double *worst);
gboolean tf_test_close_f64 (const char *name, const double *got, const double *ref, size_t n,
                            double atol, double rtol, double *worst);

/* Path of a file in the source tree's tests/ folder. */
char *tf_test_data_path (const char *first, ...) G_GNUC_NULL_TERMINATED;
/* @root/@first/… */
char *tf_test_path (const char *root, const char *first, ...) G_GNUC_NULL_TERMINATED;

/* The "tiny" preset with a vocabulary of @vocab_size and the seven special
 * tokens at its top. */
TfConfig tf_test_tiny_config (int vocab_size);

/* Training options for a small, fast run of the tiny preset on rendered
 * shapes (no package needed), writing @out: batch 4, vocabulary 300, lr
 * 3e-3, seed 42, saves by time only every hour. */
void tf_test_tiny_train_options (TfTrainOptions *options, const char *out);

/* Writes a randomly initialised model of tf_test_tiny_config (64) as
 * DIR/tiny.safetensors and returns the path; fills @config and @n_params
 * when non-NULL. */
char *tf_test_save_tiny_model (const char *dir, TfConfig *config, guint64 *n_params);

/* A new empty directory in the system's temporary folder, made from
 * @template ("tf-image-XXXXXX"). */
char *tf_test_make_temp_dir (const char *template);

/* Removes @path and, if it is a directory (not a link to one), everything
 * below it. */
void tf_test_remove_tree (const char *path);

/* The names in the directory @path, sorted and joined by spaces: shows
 * stray temporary files. */
char *tf_test_list_dir (const char *path);
/* Asserts that the safetensors files @a_path and @b_path hold the same
 * tensors, bit for bit (metadata may differ). */
void tf_test_assert_same_tensors (const char *a_path, const char *b_path);

/* The calling thread's own CPU time in µs: the work it did, however long
 * the scheduler made it wait. */
gint64 tf_test_thread_cpu_time (void);

/* How many names in the directory @path end in @suffix (none when it
 * cannot be read, as before it is made). */
guint tf_test_count_files (const char *path, const char *suffix);

/* Writes @len bytes of @data (a string, when @len is -1) to DIR/NAME, or to
 * NAME when @dir is NULL. */
void tf_test_write_file (const char *dir, const char *name, const void *data, gssize len);

/* One to three random edits of @bytes past its first @keep bytes (a flipped
 * bit, a byte set, or the end cut off there): a fuzzer's mutations, for
 * tests that need no libFuzzer. */
void tf_test_mutate (GRand *rand, GByteArray *bytes, guint keep);

/* Reads @bytes with @read (tf_image_read_bytes or tf_image_read_png_bytes)
 * as @name: TRUE when it gave an image of a sane size, FALSE when it refused
 * with a format error that starts with the name; anything else fails. */
typedef gboolean (*TfTestImageReader) (const void *data, size_t len, const char *name,
                                       TfImage *image, GError **error);
gboolean tf_test_read_mutant (TfTestImageReader read, const GByteArray *bytes, const char *name);

/* Encodes @pixels (width × height × @channels: 1 grey, 3 RGB, 4 CMYK stored
 * inverted, as Adobe writes it) as a JPEG of @quality in memory, with an
 * EXIF segment giving @orientation (1–8; 0 writes none) in @byte_order "II"
 * or "MM". */
GByteArray *tf_test_encode_jpeg (const uint8_t *pixels, int width, int height, int channels,
                                 int quality, int orientation, const char *byte_order);

/* Writes a file at @path through one of the engine's atomic writers
 * (tf-file.h): one of under 4096 bytes, or of far more when @big. */
typedef gboolean (*TfTestWriteFunc) (const char *path, gboolean big, GError **error);

/* The failures every atomic writer shares, each "PATH: could not write:
 * REASON" (TF_ERROR_IO): a missing directory, a parent that is a regular
 * file, and a rename onto a non-empty directory, which stays as it was. No
 * temporary file is left behind. */
void tf_test_atomic_write_errors (TfTestWriteFunc writer);

/* A disk that fills up half way: in a subprocess whose files may not grow
 * past 4096 bytes (root is not exempt from RLIMIT_FSIZE), writing a big
 * @name over a small one fails with "File too large" and leaves the small
 * one as it was, with no temporary file beside it. The subprocess runs the
 * calling test again, which must call this before anything else. */
void tf_test_atomic_write_full_disk (const char *name, TfTestWriteFunc writer);

/* Writes a randomly initialised tiny model with a context of @max_seq_len
 * and a real tokenizer (trained on a few phrases, stored in the metadata as
 * "tokenizer"), as a generator can load it, to DIR/tiny-text.safetensors;
 * returns the path. */
char *tf_test_save_tiny_model_with_tokenizer (const char *dir, int max_seq_len);
