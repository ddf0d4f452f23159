/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: DNS message helpers (no I/O). */
#ifndef MESH_DISCOVERY_DNSMSG_H
#define MESH_DISCOVERY_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

/** Smallest TTL (seconds) among the answer records of `type` (and any
 *  CNAME) in a DNS response; *ttl = UINT32_MAX when there are none.
 *  *count receives the number of answer records of `type`.
 *  @return MESH_OK, or MESH_ERR_PARSE for a truncated or malformed message. */
int mesh__dns_answer_ttl(const unsigned char *buf, size_t len, int type,
                         uint32_t *ttl, size_t *count);

#endif
