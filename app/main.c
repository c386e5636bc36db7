/* main.c: the desktop application, `transfusion [MODEL.safetensors…]`. */
#include "config.h"

#include "tf-model-info.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "tf-application.h"

int
main (int argc, char *argv[])
{
  tf_configure_threads ();
  tf_choose_renderer ();
  g_autoptr(TfApplication) app = NULL;

  /* GTK sets the locale itself; the catalogue must be bound before any
   * string is translated. */
  tf_bind_translations ();

  app = tf_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
