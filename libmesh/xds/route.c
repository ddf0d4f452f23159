/* SPDX-License-Identifier: Apache-2.0 */
/* The RDS route table applied per request (gRFC A28 routing, A31 timeouts,
 * A42 hash policies, A44 retries, A33 faults), for HTTP and gRPC calls
 * alike: http and grpc ask through the hook of http.h (mesh__xroute_fn),
 * this part answers from one immutable version of the table.
 *
 *   mesh__xds_vhost_pick   Envoy's virtual host choice by domain
 *   mesh__xds_rtab_build   the chosen virtual host's routes (rds.c's JSON
 *                          model) compiled once: regexes, lowercase names
 *   mesh__xds_rtab_route   pure: the first matching route and its decision
 *                          for one request, from uniform draws
 *   mesh__xds_rtab_publish / _acquire   the epoch scheme of endpoint
 *                          snapshots (a reader sees a whole version and
 *                          never a freed one) */
#include <limits.h>
#include <regex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "resilience/resilience.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

enum { M_EXACT, M_PREFIX, M_SUFFIX, M_CONTAINS, M_REGEX, M_PRESENT };

typedef struct hmatch {
  char *name;   /* lowercase */
  int kind;
  char *value;
  regex_t re;   /* M_REGEX */
  bool has_re, present, invert;
} hmatch_t;

typedef struct cl {
  char *name;
  uint32_t weight;
} cl_t;

typedef struct hpol {
  char *header; /* NULL: channel id */
  bool terminal;
} hpol_t;

typedef struct rt {
  char *name;
  int path_kind; /* M_PREFIX, M_EXACT, M_REGEX */
  char *path;
  regex_t re;
  bool has_re, icase;
  int64_t fraction_ppm; /* -1: none */
  hmatch_t *h;
  size_t nh;
  cl_t *cl;
  size_t ncl;
  uint64_t total;
  int64_t timeout_ms;
  bool has_retry;
  mesh__xroute_t retry; /* retries, retry_on, codes, grpc_codes, backoff */
  hpol_t *hp;
  size_t nhp;
  bool has_fault;
  int64_t delay_ms, delay_ppm, abort_ppm;
  int abort_http, abort_grpc;
} rt_t;

struct mesh__xds_rtab {
  _Atomic uint32_t refs;
  rt_t *r;
  size_t n;
  bool labelled; /* hosts carry their cluster as a subset */
  char channel[32];
};

/* ---- virtual hosts ------------------------------------------------------------- */

/* Envoy's order: exact, then the longest suffix wildcard ("*.foo.com"),
 * then the longest prefix wildcard ("foo.*"), then "*"; case-insensitive. */
static int domain_rank(const char *d, const char *host, size_t *len) {
  size_t dl = strlen(d), hl = strlen(host);
  *len = dl;
  if (strcmp(d, "*") == 0)
    return 1;
  if (dl > 1 && d[0] == '*' && hl >= dl &&
      strcasecmp(host + hl - (dl - 1), d + 1) == 0)
    return 3;
  if (dl > 1 && d[dl - 1] == '*' && hl >= dl &&
      strncasecmp(host, d, dl - 1) == 0)
    return 2;
  return strcasecmp(d, host) == 0 ? 4 : 0;
}

const cJSON *mesh__xds_vhost_pick(const cJSON *rc, const char *host) {
  const cJSON *vh, *d, *best = NULL;
  int best_rank = 0;
  size_t best_len = 0;
  cJSON_ArrayForEach(vh, cJSON_GetObjectItemCaseSensitive(rc, "virtual_hosts")) {
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(vh, "domains")) {
      const char *s = cJSON_GetStringValue(d);
      size_t len;
      int r = s ? domain_rank(s, host, &len) : 0;
      if (r > best_rank || (r == best_rank && r && len > best_len)) {
        best = vh;
        best_rank = r;
        best_len = len;
      }
    }
  }
  return best;
}

/* ---- building -------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *k) {
  return cJSON_GetObjectItemCaseSensitive(o, k);
}

/* A decoded number, clamped to the range of an int: every field read here
 * is a count, a duration in ms, a weight or a code, and the wire's uint32
 * and uint64 values need not fit (a cast of one that does not is
 * undefined). */
static int64_t num(const cJSON *o, const char *k, int64_t dflt) {
  const cJSON *v = get(o, k);
  if (!cJSON_IsNumber(v))
    return dflt;
  double d = v->valuedouble;
  if (!(d > INT_MIN))
    return INT_MIN;
  return d < INT_MAX ? (int64_t)d : INT_MAX;
}

/* A regex matches the whole string (RE2 FullMatch, as Envoy and gRPC). */
static int compile(regex_t *re, const char *pat, bool icase) {
  size_t n = strlen(pat) + 5;
  char *full = malloc(n);
  if (!full)
    return MESH_ERR_NOMEM;
  snprintf(full, n, "^(%s)$", pat);
  int rc = regcomp(re, full, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
  free(full);
  return rc ? MESH_ERR_CONFIG : MESH_OK;
}

static char *lower_dup(const char *s) {
  char *d = mesh__strdup(s ? s : "");
  for (char *p = d; p && *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  return d;
}

static int build_headers(rt_t *r, const cJSON *hs) {
  static const char *const kinds[] = {"exact", "prefix", "suffix", "contains",
                                      "regex", "present"};
  r->nh = (size_t)cJSON_GetArraySize(hs);
  r->h = calloc(r->nh ? r->nh : 1, sizeof *r->h);
  if (!r->h)
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < r->nh; i++) {
    const cJSON *o = cJSON_GetArrayItem(hs, (int)i);
    hmatch_t *h = &r->h[i];
    h->name = lower_dup(cJSON_GetStringValue(get(o, "name")));
    h->invert = cJSON_IsTrue(get(o, "invert"));
    h->kind = -1;
    for (int k = 0; k < 6 && h->kind < 0; k++)
      if (get(o, kinds[k]))
        h->kind = k;
    if (!h->name || h->kind < 0)
      return h->name ? MESH_ERR_CONFIG : MESH_ERR_NOMEM;
    if (h->kind == M_PRESENT) {
      h->present = cJSON_IsTrue(get(o, "present"));
      continue;
    }
    h->value = mesh__strdup(cJSON_GetStringValue(get(o, kinds[h->kind])));
    if (!h->value)
      return MESH_ERR_CONFIG;
    if (h->kind == M_REGEX) {
      if (compile(&h->re, h->value, false))
        return MESH_ERR_CONFIG;
      h->has_re = true;
    }
  }
  return MESH_OK;
}

static unsigned retry_bit(const char *t) {
  static const struct { const char *n; unsigned bit; } map[] = {
      {"connect-failure", MESH__RETRY_CONNECT_FAILURE},
      {"reset", MESH__RETRY_RESET},
      {"5xx", MESH__RETRY_5XX},
      {"gateway-error", MESH__RETRY_GATEWAY_ERROR},
      {"retriable-status-codes", MESH__RETRY_STATUS_CODES}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(t, map[i].n) == 0)
      return map[i].bit;
  return 0;
}

/* gRPC status names of retry_on (A44) to their codes. */
static int grpc_code(const char *t) {
  static const struct { const char *n; int code; } map[] = {
      {"cancelled", 1}, {"deadline-exceeded", 4}, {"internal", 13},
      {"resource-exhausted", 8}, {"unavailable", 14}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(t, map[i].n) == 0)
      return map[i].code;
  return -1;
}

static void build_retry(rt_t *r, const cJSON *o) {
  const cJSON *e;
  mesh__xroute_t *x = &r->retry;
  r->has_retry = o != NULL;
  if (!o)
    return;
  x->retries = (int)num(o, "num_retries", 1);
  cJSON_ArrayForEach(e, get(o, "retry_on"))
    x->retry_on |= retry_bit(cJSON_GetStringValue(e) ? e->valuestring : "");
  cJSON_ArrayForEach(e, get(o, "grpc_retry_on")) {
    int c = grpc_code(cJSON_GetStringValue(e) ? e->valuestring : "");
    if (c >= 0)
      x->grpc_codes |= 1u << c;
  }
  /* a code outside 100..599 matches no response: not kept */
  cJSON_ArrayForEach(e, get(o, "retriable_status_codes"))
    if (x->ncodes < sizeof x->codes / sizeof x->codes[0] &&
        cJSON_IsNumber(e) && e->valuedouble >= 100 && e->valuedouble < 600)
      x->codes[x->ncodes++] = (int)e->valuedouble;
  x->base_ms = num(o, "base_interval_ms", 0);
  x->max_ms = num(o, "max_interval_ms", 0);
  x->per_try_ms = num(o, "per_try_ms", 0);
}

static int build_hash(rt_t *r, const cJSON *arr) {
  r->nhp = (size_t)cJSON_GetArraySize(arr);
  r->hp = calloc(r->nhp ? r->nhp : 1, sizeof *r->hp);
  if (!r->hp)
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < r->nhp; i++) {
    const cJSON *o = cJSON_GetArrayItem(arr, (int)i);
    r->hp[i].terminal = cJSON_IsTrue(get(o, "terminal"));
    const char *h = cJSON_GetStringValue(get(o, "header"));
    if (h && !(r->hp[i].header = lower_dup(h)))
      return MESH_ERR_NOMEM;
  }
  return MESH_OK;
}

static void build_fault(rt_t *r, const cJSON *f) {
  r->has_fault = f != NULL;
  r->delay_ms = num(f, "delay_ms", 0);
  r->delay_ppm = get(f, "delay_ms") ? num(f, "delay_ppm", 0) : 0;
  r->abort_http = (int)num(f, "abort_http", 0);
  r->abort_grpc = (int)num(f, "abort_grpc", -1);
  r->abort_ppm = r->abort_http || r->abort_grpc >= 0 ? num(f, "abort_ppm", 0)
                                                     : 0;
}

static int build_match(rt_t *r, const cJSON *m) {
  const cJSON *cs = get(m, "case_sensitive");
  r->icase = cJSON_IsBool(cs) && !cJSON_IsTrue(cs);
  const char *v;
  if ((v = cJSON_GetStringValue(get(m, "prefix"))))
    r->path_kind = M_PREFIX;
  else if ((v = cJSON_GetStringValue(get(m, "path"))))
    r->path_kind = M_EXACT;
  else if ((v = cJSON_GetStringValue(get(m, "regex"))))
    r->path_kind = M_REGEX;
  else
    return MESH_ERR_CONFIG;
  r->path = mesh__strdup(v);
  if (!r->path)
    return MESH_ERR_NOMEM;
  if (r->path_kind == M_REGEX) {
    if (compile(&r->re, r->path, r->icase))
      return MESH_ERR_CONFIG;
    r->has_re = true;
  }
  r->fraction_ppm = num(m, "fraction_ppm", -1);
  return build_headers(r, get(m, "headers"));
}

static int build_route(rt_t *r, const cJSON *o, const cJSON *dflt_fault) {
  r->name = mesh__strdup(cJSON_GetStringValue(get(o, "name")) ?
                         get(o, "name")->valuestring : "");
  int rc = r->name ? build_match(r, get(o, "match")) : MESH_ERR_NOMEM;
  if (rc)
    return rc;
  const cJSON *cls = get(o, "clusters");
  r->ncl = (size_t)cJSON_GetArraySize(cls);
  r->cl = calloc(r->ncl ? r->ncl : 1, sizeof *r->cl);
  if (!r->cl || !r->ncl)
    return r->cl ? MESH_ERR_CONFIG : MESH_ERR_NOMEM;
  for (size_t i = 0; i < r->ncl; i++) {
    const cJSON *c = cJSON_GetArrayItem(cls, (int)i);
    r->cl[i].name = mesh__strdup(cJSON_GetStringValue(get(c, "name")));
    r->cl[i].weight = (uint32_t)num(c, "weight", 1);
    r->total += r->cl[i].weight;
    if (!r->cl[i].name)
      return MESH_ERR_CONFIG;
  }
  if (!r->total)
    return MESH_ERR_CONFIG;
  r->timeout_ms = num(o, "timeout_ms", 0);
  build_retry(r, get(o, "retry"));
  build_fault(r, get(o, "fault") ? get(o, "fault") : dflt_fault);
  return build_hash(r, get(o, "hash_policy"));
}

int mesh__xds_rtab_build(const cJSON *vh, const cJSON *fault, bool labelled,
                         const void *channel, mesh__xds_rtab_t **out) {
  *out = NULL;
  const cJSON *routes = get(vh, "routes");
  mesh__xds_rtab_t *t = calloc(1, sizeof *t);
  if (!t)
    return MESH_ERR_NOMEM;
  atomic_init(&t->refs, 1);
  t->labelled = labelled;
  snprintf(t->channel, sizeof t->channel, "%p", channel);
  t->n = (size_t)cJSON_GetArraySize(routes);
  t->r = calloc(t->n ? t->n : 1, sizeof *t->r);
  int rc = t->r ? MESH_OK : MESH_ERR_NOMEM;
  for (size_t i = 0; rc == MESH_OK && i < t->n; i++)
    rc = build_route(&t->r[i], cJSON_GetArrayItem(routes, (int)i), fault);
  if (rc) {
    if (!t->r)
      t->n = 0;
    mesh__xds_rtab_release(t);
    return rc;
  }
  *out = t;
  return MESH_OK;
}

static void route_free(rt_t *r) {
  free(r->name);
  free(r->path);
  if (r->has_re)
    regfree(&r->re);
  for (size_t i = 0; r->h && i < r->nh; i++) {
    free(r->h[i].name);
    free(r->h[i].value);
    if (r->h[i].has_re)
      regfree(&r->h[i].re);
  }
  free(r->h);
  for (size_t i = 0; r->cl && i < r->ncl; i++)
    free(r->cl[i].name);
  free(r->cl);
  for (size_t i = 0; r->hp && i < r->nhp; i++)
    free(r->hp[i].header);
  free(r->hp);
}

void mesh__xds_rtab_release(mesh__xds_rtab_t *t) {
  if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t i = 0; t->r && i < t->n; i++)
    route_free(&t->r[i]);
  free(t->r);
  free(t);
}

size_t mesh__xds_rtab_size(const mesh__xds_rtab_t *t) {
  return t ? t->n : 0;
}

/* ---- matching (pure) --------------------------------------------------------------- */

static bool path_ok(const rt_t *r, const char *path) {
  size_t n = strlen(r->path);
  switch (r->path_kind) {
  case M_PREFIX:
    return r->icase ? strncasecmp(path, r->path, n) == 0
                    : strncmp(path, r->path, n) == 0;
  case M_EXACT:
    return r->icase ? strcasecmp(path, r->path) == 0
                    : strcmp(path, r->path) == 0;
  default:
    return regexec(&r->re, path, 0, NULL, 0) == 0;
  }
}

static bool value_ok(const hmatch_t *h, const char *v) {
  size_t n = strlen(h->value), vl = strlen(v);
  switch (h->kind) {
  case M_EXACT:
    return strcmp(v, h->value) == 0;
  case M_PREFIX:
    return strncmp(v, h->value, n) == 0;
  case M_SUFFIX:
    return vl >= n && strcmp(v + vl - n, h->value) == 0;
  case M_CONTAINS:
    return strstr(v, h->value) != NULL;
  default:
    return regexec(&h->re, v, 0, NULL, 0) == 0;
  }
}

/* A28: "-bin" headers never match; gRPC's content-type is
 * "application/grpc" whatever the call sent. */
static const char *hdr(const mesh__xroute_in_t *in, const char *name) {
  size_t n = strlen(name);
  if (n > 4 && strcmp(name + n - 4, "-bin") == 0)
    return NULL;
  if (in->grpc && strcmp(name, "content-type") == 0)
    return "application/grpc";
  return in->header ? in->header(in->user, name) : NULL;
}

static bool headers_ok(const rt_t *r, const mesh__xroute_in_t *in) {
  for (size_t i = 0; i < r->nh; i++) {
    const hmatch_t *h = &r->h[i];
    const char *v = hdr(in, h->name);
    bool ok = h->kind == M_PRESENT ? (v != NULL) == h->present
                                   : v && value_ok(h, v);
    if (ok == h->invert)
      return false;
  }
  return true;
}

/* A42: the hash policies in order; a terminal one that produced a value
 * stops the rest.  The key is their values joined with '\n'. */
static void hash_key(const mesh__xds_rtab_t *t, const rt_t *r,
                     const mesh__xroute_in_t *in, mesh__xroute_t *out) {
  for (size_t i = 0; i < r->nhp; i++) {
    const char *v = r->hp[i].header ? hdr(in, r->hp[i].header) : t->channel;
    if (!v)
      continue;
    size_t n = strlen(v), room = sizeof out->hash_key - out->hash_len;
    if (out->hash_len && room > 1) {
      out->hash_key[out->hash_len++] = '\n';
      room--;
    }
    if (n > room)
      n = room;
    memcpy(out->hash_key + out->hash_len, v, n);
    out->hash_len += n;
    if (r->hp[i].terminal)
      break;
  }
}

static void fault(const rt_t *r, const double u[2], mesh__xroute_t *out) {
  out->abort_grpc = -1;
  if (!r->has_fault)
    return;
  if (r->delay_ms > 0 && u[0] * 1e6 < (double)r->delay_ppm)
    out->delay_ms = r->delay_ms;
  if (u[1] * 1e6 < (double)r->abort_ppm) {
    out->abort_http = r->abort_http;
    out->abort_grpc = r->abort_grpc;
    if (!out->abort_http) /* only a gRPC status: Envoy answers HTTP 503 */
      out->abort_http = 503;
  }
}

int mesh__xds_rtab_route(const mesh__xds_rtab_t *t, const mesh__xroute_in_t *in,
                         const double u[4], mesh__xroute_t *out) {
  memset(out, 0, sizeof *out);
  out->abort_grpc = -1;
  const char *path = in->path ? in->path : "/";
  for (size_t i = 0; t && i < t->n; i++) {
    const rt_t *r = &t->r[i];
    if (!path_ok(r, path) || !headers_ok(r, in))
      continue;
    if (r->fraction_ppm >= 0 && !(u[0] * 1e6 < (double)r->fraction_ppm))
      continue;
    uint64_t pick = (uint64_t)(u[1] * (double)r->total), acc = 0;
    size_t k = 0;
    for (; k + 1 < r->ncl; k++) {
      acc += r->cl[k].weight;
      if (pick < acc)
        break;
    }
    if (r->has_retry)
      *out = r->retry;
    out->abort_grpc = -1;
    snprintf(out->cluster, sizeof out->cluster, "%s", r->cl[k].name);
    if (t->labelled)
      snprintf(out->subset, sizeof out->subset, "%s", r->cl[k].name);
    snprintf(out->route, sizeof out->route, "%s", r->name);
    out->timeout_ms = r->timeout_ms;
    hash_key(t, r, in, out);
    fault(r, u + 2, out);
    return MESH_OK;
  }
  return MESH_ERR_NOT_FOUND;
}

/* ---- publishing ----------------------------------------------------------------- */

mesh__xds_rtab_t *mesh__xds_rtab_acquire(mesh__xds_rtpub_t *p) {
  for (;;) {
    uint32_t e = atomic_load(&p->epoch);
    atomic_fetch_add(&p->readers[e & 1], 1);
    if (atomic_load(&p->epoch) != e) { /* a writer flipped meanwhile */
      atomic_fetch_sub(&p->readers[e & 1], 1);
      continue;
    }
    mesh__xds_rtab_t *t = atomic_load(&p->cur);
    if (t)
      atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&p->readers[e & 1], 1);
    return t;
  }
}

/* One writer at a time: the loop thread under the session lock. */
void mesh__xds_rtab_publish(mesh__xds_rtpub_t *p, mesh__xds_rtab_t *t) {
  mesh__xds_rtab_t *old = atomic_exchange(&p->cur, t);
  uint32_t e = atomic_fetch_add(&p->epoch, 1);
  for (unsigned spins = 0; atomic_load(&p->readers[e & 1]) != 0; spins++)
    if (spins > 64)
      sched_yield();
  mesh__xds_rtab_release(old);
}
