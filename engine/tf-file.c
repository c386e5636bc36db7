/* tf-file.c: writing a file atomically (see tf-file.h). */
#include "tf-file.h"
#include "tf-config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

struct _TfAtomicFile {
  char *path;
  char *tmp_path;
  char *shown;      /* @path for messages */
  int   fd;         /* -1 once closed */
};

static gboolean
set_write_error (GError **error, const TfAtomicFile *file, int err)
{
  g_set_error (error, TF_ERROR, TF_ERROR_IO, "%s: could not write: %s", file->shown,
               g_strerror (err));
  return FALSE;
}

static void
atomic_file_free (TfAtomicFile *file)
{
  g_free (file->path);
  g_free (file->tmp_path);
  g_free (file->shown);
  g_free (file);
}

TfAtomicFile *
tf_atomic_file_new (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  TfAtomicFile *file = g_new0 (TfAtomicFile, 1);
  file->path = g_strdup (path);
  file->shown = g_filename_display_name (path);
  file->tmp_path = g_strconcat (path, ".XXXXXX", NULL);
  file->fd = g_mkstemp_full (file->tmp_path, O_RDWR | O_CLOEXEC, 0666);
  if (file->fd < 0)
    {
      set_write_error (error, file, errno);
      atomic_file_free (file);
      return NULL;
    }
  return file;
}

gboolean
tf_atomic_file_write (TfAtomicFile *file, const void *data, size_t len, GError **error)
{
  g_return_val_if_fail (file != NULL && file->fd >= 0, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  const guint8 *p = data;
  while (len > 0)
    {
      /* Linux writes at most about 2 GiB at once. */
      ssize_t n = write (file->fd, p, MIN (len, (size_t) 1 << 30));
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return set_write_error (error, file, errno);
        }
      if (n == 0)
        return set_write_error (error, file, ENOSPC);
      p += n;
      len -= (size_t) n;
    }
  return TRUE;
}

/* Makes the rename durable. Some file systems cannot sync a directory. */
static int
sync_directory (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0)
    return errno;
  int err = 0;
  if (fsync (fd) != 0 && errno != EINVAL && errno != ENOTSUP)
    err = errno;
  close (fd);
  return err;
}

gboolean
tf_atomic_file_commit (TfAtomicFile *file, GError **error)
{
  g_return_val_if_fail (file != NULL && file->fd >= 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  int err = 0;
  if (fsync (file->fd) != 0)
    err = errno;
  if (close (file->fd) != 0 && err == 0)
    err = errno;
  file->fd = -1;
  if (err == 0 && g_rename (file->tmp_path, file->path) != 0)
    err = errno;
  if (err != 0)
    {
      set_write_error (error, file, err);
      tf_atomic_file_abort (file);
      return FALSE;
    }
  /* The new file is in place; only its durability is in question now. */
  err = sync_directory (file->path);
  if (err != 0)
    set_write_error (error, file, err);
  atomic_file_free (file);
  return err == 0;
}

void
tf_atomic_file_abort (TfAtomicFile *file)
{
  if (file == NULL)
    return;
  if (file->fd >= 0)
    close (file->fd);
  g_unlink (file->tmp_path);
  atomic_file_free (file);
}

/* The six characters g_mkstemp puts in place of XXXXXX. */
static gboolean
is_temp_suffix (const char *s)
{
  for (int i = 0; i < 6; i++)
    if (!g_ascii_isalnum (s[i]))
      return FALSE;
  return s[6] == '\0';
}

int
tf_atomic_file_remove_stale (const char *path)
{
  g_return_val_if_fail (path != NULL, 0);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  const size_t base_len = strlen (base);
  g_autoptr (GDir) listing = g_dir_open (dir, 0, NULL);
  if (listing == NULL)
    return 0;
  int removed = 0;
  for (const char *name; (name = g_dir_read_name (listing)) != NULL;)
    if (strncmp (name, base, base_len) == 0 && name[base_len] == '.' &&
        is_temp_suffix (name + base_len + 1))
      {
        g_autofree char *stale = g_build_filename (dir, name, NULL);
        if (g_unlink (stale) == 0)
          removed++;
      }
  return removed;
}
