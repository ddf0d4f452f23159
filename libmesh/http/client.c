/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of one exchange: serialize a request, read and parse the
 * response (Content-Length, chunked or until close), skip 1xx, and say
 * whether the connection is still at a message boundary. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "tls/tls.h"

#define READ_CHUNK 16384u

static bool method_has_body(const char *m) {
  return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
         strcmp(m, "PATCH") == 0;
}

static int write_request(const mesh__http_io_t *io, const char *host,
                         const mesh_http_request_t *req,
                         const mesh__az_hdr_t *extra, size_t nextra,
                         int64_t deadline, mesh_status_t *st) {
  if (!host || !mesh__http_valid_value(host, strlen(host)) ||
      strpbrk(host, " \t/@"))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "invalid Host \"%s\"",
                      host ? host : "(null)");
  mesh__hbuf_t b = {0};
  mesh__hbuf_str(&b, req->method);
  mesh__hbuf_str(&b, " ");
  mesh__hbuf_str(&b, req->target);
  mesh__hbuf_str(&b, " HTTP/1.1\r\nHost: ");
  mesh__hbuf_str(&b, host);
  mesh__hbuf_str(&b, "\r\n");
  for (size_t i = 0; i < req->nhdrs + nextra; i++) {
    const mesh__az_hdr_t *h =
        i < req->nhdrs ? &req->hdrs[i] : &extra[i - req->nhdrs];
    /* a field the library sets (trace context) replaces the caller's */
    if (i < req->nhdrs && mesh__http_hdrs_get(extra, nextra, h->name))
      continue;
    mesh__hbuf_str(&b, h->name);
    mesh__hbuf_str(&b, ": ");
    mesh__hbuf_str(&b, h->value);
    mesh__hbuf_str(&b, "\r\n");
  }
  if (req->body_len || method_has_body(req->method))
    mesh__hbuf_fmt(&b, "Content-Length: %zu\r\n", req->body_len);
  mesh__hbuf_str(&b, "\r\n");
  /* small bodies go out with the head: one TLS record, one segment */
  if (req->body_len && req->body_len <= 4096)
    mesh__hbuf_add(&b, req->body, req->body_len);
  if (b.oom) {
    mesh__hbuf_free(&b);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  int rc = io->write(io->ctx, b.p, b.n, deadline);
  if (rc == MESH_OK && req->body_len > 4096)
    rc = io->write(io->ctx, req->body, req->body_len, deadline);
  mesh__hbuf_free(&b);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "sending the request: %s", mesh_strerror(rc));
  return MESH_OK;
}

/* The response being read: a receive buffer and the parse state. */
typedef struct rd {
  const mesh__http_io_t *io;
  const mesh__http_limits_t *lim;
  int64_t deadline;
  char *buf;
  size_t len, cap;
} rd_t;

/* Read more bytes into r->buf (growing up to max_head + READ_CHUNK).
 * @return bytes read, 0 at EOF, or a negative code. */
static long fill(rd_t *r) {
  if (r->len == r->cap) {
    size_t cap = r->cap * 2;
    if (cap > r->lim->max_head + READ_CHUNK)
      cap = r->lim->max_head + READ_CHUNK;
    if (cap <= r->cap)
      return MESH_ERR_HTTP_TOO_LARGE;
    char *nb = realloc(r->buf, cap);
    if (!nb)
      return MESH_ERR_NOMEM;
    r->buf = nb;
    r->cap = cap;
  }
  long n = r->io->read(r->io->ctx, r->buf + r->len, r->cap - r->len,
                       r->deadline);
  if (n > 0)
    r->len += (size_t)n;
  return n;
}

static int io_error(long n, mesh_status_t *st, const char *what) {
  if (n == 0)
    return mesh__fail(st, MESH_ERR_PEER_CLOSED,
                      "connection closed %s", what);
  return mesh__fail(st, (int)n, "reading the response (%s): %s", what,
                    mesh_strerror((int)n));
}

/* Parse the head, skipping interim 1xx responses.  *head: its length. */
static int read_head(rd_t *r, bool head_req, mesh__http_msg_t *msg,
                     mesh__http_hdr_t *hdrs, size_t cap, mesh_status_t *st) {
  for (;;) {
    mesh__http_msg_init(msg, hdrs, cap);
    int rc;
    for (;;) {
      rc = mesh__http_parse_response(msg, r->buf, r->len, head_req, r->lim);
      if (rc != MESH_ERR_WANT_READ)
        break;
      long n = fill(r);
      if (n <= 0)
        return io_error(n, st, r->len ? "inside the response head"
                                       : "before a response");
    }
    if (rc < 0)
      return mesh__fail(st, rc, "bad response: %s", msg->why);
    if (msg->status == 101)
      return mesh__fail(st, MESH_ERR_HTTP_PARSE,
                        "unexpected 101 Switching Protocols");
    if (msg->status >= 200)
      return MESH_OK;
    memmove(r->buf, r->buf + rc, r->len - (size_t)rc);
    r->len -= (size_t)rc;
  }
}

static int append(mesh_http_response_t *resp, size_t *cap,
                  const mesh__http_str_t *d) {
  if (resp->body_len + d->n + 1 > *cap) {
    size_t nc = *cap ? *cap : 1024;
    while (nc < resp->body_len + d->n + 1)
      nc *= 2;
    char *nb = realloc(resp->body, nc);
    if (!nb)
      return MESH_ERR_NOMEM;
    resp->body = nb;
    *cap = nc;
  }
  memcpy(resp->body + resp->body_len, d->p, d->n);
  resp->body_len += d->n;
  resp->body[resp->body_len] = '\0';
  return MESH_OK;
}

/* Decode the body: the bytes after the head first, then more reads. */
static int read_body(rd_t *r, size_t pos, const mesh__http_msg_t *msg,
                     mesh_http_response_t *resp, bool *leftover,
                     mesh_status_t *st) {
  mesh__http_body_t b;
  mesh__http_body_init(&b, msg, r->lim);
  size_t cap = 0;
  while (!b.done) {
    if (pos == r->len) {
      r->len = pos = 0;
      long n = fill(r);
      if (n == 0) {
        if (mesh__http_body_eof(&b) == MESH_OK)
          break;
        return mesh__fail(st, MESH_ERR_PEER_CLOSED,
                          "connection closed inside the response body");
      }
      if (n < 0)
        return io_error(n, st, "body");
    }
    size_t used;
    mesh__http_str_t d;
    int rc = mesh__http_body_parse(&b, r->buf + pos, r->len - pos, &used, &d);
    pos += used;
    if (rc < 0 && rc != MESH_ERR_WANT_READ)
      return mesh__fail(st, rc, "bad response body: %s", b.why);
    if (d.n && append(resp, &cap, &d) != MESH_OK)
      return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  *leftover = pos < r->len;
  return MESH_OK;
}

static int take_headers(mesh_http_response_t *resp,
                        const mesh__http_msg_t *msg) {
  for (size_t i = 0; i < msg->nhdrs; i++) {
    const mesh__http_hdr_t *h = &msg->hdrs[i];
    int rc = mesh__http_hdrs_add(&resp->hdrs, &resp->nhdrs, &resp->cap,
                                 h->name.p, h->name.n, h->value.p, h->value.n);
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

static int read_response(rd_t *r, bool head_req, mesh_http_response_t **out,
                         bool *reusable, mesh_status_t *st) {
  mesh__http_hdr_t *hdrs = calloc(r->lim->max_headers, sizeof *hdrs);
  mesh_http_response_t *resp = mesh_http_response_new();
  int rc = hdrs && resp ? MESH_OK
                        : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mesh__http_msg_t msg;
  if (rc == MESH_OK)
    rc = read_head(r, head_req, &msg, hdrs, r->lim->max_headers, st);
  if (rc == MESH_OK) {
    resp->status = msg.status;
    rc = take_headers(resp, &msg);
    if (rc != MESH_OK)
      mesh__fail(st, rc, "response header: %s", mesh_strerror(rc));
  }
  bool leftover = false;
  if (rc == MESH_OK)
    rc = read_body(r, msg.head_len, &msg, resp, &leftover, st);
  free(hdrs);
  if (rc != MESH_OK) {
    mesh_http_response_free(resp);
    return rc;
  }
  /* A peer that sends bytes after the response is not at a boundary. */
  *reusable = msg.keep_alive && msg.framing != MESH__HTTP_BODY_EOF &&
              !leftover;
  *out = resp;
  return MESH_OK;
}

int mesh__http_exchange_io(const mesh__http_io_t *io, const char *host,
                           const mesh_http_request_t *req,
                           const mesh__az_hdr_t *extra, size_t nextra,
                           const mesh__http_limits_t *lim,
                           int64_t deadline_ms, mesh_http_response_t **out,
                           bool *reusable, mesh_status_t *st) {
  mesh__ok(st);
  *out = NULL;
  *reusable = false;
  int rc = write_request(io, host, req, extra, nextra, deadline_ms, st);
  if (rc != MESH_OK)
    return rc;
  rd_t r = {.io = io, .lim = lim, .deadline = deadline_ms, .cap = 4096};
  r.buf = malloc(r.cap);
  if (!r.buf)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  rc = read_response(&r, strcmp(req->method, "HEAD") == 0, out, reusable, st);
  free(r.buf);
  return rc;
}

int mesh_http_exchange(mesh_conn_t *c, const char *host,
                       const mesh_http_request_t *req,
                       mesh_http_response_t **out, int *keep_alive,
                       mesh_status_t *st) {
  mesh__ok(st);
  if (keep_alive)
    *keep_alive = 0;
  if (!c || !req || !out || req->borrowed)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_http_exchange: c, req and out are required");
  *out = NULL;
  mesh__http_io_t io;
  mesh__http_io_conn(&io, c);
  int64_t deadline = req->timeout_ms > 0 ? mesh__now_ms() + req->timeout_ms
                                         : 0;
  bool reuse = false;
  int rc = mesh__http_exchange_io(&io, host ? host : "localhost", req, NULL, 0,
                                  &mesh__http_settings(c->m)->lim, deadline,
                                  out, &reuse, st);
  if (keep_alive)
    *keep_alive = reuse;
  return rc;
}
