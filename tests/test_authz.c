/* SPDX-License-Identifier: Apache-2.0 */
/* authz: Istio AuthorizationPolicy semantics (pure evaluation), the config
 * parser, path normalization, CIDR matching, and the part itself (counters,
 * dry-run, logs, reload under load, the callback authorizer).
 *
 * The policy cases are taken from Istio's documentation; each block cites
 * the page.  Where an example uses a feature libmesh does not have (JWT
 * claims), the condition is replaced by a request header and says so. */
#include "helpers.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authz/authz.h"
#include "core/core.h"
#include "telemetry/telemetry.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static mesh__authz_set_t *build(const char *json) {
  cJSON *root = cJSON_Parse(json);
  CU_ASSERT_PTR_NOT_NULL_FATAL(root);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__authz_set_t *s = NULL;
  int rc = mesh__authz_set_build(&c, root, "authz", &s);
  if (rc != MESH_OK)
    fprintf(stderr, "build failed: %s\n", st.message);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  cJSON_Delete(root);
  return s;
}

/* A request as the tables write it; method NULL means not HTTP. */
struct rq {
  const char *principal;
  const char *ip;
  int port;
  const char *method;
  const char *path;
  const char *host;
  const char *h[4]; /* name, value, name, value */
};

static mesh_authz_request_t *mkreq(const struct rq *q) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  if (q->principal)
    CU_ASSERT_EQUAL(mesh_authz_request_set_principal(r, q->principal),
                    MESH_OK);
  if (q->ip)
    CU_ASSERT_EQUAL(mesh_authz_request_set_source_ip(r, q->ip), MESH_OK);
  if (q->port)
    CU_ASSERT_EQUAL(mesh_authz_request_set_port(r, q->port), MESH_OK);
  if (q->method)
    CU_ASSERT_EQUAL(mesh_authz_request_set_http(r, q->method, q->path,
                                                q->host ? q->host : "svc"),
                    MESH_OK);
  for (int i = 0; i < 4 && q->h[i]; i += 2)
    CU_ASSERT_EQUAL(mesh_authz_request_add_header(r, q->h[i], q->h[i + 1]),
                    MESH_OK);
  return r;
}

#define SLEEP "spiffe://cluster.local/ns/default/sa/sleep"
#define ALLOW 1
#define DENY 0

struct pcase {
  int cfg;          /* index into cfgs[] */
  int stage;        /* MESH__AZ_STAGE_* */
  struct rq req;
  int want_allow;
  const char *want_policy; /* deciding policy, "" for a default */
};

static const char *const cfgs[] = {
  /* 0: istio/api security/v1beta1/authorization_policy.proto, first
   * example ("httpbin"): from sa/sleep or namespace test, GET /info* or
   * POST /data, when the JWT issuer is accounts.google.com (here a header
   * x-iss stands in for request.auth.claims[iss]). */
  "{\"policies\":[{\"name\":\"httpbin\",\"action\":\"ALLOW\",\"rules\":[{"
  "\"from\":[{\"source\":{\"principals\":[\"cluster.local/ns/default/sa/"
  "sleep\"]}},{\"source\":{\"namespaces\":[\"test\"]}}],"
  "\"to\":[{\"operation\":{\"methods\":[\"GET\"],\"paths\":[\"/info*\"]}},"
  "{\"operation\":{\"methods\":[\"POST\"],\"paths\":[\"/data\"]}}],"
  "\"when\":[{\"key\":\"request.headers[x-iss]\",\"values\":"
  "[\"https://accounts.google.com\"]}]}]}]}",
  /* 1: same page, second example: DENY requests from namespace dev to
   * POST. */
  "{\"policies\":[{\"name\":\"deny-dev-post\",\"action\":\"DENY\",\"rules\":"
  "[{\"from\":[{\"source\":{\"namespaces\":[\"dev\"]}}],"
  "\"to\":[{\"operation\":{\"methods\":[\"POST\"]}}]}]}]}",
  /* 2: same page: DENY POST on port 8080; "for a DENY rule, missing
   * attributes are treated as matches", so all TCP traffic on 8080 is
   * denied. */
  "{\"policies\":[{\"name\":\"deny-post-8080\",\"action\":\"DENY\","
  "\"rules\":[{\"to\":[{\"operation\":{\"methods\":[\"POST\"],"
  "\"ports\":[\"8080\"]}}]}]}]}",
  /* 3: same page: "allow-nothing" (spec {} is an ALLOW policy that never
   * matches). */
  "{\"policies\":[{\"name\":\"allow-nothing\"}]}",
  /* 4: same page: "allow-all" (rules: [{}] always matches). */
  "{\"policies\":[{\"name\":\"allow-all\",\"rules\":[{}]}]}",
  /* 5: same page, message Source: principal admin or dev, namespace prod
   * or test, ip not 203.0.113.4 (fields ANDed, lists ORed).  Principals are
   * spelled as full Istio principals so namespaces can match too. */
  "{\"policies\":[{\"name\":\"src\",\"rules\":[{\"from\":[{\"source\":{"
  "\"principals\":[\"cluster.local/ns/prod/sa/admin\",\"*/sa/dev\"],"
  "\"namespaces\":[\"prod\",\"test\"],\"notIpBlocks\":[\"203.0.113.4\"]}}]}"
  "]}]}",
  /* 6: same page, message Operation: host suffix .example.com, GET or HEAD,
   * path not prefixed /admin. */
  "{\"policies\":[{\"name\":\"op\",\"rules\":[{\"to\":[{\"operation\":{"
  "\"hosts\":[\"*.example.com\"],\"methods\":[\"GET\",\"HEAD\"],"
  "\"notPaths\":[\"/admin*\"]}}]}]}]}",
  /* 7: istio.io docs/tasks/security/authorization/authz-deny ("Explicit
   * Deny"): deny-method-get denies GET unless x-token is admin;
   * allow-path-ip allows /ip. */
  "{\"policies\":[{\"name\":\"deny-method-get\",\"action\":\"DENY\","
  "\"rules\":[{\"to\":[{\"operation\":{\"methods\":[\"GET\"]}}],"
  "\"when\":[{\"key\":\"request.headers[x-token]\",\"notValues\":"
  "[\"admin\"]}]}]},{\"name\":\"allow-path-ip\",\"action\":\"ALLOW\","
  "\"rules\":[{\"to\":[{\"operation\":{\"paths\":[\"/ip\"]}}]}]}]}",
  /* 8: istio.io docs/tasks/security/authorization/authz-ip (ipBlocks),
   * with an IPv6 block added; flat (non-nested) from/to form. */
  "{\"policies\":[{\"name\":\"ip\",\"rules\":[{\"from\":[{\"ipBlocks\":"
  "[\"127.0.0.0/9\",\"2001:db8::/32\"]}]}]}]}",
  /* 9: istio.io docs/reference/config/security/conditions: source.ip,
   * source.namespace, source.principal, destination.port in `when`. */
  "{\"policies\":[{\"name\":\"cond\",\"rules\":[{\"when\":["
  "{\"key\":\"source.ip\",\"values\":[\"127.1.2.3\",\"127.2.0.0/16\"]},"
  "{\"key\":\"source.namespace\",\"values\":[\"default\"]},"
  "{\"key\":\"source.principal\",\"notValues\":"
  "[\"cluster.local/ns/default/sa/blocked\"]},"
  "{\"key\":\"destination.port\",\"values\":[\"80\",\"443\"]}]}]}]}",
  /* 10: the string forms of message Rule: exact, prefix "abc*" (matches
   * "abc"), suffix "*abc" (matches "abc"), presence "*" (non-empty). */
  "{\"policies\":[{\"name\":\"forms\",\"rules\":[{\"to\":[{\"operation\":{"
  "\"paths\":[\"/exact\",\"/pre*\",\"*.png\"]}}]},{\"when\":[{\"key\":"
  "\"request.headers[x-present]\",\"values\":[\"*\"]}]}]}]}",
  /* 11: CUSTOM (istio/api, Action.CUSTOM: "ext-authz" on paths "/admin/" + "*") with an
   * AUDIT policy (Action.AUDIT: GET under /user/profile/) and an allow-all. */
  "{\"policies\":[{\"name\":\"ext-authz\",\"action\":\"CUSTOM\","
  "\"provider\":\"callback\",\"rules\":[{\"to\":[{\"operation\":{\"paths\":"
  "[\"/admin/*\"]}}]}]},{\"name\":\"audit-profile\",\"action\":\"AUDIT\","
  "\"rules\":[{\"to\":[{\"operation\":{\"methods\":[\"GET\"],\"paths\":"
  "[\"/user/profile/*\"]}}]}]},{\"name\":\"all\",\"rules\":[{}]}]}",
  /* 12: a DENY on principals only, decided at accept. */
  "{\"policies\":[{\"name\":\"deny-ns-dev\",\"action\":\"DENY\",\"rules\":"
  "[{\"from\":[{\"source\":{\"namespaces\":[\"dev\"]}}]}]}]}",
};

#define RQ_SLEEP_GET(path) {SLEEP, "127.0.0.1", 80, "GET", path, NULL, \
    {"x-iss", "https://accounts.google.com"}}
#define REQ MESH__AZ_STAGE_REQUEST
#define CONN MESH__AZ_STAGE_CONN
#define TCP MESH__AZ_STAGE_TCP

static const struct pcase pcases[] = {
  /* cfg 0 */
  {0, REQ, RQ_SLEEP_GET("/info"), ALLOW, "httpbin"},
  {0, REQ, RQ_SLEEP_GET("/info/x?y=1"), ALLOW, "httpbin"},
  {0, REQ, RQ_SLEEP_GET("/data/../info"), ALLOW, "httpbin"},
  {0, REQ, RQ_SLEEP_GET("/%69nfo"), ALLOW, "httpbin"},
  {0, REQ, RQ_SLEEP_GET("/data"), DENY, ""},
  {0, REQ, RQ_SLEEP_GET("/inf"), DENY, ""},
  {0, REQ, {"cluster.local/ns/default/sa/sleep", NULL, 0, "GET", "/info",
            NULL, {"x-iss", "https://accounts.google.com"}}, ALLOW, "httpbin"},
  {0, REQ, {"spiffe://cluster.local/ns/test/sa/any", NULL, 0, "POST",
            "/data", NULL, {"X-Iss", "https://accounts.google.com"}},
   ALLOW, "httpbin"},
  {0, REQ, {"spiffe://cluster.local/ns/test/sa/any", NULL, 0, "POST",
            "/data/", NULL, {"x-iss", "https://accounts.google.com"}},
   DENY, ""},
  {0, REQ, {SLEEP, NULL, 0, "POST", "/info", NULL,
            {"x-iss", "https://accounts.google.com"}}, DENY, ""},
  {0, REQ, {"spiffe://cluster.local/ns/prod/sa/sleep", NULL, 0, "GET",
            "/info", NULL, {"x-iss", "https://accounts.google.com"}},
   DENY, ""},
  {0, REQ, {SLEEP, NULL, 0, "GET", "/info", NULL, {NULL}}, DENY, ""},
  {0, REQ, {SLEEP, NULL, 0, "GET", "/info", NULL,
            {"x-iss", "https://evil.example"}}, DENY, ""},
  {0, REQ, {"", "127.0.0.1", 0, "GET", "/info", NULL,
            {"x-iss", "https://accounts.google.com"}}, DENY, ""},
  /* at accept: sa/sleep may still send a matching request; prod cannot */
  {0, CONN, {SLEEP, "127.0.0.1", 443, NULL}, ALLOW, "httpbin"},
  {0, CONN, {"spiffe://cluster.local/ns/prod/sa/x", "127.0.0.1", 443, NULL},
   DENY, ""},
  /* Istio TCP semantics: an ALLOW rule needing HTTP never matches */
  {0, TCP, {SLEEP, "127.0.0.1", 443, NULL}, DENY, ""},

  /* cfg 1 */
  {1, REQ, {"spiffe://td/ns/dev/sa/a", NULL, 0, "POST", "/", NULL, {NULL}},
   DENY, "deny-dev-post"},
  {1, REQ, {"spiffe://td/ns/dev/sa/a", NULL, 0, "GET", "/", NULL, {NULL}},
   ALLOW, ""},
  {1, REQ, {"spiffe://td/ns/prod/sa/a", NULL, 0, "POST", "/", NULL, {NULL}},
   ALLOW, ""},
  {1, CONN, {"spiffe://td/ns/dev/sa/a", NULL, 0, NULL}, ALLOW, ""},
  {1, TCP, {"spiffe://td/ns/dev/sa/a", NULL, 0, NULL}, DENY,
   "deny-dev-post"},

  /* cfg 2 */
  {2, REQ, {SLEEP, NULL, 8080, "POST", "/", NULL, {NULL}}, DENY,
   "deny-post-8080"},
  {2, REQ, {SLEEP, NULL, 9090, "POST", "/", NULL, {NULL}}, ALLOW, ""},
  {2, REQ, {SLEEP, NULL, 8080, "GET", "/", NULL, {NULL}}, ALLOW, ""},
  {2, TCP, {SLEEP, NULL, 8080, NULL}, DENY, "deny-post-8080"},
  {2, TCP, {SLEEP, NULL, 9090, NULL}, ALLOW, ""},
  {2, CONN, {SLEEP, NULL, 8080, NULL}, ALLOW, ""},

  /* cfg 3, 4 */
  {3, REQ, {SLEEP, NULL, 0, "GET", "/", NULL, {NULL}}, DENY, ""},
  {3, CONN, {SLEEP, NULL, 0, NULL}, DENY, ""},
  {4, REQ, {"", NULL, 0, "GET", "/", NULL, {NULL}}, ALLOW, "allow-all"},
  {4, TCP, {"", NULL, 0, NULL}, ALLOW, "allow-all"},

  /* cfg 5 */
  {5, REQ, {"spiffe://cluster.local/ns/prod/sa/admin", "127.0.0.1", 0, "GET",
            "/", NULL, {NULL}}, ALLOW, "src"},
  {5, REQ, {"spiffe://cluster.local/ns/prod/sa/admin", "203.0.113.4", 0,
            "GET", "/", NULL, {NULL}}, DENY, ""},
  {5, REQ, {"spiffe://cluster.local/ns/test/sa/dev", "127.0.0.1", 0, "GET",
            "/", NULL, {NULL}}, ALLOW, "src"},
  {5, REQ, {"spiffe://cluster.local/ns/staging/sa/dev", "127.0.0.1", 0,
            "GET", "/", NULL, {NULL}}, DENY, ""},
  {5, REQ, {"spiffe://cluster.local/ns/prod/sa/other", "127.0.0.1", 0, "GET",
            "/", NULL, {NULL}}, DENY, ""},
  {5, CONN, {"spiffe://cluster.local/ns/prod/sa/admin", "203.0.113.4", 0,
             NULL}, DENY, ""},
  {5, CONN, {"spiffe://cluster.local/ns/prod/sa/admin", "203.0.113.5", 0,
             NULL}, ALLOW, "src"},

  /* cfg 6 */
  {6, REQ, {SLEEP, NULL, 0, "GET", "/x", "api.example.com", {NULL}}, ALLOW,
   "op"},
  {6, REQ, {SLEEP, NULL, 0, "GET", "/x", "API.Example.COM", {NULL}}, ALLOW,
   "op"},
  {6, REQ, {SLEEP, NULL, 0, "HEAD", "/admin/x", "a.example.com", {NULL}},
   DENY, ""},
  {6, REQ, {SLEEP, NULL, 0, "POST", "/x", "a.example.com", {NULL}}, DENY,
   ""},
  {6, REQ, {SLEEP, NULL, 0, "GET", "/x", "example.org", {NULL}}, DENY, ""},
  {6, REQ, {SLEEP, NULL, 0, "GET", "/admin", "a.example.com", {NULL}}, DENY,
   ""},
  {6, REQ, {SLEEP, NULL, 0, "GET", "/%61dmin", "a.example.com", {NULL}},
   DENY, ""},
  {6, REQ, {SLEEP, NULL, 0, "GET", "//admin", "a.example.com", {NULL}}, DENY,
   ""},
  {6, REQ, {SLEEP, NULL, 0, "GET", "/x/../admin/", "a.example.com", {NULL}},
   DENY, ""},
  {6, REQ, {SLEEP, NULL, 0, "GET", "/x/./y", "a.example.com", {NULL}}, ALLOW,
   "op"},

  /* cfg 7 */
  {7, REQ, {SLEEP, NULL, 0, "GET", "/ip", NULL, {"x-token", "admin"}}, ALLOW,
   "allow-path-ip"},
  {7, REQ, {SLEEP, NULL, 0, "GET", "/ip", NULL, {"x-token", "guest"}}, DENY,
   "deny-method-get"},
  {7, REQ, {SLEEP, NULL, 0, "GET", "/get", NULL, {"x-token", "admin"}}, DENY,
   ""},
  {7, REQ, {SLEEP, NULL, 0, "POST", "/ip", NULL, {NULL}}, ALLOW,
   "allow-path-ip"},
  {7, REQ, {SLEEP, NULL, 0, "GET", "/ip", NULL, {NULL}}, DENY,
   "deny-method-get"},
  /* a second copy joins as "admin,guest" (Envoy): no longer admin */
  {7, REQ, {SLEEP, NULL, 0, "GET", "/ip", NULL,
            {"x-token", "admin", "X-Token", "guest"}}, DENY,
   "deny-method-get"},
  {7, CONN, {SLEEP, NULL, 0, NULL}, ALLOW, "allow-path-ip"},

  /* cfg 8 */
  {8, REQ, {SLEEP, "127.1.2.3", 0, "GET", "/", NULL, {NULL}}, ALLOW, "ip"},
  {8, REQ, {SLEEP, "127.128.0.1", 0, "GET", "/", NULL, {NULL}}, DENY, ""},
  {8, REQ, {SLEEP, "2001:db8::1", 0, "GET", "/", NULL, {NULL}}, ALLOW, "ip"},
  {8, REQ, {SLEEP, "::ffff:127.0.0.5", 0, "GET", "/", NULL, {NULL}}, ALLOW,
   "ip"},
  {8, REQ, {SLEEP, "2001:db9::1", 0, "GET", "/", NULL, {NULL}}, DENY, ""},
  {8, REQ, {SLEEP, NULL, 0, "GET", "/", NULL, {NULL}}, DENY, ""},
  {8, CONN, {SLEEP, "127.128.0.1", 0, NULL}, DENY, ""},

  /* cfg 9 */
  {9, REQ, {SLEEP, "127.2.9.9", 443, "GET", "/", NULL, {NULL}}, ALLOW, "cond"},
  {9, REQ, {SLEEP, "127.1.2.3", 80, NULL}, ALLOW, "cond"},
  {9, REQ, {SLEEP, "127.1.2.4", 80, NULL}, DENY, ""},
  {9, REQ, {SLEEP, "127.1.2.3", 8080, NULL}, DENY, ""},
  {9, REQ, {"spiffe://cluster.local/ns/default/sa/blocked", "127.1.2.3", 80,
            NULL}, DENY, ""},
  {9, REQ, {"spiffe://cluster.local/ns/other/sa/sleep", "127.1.2.3", 80,
            NULL}, DENY, ""},

  /* cfg 10 */
  {10, REQ, {SLEEP, NULL, 0, "GET", "/exact", NULL, {NULL}}, ALLOW, "forms"},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/exact/", NULL, {NULL}}, DENY, ""},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/pre", NULL, {NULL}}, ALLOW, "forms"},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/prefix", NULL, {NULL}}, ALLOW, "forms"},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/a/b.png", NULL, {NULL}}, ALLOW,
   "forms"},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/a/b.PNG", NULL, {NULL}}, DENY, ""},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/x", NULL, {"x-present", "1"}}, ALLOW,
   "forms"},
  {10, REQ, {SLEEP, NULL, 0, "GET", "/x", NULL, {"x-present", ""}}, DENY,
   ""},

  /* cfg 12 */
  {12, CONN, {"spiffe://td/ns/dev/sa/a", NULL, 0, NULL}, DENY,
   "deny-ns-dev"},
  {12, CONN, {"spiffe://td/ns/devx/sa/a", NULL, 0, NULL}, ALLOW, ""},
  {12, CONN, {"spiffe://td/x/ns/dev", NULL, 0, NULL}, ALLOW, ""},
};

static void test_mesh__authz_eval_istio_cases(void) {
  mesh__authz_set_t *sets[N(cfgs)];
  for (size_t i = 0; i < N(cfgs); i++) {
    sets[i] = build(cfgs[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sets[i]);
  }
  for (size_t i = 0; i < N(pcases); i++) {
    const struct pcase *tc = &pcases[i];
    mesh_authz_request_t *r = mkreq(&tc->req);
    mesh__authz_result_t res;
    mesh__authz_eval(sets[tc->cfg], r, tc->stage, &res);
    bool allow = res.decision == MESH__AZ_DECIDE_ALLOW;
    if (allow != (tc->want_allow == ALLOW) ||
        strcmp(res.policy, tc->want_policy) != 0)
      fprintf(stderr, "case %zu (cfg %d): allow=%d policy=%s reason=%s\n", i,
              tc->cfg, allow, res.policy, res.reason);
    CU_ASSERT_EQUAL(allow, tc->want_allow == ALLOW);
    CU_ASSERT_STRING_EQUAL(res.policy, tc->want_policy);
    mesh_authz_request_free(r);
  }
  for (size_t i = 0; i < N(cfgs); i++)
    mesh__authz_set_unref(sets[i]);
}

/* Istio matches namespaces with ".*" "/ns/<ns>/" ".*" over the whole
 * principal ("*" in the pattern as ".*"), not with the first /ns/ segment
 * alone: every /ns/ segment counts, and one needs a "/" after it. */
static void test_mesh__az_ns_match(void) {
  static const struct {
    const char *pattern, *principal;
    bool match;
  } cases[] = {
      {"b", "spiffe://td/ns/b/sa/x", true},
      {"b", "spiffe://td/ns/a/sa/x/ns/b/y", true},
      {"b", "spiffe://td/sa/x/ns/b/y", true},
      {"b", "spiffe://td/ns/b", false},
      {"b", "spiffe://td/ns/bb/sa/x", false},
      {"b", "spiffe://td/xns/b/sa/x", false},
      {"b", "", false},
      {"pro*", "spiffe://td/ns/prod/sa/x", true},
      {"pro*", "spiffe://td/ns/a/sa/ns/pro/x", true},
      {"pro*", "spiffe://td/ns/pro", false},
      {"*-dev", "spiffe://td/ns/shop-dev/sa/x", true},
      {"*-dev", "spiffe://td/ns/a/b-dev/x", true}, /* ".*" spans segments */
      {"*-dev", "spiffe://td/ns/shop-dev", false},
      {"*", "spiffe://td/ns/a/sa/x", true},
      {"*", "spiffe://td/ns/a", false},
      {"*", "spiffe://td/sa/x", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char json[256];
    snprintf(json, sizeof json,
             "{\"policies\":[{\"name\":\"p\",\"rules\":[{\"from\":[{"
             "\"source\":{\"namespaces\":[\"%s\"]}}]}]}]}",
             cases[i].pattern);
    mesh__authz_set_t *s = build(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const mesh__az_str_t *m = &s->policies[0].rules[0].from[0].namespaces.v[0];
    bool got = mesh__az_ns_match(m, cases[i].principal);
    if (got != cases[i].match)
      fprintf(stderr, "ns case %zu: %s vs %s: %d\n", i, cases[i].pattern,
              cases[i].principal, got);
    CU_ASSERT_EQUAL(got, cases[i].match);
    /* the same through evaluation: ALLOW on namespaces, and a condition */
    mesh_authz_request_t *r = mesh_authz_request_new();
    mesh_authz_request_set_principal(r, cases[i].principal);
    mesh__authz_result_t res;
    mesh__authz_eval(s, r, MESH__AZ_STAGE_TCP, &res);
    CU_ASSERT_EQUAL(res.decision == MESH__AZ_DECIDE_ALLOW, cases[i].match);
    mesh__authz_set_unref(s);
    snprintf(json, sizeof json,
             "{\"policies\":[{\"name\":\"d\",\"action\":\"DENY\",\"rules\":"
             "[{\"when\":[{\"key\":\"source.namespace\",\"values\":[\"%s\"]}]}"
             "]}]}",
             cases[i].pattern);
    s = build(json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    mesh__authz_eval(s, r, MESH__AZ_STAGE_TCP, &res);
    CU_ASSERT_EQUAL(res.decision == MESH__AZ_DECIDE_DENY, cases[i].match);
    mesh__authz_set_unref(s);
    mesh_authz_request_free(r);
  }
}

static void test_mesh__authz_eval_custom_audit(void) {
  mesh__authz_set_t *s = build(cfgs[11]);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s);
  struct {
    struct rq req;
    int stage;
    bool custom, audit;
  } cases[] = {
    {{SLEEP, NULL, 0, "GET", "/admin/users", NULL, {NULL}}, REQ, true, false},
    {{SLEEP, NULL, 0, "GET", "/user/profile/1", NULL, {NULL}}, REQ, false,
     true},
    {{SLEEP, NULL, 0, "POST", "/user/profile/1", NULL, {NULL}}, REQ, false,
     false},
    {{SLEEP, NULL, 0, "GET", "/other", NULL, {NULL}}, REQ, false, false},
    /* CUSTOM waits for the request at accept, but TCP asks at once */
    {{SLEEP, NULL, 0, NULL}, CONN, false, false},
    {{SLEEP, NULL, 0, NULL}, TCP, true, false},
  };
  for (size_t i = 0; i < N(cases); i++) {
    mesh_authz_request_t *r = mkreq(&cases[i].req);
    mesh__authz_result_t res;
    mesh__authz_eval(s, r, cases[i].stage, &res);
    const mesh__az_policy_t *c = res.custom[MESH__AZ_PROVIDER_CALLBACK];
    CU_ASSERT_EQUAL(c != NULL, cases[i].custom);
    if (c)
      CU_ASSERT_STRING_EQUAL(c->name, "ext-authz");
    CU_ASSERT_PTR_NULL(res.custom[MESH__AZ_PROVIDER_OPA]);
    CU_ASSERT_EQUAL(res.audit != NULL, cases[i].audit);
    /* neither CUSTOM nor AUDIT changes the native decision */
    CU_ASSERT_EQUAL(res.decision, MESH__AZ_DECIDE_ALLOW);
    mesh_authz_request_free(r);
  }
  mesh__authz_set_unref(s);
  /* no set at all: allow */
  mesh__authz_result_t res;
  mesh__authz_eval(NULL, NULL, REQ, &res);
  CU_ASSERT_EQUAL(res.decision, MESH__AZ_DECIDE_ALLOW);
}

/* ---- config ------------------------------------------------------------------- */

struct cfg_err {
  const char *json;
  const char *want; /* substring of the first error */
};

static const struct cfg_err cfg_errs[] = {
  {"{\"policies\":[{\"action\":\"ALLOW\"}]}", "authz.policies[0].name: required"},
  {"{\"policies\":[{\"name\":\"a\",\"action\":\"PERMIT\"}]}",
   "authz.policies[0].action: unknown value \"PERMIT\""},
  {"{\"policies\":[{\"name\":\"a b\"}]}", "authz.policies[0].name: invalid"},
  {"{\"policies\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
   "authz.policies[1].name: duplicate policy name"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"to\":[{\"operation\":{"
   "\"paths\":[\"info\"]}}]}]}]}",
   "authz.policies[0].rules[0].to[0].operation.paths[0]: a path must start"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"to\":[{\"paths\":"
   "[\"/a*b\"]}]}]}]}",
   "authz.policies[0].rules[0].to[0].paths[0]: \"*\" is allowed only"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[{\"ipBlocks\":"
   "[\"127.0.0.0/33\"]}]}]}]}",
   "rules[0].from[0].ipBlocks[0]: \"127.0.0.0/33\" is not an IP address"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[{\"ipBlocks\":"
   "[\"127.0.0.0/08\"]}]}]}]}", "is not an IP address"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"to\":[{\"ports\":"
   "[\"http\"]}]}]}]}", "to[0].ports[0]: expected a port number"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"to\":[{\"ports\":"
   "[65536]}]}]}]}", "to[0].ports[0]: expected a port number"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"when\":[{\"key\":"
   "\"request.auth.claims[]\",\"values\":[\"x\"]}]}]}]}",
   "when[0].key: unsupported condition \"request.auth.claims[]\""},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"when\":[{\"key\":"
   "\"source.ip\"}]}]}]}", "when[0]: at least one of values or notValues"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"when\":[{\"values\":"
   "[\"x\"]}]}]}]}", "when[0].key: required"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"when\":[{\"key\":"
   "\"request.headers[a b]\",\"values\":[\"x\"]}]}]}]}",
   "unsupported condition"},
  {"{\"policies\":[{\"name\":\"a\",\"provider\":\"opa\"}]}",
   "authz.policies[0].provider: only a CUSTOM policy has a provider"},
  {"{\"policies\":[{\"name\":\"a\",\"action\":\"CUSTOM\",\"provider\":"
   "\"opa\"}]}", "provider \"opa\" needs the authz.opa section"},
  {"{\"opa\":{\"url\":\"ftp://x/v1/data/a\"}}",
   "authz.opa.url: expected an http:// or https:// URL"},
  {"{\"opa\":{\"url\":\"http://127.0.0.1:8181/allow\"}}",
   "authz.opa.url: expected the Data API path"},
  {"{\"opa\":{\"timeout_ms\":100}}", "authz.opa.url: required"},
  {"{\"opa\":{\"url\":\"http://127.0.0.1/v1/data/x\",\"timeout_ms\":0}}",
   "authz.opa.timeout_ms: 0 is out of range"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"sources\":[]}]}]}",
   "authz.policies[0].rules[0].sources: unknown key"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[{\"source\":{"
   "\"principal\":[\"x\"]}}]}]}]}",
   "rules[0].from[0].source.principal: unknown key"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[{\"ipBlocks\":"
   "[\"127.0.0.0/8\"],\"remoteIpBlocks\":[\"127.0.0.0/8\"]}]}]}]}",
   "use ipBlocks or remoteIpBlocks, not both"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"to\":[{\"methods\":"
   "[\"GE T\"]}]}]}]}", "\"GE T\" is not an HTTP method token"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[{\"namespaces\":"
   "[\"a/b\"]}]}]}]}", "a namespace cannot contain"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[{\"principals\":"
   "[\"\"]}]}]}]}", "principals[0]: empty value"},
  {"{\"protocol\":\"udp\"}", "authz.protocol: unknown value \"udp\""},
  {"{\"policies\":{}}", "authz.policies: expected an array of policies"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":{}}]}",
   "authz.policies[0].rules: expected an array"},
  {"{\"policies\":[{\"name\":\"a\",\"rules\":[{\"from\":[5]}]}]}",
   "rules[0].from[0]: expected an object"},
  {"{\"dry_run\":\"yes\"}", "authz.dry_run: expected true or false"},
  {"{\"polices\":[]}", "authz.polices: unknown key"},
};

static void test_mesh__authz_set_build_errors(void) {
  for (size_t i = 0; i < N(cfg_errs); i++) {
    cJSON *root = cJSON_Parse(cfg_errs[i].json);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    mesh_status_t st = {0};
    mesh__cfg_t c = {.first = &st};
    mesh__authz_set_t *s = (mesh__authz_set_t *)1;
    int rc = mesh__authz_set_build(&c, root, "authz", &s);
    if (rc != MESH_ERR_CONFIG || !strstr(st.message, cfg_errs[i].want))
      fprintf(stderr, "cfg case %zu: rc=%d msg=%s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, cfg_errs[i].want));
    cJSON_Delete(root);
  }
}

static void count_err(const char *msg, void *user) {
  (void)msg;
  (*(int *)user)++;
}

/* Every error is reported, through the top-level validation too. */
static void test_mesh_config_check_authz(void) {
  int n = 0;
  int rc = mesh_config_check(
      "{\"authz\":{\"policies\":[{\"name\":\"a\",\"action\":\"X\",\"rules\":"
      "[{\"to\":[{\"paths\":[\"x\"],\"ports\":[\"p\"]}]}]}],\"dry_run\":1}}",
      count_err, &n);
  CU_ASSERT_EQUAL(rc, 4);
  CU_ASSERT_EQUAL(n, 4);
  CU_ASSERT_EQUAL(mesh_config_check("{\"authz\":{\"policies\":[]}}", NULL,
                                    NULL),
                  0);
}

static void test_mesh__cidr_match(void) {
  struct {
    const char *block, *ip;
    bool want;
  } cases[] = {
    {"127.0.0.0/9", "127.127.1.1", true},
    {"127.0.0.0/9", "127.128.0.0", false},
    {"127.1.2.3", "127.1.2.3", true},
    {"127.1.2.3", "127.1.2.4", false},
    {"127.1.2.3/16", "127.1.99.1", true}, /* host bits ignored */
    {"0.0.0.0/0", "192.0.2.1", true},
    {"0.0.0.0/0", "2001:db8::1", false},
    {"127.168.1.128/25", "127.168.1.127", false},
    {"127.168.1.128/25", "127.168.1.200", true},
    {"2001:db8::/32", "2001:db8:ffff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"::1", "::1", true},
    {"::/0", "::1", true},
    {"127.0.0.0/8", "::ffff:127.2.3.4", true},
    {"::ffff:0:0/96", "127.2.3.4", false}, /* v6 block vs a v4 socket */
  };
  for (size_t i = 0; i < N(cases); i++) {
    mesh__cidr_t c;
    struct sockaddr_storage ss;
    CU_ASSERT_EQUAL_FATAL(mesh__cidr_parse(cases[i].block, &c), MESH_OK);
    CU_ASSERT_EQUAL_FATAL(mesh__ip_parse(cases[i].ip, &ss), MESH_OK);
    bool got = mesh__cidr_match(&c, (struct sockaddr *)&ss);
    if (got != cases[i].want)
      fprintf(stderr, "cidr case %zu\n", i);
    CU_ASSERT_EQUAL(got, cases[i].want);
  }
  const char *bad[] = {"", "127.0.0.0/", "127.0.0.0/-1", "127.0.0.0/1a",
                       "1.2.3", "::1/129", "127.0.0.0/8/8", "x",
                       "127.0.0.0/ 8", NULL};
  for (size_t i = 0; bad[i]; i++) {
    mesh__cidr_t c;
    CU_ASSERT_EQUAL(mesh__cidr_parse(bad[i], &c), MESH_ERR_PARSE);
  }
  mesh__cidr_t c;
  CU_ASSERT_EQUAL(mesh__cidr_parse("127.0.0.0/8", &c), MESH_OK);
  CU_ASSERT(!mesh__cidr_match(&c, NULL));
}

static void test_mesh_authz_request_accessors(void) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_principal(r), "");
  CU_ASSERT_EQUAL(mesh_authz_request_port(r), -1);
  CU_ASSERT_PTR_NULL(mesh_authz_request_method(r));
  CU_ASSERT_EQUAL(mesh_authz_request_set_principal(
                      r, "spiffe://example.org/ns/payments/sa/api"),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_namespace(r), "payments");
  CU_ASSERT_EQUAL(mesh_authz_request_set_principal(r, "spiffe://td/ns/"),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_namespace(r), "");
  CU_ASSERT_EQUAL(mesh_authz_request_set_source_ip(r, "nope"),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_authz_request_set_source_ip(r, "::1"), MESH_OK);
  char ip[64];
  CU_ASSERT_EQUAL(mesh_authz_request_source_ip(r, ip, sizeof ip), MESH_OK);
  CU_ASSERT_STRING_EQUAL(ip, "::1");
  CU_ASSERT_EQUAL(mesh_authz_request_set_port(r, 70000), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_authz_request_set_http(r, "GET", "no-slash", "h"),
                  MESH_ERR_HTTP_PARSE);
  CU_ASSERT_EQUAL(mesh_authz_request_set_http(r, "GET", "/a/../b?x", "h"),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_path(r), "/b");
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_method(r), "GET");
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_host(r), "h");
  for (int i = 0; i < 20; i++)
    CU_ASSERT_EQUAL(mesh_authz_request_add_header(r, "X-A", "v"), MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_authz_request_header(r, "x-a"), "v");
  CU_ASSERT_PTR_NULL(mesh_authz_request_header(r, "x-b"));
  CU_ASSERT_EQUAL(mesh_authz_request_add_header(r, NULL, "v"),
                  MESH_ERR_INVALID_ARG);
  mesh_authz_request_free(r);
  mesh_authz_request_free(NULL);
}

/* ---- the part: counters, logs, dry-run, reload, callback ------------------------ */

struct logcap {
  pthread_mutex_t mu;
  char buf[16384];
  size_t len;
};

static void on_log(int level, const char *line, void *user) {
  (void)level;
  struct logcap *lc = user;
  pthread_mutex_lock(&lc->mu);
  size_t n = strlen(line);
  if (lc->len + n + 2 < sizeof lc->buf) {
    memcpy(lc->buf + lc->len, line, n);
    lc->len += n;
    lc->buf[lc->len++] = '\n';
    lc->buf[lc->len] = '\0';
  }
  pthread_mutex_unlock(&lc->mu);
}

static uint64_t counter(mesh_t *m, const char *name) {
  uint64_t v = 0;
  CU_ASSERT_EQUAL(mesh_authz_counter(m, name, &v), MESH_OK);
  return v;
}

static int check_req(mesh_t *m, const struct rq *q, mesh_status_t *st) {
  mesh_authz_request_t *r = mkreq(q);
  int rc = mesh_authz_check(m, r, st);
  mesh_authz_request_free(r);
  return rc;
}

static void test_mesh_authz_check_counts_and_logs(void) {
  mesh_t *m = NULL;
  char json[1024];
  snprintf(json, sizeof json, "{\"log\":{\"level\":\"debug\"},\"authz\":%s}",
           cfgs[7]);
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, &st), MESH_OK);
  struct logcap lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
  mesh_set_log(m, MESH_LOG_DEBUG, on_log, &lc);
  struct rq ok = {SLEEP, NULL, 0, "GET", "/ip", NULL, {"x-token", "admin"}};
  struct rq bad = {SLEEP, "192.0.2.9", 0, "GET", "/ip", NULL,
                   {"x-token", "guest"}};
  CU_ASSERT_EQUAL(check_req(m, &ok, &st), MESH_OK);
  CU_ASSERT_EQUAL(check_req(m, &bad, &st), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "\"deny-method-get\""));
  CU_ASSERT_EQUAL(check_req(m, &bad, &st), MESH_ERR_DENIED);
  CU_ASSERT_EQUAL(counter(m, "allow"), 1);
  CU_ASSERT_EQUAL(counter(m, "deny"), 2);
  CU_ASSERT_EQUAL(counter(m, "dry_run_deny"), 0);
  uint64_t v;
  CU_ASSERT_EQUAL(mesh_authz_counter(m, "nope", &v), MESH_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NOT_NULL(strstr(lc.buf, "event=authz_decision stage=request "
                                        "decision=deny "
                                        "policy=\"deny-method-get\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(lc.buf, "source_ip=192.0.2.9"));
  CU_ASSERT_PTR_NOT_NULL(strstr(lc.buf, "decision=allow "
                                        "policy=\"allow-path-ip\""));
  /* the same decisions in the metrics registry */
  char *text = NULL;
  size_t tlen = 0;
  CU_ASSERT_EQUAL_FATAL(mesh__metrics_render(m, &text, &tlen), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_authz_decisions_total{action="
                                      "\"deny\",policy=\"deny-method-get\"} 2"));
  CU_ASSERT_PTR_NOT_NULL(strstr(text, "mesh_authz_decisions_total{action="
                                      "\"allow\",policy=\"allow-path-ip\"} 1"));
  free(text);
  /* connection-level hook: a DENY needing HTTP waits; namespace dev denied
   * at once after a reload */
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5000)};
  inet_pton(AF_INET, "127.9.9.9", &sin.sin_addr);
  CU_ASSERT_EQUAL(mesh__authz_check_conn(m, SLEEP, (struct sockaddr *)&sin,
                                         8443, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_authz_reload(m, cfgs[12], &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__authz_check_conn(m, "spiffe://td/ns/dev/sa/x",
                                         (struct sockaddr *)&sin, 8443, &st),
                  MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "deny-ns-dev"));
  CU_ASSERT_EQUAL(mesh__authz_check_conn(m, NULL, NULL, -1, &st), MESH_OK);
  CU_ASSERT_EQUAL(counter(m, "conn_deny"), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(lc.buf, "stage=conn decision=deny "
                                        "policy=\"deny-ns-dev\""));
  CU_ASSERT_EQUAL(counter(m, "reload"), 1);
  mesh_free(m);
}

static void test_mesh_authz_check_dry_run(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(
      mesh_new("{\"authz\":{\"dry_run\":true,\"policies\":[{\"name\":"
               "\"allow-nothing\"}]}}",
               &m, &st),
      MESH_OK);
  struct logcap lc = {.mu = PTHREAD_MUTEX_INITIALIZER};
  mesh_set_log(m, MESH_LOG_INFO, on_log, &lc);
  struct rq q = {SLEEP, NULL, 0, "GET", "/", NULL, {NULL}};
  CU_ASSERT_EQUAL(check_req(m, &q, &st), MESH_OK);
  CU_ASSERT_EQUAL(counter(m, "dry_run_deny"), 1);
  CU_ASSERT_EQUAL(counter(m, "deny"), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(lc.buf, "event=authz_dry_run_deny"));
  /* the same policy enforced */
  CU_ASSERT_EQUAL(mesh_authz_reload(
                      m, "{\"policies\":[{\"name\":\"allow-nothing\"}]}", &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(check_req(m, &q, &st), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "no ALLOW policy matched"));
  CU_ASSERT_EQUAL(counter(m, "deny"), 1);
  mesh_free(m);
}

static void test_mesh_authz_reload_errors(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m, &st), MESH_OK);
  struct rq q = {SLEEP, NULL, 0, "GET", "/", NULL, {NULL}};
  CU_ASSERT_EQUAL(check_req(m, &q, &st), MESH_OK); /* no policies */
  CU_ASSERT_EQUAL(mesh_authz_reload(m, "{\"policies\":[{\"name\":\"a\","
                                       "\"action\":\"NOPE\"},{\"x\":1}]}",
                                    &st),
                  MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "authz.policies[0].action"));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "more error"));
  CU_ASSERT_EQUAL(mesh_authz_reload(m, "{not json", &st), MESH_ERR_CONFIG);
  CU_ASSERT_EQUAL(mesh_authz_reload(m, NULL, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_authz_reload(NULL, "{}", &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(counter(m, "reload_error"), 2);
  /* the old (empty) set is still in force */
  CU_ASSERT_EQUAL(check_req(m, &q, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_authz_check(m, NULL, &st), MESH_ERR_INVALID_ARG);
  mesh_free(m);
  /* a bad authz section fails mesh_new with its path */
  CU_ASSERT_EQUAL(mesh_new("{\"authz\":{\"policies\":[{\"name\":\"\"}]}}", &m,
                           &st),
                  MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "authz.policies[0].name"));
}

struct hammer {
  mesh_t *m;
  atomic_bool stop;
  atomic_int allowed, denied, other;
};

static void *hammer_main(void *arg) {
  struct hammer *h = arg;
  mesh_authz_request_t *r = mesh_authz_request_new();
  mesh_authz_request_set_principal(r, SLEEP);
  mesh_authz_request_set_http(r, "GET", "/", "h");
  for (int i = 0; i < 200000 && !atomic_load(&h->stop); i++) {
    int rc = mesh_authz_check(h->m, r, NULL);
    if (rc == MESH_OK)
      atomic_fetch_add(&h->allowed, 1);
    else if (rc == MESH_ERR_DENIED)
      atomic_fetch_add(&h->denied, 1);
    else
      atomic_fetch_add(&h->other, 1);
  }
  mesh_authz_request_free(r);
  return NULL;
}

/* Checks on other threads keep deciding, with the old or the new set,
 * while the policies are swapped back and forth. */
static void test_mesh_authz_reload_concurrent(void) {
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"log\":{\"level\":\"warn\"}}", &m, NULL),
                        MESH_OK);
  struct hammer h = {.m = m};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, hammer_main, &h);
  /* let the readers get going first (bounded: 2 s) */
  for (int i = 0; i < 2000 && atomic_load(&h.allowed) == 0; i++) {
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < 200; i++) {
    const char *p = i % 2 ? "{\"policies\":[{\"name\":\"allow-nothing\"}]}"
                          : "{\"policies\":[{\"name\":\"all\",\"rules\":[{}]}]}";
    CU_ASSERT_EQUAL(mesh_authz_reload(m, p, NULL), MESH_OK);
  }
  atomic_store(&h.stop, true);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&h.other), 0);
  CU_ASSERT(atomic_load(&h.allowed) + atomic_load(&h.denied) > 0);
  mesh_free(m);
}

struct cbstate {
  atomic_int calls;
  char last_policy[64];
};

static int authorizer(const mesh_authz_request_t *req, const char *policy,
                      void *user) {
  struct cbstate *s = user;
  atomic_fetch_add(&s->calls, 1);
  mesh__strlcpy(s->last_policy, policy, sizeof s->last_policy);
  const char *u = mesh_authz_request_header(req, "x-user");
  return u && strcmp(u, "root") == 0 ? MESH_AUTHZ_ALLOW : MESH_AUTHZ_DENY;
}

static void test_mesh_authz_set_callback(void) {
  mesh_t *m = NULL;
  char json[1024];
  snprintf(json, sizeof json, "{\"authz\":%s}", cfgs[11]);
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(json, &m, &st), MESH_OK);
  struct rq admin_root = {SLEEP, NULL, 0, "GET", "/admin/x", NULL,
                          {"x-user", "root"}};
  struct rq admin_bob = {SLEEP, NULL, 0, "GET", "/admin/x", NULL,
                         {"x-user", "bob"}};
  struct rq other = {SLEEP, NULL, 0, "GET", "/public", NULL, {NULL}};
  /* no callback installed: CUSTOM denies (fail closed) */
  CU_ASSERT_EQUAL(check_req(m, &admin_root, &st), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "no callback authorizer"));
  struct cbstate cs = {0};
  CU_ASSERT_EQUAL(mesh_authz_set_callback(m, authorizer, &cs), MESH_OK);
  CU_ASSERT_EQUAL(check_req(m, &admin_root, &st), MESH_OK);
  CU_ASSERT_EQUAL(check_req(m, &admin_bob, &st), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "\"ext-authz\""));
  CU_ASSERT_EQUAL(check_req(m, &other, &st), MESH_OK);
  CU_ASSERT_EQUAL(atomic_load(&cs.calls), 2); /* only paths under /admin/ ask */
  CU_ASSERT_STRING_EQUAL(cs.last_policy, "ext-authz");
  CU_ASSERT_EQUAL(counter(m, "custom_deny"), 2);
  CU_ASSERT_EQUAL(counter(m, "audit"), 0);
  struct rq prof = {SLEEP, NULL, 0, "GET", "/user/profile/7", NULL, {NULL}};
  CU_ASSERT_EQUAL(check_req(m, &prof, &st), MESH_OK);
  CU_ASSERT_EQUAL(counter(m, "audit"), 1);
  CU_ASSERT_EQUAL(mesh_authz_set_callback(m, NULL, NULL), MESH_OK);
  CU_ASSERT_EQUAL(check_req(m, &admin_root, &st), MESH_ERR_DENIED);
  CU_ASSERT_EQUAL(mesh_authz_set_callback(NULL, authorizer, NULL),
                  MESH_ERR_INVALID_ARG);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("authz", NULL, NULL);
  CU_add_test(s, "mesh__authz_eval_istio_cases",
              test_mesh__authz_eval_istio_cases);
  CU_add_test(s, "mesh__authz_eval_custom_audit",
              test_mesh__authz_eval_custom_audit);
  CU_add_test(s, "mesh__authz_set_build_errors",
              test_mesh__authz_set_build_errors);
  CU_add_test(s, "mesh_config_check_authz", test_mesh_config_check_authz);
  CU_add_test(s, "mesh__cidr_match", test_mesh__cidr_match);
  CU_add_test(s, "mesh__az_ns_match", test_mesh__az_ns_match);
  CU_add_test(s, "mesh_authz_request_accessors",
              test_mesh_authz_request_accessors);
  CU_add_test(s, "mesh_authz_check_counts_and_logs",
              test_mesh_authz_check_counts_and_logs);
  CU_add_test(s, "mesh_authz_check_dry_run", test_mesh_authz_check_dry_run);
  CU_add_test(s, "mesh_authz_reload_errors", test_mesh_authz_reload_errors);
  CU_add_test(s, "mesh_authz_reload_concurrent",
              test_mesh_authz_reload_concurrent);
  CU_add_test(s, "mesh_authz_set_callback", test_mesh_authz_set_callback);
}

int main(void) { return th_run_suites("test_authz", add); }
