/* SPDX-License-Identifier: Apache-2.0 */
/* Unary calls under gRPC's retry policy (gRFC A6): retryable status codes,
 * maxAttempts, exponential backoff with jitter, server pushback
 * (grpc-retry-pushback-ms), and one transparent retry of a try the server
 * never processed -- all within the call layer's retry budget and the
 * deadline.  A method without a retryPolicy follows the service's generic
 * "retry" policy on the HTTP-like status of the gRPC status (Envoy's
 * mapping: UNAVAILABLE 503, so "retry_on": ["5xx"] works for gRPC too).
 * Also: call options and the call's accessors. */
#include "grpc/grpc_cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

mesh_grpc_call_opts_t *mesh_grpc_call_opts_new(void) {
  mesh_grpc_call_opts_t *o = calloc(1, sizeof *o);
  if (o)
    o->retry = true;
  return o;
}

void mesh_grpc_call_opts_free(mesh_grpc_call_opts_t *o) {
  if (!o)
    return;
  mesh_grpc_metadata_free(o->md);
  free(o);
}

int mesh_grpc_call_opts_set_timeout(mesh_grpc_call_opts_t *o, int ms) {
  if (!o || ms < 0)
    return MESH_ERR_INVALID_ARG;
  o->timeout_ms = ms;
  return MESH_OK;
}

int mesh_grpc_call_opts_set_metadata(mesh_grpc_call_opts_t *o,
                                     const mesh_grpc_metadata_t *md) {
  if (!o)
    return MESH_ERR_INVALID_ARG;
  mesh_grpc_metadata_t *copy = NULL;
  if (md && mesh__grpc_md_copy(md, &copy) != MESH_OK)
    return MESH_ERR_NOMEM;
  mesh_grpc_metadata_free(o->md);
  o->md = copy;
  return MESH_OK;
}

int mesh_grpc_call_opts_set_max_recv(mesh_grpc_call_opts_t *o, size_t bytes) {
  if (!o || bytes == 0 || bytes > ((size_t)1 << 31))
    return MESH_ERR_INVALID_ARG;
  o->max_recv = bytes;
  return MESH_OK;
}

int mesh_grpc_call_opts_set_retry(mesh_grpc_call_opts_t *o, int on) {
  if (!o || (on != 0 && on != 1))
    return MESH_ERR_INVALID_ARG;
  o->retry = on;
  return MESH_OK;
}

/* ---- one try of a unary call ------------------------------------------------- */

int mesh__grpc_unary_try(mesh_grpc_call_t *c, bool slot, const void *req,
                         size_t len, void **resp, size_t *resp_len,
                         mesh_status_t *st) {
  int rc = mesh__grpc_try_start(c, slot, st);
  if (rc != MESH_OK)
    return rc; /* no connection: the call layer already retried */
  rc = mesh__grpc_write_msg(c, req ? req : "", len, true, st);
  if (rc == MESH_ERR_MSG_TOO_LARGE) { /* ours, before sending: no verdict */
    mesh__h2_stream_reset(c->stream, MESH__H2_CANCEL);
    c->outcome = MESH__OUT_CANCELLED;
    c->done = true;
  }
  void *m = NULL;
  size_t ml = 0;
  int r = !c->done && (rc == MESH_OK || c->stream)
              ? mesh_grpc_call_recv(c, &m, &ml, st)
              : rc;
  if (r == 1) {
    void *extra = NULL;
    size_t el;
    int r2 = mesh_grpc_call_recv(c, &extra, &el, st);
    free(extra);
    if (r2 == 1) { /* a unary call answered with a stream */
      free(m);
      m = NULL;
      mesh_grpc_call_cancel(c);
      c->status = MESH__GRPC_INTERNAL;
      free(c->message);
      c->message = mesh__strdup("more than one response message");
      c->outcome = MESH__OUT_PROTOCOL_ERROR;
    }
  }
  mesh__grpc_try_end(c);
  if (c->status == MESH__GRPC_OK && !m) {
    c->status = MESH__GRPC_UNIMPLEMENTED; /* gRPC's verdict on no message */
    free(c->message);
    c->message = mesh__strdup("OK status without a response message");
  }
  if (c->status == MESH__GRPC_OK) {
    *resp = m;
    *resp_len = ml;
  } else {
    free(m);
  }
  return MESH_OK;
}

/* Should the call go on after this try, and after how long?  2: a
 * transparent retry (the server never processed the try: REFUSED_STREAM,
 * or above a GOAWAY's last stream id), which is not an attempt and takes
 * nothing from the retry budget (gRFC A6), bounded by MAX_TRANSPARENT. */
#define MAX_TRANSPARENT 4
static int want_retry(mesh_grpc_call_t *c, int64_t *delay_ms) {
  *delay_ms = -1; /* the service's own backoff */
  if (c->status == MESH__GRPC_OK && c->via_service)
    mesh__grpc_throttle_record(&c->cfg, &c->xp->rs->grpc_tokens_missing,
                               true);
  if (c->status == MESH__GRPC_OK || !c->via_service ||
      c->status == MESH__GRPC_CANCELLED || c->outcome == MESH__OUT_CANCELLED)
    return 0;
  if (c->refused && c->transparent < MAX_TRANSPARENT &&
      !atomic_load(&c->cancelled)) {
    *delay_ms = 0;
    c->transparent++;
    c->attempts--;
    return 2;
  }
  if (c->xp->max_retries == 0)
    return 0;
  if (c->mcfg && c->mcfg->has_retry) {
    const mesh__grpc_retry_t *r = &c->mcfg->retry;
    mesh__grpc_tokens_t *tk = &c->xp->rs->grpc_tokens_missing;
    bool fail = mesh__grpc_retryable(r, c->status) || c->pushback < 0;
    if (fail) /* A6: a failure takes a token */
      mesh__grpc_throttle_record(&c->cfg, tk, false);
    if (!mesh__grpc_retryable(r, c->status) || c->pushback < 0 ||
        (uint32_t)c->attempts >= r->max_attempts ||
        !mesh__grpc_throttle_ok(&c->cfg, tk))
      return false;
    *delay_ms = c->pushback > 0 ? c->pushback_ms
                                : mesh__grpc_backoff_ms(r, (uint32_t)c->attempts,
                                                        mesh__res_rand());
    return true;
  }
  return mesh__retry_wanted(&c->xp->retry, c->outcome,
                            mesh__grpc_code_to_http(c->status));
}

/* Sleep before a retry; false when the deadline comes first. */
static bool pause_ms(mesh_grpc_call_t *c, int64_t ms) {
  int64_t now = mesh__now_ms();
  if (c->deadline_ms && now + ms >= c->deadline_ms)
    return false;
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (ms > 0 && nanosleep(&ts, &ts) != 0)
    ;
  return true;
}

/* The retry loop (see the top comment). */
static int unary_loop(mesh_grpc_call_t *c, const void *req, size_t len,
                      void **resp, size_t *resp_len, mesh_status_t *st) {
  bool slot = false;
  for (;;) {
    int rc = mesh__grpc_unary_try(c, slot, req, len, resp, resp_len, st);
    slot = false;
    if (rc != MESH_OK)
      return c->attempts > 1 && c->status >= 0 ? MESH_OK : rc;
    int64_t delay;
    int want = want_retry(c, &delay);
    if (!want)
      return MESH_OK;
    if (want == 2) {
      mesh__grpc_try_reset(c);
      continue;
    }
    mesh_status_t bst;
    if (mesh__callx_may_retry(c->xp, &slot, &bst) != MESH_OK)
      return MESH_OK; /* the budget said no: the last status stands */
    bool go = delay >= 0 ? pause_ms(c, delay)
                         : mesh__callx_backoff(c->xp, &bst) == MESH_OK;
    if (!go) {
      if (slot)
        mesh__breaker_give(&c->xp->br->retries);
      if (c->deadline_ms && mesh__now_ms() + 1 >= c->deadline_ms) {
        c->status = MESH__GRPC_DEADLINE_EXCEEDED;
        free(c->message);
        c->message = mesh__strdup("deadline exceeded before the next retry");
      }
      return MESH_OK;
    }
    c->xp->retries++;
    mesh__grpc_try_reset(c);
  }
}

int mesh_grpc_unary(mesh_t *m, const char *target, const char *method,
                    const mesh_grpc_call_opts_t *opts, const void *req,
                    size_t req_len, void **resp, size_t *resp_len,
                    mesh_grpc_call_t **done, mesh_status_t *st) {
  mesh_status_t local;
  if (!st)
    st = &local;
  mesh__ok(st);
  if (done)
    *done = NULL;
  if (!resp || !resp_len || (!req && req_len))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "unary: bad argument");
  *resp = NULL;
  *resp_len = 0;
  mesh_grpc_call_t *c;
  int rc = mesh__grpc_call_new(m, target, method, opts, &c, st);
  if (rc != MESH_OK)
    return rc;
  /* at most twice: a route decision gone stale is decided once more */
  for (int round = 0; round < 2; round++) {
    if (c->preset) /* no route, or a fault: the status is the answer */
      rc = MESH_OK;
    else if (c->via_service && c->mcfg && c->mcfg->has_hedge &&
             c->xp->max_retries)
      rc = mesh__grpc_hedged(c, req, req_len, resp, resp_len, st);
    else
      rc = unary_loop(c, req, req_len, resp, resp_len, st);
    if (round || rc != MESH_ERR_NOT_FOUND)
      break;
    rc = mesh__grpc_redecide(c, rc, st);
    if (rc != MESH_OK)
      break;
  }
  if (rc == MESH_OK) {
    c->done = true;
    rc = mesh_grpc_call_finish(c, st);
  } else if (c->have_x) {
    mesh__callx_done(c->xp, rc);
    mesh__callx_fini(c->xp);
    c->have_x = false;
  }
  if (done && (rc == MESH_OK || rc == MESH_ERR_GRPC_STATUS))
    *done = c;
  else
    mesh_grpc_call_free(c);
  return rc;
}

int mesh_grpc_call_status(const mesh_grpc_call_t *c) {
  return c && c->done ? c->status : c && !c->stream ? c->status : -1;
}
const char *mesh_grpc_call_status_message(const mesh_grpc_call_t *c) {
  return c && c->message ? c->message : "";
}
const mesh_grpc_metadata_t *mesh_grpc_call_headers(const mesh_grpc_call_t *c) {
  return c ? c->headers : NULL;
}
const mesh_grpc_metadata_t *mesh_grpc_call_trailers(const mesh_grpc_call_t *c) {
  return c ? c->trailers : NULL;
}
const char *mesh_grpc_call_peer_id(const mesh_grpc_call_t *c) {
  return c ? c->peer_id : "";
}
int mesh_grpc_call_attempts(const mesh_grpc_call_t *c) {
  return c ? c->attempts : 0;
}
