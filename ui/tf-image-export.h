/* tf-image-export.h: a model image leaving the program, the one way every
 * view does it: copied to the clipboard, saved as a PNG (with its
 * "parameters" when known), or dragged to another program; each pixel
 * becomes an 8 × 8 block. Copy and Save say so in a toast. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define TF_IMAGE_EXPORT_SCALE 8

/* @pixels: size × size × channels floats in [-1, 1]. */
void tf_image_export_copy (GtkWidget *widget, GBytes *pixels, int size, int channels);

/* Asks where to save (starting in the folder an image was saved in last,
 * else Pictures, never the folder the program started in), then writes the
 * PNG with @parameters (may be NULL) and offers to open its folder. */
void tf_image_export_save (GtkWidget *widget, GBytes *pixels, int size, int channels,
                           const char *parameters, const char *suggested_name);

/* What a drag of the image carries: the file @path (may be NULL) for file
 * managers, the pixels for image editors; the icon is set on @source. */
GdkContentProvider *tf_image_export_drag_content (GtkDragSource *source, GBytes *pixels,
                                                  int size, int channels, const char *path);

G_END_DECLS
