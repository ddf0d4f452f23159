/* SPDX-License-Identifier: Apache-2.0 */
/* IP blocks for ipBlocks / notIpBlocks / source.ip: parse and match, v4 and
 * v6.  inet_pton does the address syntax; the prefix is ours. */
#include <arpa/inet.h>
#include <string.h>

#include "authz/authz.h"

static int parse_prefix(const char *p, int max) {
  if (!*p || strlen(p) > 3)
    return -1;
  int v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return -1;
    v = v * 10 + (*p - '0');
  }
  return v <= max ? v : -1;
}

int mesh__cidr_parse(const char *s, mesh__cidr_t *out) {
  if (!s || !out)
    return MESH_ERR_PARSE;
  char buf[INET6_ADDRSTRLEN + 8];
  if (mesh__strlcpy(buf, s, sizeof buf) >= sizeof buf)
    return MESH_ERR_PARSE;
  char *slash = strchr(buf, '/');
  if (slash)
    *slash = '\0';
  memset(out, 0, sizeof *out);
  if (inet_pton(AF_INET, buf, out->addr) == 1) {
    out->family = 4;
    out->bits = 32;
  } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
    out->family = 6;
    out->bits = 128;
  } else {
    return MESH_ERR_PARSE;
  }
  if (slash) {
    const char *p = slash + 1;
    /* one spelling per block: no leading zeros ("/08") */
    if (p[0] == '0' && p[1] != '\0')
      return MESH_ERR_PARSE;
    int bits = parse_prefix(p, out->bits);
    if (bits < 0)
      return MESH_ERR_PARSE;
    out->bits = (uint8_t)bits;
  }
  return MESH_OK;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits) {
  unsigned full = bits / 8, rest = bits % 8;
  if (memcmp(a, b, full) != 0)
    return false;
  if (rest == 0)
    return true;
  uint8_t mask = (uint8_t)(0xffu << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool mesh__cidr_match(const mesh__cidr_t *c, const struct sockaddr *sa) {
  if (!c || !sa)
    return false;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    if (c->family != 4)
      return false;
    return prefix_eq(c->addr, (const uint8_t *)&in->sin_addr, c->bits);
  }
  if (sa->sa_family != AF_INET6)
    return false;
  const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  if (c->family == 6)
    return prefix_eq(c->addr, a, c->bits);
  if (memcmp(a, v4mapped, 12) == 0)
    return prefix_eq(c->addr, a + 12, c->bits);
  return false;
}

int mesh__ip_parse(const char *s, struct sockaddr_storage *out) {
  if (!s || !out)
    return MESH_ERR_PARSE;
  memset(out, 0, sizeof *out);
  struct sockaddr_in *in = (struct sockaddr_in *)out;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET, s, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    return MESH_OK;
  }
  if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    return MESH_OK;
  }
  return MESH_ERR_PARSE;
}

void mesh__ip_format(const struct sockaddr *sa, char *buf, size_t len) {
  if (!len)
    return;
  buf[0] = '\0';
  if (!sa)
    return;
  const void *a = NULL;
  if (sa->sa_family == AF_INET)
    a = &((const struct sockaddr_in *)sa)->sin_addr;
  else if (sa->sa_family == AF_INET6)
    a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
    buf[0] = '\0';
}
