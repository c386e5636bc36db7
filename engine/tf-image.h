/* tf-image.h: PNG and JPEG files and pixel conversions.
 *
 * Reading accepts every PNG colour type and bit depth (palette, grey, alpha,
 * 16-bit, interlaced) and gives 8-bit RGBA; it refuses images whose size
 * would need more than TF_IMAGE_MAX_PIXELS pixels before allocating.
 * Writing is atomic (temporary file, fsync, rename) and can carry iTXt text
 * chunks, e.g. "parameters" in the A1111 form (SPEC §6). */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define TF_IMAGE_MAX_PIXELS (64u * 1024u * 1024u)

typedef struct {
  int      width;
  int      height;
  uint8_t *rgba;     /* width × height × 4 */
} TfImage;

void tf_image_clear (TfImage *image);

/* A PNG or a JPEG, by what the file holds rather than its name (a JPEG
 * turned upright by its EXIF orientation); anything else is an error that
 * names the file: TF_ERROR_UNSUPPORTED for another kind of file,
 * TF_ERROR_FORMAT for a broken PNG or JPEG. */
gboolean tf_image_read (const char *path, TfImage *image, GError **error);
gboolean tf_image_read_bytes (const void *data, size_t len, const char *display_name,
                              TfImage *image, GError **error);
/* A PNG only. */
gboolean tf_image_read_png (const char *path, TfImage *image, GError **error);
gboolean tf_image_read_png_bytes (const void *data, size_t len, const char *display_name,
                                  TfImage *image, GError **error);
/* Text chunks: NULL-terminated key/value arrays (may be NULL). Reading them
 * back: tf_image_read_png_text returns a hash table key → value (UTF-8). */
gboolean tf_image_write_png (const char *path, const uint8_t *rgb, int width, int height,
                             int channels, const char *const *keys, const char *const *values,
                             GError **error);
GHashTable *tf_image_read_png_text (const char *path, GError **error);

/* Model pixels: composite RGBA over white; an image larger than size × size
 * shrinks to fit with area averaging, keeping its aspect ratio, a smaller one
 * keeps its size; centred on a square of the median colour of its outermost
 * pixels (black around a 28×28 Fashion-MNIST image, as training places it),
 * then scaled to [-1, 1] with @channels (1: luminance, 3: RGB). */
void tf_image_to_model (const TfImage *image, int size, int channels, float *out);
/* A picture a person gives a model (to caption, in a chat, to start an
 * image from), fitted as training placed its kind: as tf_image_to_model,
 * except that a grey picture on a dark ground (R, G and B within 2/255
 * everywhere, most of its outermost pixels darker than mid-grey), larger
 * than @grey_side × @grey_side and cut to its subject (a dark margin all
 * around of less than 1.5 in 32 of its side: not framed as the model's
 * own pictures are), shrinks to fit that, centred in size × size.
 * A model trained on Fashion-MNIST saw its grey pictures as 28 × 28 on 32
 * (tf_provenance_grey_side); 0 (or @size) turns the rule off. */
void tf_image_to_model_picture (const TfImage *image, int size, int channels, int grey_side,
                                float *out);
/* Model pixels → 8-bit (clamped, rounded). */
void tf_image_from_model (const float *pixels, int size, int channels, uint8_t *out);

G_END_DECLS
