/* SPDX-License-Identifier: Apache-2.0 */
/* Scaling curves (issue 19), the services side:
 *   --new N[,N...]   mesh_new and mesh_free time and RSS added for N static
 *                    services of 10 endpoints each (wall and process CPU,
 *                    median of --runs); default worker, tracing, metrics.
 *   --etcd HOST:PORT --etcd-services N[,N...] [--eps K] [--writes W]
 *                    N services of K endpoints each through the etcd source
 *                    against a real etcd (bench/run starts one on
 *                    loopback): keys written first, then mesh_new; the full
 *                    list (mesh_new until every service has its K
 *                    endpoints: the etcd cold start), RSS added, idle CPU,
 *                    and a registry write (one put) until the new endpoint
 *                    is in the service's snapshot, p50/p99 over W writes.
 * Each size runs in a child process (RSS of that size alone).
 * Output: CSV "curve,x,metric,value" on stdout, like bench/scale. */
#include "bench_util.h"
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mesh/mesh.h>

#include "etcd_kv.h"

static void out(const char *curve, size_t n, const char *metric, double v) {
  printf("%s,%zu,%s,%.6g\n", curve, n, metric, v);
  fflush(stdout);
}

/* Growable text. */
typedef struct text {
  char *p;
  size_t len, cap;
} text_t;

static void put(text_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void put(text_t *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0,
                      fmt, ap);
    va_end(ap);
    if (k < 0)
      exit(1);
    if (t->p && t->len + (size_t)k < t->cap) {
      t->len += (size_t)k;
      return;
    }
    size_t cap = (t->cap ? t->cap : 4096) * 2 + (size_t)k;
    char *np = realloc(t->p, cap);
    if (!np)
      exit(1);
    t->p = np;
    t->cap = cap;
  }
}

/* n static services of 10 endpoints 10.a.b.c:8080 each. */
static char *static_config(size_t n) {
  text_t t = {0};
  put(&t, "{\"log\": {\"level\": \"warn\"}, \"name\": \"scale\", "
          "\"services\": {");
  for (size_t i = 0; i < n; i++) {
    put(&t, "%s\"s%zu\": {\"discovery\": {\"type\": \"static\", "
            "\"endpoints\": [", i ? ", " : "", i);
    for (size_t j = 0; j < 10; j++)
      put(&t, "%s{\"address\": \"10.%zu.%zu.%zu\", \"port\": 8080}",
          j ? ", " : "", i / 250 % 250, i % 250, j + 1);
    put(&t, "]}}");
  }
  put(&t, "}}");
  return t.p;
}

/* Run a size in a child process: RSS added is then that size's alone, not
 * memory a freed context left in malloc's free lists.  @return true in
 * the child. */
static bool in_child(const char *what, size_t n) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("scale_svc: fork");
    exit(1);
  }
  if (pid == 0)
    return true;
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    fprintf(stderr, "scale_svc: %s %zu failed\n", what, n);
    exit(1);
  }
  return false;
}

static void new_curve(size_t n, int runs) {
  if (!in_child("--new", n))
    return;
  char *json = static_config(n);
  double tn[16], tf[16], cn[16], cf[16], rss = 0, heap = 0;
  for (int r = 0; r < runs; r++) {
    long r0 = rss_kib();
    size_t h0 = mallinfo2().uordblks;
    int64_t c0 = cpu_ns(), t0 = wall_ns();
    mesh_t *m = NULL;
    mesh_status_t st;
    if (mesh_new(json, &m, &st) != MESH_OK) {
      fprintf(stderr, "scale_svc: mesh_new: %s\n", st.message);
      exit(1);
    }
    tn[r] = (double)(wall_ns() - t0) / 1e6;
    cn[r] = (double)(cpu_ns() - c0) / 1e6;
    if (r == 0) {
      rss = (double)(rss_kib() - r0);
      heap = (double)(mallinfo2().uordblks - h0);
    }
    c0 = cpu_ns();
    t0 = wall_ns();
    mesh_free(m);
    tf[r] = (double)(wall_ns() - t0) / 1e6;
    cf[r] = (double)(cpu_ns() - c0) / 1e6;
  }
  out("new", n, "mesh_new_ms", median(tn, runs));
  out("new", n, "mesh_new_cpu_ms", median(cn, runs));
  out("new", n, "mesh_free_ms", median(tf, runs));
  out("new", n, "mesh_free_cpu_ms", median(cf, runs));
  out("new", n, "rss_kib", rss);
  out("new", n, "rss_kib_per_service", rss / (double)n);
  out("new", n, "heap_bytes_per_service", heap / (double)n);
  free(json);
  exit(0);
}

static size_t count_of(mesh_t *m, const char *svc) {
  mesh_endpoints_t *e = NULL;
  if (mesh_endpoints_get(m, svc, &e, NULL) != MESH_OK || !e)
    return 0;
  size_t n = mesh_endpoints_count(e);
  mesh_endpoints_free(e);
  return n;
}

/* Endpoint j of service i: 10.a.b.c:8080, distinct for i < 62,500 and
 * j < 255 (k = 256 i + j spread over the last three bytes). */
static void ep_addr(char *buf, size_t size, size_t i, size_t j) {
  size_t k = i * 256 + j;
  snprintf(buf, size, "10.%zu.%zu.%zu:8080", k / 65536 % 250,
           k / 256 % 256, k % 256 + 1);
}

/* Keys of n services x k endpoints under "<tag>s<i>/". */
static void etcd_load(const char *etcd, const char *tag, size_t n, size_t k) {
  size_t total = n * k;
  char **keys = calloc(total, sizeof *keys), **vals = calloc(total, sizeof *vals);
  if (!keys || !vals)
    exit(1);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < k; j++) {
      char addr[32], key[96], val[128];
      ep_addr(addr, sizeof addr, i, j);
      snprintf(key, sizeof key, "%ss%zu/%s", tag, i, addr);
      etcd_naming_value(val, sizeof val, addr);
      keys[i * k + j] = strdup(key);
      vals[i * k + j] = strdup(val);
    }
  if (etcd_put_many(etcd, keys, vals, total) != 0) {
    fprintf(stderr, "scale_svc: writing %zu keys to etcd %s failed\n", total,
            etcd);
    exit(1);
  }
  for (size_t i = 0; i < total; i++) {
    free(keys[i]);
    free(vals[i]);
  }
  free(keys);
  free(vals);
}

static long etcd_timeout_ms = 5000; /* the source's default */

static char *etcd_config(const char *etcd, const char *tag, size_t n) {
  text_t t = {0};
  put(&t, "{\"log\": {\"level\": \"warn\"}, \"name\": \"scale\", "
          "\"services\": {");
  for (size_t i = 0; i < n; i++)
    put(&t, "%s\"s%zu\": {\"discovery\": {\"type\": \"etcd\", "
            "\"endpoints\": [\"http://%s\"], \"prefix\": \"%ss%zu\", "
            "\"timeout_ms\": %ld}}",
        i ? ", " : "", i, etcd, tag, i, etcd_timeout_ms);
  put(&t, "}}");
  return t.p;
}

/* Time until service svc has want endpoints (ms), or -1 after 10 s. */
static double wait_count(mesh_t *m, const char *svc, size_t want) {
  int64_t t0 = wall_ns();
  while (count_of(m, svc) != want) {
    if (wall_ns() - t0 > 10000000000LL)
      return -1;
    usleep(100);
  }
  return (double)(wall_ns() - t0) / 1e6;
}

/* The etcd write-to-visible measurement: W puts of an extra endpoint to
 * services spread over the set, each deleted again after. */
static void etcd_writes(mesh_t *m, const char *etcd, const char *tag,
                        const char *curve, size_t n, size_t k, int writes) {
  double lat[256];
  int got = 0;
  for (int w = 0; w < writes && w < 256; w++) {
    size_t i = (size_t)w * 7919 % n;
    char svc[32], addr[32], key[96], val[128];
    snprintf(svc, sizeof svc, "s%zu", i);
    ep_addr(addr, sizeof addr, i, k);
    snprintf(key, sizeof key, "%ss%zu/%s", tag, i, addr);
    etcd_naming_value(val, sizeof val, addr);
    int64_t t0 = wall_ns();
    if (etcd_put(etcd, key, val) != 0)
      exit(1);
    if (wait_count(m, svc, k + 1) < 0) {
      fprintf(stderr, "scale_svc: %s never showed its new endpoint\n", svc);
      exit(1);
    }
    lat[got++] = (double)(wall_ns() - t0) / 1e6;
    if (etcd_del(etcd, key) != 0 || wait_count(m, svc, k) < 0)
      exit(1);
  }
  qsort(lat, (size_t)got, sizeof *lat, bench_cmp_d);
  out(curve, n, "write_to_visible_p50_ms", lat[got / 2]);
  out(curve, n, "write_to_visible_p99_ms", lat[(got * 99) / 100]);
}

static void etcd_curve(const char *etcd, size_t n, size_t k, int writes) {
  if (!in_child("--etcd-services", n))
    return;
  char tag[48], curve[32];
  snprintf(tag, sizeof tag, "b%ld-%zux%zu-", (long)getpid(), n, k);
  snprintf(curve, sizeof curve, k == 10 ? "etcd" : "etcd_eps%zu", k);
  etcd_load(etcd, tag, n, k);
  char *json = etcd_config(etcd, tag, n);
  long r0 = rss_kib();
  int64_t t0 = wall_ns();
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK) {
    fprintf(stderr, "scale_svc: mesh_new: %s\n", st.message);
    exit(1);
  }
  out(curve, n, "mesh_new_ms", (double)(wall_ns() - t0) / 1e6);
  free(json);
  for (size_t i = 0; i < n; i++) {
    char svc[32];
    snprintf(svc, sizeof svc, "s%zu", i);
    while (count_of(m, svc) != k) {
      if (wall_ns() - t0 > 120000000000LL) {
        fprintf(stderr, "scale_svc: %s: no full list in 120 s\n", svc);
        exit(1);
      }
      usleep(1000);
    }
  }
  out(curve, n, "full_list_ms", (double)(wall_ns() - t0) / 1e6);
  out(curve, n, "rss_kib", (double)(rss_kib() - r0));
  out(curve, n, "endpoints", (double)(n * k));
  int64_t c0 = cpu_ns(), w0 = wall_ns();
  usleep(500000);
  out(curve, n, "idle_cpu_percent",
      100.0 * (double)(cpu_ns() - c0) / (double)(wall_ns() - w0));
  etcd_writes(m, etcd, tag, curve, n, k, writes);
  mesh_free(m);
  exit(0);
}

/* "1,10,100" -> calls fn on each; false on a bad list. */
static bool each_size(const char *list, size_t max, size_t *v, size_t *nv) {
  *nv = 0;
  for (const char *p = list; p && *p && *nv < 16;) {
    char *end;
    unsigned long x = strtoul(p, &end, 10);
    if (end == p || x < 1 || x > max || (*end && *end != ','))
      return false;
    v[(*nv)++] = x;
    p = *end ? end + 1 : end;
  }
  return true;
}

int main(int argc, char **argv) {
  int runs = 3, writes = 50;
  size_t eps = 10;
  const char *news = NULL, *etcd = NULL, *etcd_sizes = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--new") && i + 1 < argc) {
      news = argv[++i];
    } else if (!strcmp(argv[i], "--etcd") && i + 1 < argc) {
      etcd = argv[++i];
    } else if (!strcmp(argv[i], "--etcd-services") && i + 1 < argc) {
      etcd_sizes = argv[++i];
    } else if (!strcmp(argv[i], "--eps") && i + 1 < argc) {
      eps = strtoul(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--etcd-timeout-ms") && i + 1 < argc) {
      etcd_timeout_ms = atol(argv[++i]); /* the source's timeout_ms */
    } else if (!strcmp(argv[i], "--writes") && i + 1 < argc) {
      writes = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: scale_svc [--runs N] [--new N,N,...] [--etcd "
                      "HOST:PORT --etcd-services N,N,... [--eps K] "
                      "[--writes W] [--etcd-timeout-ms T]]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 16)
    runs = runs < 1 ? 1 : 16;
  if (eps < 1 || eps > 250 || writes < 1 || writes > 256) {
    fprintf(stderr, "scale_svc: --eps 1..250, --writes 1..256\n");
    return 2;
  }
  mesh_config_set_max_bytes((size_t)64 << 20); /* 10k services: ~13 MB */
  size_t v[16], nv;
  if (!each_size(news, 100000, v, &nv)) {
    fprintf(stderr, "scale_svc: --new: expected 1..100000, got \"%s\"\n",
            news);
    return 2;
  }
  for (size_t k = 0; k < nv; k++)
    new_curve(v[k], runs);
  if (etcd_sizes && (!etcd || !each_size(etcd_sizes, 62500, v, &nv))) {
    fprintf(stderr, "scale_svc: --etcd-services needs --etcd and sizes "
                    "1..62500\n");
    return 2;
  }
  for (size_t k = 0; etcd_sizes && k < nv; k++)
    etcd_curve(etcd, v[k], eps, writes);
  return 0;
}
