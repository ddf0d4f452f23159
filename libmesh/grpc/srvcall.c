/* SPDX-License-Identifier: Apache-2.0 */
/* One server-side gRPC call: request checks (content-type, grpc-timeout),
 * authorization, the handler, and the status (trailers, or a trailers-only
 * response when nothing was sent). */
#include "grpc/grpc_srv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mesh/authz.h>

#define RBUF 16384

struct mesh_grpc_server_call {
  mesh_t *m;
  mesh__h2_stream_t *x;
  const char *path;            /* borrowed from the stream's headers */
  const mesh__grpc_peer_t *peer;
  mesh_grpc_metadata_t *md;
  int64_t deadline_ms;         /* absolute, 0 none */
  mesh__grpc_dec_t dec;
  uint8_t rbuf[RBUF];
  size_t rlen, roff;
  bool eos;                    /* the client half-closed */
  bool headers_sent;
  bool cancelled;
  bool dead;                   /* the stream failed: no status can be sent */
  int forced;                  /* status overriding the handler's, -1 none */
  char *message;
  mesh_grpc_metadata_t *trailers;
};

void mesh__grpc_peer_from_conn(mesh__grpc_peer_t *p, mesh_conn_t *c) {
  memset(p, 0, sizeof *p);
  p->port = -1;
  mesh__strlcpy(p->id, mesh_conn_peer_id(c), sizeof p->id);
  const char *a = mesh_conn_peer_addr(c);
  const char *colon = a ? strrchr(a, ':') : NULL;
  if (a && colon) {
    const char *b = a[0] == '[' ? a + 1 : a;
    size_t n = (size_t)(colon - b) - (a[0] == '[' ? 1 : 0);
    if (n < sizeof p->ip) {
      memcpy(p->ip, b, n);
      p->ip[n] = '\0';
    }
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(mesh_conn_fd(c), (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      p->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
}

/* ---- sending --------------------------------------------------------------------- */

static int send_headers(mesh_grpc_server_call_t *c,
                        const mesh_grpc_metadata_t *md, mesh_status_t *st) {
  mesh__grpc_hl_t l = {0};
  int rc = mesh__grpc_hl_add(&l, ":status", "200", false);
  if (rc == MESH_OK)
    rc = mesh__grpc_hl_add(&l, "content-type", "application/grpc", false);
  if (rc == MESH_OK)
    rc = mesh__grpc_hl_add_md(&l, md);
  if (rc == MESH_OK)
    rc = mesh__h2_stream_respond(c->x, l.h, l.n, false, st);
  else
    mesh__fail(st, rc, "out of memory");
  mesh__grpc_hl_free(&l);
  c->headers_sent = true;
  if (rc != MESH_OK)
    c->dead = true;
  return rc;
}

/* Has the client ended its side?  Called before an early answer (denied,
 * unknown method, too large): reads (and drops) at most 64 KiB, waiting up
 * to 500 ms for the rest of a short request, so that the answer follows
 * the whole request -- curl 7.88 fails (exit 92) or hangs when a response,
 * or an RST_STREAM NO_ERROR, overtakes its upload.  A request still open
 * then gets the answer and RST_STREAM NO_ERROR (RFC 9113 8.1). */
static bool request_ended(mesh_grpc_server_call_t *c) {
  int64_t until = mesh__now_ms() + 500;
  for (size_t got = 0; got < 65536;) {
    mesh_status_t st;
    long n = mesh__h2_stream_read(c->x, c->rbuf, RBUF, until, &st);
    if (n == 0)
      return true;
    if (n < 0)
      return false;
    got += (size_t)n;
  }
  return false;
}

/* The status: trailers after a response, or one header block. */
static void send_status(mesh_grpc_server_call_t *c, int code) {
  if (c->dead)
    return;
  char num[16], *enc = NULL;
  snprintf(num, sizeof num, "%d", code);
  const char *msg = c->message ? c->message : "";
  mesh__grpc_hl_t l = {0};
  int rc = MESH_OK;
  if (!c->headers_sent) {
    rc = mesh__grpc_hl_add(&l, ":status", "200", false);
    if (rc == MESH_OK)
      rc = mesh__grpc_hl_add(&l, "content-type", "application/grpc", false);
  }
  if (rc == MESH_OK)
    rc = mesh__grpc_hl_add(&l, "grpc-status", num, false);
  if (rc == MESH_OK && *msg)
    rc = mesh__grpc_msg_encode(msg, strlen(msg), &enc);
  if (rc == MESH_OK && enc)
    rc = mesh__grpc_hl_add(&l, "grpc-message", enc, false);
  if (rc == MESH_OK)
    rc = mesh__grpc_hl_add_md(&l, c->trailers);
  mesh_status_t st;
  if (rc == MESH_OK && !c->headers_sent) {
    /* Answered before the request ended (too large, denied, unknown):
     * RST_STREAM NO_ERROR after the HEADERS (RFC 9113 8.1), not the
     * CANCEL that freeing a half-open stream sends. */
    bool ended = c->eos || request_ended(c);
    if (mesh__h2_stream_respond(c->x, l.h, l.n, true, &st) == MESH_OK &&
        !ended)
      mesh__h2_stream_reset(c->x, MESH__H2_NO_ERROR);
  }
  else if (rc == MESH_OK)
    mesh__h2_stream_send_trailers(c->x, l.h, l.n, c->deadline_ms, &st);
  else
    mesh__h2_stream_reset(c->x, MESH__H2_INTERNAL_ERROR);
  free(enc);
  mesh__grpc_hl_free(&l);
}

/* A failed stream operation: what it means for the call. */
static int stream_error(mesh_grpc_server_call_t *c, int rc,
                        mesh_status_t *st) {
  if (rc == MESH_ERR_TIMEOUT && c->deadline_ms &&
      mesh__now_ms() >= c->deadline_ms) {
    c->forced = MESH__GRPC_DEADLINE_EXCEEDED;
    c->cancelled = true;
    return mesh__fail(st, MESH_ERR_DEADLINE, "the client's deadline passed");
  }
  if (rc == MESH_ERR_RESET || rc == MESH_ERR_PEER_CLOSED ||
      rc == MESH_ERR_CLOSED) {
    c->cancelled = true;
    c->dead = true;
    return mesh__fail(st, MESH_ERR_CANCELLED,
                      "the client cancelled the call or went away");
  }
  return rc;
}

/* ---- the handler's API ------------------------------------------------------------- */

const char *mesh_grpc_server_call_method(const mesh_grpc_server_call_t *c) {
  return c ? c->path : "";
}

const char *mesh_grpc_server_call_peer_id(const mesh_grpc_server_call_t *c) {
  return c ? c->peer->id : "";
}

const mesh_grpc_metadata_t *mesh_grpc_server_call_metadata(
    const mesh_grpc_server_call_t *c) {
  return c ? c->md : NULL;
}

int mesh_grpc_server_call_remaining_ms(const mesh_grpc_server_call_t *c) {
  if (!c || !c->deadline_ms)
    return -1;
  int64_t left = c->deadline_ms - mesh__now_ms();
  return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

int mesh_grpc_server_call_cancelled(const mesh_grpc_server_call_t *c) {
  if (!c)
    return 0;
  if (c->deadline_ms && mesh__now_ms() >= c->deadline_ms)
    return 1;
  return c->cancelled || !mesh__h2_session_alive(mesh__h2_stream_session(c->x));
}

int mesh_grpc_server_call_recv(mesh_grpc_server_call_t *c, void **msg,
                               size_t *len, mesh_status_t *st) {
  if (!c || !msg || !len)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "recv: NULL argument");
  *msg = NULL;
  *len = 0;
  for (;;) {
    if (c->roff < c->rlen) {
      uint8_t *m;
      size_t ml;
      long r = mesh__grpc_dec_feed(&c->dec, c->rbuf + c->roff,
                                   c->rlen - c->roff, &m, &ml);
      if (r < 0) {
        c->forced = r == MESH_ERR_MSG_TOO_LARGE ? MESH__GRPC_RESOURCE_EXHAUSTED
                                                : MESH__GRPC_INTERNAL;
        return mesh__fail(st, (int)r, "request message: %s",
                          r == MESH_ERR_MSG_TOO_LARGE
                              ? "larger than the server's limit"
                              : "malformed (compressed or bad flag)");
      }
      c->roff += (size_t)r;
      if (m) {
        *msg = m;
        *len = ml;
        return 1;
      }
      continue;
    }
    if (c->eos) {
      if (!mesh__grpc_dec_idle(&c->dec)) {
        c->forced = MESH__GRPC_INTERNAL;
        return mesh__fail(st, MESH_ERR_GRPC_PROTOCOL,
                          "the request ended inside a message");
      }
      return 0;
    }
    long n = mesh__h2_stream_read(c->x, c->rbuf, RBUF, c->deadline_ms, st);
    if (n < 0)
      return stream_error(c, (int)n, st);
    if (n == 0)
      c->eos = true;
    c->rlen = (size_t)n;
    c->roff = 0;
  }
}

int mesh_grpc_server_call_send_headers(mesh_grpc_server_call_t *c,
                                       const mesh_grpc_metadata_t *md,
                                       mesh_status_t *st) {
  if (!c || c->headers_sent)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "send_headers: headers already sent");
  int rc = send_headers(c, md, st);
  return rc == MESH_OK ? rc : stream_error(c, rc, st);
}

int mesh_grpc_server_call_send(mesh_grpc_server_call_t *c, const void *msg,
                               size_t len, mesh_status_t *st) {
  if (!c || (!msg && len) || len > UINT32_MAX)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "send: bad argument");
  if (c->dead || c->cancelled)
    return mesh__fail(st, MESH_ERR_CANCELLED, "the call was cancelled");
  int rc = c->headers_sent ? MESH_OK : send_headers(c, NULL, st);
  uint8_t *buf = rc == MESH_OK ? malloc(len + MESH__GRPC_PREFIX) : NULL;
  if (rc == MESH_OK && !buf)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK) {
    mesh__grpc_prefix(buf, len);
    if (len)
      memcpy(buf + MESH__GRPC_PREFIX, msg, len);
    rc = mesh__h2_stream_write(c->x, buf, len + MESH__GRPC_PREFIX, false,
                               c->deadline_ms, st);
    free(buf);
  }
  return rc == MESH_OK ? rc : stream_error(c, rc, st);
}

int mesh_grpc_server_call_add_trailers(mesh_grpc_server_call_t *c,
                                       const mesh_grpc_metadata_t *md,
                                       mesh_status_t *st) {
  if (!c)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "add_trailers: NULL call");
  if (!c->trailers && mesh__grpc_md_copy(NULL, &c->trailers) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (mesh__grpc_md_append(c->trailers, md) != MESH_OK)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  return MESH_OK;
}

int mesh_grpc_server_call_set_message(mesh_grpc_server_call_t *c,
                                      const char *message) {
  if (!c)
    return MESH_ERR_INVALID_ARG;
  char *m = mesh__strdup(message);
  if (message && !m)
    return MESH_ERR_NOMEM;
  free(c->message);
  c->message = m;
  return MESH_OK;
}

/* ---- running a call ------------------------------------------------------------------ */

/* Istio's view of a gRPC call: POST to the method path. */
static int authorize(mesh_grpc_server_call_t *c, const mesh__h2_hdr_t *h,
                     size_t n, mesh_status_t *st) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  if (!r)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  const char *auth = mesh__grpc_h2_get(h, n, ":authority");
  int rc = mesh_authz_request_set_principal(r, c->peer->id);
  if (rc == MESH_OK && c->peer->ip[0])
    rc = mesh_authz_request_set_source_ip(r, c->peer->ip);
  if (rc == MESH_OK && c->peer->port >= 0)
    rc = mesh_authz_request_set_port(r, c->peer->port);
  if (rc == MESH_OK)
    rc = mesh_authz_request_set_http(r, "POST", c->path, auth ? auth : "");
  for (size_t i = 0; rc == MESH_OK && i < n; i++)
    if (h[i].name[0] != ':')
      rc = mesh_authz_request_add_header(r, h[i].name, h[i].value);
  if (rc == MESH_OK)
    rc = mesh_authz_check(c->m, r, st);
  else
    mesh__fail(st, rc, "cannot describe the call for authorization");
  mesh_authz_request_free(r);
  return rc;
}

/* Checks before the handler: a gRPC status to answer with, or -1. */
static int admit(mesh_grpc_server_call_t *c, const mesh__h2_hdr_t *h,
                 size_t n) {
  const char *ct = mesh__grpc_h2_get(h, n, "content-type");
  const char *to = mesh__grpc_h2_get(h, n, "grpc-timeout");
  const char *method = mesh__grpc_h2_get(h, n, ":method");
  char *msg = NULL;
  int code = -1;
  int64_t ns;
  mesh_status_t st;
  if (!method || strcmp(method, "POST")) {
    code = MESH__GRPC_INTERNAL;
    msg = "gRPC requires method POST";
  } else if (!ct || strncmp(ct, "application/grpc", 16) ||
             (ct[16] && ct[16] != '+' && ct[16] != ';')) {
    code = MESH__GRPC_INTERNAL;
    msg = "content-type is not application/grpc";
  } else if (to && mesh__grpc_timeout_parse(to, strlen(to), &ns) != MESH_OK) {
    code = MESH__GRPC_INTERNAL;
    msg = "malformed grpc-timeout";
  } else if (authorize(c, h, n, &st) != MESH_OK) {
    code = st.code == MESH_ERR_DENIED ? MESH__GRPC_PERMISSION_DENIED
                                      : MESH__GRPC_INTERNAL;
    msg = st.code == MESH_ERR_DENIED ? "RBAC: access denied"
                                     : "authorization failed";
  } else if (to) {
    int64_t ms = ns / 1000000 + (ns % 1000000 != 0);
    c->deadline_ms = ms > INT64_MAX / 2 ? 0 : mesh__now_ms() + ms;
  }
  if (msg)
    mesh_grpc_server_call_set_message(c, msg);
  return code;
}

void mesh__grpc_srv_handle(mesh_t *m, mesh__h2_stream_t *x,
                           const mesh__grpc_peer_t *peer, size_t max_recv,
                           mesh__grpc_find_fn find, void *srv) {
  mesh_grpc_server_call_t *c = calloc(1, sizeof *c);
  const mesh__h2_hdr_t *h;
  size_t n;
  mesh_status_t st;
  if (!c || mesh__h2_stream_headers(x, 0, &h, &n, &st) != MESH_OK ||
      mesh__grpc_md_from_h2(h, n, &c->md) != MESH_OK) {
    mesh__h2_stream_reset(x, MESH__H2_INTERNAL_ERROR);
    free(c);
    return;
  }
  c->m = m;
  c->x = x;
  c->peer = peer;
  c->forced = -1;
  c->path = mesh__grpc_h2_get(h, n, ":path");
  mesh__grpc_dec_init(&c->dec, max_recv);
  int code = admit(c, h, n);
  mesh_grpc_handler_fn fn;
  void *user;
  if (code < 0 && !find(srv, c->path, &fn, &user)) {
    code = MESH__GRPC_UNIMPLEMENTED;
    char msg[300];
    snprintf(msg, sizeof msg, "unknown method %.256s", c->path ? c->path : "");
    mesh_grpc_server_call_set_message(c, msg);
  }
  if (code < 0) {
    code = fn(c, user);
    if (code < 0 || code > INT32_MAX)
      code = MESH__GRPC_UNKNOWN;
  }
  if (c->forced >= 0) {
    code = c->forced;
    if (code == MESH__GRPC_RESOURCE_EXHAUSTED)
      mesh_grpc_server_call_set_message(
          c, "request message larger than the server's limit");
  }
  /* Past the client's deadline any failure is DEADLINE_EXCEEDED (a handler
   * that gave up as "cancelled" must not race the client's own timer with
   * a CANCELLED status). */
  bool expired = c->deadline_ms && mesh__now_ms() >= c->deadline_ms;
  if (expired && code != MESH__GRPC_OK) {
    code = MESH__GRPC_DEADLINE_EXCEEDED;
    mesh_grpc_server_call_set_message(c, "deadline exceeded");
  }
  if (!c->dead && (!c->cancelled || expired))
    send_status(c, code);
  mesh__grpc_dec_free(&c->dec);
  mesh_grpc_metadata_free(c->md);
  mesh_grpc_metadata_free(c->trailers);
  free(c->message);
  free(c);
}
