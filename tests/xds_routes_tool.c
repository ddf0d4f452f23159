/* SPDX-License-Identifier: Apache-2.0 */
/* tests/xds_routes_tool BOOTSTRAP NAME:MODE...: real mTLS backends on
 * loopback (child processes, tests/test_call_backend.c; their HTTP answers
 * name them in "x-backend") and a libmesh context whose service "web"
 * follows the xDS listener "web" through the real ADS stream, routed per
 * request by its RDS route table.  Prints {"ports": {...}} first, then
 * answers commands read from stdin, one JSON line each:
 *   ready N            wait (<= 20 s) until "web" has N endpoints
 *   http PATH HDR N    N sequential GETs of PATH (HDR "name=value", or "-")
 *                      through mesh_http_call: {"calls", "by": {backend:
 *                      n}, "failed", "codes": {"503": n, ...}, "errors":
 *                      {"MESH_ERR_...": n}, "last_error", "ms_max",
 *                      "open": {cluster: n}: breaker refusals by the
 *                      cluster the message names}
 *   start T PATH...    T threads GET the paths in turn until quit
 *   count N            the threads' next N calls: as http, plus
 *                      "failed_total" since start
 *   view               the admin view "xds"
 *   quit               stop threads and backends, exit
 * With XDS_TOOL_ADMIN=HOST:PORT in the environment the context also runs
 * its admin endpoint there (tests/xds/test_xds_clusterrs.py scrapes it).
 * Driven by tests/xds/test_xds_routes.py. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh/mesh.h"
#include "telemetry/telemetry.h"
#include "test_call_backend.h"

#define NB_MAX 12
#define MAX_THREADS 8
#define NPATHS 4

static tcb_t be[NB_MAX];
static int nb;
static mesh_t *m;
static atomic_bool stop;
static char paths[NPATHS][128];
static int npaths;

typedef struct tally {
  pthread_mutex_t mu;
  unsigned long calls, failed, failed_total, by[NB_MAX], codes[600];
  unsigned long errs[64]; /* by -rc */
  char open_name[4][64];  /* breaker refusals by cluster (first 4 names) */
  unsigned long open_n[4];
  long ms_max;
  char last_error[256];
} tally_t;

static tally_t tl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET of path through mesh_http_call, counted in t. */
static void one(tally_t *t, const char *path, const char *hdr) {
  mesh_http_request_t *rq = mesh_http_request_new("GET", path);
  char name[64] = "", value[128] = "";
  if (hdr && strcmp(hdr, "-") != 0 && sscanf(hdr, "%63[^=]=%127s", name, value) == 2)
    mesh_http_request_add_header(rq, name, value);
  mesh_http_response_t *rs = NULL;
  mesh_status_t st;
  double t0 = now_s();
  int rc = mesh_http_call(m, "web", rq, &rs, &st);
  long ms = (long)((now_s() - t0) * 1000);
  int k = -1, code = rc == MESH_OK ? mesh_http_response_status(rs) : 0;
  const char *b = rs ? mesh_http_response_header(rs, "x-backend") : NULL;
  for (int i = 0; b && code == 200 && i < nb; i++)
    if (strcmp(b, be[i].name) == 0)
      k = i;
  pthread_mutex_lock(&t->mu);
  t->calls++;
  if (ms > t->ms_max)
    t->ms_max = ms;
  if (code > 0 && code < 600)
    t->codes[code]++;
  if (rc < 0 && -rc < 64)
    t->errs[-rc]++;
  const char *cl = rc == MESH_ERR_CIRCUIT_OPEN ? strstr(st.message, "cluster \"") : NULL;
  char cname[64] = "";
  if (cl)
    sscanf(cl + 9, "%63[^\"]", cname);
  for (int i = 0; cl && i < 4; i++)
    if (!t->open_name[i][0] || strcmp(t->open_name[i], cname) == 0) {
      snprintf(t->open_name[i], sizeof t->open_name[i], "%s", cname);
      t->open_n[i]++;
      break;
    }
  if (k >= 0) {
    t->by[k]++;
  } else {
    t->failed++;
    t->failed_total++;
    snprintf(t->last_error, sizeof t->last_error, "%s: %.200s",
             mesh_code_name(rc), rc ? st.message : "bad status");
    for (char *p = t->last_error; *p; p++) /* inside a JSON string */
      if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
        *p = '\'';
  }
  pthread_mutex_unlock(&t->mu);
  mesh_http_response_free(rs);
  mesh_http_request_free(rq);
}

static void *worker(void *arg) {
  for (unsigned long i = (unsigned long)(uintptr_t)arg; !atomic_load(&stop); i++) {
    one(&tl, paths[i % (unsigned long)npaths], "-");
    nanosleep(&(struct timespec){0, 2000000L}, NULL);
  }
  return NULL;
}

static void reset(tally_t *t) {
  pthread_mutex_lock(&t->mu);
  unsigned long ft = t->failed_total;
  t->calls = t->failed = 0;
  memset(t->by, 0, sizeof t->by);
  memset(t->codes, 0, sizeof t->codes);
  memset(t->errs, 0, sizeof t->errs);
  memset(t->open_name, 0, sizeof t->open_name);
  memset(t->open_n, 0, sizeof t->open_n);
  t->ms_max = 0;
  t->last_error[0] = '\0';
  t->failed_total = ft;
  pthread_mutex_unlock(&t->mu);
}

static void print(tally_t *t) {
  pthread_mutex_lock(&t->mu);
  printf("{\"calls\": %lu, \"by\": {", t->calls);
  for (int i = 0; i < nb; i++)
    printf("%s\"%s\": %lu", i ? ", " : "", be[i].name, t->by[i]);
  printf("}, \"codes\": {");
  for (int i = 0, n = 0; i < 600; i++)
    if (t->codes[i])
      printf("%s\"%d\": %lu", n++ ? ", " : "", i, t->codes[i]);
  printf("}, \"errors\": {");
  for (int i = 0, n = 0; i < 64; i++)
    if (t->errs[i])
      printf("%s\"%s\": %lu", n++ ? ", " : "", mesh_code_name(-i), t->errs[i]);
  printf("}, \"open\": {");
  for (int i = 0; i < 4 && t->open_name[i][0]; i++)
    printf("%s\"%s\": %lu", i ? ", " : "", t->open_name[i], t->open_n[i]);
  printf("}, \"failed\": %lu, \"failed_total\": %lu, \"ms_max\": %ld, "
         "\"last_error\": \"%s\"}\n", t->failed, t->failed_total, t->ms_max,
         t->last_error);
  pthread_mutex_unlock(&t->mu);
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

static void cmd_http(const char *args) {
  char path[128], hdr[200];
  unsigned long n;
  if (sscanf(args, "%127s %199s %lu", path, hdr, &n) != 3) {
    printf("{\"error\": \"usage: http PATH HDR N\"}\n");
    return;
  }
  static tally_t t = {.mu = PTHREAD_MUTEX_INITIALIZER};
  reset(&t);
  for (unsigned long i = 0; i < n; i++)
    one(&t, path, hdr);
  print(&t);
}

static void cmd_count(unsigned long want) {
  reset(&tl);
  for (double end = now_s() + 60; now_s() < end;) {
    pthread_mutex_lock(&tl.mu);
    unsigned long c = tl.calls;
    pthread_mutex_unlock(&tl.mu);
    if (c >= want)
      break;
    nanosleep(&(struct timespec){0, 1000000L}, NULL);
  }
  print(&tl);
}

static void cmd_view(void) {
  cJSON *v = mesh__view_render(m, "xds");
  char *s = v ? cJSON_PrintUnformatted(v) : NULL;
  printf("%s\n", s ? s : "{\"error\": \"view\"}");
  free(s);
  cJSON_Delete(v);
}

/* The command loop; "quit" or EOF ends it. */
static void commands(pthread_t *th, int *nth) {
  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    unsigned long a = 0;
    int off = 0;
    if (sscanf(line, "ready %lu", &a) == 1) {
      cmd_ready(a);
    } else if (strncmp(line, "http ", 5) == 0) {
      cmd_http(line + 5);
    } else if (sscanf(line, "start %lu %n", &a, &off) == 1 && off > 0) {
      char tok[128];
      int used = 0;
      for (const char *p = line + off;
           npaths < NPATHS && sscanf(p, "%127s%n", tok, &used) == 1; p += used)
        snprintf(paths[npaths++], sizeof paths[0], "%s", tok);
      for (; npaths && *nth < (int)a && *nth < MAX_THREADS; (*nth)++)
        pthread_create(&th[*nth], NULL, worker, (void *)(uintptr_t)*nth);
      printf("{\"threads\": %d}\n", *nth);
    } else if (sscanf(line, "count %lu", &a) == 1) {
      cmd_count(a);
    } else if (strncmp(line, "view", 4) == 0) {
      cmd_view();
    } else {
      break;
    }
    fflush(stdout);
  }
}

static int run(const char *boot) {
  char cfg[2048], admin[128] = "";
  const char *listen = getenv("XDS_TOOL_ADMIN");
  if (listen && *listen)
    snprintf(admin, sizeof admin, "\"admin\": {\"listen\": \"%.64s\"}, ", listen);
  snprintf(cfg, sizeof cfg,
           "{\"log\": {\"level\": \"error\"}, %s, %s\"xds\": {\"bootstrap\": \"%s\"}, "
           "\"services\": {\"web\": {\"peers\": [\"" TCB_BACKEND_ID "\"], "
           "\"discovery\": {\"type\": \"xds\", \"listener\": \"web\"}}}}",
           tcb_client_identity(), admin, boot);
  mesh_status_t st;
  if (mesh_new(cfg, &m, &st)) {
    printf("{\"error\": \"%s\"}\n", st.message);
    return 1;
  }
  pthread_t th[MAX_THREADS];
  int nth = 0;
  commands(th, &nth);
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
  if (argc < 3 || argc - 2 > NB_MAX || !tcb_init())
    return 2;
  bool ok = true;
  for (int i = 2; i < argc && ok; i++) {
    char name[32], mode[32];
    ok = sscanf(argv[i], "%31[^:]:%31s", name, mode) == 2 &&
         tcb_start(&be[nb], name, mode, 0);
    nb += ok;
  }
  if (ok) {
    printf("{\"ports\": {");
    for (int i = 0; i < nb; i++)
      printf("%s\"%s\": %d", i ? ", " : "", be[i].name, be[i].port);
    printf("}}\n");
    fflush(stdout);
    rc = run(argv[1]);
  } else {
    printf("{\"error\": \"backends did not start\"}\n");
    rc = 1;
  }
  for (int i = 0; i < nb; i++)
    if (be[i].pid > 0)
      tcb_stop(&be[i]);
  return rc;
}
