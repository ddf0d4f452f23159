/* SPDX-License-Identifier: Apache-2.0 */
/* The resilience config keys: every error with its JSON path (table), and
 * the values and Envoy defaults that reach the per-service state. */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

#include "resilience/resilience.h"

struct cfg_case {
  const char *svc; /* members of services.s */
  const char *want; /* substring of the first error; NULL: valid */
};

static const struct cfg_case cases[] = {
    {"", NULL},
    {"\"outlier_detection\":{}", NULL},
    {"\"outlier_detection\":[]",
     "services.s.outlier_detection: expected an object, got an array"},
    {"\"outlier_detection\":{\"consecutive_5xxx\":1}",
     "services.s.outlier_detection.consecutive_5xxx: unknown key"},
    {"\"outlier_detection\":{\"max_ejection_percent\":101}",
     "services.s.outlier_detection.max_ejection_percent: 101 is out of range"},
    {"\"outlier_detection\":{\"interval_ms\":0}",
     "services.s.outlier_detection.interval_ms: 0 is out of range"},
    {"\"outlier_detection\":{\"base_ejection_time_ms\":1000,"
     "\"max_ejection_time_ms\":999}",
     "services.s.outlier_detection.max_ejection_time_ms: 999 is smaller than "
     "base_ejection_time_ms (1000)"},
    {"\"outlier_detection\":{\"always_eject_one_host\":1}",
     "services.s.outlier_detection.always_eject_one_host: expected true or "
     "false"},
    {"\"outlier_detection\":{\"enforcing_success_rate\":100.5}",
     "services.s.outlier_detection.enforcing_success_rate: expected an "
     "integer"},
    {"\"health_check\":{\"type\":\"udp\"}",
     "services.s.health_check.type: unknown value \"udp\""},
    {"\"health_check\":{\"type\":\"http\"}",
     "services.s.health_check.path: required when type is \"http\""},
    {"\"health_check\":{\"type\":\"http\",\"path\":\"healthz\"}",
     "services.s.health_check.path: must start with \"/\""},
    {"\"health_check\":{\"type\":\"http\",\"path\":\"/a b\"}",
     "services.s.health_check.path: must start with \"/\", have no spaces"},
    {"\"health_check\":{\"type\":\"tcp\",\"path\":\"/x\"}",
     "services.s.health_check.path: only used when type is \"http\""},
    {"\"health_check\":{\"healthy_threshold\":0}",
     "services.s.health_check.healthy_threshold: 0 is out of range"},
    {"\"health_check\":{\"type\":\"http\",\"path\":\"/healthz\"}", NULL},
    {"\"circuit_breakers\":{\"max_requests\":-1}",
     "services.s.circuit_breakers.max_requests: -1 is out of range"},
    {"\"circuit_breakers\":{\"max_retries\":\"3\"}",
     "services.s.circuit_breakers.max_retries: expected an integer, got a "
     "string"},
    {"\"retry\":{\"retry_on\":[\"5xx\",\"teapot\"]}",
     "services.s.retry.retry_on[1]: unknown value \"teapot\""},
    {"\"retry\":{\"retry_on\":\"5xx\"}",
     "services.s.retry.retry_on: expected an array of strings, got a string"},
    {"\"retry\":{\"retriable_status_codes\":[409,1000]}",
     "services.s.retry.retriable_status_codes[1]: expected an integer status "
     "code in [1, 999]"},
    {"\"retry\":{\"base_interval_ms\":100,\"max_interval_ms\":50}",
     "services.s.retry.max_interval_ms: 50 is smaller than base_interval_ms "
     "(100)"},
    {"\"retry\":{\"num_retries\":101}",
     "services.s.retry.num_retries: 101 is out of range"},
    {"\"retry\":{\"budget\":true}",
     "services.s.retry.budget: expected an object or false"},
    {"\"retry\":{\"budget\":{\"budget_percent\":120}}",
     "services.s.retry.budget.budget_percent: 120 is out of range"},
    {"\"retry\":{\"budget\":{\"min_concurrency\":1}}",
     "services.s.retry.budget.min_concurrency: unknown key"},
    {"\"retry\":{\"budget\":false,\"retry_on\":[]}", NULL},
    {"\"timeouts\":{\"connect_ms\":0}",
     "services.s.timeouts.connect_ms: 0 is out of range"},
    {"\"timeouts\":{\"overall_ms\":0,\"per_try_ms\":0}", NULL},
    {"\"timeouts\":{\"deadline_ms\":5}",
     "services.s.timeouts.deadline_ms: unknown key"},
    {"\"hedge\":{\"max_attempts\":6}",
     "services.s.hedge.max_attempts: 6 is out of range [1, 5]"},
    {"\"hedge\":{\"delay_ms\":-1}", "services.s.hedge.delay_ms: -1 is out of "
                                    "range"},
    {"\"pool\":{\"max_idle\":2000}",
     "services.s.pool.max_idle: 2000 is out of range"},
    {"\"pool\":{\"idle\":1}", "services.s.pool.idle: unknown key"},
};

static void count_err(const char *msg, void *user) {
  (void)msg;
  (*(int *)user)++;
}

static void test_mesh__res_cfg_check_key(void) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char json[1024];
    snprintf(json, sizeof json, "{\"services\":{\"s\":{%s}}}", cases[i].svc);
    mesh_t *m = NULL;
    mesh_status_t st;
    int rc = mesh_new(json, &m, &st);
    bool ok = cases[i].want ? rc == MESH_ERR_CONFIG &&
                                  strstr(st.message, cases[i].want)
                            : rc == MESH_OK;
    if (!ok)
      fprintf(stderr, "case %zu (%s): rc=%d msg=%s\n", i, cases[i].svc, rc,
                      st.message);
    CU_ASSERT_TRUE(ok);
    /* mesh_config_check agrees and counts the same errors */
    int n = 0;
    CU_ASSERT_EQUAL(mesh_config_check(json, count_err, &n),
                    cases[i].want ? n : 0);
    CU_ASSERT_EQUAL(n > 0, cases[i].want != NULL);
    mesh_free(m);
  }
}

static mesh__res_svc_t *rs_of(mesh_t *m) {
  return mesh__service_find(m, "s")->res;
}

static void test_mesh__res_cfg_parse(void) {
  /* no keys: Envoy's defaults, outlier detection and health checks off */
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"services\":{\"s\":{}}}", &m, NULL),
                        MESH_OK);
  const mesh__res_cfg_t *c = rs_of(m)->cfg;
  CU_ASSERT_FALSE(c->od.enabled);
  CU_ASSERT_FALSE(c->hc.enabled);
  CU_ASSERT_FALSE(c->hedge.enabled);
  CU_ASSERT_EQUAL(c->cb.max_connections, 1024);
  CU_ASSERT_EQUAL(c->cb.max_pending_requests, 1024);
  CU_ASSERT_EQUAL(c->cb.max_requests, 1024);
  CU_ASSERT_EQUAL(c->cb.max_retries, 3);
  CU_ASSERT_EQUAL(c->retry.retry_on, MESH__RETRY_CONNECT_FAILURE);
  CU_ASSERT_EQUAL(c->retry.num_retries, 1);
  CU_ASSERT_EQUAL(c->retry.base_interval_ms, 25);
  CU_ASSERT_EQUAL(c->retry.max_interval_ms, 250);
  CU_ASSERT_TRUE(c->retry.budget);
  CU_ASSERT_DOUBLE_EQUAL(c->retry.budget_percent, 20.0, 1e-9);
  CU_ASSERT_EQUAL(c->retry.min_retry_concurrency, 3);
  CU_ASSERT_EQUAL(c->to.connect_ms, 5000);
  CU_ASSERT_EQUAL(c->to.per_try_ms, 0);
  CU_ASSERT_EQUAL(c->to.overall_ms, 15000);
  CU_ASSERT_EQUAL(c->pool.max_idle, 16);
  CU_ASSERT_EQUAL(c->pool.idle_timeout_ms, 3600000);
  mesh_free(m);

  /* services with all defaults share one settings copy (memory at
   * thousands of services); one with any key has its own */
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"services\":{\"s\":{},\"t\":{},"
               "\"u\":{\"retry\":{\"num_retries\":4}}}}",
               &m, NULL),
      MESH_OK);
  const mesh__res_cfg_t *cs = mesh__service_find(m, "s")->res->cfg;
  const mesh__res_cfg_t *ct = mesh__service_find(m, "t")->res->cfg;
  const mesh__res_cfg_t *cu = mesh__service_find(m, "u")->res->cfg;
  CU_ASSERT_PTR_EQUAL(cs, ct);
  CU_ASSERT_PTR_NOT_EQUAL(cs, cu);
  CU_ASSERT_EQUAL(cs->retry.num_retries, 1);
  CU_ASSERT_EQUAL(cu->retry.num_retries, 4);
  mesh_free(m);

  /* "{}" turns outlier detection on with Envoy's numbers */
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"services\":{\"s\":{\"outlier_detection\":{},"
               "\"hedge\":{},\"health_check\":{}}}}",
               &m, NULL),
      MESH_OK);
  c = rs_of(m)->cfg;
  CU_ASSERT_TRUE(c->od.enabled);
  CU_ASSERT_EQUAL(c->od.consecutive_5xx, 5);
  CU_ASSERT_EQUAL(c->od.consecutive_gateway_failure, 5);
  CU_ASSERT_EQUAL(c->od.interval_ms, 10000);
  CU_ASSERT_EQUAL(c->od.base_ejection_time_ms, 30000);
  CU_ASSERT_EQUAL(c->od.max_ejection_time_ms, 300000);
  CU_ASSERT_EQUAL(c->od.max_ejection_percent, 10);
  CU_ASSERT_TRUE(c->od.always_eject_one_host);
  CU_ASSERT_EQUAL(c->od.success_rate_minimum_hosts, 5);
  CU_ASSERT_EQUAL(c->od.success_rate_request_volume, 100);
  CU_ASSERT_EQUAL(c->od.success_rate_stdev_factor, 1900);
  CU_ASSERT_EQUAL(c->od.failure_percentage_threshold, 85);
  CU_ASSERT_EQUAL(c->od.failure_percentage_minimum_hosts, 5);
  CU_ASSERT_EQUAL(c->od.failure_percentage_request_volume, 50);
  CU_ASSERT_EQUAL(c->od.enforcing_consecutive_5xx, 100);
  CU_ASSERT_EQUAL(c->od.enforcing_consecutive_gateway_failure, 0);
  CU_ASSERT_EQUAL(c->od.enforcing_success_rate, 100);
  CU_ASSERT_EQUAL(c->od.enforcing_failure_percentage, 0);
  CU_ASSERT_TRUE(c->hedge.enabled);
  CU_ASSERT_EQUAL(c->hedge.max_attempts, 2);
  CU_ASSERT_TRUE(c->hc.enabled);
  CU_ASSERT_EQUAL(c->hc.type, MESH__HC_TCP);
  CU_ASSERT_EQUAL(c->hc.interval_ms, 10000);
  CU_ASSERT_EQUAL(c->hc.timeout_ms, 1000);
  CU_ASSERT_EQUAL(c->hc.healthy_threshold, 1);
  CU_ASSERT_EQUAL(c->hc.unhealthy_threshold, 3);
  mesh_free(m);

  /* explicit values, and Envoy's derived ones */
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"services\":{\"s\":{\"outlier_detection\":{"
               "\"base_ejection_time_ms\":400000},\"retry\":{\"retry_on\":["
               "\"5xx\",\"retriable-status-codes\"],\"retriable_status_codes\":"
               "[409,429],\"base_interval_ms\":100,\"budget\":false},"
               "\"health_check\":{\"type\":\"http\",\"path\":\"/ready?x=1\"}}}}",
               &m, NULL),
      MESH_OK);
  c = rs_of(m)->cfg;
  /* max_ejection_time defaults to max(300 s, base) */
  CU_ASSERT_EQUAL(c->od.max_ejection_time_ms, 400000);
  CU_ASSERT_EQUAL(c->retry.retry_on,
                  MESH__RETRY_5XX | MESH__RETRY_STATUS_CODES);
  CU_ASSERT_EQUAL(c->retry.ncodes, 2);
  CU_ASSERT_EQUAL(c->retry.codes[1], 429);
  CU_ASSERT_EQUAL(c->retry.max_interval_ms, 1000); /* 10 x base */
  CU_ASSERT_FALSE(c->retry.budget);
  CU_ASSERT_STRING_EQUAL(c->hc.path, "/ready?x=1");
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("call_config", NULL, NULL);
  CU_add_test(s, "mesh__res_cfg_check_key", test_mesh__res_cfg_check_key);
  CU_add_test(s, "mesh__res_cfg_parse", test_mesh__res_cfg_parse);
}

int main(void) { return th_run_suites("test_call_config", add); }
