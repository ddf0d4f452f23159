/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded soak: continuous calls for MESH_SOAK_SECONDS (default 5; the
 * CI stage scripts/test.d/soak.sh runs 60) while the endpoint set churns
 * (file discovery rewritten every 400 ms over four servers) and SVIDs
 * rotate (servers every 3 s, the client every 5 s).  Resident memory and
 * open descriptors are sampled every second; they must stay bounded after
 * warm-up, no call may fail, and everything is released at the end.
 * Prints one "soak:" line of figures (docs/reliability.md). */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "identity/identity.h"
#include "test_fault_peer.h"

/* Sanitizers keep freed memory aside (ASan's quarantine) or shadow it:
 * resident size means nothing there; leaks are checked by LSan instead. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

#define SVC "soak"
#define NSRV 4
#define NCALLERS 3
#define MAX_SAMPLES 4000

static int seconds(void) {
  const char *s = getenv("MESH_SOAK_SECONDS");
  int v = s ? atoi(s) : 5;
  return v < 1 ? 1 : v > 3600 ? 3600 : v;
}

static mesh_t *new_mesh(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n%s\n", st.message, json);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

/* Latency histogram: bucket i holds calls of [2^i, 2^(i+1)) us. */
#define NBUCKETS 32
struct stats {
  atomic_bool stop;
  _Atomic uint64_t calls, failures, dials;
  _Atomic uint64_t hist[NBUCKETS];
  pthread_mutex_t mu;
  char first_error[384];
};

static void record(struct stats *s, int64_t ns, int rc, const char *what,
                   const char *msg) {
  uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
  int b = 0;
  while (b < NBUCKETS - 1 && us >= (2ull << b))
    b++;
  atomic_fetch_add(&s->hist[b], 1);
  atomic_fetch_add(&s->calls, 1);
  if (rc == MESH_OK)
    return;
  if (atomic_fetch_add(&s->failures, 1) == 0) {
    pthread_mutex_lock(&s->mu);
    snprintf(s->first_error, sizeof s->first_error, "%s: %s: %.300s", what,
             mesh_code_name(rc), msg);
    pthread_mutex_unlock(&s->mu);
  }
}

/* Upper bound (us) of the bucket holding quantile q. */
static uint64_t quantile_us(struct stats *s, double q) {
  uint64_t total = 0, acc = 0;
  for (int i = 0; i < NBUCKETS; i++)
    total += atomic_load(&s->hist[i]);
  for (int i = 0; i < NBUCKETS; i++) {
    acc += atomic_load(&s->hist[i]);
    if (total && (double)acc >= q * (double)total)
      return 2ull << i;
  }
  return 0;
}

static int echo_try(mesh_call_t *call, mesh_conn_t *conn, int *status,
                    void *user) {
  (void)call;
  (void)user;
  *status = 0;
  char msg[64], buf[64];
  int n = snprintf(msg, sizeof msg, "soak %d\n", rand() % 100000);
  if (mesh_conn_write_all(conn, msg, (size_t)n) != MESH_OK)
    return MESH_CALL_RESET;
  int got = 0;
  while (got < n) {
    long r = mesh_conn_read(conn, buf + got, (size_t)(n - got));
    if (r <= 0)
      return r == 0 ? MESH_CALL_RESET : (int)r;
    got += (int)r;
  }
  return memcmp(msg, buf, (size_t)n) == 0 ? MESH_CALL_OK
                                          : MESH_CALL_PROTOCOL_ERROR;
}

struct caller {
  mesh_t *m;
  struct stats *s;
};

static void *pooled_calls(void *arg) {
  struct caller *c = arg;
  for (long i = 0; i < 100000000L && !atomic_load(&c->s->stop); i++) {
    mesh_status_t st;
    int64_t t0 = mesh__now_ns();
    int rc = mesh_call_do(c->m, SVC, NULL, echo_try, NULL, &st);
    record(c->s, mesh__now_ns() - t0, rc, "call", st.message);
  }
  return NULL;
}

/* New connections, one handshake each: mesh_dial() of the service. */
static void *dialed_calls(void *arg) {
  struct caller *c = arg;
  for (long i = 0; i < 100000000L && !atomic_load(&c->s->stop); i++) {
    mesh_status_t st;
    mesh_conn_t *conn = NULL;
    int64_t t0 = mesh__now_ns();
    int rc = mesh_dial(c->m, SVC, NULL, &conn, &st);
    if (rc == MESH_OK) {
      mesh_conn_set_timeouts(conn, 5000, 5000);
      int status;
      rc = echo_try(NULL, conn, &status, NULL);
      rc = rc == MESH_CALL_OK ? MESH_OK : rc > 0 ? MESH_ERR_RESET : rc;
      snprintf(st.message, sizeof st.message, "%s", mesh_conn_errmsg(conn));
      mesh_conn_close(conn);
    }
    atomic_fetch_add(&c->s->dials, 1);
    record(c->s, mesh__now_ns() - t0, rc, "dial", st.message);
    fp_sleep_ms(2); /* handshakes are costly: a few hundred per second */
  }
  return NULL;
}

/* Endpoint set k of the churn: three of the four servers, rotating. */
static bool write_endpoints(const char *path, const int *ports, int k) {
  char json[512], tmp[600];
  snprintf(json, sizeof json,
           "{\"endpoints\":[{\"address\":\"127.0.0.1\",\"port\":%d},"
           "{\"address\":\"127.0.0.1\",\"port\":%d},"
           "{\"address\":\"127.0.0.1\",\"port\":%d,\"weight\":%d}]}",
           ports[k % NSRV], ports[(k + 1) % NSRV], ports[(k + 2) % NSRV],
           1 + k % 3);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  return th_write(tmp, json) && rename(tmp, path) == 0;
}

struct sample {
  int64_t t_ms;
  long rss_kb;
  int fds;
  uint64_t calls;
};

static void test_soak(void) {
  CU_ASSERT_FATAL(fp_certs());
  CU_ASSERT_FATAL(th_svid(FP_TD, FP_SERVER_ID, "soak-srv", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid(FP_TD, FP_CLIENT_ID, "soak-cli", 0, 0, 0));
  int secs = seconds();
  int fds0 = fp_count_fds();

  /* four servers sharing one rotating SVID */
  mesh_t *sm[NSRV];
  fp_server_t srv[NSRV];
  int ports[NSRV];
  char id[1024], json[4096];
  fp_identity(id, sizeof id, "soak-srv",
              ",\"reload_interval_ms\":100,\"expiry_warning_s\":0");
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"inbound\":{\"peers\":"
           "[\"" FP_CLIENT_ID "\"]}}",
           id);
  for (int i = 0; i < NSRV; i++) {
    sm[i] = new_mesh(json);
    CU_ASSERT_FATAL(sm[i] != NULL);
    CU_ASSERT_FATAL(fp_server_start(&srv[i], sm[i], 0));
    ports[i] = srv[i].port;
  }

  /* the client: file discovery polled every 50 ms, its own rotating SVID */
  char eps[512]; /* th_path() buffers are recycled: keep a copy */
  snprintf(eps, sizeof eps, "%s", th_path("soak-endpoints.json"));
  CU_ASSERT_FATAL(write_endpoints(eps, ports, 0));
  fp_identity(id, sizeof id, "soak-cli",
              ",\"reload_interval_ms\":100,\"expiry_warning_s\":0");
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"" FP_SERVER_ID "\"],\"discovery\":{\"type\":"
           "\"file\",\"path\":\"%s\",\"poll_interval_ms\":50},"
           "\"lb\":{\"policy\":\"least_request\"}}}}",
           id, eps);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_FATAL(m != NULL);
  CU_ASSERT_EQUAL_FATAL(mesh_discovery_wait(m, SVC, 5000, NULL), MESH_OK);

  struct stats s = {0};
  pthread_mutex_init(&s.mu, NULL);
  struct caller c = {.m = m, .s = &s};
  pthread_t th[NCALLERS + 1];
  for (int i = 0; i < NCALLERS; i++)
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, pooled_calls, &c) == 0);
  CU_ASSERT_FATAL(pthread_create(&th[NCALLERS], NULL, dialed_calls, &c) ==
                  0);

  static struct sample samp[MAX_SAMPLES];
  int ns = 0, sets = 0, srv_rot = 0, cli_rot = 0;
  int64_t t0 = mesh__now_ms(), end = t0 + (int64_t)secs * 1000;
  int64_t next_sample = t0, next_set = t0 + 400;
  int64_t next_srv = t0 + 3000, next_cli = t0 + 5000;
  /* The soak lasts `secs`, and on until the work asserted below is done
   * (calls, endpoint sets): bounded by those counts, not by the time
   * window alone, which a loaded machine or TSan fills with less work.
   * The cap only stops a broken run, loudly. */
  int64_t cap = end + TH_CAP_MS;
  for (int i = 0; i < 10000000; i++) {
    int64_t now = mesh__now_ms();
    if (now >= end && atomic_load(&s.calls) >= (uint64_t)secs * 100 &&
        sets >= secs * 2)
      break;
    if (now >= cap) {
      th_cap_report("soak: calls and endpoint sets");
      break;
    }
    if (now >= next_sample && ns < MAX_SAMPLES) {
      samp[ns++] = (struct sample){now - t0, fp_rss_kb(), fp_count_fds(),
                                   atomic_load(&s.calls)};
      next_sample += 1000;
    }
    if (now >= next_set) {
      CU_ASSERT(write_endpoints(eps, ports, ++sets));
      next_set += 400;
    }
    if (now >= next_srv) {
      CU_ASSERT(th_svid(FP_TD, FP_SERVER_ID, "soak-srv", 0, 0, 0));
      srv_rot++;
      next_srv += 3000;
    }
    if (now >= next_cli) {
      CU_ASSERT(th_svid(FP_TD, FP_CLIENT_ID, "soak-cli", 0, 0, 0));
      cli_rot++;
      next_cli += 5000;
    }
    fp_sleep_ms(20);
  }
  atomic_store(&s.stop, true);
  for (int i = 0; i <= NCALLERS; i++)
    pthread_join(th[i], NULL);
  int64_t elapsed = mesh__now_ms() - t0;
  samp[ns < MAX_SAMPLES ? ns++ : ns - 1] = (struct sample){
      elapsed, fp_rss_kb(), fp_count_fds(), atomic_load(&s.calls)};

  /* after warm-up (the first quarter, at least one sample) */
  int w = ns / 4 > 0 ? ns / 4 : 0;
  long rss_w = samp[w].rss_kb, rss_max = 0;
  int fds_w = samp[w].fds, fds_max = 0, fds_min = 1 << 30;
  for (int i = w; i < ns; i++) {
    rss_max = samp[i].rss_kb > rss_max ? samp[i].rss_kb : rss_max;
    fds_max = samp[i].fds > fds_max ? samp[i].fds : fds_max;
    fds_min = samp[i].fds < fds_min ? samp[i].fds : fds_min;
  }
  long rss_end = samp[ns - 1].rss_kb;
  uint64_t calls = atomic_load(&s.calls), failures = atomic_load(&s.failures);
  uint64_t srv_gen = mesh__identity_generation(sm[0]);
  uint64_t cli_gen = mesh__identity_generation(m);
  for (int i = 0; i < ns; i++)
    printf("\n  t=%5.1fs rss=%ld KiB fds=%d calls=%llu",
           (double)samp[i].t_ms / 1000, samp[i].rss_kb, samp[i].fds,
           (unsigned long long)samp[i].calls);
  printf("\nsoak: seconds=%.1f calls=%llu failures=%llu rate=%.0f/s "
         "handshakes=%llu p50_us<=%llu p99_us<=%llu endpoint_sets=%d "
         "server_rotations=%d/%llu client_rotations=%d/%llu "
         "rss_kb_warm=%ld rss_kb_max=%ld rss_kb_end=%ld fds_warm=%d "
         "fds_min=%d fds_max=%d\n",
         (double)elapsed / 1000, (unsigned long long)calls,
         (unsigned long long)failures,
         (double)calls * 1000.0 / (double)(elapsed ? elapsed : 1),
         (unsigned long long)atomic_load(&s.dials),
         (unsigned long long)quantile_us(&s, 0.5),
         (unsigned long long)quantile_us(&s, 0.99), sets, srv_rot,
         (unsigned long long)(srv_gen - 1), cli_rot,
         (unsigned long long)(cli_gen - 1), rss_w, rss_max, rss_end, fds_w,
         fds_min, fds_max);
  if (failures)
    fprintf(stderr, "first failure: %s\n", s.first_error);
  CU_ASSERT_EQUAL(failures, 0);
  CU_ASSERT(calls >= (uint64_t)secs * 100);
  CU_ASSERT(sets >= secs * 2);
  /* every rotation was picked up (one poll may have seen a half-written
   * pair and retried: generation counts loads, not file writes) */
  CU_ASSERT(srv_gen - 1 >= (uint64_t)srv_rot);
  CU_ASSERT(cli_gen - 1 >= (uint64_t)cli_rot);
  /* bounded: descriptors vary with pooled connections only (one per
   * calling thread and endpoint, plus the dial in flight; both ends are in
   * this process), and memory settles */
  CU_ASSERT(fds_max - fds_min <= 2 * (NSRV * NCALLERS + 2) + 8);
  if (RSS_MEANINGFUL)
    CU_ASSERT(rss_max - rss_w <= 8192 + rss_w / 10);

  mesh_free(m);
  for (int i = 0; i < NSRV; i++) {
    fp_server_stop(&srv[i]);
    mesh_free(sm[i]);
  }
  pthread_mutex_destroy(&s.mu);
  /* and everything is given back */
  CU_ASSERT_EQUAL(fp_count_fds(), fds0);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("soak", NULL, NULL);
  CU_add_test(s, "soak", test_soak);
}

int main(void) { return th_run_suites("test_soak", add); }
