/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the tls tests: certificates and configs, an in-process server
 * thread on the library's listener, and raw TCP peers. */
#ifndef MESH_TESTS_TEST_TLS_PEER_H
#define MESH_TESTS_TEST_TLS_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <mesh/mesh.h>

#define TD "example.org"
#define TD2 "other.org"
#define SERVER_ID "spiffe://example.org/ns/default/sa/server"
#define CLIENT_ID "spiffe://example.org/ns/default/sa/client"
#define OTHER_ID "spiffe://other.org/ns/default/sa/server"

/* Mint the shared certificates once: CA of TD and TD2, SVIDs "server",
 * "client" (TD), "other" (TD2), "rogue" (TD, signed by an unrelated CA
 * whose certificate is <tmp>/rogue-ca.crt). */
void tp_certs(void);

/* Config JSON for the SVID in <tmp>/<svid>.crt/.key with bundles for the
 * comma-separated trust domains (CA files <tmp>/<td>-ca.crt; "rogue" means
 * TD with the rogue CA).  extra: more top-level members, e.g.
 * "\"inbound\":{\"mode\":\"PERMISSIVE\"}", or NULL. */
void tp_config(char *buf, size_t len, const char *svid, const char *tds,
               const char *extra);
/* mesh_new on tp_config; NULL (and a CUnit failure) if it fails. */
mesh_t *tp_mesh(const char *svid, const char *tds, const char *extra);

/* ---- server thread ------------------------------------------------------ */

typedef enum tp_mode {
  TP_ECHO,     /* echo until EOF */
  TP_ONESHOT,  /* echo one read, then shut down and close */
  TP_HTTP,     /* read a request head, answer 200 with the peer ID */
  TP_RESET,    /* abort the connection with a TCP RST after the handshake */
} tp_mode_t;

#define TP_MAX_RESULTS 512

typedef struct tp_result {
  int rc;
  char msg[384];
  char peer[256];
  int resumed;
  int is_tls;
  char alpn[32];
} tp_result_t;

typedef struct tp_server {
  mesh_t *m;
  mesh_listener_t *l;
  pthread_t th;
  atomic_bool stop;
  tp_mode_t mode;
  int port;
  pthread_mutex_t mu;
  tp_result_t res[TP_MAX_RESULTS];
  int nres;
} tp_server_t;

/* Listen on addr (NULL: 127.0.0.1:0) and serve from a thread. */
bool tp_server_start(tp_server_t *s, mesh_t *m, const char *addr,
                     tp_mode_t mode);
/* Stop the thread, close the listener (the mesh_t stays the caller's). */
void tp_server_stop(tp_server_t *s);
/* Wait until at least n accept results exist (cap: ms, at least
 * TH_CAP_MS; reported loudly). */
bool tp_server_wait(tp_server_t *s, int n, int ms);
/* Copy of result i (under the lock). */
tp_result_t tp_server_result(tp_server_t *s, int i);

/* ---- what differs by TLS backend (tls/backend.h) ------------------------ */

/* Version a libmesh pair negotiates by default: "TLSv1.3" where the backend
 * has it, else "TLSv1.2". */
const char *tp_tls_version(void);
/* A dial the peer is expected to refuse.  In TLS 1.3 the client finishes
 * its handshake before the server checks the client certificate, so the
 * refusal (the server's alert) arrives at the first read: then that read's
 * error is returned, with the same code and words.  *out stays NULL. */
int tp_dial_refused(mesh_t *m, const char *target,
                    const mesh_dial_opts_t *o, mesh_status_t *st);

/* Does hay contain needle?  Prints both when not (for CONTAINS). */
bool tp_contains(const char *hay, const char *needle);

/* "127.0.0.1:<port>" in a static ring of buffers. */
const char *tp_addr(int port);

/* ---- raw peers ---------------------------------------------------------- */

/* A plain TCP listener on 127.0.0.1 (port in *port) that never accepts. */
int tp_raw_listen(int *port);
/* A blocking TCP client connected to 127.0.0.1:port, or -1. */
int tp_raw_connect(int port);

/* Dial and echo msg once; MESH_OK or the failing code (detail in st). */
int tp_echo_once(mesh_t *m, const char *target, const char *msg,
                 mesh_status_t *st, char *peer_pem, size_t pem_len,
                 int *resumed);

#endif
