/* SPDX-License-Identifier: Apache-2.0 */
/* Request/response load generator.
 *   loadgen --mode tcp|tls|mesh --target HOST:PORT|SERVICE [--conns 16]
 *           [--size 1024] [--rate 1000 | --rate 0 (closed loop)]
 *           [--duration 5] [--warmup 1] [--ca --cert --key] [--config F]
 *           [--label NAME] [--metrics-out FILE]
 *           [--server-pids P,P] [--proxy-pids P,P]
 * Every connection thread connects and completes one request first (TLS
 * handshakes, the pool filled), then all start together.  Constant rate:
 * each connection sends on a fixed schedule and latency is measured from
 * the scheduled send time, so a stall is not hidden (no coordinated
 * omission).  Only the window after the warm-up counts: latencies of the
 * requests scheduled in it, and the CPU used in it by this process
 * (getrusage) and by the server and proxy processes (/proc/PID/stat).
 * Prints one CSV line:
 *   label,mode,conns,rate,achieved_rps,p50_us,p90_us,p99_us,p999_us,errors,
 *   cpu_s,requests,calls,reused,calls_window,reused_window,server_cpu_s,
 *   proxy_cpu_s
 * (requests: in the window; calls/reused: mesh mode, calls made in all and
 * in the window and how many of them got a pooled connection;
 * --metrics-out writes the context's Prometheus text at the end, for the
 * handshake and span export counters). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#include <mesh/mesh.h>

struct worker {
  bt_ctx_t *ctx;
  size_t size;
  double interval_ns; /* 0: closed loop */
  int64_t start_ns, warm_ns, end_ns;
  pthread_barrier_t *ready, *go;
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
  if (bt_connect(w->ctx, &k) != 0 || bt_request(k, req, resp, w->size) != 0)
    w->errors++;
  pthread_barrier_wait(w->ready);
  pthread_barrier_wait(w->go); /* main has set the schedule */
  if (!k)
    goto out;
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
    if (bt_request(k, req, resp, w->size) != 0) {
      w->errors++;
      bt_close(k);
      k = NULL;
      if (bt_connect(w->ctx, &k) != 0)
        break;
      continue;
    }
    int64_t done = bt_now_ns();
    if (sched >= w->warm_ns && w->nlat < w->cap) {
      w->lat[w->nlat++] = done - sched;
      w->requests++;
    }
  }
out:
  bt_close(k);
  free(req);
  free(resp);
  return NULL;
}

/* CPU seconds (user + system) of the processes in a comma-separated pid
 * list, from /proc/PID/stat (clock ticks). */
static double procs_cpu(const char *pids) {
  double total = 0;
  long hz = sysconf(_SC_CLK_TCK);
  for (const char *p = pids; p && *p;) {
    char path[64], buf[1024];
    long pid = strtol(p, NULL, 10);
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
      fclose(f);
    buf[n] = '\0';
    /* fields after the command name (which may hold spaces): state is
     * field 3, utime 14, stime 15 */
    char *q = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                    &ut, &st) == 2)
      total += (double)(ut + st) / (double)hz;
    p = strchr(p, ',');
    if (p)
      p++;
  }
  return total;
}

static double rusage_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_until(int64_t t) {
  struct timespec ts = {t / 1000000000, t % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
  }
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
  const char *label = "run", *metrics_out = NULL, *server_pids = NULL,
             *proxy_pids = NULL;
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
    else if (!strcmp(k, "--server-pids")) server_pids = v;
    else if (!strcmp(k, "--proxy-pids")) proxy_pids = v;
    else { fprintf(stderr, "unknown option %s\n", k); return 2; }
  }
  if (conns < 1 || conns > 1024 || duration <= 0 || duration > 600) {
    fprintf(stderr, "bad --conns or --duration\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* Sends are timed with clock_nanosleep: without this the kernel may
   * wake a thread up to 50 us late (the default timer slack), and that
   * delay would be counted in every request's latency. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  bt_ctx_t *ctx;
  if (bt_ctx_new(&o, &ctx) != 0)
    return 1;
  struct worker *w = calloc((size_t)conns, sizeof *w);
  pthread_t *th = calloc((size_t)conns, sizeof *th);
  pthread_barrier_t ready, go;
  pthread_barrier_init(&ready, NULL, (unsigned)conns + 1);
  pthread_barrier_init(&go, NULL, (unsigned)conns + 1);
  size_t cap = rate > 0 ? (size_t)(rate * duration / conns) + 16
                        : 4000000 / (size_t)conns;
  for (int i = 0; i < conns; i++) {
    w[i].ctx = ctx;
    w[i].size = size;
    w[i].ready = &ready;
    w[i].go = &go;
    w[i].interval_ns = rate > 0 ? 1e9 * conns / rate : 0;
    w[i].cap = cap;
    w[i].lat = malloc(cap * sizeof(int64_t));
    pthread_create(&th[i], NULL, run, &w[i]);
  }
  pthread_barrier_wait(&ready); /* every connection is up */
  int64_t start = bt_now_ns() + 10000000;
  for (int i = 0; i < conns; i++) {
    /* stagger connections across one interval */
    w[i].start_ns =
        start + (rate > 0 ? (int64_t)(w[i].interval_ns * i / conns) : 0);
    w[i].warm_ns = start + (int64_t)(warmup * 1e9);
    w[i].end_ns = start + (int64_t)((warmup + duration) * 1e9);
  }
  pthread_barrier_wait(&go);
  long calls0 = 0, reused0 = 0, calls1 = 0, reused1 = 0;
  sleep_until(w[0].warm_ns);
  double cpu0 = rusage_s(), srv0 = procs_cpu(server_pids),
         prx0 = procs_cpu(proxy_pids);
  bt_calls(ctx, &calls0, &reused0);
  sleep_until(w[0].end_ns);
  double cpu1 = rusage_s(), srv1 = procs_cpu(server_pids),
         prx1 = procs_cpu(proxy_pids);
  bt_calls(ctx, &calls1, &reused1);
  size_t total = 0;
  long errors = 0, reqs = 0;
  for (int i = 0; i < conns; i++) {
    pthread_join(th[i], NULL);
    total += w[i].nlat;
    errors += w[i].errors;
    reqs += w[i].requests;
  }
  pthread_barrier_destroy(&ready);
  pthread_barrier_destroy(&go);
  int64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < conns; i++) {
    memcpy(all + k, w[i].lat, w[i].nlat * sizeof *all);
    k += w[i].nlat;
    free(w[i].lat);
  }
  qsort(all, total, sizeof *all, cmp64);
  long calls = 0, reused = 0;
  bt_calls(ctx, &calls, &reused);
  printf("%s,%s,%d,%.0f,%.0f,%.1f,%.1f,%.1f,%.1f,%ld,%.4f,%ld,%ld,%ld,%ld,%ld,"
         "%.2f,%.2f\n",
         label, o.mode, conns, rate, (double)total / duration,
         pct(all, total, 0.50), pct(all, total, 0.90), pct(all, total, 0.99),
         pct(all, total, 0.999), errors, cpu1 - cpu0, reqs, calls, reused,
         calls1 - calls0, reused1 - reused0, srv1 - srv0, prx1 - prx0);
  if (metrics_out && bt_mesh(ctx))
    dump_metrics(bt_mesh(ctx), metrics_out);
  free(all);
  free(w);
  free(th);
  bt_ctx_free(ctx);
  return errors > 0 && total == 0 ? 1 : 0;
}
