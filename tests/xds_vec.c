/* SPDX-License-Identifier: Apache-2.0 */
#include "xds_vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TEST_SRCDIR
#define TEST_SRCDIR "."
#endif

int xv_encode(const char *type, const char *text, uint8_t **out, size_t *len) {
  char in[] = "/tmp/xv_inXXXXXX", outp[] = "/tmp/xv_outXXXXXX";
  int fi = mkstemp(in), fo = mkstemp(outp);
  *out = NULL;
  *len = 0;
  if (fi < 0 || fo < 0)
    return -1;
  size_t tl = strlen(text);
  int ok = write(fi, text, tl) == (ssize_t)tl;
  close(fi);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd %s/libmesh/xds/proto && protoc --encode=meshxds.%s base.proto "
           "endpoint.proto cluster.proto route.proto listener.proto tls.proto "
           "filters.proto < %s > %s", TEST_SRCDIR, type, in, outp);
  int rc = ok ? system(cmd) : -1;
  unlink(in);
  if (rc != 0) {
    fprintf(stderr, "protoc --encode=meshxds.%s failed on:\n%s\n", type, text);
    close(fo);
    unlink(outp);
    return -1;
  }
  FILE *f = fdopen(fo, "rb");
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
      }
      buf = nb;
    }
  }
  fclose(f);
  unlink(outp);
  if (!buf)
    return -1;
  *out = buf;
  *len = n;
  return 0;
}

char *xv_any(const char *url, const char *type, const char *text) {
  uint8_t *b;
  size_t n;
  if (xv_encode(type, text, &b, &n))
    return NULL;
  size_t cap = strlen(url) + 64 + n * 4;
  char *s = malloc(cap);
  if (!s) {
    free(b);
    return NULL;
  }
  size_t o = (size_t)snprintf(s, cap, "type_url: \"%s\" value: \"", url);
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(s + o, cap - o, "\\%03o", b[i]);
  snprintf(s + o, cap - o, "\"");
  free(b);
  return s;
}
