/* SPDX-License-Identifier: Apache-2.0 */
/* Retry policy: backoff bounds and spread, which outcomes are retried
 * (Envoy's retry_on semantics), final-status classification, and the retry
 * budget (20% of active + pending, at least 3) against max_retries. */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>

#include "resilience/resilience.h"

static mesh__res_cfg_t defaults(void) {
  mesh__res_cfg_t c;
  mesh__res_cfg_defaults(&c);
  return c;
}

/* ---- mesh__backoff_ms ---------------------------------------------------------- */

static void test_mesh__backoff_ms(void) {
  /* bound per retry with Envoy's defaults: 25, 50, 100, 200, 250, 250 */
  static const int64_t bound[] = {25, 50, 100, 200, 250, 250, 250};
  for (uint32_t r = 0; r < sizeof bound / sizeof bound[0]; r++) {
    int64_t lo = INT64_MAX, hi = -1;
    double sum = 0;
    const int N = 20000;
    for (int i = 0; i < N; i++) {
      int64_t b = mesh__backoff_ms(25, 250, r, mesh__res_rand());
      lo = b < lo ? b : lo;
      hi = b > hi ? b : hi;
      sum += (double)b;
    }
    /* full jitter: uniform in [0, bound) */
    CU_ASSERT(lo >= 0);
    CU_ASSERT(hi < bound[r]);
    CU_ASSERT(lo <= bound[r] / 20);           /* reaches near 0 */
    CU_ASSERT(hi >= bound[r] - bound[r] / 20 - 1); /* and near the top */
    double mean = sum / N, want = (bound[r] - 1) / 2.0;
    /* stdev of the mean is bound/sqrt(12 N) < 0.6 ms; allow 5 of them */
    if (mean < want - 3 || mean > want + 3)
      fprintf(stderr, "retry %u: mean %.2f want %.2f\n", r, mean, want);
    CU_ASSERT(mean > want - 3 && mean < want + 3);
  }
  /* deterministic edges */
  CU_ASSERT_EQUAL(mesh__backoff_ms(25, 250, 0, 24), 24);
  CU_ASSERT_EQUAL(mesh__backoff_ms(25, 250, 0, 25), 0);
  CU_ASSERT_EQUAL(mesh__backoff_ms(25, 250, 40, 249), 249); /* no overflow */
  CU_ASSERT_EQUAL(mesh__backoff_ms(25, 250, 1000000, 250), 0);
  CU_ASSERT_EQUAL(mesh__backoff_ms(0, 250, 3, 12345), 0);
  CU_ASSERT_EQUAL(mesh__backoff_ms(100, 10, 3, 150), 50); /* max < base */
}

/* ---- mesh__retry_wanted ------------------------------------------------------------ */

#define CF MESH__RETRY_CONNECT_FAILURE
#define RS MESH__RETRY_RESET
#define X5 MESH__RETRY_5XX
#define GW MESH__RETRY_GATEWAY_ERROR
#define SC MESH__RETRY_STATUS_CODES

static void test_mesh__retry_wanted(void) {
  static const struct {
    unsigned on;
    int outcome, status;
    bool want;
  } cases[] = {
      {CF, MESH__OUT_CONNECT_FAILURE, 0, true},
      {CF, MESH__OUT_RESET, 0, false},
      {CF, MESH__OUT_TIMEOUT, 0, false},
      {CF, MESH__OUT_OK, 503, false},
      {RS, MESH__OUT_CONNECT_FAILURE, 0, true},
      {RS, MESH__OUT_RESET, 0, true},
      {RS, MESH__OUT_TIMEOUT, 0, true},
      {RS, MESH__OUT_OK, 503, false},
      {X5, MESH__OUT_OK, 500, true},
      {X5, MESH__OUT_OK, 599, true},
      {X5, MESH__OUT_OK, 499, false},
      {X5, MESH__OUT_OK_CLOSE, 503, true},
      {X5, MESH__OUT_RESET, 0, true},
      {X5, MESH__OUT_PROTOCOL_ERROR, 0, true},
      {X5, MESH__OUT_CONNECT_FAILURE, 0, true},
      {GW, MESH__OUT_OK, 500, false},
      {GW, MESH__OUT_OK, 502, true},
      {GW, MESH__OUT_OK, 504, true},
      {GW, MESH__OUT_OK, 505, false},
      {GW, MESH__OUT_TIMEOUT, 0, true},
      {GW, MESH__OUT_PROTOCOL_ERROR, 0, false},
      {SC, MESH__OUT_OK, 409, true},
      {SC, MESH__OUT_OK, 410, false},
      {SC, MESH__OUT_CONNECT_FAILURE, 0, false},
      {CF | SC, MESH__OUT_OK, 200, false},
      {0, MESH__OUT_CONNECT_FAILURE, 0, false},
      {CF | RS | X5 | GW | SC, MESH__OUT_CANCELLED, 503, false},
      {CF | RS | X5 | GW | SC, MESH__OUT_OK, 0, false},
  };
  mesh__retry_cfg_t rc = defaults().retry;
  rc.codes[0] = 409;
  rc.ncodes = 1;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rc.retry_on = cases[i].on;
    bool got = mesh__retry_wanted(&rc, cases[i].outcome, cases[i].status);
    if (got != cases[i].want)
      fprintf(stderr, "retry_wanted case %zu: got %d\n", i, got);
    CU_ASSERT_EQUAL(got, cases[i].want);
  }
}

static void test_mesh__status_is_error(void) {
  mesh__retry_cfg_t rc = defaults().retry;
  CU_ASSERT_TRUE(mesh__status_is_error(&rc, 500));
  CU_ASSERT_TRUE(mesh__status_is_error(&rc, 503));
  CU_ASSERT_FALSE(mesh__status_is_error(&rc, 404));
  CU_ASSERT_FALSE(mesh__status_is_error(&rc, 200));
  CU_ASSERT_FALSE(mesh__status_is_error(&rc, 0));
  rc.codes[0] = 429;
  rc.ncodes = 1;
  CU_ASSERT_FALSE(mesh__status_is_error(&rc, 429)); /* listed, not enabled */
  rc.retry_on |= MESH__RETRY_STATUS_CODES;
  CU_ASSERT_TRUE(mesh__status_is_error(&rc, 429));
}

/* ---- the budget ------------------------------------------------------------------- */

static void test_mesh__retry_limit(void) {
  mesh__res_cfg_t c = defaults();
  static const struct {
    int64_t active, pending, want;
  } cases[] = {
      {0, 0, 3}, {10, 0, 3}, {15, 0, 3}, {20, 0, 4}, {100, 0, 20},
      {90, 10, 20}, {1000, 24, 204}, {-5, 0, 3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CU_ASSERT_EQUAL(mesh__retry_limit(&c.retry, &c.cb, cases[i].active,
                                      cases[i].pending),
                    cases[i].want);
  c.retry.budget_percent = 50;
  c.retry.min_retry_concurrency = 0;
  CU_ASSERT_EQUAL(mesh__retry_limit(&c.retry, &c.cb, 7, 0), 3);
  CU_ASSERT_EQUAL(mesh__retry_limit(&c.retry, &c.cb, 0, 0), 0);
  /* without a budget the max_retries breaker applies, whatever the load */
  c.retry.budget = false;
  c.cb.max_retries = 5;
  CU_ASSERT_EQUAL(mesh__retry_limit(&c.retry, &c.cb, 1000, 0), 5);
  CU_ASSERT_EQUAL(mesh__retry_limit(&c.retry, &c.cb, 0, 0), 5);
}

static void test_mesh__retry_admit(void) {
  mesh__res_cfg_t c = defaults();
  mesh__breakers_t b = {0};
  /* idle service: min_retry_concurrency (3) retries at once */
  CU_ASSERT_TRUE(mesh__retry_admit(&b, &c.retry, &c.cb));
  CU_ASSERT_TRUE(mesh__retry_admit(&b, &c.retry, &c.cb));
  CU_ASSERT_TRUE(mesh__retry_admit(&b, &c.retry, &c.cb));
  CU_ASSERT_FALSE(mesh__retry_admit(&b, &c.retry, &c.cb));
  CU_ASSERT_EQUAL(atomic_load(&b.ov_retries), 1);
  /* more traffic in flight raises the budget: 50 active -> 10 */
  atomic_store(&b.requests, 50);
  for (int i = 0; i < 7; i++)
    CU_ASSERT_TRUE(mesh__retry_admit(&b, &c.retry, &c.cb));
  CU_ASSERT_FALSE(mesh__retry_admit(&b, &c.retry, &c.cb));
  /* a finished retry frees its slot */
  mesh__breaker_give(&b.retries);
  CU_ASSERT_TRUE(mesh__retry_admit(&b, &c.retry, &c.cb));
}

static void add(void) {
  CU_pSuite s = CU_add_suite("retry", NULL, NULL);
  CU_add_test(s, "mesh__backoff_ms", test_mesh__backoff_ms);
  CU_add_test(s, "mesh__retry_wanted", test_mesh__retry_wanted);
  CU_add_test(s, "mesh__status_is_error", test_mesh__status_is_error);
  CU_add_test(s, "mesh__retry_limit", test_mesh__retry_limit);
  CU_add_test(s, "mesh__retry_admit", test_mesh__retry_admit);
}

int main(void) { return th_run_suites("test_retry", add); }
