/* SPDX-License-Identifier: Apache-2.0 */
/* Instrumentation of connection setup: the reserved tls metrics
 * (docs/config/observe.md) and the "mesh.dial" / "mesh.accept" /
 * "mesh.handshake" spans (telemetry/span.h).
 *
 * Cost: series are registered once (handshake counters and histograms at
 * init; a connection gauge per service and a failure counter per reason on
 * first use) and cached, so a handshake costs a few atomic adds.  Spans
 * that are not sampled cost an id and a sampler decision each; attributes
 * are only computed for recorded spans. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTIVE_NAME "mesh_connections_active"
#define ACTIVE_HELP                                                           \
  "Open mesh connections by service dialed (\"inbound\" for accepted, \"\" " \
  "for dials to host:port)."
#define FAIL_NAME "mesh_handshake_failures_total"
#define FAIL_HELP                                                             \
  "Failed connection setups after TCP connected (TLS handshake, peer "       \
  "identity, connection-level authorization), by direction and reason."

static const char *const dir_names[2] = {"client", "server"};

/* ---- registration --------------------------------------------------------- */

int mesh__tls_obs_init(mesh_t *m, mesh__tls_t *t) {
  mesh__tls_obs_t *o = &t->obs;
  char l[64];
  for (int d = 0; d < 2; d++) {
    for (int r = 0; r < 2; r++) {
      snprintf(l, sizeof l, "direction=%s,resumed=%s", dir_names[d],
               r ? "true" : "false");
      o->handshakes[d][r] = mesh__counter(
          m, "mesh_handshakes_total",
          "Completed mTLS handshakes by direction and session resumption.",
          l);
    }
    snprintf(l, sizeof l, "direction=%s", dir_names[d]);
    o->hs_seconds[d] = mesh__histogram(
        m, "mesh_handshake_duration_seconds",
        "Latency of completed mTLS handshakes (TCP connect excluded).", l,
        NULL, 0);
  }
  const cJSON *svcs = m->config
                          ? cJSON_GetObjectItemCaseSensitive(m->config,
                                                             "services")
                          : NULL;
  int n = cJSON_IsObject(svcs) ? cJSON_GetArraySize(svcs) : 0;
  if (n > 0) {
    o->active_svc = calloc((size_t)n, sizeof *o->active_svc);
    if (!o->active_svc)
      return MESH_ERR_NOMEM;
    o->nsvc = (size_t)n;
  }
  return MESH_OK;
}

void mesh__tls_obs_fini(mesh__tls_t *t) {
  free(t->obs.active_svc);
  t->obs.active_svc = NULL;
  t->obs.nsvc = 0;
}

void mesh__tls_reason(int code, char *buf, size_t len) {
  const char *name = mesh_code_name(code);
  if (strncmp(name, "MESH_ERR_", 9) == 0)
    name += 9;
  size_t i = 0;
  for (; name[i] && i + 1 < len; i++)
    buf[i] = (char)tolower((unsigned char)name[i]);
  if (len)
    buf[i] = '\0';
}

/* The cached series in *slot, registered on first use.  Two threads may
 * both register: the registry returns the same handle to both. */
static mesh__metric_t *cached(_Atomic(mesh__metric_t *) *slot, mesh_t *m,
                              bool gauge, const char *labels) {
  mesh__metric_t *x = atomic_load_explicit(slot, memory_order_acquire);
  if (x)
    return x;
  x = gauge ? mesh__gauge(m, ACTIVE_NAME, ACTIVE_HELP, labels)
            : mesh__counter(m, FAIL_NAME, FAIL_HELP, labels);
  atomic_store_explicit(slot, x, memory_order_release);
  return x;
}

/* The gauge slot of a configured service (services are fixed and sorted by
 * name for the life of the context: a lock-free binary search). */
static _Atomic(mesh__metric_t *) *service_slot(mesh_t *m, const char *name) {
  const struct mesh__services *ss = m->services;
  mesh__tls_obs_t *o = &m->tls->obs;
  size_t lo = 0, hi = ss ? ss->n : 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(name, ss->v[mid]->name);
    if (c == 0)
      return mid < o->nsvc ? &o->active_svc[mid] : NULL;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

static mesh__metric_t *active_gauge(mesh_t *m, const char *service) {
  mesh__tls_obs_t *o = &m->tls->obs;
  if (!service)
    return cached(&o->active_direct, m, true, "service=");
  _Atomic(mesh__metric_t *) *slot = service_slot(m, service);
  if (!slot)
    return cached(&o->active_direct, m, true, "service=");
  mesh__metric_t *g = atomic_load_explicit(slot, memory_order_acquire);
  if (g) /* the usual case: no label to format */
    return g;
  char l[160];
  snprintf(l, sizeof l, "service=%s", service);
  return cached(slot, m, true, l);
}

/* ---- spans ---------------------------------------------------------------- */

static void addr_parts(const struct sockaddr_storage *ss, char *ip,
                       size_t iplen, int *port) {
  ip[0] = '\0';
  *port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
    *port = ntohs(a->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
    *port = ntohs(a->sin6_port);
  }
}

/* Children borrow the tracestate of their parent: keep our own copy so a
 * non-blocking handshake that outlives the caller's context is safe. */
static void own_tracestate(mesh_conn_t *c) {
  const char *ts = c->span.tracestate;
  if (!ts || !*ts)
    return;
  c->tracestate = strdup(ts);
  c->span.tracestate = c->tracestate ? c->tracestate : "";
}

void mesh__conn_obs_dial(mesh_conn_t *c, const mesh_dial_opts_t *opts,
                         bool root_ok) {
  c->active = active_gauge(c->m, opts ? opts->service : NULL);
  if (!root_ok && !(opts && opts->has_parent))
    return;
  mesh__span_start(c->m, &c->span, "mesh.dial", MESH_SPAN_CLIENT, NULL,
                   opts && opts->has_parent ? &opts->parent : NULL);
  own_tracestate(c);
  if (!mesh__span_recording(&c->span))
    return;
  char ip[INET6_ADDRSTRLEN];
  int port;
  addr_parts(&c->peer_sa, ip, sizeof ip, &port);
  mesh__span_attr_str(&c->span, MESH__ATTR_SERVER_ADDRESS, ip);
  mesh__span_attr_int(&c->span, MESH__ATTR_SERVER_PORT, port);
  mesh__span_attr_str(&c->span, MESH__ATTR_PEER_ADDRESS, ip);
  if (opts && opts->service)
    mesh__span_attr_str(&c->span, MESH__ATTR_SERVICE, opts->service);
}

void mesh__tls_obs_dial_failed(mesh_t *m, const struct sockaddr *sa,
                               socklen_t len, const mesh_dial_opts_t *opts,
                               bool root_ok, int code, const char *msg) {
  if (!root_ok && !(opts && opts->has_parent))
    return;
  mesh__span_t sp;
  mesh__span_start(m, &sp, "mesh.dial", MESH_SPAN_CLIENT, NULL,
                   opts && opts->has_parent ? &opts->parent : NULL);
  if (mesh__span_recording(&sp)) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, sa, len < sizeof ss ? len : sizeof ss);
    char ip[INET6_ADDRSTRLEN];
    int port;
    addr_parts(&ss, ip, sizeof ip, &port);
    mesh__span_attr_str(&sp, MESH__ATTR_SERVER_ADDRESS, ip);
    mesh__span_attr_int(&sp, MESH__ATTR_SERVER_PORT, port);
    mesh__span_attr_str(&sp, MESH__ATTR_PEER_ADDRESS, ip);
    if (opts && opts->service)
      mesh__span_attr_str(&sp, MESH__ATTR_SERVICE, opts->service);
  }
  mesh__span_fail(&sp, code, msg);
  mesh__span_end(&sp);
}

void mesh__conn_obs_accept(mesh_conn_t *c) {
  c->active = cached(&c->m->tls->obs.active_inbound, c->m, true,
                     "service=inbound");
  mesh__span_start(c->m, &c->span, "mesh.accept", MESH_SPAN_SERVER, NULL,
                   NULL);
  if (!mesh__span_recording(&c->span))
    return;
  char ip[INET6_ADDRSTRLEN];
  int port;
  addr_parts(&c->peer_sa, ip, sizeof ip, &port);
  mesh__span_attr_str(&c->span, MESH__ATTR_CLIENT_ADDRESS, ip);
  mesh__span_attr_int(&c->span, MESH__ATTR_CLIENT_PORT, port);
  if (c->local_port > 0)
    mesh__span_attr_int(&c->span, MESH__ATTR_SERVER_PORT, c->local_port);
}

void mesh__conn_obs_tls_start(mesh_conn_t *c) {
  c->hs_start_ns = mesh__now_ns();
  /* A dial without a span (internal, no parent) has no handshake span
   * either: it must not start a trace. */
  if (c->span.started)
    mesh__span_start(c->m, &c->hs_span, "mesh.handshake", MESH_SPAN_INTERNAL,
                     &c->span, NULL);
}

static void hs_attrs(mesh_conn_t *c) {
  mesh__span_t *h = &c->hs_span;
  mesh__span_attr_str(h, MESH__ATTR_TLS_VERSION, mesh_conn_tls_version(c));
  mesh__span_attr_str(h, MESH__ATTR_TLS_CIPHER, mesh_conn_cipher(c));
  mesh__span_attr_bool(h, MESH__ATTR_TLS_RESUMED, c->resumed);
  const char *id = mesh_conn_peer_id(c);
  if (id[0])
    mesh__span_attr_str(h, MESH__ATTR_PEER_SPIFFE_ID, id);
}

void mesh__conn_obs_open(mesh_conn_t *c) {
  if (c->obs_done)
    return;
  c->obs_done = true;
  mesh__tls_obs_t *o = &c->m->tls->obs;
  int d = c->server ? 1 : 0;
  if (c->tls) { /* a PERMISSIVE plaintext peer made no handshake */
    mesh__counter_add(o->handshakes[d][c->resumed ? 1 : 0], 1);
    mesh__histogram_observe(o->hs_seconds[d],
                            (double)(mesh__now_ns() - c->hs_start_ns) / 1e9);
  }
  mesh__gauge_add(c->active, 1);
  c->obs_counted = true;
  if (mesh__span_recording(&c->hs_span))
    hs_attrs(c);
  mesh__span_end(&c->hs_span);
  if (mesh__span_recording(&c->span)) {
    /* A PERMISSIVE plaintext peer has no identity (peer_id is NULL): read
     * it through the accessor that says "" for none. */
    const char *id = mesh_conn_peer_id(c);
    if (id[0])
      mesh__span_attr_str(&c->span, MESH__ATTR_PEER_SPIFFE_ID, id);
    mesh__span_attr_str(&c->span, MESH__ATTR_TRANSPORT, "tcp");
    if (!c->tls)
      mesh__span_attr_bool(&c->span, "mesh.plaintext", true);
  }
  mesh__span_end(&c->span);
}

/* `denied by policy "name": ...` (authz's message) -> name. */
static void denied_policy(mesh__span_t *sp, const char *msg) {
  static const char pre[] = "denied by policy \"";
  const char *p = strstr(msg, pre);
  if (!p)
    return;
  p += sizeof pre - 1;
  const char *q = strchr(p, '"');
  if (!q)
    return;
  char name[160];
  size_t n = (size_t)(q - p) < sizeof name - 1 ? (size_t)(q - p)
                                               : sizeof name - 1;
  memcpy(name, p, n);
  name[n] = '\0';
  mesh__span_attr_str(sp, "mesh.authz.policy", name);
}

void mesh__conn_obs_fail(mesh_conn_t *c, int code) {
  if (c->obs_done)
    return;
  c->obs_done = true;
  /* A dial whose TCP connect failed made no handshake: that failure is
   * the call's (mesh_calls_total, the spans), not a handshake's. */
  if (c->server || c->hs_start_ns) {
    int d = c->server ? 1 : 0;
    int slot = code < 0 && -code < MESH__TLS_FAIL_SLOTS ? -code : 0;
    _Atomic(mesh__metric_t *) *p = &c->m->tls->obs.fail[d][slot];
    mesh__metric_t *x = atomic_load_explicit(p, memory_order_acquire);
    if (!x) {
      /* codes beyond the table share slot 0, so they share its label */
      char reason[48] = "unknown", l[80];
      if (slot)
        mesh__tls_reason(code, reason, sizeof reason);
      snprintf(l, sizeof l, "direction=%s,reason=%s", dir_names[d], reason);
      x = cached(p, c->m, false, l);
    }
    mesh__counter_add(x, 1);
  }
  mesh__span_fail(&c->hs_span, code, c->errmsg);
  mesh__span_end(&c->hs_span);
  if (mesh__span_recording(&c->span) && code == MESH_ERR_DENIED) {
    mesh__span_event(&c->span, "authz.deny");
    denied_policy(&c->span, c->errmsg);
  }
  mesh__span_fail(&c->span, code, c->errmsg);
  mesh__span_end(&c->span);
}

void mesh__conn_obs_close(mesh_conn_t *c) {
  if (c->obs_counted)
    mesh__gauge_add(c->active, -1);
  c->obs_counted = false;
  if (!c->obs_done) {
    if (c->state == MESH__CONN_FAILED) {
      mesh__conn_obs_fail(c, c->last_err);
    } else {
      /* Abandoned mid-setup (non-blocking): not a failure of the peer. */
      c->obs_done = true;
      mesh__span_status(&c->hs_span, MESH_SPAN_STATUS_ERROR,
                        "closed before the handshake completed");
      mesh__span_end(&c->hs_span);
      mesh__span_status(&c->span, MESH_SPAN_STATUS_ERROR,
                        "closed before the handshake completed");
      mesh__span_end(&c->span);
    }
  }
  free(c->tracestate);
  c->tracestate = NULL;
}
