/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz DNS answers as the DNS discovery source reads them: c-ares' A, AAAA
 * and SRV parsers (what src_dns.c calls on every answer), the SRV target
 * check, and libmesh's own answer walk for TTLs (dnsmsg.c).
 * Input: a DNS response message, as the server sent it.
 * Properties: no crash or leak; when c-ares and libmesh's walk both accept
 * an answer, the walk counts at least the records c-ares returned, and
 * TTLs with the top bit set read as 0 (RFC 2181). */
#include <arpa/inet.h>
#define CARES_NO_DEPRECATED /* see discovery/ares_loop.h */
#include <ares.h>
#include <arpa/nameser.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "discovery/discovery.h"
#include "discovery/dnsmsg.h"
#include "fuzz.h"

#define MAXA 64

static void walk(const uint8_t *data, size_t size, int type, int ares_rc,
                 int n) {
  uint32_t ttl;
  size_t count;
  int rc = mesh__dns_answer_ttl(data, size, type, &ttl, &count);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PARSE);
  if (rc == MESH_OK) {
    FUZZ_ASSERT(count == 0 ? ttl == UINT32_MAX || ttl <= 0x7fffffffu
                           : ttl <= 0x7fffffffu);
  }
  /* The walk is stricter than c-ares (it refuses names of more than 127
   * labels, which RFC 1035's 255-octet limit rules out; corpus/dns/
   * long-name): it may fail where c-ares succeeds, and the source then
   * uses its minimum TTL.  When both read the answer they must agree. */
  if (ares_rc == ARES_SUCCESS && rc == MESH_OK)
    FUZZ_ASSERT(count >= (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65535) /* a DNS message over TCP is at most this long */
    return 0;
  /* Exact-size copy: ASan sees any read past the end. */
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  int alen = (int)size;

  struct ares_addrttl a[MAXA];
  int n = MAXA;
  int rc = ares_parse_a_reply(buf, alen, NULL, a, &n);
  for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
    char txt[INET6_ADDRSTRLEN];
    FUZZ_ASSERT(inet_ntop(AF_INET, &a[i].ipaddr, txt, sizeof txt));
    FUZZ_ASSERT(mesh__disc_valid_address(txt));
  }
  walk(buf, size, ns_t_a, rc, rc == ARES_SUCCESS ? n : 0);

  struct ares_addr6ttl a6[MAXA];
  n = MAXA;
  rc = ares_parse_aaaa_reply(buf, alen, NULL, a6, &n);
  for (int i = 0; rc == ARES_SUCCESS && i < n; i++) {
    char txt[INET6_ADDRSTRLEN];
    FUZZ_ASSERT(inet_ntop(AF_INET6, &a6[i].ip6addr, txt, sizeof txt));
    FUZZ_ASSERT(mesh__disc_valid_address(txt));
  }
  walk(buf, size, ns_t_aaaa, rc, rc == ARES_SUCCESS ? n : 0);

  struct ares_srv_reply *srv = NULL;
  rc = ares_parse_srv_reply(buf, alen, &srv);
  int nsrv = 0;
  for (struct ares_srv_reply *r = srv; rc == ARES_SUCCESS && r; r = r->next) {
    nsrv++;
    /* the target check src_dns.c applies before querying a target */
    if (r->host)
      (void)mesh__disc_valid_address(r->host);
  }
  walk(buf, size, ns_t_srv, rc, nsrv);
  if (srv)
    ares_free_data(srv);
  free(buf);
  return 0;
}
