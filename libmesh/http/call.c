/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_http_call: one HTTP request to a service by name.
 *
 *   routes (service's own, then top-level)  -> destination service/subset
 *   fault injection                          -> delay, or a synthetic abort
 *   call layer (resilience/)                 -> endpoint, pool, retries on
 *                                               5xx/resets, deadlines, and
 *                                               outcomes to outlier detection
 *   client exchange over the call's connection */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/h2.h"
#include "http/http.h"
#include "telemetry/telemetry.h"
#include "resilience/resilience.h"

/* ---- randomness for splits and faults --------------------------------------- */

/* xorshift64*, one state per thread: splits and fault percentages need
 * uniform draws, not secrecy, and must not contend on a lock. */
static _Thread_local uint64_t rng_state;

static double uniform(void) {
  if (rng_state == 0)
    rng_state = (uint64_t)mesh__now_ns() ^ (uint64_t)(uintptr_t)&rng_state ^
                0x9e3779b97f4a7c15ull;
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t x = rng_state * 2685821657736338717ull;
  return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- one try ------------------------------------------------------------------- */

/* Trace headers injected into the request (replacing the caller's). */
#define INJECT_MAX 8
typedef struct inject {
  mesh__az_hdr_t h[INJECT_MAX];
  char key[INJECT_MAX][32];
  char val[INJECT_MAX][MESH_TRACESTATE_MAX + 1];
  size_t n;
} inject_t;

static int inject_set(const char *key, const char *value, void *user) {
  inject_t *in = user;
  if (in->n == INJECT_MAX)
    return 1;
  if (mesh__strlcpy(in->key[in->n], key, sizeof in->key[0]) >=
          sizeof in->key[0] ||
      mesh__strlcpy(in->val[in->n], value, sizeof in->val[0]) >=
          sizeof in->val[0])
    return 1;
  in->h[in->n].name = in->key[in->n];
  in->h[in->n].value = in->val[in->n];
  in->n++;
  return 0;
}

static const char *req_get(const char *key, void *user) {
  const mesh_http_request_t *req = user;
  return mesh__http_hdrs_get(req->hdrs, req->nhdrs, key);
}

typedef struct try_ctx {
  mesh_t *m;
  const mesh_http_request_t *req;
  const inject_t *inj; /* the mesh.request span's context (fallback) */
  const char *host;
  const char *auth; /* "Bearer <JWT-SVID>" (services.<name>.jwt_svid) */
  const mesh__http_limits_t *lim;
  mesh_http_response_t *resp; /* the latest complete response */
  mesh_status_t err;
} try_ctx_t;

static int try_once(mesh_call_t *call, mesh_conn_t *conn, int *status,
                    void *user) {
  try_ctx_t *t = user;
  mesh_http_response_free(t->resp);
  t->resp = NULL;
  int left = mesh_call_remaining_ms(call);
  if (left == 0)
    return MESH_CALL_TIMEOUT;
  int64_t deadline = left > 0 ? mesh__now_ms() + left : 0;
  mesh__http_io_t io;
  mesh__http_io_conn(&io, conn);
  /* The server's span becomes a child of this try's span when the call
   * layer has one; else of the request's. */
  inject_t per_try = {0};
  mesh_trace_ctx_t tc;
  const inject_t *inj = t->inj;
  if (mesh_call_trace_context(call, &tc) == MESH_OK &&
      mesh_trace_inject(&tc, mesh_trace_formats(t->m), inject_set,
                        &per_try) == MESH_OK)
    inj = &per_try;
  mesh__az_hdr_t hs[INJECT_MAX + 1];
  size_t nh = inj->n;
  memcpy(hs, inj->h, nh * sizeof hs[0]);
  if (t->auth)
    hs[nh++] = (mesh__az_hdr_t){"authorization", t->auth};
  /* HTTP/2 when the connection negotiated it or the pool shares a session */
  int h2 = mesh__h2_http_try(call, conn, t->host, t->req, hs, nh, t->lim,
                             deadline, &t->resp, status, &t->err);
  if (h2 != MESH_ERR_NOT_FOUND)
    return h2;
  bool reusable = false;
  int rc = mesh__http_exchange_io(&io, t->host, t->req, hs, nh, t->lim,
                                  deadline, &t->resp, &reusable, &t->err);
  if (rc == MESH_OK) {
    *status = t->resp->status;
    return reusable ? MESH_CALL_OK : MESH_CALL_OK_CLOSE;
  }
  if (rc == MESH_ERR_HTTP_PARSE || rc == MESH_ERR_HTTP_TOO_LARGE)
    return MESH_CALL_PROTOCOL_ERROR;
  if (rc == MESH_ERR_PEER_CLOSED)
    return MESH_CALL_RESET;
  return rc; /* the call layer maps resets, timeouts and TLS errors */
}

/* ---- what one request does: a route's decision --------------------------------- */

/* From the context's own routes, or from the hook (xds).  Everything a
 * try needs is a copy: nothing refers to a route table after the start. */
typedef struct plan {
  const char *service;  /* borrowed (the caller's or a route's) */
  const char *subset;   /* NULL: the split */
  const char *name;     /* the route's name for logs, or NULL */
  int64_t timeout_ms;   /* 0: none */
  int retries;          /* -1: the service's policy */
  bool has_retry;       /* retry replaces the service's retry_on/backoff */
  mesh__retry_cfg_t retry;
  int64_t per_try_ms;   /* 0: the service's */
  const void *hash;     /* hash key (ring hash, maglev) or NULL */
  size_t hash_len;
  int64_t delay_ms;     /* fault decided: 0 none */
  int abort_status;     /* fault decided: 0 none */
  mesh__xroute_t xr;    /* the hook's decision (owns the strings above) */
} plan_t;

static void plan_local(plan_t *p, const mesh__route_t *r) {
  p->name = r->name;
  p->timeout_ms = r->timeout_ms;
  p->retries = r->retries;
  if (r->has_fault)
    mesh__fault_decide(&r->fault, uniform(), uniform(), &p->delay_ms,
                       &p->abort_status);
}

/* gRFC A44 over HTTP: the route's retry_on (Envoy's HTTP tokens), codes,
 * backoff; a route without a retry policy retries nothing. */
static void plan_xds(plan_t *p, const char *service) {
  const mesh__xroute_t *x = &p->xr;
  p->service = service;
  p->subset = x->subset[0] ? x->subset : NULL;
  p->name = x->route;
  p->timeout_ms = x->timeout_ms;
  p->retries = x->retries;
  p->has_retry = true;
  p->retry = (mesh__retry_cfg_t){.retry_on = x->retry_on,
                                 .num_retries = (uint32_t)x->retries,
                                 .base_interval_ms = x->base_ms > 0 ? x->base_ms : 25};
  p->retry.max_interval_ms = x->max_ms > 0 ? x->max_ms
                                           : 10 * p->retry.base_interval_ms;
  for (size_t i = 0; i < x->ncodes && i < MESH__MAX_RETRY_CODES; i++)
    p->retry.codes[p->retry.ncodes++] = x->codes[i];
  p->per_try_ms = x->per_try_ms;
  p->hash = x->hash_len ? x->hash_key : NULL;
  p->hash_len = x->hash_len;
  p->delay_ms = x->delay_ms;
  p->abort_status = x->abort_http;
}

static const char *xhdr(void *user, const char *name) {
  const mesh_http_request_t *req = user;
  return mesh__http_hdr_value(req->hdrs, req->nhdrs, req->joined, req->njoined,
                              name);
}

/* ---- faults --------------------------------------------------------------------- */

static void sleep_ms(int64_t ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* Apply the decided fault.  @return MESH_OK with *out set for an abort,
 * MESH_ERR_NOT_FOUND to go on with the request, or an error. */
static int inject(mesh_t *m, const plan_t *p, int64_t timeout_ms,
                  mesh_http_response_t **out, mesh_status_t *st) {
  int64_t delay = p->delay_ms;
  int status = p->abort_status;
  if (delay > 0) {
    atomic_fetch_add(&m->http->faults_delayed, 1);
    if (timeout_ms > 0 && delay >= timeout_ms) {
      sleep_ms(timeout_ms);
      return mesh__fail(st, MESH_ERR_DEADLINE,
                        "fault delay of %lld ms exceeds the %lld ms timeout",
                        (long long)delay, (long long)timeout_ms);
    }
    sleep_ms(delay);
  }
  if (!status)
    return MESH_ERR_NOT_FOUND;
  atomic_fetch_add(&m->http->faults_aborted, 1);
  mesh_http_response_t *resp = mesh_http_response_new();
  static const char body[] = "fault filter abort"; /* Envoy's text */
  if (!resp || mesh_http_response_set_body(resp, body, sizeof body - 1)) {
    mesh_http_response_free(resp);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  resp->status = status;
  mesh__log(m, MESH_LOG_DEBUG, "http_fault_abort", "route=\"%s\" status=%d",
            p->name ? p->name : "", status);
  *out = resp;
  return MESH_OK;
}

/* ---- the call ------------------------------------------------------------------- */

static bool idempotent(const char *method) {
  static const char *const m[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE",
                                  "TRACE", NULL};
  for (size_t i = 0; m[i]; i++)
    if (strcmp(method, m[i]) == 0)
      return true;
  return false;
}

static const mesh__route_t *route_for(mesh_t *m, mesh__service_t *svc,
                                      const char *host,
                                      const mesh_http_request_t *req,
                                      const char *path) {
  mesh__rt_input_t in = {.host = host,
                         .method = req->method,
                         .path = path,
                         .hdrs = req->hdrs,
                         .nhdrs = req->nhdrs,
                         .joined = req->joined,
                         .njoined = req->njoined};
  const mesh__route_t *r = NULL;
  if (svc && svc->http)
    r = mesh__routes_match(&svc->http->routes, &in);
  if (!r && m->http)
    r = mesh__routes_match(&m->http->routes, &in);
  return r;
}

/* The call options of a plan (NULL when out of memory). */
static mesh_call_opts_t *plan_opts(const plan_t *p, int64_t timeout_ms,
                                   const mesh_http_request_t *req) {
  mesh_call_opts_t *o = mesh_call_opts_new();
  if (!o || (p->subset && mesh_call_opts_set_subset(o, p->subset) != MESH_OK) ||
      (p->hash && mesh_call_opts_set_hash_key(o, p->hash, p->hash_len))) {
    mesh_call_opts_free(o);
    return NULL;
  }
  if (timeout_ms > 0)
    mesh_call_opts_set_deadline(o, (int)timeout_ms);
  if (p->retries >= 0)
    mesh_call_opts_set_max_retries(o, p->retries > 100 ? 100 : p->retries);
  if (p->has_retry)
    mesh__call_opts_set_retry(o, &p->retry);
  if (p->per_try_ms > 0)
    mesh_call_opts_set_per_try_timeout(o, (int)p->per_try_ms);
  if (!idempotent(req->method))
    mesh_call_opts_set_hedging(o, 0);
  /* Sent again on a new connection when a pooled one turns out closed
   * (resilience/call.h): only where a second delivery is harmless. */
  mesh__call_opts_set_replay(o, idempotent(req->method));
  mesh__call_opts_set_mux(o, true);
  return o;
}

static int call_dest(mesh_t *m, const plan_t *p, const mesh_http_request_t *req,
                     const mesh__span_t *sp, const inject_t *inj,
                     int64_t timeout_ms, mesh_http_response_t **out,
                     mesh_status_t *st) {
  char *auth = NULL; /* before any try: no token, no call */
  int rc = mesh__http_jwt_header(m, mesh__service_find(m, p->service), &auth,
                                 st);
  if (rc != MESH_OK)
    return rc;
  mesh_call_opts_t *o = plan_opts(p, timeout_ms, req);
  if (!o) {
    free(auth);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  mesh_trace_ctx_t parent;
  mesh__span_context(sp, &parent);
  mesh_call_opts_set_trace_parent(o, &parent);
  /* xds:///NAME (subscribed on first use): NAME is the Host, as gRPC's
   * authority */
  const char *host = strncmp(p->service, "xds:///", 7) ? p->service
                                                       : p->service + 7;
  try_ctx_t t = {.m = m, .req = req, .inj = inj, .host = host,
                 .auth = auth, .lim = &mesh__http_settings(m)->lim};
  rc = mesh_call_do(m, p->service, o, try_once, &t, st);
  mesh_call_opts_free(o);
  free(auth);
  /* An error status after retries is still the answer to return. */
  if ((rc == MESH_OK || rc == MESH_ERR_UPSTREAM) && t.resp) {
    *out = t.resp;
    mesh__ok(st);
    return MESH_OK;
  }
  mesh_http_response_free(t.resp);
  return rc;
}

/* The plan of one request: the xds hook's decision for a service routed
 * by a control plane, else the context's routes, else the service as
 * named; was: the cluster (subset) of a decision gone stale, decided
 * again (mesh__http_xroute_again), NULL the first time.  @return MESH_OK
 * or the error that fails the call. */
static int plan_for(mesh_t *m, const char *service,
                    const mesh_http_request_t *req, plan_t *p,
                    const char *was, mesh_status_t *st) {
  size_t tn = strlen(req->target);
  char *path = malloc(tn + 2);
  if (!path)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  /* routes match the path the context's mode makes, as a server's
   * policies would */
  if (mesh__path_normalize(req->target, tn, mesh__authz_path_norm(m), path,
                           tn + 2, NULL) != MESH_OK) {
    free(path);
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "invalid request target");
  }
  *p = (plan_t){.service = service, .retries = -1};
  /* a name neither a service nor a route's host: xds may subscribe it on
   * first use (waits, bounded by the request's timeout) */
  mesh__service_t *svc = mesh__service_find(m, service);
  int ur = (!svc || svc->own_cfg) && !route_for(m, NULL, service, req, path)
               ? mesh__service_use(m, service, req->timeout_ms, &svc, st)
               : MESH_OK;
  if (ur < 0) {
    free(path);
    return ur;
  }
  mesh__xroute_in_t xin = {.path = path, .header = xhdr, .user = (void *)req};
  int rc = was ? mesh__http_xroute_again(m, service, &xin, was, &p->xr)
               : mesh__http_xroute(m, service, &xin, &p->xr, st);
  if (rc == MESH_OK)
    plan_xds(p, service);
  const mesh__route_t *r = rc == 1 ? route_for(m, svc, service, req, path)
                                   : NULL;
  free(path);
  if (rc < 0)
    return rc;
  if (r) {
    plan_local(p, r);
    const mesh__rt_dest_t *d = mesh__route_pick(r, uniform());
    p->service = d->service;
    p->subset = d->subset;
  }
  if (!r && !svc)
    return mesh__fail(st, MESH_ERR_UNKNOWN_SERVICE,
                      "no service or route for \"%s\"", service);
  return MESH_OK;
}

/* A decision gone stale before the pick (mesh__http_xroute_again): the
 * table in force's decision and its cluster called.  @return call_dest's,
 * or MESH_ERR_NOT_FOUND (st as it was) when there is no other cluster to
 * call. */
static int call_replanned(mesh_t *m, const char *service,
                          const mesh_http_request_t *req, const plan_t *p,
                          const mesh__span_t *sp, const inject_t *inj,
                          int64_t timeout_ms, mesh_http_response_t **out,
                          mesh_status_t *st) {
  plan_t q;
  mesh_status_t qst = {0};
  if (plan_for(m, service, req, &q, p->xr.subset, &qst) != MESH_OK)
    return MESH_ERR_NOT_FOUND;
  return call_dest(m, &q, req, sp, inj, timeout_ms, out, st);
}

int mesh_http_call(mesh_t *m, const char *service,
                   const mesh_http_request_t *req, mesh_http_response_t **out,
                   mesh_status_t *st) {
  mesh__ok(st);
  if (!m || !service || !req || !out || req->borrowed)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_http_call: m, service, req and out are required");
  *out = NULL;
  plan_t p;
  int rc = plan_for(m, service, req, &p, NULL, st);
  if (rc != MESH_OK)
    return rc;
  int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : p.timeout_ms;
  /* A CLIENT span, child of the trace the caller put in the request (if
   * any); its context replaces the caller's trace headers. */
  mesh_trace_ctx_t remote;
  unsigned fmts = mesh_trace_formats(m);
  bool have = mesh_trace_extract(fmts, req_get, (void *)req, &remote) ==
              MESH_OK;
  mesh__span_t sp = {0};
  mesh__span_start(m, &sp, "mesh.request", MESH_SPAN_CLIENT, NULL,
                   have ? &remote : NULL);
  mesh__span_attr_str(&sp, MESH__ATTR_HTTP_METHOD, req->method);
  mesh__span_attr_str(&sp, MESH__ATTR_SERVICE, p.service);
  inject_t inj = {0};
  mesh__span_inject(&sp, inject_set, &inj);
  rc = MESH_ERR_NOT_FOUND;
  if (p.delay_ms > 0 || p.abort_status) {
    int64_t t0 = mesh__now_ms();
    rc = inject(m, &p, timeout, out, st);
    if (rc == MESH_ERR_NOT_FOUND && timeout > 0) {
      timeout -= mesh__now_ms() - t0;
      if (timeout <= 0)
        rc = mesh__fail(st, MESH_ERR_DEADLINE, "timeout spent in delay");
    }
  }
  if (rc == MESH_ERR_NOT_FOUND)
    rc = call_dest(m, &p, req, &sp, &inj, timeout, out, st);
  if (rc == MESH_ERR_NOT_FOUND && p.xr.subset[0])
    rc = call_replanned(m, service, req, &p, &sp, &inj, timeout, out, st);
  int status = rc == MESH_OK ? (*out)->status : 0;
  mesh__http_count(m, mesh__service_find(m, p.service), status);
  if (rc == MESH_OK) {
    mesh__span_attr_int(&sp, MESH__ATTR_HTTP_STATUS, status);
    if (status >= 500)
      mesh__span_status(&sp, MESH_SPAN_STATUS_ERROR, mesh__http_reason(status));
  } else {
    mesh__span_fail(&sp, rc, st ? st->message : NULL);
  }
  mesh__span_end(&sp);
  return rc;
}

/* ---- routes from above (xds) ---------------------------------------------------- */

void mesh__http_set_xroute(mesh_t *m, mesh__xroute_fn fn) {
  if (m && m->http)
    m->http->xroute = fn;
}

int mesh__http_xroute(mesh_t *m, const char *service,
                      const mesh__xroute_in_t *in, mesh__xroute_t *out,
                      mesh_status_t *st) {
  if (!m || !m->http || !m->http->xroute)
    return 1;
  return m->http->xroute(m, service, in, out, st);
}

/* A route decision is copied from the route table in force; xds/apply.c
 * keeps a cluster no route names any more for exactly one more version.
 * When two updates land between the decision and the pick, the decided
 * cluster is gone and the pick fails (MESH_ERR_NOT_FOUND "no subset").
 * The caller then decides once more from the table in force and calls
 * that cluster, as Envoy routes a request to a cluster it can still
 * reach.  Faults were decided with the first decision and are not
 * decided again. */
int mesh__http_xroute_again(mesh_t *m, const char *service,
                            const mesh__xroute_in_t *in, const char *was,
                            mesh__xroute_t *out) {
  mesh_status_t st = {0};
  if (!was || !*was || mesh__http_xroute(m, service, in, out, &st) != MESH_OK ||
      strcmp(out->subset, was) == 0)
    return MESH_ERR_NOT_FOUND;
  out->delay_ms = 0;
  out->abort_http = 0;
  out->abort_grpc = -1;
  return MESH_OK;
}
