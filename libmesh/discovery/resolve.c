/* SPDX-License-Identifier: Apache-2.0 */
/* Hostnames in static, file and etcd endpoints, resolved on the worker
 * loop through c-ares (ares_getaddrinfo: the hosts file, then DNS; A and
 * AAAA), with the service's "resolver" settings or the system's
 * resolv.conf.
 *
 * As Envoy's STRICT_DNS: every address of a name becomes an endpoint with
 * the endpoint's port and attributes (the name is kept as its hostname),
 * and each name is re-resolved on its own after the smallest TTL of its
 * answer, clamped to [min_ttl_ms, max_ttl_ms].  NXDOMAIN and NODATA are
 * answers (the name has no addresses), as in Envoy.  A failure (SERVFAIL,
 * timeout, refused, a malformed answer) keeps the name's last addresses,
 * is reported, and the name is retried with backoff: fail static.  A set
 * from the source is published once each of its names has a first
 * answer, so the first dial never sees half a set. */
#include "discovery/ares_loop.h"
#include "discovery/discovery.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RES_MAX_ADDRS 4096 /* per name, as the DNS source */
/* Names due within this much of each other are asked in one round, so
 * names with the same TTL make one publish, not one each. */
#define RES_BATCH_MS 50

typedef struct rname {
  char *name;
  struct mesh__disc_resolver *r;
  char (*addrs)[INET6_ADDRSTRLEN];
  size_t naddrs;
  bool answered; /* has had an answer, good or bad */
  bool inflight; /* a lookup is out (its callback holds this entry) */
  bool used;     /* some endpoint of the current set names it */
  unsigned failures;
  int64_t due_ms;
} rname_t;

/* One endpoint of the source's set: an owned copy (sources lend theirs
 * only for the length of mesh__disc_apply). */
typedef struct rep {
  mesh__ep_t ep;
  cJSON *labels;
  rname_t *name; /* NULL: an IP literal */
} rep_t;

struct mesh__disc_resolver {
  mesh__disc_svc_t *d;
  mesh__dns_cfg_t cfg;
  mesh__ares_t *ares; /* created with the first name */
  bool active;        /* the source's current set holds names: ours */
  bool stopping;
  bool fresh;   /* a set from the source not published yet */
  bool failing; /* the last round had a failure */
  rep_t *eps;
  size_t neps;
  rname_t **names; /* sorted by name */
  size_t nnames;
  int pending;      /* lookups in flight (+1 while a batch is issued) */
  size_t completed; /* answers in this round */
  bool round_failed;
  char err[256]; /* the round's first failure */
  int64_t timer;
};

static void round_done(mesh__disc_resolver_t *r);

/* ---- helpers ------------------------------------------------------------------ */

static bool is_literal(const char *a) {
  unsigned char buf[16];
  return inet_pton(AF_INET, a, buf) == 1 || inet_pton(AF_INET6, a, buf) == 1;
}

bool mesh__disc_has_hostname(const mesh__ep_t *eps, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (eps[i].address && !is_literal(eps[i].address))
      return true;
  return false;
}

/* Remember the round's first failure (the one reported). */
static void note_failure(mesh__disc_resolver_t *r, const char *what,
                         const char *why) {
  if (r->round_failed)
    return;
  r->round_failed = true;
  snprintf(r->err, sizeof r->err, "%.100s: %.140s", what, why);
}

static char *dup_opt(const char *s, bool *oom) {
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *oom = true;
  return d;
}

static void rep_clear(rep_t *e) {
  free((char *)e->ep.address);
  free((char *)e->ep.region);
  free((char *)e->ep.zone);
  free((char *)e->ep.subzone);
  cJSON_Delete(e->labels);
}

static bool rep_copy(rep_t *dst, const mesh__ep_t *src) {
  bool oom = false;
  memset(dst, 0, sizeof *dst);
  dst->ep = *src;
  dst->ep.hostname = NULL;
  dst->ep.address = dup_opt(src->address, &oom);
  dst->ep.region = dup_opt(src->region, &oom);
  dst->ep.zone = dup_opt(src->zone, &oom);
  dst->ep.subzone = dup_opt(src->subzone, &oom);
  if (src->labels) {
    dst->labels = cJSON_Duplicate(src->labels, true);
    oom = oom || !dst->labels;
  }
  dst->ep.labels = dst->labels;
  return !oom && dst->ep.address;
}

static void reps_free(rep_t *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    rep_clear(&v[i]);
  free(v);
}

static void name_free(rname_t *n) {
  free(n->name);
  free(n->addrs);
  free(n);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_name(const void *key, const void *elem) {
  return strcmp((const char *)key, (*(rname_t *const *)elem)->name);
}

static rname_t *find_name(const mesh__disc_resolver_t *r, const char *name) {
  rname_t **p = bsearch(name, r->names, r->nnames, sizeof *r->names, cmp_name);
  return p ? *p : NULL;
}

/* ---- lookups ----------------------------------------------------------------- */

/* Keep the addresses of a good answer; *ttl gets its smallest TTL. */
static bool set_addrs(rname_t *n, const struct ares_addrinfo *ai,
                      uint32_t *ttl) {
  size_t count = 0;
  *ttl = UINT32_MAX;
  for (const struct ares_addrinfo_node *p = ai ? ai->nodes : NULL; p;
       p = p->ai_next)
    count++;
  if (count > RES_MAX_ADDRS)
    count = RES_MAX_ADDRS;
  char(*v)[INET6_ADDRSTRLEN] = calloc(count ? count : 1, sizeof *v);
  if (!v)
    return false;
  size_t k = 0;
  for (const struct ares_addrinfo_node *p = ai ? ai->nodes : NULL;
       p && k < count; p = p->ai_next) {
    if (!mesh__ares_node_text(p, v[k]))
      continue;
    k++;
    uint32_t t = p->ai_ttl > 0 ? (uint32_t)p->ai_ttl : 0;
    if (t < *ttl)
      *ttl = t;
  }
  /* A CNAME on the way bounds how long the answer holds, too. */
  *ttl = mesh__ares_cname_ttl(ai, *ttl);
  free(n->addrs);
  n->addrs = v;
  n->naddrs = k;
  return true;
}

static void on_addrinfo(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res) {
  (void)timeouts;
  rname_t *n = arg;
  mesh__disc_resolver_t *r = n->r;
  if (status == ARES_EDESTRUCTION || r->stopping) {
    ares_freeaddrinfo(res);
    return;
  }
  n->inflight = false;
  n->answered = true;
  r->completed++;
  int64_t now = mesh__now_ms();
  uint32_t ttl;
  if (status == ARES_SUCCESS && set_addrs(n, res, &ttl)) {
    n->failures = 0;
    n->due_ms = now + mesh__dns_refresh_ms(&r->cfg, ttl);
  } else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
    n->naddrs = 0; /* an answer: the name has no addresses */
    n->failures = 0;
    n->due_ms = now + mesh__dns_refresh_ms(&r->cfg, UINT32_MAX);
  } else {
    n->failures++;
    char what[128];
    snprintf(what, sizeof what, "resolve %.100s", n->name);
    note_failure(r, what,
                 status == ARES_SUCCESS ? "out of memory"
                                        : ares_strerror(status));
    n->due_ms = now + mesh__dns_retry_ms(&r->cfg, n->failures);
  }
  ares_freeaddrinfo(res);
  if (--r->pending == 0)
    round_done(r);
}

static bool ensure_channel(mesh__disc_resolver_t *r) {
  if (r->ares)
    return true;
  mesh__disc_svc_t *d = r->d;
  char what[MESH__PATH_MAX];
  snprintf(what, sizeof what, "services.%s.discovery.resolver", d->svc->name);
  mesh_status_t st;
  if (mesh__ares_new(d->m, &r->cfg, d->svc->name, d->source->name, what,
                     &r->ares, &st) == MESH_OK)
    return true;
  note_failure(r, "resolver", st.message);
  return false;
}

/* RFC 6761 §6.3: a localhost name is loopback, without a query (and so
 * without /etc/hosts); the answer holds until max_ttl_ms. */
static void localhost_answer(mesh__disc_resolver_t *r, rname_t *n) {
  struct sockaddr_storage ss[2];
  size_t k = mesh__localhost_addrs(AF_UNSPEC, 0, ss, 2);
  char(*v)[INET6_ADDRSTRLEN] = calloc(2, sizeof *v);
  n->answered = true;
  r->completed++;
  if (!v) {
    n->failures++;
    note_failure(r, "resolve localhost", "out of memory");
    n->due_ms = mesh__now_ms() + mesh__dns_retry_ms(&r->cfg, n->failures);
    return;
  }
  for (size_t i = 0; i < k; i++) {
    const void *a =
        ss[i].ss_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)&ss[i])->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)&ss[i])->sin6_addr;
    inet_ntop(ss[i].ss_family, a, v[i], sizeof v[i]);
  }
  free(n->addrs);
  n->addrs = v;
  n->naddrs = k;
  n->failures = 0;
  n->due_ms = mesh__now_ms() + mesh__dns_refresh_ms(&r->cfg, UINT32_MAX);
}

/* Ask for n's addresses.  Call between begin() and end(): the answer may
 * come at once (the hosts file, no servers, a localhost name). */
static void lookup(mesh__disc_resolver_t *r, rname_t *n) {
  if (mesh__is_localhost(n->name)) {
    localhost_answer(r, n);
    return;
  }
  if (!ensure_channel(r)) {
    n->answered = true;
    n->failures++;
    n->due_ms = mesh__now_ms() + mesh__dns_retry_ms(&r->cfg, n->failures);
    r->completed++;
    return;
  }
  struct ares_addrinfo_hints h;
  memset(&h, 0, sizeof h);
  /* Both families; no RFC 6724 sort (it connects a socket per address
   * and the set is ordered by address anyway). */
  h.ai_family = AF_UNSPEC;
  h.ai_socktype = SOCK_STREAM;
  /* ENVHOSTS: c-ares reads the hosts file named by $CARES_HOSTS when set
   * (an operator's override, and the tests' empty hosts file). */
  h.ai_flags = ARES_AI_NOSORT | ARES_AI_ENVHOSTS;
  n->inflight = true;
  r->pending++;
  ares_getaddrinfo(mesh__ares_channel(r->ares), n->name, NULL, &h,
                   on_addrinfo, n);
}

static void begin(mesh__disc_resolver_t *r) { r->pending++; }

static void end(mesh__disc_resolver_t *r) {
  mesh__ares_kick(r->ares);
  if (--r->pending == 0)
    round_done(r);
}

/* ---- publishing --------------------------------------------------------------- */

/* The source's set with each name replaced by its addresses. */
static void publish(mesh__disc_resolver_t *r, bool failed) {
  mesh__disc_svc_t *d = r->d;
  size_t total = 0;
  for (size_t i = 0; i < r->neps; i++)
    total += r->eps[i].name ? r->eps[i].name->naddrs : 1;
  bool cut = total > MESH__DISC_MAX_ENDPOINTS;
  if (cut)
    total = MESH__DISC_MAX_ENDPOINTS;
  mesh__ep_t *out = calloc(total ? total : 1, sizeof *out);
  if (!out) {
    mesh__disc_error(d, "out of memory");
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < r->neps && k < total; i++) {
    const rep_t *e = &r->eps[i];
    if (!e->name) {
      out[k++] = e->ep;
      continue;
    }
    for (size_t j = 0; j < e->name->naddrs && k < total; j++) {
      out[k] = e->ep;
      out[k].address = e->name->addrs[j];
      out[k].hostname = e->name->name;
      k++;
    }
  }
  /* The very first answer failed and nothing resolved: no set, so that a
   * dial reports the resolver's error rather than "no endpoints". */
  if (!(k == 0 && failed && !d->last)) {
    /* A good round clears the stale flag when it brings a new set from
     * the source or ends a run of failures; a routine refresh leaves it
     * to the source. */
    bool settle = !failed && !cut && (r->fresh || r->failing);
    mesh__disc_publish_set(d, out, k, settle);
  }
  r->fresh = false;
  free(out);
  if (cut)
    mesh__disc_error(d, "more than %d endpoints after resolving hostnames: "
                        "the rest are left out",
                     MESH__DISC_MAX_ENDPOINTS);
}

/* ---- scheduling ---------------------------------------------------------------- */

static void on_tick(void *user);

static void schedule(mesh__disc_resolver_t *r) {
  mesh__disc_svc_t *d = r->d;
  if (r->timer > 0)
    mesh__loop_timer_cancel(d->m->loop, r->timer);
  r->timer = 0;
  if (!r->active || r->stopping)
    return;
  int64_t due = INT64_MAX;
  for (size_t i = 0; i < r->nnames; i++) {
    const rname_t *n = r->names[i];
    if (n->used && n->answered && !n->inflight && n->due_ms < due)
      due = n->due_ms;
  }
  if (due == INT64_MAX)
    return;
  int64_t delay = due - mesh__now_ms();
  int64_t t = mesh__loop_timer(d->m->loop, delay > 0 ? delay : 0, on_tick, r);
  r->timer = t > 0 ? t : 0;
}

static void on_tick(void *user) {
  mesh__disc_resolver_t *r = user;
  r->timer = 0;
  int64_t soon = mesh__now_ms() + RES_BATCH_MS;
  begin(r);
  for (size_t i = 0; i < r->nnames; i++) {
    rname_t *n = r->names[i];
    if (n->used && !n->inflight && n->due_ms <= soon)
      lookup(r, n);
  }
  end(r);
}

/* Every lookup of the round has answered. */
static void round_done(mesh__disc_resolver_t *r) {
  bool failed = r->round_failed;
  char err[sizeof r->err];
  mesh__strlcpy(err, r->err, sizeof err);
  r->round_failed = false;
  r->err[0] = '\0';
  if (r->completed > 0 || r->fresh) {
    r->completed = 0;
    if (r->active) {
      publish(r, failed);
      if (failed)
        mesh__disc_error(r->d, "%s", err);
      r->failing = failed;
    }
  }
  schedule(r);
}

/* ---- the source's sets ----------------------------------------------------------- */

static rname_t *name_new(mesh__disc_resolver_t *r, const char *name) {
  rname_t *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  n->name = strdup(name);
  if (!n->name) {
    free(n);
    return NULL;
  }
  n->r = r;
  return n;
}

/* Merge the sorted, possibly repeated names hn[0..k) into r->names: keep
 * the known ones (marked used), add the new, drop the unused ones that no
 * lookup holds. */
static int merge_names(mesh__disc_resolver_t *r, const char **hn, size_t k) {
  rname_t **v = malloc((r->nnames + k + 1) * sizeof *v);
  if (!v)
    return MESH_ERR_NOMEM;
  size_t i = 0, j = 0, o = 0;
  int rc = MESH_OK;
  while (i < r->nnames || j < k) {
    int c = i == r->nnames ? 1 : j == k ? -1 : strcmp(r->names[i]->name, hn[j]);
    if (c < 0) { /* known, no longer named */
      rname_t *n = r->names[i++];
      n->used = false;
      if (n->inflight)
        v[o++] = n;
      else
        name_free(n);
      continue;
    }
    rname_t *n = c == 0 ? r->names[i++] : name_new(r, hn[j]);
    if (!n) {
      rc = MESH_ERR_NOMEM; /* keep what is merged; the rest is skipped */
      while (i < r->nnames)
        v[o++] = r->names[i++];
      break;
    }
    n->used = true;
    v[o++] = n;
    const char *cur = hn[j];
    while (j < k && strcmp(hn[j], cur) == 0)
      j++;
  }
  free(r->names);
  r->names = v;
  r->nnames = o;
  return rc;
}

/* Index the names of eps and link each endpoint to its entry. */
static int link_names(mesh__disc_resolver_t *r, rep_t *eps, size_t n) {
  const char **hn = malloc((n ? n : 1) * sizeof *hn);
  if (!hn)
    return MESH_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!is_literal(eps[i].ep.address))
      hn[k++] = eps[i].ep.address;
  qsort(hn, k, sizeof *hn, cmp_str);
  int rc = merge_names(r, hn, k);
  free(hn);
  if (rc != MESH_OK)
    return rc;
  for (size_t i = 0; i < n; i++)
    if (!is_literal(eps[i].ep.address))
      eps[i].name = find_name(r, eps[i].ep.address);
  return MESH_OK;
}

static mesh__disc_resolver_t *resolver_get(mesh__disc_svc_t *d) {
  if (d->resolver)
    return d->resolver;
  mesh__disc_resolver_t *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
  r->d = d;
  mesh__dns_cfg_read(cJSON_GetObjectItemCaseSensitive(d->cfg, "resolver"),
                     &r->cfg);
  d->resolver = r;
  return r;
}

int mesh__resolver_update(mesh__disc_svc_t *d, const mesh__ep_t *eps,
                          size_t n) {
  mesh__disc_resolver_t *r = resolver_get(d);
  rep_t *v = r ? calloc(n ? n : 1, sizeof *v) : NULL;
  size_t copied = 0;
  while (v && copied < n && rep_copy(&v[copied], &eps[copied]))
    copied++;
  if (!v || copied < n) {
    reps_free(v, v ? n : 0); /* zeroed past the copies: safe to clear */
    mesh__disc_error(d, "out of memory");
    return MESH_ERR_NOMEM;
  }
  int rc = link_names(r, v, n);
  if (rc != MESH_OK) {
    reps_free(v, n);
    mesh__disc_error(d, "out of memory");
    return rc;
  }
  reps_free(r->eps, r->neps);
  r->eps = v;
  r->neps = n;
  r->active = true;
  r->fresh = true;
  begin(r);
  for (size_t i = 0; i < r->nnames; i++) {
    rname_t *nm = r->names[i];
    if (nm->used && !nm->answered && !nm->inflight)
      lookup(r, nm);
  }
  end(r);
  /* Refreshes of other names are still out: do not hold a set whose names
   * all have answers behind them. */
  if (r->fresh && r->pending > 0) {
    bool ready = true;
    for (size_t i = 0; i < r->nnames && ready; i++)
      ready = !r->names[i]->used || r->names[i]->answered;
    if (ready)
      publish(r, false);
  }
  return MESH_OK;
}

void mesh__resolver_release(mesh__disc_svc_t *d) {
  mesh__disc_resolver_t *r = d->resolver;
  if (!r || !r->active)
    return;
  r->active = false;
  r->fresh = false;
  reps_free(r->eps, r->neps);
  r->eps = NULL;
  r->neps = 0;
  merge_names(r, NULL, 0); /* forget every name no lookup holds */
  schedule(r);             /* inactive: cancels the timer */
}

void mesh__resolver_free(mesh__disc_svc_t *d) {
  mesh__disc_resolver_t *r = d->resolver;
  if (!r)
    return;
  r->stopping = true;
  if (r->timer > 0)
    mesh__loop_timer_cancel(d->m->loop, r->timer);
  mesh__ares_free(r->ares); /* lookups out end with ARES_EDESTRUCTION */
  for (size_t i = 0; i < r->nnames; i++)
    name_free(r->names[i]);
  free(r->names);
  reps_free(r->eps, r->neps);
  free(r);
  d->resolver = NULL;
}

/* ---- config ------------------------------------------------------------------------ */

void mesh__disc_check_resolver(mesh__cfg_t *c, const cJSON *v,
                               const char *path) {
  static const char *const keys[] = {"servers", "min_ttl_ms", "max_ttl_ms",
                                     "timeout_ms", NULL};
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(v, "resolver");
  if (!res)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "resolver");
  if (!cJSON_IsObject(res)) {
    mesh__cfg_error(c, p, "expected an object");
    return;
  }
  mesh__cfg_object(c, res, p, keys);
  mesh__dns_cfg_check(c, res, p);
}
