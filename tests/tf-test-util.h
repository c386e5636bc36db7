/* tf-test-util.h: helpers shared by the tests. */
#pragma once

#include <glib.h>
#include <stddef.h>

#include "transfusion.h"

/* Compares got against ref element-wise with |got − ref| ≤ atol + rtol·|ref|.
 * On failure prints the tensor name, the worst element (index, got, ref) and
 * the number of elements out of tolerance, and returns FALSE. Always records
 * in *worst (if non-NULL) the largest share of its tolerance that any element
 * used, max |got − ref| / (atol + rtol·|ref|): ≤ 1 passes. */
gboolean tf_test_close_f32 (const char *name, const float *got, const float *ref, size_t n,
                            double atol, double rtol, double *worst);
gboolean tf_test_close_f64 (const char *name, const double *got, const double *ref, size_t n,
                            double atol, double rtol, double *worst);

/* Path of a file in the source tree's tests/ folder. */
char *tf_test_data_path (const char *first, ...) G_GNUC_NULL_TERMINATED;

/* The "tiny" preset with a vocabulary of @vocab_size and the seven special
 * tokens at its top. */
TfConfig tf_test_tiny_config (int vocab_size);

/* Writes a randomly initialised model of tf_test_tiny_config (64) as
 * DIR/tiny.safetensors and returns the path; fills @config and @n_params
 * when non-NULL. */
char *tf_test_save_tiny_model (const char *dir, TfConfig *config, guint64 *n_params);
