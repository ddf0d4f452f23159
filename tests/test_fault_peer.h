/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the fault and soak tests: an in-process mTLS echo server with a
 * thread per connection (so slow or stalled peers never block the others),
 * a log capture, and counters of open file descriptors and memory. */
#ifndef MESH_TESTS_TEST_FAULT_PEER_H
#define MESH_TESTS_TEST_FAULT_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mesh/mesh.h>

#define FP_TD "example.org"
#define FP_SERVER_ID "spiffe://example.org/ns/fault/sa/server"
#define FP_CLIENT_ID "spiffe://example.org/ns/fault/sa/client"
#define FP_MAX_CONNS 256

/* ---- echo server ------------------------------------------------------- */

typedef struct fp_conn {
  pthread_t th;
  mesh_conn_t *c;
  bool used;        /* th must be joined */
  atomic_bool done; /* the thread has ended */
} fp_conn_t;

typedef struct fp_server {
  mesh_t *m;
  mesh_listener_t *l;
  int port;
  pthread_t th;
  atomic_bool stop;
  pthread_mutex_t mu;
  fp_conn_t conns[FP_MAX_CONNS]; /* slots reused once their thread ended */
  atomic_int accepted;   /* handshakes that succeeded */
  atomic_int refused;    /* accept results other than OK and TIMEOUT */
  atomic_int busy;       /* accepts closed at once: no free slot */
  char last_error[384];  /* guarded by mu */
} fp_server_t;

/* Listen on 127.0.0.1:port (0: any) with m and echo every byte back on
 * each connection, from its own thread, until EOF or error. */
bool fp_server_start(fp_server_t *s, mesh_t *m, int port);
/* Stop accepting, wait for every connection thread (they end when their
 * peers close: free the clients first), close the listener.  The mesh_t
 * stays the caller's. */
void fp_server_stop(fp_server_t *s);

/* ---- log capture -------------------------------------------------------- */

#define FP_LOG_LINES 256

typedef struct fp_log {
  pthread_mutex_t mu;
  char lines[FP_LOG_LINES][512];
  int64_t at_ms[FP_LOG_LINES]; /* wall clock, ms */
  int n;                       /* lines kept (the first FP_LOG_LINES) */
  int total;
} fp_log_t;

void fp_log_init(fp_log_t *l);
void fp_log_fini(fp_log_t *l);
/* A mesh_log_fn; user is the fp_log_t. */
void fp_log_fn(int level, const char *line, void *user);
/* Index of the first kept line containing every one of the (up to two)
 * needles (NULL: unused), or -1; copies the line into out if found. */
int fp_log_find(fp_log_t *l, const char *a, const char *b, char *out,
                size_t len, int64_t *at_ms);

/* ---- process state ------------------------------------------------------ */

/* Open file descriptors of this process (-1 if /proc is unavailable). */
int fp_count_fds(void);
/* Resident set size in KiB from /proc/self/statm (-1 on error). */
long fp_rss_kb(void);
/* How much slower than native this process runs: 20 under valgrind
 * (detected by its preload library), 3 under a sanitizer, else 1.  Time
 * bounds of the tests scale with it. */
int fp_slow(void);
/* Wall clock in ms. */
int64_t fp_wall_ms(void);
void fp_sleep_ms(int ms);

/* ---- sockets ------------------------------------------------------------ */

/* "127.0.0.1:<port>" in a static ring of buffers. */
const char *fp_addr(int port);
/* A blocking TCP client connected to 127.0.0.1:port, or -1. */
int fp_raw_connect(int port);

/* ---- identities ---------------------------------------------------------- */

/* Mint the dev CA of FP_TD and SVIDs "fserver" and "fclient" (once). */
bool fp_certs(void);
/* An "identity" member (no braces around it) for SVID files <name>.crt /
 * <name>.key in th_tmpdir() and the FP_TD bundle, plus extra identity keys
 * (",\"reload_interval_ms\":20" or ""). */
void fp_identity(char *buf, size_t len, const char *name, const char *extra);

#endif
