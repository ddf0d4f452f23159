/* SPDX-License-Identifier: Apache-2.0 */
/* A bounds-checked walk over a DNS response's answer section, for what
 * c-ares 1.18's typed parsers do not report (the TTL of SRV records).
 * Bytes in, numbers out: no I/O, fed directly by the fuzzer. */
#include "discovery/dnsmsg.h"

#include "core/core.h"

static uint16_t rd16(const unsigned char *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

/* Skip an encoded name at *off.  A compression pointer ends the name (the
 * pointed-to bytes are elsewhere and need not be followed to skip). */
static int skip_name(const unsigned char *b, size_t len, size_t *off) {
  size_t o = *off;
  for (int labels = 0; labels < 128; labels++) {
    if (o >= len)
      return MESH_ERR_PARSE;
    unsigned l = b[o];
    if ((l & 0xc0) == 0xc0) {
      if (o + 2 > len)
        return MESH_ERR_PARSE;
      *off = o + 2;
      return MESH_OK;
    }
    if (l & 0xc0)
      return MESH_ERR_PARSE; /* reserved label types */
    o += 1 + l;
    if (l == 0) {
      *off = o;
      return MESH_OK;
    }
  }
  return MESH_ERR_PARSE;
}

int mesh__dns_answer_ttl(const unsigned char *buf, size_t len, int type,
                         uint32_t *ttl, size_t *count) {
  *ttl = UINT32_MAX;
  *count = 0;
  if (!buf || len < 12)
    return MESH_ERR_PARSE;
  unsigned qd = rd16(buf + 4), an = rd16(buf + 6);
  size_t off = 12;
  for (unsigned i = 0; i < qd; i++) {
    if (skip_name(buf, len, &off) != MESH_OK || off + 4 > len)
      return MESH_ERR_PARSE;
    off += 4;
  }
  for (unsigned i = 0; i < an; i++) {
    if (skip_name(buf, len, &off) != MESH_OK || off + 10 > len)
      return MESH_ERR_PARSE;
    unsigned rtype = rd16(buf + off);
    uint32_t rttl = rd32(buf + off + 4);
    size_t rdlen = rd16(buf + off + 8);
    off += 10;
    if (off + rdlen > len)
      return MESH_ERR_PARSE;
    off += rdlen;
    /* RFC 2181 section 8: a TTL with the top bit set is treated as 0. */
    if (rttl & 0x80000000u)
      rttl = 0;
    /* A CNAME on the way counts too: the answer is only as fresh as the
     * shortest-lived record it depends on. */
    if ((int)rtype == type || rtype == 5 /* CNAME */) {
      if (rttl < *ttl)
        *ttl = rttl;
      if ((int)rtype == type)
        (*count)++;
    }
  }
  return MESH_OK;
}
