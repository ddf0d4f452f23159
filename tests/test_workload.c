/* SPDX-License-Identifier: Apache-2.0 */
/* The SPIFFE Workload API source against a real agent: tests/wl_agent.py
 * (python3-grpcio serving libmesh's workload.proto, SVIDs minted with
 * python3-cryptography, JWT-SVIDs with python3-jwt) on a unix socket. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mesh/mesh.h>

#include "helpers.h"
#include "identity/identity.h"
#include "telemetry/telemetry.h"
#include "workload/workload.h"

#define PY "/usr/bin/python3"
#define AGENT TEST_SRCDIR "/tests/wl_agent.py"
#define ID_A "spiffe://example.org/a"
#define ID_B "spiffe://example.org/b"

static pid_t agent_pid;
static char sock[700], dir[512];

static void control(const char *json) {
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s", th_path("agent"));
    mkdir(dir, 0700);
  }
  char p[600];
  snprintf(p, sizeof p, "%s/control.json", dir);
  char tmp[620];
  snprintf(tmp, sizeof tmp, "%s.tmp", p);
  CU_ASSERT_FATAL(th_write(tmp, json));
  CU_ASSERT_FATAL(rename(tmp, p) == 0);
}

/* Lines in the agent's log equal to / starting with prefix. */
static int agent_events(const char *prefix) {
  char *t = th_slurp(th_path("wl_agent.log"), NULL);
  int n = 0;
  for (char *p = t; p && *p;) {
    char *nl = strchr(p, '\n');
    if (!strncmp(p, prefix, strlen(prefix)))
      n++;
    p = nl ? nl + 1 : NULL;
  }
  free(t);
  return n;
}

static bool agent_start(const char *rotate_s) {
  snprintf(dir, sizeof dir, "%s", th_path("agent"));
  mkdir(dir, 0700);
  snprintf(sock, sizeof sock, "%s/agent.sock", dir);
  const char *argv[] = {PY, AGENT, "--socket", sock, "--dir", dir,
                        "--rotate-s", rotate_s, "--ttl-s", "3600", NULL};
  int before = agent_events("ready");
  agent_pid = th_spawn(argv, "wl_agent.log");
  for (int i = 0; i < 300 && agent_pid > 0; i++) {
    if (agent_events("ready") > before)
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

static mesh_t *wl_mesh(const char *extra, mesh_status_t *st) {
  char cfg[2048];
  snprintf(cfg, sizeof cfg,
           "{\"identity\": {\"source\": \"workload_api\", "
           "\"endpoint\": \"unix://%s\"%s%s}}",
           sock, extra ? ", " : "", extra ? extra : "");
  mesh_t *m = NULL;
  if (mesh_new(cfg, &m, st) != MESH_OK)
    return NULL;
  return m;
}

static uint64_t wait_gen_above(mesh_t *m, uint64_t g, int ms) {
  for (int i = 0; i < ms / 20; i++) {
    uint64_t now = mesh__identity_generation(m);
    if (now > g && mesh__creds_acquire(m) != NULL) {
      mesh__creds_release(mesh__creds_acquire(m));
      mesh__creds_release(mesh__creds_acquire(m));
      return now;
    }
    usleep(20000);
  }
  return 0;
}

static void test_config(void) {
  int n = mesh_config_check("{\"identity\": {\"source\": \"workload_api\"}}",
                            NULL, NULL);
  CU_ASSERT_EQUAL(n, 0); /* endpoint from SPIFFE_ENDPOINT_SOCKET later */
  static const char *const bad[] = {
      "{\"identity\": {\"source\": \"workload_api\", \"endpoint\": "
      "\"unix://rel\"}}",
      "{\"identity\": {\"source\": \"workload_api\", \"endpoint\": "
      "\"tcp://localhost:1\"}}",
      "{\"identity\": {\"source\": \"workload_api\", \"endpoint\": "
      "\"http://1.2.3.4:5\"}}",
      "{\"identity\": {\"source\": \"workload_api\", \"cert\": \"x\"}}",
      "{\"identity\": {\"source\": \"sds\"}}",
      "{\"identity\": {\"source\": \"workload_api\", \"wait_ms\": -1}}",
      "{\"identity\": {\"cert\": \"a\", \"key\": \"b\", \"bundle\": \"c\", "
      "\"endpoint\": \"unix:///x\"}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CU_ASSERT(mesh_config_check(bad[i], NULL, NULL) > 0);
  CU_ASSERT_EQUAL(mesh_config_check("{\"identity\": {\"source\": "
                                    "\"workload_api\", \"endpoint\": "
                                    "\"tcp://127.0.0.1:8081\"}}",
                                    NULL, NULL),
                  0);
  /* No endpoint anywhere: mesh_new says which. */
  unsetenv("SPIFFE_ENDPOINT_SOCKET");
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh_new("{\"identity\": {\"source\": \"workload_api\"}}",
                           &m, &st),
                  MESH_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "SPIFFE_ENDPOINT_SOCKET"));
}

/* First SVID, the security header, rotation with new serials, the view. */
static void test_fetch_and_rotate(void) {
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  CU_ASSERT_FATAL(agent_start("1"));
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"wait_ms\": 15000", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char id[256];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, ID_A);
  CU_ASSERT(agent_events("call FetchX509SVID header=true") >= 1);
  CU_ASSERT_EQUAL(agent_events("call FetchX509SVID header=false"), 0);
  uint64_t g1 = mesh__identity_generation(m);
  mesh__creds_t *c1 = mesh__creds_acquire(m);
  uint64_t g2 = wait_gen_above(m, g1, 10000);
  CU_ASSERT(g2 > g1);
  mesh__creds_t *c2 = mesh__creds_acquire(m);
  CU_ASSERT_FATAL(c1 && c2);
  CU_ASSERT(c1->chain.serial.len != c2->chain.serial.len ||
            memcmp(c1->chain.serial.p, c2->chain.serial.p,
                   c1->chain.serial.len) != 0);
  mesh__creds_release(c1);
  mesh__creds_release(c2);
  cJSON *v = mesh__view_render(m, "identity");
  CU_ASSERT_PTR_NOT_NULL_FATAL(v);
  const cJSON *src = cJSON_GetObjectItem(v, "source");
  CU_ASSERT(cJSON_IsString(src) && !strcmp(src->valuestring, "workload_api"));
  const cJSON *state = cJSON_GetObjectItem(v, "source_state");
  CU_ASSERT(cJSON_IsString(state) &&
            !strcmp(state->valuestring, "connected"));
  cJSON_Delete(v);
  /* JWT bundles arrived too (keyed by the bare trust domain). */
  mesh__jwt_bundles_t *jb = NULL;
  for (int i = 0; i < 100 && !jb; i++) {
    jb = mesh__identity_jwt_bundles(m);
    if (!jb)
      usleep(50000);
  }
  CU_ASSERT_PTR_NOT_NULL_FATAL(jb);
  const char *jwks = mesh__jwt_bundles_find(jb, "example.org");
  CU_ASSERT(jwks && strstr(jwks, "\"kid\": \"k1\""));
  mesh__jwt_bundles_release(jb);
  mesh_free(m);
  agent_stop();
}

/* The agent refuses a call without the header (the library always sends
 * it: the other tests' agent log shows header=true only). */
static void test_security_header(void) {
  /* the agent log of the earlier tests: the library always sent it */
  CU_ASSERT(agent_events("call FetchX509SVID header=true") >= 1);
  CU_ASSERT_EQUAL(agent_events("call FetchX509SVID header=false"), 0);
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m, &st), MESH_OK);
  char ep[600];
  snprintf(ep, sizeof ep, "unix://%s", sock);
  for (int with = 0; with < 2; with++) {
    mesh__h2_session_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mesh__wl_dial(m, ep, 5000, &s, &st), MESH_OK);
    mesh__wl_call_t c;
    int64_t dl = mesh__now_ms() + 5000;
    CU_ASSERT_EQUAL(mesh__wl_call_start(&c, s, "FetchX509SVID", "", 0,
                                        with == 1, dl, &st),
                    MESH_OK);
    uint8_t *msg = NULL;
    size_t len;
    int r = mesh__wl_call_recv(&c, dl, &msg, &len, &st);
    if (with) {
      CU_ASSERT_EQUAL(r, 1);
    } else {
      CU_ASSERT_EQUAL(r, 0);
      CU_ASSERT_EQUAL(c.status, MESH__GRPC_INVALID_ARGUMENT);
      CU_ASSERT_PTR_NOT_NULL(strstr(c.message, "security header"));
    }
    free(msg);
    mesh__wl_call_end(&c);
    mesh__h2_session_free(s);
  }
  CU_ASSERT_EQUAL(agent_events("call FetchX509SVID header=false"), 1);
  mesh_free(m);
  agent_stop();
}

/* Startup without an agent: wait_ms bounds mesh_new; without it dials fail
 * with MESH_ERR_SVID until the first SVID, which arrives on its own. */
static void test_startup_no_agent(void) {
  snprintf(dir, sizeof dir, "%s", th_path("agent"));
  mkdir(dir, 0700);
  snprintf(sock, sizeof sock, "%s/agent.sock", dir);
  unlink(sock);
  mesh_status_t st;
  int64_t t0 = mesh__now_ms();
  mesh_t *m = wl_mesh("\"wait_ms\": 1500", &st);
  int64_t took = mesh__now_ms() - t0;
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_EQUAL(st.code, MESH_ERR_TIMEOUT);
  CU_ASSERT(took >= 1400 && took < 10000);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, sock));

  m = wl_mesh(NULL, &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_dial(m, "127.0.0.1:1", NULL, &c, &st), MESH_ERR_SVID);
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  CU_ASSERT(wait_gen_above(m, 0, 15000) > 0); /* backoff 1 s, 2 s, ... */
  char id[256];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  mesh_free(m);
  agent_stop();
}

static const char *view_state(mesh_t *m, char *buf, size_t len) {
  cJSON *v = mesh__view_render(m, "identity");
  const cJSON *s = cJSON_GetObjectItem(v, "source_state");
  snprintf(buf, len, "%s", cJSON_IsString(s) ? s->valuestring : "");
  cJSON_Delete(v);
  return buf;
}

static bool wait_state(mesh_t *m, const char *prefix, int ms) {
  char b[300];
  for (int i = 0; i < ms / 50; i++) {
    if (!strncmp(view_state(m, b, sizeof b), prefix, strlen(prefix)))
      return true;
    usleep(50000);
  }
  fprintf(stderr, "state is \"%s\", wanted \"%s\"\n", b, prefix);
  return false;
}

/* Agent killed and restarted; UNAVAILABLE and PERMISSION_DENIED retried
 * with the SVID kept; INVALID_ARGUMENT not retried. */
static void test_agent_failures(void) {
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"wait_ms\": 15000", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  uint64_t g = mesh__identity_generation(m);
  agent_stop();
  CU_ASSERT(wait_state(m, "retrying", 5000));
  char id[256];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK); /* kept */
  CU_ASSERT_FATAL(agent_start("3600"));
  CU_ASSERT(wait_gen_above(m, g, 20000) > g);
  CU_ASSERT(wait_state(m, "connected", 5000));

  static const struct {
    const char *mode, *code;
  } modes[] = {{"unavailable", "UNAVAILABLE"}, {"denied", "PERMISSION_DENIED"}};
  for (size_t i = 0; i < 2; i++) {
    char j[300];
    snprintf(j, sizeof j, "{\"ids\": [[\"" ID_A "\", \"\"]], \"mode\": \"%s\"}",
             modes[i].mode);
    control(j);
    char want[64];
    CU_ASSERT(wait_state(m, "retrying", 5000));
    char b[300];
    snprintf(want, sizeof want, "%s", modes[i].code);
    view_state(m, b, sizeof b);
    CU_ASSERT_PTR_NOT_NULL(strstr(b, want));
    CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
    g = mesh__identity_generation(m);
    control("{\"ids\": [[\"" ID_A "\", \"\"]], \"mode\": \"ok\"}");
    CU_ASSERT(wait_gen_above(m, g, 20000) > g);
    CU_ASSERT(wait_state(m, "connected", 5000));
  }
  control("{\"ids\": [[\"" ID_A "\", \"\"]], \"mode\": \"invalid\"}");
  CU_ASSERT(wait_state(m, "failed: INVALID_ARGUMENT", 5000));
  int calls = agent_events("call FetchX509SVID");
  usleep(2500000);
  CU_ASSERT_EQUAL(agent_events("call FetchX509SVID"), calls); /* no retry */
  mesh_free(m);
  agent_stop();
}

/* Several SVIDs: the hint selects; one removed from the set is gone. */
static void test_hint_and_removal(void) {
  control("{\"ids\": [[\"" ID_A "\", \"internal\"], [\"" ID_B
          "\", \"external\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"wait_ms\": 15000, \"svid_hint\": \"external\"", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  mesh_t *d = wl_mesh("\"wait_ms\": 15000", &st); /* no hint: the first */
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  char id[256];
  mesh_self_id(m, id, sizeof id);
  CU_ASSERT_STRING_EQUAL(id, ID_B);
  mesh_self_id(d, id, sizeof id);
  CU_ASSERT_STRING_EQUAL(id, ID_A);
  uint64_t gd = mesh__identity_generation(d);
  control("{\"ids\": [[\"" ID_A "\", \"internal\"]]}");
  for (int i = 0; i < 200 && mesh_self_id(m, id, sizeof id) == MESH_OK; i++)
    usleep(50000);
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_ERR_NOT_FOUND);
  mesh_conn_t *c = NULL;
  CU_ASSERT_EQUAL(mesh_dial(m, "127.0.0.1:1", NULL, &c, &st), MESH_ERR_SVID);
  CU_ASSERT(wait_gen_above(d, gd, 10000) > gd);
  mesh_self_id(d, id, sizeof id);
  CU_ASSERT_STRING_EQUAL(id, ID_A);
  control("{\"ids\": [[\"" ID_B "\", \"external\"], [\"" ID_A
          "\", \"internal\"]]}");
  CU_ASSERT(wait_gen_above(m, mesh__identity_generation(m), 10000) > 0);
  mesh_self_id(m, id, sizeof id);
  CU_ASSERT_STRING_EQUAL(id, ID_B);
  mesh_free(m);
  mesh_free(d);
  agent_stop();
}

/* FetchJWTSVID: a token for the audience, cached. */
static void test_jwt_svid(void) {
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"wait_ms\": 15000", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char *t1 = NULL, *t2 = NULL;
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid(m, "spiffe://example.org/db", &t1, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid(m, "spiffe://example.org/db", &t2, &st),
                  MESH_OK);
  CU_ASSERT_FATAL(t1 && t2);
  CU_ASSERT_STRING_EQUAL(t1, t2);
  CU_ASSERT_EQUAL(agent_events("sent FetchJWTSVID aud=spiffe://example.org/db"),
                  1);
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid(m, "", &t2, &st), MESH_ERR_INVALID_ARG);
  free(t1);
  free(t2);
  mesh_free(m);
  agent_stop();
}

static void add(void) {
  CU_pSuite s = CU_add_suite("workload_api", NULL, NULL);
  CU_add_test(s, "config", test_config);
  CU_add_test(s, "fetch_and_rotate", test_fetch_and_rotate);
  CU_add_test(s, "security_header", test_security_header);
  CU_add_test(s, "startup_no_agent", test_startup_no_agent);
  CU_add_test(s, "agent_failures", test_agent_failures);
  CU_add_test(s, "hint_and_removal", test_hint_and_removal);
  CU_add_test(s, "jwt_svid", test_jwt_svid);
}

int main(void) { return th_run_suites("test_workload", add); }
