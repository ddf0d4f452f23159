/* SPDX-License-Identifier: Apache-2.0 */
/* Benchmark transports: the same request/response loop over plain TCP (A),
 * bare mbedTLS mTLS (B), libmesh (C), or plain TCP into a local HAProxy
 * sidecar (D: the client side of D is plain TCP to the sidecar). */
#ifndef MESH_BENCH_TRANSPORT_H
#define MESH_BENCH_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct bt_opts {
  const char *mode;   /* "tcp", "tls", "mesh" */
  const char *target; /* host:port, or a service name in mesh mode */
  const char *ca, *cert, *key; /* tls mode */
  const char *config; /* mesh mode: JSON config file */
} bt_opts_t;

typedef struct bt_conn bt_conn_t;
typedef struct bt_ctx bt_ctx_t;

int bt_ctx_new(const bt_opts_t *o, bt_ctx_t **out);
void bt_ctx_free(bt_ctx_t *c);

/* Client side. */
int bt_connect(bt_ctx_t *c, bt_conn_t **out);
int bt_write(bt_conn_t *k, const void *buf, size_t len);
int bt_read(bt_conn_t *k, void *buf, size_t len); /* exactly len */
/* Per request accounting hook (mesh mode: call begin/end). */
int bt_request(bt_conn_t *k, const void *req, void *resp, size_t len);
void bt_close(bt_conn_t *k);
/* 1 if the connection's session was resumed (tls/mesh), else 0. */
int bt_resumed(bt_conn_t *k);
/* Mesh mode: calls made and how many got a pooled connection. */
void bt_calls(bt_ctx_t *c, long *calls, long *reused);
/* Mesh mode: the context (NULL otherwise). */
struct mesh_ctx *bt_mesh(bt_ctx_t *c);

/* Server side: accept loop, one thread per connection, echoing fixed-size
 * messages. Returns only on error. */
int bt_serve(bt_ctx_t *c, const char *listen_addr, size_t msg_size);

int64_t bt_now_ns(void);
/* "host:port" -> connected TCP socket with TCP_NODELAY, or -1. */
int bt_tcp_connect(const char *hostport);
int bt_tcp_listen(const char *hostport);

#endif
