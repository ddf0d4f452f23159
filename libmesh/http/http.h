/* libmesh internal: the HTTP/1.1 layer.
 *
 *   parse.c    strict parser (no I/O, no allocation): parse.h
 *   message.c  request/response objects and their serialization
 *   io.c       byte transports: a mesh connection, or a plain socket
 *   client.c   one exchange: write a request, read a response
 *   server.c   the serving loop with per-request authorization
 *   route.c    the "http" section and per-service "routes": match, pick
 *   fault.c    fault injection decisions (pure)
 *   call.c     mesh_http_call: route, fault, call layer, trace headers
 */
#ifndef MESH_HTTP_HTTP_H
#define MESH_HTTP_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "authz/authz.h"
#include "core/core.h"
#include "http/parse.h"

/* ---- transports (io.c) ---------------------------------------------------- */

/* Blocking byte I/O bounded by an absolute deadline (mesh__now_ms() clock;
 * 0: the transport's own timeouts).  read: bytes (> 0), 0 at EOF, or a
 * negative mesh code.  write: all bytes or a negative mesh code. */
typedef struct mesh__http_io {
  long (*read)(void *ctx, void *buf, size_t n, int64_t deadline_ms);
  int (*write)(void *ctx, const void *buf, size_t n, int64_t deadline_ms);
  void *ctx;
} mesh__http_io_t;

void mesh__http_io_conn(mesh__http_io_t *io, mesh_conn_t *c);
/** A plain TCP socket (blocking or not); fd is borrowed.  Used by tests
 *  and by applications bridging to plain HTTP backends. */
void mesh__http_io_fd(mesh__http_io_t *io, int *fd);

/* ---- messages (message.c) -------------------------------------------------- */

struct mesh_http_request {
  const char *method;
  const char *target;
  mesh__az_hdr_t *hdrs;
  size_t nhdrs, cap;
  const char *body;
  size_t body_len;
  int timeout_ms;
  bool borrowed;       /* server view: strings point into its buffer */
  const char *peer_id; /* server side */
};

struct mesh_http_response {
  int status;
  mesh__az_hdr_t *hdrs; /* owned strings */
  size_t nhdrs, cap;
  char *body;           /* owned, NUL-terminated */
  size_t body_len;
};

/** Append a header to an owned list (copies).  Checks token / value. */
int mesh__http_hdrs_add(mesh__az_hdr_t **v, size_t *n, size_t *cap,
                        const char *name, size_t nlen, const char *value,
                        size_t vlen);
void mesh__http_hdrs_free(mesh__az_hdr_t *v, size_t n);
const char *mesh__http_hdrs_get(const mesh__az_hdr_t *v, size_t n,
                                const char *name);
/** Fields the library writes itself (framing, connection management). */
bool mesh__http_reserved_header(const char *name);
/** Standard reason phrase ("" when unknown). */
const char *mesh__http_reason(int status);

/* A growable byte buffer for serializing heads. */
typedef struct mesh__hbuf {
  char *p;
  size_t n, cap;
  bool oom;
} mesh__hbuf_t;

void mesh__hbuf_add(mesh__hbuf_t *b, const void *s, size_t n);
void mesh__hbuf_str(mesh__hbuf_t *b, const char *s);
void mesh__hbuf_fmt(mesh__hbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mesh__hbuf_free(mesh__hbuf_t *b);

/* ---- settings (the "http" section, route.c) -------------------------------- */

typedef struct mesh__http_settings {
  mesh__http_limits_t lim;
  int64_t idle_timeout_ms;    /* server: wait for the next request */
  int64_t request_timeout_ms; /* server: a whole request once begun */
} mesh__http_settings_t;

void mesh__http_settings_default(mesh__http_settings_t *s);
/** The context's settings (defaults when m is NULL or has no section). */
const mesh__http_settings_t *mesh__http_settings(mesh_t *m);

/* ---- client (client.c) ------------------------------------------------------ */

/** Write req (with Host and any extra fields) and read the response.
 *  @param reusable  set when the connection may carry another request.
 *  @return as mesh_http_exchange(). */
int mesh__http_exchange_io(const mesh__http_io_t *io, const char *host,
                           const mesh_http_request_t *req,
                           const mesh__az_hdr_t *extra, size_t nextra,
                           const mesh__http_limits_t *lim,
                           int64_t deadline_ms, mesh_http_response_t **out,
                           bool *reusable, mesh_status_t *st);

/* ---- server (server.c) ------------------------------------------------------ */

/* Who is on the other end, for authorization and the handler. */
typedef struct mesh__http_peer {
  const char *peer_id;          /* "" for plaintext */
  struct sockaddr_storage addr; /* family 0: unknown */
  int local_port;               /* -1 unknown */
} mesh__http_peer_t;

int mesh__http_serve_io(mesh_t *m, const mesh__http_io_t *io,
                        const mesh__http_peer_t *peer,
                        mesh_http_handler_fn handler, void *user,
                        mesh_status_t *st);

#endif /* MESH_HTTP_HTTP_H */
