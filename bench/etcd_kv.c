/* SPDX-License-Identifier: Apache-2.0 */
/* See etcd_kv.h. */
#include "etcd_kv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static size_t b64(char *out, const char *in, size_t n) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)in[i] << 16;
    if (i + 1 < n)
      v |= (unsigned char)in[i + 1] << 8;
    if (i + 2 < n)
      v |= (unsigned char)in[i + 2];
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  out[o] = '\0';
  return o;
}

/* POST body to path; 0 when etcd answered 200. */
static int post(const char *hostport, const char *path, const char *body) {
  char host[64];
  int port = 0;
  if (sscanf(hostport, "%63[^:]:%d", host, &port) != 2)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  size_t blen = strlen(body);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                    "application/json\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n",
                    path, hostport, blen);
  int rc = -1;
  if (write(fd, head, (size_t)hl) == hl &&
      write(fd, body, blen) == (ssize_t)blen) {
    char resp[512];
    ssize_t k = read(fd, resp, sizeof resp - 1);
    if (k > 12) {
      resp[k] = '\0';
      rc = strncmp(resp + 9, "200", 3) == 0 ? 0 : -1;
    }
    while (k > 0) /* drain to the close */
      k = read(fd, resp, sizeof resp);
  }
  close(fd);
  return rc;
}

int etcd_put_many(const char *hostport, char *const *keys, char *const *vals,
                  size_t n) {
  for (size_t i = 0; i < n; i += 100) {
    size_t m = n - i < 100 ? n - i : 100, cap = 64, o = 0;
    for (size_t j = 0; j < m; j++)
      cap += 64 + 2 * (strlen(keys[i + j]) + strlen(vals[i + j]));
    char *body = malloc(cap);
    if (!body)
      return -1;
    o += (size_t)snprintf(body, cap, "{\"success\": [");
    for (size_t j = 0; j < m; j++) {
      o += (size_t)snprintf(body + o, cap - o,
                            "%s{\"requestPut\": {\"key\": \"", j ? ", " : "");
      o += b64(body + o, keys[i + j], strlen(keys[i + j]));
      o += (size_t)snprintf(body + o, cap - o, "\", \"value\": \"");
      o += b64(body + o, vals[i + j], strlen(vals[i + j]));
      o += (size_t)snprintf(body + o, cap - o, "\"}}");
    }
    snprintf(body + o, cap - o, "]}");
    int rc = post(hostport, "/v3/kv/txn", body);
    free(body);
    if (rc != 0)
      return -1;
  }
  return 0;
}

int etcd_put(const char *hostport, const char *key, const char *val) {
  char *k = (char *)key, *v = (char *)val;
  return etcd_put_many(hostport, &k, &v, 1);
}

int etcd_del(const char *hostport, const char *key) {
  char body[600], enc[520];
  if (strlen(key) > 380)
    return -1;
  b64(enc, key, strlen(key));
  snprintf(body, sizeof body, "{\"key\": \"%s\"}", enc);
  return post(hostport, "/v3/kv/deleterange", body);
}

void etcd_naming_value(char *buf, size_t size, const char *addr) {
  snprintf(buf, size, "{\"Op\":0,\"Addr\":\"%s\",\"Metadata\":null}", addr);
}
