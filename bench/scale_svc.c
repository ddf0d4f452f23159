/* SPDX-License-Identifier: Apache-2.0 */
/* Scaling curves (issue 19), the services side:
 *   --new N[,N...]   mesh_new and mesh_free time and RSS added for N static
 *                    services of 10 endpoints each (wall, median of --runs);
 *                    the default worker, tracing and metrics on defaults.
 * Output: CSV "curve,x,metric,value" on stdout, like bench/scale. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mesh/mesh.h>

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Process CPU: mesh_new's own thread and what the worker did meanwhile
 * (less sensitive than wall time to the other jobs on a shared box). */
static int64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long rss_kib(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &res) != 2)
    res = 0;
  if (f)
    fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

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

/* One size in a child process: RSS added is then the first mesh_new's,
 * not memory a freed context left in malloc's free lists. */
static void new_curve(size_t n, int runs) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("scale_svc: fork");
    exit(1);
  }
  if (pid > 0) {
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      fprintf(stderr, "scale_svc: --new %zu failed\n", n);
      exit(1);
    }
    return;
  }
  char *json = static_config(n);
  double tn[16], tf[16], cn[16], rss = 0;
  for (int r = 0; r < runs; r++) {
    long r0 = rss_kib();
    int64_t c0 = cpu_ns(), t0 = wall_ns();
    mesh_t *m = NULL;
    mesh_status_t st;
    if (mesh_new(json, &m, &st) != MESH_OK) {
      fprintf(stderr, "scale_svc: mesh_new: %s\n", st.message);
      exit(1);
    }
    tn[r] = (double)(wall_ns() - t0) / 1e6;
    cn[r] = (double)(cpu_ns() - c0) / 1e6;
    if (r == 0)
      rss = (double)(rss_kib() - r0);
    t0 = wall_ns();
    mesh_free(m);
    tf[r] = (double)(wall_ns() - t0) / 1e6;
  }
  out("new", n, "mesh_new_ms", median(tn, runs));
  out("new", n, "mesh_new_cpu_ms", median(cn, runs));
  out("new", n, "mesh_free_ms", median(tf, runs));
  out("new", n, "rss_kib", rss);
  out("new", n, "rss_kib_per_service", rss / (double)n);
  free(json);
  exit(0);
}

int main(int argc, char **argv) {
  int runs = 3;
  const char *news = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--new") && i + 1 < argc) {
      news = argv[++i];
    } else {
      fprintf(stderr, "usage: scale_svc [--runs N] [--new N,N,...]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 16)
    runs = runs < 1 ? 1 : 16;
  mesh_config_set_max_bytes((size_t)64 << 20); /* 10k services: ~13 MB */
  for (const char *p = news; p && *p;) {
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p || v < 1 || v > 100000 || (*end && *end != ',')) {
      fprintf(stderr, "scale_svc: --new: expected 1..100000, got \"%s\"\n",
              news);
      return 2;
    }
    new_curve(v, runs);
    p = *end ? end + 1 : end;
  }
  return 0;
}
