/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: one DNS name kept resolved in the background, as
 * Envoy's LOGICAL_DNS cluster does (used by xds for LOGICAL_DNS clusters).
 *
 * Threads: created, read and freed on the loop thread (or in init, before
 * the loop starts); answers arrive on the loop thread and on_change runs
 * there, never inside mesh__dnsname_new. */
#ifndef MESH_DISCOVERY_DNSNAME_H
#define MESH_DISCOVERY_DNSNAME_H

#include <arpa/inet.h>
#include <stdbool.h>

#include "discovery/ares_loop.h"

/* Envoy's Cluster.DnsLookupFamily, same values. */
enum mesh__dns_family {
  MESH__DNS_AUTO = 0,         /* IPv6 addresses, else IPv4 */
  MESH__DNS_V4_ONLY = 1,
  MESH__DNS_V6_ONLY = 2,
  MESH__DNS_V4_PREFERRED = 3, /* IPv4 addresses, else IPv6 */
  MESH__DNS_ALL = 4,          /* IPv4 then IPv6 */
};

typedef struct mesh__dnsname_opts {
  const char *name;     /* a hostname or an IP literal (copied) */
  int family;           /* enum mesh__dns_family */
  int64_t refresh_ms;   /* from one answer to the next query */
  bool respect_ttl;     /* refresh after the answer's TTL (0: refresh_ms) */
  int64_t fail_base_ms, fail_max_ms; /* backoff after failed queries */
  mesh__dns_cfg_t cfg;  /* servers and timeout (servers borrowed) */
  const char *what;     /* where cfg comes from, for its errors ("xds.logical_dns") */
  void (*on_change)(void *user); /* the state or the first address changed */
  void *user;
} mesh__dnsname_opts_t;

enum mesh__dnsname_state {
  MESH__DNSNAME_PENDING = 0, /* no answer yet */
  MESH__DNSNAME_OK = 1,      /* addresses known */
  MESH__DNSNAME_NONE = 2,    /* NXDOMAIN or no address of the family */
};

typedef struct mesh__dnsname_info {
  int state;                    /* enum mesh__dnsname_state */
  char addr[INET6_ADDRSTRLEN];  /* the first address (state OK) */
  size_t naddrs;                /* addresses of the last good answer */
  char err[200];                /* the last failure ("" after an answer) */
  unsigned failures;            /* consecutive failed queries */
  uint64_t queries;             /* queries answered (good or bad) */
} mesh__dnsname_info_t;

typedef struct mesh__dnsname mesh__dnsname_t;

/** Start resolving o->name on m's loop (the first query at the loop's next
 *  turn).  @return MESH_OK, MESH_ERR_NOMEM, or the channel's error. */
int mesh__dnsname_new(mesh_t *m, const mesh__dnsname_opts_t *o,
                      mesh__dnsname_t **out, mesh_status_t *st);
/** What is known now (loop thread). */
void mesh__dnsname_get(const mesh__dnsname_t *n, mesh__dnsname_info_t *out);
/** Stop (a query in flight is cancelled; on_change is not called). */
void mesh__dnsname_free(mesh__dnsname_t *n);

#endif /* MESH_DISCOVERY_DNSNAME_H */
