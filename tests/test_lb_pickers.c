/* SPDX-License-Identifier: Apache-2.0 */
/* Pickers: distributions with weights (chi-square at p = 0.001, RNG seeded
 * with TLB_SEED), round-robin smoothness, least-request and peak-EWMA
 * preferences, skipping of unusable and already-tried hosts, edge cases. */
#include <pthread.h>

#include "test_lb_util.h"

static const tlb_ep_t weighted4[] = {{"127.10.0.1", 80, 1},
                                     {"127.10.0.2", 80, 2},
                                     {"127.10.0.3", 80, 3},
                                     {"127.10.0.4", 80, 4}};

typedef struct fixture {
  tlb_svc_t *t;
  mesh__snapshot_t *s;
  double w[8];
} fixture_t;

static fixture_t setup(const char *svc_json, const tlb_ep_t *eps, size_t n) {
  fixture_t f = {0};
  mesh__lb_seed(TLB_SEED);
  f.t = tlb_svc(svc_json, NULL);
  f.s = tlb_snap(eps, n);
  CU_ASSERT_PTR_NOT_NULL(f.t);
  CU_ASSERT_PTR_NOT_NULL(f.s);
  if (f.t && f.s)
    CU_ASSERT_EQUAL(mesh__lb_prepare(&f.t->svc, f.s), MESH_OK);
  for (size_t i = 0; f.s && i < f.s->n && i < 8; i++)
    f.w[i] = f.s->hosts[i]->weight;
  return f;
}

static void teardown(fixture_t *f) {
  mesh__snap_release(f->s);
  tlb_svc_free(f->t);
}

/* ---- round robin ------------------------------------------------------------ */

static void test_round_robin_weights(void) {
  fixture_t f = setup("{}", weighted4, 4);
  unsigned c[4];
  /* 1000 full EDF cycles of 10 turns: exact shares */
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 10000, c), 0);
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL(c[i], 1000 * (unsigned)f.w[i]);
  /* smooth: no host twice in a row except across a cycle boundary */
  int run = 1, longest = 1;
  mesh__host_t *prev = NULL;
  for (int i = 0; i < 40; i++) {
    mesh__host_t *h = NULL;
    mesh__lb_pick(&f.t->svc, f.s, NULL, &h);
    run = h == prev ? run + 1 : 1;
    longest = run > longest ? run : longest;
    prev = h;
  }
  CU_ASSERT(longest <= 2);
  teardown(&f);
}

static void test_round_robin_equal(void) {
  fixture_t f = {0};
  mesh__lb_seed(TLB_SEED);
  f.s = tlb_snap_n(5);
  f.t = tlb_svc("{}", NULL);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&f.t->svc, f.s), MESH_OK);
  mesh__host_t *first[5];
  for (int i = 0; i < 5; i++)
    mesh__lb_pick(&f.t->svc, f.s, NULL, &first[i]);
  for (int i = 0; i < 5; i++)
    for (int j = i + 1; j < 5; j++)
      CU_ASSERT_PTR_NOT_EQUAL(first[i], first[j]);
  for (int i = 0; i < 20; i++) { /* strict rotation */
    mesh__host_t *h = NULL;
    mesh__lb_pick(&f.t->svc, f.s, NULL, &h);
    CU_ASSERT_PTR_EQUAL(h, first[i % 5]);
  }
  teardown(&f);
}

static void test_round_robin_skips_unusable(void) {
  fixture_t f = setup("{}", weighted4, 4);
  mesh__host_t *w2 = tlb_find(f.s, "127.10.0.2", 80);
  tlb_set_health(w2, MESH__HEALTH_UNHEALTHY);
  unsigned c[4];
  /* 100 cycles of the 8 remaining turns: the others keep 1:3:4 exactly
   * (a skipped turn goes to the next turn of the shared sequence, not to a
   * neighbour). */
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 800, c), 0);
  CU_ASSERT_EQUAL(c[tlb_index(f.s, w2)], 0);
  CU_ASSERT_EQUAL(c[tlb_index(f.s, tlb_find(f.s, "127.10.0.1", 80))], 100);
  CU_ASSERT_EQUAL(c[tlb_index(f.s, tlb_find(f.s, "127.10.0.3", 80))], 300);
  CU_ASSERT_EQUAL(c[tlb_index(f.s, tlb_find(f.s, "127.10.0.4", 80))], 400);
  teardown(&f);
}

/* Each thread walks the schedule with its own cursor: whole cycles per
 * thread are exact, so the sum over threads is exact too, and a thread
 * that has one pool's cursor keeps it while it picks from another pool. */
typedef struct rr_job {
  fixture_t *f;
  fixture_t *g;
  unsigned c[4];
  int fails;
} rr_job_t;

static void *rr_thread(void *arg) {
  rr_job_t *j = arg;
  for (int i = 0; i < 1000; i++) { /* 1000 cycles of 10 turns */
    unsigned one[4];
    j->fails += tlb_count(j->f->t, j->f->s, NULL, 10, one);
    for (int k = 0; k < 4; k++)
      j->c[k] += one[k];
    mesh__host_t *h = NULL; /* interleave a second pool: no effect */
    if (mesh__lb_pick(&j->g->t->svc, j->g->s, NULL, &h) != MESH_OK)
      j->fails++;
  }
  return NULL;
}

static void test_round_robin_threads_exact(void) {
  fixture_t f = setup("{}", weighted4, 4);
  fixture_t g = setup("{}", weighted4, 4);
  rr_job_t j[3] = {{&f, &g, {0}, 0}, {&f, &g, {0}, 0}, {&f, &g, {0}, 0}};
  pthread_t th[3];
  for (int t = 0; t < 3; t++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, rr_thread, &j[t]), 0);
  for (int t = 0; t < 3; t++)
    pthread_join(th[t], NULL);
  for (int k = 0; k < 4; k++) {
    unsigned sum = 0;
    for (int t = 0; t < 3; t++) {
      CU_ASSERT_EQUAL(j[t].fails, 0);
      CU_ASSERT_EQUAL(j[t].c[k], 1000 * (unsigned)f.w[k]);
      sum += j[t].c[k];
    }
    CU_ASSERT_EQUAL(sum, 3000 * (unsigned)f.w[k]);
  }
  teardown(&g);
  teardown(&f);
}

/* ---- random -------------------------------------------------------------------- */

static void test_random_weights(void) {
  fixture_t f = setup("{\"lb\":{\"policy\":\"random\"}}", weighted4, 4);
  unsigned c[4];
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 100000, c), 0);
  TLB_ASSERT_CHI2(c, f.w, 4);
  /* an unusable host is never picked; the rest keep their ratios */
  mesh__host_t *w3 = tlb_find(f.s, "127.10.0.3", 80);
  atomic_store(&w3->ejected_until_ms, mesh__now_ms() + 60000);
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 100000, c), 0);
  int k = tlb_index(f.s, w3);
  CU_ASSERT_EQUAL(c[k], 0);
  f.w[k] = 0;
  TLB_ASSERT_CHI2(c, f.w, 4);
  teardown(&f);
}

static void test_random_equal(void) {
  mesh__lb_seed(TLB_SEED);
  tlb_svc_t *t = tlb_svc("{\"lb\":{\"policy\":\"random\"}}", NULL);
  mesh__snapshot_t *s = tlb_snap_n(7);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  unsigned c[7];
  double w[7] = {1, 1, 1, 1, 1, 1, 1};
  CU_ASSERT_EQUAL(tlb_count(t, s, NULL, 70000, c), 0);
  TLB_ASSERT_CHI2(c, w, 7);
  mesh__snap_release(s);
  tlb_svc_free(t);
}

/* ---- least request --------------------------------------------------------------- */

static void test_least_request_idle_weights(void) {
  fixture_t f = setup("{\"lb\":{\"policy\":\"least_request\"}}", weighted4, 4);
  unsigned c[4];
  /* no request in flight: split exactly by weight */
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 100000, c), 0);
  TLB_ASSERT_CHI2(c, f.w, 4);
  teardown(&f);
}

static void test_least_request_busy(void) {
  /* Equal weights, host 0 busy: P2C picks it only when both draws are it,
   * 1/16; the others share the rest.  choice_count 3: 1/64. */
  static const struct {
    const char *json;
    double share0;
  } cases[] = {
    {"{\"lb\":{\"policy\":\"least_request\"}}", 1.0 / 16},
    {"{\"lb\":{\"policy\":\"least_request\",\"choice_count\":3}}", 1.0 / 64},
  };
  for (size_t i = 0; i < 2; i++) {
    mesh__lb_seed(TLB_SEED);
    tlb_svc_t *t = tlb_svc(cases[i].json, NULL);
    mesh__snapshot_t *s = tlb_snap_n(4);
    CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
    for (int k = 0; k < 10; k++)
      mesh__lb_begin(s->hosts[0]);
    unsigned c[4];
    CU_ASSERT_EQUAL(tlb_count(t, s, NULL, 64000, c), 0);
    double rest = (1.0 - cases[i].share0) / 3;
    double w[4] = {cases[i].share0, rest, rest, rest};
    TLB_ASSERT_CHI2(c, w, 4);
    mesh__snap_release(s);
    tlb_svc_free(t);
  }
}

static void test_least_request_busy_weighted(void) {
  /* A (weight 1, idle) vs B (weight 3, 3 in flight): B's 3/3 > A's 0/1, so
   * A wins every pair it is in: 1 - (3/4)^2 = 7/16 of the picks. */
  tlb_ep_t eps[] = {{"127.10.0.1", 80, 1}, {"127.10.0.2", 80, 3}};
  fixture_t f = setup("{\"lb\":{\"policy\":\"least_request\"}}", eps, 2);
  mesh__host_t *b = tlb_find(f.s, "127.10.0.2", 80);
  for (int k = 0; k < 3; k++)
    mesh__lb_begin(b);
  unsigned c[2];
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 32000, c), 0);
  double w[2];
  w[tlb_index(f.s, b)] = 9;
  w[1 - tlb_index(f.s, b)] = 7;
  TLB_ASSERT_CHI2(c, w, 2);
  teardown(&f);
}

static void test_mesh__lb_begin(void) {
  mesh__host_t *h = mesh__host_new("127.10.0.1", 1);
  mesh__lb_begin(h);
  mesh__lb_begin(h);
  CU_ASSERT_EQUAL(atomic_load(&h->active_rq), 2);
  mesh__lb_end(h);
  mesh__lb_end(h);
  mesh__lb_end(h); /* unpaired: stays at 0, never wraps */
  CU_ASSERT_EQUAL(atomic_load(&h->active_rq), 0);
  mesh__lb_begin(NULL);
  mesh__lb_end(NULL);
  mesh__lb_report(NULL, 5, true);
  mesh__host_unref(h);
}

/* ---- peak EWMA ---------------------------------------------------------------------- */

static void test_mesh__lb_report(void) {
  mesh__host_t *h = mesh__host_new("127.10.0.1", 1);
  CU_ASSERT_EQUAL(atomic_load(&h->ewma_ns), 0);
  /* no observation yet: the default RTT (30 ms) */
  CU_ASSERT_DOUBLE_EQUAL(mesh__ewma_cost(h, mesh__now_ns()), 30e6, 1);
  mesh__lb_report(h, 10000000, true); /* first: taken as is */
  CU_ASSERT_EQUAL(atomic_load(&h->ewma_ns), 10000000);
  mesh__lb_report(h, 50000000, true); /* a peak: jumps up */
  CU_ASSERT_EQUAL(atomic_load(&h->ewma_ns), 50000000);
  mesh__lb_report(h, 1000000, true); /* lower, immediately: barely moves */
  uint64_t e = atomic_load(&h->ewma_ns);
  CU_ASSERT(e > 49000000 && e <= 50000000);
  mesh__lb_report(h, 1, false); /* a fast failure does not lower it */
  CU_ASSERT(atomic_load(&h->ewma_ns) >= e);
  /* decay on read: 10 s later the estimate is e/e (1/e of it) */
  int64_t stamp = atomic_load(&h->ewma_stamp_ns);
  double later = mesh__ewma_cost(h, stamp + MESH__LB_EWMA_DECAY_NS);
  CU_ASSERT_DOUBLE_EQUAL(later, (double)atomic_load(&h->ewma_ns) / M_E, 1e3);
  /* cost grows with requests in flight */
  mesh__lb_begin(h);
  CU_ASSERT_DOUBLE_EQUAL(mesh__ewma_cost(h, stamp),
                         2.0 * (double)atomic_load(&h->ewma_ns), 1);
  mesh__lb_end(h);
  mesh__host_unref(h);
}

static void test_peak_ewma_idle_weights(void) {
  fixture_t f = setup("{\"lb\":{\"policy\":\"peak_ewma\"}}", weighted4, 4);
  unsigned c[4];
  CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 100000, c), 0);
  TLB_ASSERT_CHI2(c, f.w, 4);
  teardown(&f);
}

static void test_peak_ewma_slow_host(void) {
  mesh__lb_seed(TLB_SEED);
  tlb_svc_t *t = tlb_svc("{\"lb\":{\"policy\":\"peak_ewma\"}}", NULL);
  mesh__snapshot_t *s = tlb_snap_n(4);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  mesh__lb_report(s->hosts[0], 100000000, true); /* 100 ms */
  for (size_t i = 1; i < 4; i++)
    mesh__lb_report(s->hosts[i], 1000000, true); /* 1 ms */
  unsigned c[4];
  CU_ASSERT_EQUAL(tlb_count(t, s, NULL, 64000, c), 0);
  /* The slow host wins only when both draws are it (1/16).  Among the fast
   * ones the costs differ by their decay since the report, so P2C orders
   * them too: only their total is predictable. */
  unsigned two[2] = {c[0], c[1] + c[2] + c[3]};
  double w[2] = {1, 15};
  TLB_ASSERT_CHI2(two, w, 2);
  mesh__snap_release(s);
  tlb_svc_free(t);
}

/* ---- shared behaviour ---------------------------------------------------------------- */

static const char *const all_policies[] = {"round_robin", "random",
                                           "least_request", "peak_ewma",
                                           "ring_hash", "maglev"};

static void test_mesh__lb_pick_avoid(void) {
  for (size_t p = 0; p < 6; p++) {
    char json[96];
    snprintf(json, sizeof json, "{\"lb\":{\"policy\":\"%s\"}}",
             all_policies[p]);
    tlb_svc_t *t = tlb_svc(json, NULL);
    mesh__snapshot_t *s = tlb_snap_n(3);
    CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
    mesh__host_t *tried[2] = {s->hosts[0], s->hosts[2]};
    mesh__lb_ctx_t ctx = {.avoid = tried, .navoid = 2};
    for (int i = 0; i < 50; i++) {
      mesh__host_t *h = NULL;
      CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &h), MESH_OK);
      CU_ASSERT_PTR_EQUAL(h, s->hosts[1]);
    }
    /* the only untried host is down: a usable tried host beats it */
    tlb_set_health(s->hosts[1], MESH__HEALTH_UNHEALTHY);
    mesh__lb_refresh(s, mesh__now_ms());
    for (int i = 0; i < 50; i++) {
      mesh__host_t *h = NULL;
      CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &h), MESH_OK);
      CU_ASSERT(h == s->hosts[0] || h == s->hosts[2]);
    }
    mesh__snap_release(s);
    tlb_svc_free(t);
  }
}

static void test_mesh__lb_pick_edges(void) {
  tlb_svc_t *t = tlb_svc("{}", NULL);
  mesh__host_t *h = (mesh__host_t *)1;
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, NULL, NULL, &h), MESH_ERR_NO_ENDPOINTS);
  CU_ASSERT_PTR_NULL(h);
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, NULL, NULL, NULL),
                  MESH_ERR_INVALID_ARG);
  mesh__snapshot_t *empty = tlb_snap(NULL, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(empty);
  CU_ASSERT_EQUAL(mesh__lb_prepare(&t->svc, empty), MESH_OK);
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, empty, NULL, &h),
                  MESH_ERR_NO_ENDPOINTS);
  mesh__snap_release(empty);
  /* a snapshot nobody prepared still yields usable hosts */
  mesh__snapshot_t *raw = tlb_snap_n(3);
  tlb_set_health(raw->hosts[0], MESH__HEALTH_UNHEALTHY);
  for (int i = 0; i < 30; i++) {
    CU_ASSERT_EQUAL(mesh__lb_pick(NULL, raw, NULL, &h), MESH_OK);
    CU_ASSERT(h == raw->hosts[1] || h == raw->hosts[2]);
  }
  /* preparing twice replaces the state (no leak under ASan) */
  CU_ASSERT_EQUAL(mesh__lb_prepare(NULL, raw), MESH_OK);
  CU_ASSERT_EQUAL(mesh__lb_prepare(&t->svc, raw), MESH_OK);
  CU_ASSERT_EQUAL(mesh__lb_prepare(&t->svc, NULL), MESH_ERR_INVALID_ARG);
  mesh__lb_refresh(NULL, 0);
  mesh__snap_release(raw);
  tlb_svc_free(t);
}

static void test_mesh__lb_pick_hostnames_and_big_weights(void) {
  /* weights whose EDF cycle exceeds the cap are scaled, shares kept */
  tlb_ep_t eps[] = {{"a.internal", 80, 3000000},
                    {"b.internal", 80, 1000000},
                    {"c.internal", 80, 1}};
  for (size_t p = 0; p < 6; p++) {
    char json[96];
    snprintf(json, sizeof json, "{\"lb\":{\"policy\":\"%s\"}}",
             all_policies[p]);
    mesh__lb_seed(TLB_SEED);
    tlb_svc_t *t = tlb_svc(json, NULL);
    mesh__snapshot_t *s = tlb_snap(eps, 3);
    CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
    unsigned c[3];
    CU_ASSERT_EQUAL(tlb_count(t, s, NULL, 40000, c), 0);
    unsigned a = c[tlb_index(s, tlb_find(s, "a.internal", 80))];
    unsigned b = c[tlb_index(s, tlb_find(s, "b.internal", 80))];
    if (!(b > 0 && fabs((double)a / b - 3.0) < 0.3))
      fprintf(stderr, "%s: a %u b %u c %u\n", all_policies[p], a, b,
              c[tlb_index(s, tlb_find(s, "c.internal", 80))]);
    CU_ASSERT(b > 0 && fabs((double)a / b - 3.0) < 0.3);
    mesh__snap_release(s);
    tlb_svc_free(t);
  }
}

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_pickers", NULL, NULL);
  CU_add_test(s, "round_robin weights", test_round_robin_weights);
  CU_add_test(s, "round_robin equal", test_round_robin_equal);
  CU_add_test(s, "round_robin skips unusable", test_round_robin_skips_unusable);
  CU_add_test(s, "round_robin threads exact", test_round_robin_threads_exact);
  CU_add_test(s, "random weights", test_random_weights);
  CU_add_test(s, "random equal", test_random_equal);
  CU_add_test(s, "least_request idle weights", test_least_request_idle_weights);
  CU_add_test(s, "least_request busy", test_least_request_busy);
  CU_add_test(s, "least_request busy weighted",
              test_least_request_busy_weighted);
  CU_add_test(s, "mesh__lb_begin", test_mesh__lb_begin);
  CU_add_test(s, "mesh__lb_report", test_mesh__lb_report);
  CU_add_test(s, "peak_ewma idle weights", test_peak_ewma_idle_weights);
  CU_add_test(s, "peak_ewma slow host", test_peak_ewma_slow_host);
  CU_add_test(s, "mesh__lb_pick avoid", test_mesh__lb_pick_avoid);
  CU_add_test(s, "mesh__lb_pick edges", test_mesh__lb_pick_edges);
  CU_add_test(s, "mesh__lb_pick hostnames, big weights",
              test_mesh__lb_pick_hostnames_and_big_weights);
}

int main(void) { return th_run_suites("test_lb_pickers", add); }
