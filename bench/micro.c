/* SPDX-License-Identifier: Apache-2.0 */
/* Micro benchmarks 2-6 of docs/benchmarks.md: handshakes, picks, memory,
 * discovery, tracing (plus the AES-GCM and call-path costs that explain
 * part 1).  Prints one "name,value" line per figure, each the median of
 * --runs runs; lines starting with '#' are comments.
 *
 *   micro --ca F --server-cert F --server-key F --client-cert F
 *         --client-key F [--runs 5] [--smoke] [--dns HOST:PORT]
 *         [--dns-name NAME] [--otlp URL] [--only SECTION,...]
 *         [--tls 1.2|1.3]
 *
 * Sections: memory, handshakes, picks, maglev, discovery, dns, tracing,
 * call, export, tracecpu, gcm, coldstart, threads, conns (all by default);
 * idle (only the bytes per idle pooled connection of memory).  --tls pins
 * the TLS version of both sides in handshakes, memory and idle (default:
 * the backend's own range, TLS 1.3 where it has it).
 *
 * Linked statically against the library, so it times internal functions
 * (pickers, snapshot builds, spans) directly.  This program replaces
 * malloc and friends to count allocations and live heap bytes (usable
 * size as malloc_usable_size() reports it); memory figures are taken in
 * forked children so each starts from a quiet heap. */
#include "bench_util.h"
#include <dlfcn.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <mesh/mesh.h>

#include "core/core.h"
#include "discovery/discovery.h"
#include "endpoint/endpoint.h"
#include "lb/lb.h"
#include "telemetry/telemetry.h"
#include "resilience/call.h"
#include "etcd_kv.h"

/* ---- counting allocator ---------------------------------------------------- *
 * Not under a sanitizer: ASan, TSan and MSan own malloc, and replacing it
 * here would hand their memory to glibc.  Sanitized builds compile micro
 * (it is part of `make`) but report no allocation or heap figures. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MICRO_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define MICRO_SANITIZED 1
#endif
#endif

#ifdef MICRO_SANITIZED
static _Thread_local long n_allocs = -1;
static bool heap_accounting;
static _Atomic long live_bytes;
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

/* Allocations are counted per thread (cheap: the timed loops run with the
 * wrapper in place); live bytes only when `heap_accounting` is on, which
 * the memory children turn on first thing (a block freed must have been
 * counted when it was allocated). */
static _Thread_local long n_allocs;
static bool heap_accounting;
static _Atomic long live_bytes; /* usable bytes currently allocated */

static void *counted(void *p) {
  if (p) {
    n_allocs++;
    if (heap_accounting)
      atomic_fetch_add_explicit(&live_bytes, (long)malloc_usable_size(p),
                                memory_order_relaxed);
  }
  return p;
}

void *malloc(size_t n) { return counted(__libc_malloc(n)); }
void *calloc(size_t n, size_t m) { return counted(__libc_calloc(n, m)); }
void *memalign(size_t a, size_t n) { return counted(__libc_memalign(a, n)); }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }

int posix_memalign(void **out, size_t a, size_t n) {
  void *p = memalign(a, n);
  if (!p)
    return 12; /* ENOMEM */
  *out = p;
  return 0;
}

void free(void *p) {
  if (p && heap_accounting)
    atomic_fetch_sub_explicit(&live_bytes, (long)malloc_usable_size(p),
                              memory_order_relaxed);
  __libc_free(p);
}

void *realloc(void *p, size_t n) {
  long old = p && heap_accounting ? (long)malloc_usable_size(p) : 0;
  void *q = __libc_realloc(p, n);
  if (!q && n > 0)
    return NULL; /* p untouched */
  n_allocs++;
  if (heap_accounting)
    atomic_fetch_add_explicit(&live_bytes,
                              (q ? (long)malloc_usable_size(q) : 0) - old,
                              memory_order_relaxed);
  return q;
}

#endif /* MICRO_SANITIZED */

/* Allocations made so far by the calling thread. */
static long allocs(void) { return n_allocs; }
static long live(void) { return atomic_load(&live_bytes); }

/* ---- resolver calls, by thread ------------------------------------------------ *
 * Every way the library could resolve a name: c-ares queries (the DNS
 * source) and getaddrinfo without AI_NUMERICHOST (a hostname dialed
 * directly).  Calls on a thread marked as "the caller's" count as
 * resolutions on the call path. */

static _Thread_local bool on_call_path;
static _Atomic long dns_call_path, dns_elsewhere;

static void count_dns(void) {
  atomic_fetch_add(on_call_path ? &dns_call_path : &dns_elsewhere, 1);
}

typedef void (*query_fn)(ares_channel, const char *, int, int, ares_callback,
                         void *);
typedef void (*host_fn)(ares_channel, const char *, int, ares_host_callback,
                        void *);
typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *,
                      struct addrinfo **);
typedef struct hostent *(*ghbn_fn)(const char *);

void ares_query(ares_channel ch, const char *name, int dnsclass, int type,
                ares_callback cb, void *arg) {
  count_dns();
  ((query_fn)dlsym(RTLD_NEXT, "ares_query"))(ch, name, dnsclass, type, cb,
                                             arg);
}

void ares_search(ares_channel ch, const char *name, int dnsclass, int type,
                 ares_callback cb, void *arg) {
  count_dns();
  ((query_fn)dlsym(RTLD_NEXT, "ares_search"))(ch, name, dnsclass, type, cb,
                                              arg);
}

void ares_gethostbyname(ares_channel ch, const char *name, int family,
                        ares_host_callback cb, void *arg) {
  count_dns();
  ((host_fn)dlsym(RTLD_NEXT, "ares_gethostbyname"))(ch, name, family, cb,
                                                    arg);
}

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
  if (node && !(hints && (hints->ai_flags & AI_NUMERICHOST)))
    count_dns();
  return ((gai_fn)dlsym(RTLD_NEXT, "getaddrinfo"))(node, service, hints, res);
}

struct hostent *gethostbyname(const char *name) {
  count_dns();
  return ((ghbn_fn)dlsym(RTLD_NEXT, "gethostbyname"))(name);
}

/* ---- options and output -------------------------------------------------------- */

static struct {
  const char *ca, *srv_cert, *srv_key, *cli_cert, *cli_key;
  const char *dns, *dns_name, *otlp, *only;
  const char *etcd; /* HOST:PORT of a real etcd (cold start through etcd) */
  const char *tls;  /* "1.2" or "1.3": both sides pinned to it; NULL: not */
  int runs;
  bool smoke;
} opt = {.runs = 5, .dns_name = "echo.bench"};

#define SERVER_ID "spiffe://bench.local/ns/bench/sa/server"
#define CLIENT_ID "spiffe://bench.local/ns/bench/sa/client"

static bool want(const char *section) {
  return !opt.only || strstr(opt.only, section) != NULL;
}

static void emit(const char *name, double v) {
  printf("%s,%.6g\n", name, v);
  fflush(stdout);
}

static void note(const char *s) {
  printf("# %s\n", s);
  fflush(stdout);
}

/* Dynamic text buffer for generated configs. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf_t *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0,
                      fmt, ap);
    va_end(ap);
    if (n < 0)
      return;
    if (b->p && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
    char *q = realloc(b->p, cap);
    if (!q)
      abort();
    b->p = q;
    b->cap = cap;
  }
}

static void sb_identity(sbuf_t *b, bool server) {
  sb_add(b, "\"identity\": {\"cert\": \"%s\", \"key\": \"%s\", "
            "\"bundle\": \"%s\", \"reload_interval_ms\": 0}",
         server ? opt.srv_cert : opt.cli_cert,
         server ? opt.srv_key : opt.cli_key, opt.ca);
}

/* The "tls" member for a context: the given keys ("" or NULL: none) and,
 * with --tls, both ends of the version range pinned.  "" when empty.  The
 * result is valid until the next call. */
static const char *tls_obj(const char *keys) {
  static char buf[256];
  bool k = keys && *keys;
  if (!k && !opt.tls)
    return "";
  if (opt.tls)
    snprintf(buf, sizeof buf,
             "\"tls\": {%s%s\"min_version\": \"%s\", \"max_version\": "
             "\"%s\"}",
             k ? keys : "", k ? ", " : "", opt.tls, opt.tls);
  else
    snprintf(buf, sizeof buf, "\"tls\": {%s}", keys);
  return buf;
}

static mesh_t *ctx_new(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK) {
    fprintf(stderr, "micro: mesh_new: %s\n", st.message);
    exit(1);
  }
  return m;
}

/* ---- an in-process mesh server ------------------------------------------------- *
 * Accepts mTLS connections on one thread.  hold = false writes one byte
 * on each (the reply every real connection reads) and closes it
 * (handshake rate); hold = true keeps them open and silent, like an idle
 * upstream (pooled connections). */

typedef struct server {
  mesh_t *m;
  mesh_listener_t *l;
  int port;
  bool hold;
  _Atomic bool stop;
  pthread_t th;
  mesh_conn_t *held[16384]; /* the conns section holds up to 10,001 */
  size_t nheld;
} server_t;

static void *server_main(void *arg) {
  server_t *s = arg;
  while (!atomic_load(&s->stop)) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    if (mesh_accept(s->l, 100, &c, &st) != MESH_OK)
      continue;
    if (s->hold && s->nheld < sizeof s->held / sizeof s->held[0]) {
      s->held[s->nheld++] = c;
      continue;
    }
    if (!s->hold)
      (void)mesh_conn_write(c, "x", 1);
    mesh_conn_close(c);
  }
  return NULL;
}

static server_t *server_start(bool hold) {
  server_t *s = calloc(1, sizeof *s);
  sbuf_t b = {0};
  sb_add(&b, "{\"log\": {\"level\": \"warn\"}, \"name\": \"bench-server\", ");
  sb_identity(&b, true);
  if (opt.tls)
    sb_add(&b, ", %s", tls_obj(NULL));
  sb_add(&b, ", \"inbound\": {\"mode\": \"STRICT\", \"peers\": [\"%s\"]}}",
         CLIENT_ID);
  s->m = ctx_new(b.p);
  free(b.p);
  mesh_status_t st;
  if (mesh_listen(s->m, "127.0.0.1:0", &s->l, &st) != MESH_OK) {
    fprintf(stderr, "micro: mesh_listen: %s\n", st.message);
    exit(1);
  }
  s->port = mesh_listener_port(s->l);
  s->hold = hold;
  pthread_create(&s->th, NULL, server_main, s);
  return s;
}

static void server_stop(server_t *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->th, NULL);
  for (size_t i = 0; i < s->nheld; i++)
    mesh_conn_close(s->held[i]);
  mesh_listener_close(s->l);
  mesh_free(s->m);
  free(s);
}

/* A client context: tracing as given ("" for none), one service "echo"
 * with the given discovery JSON (NULL: no service). */
static mesh_t *client_new(const char *extra, const char *discovery) {
  sbuf_t b = {0};
  sb_add(&b, "{\"log\": {\"level\": \"warn\"}, \"name\": \"bench-client\", ");
  sb_identity(&b, false);
  if (extra && *extra)
    sb_add(&b, ", %s", extra);
  if (discovery)
    sb_add(&b,
           ", \"services\": {\"echo\": {\"peers\": [\"%s\"], "
           "\"discovery\": %s, \"lb\": {\"policy\": \"least_request\"}, "
           "\"pool\": {\"max_idle\": 1024}}}",
           SERVER_ID, discovery);
  sb_add(&b, "}");
  mesh_t *m = ctx_new(b.p);
  free(b.p);
  return m;
}

static char *static_discovery(int port) {
  sbuf_t b = {0};
  sb_add(&b, "{\"type\": \"static\", \"endpoints\": [{\"address\": "
             "\"127.0.0.1\", \"port\": %d}]}", port);
  return b.p;
}

/* ---- 2. handshakes ------------------------------------------------------------- */

/* Dial the server over and over for dur seconds.  Each connection reads
 * the server's one byte before it is closed, as every real one reads a
 * reply: before that byte come (TLS 1.3) the session tickets the server
 * sent after the handshake.  Without a read a TLS 1.3 client closes
 * before its ticket has arrived (the close drains only what is already
 * there, never blocking), and the next "resumed" dial is a full
 * handshake.  The byte is read, not the server's close_notify after it:
 * a connection that ended on the peer's close_notify is closed without
 * one of ours, and OpenSSL then marks its session not resumable
 * (SSL_free -> ssl_clear_bad_session), which is a library matter, not
 * this benchmark's (docs/benchmarks.md section 2).  Returns
 * handshakes per wall second; *per_cpu gets handshakes per CPU second of
 * the whole process (client and server sides: what one core does per
 * second); adds the dials and those that resumed to *n and *nres. */
static double handshakes(mesh_t *cli, int port, double dur, double *per_cpu,
                         long *dials, long *resumed, char *what, size_t wlen) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_add_peer(o, SERVER_ID);
  long n = 0, nres = 0;
  int64_t t0 = wall_ns(), c0 = cpu_ns(), end = t0 + (int64_t)(dur * 1e9);
  while (wall_ns() < end && n < 1000000) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    if (mesh_dial(cli, target, o, &c, &st) != MESH_OK) {
      fprintf(stderr, "micro: dial: %s\n", st.message);
      break;
    }
    nres += mesh_conn_resumed(c);
    n++;
    snprintf(what, wlen, "%s %s", mesh_conn_tls_version(c),
             mesh_conn_cipher(c));
    char b;
    mesh_conn_set_timeouts(c, 2000, 2000);
    (void)mesh_conn_read(c, &b, 1);
    mesh_conn_close(c);
  }
  int64_t t1 = wall_ns(), c1 = cpu_ns();
  mesh_dial_opts_free(o);
  *per_cpu = c1 > c0 ? (double)n * 1e9 / (double)(c1 - c0) : 0;
  *dials += n;
  *resumed += nres;
  return (double)n * 1e9 / (double)(t1 - t0);
}

static void bench_handshakes(void) {
  server_t *s = server_start(false);
  mesh_t *full = client_new(tls_obj("\"session_cache_size\": 0"), NULL);
  mesh_t *res = client_new(tls_obj(NULL), NULL);
  double dur = opt.smoke ? 0.2 : 1.5;
  double f[16], fc[16], r[16], rc[16];
  long nf = 0, nfres = 0, nr = 0, nrres = 0;
  char wf[128] = "", wr[128] = "", line[300];
  int runs = opt.runs > 16 ? 16 : opt.runs;
  for (int i = 0; i < runs; i++) {
    f[i] = handshakes(full, s->port, dur, &fc[i], &nf, &nfres, wf, sizeof wf);
    r[i] = handshakes(res, s->port, dur, &rc[i], &nr, &nrres, wr, sizeof wr);
  }
  snprintf(line, sizeof line, "handshakes: full %s, resumed %s", wf, wr);
  note(line);
  emit("handshakes_full_per_s", median(f, runs));
  emit("handshakes_full_per_cpu_s", median(fc, runs));
  emit("handshakes_resumed_per_s", median(r, runs));
  emit("handshakes_resumed_per_cpu_s", median(rc, runs));
  /* over all runs: the share of "resumed" dials that resumed (the first
   * dial of the first run cannot), and of full ones (must be 0) */
  emit("handshakes_resumed_share", nr ? (double)nrres / (double)nr : 0);
  emit("handshakes_full_share_resumed", nf ? (double)nfres / (double)nf : 0);
  mesh_free(full);
  mesh_free(res);
  server_stop(s);
}

/* ---- 3. picks -------------------------------------------------------------------- */

static const char *const policies[] = {"round_robin", "random",
                                       "least_request", "peak_ewma",
                                       "ring_hash", "maglev"};
#define NPOL 6

/* One service per policy, in an external-loop context (no worker). */
static mesh_t *pick_ctx(void) {
  sbuf_t b = {0};
  sb_add(&b, "{\"log\": {\"level\": \"warn\"}, \"name\": \"picks\", \"worker\": {\"mode\": \"external\"}, "
             "\"services\": {");
  for (int i = 0; i < NPOL; i++)
    sb_add(&b,
           "%s\"%s\": {\"discovery\": {\"type\": \"static\", \"endpoints\": "
           "[{\"address\": \"127.0.1.1\", \"port\": 80}]}, "
           "\"lb\": {\"policy\": \"%s\"}}",
           i ? ", " : "", policies[i], policies[i]);
  sb_add(&b, "}}");
  mesh_t *m = ctx_new(b.p);
  free(b.p);
  return m;
}

/* n endpoints 10.a.b.c:port as a source would report them. */
typedef struct epset {
  mesh__ep_t *eps;
  char (*addr)[20];
  size_t n;
} epset_t;

static epset_t epset(size_t n, uint16_t port) {
  epset_t e = {calloc(n, sizeof *e.eps), calloc(n, sizeof *e.addr), n};
  for (size_t i = 0; i < n; i++) {
    snprintf(e.addr[i], sizeof e.addr[i], "10.%zu.%zu.%zu", i / 62500 % 250,
             i / 250 % 250, i % 250 + 1);
    e.eps[i] = (mesh__ep_t){.address = e.addr[i], .port = port, .weight = 1,
                            .health = MESH__HEALTH_HEALTHY};
  }
  return e;
}

static void epset_free(epset_t *e) {
  free(e->eps);
  free(e->addr);
}

static mesh__snapshot_t *snap_for(mesh__service_t *svc, size_t n) {
  epset_t e = epset(n, 8080);
  mesh__snapshot_t *s = NULL;
  if (mesh__snap_build(NULL, e.eps, n, &s) != MESH_OK ||
      mesh__lb_prepare(svc, s) != MESH_OK) {
    fprintf(stderr, "micro: snapshot of %zu failed\n", n);
    exit(1);
  }
  epset_free(&e);
  return s;
}

/* Cache-line aligned: the two threads' jobs sit side by side and each
 * writes its own on every pick; sharing a line would measure the bench. */
typedef struct pick_job {
  _Alignas(64) mesh__service_t *svc;
  mesh__snapshot_t *snap;
  long iters;
  bool hash, clock; /* hash key per pick; clock: as the call layer does */
  pthread_barrier_t *bar;
  int64_t ns;
  long fails;
  uintptr_t sink;
} pick_job_t;

static void *pick_main(void *arg) {
  pick_job_t *j = arg;
  char keys[256][12];
  for (int i = 0; i < 256; i++)
    snprintf(keys[i], sizeof keys[i], "k%06d", i * 7919 % 1000000);
  mesh__lb_rand(); /* lazy per-thread seeding stays out of the window */
  int64_t fixed = mesh__now_ms();
  if (j->bar)
    pthread_barrier_wait(j->bar);
  int64_t t0 = thread_ns();
  for (long i = 0; i < j->iters; i++) {
    mesh__lb_ctx_t ctx = {.now_ms = j->clock ? 0 : fixed};
    if (j->hash) {
      ctx.hash_key = keys[i & 255];
      ctx.hash_key_len = 7;
    }
    mesh__host_t *h = NULL;
    if (mesh__lb_pick(j->svc, j->snap, &ctx, &h) != MESH_OK)
      j->fails++;
    j->sink ^= (uintptr_t)h;
  }
  j->ns = thread_ns() - t0;
  return NULL;
}

/* ns per pick on each of `threads` threads picking at once. */
static double pick_ns(mesh__service_t *svc, mesh__snapshot_t *s, bool hash,
                      bool clock, int threads, long iters, long *nalloc) {
  pick_job_t j[2];
  pthread_t th[2];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)threads);
  for (int t = 0; t < threads; t++)
    j[t] = (pick_job_t){svc, s, iters, hash, clock,
                        threads > 1 ? &bar : NULL, 0, 0, 0};
  long a0 = allocs();
  if (threads == 1) {
    pick_main(&j[0]);
  } else {
    for (int t = 0; t < threads; t++)
      pthread_create(&th[t], NULL, pick_main, &j[t]);
    for (int t = 0; t < threads; t++)
      pthread_join(th[t], NULL);
  }
  /* thread creation allocates its own bookkeeping: count picks only when
   * single-threaded (the two-thread runs reuse the same code path). */
  if (threads == 1)
    *nalloc += allocs() - a0;
  pthread_barrier_destroy(&bar);
  double ns = 0;
  for (int t = 0; t < threads; t++) {
    if (j[t].fails)
      fprintf(stderr, "micro: %ld failed picks\n", j[t].fails);
    ns += (double)j[t].ns / (double)iters;
  }
  return ns / threads;
}

static void bench_picks(void) {
  mesh_t *m = pick_ctx();
  static const size_t sizes[] = {10, 100, 1000, 10000};
  long iters = opt.smoke ? 20000 : 400000;
  for (int p = 0; p < NPOL; p++) {
    mesh__service_t *svc = mesh__service_find(m, policies[p]);
    bool hash = p >= 4;
    long nalloc = 0;
    for (size_t k = 0; k < 4; k++) {
      mesh__snapshot_t *s = snap_for(svc, sizes[k]);
      for (int threads = 1; threads <= 2; threads++) {
        double v[16], w[16];
        int runs = opt.runs > 16 ? 16 : opt.runs;
        for (int r = 0; r < runs; r++) {
          v[r] = pick_ns(svc, s, hash, true, threads, iters, &nalloc);
          w[r] = pick_ns(svc, s, hash, false, threads, iters, &nalloc);
        }
        char name[96];
        snprintf(name, sizeof name, "pick_ns_%s_%zu_%d", policies[p],
                 sizes[k], threads);
        emit(name, median(v, runs));
        snprintf(name, sizeof name, "pick_noclock_ns_%s_%zu_%d", policies[p],
                 sizes[k], threads);
        emit(name, median(w, runs));
      }
      mesh__snap_release(s);
    }
    char name[64];
    snprintf(name, sizeof name, "pick_allocs_%s", policies[p]);
    emit(name, (double)nalloc);
  }
  /* least request as the call layer brackets it: pick, begin, end */
  mesh__service_t *svc = mesh__service_find(m, "least_request");
  mesh__snapshot_t *s = snap_for(svc, 1000);
  double v[16];
  int runs = opt.runs > 16 ? 16 : opt.runs;
  for (int r = 0; r < runs; r++) {
    int64_t t0 = thread_ns();
    for (long i = 0; i < iters; i++) {
      mesh__host_t *h = NULL;
      mesh__lb_pick(svc, s, NULL, &h);
      mesh__lb_begin(h);
      mesh__lb_end(h);
    }
    v[r] = (double)(thread_ns() - t0) / (double)iters;
  }
  emit("pick_begin_end_ns_least_request_1000", median(v, runs));
  mesh__snap_release(s);

  mesh_free(m);
}

/* maglev table (65537) for 1,000 hosts: the whole prepare, and the table
 * build alone. */
static void bench_maglev(void) {
  mesh_t *m = pick_ctx();
  mesh__service_t *svc = mesh__service_find(m, "maglev");
  int runs = opt.runs > 16 ? 16 : opt.runs;
  epset_t e = epset(1000, 8080);
  double prep[16], build[16];
  for (int r = 0; r < runs; r++) {
    mesh__snapshot_t *ms = NULL;
    mesh__snap_build(NULL, e.eps, e.n, &ms);
    int64_t t0 = thread_ns();
    mesh__lb_prepare(svc, ms);
    prep[r] = (double)(thread_ns() - t0) / 1e6;
    mesh__lb_pool_t pool = {.n = (uint32_t)ms->n, .hosts = ms->hosts};
    double *norm = malloc(ms->n * sizeof *norm);
    for (size_t i = 0; i < ms->n; i++)
      norm[i] = 1.0 / (double)ms->n;
    t0 = thread_ns();
    mesh__maglev_build(&pool, norm, MESH__LB_MAGLEV_SIZE);
    build[r] = (double)(thread_ns() - t0) / 1e6;
    free(pool.table);
    free(norm);
    mesh__snap_release(ms);
  }
  emit("maglev_build_ms_1000", median(build, runs));
  emit("maglev_prepare_ms_1000", median(prep, runs));
  epset_free(&e);
  mesh_free(m);
}

/* ---- 4. memory (each figure in a forked child) ----------------------------------- */

typedef void (*child_fn)(int fd);

/* Run fn in a child; it writes "name,value\n" lines to fd, relayed here. */
static void in_child(child_fn fn) {
  int pfd[2];
  if (pipe(pfd) != 0)
    return;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    /* only deltas are used, taken around work that frees nothing the
     * parent allocated */
    heap_accounting = true;
    fn(pfd[1]);
    close(pfd[1]);
    _exit(0);
  }
  close(pfd[1]);
  FILE *f = fdopen(pfd[0], "r");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    fputs(line, stdout);
    fflush(stdout);
  }
  if (f)
    fclose(f);
  int status;
  waitpid(pid, &status, 0);
}

static void put(int fd, const char *name, double v) {
  dprintf(fd, "%s,%.6g\n", name, v);
}

/* Context with one service of n static endpoints (least_request). */
static char *endpoints_config(size_t n, size_t nsvc) {
  sbuf_t b = {0};
  sb_add(&b, "{\"log\": {\"level\": \"warn\"}, \"name\": \"mem\", ");
  sb_identity(&b, false);
  sb_add(&b, ", \"services\": {");
  for (size_t s = 0; s < nsvc; s++) {
    sb_add(&b, "%s\"svc%zu\": {\"peers\": [\"%s\"], \"discovery\": "
               "{\"type\": \"static\", \"endpoints\": [",
           s ? ", " : "", s, SERVER_ID);
    for (size_t i = 0; i < n; i++)
      sb_add(&b, "%s{\"address\": \"10.%zu.%zu.%zu\", \"port\": 8080}",
             i ? ", " : "", i / 62500 % 250, i / 250 % 250, i % 250 + 1);
    sb_add(&b, "]}, \"lb\": {\"policy\": \"least_request\"}}");
  }
  sb_add(&b, "}}");
  return b.p;
}

/* Heap bytes and RSS (KiB) a context of that config holds, with its
 * discovery settled; the config text is freed before measuring. */
static void ctx_cost(size_t n, size_t nsvc, long *heap, long *rss) {
  char *json = endpoints_config(n, nsvc);
  long h0 = live(), r0 = rss_kib();
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(json, &m, &st) != MESH_OK) {
    fprintf(stderr, "micro: mesh_new: %s\n", st.message);
    exit(1);
  }
  free(json);
  mesh_discovery_wait(m, "svc0", 5000, NULL);
  usleep(50000);
  *heap = live() - h0;
  *rss = rss_kib() - r0;
  mesh_free(m);
}

static void child_base(int fd) {
  /* warm-up: the libraries' one-time allocations (PSA, c-ares, curl) */
  long h, r;
  ctx_cost(1, 1, &h, &r);
  long rss0 = rss_kib();
  long h1, r1, h2, r2;
  ctx_cost(1000, 1, &h1, &r1);
  put(fd, "rss_base_kib", (double)r1);
  put(fd, "heap_base_kib", (double)h1 / 1024.0);
  put(fd, "rss_process_kib", (double)(rss0 + r1));
  ctx_cost(2000, 1, &h2, &r2);
  put(fd, "bytes_per_endpoint_static", (double)(h2 - h1) / 1000.0);
  ctx_cost(1, 1, &h1, &r1);
  ctx_cost(1, 101, &h2, &r2);
  put(fd, "bytes_per_service", (double)(h2 - h1) / 100.0);
}

/* Hosts, snapshot and picker state per endpoint, as a discovery update
 * leaves them (no config text involved). */
static void child_endpoints(int fd) {
  mesh_t *m = pick_ctx();
  mesh__service_t *svc = mesh__service_find(m, "least_request");
  epset_t one = epset(1, 9000), big = epset(10000, 8080);
  mesh__disc_apply(svc->disc, one.eps, one.n);
  long h0 = live();
  mesh__disc_apply(svc->disc, big.eps, big.n);
  long h1 = live();
  put(fd, "bytes_per_endpoint", (double)(h1 - h0) / 9999.0);
  put(fd, "sizeof_host", (double)sizeof(mesh__host_t));
  epset_free(&big);
  if (!opt.smoke) { /* the same at 100,000 endpoints: flat, not growing */
    big = epset(100000, 8080);
    mesh__disc_apply(svc->disc, one.eps, one.n);
    h0 = live();
    mesh__disc_apply(svc->disc, big.eps, big.n);
    h1 = live();
    put(fd, "bytes_per_endpoint_100k", (double)(h1 - h0) / 99999.0);
    epset_free(&big);
  }
  epset_free(&one);
  mesh_free(m);
}

/* Idle pooled mTLS connections: the server runs in another process so
 * only the client's side is counted. */
static void child_conns(int fd) {
  int pfd[2];
  if (pipe(pfd) != 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    server_t *s = server_start(true);
    dprintf(pfd[1], "%d\n", s->port);
    for (int i = 0; i < 600; i++) /* bounded: 60 s; killed before that */
      usleep(100000);
    _exit(0);
  }
  char buf[32] = "";
  ssize_t r = read(pfd[0], buf, sizeof buf - 1);
  int port = r > 0 ? atoi(buf) : 0;
  char *disc = static_discovery(port);
  mesh_t *m = client_new(tls_obj(NULL), disc);
  free(disc);
  enum { K = 64 };
  mesh_call_t *calls[K + 1];
  mesh_status_t st;
  /* one call first: TLS config, pools and metric series exist */
  if (mesh_call_begin(m, "echo", NULL, &calls[0], &st) != MESH_OK) {
    fprintf(stderr, "micro: call: %s\n", st.message);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return;
  }
  mesh_call_end(calls[0], MESH_CALL_OK, 0);
  usleep(50000);
  long h0 = live(), r0 = rss_kib();
  int got = 0;
  for (int i = 0; i <= K; i++) {
    if (mesh_call_begin(m, "echo", NULL, &calls[i], &st) != MESH_OK)
      break;
    got++;
  }
  for (int i = 0; i < got; i++)
    mesh_call_end(calls[i], MESH_CALL_OK, 0);
  long h1 = live(), r1 = rss_kib();
  if (got == K + 1) {
    put(fd, "bytes_per_idle_conn", (double)(h1 - h0) / K);
    put(fd, "rss_per_idle_conn_kib", (double)(r1 - r0) / K);
  }
  mesh_free(m);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* Pooled connections 1 .. 10,000 (issue 19): K + 1 calls in flight
 * dial K + 1 mTLS connections to a server in another process, which
 * holds them; ending them leaves K idle in the pool (max_idle K).  Then
 * heap and RSS per idle pooled connection (client side), and 20,000
 * calls begun and ended one after the other over the pool (no I/O per
 * call): calls per second and p99 of one call, to show the pool's cost
 * does not grow with its size. */
static size_t conns_k;

static void child_conns_k(int fd) {
  size_t k = conns_k;
  int pfd[2];
  if (pipe(pfd) != 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    server_t *s = server_start(true);
    dprintf(pfd[1], "%d\n", s->port);
    for (int i = 0; i < 3000; i++) /* bounded: 300 s; killed before that */
      usleep(100000);
    _exit(0);
  }
  char buf[32] = "";
  ssize_t r = read(pfd[0], buf, sizeof buf - 1);
  sbuf_t b = {0};
  sb_add(&b, "{\"log\": {\"level\": \"warn\"}, \"name\": \"bench-client\", ");
  sb_identity(&b, false);
  sb_add(&b, ", \"tracing\": {\"sampler\": \"always_off\"}, \"services\": "
             "{\"echo\": {\"peers\": [\"%s\"], \"discovery\": {\"type\": "
             "\"static\", \"endpoints\": [{\"address\": \"127.0.0.1\", "
             "\"port\": %d}]}, \"pool\": {\"max_idle\": %zu}, "
             "\"circuit_breakers\": {\"max_connections\": %zu, "
             "\"max_pending_requests\": %zu, \"max_requests\": %zu}}}}",
         SERVER_ID, r > 0 ? atoi(buf) : 0, k, k + 16, k + 16, k + 16);
  mesh_t *m = ctx_new(b.p);
  free(b.p);
  mesh_call_t **calls = calloc(k + 1, sizeof *calls);
  mesh_status_t st;
  /* one call first: TLS config, pools and metric series exist */
  if (!calls || mesh_call_begin(m, "echo", NULL, &calls[0], &st) != MESH_OK) {
    fprintf(stderr, "micro: conns: %s\n", calls ? st.message : "no memory");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return;
  }
  mesh_call_end(calls[0], MESH_CALL_OK, 0);
  usleep(50000);
  long h0 = live(), r0 = rss_kib();
  size_t got = 0;
  for (size_t i = 0; i <= k; i++, got++)
    if (mesh_call_begin(m, "echo", NULL, &calls[i], &st) != MESH_OK) {
      fprintf(stderr, "micro: conns %zu: call %zu: %s\n", k, i, st.message);
      break;
    }
  for (size_t i = 0; i < got; i++)
    mesh_call_end(calls[i], MESH_CALL_OK, 0);
  long h1 = live(), r1 = rss_kib();
  char name[64];
  if (got == k + 1 && k > 1) {
    /* the first call reused the warm-up's connection and one of the k + 1
     * was closed over max_idle: k - 1 more idle connections than before */
    snprintf(name, sizeof name, "conns_%zu_bytes_per_conn", k);
    put(fd, name, (double)(h1 - h0) / (double)(k - 1));
    snprintf(name, sizeof name, "conns_%zu_rss_kib_per_conn", k);
    put(fd, name, (double)(r1 - r0) / (double)(k - 1));
  }
  if (got == k + 1) {
    enum { CALLS = 20000 };
    double *lat = malloc(CALLS * sizeof *lat);
    int64_t t0 = wall_ns();
    for (int i = 0; lat && i < CALLS; i++) {
      int64_t c0 = wall_ns();
      mesh_call_t *c = NULL;
      if (mesh_call_begin(m, "echo", NULL, &c, &st) == MESH_OK)
        mesh_call_end(c, MESH_CALL_OK, 0);
      lat[i] = (double)(wall_ns() - c0);
    }
    double secs = (double)(wall_ns() - t0) / 1e9;
    if (lat) {
      qsort(lat, CALLS, sizeof *lat, bench_cmp_d);
      snprintf(name, sizeof name, "conns_%zu_calls_per_s", k);
      put(fd, name, CALLS / secs);
      snprintf(name, sizeof name, "conns_%zu_p99_ns", k);
      put(fd, name, lat[CALLS * 99 / 100]);
    }
    free(lat);
  }
  free(calls);
  mesh_free(m);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* 10,000 is left out: pool.max_idle is at most 1,024 per endpoint (it
 * needs ten endpoints on ten ports), and 1,000 sequential handshakes
 * already take minutes on the shared 2-core machine. */
static void bench_conns(void) {
  static const size_t ks[] = {1, 10, 100, 1000};
  for (size_t i = 0; i < (opt.smoke ? 3u : 4u); i++) {
    conns_k = ks[i];
    in_child(child_conns_k);
  }
}

static void bench_memory(void) {
  in_child(child_base);
  in_child(child_endpoints);
  in_child(child_conns);
}

/* Only the bytes per idle pooled connection (per backend, per version). */
static void bench_idle(void) {
  in_child(child_conns);
}

/* ---- 5. discovery --------------------------------------------------------------- */

static double apply_ms(mesh__disc_svc_t *d, const epset_t *e) {
  int64_t t0 = thread_ns();
  if (mesh__disc_apply(d, e->eps, e->n) != MESH_OK)
    fprintf(stderr, "micro: apply failed\n");
  return (double)(thread_ns() - t0) / 1e6;
}

static void bench_discovery(void) {
  mesh_t *m = pick_ctx();
  mesh__service_t *svc = mesh__service_find(m, "least_request");
  mesh__service_t *rr = mesh__service_find(m, "round_robin");
  epset_t a = epset(10000, 8080), b = epset(10000, 8081),
          a1 = epset(10000, 8080);
  a1.eps[5000].weight = 2; /* one endpoint changed */
  int runs = opt.runs > 16 ? 16 : opt.runs;
  double full[16], incr[16], same[16], rrfull[16];
  for (int r = 0; r < runs; r++) {
    apply_ms(svc->disc, &b);
    full[r] = apply_ms(svc->disc, &a);   /* every endpoint new */
    incr[r] = apply_ms(svc->disc, &a1);  /* one of 10,000 changed */
    same[r] = apply_ms(svc->disc, &a1);  /* nothing changed */
    apply_ms(rr->disc, &b);
    rrfull[r] = apply_ms(rr->disc, &a);
  }
  emit("discovery_update_ms_10000", median(full, runs));
  emit("discovery_update_us_per_endpoint", median(full, runs) * 1000 / 1e4);
  emit("discovery_update_one_changed_ms_10000", median(incr, runs));
  emit("discovery_update_unchanged_ms_10000", median(same, runs));
  emit("discovery_update_rr_ms_10000", median(rrfull, runs));

  /* the file source's share: parse and validate 10,000 endpoints */
  sbuf_t j = {0};
  sb_add(&j, "[");
  for (size_t i = 0; i < 10000; i++)
    sb_add(&j, "%s{\"address\": \"%s\", \"port\": 8080}", i ? ", " : "",
           a.addr[i]);
  sb_add(&j, "]");
  double parse[16];
  for (int r = 0; r < runs; r++) {
    int64_t t0 = thread_ns();
    cJSON *arr = cJSON_Parse(j.p);
    mesh__cfg_t c = {0};
    mesh__ep_t *eps = NULL;
    size_t n = 0;
    mesh__ep_parse_list(&c, arr, "endpoints", &eps, &n);
    parse[r] = (double)(thread_ns() - t0) / 1e6;
    free(eps);
    cJSON_Delete(arr);
  }
  emit("discovery_parse_ms_10000", median(parse, runs));
  free(j.p);
  epset_free(&a);
  epset_free(&b);
  epset_free(&a1);
  mesh_free(m);
}

/* DNS is resolved by the worker, never by a call: calls to a DNS-discovered
 * service while the worker re-resolves; resolver calls are counted by
 * thread. */
static void bench_dns(void) {
  if (!opt.dns)
    return;
  server_t *s = server_start(true);
  sbuf_t b = {0};
  sb_add(&b, "{\"type\": \"dns\", \"name\": \"%s\", \"port\": %d, "
             "\"servers\": [\"%s\"], \"min_ttl_ms\": 100}",
         opt.dns_name, s->port, opt.dns);
  mesh_t *m = client_new("", b.p);
  free(b.p);
  mesh_status_t st;
  if (mesh_discovery_wait(m, "echo", 5000, &st) != MESH_OK) {
    fprintf(stderr, "micro: DNS discovery: %s\n", st.message);
    mesh_free(m);
    server_stop(s);
    return;
  }
  long bg0 = atomic_load(&dns_elsewhere);
  on_call_path = true;
  long calls = 0, failed = 0;
  int64_t end = wall_ns() + (opt.smoke ? 1500000000LL : 3000000000LL);
  while (wall_ns() < end && calls < 100000000) {
    mesh_call_t *c;
    if (mesh_call_begin(m, "echo", NULL, &c, &st) != MESH_OK) {
      failed++;
      continue;
    }
    mesh_call_end(c, MESH_CALL_OK, 0);
    calls++;
  }
  on_call_path = false;
  emit("dns_calls", (double)calls);
  emit("dns_failed_calls", (double)failed);
  emit("dns_lookups_on_call_path", (double)atomic_load(&dns_call_path));
  emit("dns_queries_by_worker", (double)(atomic_load(&dns_elsewhere) - bg0));
  mesh_free(m);
  server_stop(s);
}

/* ---- 6. tracing -------------------------------------------------------------------- */

static void noop_hook(const mesh_span_t *s, void *user) {
  (void)s;
  (void)user;
}

static double spans(mesh_t *m, long iters, long *nalloc) {
  long a0 = allocs();
  int64_t t0 = thread_ns();
  for (long i = 0; i < iters; i++) {
    mesh__span_t sp;
    mesh__span_start(m, &sp, "mesh.call", MESH_SPAN_CLIENT, NULL, NULL);
    mesh__span_end(&sp);
  }
  double ns = (double)(thread_ns() - t0) / (double)iters;
  *nalloc = allocs() - a0;
  return ns;
}

static void bench_tracing(void) {
  mesh_t *off = ctx_new("{\"log\": {\"level\": \"warn\"}, \"name\": \"t\", \"tracing\": "
                        "{\"sampler\": \"always_off\"}}");
  mesh_t *on = ctx_new("{\"log\": {\"level\": \"warn\"}, \"name\": \"t\", \"tracing\": "
                       "{\"sampler\": \"always_on\"}}");
  mesh_set_span_hooks(on, NULL, noop_hook, NULL);
  long iters = opt.smoke ? 100000 : 2000000;
  int runs = opt.runs > 16 ? 16 : opt.runs;
  double u[16], s[16], p[16];
  long ua = 0, sa = 0;
  spans(off, 1000, &ua); /* per-thread RNG seeding */
  for (int r = 0; r < runs; r++) {
    u[r] = spans(off, iters, &ua);
    s[r] = spans(on, iters / 10, &sa);
  }
  emit("span_unsampled_ns", median(u, runs));
  emit("span_unsampled_allocs", (double)ua / (double)iters);
  emit("span_sampled_recorded_ns", median(s, runs));
  emit("span_sampled_allocs", (double)sa / (double)(iters / 10));
  static const char tp[] =
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  mesh_trace_ctx_t ctx;
  long fails = 0;
  for (int r = 0; r < runs; r++) {
    int64_t t0 = thread_ns();
    for (long i = 0; i < iters; i++)
      fails += mesh_traceparent_parse(tp, sizeof tp - 1, &ctx) != MESH_OK;
    p[r] = (double)(thread_ns() - t0) / (double)iters;
  }
  if (fails)
    fprintf(stderr, "micro: traceparent parse failed\n");
  emit("traceparent_parse_ns", median(p, runs));
  mesh_free(off);
  mesh_free(on);
}

/* ---- the call path without I/O, and AES-GCM per byte --------------------------------- */

/* begin + end of a call on a pooled connection, no bytes moved. */
static double call_ns(mesh_t *m, long iters) {
  mesh_status_t st;
  int64_t t0 = thread_ns();
  for (long i = 0; i < iters; i++) {
    mesh_call_t *c;
    if (mesh_call_begin(m, "echo", NULL, &c, &st) != MESH_OK) {
      fprintf(stderr, "micro: call: %s\n", st.message);
      return 0;
    }
    mesh_call_end(c, MESH_CALL_OK, 0);
  }
  return (double)(thread_ns() - t0) / (double)iters;
}

/* A counter's total over all its series in the context's metrics text. */
static double metric_total(mesh_t *m, const char *name) {
  size_t need = 0;
  mesh_metrics_text(m, NULL, 0, &need);
  char *buf = malloc(need + 1);
  double sum = 0;
  size_t nl = strlen(name);
  if (buf && mesh_metrics_text(m, buf, need + 1, NULL) >= 0) {
    for (char *line = buf; line && *line;) {
      char *next = strchr(line, '\n');
      if (strncmp(line, name, nl) == 0 && (line[nl] == '{' || line[nl] == ' ')) {
        char *sp = next ? next : line + strlen(line);
        while (sp > line && sp[-1] != ' ')
          sp--;
        sum += strtod(sp, NULL);
      }
      line = next ? next + 1 : NULL;
    }
  }
  free(buf);
  return sum;
}

/* Export throughput with the default queue (2,048 spans) and batch (512):
 * one caller thread paced at a fixed span rate for 0.4 s per rate, then
 * spans delivered and dropped.  The highest rate with no drop is the
 * exporter's sustained throughput on this machine (the collector is
 * bench/sink; one request in flight at a time).  max_delay_ms is 100 so a
 * partial batch does not wait 5 s. */
static void export_rate(server_t *srv, const char *disc) {
  (void)srv;
  static const double rates[] = {25000, 50000, 100000, 200000, 400000};
  sbuf_t t = {0};
  sb_add(&t, "\"tracing\": {\"sampler\": \"always_on\", \"otlp\": "
             "{\"endpoint\": \"%s\"}, \"batch\": {\"max_delay_ms\": 100}}",
         opt.otlp);
  mesh_t *m = client_new(t.p, disc);
  free(t.p);
  call_ns(m, 100);
  double secs = opt.smoke ? 0.05 : 0.4;
  for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
    double base = metric_total(m, "mesh_trace_export_spans_total");
    double drop0 = metric_total(m, "mesh_trace_export_dropped_spans_total");
    long calls = (long)(rates[k] / 2 * secs);
    int64_t gap = (int64_t)(2e9 / rates[k]), w0 = wall_ns();
    for (long i = 0; i < calls; i++) {
      while (wall_ns() < w0 + i * gap)
        ;
      call_ns(m, 1);
    }
    double offered = (double)(2 * calls) / ((double)(wall_ns() - w0) / 1e9);
    double got = 0, dropped = 0;
    for (int i = 0; i < 400; i++) { /* bounded: 4 s */
      got = metric_total(m, "mesh_trace_export_spans_total") - base;
      dropped = metric_total(m, "mesh_trace_export_dropped_spans_total") - drop0;
      if (got + dropped >= 2.0 * (double)calls)
        break;
      usleep(10000);
    }
    char name[64];
    snprintf(name, sizeof name, "export_offered_spans_per_s_%.0f", rates[k]);
    emit(name, offered);
    snprintf(name, sizeof name, "export_dropped_at_%.0f", rates[k]);
    emit(name, dropped);
  }
  mesh_free(m);
}

/* The export's own CPU: calls with every span exported over OTLP/HTTP to
 * the sink; what the process spends beyond the calling thread's CPU, until
 * the collector has every span, is the exporter's (JSON, libcurl, socket)
 * on the worker thread. */
static void bench_export(void) {
  if (!opt.otlp)
    return;
  server_t *srv = server_start(true);
  char *disc = static_discovery(srv->port);
  sbuf_t t = {0};
  sb_add(&t, "\"tracing\": {\"sampler\": \"always_on\", \"otlp\": "
             "{\"endpoint\": \"%s\"}, \"batch\": {\"queue_size\": 1048576}}",
         opt.otlp);
  mesh_t *m = client_new(t.p, disc);
  free(t.p);
  long calls = opt.smoke ? 2000 : 20000;
  call_ns(m, 100); /* connection up, metric series made */
  double base = metric_total(m, "mesh_trace_export_spans_total");
  int64_t p0 = cpu_ns(), t0 = thread_ns();
  double per_call = call_ns(m, calls);
  int64_t t1 = thread_ns();
  double want = base + 2.0 * (double)calls, got = base;
  int64_t polls = 0; /* this thread's CPU rendering and parsing metrics */
  for (int i = 0; i < 1000 && got < want; i++) { /* bounded: 10 s */
    usleep(10000);
    int64_t q0 = thread_ns();
    got = metric_total(m, "mesh_trace_export_spans_total");
    polls += thread_ns() - q0;
  }
  int64_t p1 = cpu_ns() - polls;
  double spans = got - base;
  emit("call_begin_end_exported_ns", per_call);
  emit("export_spans", spans);
  emit("export_dropped_spans",
       metric_total(m, "mesh_trace_export_dropped_spans_total"));
  /* the polls above ran on this thread after t1: taken out of p1 (they
   * were about a tenth of the figure) */
  emit("export_cpu_ns_per_span",
       spans > 0 ? (double)((p1 - p0) - (t1 - t0)) / spans : 0);
  mesh_free(m);
  export_rate(srv, disc);
  free(disc);
  server_stop(srv);
}

/* Process CPU of `calls` calls on m; traced: also until the collector has
 * their spans (2 per call; the polls' own CPU taken out).  *caller: the
 * calling thread's share. */
static double block_cpu(mesh_t *m, long calls, bool traced, double *caller) {
  double base = traced ? metric_total(m, "mesh_trace_export_spans_total") : 0;
  int64_t p0 = cpu_ns(), t0 = thread_ns();
  call_ns(m, calls);
  int64_t t1 = thread_ns(), polls = 0;
  double got = base, want = base + 2.0 * (double)calls;
  for (int i = 0; traced && i < 5000 && got < want; i++) { /* bound: 10 s */
    usleep(2000);
    int64_t q0 = thread_ns();
    got = metric_total(m, "mesh_trace_export_spans_total");
    polls += thread_ns() - q0;
  }
  if (traced && got < want)
    fprintf(stderr, "micro: tracecpu: %.0f of %.0f spans exported\n",
            got - base, want - base);
  *caller = (double)(t1 - t0) / (double)calls;
  return (double)(cpu_ns() - p0 - polls) / (double)calls;
}

/* What tracing at 100% with OTLP export adds to a call, in CPU time, side
 * by side with tracing off (issue 19: <= 2% of part 1's CPU per request).
 * Two contexts on one in-process server: `on` samples every call and
 * exports to the sink (a separate process: its CPU is the collector's),
 * `off` samples none.  Each round runs a block of calls on each, in
 * alternating order, counting the process CPU (caller, workers) until the
 * sink has every span of the traced block; the per-call difference of a
 * round is the cost.  Median, min and max over --runs rounds, and the
 * caller (span recording) and worker (export) parts.  No I/O per call:
 * the cost does not depend on it (part 1's C has ~2 spans per request,
 * the same as here). */
static void bench_tracecpu(void) {
  if (!opt.otlp)
    return;
  server_t *srv = server_start(true);
  char *disc = static_discovery(srv->port);
  sbuf_t t = {0};
  /* max_delay_ms: a block's last partial batch goes at once, not in 5 s */
  sb_add(&t, "\"tracing\": {\"sampler\": \"always_on\", \"otlp\": "
             "{\"endpoint\": \"%s\"}, \"batch\": {\"queue_size\": 1048576, "
             "\"max_delay_ms\": 10}}",
         opt.otlp);
  mesh_t *on = client_new(t.p, disc);
  free(t.p);
  mesh_t *off = client_new("\"tracing\": {\"sampler\": \"always_off\"}", disc);
  long calls = opt.smoke ? 1000 : 10000;
  int runs = opt.runs > 16 ? 16 : opt.runs;
  double d[16], rec[16], exp[16], c_on, c_off, x;
  block_cpu(on, 200, true, &x); /* connections up, series made, warm */
  block_cpu(off, 200, false, &x);
  for (int r = 0; r < runs; r++) {
    double p_on, p_off;
    if (r % 2) {
      p_off = block_cpu(off, calls, false, &c_off);
      p_on = block_cpu(on, calls, true, &c_on);
    } else {
      p_on = block_cpu(on, calls, true, &c_on);
      p_off = block_cpu(off, calls, false, &c_off);
    }
    d[r] = p_on - p_off;
    rec[r] = c_on - c_off;
    exp[r] = d[r] - rec[r];
    printf("# tracecpu round %d: traced %.0f ns, untraced %.0f ns per call "
           "(process CPU)\n", r + 1, p_on, p_off);
  }
  emit("tracecpu_ns_per_call", median(d, runs));
  qsort(d, (size_t)runs, sizeof *d, bench_cmp_d);
  emit("tracecpu_ns_per_call_min", d[0]);
  emit("tracecpu_ns_per_call_max", d[runs - 1]);
  emit("tracecpu_record_ns_per_call", median(rec, runs));
  emit("tracecpu_export_ns_per_call", median(exp, runs));
  mesh_free(on);
  mesh_free(off);
  free(disc);
  server_stop(srv);
}

/* Caller threads 1..16 on one context: each thread begins and ends calls
 * to one service over pooled mTLS connections (no I/O per call: the mesh
 * logic alone: pick, pool, breaker, stats, span off).  Throughput in calls
 * per wall second over all threads, and p99 of one call's wall time. */
typedef struct call_job {
  _Alignas(64) mesh_t *m;
  long iters;
  pthread_barrier_t *bar;
  double *lat; /* iters samples, ns */
  long fails;
} call_job_t;

static void *call_main(void *arg) {
  call_job_t *j = arg;
  mesh_status_t st;
  pthread_barrier_wait(j->bar);
  for (long i = 0; i < j->iters; i++) {
    mesh_call_t *c;
    int64_t t0 = wall_ns();
    if (mesh_call_begin(j->m, "echo", NULL, &c, &st) != MESH_OK) {
      j->fails++;
      continue;
    }
    mesh_call_end(c, MESH_CALL_OK, 0);
    j->lat[i] = (double)(wall_ns() - t0);
  }
  return NULL;
}

/* One round with n threads: calls per second, *p99 in ns. */
static double threads_round(mesh_t *m, int n, long iters, double *p99) {
  call_job_t *j = calloc((size_t)n, sizeof *j);
  pthread_t *th = calloc((size_t)n, sizeof *th);
  double *all = calloc((size_t)n * (size_t)iters, sizeof *all);
  if (!j || !th || !all) {
    fprintf(stderr, "micro: out of memory\n");
    exit(1);
  }
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
  for (int t = 0; t < n; t++) {
    j[t] = (call_job_t){m, iters, &bar, all + (size_t)t * (size_t)iters, 0};
    pthread_create(&th[t], NULL, call_main, &j[t]);
  }
  pthread_barrier_wait(&bar);
  int64_t t0 = wall_ns();
  long fails = 0;
  for (int t = 0; t < n; t++) {
    pthread_join(th[t], NULL);
    fails += j[t].fails;
  }
  double secs = (double)(wall_ns() - t0) / 1e9;
  size_t total = (size_t)n * (size_t)iters;
  qsort(all, total, sizeof *all, bench_cmp_d);
  *p99 = all[total * 99 / 100];
  if (fails)
    fprintf(stderr, "micro: %ld failed calls with %d threads\n", fails, n);
  pthread_barrier_destroy(&bar);
  free(all);
  free(th);
  free(j);
  return (double)(total - (size_t)fails) / secs;
}

static void bench_threads(void) {
  server_t *s = server_start(true);
  char *disc = static_discovery(s->port);
  mesh_t *m = client_new("\"tracing\": {\"sampler\": \"always_off\"}", disc);
  static const int counts[] = {1, 2, 4, 8, 16};
  long iters = opt.smoke ? 2000 : 20000;
  int runs = opt.runs > 16 ? 16 : opt.runs;
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    double tput[16], p99[16];
    for (int r = 0; r < runs; r++)
      tput[r] = threads_round(m, counts[k], iters, &p99[r]);
    char name[64];
    snprintf(name, sizeof name, "threads_%d_calls_per_s", counts[k]);
    emit(name, median(tput, runs));
    snprintf(name, sizeof name, "threads_%d_p99_ns", counts[k]);
    emit(name, median(p99, runs));
  }
  mesh_free(m);
  free(disc);
  server_stop(s);
}

/* Cold start: mesh_new to the first successful call (discovery settled,
 * mTLS connection dialed, call begun and ended), with static discovery,
 * with DNS (dnsmasq) and with etcd (a real etcd, --etcd), wall time,
 * median of the runs. */
static double cold_start_ms(const char *disc) {
  int64_t t0 = wall_ns();
  mesh_t *m = client_new("", disc);
  int64_t t1 = wall_ns();
  mesh_status_t st;
  mesh_call_t *c = NULL;
  int rc = mesh_discovery_wait(m, "echo", 5000, &st);
  int64_t t2 = wall_ns();
  if (rc == MESH_OK)
    rc = mesh_call_begin(m, "echo", NULL, &c, &st);
  if (rc == MESH_OK)
    mesh_call_end(c, MESH_CALL_OK, 0);
  double ms = (double)(wall_ns() - t0) / 1e6;
  if (getenv("MICRO_PHASES"))
    fprintf(stderr, "cold start: new %.2f ms, discovery %.2f ms, call %.2f ms\n",
            (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6,
            ms - (double)(t2 - t0) / 1e6);
  if (rc != MESH_OK)
    fprintf(stderr, "micro: cold start: %s\n", st.message);
  mesh_free(m);
  return rc == MESH_OK ? ms : -1;
}

static void bench_coldstart(void) {
  server_t *s = server_start(true);
  int runs = opt.runs > 16 ? 16 : opt.runs;
  double v[16];
  char *disc = static_discovery(s->port);
  for (int r = 0; r < runs; r++)
    v[r] = cold_start_ms(disc);
  free(disc);
  emit("coldstart_static_ms", median(v, runs));
  if (opt.dns) {
    sbuf_t b = {0};
    sb_add(&b, "{\"type\": \"dns\", \"name\": \"%s\", \"port\": %d, "
               "\"servers\": [\"%s\"], \"min_ttl_ms\": 100}",
           opt.dns_name, s->port, opt.dns);
    for (int r = 0; r < runs; r++)
      v[r] = cold_start_ms(b.p);
    free(b.p);
    emit("coldstart_dns_ms", median(v, runs));
  }
  if (opt.etcd) { /* the server registered under a fresh prefix */
    char key[96], addr[32], val[128];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    snprintf(key, sizeof key, "micro-%ld-echo/%s", (long)getpid(), addr);
    etcd_naming_value(val, sizeof val, addr);
    sbuf_t b = {0};
    sb_add(&b, "{\"type\": \"etcd\", \"endpoints\": [\"http://%s\"], "
               "\"prefix\": \"micro-%ld-echo\"}", opt.etcd, (long)getpid());
    bool ok = etcd_put(opt.etcd, key, val) == 0;
    for (int r = 0; ok && r < runs; r++)
      v[r] = cold_start_ms(b.p);
    free(b.p);
    if (ok)
      emit("coldstart_etcd_ms", median(v, runs));
    else
      fprintf(stderr, "micro: cannot write to etcd %s\n", opt.etcd);
    etcd_del(opt.etcd, key);
  }
  server_stop(s);
}

static void bench_call(void) {
  server_t *s = server_start(true);
  char *disc = static_discovery(s->port);
  mesh_t *plain = client_new("\"tracing\": {\"sampler\": \"always_off\"}",
                             disc);
  mesh_t *traced = client_new("\"tracing\": {\"sampler\": \"always_on\"}",
                              disc);
  mesh_set_span_hooks(traced, NULL, noop_hook, NULL);
  long iters = opt.smoke ? 2000 : 50000;
  int runs = opt.runs > 16 ? 16 : opt.runs;
  double a[16], b[16];
  call_ns(plain, 100);
  call_ns(traced, 100);
  for (int r = 0; r < runs; r++) {
    a[r] = call_ns(plain, iters);
    b[r] = call_ns(traced, iters);
  }
  emit("call_begin_end_ns", median(a, runs));
  emit("call_begin_end_traced_ns", median(b, runs));
  mesh_free(plain);
  mesh_free(traced);
  free(disc);
  server_stop(s);
}

static void bench_gcm(void) {
  mbedtls_gcm_context g;
  mbedtls_gcm_init(&g);
  unsigned char key[16] = {1}, iv[12] = {2}, tag[16];
  static unsigned char in[16384], out[16384];
  mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128);
  static const size_t lens[] = {1024, 16384};
  int runs = opt.runs > 16 ? 16 : opt.runs;
  for (int k = 0; k < 2; k++) {
    double v[16];
    long iters = (opt.smoke ? 2000000L : 40000000L) / (long)lens[k];
    for (int r = 0; r < runs; r++) {
      int64_t t0 = thread_ns();
      for (long i = 0; i < iters; i++)
        mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, lens[k], iv,
                                  sizeof iv, NULL, 0, in, out, sizeof tag,
                                  tag);
      double s = (double)(thread_ns() - t0) / 1e9;
      v[r] = (double)lens[k] * (double)iters / s / 1e6;
    }
    char name[64];
    snprintf(name, sizeof name, "mbedtls_aes128gcm_mb_per_s_%zu", lens[k]);
    emit(name, median(v, runs));
  }
  mbedtls_gcm_free(&g);
  /* the third suite libmesh offers, for comparison */
  mbedtls_chachapoly_context cp;
  mbedtls_chachapoly_init(&cp);
  unsigned char key32[32] = {1};
  mbedtls_chachapoly_setkey(&cp, key32);
  double v[16];
  long iters = (opt.smoke ? 2000000L : 40000000L) / 1024;
  for (int r = 0; r < runs; r++) {
    int64_t t0 = thread_ns();
    for (long i = 0; i < iters; i++)
      mbedtls_chachapoly_encrypt_and_tag(&cp, 1024, iv, NULL, 0, in, out, tag);
    double s = (double)(thread_ns() - t0) / 1e9;
    v[r] = 1024.0 * (double)iters / s / 1e6;
  }
  emit("mbedtls_chachapoly_mb_per_s_1024", median(v, runs));
  mbedtls_chachapoly_free(&cp);
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(k, "--smoke")) {
      opt.smoke = true;
      continue;
    }
    if (!v) {
      fprintf(stderr, "micro: %s needs a value\n", k);
      return 2;
    }
    i++;
    if (!strcmp(k, "--ca")) opt.ca = v;
    else if (!strcmp(k, "--server-cert")) opt.srv_cert = v;
    else if (!strcmp(k, "--server-key")) opt.srv_key = v;
    else if (!strcmp(k, "--client-cert")) opt.cli_cert = v;
    else if (!strcmp(k, "--client-key")) opt.cli_key = v;
    else if (!strcmp(k, "--runs")) opt.runs = atoi(v);
    else if (!strcmp(k, "--dns")) opt.dns = v;
    else if (!strcmp(k, "--dns-name")) opt.dns_name = v;
    else if (!strcmp(k, "--etcd")) opt.etcd = v;
    else if (!strcmp(k, "--otlp")) opt.otlp = v;
    else if (!strcmp(k, "--only")) opt.only = v;
    else if (!strcmp(k, "--tls")) opt.tls = v;
    else {
      fprintf(stderr, "micro: unknown option %s\n", k);
      return 2;
    }
  }
  if (!opt.ca || !opt.srv_cert || !opt.srv_key || !opt.cli_cert ||
      !opt.cli_key || opt.runs < 1 ||
      (opt.tls && strcmp(opt.tls, "1.2") && strcmp(opt.tls, "1.3"))) {
    fprintf(stderr, "micro: --ca, --server-cert, --server-key, "
                    "--client-cert and --client-key are required; "
                    "--tls is 1.2 or 1.3\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* memory first: children fork from a process with no threads yet */
  if (want("memory"))
    bench_memory();
  else if (want("idle"))
    bench_idle();
  if (want("handshakes"))
    bench_handshakes();
  if (want("picks"))
    bench_picks();
  if (want("maglev"))
    bench_maglev();
  if (want("discovery"))
    bench_discovery();
  if (want("dns"))
    bench_dns();
  if (want("tracing"))
    bench_tracing();
  if (want("call"))
    bench_call();
  if (want("coldstart"))
    bench_coldstart();
  if (want("threads"))
    bench_threads();
  if (want("conns"))
    bench_conns();
  if (want("export"))
    bench_export();
  if (want("tracecpu"))
    bench_tracecpu();
  if (want("gcm"))
    bench_gcm();
  note("done");
  return 0;
}
