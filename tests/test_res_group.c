/* SPDX-License-Identifier: Apache-2.0 */
/* Per-group (per-cluster) resilience state (resilience/group.c): one
 * service whose hosts are split into groups by a label, as xds/apply.c
 * does for a route that splits traffic across clusters.  Each group has
 * its own breaker thresholds and counters, outlier detection and connect
 * timeout; a call is bound to one group.  Against real backends (child
 * processes with libmesh's mTLS listener on 127.0.0.1) and blackhole
 * listeners.  The lifecycle tests change and remove a group while calls
 * and pooled connections still hold its counters (run under valgrind /
 * ASan: no use after free, no leak). */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "resilience/resilience.h"
#include "telemetry/telemetry.h"
#include "test_call_backend.h"

#define SVC "web"
#define LATE_CAP_MS 15000 /* "far too late": a hang, not a slow machine */
#define LABEL "xds.cluster"

typedef struct ep {
  int port;
  const char *grp;
} ep_t;

/* A client whose service "web" has endpoints labelled with their group and
 * one subset per group ("a", "b"). */
static mesh_t *client(const ep_t *eps, size_t n) {
  char list[2048] = "";
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    off += (size_t)snprintf(list + off, sizeof list - off,
                            "%s{\"address\":\"127.0.0.1\",\"port\":%d,"
                            "\"labels\":{\"" LABEL "\":\"%s\"}}",
                            i ? "," : "", eps[i].port, eps[i].grp);
  char json[8192];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},%s,\"services\":{\"" SVC "\":{"
           "\"peers\":[\"" TCB_BACKEND_ID "\"],\"discovery\":{\"type\":"
           "\"static\",\"endpoints\":[%s]},\"subsets\":{\"a\":{\"" LABEL
           "\":\"a\"},\"b\":{\"" LABEL "\":\"b\"}}}}}",
           tcb_client_identity(), list);
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "client config: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  return m;
}

static mesh__service_t *svc_of(mesh_t *m) { return mesh__service_find(m, SVC); }
static mesh__res_svc_t *rs_of(mesh_t *m) { return svc_of(m)->res; }

typedef struct reconf_job {
  mesh_t *m;
  const cJSON *o;
  mesh_status_t *st;
  int rc;
} reconf_job_t;

static void reconf_on_loop(void *user) {
  reconf_job_t *j = user;
  j->rc = mesh__res_reconfigure(svc_of(j->m), j->o, j->st);
}

/* Apply a "services.web"-like object (JSON text) on the loop thread, as
 * xds/apply.c does (the sweep timer lives there); returns the code. */
static int reconf(mesh_t *m, const char *json, mesh_status_t *st) {
  cJSON *o = cJSON_Parse(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(o);
  reconf_job_t j = {m, o, st, MESH_ERR_INTERNAL};
  CU_ASSERT_EQUAL(mesh__loop_call(m->loop, reconf_on_loop, &j), MESH_OK);
  cJSON_Delete(o);
  return j.rc;
}

/* The counters of group name in the version in force (borrowed: the test
 * keeps its own reference through grp_ref when it needs it longer). */
static mesh__breakers_t *grp_br(mesh_t *m, const char *name) {
  mesh__res_live_t *l = mesh__res_live_acquire(rs_of(m));
  const mesh__res_grp_t *g = mesh__res_grp_find(l, name);
  mesh__breakers_t *b = g ? g->br : NULL;
  mesh__res_live_release(l);
  return b;
}

static mesh_call_opts_t *opts_subset(const char *subset) {
  mesh_call_opts_t *o = mesh_call_opts_new();
  mesh_call_opts_set_subset(o, subset);
  mesh_call_opts_set_max_retries(o, 0);
  return o;
}

static int call_in(mesh_t *m, const char *subset, tcb_reply_t *r,
                   mesh_status_t *st) {
  mesh_call_opts_t *o = opts_subset(subset);
  memset(r, 0, sizeof *r);
  int rc = mesh_call_do(m, SVC, o, tcb_try, r, st);
  mesh_call_opts_free(o);
  return rc;
}

static mesh__host_t *host_of(mesh_t *m, int port) {
  mesh__snapshot_t *s = mesh__res_snapshot(svc_of(m));
  mesh__host_t *h = NULL;
  for (size_t i = 0; s && i < s->n; i++)
    if (s->hosts[i]->port == port)
      h = s->hosts[i];
  mesh__snap_release(s);
  return h;
}

/* A listener that accepts at the TCP level (kernel backlog) and never
 * speaks TLS: a handshake to it only ends by the connect timeout. */
static int blackhole(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  CU_ASSERT_EQUAL_FATAL(listen(fd, 8), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

/* ---- what readers see: /metrics text and the "resilience" view ---------- */

static char *metrics_text(mesh_t *m) {
  char *t = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL_FATAL(mesh__metrics_render(m, &t, &n), MESH_OK);
  return t;
}

/* The value of the series `name{labels}` (exact) in text; -1 if absent. */
static double series(const char *text, const char *name_labels) {
  size_t n = strlen(name_labels);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, name_labels, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
    p = strchr(p, '\n');
    p = p ? p + 1 : NULL;
  }
  return -1;
}

/* How many lines of text start with prefix. */
static int lines_with(const char *text, const char *prefix) {
  int k = 0;
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p;) {
    k += strncmp(p, prefix, n) == 0;
    p = strchr(p, '\n');
    p = p ? p + 1 : NULL;
  }
  return k;
}

/* Prometheus' own linter accepts the text (as test_metrics checks). */
static void promtool_ok(const char *text) {
  if (!th_require("promtool", "prometheus"))
    return;
  const char *path = th_path("res_group_metrics.txt");
  CU_ASSERT_FATAL(th_write(path, text));
  char cmd[512];
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
  int rc = th_sh(cmd);
  if (rc != 0)
    fprintf(stderr, "promtool rejected:\n%s\n", text);
  CU_ASSERT_EQUAL(rc, 0);
}

/* The "resilience" view's object of service web's cluster name (NULL:
 * the service itself); *doc receives the document to delete. */
static const cJSON *view_of(mesh_t *m, const char *name, cJSON **doc) {
  *doc = mesh__view_render(m, "resilience");
  CU_ASSERT_PTR_NOT_NULL_FATAL(*doc);
  const cJSON *s, *svc = NULL, *c;
  cJSON_ArrayForEach(s, cJSON_GetObjectItem(*doc, "services"))
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(s, "name")), SVC) == 0)
      svc = s;
  CU_ASSERT_PTR_NOT_NULL_FATAL(svc);
  if (!name)
    return svc;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(svc, "clusters"))
    if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")), name) == 0)
      return c;
  return NULL;
}

/* The number at a dotted path ("in_use.requests") of o; -1 if absent. */
static double num_at(const cJSON *o, const char *path) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *k = buf; o && k;) {
    char *dot = strchr(k, '.');
    if (dot)
      *dot = '\0';
    o = cJSON_GetObjectItem(o, k);
    k = dot ? dot + 1 : NULL;
  }
  return cJSON_IsNumber(o) ? o->valuedouble : -1;
}

/* the service's series, and the clusters' (families of their own) */
#define OV "mesh_circuit_breaker_overflows_total{service=\"" SVC "\","
#define EJ "mesh_outlier_ejections_total{service=\"" SVC "\","
#define COV "mesh_cluster_circuit_breaker_overflows_total{service=\"" SVC "\","
#define CEJ "mesh_cluster_outlier_ejections_total{service=\"" SVC "\","

/* ---- configuration ---------------------------------------------------- */

static void test_grp_parse(void) {
  CU_ASSERT_FATAL(tcb_init());
  int port;
  int fd = blackhole(&port);
  ep_t eps[] = {{port, "a"}};
  mesh_t *m = client(eps, 1);
  mesh_status_t st;
  int rc = reconf(m,
                  "{\"group_label\":\"" LABEL "\",\"groups\":{"
                  "\"a\":{\"weight\":1,\"circuit_breakers\":{\"max_requests\":1},"
                  "\"outlier_detection\":{\"consecutive_5xx\":2},"
                  "\"timeouts\":{\"connect_ms\":250}},"
                  "\"b\":{\"weight\":3}}}",
                  &st);
  if (rc != MESH_OK)
    fprintf(stderr, "reconf: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  mesh__res_live_t *l = mesh__res_live_acquire(rs_of(m));
  CU_ASSERT_EQUAL(l->ngrp, 2);
  CU_ASSERT_EQUAL(l->grp_weight, 4);
  const mesh__res_grp_t *a = mesh__res_grp_find(l, "a");
  const mesh__res_grp_t *b = mesh__res_grp_find(l, "b");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_EQUAL(a->cb.max_requests, 1);
  CU_ASSERT_EQUAL(a->cb.max_pending_requests, 1024); /* Envoy's defaults */
  CU_ASSERT_EQUAL(b->cb.max_requests, 1024);
  CU_ASSERT_EQUAL(b->cb.max_retries, 3);
  CU_ASSERT_TRUE(a->od.enabled);
  CU_ASSERT_EQUAL(a->od.consecutive_5xx, 2);
  CU_ASSERT_FALSE(b->od.enabled);
  CU_ASSERT_EQUAL(a->connect_ms, 250);
  CU_ASSERT_EQUAL(b->connect_ms, 5000);
  CU_ASSERT_PTR_NULL(mesh__res_grp_find(l, "c"));
  /* weights: r % 4 in 0 -> a, 1..3 -> b */
  CU_ASSERT_PTR_EQUAL(mesh__res_grp_draw(l, 0), a);
  CU_ASSERT_PTR_EQUAL(mesh__res_grp_draw(l, 1), b);
  CU_ASSERT_PTR_EQUAL(mesh__res_grp_draw(l, 7), b);
  CU_ASSERT_PTR_EQUAL(mesh__res_grp_draw(l, 8), a);
  CU_ASSERT_PTR_EQUAL(mesh__res_grp_of(l, host_of(m, port)), a);
  mesh__res_live_release(l);

  /* bad input: a clear error, and the version in force stays */
  static const struct {
    const char *json, *msg;
  } bad[] = {
      {"{\"group_label\":\"x\",\"groups\":[]}", "groups: must be an object"},
      {"{\"groups\":{}}", "group_label: must be a non-empty string"},
      {"{\"group_label\":\"\",\"groups\":{}}", "group_label"},
      {"{\"group_label\":\"x\",\"groups\":{\"a\":1}}", "groups.a"},
      {"{\"group_label\":\"x\",\"groups\":{\"a\":{\"weight\":-1}}}", "weight"},
      {"{\"group_label\":\"x\",\"groups\":{\"a\":{\"weight\":1.5}}}", "weight"},
      {"{\"group_label\":\"x\",\"groups\":{\"a\":{\"lb\":{}}}}",
       "unknown key \"lb\""},
      {"{\"group_label\":\"x\",\"groups\":{\"a\":{\"circuit_breakers\":"
       "{\"max_requests\":-5}}}}",
       "groups.a.circuit_breakers"},
      {"{\"group_label\":\"x\",\"groups\":{\"a\":{\"timeouts\":"
       "{\"connect_ms\":0}}}}",
       "groups.a.timeouts"},
  };
  mesh__res_live_t *before = mesh__res_live_acquire(rs_of(m));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&st, 0, sizeof st);
    rc = reconf(m, bad[i].json, &st);
    CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
    if (!strstr(st.message, bad[i].msg))
      fprintf(stderr, "vector %zu: \"%s\" lacks \"%s\"\n", i, st.message,
              bad[i].msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, bad[i].msg));
    mesh__res_live_t *now = mesh__res_live_acquire(rs_of(m));
    CU_ASSERT_PTR_EQUAL(now, before);
    mesh__res_live_release(now);
  }
  mesh__res_live_release(before);
  mesh_free(m);
  close(fd);
}

/* ---- breakers ----------------------------------------------------------- */

static void test_grp_breakers(void) {
  tcb_t a1, b1;
  CU_ASSERT_FATAL(tcb_start(&a1, "a1", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b1, "b1", "good", 0));
  ep_t eps[] = {{a1.port, "a"}, {b1.port, "b"}};
  mesh_t *m = client(eps, 2);
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(
      reconf(m,
             "{\"group_label\":\"" LABEL "\",\"groups\":{"
             "\"a\":{\"weight\":1,\"circuit_breakers\":{\"max_requests\":1}},"
             "\"b\":{\"weight\":3}}}",
             &st),
      MESH_OK);
  /* one call in flight on a: a is full, b is not */
  mesh_call_opts_t *oa = opts_subset("a"), *ob = opts_subset("b");
  mesh_call_t *ca = NULL, *cb[3] = {NULL, NULL, NULL}, *extra = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, oa, &ca, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, oa, &extra, &st),
                  MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "cluster \"a\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "max_requests"));
  for (int i = 0; i < 3; i++) {
    int rc = mesh_call_begin(m, SVC, ob, &cb[i], &st);
    if (rc != MESH_OK)
      fprintf(stderr, "b %d: %s\n", i, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
  }
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "a")->requests), 1);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "a")->ov_requests), 1);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "b")->requests), 3);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "b")->ov_requests), 0);
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.requests), 0); /* not shared */
  /* the view: a's thresholds and counters, b's own */
  cJSON *doc;
  const cJSON *va = view_of(m, "a", &doc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(va);
  CU_ASSERT_EQUAL(num_at(va, "weight"), 1);
  CU_ASSERT_EQUAL(num_at(va, "circuit_breakers.max_requests"), 1);
  CU_ASSERT_EQUAL(num_at(va, "circuit_breakers.max_connections"), 1024);
  CU_ASSERT_EQUAL(num_at(va, "in_use.requests"), 1);
  CU_ASSERT_EQUAL(num_at(va, "in_use.pending"), 0);
  CU_ASSERT_EQUAL(num_at(va, "in_use.connections"), 1);
  CU_ASSERT_EQUAL(num_at(va, "overflows.requests"), 1);
  CU_ASSERT_EQUAL(num_at(va, "connect_timeout_ms"), 5000);
  CU_ASSERT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(
      cJSON_GetObjectItem(va, "outlier_detection"), "enabled")));
  cJSON_Delete(doc);
  const cJSON *vb = view_of(m, "b", &doc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vb);
  CU_ASSERT_EQUAL(num_at(vb, "weight"), 3);
  CU_ASSERT_EQUAL(num_at(vb, "circuit_breakers.max_requests"), 1024);
  CU_ASSERT_EQUAL(num_at(vb, "in_use.requests"), 3);
  CU_ASSERT_EQUAL(num_at(vb, "overflows.requests"), 0);
  cJSON_Delete(doc);
  const cJSON *vs = view_of(m, NULL, &doc);
  CU_ASSERT_STRING_EQUAL(
      cJSON_GetStringValue(cJSON_GetObjectItem(vs, "cluster_label")), LABEL);
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(vs, "circuit_breakers"));
  cJSON_Delete(doc);
  /* the metrics: the refusal counted in a's series only */
  char *text = metrics_text(m);
  CU_ASSERT_EQUAL(series(text, COV "cluster=\"a\",limit=\"requests\"}"), 1);
  CU_ASSERT_EQUAL(series(text, COV "cluster=\"b\",limit=\"requests\"}"), 0);
  CU_ASSERT_EQUAL(series(text, COV "cluster=\"a\",limit=\"pending\"}"), 0);
  CU_ASSERT_EQUAL(series(text, OV "limit=\"requests\"}"), 0);
  CU_ASSERT_EQUAL(series(text, CEJ "cluster=\"a\",reason=\"consecutive_5xx\"}"),
                  0);
  promtool_ok(text);
  free(text);
  mesh_call_end(ca, MESH_CALL_OK, 0);
  for (int i = 0; i < 3; i++)
    mesh_call_end(cb[i], MESH_CALL_OK, 0);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "a")->requests), 0);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "b")->requests), 0);
  /* pooled connections are counted in their group */
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "a")->connections), 1);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "b")->connections), 3);

  /* calls without a subset draw their cluster by weight (1:3) and stay
   * on it: 400 calls, a's share 100 expected (binomial sd ~8.7) */
  int na = 0, nb = 0, other = 0;
  for (int i = 0; i < 400; i++) {
    tcb_reply_t r;
    memset(&r, 0, sizeof r);
    int rc = mesh_call_do(m, SVC, NULL, tcb_try, &r, &st);
    if (rc != MESH_OK)
      other++;
    else if (strcmp(r.name, "a1") == 0)
      na++;
    else if (strcmp(r.name, "b1") == 0)
      nb++;
  }
  fprintf(stderr, "split a:b = %d:%d (failed %d)\n", na, nb, other);
  CU_ASSERT_EQUAL(other, 0);
  CU_ASSERT(na >= 60 && na <= 140);
  CU_ASSERT_EQUAL(na + nb, 400);
  mesh_call_opts_free(oa);
  mesh_call_opts_free(ob);
  mesh_free(m);
  tcb_stop(&a1);
  tcb_stop(&b1);
}

/* ---- outlier detection -------------------------------------------------- */

static void test_grp_outlier(void) {
  tcb_t a1, a2, b1, b2;
  CU_ASSERT_FATAL(tcb_start(&a1, "a1", "error", 0));
  CU_ASSERT_FATAL(tcb_start(&a2, "a2", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b1, "b1", "error", 0));
  CU_ASSERT_FATAL(tcb_start(&b2, "b2", "good", 0));
  ep_t eps[] = {{a1.port, "a"}, {a2.port, "a"}, {b1.port, "b"}, {b2.port, "b"}};
  mesh_t *m = client(eps, 4);
  mesh_status_t st;
  /* a ejects after 3 errors; b only after 100 (never here).  The cap
   * (10 %, at least one host) is per cluster. */
  CU_ASSERT_EQUAL_FATAL(
      reconf(m,
             "{\"group_label\":\"" LABEL "\",\"groups\":{"
             "\"a\":{\"weight\":1,\"outlier_detection\":{\"consecutive_5xx\":3,"
             "\"max_ejection_percent\":10}},"
             "\"b\":{\"weight\":1,\"outlier_detection\":{\"consecutive_5xx\":"
             "100,\"max_ejection_percent\":10}}}}",
             &st),
      MESH_OK);
  int64_t now = mesh__now_ms();
  for (int i = 0; i < 20; i++) {
    tcb_reply_t r;
    call_in(m, "a", &r, &st);
    call_in(m, "b", &r, &st);
  }
  now = mesh__now_ms();
  CU_ASSERT_TRUE(mesh__od_ejected(host_of(m, a1.port), now));
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, a2.port), now));
  /* b1 failed 10 times in a row: below b's threshold, whatever a did */
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, b1.port), now));
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, b2.port), now));

  /* b now ejects after 3; a1's ejection does not count against b's cap
   * (one service-wide cap of 10 % would refuse a second host of four) */
  CU_ASSERT_EQUAL_FATAL(
      reconf(m,
             "{\"group_label\":\"" LABEL "\",\"groups\":{"
             "\"a\":{\"weight\":1,\"outlier_detection\":{\"consecutive_5xx\":3,"
             "\"max_ejection_percent\":10}},"
             "\"b\":{\"weight\":1,\"outlier_detection\":{\"consecutive_5xx\":3,"
             "\"max_ejection_percent\":10}}}}",
             &st),
      MESH_OK);
  /* a success resets b1's run of errors (Envoy counts a run up to the
   * threshold exactly), then a new run */
  CU_ASSERT_FATAL(tcb_mode(m, &b1, "good"));
  for (int i = 0; i < 4; i++) {
    tcb_reply_t r;
    CU_ASSERT_EQUAL(call_in(m, "b", &r, &st), MESH_OK);
  }
  CU_ASSERT_FATAL(tcb_mode(m, &b1, "error"));
  for (int i = 0; i < 12; i++) {
    tcb_reply_t r;
    call_in(m, "b", &r, &st);
  }
  now = mesh__now_ms();
  CU_ASSERT_TRUE(mesh__od_ejected(host_of(m, a1.port), now));
  CU_ASSERT_TRUE(mesh__od_ejected(host_of(m, b1.port), now));
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, b2.port), now));
  /* each ejection in its cluster's series; the service's stay 0 */
  char *text = metrics_text(m);
  CU_ASSERT_EQUAL(series(text, CEJ "cluster=\"a\",reason=\"consecutive_5xx\"}"),
                  1);
  CU_ASSERT_EQUAL(series(text, CEJ "cluster=\"b\",reason=\"consecutive_5xx\"}"),
                  1);
  CU_ASSERT_EQUAL(series(text, EJ "reason=\"consecutive_5xx\"}"), 0);
  CU_ASSERT_EQUAL(series(text, CEJ "cluster=\"a\",reason=\"success_rate\"}"), 0);
  promtool_ok(text);
  free(text);
  /* the view: settings and the ejected host per cluster */
  cJSON *doc;
  const cJSON *va = view_of(m, "a", &doc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(va);
  CU_ASSERT_EQUAL(num_at(va, "outlier_detection.consecutive_5xx"), 3);
  CU_ASSERT_EQUAL(num_at(va, "outlier_detection.max_ejection_percent"), 10);
  CU_ASSERT_EQUAL(num_at(va, "outlier_detection.interval_ms"), 10000);
  CU_ASSERT_EQUAL(num_at(va, "ejections_active"), 1);
  const cJSON *ej = cJSON_GetObjectItem(va, "ejected");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(ej), 1);
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetArrayItem(ej, 0)),
                         host_of(m, a1.port)->key);
  cJSON_Delete(doc);
  const cJSON *vb = view_of(m, "b", &doc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(vb);
  ej = cJSON_GetObjectItem(vb, "ejected");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(ej), 1);
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetArrayItem(ej, 0)),
                         host_of(m, b1.port)->key);
  cJSON_Delete(doc);
  /* a sweep runs per cluster: b's success-rate stats are its own */
  mesh__snapshot_t *snap = mesh__res_snapshot(svc_of(m));
  mesh__od_sweep(rs_of(m), snap, now);
  mesh__snap_release(snap);
  pthread_mutex_lock(&rs_of(m)->od_mu);
  CU_ASSERT_NOT_EQUAL(grp_br(m, "a")->od_last_sweep_ms, 0);
  CU_ASSERT_NOT_EQUAL(grp_br(m, "b")->od_last_sweep_ms, 0);
  pthread_mutex_unlock(&rs_of(m)->od_mu);
  mesh_free(m);
  tcb_stop(&a1);
  tcb_stop(&a2);
  tcb_stop(&b1);
  tcb_stop(&b2);
}

/* The statistical detectors (A50's failure percentage) per group: outcomes
 * reported straight to outlier detection, one interval swept.  Group a
 * (2 hosts, minimum_hosts 2) ejects its 100 %-failing host; group b's
 * failing host stays: b has 2 hosts, fewer than its minimum_hosts 3,
 * which a service-wide count (4 hosts) would have met. */
static void test_grp_failure_percentage(void) {
  CU_ASSERT_FATAL(tcb_init());
  ep_t eps[] = {{1001, "a"}, {1002, "a"}, {1003, "b"}, {1004, "b"}};
  mesh_t *m = client(eps, 4);
  mesh_status_t st;
  int rc = reconf(
      m,
      "{\"group_label\":\"" LABEL "\",\"groups\":{"
      "\"a\":{\"weight\":1,\"outlier_detection\":{\"consecutive_5xx\":0,"
      "\"consecutive_gateway_failure\":0,\"enforcing_success_rate\":0,"
      "\"enforcing_failure_percentage\":100,"
      "\"failure_percentage_minimum_hosts\":2,"
      "\"failure_percentage_request_volume\":10,\"max_ejection_percent\":50}},"
      "\"b\":{\"weight\":1,\"outlier_detection\":{\"consecutive_5xx\":0,"
      "\"consecutive_gateway_failure\":0,\"enforcing_success_rate\":0,"
      "\"enforcing_failure_percentage\":100,"
      "\"failure_percentage_minimum_hosts\":3,"
      "\"failure_percentage_request_volume\":10,\"max_ejection_percent\":50}}}}",
      &st);
  if (rc != MESH_OK)
    fprintf(stderr, "reconf: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  mesh__snapshot_t *snap = mesh__res_snapshot(svc_of(m));
  CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
  for (int i = 0; i < 20; i++) {
    mesh__od_report(rs_of(m), snap, host_of(m, 1001), MESH__OUT_OK, 503);
    mesh__od_report(rs_of(m), snap, host_of(m, 1002), MESH__OUT_OK, 200);
    mesh__od_report(rs_of(m), snap, host_of(m, 1003), MESH__OUT_OK, 503);
    mesh__od_report(rs_of(m), snap, host_of(m, 1004), MESH__OUT_OK, 200);
  }
  int64_t now = mesh__now_ms();
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, 1001), now)); /* not yet */
  mesh__od_sweep(rs_of(m), snap, now);
  CU_ASSERT_TRUE(mesh__od_ejected(host_of(m, 1001), now));
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, 1002), now));
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, 1003), now));
  CU_ASSERT_FALSE(mesh__od_ejected(host_of(m, 1004), now));
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->od_enforced[MESH__OD_FAILURE_PERCENTAGE]),
                  1);
  mesh__snap_release(snap);
  mesh_free(m);
}

/* ---- series per cluster are bounded ------------------------------------- */

/* A groups object with n groups named prefix0..prefix(n-1), plus extra
 * (a raw JSON member or ""). */
static char *groups_json(const char *prefix, int n, const char *extra) {
  size_t cap = 64 + (size_t)n * 48 + strlen(extra);
  char *j = malloc(cap);
  CU_ASSERT_PTR_NOT_NULL_FATAL(j);
  size_t off = (size_t)snprintf(j, cap, "{\"group_label\":\"" LABEL
                                        "\",\"groups\":{%s", extra);
  for (int i = 0; i < n; i++)
    off += (size_t)snprintf(j + off, cap - off, "%s\"%s%d\":{\"weight\":1}",
                            i || *extra ? "," : "", prefix, i);
  snprintf(j + off, cap - off, "}}");
  return j;
}

/* A control plane that renames clusters forever: series (which live until
 * mesh_free) stop at MESH__RES_GRP_SERIES_MAX names per service; later
 * names count in the service's series; a name seen before keeps its
 * series.  A name with a comma and a backslash renders escaped. */
static void test_grp_series_cap(void) {
  CU_ASSERT_FATAL(tcb_init());
  ep_t eps[] = {{1001, "g0"}};
  mesh_t *m = client(eps, 1);
  mesh_status_t st;
  char *j = groups_json("g", 39, "\"x,y\\\\z\":{\"weight\":1}");
  CU_ASSERT_EQUAL_FATAL(reconf(m, j, &st), MESH_OK);
  free(j);
  char *text = metrics_text(m);
  int per = MESH__RES_GRP_SERIES_MAX * MESH__BR_LIMITS_;
  CU_ASSERT_EQUAL(lines_with(text, COV "cluster="), per);
  CU_ASSERT_EQUAL(lines_with(text, CEJ "cluster="), per);
  CU_ASSERT_EQUAL(series(text, COV "cluster=\"x,y\\\\z\",limit=\"requests\"}"), 0);
  CU_ASSERT_EQUAL(series(text, COV "cluster=\"g30\",limit=\"requests\"}"), 0);
  CU_ASSERT_EQUAL(series(text, COV "cluster=\"g31\",limit=\"requests\"}"), -1);
  promtool_ok(text);
  free(text);
  CU_ASSERT_PTR_NULL(grp_br(m, "g31")->mx);
  CU_ASSERT_TRUE(grp_br(m, "g31")->mx_done);
  /* 40 new names: no new series */
  j = groups_json("h", 40, "");
  CU_ASSERT_EQUAL_FATAL(reconf(m, j, &st), MESH_OK);
  free(j);
  CU_ASSERT_PTR_NULL(grp_br(m, "h0")->mx);
  /* an old name comes back with fresh counters and its old series */
  j = groups_json("g", 2, "");
  CU_ASSERT_EQUAL_FATAL(reconf(m, j, &st), MESH_OK);
  free(j);
  CU_ASSERT_PTR_NOT_NULL_FATAL(grp_br(m, "g0")->mx);
  CU_ASSERT_PTR_NOT_NULL(grp_br(m, "g0")->mx->ov[MESH__BR_REQUESTS]);
  text = metrics_text(m);
  CU_ASSERT_EQUAL(lines_with(text, COV "cluster="), per);
  CU_ASSERT_EQUAL(lines_with(text, OV "limit="), MESH__BR_LIMITS_);
  free(text);
  CU_ASSERT_EQUAL(rs_of(m)->ngrp_series, MESH__RES_GRP_SERIES_MAX);
  /* back to no groups: the view shows the service's own state again */
  CU_ASSERT_EQUAL_FATAL(reconf(m, "{}", &st), MESH_OK);
  cJSON *doc;
  const cJSON *vs = view_of(m, NULL, &doc);
  CU_ASSERT_EQUAL(num_at(vs, "circuit_breakers.max_requests"), 1024);
  CU_ASSERT_EQUAL(num_at(vs, "in_use.requests"), 0);
  CU_ASSERT_EQUAL(num_at(vs, "connect_timeout_ms"), 5000);
  CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(vs, "clusters")), 0);
  cJSON_Delete(doc);
  mesh_free(m);
}

/* ---- connect timeout ----------------------------------------------------- */

static void test_grp_connect_timeout(void) {
  int pa, pb;
  int fa = blackhole(&pa), fb = blackhole(&pb);
  ep_t eps[] = {{pa, "a"}, {pb, "b"}};
  mesh_t *m = client(eps, 2);
  mesh_status_t st;
  /* far apart, so telling them apart does not depend on the machine */
  CU_ASSERT_EQUAL_FATAL(
      reconf(m,
             "{\"timeouts\":{\"connect_ms\":30000},"
             "\"group_label\":\"" LABEL "\",\"groups\":{"
             "\"a\":{\"weight\":1,\"timeouts\":{\"connect_ms\":100}},"
             "\"b\":{\"weight\":1,\"timeouts\":{\"connect_ms\":2000}}}}",
             &st),
      MESH_OK);
  tcb_reply_t r;
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(call_in(m, "a", &r, &st), MESH_ERR_TIMEOUT);
  int64_t ea = mesh__now_ms() - t0;
  t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(call_in(m, "b", &r, &st), MESH_ERR_TIMEOUT);
  int64_t eb = mesh__now_ms() - t0;
  fprintf(stderr, "connect timeouts: a %lld ms, b %lld ms\n", (long long)ea,
          (long long)eb);
  CU_ASSERT(ea >= 95 && ea < 1900);
  CU_ASSERT(eb >= 1990 && eb < 2000 + LATE_CAP_MS);
  mesh_free(m);
  close(fa);
  close(fb);
}

/* ---- lifecycle: a group changed or removed while calls hold it ----------- */

static void test_grp_lifecycle(void) {
  tcb_t a1, b1;
  CU_ASSERT_FATAL(tcb_start(&a1, "a1", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b1, "b1", "good", 0));
  ep_t eps[] = {{a1.port, "a"}, {b1.port, "b"}};
  mesh_t *m = client(eps, 2);
  mesh_status_t st;
  static const char *v1 =
      "{\"group_label\":\"" LABEL "\",\"groups\":{"
      "\"a\":{\"weight\":1,\"circuit_breakers\":{\"max_requests\":1}},"
      "\"b\":{\"weight\":1}}}";
  static const char *v2 = /* a's threshold changes: same counters */
      "{\"group_label\":\"" LABEL "\",\"groups\":{"
      "\"a\":{\"weight\":1,\"circuit_breakers\":{\"max_requests\":2}},"
      "\"b\":{\"weight\":1}}}";
  static const char *v3 = /* a removed */
      "{\"group_label\":\"" LABEL "\",\"groups\":{\"b\":{\"weight\":1}}}";
  CU_ASSERT_EQUAL_FATAL(reconf(m, v1, &st), MESH_OK);
  mesh__breakers_t *old_a = grp_br(m, "a");
  mesh_call_opts_t *oa = opts_subset("a");
  mesh_call_t *c1 = NULL, *c2 = NULL, *c3 = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_call_begin(m, SVC, oa, &c1, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, oa, &c2, &st), MESH_ERR_CIRCUIT_OPEN);
  /* mid-call change: the counters carry over, the new threshold applies
   * to new calls */
  CU_ASSERT_EQUAL_FATAL(reconf(m, v2, &st), MESH_OK);
  CU_ASSERT_PTR_EQUAL(grp_br(m, "a"), old_a);
  CU_ASSERT_EQUAL(atomic_load(&old_a->requests), 1);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, oa, &c2, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_call_begin(m, SVC, oa, &c3, &st), MESH_ERR_CIRCUIT_OPEN);
  CU_ASSERT_EQUAL(atomic_load(&old_a->requests), 2);
  /* mid-call removal: the calls keep the counters alive until they end */
  CU_ASSERT_EQUAL_FATAL(reconf(m, v3, &st), MESH_OK);
  CU_ASSERT_PTR_NULL(grp_br(m, "a"));
  CU_ASSERT_EQUAL(atomic_load(&old_a->requests), 2); /* still readable */
  CU_ASSERT_EQUAL(mesh_call_end(c1, MESH_CALL_OK, 0), MESH_OK);
  CU_ASSERT_EQUAL(atomic_load(&old_a->requests), 1);
  /* a call to subset "a" now has the service's settings (no group) */
  tcb_reply_t r;
  CU_ASSERT_EQUAL(call_in(m, "a", &r, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(r.name, "a1");
  CU_ASSERT_EQUAL(mesh_call_end(c2, MESH_CALL_OK, 0), MESH_OK);
  /* old_a may be gone now except for the pool of a1 holding it: a group
   * of the same name again is a new one with fresh counters */
  CU_ASSERT_EQUAL_FATAL(reconf(m, v1, &st), MESH_OK);
  mesh__breakers_t *new_a = grp_br(m, "a");
  CU_ASSERT_PTR_NOT_NULL(new_a);
  CU_ASSERT_EQUAL(atomic_load(&new_a->requests), 0);
  CU_ASSERT_EQUAL(call_in(m, "a", &r, &st), MESH_OK);
  CU_ASSERT_EQUAL(atomic_load(&new_a->requests), 0);
  /* back to one cluster: no groups, the service's counters */
  CU_ASSERT_EQUAL_FATAL(reconf(m, "{}", &st), MESH_OK);
  CU_ASSERT_EQUAL(call_in(m, "a", &r, &st), MESH_OK);
  CU_ASSERT_EQUAL(call_in(m, NULL, &r, &st), MESH_OK);
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.requests), 0);
  mesh_call_opts_free(oa);
  mesh_free(m); /* frees the pools, which drop the last references */
  tcb_stop(&a1);
  tcb_stop(&b1);
}

/* Threads call both clusters while the loop... here the test thread, the
 * only writer, flips the groups (changed, removed, re-added) 60 times. */
typedef struct worker {
  mesh_t *m;
  const char *subset;
  int ok, refused, other;
  _Atomic bool *stop;
} worker_t;

static void *work(void *p) {
  worker_t *w = p;
  for (int i = 0; i < 4000 && !atomic_load(w->stop); i++) {
    tcb_reply_t r;
    mesh_status_t st;
    int rc = call_in(w->m, w->subset, &r, &st);
    if (rc == MESH_OK)
      w->ok++;
    else if (rc == MESH_ERR_CIRCUIT_OPEN)
      w->refused++;
    else
      w->other++;
  }
  return NULL;
}

static void test_grp_flips_under_calls(void) {
  tcb_t a1, b1;
  CU_ASSERT_FATAL(tcb_start(&a1, "a1", "good", 0));
  CU_ASSERT_FATAL(tcb_start(&b1, "b1", "good", 0));
  ep_t eps[] = {{a1.port, "a"}, {b1.port, "b"}};
  mesh_t *m = client(eps, 2);
  static const char *const v[] = {
      "{\"group_label\":\"" LABEL "\",\"groups\":{"
      "\"a\":{\"weight\":1,\"circuit_breakers\":{\"max_requests\":1}},"
      "\"b\":{\"weight\":1}}}",
      "{\"group_label\":\"" LABEL "\",\"groups\":{\"b\":{\"weight\":1,"
      "\"outlier_detection\":{\"consecutive_5xx\":2}}}}",
      "{\"group_label\":\"" LABEL "\",\"groups\":{"
      "\"a\":{\"weight\":3,\"timeouts\":{\"connect_ms\":900}},"
      "\"b\":{\"weight\":1,\"circuit_breakers\":{\"max_requests\":2}}}}",
      "{}",
  };
  _Atomic bool stop = false;
  worker_t w[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker_t){m, i % 2 ? "b" : (i == 2 ? NULL : "a"), 0, 0, 0, &stop};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < 60; i++) {
    mesh_status_t st;
    CU_ASSERT_EQUAL(reconf(m, v[i % 4], &st), MESH_OK);
    usleep(5000);
  }
  atomic_store(&stop, true);
  int ok = 0, other = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    ok += w[i].ok;
    other += w[i].other;
  }
  fprintf(stderr, "flips: %d ok, %d other\n", ok, other);
  CU_ASSERT(ok > 0);
  CU_ASSERT_EQUAL(other, 0); /* only breakers may refuse */
  CU_ASSERT_EQUAL(atomic_load(&rs_of(m)->br.requests), 0);
  /* connections are given back to the counters they were taken from: no
   * drift however often a host's group came and went (2 hosts, at most
   * 16 idle each) */
  mesh_status_t st;
  CU_ASSERT_EQUAL(reconf(m, v[0], &st), MESH_OK);
  CU_ASSERT(atomic_load(&rs_of(m)->br.connections) <= 32);
  CU_ASSERT(atomic_load(&grp_br(m, "a")->connections) <= 32);
  CU_ASSERT(atomic_load(&grp_br(m, "b")->connections) <= 32);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "a")->requests), 0);
  CU_ASSERT_EQUAL(atomic_load(&grp_br(m, "b")->requests), 0);
  mesh_free(m);
  tcb_stop(&a1);
  tcb_stop(&b1);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("res_group", NULL, NULL);
  CU_add_test(s, "grp_parse", test_grp_parse);
  CU_add_test(s, "grp_breakers", test_grp_breakers);
  CU_add_test(s, "grp_outlier", test_grp_outlier);
  CU_add_test(s, "grp_failure_percentage", test_grp_failure_percentage);
  CU_add_test(s, "grp_connect_timeout", test_grp_connect_timeout);
  CU_add_test(s, "grp_lifecycle", test_grp_lifecycle);
  CU_add_test(s, "grp_series_cap", test_grp_series_cap);
  CU_add_test(s, "grp_flips_under_calls", test_grp_flips_under_calls);
}

int main(int argc, char **argv) {
  int rc = tcb_maybe_backend(argc, argv);
  if (rc >= 0)
    return rc;
  return th_run_suites("test_res_group", add);
}
