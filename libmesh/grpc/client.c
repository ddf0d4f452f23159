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

/* ---- a connection the call layer lends us, as an HTTP/2 transport -------- */

static long io_read(void *ctx, void *buf, size_t n) {
  return mesh_conn_read(ctx, buf, n);
}
static long io_write(void *ctx, const void *buf, size_t n) {
  return mesh_conn_write(ctx, buf, n);
}
static int io_fd(void *ctx) { return mesh_conn_fd(ctx); }

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

static int service_setup(mesh_grpc_call_t *c, const char *service,
                         const mesh_grpc_call_opts_t *o, mesh_status_t *st) {
  c->via_service = true;
  mesh__service_t *svc = mesh__service_find(c->m, service);
  load_config(c, svc);
  /* HTTP/2: the service's own ALPN list when it offers h2 (an Istio
   * preset such as "istio-h2", so that an Istio sidecar classifies the
   * call as mTLS), else "h2". */
  const mesh__res_svc_t *rs = svc ? (const mesh__res_svc_t *)svc->res : NULL;
  const char *alpn = rs && mesh__alpn_has(rs->alpn, "h2") ? rs->alpn : "h2";
  c->copts = mesh_call_opts_new();
  if (!c->copts || mesh_call_opts_set_alpn(c->copts, alpn) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int64_t t = o && o->timeout_ms > 0 ? o->timeout_ms
              : c->mcfg && c->mcfg->timeout_ms > 0 ? c->mcfg->timeout_ms
                                                   : 0;
  if (t > 0)
    mesh_call_opts_set_deadline(c->copts, t > INT32_MAX ? INT32_MAX : (int)t);
  if (o && !o->retry)
    mesh_call_opts_set_max_retries(c->copts, 0);
  else if (c->mcfg && c->mcfg->has_retry)
    mesh_call_opts_set_max_retries(c->copts,
                                   (int)c->mcfg->retry.max_attempts - 1);
  int rc = mesh__callx_init(&c->x, c->m, service, c->copts, st);
  if (rc != MESH_OK)
    return rc;
  c->have_x = true;
  c->deadline_ms = c->x.deadline_ms;
  mesh__span_attr_str(&c->x.span, "rpc.system", "grpc");
  const char *s, *m;
  size_t sl, ml;
  mesh__grpc_path_split(c->path, &s, &sl, &m, &ml);
  char buf[512];
  snprintf(buf, sizeof buf, "%.*s", (int)sl, s);
  mesh__span_attr_str(&c->x.span, "rpc.service", buf);
  mesh__span_attr_str(&c->x.span, "rpc.method", m);
  return MESH_OK;
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
  c->authority = strdup(target);
  c->max_recv = o && o->max_recv ? o->max_recv : 0;
  int rc = c->path && c->authority ? MESH_OK : MESH_ERR_NOMEM;
  if (rc == MESH_OK && mesh__grpc_md_copy(o ? o->md : NULL, &c->md))
    rc = MESH_ERR_NOMEM;
  if (rc != MESH_OK)
    mesh__fail(st, rc, "out of memory");
  else if (mesh__service_find(m, target))
    rc = service_setup(c, target, o, st);
  else if (!strchr(target, ':'))
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
  return rc ? rc : mesh__grpc_hl_add_md(l, c->md);
}

/* A session over the try's connection: borrowed from the call layer, or
 * taken over from our own dial. */
static int connect_try(mesh_grpc_call_t *c, bool slot, mesh_status_t *st) {
  int rc;
  if (c->via_service) {
    memset(&c->try_, 0, sizeof c->try_);
    c->try_.x = &c->x;
    rc = mesh__call_acquire(&c->try_, slot, NULL, st);
    if (rc != MESH_OK)
      return rc;
    c->have_try = true;
    mesh__call_arm(&c->try_);
    c->conn = c->try_.conn;
    c->try_deadline_ms = soonest(c->deadline_ms, c->try_.try_deadline_ms);
  } else {
    mesh_dial_opts_t *o = mesh_dial_opts_new();
    int64_t left = c->deadline_ms ? c->deadline_ms - mesh__now_ms() : 0;
    if (!o || mesh_dial_opts_set_alpn(o, "h2") != MESH_OK ||
        (left > 0 && mesh_dial_opts_set_timeout(o, (int)left) != MESH_OK)) {
      mesh_dial_opts_free(o);
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    }
    rc = mesh_dial(c->m, c->authority, o, &c->conn, st);
    mesh_dial_opts_free(o);
    if (rc != MESH_OK)
      return rc;
    c->try_deadline_ms = c->deadline_ms;
  }
  mesh__strlcpy(c->peer_id, mesh_conn_peer_id(c->conn), sizeof c->peer_id);
  c->plaintext = !mesh_conn_is_tls(c->conn);
  if (!c->plaintext && strcmp(mesh_conn_alpn(c->conn), "h2") &&
      strcmp(mesh_conn_alpn(c->conn), "istio-h2")) {
    c->outcome = MESH__OUT_PROTOCOL_ERROR;
    return mesh__fail(st, MESH_ERR_GRPC_PROTOCOL,
                      "%s did not negotiate ALPN h2 (got \"%s\")",
                      c->authority, mesh_conn_alpn(c->conn));
  }
  if (!c->via_service) {
    mesh_conn_t *own = c->conn;
    c->conn = NULL;
    return mesh__h2_session_new_conn(c->m, own, false, NULL, &c->sess, st);
  }
  c->conn->nonblocking = true; /* the session polls; see h2.h */
  mesh__h2_io_t io = {io_read, io_write, io_fd, NULL, c->conn};
  return mesh__h2_session_new_io(c->m, &io, false, NULL, &c->sess, st);
}

int mesh__grpc_try_start(mesh_grpc_call_t *c, bool slot, mesh_status_t *st) {
  c->outcome = MESH__OUT_RESET;
  int rc = connect_try(c, slot, st);
  if (rc == MESH_OK) {
    mesh__grpc_hl_t l = {0};
    rc = request_headers(c, &l);
    if (rc == MESH_OK)
      rc = mesh__h2_stream_open(c->sess, l.h, l.n, false, &c->stream, st);
    else
      mesh__fail(st, rc, "out of memory");
    mesh__grpc_hl_free(&l);
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

/* ---- statuses ---------------------------------------------------------------------- */

static void set_status(mesh_grpc_call_t *c, int code, const char *msg) {
  if (c->status >= 0)
    return;
  c->status = code;
  free(c->message);
  c->message = mesh__strdup(msg ? msg : "");
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

void mesh__grpc_try_end(mesh_grpc_call_t *c) {
  if (c->status < 0)
    set_status(c, MESH__GRPC_UNAVAILABLE, "the call ended without a status");
  mesh__h2_stream_free(c->stream);
  c->stream = NULL;
  mesh__h2_session_free(c->sess);
  c->sess = NULL;
  if (!c->have_try)
    return;
  c->conn->nonblocking = false;
  mesh__span_attr_str(&c->try_.span, "rpc.system", "grpc");
  mesh__span_attr_int(&c->try_.span, "rpc.grpc.status_code", c->status);
  int http = c->outcome == MESH__OUT_OK_CLOSE
                 ? mesh__grpc_code_to_http(c->status)
                 : 0;
  mesh__callx_avoid(&c->x, c->try_.host);
  /* never pooled: the session wrote HTTP/2 frames on it */
  mesh__call_finish(&c->try_, c->outcome == MESH__OUT_OK ? MESH__OUT_OK_CLOSE
                                                         : c->outcome,
                    http);
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
  rc = mesh__grpc_try_start(c, false, st);
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
  return mesh__grpc_write_msg(c, msg ? msg : "", len, false, st);
}

int mesh_grpc_call_close_send(mesh_grpc_call_t *c, mesh_status_t *st) {
  mesh__ok(st);
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "close_send: NULL call");
  return mesh__grpc_write_msg(c, NULL, 0, true, st);
}

int mesh_grpc_call_recv(mesh_grpc_call_t *c, void **msg, size_t *len,
                        mesh_status_t *st) {
  mesh__ok(st);
  if (!c || !msg || !len)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "recv: NULL argument");
  *msg = NULL;
  *len = 0;
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
    mesh__span_attr_int(&c->x.span, "rpc.grpc.status_code", c->status);
    mesh__callx_done(&c->x, c->status == 0 ? MESH_OK : MESH_ERR_UPSTREAM);
    mesh__callx_fini(&c->x);
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
  if (c->stream && !c->done)
    mesh__h2_stream_reset(c->stream, MESH__H2_CANCEL);
}

void mesh_grpc_call_free(mesh_grpc_call_t *c) {
  if (!c)
    return;
  if (c->stream && !c->done) {
    mesh_grpc_call_cancel(c);
    set_status(c, MESH__GRPC_CANCELLED, "cancelled by the client");
    c->outcome = MESH__OUT_CANCELLED;
  }
  if (c->stream || c->have_try)
    mesh__grpc_try_end(c);
  if (c->have_x) {
    mesh__callx_done(&c->x, c->status == 0 ? MESH_OK : MESH_ERR_UPSTREAM);
    mesh__callx_fini(&c->x);
  }
  mesh_call_opts_free(c->copts);
  mesh__grpc_svc_cfg_free(&c->cfg);
  mesh__grpc_dec_free(&c->dec);
  mesh_grpc_metadata_free(c->md);
  mesh_grpc_metadata_free(c->headers);
  mesh_grpc_metadata_free(c->trailers);
  free(c->message);
  free(c->path);
  free(c->authority);
  free(c);
}

