/* tf-cli.h: the command-line tool, as a library that tests can call. */
#pragma once

#include <glib.h>
#include <stdio.h>

G_BEGIN_DECLS

typedef enum {
  TF_CLI_EXIT_OK = 0,
  TF_CLI_EXIT_FAILURE = 1,  /* a file is bad, or the work failed */
  TF_CLI_EXIT_USAGE = 2,    /* the command line is wrong */
} TfCliExit;

/* Runs `transfusion-cli ARGS…` (@argv[0] is the program) and returns the
 * exit status. Results go to @out, messages to @err. Never exits the
 * process, so tests can call it. */
int tf_cli_run (int argc, char **argv, FILE *out, FILE *err);

G_END_DECLS
