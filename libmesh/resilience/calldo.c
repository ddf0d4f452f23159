/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_call_do(): run the application's one-try function under the
 * service's retry policy, backoff, retry budget and deadlines. */
#include "resilience/call.h"

#include <stdio.h>
#include <string.h>

/* What a try function's return means: an outcome, or a connection error
 * standing for one, or a code that stops the call (returned as is). */
int mesh__call_map_try(int r, int *outcome) {
  if (r >= 0 && r < MESH__OUT_MAX_) {
    *outcome = r;
    return MESH_OK;
  }
  if (r >= MESH__OUT_MAX_) {
    *outcome = MESH__OUT_PROTOCOL_ERROR;
    return MESH_ERR_INVALID_ARG;
  }
  if (r == MESH_ERR_TIMEOUT) {
    *outcome = MESH__OUT_TIMEOUT;
    return MESH_OK;
  }
  if (mesh__err_class(r) & MESH__EF_BROKEN) {
    *outcome = MESH__OUT_RESET;
    return MESH_OK;
  }
  *outcome = MESH__OUT_CANCELLED;
  return r;
}

/* The error a failed try stands for, with its message in x. */
int mesh__call_try_error(mesh__callx_t *x, const char *endpoint, int outcome,
                         int status, const char *detail) {
  int rc;
  char msg[sizeof x->last_msg];
  const char *d = detail && *detail ? detail : "";
  switch (outcome) {
  case MESH__OUT_OK:
  case MESH__OUT_OK_CLOSE:
    rc = MESH_ERR_UPSTREAM;
    snprintf(msg, sizeof msg, "endpoint %s answered status %d", endpoint,
             status);
    break;
  case MESH__OUT_CONNECT_FAILURE:
    rc = MESH_ERR_CONNECT;
    snprintf(msg, sizeof msg, "no connection to %s%s%s", endpoint,
             *d ? ": " : "", d);
    break;
  case MESH__OUT_TIMEOUT:
    if (x->deadline_ms && mesh__now_ms() >= x->deadline_ms) {
      rc = MESH_ERR_DEADLINE;
      snprintf(msg, sizeof msg,
               "deadline of %lld ms exceeded waiting for %s",
               (long long)(x->deadline_ms - x->start_ms), endpoint);
    } else {
      rc = MESH_ERR_TIMEOUT;
      snprintf(msg, sizeof msg, "no response from %s within the per-try "
               "timeout (%lld ms)", endpoint, (long long)x->per_try_ms);
    }
    break;
  case MESH__OUT_PROTOCOL_ERROR:
    rc = MESH_ERR_PARSE;
    snprintf(msg, sizeof msg, "malformed response from %s%s%s", endpoint,
             *d ? ": " : "", d);
    break;
  default:
    rc = MESH_ERR_RESET;
    snprintf(msg, sizeof msg,
             "connection to %s reset or closed before the response ended%s%s",
             endpoint, *d ? ": " : "", d);
    break;
  }
  mesh__callx_remember(x, rc, msg);
  return rc;
}

/* Was the try lost to a pooled connection that the peer closed while it
 * sat idle (a restarting server, its keep-alive timeout)?  Go's net/http
 * Transport and Envoy send such a request again on a new connection.  Only
 * a replayable request (x->replay), a connection taken from the pool (not
 * just dialed, not a shared HTTP/2 session), EOF or reset with not one
 * byte of the response read (rx0: the count when the try began), and once
 * per call (x->fresh: later tries of the call dial). */
static bool stale_try(const mesh__callx_t *x, const mesh_call_t *c,
                      int outcome, uint64_t rx0) {
  return x->replay && !x->fresh && c->reused && c->conn && !c->mux &&
         outcome == MESH__OUT_RESET && mesh__conn_rx_bytes(c->conn) == rx0;
}

/* End a stale try (stale_try) so that the call sends it again at once:
 * the connection is closed; no outcome goes to the picker or outlier
 * detection (CANCELLED reports none: the endpoint did nothing wrong); not
 * a retry, so no backoff, retry count or budget, and a budget slot the try
 * held passes to the replay.  @return that slot. */
static bool stale_finish(mesh__callx_t *x, mesh_call_t *c) {
  bool slot = c->holds_retry;
  c->holds_retry = false;
  x->fresh = true;
  mesh__callx_remember(x, MESH_ERR_RESET, mesh_conn_errmsg(c->conn));
  mesh__call_finish(c, MESH__OUT_CANCELLED, 0);
  atomic_fetch_add(&x->rs->replays, 1);
  mesh__counter_add(x->rs->mx.replays, 1);
  return slot;
}

static bool try_succeeded(const mesh__callx_t *x, int outcome, int status) {
  return (outcome == MESH__OUT_OK || outcome == MESH__OUT_OK_CLOSE) &&
         !mesh__status_is_error(&x->retry, status);
}

/* Over 60 lines: one loop of try, stale replay, verdict and retry decision
 * over the call's state (x, slot, rc); split, each part would take all of
 * it as parameters and the order of the steps would be harder to see. */
int mesh_call_do(mesh_t *m, const char *service, const mesh_call_opts_t *opts,
                 mesh_call_try_fn fn, void *user, mesh_status_t *st) {
  mesh_status_t local; /* the machinery keeps the last message */
  if (!st)
    st = &local;
  mesh__ok(st);
  if (!fn)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "fn must not be NULL");
  mesh__callx_t x;
  int rc = mesh__callx_init(&x, m, service, opts, st);
  if (rc != MESH_OK)
    return rc;
  x.replay = opts && opts->replay;
  bool slot = false;
  for (;;) {
    mesh_call_t c;
    memset(&c, 0, sizeof c);
    c.x = &x;
    rc = mesh__call_acquire(&c, slot, NULL, st);
    slot = false;
    if (rc != MESH_OK)
      break;
    mesh__call_arm(&c);
    int status = 0, outcome;
    uint64_t rx0 = mesh__conn_rx_bytes(c.conn);
    int r = fn(&c, c.conn, &status, user);
    int stop = mesh__call_map_try(r, &outcome);
    if (stop == MESH_OK && stale_try(&x, &c, outcome, rx0)) {
      slot = stale_finish(&x, &c);
      continue;
    }
    char endpoint[MESH__HOST_KEY_MAX];
    mesh__strlcpy(endpoint, c.host->key, sizeof endpoint);
    char detail[128];
    mesh__strlcpy(detail, mesh_conn_errmsg(c.conn), sizeof detail);
    mesh__callx_avoid(&x, c.host);
    mesh__call_finish(&c, outcome, status);
    if (stop == MESH_ERR_INVALID_ARG && r >= 0) {
      rc = mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "service \"%s\": the try function returned %d, not a "
                      "mesh_call_outcome_t", x.svc->name, r);
      break;
    }
    if (stop != MESH_OK) {
      rc = mesh__fail(st, stop, "service \"%s\": the try function stopped "
                      "the call with %s", x.svc->name, mesh_code_name(stop));
      break;
    }
    if (try_succeeded(&x, outcome, status)) {
      rc = MESH_OK;
      break;
    }
    rc = mesh__call_try_error(&x, endpoint, outcome, status, detail);
    if (rc == MESH_ERR_DEADLINE ||
        !mesh__retry_wanted(&x.retry, outcome, status)) {
      rc = mesh__fail(st, rc, "service \"%s\": %s", x.svc->name, x.last_msg);
      break;
    }
    rc = mesh__callx_may_retry(&x, &slot, st);
    if (rc == MESH_OK)
      rc = mesh__callx_backoff(&x, st);
    if (rc != MESH_OK) {
      if (slot)
        mesh__breaker_give(&x.br->retries);
      break;
    }
    x.retries++;
  }
  mesh__callx_done(&x, rc);
  mesh__callx_fini(&x);
  return rc;
}

/* ---- shared sessions (HTTP/2), for the protocol layer ------------------- */

void *mesh__call_mux(mesh_call_t *c) {
  return c ? c->mux : NULL;
}

void mesh__call_adopt_mux(mesh_call_t *c, void *sess,
                          const mesh__mux_ops_t *ops) {
  mesh__res_svc_t *rs = c->x->rs;
  if (!sess) { /* the conversion failed and took the connection with it */
    if (c->holds_conn)
      mesh__breaker_give(&c->x->br->connections);
    c->conn = NULL;
    c->holds_conn = false;
    mesh__call_mux_dialed(c, false);
    return;
  }
  c->conn = NULL; /* the session owns it now */
  c->holds_conn = false;
  c->mux = sess;
  c->mux_ops = ops;
  mesh__pool_t *p = rs->cfg->pool.max_idle > 0 && c->host
                        ? mesh__res_pool(c->x->br, c->host)
                        : NULL;
  c->mux_pooled = mesh__pool_mux_add(p, sess, ops, mesh__now_ms());
  mesh__call_mux_dialed(c, false);
}

void mesh__call_mux_dialed(mesh_call_t *c, bool plain) {
  if (!c || !c->mux_dialer)
    return;
  c->mux_dialer = false;
  mesh__pool_mux_dialed(mesh__res_pool_peek(c->host), plain);
}

void mesh__call_opts_set_mux(mesh_call_opts_t *o, bool on) {
  if (o)
    o->mux = on;
}
void mesh__call_opts_set_replay(mesh_call_opts_t *o, bool on) {
  if (o)
    o->replay = on;
}
