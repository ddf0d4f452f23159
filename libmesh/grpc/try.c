/* SPDX-License-Identifier: Apache-2.0 */
/* One try of a gRPC call: its HTTP/2 session (the endpoint's shared one
 * from the call layer's pool, or our own dial for "host:port"), its
 * stream and request headers, and its end (outcome to the call layer).
 * With hedging, several tries of one call run at once: the logical call's
 * state and each stream's publication are then guarded (xmu, smu). */
#include "grpc/grpc_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

/* ---- a try ------------------------------------------------------------------------- */

static int64_t soonest(int64_t a, int64_t b) {
  return !a ? b : !b ? a : a < b ? a : b;
}

static int inject(const char *key, const char *value, void *user) {
  return mesh__grpc_hl_add_copy(user, key, value);
}

/* The request's header block. */
static int request_headers(mesh_grpc_call_t *c, mesh__grpc_hl_t *l) {
  int rc = mesh__grpc_hl_add(l, ":method", "POST", false);
  rc = rc ? rc : mesh__grpc_hl_add(l, ":scheme",
                                   c->plaintext ? "http" : "https", false);
  rc = rc ? rc : mesh__grpc_hl_add(l, ":path", c->path, false);
  rc = rc ? rc : mesh__grpc_hl_add(l, ":authority", c->authority, false);
  rc = rc ? rc : mesh__grpc_hl_add(l, "content-type", "application/grpc",
                                   false);
  rc = rc ? rc : mesh__grpc_hl_add(l, "te", "trailers", false);
  rc = rc ? rc : mesh__grpc_hl_add(l, "user-agent", "libmesh-grpc/0.2", false);
  if (rc == MESH_OK && c->try_deadline_ms) {
    char t[MESH__GRPC_TIMEOUT_MAX];
    mesh__grpc_timeout_encode((c->try_deadline_ms - mesh__now_ms()) * 1000000,
                              t);
    rc = mesh__grpc_hl_add(l, "grpc-timeout", t, true);
  }
  if (rc == MESH_OK && c->attempts > 0) {
    char n[16];
    snprintf(n, sizeof n, "%d", c->attempts);
    rc = mesh__grpc_hl_add(l, "grpc-previous-rpc-attempts", n, true);
  }
  if (rc == MESH_OK && c->have_try)
    mesh__span_inject(&c->try_.span, inject, l);
  if (rc == MESH_OK && c->auth)
    rc = mesh__grpc_hl_add(l, "authorization", c->auth, true);
  return rc ? rc
            : mesh__grpc_hl_add_md_except(l, c->md,
                                          c->auth ? "authorization" : NULL);
}

static void lock(pthread_mutex_t *mu) {
  if (mu)
    pthread_mutex_lock(mu);
}
static void unlock(pthread_mutex_t *mu) {
  if (mu)
    pthread_mutex_unlock(mu);
}

/* Our own connection to "host:port" (no service: no pool). */
static int dial_direct(mesh_grpc_call_t *c, mesh_status_t *st) {
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  int64_t left = c->deadline_ms ? c->deadline_ms - mesh__now_ms() : 0;
  if (!o || mesh_dial_opts_set_alpn(o, "h2") != MESH_OK ||
      (left > 0 && mesh_dial_opts_set_timeout(o, (int)left) != MESH_OK)) {
    mesh_dial_opts_free(o);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  int rc = mesh_dial(c->m, c->authority, o, &c->conn, st);
  mesh_dial_opts_free(o);
  c->try_deadline_ms = c->deadline_ms;
  return rc;
}

/* The try's session: the endpoint's shared one from the call layer's pool
 * (or the try's fresh connection, which becomes shared), or a session
 * over our own dial. */
static int connect_try(mesh_grpc_call_t *c, bool slot, mesh_status_t *st) {
  int rc;
  c->own_sess = !c->via_service;
  if (c->via_service) {
    memset(&c->try_, 0, sizeof c->try_);
    c->try_.x = c->xp;
    lock(c->xmu); /* hedges share the logical call's state */
    rc = mesh__call_acquire(&c->try_, slot, NULL, st);
    if (rc == MESH_OK) {
      mesh__call_arm(&c->try_);
      if (c->xmu) /* the next hedge goes elsewhere when it can (A6) */
        mesh__callx_avoid(c->xp, c->try_.host);
    }
    unlock(c->xmu);
    if (rc != MESH_OK)
      return rc;
    c->have_try = true;
    c->conn = c->try_.conn; /* NULL: a shared session */
    c->try_deadline_ms = soonest(c->deadline_ms, c->try_.try_deadline_ms);
  } else if ((rc = dial_direct(c, st)) != MESH_OK) {
    return rc;
  }
  if (c->conn && mesh_conn_is_tls(c->conn) &&
      !mesh__alpn_is_h2(mesh_conn_alpn(c->conn))) {
    c->outcome = MESH__OUT_PROTOCOL_ERROR;
    return mesh__fail(st, MESH_ERR_GRPC_PROTOCOL,
                      "%s did not negotiate ALPN h2 (got \"%s\")",
                      c->authority, mesh_conn_alpn(c->conn));
  }
  if (c->own_sess) {
    mesh_conn_t *own = c->conn;
    c->conn = NULL;
    rc = mesh__h2_session_new_conn(c->m, own, false,
                                   &mesh__http_settings(c->m)->h2, &c->sess,
                                   st);
  } else {
    rc = mesh__h2_call_session(&c->try_, c->conn, true, NULL,
                               c->try_deadline_ms, &c->sess, st);
    c->conn = c->try_.conn; /* taken by the session */
  }
  if (rc != MESH_OK)
    return rc;
  mesh__strlcpy(c->peer_id, mesh__h2_session_peer_id(c->sess),
                sizeof c->peer_id);
  c->plaintext = !mesh__h2_session_tls(c->sess);
  return MESH_OK;
}

/* One go at a try; *unsent: it failed before anything left (the shared
 * session filled up or went away meanwhile). */
static int try_once(mesh_grpc_call_t *c, bool slot, bool *unsent,
                    mesh_status_t *st) {
  c->outcome = MESH__OUT_RESET;
  *unsent = false;
  int rc = connect_try(c, slot, st);
  if (rc == MESH_OK) {
    mesh__grpc_hl_t l = {0};
    rc = request_headers(c, &l);
    mesh__h2_stream_t *x = NULL;
    if (rc == MESH_OK)
      rc = mesh__h2_stream_open(c->sess, l.h, l.n, false, &x, st);
    else
      mesh__fail(st, rc, "out of memory");
    mesh__grpc_hl_free(&l);
    lock(c->smu); /* a hedge's cancel may look at it from now on */
    c->stream = x;
    if (x && atomic_load(&c->cancelled))
      mesh__h2_stream_reset(x, MESH__H2_CANCEL);
    unlock(c->smu);
    *unsent = rc == MESH_ERR_CIRCUIT_OPEN || rc == MESH_ERR_PEER_CLOSED;
  }
  return rc;
}

int mesh__grpc_try_start(mesh_grpc_call_t *c, bool slot, mesh_status_t *st) {
  int rc;
  bool unsent;
  /* a stream that never left is taken elsewhere at once (gRPC's
   * transparent retry): bounded, and not an attempt */
  for (int i = 0;; i++) {
    rc = try_once(c, slot, &unsent, st);
    slot = false;
    if (rc == MESH_OK || !unsent || i >= 3)
      break;
    c->outcome = MESH__OUT_CANCELLED; /* no verdict on the endpoint */
    mesh__grpc_try_end(c);
    mesh__grpc_try_reset(c);
  }
  c->attempts++;
  if (rc != MESH_OK && (c->have_try || c->sess || c->conn)) {
    /* A connection but no stream: the try ends here (UNAVAILABLE). */
    c->status = MESH__GRPC_UNAVAILABLE;
    free(c->message);
    c->message = mesh__strdup(st ? st->message : "no stream");
    mesh__grpc_try_end(c);
  }
  return rc;
}

void mesh__grpc_try_end(mesh_grpc_call_t *c) {
  if (c->status < 0)
    mesh__grpc_set_status(c, MESH__GRPC_UNAVAILABLE, "the call ended without a status");
  lock(c->smu);
  mesh__h2_stream_free(c->stream);
  c->stream = NULL;
  unlock(c->smu);
  if (c->own_sess)
    mesh__h2_session_free(c->sess);
  else if (c->conn && !c->sess)
    c->conn = NULL; /* the call layer's, closed by mesh__call_finish */
  c->sess = NULL; /* a shared one goes back with the try */
  if (!c->have_try)
    return;
  mesh__span_attr_str(&c->try_.span, "rpc.system", "grpc");
  mesh__span_attr_int(&c->try_.span, "rpc.grpc.status_code", c->status);
  int http = c->outcome == MESH__OUT_OK_CLOSE
                 ? mesh__grpc_code_to_http(c->status)
                 : 0;
  lock(c->xmu);
  mesh__callx_avoid(c->xp, c->try_.host);
  mesh__call_finish(&c->try_, c->outcome == MESH__OUT_OK ? MESH__OUT_OK_CLOSE
                                                         : c->outcome,
                    http);
  unlock(c->xmu);
  c->have_try = false;
  c->conn = NULL;
}

void mesh__grpc_try_reset(mesh_grpc_call_t *c) {
  c->status = -1;
  free(c->message);
  c->message = NULL;
  mesh_grpc_metadata_free(c->headers);
  mesh_grpc_metadata_free(c->trailers);
  c->headers = c->trailers = NULL;
  mesh__grpc_dec_free(&c->dec);
  mesh__grpc_dec_init(&c->dec, c->max_recv);
  c->rlen = c->roff = 0;
  c->sent_end = c->got_headers = c->eos = c->done = false;
  c->refused = false;
  c->pushback = 0;
}

