/* SPDX-License-Identifier: Apache-2.0 */
/* Scaling curves (issue 19), the endpoints-per-service sweep: for n = 10 ..
 * 100,000 endpoints of one service (static addresses 10.a.b.c:8080, equal
 * weights, all healthy), through the discovery apply path (no worker, no
 * config text):
 *   - heap bytes per endpoint the service holds after an update (hosts,
 *     snapshot, least_request picker state): mallinfo2 deltas;
 *   - update apply time, all endpoints changed (new port) and one changed
 *     (one address replaced), thread CPU, median of the runs;
 *   - ns per pick for each policy (one thread, the time passed in: the
 *     picker alone), thread CPU, median of the runs.
 * And the services sweep, 1 .. 10,000 services of 10 endpoints each, through
 * the file source (one file per service, polled every 100 ms by the
 * worker): RSS added, time from mesh_new until every service has its
 * endpoints (the full list), the worker's idle CPU share (the polls), and
 * the time from an atomic file write (rename) to the new endpoint being in
 * the service's snapshot (p50/p99 over 20 writes; bounded by the poll
 * interval).  etcd: bench/scale_svc.
 * Output: CSV "curve,x,metric,value" on stdout (bench/run turns it into a
 * table and a log-log PNG).  --smoke stops at 1,000 endpoints. */
#include "bench_util.h"
#include <malloc.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mesh/mesh.h>

#include "core/core.h"
#include "discovery/discovery.h"
#include "endpoint/endpoint.h"
#include "lb/lb.h"

static const char *const policies[] = {"round_robin", "random",
                                       "least_request", "peak_ewma",
                                       "ring_hash", "maglev"};
#define NPOL 6

static long heap(void) { return (long)mallinfo2().uordblks; }

/* n endpoints 10.a.b.c:port; `shift` moves endpoint 0 to another address */
typedef struct epset {
  mesh__ep_t *eps;
  char (*addr)[20];
  size_t n;
} epset_t;

static epset_t epset(size_t n, uint16_t port, bool shift) {
  epset_t e = {calloc(n, sizeof *e.eps), calloc(n, sizeof *e.addr), n};
  if (!e.eps || !e.addr) {
    fprintf(stderr, "scale: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < n; i++) {
    size_t k = i == 0 && shift ? n + 1 : i;
    snprintf(e.addr[i], sizeof e.addr[i], "10.%zu.%zu.%zu", k / 62500 % 250,
             k / 250 % 250, k % 250 + 1);
    e.eps[i] = (mesh__ep_t){.address = e.addr[i], .port = port, .weight = 1,
                            .health = MESH__HEALTH_HEALTHY};
  }
  return e;
}

static void epset_free(epset_t *e) {
  free(e->eps);
  free(e->addr);
}

static mesh_t *ctx(void) {
  char json[4096];
  size_t o = (size_t)snprintf(json, sizeof json,
                              "{\"log\": {\"level\": \"warn\"}, \"name\": "
                              "\"scale\", \"worker\": {\"mode\": \"external\"}, "
                              "\"services\": {");
  for (int i = 0; i < NPOL; i++)
    o += (size_t)snprintf(json + o, sizeof json - o,
                          "%s\"%s\": {\"discovery\": {\"type\": \"static\", "
                          "\"endpoints\": [{\"address\": \"127.0.1.1\", "
                          "\"port\": 80}]}, \"lb\": {\"policy\": \"%s\"}}",
                          i ? ", " : "", policies[i], policies[i]);
  snprintf(json + o, sizeof json - o, "}}");
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK) {
    fprintf(stderr, "scale: mesh_new: %s\n", st.message);
    exit(1);
  }
  return m;
}

static double apply_ms(mesh__disc_svc_t *d, const epset_t *e) {
  int64_t t0 = thread_ns();
  if (mesh__disc_apply(d, e->eps, e->n) != MESH_OK) {
    fprintf(stderr, "scale: apply of %zu failed\n", e->n);
    exit(1);
  }
  return (double)(thread_ns() - t0) / 1e6;
}

static void out(size_t n, const char *metric, double v) {
  printf("endpoints,%zu,%s,%.6g\n", n, metric, v);
  fflush(stdout);
}

/* Memory and update times for n endpoints (least_request service). */
static void updates(mesh_t *m, size_t n, int runs) {
  mesh__service_t *svc = mesh__service_find(m, "least_request");
  epset_t one = epset(1, 9000, false), a = epset(n, 8080, false),
          b = epset(n, 8081, false), a1 = epset(n, 8080, true);
  apply_ms(svc->disc, &one);
  long h0 = heap();
  apply_ms(svc->disc, &a);
  out(n, "bytes_per_endpoint", (double)(heap() - h0) / (double)(n - 1 ? n - 1 : 1));
  double all[16], inc[16];
  for (int r = 0; r < runs; r++) {
    all[r] = apply_ms(svc->disc, &b);  /* every endpoint new */
    apply_ms(svc->disc, &a);
    inc[r] = apply_ms(svc->disc, &a1); /* one endpoint changed */
    apply_ms(svc->disc, &a);
  }
  out(n, "update_all_ms", median(all, runs));
  out(n, "update_one_ms", median(inc, runs));
  apply_ms(svc->disc, &one);
  epset_free(&one);
  epset_free(&a);
  epset_free(&b);
  epset_free(&a1);
}

static void picks(mesh_t *m, size_t n, int runs, long iters) {
  epset_t e = epset(n, 8080, false);
  char keys[256][12];
  for (int i = 0; i < 256; i++)
    snprintf(keys[i], sizeof keys[i], "k%06d", i * 7919 % 1000000);
  for (int p = 0; p < NPOL; p++) {
    mesh__service_t *svc = mesh__service_find(m, policies[p]);
    mesh__snapshot_t *s = NULL;
    if (mesh__snap_build(NULL, e.eps, n, &s) != MESH_OK ||
        mesh__lb_prepare(svc, s) != MESH_OK) {
      fprintf(stderr, "scale: snapshot of %zu failed\n", n);
      exit(1);
    }
    bool hash = p >= 4;
    int64_t fixed = mesh__now_ms();
    double v[16];
    uintptr_t sink = 0;
    for (int r = 0; r < runs; r++) {
      int64_t t0 = thread_ns();
      for (long i = 0; i < iters; i++) {
        mesh__lb_ctx_t c = {.now_ms = fixed};
        if (hash) {
          c.hash_key = keys[i & 255];
          c.hash_key_len = 7;
        }
        mesh__host_t *h = NULL;
        mesh__lb_pick(svc, s, &c, &h);
        sink ^= (uintptr_t)h;
      }
      v[r] = (double)(thread_ns() - t0) / (double)iters;
    }
    if (sink == 1)
      fprintf(stderr, "\n");
    char name[64];
    snprintf(name, sizeof name, "pick_ns_%s", policies[p]);
    out(n, name, median(v, runs));
    mesh__snap_release(s);
  }
  epset_free(&e);
}

/* Service i's file: n endpoints 10.i.j.k:8080, written atomically. */
static void write_eps(const char *dir, size_t i, size_t n) {
  char path[512], tmp[520];
  snprintf(path, sizeof path, "%s/s%zu.json", dir, i);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    perror("scale: write");
    exit(1);
  }
  fputc('[', f);
  for (size_t j = 0; j < n; j++)
    fprintf(f, "%s{\"address\": \"10.%zu.%zu.%zu\", \"port\": 8080}",
            j ? ", " : "", i / 250 % 250, i % 250, j + 1);
  fputs("]\n", f);
  fclose(f);
  if (rename(tmp, path) != 0) {
    perror("scale: rename");
    exit(1);
  }
}

static size_t count_of(mesh_t *m, const char *svc) {
  mesh_endpoints_t *e = NULL;
  if (mesh_endpoints_get(m, svc, &e, NULL) != MESH_OK || !e)
    return 0;
  size_t n = mesh_endpoints_count(e);
  mesh_endpoints_free(e);
  return n;
}

static void out_svc(size_t n, const char *metric, double v) {
  printf("services,%zu,%s,%.6g\n", n, metric, v);
  fflush(stdout);
}

/* Config text for n file services (poll 100 ms). */
static char *files_config(const char *dir, size_t n) {
  size_t cap = 256 + n * (strlen(dir) + 160), o = 0;
  char *json = malloc(cap);
  if (!json)
    exit(1);
  o += (size_t)snprintf(json, cap, "{\"log\": {\"level\": \"warn\"}, "
                                  "\"name\": \"scale\", \"services\": {");
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(json + o, cap - o,
                          "%s\"s%zu\": {\"discovery\": {\"type\": \"file\", "
                          "\"path\": \"%s/s%zu.json\", \"poll_interval_ms\": "
                          "100}}",
                          i ? ", " : "", i, dir, i);
  snprintf(json + o, cap - o, "}}");
  return json;
}

static void services(size_t n, int writes) {
  char dir[] = "/tmp/meshscale.XXXXXX";
  if (!mkdtemp(dir)) {
    perror("scale: mkdtemp");
    exit(1);
  }
  for (size_t i = 0; i < n; i++)
    write_eps(dir, i, 10);
  char *json = files_config(dir, n);
  long r0 = rss_kib();
  int64_t t0 = wall_ns();
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK) {
    fprintf(stderr, "scale: mesh_new: %s\n", st.message);
    exit(1);
  }
  out_svc(n, "mesh_new_ms", (double)(wall_ns() - t0) / 1e6);
  free(json);
  char name[32];
  for (size_t i = 0; i < n; i++) { /* bounded: 60 s in all */
    snprintf(name, sizeof name, "s%zu", i);
    while (count_of(m, name) != 10 && wall_ns() - t0 < 60000000000LL)
      usleep(1000);
  }
  out_svc(n, "full_list_ms", (double)(wall_ns() - t0) / 1e6);
  out_svc(n, "rss_kib", (double)(rss_kib() - r0));
  int64_t c0 = cpu_ns(), w0 = wall_ns();
  usleep(500000);
  out_svc(n, "idle_cpu_percent",
          100.0 * (double)(cpu_ns() - c0) / (double)(wall_ns() - w0));
  double lat[64];
  for (int k = 0; k < writes; k++) {
    size_t i = (size_t)k * 7919 % n;
    snprintf(name, sizeof name, "s%zu", i);
    size_t want = 11, before = count_of(m, name);
    usleep((useconds_t)(k * 37 % 100) * 1000); /* spread over the poll */
    int64_t w = wall_ns();
    write_eps(dir, i, want);
    while (count_of(m, name) != want && wall_ns() - w < 5000000000LL)
      usleep(200);
    lat[k] = (double)(wall_ns() - w) / 1e6;
    if (count_of(m, name) != want)
      fprintf(stderr, "scale: s%zu never showed %zu endpoints (had %zu)\n", i,
              want, before);
    w = wall_ns(); /* back to 10 for the next round's baseline */
    write_eps(dir, i, 10);
    while (count_of(m, name) != 10 && wall_ns() - w < 5000000000LL)
      usleep(200);
  }
  qsort(lat, (size_t)writes, sizeof *lat, bench_cmp_d);
  out_svc(n, "write_to_visible_p50_ms", lat[writes / 2]);
  out_svc(n, "write_to_visible_p99_ms", lat[(writes * 99) / 100]);
  mesh_free(m);
  for (size_t i = 0; i < n; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/s%zu.json", dir, i);
    unlink(path);
  }
  rmdir(dir);
}

int main(int argc, char **argv) {
  bool smoke = false;
  int runs = 5;
  const char *sizes_arg = NULL;
  size_t nsvc_only = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--smoke")) {
      smoke = true;
    } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--services") && i + 1 < argc) {
      nsvc_only = strtoul(argv[++i], NULL, 10); /* one services point */
      if (nsvc_only < 1 || nsvc_only > 100000) {
        fprintf(stderr, "scale: --services: expected 1..100000\n");
        return 2;
      }
    } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
      sizes_arg = argv[++i]; /* comma-separated, 10..1,000,000 */
    } else {
      fprintf(stderr, "usage: scale [--smoke] [--runs N] [--sizes N,N,...] [--services N]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 16)
    runs = runs < 1 ? 1 : 16;
  if (nsvc_only) {
    services(nsvc_only, 4);
    return 0;
  }
  size_t sizes[16] = {10, 100, 1000, 10000, 100000};
  size_t nsizes = smoke ? 3 : 5;
  if (sizes_arg) {
    nsizes = 0;
    for (const char *p = sizes_arg; *p && nsizes < 16;) {
      char *end;
      unsigned long v = strtoul(p, &end, 10);
      if (end == p || v < 10 || v > 1000000 || (*end && *end != ',')) {
        fprintf(stderr, "scale: --sizes: expected numbers 10..1000000 "
                        "separated by commas, got \"%s\"\n", sizes_arg);
        return 2;
      }
      sizes[nsizes++] = v;
      p = *end ? end + 1 : end;
    }
  }
  mesh_t *m = ctx();
  for (size_t k = 0; k < nsizes; k++) {
    updates(m, sizes[k], runs);
    picks(m, sizes[k], runs, smoke ? 20000 : 200000);
  }
  mesh_free(m);
  if (!sizes_arg) {
    static const size_t nsvc[] = {1, 10, 100, 1000, 10000};
    for (size_t k = 0; k < (smoke ? 3u : 5u); k++)
      services(nsvc[k], smoke ? 4 : 20);
  }
  return 0;
}
