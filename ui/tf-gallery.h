/* tf-gallery.h: the strip of earlier results.
 *
 * Every generated image is kept as a PNG (at the model's size, with the
 * `parameters` text chunk, SPEC §6) under $XDG_DATA_HOME/transfusion/gallery,
 * so the strip shows this session's results and those of earlier ones.
 * Activating a thumbnail emits `activated` with the image and its
 * parameters, to restore them. */
#pragma once

#include <gtk/gtk.h>

#include "tf-generate.h"

G_BEGIN_DECLS

#define TF_TYPE_GALLERY (tf_gallery_get_type ())
G_DECLARE_FINAL_TYPE (TfGallery, tf_gallery, TF, GALLERY, GtkWidget)

/* Signals:
 *   activated (const char *parameters, GBytes *pixels, gint size, gint channels)
 *       a thumbnail was clicked: its parameters text (may be NULL for a PNG
 *       without one) and its pixels (model units, as TfGeneration gives). */

GtkWidget *tf_gallery_new (void);

/* Where the images are: $XDG_DATA_HOME/transfusion/gallery. */
char *tf_gallery_default_dir (void);
/* Reads @dir (created when missing) again; the newest images first. */
void tf_gallery_set_dir (TfGallery *self, const char *dir);
const char *tf_gallery_get_dir (TfGallery *self);
guint tf_gallery_get_n_items (TfGallery *self);

/* Shows a new result first and saves it in the folder (in a worker
 * thread). _finish returns the file's path, or NULL with @error. */
void  tf_gallery_add_async (TfGallery *self, const float *pixels, int size, int channels,
                            const char *parameters, GAsyncReadyCallback callback,
                            gpointer user_data);
char *tf_gallery_add_finish (GAsyncResult *result, GError **error);

/* ---- Reading a `parameters` text back --------------------------------- */

typedef struct {
  char               *prompt;
  char               *negative;   /* NULL when there is none */
  TfGenerateSettings  settings;   /* .negative points into this struct's negative */
  char               *model;      /* the model's name, or NULL */
  gboolean            from_picture;  /* made from an init image: a "Denoising
                                      * strength" is in settings.strength */
} TfParameters;

/* Parses the A1111 form that tf_png_parameters_text() writes; keys it does
 * not know are skipped, missing ones keep tf_generate_settings_init()'s
 * values. FALSE when @text has no "Steps:" line. */
gboolean tf_parameters_parse (const char *text, TfParameters *parameters);
void tf_parameters_clear (TfParameters *parameters);

G_END_DECLS
