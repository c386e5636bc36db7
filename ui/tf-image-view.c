/* tf-image-view.c: a model image drawn large with crisp pixels. */
#include "config.h"

#include "tf-image-view.h"

#include <glib/gi18n.h>
#include <string.h>

#include "tf-config.h"
#include "tf-image.h"

struct _TfImageView
{
  GtkWidget        parent_instance;
  cairo_surface_t *surface;   /* size × size, or NULL */
  int              size;
};

G_DEFINE_FINAL_TYPE (TfImageView, tf_image_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_HAS_IMAGE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

GtkWidget *
tf_image_view_new (void)
{
  return g_object_new (TF_TYPE_IMAGE_VIEW, NULL);
}

/* 8-bit RGB, 3 bytes a pixel, from model pixels of 1 or 3 channels. */
static guint8 *
rgb_from_pixels (const float *pixels, int size, int channels)
{
  g_autofree guint8 *model = g_malloc ((size_t) size * size * channels);
  guint8 *rgb = g_malloc ((size_t) size * size * 3);

  tf_image_from_model (pixels, size, channels, model);
  for (int i = 0; i < size * size; i++)
    for (int c = 0; c < 3; c++)
      rgb[i * 3 + c] = model[i * channels + (channels == 1 ? 0 : c)];
  return rgb;
}

void
tf_image_view_set_pixels (TfImageView *self, const float *pixels, int size, int channels)
{
  gboolean had = FALSE;

  g_return_if_fail (TF_IS_IMAGE_VIEW (self));
  g_return_if_fail (pixels == NULL || (size > 0 && (channels == 1 || channels == 3)));

  had = self->surface != NULL;
  g_clear_pointer (&self->surface, cairo_surface_destroy);
  self->size = 0;
  if (pixels != NULL)
    {
      g_autofree guint8 *rgb = rgb_from_pixels (pixels, size, channels);
      guint8 *data;
      int stride;

      self->surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, size, size);
      self->size = size;
      cairo_surface_flush (self->surface);
      data = cairo_image_surface_get_data (self->surface);
      stride = cairo_image_surface_get_stride (self->surface);
      for (int y = 0; y < size; y++)
        {
          guint32 *row = (guint32 *) (gpointer) (data + (size_t) y * stride);

          for (int x = 0; x < size; x++)
            {
              const guint8 *p = rgb + ((size_t) y * size + x) * 3;

              row[x] = 0xff000000u | ((guint32) p[0] << 16) | ((guint32) p[1] << 8) | p[2];
            }
        }
      cairo_surface_mark_dirty (self->surface);
    }
  gtk_widget_queue_draw (GTK_WIDGET (self));
  if (had != (self->surface != NULL))
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HAS_IMAGE]);
}

void
tf_image_view_set_bytes (TfImageView *self, GBytes *pixels, int size, int channels)
{
  gsize n = 0;
  const float *data = pixels != NULL ? g_bytes_get_data (pixels, &n) : NULL;

  g_return_if_fail (data == NULL || n == (gsize) size * size * channels * sizeof (float));
  tf_image_view_set_pixels (self, data, size, channels);
}

gboolean
tf_image_view_has_image (TfImageView *self)
{
  g_return_val_if_fail (TF_IS_IMAGE_VIEW (self), FALSE);
  return self->surface != NULL;
}

GdkTexture *
tf_texture_new_from_pixels (const float *pixels, int size, int channels, int scale)
{
  g_autofree guint8 *rgb = NULL;
  g_autoptr(GBytes) bytes = NULL;
  int side = size * scale;
  guint8 *big;

  g_return_val_if_fail (pixels != NULL && size > 0 && scale >= 1, NULL);

  rgb = rgb_from_pixels (pixels, size, channels);
  big = g_malloc ((size_t) side * side * 3);
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++)
      memcpy (big + ((size_t) y * side + x) * 3,
              rgb + ((size_t) (y / scale) * size + x / scale) * 3, 3);
  bytes = g_bytes_new_take (big, (gsize) side * side * 3);
  return gdk_memory_texture_new (side, side, GDK_MEMORY_R8G8B8, bytes, (gsize) side * 3);
}

/* @image fitted as training placed its kind, as model pixels. */
static GBytes *
pixels_from_image (const TfImage *image, int size, int channels, int grey_side)
{
  gsize n = (gsize) size * size * channels;
  float *pixels = g_new (float, n);

  tf_image_to_model_picture (image, size, channels, grey_side, pixels);
  return g_bytes_new_take (pixels, n * sizeof (float));
}

/* Unpremultiplied RGBA, then fitted as training images are. */
GBytes *
tf_pixels_new_from_texture (GdkTexture *texture, int size, int channels, int grey_side)
{
  TfImage image = { 0 };
  int width = gdk_texture_get_width (texture);
  int height = gdk_texture_get_height (texture);
  g_autofree guint8 *argb = g_malloc ((size_t) width * height * 4);
  GBytes *pixels;

  gdk_texture_download (texture, argb, (gsize) width * 4);
  image.width = width;
  image.height = height;
  image.rgba = g_malloc ((size_t) width * height * 4);
  for (int i = 0; i < width * height; i++)
    {
      /* CAIRO_FORMAT_ARGB32 in native byte order, premultiplied. */
      guint32 p = ((guint32 *) (gpointer) argb)[i];
      guint a = p >> 24;

      for (int c = 0; c < 3; c++)
        {
          guint v = (p >> (16 - 8 * c)) & 0xff;

          image.rgba[i * 4 + c] = a == 0 ? 0 : (guint8) MIN (255u, (v * 255 + a / 2) / a);
        }
      image.rgba[i * 4 + 3] = (guint8) a;
    }
  pixels = pixels_from_image (&image, size, channels, grey_side);
  tf_image_clear (&image);
  return pixels;
}

GBytes *
tf_pixels_new_from_file (GFile *file, int size, int channels, int grey_side, GError **error)
{
  g_autofree char *path = g_file_get_path (file);
  g_autoptr(GError) engine_error = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  TfImage image = { 0 };

  /* A PNG or a JPEG on disk: the engine's reader, so that the model sees
   * the same pixels as from `transfusion-cli caption` and `eval` (and a
   * photo upright by its EXIF orientation). Other kinds of file, and files
   * not on disk: GTK's loaders. */
  if (path != NULL)
    {
      if (tf_image_read (path, &image, &engine_error))
        {
          GBytes *pixels = pixels_from_image (&image, size, channels, grey_side);

          tf_image_clear (&image);
          return pixels;
        }
      if (!g_error_matches (engine_error, TF_ERROR, TF_ERROR_UNSUPPORTED))
        {
          g_propagate_error (error, g_steal_pointer (&engine_error));
          return NULL;
        }
    }
  texture = gdk_texture_new_from_file (file, error);

  if (texture == NULL)
    {
      g_autofree char *shown = g_file_get_parse_name (file);

      g_prefix_error (error, "%s: ", shown);
      return NULL;
    }
  return tf_pixels_new_from_texture (texture, size, channels, grey_side);
}

/* GtkFileChooserNative is the file chooser of GTK 4.8 (Debian 12). */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

GtkNativeDialog *
tf_picture_chooser_new (GtkWidget *widget, const char *title, const char *accept_label)
{
  GtkFileChooserNative *native;
  g_autoptr(GtkFileFilter) images = gtk_file_filter_new ();

  native = gtk_file_chooser_native_new (title, GTK_WINDOW (gtk_widget_get_root (widget)),
                                        GTK_FILE_CHOOSER_ACTION_OPEN, accept_label, _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (native), TRUE);
  gtk_file_filter_set_name (images, _("Pictures"));
  gtk_file_filter_add_mime_type (images, "image/png");
  gtk_file_filter_add_mime_type (images, "image/jpeg");
  gtk_file_filter_add_mime_type (images, "image/tiff");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), images);
  return GTK_NATIVE_DIALOG (native);
}

G_GNUC_END_IGNORE_DEPRECATIONS

static void
tf_image_view_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  TfImageView *self = TF_IMAGE_VIEW (widget);
  int width = gtk_widget_get_width (widget);
  int height = gtk_widget_get_height (widget);
  int side = MIN (width, height);
  double scale;
  graphene_rect_t square;
  GskRoundedRect rounded;
  cairo_t *cr;

  if (self->surface == NULL || side <= 0)
    return;

  /* Whole multiples of the image when it fits, so every model pixel is the
   * same number of screen pixels. */
  scale = side >= self->size ? (double) (side / self->size) : (double) side / self->size;
  side = (int) (scale * self->size);
  graphene_rect_init (&square, (width - side) / 2, (height - side) / 2, side, side);
  gsk_rounded_rect_init_from_rect (&rounded, &square, MIN (side / 24.0f, 8.0f));

  gtk_snapshot_push_rounded_clip (snapshot, &rounded);
  cr = gtk_snapshot_append_cairo (snapshot, &square);
  cairo_translate (cr, square.origin.x, square.origin.y);
  cairo_scale (cr, scale, scale);
  cairo_set_source_surface (cr, self->surface, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_rectangle (cr, 0, 0, self->size, self->size);
  cairo_fill (cr);
  cairo_destroy (cr);
  gtk_snapshot_pop (snapshot);
}

static void
tf_image_view_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                       int *minimum, int *natural, int *minimum_baseline, int *natural_baseline)
{
  TfImageView *self = TF_IMAGE_VIEW (widget);

  /* At least the image itself; more when there is room. */
  *minimum = self->size;
  *natural = MAX (self->size, for_size > 0 ? for_size : 0);
}

static void
tf_image_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TfImageView *self = TF_IMAGE_VIEW (object);

  switch (prop_id)
    {
    case PROP_HAS_IMAGE:
      g_value_set_boolean (value, self->surface != NULL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tf_image_view_finalize (GObject *object)
{
  TfImageView *self = TF_IMAGE_VIEW (object);

  g_clear_pointer (&self->surface, cairo_surface_destroy);
  G_OBJECT_CLASS (tf_image_view_parent_class)->finalize (object);
}

static void
tf_image_view_class_init (TfImageViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->get_property = tf_image_view_get_property;
  object_class->finalize = tf_image_view_finalize;
  widget_class->snapshot = tf_image_view_snapshot;
  widget_class->measure = tf_image_view_measure;

  properties[PROP_HAS_IMAGE] =
    g_param_spec_boolean ("has-image", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_css_name (widget_class, "tf-image-view");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
tf_image_view_init (TfImageView *self)
{
}
