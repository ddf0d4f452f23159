/* SPDX-License-Identifier: Apache-2.0 */
/* lb configuration: every key validated with its JSON path, defaults, and
 * the service wiring done by mesh_new(). */
#include "test_lb_util.h"

struct cfg_case {
  const char *json;
  int nerr;
  const char *want; /* substring of one reported error ("" for none) */
};

#define SVC(x) "{\"services\":{\"pay\":" x "}}"

static const struct cfg_case cases[] = {
  {SVC("{}"), 0, ""},
  {SVC("{\"lb\":{\"policy\":\"least_request\",\"choice_count\":3,"
       "\"panic_threshold\":0,\"overprovisioning_factor\":100}}"),
   0, ""},
  {SVC("{\"lb\":{\"policy\":\"ring_hash\",\"ring_hash\":"
       "{\"minimum_ring_size\":64,\"maximum_ring_size\":4096}}}"),
   0, ""},
  {SVC("{\"lb\":{\"policy\":\"maglev\",\"maglev\":{\"table_size\":131071}}}"),
   0, ""},
  {SVC("{\"lb\":{\"policy\":\"fastest\"}}"), 1,
   "services.pay.lb.policy: unknown value \"fastest\" (expected one of "
   "\"round_robin\", \"random\", \"least_request\", \"peak_ewma\", "
   "\"ring_hash\", \"maglev\")"},
  {SVC("{\"lb\":{\"polcy\":\"random\"}}"), 1,
   "services.pay.lb.polcy: unknown key"},
  {SVC("{\"lb\":[]}"), 1, "services.pay.lb: expected an object"},
  {SVC("{\"lb\":{\"choice_count\":1}}"), 1,
   "services.pay.lb.choice_count: 1 is out of range [2, 64]"},
  {SVC("{\"lb\":{\"ring_hash\":{\"minimum_ring_size\":20,"
       "\"maximum_ring_size\":10}}}"),
   1, "services.pay.lb.ring_hash: minimum_ring_size (20) > maximum_ring_size "
      "(10)"},
  {SVC("{\"lb\":{\"ring_hash\":{\"maximum_ring_size\":8388609}}}"), 1,
   "services.pay.lb.ring_hash.maximum_ring_size: 8388609 is out of range"},
  {SVC("{\"lb\":{\"ring_hash\":{\"size\":1}}}"), 1,
   "services.pay.lb.ring_hash.size: unknown key"},
  {SVC("{\"lb\":{\"maglev\":{\"table_size\":65536}}}"), 1,
   "services.pay.lb.maglev.table_size: 65536 is not a prime number"},
  {SVC("{\"lb\":{\"panic_threshold\":101}}"), 1,
   "services.pay.lb.panic_threshold: 101 is out of range [0, 100]"},
  {SVC("{\"lb\":{\"overprovisioning_factor\":0}}"), 1,
   "services.pay.lb.overprovisioning_factor: 0 is out of range"},
  {SVC("{\"lb\":{\"locality_weighted\":\"yes\"}}"), 1,
   "services.pay.lb.locality_weighted: expected true or false"},
  {SVC("{\"lb\":{\"locality_weights\":{\"a/b/c/d\":1,\"e\":-1}}}"), 2,
   "services.pay.lb.locality_weights.a/b/c/d: expected \"region\""},
  {SVC("{\"lb\":{\"locality_weights\":[1]}}"), 1,
   "services.pay.lb.locality_weights: expected an object"},
  {SVC("{\"lb\":{\"zone_aware\":{\"enabled\":1,\"min\":2}}}"), 2,
   "services.pay.lb.zone_aware.min: unknown key"},
  {SVC("{\"lb\":{\"subset_fallback\":\"default\"}}"), 1,
   "services.pay.lb.subset_fallback: unknown value \"default\" (expected one "
   "of \"none\", \"any\")"},
  {SVC("{\"subsets\":[]}"), 1, "services.pay.subsets: expected an object"},
  {SVC("{\"subsets\":{\"v1\":{\"version\":1}}}"), 1,
   "services.pay.subsets.v1.version: expected a string label value"},
  {SVC("{\"subsets\":{\"\":{}}}"), 1, "subset name must not be empty"},
  {SVC("{\"split\":{}}"), 1, "services.pay.split: expected an array"},
  {SVC("{\"split\":[{\"subset\":{\"v\":\"1\"}}]}"), 1,
   "services.pay.split[0].weight: required"},
  {SVC("{\"split\":[{\"weight\":1}]}"), 1,
   "services.pay.split[0].subset: required"},
  {SVC("{\"split\":[{\"subset\":5,\"weight\":1,\"x\":0}]}"), 2,
   "services.pay.split[0].x: unknown key"},
  {SVC("{\"split\":[{\"subset\":{\"v\":\"1\"},\"weight\":0}]}"), 1,
   "services.pay.split: the weights must not all be 0"},
  {SVC("{\"split\":[{\"subset\":{\"v\":\"1\"},\"weight\":1.5}]}"), 1,
   "services.pay.split[0].weight: expected an integer"},
  {"{\"locality\":{\"region\":\"eu\",\"zone\":\"eu-1a\"}}", 0, ""},
  {"{\"locality\":{\"zone\":3}}", 1, "locality.zone: expected a string"},
  {"{\"locality\":{\"rack\":\"7\"}}", 1, "locality.rack: unknown key"},
};

struct collected {
  int n;
  bool found;
  const char *want;
};

static void collect(const char *msg, void *user) {
  struct collected *c = user;
  c->n++;
  if (strstr(msg, c->want))
    c->found = true;
  else if (c->want[0])
    fprintf(stderr, "  (also: %s)\n", msg);
}

static void test_mesh_config_check_lb(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct collected c = {.want = cases[i].want, .found = !cases[i].want[0]};
    int n = mesh_config_check(cases[i].json, collect, &c);
    if (n != cases[i].nerr || !c.found)
      fprintf(stderr, "case %zu: %d errors (want %d), found=%d: %s\n", i, n,
              cases[i].nerr, c.found, cases[i].json);
    CU_ASSERT_EQUAL(n, cases[i].nerr);
    CU_ASSERT_TRUE(c.found);
  }
}

static void test_mesh_new_lb(void) {
  mesh_status_t st;
  mesh_t *m = NULL;
  /* a split naming an unknown subset is found when the service is built */
  int rc = mesh_new("{\"worker\":{\"mode\":\"external\"},\"services\":{\"pay\":"
                    "{\"subsets\":{\"v1\":{\"version\":\"v1\"}},"
                    "\"split\":[{\"subset\":\"v2\",\"weight\":1}]}}}",
                    &m, &st);
  CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(
      st.message, "services.pay.split[0].subset: unknown subset \"v2\""));
  /* a good one: the service has its lb config and the snapshot hook */
  rc = mesh_new("{\"worker\":{\"mode\":\"external\"},"
                "\"locality\":{\"region\":\"eu\",\"zone\":\"eu-1b\"},"
                "\"services\":{\"pay\":{\"lb\":{\"policy\":\"maglev\"}},"
                "\"geo\":{}}}",
                &m, &st);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  mesh__service_t *svc = mesh__service_find(m, "pay");
  CU_ASSERT_PTR_NOT_NULL_FATAL(svc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(svc->lb);
  CU_ASSERT_PTR_EQUAL(svc->prepare_snapshot, mesh__lb_prepare);
  const mesh__lb_conf_t *c = &svc->lb->conf;
  CU_ASSERT_EQUAL(c->policy, MESH__LB_MAGLEV);
  CU_ASSERT_EQUAL(c->maglev_size, 65537);
  CU_ASSERT_STRING_EQUAL(c->local_region, "eu");
  CU_ASSERT_STRING_EQUAL(c->local_zone, "eu-1b");
  CU_ASSERT_PTR_NULL(c->local_subzone);
  /* defaults (Envoy) */
  c = &mesh__service_find(m, "geo")->lb->conf;
  CU_ASSERT_EQUAL(c->policy, MESH__LB_ROUND_ROBIN);
  CU_ASSERT_EQUAL(c->choice_count, 2);
  CU_ASSERT_EQUAL(c->ring_min, 1024);
  CU_ASSERT_EQUAL(c->ring_max, 8388608);
  CU_ASSERT_EQUAL(c->overprovisioning, 140);
  CU_ASSERT_EQUAL(c->panic, 50);
  CU_ASSERT_EQUAL(c->zone_min_cluster, 6);
  CU_ASSERT_TRUE(c->zone_aware);
  CU_ASSERT_FALSE(c->locality_weighted);
  CU_ASSERT_EQUAL(c->fallback, MESH__LB_FALLBACK_NONE);
  /* the hook builds state a pick can use */
  mesh__snapshot_t *s = tlb_snap_n(3);
  CU_ASSERT_EQUAL(svc->prepare_snapshot(svc, s), MESH_OK);
  mesh__host_t *h = NULL;
  CU_ASSERT_EQUAL(mesh__lb_pick(svc, s, NULL, &h), MESH_OK);
  CU_ASSERT(tlb_index(s, h) >= 0);
  mesh__snap_release(s);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_config", NULL, NULL);
  CU_add_test(s, "mesh_config_check (lb keys)", test_mesh_config_check_lb);
  CU_add_test(s, "mesh_new (lb service state)", test_mesh_new_lb);
}

int main(void) { return th_run_suites("test_lb_config", add); }
