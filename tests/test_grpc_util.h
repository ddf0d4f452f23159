/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the gRPC tests: certificates with DNS SANs (grpcio checks a
 * host name), configs, python3-grpcio peers (tests/grpc_peer.py) and a C
 * server implementing the same echo service and request steering. */
#ifndef MESH_TESTS_TEST_GRPC_UTIL_H
#define MESH_TESTS_TEST_GRPC_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include <mesh/mesh.h>

#define TG_PY "/usr/bin/python3"
#define TG_PEER TEST_SRCDIR "/tests/grpc_peer.py"

/* Issue <tmp>/<name>.crt/.key for spiffe://example.org/ns/default/sa/<name>
 * with DNS SAN localhost, under <tmp>/example.org-ca.crt. */
bool tg_svid(const char *name);
/* A config JSON for identity <name> (tls.alpn h2), with extra top-level
 * members appended (e.g. "\"services\": {...}" or NULL). Static buffer
 * ring. */
const char *tg_config(const char *name, const char *extra);

/* A python3-grpcio server on a free port; mode "echo" or "unavailable";
 * events to <tmp>/<tag>.events.  Returns the pid, *port set. */
pid_t tg_py_server(const char *tag, const char *mode, int *port);
/* The same with server channel arguments "grpc.KEY=INT" (NULL-ended). */
pid_t tg_py_server_opts(const char *tag, const char *mode,
                        const char *const *opts, int *port);
/* Distinct lines of <tmp>/<tag>.events starting with prefix (e.g. "peer ":
 * the connections that carried calls), at most 256. */
int tg_events_distinct(const char *tag, const char *prefix);
/* Lines of <tmp>/<tag>.events equal to line. */
int tg_events(const char *tag, const char *line);
/* Run the python client scenario(s) against 127.0.0.1:port; exit status. */
int tg_py_client(int port, const char *scenarios);

/* The C echo server (same methods and steering as grpc_peer.py). */
typedef struct tg_server {
  mesh_t *m;
  mesh_listener_t *l;
  mesh_grpc_server_t *srv;
  pthread_t thread;
  int port;
  _Atomic int cancelled;   /* calls that saw a cancellation */
  _Atomic int calls;
} tg_server_t;

/* Start on 127.0.0.1:0 with identity "srv" and extra config. */
bool tg_server_start(tg_server_t *s, const char *extra);
void tg_server_stop(tg_server_t *s);

#endif
