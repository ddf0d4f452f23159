/* SPDX-License-Identifier: Apache-2.0 */
/* The serving loop: read a request (strictly parsed), authorize it, hand it
 * to the application's handler, write the response; repeat while the
 * connection stays open.  One connection, one thread, blocking. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/h2.h"
#include "http/http.h"
#include "telemetry/telemetry.h"
#include "tls/tls.h"

#define BODY_CHUNK 16384u

/* Per-connection state: the receive buffer holds the current request's
 * head (NUL-terminated in place for the handler) followed by read-ahead. */
typedef struct srv {
  mesh_t *m;
  const mesh__http_io_t *io;
  const mesh__http_peer_t *peer;
  const mesh__http_settings_t *set;
  char *buf;
  size_t len, cap;
  mesh__http_hdr_t *spans;
  mesh__az_hdr_t *hdrs;
  /* One view of the request for policy, OPA, spans and the handler:
   * computed once per request by prepare(). */
  char *path;      /* normalized path (no query) */
  char *ntarget;   /* path + "?" + query as sent: the handler's target */
  char *host;      /* authority of an absolute-form target, NUL-terminated */
  mesh__az_hdr_t *joined; /* repeated fields, values joined with "," */
  size_t njoined;
  char *jbuf;      /* storage of the joined values */
  char *body;
  size_t body_cap;
  char traceparent[MESH_TRACEPARENT_LEN + 1];
  mesh_trace_ctx_t remote; /* the caller's context: spans borrow it */
} srv_t;

/* ---- writing ------------------------------------------------------------------ */

static void http_date(char *buf, size_t len) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static bool no_body_status(int st) {
  return st < 200 || st == 204 || st == 304;
}

static int write_response(srv_t *s, const mesh_http_response_t *resp,
                          bool head_req, bool close) {
  mesh__hbuf_t b = {0};
  char date[64];
  http_date(date, sizeof date);
  mesh__hbuf_fmt(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", resp->status,
                 mesh__http_reason(resp->status), date);
  for (size_t i = 0; i < resp->nhdrs; i++) {
    mesh__hbuf_str(&b, resp->hdrs[i].name);
    mesh__hbuf_str(&b, ": ");
    mesh__hbuf_str(&b, resp->hdrs[i].value);
    mesh__hbuf_str(&b, "\r\n");
  }
  bool body = !no_body_status(resp->status);
  if (body)
    mesh__hbuf_fmt(&b, "Content-Length: %zu\r\n", resp->body_len);
  if (close)
    mesh__hbuf_str(&b, "Connection: close\r\n");
  mesh__hbuf_str(&b, "\r\n");
  bool send_body = body && !head_req && resp->body_len;
  if (send_body && resp->body_len <= 4096) {
    mesh__hbuf_add(&b, resp->body, resp->body_len);
    send_body = false;
  }
  int64_t deadline = mesh__now_ms() + s->set->request_timeout_ms;
  int rc = b.oom ? MESH_ERR_NOMEM : s->io->write(s->io->ctx, b.p, b.n, deadline);
  if (rc == MESH_OK && send_body)
    rc = s->io->write(s->io->ctx, resp->body, resp->body_len, deadline);
  mesh__hbuf_free(&b);
  return rc;
}

/* A response the library makes itself (errors, denials). */
static int write_simple(srv_t *s, int status, const char *body, bool close) {
  mesh__http_count(s->m, NULL, status);
  mesh_http_response_t r = {.status = status,
                            .body = (char *)body,
                            .body_len = strlen(body)};
  mesh__az_hdr_t ct = {"Content-Type", "text/plain"};
  r.hdrs = &ct;
  r.nhdrs = 1;
  return write_response(s, &r, false, close);
}

/* ---- reading -------------------------------------------------------------------- */

static int fail_request(srv_t *s, int rc, const char *why, mesh_status_t *st) {
  int status = 400;
  const char *body = "Bad Request\n";
  if (rc == MESH_ERR_HTTP_TOO_LARGE) {
    bool head = why && strstr(why, "head") != NULL;
    bool count = why && strstr(why, "header fields") != NULL;
    status = head || count ? 431 : 413;
    body = status == 431 ? "Request Header Fields Too Large\n"
                         : "Content Too Large\n";
  }
  write_simple(s, status, body, true);
  mesh__log(s->m, MESH_LOG_DEBUG, "http_bad_request",
            "status=%d reason=\"%s\" peer=\"%s\"", status, why,
            s->peer->peer_id);
  return mesh__fail(st, rc, "request refused with %d: %s", status, why);
}

/* Read until a full head is parsed.  Returns the head length, 0 when the
 * peer closed cleanly before a new request, or a negative code. */
static int read_head(srv_t *s, mesh__http_msg_t *msg, mesh_status_t *st) {
  mesh__http_msg_init(msg, s->spans, s->set->lim.max_headers);
  /* Bytes already buffered (a pipelined request) have begun a request:
   * its head gets the request timeout, not the idle one. */
  bool begun = s->len > 0;
  int64_t deadline = mesh__now_ms() + (begun ? s->set->request_timeout_ms
                                             : s->set->idle_timeout_ms);
  for (;;) {
    if (s->len) {
      int rc = mesh__http_parse_request(msg, s->buf, s->len, &s->set->lim);
      if (rc > 0)
        return rc;
      if (rc != MESH_ERR_WANT_READ)
        return fail_request(s, rc, msg->why, st);
    }
    if (!begun && s->len) {
      begun = true;
      deadline = mesh__now_ms() + s->set->request_timeout_ms;
    }
    long n = s->io->read(s->io->ctx, s->buf + s->len, s->cap - s->len,
                         deadline);
    if (n == 0 && s->len == 0)
      return 0;
    if (n == 0)
      return mesh__fail(st, MESH_ERR_PEER_CLOSED,
                        "peer closed inside a request head");
    if (n < 0) {
      if (n == MESH_ERR_TIMEOUT && s->len)
        write_simple(s, 408, "Request Timeout\n", true);
      return mesh__fail(st, (int)n, "reading a request: %s",
                        mesh_strerror((int)n));
    }
    s->len += (size_t)n;
  }
}

static int body_append(srv_t *s, size_t *blen, const mesh__http_str_t *d) {
  if (*blen + d->n + 1 > s->body_cap) {
    size_t nc = s->body_cap ? s->body_cap : 4096;
    while (nc < *blen + d->n + 1)
      nc *= 2;
    char *nb = realloc(s->body, nc);
    if (!nb)
      return MESH_ERR_NOMEM;
    s->body = nb;
    s->body_cap = nc;
  }
  memcpy(s->body + *blen, d->p, d->n);
  *blen += d->n;
  s->body[*blen] = '\0';
  return MESH_OK;
}

/* Read and decode the body.  Bytes after the head are consumed first; the
 * space after the head is reused for further reads.  *next receives the
 * offset where the next request begins (pipelining). */
static int read_body(srv_t *s, const mesh__http_msg_t *msg, size_t *blen,
                     size_t *next, mesh_status_t *st) {
  mesh__http_body_t b;
  mesh__http_body_init(&b, msg, &s->set->lim);
  size_t pos = msg->head_len;
  *blen = 0;
  int64_t deadline = mesh__now_ms() + s->set->request_timeout_ms;
  while (!b.done) {
    if (pos == s->len) {
      s->len = pos = msg->head_len;
      long n = s->io->read(s->io->ctx, s->buf + s->len, s->cap - s->len,
                           deadline);
      if (n == 0)
        return mesh__fail(st, MESH_ERR_PEER_CLOSED,
                          "peer closed inside a request body");
      if (n < 0)
        return mesh__fail(st, (int)n, "reading a request body: %s",
                          mesh_strerror((int)n));
      s->len += (size_t)n;
    }
    size_t used;
    mesh__http_str_t d;
    int rc = mesh__http_body_parse(&b, s->buf + pos, s->len - pos, &used, &d);
    pos += used;
    if (rc < 0 && rc != MESH_ERR_WANT_READ)
      return fail_request(s, rc, b.why, st);
    if (d.n && body_append(s, blen, &d) != MESH_OK)
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  *next = pos;
  return MESH_OK;
}

/* NUL-terminate the parsed pieces in place: each one is followed by a
 * separator (SP, ':', OWS or CR) inside the head, never by data. */
static void terminate(srv_t *s, const mesh__http_msg_t *msg,
                      mesh_http_request_t *req) {
  ((char *)msg->method.p)[msg->method.n] = '\0';
  ((char *)msg->target.p)[msg->target.n] = '\0';
  for (size_t i = 0; i < msg->nhdrs; i++) {
    const mesh__http_hdr_t *h = &msg->hdrs[i];
    ((char *)h->name.p)[h->name.n] = '\0';
    ((char *)h->value.p)[h->value.n] = '\0';
    s->hdrs[i].name = h->name.p;
    s->hdrs[i].value = h->value.p;
  }
  req->method = msg->method.p;
  req->target = msg->target.p;
  req->orig_target = msg->target.p;
  req->hdrs = s->hdrs;
  req->nhdrs = msg->nhdrs;
  req->borrowed = true;
  req->peer_id = s->peer->peer_id;
}

/* ---- one view of the request ---------------------------------------------------- */

/* RFC 9112 3.2.2: the authority of an absolute-form target wins over Host,
 * for every consumer (policy, OPA, handler): the Host field is replaced,
 * or added for an HTTP/1.0 request without one. */
static int take_authority(srv_t *s, const mesh__target_t *t,
                          mesh_http_request_t *req, const char **host) {
  if (t->form != MESH__TARGET_ABSOLUTE)
    return MESH_OK;
  if (!mesh__http_valid_host(t->authority, t->authority_n))
    return MESH_ERR_HTTP_PARSE;
  memcpy(s->host, t->authority, t->authority_n);
  s->host[t->authority_n] = '\0';
  *host = s->host;
  for (size_t i = 0; i < req->nhdrs; i++)
    if (strcasecmp(req->hdrs[i].name, "host") == 0) {
      req->hdrs[i].value = s->host;
      return MESH_OK;
    }
  if (req->nhdrs < s->set->lim.max_headers) {
    s->hdrs[req->nhdrs].name = "Host";
    s->hdrs[req->nhdrs].value = s->host;
    req->nhdrs++;
  }
  return MESH_OK;
}

/* Join the values of every repeated field into s->jbuf (their total never
 * exceeds the head they came from).  Quadratic in the field count, which
 * max_headers bounds. */
static void join_fields(srv_t *s, mesh_http_request_t *req) {
  size_t w = 0;
  s->njoined = 0;
  for (size_t i = 0; i < req->nhdrs; i++) {
    const char *name = req->hdrs[i].name;
    bool seen = false, again = false;
    for (size_t k = 0; k < i && !seen; k++)
      seen = strcasecmp(req->hdrs[k].name, name) == 0;
    for (size_t k = i + 1; k < req->nhdrs && !again && !seen; k++)
      again = strcasecmp(req->hdrs[k].name, name) == 0;
    if (seen || !again)
      continue;
    char *val = s->jbuf + w;
    bool first = true;
    for (size_t k = i; k < req->nhdrs; k++) {
      if (strcasecmp(req->hdrs[k].name, name) != 0)
        continue;
      if (!first)
        s->jbuf[w++] = ',';
      first = false;
      size_t vn = strlen(req->hdrs[k].value);
      memcpy(s->jbuf + w, req->hdrs[k].value, vn);
      w += vn;
    }
    s->jbuf[w++] = '\0';
    s->joined[s->njoined].name = name;
    s->joined[s->njoined].value = val;
    s->njoined++;
  }
  req->joined = s->joined;
  req->njoined = s->njoined;
}

/* Compute the request's one view: host, normalized path, the handler's
 * target, joined fields.  @return MESH_OK or MESH_ERR_HTTP_PARSE (answer
 * 400: %00, a bad %XX, a target that is not a path, a bad authority). */
static int prepare(srv_t *s, const mesh__http_msg_t *msg,
                   mesh_http_request_t *req, const char **host) {
  mesh__target_t t;
  size_t pn = 0;
  int rc = mesh__target_split(req->orig_target, msg->target.n, &t);
  if (rc == MESH_OK)
    rc = take_authority(s, &t, req, host);
  if (rc == MESH_OK)
    rc = mesh__path_normalize(req->orig_target, msg->target.n,
                              mesh__authz_path_norm(s->m), s->path,
                              s->set->lim.max_head + 2, &pn);
  if (rc != MESH_OK)
    return MESH_ERR_HTTP_PARSE;
  memcpy(s->ntarget, s->path, pn);
  size_t w = pn;
  if (t.query) {
    s->ntarget[w++] = '?';
    memcpy(s->ntarget + w, t.query, t.query_n);
    w += t.query_n;
  }
  s->ntarget[w] = '\0';
  req->target = s->ntarget;
  req->path = s->path;
  join_fields(s, req);
  return MESH_OK;
}

/* ---- tracing --------------------------------------------------------------------- */

static const char *get_header(const char *key, void *user) {
  const mesh_http_request_t *req = user;
  return mesh__http_hdrs_get(req->hdrs, req->nhdrs, key);
}

/* Continue the caller's trace (traceparent / b3 in the request) with a
 * SERVER span around the request. */
static void span_begin(srv_t *s, const mesh_http_request_t *req,
                       mesh__span_t *sp) {
  bool have = mesh_trace_extract(mesh_trace_formats(s->m), get_header,
                                 (void *)req, &s->remote) == MESH_OK;
  mesh__span_start(s->m, sp, "mesh.request", MESH_SPAN_SERVER, NULL,
                   have ? &s->remote : NULL);
  if (!mesh__span_recording(sp))
    return;
  mesh__span_attr_str(sp, MESH__ATTR_HTTP_METHOD, req->method);
  mesh__span_attr_str(sp, MESH__ATTR_URL_PATH, s->path);
  if (s->peer->peer_id[0])
    mesh__span_attr_str(sp, MESH__ATTR_PEER_SPIFFE_ID, s->peer->peer_id);
}

/* The handler sees our span as the parent to propagate: an application
 * that copies "traceparent" into its outgoing requests continues the trace
 * below this request rather than beside it. */
static void span_expose(srv_t *s, const mesh__span_t *sp,
                        mesh_http_request_t *req) {
  mesh_trace_ctx_t ctx;
  mesh__span_context(sp, &ctx);
  if (mesh_traceparent_format(&ctx, s->traceparent, sizeof s->traceparent) < 0)
    return;
  /* a repeated traceparent's joined view goes with the replaced fields */
  for (size_t i = 0; i < req->njoined; i++)
    if (strcasecmp(s->joined[i].name, "traceparent") == 0)
      s->joined[i].value = s->traceparent;
  bool found = false;
  for (size_t i = 0; i < req->nhdrs; i++)
    if (strcasecmp(req->hdrs[i].name, "traceparent") == 0) {
      req->hdrs[i].value = s->traceparent;
      found = true;
    }
  if (found)
    return;
  if (req->nhdrs < s->set->lim.max_headers) {
    s->hdrs[req->nhdrs].name = "traceparent";
    s->hdrs[req->nhdrs].value = s->traceparent;
    req->nhdrs++;
  }
}

static void span_finish(mesh__span_t *sp, int status) {
  mesh__span_attr_int(sp, MESH__ATTR_HTTP_STATUS, status);
  if (status >= 500)
    mesh__span_status(sp, MESH_SPAN_STATUS_ERROR, mesh__http_reason(status));
  mesh__span_end(sp);
}

/* ---- one request ---------------------------------------------------------------- */

static int authorize(srv_t *s, const mesh_http_request_t *req,
                     const char *host, mesh_status_t *st) {
  if (!mesh__authz_active(s->m))
    return MESH_OK;
  mesh_authz_request_t ar;
  mesh__az_req_init(&ar);
  mesh__az_req_set_principal(&ar, s->peer->peer_id);
  ar.src = s->peer->addr;
  ar.port = s->peer->local_port;
  ar.http = true;
  ar.method = req->method;
  ar.target = req->orig_target;
  ar.path = s->path;
  ar.host = host;
  ar.hdrs = req->hdrs;
  ar.nhdrs = req->nhdrs;
  return mesh__authz_check_request(s->m, &ar, st);
}

typedef enum { NEXT_CONTINUE = 0, NEXT_CLOSE = 1 } next_t;

/* Answer a denied request with 403; the handler is never called. */
static int deny(srv_t *s, const mesh__http_msg_t *msg, mesh__span_t *sp,
                bool has_body, next_t *next, mesh_status_t *st) {
  mesh__span_event(sp, "authz.deny");
  span_finish(sp, 403);
  /* An unread body cannot be skipped safely: close after answering. */
  *next = has_body || !msg->keep_alive ? NEXT_CLOSE : NEXT_CONTINUE;
  int rc = write_simple(s, 403, "RBAC: access denied", *next == NEXT_CLOSE);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "writing 403: %s", mesh_strerror(rc));
  s->len = *next == NEXT_CLOSE ? 0 : s->len;
  if (*next == NEXT_CONTINUE) {
    memmove(s->buf, s->buf + msg->head_len, s->len - msg->head_len);
    s->len -= msg->head_len;
  }
  return MESH_OK;
}

static int handle(srv_t *s, mesh__http_msg_t *msg, mesh_http_handler_fn fn,
                  void *user, next_t *next, mesh_status_t *st) {
  mesh_http_request_t req = {0};
  terminate(s, msg, &req);
  const char *host = msg->host.p ? msg->host.p : "";
  if (prepare(s, msg, &req, &host) != MESH_OK)
    return fail_request(s, MESH_ERR_HTTP_PARSE, "invalid request target", st);
  bool has_body = msg->framing != MESH__HTTP_BODY_NONE &&
                  !(msg->framing == MESH__HTTP_BODY_LENGTH &&
                    msg->content_length == 0);
  mesh__span_t sp = {0};
  span_begin(s, &req, &sp);
  mesh_status_t ast = {0};
  if (authorize(s, &req, host, &ast) != MESH_OK)
    return deny(s, msg, &sp, has_body, next, st);
  if (msg->expect_continue && has_body) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    int rc = s->io->write(s->io->ctx, cont, sizeof cont - 1,
                          mesh__now_ms() + s->set->request_timeout_ms);
    if (rc != MESH_OK)
      return mesh__fail(st, rc, "writing 100 Continue: %s", mesh_strerror(rc));
  }
  size_t blen = 0, pos = msg->head_len;
  int rc = read_body(s, msg, &blen, &pos, st);
  if (rc != MESH_OK) {
    mesh__span_fail(&sp, rc, st ? st->message : NULL);
    mesh__span_end(&sp);
    return rc;
  }
  span_expose(s, &sp, &req);
  req.body = s->body ? s->body : "";
  req.body_len = blen;
  mesh_http_response_t *resp = mesh_http_response_new();
  if (!resp) {
    mesh__span_end(&sp);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  /* a 1xx is never a final response: treat it as the handler's failure */
  if (fn(&req, resp, user) != 0 || resp->status < 200) {
    mesh_http_response_free(resp);
    resp = mesh_http_response_new();
    if (!resp) {
      mesh__span_end(&sp);
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
    }
    resp->status = 500;
  }
  mesh__http_count(s->m, NULL, resp->status);
  span_finish(&sp, resp->status);
  *next = msg->keep_alive ? NEXT_CONTINUE : NEXT_CLOSE;
  rc = write_response(s, resp, strcmp(req.method, "HEAD") == 0,
                      *next == NEXT_CLOSE);
  mesh_http_response_free(resp);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "writing the response: %s", mesh_strerror(rc));
  /* Keep pipelined bytes: they start the next request. */
  memmove(s->buf, s->buf + pos, s->len - pos);
  s->len -= pos;
  return MESH_OK;
}

static void srv_free(srv_t *s) {
  free(s->buf);
  free(s->spans);
  free(s->hdrs);
  free(s->path);
  free(s->ntarget);
  free(s->host);
  free(s->joined);
  free(s->jbuf);
  free(s->body);
}

int mesh__http_serve_io(mesh_t *m, const mesh__http_io_t *io,
                        const mesh__http_peer_t *peer,
                        mesh_http_handler_fn handler, void *user,
                        mesh_status_t *st) {
  mesh__ok(st);
  srv_t s = {.m = m, .io = io, .peer = peer, .set = mesh__http_settings(m)};
  s.cap = s.set->lim.max_head + BODY_CHUNK;
  s.buf = malloc(s.cap);
  s.spans = calloc(s.set->lim.max_headers, sizeof *s.spans);
  s.hdrs = calloc(s.set->lim.max_headers, sizeof *s.hdrs);
  s.path = malloc(s.set->lim.max_head + 2);
  s.ntarget = malloc(s.set->lim.max_head + 4);
  s.host = malloc(s.set->lim.max_head + 1);
  s.joined = calloc(s.set->lim.max_headers, sizeof *s.joined);
  s.jbuf = malloc(s.set->lim.max_head + 1);
  if (!s.buf || !s.spans || !s.hdrs || !s.path || !s.ntarget || !s.host ||
      !s.joined || !s.jbuf) {
    srv_free(&s);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  int rc = MESH_OK;
  for (;;) {
    mesh__http_msg_t msg;
    int hl = read_head(&s, &msg, st);
    if (hl <= 0) {
      rc = hl;
      break;
    }
    next_t next = NEXT_CLOSE;
    rc = handle(&s, &msg, handler, user, &next, st);
    if (rc != MESH_OK || next == NEXT_CLOSE)
      break;
  }
  srv_free(&s);
  return rc;
}

int mesh_http_serve(mesh_t *m, mesh_conn_t *c, mesh_http_handler_fn handler,
                    void *user, mesh_status_t *st) {
  mesh__ok(st);
  if (!c || !handler)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_http_serve: c and handler are required");
  if (!m)
    m = c->m;
  mesh__http_peer_t peer = {.peer_id = mesh_conn_peer_id(c),
                            .local_port = -1};
  socklen_t len = sizeof peer.addr;
  if (getpeername(mesh_conn_fd(c), (struct sockaddr *)&peer.addr, &len) != 0)
    peer.addr.ss_family = 0;
  struct sockaddr_storage local;
  len = sizeof local;
  if (getsockname(mesh_conn_fd(c), (struct sockaddr *)&local, &len) == 0)
    peer.local_port = local.ss_family == AF_INET6
                          ? ntohs(((struct sockaddr_in6 *)&local)->sin6_port)
                          : ntohs(((struct sockaddr_in *)&local)->sin_port);
  /* HTTP/2 (ALPN or h2c preface) or HTTP/1.1: h2_serve.c decides */
  return mesh__h2_http_serve_conn(m, c, &peer, handler, user, st);
}
