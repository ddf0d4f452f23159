/* SPDX-License-Identifier: Apache-2.0 */
/* PEM files in and out, and the RNG used to make keys and signatures. */
#include "identity/pemfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/platform_util.h>

void mesh__mbedtls_err(int err, char *buf, size_t len) {
  mbedtls_strerror(err, buf, len);
  /* mbedTLS texts contain " - " separators but no newlines; keep as is. */
}

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

int mesh__pem_load_crts(mbedtls_x509_crt *crt, const char *path,
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
  int r = mbedtls_x509_crt_parse(crt, buf, pem ? len : len - 1);
  free(buf);
  if (r == 0)
    return MESH_OK;
  if (r > 0)
    return mesh__fail(st, MESH_ERR_PEM,
                      "%s: %d certificate%s could not be parsed", path, r,
                      r > 1 ? "s" : "");
  char e[160];
  mesh__mbedtls_err(r, e, sizeof e);
  if (r == MBEDTLS_ERR_X509_ALLOC_FAILED)
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", path);
  return mesh__fail(st, MESH_ERR_PEM, "%s: malformed certificate: %s", path,
                    e);
}

int mesh__pem_load_key(mbedtls_pk_context *pk, const char *path,
                       mesh_status_t *st) {
  unsigned char *buf;
  size_t len;
  int rc = mesh__pem_read(path, &buf, &len, st);
  if (rc != MESH_OK)
    return rc;
  bool pem = is_pem(buf);
  int r = mbedtls_pk_parse_key(pk, buf, pem ? len : len - 1, NULL,
                               0 MESH__MBX_RNG);
  mbedtls_platform_zeroize(buf, len);
  free(buf);
  if (r == 0)
    return MESH_OK;
  char e[160];
  mesh__mbedtls_err(r, e, sizeof e);
  if (r == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
    return mesh__fail(st, MESH_ERR_PEM,
                      "%s: private key is encrypted (not supported)", path);
  if (r == MBEDTLS_ERR_PK_ALLOC_FAILED)
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", path);
  return mesh__fail(st, MESH_ERR_PEM, "%s: malformed private key: %s", path,
                    e);
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

int mesh__rng_init(mesh__rng_t *r, mesh_status_t *st) {
  mbedtls_entropy_init(&r->entropy);
  mbedtls_ctr_drbg_init(&r->drbg);
  static const unsigned char pers[] = "libmesh identity";
  int e = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
                                pers, sizeof pers - 1);
  if (e == 0)
    return MESH_OK;
  char t[160];
  mesh__mbedtls_err(e, t, sizeof t);
  return mesh__fail(st, MESH_ERR_TLS, "cannot seed the RNG: %s", t);
}

void mesh__rng_free(mesh__rng_t *r) {
  mbedtls_ctr_drbg_free(&r->drbg);
  mbedtls_entropy_free(&r->entropy);
}

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>

int mesh__mbx_rng(void *p, unsigned char *out, size_t len) {
  (void)p;
  if (psa_crypto_init() != PSA_SUCCESS)
    return -1;
  return psa_generate_random(out, len) == PSA_SUCCESS ? 0 : -1;
}
#endif
