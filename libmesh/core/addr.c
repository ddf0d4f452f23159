/* SPDX-License-Identifier: Apache-2.0 */
/* "host:port" and "[v6]:port" syntax, the one copy every part uses
 * (discovery's addresses, tls's dial and listen targets).  Pure: no I/O, no
 * resolution; what a host may be is the caller's rule. */
#include "core/core.h"

#include <string.h>

static bool port_parse(const char *s, long min_port, uint16_t *port) {
  if (!*s || strlen(s) > 5)
    return false;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    v = v * 10 + (*p - '0');
  }
  if (v < min_port || v > 65535)
    return false;
  *port = (uint16_t)v;
  return true;
}

int mesh__hostport_split(const char *s, char *host, size_t hostlen,
                         long min_port, uint16_t *port) {
  if (!s || !*s)
    return MESH__HP_EMPTY;
  const char *colon, *hs = s;
  size_t hl;
  if (*s == '[') {
    const char *close = strchr(s, ']');
    if (!close || close[1] != ':')
      return MESH__HP_BRACKETS;
    hs = s + 1;
    hl = (size_t)(close - hs);
    colon = close + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || strchr(s, ':') != colon)
      return MESH__HP_NO_PORT; /* no port, or a bare v6 address */
    hl = (size_t)(colon - s);
  }
  if (hl == 0 || hl >= hostlen)
    return MESH__HP_HOST_LEN;
  memcpy(host, hs, hl);
  host[hl] = '\0';
  if (!port_parse(colon + 1, min_port, port))
    return MESH__HP_PORT;
  return MESH__HP_OK;
}
