/* SPDX-License-Identifier: Apache-2.0 */
/* Misbehaving backends for the call-layer tests: child processes (this same
 * test binary re-executed with --backend) that serve mTLS on 127.0.0.1
 * with libmesh's own listener and answer a line protocol:
 *
 *   request  "PING\n"          -> "<status> <name> <conn#>\n"
 *   request  "MODE <mode>\n"   -> "200 ok\n" after switching mode
 *   request  "GET <path> ..."  -> an HTTP/1.1 answer (for health checks)
 *
 * Modes: good (200), error (503), reset (close without answering),
 * slow:<ms> (answer 200 after ms), partial (send "20" and hang), drop
 * (answer 200, then close the connection).  Processes are real so a test
 * can SIGKILL one mid-stream. */
#ifndef MESH_TESTS_CALL_BACKEND_H
#define MESH_TESTS_CALL_BACKEND_H

#include <stdbool.h>
#include <sys/types.h>

#include <mesh/mesh.h>

typedef struct tcb {
  pid_t pid;
  int port;
  char name[32];
  char addr[16]; /* the IPv4 loopback address it listens on ("": 127.0.0.1) */
} tcb_t;

/* In main(): returns >= 0 when argv asks for a backend (run it, exit with
 * that code), -1 otherwise. */
int tcb_maybe_backend(int argc, char **argv);
/* Dev CA and SVIDs for "backend" and "client" (once). */
bool tcb_init(void);
/* The "identity" section (JSON member, no braces) of the client. */
const char *tcb_client_identity(void);
/* The SPIFFE ID backends present. */
#define TCB_BACKEND_ID "spiffe://example.org/ns/t/sa/backend"
/* Start a backend on a free port (port 0) or the given one; waits until it
 * accepts.  false on failure. */
bool tcb_start(tcb_t *b, const char *name, const char *mode, int port);
/* The same on another IPv4 loopback address (127.x.y.z; NULL: 127.0.0.1),
 * e.g. two backends at one port behind a DNS name. */
bool tcb_start_at(tcb_t *b, const char *addr, const char *name,
                  const char *mode, int port);
/* Switch a running backend's mode (a direct mTLS request through m). */
bool tcb_mode(mesh_t *m, const tcb_t *b, const char *mode);
void tcb_kill(tcb_t *b);  /* SIGKILL at once */
void tcb_stop(tcb_t *b);  /* SIGTERM, reap */

/* Client side of the protocol. */
typedef struct tcb_reply {
  int status;
  char name[32];
  int conn;
} tcb_reply_t;
/* mesh_call_try_fn: PING, read one line into a tcb_reply_t (user). */
int tcb_try(mesh_call_t *call, mesh_conn_t *conn, int *status, void *user);
/* mesh_call_frame_fn: a line is a response; status is its first number. */
long tcb_frame(const void *buf, size_t len, int *status, void *user);
/* Parse a reply line ("503 b1 4\n"). */
bool tcb_parse(const char *line, size_t len, tcb_reply_t *out);

#endif
