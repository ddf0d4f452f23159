/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_http_call over HTTP/2: when the call layer hands a try a shared
 * session (the host's pool had one with a free stream) or a fresh
 * connection that negotiated ALPN "h2", the request goes out as one stream.
 * A fresh h2 connection becomes a session the pool shares with later calls
 * (mesh__call_adopt_mux): many calls, one connection, up to the peer's
 * MAX_CONCURRENT_STREAMS; a full session makes the next call dial another
 * connection; a session that received GOAWAY takes no new call and is
 * closed when its last call ends.  The circuit breakers see one request
 * per stream, as for HTTP/1.1. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h2_int.h"
#include "http/http.h"
#include "resilience/resilience.h"

/* ---- the pool's view of a session ------------------------------------------ */

static uint32_t mux_capacity(void *sess) {
  mesh__h2_session_t *s = sess;
  pthread_mutex_lock(&s->mu);
  uint32_t n = 0;
  /* one call until the peer's SETTINGS say how many it takes: streams sent
   * over a limit it announces later are refused (REFUSED_STREAM) */
  if (!s->dead_rc && !s->goaway_recv && !s->goaway_sent && !s->draining)
    n = s->settings_seen ? nghttp2_session_get_remote_settings(
                               s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                         : 1;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static bool mux_alive(void *sess) {
  /* an idle session learns of GOAWAY / EOF / PINGs only when driven */
  mesh__h2_session_poll(sess, 0);
  return mesh__h2_session_alive(sess);
}

/* user: the breakers whose connections slot the session holds (the
 * pool's, resilience/calltry.c) */
static void mux_close(void *sess, void *user) {
  mesh__h2_session_free(sess);
  mesh__breakers_conn_closed(user);
}

static const mesh__mux_ops_t mux_ops = {mux_capacity, mux_alive, mux_close};

/* ---- one request as one stream ------------------------------------------------ */

/* Fields that do not exist in HTTP/2 (RFC 9113 section 8.2.2). */
static bool hop_by_hop(const char *n) {
  static const char *const v[] = {"connection", "keep-alive",
                                  "proxy-connection", "transfer-encoding",
                                  "upgrade", "host", "content-length", NULL};
  for (size_t i = 0; v[i]; i++)
    if (strcasecmp(n, v[i]) == 0)
      return true;
  return false;
}

/* The request's header list: pseudo-headers, then the caller's fields
 * (lower-cased copies), then the library's (trace context). */
static mesh__h2_hdr_t *build(const char *host, bool tls,
                             const mesh_http_request_t *req,
                             const mesh__az_hdr_t *extra, size_t nextra,
                             char *clen, size_t *n, char ***names) {
  size_t cap = 5 + req->nhdrs + nextra;
  mesh__h2_hdr_t *h = calloc(cap, sizeof *h);
  *names = calloc(req->nhdrs + nextra + 1, sizeof **names);
  if (!h || !*names) {
    free(h);
    free(*names);
    return NULL;
  }
  size_t k = 0;
  h[k++] = (mesh__h2_hdr_t){":method", req->method};
  h[k++] = (mesh__h2_hdr_t){":scheme", tls ? "https" : "http"};
  h[k++] = (mesh__h2_hdr_t){":path", req->target};
  h[k++] = (mesh__h2_hdr_t){":authority", host};
  for (size_t i = 0; i < req->nhdrs + nextra; i++) {
    const mesh__az_hdr_t *f =
        i < req->nhdrs ? &req->hdrs[i] : &extra[i - req->nhdrs];
    if (hop_by_hop(f->name) ||
        (i < req->nhdrs && mesh__http_hdrs_get(extra, nextra, f->name)))
      continue;
    char *lc = strdup(f->name);
    if (!lc)
      continue;
    for (char *p = lc; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    (*names)[i] = lc;
    h[k++] = (mesh__h2_hdr_t){lc, f->value};
  }
  if (req->body_len) {
    snprintf(clen, 24, "%zu", req->body_len);
    h[k++] = (mesh__h2_hdr_t){"content-length", clen};
  }
  *n = k;
  return h;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; names && i < n; i++)
    free(names[i]);
  free(names);
}

/* Response head and body into a mesh_http_response_t. */
static int read_response(mesh__h2_stream_t *x, const mesh__http_limits_t *lim,
                         int64_t deadline, mesh_http_response_t **out,
                         mesh_status_t *st) {
  const mesh__h2_hdr_t *rh;
  size_t rn;
  int rc = mesh__h2_stream_headers(x, deadline, &rh, &rn, st);
  if (rc != MESH_OK)
    return rc;
  mesh_http_response_t *resp = mesh_http_response_new();
  if (!resp)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  resp->status = rn && strcmp(rh[0].name, ":status") == 0 ? atoi(rh[0].value)
                                                          : 0;
  for (size_t i = 0; i < rn && rc == MESH_OK; i++)
    if (rh[i].name[0] != ':')
      rc = mesh__http_hdrs_add(&resp->hdrs, &resp->nhdrs, &resp->cap,
                               rh[i].name, strlen(rh[i].name), rh[i].value,
                               strlen(rh[i].value));
  size_t cap = 0;
  while (rc == MESH_OK) {
    if (resp->body_len + 16384 + 1 > cap) {
      size_t nc = cap ? cap * 2 : 16384 + 1;
      char *nb = realloc(resp->body, nc);
      if (!nb) {
        rc = MESH_ERR_NOMEM;
        break;
      }
      resp->body = nb;
      cap = nc;
    }
    long n = mesh__h2_stream_read(x, resp->body + resp->body_len, 16384,
                                  deadline, st);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    resp->body_len += (size_t)n;
    if (resp->body_len > lim->max_body)
      rc = mesh__fail(st, MESH_ERR_HTTP_TOO_LARGE,
                      "response body over %llu bytes",
                      (unsigned long long)lim->max_body);
  }
  if (resp->body)
    resp->body[resp->body_len] = '\0';
  if (rc != MESH_OK || resp->status < 200 || resp->status > 599) {
    mesh_http_response_free(resp);
    return rc != MESH_OK ? rc
                         : mesh__fail(st, MESH_ERR_HTTP_PARSE,
                                      "HTTP/2 response without a valid "
                                      ":status");
  }
  *out = resp;
  return MESH_OK;
}

int mesh__h2_http_exchange(mesh__h2_session_t *s, const char *host, bool tls,
                           const mesh_http_request_t *req,
                           const mesh__az_hdr_t *extra, size_t nextra,
                           const mesh__http_limits_t *lim, int64_t deadline,
                           mesh_http_response_t **out, mesh_status_t *st) {
  mesh__ok(st);
  *out = NULL;
  char clen[24];
  size_t n = 0;
  char **names = NULL;
  mesh__h2_hdr_t *h = build(host, tls, req, extra, nextra, clen, &n, &names);
  if (!h)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  mesh__h2_stream_t *x = NULL;
  bool body = req->body_len > 0;
  int rc = mesh__h2_stream_open_q(s, h, n, !body, true, &x, st);
  free_names(names, req->nhdrs + nextra);
  free(h);
  if (rc == MESH_OK && body)
    rc = mesh__h2_stream_write(x, req->body, req->body_len, true, deadline,
                               st);
  if (rc == MESH_OK)
    rc = read_response(x, lim, deadline, out, st);
  mesh__h2_stream_free(x);
  return rc;
}

static bool conn_h2(mesh_conn_t *c) {
  return c && mesh__alpn_is_h2(mesh_conn_alpn(c));
}

static bool settings_in(void *arg) {
  mesh__h2_session_t *s = arg;
  return s->settings_seen;
}

/* Wait (bounded) for the peer's first SETTINGS, as gRPC does before it
 * calls a connection ready: until then the pool lets the session carry
 * one call, so the callers waiting for this dial would dial again. */
static void wait_settings(mesh__h2_session_t *s, int64_t deadline) {
  int64_t cap = mesh__now_ms() + 2000;
  pthread_mutex_lock(&s->mu);
  mesh__h2_wait(s, settings_in, s, deadline && deadline < cap ? deadline
                                                              : cap);
  pthread_mutex_unlock(&s->mu);
}

int mesh__h2_call_session(mesh_call_t *call, mesh_conn_t *conn,
                          bool prior_knowledge,
                          const mesh__h2_settings_t *set, int64_t deadline,
                          mesh__h2_session_t **out, mesh_status_t *st) {
  mesh__h2_session_t *s = mesh__call_mux(call);
  *out = NULL;
  if (s) {
    *out = s;
    return MESH_OK;
  }
  bool tls = conn && mesh_conn_is_tls(conn);
  if (!conn_h2(conn) && !(conn && !tls && prior_knowledge)) {
    mesh__call_mux_dialed(call, true); /* HTTP/1.1: nothing to share */
    return MESH_ERR_NOT_FOUND;
  }
  mesh__h2_io_t io;
  mesh__h2_io_conn(&io, conn, true);
  conn->nonblocking = true;
  char peer[sizeof s->peer_id];
  mesh__strlcpy(peer, mesh_conn_peer_id(conn), sizeof peer);
  if (!set)
    set = &mesh__http_settings(conn->m)->h2;
  int rc = mesh__h2_session_new_io(conn->m, &io, false, set, &s, st);
  if (rc != MESH_OK) {
    /* the connection went with the failed session: nothing to pool */
    mesh__call_adopt_mux(call, NULL, &mux_ops);
    return rc;
  }
  s->tls = tls;
  mesh__strlcpy(s->peer_id, peer, sizeof s->peer_id);
  wait_settings(s, deadline);
  mesh__call_adopt_mux(call, s, &mux_ops);
  *out = s;
  return MESH_OK;
}

int mesh__h2_http_try(mesh_call_t *call, mesh_conn_t *conn, const char *host,
                      const mesh_http_request_t *req,
                      const mesh__az_hdr_t *extra, size_t nextra,
                      const mesh__http_limits_t *lim, int64_t deadline,
                      mesh_http_response_t **out, int *status,
                      mesh_status_t *st) {
  mesh__h2_session_t *s;
  int rc = mesh__h2_call_session(call, conn, false, NULL, deadline, &s, st);
  if (rc == MESH_ERR_NOT_FOUND)
    return rc; /* HTTP/1.1: not ours */
  if (rc != MESH_OK)
    return MESH_CALL_RESET;
  rc = mesh__h2_http_exchange(s, host, s->tls, req, extra, nextra, lim,
                              deadline, out, st);
  if (rc == MESH_OK) {
    *status = (*out)->status;
    return MESH_CALL_OK;
  }
  if (rc == MESH_ERR_HTTP_PARSE || rc == MESH_ERR_HTTP_TOO_LARGE)
    return MESH_CALL_PROTOCOL_ERROR;
  if (rc == MESH_ERR_PEER_CLOSED || rc == MESH_ERR_RESET ||
      rc == MESH_ERR_CLOSED || rc == MESH_ERR_CIRCUIT_OPEN)
    return MESH_CALL_RESET; /* refused or lost streams are retried */
  if (rc == MESH_ERR_TIMEOUT)
    return MESH_CALL_TIMEOUT;
  return rc;
}
