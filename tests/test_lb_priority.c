/* SPDX-License-Identifier: Apache-2.0 */
/* Priority failover (Envoy's load arithmetic with overprovisioning 1.4),
 * panic mode, locality-weighted picking and the caller's-zone preference.
 * Statistical checks: chi-square at p = 0.001, RNG seeded with TLB_SEED. */
#include "test_lb_util.h"

typedef struct fx {
  tlb_svc_t *t;
  mesh__snapshot_t *s;
} fx_t;

static fx_t fx(const char *svc_json, const char *locality,
               const tlb_ep_t *eps, size_t n) {
  fx_t f;
  mesh__lb_seed(TLB_SEED);
  f.t = tlb_svc(svc_json, locality);
  f.s = tlb_snap(eps, n);
  CU_ASSERT_FATAL(f.t && f.s);
  CU_ASSERT_EQUAL(mesh__lb_prepare(&f.t->svc, f.s), MESH_OK);
  return f;
}

static void fx_free(fx_t *f) {
  mesh__snap_release(f->s);
  tlb_svc_free(f->t);
}

static mesh__host_t *H(const fx_t *f, const char *addr) {
  mesh__host_t *h = tlb_find(f->s, addr, 80);
  CU_ASSERT_PTR_NOT_NULL(h);
  return h;
}

static void down(fx_t *f, const char *addr) {
  tlb_set_health(H(f, addr), MESH__HEALTH_UNHEALTHY);
}

static void refresh(fx_t *f) { mesh__lb_refresh(f->s, mesh__now_ms()); }

/* Expected share per host, by address; the rest of the hosts expect 0. */
typedef struct share {
  const char *addr;
  double w;
} share_t;

static void expect(fx_t *f, const mesh__lb_ctx_t *ctx, int picks,
                   const share_t *sh, size_t nsh) {
  unsigned c[32];
  double w[32] = {0};
  CU_ASSERT_EQUAL(tlb_count(f->t, f->s, ctx, picks, c), 0);
  for (size_t i = 0; i < nsh; i++)
    w[tlb_index(f->s, H(f, sh[i].addr))] = sh[i].w;
  TLB_ASSERT_CHI2(c, w, f->s->n);
}

/* ---- priorities ---------------------------------------------------------------- */

static const tlb_ep_t two_levels[] = {
  {"127.10.0.1", 80, 1, 0}, {"127.10.0.2", 80, 1, 0}, /* P0 */
  {"127.10.1.1", 80, 1, 1},                         /* P1 */
};

static void test_priority_failover(void) {
  fx_t f = fx("{\"lb\":{\"policy\":\"random\"}}", NULL, two_levels, 3);
  /* all healthy: P1 takes nothing */
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}}, 2);
  /* Envoy's example: half of P0 healthy -> health 1.4 * 50% = 70%, so P0
   * keeps 70% of the load and P1 takes 30%. */
  down(&f, "127.10.0.2");
  refresh(&f);
  expect(&f, NULL, 20000, (share_t[]){{"127.10.0.1", 70}, {"127.10.1.1", 30}}, 2);
  /* P0 gone: everything fails over */
  down(&f, "127.10.0.1");
  refresh(&f);
  expect(&f, NULL, 5000, (share_t[]){{"127.10.1.1", 1}}, 1);
  /* and back when P0 recovers */
  tlb_set_health(H(&f, "127.10.0.1"), MESH__HEALTH_HEALTHY);
  tlb_set_health(H(&f, "127.10.0.2"), MESH__HEALTH_HEALTHY);
  refresh(&f);
  expect(&f, NULL, 5000, (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}}, 2);
  fx_free(&f);
}

static void test_priority_view_refresh(void) {
  /* Without mesh__lb_refresh: an ejection shows in the view once it is
   * MESH__LB_VIEW_REFRESH_MS old, and ends on its own when it expires. */
  fx_t f = fx("{\"lb\":{\"policy\":\"random\"}}", NULL, two_levels, 3);
  int64_t now = mesh__now_ms();
  atomic_store(&H(&f, "127.10.0.1")->ejected_until_ms, now + 5000);
  atomic_store(&H(&f, "127.10.0.2")->ejected_until_ms, now + 5000);
  mesh__lb_ctx_t ctx = {.now_ms = now + MESH__LB_VIEW_REFRESH_MS + 1};
  expect(&f, &ctx, 2000, (share_t[]){{"127.10.1.1", 1}}, 1);
  ctx.now_ms = now + 5001 + MESH__LB_VIEW_REFRESH_MS;
  expect(&f, &ctx, 2000, (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}}, 2);
  fx_free(&f);
}

static void test_priority_partial(void) {
  /* P0 with 1 of 4 healthy: health 35 -> loads 35 / 65; P0 is not in
   * panic because the total health is 100. */
  tlb_ep_t eps[] = {{"127.10.0.1", 80, 1, 0}, {"127.10.0.2", 80, 1, 0},
                    {"127.10.0.3", 80, 1, 0}, {"127.10.0.4", 80, 1, 0},
                    {"127.10.1.1", 80, 1, 1}, {"127.10.1.2", 80, 1, 1}};
  fx_t f = fx("{\"lb\":{\"policy\":\"random\"}}", NULL, eps, 6);
  down(&f, "127.10.0.2");
  down(&f, "127.10.0.3");
  down(&f, "127.10.0.4");
  refresh(&f);
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 35}, {"127.10.1.1", 32.5}, {"127.10.1.2", 32.5}},
         3);
  fx_free(&f);
}

static void test_priority_hash_policy(void) {
  /* ring_hash picks the level from the key's hash (Envoy), so one key
   * always lands in one level, and the keys split 70/30. */
  fx_t f = fx("{\"lb\":{\"policy\":\"ring_hash\"}}", NULL, two_levels, 3);
  down(&f, "127.10.0.2");
  refresh(&f);
  unsigned p1 = 0;
  for (int k = 0; k < 10000; k++) {
    char key[24];
    int len = snprintf(key, sizeof key, "k%d", k);
    mesh__lb_ctx_t ctx = {.hash_key = key, .hash_key_len = (size_t)len};
    mesh__host_t *a = NULL, *b = NULL;
    mesh__lb_pick(&f.t->svc, f.s, &ctx, &a);
    mesh__lb_pick(&f.t->svc, f.s, &ctx, &b);
    CU_ASSERT_PTR_EQUAL(a, b);
    CU_ASSERT_PTR_NOT_EQUAL(a, H(&f, "127.10.0.2"));
    p1 += a == H(&f, "127.10.1.1");
  }
  /* xxHash64 % 100 is uniform: 30% +- 1.5% */
  CU_ASSERT(p1 > 2850 && p1 < 3150);
  fx_free(&f);
}

/* ---- panic ------------------------------------------------------------------------ */

static const tlb_ep_t four[] = {{"127.10.0.1", 80}, {"127.10.0.2", 80},
                                {"127.10.0.3", 80}, {"127.10.0.4", 80}};

static void test_panic_mode(void) {
  fx_t f = fx("{\"lb\":{\"policy\":\"random\"}}", NULL, four, 4);
  /* 50% healthy is not below the threshold: healthy hosts only */
  down(&f, "127.10.0.1");
  down(&f, "127.10.0.2");
  refresh(&f);
  expect(&f, NULL, 10000, (share_t[]){{"127.10.0.3", 1}, {"127.10.0.4", 1}}, 2);
  /* 25% healthy < 50%: panic, every host takes traffic */
  down(&f, "127.10.0.3");
  refresh(&f);
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}, {"127.10.0.3", 1},
                     {"127.10.0.4", 1}},
         4);
  fx_free(&f);
}

static void test_panic_disabled(void) {
  fx_t f = fx("{\"lb\":{\"policy\":\"round_robin\",\"panic_threshold\":0}}",
              NULL, four, 4);
  down(&f, "127.10.0.1");
  down(&f, "127.10.0.2");
  down(&f, "127.10.0.3");
  refresh(&f);
  for (int i = 0; i < 20; i++) {
    mesh__host_t *h = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, NULL, &h), MESH_OK);
    CU_ASSERT_PTR_EQUAL(h, H(&f, "127.10.0.4"));
  }
  down(&f, "127.10.0.4");
  refresh(&f);
  mesh__host_t *h = NULL;
  CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, NULL, &h),
                  MESH_ERR_NO_ENDPOINTS);
  CU_ASSERT_PTR_NULL(h);
  fx_free(&f);
}

static void test_total_panic(void) {
  /* P0: 0 of 2 healthy, P1: 1 of 4 healthy -> both levels panic, load by
   * host count (2:4), every host used. */
  tlb_ep_t eps[] = {{"127.10.0.1", 80, 1, 0}, {"127.10.0.2", 80, 1, 0},
                    {"127.10.1.1", 80, 1, 1}, {"127.10.1.2", 80, 1, 1},
                    {"127.10.1.3", 80, 1, 1}, {"127.10.1.4", 80, 1, 1}};
  fx_t f = fx("{\"lb\":{\"policy\":\"random\"}}", NULL, eps, 6);
  down(&f, "127.10.0.1");
  down(&f, "127.10.0.2");
  down(&f, "127.10.1.2");
  down(&f, "127.10.1.3");
  down(&f, "127.10.1.4");
  refresh(&f);
  /* loads 33 / 67 (+1 rounding to P0): 34% over 2 hosts, 66% over 4 */
  expect(&f, NULL, 30000,
         (share_t[]){{"127.10.0.1", 17},
                     {"127.10.0.2", 17},
                     {"127.10.1.1", 16.5},
                     {"127.10.1.2", 16.5},
                     {"127.10.1.3", 16.5},
                     {"127.10.1.4", 16.5}},
         6);
  fx_free(&f);
}

/* ---- localities ---------------------------------------------------------------------- */

static const tlb_ep_t zones2[] = {
  {"127.10.0.1", 80, 1, 0, "r", "a"}, {"127.10.0.2", 80, 1, 0, "r", "a"},
  {"127.10.0.3", 80, 1, 0, "r", "b"}, {"127.10.0.4", 80, 1, 0, "r", "b"},
};

static void test_locality_weighted(void) {
  fx_t f = fx("{\"lb\":{\"policy\":\"random\",\"locality_weighted\":true,"
              "\"locality_weights\":{\"r/a\":1,\"r/b\":3}}}",
              NULL, zones2, 4);
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}, {"127.10.0.3", 3},
                     {"127.10.0.4", 3}},
         4);
  /* half of b down: b's effective weight is 3 * 70% = 2.1 against 1 */
  down(&f, "127.10.0.4");
  refresh(&f);
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 0.5}, {"127.10.0.2", 0.5}, {"127.10.0.3", 2.1}},
         3);
  fx_free(&f);
}

static void test_locality_weighted_default(void) {
  /* No weights given: a locality weighs its hosts' weights, so a healthy
   * service is split as without localities, and a degraded locality loses
   * share by availability (2 : 1.4), not by host count (2 : 1). */
  fx_t f = fx("{\"lb\":{\"policy\":\"random\",\"locality_weighted\":true}}",
              NULL, zones2, 4);
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}, {"127.10.0.3", 1},
                     {"127.10.0.4", 1}},
         4);
  down(&f, "127.10.0.4");
  refresh(&f);
  expect(&f, NULL, 20000,
         (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}, {"127.10.0.3", 1.4}}, 3);
  fx_free(&f);
}

static const tlb_ep_t zones3[] = {
  {"127.10.0.1", 80, 1, 0, "r", "a"}, {"127.10.0.2", 80, 1, 0, "r", "a"},
  {"127.10.0.3", 80, 1, 0, "r", "a"}, {"127.10.1.1", 80, 1, 0, "r", "b"},
  {"127.10.1.2", 80, 1, 0, "r", "b"}, {"127.10.1.3", 80, 1, 0, "r", "b"},
  {"127.10.2.1", 80, 1, 0, "r", "c"}, {"127.10.2.2", 80, 1, 0, "r", "c"},
  {"127.10.2.3", 80, 1, 0, "r", "c"},
};

static void test_zone_aware(void) {
  fx_t f = fx("{\"lb\":{\"policy\":\"random\"}}",
              "{\"region\":\"r\",\"zone\":\"a\"}", zones3, 9);
  /* healthy home zone: all traffic stays in it */
  expect(&f, NULL, 9000,
         (share_t[]){{"127.10.0.1", 1}, {"127.10.0.2", 1}, {"127.10.0.3", 1}}, 3);
  /* 1 of 3 left: 1.4 * 33% = 46.66% stays, the rest goes to b and c */
  down(&f, "127.10.0.2");
  down(&f, "127.10.0.3");
  refresh(&f);
  double rest = (10000.0 - 4666) / 6;
  expect(&f, NULL, 30000,
         (share_t[]){{"127.10.0.1", 4666},
                     {"127.10.1.1", rest},
                     {"127.10.1.2", rest},
                     {"127.10.1.3", rest},
                     {"127.10.2.1", rest},
                     {"127.10.2.2", rest},
                     {"127.10.2.3", rest}},
         7);
  fx_free(&f);
}

static void test_zone_aware_off(void) {
  static const struct {
    const char *json;
    const char *locality;
    size_t nhosts;
  } cases[] = {
    /* disabled */
    {"{\"lb\":{\"policy\":\"random\",\"zone_aware\":{\"enabled\":false}}}",
     "{\"region\":\"r\",\"zone\":\"a\"}", 9},
    /* no caller locality */
    {"{\"lb\":{\"policy\":\"random\"}}", NULL, 9},
    /* fewer usable hosts than min_cluster_size (6) */
    {"{\"lb\":{\"policy\":\"random\"}}", "{\"region\":\"r\",\"zone\":\"a\"}",
     5},
    /* caller's zone has no hosts */
    {"{\"lb\":{\"policy\":\"random\"}}", "{\"region\":\"r\",\"zone\":\"z\"}",
     9},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fx_t f = fx(cases[i].json, cases[i].locality, zones3, cases[i].nhosts);
    unsigned c[9];
    double w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CU_ASSERT_EQUAL(tlb_count(f.t, f.s, NULL, 900 * cases[i].nhosts, c), 0);
    TLB_ASSERT_CHI2(c, w, cases[i].nhosts);
    fx_free(&f);
  }
}

static void test_zone_aware_round_robin(void) {
  /* the home zone keeps its own smooth schedule */
  fx_t f = fx("{}", "{\"zone\":\"b\"}", zones3, 9);
  mesh__host_t *seen[3] = {0};
  for (int i = 0; i < 30; i++) {
    mesh__host_t *h = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, NULL, &h), MESH_OK);
    CU_ASSERT_STRING_EQUAL(h->zone, "b");
    if (i < 3)
      seen[i] = h;
    else
      CU_ASSERT_PTR_EQUAL(h, seen[i % 3]);
  }
  fx_free(&f);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_priority", NULL, NULL);
  CU_add_test(s, "priority failover", test_priority_failover);
  CU_add_test(s, "priority view refresh", test_priority_view_refresh);
  CU_add_test(s, "priority partial", test_priority_partial);
  CU_add_test(s, "priority hash policy", test_priority_hash_policy);
  CU_add_test(s, "panic mode", test_panic_mode);
  CU_add_test(s, "panic disabled", test_panic_disabled);
  CU_add_test(s, "total panic", test_total_panic);
  CU_add_test(s, "locality weighted", test_locality_weighted);
  CU_add_test(s, "locality weighted default", test_locality_weighted_default);
  CU_add_test(s, "zone aware", test_zone_aware);
  CU_add_test(s, "zone aware off", test_zone_aware_off);
  CU_add_test(s, "zone aware round robin", test_zone_aware_round_robin);
}

int main(void) { return th_run_suites("test_lb_priority", add); }
