/* SPDX-License-Identifier: Apache-2.0 */
/* The gRPC client: one call over the call layer (a configured service:
 * pick, pooled-or-new connection, outcome reporting) or a direct dial
 * ("host:port"), with an HTTP/2 stream per try.  Transport failures turn
 * into gRPC statuses as gRPC reports them. */
#include "grpc/grpc_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

/* ---- creating a call ---------------------------------------------------------- */

static void load_config(mesh_grpc_call_t *c, mesh__service_t *svc) {
  const cJSON *g = cJSON_GetObjectItemCaseSensitive(svc->cfg, "grpc");
  if (!g)
    return;
  /* Validated when the context was made; parsed per call (microseconds)
   * so the service needs no grpc state of its own. */
  mesh__cfg_t cc = {0, NULL, NULL, NULL};
  if (mesh__grpc_svc_cfg_parse(&cc, g, "grpc", &c->cfg) == MESH_OK)
    c->mcfg = mesh__grpc_svc_cfg_find(&c->cfg, c->path);
}

/* The call's logical call (call layer) for the route's or the service's
 * policy, timeout t (0: none); routed: a control plane's decision. */
static int bind_call(mesh_grpc_call_t *c, const char *service, bool routed,
                     int64_t t, mesh_status_t *st) {
  if (routed && !c->no_retry)
    mesh_call_opts_set_max_retries(c->copts, c->mcfg->has_retry
                                   ? (int)c->mcfg->retry.max_attempts - 1 : 0);
  if (t > 0)
    mesh_call_opts_set_deadline(c->copts, t > INT32_MAX ? INT32_MAX : (int)t);
  if (c->no_retry)
    mesh_call_opts_set_max_retries(c->copts, 0);
  else if (routed)
    ; /* the route's policy, set above */
  else if (c->mcfg && c->mcfg->has_retry)
    mesh_call_opts_set_max_retries(c->copts,
                                   (int)c->mcfg->retry.max_attempts - 1);
  else if (c->mcfg && c->mcfg->has_hedge) /* hedges count as retries */
    mesh_call_opts_set_max_retries(c->copts,
                                   (int)c->mcfg->hedge.max_attempts - 1);
  c->xp = &c->x;
  int rc = mesh__callx_init(c->xp, c->m, service, c->copts, st);
  if (rc != MESH_OK)
    return rc;
  c->have_x = true;
  c->deadline_ms = c->xp->deadline_ms;
  mesh__span_attr_str(&c->xp->span, "rpc.system", "grpc");
  const char *s, *m;
  size_t sl, ml;
  mesh__grpc_path_split(c->path, &s, &sl, &m, &ml);
  char buf[512];
  snprintf(buf, sizeof buf, "%.*s", (int)sl, s);
  mesh__span_attr_str(&c->xp->span, "rpc.service", buf);
  mesh__span_attr_str(&c->xp->span, "rpc.method", m);
  return MESH_OK;
}

static int service_setup(mesh_grpc_call_t *c, const char *service,
                         const mesh_grpc_call_opts_t *o, mesh_status_t *st) {
  c->via_service = true;
  c->no_retry = o && !o->retry;
  mesh__service_t *svc = mesh__service_find(c->m, service);
  load_config(c, svc);
  /* a JWT-SVID for the service's audience, before any try: no token, no
   * call (as mesh_http_call) */
  int jr = mesh__http_jwt_header(c->m, svc, &c->auth, st);
  if (jr != MESH_OK)
    return jr;
  /* HTTP/2: the service's own ALPN list when it offers h2 (an Istio
   * preset such as "istio-h2", so that an Istio sidecar classifies the
   * call as mTLS), else "h2". */
  const mesh__res_svc_t *rs = svc ? (const mesh__res_svc_t *)svc->res : NULL;
  const char *alpn = rs && mesh__alpn_has(rs->alpn, "h2") ? rs->alpn : "h2";
  c->copts = mesh_call_opts_new();
  if (!c->copts || mesh_call_opts_set_alpn(c->copts, alpn) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  /* tries share the endpoint's HTTP/2 sessions (one connection carries
   * many calls, as a gRPC channel does) */
  mesh__call_opts_set_mux(c->copts, true);
  int64_t t = o && o->timeout_ms > 0 ? o->timeout_ms
              : c->mcfg && c->mcfg->timeout_ms > 0 ? c->mcfg->timeout_ms
                                                   : 0;
  int routed = mesh__grpc_route(c, service, &t, st);
  if (routed < 0 || c->preset)
    return routed < 0 ? routed : MESH_OK;
  return bind_call(c, service, routed == MESH_OK, t, st);
}

int mesh__grpc_redecide(mesh_grpc_call_t *c, int rc, mesh_status_t *st) {
  if (rc != MESH_ERR_NOT_FOUND || !c->have_x || c->xp != &c->x || c->hs ||
      c->redecided || !c->xsubset[0])
    return rc;
  c->redecided = true; /* once, as HTTP's */
  const char *service = c->x.svc->name; /* lives until mesh_free */
  mesh__xroute_t x;
  if (mesh__grpc_route_again(c, service, &x) != MESH_OK)
    return rc; /* no other cluster: the pick's error stands */
  /* the logical call failed at its pick, as HTTP's first mesh_call_do:
   * it ends (its options' subset goes with it), the new decision gets
   * its own, within what is left of the deadline */
  int64_t t = c->deadline_ms ? c->deadline_ms - mesh__now_ms() : 0;
  if (c->deadline_ms && t < 1)
    t = 1;
  mesh__callx_done(&c->x, rc);
  mesh__callx_fini(&c->x);
  c->have_x = false;
  int r = mesh__grpc_route_apply(c, &x, &t, st);
  if (r != MESH_OK)
    return r;
  mesh__grpc_try_reset(c);
  c->attempts = 0; /* the failed pick sent nothing */
  return bind_call(c, service, true, t, st);
}

/* The service target names (mesh__service_use).  An xds name the control
 * plane says does not exist (its listener, route configuration or a
 * cluster its routes name; the service was added when it was subscribed)
 * is a call whose status is UNAVAILABLE, as gRPC's xDS client fails the
 * RPCs of such a channel; other names fail with the resolver's error. */
static int use(mesh_grpc_call_t *c, const char *target,
               const mesh_grpc_call_opts_t *o, mesh__service_t **svc,
               mesh_status_t *st) {
  mesh_status_t ust = {0};
  int rc = mesh__service_use(c->m, target, o ? o->timeout_ms : 0, svc, &ust);
  if (rc == MESH_ERR_UNKNOWN_SERVICE && mesh__service_find(c->m, target)) {
    mesh__grpc_preset(c, MESH__GRPC_UNAVAILABLE, ust.message);
    *svc = NULL;
    return MESH_OK;
  }
  return rc < 0 ? mesh__fail(st, rc, "%s", ust.message) : rc;
}

int mesh__grpc_call_new(mesh_t *m, const char *target, const char *method,
                        const mesh_grpc_call_opts_t *o, mesh_grpc_call_t **out,
                        mesh_status_t *st) {
  const char *a, *b;
  size_t al, bl;
  *out = NULL;
  if (!m || !target || !*target)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "grpc: no context or target");
  if (mesh__grpc_path_split(method, &a, &al, &b, &bl) != MESH_OK)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "grpc: method \"%.64s\" is not \"/pkg.Service/Method\"",
                      method ? method : "");
  mesh_grpc_call_t *c = calloc(1, sizeof *c);
  if (!c)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  c->m = m;
  c->status = -1;
  c->path = strdup(method);
  /* xds:///NAME: NAME is the authority, as gRPC's */
  c->authority = strdup(strncmp(target, "xds:///", 7) ? target : target + 7);
  c->max_recv = o && o->max_recv ? o->max_recv : 0;
  int rc = c->path && c->authority ? MESH_OK : MESH_ERR_NOMEM;
  if (rc == MESH_OK && mesh__grpc_md_copy(o ? o->md : NULL, &c->md))
    rc = MESH_ERR_NOMEM;
  mesh__service_t *svc = NULL; /* an xds name is subscribed on first use */
  if (rc != MESH_OK)
    mesh__fail(st, rc, "out of memory");
  else if (!strchr(target, ':') || strncmp(target, "xds:///", 7) == 0)
    rc = use(c, target, o, &svc, st);
  if (rc == MESH_OK && svc)
    rc = service_setup(c, target, o, st);
  else if (rc == 1)
    rc = mesh__fail(st, MESH_ERR_UNKNOWN_SERVICE,
                    "grpc: \"%s\" is neither a configured service nor "
                    "host:port", target);
  else if (o && o->timeout_ms > 0)
    c->deadline_ms = mesh__now_ms() + o->timeout_ms;
  if (!c->max_recv)
    c->max_recv = c->mcfg && c->mcfg->max_resp ? c->mcfg->max_resp
                                               : MESH__GRPC_MAX_MSG_DEFAULT;
  mesh__grpc_dec_init(&c->dec, c->max_recv);
  if (rc != MESH_OK) {
    mesh_grpc_call_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}

/* ---- statuses ---------------------------------------------------------------------- */

static void set_status(mesh_grpc_call_t *c, int code, const char *msg) {
  if (c->status >= 0)
    return;
  c->status = code;
  free(c->message);
  c->message = mesh__strdup(msg ? msg : "");
}

void mesh__grpc_set_status(mesh_grpc_call_t *c, int code, const char *msg) {
  set_status(c, code, msg);
}

/* A stream error: the status gRPC reports for it, and the try's outcome. */
static int stream_failed(mesh_grpc_call_t *c, int rc, mesh_status_t *st) {
  char msg[sizeof st->message + 64];
  snprintf(msg, sizeof msg, "%s", st && st->message[0] ? st->message
                                                       : mesh_strerror(rc));
  if (atomic_load(&c->cancelled)) {
    set_status(c, MESH__GRPC_CANCELLED, "cancelled by the client");
    c->outcome = MESH__OUT_CANCELLED;
    return mesh__fail(st, MESH_ERR_CANCELLED, "the call was cancelled");
  }
  if (rc == MESH_ERR_TIMEOUT && c->sess &&
      mesh__h2_session_status(c->sess, NULL, NULL) == MESH_ERR_TIMEOUT)
    rc = MESH_ERR_PEER_CLOSED; /* keepalive: the connection, not the call */
  if (rc == MESH_ERR_TIMEOUT) {
    bool overall = c->deadline_ms && mesh__now_ms() >= c->deadline_ms;
    set_status(c, MESH__GRPC_DEADLINE_EXCEEDED,
               overall ? "deadline exceeded" : "per-try timeout exceeded");
    c->outcome = MESH__OUT_TIMEOUT;
    if (c->stream)
      mesh__h2_stream_reset(c->stream, MESH__H2_CANCEL);
    return mesh__fail(st, MESH_ERR_DEADLINE, "deadline exceeded");
  }
  if (rc == MESH_ERR_MSG_TOO_LARGE || rc == MESH_ERR_GRPC_PROTOCOL) {
    set_status(c, rc == MESH_ERR_MSG_TOO_LARGE ? MESH__GRPC_RESOURCE_EXHAUSTED
                                               : MESH__GRPC_INTERNAL,
               msg);
    c->outcome = rc == MESH_ERR_MSG_TOO_LARGE ? MESH__OUT_CANCELLED
                                              : MESH__OUT_PROTOCOL_ERROR;
    if (c->stream)
      mesh__h2_stream_reset(c->stream, MESH__H2_CANCEL);
    return rc;
  }
  uint32_t h2 = c->stream ? mesh__h2_stream_error(c->stream) : 0;
  c->refused = c->stream && mesh__h2_stream_refused(c->stream);
  set_status(c, rc == MESH_ERR_RESET && h2 ? mesh__grpc_code_from_h2_error(h2)
                                           : MESH__GRPC_UNAVAILABLE,
             msg);
  c->outcome = rc == MESH_ERR_HTTP_PARSE ? MESH__OUT_PROTOCOL_ERROR
                                         : MESH__OUT_RESET;
  return rc;
}

/* Status from a header block that ends the stream (trailers, or a
 * trailers-only response).  Keeps the trailing metadata. */
static void status_from(mesh_grpc_call_t *c, const mesh__h2_hdr_t *h,
                        size_t n, int http) {
  const char *s = mesh__grpc_h2_get(h, n, "grpc-status");
  const char *msg = mesh__grpc_h2_get(h, n, "grpc-message");
  const char *pb = mesh__grpc_h2_get(h, n, "grpc-retry-pushback-ms");
  int code;
  mesh_grpc_metadata_free(c->trailers);
  c->trailers = NULL;
  mesh__grpc_md_from_h2(h, n, &c->trailers);
  if (pb)
    c->pushback = mesh__grpc_pushback_parse(pb, strlen(pb), &c->pushback_ms)
                      ? 1
                      : -1;
  char *dec = NULL;
  if (msg)
    mesh__grpc_msg_decode(msg, strlen(msg), &dec, NULL);
  if (s && mesh__grpc_status_parse(s, strlen(s), &code) == MESH_OK) {
    set_status(c, code, dec);
  } else if (http != 200) {
    char m[64];
    snprintf(m, sizeof m, "HTTP status %d", http);
    set_status(c, mesh__grpc_code_from_http(http), m);
  } else {
    set_status(c, MESH__GRPC_INTERNAL,
               s ? "malformed grpc-status" : "no grpc-status in trailers");
  }
  free(dec);
  c->outcome = MESH__OUT_OK_CLOSE;
  c->done = true;
}

/* Wait for the response headers: a trailers-only response or an HTTP
 * error ends the call here. */
static int read_headers(mesh_grpc_call_t *c, mesh_status_t *st);
int mesh__grpc_read_headers(mesh_grpc_call_t *c, mesh_status_t *st) {
  return read_headers(c, st);
}

static int read_headers(mesh_grpc_call_t *c, mesh_status_t *st) {
  if (c->got_headers || c->done)
    return MESH_OK;
  const mesh__h2_hdr_t *h;
  size_t n;
  int rc = mesh__h2_stream_headers(c->stream, c->try_deadline_ms, &h, &n, st);
  if (rc != MESH_OK)
    return stream_failed(c, rc, st);
  c->got_headers = true;
  const char *s = mesh__grpc_h2_get(h, n, ":status");
  const char *ct = mesh__grpc_h2_get(h, n, "content-type");
  int http = s ? atoi(s) : 0;
  if (http != 200 || mesh__grpc_h2_get(h, n, "grpc-status")) {
    status_from(c, h, n, http);
    return MESH_OK;
  }
  if (!ct || strncmp(ct, "application/grpc", 16)) {
    set_status(c, MESH__GRPC_UNKNOWN, "response content-type is not "
                                      "application/grpc");
    c->outcome = MESH__OUT_PROTOCOL_ERROR;
    c->done = true;
    mesh__h2_stream_reset(c->stream, MESH__H2_CANCEL);
    return MESH_OK;
  }
  return mesh__grpc_md_from_h2(h, n, &c->headers) == MESH_OK
             ? MESH_OK
             : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
}

/* The end of the response stream: trailers carry the status. */
static int read_trailers(mesh_grpc_call_t *c, mesh_status_t *st) {
  const mesh__h2_hdr_t *h;
  size_t n;
  int rc = mesh__h2_stream_trailers(c->stream, c->try_deadline_ms, &h, &n, st);
  if (rc != MESH_OK)
    return stream_failed(c, rc, st);
  if (!mesh__grpc_dec_idle(&c->dec)) {
    set_status(c, MESH__GRPC_INTERNAL, "the response ended inside a message");
    c->outcome = MESH__OUT_PROTOCOL_ERROR;
    c->done = true;
    return MESH_OK;
  }
  status_from(c, h, n, 200);
  return MESH_OK;
}

/* Next message: 1, 0 when the call is done (status known), or an error. */
static int recv_msg(mesh_grpc_call_t *c, void **msg, size_t *len,
                    mesh_status_t *st) {
  int rc = read_headers(c, st);
  while (rc == MESH_OK && !c->done) {
    if (c->roff < c->rlen) {
      uint8_t *m;
      size_t ml;
      long r = mesh__grpc_dec_feed(&c->dec, c->rbuf + c->roff,
                                   c->rlen - c->roff, &m, &ml);
      if (r < 0) {
        mesh__fail(st, (int)r, "response message %s",
                   r == MESH_ERR_MSG_TOO_LARGE ? "over the receive limit"
                                               : "malformed");
        return stream_failed(c, (int)r, st);
      }
      c->roff += (size_t)r;
      if (m) {
        *msg = m;
        *len = ml;
        return 1;
      }
      continue;
    }
    if (c->eos)
      return read_trailers(c, st);
    long n = mesh__h2_stream_read(c->stream, c->rbuf, sizeof c->rbuf,
                                  c->try_deadline_ms, st);
    if (n < 0)
      return stream_failed(c, (int)n, st);
    c->eos = n == 0;
    c->rlen = (size_t)n;
    c->roff = 0;
  }
  return rc;
}

int mesh__grpc_write_msg(mesh_grpc_call_t *c, const void *msg, size_t len,
                         bool end, mesh_status_t *st) {
  if (atomic_load(&c->cancelled))
    return mesh__fail(st, MESH_ERR_CANCELLED, "the call was cancelled");
  if (c->sent_end || c->done || !c->stream)
    return mesh__fail(st, MESH_ERR_CLOSED, "the call is half-closed or done");
  size_t max = c->mcfg && c->mcfg->max_req ? c->mcfg->max_req : UINT32_MAX;
  if (len > max) { /* gRPC: RESOURCE_EXHAUSTED, nothing sent */
    set_status(c, MESH__GRPC_RESOURCE_EXHAUSTED,
               "request message larger than maxRequestMessageBytes");
    return mesh__fail(st, MESH_ERR_MSG_TOO_LARGE,
                      "message of %zu bytes over the limit of %zu", len, max);
  }
  uint8_t *buf = msg ? malloc(len + MESH__GRPC_PREFIX) : NULL;
  if (msg && !buf)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (buf) {
    mesh__grpc_prefix(buf, len);
    if (len)
      memcpy(buf + MESH__GRPC_PREFIX, msg, len);
  }
  int rc = mesh__h2_stream_write(c->stream, buf, buf ? len + MESH__GRPC_PREFIX
                                                     : 0,
                                 end, c->try_deadline_ms, st);
  free(buf);
  if (end)
    c->sent_end = true;
  return rc == MESH_OK ? rc : stream_failed(c, rc, st);
}

/* ---- the streaming API ------------------------------------------------------------ */

int mesh_grpc_call_start(mesh_t *m, const char *target, const char *method,
                         const mesh_grpc_call_opts_t *opts,
                         mesh_grpc_call_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (!out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "grpc: out is NULL");
  mesh_grpc_call_t *c;
  int rc = mesh__grpc_call_new(m, target, method, opts, &c, st);
  if (rc != MESH_OK)
    return rc;
  if (c->preset) { /* no route, or a fault: the status is the answer */
    c->done = true;
    *out = c;
    return MESH_OK;
  }
  /* hedging: the messages are buffered and replayed on each hedge */
  if (c->via_service && c->mcfg && c->mcfg->has_hedge && c->xp->max_retries)
    rc = mesh__grpc_hs_start(c, st);
  else
    rc = mesh__grpc_try_start(c, false, st);
  if (rc == MESH_ERR_NOT_FOUND) { /* a stale route decision? */
    rc = mesh__grpc_redecide(c, rc, st);
    if (rc == MESH_OK)
      rc = mesh__grpc_try_start(c, false, st);
  }
  if (rc != MESH_OK) {
    mesh_grpc_call_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}

int mesh_grpc_call_send(mesh_grpc_call_t *c, const void *msg, size_t len,
                        mesh_status_t *st) {
  mesh__ok(st);
  if (!c || (!msg && len))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "send: bad argument");
  if (c->hs)
    return mesh__grpc_hs_send(c, msg ? msg : "", len, st);
  return mesh__grpc_write_msg(c, msg ? msg : "", len, false, st);
}

int mesh_grpc_call_close_send(mesh_grpc_call_t *c, mesh_status_t *st) {
  mesh__ok(st);
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "close_send: NULL call");
  if (c->hs)
    return mesh__grpc_hs_send(c, NULL, 0, st);
  return mesh__grpc_write_msg(c, NULL, 0, true, st);
}

int mesh_grpc_call_recv(mesh_grpc_call_t *c, void **msg, size_t *len,
                        mesh_status_t *st) {
  mesh__ok(st);
  if (!c || !msg || !len)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "recv: NULL argument");
  *msg = NULL;
  *len = 0;
  if (c->hs && !atomic_load(&c->cancelled))
    return mesh__grpc_hs_recv(c, msg, len, st);
  if (atomic_load(&c->cancelled))
    return stream_failed(c, MESH_ERR_CLOSED, st);
  if (c->done || !c->stream)
    return 0;
  return recv_msg(c, msg, len, st);
}

int mesh_grpc_call_finish(mesh_grpc_call_t *c, mesh_status_t *st) {
  mesh__ok(st);
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "finish: NULL call");
  mesh__grpc_hs_end(c, atomic_load(&c->cancelled));
  while (c->stream && !c->done && c->status < 0) {
    void *m = NULL;
    size_t l;
    int r = recv_msg(c, &m, &l, st);
    free(m);
    if (r < 0)
      break;
  }
  mesh__grpc_try_end(c);
  if (c->have_x) {
    mesh__span_attr_int(&c->xp->span, "rpc.grpc.status_code", c->status);
    mesh__callx_done(c->xp, c->status == 0 ? MESH_OK : MESH_ERR_UPSTREAM);
    mesh__callx_fini(c->xp);
    c->have_x = false;
  }
  if (c->status == MESH__GRPC_OK)
    return MESH_OK;
  return mesh__fail(st, MESH_ERR_GRPC_STATUS, "%s: %s",
                    mesh_grpc_status_name(c->status),
                    c->message ? c->message : "");
}

void mesh_grpc_call_cancel(mesh_grpc_call_t *c) {
  if (!c || atomic_exchange(&c->cancelled, true))
    return;
  if (c->hs)
    mesh__grpc_hs_cancel(c);
  if (c->stream && !c->done)
    mesh__h2_stream_reset(c->stream, MESH__H2_CANCEL);
}

void mesh_grpc_call_free(mesh_grpc_call_t *c) {
  if (!c)
    return;
  if (c->hs) {
    atomic_store(&c->cancelled, true);
    mesh__grpc_hs_end(c, true);
  }
  if (c->stream && !c->done) {
    mesh_grpc_call_cancel(c);
    set_status(c, MESH__GRPC_CANCELLED, "cancelled by the client");
    c->outcome = MESH__OUT_CANCELLED;
  }
  if (c->stream || c->have_try)
    mesh__grpc_try_end(c);
  if (c->have_x) {
    mesh__callx_done(c->xp, c->status == 0 ? MESH_OK : MESH_ERR_UPSTREAM);
    mesh__callx_fini(c->xp);
  }
  mesh_call_opts_free(c->copts);
  mesh__grpc_svc_cfg_free(&c->cfg);
  mesh__grpc_dec_free(&c->dec);
  mesh_grpc_metadata_free(c->md);
  mesh_grpc_metadata_free(c->headers);
  mesh_grpc_metadata_free(c->trailers);
  free(c->message);
  free(c->path);
  free(c->auth);
  free(c->authority);
  free(c);
}

