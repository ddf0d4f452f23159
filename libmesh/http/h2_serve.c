/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP layer over HTTP/2: mesh_http_serve() hands a connection here
 * first; ALPN "h2" / "istio-h2", or a plaintext peer starting with the h2c
 * preface, is served as HTTP/2 through the same handler, authorization,
 * tracing and metrics as HTTP/1.1; anything else goes on to the HTTP/1.1
 * loop with the sniffed bytes replayed.
 *
 * The per-request steps mirror server.c's (authorize, span, handler,
 * count); they are repeated here rather than shared so that the HTTP/1.1
 * loop stays untouched while it is being hardened. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h2_int.h"
#include "http/http.h"
#include "telemetry/telemetry.h"
#include "tls/tls.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof preface - 1)

bool mesh__h2_is_preface(const void *buf, size_t n) {
  if (n > PREFACE_LEN)
    n = PREFACE_LEN;
  return n > 0 && memcmp(buf, preface, n) == 0;
}

/* ---- one request ---------------------------------------------------------- */

typedef struct h2req {
  mesh_t *m;
  const mesh__http_peer_t *peer;
  const mesh__http_settings_t *set;
  mesh__h2_stream_t *x;
  mesh_http_request_t req;
  const char *host;
  char *path;
  char *ntarget; /* normalized path + query: the handler's target */
  char *body;
  size_t blen;
  char traceparent[MESH_TRACEPARENT_LEN + 1];
  mesh_trace_ctx_t remote;
  mesh__az_hdr_t *hdrs; /* regular fields + room for claim headers
                          (authn) and traceparent */
  size_t hcap;          /* what the guard may fill: all but traceparent's */
  mesh__authn_result_t an; /* the stream's JWT verdict */
} h2req_t;

static int respond(h2req_t *r, const mesh_http_response_t *resp,
                   bool head_req) {
  mesh__h2_hdr_t *h = calloc(resp->nhdrs + 2, sizeof *h);
  if (!h)
    return MESH_ERR_NOMEM;
  char status[8], clen[24];
  snprintf(status, sizeof status, "%d", resp->status);
  snprintf(clen, sizeof clen, "%zu", resp->body_len);
  size_t n = 0;
  h[n++] = (mesh__h2_hdr_t){":status", status};
  char lower[128];
  char **names = calloc(resp->nhdrs + 1, sizeof *names);
  for (size_t i = 0; names && i < resp->nhdrs; i++) {
    /* HTTP/2 field names are lower case; connection-specific ones go */
    const char *nm = resp->hdrs[i].name;
    size_t len = strlen(nm);
    if (len >= sizeof lower || strcasecmp(nm, "connection") == 0 ||
        strcasecmp(nm, "keep-alive") == 0 ||
        strcasecmp(nm, "transfer-encoding") == 0 ||
        strcasecmp(nm, "upgrade") == 0 ||
        strcasecmp(nm, "content-length") == 0)
      continue;
    names[i] = strdup(nm);
    if (!names[i])
      continue;
    for (char *p = names[i]; *p; p++)
      if (*p >= 'A' && *p <= 'Z')
        *p = (char)(*p - 'A' + 'a');
    h[n++] = (mesh__h2_hdr_t){names[i], resp->hdrs[i].value};
  }
  bool body = resp->body_len && !head_req;
  if (resp->status != 204 && resp->status != 304)
    h[n++] = (mesh__h2_hdr_t){"content-length", clen};
  int rc = names ? mesh__h2_stream_respond_lazy(r->x, h, n, !body, true, NULL)
                 : MESH_ERR_NOMEM;
  if (rc == MESH_OK && body)
    rc = mesh__h2_stream_write(r->x, resp->body, resp->body_len, true,
                               mesh__now_ms() + r->set->request_timeout_ms,
                               NULL);
  for (size_t i = 0; names && i < resp->nhdrs; i++)
    free(names[i]);
  free(names);
  free(h);
  return rc;
}

/* A 401 carries Envoy's jwt_authn challenge, as server.c's. */
static int respond_simple(h2req_t *r, int status, const char *body) {
  mesh__http_count(r->m, NULL, status);
  mesh__az_hdr_t ct[2] = {{"content-type", "text/plain"},
                          {"www-authenticate", "Bearer error=\"invalid_token\""}};
  mesh_http_response_t resp = {.status = status, .hdrs = ct,
                               .nhdrs = status == 401 ? 2 : 1,
                               .body = (char *)body,
                               .body_len = strlen(body)};
  return respond(r, &resp, false);
}

/* Fields sent more than once, their values joined by "," (what routes and
 * policies match), as server.c does for HTTP/1.1 (e.g. split cookies). */
static int join_fields(h2req_t *r) {
  mesh_http_request_t *q = &r->req;
  for (size_t i = 0; i < q->nhdrs; i++) {
    const char *name = q->hdrs[i].name;
    bool seen = false, again = false;
    for (size_t k = 0; k < i && !seen; k++)
      seen = strcasecmp(q->hdrs[k].name, name) == 0;
    for (size_t k = i + 1; k < q->nhdrs && !again; k++)
      again = strcasecmp(q->hdrs[k].name, name) == 0;
    if (seen || !again)
      continue;
    mesh__hbuf_t b = {0};
    for (size_t k = i; k < q->nhdrs; k++)
      if (strcasecmp(q->hdrs[k].name, name) == 0) {
        if (b.n)
          mesh__hbuf_str(&b, ",");
        mesh__hbuf_str(&b, q->hdrs[k].value);
      }
    int rc = b.oom ? MESH_ERR_NOMEM
                   : mesh__http_hdrs_add(&q->joined, &q->njoined, &q->jcap,
                                         name, strlen(name), b.p, b.n);
    mesh__hbuf_free(&b);
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

/* Request head -> r->req (pseudo-headers to method / target / host). */
static int take_head(h2req_t *r, const mesh__h2_hdr_t *h, size_t n) {
  r->hdrs = calloc(n + MESH__AUTHN_OUT_MAX + 1, sizeof *r->hdrs);
  if (!r->hdrs)
    return MESH_ERR_NOMEM;
  r->hcap = n + MESH__AUTHN_OUT_MAX;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(h[i].name, ":method") == 0)
      r->req.method = h[i].value;
    else if (strcmp(h[i].name, ":path") == 0)
      r->req.target = h[i].value;
    else if (strcmp(h[i].name, ":authority") == 0)
      r->host = h[i].value;
    else if (h[i].name[0] != ':')
      r->hdrs[k++] = (mesh__az_hdr_t){h[i].name, h[i].value};
  }
  if (!r->host)
    r->host = mesh__http_hdrs_get(r->hdrs, k, "host");
  r->req.hdrs = r->hdrs;
  r->req.nhdrs = k;
  r->req.borrowed = true;
  r->req.peer_id = r->peer->peer_id;
  if (!r->req.method || !r->req.target || r->req.target[0] != '/')
    return MESH_ERR_HTTP_PARSE;
  /* the same view as HTTP/1.1 (server.c prepare): the handler's target is
   * the normalized path plus the query as sent */
  const char *orig = r->req.target;
  size_t tn = strlen(orig), pn = 0;
  mesh__target_t t;
  r->path = malloc(tn + 2);
  r->ntarget = malloc(2 * tn + 4);
  if (!r->path || !r->ntarget)
    return MESH_ERR_NOMEM;
  if (mesh__target_split(orig, tn, &t) != MESH_OK ||
      mesh__path_normalize(orig, tn, mesh__authz_path_norm(r->m), r->path,
                           tn + 2, &pn) != MESH_OK)
    return MESH_ERR_HTTP_PARSE;
  memcpy(r->ntarget, r->path, pn);
  size_t w = pn;
  if (t.query) {
    r->ntarget[w++] = '?';
    memcpy(r->ntarget + w, t.query, t.query_n);
    w += t.query_n;
  }
  r->ntarget[w] = '\0';
  r->req.orig_target = orig;
  r->req.target = r->ntarget;
  r->req.path = r->path;
  return join_fields(r);
}

static int read_body(h2req_t *r) {
  size_t cap = 0;
  int64_t deadline = mesh__now_ms() + r->set->request_timeout_ms;
  for (;;) {
    if (r->blen + 16384 + 1 > cap) {
      size_t nc = cap ? cap * 2 : 16384 + 1;
      char *nb = realloc(r->body, nc);
      if (!nb)
        return MESH_ERR_NOMEM;
      r->body = nb;
      cap = nc;
    }
    long n = mesh__h2_stream_read(r->x, r->body + r->blen, 16384, deadline,
                                  NULL);
    if (n < 0)
      return (int)n;
    if (n == 0)
      break;
    r->blen += (size_t)n;
    if (r->blen > r->set->lim.max_body)
      return MESH_ERR_HTTP_TOO_LARGE;
  }
  r->body[r->blen] = '\0';
  return MESH_OK;
}

static const char *get_header(const char *key, void *user) {
  const mesh_http_request_t *req = user;
  return mesh__http_hdrs_get(req->hdrs, req->nhdrs, key);
}

/* Authenticate then authorize (guard.c), as server.c: 0, 401 or 403.  A
 * verified token edits the header view; the joined fields are rebuilt. */
static int authorized(h2req_t *r) {
  if (!mesh__authz_active(r->m) && !mesh__authn_active(r->m))
    return 0;
  mesh_authz_request_t ar;
  mesh__az_req_init(&ar);
  mesh__az_req_set_principal(&ar, r->peer->peer_id);
  ar.src = r->peer->addr;
  ar.port = r->peer->local_port;
  ar.http = true;
  ar.method = r->req.method;
  ar.target = r->req.orig_target;
  ar.path = r->path;
  ar.host = r->host ? r->host : "";
  ar.hdrs = r->req.hdrs;
  ar.nhdrs = r->req.nhdrs;
  int v = mesh__http_guard(r->m, &ar, r->hdrs, &r->req.nhdrs, r->hcap, &r->an,
                           NULL);
  if (v == 0 && r->an.authenticated) {
    mesh__http_hdrs_free(r->req.joined, r->req.njoined);
    r->req.joined = NULL;
    r->req.njoined = r->req.jcap = 0;
    if (join_fields(r) != MESH_OK) /* out of memory: no joined view */
      return 403;
  }
  return v;
}

/* The handler sees our span as the parent to propagate (as server.c). */
static void expose_span(h2req_t *r, const mesh__span_t *sp) {
  mesh_trace_ctx_t ctx;
  mesh__span_context(sp, &ctx);
  if (mesh_traceparent_format(&ctx, r->traceparent, sizeof r->traceparent) < 0)
    return;
  for (size_t i = 0; i < r->req.nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, "traceparent") == 0) {
      r->hdrs[i].value = r->traceparent;
      return;
    }
  r->hdrs[r->req.nhdrs++] = (mesh__az_hdr_t){"traceparent", r->traceparent};
}

static int run_handler(h2req_t *r, mesh_http_handler_fn fn, void *user,
                       mesh__span_t *sp) {
  expose_span(r, sp);
  r->req.body = r->body ? r->body : "";
  r->req.body_len = r->blen;
  mesh_http_response_t *resp = mesh_http_response_new();
  if (!resp)
    return MESH_ERR_NOMEM;
  if (fn(&r->req, resp, user) != 0 || resp->status < 200) {
    mesh_http_response_free(resp);
    resp = mesh_http_response_new();
    if (!resp)
      return MESH_ERR_NOMEM;
    resp->status = 500;
  }
  mesh__http_count(r->m, NULL, resp->status);
  mesh__span_attr_int(sp, MESH__ATTR_HTTP_STATUS, resp->status);
  if (resp->status >= 500)
    mesh__span_status(sp, MESH_SPAN_STATUS_ERROR,
                      mesh__http_reason(resp->status));
  int rc = respond(r, resp, strcmp(r->req.method, "HEAD") == 0);
  mesh_http_response_free(resp);
  return rc;
}

/* One stream, start to end.  Stream-level failures are answered or reset
 * and do not end the session. */
static void serve_stream(h2req_t *r, mesh_http_handler_fn fn, void *user) {
  const mesh__h2_hdr_t *h;
  size_t n;
  int rc = mesh__h2_stream_headers(r->x, 0, &h, &n, NULL);
  if (rc == MESH_OK)
    rc = take_head(r, h, n);
  if (rc == MESH_ERR_HTTP_PARSE) {
    respond_simple(r, 400, "Bad Request\n");
    return;
  }
  if (rc != MESH_OK)
    return;
  bool have = mesh_trace_extract(mesh_trace_formats(r->m), get_header,
                                 &r->req, &r->remote) == MESH_OK;
  mesh__span_t sp = {0};
  mesh__span_start(r->m, &sp, "mesh.request", MESH_SPAN_SERVER, NULL,
                   have ? &r->remote : NULL);
  mesh__span_attr_str(&sp, MESH__ATTR_HTTP_METHOD, r->req.method);
  mesh__span_attr_str(&sp, MESH__ATTR_URL_PATH, r->path);
  if (r->peer->peer_id[0])
    mesh__span_attr_str(&sp, MESH__ATTR_PEER_SPIFFE_ID, r->peer->peer_id);
  int verdict = authorized(r);
  if (verdict != 0) {
    mesh__span_event(&sp, verdict == 401 ? "authn.deny" : "authz.deny");
    mesh__span_attr_int(&sp, MESH__ATTR_HTTP_STATUS, verdict);
    mesh__span_end(&sp);
    respond_simple(r, verdict, verdict == 401 ? "Jwt verification fails"
                                              : "RBAC: access denied");
    return;
  }
  rc = read_body(r);
  if (rc == MESH_ERR_HTTP_TOO_LARGE)
    respond_simple(r, 413, "Content Too Large\n");
  else if (rc == MESH_OK)
    rc = run_handler(r, fn, user, &sp);
  if (rc != MESH_OK)
    mesh__span_fail(&sp, rc, mesh_strerror(rc));
  mesh__span_end(&sp);
}

/* What the handlers of one connection share (read-only while they run). */
typedef struct h2conn {
  mesh_t *m;
  const mesh__http_peer_t *peer;
  const mesh__http_settings_t *set;
  mesh_http_handler_fn fn;
  void *user;
} h2conn_t;

/* One stream on its own thread (h2_workers.c); x is freed after. */
static void stream_worker(void *arg, mesh__h2_stream_t *x) {
  const h2conn_t *c = arg;
  h2req_t r = {.m = c->m, .peer = c->peer, .set = c->set, .x = x};
  serve_stream(&r, c->fn, c->user);
  mesh__authn_result_free(&r.an);
  free(r.hdrs);
  free(r.path);
  free(r.ntarget);
  mesh__http_hdrs_free(r.req.joined, r.req.njoined);
  free(r.body);
}

/* The streams of the connection are served concurrently, each on a
 * thread of its own, while this thread drives the session (accept). */
int mesh__h2_serve_http(mesh_t *m, mesh__h2_session_t *s,
                        const struct mesh__http_peer *peer,
                        mesh_http_handler_fn handler, void *user,
                        mesh_status_t *st) {
  mesh__ok(st);
  const mesh__http_settings_t *set = mesh__http_settings(m);
  h2conn_t conn = {m, peer, set, handler, user};
  mesh__h2_workers_t w;
  mesh__h2_workers_init(&w, s, set->h2.max_concurrent_streams);
  int rc;
  for (;;) {
    mesh__h2_stream_t *x;
    /* idle_timeout bounds the wait for the next stream, as in HTTP/1.1;
     * a connection whose handlers still run is not idle */
    rc = mesh__h2_workers_accept(&w, mesh__now_ms() + set->idle_timeout_ms,
                                 &x, st);
    if (rc == MESH_ERR_TIMEOUT && mesh__h2_workers_running(&w) > 0)
      continue;
    if (rc != MESH_OK)
      break;
    mesh__h2_workers_spawn(&w, x, stream_worker, &conn);
  }
  if (rc == MESH_ERR_TIMEOUT) {
    mesh__h2_session_drain(s);
    mesh__h2_session_poll(s, 100);
    rc = MESH_OK;
  } else if (rc == MESH_ERR_PEER_CLOSED) {
    mesh__ok(st);
    rc = MESH_OK;
  }
  /* handlers of a session that ended find their stream gone: their
   * responses are dropped */
  mesh__h2_workers_wait(&w);
  mesh__h2_workers_destroy(&w);
  mesh__h2_session_free(s);
  return rc;
}

/* ---- choosing the protocol of a served connection -------------------------- */

/* Bytes sniffed from a plaintext peer, replayed to the HTTP/1.1 loop. */
typedef struct replay {
  mesh__http_io_t inner;
  const char *p;
  size_t n;
} replay_t;

static long replay_read(void *ctx, void *buf, size_t n, int64_t deadline) {
  replay_t *r = ctx;
  if (!r->n)
    return r->inner.read(r->inner.ctx, buf, n, deadline);
  size_t k = n < r->n ? n : r->n;
  memcpy(buf, r->p, k);
  r->p += k;
  r->n -= k;
  return (long)k;
}

static int replay_write(void *ctx, const void *buf, size_t n,
                        int64_t deadline) {
  replay_t *r = ctx;
  return r->inner.write(r->inner.ctx, buf, n, deadline);
}

static bool alpn_h2(const mesh_conn_t *c) {
  return mesh__alpn_is_h2(mesh_conn_alpn(c));
}

int mesh__h2_http_serve_conn(mesh_t *m, mesh_conn_t *c,
                             const mesh__http_peer_t *peer,
                             mesh_http_handler_fn handler, void *user,
                             mesh_status_t *st) {
  mesh__http_io_t io;
  mesh__http_io_conn(&io, c);
  char sniff[PREFACE_LEN];
  size_t n = 0;
  bool h2 = alpn_h2(c);
  if (!h2 && !mesh_conn_is_tls(c)) {
    int64_t deadline = mesh__now_ms() + mesh__http_settings(m)->idle_timeout_ms;
    while (n < PREFACE_LEN) {
      long k = io.read(io.ctx, sniff + n, PREFACE_LEN - n, deadline);
      if (k <= 0 && n == 0)
        return k == 0 ? MESH_OK
                      : mesh__fail(st, (int)k, "reading a request: %s",
                                   mesh_strerror((int)k));
      if (k <= 0)
        break;
      n += (size_t)k;
      if (!mesh__h2_is_preface(sniff, n))
        break;
    }
    h2 = n == PREFACE_LEN && mesh__h2_is_preface(sniff, n);
  }
  if (!h2) {
    replay_t r = {.inner = io, .p = sniff, .n = n};
    mesh__http_io_t rio = {replay_read, replay_write, &r};
    return mesh__http_serve_io(m, &rio, peer, handler, user, st);
  }
  mesh__h2_io_t hio;
  mesh__h2_io_conn(&hio, c, false);
  c->nonblocking = true;
  mesh__h2_session_t *s;
  int rc = mesh__h2_session_new_io(m, &hio, true,
                                   &mesh__http_settings(m)->h2, &s, st);
  if (rc == MESH_OK) {
    mesh__strlcpy(s->peer_id, peer->peer_id, sizeof s->peer_id);
    if (n)
      rc = mesh__h2_session_input(s, sniff, n, st);
    if (rc == MESH_OK)
      rc = mesh__h2_serve_http(m, s, peer, handler, user, st);
    else
      mesh__h2_session_free(s);
  }
  c->nonblocking = false; /* the caller's connection again */
  return rc;
}
