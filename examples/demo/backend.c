/* SPDX-License-Identifier: Apache-2.0 */
/* Backend mode: one instance of the service "work".
 *
 *   mesh_demo backend CONFIG NAME WORK_US SPANS STATS READY_FD
 *
 * Listens with mutual TLS (identity, inbound peers and authz policy from
 * CONFIG: a caller that no ALLOW policy can match is refused in the
 * handshake) and serves HTTP/1.1 with mesh_http_serve() (which checks the
 * policies again per request), one thread per connection.  Each request takes WORK_US ("min-max",
 * microseconds) of simulated work and answers with the instance's name.
 * The bound port goes to READY_FD; at SIGTERM the instance stops, writes
 * its counters to STATS and exits. */
#include "demo.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define JOIN_WAIT_MS 3000

typedef struct backend {
  mesh_t *m;
  const char *name;
  int work_min_us, work_max_us;
  atomic_ulong served;
  atomic_int live; /* connection threads still running */
} backend_t;

typedef struct conn_arg {
  backend_t *b;
  mesh_conn_t *c;
  unsigned seed;
} conn_arg_t;

static volatile sig_atomic_t stopping;

static void on_term(int sig) {
  (void)sig;
  stopping = 1;
}

/* Simulated work: uniform in [min, max] microseconds. */
static void work(const backend_t *b, unsigned *seed) {
  int span = b->work_max_us - b->work_min_us + 1;
  long us = b->work_min_us + (span > 0 ? rand_r(seed) % span : 0);
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, NULL);
}

typedef struct handler_arg {
  backend_t *b;
  unsigned *seed;
} handler_arg_t;

static int handle(const mesh_http_request_t *req, mesh_http_response_t *resp,
                  void *user) {
  handler_arg_t *h = user;
  (void)req;
  work(h->b, h->seed);
  atomic_fetch_add(&h->b->served, 1);
  mesh_http_response_add_header(resp, "Content-Type", "text/plain");
  return mesh_http_response_set_body(resp, h->b->name, strlen(h->b->name));
}

static void *conn_main(void *arg) {
  conn_arg_t *a = arg;
  handler_arg_t h = {a->b, &a->seed};
  mesh_status_t st;
  mesh_http_serve(a->b->m, a->c, handle, &h, &st);
  mesh_conn_close(a->c);
  atomic_fetch_sub(&a->b->live, 1);
  free(a);
  return NULL;
}

static void spawn_conn(backend_t *b, mesh_conn_t *c, unsigned seed) {
  conn_arg_t *a = malloc(sizeof *a);
  pthread_t t;
  if (!a || atomic_load(&b->live) >= MAX_CONNS) {
    free(a);
    mesh_conn_close(c);
    return;
  }
  *a = (conn_arg_t){b, c, seed};
  atomic_fetch_add(&b->live, 1);
  if (pthread_create(&t, NULL, conn_main, a) != 0) {
    atomic_fetch_sub(&b->live, 1);
    mesh_conn_close(c);
    free(a);
    return;
  }
  pthread_detach(t);
}

/* The counters, replaced atomically: written while serving too, so that
 * an instance killed with SIGKILL leaves its last numbers behind. */
static void write_stats(backend_t *b, const char *path) {
  uint64_t deny = 0, conn_deny = 0;
  mesh_authz_counter(b->m, "deny", &deny);
  mesh_authz_counter(b->m, "conn_deny", &conn_deny);
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f)
    return;
  fprintf(f, "served=%lu denied=%llu conn_denied=%llu\n",
          atomic_load(&b->served), (unsigned long long)deny,
          (unsigned long long)conn_deny);
  if (fclose(f) == 0)
    rename(tmp, path);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void accept_loop(backend_t *b, mesh_listener_t *l, const char *stats) {
  unsigned seed = (unsigned)getpid();
  double next_stats = 0;
  while (!stopping) {
    if (now_s() >= next_stats) {
      write_stats(b, stats);
      next_stats = now_s() + 0.25;
    }
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_accept(l, 200, &c, &st);
    if (rc == MESH_OK)
      spawn_conn(b, c, rand_r(&seed));
    else if (rc != MESH_ERR_TIMEOUT)
      fprintf(stderr, "%s: refused a peer: %s: %s\n", b->name,
              mesh_code_name(rc), st.message);
  }
}

/* Connections end when their clients close them (the client frees its
 * context before the backends are stopped); wait a bounded time. */
static bool wait_conns(backend_t *b) {
  for (int i = 0; i < JOIN_WAIT_MS / 10 && atomic_load(&b->live) > 0; i++)
    nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
  return atomic_load(&b->live) == 0;
}

static bool parse_work(const char *s, int *min_us, int *max_us) {
  char *end;
  long a = strtol(s, &end, 10);
  if (*end != '-')
    return false;
  long z = strtol(end + 1, &end, 10);
  if (*end || a < 0 || z < a || z > 1000000)
    return false;
  *min_us = (int)a;
  *max_us = (int)z;
  return true;
}

int demo_backend_main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: mesh_demo backend CONFIG NAME WORK_US(min-max) "
                    "SPANS STATS READY_FD\n");
    return 2;
  }
  backend_t b = {.name = argv[3]};
  const char *spans = argv[5], *stats = argv[6];
  int ready = atoi(argv[7]);
  if (!parse_work(argv[4], &b.work_min_us, &b.work_max_us) || ready < 0) {
    fprintf(stderr, "backend: bad arguments\n");
    return 2;
  }
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  mesh_status_t st;
  if (mesh_new_from_file(argv[2], &b.m, &st) != MESH_OK) {
    fprintf(stderr, "%s: config: %s\n", b.name, st.message);
    return 1;
  }
  demo_spans_attach(b.m, spans, b.name, NULL);
  mesh_listener_t *l = NULL;
  if (mesh_listen(b.m, NULL, &l, &st) != MESH_OK) {
    fprintf(stderr, "%s: listen: %s\n", b.name, st.message);
    mesh_free(b.m);
    return 1;
  }
  dprintf(ready, "%d\n", mesh_listener_port(l));
  close(ready);
  fprintf(stderr, "%s: serving on port %d, pid %d\n", b.name,
          mesh_listener_port(l), (int)getpid());
  accept_loop(&b, l, stats);
  mesh_listener_close(l);
  bool clean = wait_conns(&b);
  write_stats(&b, stats);
  fprintf(stderr, "%s: stopped, %lu requests served\n", b.name,
          atomic_load(&b.served));
  if (!clean) {
    /* A connection is still being served: freeing the context under it
     * is not allowed, and the process is exiting anyway. */
    fprintf(stderr, "%s: %d connections still open at exit\n", b.name,
            atomic_load(&b.live));
    return 0;
  }
  mesh_free(b.m);
  demo_spans_close();
  return 0;
}
