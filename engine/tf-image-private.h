/* tf-image-private.h: what the image readers share inside the engine. */
#pragma once

#include "tf-image.h"

G_BEGIN_DECLS

/* A JPEG in memory → upright 8-bit RGBA; @shown names it in errors. */
gboolean tf_image_read_jpeg_bytes (const void *data, size_t len, const char *shown,
                                   TfImage *image, GError **error);
/* The orientation (1–8, as EXIF numbers them; 1 when there is none or it
 * cannot be read) of an APP1 segment's payload ("Exif\0\0" + TIFF). */
int tf_image_exif_orientation (const uint8_t *data, size_t len);
/* Turns @image upright from EXIF @orientation; FALSE when out of memory. */
gboolean tf_image_orient (TfImage *image, int orientation);

G_END_DECLS
