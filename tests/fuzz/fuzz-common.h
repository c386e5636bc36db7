/* fuzz-common.h: what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each fuzz-NAME.c defines LLVMFuzzerTestOneInput; it is linked either with
 * libFuzzer (-Dfuzz=true, clang) or with replay.c, which feeds it the files
 * of the committed corpus (the `fuzz` test suite). */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

#include "tf-image.h"
#include "tf-safetensors.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Once per process: warnings about bad input are expected and dropped (and
 * not fatal, whatever G_DEBUG says); criticals and errors still abort, so a
 * failed g_return_if_fail is a crash the fuzzer reports. */
void tf_fuzz_init (void);

/* Aborts, naming @what, unless exactly one of @ok and *@error holds: a
 * refusal must say why, and success must not leave an error behind. Clears
 * *@error (so the variable can take the next call's); with TF_FUZZ_VERBOSE
 * set, prints its message first. */
void tf_fuzz_check_result (const char *what, gboolean ok, GError **error);

/* The input as a safetensors file named @name (the bytes are not copied:
 * the file lives no longer than the call), checked as above; NULL when it
 * was refused. */
TfSafetensors *tf_fuzz_open_safetensors (const uint8_t *data, size_t size, const char *name);

/* Reads every byte of @data, so that a buffer shorter than it claims is seen
 * by AddressSanitizer; the sum of the bytes goes to tf_fuzz_sink, so that
 * the reads cannot be left out. */
extern volatile uint8_t tf_fuzz_sink;
void tf_fuzz_touch (const void *data, size_t size);

/* Checks an image a reader accepted: a sane size, every pixel readable,
 * model pixels in [-1, 1] at sizes below and above it, grey and RGB. */
void tf_fuzz_check_image (const TfImage *image);
