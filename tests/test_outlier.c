/* SPDX-License-Identifier: Apache-2.0 */
/* Outlier detection: the pure algorithms from tables (Envoy's examples and
 * edge cases), then the live part on real hosts: consecutive errors, the
 * ejection cap on small services, return after the ejection time, the
 * multiplier, success rate and failure percentage sweeps, and concurrent
 * reporting. */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resilience/resilience.h"

static mesh__od_cfg_t od_defaults(void) {
  mesh__res_cfg_t c;
  mesh__res_cfg_defaults(&c);
  c.od.enabled = true;
  return c.od;
}

/* ---- mesh__outcome_status ------------------------------------------------- */

static void test_mesh__outcome_status(void) {
  static const struct {
    int outcome, status, want;
  } cases[] = {
      {MESH__OUT_OK, 0, 200},
      {MESH__OUT_OK, 204, 204},
      {MESH__OUT_OK, 503, 503},
      {MESH__OUT_OK_CLOSE, 404, 404},
      {MESH__OUT_CONNECT_FAILURE, 0, 503},
      {MESH__OUT_RESET, 200, 503},
      {MESH__OUT_TIMEOUT, 0, 504},
      {MESH__OUT_PROTOCOL_ERROR, 0, 500},
      {MESH__OUT_CANCELLED, 500, 0},
      {99, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    CU_ASSERT_EQUAL(mesh__outcome_status(cases[i].outcome, cases[i].status),
                    cases[i].want);
}

/* ---- mesh__od_detect ---------------------------------------------------------- */

#define MAXH 8
struct detect_case {
  const char *name;
  size_t n;
  uint64_t success[MAXH], total[MAXH];
  bool ejected[MAXH];
  unsigned want[MAXH];
  double want_mean, want_thr; /* -1: SR did not run */
};

static const struct detect_case detect_cases[] = {
    /* Envoy's worked example: mean 90, stdev 20, threshold 90-1.9*20 = 52 */
    {"envoy example", 5, {50, 100, 100, 100, 100}, {100, 100, 100, 100, 100},
     {0}, {MESH__OD_FLAG_SR, 0, 0, 0, 0}, 90, 52},
    {"below minimum hosts", 4, {0, 100, 100, 100}, {100, 100, 100, 100},
     {0}, {0, 0, 0, 0}, -1, -1},
    {"one host under request volume", 5, {50, 100, 100, 100, 99},
     {100, 100, 100, 100, 99}, {0}, {0, 0, 0, 0, 0}, -1, -1},
    {"all equal: stdev 0, nobody below the mean", 5,
     {90, 90, 90, 90, 90}, {100, 100, 100, 100, 100}, {0}, {0}, 90, 90},
    {"failure percentage only (volume 50 < 100)", 5,
     {5, 50, 50, 50, 50}, {50, 50, 50, 50, 50}, {0},
     {MESH__OD_FLAG_FP, 0, 0, 0, 0}, -1, -1},
    {"failure percentage at exactly 85%", 5, {15, 100, 100, 100, 100},
     {100, 100, 100, 100, 100}, {0},
     {MESH__OD_FLAG_SR | MESH__OD_FLAG_FP, 0, 0, 0, 0}, 83, 18.4},
    {"failure percentage at 84%: success rate only", 5,
     {16, 100, 100, 100, 100}, {100, 100, 100, 100, 100}, {0},
     {MESH__OD_FLAG_SR, 0, 0, 0, 0}, 83.2, 19.36},
    {"ejected hosts are not evaluated", 6, {0, 50, 100, 100, 100, 100},
     {100, 100, 100, 100, 100, 100}, {true, false, false, false, false, false},
     {0, MESH__OD_FLAG_SR, 0, 0, 0, 0}, 90, 52},
    {"no traffic", 5, {0}, {0}, {0}, {0}, -1, -1},
};

static void test_mesh__od_detect(void) {
  mesh__od_cfg_t cfg = od_defaults();
  for (size_t i = 0; i < sizeof detect_cases / sizeof detect_cases[0]; i++) {
    const struct detect_case *tc = &detect_cases[i];
    mesh__od_sample_t s[MAXH];
    unsigned flags[MAXH];
    for (size_t j = 0; j < tc->n; j++)
      s[j] = (mesh__od_sample_t){tc->success[j], tc->total[j], tc->ejected[j]};
    double mean, thr;
    mesh__od_detect(&cfg, s, tc->n, flags, &mean, &thr);
    for (size_t j = 0; j < tc->n; j++) {
      if (flags[j] != tc->want[j])
        fprintf(stderr, "case \"%s\" host %zu: flags %u, want %u\n", tc->name,
                j, flags[j], tc->want[j]);
      CU_ASSERT_EQUAL(flags[j], tc->want[j]);
    }
    CU_ASSERT_DOUBLE_EQUAL(mean, tc->want_mean, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(thr, tc->want_thr, 1e-6);
  }
}

/* ---- mesh__od_may_eject: the cap, small services included ---------------------- */

static void test_mesh__od_may_eject(void) {
  static const struct {
    size_t total, ejected;
    uint32_t pct;
    bool always_one, want;
  } cases[] = {
      /* Envoy's rule: 100*(ejected+1)/total <= pct.  3 hosts at 10%: 33% */
      {3, 0, 10, false, false},
      /* ... so by default we allow the first one (always_eject_one_host) */
      {3, 0, 10, true, true},
      {3, 1, 10, true, false},
      {9, 0, 10, false, false},
      {10, 0, 10, false, true},
      {10, 1, 10, false, false},
      {10, 1, 10, true, false},
      {15, 1, 10, true, false}, /* 2/15 = 13.3% */
      {20, 1, 10, false, true}, /* 2/20 = 10% */
      {20, 2, 10, false, false},
      {3, 1, 50, false, false}, /* 2/3 = 66% */
      {4, 1, 50, false, true},
      {1, 0, 100, false, true},
      {1, 0, 99, false, false},
      {1, 0, 99, true, true},
      {5, 4, 100, false, true},
      {5, 5, 100, false, false},
      {5, 0, 0, true, false},   /* 0% disables ejection */
      {5, 0, 250, false, true}, /* clamped to 100 */
      {0, 0, 10, true, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bool got = mesh__od_may_eject(cases[i].total, cases[i].ejected,
                                  cases[i].pct, cases[i].always_one);
    if (got != cases[i].want)
      fprintf(stderr, "may_eject case %zu: got %d\n", i, got);
    CU_ASSERT_EQUAL(got, cases[i].want);
  }
}

/* ---- mesh__od_backoff_next / mesh__od_ejection_ms ------------------------------- */

static void test_mesh__od_ejection_ms(void) {
  mesh__od_cfg_t c = od_defaults(); /* 30 s base, 300 s max */
  uint32_t m = 0;
  int64_t want[] = {30000,  60000,  90000,  120000, 150000, 180000, 210000,
                    240000, 270000, 300000, 300000, 300000, 300000};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    m = mesh__od_backoff_next(&c, m);
    CU_ASSERT_EQUAL(mesh__od_ejection_ms(&c, m, 0), want[i]);
  }
  /* the multiplier stops just past the cap, so decay starts near it */
  CU_ASSERT_EQUAL(m, 11);
  CU_ASSERT_EQUAL(mesh__od_ejection_ms(&c, 1, 7), 30007);
  CU_ASSERT_EQUAL(mesh__od_ejection_ms(&c, 0, 0), 0);
  c.base_ejection_time_ms = 100;
  c.max_ejection_time_ms = 250;
  CU_ASSERT_EQUAL(mesh__od_backoff_next(&c, 3), 4); /* 300 < 350 */
  CU_ASSERT_EQUAL(mesh__od_backoff_next(&c, 4), 4); /* 400 >= 350 */
  CU_ASSERT_EQUAL(mesh__od_ejection_ms(&c, 4, 0), 250);
}

/* ---- live: hosts in a snapshot ------------------------------------------------------ */

static mesh__snapshot_t *snap_of(size_t n) {
  mesh__snapshot_t *s = mesh__snap_new(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  for (size_t i = 0; i < n; i++) {
    char addr[32];
    snprintf(addr, sizeof addr, "127.10.0.%zu", i + 1);
    s->hosts[i] = mesh__host_new(addr, 8080);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->hosts[i]);
  }
  s->n = n;
  return s;
}

static mesh__res_svc_t *svc_with(const mesh__od_cfg_t *od) {
  mesh__res_cfg_t c;
  mesh__res_cfg_defaults(&c);
  c.od = *od;
  mesh__res_svc_t *rs = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__res_svc_new(NULL, NULL, "t", &c, &rs), MESH_OK);
  return rs;
}

static void report_n(mesh__res_svc_t *rs, mesh__snapshot_t *s, size_t host,
                     int n, int outcome, int status) {
  for (int i = 0; i < n; i++)
    mesh__od_report(rs, s, s->hosts[host], outcome, status);
}

static void test_mesh__od_report(void) {
  mesh__od_cfg_t od = od_defaults();
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(3);
  int64_t now = mesh__now_ms();

  /* 4 errors, a success, 4 errors: never 5 in a row */
  report_n(rs, s, 0, 4, MESH__OUT_OK, 500);
  report_n(rs, s, 0, 1, MESH__OUT_OK, 200);
  report_n(rs, s, 0, 4, MESH__OUT_RESET, 0);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[0], now));
  /* the 5th consecutive error ejects for base_ejection_time (30 s) */
  report_n(rs, s, 0, 1, MESH__OUT_OK, 500);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  int64_t until = atomic_load(&s->hosts[0]->ejected_until_ms);
  CU_ASSERT(until >= now + 30000 && until <= mesh__now_ms() + 30000);
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_CONSECUTIVE_5XX]), 1);
  CU_ASSERT_FALSE(mesh__host_usable(s->hosts[0], mesh__now_ms()));

  /* a second bad host of 3: the cap (10%, one host allowed) stops it; a
   * connect failure counts as 503, so both consecutive detectors hit it */
  report_n(rs, s, 1, 5, MESH__OUT_CONNECT_FAILURE, 0);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[1], mesh__now_ms()));
  CU_ASSERT_EQUAL(atomic_load(&rs->od_overflow), 2);
  /* cancelled tries say nothing about the host */
  report_n(rs, s, 2, 10, MESH__OUT_CANCELLED, 0);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[2], mesh__now_ms()));

  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_report_small_service_envoy_cap(void) {
  /* always_eject_one_host false is Envoy's exact behaviour: on fewer than
   * 10 hosts at 10%, nothing is ever ejected. */
  mesh__od_cfg_t od = od_defaults();
  od.always_eject_one_host = false;
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(3);
  report_n(rs, s, 0, 20, MESH__OUT_OK, 503);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  /* 4 runs of 5, each hitting both the 5xx and the gateway detector */
  CU_ASSERT_EQUAL(atomic_load(&rs->od_overflow), 8);
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_CONSECUTIVE_5XX]), 0);
  mesh__snap_release(s);
  mesh__res_svc_free(rs);

  /* ... and with 10 hosts one may go */
  rs = svc_with(&od);
  s = snap_of(10);
  report_n(rs, s, 3, 5, MESH__OUT_OK, 503);
  report_n(rs, s, 4, 5, MESH__OUT_OK, 503);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[3], mesh__now_ms()));
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[4], mesh__now_ms()));
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_report_gateway(void) {
  /* Gateway errors are 5xx too: with Envoy's enforcing 0% for the gateway
   * detector, the 5xx detector (same threshold) is the one that ejects. */
  mesh__od_cfg_t od = od_defaults();
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(3);
  report_n(rs, s, 0, 5, MESH__OUT_OK, 502);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  CU_ASSERT_EQUAL(atomic_load(&rs->od_detected[MESH__OD_CONSECUTIVE_GATEWAY]), 1);
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_CONSECUTIVE_GATEWAY]), 0);
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_CONSECUTIVE_5XX]), 1);
  mesh__snap_release(s);
  mesh__res_svc_free(rs);

  /* enforced and lower than consecutive_5xx: the gateway detector wins */
  od.enforcing_consecutive_gateway_failure = 100;
  od.consecutive_gateway_failure = 2;
  rs = svc_with(&od);
  s = snap_of(3);
  report_n(rs, s, 1, 1, MESH__OUT_OK, 504);
  report_n(rs, s, 1, 1, MESH__OUT_OK, 500); /* not a gateway error: resets */
  report_n(rs, s, 1, 1, MESH__OUT_TIMEOUT, 0);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[1], mesh__now_ms()));
  report_n(rs, s, 1, 1, MESH__OUT_OK, 503);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[1], mesh__now_ms()));
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_CONSECUTIVE_GATEWAY]), 1);
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_sweep_return(void) {
  mesh__od_cfg_t od = od_defaults();
  od.base_ejection_time_ms = 1000;
  od.max_ejection_time_ms = 3000;
  od.interval_ms = 500;
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(3);
  mesh__host_t *h = s->hosts[0];

  report_n(rs, s, 0, 5, MESH__OUT_OK, 500);
  int64_t until = atomic_load(&h->ejected_until_ms);
  CU_ASSERT_FATAL(until > 0);
  /* before its time a sweep keeps it out; at its time it returns */
  mesh__od_sweep(rs, s, until - 1);
  CU_ASSERT_TRUE(mesh__od_ejected(h, until - 1));
  mesh__od_sweep(rs, s, until);
  CU_ASSERT_EQUAL(atomic_load(&h->ejected_until_ms), 0);
  CU_ASSERT_TRUE(mesh__host_usable(h, until));
  mesh__res_host_t *rh = mesh__res_host(h);
  CU_ASSERT_EQUAL(rh->backoff, 1);

  /* ejected again at once: twice the base */
  report_n(rs, s, 0, 5, MESH__OUT_OK, 500);
  int64_t t2 = atomic_load(&h->ejected_until_ms);
  int64_t now = mesh__now_ms();
  CU_ASSERT(t2 - now > 1000 && t2 - now <= 2000);
  CU_ASSERT_EQUAL(rh->backoff, 2);
  mesh__od_sweep(rs, s, t2);
  CU_ASSERT_FALSE(mesh__od_ejected(h, t2));
  /* a whole interval in service earns a step back, one per sweep */
  mesh__od_sweep(rs, s, t2 + 499);
  CU_ASSERT_EQUAL(rh->backoff, 2);
  mesh__od_sweep(rs, s, t2 + 500);
  CU_ASSERT_EQUAL(rh->backoff, 1);
  mesh__od_sweep(rs, s, t2 + 1000);
  CU_ASSERT_EQUAL(rh->backoff, 0);
  mesh__od_sweep(rs, s, t2 + 1500);
  CU_ASSERT_EQUAL(rh->backoff, 0);
  CU_ASSERT_EQUAL(rh->num_ejections, 2);

  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_sweep_success_rate(void) {
  mesh__od_cfg_t od = od_defaults();
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(5);
  int64_t now = mesh__now_ms();
  /* host 0 succeeds half the time, the others always; interleaved so the
   * consecutive detector never fires */
  for (int i = 0; i < 100; i++) {
    for (size_t h = 0; h < 5; h++)
      mesh__od_report(rs, s, s->hosts[h], MESH__OUT_OK,
                      h == 0 && i % 2 ? 500 : 200);
  }
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[0], now));
  mesh__od_sweep(rs, s, now);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[0], now));
  CU_ASSERT_DOUBLE_EQUAL(rs->sr_mean, 90, 1e-9);
  CU_ASSERT_DOUBLE_EQUAL(rs->sr_threshold, 52, 1e-9);
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_SUCCESS_RATE]), 1);
  for (size_t h = 1; h < 5; h++)
    CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[h], now));
  /* the next sweep sees an empty interval: no new verdicts */
  mesh__od_sweep(rs, s, now + 1);
  CU_ASSERT_DOUBLE_EQUAL(rs->sr_mean, -1, 1e-9);
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_sweep_failure_percentage(void) {
  mesh__od_cfg_t od = od_defaults();
  od.success_rate_request_volume = 1000; /* keep success rate out of it */
  od.consecutive_5xx = 0;                /* and the consecutive detectors */
  od.consecutive_gateway_failure = 0;
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(5);
  int64_t now = mesh__now_ms();
  for (int i = 0; i < 60; i++)
    for (size_t h = 0; h < 5; h++)
      mesh__od_report(rs, s, s->hosts[h], MESH__OUT_OK,
                      h == 2 && i % 10 ? 500 : 200);
  mesh__od_sweep(rs, s, now);
  /* Envoy's default enforcing_failure_percentage is 0: detected only */
  CU_ASSERT_EQUAL(atomic_load(&rs->od_detected[MESH__OD_FAILURE_PERCENTAGE]), 1);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[2], now));
  mesh__snap_release(s);
  mesh__res_svc_free(rs);

  od.enforcing_failure_percentage = 100;
  rs = svc_with(&od);
  s = snap_of(5);
  for (int i = 0; i < 60; i++)
    for (size_t h = 0; h < 5; h++)
      mesh__od_report(rs, s, s->hosts[h], MESH__OUT_OK,
                      h == 2 && i % 10 ? 500 : 200);
  mesh__od_sweep(rs, s, now);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[2], now));
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_FAILURE_PERCENTAGE]), 1);
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_hc_passed(void) {
  mesh__od_cfg_t od = od_defaults();
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(3);
  report_n(rs, s, 0, 5, MESH__OUT_OK, 500);
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  mesh__od_hc_passed(rs, s->hosts[0], mesh__now_ms());
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  mesh__snap_release(s);
  mesh__res_svc_free(rs);

  od.successful_active_health_check_uneject_host = false;
  rs = svc_with(&od);
  s = snap_of(3);
  report_n(rs, s, 0, 5, MESH__OUT_OK, 500);
  mesh__od_hc_passed(rs, s->hosts[0], mesh__now_ms());
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void test_mesh__od_report_disabled(void) {
  mesh__od_cfg_t od = od_defaults();
  od.enabled = false; /* no "outlier_detection" key: Envoy has no detector */
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(3);
  report_n(rs, s, 0, 50, MESH__OUT_OK, 500);
  CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  CU_ASSERT_PTR_NULL(s->hosts[0]->res);
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

/* ---- concurrent reporting (also run under ThreadSanitizer) ------------------------ */

struct race {
  mesh__res_svc_t *rs;
  mesh__snapshot_t *s;
};

static void *race_main(void *arg) {
  struct race *r = arg;
  for (int i = 0; i < 2000; i++) {
    mesh__host_t *h = r->s->hosts[i % r->s->n];
    mesh__od_report(r->rs, r->s, h, MESH__OUT_OK, h == r->s->hosts[0] ? 500 : 200);
  }
  return NULL;
}

static void test_mesh__od_report_threads(void) {
  mesh__od_cfg_t od = od_defaults();
  mesh__res_svc_t *rs = svc_with(&od);
  mesh__snapshot_t *s = snap_of(4);
  struct race r = {rs, s};
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race_main, &r), 0);
  for (int i = 0; i < 2; i++)
    mesh__od_sweep(rs, s, mesh__now_ms());
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  /* host 0 only ever fails; the others only succeed (consecutive counters
   * are per host, so interleaving cannot reset host 0's run) */
  CU_ASSERT_TRUE(mesh__od_ejected(s->hosts[0], mesh__now_ms()));
  CU_ASSERT_EQUAL(atomic_load(&rs->od_enforced[MESH__OD_CONSECUTIVE_5XX]), 1);
  for (size_t h = 1; h < 4; h++)
    CU_ASSERT_FALSE(mesh__od_ejected(s->hosts[h], mesh__now_ms()));
  mesh__snap_release(s);
  mesh__res_svc_free(rs);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("outlier", NULL, NULL);
  CU_add_test(s, "mesh__outcome_status", test_mesh__outcome_status);
  CU_add_test(s, "mesh__od_detect", test_mesh__od_detect);
  CU_add_test(s, "mesh__od_may_eject", test_mesh__od_may_eject);
  CU_add_test(s, "mesh__od_ejection_ms", test_mesh__od_ejection_ms);
  CU_add_test(s, "mesh__od_report", test_mesh__od_report);
  CU_add_test(s, "mesh__od_report_small_service_envoy_cap",
              test_mesh__od_report_small_service_envoy_cap);
  CU_add_test(s, "mesh__od_report_gateway", test_mesh__od_report_gateway);
  CU_add_test(s, "mesh__od_report_disabled", test_mesh__od_report_disabled);
  CU_add_test(s, "mesh__od_sweep_return", test_mesh__od_sweep_return);
  CU_add_test(s, "mesh__od_sweep_success_rate",
              test_mesh__od_sweep_success_rate);
  CU_add_test(s, "mesh__od_sweep_failure_percentage",
              test_mesh__od_sweep_failure_percentage);
  CU_add_test(s, "mesh__od_hc_passed", test_mesh__od_hc_passed);
  CU_add_test(s, "mesh__od_report_threads", test_mesh__od_report_threads);
}

int main(void) { return th_run_suites("test_outlier", add); }
