/* SPDX-License-Identifier: Apache-2.0 */
/* Many threads picking while a writer publishes new snapshots and flips
 * host health: every pick returns a host of the snapshot it read, no pick
 * fails, and (in the TSan build, ../configure --enable-sanitizers=thread)
 * there is no data race.  Each policy runs for at least RUN_MS and until
 * the readers made MIN_PICKS picks while the writer publishes (bounded
 * by that count, not by the time window alone: a starved reader thread
 * made "0 picks" possible on a loaded machine), with a generous cap. */
#include "test_lb_util.h"

#include <pthread.h>
#include <time.h>

#define READERS 4
#define HOSTS 24
#define RUN_MS 150
#define MIN_PICKS 1000
#define MAX_PUBLISHES 1000000

typedef struct shared {
  mesh__snapref_t ref;
  tlb_svc_t *t;
  _Atomic bool stop;
  _Atomic long picks, bad, fails;
  int policy;
} shared_t;

static void reader_pick(shared_t *sh, mesh__snapshot_t *s, unsigned i) {
  char key[16];
  int len = snprintf(key, sizeof key, "k%u", i % 997);
  mesh__host_t *tried = s->hosts[i % s->n];
  mesh__lb_ctx_t ctx = {
    .hash_key = (i & 1) ? key : NULL,
    .hash_key_len = (size_t)len,
    .sticky_key = (i & 2) ? key : NULL,
    .sticky_key_len = (size_t)len,
    .avoid = (i % 5 == 0) ? &tried : NULL,
    .navoid = (i % 5 == 0) ? 1 : 0,
  };
  mesh__host_t *h = NULL;
  if (mesh__lb_pick(&sh->t->svc, s, &ctx, &h) != MESH_OK || !h) {
    atomic_fetch_add(&sh->fails, 1);
    return;
  }
  if (tlb_index(s, h) < 0)
    atomic_fetch_add(&sh->bad, 1);
  /* what the call layer does: own the host beyond the snapshot */
  mesh__host_ref(h);
  mesh__lb_begin(h);
  mesh__snap_release(s);
  mesh__lb_end(h);
  mesh__lb_report(h, 1000 + (int64_t)(i % 50) * 1000, i % 7 != 0);
  mesh__host_unref(h);
}

static void *reader(void *arg) {
  shared_t *sh = arg;
  mesh__lb_seed((uint64_t)(uintptr_t)&sh + (uint64_t)mesh__now_ns());
  unsigned i = 0;
  while (!atomic_load(&sh->stop)) {
    mesh__snapshot_t *s = mesh__snap_acquire(&sh->ref);
    if (!s)
      continue;
    reader_pick(sh, s, i++); /* releases s */
    atomic_fetch_add(&sh->picks, 1);
  }
  return NULL;
}

/* The endpoint set of round r: a sliding window of HOSTS addresses with
 * changing weights, two groups (labels), three zones, two priorities. */
static mesh__snapshot_t *round_snap(const mesh__snapshot_t *prev, int r) {
  char addr[HOSTS][24];
  cJSON *labels[2] = {cJSON_Parse("{\"g\":\"a\"}"),
                      cJSON_Parse("{\"g\":\"b\"}")};
  static const char *zones[] = {"z1", "z2", "z3"};
  mesh__ep_t eps[HOSTS];
  for (int i = 0; i < HOSTS; i++) {
    int id = r + i;
    snprintf(addr[i], sizeof addr[i], "127.11.%d.%d", id / 200 % 250,
             id % 200 + 1);
    eps[i] = (mesh__ep_t){.address = addr[i],
                          .port = 80,
                          .weight = (uint32_t)(1 + (id * 7 + r) % 5),
                          .priority = (uint32_t)(id % 6 == 0),
                          .region = "r",
                          .zone = zones[id % 3],
                          .labels = labels[id % 4 == 0],
                          .health = MESH__HEALTH_HEALTHY};
  }
  mesh__snapshot_t *s = NULL;
  int rc = mesh__snap_build(prev, eps, HOSTS, &s);
  cJSON_Delete(labels[0]);
  cJSON_Delete(labels[1]);
  return rc == MESH_OK ? s : NULL;
}

/* Keep publishing until RUN_MS passed and the readers made MIN_PICKS
 * picks meanwhile; the cap only stops a broken run. */
static bool writer_done(shared_t *sh, long picks0, int64_t end, int64_t cap) {
  int64_t now = mesh__now_ms();
  if (now >= cap) {
    th_cap_report("lb threads: picks while publishing");
    return true;
  }
  return now >= end && atomic_load(&sh->picks) - picks0 >= MIN_PICKS;
}

static void writer(shared_t *sh) {
  int64_t end = mesh__now_ms() + RUN_MS, cap = mesh__now_ms() + TH_CAP_MS;
  long picks0 = atomic_load(&sh->picks);
  mesh__snapshot_t *cur = mesh__snap_acquire(&sh->ref);
  for (int r = 1; r < MAX_PUBLISHES && !writer_done(sh, picks0, end, cap);
       r++) {
    /* flip health of a few hosts of the live snapshot (as health checks
     * and outlier detection do), and ask for an immediate refresh */
    for (size_t i = 0; cur && i < cur->n; i += 5) {
      atomic_store(&cur->hosts[i]->hc_health,
                   (r + (int)i) % 3 ? MESH__HEALTH_HEALTHY
                                    : MESH__HEALTH_UNHEALTHY);
      atomic_store(&cur->hosts[i]->ejected_until_ms,
                   (r % 4) ? 0 : mesh__now_ms() + 50);
    }
    if (cur)
      mesh__lb_refresh(cur, mesh__now_ms());
    mesh__snapshot_t *next = round_snap(cur, r);
    if (next && sh->t->svc.prepare_snapshot(&sh->t->svc, next) == MESH_OK) {
      mesh__snap_ref(next);
      mesh__snap_publish(&sh->ref, next);
      mesh__snap_release(cur);
      cur = next;
    } else {
      mesh__snap_release(next);
    }
  }
  mesh__snap_release(cur);
}

static void run_policy(const char *policy) {
  char json[512];
  snprintf(json, sizeof json,
           "{\"lb\":{\"policy\":\"%s\"},"
           "\"split\":[{\"subset\":{\"g\":\"a\"},\"weight\":1},"
           "{\"subset\":{\"g\":\"b\"},\"weight\":3}]}",
           policy);
  shared_t sh = {0};
  sh.t = tlb_svc(json, "{\"region\":\"r\",\"zone\":\"z2\"}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(sh.t);
  mesh__snapref_init(&sh.ref);
  mesh__snapshot_t *first = round_snap(NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(first);
  CU_ASSERT_EQUAL(sh.t->svc.prepare_snapshot(&sh.t->svc, first), MESH_OK);
  mesh__snap_publish(&sh.ref, first);
  pthread_t th[READERS];
  for (int i = 0; i < READERS; i++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, reader, &sh), 0);
  long picks0 = atomic_load(&sh.picks);
  writer(&sh);
  long during = atomic_load(&sh.picks) - picks0;
  atomic_store(&sh.stop, true);
  for (int i = 0; i < READERS; i++)
    pthread_join(th[i], NULL);
  mesh__snapref_fini(&sh.ref);
  tlb_svc_free(sh.t);
  printf("\n  %s: %ld picks", policy, atomic_load(&sh.picks));
  CU_ASSERT(during >= MIN_PICKS);
  CU_ASSERT_EQUAL(atomic_load(&sh.bad), 0);
  CU_ASSERT_EQUAL(atomic_load(&sh.fails), 0);
}

static void test_round_robin_threads(void) { run_policy("round_robin"); }
static void test_random_threads(void) { run_policy("random"); }
static void test_least_request_threads(void) { run_policy("least_request"); }
static void test_peak_ewma_threads(void) { run_policy("peak_ewma"); }
static void test_ring_hash_threads(void) { run_policy("ring_hash"); }
static void test_maglev_threads(void) { run_policy("maglev"); }

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_threads", NULL, NULL);
  CU_add_test(s, "round_robin threads", test_round_robin_threads);
  CU_add_test(s, "random threads", test_random_threads);
  CU_add_test(s, "least_request threads", test_least_request_threads);
  CU_add_test(s, "peak_ewma threads", test_peak_ewma_threads);
  CU_add_test(s, "ring_hash threads", test_ring_hash_threads);
  CU_add_test(s, "maglev threads", test_maglev_threads);
}

int main(void) { return th_run_suites("test_lb_threads", add); }
