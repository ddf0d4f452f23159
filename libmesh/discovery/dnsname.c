/* SPDX-License-Identifier: Apache-2.0 */
/* One name kept resolved on the worker loop through c-ares
 * (ares_getaddrinfo: the hosts file, then DNS), as Envoy's LOGICAL_DNS
 * cluster resolves its endpoint:
 *
 * - the lookup family chooses the addresses (AUTO: IPv6 ones, else IPv4;
 *   V4_PREFERRED: the reverse; ALL: IPv4 then IPv6; V4_ONLY / V6_ONLY ask
 *   for that family only);
 * - the next query is due refresh_ms after an answer, or after the
 *   answer's smallest TTL with respect_ttl (refresh_ms when it is 0);
 * - NXDOMAIN and NODATA are answers: the name has no address (state
 *   NONE); a failure (SERVFAIL, refused, timeout, malformed) keeps the
 *   last addresses (the first one: NONE, with the error) and retries with jittered exponential backoff from
 *   fail_base_ms to fail_max_ms (Envoy's dns_failure_refresh_rate).
 *
 * on_change runs when the state or the first address changes, on the loop
 * thread, from the answer's callback. */
#include "discovery/ares_loop.h"
#include "discovery/discovery.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mesh__dnsname {
  mesh_t *m;
  mesh__dnsname_opts_t o;
  char *name;
  mesh__ares_t *ares;
  mesh__dns_cfg_t cfg; /* from o.resolver */
  int64_t timer;
  bool stopping, inflight;
  mesh__dnsname_info_t info;
};

static void on_tick(void *user);

static void arm(mesh__dnsname_t *n, int64_t delay_ms) {
  int64_t t = mesh__loop_timer(n->m->loop, delay_ms, on_tick, n);
  n->timer = t > 0 ? t : 0;
}

/* The first address of the family's choice in ai; *count: how many it
 * chose; *ttl: their smallest TTL (and the CNAMEs'). */
static bool choose(const mesh__dnsname_t *n, const struct ares_addrinfo *ai,
                   char *first, size_t *count, uint32_t *ttl) {
  int prefer = n->o.family == MESH__DNS_AUTO || n->o.family == MESH__DNS_V6_ONLY
                   ? AF_INET6 : AF_INET;
  size_t have[2] = {0, 0}; /* [0] the preferred family, [1] the other */
  for (const struct ares_addrinfo_node *p = ai ? ai->nodes : NULL; p;
       p = p->ai_next)
    if (p->ai_addr && (p->ai_family == AF_INET || p->ai_family == AF_INET6))
      have[p->ai_family == prefer ? 0 : 1]++;
  bool only = n->o.family == MESH__DNS_V4_ONLY || n->o.family == MESH__DNS_V6_ONLY;
  int fam = have[0] ? prefer : (!only && have[1]) ? (prefer == AF_INET ? AF_INET6
                                                                         : AF_INET)
                                                  : 0;
  bool all = n->o.family == MESH__DNS_ALL;
  *count = all ? have[0] + have[1] : fam == prefer ? have[0] : fam ? have[1] : 0;
  *ttl = UINT32_MAX;
  first[0] = '\0';
  for (const struct ares_addrinfo_node *p = ai ? ai->nodes : NULL; p && fam;
       p = p->ai_next) {
    if (!p->ai_addr || (p->ai_family != fam && !all) ||
        (p->ai_family != AF_INET && p->ai_family != AF_INET6))
      continue;
    uint32_t t = p->ai_ttl > 0 ? (uint32_t)p->ai_ttl : 0;
    *ttl = t < *ttl ? t : *ttl;
    if (first[0] || p->ai_family != fam)
      continue; /* ALL: the preferred (IPv4) family's first comes first */
    if (!mesh__ares_node_text(p, first))
      first[0] = '\0';
  }
  *ttl = mesh__ares_cname_ttl(ai, *ttl);
  return first[0] != '\0';
}

/* Record an answer (addr "" : none) and say whether it changed. */
static bool settle(mesh__dnsname_t *n, const char *addr, size_t count) {
  int state = addr[0] ? MESH__DNSNAME_OK : MESH__DNSNAME_NONE;
  bool changed = state != n->info.state || strcmp(addr, n->info.addr) != 0;
  n->info.state = state;
  mesh__strlcpy(n->info.addr, addr, sizeof n->info.addr);
  n->info.naddrs = count;
  n->info.err[0] = '\0';
  n->info.failures = 0;
  return changed;
}

static void on_addrinfo(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res) {
  (void)timeouts;
  mesh__dnsname_t *n = arg;
  if (status == ARES_EDESTRUCTION || n->stopping) {
    ares_freeaddrinfo(res);
    return;
  }
  n->inflight = false;
  n->info.queries++;
  char first[INET6_ADDRSTRLEN];
  size_t count = 0;
  uint32_t ttl = 0;
  bool changed = false;
  int64_t next;
  if (status == ARES_SUCCESS || status == ARES_ENOTFOUND ||
      status == ARES_ENODATA) {
    if (status != ARES_SUCCESS || !choose(n, res, first, &count, &ttl))
      first[0] = '\0', count = 0, ttl = 0;
    changed = settle(n, first, count);
    next = n->o.respect_ttl && ttl > 0 && ttl != UINT32_MAX
               ? (int64_t)ttl * 1000 : n->o.refresh_ms;
  } else {
    n->info.failures++;
    snprintf(n->info.err, sizeof n->info.err, "resolve %.100s: %s", n->name,
             ares_strerror(status));
    next = mesh__disc_backoff(n->o.fail_base_ms, n->o.fail_max_ms,
                              n->info.failures - 1);
    /* the first query failed: an answer too (no address yet), so that
     * what waits for one (an aggregate) goes on without this name */
    changed = n->info.state == MESH__DNSNAME_PENDING;
    if (changed)
      n->info.state = MESH__DNSNAME_NONE;
  }
  ares_freeaddrinfo(res);
  arm(n, next);
  if (changed && n->o.on_change)
    n->o.on_change(n->o.user);
}

/* RFC 6761 §6.3: "localhost" is loopback without a query. */
static void localhost_answer(mesh__dnsname_t *n) {
  struct sockaddr_storage ss;
  bool has6 = mesh__localhost_addrs(AF_INET6, 0, &ss, 1) > 0;
  const char *a = "127.0.0.1";
  if (n->o.family == MESH__DNS_V6_ONLY)
    a = has6 ? "::1" : "";
  else if (n->o.family == MESH__DNS_AUTO && has6)
    a = "::1";
  bool changed = settle(n, a, a[0] ? 1 : 0);
  n->info.queries++;
  arm(n, n->o.refresh_ms);
  if (changed && n->o.on_change)
    n->o.on_change(n->o.user);
}

static void on_tick(void *user) {
  mesh__dnsname_t *n = user;
  n->timer = 0;
  if (n->stopping || n->inflight)
    return;
  if (mesh__is_localhost(n->name)) {
    localhost_answer(n);
    return;
  }
  struct ares_addrinfo_hints h;
  memset(&h, 0, sizeof h);
  h.ai_family = n->o.family == MESH__DNS_V4_ONLY   ? AF_INET
                : n->o.family == MESH__DNS_V6_ONLY ? AF_INET6
                                                   : AF_UNSPEC;
  h.ai_socktype = SOCK_STREAM;
  /* answer order kept (no RFC 6724 sort); $CARES_HOSTS as resolve.c */
  h.ai_flags = ARES_AI_NOSORT | ARES_AI_ENVHOSTS;
  n->inflight = true;
  ares_getaddrinfo(mesh__ares_channel(n->ares), n->name, NULL, &h,
                   on_addrinfo, n);
  mesh__ares_kick(n->ares);
}

int mesh__dnsname_new(mesh_t *m, const mesh__dnsname_opts_t *o,
                      mesh__dnsname_t **out, mesh_status_t *st) {
  *out = NULL;
  mesh__dnsname_t *n = calloc(1, sizeof *n);
  if (!n || !(n->name = strdup(o->name))) {
    free(n);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  n->m = m;
  n->o = *o;
  n->o.name = n->name;
  if (n->o.refresh_ms < 1)
    n->o.refresh_ms = 5000;
  if (n->o.fail_base_ms < 1)
    n->o.fail_base_ms = n->o.refresh_ms;
  if (n->o.fail_max_ms < n->o.fail_base_ms)
    n->o.fail_max_ms = 10 * n->o.fail_base_ms;
  mesh__dns_cfg_read(o->resolver, &n->cfg);
  int rc = mesh__ares_new(m, &n->cfg, n->name, "logical_dns",
                          o->what ? o->what : "resolver", &n->ares, st);
  n->o.what = NULL; /* the caller's string: not kept */
  if (rc == MESH_OK) {
    arm(n, 0); /* the first query at the loop's next turn */
    if (!n->timer)
      rc = mesh__fail(st, MESH_ERR_NOMEM, "cannot arm the DNS timer");
  }
  if (rc != MESH_OK) {
    mesh__dnsname_free(n);
    return rc;
  }
  *out = n;
  return MESH_OK;
}

void mesh__dnsname_check(mesh__cfg_t *c, const cJSON *obj, const char *path) {
  static const char *const keys[] = {"servers", "timeout_ms", NULL};
  if (obj && mesh__cfg_object(c, obj, path, keys))
    mesh__dns_cfg_check(c, obj, path);
}

void mesh__dnsname_get(const mesh__dnsname_t *n, mesh__dnsname_info_t *out) {
  *out = n->info;
}

void mesh__dnsname_free(mesh__dnsname_t *n) {
  if (!n)
    return;
  n->stopping = true;
  if (n->timer > 0)
    mesh__loop_timer_cancel(n->m->loop, n->timer);
  mesh__ares_free(n->ares); /* a query out ends with ARES_EDESTRUCTION */
  free(n->name);
  free(n);
}
