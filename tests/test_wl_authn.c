/* SPDX-License-Identifier: Apache-2.0 */
/* JWT-SVIDs end to end through the SPIFFE Workload API: workload A gets a
 * JWT-SVID from the agent (tests/wl_agent.py: python3-grpcio, tokens by
 * PyJWT), workload B authenticates it with request authentication whose
 * only keys are the JWT bundles B receives from the same agent
 * (FetchJWTBundles -> identity -> authn's hook).  The agent then rotates its
 * JWT signing key: new tokens verify once B has the new bundle, old ones
 * until the bundle drops their key, and never after (also not from the
 * verified-token cache).  Readers on other threads verify continuously
 * while bundle sets are swapped: never a torn set. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mesh/grpc.h>
#include <mesh/http.h>
#include <mesh/mesh.h>

#include "authn/authn.h"
#include "helpers.h"
#include "identity/identity.h"

#define PY "/usr/bin/python3"
#define AGENT TEST_SRCDIR "/tests/wl_agent.py"
#define ID_A "spiffe://example.org/a"
#define ID_B "spiffe://example.org/b"
#define AUD1 ID_B
#define AUD2 ID_B "/v2" /* a second audience: a fresh token past A's cache */
#define AUD3 ID_B "/v3"

static pid_t agent_pid = -1;
static void *kept[512];
static size_t nkept;

static void *keep(void *p) {
  if (p && nkept < sizeof kept / sizeof kept[0]) {
    kept[nkept++] = p;
    return p;
  }
  free(p);
  return NULL;
}
static char sock[700], dir[512];

static void control(const char *json) {
  char p[600], tmp[620];
  snprintf(p, sizeof p, "%s/control.json", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  CU_ASSERT_FATAL(th_write(tmp, json));
  CU_ASSERT_FATAL(rename(tmp, p) == 0);
}

static int readies(void) {
  char *t = th_slurp(th_path("wl_agent.log"), NULL);
  int n = 0;
  for (char *p = t; p && (p = strstr(p, "ready\n")); p++)
    n++;
  free(t);
  return n;
}

static void agent_stop(void);

static bool agent_start(void) {
  agent_stop(); /* a test that failed half-way left its agent */
  snprintf(dir, sizeof dir, "%s", th_path("agent"));
  mkdir(dir, 0700);
  snprintf(sock, sizeof sock, "%s/agent.sock", dir);
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"jwt_keys\": [\"k1\"], \"jwt_sign\": \"k1\"}");
  const char *argv[] = {PY, AGENT, "--socket", sock, "--dir", dir, NULL};
  int before = readies();
  agent_pid = th_spawn(argv, "wl_agent.log");
  for (int i = 0; i < 300 && agent_pid > 0; i++) {
    if (readies() > before)
      return true;
    usleep(50000);
  }
  fprintf(stderr, "wl_agent did not start\n");
  return false;
}

static void agent_stop(void) {
  if (agent_pid > 0)
    th_kill(agent_pid);
  agent_pid = -1;
}

/* Also when a test failed half-way (a FATAL assert returns early). */
static int agent_teardown(void) {
  agent_stop();
  for (size_t i = 0; i < nkept; i++)
    free(kept[i]);
  nkept = 0;
  return 0;
}

static mesh_t *workload(const char *hint, const char *authn) {
  char cfg[4096];
  snprintf(cfg, sizeof cfg,
           "{\"log\": {\"level\": \"error\"}, \"identity\": {\"source\": "
           "\"workload_api\", \"endpoint\": \"unix://%s\", \"svid_hint\": "
           "\"%s\", \"wait_ms\": 10000}%s%s}",
           sock, hint, authn ? ", " : "", authn ? authn : "");
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(cfg, &m, &st) != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n", st.message);
  return m;
}

typedef struct hdr {
  char bearer[4200];
} hdr_t;

static const char *get(const char *name, void *ctx) {
  return strcasecmp(name, "Authorization") == 0 ? ((hdr_t *)ctx)->bearer
                                                : NULL;
}

/* B's verdict on tok: MESH__JWT_OK or the refusal; principal copied. */
static int verdict(mesh_t *b, const char *tok, char *principal, size_t n) {
  hdr_t h;
  snprintf(h.bearer, sizeof h.bearer, "Bearer %s", tok);
  mesh__authn_input_t in = {.header = get, .ctx = &h};
  mesh__authn_result_t r;
  mesh_status_t st;
  int rc = mesh__authn_check_request(b, &in, &r, &st);
  int e = rc == MESH_OK ? (r.authenticated ? MESH__JWT_OK : -1) : r.err;
  if (principal)
    snprintf(principal, n, "%s", r.principal ? r.principal : "");
  mesh__authn_result_free(&r);
  return e;
}

/* Poll B's verdict until it is want (bounded: 15 s, the agent re-reads its
 * control every 100 ms and streams the new bundle at once). */
static int verdict_becomes(mesh_t *b, const char *tok, int want) {
  int e = -2;
  for (int i = 0; i < 300; i++) {
    e = verdict(b, tok, NULL, 0);
    if (e == want)
      return e;
    usleep(50000);
  }
  fprintf(stderr, "verdict %s, wanted %s\n", mesh__jwt_err_name(e),
          mesh__jwt_err_name(want));
  char *log = th_slurp(th_path("wl_agent.log"), NULL);
  fprintf(stderr, "agent log:\n%s\n", log ? log : "");
  free(log);
  return e;
}

/* A's JWT-SVID for aud, in a buffer of its own (freed at exit: a handful). */
static char *jwt_of(mesh_t *a, const char *aud) {
  char *out = keep(malloc(4096));
  mesh_status_t st;
  if (!out || mesh_jwt_svid(a, aud, out, 4096, &st) != MESH_OK) {
    fprintf(stderr, "mesh_jwt_svid: %s\n", out ? st.message : "no memory");
    return NULL;
  }
  return out;
}

static bool kid_is(const char *tok, const char *kid) {
  /* the JOSE header names the signing key: decode it to check the agent
   * really signed with the key we asked for */
  const char *dot = strchr(tok, '.');
  uint8_t h[512];
  long n = dot && dot - tok < 600
               ? mesh__b64url_decode(tok, (size_t)(dot - tok), h)
               : -1;
  char want[64], spaced[64];
  snprintf(want, sizeof want, "\"kid\":\"%s\"", kid);
  snprintf(spaced, sizeof spaced, "\"kid\": \"%s\"", kid);
  return n > 0 && (memmem(h, (size_t)n, want, strlen(want)) ||
                   memmem(h, (size_t)n, spaced, strlen(spaced)));
}

/* A's JWT-SVID is accepted by B with keys only from the agent; then the
 * signing key rotates k1 -> k2 and k1 leaves the bundle. */
static void test_jwt_svid_rotation(void) {
  CU_ASSERT_FATAL(agent_start());
  mesh_t *a = workload("a", NULL);
  mesh_t *b = workload("b", "\"authn\": {\"jwt_rules\": [{\"spiffe_bundle\": "
                            "\"example.org\", \"audiences\": [\"" AUD1
                            "\", \"" AUD2 "\", \"" AUD3 "\"]}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  char *t1 = jwt_of(a, AUD1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
  CU_ASSERT(kid_is(t1, "k1"));
  CU_ASSERT_EQUAL(verdict_becomes(b, t1, MESH__JWT_OK), MESH__JWT_OK);
  char principal[256];
  CU_ASSERT_EQUAL(verdict(b, t1, principal, sizeof principal), MESH__JWT_OK);
  CU_ASSERT_STRING_EQUAL(principal, ID_A); /* iss-less JWT-SVID: its ID */
  /* A token for someone else is refused on audience. */
  char *other = jwt_of(a, "spiffe://example.org/c");
  CU_ASSERT_PTR_NOT_NULL_FATAL(other);
  CU_ASSERT_EQUAL(verdict(b, other, NULL, 0), MESH__JWT_AUDIENCE);

  /* Rotation, step 1: k2 signs, both keys in the bundle. */
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"jwt_keys\": [\"k1\", \"k2\"], \"jwt_sign\": \"k2\"}");
  char *t2 = NULL;
  for (int i = 0; i < 100 && !(t2 && kid_is(t2, "k2")); i++) {
    usleep(100000); /* until the agent read its control file */
    char aud[128];
    snprintf(aud, sizeof aud, "%s/try%d", AUD2, i);
    t2 = jwt_of(a, i ? aud : AUD2);
  }
  CU_ASSERT_FATAL(t2 && kid_is(t2, "k2"));
  /* t2's audience may be AUD2/tryN, which B does not accept: use AUD3,
   * requested once the agent signs with k2. */
  t2 = jwt_of(a, AUD3);
  CU_ASSERT_FATAL(t2 && kid_is(t2, "k2"));
  CU_ASSERT_EQUAL(verdict_becomes(b, t2, MESH__JWT_OK), MESH__JWT_OK);
  CU_ASSERT_EQUAL(verdict(b, t1, NULL, 0), MESH__JWT_OK); /* k1 still there */

  /* Step 2: the bundle drops k1: old-key tokens are refused (t1 sat in the
   * verified-token cache: a new bundle is a new key set, a miss). */
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"jwt_keys\": [\"k2\"], \"jwt_sign\": \"k2\"}");
  CU_ASSERT_EQUAL(verdict_becomes(b, t1, MESH__JWT_UNKNOWN_KID),
                  MESH__JWT_UNKNOWN_KID);
  CU_ASSERT_EQUAL(verdict(b, t2, NULL, 0), MESH__JWT_OK);
  CU_ASSERT_EQUAL(verdict(b, t1, NULL, 0), MESH__JWT_UNKNOWN_KID);
  mesh_free(a);
  mesh_free(b);
  agent_stop();
}

typedef struct reader {
  mesh_t *b;
  const char *tok;
  _Atomic bool *stop;
  int n, bad;
} reader_t;

/* Until told to stop, at most 200,000 requests (about 1 ms each). */
static void *read_loop(void *p) {
  reader_t *r = p;
  for (; !atomic_load(r->stop) && r->n < 200000; r->n++)
    r->bad += verdict(r->b, r->tok, NULL, 0) != MESH__JWT_OK;
  return NULL;
}

/* Bundle sets swapped under readers: a key present in every set always
 * verifies (a torn or freed set would refuse it or crash; TSan and ASan
 * runs of this test watch the memory).  Count-bound on both sides. */
static void test_bundles_under_readers(void) {
  CU_ASSERT_FATAL(agent_start());
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"jwt_keys\": [\"k2\", \"k1\"], \"jwt_sign\": \"k2\"}");
  mesh_t *a = workload("a", NULL);
  /* no cache: every request looks the bundle up and verifies */
  mesh_t *b = workload("b", "\"authn\": {\"token_cache_size\": 0, "
                            "\"jwt_rules\": [{\"spiffe_bundle\": "
                            "\"example.org\", \"audiences\": [\"" AUD1 "\"]}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  char *t = NULL;
  for (int i = 0; i < 100 && !(t && kid_is(t, "k2")); i++) {
    char aud[128];
    snprintf(aud, sizeof aud, "%s/x%d", AUD1, i);
    t = jwt_of(a, aud);
    usleep(100000);
  }
  char tok[4096];
  t = jwt_of(a, AUD1);
  CU_ASSERT_FATAL(t && kid_is(t, "k2"));
  snprintf(tok, sizeof tok, "%s", t);
  CU_ASSERT_EQUAL_FATAL(verdict_becomes(b, tok, MESH__JWT_OK), MESH__JWT_OK);
  _Atomic bool stop = false;
  reader_t r[2] = {{b, tok, &stop, 0, 0}, {b, tok, &stop, 0, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, read_loop, &r[i]) == 0);
  /* 6 new sets (the agent streams one per control change), k2 in all */
  for (int i = 0; i < 6; i++) {
    char c[300];
    snprintf(c, sizeof c,
             "{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
             "\"jwt_keys\": [\"k%d\", \"k2\"], \"jwt_sign\": \"k2\"}",
             3 + i);
    control(c);
    usleep(250000);
  }
  usleep(300000);
  atomic_store(&stop, true);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  CU_ASSERT(r[0].n > 0 && r[1].n > 0);
  CU_ASSERT_EQUAL(r[0].bad + r[1].bad, 0);
  fprintf(stderr, "readers: %d + %d requests, %d refused\n", r[0].n, r[1].n,
          r[0].bad + r[1].bad);
  /* the sets did change under them: the agent sent them all */
  char *log = th_slurp(th_path("wl_agent.log"), NULL);
  CU_ASSERT_PTR_NOT_NULL(log && strstr(log, "kids=k8,k2"));
  free(log);
  mesh_free(a);
  mesh_free(b);
  agent_stop();
}

/* ValidateJWTSVID: the agent validates (PyJWT against its JWT bundle) and
 * answers the SPIFFE ID and the claims as a google.protobuf.Struct; the
 * library agrees with B's own authn on the same tokens. */
static void test_validate_jwt_svid(void) {
  CU_ASSERT_FATAL(agent_start());
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"jwt_keys\": [\"k1\"], \"jwt_sign\": \"k1\", \"jwt_extra\": "
          "{\"team\": \"shop\", \"n\": {\"l\": [1, true, null, \"x\"]}}}");
  usleep(400000); /* the agent re-reads its control every 100 ms */
  mesh_t *a = workload("a", NULL);
  mesh_t *b = workload("b", "\"authn\": {\"jwt_rules\": [{\"spiffe_bundle\": "
                            "\"example.org\", \"audiences\": [\"" AUD1 "\"]}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  char *t = jwt_of(a, AUD1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  char id[MESH_SPIFFE_ID_MAX + 1], claims[2048];
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(b, t, AUD1, id, sizeof id, claims,
                                         sizeof claims, &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, ID_A);
  cJSON *j = cJSON_Parse(claims);
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "sub")),
                         ID_A);
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "team")),
                         "shop");
  char *l = cJSON_PrintUnformatted(
      cJSON_GetObjectItem(cJSON_GetObjectItem(j, "n"), "l"));
  CU_ASSERT_STRING_EQUAL(l ? l : "", "[1,true,null,\"x\"]");
  free(l);
  cJSON_Delete(j);
  CU_ASSERT_EQUAL(verdict_becomes(b, t, MESH__JWT_OK), MESH__JWT_OK);
  /* without the claims; buffers too small */
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, t, AUD1, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, t, AUD1, id, 8, NULL, 0, &st),
                  MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, t, AUD1, id, sizeof id, claims, 16,
                                         &st),
                  MESH_ERR_BUFFER);
  /* refused by the agent: wrong audience, an edited signature */
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, t, AUD2, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "INVALID_ARGUMENT"));
  CU_ASSERT_STRING_EQUAL(id, "");
  char bad[4096];
  snprintf(bad, sizeof bad, "%s", t);
  size_t n = strlen(bad);
  bad[n - 6] = bad[n - 6] == 'A' ? 'B' : 'A';
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, bad, AUD1, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_ERR_DENIED);
  CU_ASSERT_NOT_EQUAL(verdict(b, bad, NULL, 0), MESH__JWT_OK);
  /* the key leaves the bundle: refused by the agent and by B */
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"jwt_keys\": [\"k2\"], \"jwt_sign\": \"k2\"}");
  CU_ASSERT_EQUAL(verdict_becomes(b, t, MESH__JWT_UNKNOWN_KID),
                  MESH__JWT_UNKNOWN_KID);
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, t, AUD1, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_ERR_DENIED);
  /* bad arguments, no Workload API source */
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, "", AUD1, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(a, t, NULL, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_ERR_INVALID_ARG);
  mesh_t *none = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{\"log\": {\"level\": \"error\"}}", &none, &st),
                        MESH_OK);
  CU_ASSERT_EQUAL(mesh_validate_jwt_svid(none, t, AUD1, id, sizeof id, NULL, 0,
                                         &st),
                  MESH_ERR_NOT_FOUND);
  mesh_free(none);
  mesh_free(a);
  mesh_free(b);
  agent_stop();
}

/* ---- JWT-SVIDs attached to outbound calls (services.<name>.jwt_svid) ------ */

typedef struct srv {
  pthread_t t;
  mesh_t *m;
  mesh_listener_t *l;
  _Atomic bool stop;
  pthread_t conn_t[32]; /* one thread per connection (clients pool them) */
  size_t nconn;
} srv_t;

typedef struct one_conn {
  mesh_t *m;
  mesh_conn_t *c;
} one_conn_t;

/* The handler answers who authentication said the caller is, and whether
 * the token header reached it (Istio removes it). */
static int who(const mesh_http_request_t *req, mesh_http_response_t *resp,
               void *user) {
  (void)user;
  const char *sub = mesh_http_request_header(req, "x-jwt-sub");
  const char *az = mesh_http_request_header(req, "authorization");
  char body[512];
  snprintf(body, sizeof body, "sub=%s authorization=%s", sub ? sub : "-",
           az ? "present" : "-");
  mesh_http_response_set_status(resp, 200);
  mesh_http_response_set_body(resp, body, strlen(body));
  return 0;
}

static void *conn_main(void *arg) {
  one_conn_t *oc = arg;
  mesh_http_serve(oc->m, oc->c, who, NULL, NULL);
  mesh_conn_close(oc->c);
  free(oc);
  return NULL;
}

/* Until stopped, at most 32 connections (a test makes a handful). */
static void *srv_main(void *arg) {
  srv_t *s = arg;
  while (!atomic_load(&s->stop) && s->nconn < 32) {
    mesh_conn_t *c = NULL;
    if (mesh_accept(s->l, 200, &c, NULL) != MESH_OK)
      continue;
    mesh_conn_set_timeouts(c, 5000, 5000);
    one_conn_t *oc = malloc(sizeof *oc);
    if (oc) {
      oc->m = s->m;
      oc->c = c;
    }
    if (!oc || pthread_create(&s->conn_t[s->nconn], NULL, conn_main, oc)) {
      free(oc);
      mesh_conn_close(c);
      continue;
    }
    s->nconn++;
  }
  return NULL;
}

/* GET / on service through A; status (0: the call failed, its code in *rc)
 * and the body in buf. */
static int call(mesh_t *a, const char *service, const char *auth, char *buf,
                size_t len, int *rc, mesh_status_t *st) {
  mesh_http_request_t *req = mesh_http_request_new("GET", "/");
  if (auth)
    mesh_http_request_add_header(req, "Authorization", auth);
  mesh_http_response_t *resp = NULL;
  *rc = mesh_http_call(a, service, req, &resp, st);
  mesh_http_request_free(req);
  buf[0] = '\0';
  int status = 0;
  if (*rc == MESH_OK) {
    status = mesh_http_response_status(resp);
    size_t n = 0;
    const void *b = mesh_http_response_body(resp, &n);
    snprintf(buf, len, "%.*s", (int)n, b ? (const char *)b : "");
  }
  mesh_http_response_free(resp);
  return status;
}

/* A calls B over mTLS (both identified by the agent); B requires a request
 * principal; A's config puts a JWT-SVID for B's audience on the calls to
 * one service name and not on the other. */
static void test_jwt_attach(void) {
  CU_ASSERT_FATAL(agent_start());
  mesh_t *b = workload(
      "b", "\"inbound\": {\"listen\": \"127.0.0.1:0\"}, \"authn\": "
           "{\"jwt_rules\": [{\"spiffe_bundle\": \"example.org\", "
           "\"audiences\": [\"" AUD1 "\"], \"output_claim_to_headers\": "
           "[{\"header\": \"x-jwt-sub\", \"claim\": \"sub\"}]}]}, \"authz\": "
           "{\"policies\": [{\"name\": \"jwt\", \"action\": \"ALLOW\", "
           "\"rules\": [{\"from\": [{\"source\": {\"requestPrincipals\": "
           "[\"" ID_A "\"]}}]}]}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  srv_t s = {.m = b};
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_listen(b, NULL, &s.l, &st), MESH_OK);
  int port = mesh_listener_port(s.l);
  CU_ASSERT_FATAL(pthread_create(&s.t, NULL, srv_main, &s) == 0);
  char svcs[1500];
  snprintf(svcs, sizeof svcs,
           "\"services\": {"
           "\"b-jwt\": {\"discovery\": {\"type\": \"static\", \"endpoints\": "
           "[{\"address\": \"127.0.0.1\", \"port\": %d}]}, \"jwt_svid\": "
           "{\"audience\": \"" AUD1 "\"}}, "
           "\"b-other-aud\": {\"discovery\": {\"type\": \"static\", "
           "\"endpoints\": [{\"address\": \"127.0.0.1\", \"port\": %d}]}, "
           "\"jwt_svid\": {\"audience\": \"" AUD3 "\"}}, "
           "\"b-plain\": {\"discovery\": {\"type\": \"static\", \"endpoints\": "
           "[{\"address\": \"127.0.0.1\", \"port\": %d}]}}}",
           port, port, port);
  mesh_t *a = workload("a", svcs);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  char body[600];
  int rc;
  /* B has the agent's JWT bundle before it can verify anything */
  int status = 0;
  for (int i = 0; i < 100 && status != 200; i++) {
    status = call(a, "b-jwt", NULL, body, sizeof body, &rc, &st);
    if (status != 200)
      usleep(100000);
  }
  CU_ASSERT_EQUAL(status, 200);
  CU_ASSERT_STRING_EQUAL(body, "sub=" ID_A " authorization=-");
  /* the caller's own Authorization is replaced by the JWT-SVID */
  CU_ASSERT_EQUAL(call(a, "b-jwt", "Bearer not.a.token", body, sizeof body,
                       &rc, &st),
                  200);
  /* no jwt_svid: no token, no principal: the policy says 403 */
  CU_ASSERT_EQUAL(call(a, "b-plain", NULL, body, sizeof body, &rc, &st), 403);
  /* a token for another audience: B refuses it (401) */
  CU_ASSERT_EQUAL(call(a, "b-other-aud", NULL, body, sizeof body, &rc, &st),
                  401);
  /* the agent refuses to mint: no token, no call (the error names why) */
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]], "
          "\"mode\": \"denied\"}");
  usleep(400000);
  mesh_t *a2 = NULL;
  char cfg[2600];
  snprintf(cfg, sizeof cfg,
           "{\"log\": {\"level\": \"error\"}, \"identity\": {\"source\": "
           "\"workload_api\", \"endpoint\": \"unix://%s\"}, %s}",
           sock, svcs);
  CU_ASSERT_EQUAL_FATAL(mesh_new(cfg, &a2, &st), MESH_OK);
  CU_ASSERT_EQUAL(call(a2, "b-jwt", NULL, body, sizeof body, &rc, &st), 0);
  CU_ASSERT_EQUAL(rc, MESH_ERR_GRPC_STATUS);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "services.b-jwt.jwt_svid"));
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "PERMISSION_DENIED"));
  mesh_free(a2);
  atomic_store(&s.stop, true);
  pthread_join(s.t, NULL);
  mesh_free(a); /* closes its pooled connections: their threads end */
  for (size_t i = 0; i < s.nconn; i++)
    pthread_join(s.conn_t[i], NULL);
  mesh_listener_close(s.l);
  mesh_free(b);
  agent_stop();
}

/* gRPC: the same service key puts the JWT-SVID in the call's metadata
 * (one "authorization", the caller's replaced); the handler verifies it
 * with B's authn. */
static int grpc_who(mesh_grpc_server_call_t *call, void *user) {
  mesh_t *b = user;
  const mesh_grpc_metadata_t *md = mesh_grpc_server_call_metadata(call);
  size_t n = mesh_grpc_metadata_count(md), seen = 0;
  char azbuf[4200];
  const char *az = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *k = NULL;
    const void *v = NULL;
    size_t vl = 0;
    if (mesh_grpc_metadata_at(md, i, &k, &v, &vl) == MESH_OK &&
        !strcmp(k, "authorization")) {
      snprintf(azbuf, sizeof azbuf, "%.*s", (int)vl, (const char *)v);
      az = azbuf;
      seen++;
    }
  }
  char out[600] = "none";
  if (az && seen == 1 && !strncmp(az, "Bearer ", 7)) {
    char principal[256];
    int e = verdict(b, az + 7, principal, sizeof principal);
    snprintf(out, sizeof out, "%s", e == MESH__JWT_OK ? principal
                                                      : mesh__jwt_err_name(e));
  } else if (seen > 1) {
    snprintf(out, sizeof out, "%zu authorization entries", seen);
  }
  void *msg;
  size_t len;
  while (mesh_grpc_server_call_recv(call, &msg, &len, NULL) == 1)
    mesh_grpc_free(msg);
  mesh_grpc_server_call_send(call, out, strlen(out), NULL);
  return MESH_GRPC_OK;
}

typedef struct gsrv {
  mesh_grpc_server_t *srv;
  mesh_listener_t *l;
  pthread_t t;
} gsrv_t;

static void *gsrv_main(void *arg) {
  gsrv_t *g = arg;
  mesh_grpc_server_serve(g->srv, g->l, NULL);
  return NULL;
}

static void test_jwt_attach_grpc(void) {
  CU_ASSERT_FATAL(agent_start());
  mesh_t *b = workload("b", "\"tls\": {\"alpn\": [\"h2\"]}, \"authn\": "
                            "{\"jwt_rules\": [{\"spiffe_bundle\": "
                            "\"example.org\", \"audiences\": [\"" AUD1 "\"]}]}");
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  mesh_status_t st;
  gsrv_t g = {0};
  CU_ASSERT_EQUAL_FATAL(mesh_grpc_server_new(b, &g.srv, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(
      mesh_grpc_server_add_method(g.srv, "/t.T/Who", grpc_who, b, &st),
      MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_listen(b, "127.0.0.1:0", &g.l, &st), MESH_OK);
  int port = mesh_listener_port(g.l);
  CU_ASSERT_FATAL(pthread_create(&g.t, NULL, gsrv_main, &g) == 0);
  char svcs[1200];
  snprintf(svcs, sizeof svcs,
           "\"services\": {"
           "\"g-jwt\": {\"discovery\": {\"type\": \"static\", \"endpoints\": "
           "[{\"address\": \"127.0.0.1\", \"port\": %d}]}, \"jwt_svid\": "
           "{\"audience\": \"" AUD1 "\"}}, "
           "\"g-plain\": {\"discovery\": {\"type\": \"static\", \"endpoints\": "
           "[{\"address\": \"127.0.0.1\", \"port\": %d}]}}}",
           port, port);
  mesh_t *a = workload("a", svcs);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  mesh_grpc_metadata_t *md = mesh_grpc_metadata_new();
  mesh_grpc_metadata_add(md, "authorization", "Bearer caller.own.token", NULL);
  mesh_grpc_call_opts_t *o = mesh_grpc_call_opts_new();
  mesh_grpc_call_opts_set_metadata(o, md);
  struct {
    const char *svc;
    const char *want;
  } cases[] = {{"g-jwt", ID_A}, {"g-plain", "malformed"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char got[600] = "";
    for (int k = 0; k < 100; k++) { /* until B has the bundle */
      void *resp = NULL;
      size_t rl = 0;
      int rc = mesh_grpc_unary(a, cases[i].svc, "/t.T/Who", o, "", 0, &resp,
                               &rl, NULL, &st);
      snprintf(got, sizeof got, "%.*s", rc == MESH_OK ? (int)rl : 0,
               resp ? (const char *)resp : "");
      if (rc != MESH_OK)
        snprintf(got, sizeof got, "error %s: %s", mesh_code_name(rc),
                 st.message);
      mesh_grpc_free(resp);
      if (!strcmp(got, cases[i].want) || strcmp(got, "no_keys"))
        break;
      usleep(100000);
    }
    if (strcmp(got, cases[i].want))
      fprintf(stderr, "grpc %s: %s\n", cases[i].svc, got);
    CU_ASSERT_STRING_EQUAL(got, cases[i].want);
  }
  mesh_grpc_call_opts_free(o);
  mesh_grpc_metadata_free(md);
  mesh_free(a);
  mesh_grpc_server_shutdown(g.srv);
  pthread_join(g.t, NULL);
  mesh_grpc_server_free(g.srv);
  mesh_listener_close(g.l);
  mesh_free(b);
  agent_stop();
}

static void add(void) {
  CU_pSuite s = CU_add_suite("wl_authn", NULL, agent_teardown);
  CU_add_test(s, "jwt_svid_rotation", test_jwt_svid_rotation);
  CU_add_test(s, "bundles_under_readers", test_bundles_under_readers);
  CU_add_test(s, "validate_jwt_svid", test_validate_jwt_svid);
  CU_add_test(s, "jwt_attach", test_jwt_attach);
  CU_add_test(s, "jwt_attach_grpc", test_jwt_attach_grpc);
}

int main(void) { return th_run_suites("test_wl_authn", add); }
