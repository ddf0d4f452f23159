/* SPDX-License-Identifier: Apache-2.0 */
/* Subsets by labels, weighted splits (90/10 canary), sticky split choice,
 * named subsets per call, empty-subset fallback.  Chi-square at p = 0.001,
 * RNG seeded with TLB_SEED. */
#include "test_lb_util.h"

static const tlb_ep_t canary[] = {
  {"127.10.0.1", 80, 1, 0, NULL, NULL, "{\"version\":\"v1\",\"app\":\"pay\"}"},
  {"127.10.0.2", 80, 1, 0, NULL, NULL, "{\"version\":\"v1\",\"app\":\"pay\"}"},
  {"127.10.0.3", 80, 1, 0, NULL, NULL, "{\"version\":\"v1\",\"app\":\"pay\"}"},
  {"127.10.0.4", 80, 1, 0, NULL, NULL, "{\"version\":\"v2\",\"app\":\"pay\"}"},
  {"127.10.0.5", 80, 1, 0, NULL, NULL, "{\"version\":\"v2\",\"app\":\"pay\"}"},
  {"127.10.0.6", 80, 1, 0, NULL, NULL, NULL},
};

typedef struct fx {
  tlb_svc_t *t;
  mesh__snapshot_t *s;
} fx_t;

static fx_t fx(const char *svc_json) {
  fx_t f;
  mesh__lb_seed(TLB_SEED);
  f.t = tlb_svc(svc_json, NULL);
  f.s = tlb_snap(canary, 6);
  CU_ASSERT_FATAL(f.t && f.s);
  CU_ASSERT_EQUAL(mesh__lb_prepare(&f.t->svc, f.s), MESH_OK);
  return f;
}

static void fx_free(fx_t *f) {
  mesh__snap_release(f->s);
  tlb_svc_free(f->t);
}

static const char *version(const mesh__host_t *h) {
  const char *v = mesh__host_label(h, "version");
  return v ? v : "-";
}

/* Host shares by address order 127.10.0.1 .. 127.10.0.6. */
static void expect(fx_t *f, const mesh__lb_ctx_t *ctx, int picks,
                   const double *w6) {
  unsigned c[6];
  double w[6];
  CU_ASSERT_EQUAL(tlb_count(f->t, f->s, ctx, picks, c), 0);
  for (int i = 0; i < 6; i++) {
    char addr[16];
    snprintf(addr, sizeof addr, "127.10.0.%d", i + 1);
    w[tlb_index(f->s, tlb_find(f->s, addr, 80))] = w6[i];
  }
  TLB_ASSERT_CHI2(c, w, 6);
}

static const char *const split_named =
    "{\"lb\":{\"policy\":\"random\"},"
    "\"subsets\":{\"v1\":{\"version\":\"v1\"},\"v2\":{\"version\":\"v2\"}},"
    "\"split\":[{\"subset\":\"v1\",\"weight\":90},"
    "{\"subset\":\"v2\",\"weight\":10}]}";

static void test_split_90_10(void) {
  static const char *const json[] = {
    split_named,
    /* the same split written inline */
    "{\"lb\":{\"policy\":\"random\"},"
    "\"split\":[{\"subset\":{\"version\":\"v1\"},\"weight\":90},"
    "{\"subset\":{\"version\":\"v2\",\"app\":\"pay\"},\"weight\":10}]}",
  };
  for (size_t i = 0; i < 2; i++) {
    fx_t f = fx(json[i]);
    /* 90% over three v1 hosts, 10% over two v2 hosts, unlabeled never */
    expect(&f, NULL, 30000, (double[]){30, 30, 30, 5, 5, 0});
    fx_free(&f);
  }
}

static void test_split_sticky(void) {
  fx_t f = fx(split_named);
  int v2 = 0;
  for (int k = 0; k < 4000; k++) {
    char key[32];
    int len = snprintf(key, sizeof key, "user-%d", k);
    mesh__lb_ctx_t ctx = {.sticky_key = key, .sticky_key_len = (size_t)len};
    mesh__host_t *h = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, &ctx, &h), MESH_OK);
    const char *first = version(h);
    for (int r = 0; r < 4; r++) { /* same key, same subset, every time */
      CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, &ctx, &h), MESH_OK);
      CU_ASSERT_STRING_EQUAL(version(h), first);
    }
    v2 += !strcmp(first, "v2");
  }
  /* keys split 90/10: 400 +- 5 sigma (sigma = 19) */
  CU_ASSERT(v2 > 305 && v2 < 495);
  fx_free(&f);
}

static void test_named_subset(void) {
  fx_t f = fx(split_named);
  mesh__lb_ctx_t ctx = {.subset = "v2"};
  expect(&f, &ctx, 10000, (double[]){0, 0, 0, 1, 1, 0});
  ctx.subset = "v9";
  mesh__host_t *h = NULL;
  CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, &ctx, &h), MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NULL(h);
  fx_free(&f);
}

static void test_subset_fallback(void) {
  static const char *const base =
      "{\"lb\":{\"policy\":\"random\"%s},"
      "\"split\":[{\"subset\":{\"version\":\"v3\"},\"weight\":1},"
      "{\"subset\":{\"version\":\"v1\"},\"weight\":1}]}";
  char json[512];
  /* "none" (default, Envoy's NO_FALLBACK): the empty half fails */
  snprintf(json, sizeof json, base, "");
  fx_t f = fx(json);
  int fails = 0;
  for (int i = 0; i < 2000; i++) {
    mesh__host_t *h = NULL;
    int rc = mesh__lb_pick(&f.t->svc, f.s, NULL, &h);
    CU_ASSERT(rc == MESH_OK || rc == MESH_ERR_NO_ENDPOINTS);
    if (rc == MESH_OK)
      CU_ASSERT_STRING_EQUAL(version(h), "v1");
    fails += rc != MESH_OK;
  }
  CU_ASSERT(fails > 850 && fails < 1150);
  fx_free(&f);
  /* "any": the empty half uses every host */
  snprintf(json, sizeof json, base, ",\"subset_fallback\":\"any\"");
  f = fx(json);
  expect(&f, NULL, 30000,
         (double[]){0.5 / 3 + 0.5 / 6, 0.5 / 3 + 0.5 / 6, 0.5 / 3 + 0.5 / 6,
                    0.5 / 6, 0.5 / 6, 0.5 / 6});
  fx_free(&f);
}

static void test_subset_health(void) {
  /* A subset whose hosts are all down panics on its own hosts; it does not
   * spill into the other subset. */
  fx_t f = fx(split_named);
  tlb_set_health(tlb_find(f.s, "127.10.0.4", 80), MESH__HEALTH_UNHEALTHY);
  tlb_set_health(tlb_find(f.s, "127.10.0.5", 80), MESH__HEALTH_UNHEALTHY);
  mesh__lb_refresh(f.s, mesh__now_ms());
  expect(&f, NULL, 30000, (double[]){30, 30, 30, 5, 5, 0});
  /* one v1 host down: the two others share v1's 90% */
  tlb_set_health(tlb_find(f.s, "127.10.0.1", 80), MESH__HEALTH_UNHEALTHY);
  mesh__lb_refresh(f.s, mesh__now_ms());
  expect(&f, NULL, 30000, (double[]){0, 45, 45, 5, 5, 0});
  fx_free(&f);
}

static void test_subset_ring_hash(void) {
  /* hash policies build one ring per subset */
  fx_t f = fx("{\"lb\":{\"policy\":\"ring_hash\"},"
              "\"subsets\":{\"v1\":{\"version\":\"v1\"}},"
              "\"split\":[{\"subset\":\"v1\",\"weight\":1}]}");
  for (int k = 0; k < 500; k++) {
    char key[16];
    int len = snprintf(key, sizeof key, "%d", k);
    mesh__lb_ctx_t ctx = {.hash_key = key, .hash_key_len = (size_t)len};
    mesh__host_t *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, &ctx, &a), MESH_OK);
    CU_ASSERT_EQUAL(mesh__lb_pick(&f.t->svc, f.s, &ctx, &b), MESH_OK);
    CU_ASSERT_PTR_EQUAL(a, b);
    CU_ASSERT_STRING_EQUAL(version(a), "v1");
  }
  fx_free(&f);
}

static void test_mesh__subset_match(void) {
  mesh__snapshot_t *s = tlb_snap(canary, 6);
  mesh__lb_subset_t sub = {
    .nlabels = 2,
    .keys = (char *[]){"version", "app"},
    .values = (char *[]){"v2", "pay"},
  };
  CU_ASSERT_TRUE(mesh__subset_match(&sub, tlb_find(s, "127.10.0.4", 80)));
  CU_ASSERT_FALSE(mesh__subset_match(&sub, tlb_find(s, "127.10.0.1", 80)));
  CU_ASSERT_FALSE(mesh__subset_match(&sub, tlb_find(s, "127.10.0.6", 80)));
  sub.nlabels = 0; /* no labels: every host */
  CU_ASSERT_TRUE(mesh__subset_match(&sub, tlb_find(s, "127.10.0.6", 80)));
  mesh__snap_release(s);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_subset", NULL, NULL);
  CU_add_test(s, "split 90/10", test_split_90_10);
  CU_add_test(s, "split sticky", test_split_sticky);
  CU_add_test(s, "named subset", test_named_subset);
  CU_add_test(s, "subset fallback", test_subset_fallback);
  CU_add_test(s, "subset health", test_subset_health);
  CU_add_test(s, "subset ring_hash", test_subset_ring_hash);
  CU_add_test(s, "mesh__subset_match", test_mesh__subset_match);
}

int main(void) { return th_run_suites("test_lb_subset", add); }
