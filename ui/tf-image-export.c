/* tf-image-export.c: a model image leaving the program (see the header). */
#include "config.h"

#include "tf-image-export.h"

#include <glib/gi18n.h>

#include "tf-image-view.h"
#include "tf-model-info.h"
#include "tf-window.h"

/* Where the last image was saved, for the next Save As of any view. */
static GFile *last_folder;

void
tf_image_export_copy (GtkWidget *widget, GBytes *pixels, int size, int channels)
{
  g_autoptr(GdkTexture) texture = NULL;

  g_return_if_fail (GTK_IS_WIDGET (widget) && pixels != NULL);
  texture = tf_texture_new_from_pixels (g_bytes_get_data (pixels, NULL), size, channels,
                                        TF_IMAGE_EXPORT_SCALE);
  gdk_clipboard_set_texture (gtk_widget_get_clipboard (widget), texture);
  tf_widget_add_toast (widget, _("Image copied"), NULL, NULL, NULL);
}

typedef struct {
  GtkWidget *widget;      /* weak: the toast goes to its window */
  GBytes    *pixels;
  int        size, channels;
  char      *parameters;
} SaveRequest;

static void
save_request_free (SaveRequest *request)
{
  g_clear_weak_pointer (&request->widget);
  g_bytes_unref (request->pixels);
  g_free (request->parameters);
  g_free (request);
}

/* GtkFileChooserNative is the file chooser of GTK 4.8 (Debian 12). */
G_GNUC_BEGIN_IGNORE_DEPRECATIONS

static void
on_save_response (GtkNativeDialog *dialog, int response, SaveRequest *request)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file != NULL ? g_file_get_path (file) : NULL;
      g_autoptr(GError) error = NULL;
      GtkWidget *widget = request->widget;

      if (path == NULL)
        g_set_error (&error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                     _("Only local files can be written"));
      else
        tf_write_generated_png (path, g_bytes_get_data (request->pixels, NULL), request->size,
                                request->channels, TF_IMAGE_EXPORT_SCALE, request->parameters,
                                &error);
      if (error == NULL)
        {
          g_clear_object (&last_folder);
          last_folder = g_file_get_parent (file);
        }
      if (widget != NULL && error == NULL)
        tf_widget_add_toast (widget, _("Image saved"), _("Open Folder"), "win.show-file",
                             g_variant_new_string (path));
      else if (widget != NULL)
        {
          /* Translators: a toast when Save As failed, with the file's message */
          g_autofree char *title = g_strdup_printf (_("Not saved: %s"), error->message);

          tf_widget_add_toast (widget, title, NULL, NULL, NULL);
        }
    }
  g_object_set_data (G_OBJECT (dialog), "tf-request", NULL);
  gtk_native_dialog_destroy (dialog);
  g_object_unref (dialog);
}

void
tf_image_export_save (GtkWidget *widget, GBytes *pixels, int size, int channels,
                      const char *parameters, const char *suggested_name)
{
  GtkFileChooserNative *native;
  g_autoptr(GtkFileFilter) png = gtk_file_filter_new ();
  SaveRequest *request;

  g_return_if_fail (GTK_IS_WIDGET (widget) && pixels != NULL);

  native = gtk_file_chooser_native_new (_("Save Image"), GTK_WINDOW (gtk_widget_get_root (widget)),
                                        GTK_FILE_CHOOSER_ACTION_SAVE, _("_Save"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (native), TRUE);
  gtk_file_filter_set_name (png, _("PNG images"));
  gtk_file_filter_add_mime_type (png, "image/png");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), png);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (native),
                                     suggested_name != NULL ? suggested_name : "image.png");
  if (last_folder != NULL)
    gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (native), last_folder, NULL);
  else
    {
      const char *pictures = g_get_user_special_dir (G_USER_DIRECTORY_PICTURES);
      g_autoptr(GFile) folder = g_file_new_for_path (pictures != NULL ? pictures
                                                                      : g_get_home_dir ());

      gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (native), folder, NULL);
    }

  request = g_new0 (SaveRequest, 1);
  g_set_weak_pointer (&request->widget, widget);
  request->pixels = g_bytes_ref (pixels);
  request->size = size;
  request->channels = channels;
  request->parameters = g_strdup (parameters);
  g_object_set_data_full (G_OBJECT (native), "tf-request", request,
                          (GDestroyNotify) save_request_free);
  g_signal_connect (native, "response", G_CALLBACK (on_save_response), request);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

G_GNUC_END_IGNORE_DEPRECATIONS

GdkContentProvider *
tf_image_export_drag_content (GtkDragSource *source, GBytes *pixels, int size, int channels,
                              const char *path)
{
  g_autoptr(GdkTexture) texture = NULL;
  GdkContentProvider *providers[2];
  guint n = 0;

  g_return_val_if_fail (pixels != NULL, NULL);
  texture = tf_texture_new_from_pixels (g_bytes_get_data (pixels, NULL), size, channels,
                                        TF_IMAGE_EXPORT_SCALE);
  gtk_drag_source_set_icon (source, GDK_PAINTABLE (texture), 16, 16);
  if (path != NULL)
    {
      g_autoptr(GFile) file = g_file_new_for_path (path);

      providers[n++] = gdk_content_provider_new_typed (G_TYPE_FILE, file);
    }
  providers[n++] = gdk_content_provider_new_typed (GDK_TYPE_TEXTURE, texture);
  return gdk_content_provider_new_union (providers, n);
}
