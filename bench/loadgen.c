/* Request/response load generator.
 *   loadgen --mode tcp|tls|mesh --target HOST:PORT|SERVICE [--conns 16]
 *           [--size 1024] [--rate 1000 | --rate 0 (closed loop)]
 *           [--duration 5] [--warmup 1] [--ca --cert --key] [--config F]
 *           [--label NAME] [--metrics-out FILE]
 * Constant rate: each connection sends on a fixed schedule and latency is
 * measured from the scheduled send time, so a stall is not hidden
 * (no coordinated omission).  Prints one CSV line:
 *   label,mode,conns,rate,achieved_rps,p50_us,p90_us,p99_us,p999_us,errors,
 *   cpu_s,requests,calls,reused
 * (calls/reused: mesh mode, calls made and how many got a pooled
 * connection; --metrics-out writes the context's Prometheus text at the
 * end, for the handshake and span export counters). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "transport.h"

#include <mesh/mesh.h>

struct worker {
  bt_ctx_t *ctx;
  size_t size;
  double interval_ns; /* 0: closed loop */
  int64_t start_ns, warm_ns, end_ns;
  int64_t *lat;
  size_t nlat, cap;
  long errors;
  long requests;
};

static void *run(void *arg) {
  struct worker *w = arg;
  char *req = malloc(w->size), *resp = malloc(w->size);
  memset(req, 'x', w->size);
  bt_conn_t *k = NULL;
  if (bt_connect(w->ctx, &k) != 0) {
    w->errors++;
    goto out;
  }
  int64_t next = w->start_ns;
  for (long i = 0;; i++) {
    int64_t sched;
    if (w->interval_ns > 0) {
      sched = w->start_ns + (int64_t)(w->interval_ns * (double)i);
      if (sched >= w->end_ns)
        break;
      struct timespec ts = {sched / 1000000000, sched % 1000000000};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    } else {
      sched = bt_now_ns();
      if (sched >= w->end_ns)
        break;
    }
    (void)next;
    if (bt_request(k, req, resp, w->size) != 0) {
      w->errors++;
      bt_close(k);
      k = NULL;
      if (bt_connect(w->ctx, &k) != 0)
        break;
      continue;
    }
    int64_t done = bt_now_ns();
    w->requests++;
    if (sched >= w->warm_ns && w->nlat < w->cap)
      w->lat[w->nlat++] = done - sched;
  }
out:
  bt_close(k);
  free(req);
  free(resp);
  return NULL;
}

static void dump_metrics(mesh_t *m, const char *path) {
  size_t need = 0;
  mesh_metrics_text(m, NULL, 0, &need);
  char *buf = malloc(need ? need : 1);
  FILE *f = fopen(path, "w");
  if (buf && f && mesh_metrics_text(m, buf, need, NULL) >= 0)
    fputs(buf, f);
  if (f)
    fclose(f);
  free(buf);
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double pct(const int64_t *v, size_t n, double p) {
  if (n == 0)
    return 0;
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return (double)v[i] / 1000.0;
}

int main(int argc, char **argv) {
  bt_opts_t o = {.mode = "tcp", .target = "127.0.0.1:7000"};
  int conns = 16;
  size_t size = 1024;
  double rate = 1000, duration = 5, warmup = 1;
  const char *label = "run", *metrics_out = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--mode")) o.mode = v;
    else if (!strcmp(k, "--target")) o.target = v;
    else if (!strcmp(k, "--conns")) conns = atoi(v);
    else if (!strcmp(k, "--size")) size = (size_t)atol(v);
    else if (!strcmp(k, "--rate")) rate = atof(v);
    else if (!strcmp(k, "--duration")) duration = atof(v);
    else if (!strcmp(k, "--warmup")) warmup = atof(v);
    else if (!strcmp(k, "--ca")) o.ca = v;
    else if (!strcmp(k, "--cert")) o.cert = v;
    else if (!strcmp(k, "--key")) o.key = v;
    else if (!strcmp(k, "--config")) o.config = v;
    else if (!strcmp(k, "--label")) label = v;
    else if (!strcmp(k, "--metrics-out")) metrics_out = v;
    else { fprintf(stderr, "unknown option %s\n", k); return 2; }
  }
  if (conns < 1 || conns > 1024 || duration <= 0 || duration > 600) {
    fprintf(stderr, "bad --conns or --duration\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  bt_ctx_t *ctx;
  if (bt_ctx_new(&o, &ctx) != 0)
    return 1;
  struct worker *w = calloc((size_t)conns, sizeof *w);
  pthread_t *th = calloc((size_t)conns, sizeof *th);
  int64_t start = bt_now_ns() + 200000000; /* connect first */
  size_t cap = rate > 0 ? (size_t)(rate * (duration + warmup) / conns) + 16
                        : 4000000 / (size_t)conns;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  for (int i = 0; i < conns; i++) {
    w[i].ctx = ctx;
    w[i].size = size;
    w[i].interval_ns = rate > 0 ? 1e9 * conns / rate : 0;
    /* stagger connections across one interval */
    w[i].start_ns = start + (rate > 0 ? (int64_t)(w[i].interval_ns * i / conns) : 0);
    w[i].warm_ns = start + (int64_t)(warmup * 1e9);
    w[i].end_ns = start + (int64_t)((warmup + duration) * 1e9);
    w[i].cap = cap;
    w[i].lat = malloc(cap * sizeof(int64_t));
    pthread_create(&th[i], NULL, run, &w[i]);
  }
  size_t total = 0;
  long errors = 0, reqs = 0;
  for (int i = 0; i < conns; i++) {
    pthread_join(th[i], NULL);
    total += w[i].nlat;
    errors += w[i].errors;
    reqs += w[i].requests;
  }
  getrusage(RUSAGE_SELF, &ru1);
  int64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < conns; i++) {
    memcpy(all + k, w[i].lat, w[i].nlat * sizeof *all);
    k += w[i].nlat;
    free(w[i].lat);
  }
  qsort(all, total, sizeof *all, cmp64);
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  long calls = 0, reused = 0;
  bt_calls(ctx, &calls, &reused);
  printf("%s,%s,%d,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%ld,%.3f,%ld,%ld,%ld\n",
         label, o.mode, conns, rate, (double)total / duration,
         pct(all, total, 0.50), pct(all, total, 0.90), pct(all, total, 0.99),
         pct(all, total, 0.999), errors, cpu, reqs, calls, reused);
  if (metrics_out && bt_mesh(ctx))
    dump_metrics(bt_mesh(ctx), metrics_out);
  free(all);
  free(w);
  free(th);
  bt_ctx_free(ctx);
  return errors > 0 && total == 0 ? 1 : 0;
}
