/* SPDX-License-Identifier: Apache-2.0 */
/* PEM files in and out (parsing is the X.509 seam's, x509_be.h). */
#include "identity/pemfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int io_fail(mesh_status_t *st, const char *path, const char *what) {
  return mesh__fail(st, MESH_ERR_IO, "%s: %s: %s", path, what,
                    strerror(errno));
}

static int read_fd(int fd, const char *path, unsigned char *buf, size_t n,
                   mesh_status_t *st) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = read(fd, buf + off, n - off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return io_fail(st, path, "read");
    if (r == 0)
      break; /* shrank while reading: parse what we have */
    off += (size_t)r;
  }
  buf[off] = '\0';
  return (int)off;
}

int mesh__pem_read(const char *path, unsigned char **out, size_t *len,
                   mesh_status_t *st) {
  *out = NULL;
  *len = 0;
  /* Regular files only, refused without blocking (a FIFO would hang). */
  int fd;
  int rc = mesh__file_open(path, &fd, st);
  if (rc != MESH_OK)
    return rc;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    close(fd);
    return io_fail(st, path, "stat");
  }
  if ((uint64_t)sb.st_size > MESH__PEM_MAX) {
    close(fd);
    return mesh__fail(st, MESH_ERR_PEM, "%s: larger than %u bytes", path,
                      MESH__PEM_MAX);
  }
  size_t n = (size_t)sb.st_size;
  unsigned char *buf = malloc(n + 1);
  if (!buf) {
    close(fd);
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", path);
  }
  int got = read_fd(fd, path, buf, n, st);
  close(fd);
  if (got < 0) {
    free(buf);
    return got;
  }
  if (got == 0) {
    free(buf);
    return mesh__fail(st, MESH_ERR_PEM, "%s: file is empty", path);
  }
  *out = buf;
  *len = (size_t)got + 1;
  return MESH_OK;
}

static bool is_pem(const unsigned char *buf) {
  return strstr((const char *)buf, "-----BEGIN ") != NULL;
}

int mesh__pem_load_crts(mesh__x509_chain_t *crt, const char *path,
                        mesh_status_t *st) {
  unsigned char *buf;
  size_t len;
  int rc = mesh__pem_read(path, &buf, &len, st);
  if (rc != MESH_OK)
    return rc;
  bool pem = is_pem(buf);
  if (pem && !strstr((const char *)buf, "-----BEGIN CERTIFICATE-----")) {
    free(buf);
    return mesh__fail(st, MESH_ERR_PEM, "%s: no PEM CERTIFICATE block", path);
  }
  /* DER input must not count the NUL we appended. */
  rc = mesh__x509_chain_parse(crt, buf, pem ? len : len - 1, pem, path, st);
  free(buf);
  return rc;
}

/* Key bytes are wiped before the buffer is freed. */
static void wipe(unsigned char *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

int mesh__pem_load_key(mesh__x509_key_t **pk, const char *path,
                       mesh_status_t *st) {
  unsigned char *buf;
  size_t len;
  int rc = mesh__pem_read(path, &buf, &len, st);
  if (rc != MESH_OK)
    return rc;
  bool pem = is_pem(buf);
  rc = mesh__x509_key_parse(pk, buf, pem ? len : len - 1, pem, path, st);
  wipe(buf, len);
  free(buf);
  return rc;
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int mesh__file_write(const char *path, const void *data, size_t len,
                     mode_t mode, mesh_status_t *st) {
  static _Atomic unsigned counter;
  char tmp[4096];
  if (mesh__snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
                     atomic_fetch_add(&counter, 1)) < 0)
    return mesh__fail(st, MESH_ERR_IO, "%s: path too long", path);
  /* Created 0600 so key bytes are never readable by others, then widened
   * to the requested mode before the rename makes the file visible. */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return io_fail(st, path, "cannot create");
  bool ok = write_all(fd, data, len) == 0 && fchmod(fd, mode) == 0 &&
            fsync(fd) == 0;
  int saved = errno;
  ok = close(fd) == 0 && ok;
  if (ok && rename(tmp, path) == 0)
    return MESH_OK;
  if (ok)
    saved = errno;
  unlink(tmp);
  errno = saved;
  return io_fail(st, path, "cannot write");
}
