/* SPDX-License-Identifier: Apache-2.0 */
/* Opening the files the library reads (identity, bundles, the config file,
 * the file discovery source, etcd's TLS files).
 *
 * An operator's path may name a FIFO, a character device or a socket by
 * mistake (or by an attacker's doing in a shared directory).  A plain
 * open(O_RDONLY) of a FIFO blocks until a writer appears: mesh_new, or the
 * worker thread re-reading a rotated file, would hang for good.  So every
 * file is opened with O_NONBLOCK (which makes opening a FIFO return at
 * once), checked with fstat() and refused unless it is a regular file; the
 * flag is then cleared so reads behave as usual.  Symbolic links to
 * regular files (Kubernetes secret volumes) are followed as before. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_name(mode_t mode) {
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISDIR(mode))
    return "a directory";
  return "not a regular file";
}

int mesh__file_open(const char *path, int *fd_out, mesh_status_t *st) {
  *fd_out = -1;
  if (!path || !*path)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "empty file name");
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    return mesh__fail(st, MESH_ERR_IO, "%s: cannot open: %s", path,
                      strerror(e));
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return mesh__fail(st, MESH_ERR_IO, "%s: stat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return mesh__fail(st, MESH_ERR_IO,
                      "%s: not a regular file (%s): refused", path,
                      kind_name(sb.st_mode));
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  *fd_out = fd;
  return MESH_OK;
}

int mesh__file_check(const char *path, mesh_status_t *st) {
  int fd;
  int rc = mesh__file_open(path, &fd, st);
  if (rc == MESH_OK)
    close(fd);
  return rc;
}
