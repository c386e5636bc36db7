/* tf-image-view.h: a model image drawn large with crisp pixels.
 *
 * The model's images are tiny (32 × 32); scaling them smoothly would blur
 * them into mush, so the view scales with nearest-neighbour filtering to the
 * largest whole square that fits, centred. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define TF_TYPE_IMAGE_VIEW (tf_image_view_get_type ())
G_DECLARE_FINAL_TYPE (TfImageView, tf_image_view, TF, IMAGE_VIEW, GtkWidget)

GtkWidget *tf_image_view_new (void);

/* @pixels: size × size × channels floats in [-1, 1] (model units), copied;
 * NULL clears the view. */
void tf_image_view_set_pixels (TfImageView *self, const float *pixels, int size, int channels);
void tf_image_view_set_bytes (TfImageView *self, GBytes *pixels, int size, int channels);
gboolean tf_image_view_has_image (TfImageView *self);

/* The model's pixels as a texture (8-bit RGB), each pixel a @scale × @scale
 * block: what the clipboard and drag-and-drop hand to other programs. */
GdkTexture *tf_texture_new_from_pixels (const float *pixels, int size, int channels, int scale);

/* The other way, for a picture coming in (dropped, chosen, attached): fitted
 * to the model's size × size × channels as training placed its kind
 * (tf_image_to_model_picture with @grey_side: the model's, from
 * tf_generation_get_picture_grey_side, or 0 to fill the image). The file's
 * error names it. */
GBytes *tf_pixels_new_from_texture (GdkTexture *texture, int size, int channels, int grey_side);
GBytes *tf_pixels_new_from_file (GFile *file, int size, int channels, int grey_side,
                                 GError **error);
/* A modal file chooser of pictures (PNG, JPEG, TIFF) on @widget's window;
 * the caller connects "response" and shows it. */
GtkNativeDialog *tf_picture_chooser_new (GtkWidget *widget, const char *title,
                                         const char *accept_label);

G_END_DECLS
