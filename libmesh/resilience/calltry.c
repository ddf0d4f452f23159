/* SPDX-License-Identifier: Apache-2.0 */
/* One try of a call: the requests breaker, the pick (lb), a pooled or new
 * mTLS connection (tls) with the pending and connections breakers, and at
 * the end the outcome reported to the picker (active requests, EWMA) and
 * outlier detection.  The logical call around it is call.c; the public
 * single-try API callapi.c. */
#include "resilience/call.h"
#include "core/core.h"
#include "discovery/discovery.h"
#include "telemetry/telemetry.h"

#include <stdlib.h>
#include <string.h>

/* ---- pools of mesh_conn_t per host ---------------------------------------- */

static int conn_fd(void *c) { return mesh_conn_fd(c); }
static bool conn_alive(void *c) { return mesh__conn_idle_ok(c); }
static void conn_buffers(void *c, bool keep) { mesh__conn_buffers(c, keep); }
/* " cluster \"NAME\"" in messages when the call is bound to a group. */
#define GRP(x)                                                                 \
  (x)->grp ? " cluster \"" : "", (x)->grp ? (x)->grp : "", (x)->grp ? "\"" : ""

/* user: the mesh__breakers_t whose connections slot the conn holds */
static void conn_close(void *c, void *user) {
  mesh_conn_close(c);
  mesh__breakers_conn_closed(user);
}
static void conn_drop(void *user) { mesh__breakers_unref(user); }
/* A group's counters are held by the pool; the service's embedded ones
 * must not be touched when the pool dies after the service state. */
static const mesh__pool_ops_t conn_ops = {conn_fd, conn_alive, conn_close,
                                          NULL, conn_buffers};
static const mesh__pool_ops_t conn_ops_grp = {conn_fd, conn_alive, conn_close,
                                              conn_drop, conn_buffers};

mesh__pool_t *mesh__res_pool(mesh__breakers_t *br, mesh__host_t *h) {
  if (!h)
    return NULL;
  mesh__pool_t *p = mesh__res_pool_peek(h);
  if (p) /* its connections count in br, or it is not this call's pool */
    return mesh__pool_user(p) == br ? p : NULL;
  p = mesh__pool_new(br && br->heap ? &conn_ops_grp : &conn_ops, br);
  if (!p)
    return NULL;
  mesh__breakers_ref(br); /* dropped with the pool (conn_drop) */
  mesh__res_host_ops_register(); /* before the pool can be seen */
  mesh__pool_t *expected = NULL;
  if (atomic_compare_exchange_strong_explicit(
          &h->pool, &expected, p, memory_order_acq_rel, memory_order_acquire))
    return p;
  mesh__pool_free(p);
  return mesh__pool_user(expected) == br ? expected : NULL;
}

/* ---- one try: breakers, pick, connection ------------------------------------------ */

/* The try's span, started once a host is picked. */
static void try_span_start(mesh_call_t *c) {
  mesh__span_start(c->x->m, &c->span, "mesh.try", MESH_SPAN_CLIENT,
                   &c->x->span, NULL);
  if (!mesh__span_recording(&c->span))
    return;
  mesh__span_attr_int(&c->span, MESH__ATTR_TRY, c->attempt);
  if (c->host) {
    mesh__span_attr_str(&c->span, MESH__ATTR_SERVER_ADDRESS, c->host->address);
    mesh__span_attr_int(&c->span, MESH__ATTR_SERVER_PORT, c->host->port);
    mesh__span_attr_str(&c->span, MESH__ATTR_PEER_ADDRESS, c->host->key);
  }
}

void mesh__call_release(mesh_call_t *c) {
  mesh__breakers_t *br = c->x->br;
  if (c->holds_request)
    mesh__breaker_give(&br->requests);
  if (c->holds_retry)
    mesh__breaker_give(&br->retries);
  c->holds_request = c->holds_retry = false;
  if (c->host) {
    mesh__host_ref(c->host); /* the call's latest endpoint, for metrics */
    mesh__host_unref(c->x->last);
    c->x->last = c->host;
    mesh__lb_end(c->host);
    mesh__host_unref(c->host);
    c->host = NULL;
  }
  mesh__snap_release(c->snap);
  c->snap = NULL;
}

static int pick(mesh_call_t *c, mesh_status_t *st) {
  mesh__callx_t *x = c->x;
  /* A source that has not answered yet (DNS, etcd at start-up): wait for
   * it within the connect budget rather than fail on an empty set. */
  int64_t wait = x->connect_ms, left = mesh__callx_left(x, mesh__now_ms());
  if (left >= 0 && left < wait)
    wait = left;
  int wr = mesh__disc_wait_ready(x->svc, (int)wait);
  if (wr == MESH_ERR_DISCOVERY)
    return mesh__fail(st, MESH_ERR_DISCOVERY,
                      "service \"%s\": discovery failed and no endpoint set "
                      "is known", x->svc->name);
  c->snap = mesh__res_snapshot(x->svc);
  if (!c->snap || c->snap->n == 0)
    return mesh__fail(st, MESH_ERR_NO_ENDPOINTS,
                      "service \"%s\" has no endpoints", x->svc->name);
  mesh__lb_ctx_t ctx = {
      .hash_key = x->hash_key,
      .hash_key_len = x->hash_key_len,
      .avoid = x->avoid,
      .navoid = x->navoid,
      .subset = x->subset,
  };
  mesh__host_t *h = NULL;
  int rc = mesh__lb_pick(x->svc, c->snap, &ctx, &h);
  if (rc == MESH_ERR_NOT_FOUND && x->subset && x->subset == x->grp) {
    /* The cluster was drawn from resilience's groups and the snapshot's
     * subsets do not name it yet / any more (one update swaps lb,
     * resilience and endpoints one after the other): the lb split. */
    ctx.subset = NULL;
    rc = mesh__lb_pick(x->svc, c->snap, &ctx, &h);
  }
  if (rc == MESH_ERR_NOT_FOUND)
    return mesh__fail(st, MESH_ERR_NOT_FOUND,
                      "service \"%s\" has no subset \"%s\"", x->svc->name,
                      x->subset ? x->subset : "");
  if (rc != MESH_OK || !h)
    return mesh__fail(st, MESH_ERR_NO_ENDPOINTS,
                      "service \"%s\": no usable endpoint among %zu "
                      "(ejected, unhealthy or draining)",
                      x->svc->name, c->snap->n);
  mesh__host_ref(h);
  c->host = h;
  /* Counted from the pick, so concurrent least-request picks see it. */
  mesh__lb_begin(h);
  try_span_start(c);
  return MESH_OK;
}

/* A new connection to c->host.  Breakers: pending while dialing, and a
 * connection slot kept for the life of the connection. */
static int dial(mesh_call_t *c, const mesh_dial_opts_t *user_opts,
                mesh_status_t *st) {
  mesh__callx_t *x = c->x;
  mesh__res_svc_t *rs = x->rs;
  if (!mesh__breaker_take(&x->br->pending, x->cb.max_pending_requests,
                          &x->br->ov_pending)) {
    mesh__res_count_overflow(rs, x->br, MESH__BR_PENDING);
    return mesh__fail(st, MESH_ERR_CIRCUIT_OPEN,
                      "service \"%s\"%s%s%s: circuit breaker open: %lld calls "
                      "waiting for a connection (max_pending_requests)",
                      x->svc->name, GRP(x), (long long)x->cb.max_pending_requests);
  }
  if (!mesh__breaker_take(&x->br->connections, x->cb.max_connections,
                          &x->br->ov_connections)) {
    mesh__res_count_overflow(rs, x->br, MESH__BR_CONNECTIONS);
    mesh__breaker_give(&x->br->pending);
    return mesh__fail(st, MESH_ERR_CIRCUIT_OPEN,
                      "service \"%s\"%s%s%s: circuit breaker open: %lld "
                      "connections (max_connections)",
                      x->svc->name, GRP(x), (long long)x->cb.max_connections);
  }
  mesh_dial_opts_t o;
  if (user_opts)
    o = *user_opts;
  else
    memset(&o, 0, sizeof o);
  int64_t budget = x->connect_ms;
  int64_t left = mesh__callx_left(x, mesh__now_ms());
  if (left >= 0 && left < budget)
    budget = left > 0 ? left : 1;
  if (!user_opts || user_opts->timeout_ms <= 0)
    o.timeout_ms = (int)budget;
  /* ALPN: the dial's own, else the call's, else the service's "alpn"
   * (else tls.alpn, in tls/). */
  if (!user_opts || !user_opts->alpn)
    o.alpn = (char *)(x->alpn ? x->alpn : rs->alpn);
  /* Connection metrics carry the service; the dial and handshake spans are
   * children of this try. */
  o.service = x->svc->name;
  if (c->span.started) {
    mesh__span_context(&c->span, &o.parent);
    o.has_parent = true;
  }
  const mesh__host_t *h = c->host;
  int64_t t0 = mesh__now_ns();
  int rc;
  if (!h->resolved)
    rc = mesh__fail(st, MESH_ERR_CONNECT,
                    "endpoint %s of \"%s\" has no resolved address", h->key,
                    x->svc->name);
  else
    rc = mesh__tls_dial_addr(x->m, (const struct sockaddr *)&h->sa, h->salen,
                             x->svc->peers, &o, &c->conn, st);
  mesh__breaker_give(&x->br->pending);
  if (rc == MESH_OK || rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE) {
    c->holds_conn = true;
    /* The service's own list is every pooled connection's list. */
    c->poolable = !o.alpn || o.alpn == rs->alpn;
    return rc;
  }
  mesh__breaker_give(&x->br->connections);
  c->conn = NULL;
  /* The try never started: tell the picker and outlier detection, unless
   * the failure is ours (no credentials, out of descriptors). */
  if (mesh__call_host_fault(rc)) {
    mesh__lb_report(c->host, mesh__now_ns() - t0, false);
    mesh__od_report(rs, c->snap, c->host, MESH__OUT_CONNECT_FAILURE, 0);
  }
  return rc;
}

static const char *const outcome_names[MESH__OUT_MAX_] = {
    "ok", "ok_close", "connect_failure", "reset", "timeout", "protocol_error",
    "cancelled"};

/* Pick and connect once (no retry).  On failure c holds nothing. */
static int acquire_once(mesh_call_t *c, const mesh_dial_opts_t *dopts,
                        mesh_status_t *st) {
  mesh__callx_t *x = c->x;
  mesh__res_svc_t *rs = x->rs;
  int rc = pick(c, st);
  if (rc != MESH_OK) {
    mesh__call_release(c);
    return rc;
  }
  /* a shared-session caller (mux) may ask for its own ALPN ("h2"); a
   * replay after a stale pooled connection dials (x->fresh) */
  bool may_pool = !x->fresh && rs->cfg->pool.max_idle > 0 &&
                  (!x->alpn || x->mux) &&
                  !(dopts && (dopts->alpn || dopts->nonblocking));
  if (may_pool && x->mux) {
    int64_t now = mesh__now_ms();
    int64_t until = now + (x->connect_ms > 0 ? x->connect_ms : 5000);
    if (x->deadline_ms && x->deadline_ms < until)
      until = x->deadline_ms;
    c->mux = mesh__pool_mux_get(mesh__res_pool(x->br, c->host), now,
                                rs->cfg->pool.idle_timeout_ms, until,
                                &c->mux_dialer);
    if (c->mux) {
      c->mux_pooled = c->reused = true;
      return MESH_OK;
    }
  }
  if (x->alpn && x->mux)
    may_pool = false; /* not an idle-pool connection */
  if (may_pool) {
    mesh__pool_t *p = mesh__res_pool(x->br, c->host);
    c->conn = mesh__pool_take(p, mesh__now_ms(), rs->cfg->pool.idle_timeout_ms,
                              rs->cfg->pool.check_after_ms);
    if (c->conn) {
      c->holds_conn = true;
      c->poolable = true;
      c->reused = true;
      return MESH_OK;
    }
  }
  rc = dial(c, dopts, st);
  if (rc != MESH_OK && rc != MESH_ERR_WANT_READ && rc != MESH_ERR_WANT_WRITE) {
    mesh__call_mux_dialed(c, false);
    /* Remember the host before letting go of it: a connect retry prefers
     * another one. */
    if (mesh__call_host_fault(rc))
      mesh__callx_avoid(x, c->host);
    mesh__call_release(c);
  }
  return rc;
}

/* Acquire a connection for a new try of x: the requests breaker, then pick
 * and connect, retrying connect failures on other endpoints as the policy
 * allows (nothing was sent).  c->x must be set.  On failure the call holds
 * nothing and x->last_* describe the error. */
int mesh__call_acquire(mesh_call_t *c, bool retry_slot,
                       const mesh_dial_opts_t *dopts, mesh_status_t *st) {
  mesh__callx_t *x = c->x;
  mesh__res_svc_t *rs = x->rs;
  c->holds_retry = retry_slot;
  if (!mesh__breaker_take(&x->br->requests, x->cb.max_requests,
                          &x->br->ov_requests)) {
    mesh__res_count_overflow(rs, x->br, MESH__BR_REQUESTS);
    if (c->holds_retry)
      mesh__breaker_give(&x->br->retries);
    c->holds_retry = false;
    return mesh__fail(st, MESH_ERR_CIRCUIT_OPEN,
                      "service \"%s\"%s%s%s: circuit breaker open: %lld calls in "
                      "flight (max_requests)",
                      x->svc->name, GRP(x), (long long)x->cb.max_requests);
  }
  c->holds_request = true;
  int rc;
  for (;;) {
    c->attempt = (int)x->tries;
    x->tries++;
    rc = acquire_once(c, dopts, st);
    if (rc == MESH_OK || rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE) {
      c->try_start_ns = mesh__now_ns();
      return rc;
    }
    mesh__callx_remember(x, rc, st->message);
    mesh__span_fail(&c->span, rc, st->message);
    mesh__span_end(&c->span); /* no-op when no host was picked */
    if (!mesh__call_host_fault(rc) || (dopts && dopts->nonblocking) ||
        !mesh__retry_wanted(&x->retry, MESH__OUT_CONNECT_FAILURE, 0)) {
      x->tries--; /* x->tries counts tries that got going */
      break;
    }
    bool slot;
    rc = mesh__callx_may_retry(x, &slot, st);
    if (rc == MESH_OK)
      rc = mesh__callx_backoff(x, st);
    if (rc != MESH_OK) {
      if (slot)
        mesh__breaker_give(&x->br->retries);
      break;
    }
    x->retries++;
    /* The slot of a connect retry replaces any earlier one. */
    if (c->holds_retry)
      mesh__breaker_give(&x->br->retries);
    c->holds_retry = slot;
  }
  if (c->holds_request)
    mesh__breaker_give(&x->br->requests);
  if (c->holds_retry)
    mesh__breaker_give(&x->br->retries);
  c->holds_request = c->holds_retry = false;
  return rc;
}

/* Bound blocking I/O on the connection by what is left of the try. */
void mesh__call_arm(mesh_call_t *c) {
  mesh__callx_t *x = c->x;
  int64_t now = mesh__now_ms();
  int64_t end = x->deadline_ms;
  if (x->per_try_ms > 0 && (end == 0 || now + x->per_try_ms < end))
    end = now + x->per_try_ms;
  c->try_deadline_ms = end;
  int ms = end ? (int)(end > now ? end - now : 1) : -1;
  mesh_conn_set_timeouts(c->conn, ms, ms);
}

/* End a try: report, release breakers, pool or close.  c stays allocated. */
void mesh__call_finish(mesh_call_t *c, int outcome, int status) {
  mesh__callx_t *x = c->x;
  mesh__res_svc_t *rs = x->rs;
  if (c->try_start_ns)
    mesh__histogram_observe(rs->mx.try_s,
                            (double)(mesh__now_ns() - c->try_start_ns) / 1e9);
  if (outcome == MESH__OUT_CANCELLED) {
    mesh__span_status(&c->span, MESH_SPAN_STATUS_ERROR,
                      x->fresh ? "stale pooled connection" : "cancelled");
  } else if (c->host) {
    int code = mesh__outcome_status(outcome, status);
    bool ok = code > 0 && (code < 500 || code > 599);
    if (status > 0)
      mesh__span_attr_int(&c->span, "mesh.status_code", status);
    if (!ok)
      mesh__span_status(&c->span, MESH_SPAN_STATUS_ERROR,
                        outcome_names[outcome < MESH__OUT_MAX_ ? outcome : 0]);
    mesh__lb_report(c->host, mesh__now_ns() - c->try_start_ns, ok);
    mesh__od_report(rs, c->snap, c->host, outcome, status);
  }
  if (c->conn) {
    mesh__pool_t *p = NULL;
    if (outcome == MESH__OUT_OK && c->poolable && rs->cfg->pool.max_idle > 0 &&
        c->host && mesh__host_usable(c->host, mesh__now_ms()))
      p = mesh__res_pool(x->br, c->host);
    if (p) {
      /* Back to the configured I/O timeouts for whoever reuses it. */
      const mesh__tls_settings_t *ts = &x->m->tls->set;
      mesh_conn_set_timeouts(c->conn, ts->read_timeout_ms, ts->write_timeout_ms);
      mesh__pool_put(p, c->conn, mesh__now_ms(), rs->cfg->pool.max_idle);
    } else {
      conn_close(c->conn, c->holds_conn ? x->br : NULL);
    }
    c->conn = NULL;
    c->holds_conn = false;
  }
  mesh__call_mux_dialed(c, false);
  if (c->mux) {
    if (c->mux_pooled)
      mesh__pool_mux_put(mesh__res_pool_peek(c->host), c->mux, mesh__now_ms());
    else
      c->mux_ops->close(c->mux, x->br);
    c->mux = NULL;
  }
  mesh__call_release(c);
  mesh__span_end(&c->span);
}
