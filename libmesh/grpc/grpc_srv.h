/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the server's per-call machinery (srvcall.c), shared
 * with the connection and listener loops (server.c). */
#ifndef MESH_GRPC_GRPC_SRV_H
#define MESH_GRPC_GRPC_SRV_H

#include "grpc/grpc.h"

/* Who is calling: taken from the connection before the session owns it. */
typedef struct mesh__grpc_peer {
  char id[MESH_SPIFFE_ID_MAX + 1]; /* "" for plaintext */
  char ip[64];                     /* "" when unknown */
  int port;                        /* our local port, -1 when unknown */
} mesh__grpc_peer_t;

void mesh__grpc_peer_from_conn(mesh__grpc_peer_t *p, mesh_conn_t *c);

/* Look a method up: true and its handler when registered. */
typedef bool (*mesh__grpc_find_fn)(void *srv, const char *path,
                                   mesh_grpc_handler_fn *fn, void **user);

/** Run one call on stream x (accepted, headers complete): validate the
 *  request, authorize it, find the handler, run it, send the status.
 *  Does not free x. */
void mesh__grpc_srv_handle(mesh_t *m, mesh__h2_stream_t *x,
                           const mesh__grpc_peer_t *peer, size_t max_recv,
                           mesh__grpc_find_fn find, void *srv);

#endif /* MESH_GRPC_GRPC_SRV_H */
