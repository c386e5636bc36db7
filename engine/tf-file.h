/* tf-file.h: writing a file atomically.
 *
 * The bytes go to a temporary file "PATH.XXXXXX" beside @path, made with
 * mode 0666 less the umask. Committing fsyncs it, renames it over @path and
 * fsyncs the directory: a crash leaves either the old file or the new one.
 * A failure leaves @path as it was and no temporary file behind. Every error
 * is TF_ERROR_IO, "PATH: could not write: REASON". */
#pragma once

#include <glib.h>
#include <stddef.h>

G_BEGIN_DECLS

typedef struct _TfAtomicFile TfAtomicFile;

/* Creates the temporary file beside @path. */
TfAtomicFile *tf_atomic_file_new (const char *path, GError **error);

/* Appends all of @data; a short write (a full disk) is an error. After an
 * error, abort. */
gboolean tf_atomic_file_write (TfAtomicFile *file, const void *data, size_t len,
                               GError **error);

/* Puts the file in place of @path and frees @file, whether or not it
 * succeeds. */
gboolean tf_atomic_file_commit (TfAtomicFile *file, GError **error);

/* Removes the temporary file and frees @file; @path is untouched. NULL is
 * allowed. */
void tf_atomic_file_abort (TfAtomicFile *file);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TfAtomicFile, tf_atomic_file_abort)

/* Removes the temporary files "PATH.XXXXXX" that writes of @path left when
 * their process was killed before committing (they can be as big as the
 * file). Only for a path no other process is writing at the same time.
 * Returns how many were removed. */
int tf_atomic_file_remove_stale (const char *path);

G_END_DECLS
