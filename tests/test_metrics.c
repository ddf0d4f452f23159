/* SPDX-License-Identifier: Apache-2.0 */
/* Metrics registry and Prometheus text exposition. */
#include "helpers.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/telemetry.h"
#include "observe/observe.h"

static mesh_t *new_mesh(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json ? json : "{\"worker\":{\"mode\":\"external\"}}", &m,
                    &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

static char *render(mesh_t *m) {
  char *text = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL(mesh__metrics_render(m, &text, &len), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(text);
  if (text)
    CU_ASSERT_EQUAL(strlen(text), len);
  return text;
}

/* ---- registration rules ------------------------------------------------ */

struct reg_case {
  int type;
  const char *name;
  const char *labels;
  bool ok;
};

static const struct reg_case reg_cases[] = {
    {MESH__METRIC_COUNTER, "mesh_calls_total", "service=a,outcome=ok", true},
    {MESH__METRIC_COUNTER, "mesh_calls", "", false},        /* no _total */
    {MESH__METRIC_COUNTER, "calls_total", "", false},       /* no mesh_ */
    {MESH__METRIC_COUNTER, "mesh_bad-name_total", "", false},
    {MESH__METRIC_COUNTER, "mesh_x_total", "9a=1", false},  /* key digit */
    {MESH__METRIC_COUNTER, "mesh_x_total", "__a=1", false}, /* reserved */
    {MESH__METRIC_COUNTER, "mesh_x_total", "a=1,a=2", false}, /* dup key */
    {MESH__METRIC_COUNTER, "mesh_x_total", "a=1,", false},  /* trailing , */
    {MESH__METRIC_COUNTER, "mesh_x_total", "a", false},     /* no = */
    {MESH__METRIC_COUNTER, "mesh_x_total", "=1", false},    /* empty key */
    {MESH__METRIC_COUNTER, "mesh_x_total", "a:b=1", false}, /* colon key */
    {MESH__METRIC_COUNTER, "mesh_y_total", "a=", true},     /* empty value */
    {MESH__METRIC_GAUGE, "mesh_active_connections", "service=a", true},
    {MESH__METRIC_GAUGE, "mesh_g", "le=1", false},          /* le reserved */
    {MESH__METRIC_GAUGE, NULL, "", false},
    {MESH__METRIC_HISTOGRAM, "mesh_call_duration_seconds", "service=a", true},
};

static double fixed_gauge_zero(void *user) {
  (void)user;
  return 0;
}

static mesh__metric_t *reg(mesh_t *m, int type, const char *name,
                           const char *labels) {
  switch (type) {
  case MESH__METRIC_COUNTER:
    return mesh__counter(m, name, "help", labels);
  case MESH__METRIC_GAUGE:
    return mesh__gauge(m, name, "help", labels);
  default:
    return mesh__histogram(m, name, "help", labels, NULL, 0);
  }
}

static void quiet(int level, const char *line, void *user) {
  (void)level;
  (void)line;
  (void)user;
}

static void test_mesh__counter_registration(void) {
  mesh_t *m = new_mesh(NULL);
  mesh_set_log(m, MESH_LOG_ERROR, quiet, NULL);
  for (size_t i = 0; i < sizeof reg_cases / sizeof reg_cases[0]; i++) {
    const struct reg_case *tc = &reg_cases[i];
    mesh__metric_t *h = reg(m, tc->type, tc->name, tc->labels);
    if ((h != NULL) != tc->ok)
      fprintf(stderr, "case %zu (%s {%s}): got %p\n", i,
              tc->name ? tc->name : "NULL", tc->labels, (void *)h);
    CU_ASSERT_EQUAL(h != NULL, tc->ok);
  }
  /* Same name and labels: the same handle. */
  mesh__metric_t *a = mesh__counter(m, "mesh_calls_total", "h",
                                    "service=a,outcome=ok");
  CU_ASSERT_PTR_EQUAL(a, mesh__counter(m, "mesh_calls_total", "h",
                                       "service=a,outcome=ok"));
  CU_ASSERT_PTR_NOT_EQUAL(a, mesh__counter(m, "mesh_calls_total", "h",
                                           "service=b,outcome=ok"));
  /* Type clash and label-key clash fail. */
  CU_ASSERT_PTR_NULL(mesh__gauge(m, "mesh_calls_total", "h", "service=a,outcome=ok"));
  CU_ASSERT_PTR_NULL(mesh__counter(m, "mesh_calls_total", "h", "service=a"));
  CU_ASSERT_PTR_NULL(mesh__counter(m, "mesh_calls_total", "h", "outcome=ok,service=a"));
  /* Histogram bounds: bad ones, and a clash with earlier ones. */
  double bad[] = {1, 0.5};
  double inf[] = {1, INFINITY};
  double other[] = {1, 2};
  CU_ASSERT_PTR_NULL(mesh__histogram(m, "mesh_h1", "h", "", bad, 2));
  CU_ASSERT_PTR_NULL(mesh__histogram(m, "mesh_h2", "h", "", inf, 2));
  CU_ASSERT_PTR_NULL(mesh__histogram(m, "mesh_h3", "h", "", other, 0));
  CU_ASSERT_PTR_NULL(mesh__histogram(m, "mesh_call_duration_seconds", "h",
                                     "service=b", other, 2));
  mesh__metric_t *hb = mesh__histogram(m, "mesh_call_duration_seconds",
                                       "h", "service=b", NULL, 0);
  CU_ASSERT_PTR_NOT_NULL(hb);
  /* An observed histogram (its sum shares storage with a gauge's
   * callback) is found again, and detaching it as a gauge does nothing. */
  mesh__histogram_observe(hb, 0.25);
  CU_ASSERT_PTR_EQUAL(hb, mesh__histogram(m, "mesh_call_duration_seconds",
                                          "h", "service=b", NULL, 0));
  mesh__gauge_func_detach(hb);
  mesh__histogram_observe(hb, 0.5);
  CU_ASSERT_DOUBLE_EQUAL(mesh__histogram_sum(hb), 0.75, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(mesh__metric_value(hb), 2, 1e-12);
  /* A computed gauge cannot take over a stored series, nor the reverse. */
  CU_ASSERT_PTR_NULL(mesh__gauge_func(m, "mesh_active_connections", "h",
                                      "service=a", NULL, NULL));
  mesh_free(m);
}

/* Many series in several families (the index grows many times): every
 * handle is found again, none is confused with a neighbour, and families
 * render their series in registration order. */
static void test_mesh__counter_many_series(void) {
  mesh_t *m = new_mesh(NULL);
  enum { N = 3000 };
  static mesh__metric_t *c[N], *g[N];
  char labels[64];
  for (size_t i = 0; i < N; i++) {
    snprintf(labels, sizeof labels, "service=s%zu", i);
    c[i] = mesh__counter(m, "mesh_t_many_total", "h", labels);
    g[i] = mesh__gauge(m, "mesh_t_many", "h", labels);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g[i]);
    CU_ASSERT_PTR_NOT_EQUAL(c[i], g[i]);
    mesh__counter_add(c[i], i + 1);
  }
  size_t wrong = 0;
  for (size_t i = 0; i < N; i++) {
    snprintf(labels, sizeof labels, "service=s%zu", i);
    wrong += mesh__counter(m, "mesh_t_many_total", "h", labels) != c[i];
    wrong += mesh__gauge(m, "mesh_t_many", "h", labels) != g[i];
    wrong += mesh__metric_value(c[i]) != (double)(i + 1);
  }
  CU_ASSERT_EQUAL(wrong, 0);
  /* A computed gauge cannot take over one of them after the growth. */
  CU_ASSERT_PTR_NULL(mesh__gauge_func(m, "mesh_t_many", "h", "service=s77",
                                      fixed_gauge_zero, NULL));
  char *text = render(m);
  const char *a = text ? strstr(text, "mesh_t_many_total{service=\"s0\"} 1\n")
                       : NULL;
  const char *b = a ? strstr(a, "mesh_t_many_total{service=\"s1\"} 2\n")
                    : NULL;
  const char *z = b ? strstr(b, "mesh_t_many_total{service=\"s2999\"} 3000\n")
                    : NULL;
  CU_ASSERT_PTR_NOT_NULL(z);
  free(text);
  mesh_free(m);
}

static void test_mesh__counter_add_null_safe(void) {
  mesh__counter_add(NULL, 1);
  mesh__gauge_set(NULL, 1);
  mesh__gauge_add(NULL, 1);
  mesh__histogram_observe(NULL, 1);
  CU_ASSERT_EQUAL(mesh__metric_value(NULL), 0);
  CU_ASSERT_PTR_NULL(mesh__counter(NULL, "mesh_a_total", "h", ""));
  /* Updates of the wrong kind are ignored, not misapplied. */
  mesh_t *m = new_mesh(NULL);
  mesh__metric_t *c = mesh__counter(m, "mesh_k_total", "h", "");
  mesh__gauge_set(c, 42);
  mesh__histogram_observe(c, 3);
  CU_ASSERT_EQUAL(mesh__metric_value(c), 0);
  mesh_free(m);
}

/* ---- values and exposition -------------------------------------------- */

static double fixed_gauge(void *user) { return *(double *)user; }

static void test_mesh__metrics_render_exact(void) {
  mesh_t *m = new_mesh(NULL);
  mesh__metric_t *c = mesh__counter(
      m, "mesh_t_calls_total", "Calls \\ by \"service\"\nand outcome.",
      "service=pay\\,ments,outcome=o\"k");
  mesh__counter_add(c, 3);
  mesh__counter_add(c, 4);
  mesh__metric_t *g = mesh__gauge(m, "mesh_t_active", "Active.", "");
  mesh__gauge_set(g, 5);
  mesh__gauge_add(g, -1.5);
  double fixed = 0.1;
  mesh__gauge_func(m, "mesh_t_func", "Computed.", "a=b\\\\c", fixed_gauge,
                   &fixed);
  double bounds[] = {0.1, 1};
  mesh__metric_t *h =
      mesh__histogram(m, "mesh_t_latency_seconds", "Latency.", "svc=x",
                      bounds, 2);
  mesh__histogram_observe(h, 0.05);
  mesh__histogram_observe(h, 0.1); /* le is inclusive */
  mesh__histogram_observe(h, 0.5);
  mesh__histogram_observe(h, 7);
  mesh__histogram_observe(h, NAN); /* ignored */
  CU_ASSERT_EQUAL(mesh__metric_value(c), 7);
  CU_ASSERT_EQUAL(mesh__metric_value(g), 3.5);
  CU_ASSERT_EQUAL(mesh__metric_value(h), 4);
  CU_ASSERT_DOUBLE_EQUAL(mesh__histogram_sum(h), 7.65, 1e-12);

  char *text = render(m);
  const char *want =
      "# HELP mesh_t_calls_total Calls \\\\ by \"service\"\\nand outcome.\n"
      "# TYPE mesh_t_calls_total counter\n"
      "mesh_t_calls_total{service=\"pay,ments\",outcome=\"o\\\"k\"} 7\n"
      "# HELP mesh_t_active Active.\n"
      "# TYPE mesh_t_active gauge\n"
      "mesh_t_active 3.5\n"
      "# HELP mesh_t_func Computed.\n"
      "# TYPE mesh_t_func gauge\n"
      "mesh_t_func{a=\"b\\\\c\"} 0.1\n"
      "# HELP mesh_t_latency_seconds Latency.\n"
      "# TYPE mesh_t_latency_seconds histogram\n"
      "mesh_t_latency_seconds_bucket{svc=\"x\",le=\"0.1\"} 2\n"
      "mesh_t_latency_seconds_bucket{svc=\"x\",le=\"1\"} 3\n"
      "mesh_t_latency_seconds_bucket{svc=\"x\",le=\"+Inf\"} 4\n"
      "mesh_t_latency_seconds_sum{svc=\"x\"} 7.65\n"
      "mesh_t_latency_seconds_count{svc=\"x\"} 4\n";
  CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, want) : NULL);
  if (text && !strstr(text, want))
    fprintf(stderr, "got:\n%s\n", text);
  free(text);
  mesh_free(m);
}

static void test_mesh__fmt_double(void) {
  static const struct {
    double v;
    const char *want;
  } cases[] = {{0, "0"},          {1, "1"},           {0.1, "0.1"},
               {2.5, "2.5"},      {-3, "-3"},         {1e-9, "1e-09"},
               {123456789, "123456789"}, {1.0 / 3, "0.3333333333333333"}};
  char buf[40];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh__fmt_double(buf, sizeof buf, cases[i].v);
    CU_ASSERT_STRING_EQUAL(buf, cases[i].want);
  }
  mesh__fmt_double(buf, sizeof buf, NAN);
  CU_ASSERT_STRING_EQUAL(buf, "NaN");
  mesh__fmt_double(buf, sizeof buf, INFINITY);
  CU_ASSERT_STRING_EQUAL(buf, "+Inf");
  mesh__fmt_double(buf, sizeof buf, -INFINITY);
  CU_ASSERT_STRING_EQUAL(buf, "-Inf");
}

static void test_mesh_metrics_text(void) {
  mesh_t *m = new_mesh(NULL);
  mesh__counter_add(mesh__counter(m, "mesh_pub_total", "Public.", ""), 2);
  size_t need = 0;
  char small[8];
  CU_ASSERT_EQUAL(mesh_metrics_text(m, small, sizeof small, &need),
                  MESH_ERR_BUFFER);
  CU_ASSERT(need > sizeof small);
  char *buf = malloc(need);
  int n = mesh_metrics_text(m, buf, need, NULL);
  CU_ASSERT_EQUAL(n, (int)need - 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "mesh_pub_total 2\n"));
  free(buf);
  CU_ASSERT_EQUAL(mesh_metrics_text(NULL, small, sizeof small, NULL),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_metrics_text(m, NULL, 5, NULL), MESH_ERR_INVALID_ARG);
  mesh_free(m);
}

static void test_metrics_config(void) {
  mesh_t *m = new_mesh("{\"worker\":{\"mode\":\"external\"},"
                       "\"metrics\":{\"latency_buckets\":[0.01,0.1,1]}}");
  mesh__metric_t *h = mesh__histogram(m, "mesh_cfg_seconds", "h", "", NULL, 0);
  mesh__histogram_observe(h, 0.05);
  char *text = render(m);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_cfg_seconds_bucket{le=\"0.01\"} 0\n"
                                      "mesh_cfg_seconds_bucket{le=\"0.1\"} 1\n"
                                      "mesh_cfg_seconds_bucket{le=\"1\"} 1\n"
                                      "mesh_cfg_seconds_bucket{le=\"+Inf\"} 1\n"));
  free(text);
  mesh_free(m);
  static const char *const bad[] = {
      "{\"metrics\":{\"latency_buckets\":[1,0.5]}}",
      "{\"metrics\":{\"latency_buckets\":[]}}",
      "{\"metrics\":{\"latency_buckets\":\"x\"}}",
      "{\"metrics\":{\"buckets\":[1]}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(bad[i], &m, &st), MESH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "metrics."));
  }
}

/* The SVID gauge is always there; NaN while no SVID is loaded. */
static void test_svid_expires_in(void) {
  mesh_t *m = new_mesh(NULL);
  char *text = render(m);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(text, "# TYPE mesh_svid_expires_in_seconds gauge\n"
                   "mesh_svid_expires_in_seconds NaN\n"));
  free(text);
  mesh_free(m);
}

/* ---- concurrency: lock-free updates lose nothing ------------------------- */

struct worker_arg {
  mesh__metric_t *c, *g, *h;
};

#define N_THREADS 4
#define N_ITERS 50000

static void *hammer(void *p) {
  struct worker_arg *a = p;
  for (int i = 0; i < N_ITERS; i++) {
    mesh__counter_add(a->c, 1);
    mesh__gauge_add(a->g, 1);
    mesh__histogram_observe(a->h, 0.001);
  }
  return NULL;
}

static void test_mesh__counter_add_concurrent(void) {
  mesh_t *m = new_mesh(NULL);
  struct worker_arg a = {
      mesh__counter(m, "mesh_cc_total", "h", ""),
      mesh__gauge(m, "mesh_cg", "h", ""),
      mesh__histogram(m, "mesh_ch_seconds", "h", "", NULL, 0),
  };
  pthread_t t[N_THREADS];
  for (int i = 0; i < N_THREADS; i++)
    pthread_create(&t[i], NULL, hammer, &a);
  for (int i = 0; i < N_THREADS; i++)
    pthread_join(t[i], NULL);
  CU_ASSERT_EQUAL(mesh__metric_value(a.c), N_THREADS * N_ITERS);
  CU_ASSERT_EQUAL(mesh__metric_value(a.g), N_THREADS * N_ITERS);
  CU_ASSERT_EQUAL(mesh__metric_value(a.h), N_THREADS * N_ITERS);
  CU_ASSERT_DOUBLE_EQUAL(mesh__histogram_sum(a.h), N_THREADS * N_ITERS * 0.001,
                         1e-6);
  mesh_free(m);
}

/* ---- promtool: Prometheus' own linter accepts our text ------------------- */

static void test_promtool_check_metrics(void) {
  if (!th_require("promtool", "prometheus"))
    return;
  mesh_t *m = new_mesh(NULL);
  mesh__counter_add(mesh__counter(m, "mesh_calls_total",
                                  "Calls by service, endpoint and outcome.",
                                  "service=pay\\,ments,endpoint=[::1]:8443,"
                                  "outcome=o\"k\\\\"),
                    5);
  mesh__gauge_set(mesh__gauge(m, "mesh_active_connections",
                              "Open connections.\nSecond \\ line.",
                              "service=a"),
                  -2.25);
  mesh__metric_t *h = mesh__histogram(m, "mesh_call_duration_seconds",
                                      "Call latency.", "service=a", NULL, 0);
  for (int i = 0; i < 20; i++)
    mesh__histogram_observe(h, i * 0.01);
  mesh__histogram(m, "mesh_call_duration_seconds", "Call latency.",
                  "service=b", NULL, 0);
  char *text = render(m);
  const char *path = th_path("metrics.txt");
  CU_ASSERT_FATAL(th_write(path, text));
  char cmd[512];
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
  int rc = th_sh(cmd);
  if (rc != 0)
    fprintf(stderr, "promtool rejected:\n%s\n", text);
  CU_ASSERT_EQUAL(rc, 0);
  /* And a broken exposition is rejected, so the check can fail. */
  CU_ASSERT_FATAL(th_write(path, "# TYPE x counter\nx{a=\"b} 1\n"));
  CU_ASSERT_NOT_EQUAL(th_sh(cmd), 0);
  free(text);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
  CU_add_test(s, "mesh__counter_registration", test_mesh__counter_registration);
  CU_add_test(s, "mesh__counter_many_series", test_mesh__counter_many_series);
  CU_add_test(s, "mesh__counter_add_null_safe", test_mesh__counter_add_null_safe);
  CU_add_test(s, "mesh__metrics_render_exact", test_mesh__metrics_render_exact);
  CU_add_test(s, "mesh__fmt_double", test_mesh__fmt_double);
  CU_add_test(s, "mesh_metrics_text", test_mesh_metrics_text);
  CU_add_test(s, "metrics_config", test_metrics_config);
  CU_add_test(s, "svid_expires_in", test_svid_expires_in);
  CU_add_test(s, "mesh__counter_add_concurrent", test_mesh__counter_add_concurrent);
  CU_add_test(s, "promtool_check_metrics", test_promtool_check_metrics);
}

int main(void) { return th_run_suites("metrics", add); }
