/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 vs HTTP/2 through the call layer at the same load:
 *   bench/h2_call CERTDIR PROTO THREADS CALLS BODY [HANDLER_US]
 * PROTO "h1" or "h2" (the client's ALPN).  A backend in the same process
 * serves mesh_http_serve() over mTLS (ALPN h2 and http/1.1, one thread per
 * connection); THREADS callers each make CALLS mesh_http_call()s of a
 * BODY-byte POST (closed loop).  Prints calls/s, p50/p99 latency, CPU per
 * call (client and server together: one process) and the connections the
 * backend accepted.  HANDLER_US (default 0): the handler sleeps this long
 * first, as a handler doing work would (a serial server makes the callers
 * sharing a connection wait for each other).  CERTDIR holds ca.crt, server.crt/key, client.crt/key
 * (bench/certs.sh). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mesh/mesh.h>

static atomic_int conns, active;
static long handler_us;
static atomic_bool stop;

static int handler(const mesh_http_request_t *req, mesh_http_response_t *resp,
                   void *user) {
  (void)user;
  if (handler_us > 0) {
    struct timespec d = {handler_us / 1000000, (handler_us % 1000000) * 1000};
    nanosleep(&d, NULL);
  }
  size_t n;
  const void *b = mesh_http_request_body(req, &n);
  mesh_http_response_set_body(resp, b, n);
  return 0;
}

struct job {
  mesh_t *m;
  mesh_conn_t *c;
};

static void *conn_main(void *arg) {
  struct job *j = arg;
  mesh_http_serve(j->m, j->c, handler, NULL, NULL);
  mesh_conn_close(j->c);
  free(j);
  atomic_fetch_sub(&active, 1);
  return NULL;
}

static void *acceptor(void *arg) {
  mesh_listener_t *l = arg;
  while (!atomic_load(&stop)) {
    mesh_conn_t *c = NULL;
    if (mesh_accept(l, 50, &c, NULL) != MESH_OK)
      continue;
    atomic_fetch_add(&conns, 1);
    atomic_fetch_add(&active, 1);
    struct job *j = malloc(sizeof *j);
    j->m = NULL;
    j->c = c;
    pthread_t t;
    pthread_create(&t, NULL, conn_main, j);
    pthread_detach(t);
  }
  return NULL;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct caller {
  pthread_t t;
  mesh_t *m;
  int calls;
  size_t body;
  int64_t *lat;
  int errors;
};

static void *caller_main(void *arg) {
  struct caller *c = arg;
  char *body = malloc(c->body + 1);
  memset(body, 'x', c->body);
  for (int i = 0; i < c->calls; i++) {
    mesh_http_request_t *req = mesh_http_request_new("POST", "/echo");
    mesh_http_request_set_body(req, body, c->body);
    mesh_http_response_t *resp = NULL;
    int64_t t0 = now_ns();
    int rc = mesh_http_call(c->m, "echo", req, &resp, NULL);
    c->lat[i] = now_ns() - t0;
    if (rc != MESH_OK || mesh_http_response_status(resp) != 200)
      c->errors++;
    mesh_http_response_free(resp);
    mesh_http_request_free(req);
  }
  free(body);
  return NULL;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Set-up, run, report, tear-down in order: over 60 lines, kept as one
 * straight script so the measured section is easy to see. */
int main(int argc, char **argv) {
  if (argc == 7)
    handler_us = atol(argv[6]);
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: h2_call CERTDIR h1|h2 THREADS CALLS BODY "
                    "[HANDLER_US]\n");
    return 2;
  }
  const char *dir = argv[1];
  bool h2 = strcmp(argv[2], "h2") == 0;
  int threads = atoi(argv[3]), calls = atoi(argv[4]);
  size_t body = (size_t)atol(argv[5]);
  if (threads < 1 || threads > 256 || calls < 1)
    return 2;
  char json[4096];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":"
           "\"%s/server.crt\",\"key\":\"%s/server.key\",\"bundle\":"
           "\"%s/ca.crt\"},\"tls\":{\"alpn\":[\"h2\",\"http/1.1\"]}}",
           dir, dir, dir);
  mesh_t *srv = NULL;
  mesh_listener_t *l = NULL;
  mesh_status_t st;
  if (mesh_new(json, &srv, &st) != MESH_OK ||
      mesh_listen(srv, "127.0.0.1:0", &l, &st) != MESH_OK) {
    fprintf(stderr, "server: %s\n", st.message);
    return 1;
  }
  pthread_t acc;
  pthread_create(&acc, NULL, acceptor, l);
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":"
           "\"%s/client.crt\",\"key\":\"%s/client.key\",\"bundle\":"
           "\"%s/ca.crt\"},\"tls\":{\"alpn\":[\"%s\"]},\"services\":{"
           "\"echo\":{\"discovery\":{\"type\":\"static\",\"endpoints\":[{"
           "\"address\":\"127.0.0.1\",\"port\":%d}]},"
           "\"circuit_breakers\":{\"max_requests\":100000}}}}",
           dir, dir, dir, h2 ? "h2" : "http/1.1", mesh_listener_port(l));
  mesh_t *m = NULL;
  if (mesh_new(json, &m, &st) != MESH_OK) {
    fprintf(stderr, "client: %s\n", st.message);
    return 1;
  }
  struct caller *c = calloc((size_t)threads, sizeof *c);
  int64_t *lat = calloc((size_t)threads * (size_t)calls, sizeof *lat);
  double cpu0 = cpu_s();
  int64_t t0 = now_ns();
  for (int i = 0; i < threads; i++) {
    c[i] = (struct caller){.m = m, .calls = calls, .body = body,
                           .lat = lat + (size_t)i * (size_t)calls};
    pthread_create(&c[i].t, NULL, caller_main, &c[i]);
  }
  int errors = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(c[i].t, NULL);
    errors += c[i].errors;
  }
  double wall = (double)(now_ns() - t0) / 1e9, cpu = cpu_s() - cpu0;
  size_t total = (size_t)threads * (size_t)calls;
  qsort(lat, total, sizeof *lat, cmp);
  printf("proto=%s threads=%d calls=%zu body=%zu errors=%d calls_per_s=%.0f "
         "p50_us=%.0f p99_us=%.0f cpu_us_per_call=%.1f conns=%d\n",
         argv[2], threads, total, body, errors, (double)total / wall,
         (double)lat[total / 2] / 1e3, (double)lat[total * 99 / 100] / 1e3,
         cpu * 1e6 / (double)total, atomic_load(&conns));
  mesh_free(m); /* closes the pooled connections: the servers see EOF */
  for (int i = 0; i < 500 && atomic_load(&active) > 0; i++) {
    struct timespec ts = {0, 10000000L};
    nanosleep(&ts, NULL);
  }
  atomic_store(&stop, true);
  pthread_join(acc, NULL);
  mesh_listener_close(l);
  mesh_free(srv);
  free(c);
  free(lat);
  return errors ? 1 : 0;
}
