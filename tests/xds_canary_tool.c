/* SPDX-License-Identifier: Apache-2.0 */
/* tests/xds_canary_tool BOOTSTRAP: real mTLS backends on loopback (child
 * processes, tests/test_call_backend.c) named v1-a, v1-b, v2-a, v2-b, and
 * a libmesh context whose service "web" follows the xDS listener "web"
 * (LDS -> RDS weighted clusters -> CDS -> EDS) through the real ADS stream.
 * Prints {"ports": {...}} first, then answers commands read from stdin,
 * one JSON line each:
 *   ready N      wait (<= 20 s) until "web" has N endpoints: {"endpoints"}
 *   start T      T threads call "web" until quit (one PING per call)
 *   count N      the next N calls (<= 60 s): {"calls", "by": {backend: n},
 *                "failed", "failed_total", "last_error"}
 *   view         the admin view "xds" of the context, as JSON
 *   quit         stop the threads and the backends, exit
 * Driven by tests/xds/test_xds_canary.py. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mesh/mesh.h"
#include "telemetry/telemetry.h"
#include "test_call_backend.h"

#define NB 4
#define MAX_THREADS 16

static const char *const names[NB] = {"v1-a", "v1-b", "v2-a", "v2-b"};
static tcb_t be[NB];
static mesh_t *m;
static atomic_bool stop;
static atomic_ulong by[NB], calls, failed, failed_total;
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;
static char last_error[256];

static void *worker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    tcb_reply_t r = {0};
    mesh_status_t st;
    int rc = mesh_call_do(m, "web", NULL, tcb_try, &r, &st);
    int k = -1;
    for (int i = 0; rc == MESH_OK && r.status == 200 && i < NB; i++)
      if (strcmp(r.name, names[i]) == 0)
        k = i;
    if (k >= 0) {
      atomic_fetch_add(&by[k], 1);
    } else {
      atomic_fetch_add(&failed, 1);
      atomic_fetch_add(&failed_total, 1);
      pthread_mutex_lock(&err_mu);
      snprintf(last_error, sizeof last_error, "%s: %.200s",
               mesh_code_name(rc), rc ? st.message : r.name);
      for (char *p = last_error; *p; p++) /* printed inside a JSON string */
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
          *p = '\'';
      pthread_mutex_unlock(&err_mu);
    }
    atomic_fetch_add(&calls, 1);
    nanosleep(&(struct timespec){0, 2000000L}, NULL);
  }
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cmd_ready(size_t want) {
  size_t n = 0;
  for (double end = now_s() + 20; now_s() < end;) {
    mesh_endpoints_t *e = NULL;
    mesh_status_t st;
    if (mesh_endpoints_get(m, "web", &e, &st) == MESH_OK) {
      n = mesh_endpoints_count(e);
      mesh_endpoints_free(e);
    }
    if (n == want)
      break;
    nanosleep(&(struct timespec){0, 10000000L}, NULL);
  }
  printf("{\"endpoints\": %zu}\n", n);
}

static void cmd_count(unsigned long want) {
  for (int i = 0; i < NB; i++)
    atomic_store(&by[i], 0);
  atomic_store(&failed, 0);
  atomic_store(&calls, 0);
  pthread_mutex_lock(&err_mu);
  last_error[0] = '\0';
  pthread_mutex_unlock(&err_mu);
  for (double end = now_s() + 60; atomic_load(&calls) < want && now_s() < end;)
    nanosleep(&(struct timespec){0, 1000000L}, NULL);
  /* counters keep moving: read them once */
  unsigned long c = atomic_load(&calls), f = atomic_load(&failed);
  printf("{\"calls\": %lu, \"by\": {", c);
  for (int i = 0; i < NB; i++)
    printf("%s\"%s\": %lu", i ? ", " : "", names[i], atomic_load(&by[i]));
  pthread_mutex_lock(&err_mu);
  printf("}, \"failed\": %lu, \"failed_total\": %lu, \"last_error\": \"%s\"}\n",
         f, atomic_load(&failed_total), last_error);
  pthread_mutex_unlock(&err_mu);
}

static void cmd_view(void) {
  cJSON *v = mesh__view_render(m, "xds");
  char *s = v ? cJSON_PrintUnformatted(v) : NULL;
  printf("%s\n", s ? s : "{\"error\": \"view\"}");
  free(s);
  cJSON_Delete(v);
}

static int run(const char *boot) {
  char cfg[2048];
  snprintf(cfg, sizeof cfg,
           "{\"log\": {\"level\": \"error\"}, %s, \"xds\": {\"bootstrap\": \"%s\"}, "
           "\"services\": {\"web\": {\"peers\": [\"" TCB_BACKEND_ID "\"], "
           "\"retry\": {\"num_retries\": 0}, "
           "\"discovery\": {\"type\": \"xds\", \"listener\": \"web\"}}}}",
           tcb_client_identity(), boot);
  mesh_status_t st;
  if (mesh_new(cfg, &m, &st)) {
    printf("{\"error\": \"%s\"}\n", st.message);
    return 1;
  }
  pthread_t th[MAX_THREADS];
  int nth = 0;
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    unsigned long a = 0;
    if (sscanf(line, "ready %lu", &a) == 1) {
      cmd_ready(a);
    } else if (sscanf(line, "start %lu", &a) == 1) {
      for (; nth < (int)a && nth < MAX_THREADS; nth++)
        pthread_create(&th[nth], NULL, worker, NULL);
      printf("{\"threads\": %d}\n", nth);
    } else if (sscanf(line, "count %lu", &a) == 1) {
      cmd_count(a);
    } else if (strncmp(line, "view", 4) == 0) {
      cmd_view();
    } else {
      break;
    }
    fflush(stdout);
  }
  atomic_store(&stop, true);
  for (int i = 0; i < nth; i++)
    pthread_join(th[i], NULL);
  mesh_free(m);
  return 0;
}

int main(int argc, char **argv) {
  int rc = tcb_maybe_backend(argc, argv);
  if (rc >= 0)
    return rc;
  if (argc != 2 || !tcb_init())
    return 2;
  bool ok = true;
  for (int i = 0; i < NB && ok; i++)
    ok = tcb_start(&be[i], names[i], "good", 0);
  if (ok) {
    printf("{\"ports\": {");
    for (int i = 0; i < NB; i++)
      printf("%s\"%s\": %d", i ? ", " : "", names[i], be[i].port);
    printf("}}\n");
    fflush(stdout);
    rc = run(argv[1]);
  } else {
    printf("{\"error\": \"backends did not start\"}\n");
    rc = 1;
  }
  for (int i = 0; i < NB; i++)
    if (be[i].pid > 0)
      tcb_stop(&be[i]);
  return rc;
}
