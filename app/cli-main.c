/* cli-main.c: `transfusion-cli`; the commands live in tf-cli.c. */
#include "config.h"

#include "tf-model-info.h"

#include <glib/gi18n.h>
#include <locale.h>
#include <stdio.h>

#include "tf-cli.h"

int
main (int argc, char *argv[])
{
  tf_configure_threads ();
  setlocale (LC_ALL, "");
  tf_bind_translations ();

  return tf_cli_run (argc, argv, stdout, stderr);
}
