/* SPDX-License-Identifier: Apache-2.0 */
/* DNS source through c-ares, driven by the worker loop (ares_loop.c).
 *
 * A round queries A and/or AAAA for the name, or SRV and then A and AAAA
 * for each target.  When every query has answered, the addresses become
 * the endpoint set and the next round is due after the smallest TTL seen,
 * clamped to [min_ttl_ms, max_ttl_ms].  NXDOMAIN and NODATA are answers
 * (no endpoints), as in Envoy; SERVFAIL, REFUSED, timeouts, unreachable
 * servers and malformed responses fail the whole round: the last good set
 * stays and the round is retried with backoff. */
#include "discovery/ares_loop.h"
#include "discovery/discovery.h"
#include "discovery/dnsmsg.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_MAX_TARGETS 256
#define DNS_MAX_ADDRS 4096

enum { REC_A, REC_AAAA, REC_BOTH, REC_SRV };
static const char *const record_names[] = {"A", "AAAA", "A+AAAA", "SRV", NULL};

typedef struct dns_addr {
  char addr[INET6_ADDRSTRLEN];
  uint16_t port;
  uint32_t priority, weight;
} dns_addr_t;

typedef struct dns_src {
  mesh__disc_svc_t *d;
  mesh__ares_t *ares;
  bool stopping;
  const char *name;
  uint16_t port;
  int record;
  mesh__dns_cfg_t cfg;
  int64_t round_timer;

  /* the round in progress */
  int pending;
  bool failed;
  char err[200];
  uint32_t ttl;
  dns_addr_t *res;
  size_t nres, capres;
  size_t ntargets;
  unsigned failures; /* consecutive failed rounds */
} dns_src_t;

typedef struct qctx {
  dns_src_t *s;
  int qtype;
  uint16_t port;
  uint32_t priority, weight;
  char name[MESH__DISC_MAX_HOSTNAME + 2];
} qctx_t;

/* ---- config ----------------------------------------------------------------- */

void mesh__disc_check_dns(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"type",       "name",       "port",
                                     "record",     "servers",    "min_ttl_ms",
                                     "max_ttl_ms", "timeout_ms", NULL};
  char p[MESH__PATH_MAX];
  mesh__cfg_object(c, v, path, keys);
  const char *name;
  mesh__cfg_path(p, path, "name");
  if (!mesh__cfg_string(c, v, path, "name", NULL, &name)) {
    if (!cJSON_GetObjectItemCaseSensitive(v, "name"))
      mesh__cfg_error(c, p, "required for type \"dns\"");
  } else {
    unsigned char buf[16];
    if (!mesh__disc_valid_address(name) || inet_pton(AF_INET, name, buf) == 1 ||
        inet_pton(AF_INET6, name, buf) == 1)
      mesh__cfg_error(c, p, "not a DNS name");
  }
  int record;
  mesh__cfg_enum(c, v, path, "record", record_names, REC_BOTH, &record);
  int64_t port;
  bool has_port = mesh__cfg_int(c, v, path, "port", 1, 65535, 0, &port);
  mesh__cfg_path(p, path, "port");
  if (record == REC_SRV && cJSON_GetObjectItemCaseSensitive(v, "port"))
    mesh__cfg_error(c, p, "not used with SRV records (ports come from them)");
  else if (record != REC_SRV && !has_port &&
           !cJSON_GetObjectItemCaseSensitive(v, "port"))
    mesh__cfg_error(c, p, "required for A/AAAA records");
  mesh__dns_cfg_check(c, v, path);
}

/* ---- a resolution round ------------------------------------------------------- */

static void round_timer_cb(void *user);
static void query(dns_src_t *s, const char *name, int qtype, uint16_t port,
                  uint32_t prio, uint32_t weight);

static void fail(dns_src_t *s, const char *what, const char *name, int status) {
  if (s->failed)
    return; /* report the first cause */
  s->failed = true;
  snprintf(s->err, sizeof s->err, "%s %.100s: %s", what, name,
           ares_strerror(status));
}

static void add_addr(dns_src_t *s, const char *addr, const qctx_t *q) {
  if (s->nres >= DNS_MAX_ADDRS)
    return;
  if (s->nres == s->capres) {
    size_t cap = s->capres ? s->capres * 2 : 16;
    dns_addr_t *n = realloc(s->res, cap * sizeof *n);
    if (!n) {
      s->failed = true;
      snprintf(s->err, sizeof s->err, "out of memory");
      return;
    }
    s->res = n;
    s->capres = cap;
  }
  dns_addr_t *a = &s->res[s->nres++];
  mesh__strlcpy(a->addr, addr, sizeof a->addr);
  a->port = q->port;
  a->priority = q->priority;
  a->weight = q->weight;
}

static void note_ttl(dns_src_t *s, const unsigned char *abuf, int alen,
                     int type) {
  uint32_t ttl;
  size_t count;
  if (mesh__dns_answer_ttl(abuf, (size_t)alen, type, &ttl, &count) ==
          MESH_OK &&
      ttl < s->ttl)
    s->ttl = ttl;
}

static void parse_a(dns_src_t *s, const qctx_t *q, const unsigned char *abuf,
                    int alen) {
  int n = DNS_MAX_ADDRS;
  struct ares_addrttl *v = calloc((size_t)n, sizeof *v);
  if (!v) {
    fail(s, "A", q->name, ARES_ENOMEM);
    return;
  }
  int rc = ares_parse_a_reply(abuf, alen, NULL, v, &n);
  if (rc == ARES_ENODATA) {
    n = 0;
  } else if (rc != ARES_SUCCESS) {
    fail(s, "A", q->name, rc);
    n = 0;
  }
  for (int i = 0; i < n; i++) {
    char txt[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &v[i].ipaddr, txt, sizeof txt))
      add_addr(s, txt, q);
  }
  free(v);
  if (rc == ARES_SUCCESS)
    note_ttl(s, abuf, alen, ns_t_a);
}

static void parse_aaaa(dns_src_t *s, const qctx_t *q,
                       const unsigned char *abuf, int alen) {
  int n = DNS_MAX_ADDRS;
  struct ares_addr6ttl *v = calloc((size_t)n, sizeof *v);
  if (!v) {
    fail(s, "AAAA", q->name, ARES_ENOMEM);
    return;
  }
  int rc = ares_parse_aaaa_reply(abuf, alen, NULL, v, &n);
  if (rc == ARES_ENODATA) {
    n = 0;
  } else if (rc != ARES_SUCCESS) {
    fail(s, "AAAA", q->name, rc);
    n = 0;
  }
  for (int i = 0; i < n; i++) {
    char txt[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &v[i].ip6addr, txt, sizeof txt))
      add_addr(s, txt, q);
  }
  free(v);
  if (rc == ARES_SUCCESS)
    note_ttl(s, abuf, alen, ns_t_aaaa);
}

static void parse_srv(dns_src_t *s, const qctx_t *q, const unsigned char *abuf,
                      int alen) {
  struct ares_srv_reply *srv = NULL;
  int rc = ares_parse_srv_reply(abuf, alen, &srv);
  if (rc == ARES_ENODATA)
    return;
  if (rc != ARES_SUCCESS) {
    fail(s, "SRV", q->name, rc);
    return;
  }
  note_ttl(s, abuf, alen, ns_t_srv);
  for (struct ares_srv_reply *r = srv; r && !s->failed; r = r->next) {
    /* "." means "no service here" (RFC 2782); port 0 cannot be dialed. */
    if (!r->host || !*r->host || strcmp(r->host, ".") == 0 || r->port == 0)
      continue;
    if (!mesh__disc_valid_address(r->host) ||
        s->ntargets >= DNS_MAX_TARGETS)
      continue;
    s->ntargets++;
    /* RFC 2782 weight 0 = "very rarely": the smallest weight we have. */
    uint32_t w = r->weight ? r->weight : 1;
    query(s, r->host, ns_t_a, r->port, r->priority, w);
    query(s, r->host, ns_t_aaaa, r->port, r->priority, w);
  }
  ares_free_data(srv);
}

static void finish_round(dns_src_t *s) {
  mesh__disc_svc_t *d = s->d;
  int64_t next;
  if (s->failed) {
    s->failures++;
    mesh__disc_error(d, "%s", s->err);
    next = mesh__dns_retry_ms(&s->cfg, s->failures);
  } else {
    s->failures = 0;
    mesh__ep_t *eps = calloc(s->nres ? s->nres : 1, sizeof *eps);
    if (!eps) {
      mesh__disc_error(d, "out of memory");
    } else {
      for (size_t i = 0; i < s->nres; i++) {
        eps[i].address = s->res[i].addr;
        eps[i].port = s->res[i].port;
        eps[i].priority = s->res[i].priority;
        eps[i].weight = s->res[i].weight;
        eps[i].health = MESH__HEALTH_UNKNOWN;
      }
      mesh__disc_apply(d, eps, s->nres);
      free(eps);
    }
    next = mesh__dns_refresh_ms(&s->cfg, s->ttl);
  }
  int64_t t = mesh__loop_timer(d->m->loop, next, round_timer_cb, s);
  s->round_timer = t > 0 ? t : 0;
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf,
                      int alen) {
  (void)timeouts;
  qctx_t *q = arg;
  dns_src_t *s = q->s;
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED ||
      s->stopping) {
    free(q);
    return;
  }
  if (status == ARES_SUCCESS && abuf) {
    if (q->qtype == ns_t_a)
      parse_a(s, q, abuf, alen);
    else if (q->qtype == ns_t_aaaa)
      parse_aaaa(s, q, abuf, alen);
    else
      parse_srv(s, q, abuf, alen);
  } else if (status != ARES_ENODATA && status != ARES_ENOTFOUND) {
    fail(s, q->qtype == ns_t_a      ? "A"
            : q->qtype == ns_t_aaaa ? "AAAA"
                                    : "SRV",
         q->name, status);
  }
  free(q);
  if (--s->pending == 0)
    finish_round(s);
}

/* RFC 6761 §6.3: a localhost name gets loopback for an address query
 * and a negative answer (no records) otherwise, and no query is sent. */
static void localhost_answer(dns_src_t *s, int qtype, const qctx_t *q) {
  if (qtype != ns_t_a && qtype != ns_t_aaaa)
    return;
  struct sockaddr_storage ss;
  if (mesh__localhost_addrs(qtype == ns_t_a ? AF_INET : AF_INET6, 0, &ss,
                            1) == 0)
    return; /* no IPv6 loopback here: no AAAA */
  add_addr(s, qtype == ns_t_a ? "127.0.0.1" : "::1", q);
}

static void query(dns_src_t *s, const char *name, int qtype, uint16_t port,
                  uint32_t prio, uint32_t weight) {
  if (mesh__is_localhost(name)) {
    qctx_t lq = {.s = s, .port = port, .priority = prio, .weight = weight};
    localhost_answer(s, qtype, &lq);
    return;
  }
  qctx_t *q = calloc(1, sizeof *q);
  if (!q) {
    s->failed = true;
    snprintf(s->err, sizeof s->err, "out of memory");
    return;
  }
  q->s = s;
  q->qtype = qtype;
  q->port = port;
  q->priority = prio;
  q->weight = weight;
  mesh__strlcpy(q->name, name, sizeof q->name);
  s->pending++;
  /* The callback may run inside ares_query (e.g. no servers): pending is
   * already counted, so the round cannot finish early. */
  ares_query(mesh__ares_channel(s->ares), q->name, ns_c_in, qtype, on_answer, q);
}

static void start_round(dns_src_t *s) {
  s->failed = false;
  s->err[0] = '\0';
  s->ttl = UINT32_MAX;
  s->nres = 0;
  s->ntargets = 0;
  /* Hold one count while queries are issued so that answers arriving
   * synchronously cannot complete the round half-way. */
  s->pending = 1;
  if (s->record == REC_A || s->record == REC_BOTH)
    query(s, s->name, ns_t_a, s->port, 0, 1);
  if (s->record == REC_AAAA || s->record == REC_BOTH)
    query(s, s->name, ns_t_aaaa, s->port, 0, 1);
  if (s->record == REC_SRV)
    query(s, s->name, ns_t_srv, 0, 0, 1);
  if (--s->pending == 0)
    finish_round(s);
  mesh__ares_kick(s->ares);
}

static void round_timer_cb(void *user) {
  dns_src_t *s = user;
  s->round_timer = 0;
  start_round(s);
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int dns_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  dns_src_t *s = calloc(1, sizeof *s);
  if (!s)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  s->d = d;
  d->src = s;
  mesh__cfg_t c = {0};
  int64_t port;
  mesh__cfg_string(&c, d->cfg, "", "name", "", &s->name);
  mesh__cfg_int(&c, d->cfg, "", "port", 1, 65535, 0, &port);
  s->port = (uint16_t)port;
  mesh__cfg_enum(&c, d->cfg, "", "record", record_names, REC_BOTH, &s->record);
  mesh__dns_cfg_read(d->cfg, &s->cfg);
  char what[MESH__PATH_MAX];
  snprintf(what, sizeof what, "services.%s.discovery", d->svc->name);
  int rc = mesh__ares_new(d->m, &s->cfg, d->svc->name, "dns", what, &s->ares,
                          st);
  if (rc != MESH_OK)
    return rc;
  /* First round on the loop's first turn: nothing blocks mesh_new(). */
  int64_t t = mesh__loop_timer(d->m->loop, 0, round_timer_cb, s);
  if (t < 0)
    return mesh__fail(st, (int)t, "cannot arm the DNS timer");
  s->round_timer = t;
  return MESH_OK;
}

static void dns_stop(mesh__disc_svc_t *d) {
  dns_src_t *s = d->src;
  if (!s)
    return;
  s->stopping = true;
  if (s->round_timer > 0)
    mesh__loop_timer_cancel(d->m->loop, s->round_timer);
  mesh__ares_free(s->ares); /* callbacks see ARES_EDESTRUCTION */
  free(s->res);
  free(s);
  d->src = NULL;
}

const mesh__disc_source_t mesh__disc_dns = {"dns", dns_start, dns_stop};
