/* SPDX-License-Identifier: Apache-2.0 */
/* The SPIFFE Workload API source against a real agent: tests/wl_agent.py
 * (python3-grpcio serving libmesh's workload.proto, SVIDs minted with
 * python3-cryptography, JWT-SVIDs with python3-jwt) on a unix socket. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

static const char *agent_ttl = "3600";

static bool agent_tcp; /* also on 127.0.0.1, at a port the agent picks */
static int agent_tcp_port; /* that port, from the agent's ready line */

static bool agent_start(const char *rotate_s) {
  snprintf(dir, sizeof dir, "%s", th_path("agent"));
  mkdir(dir, 0700);
  snprintf(sock, sizeof sock, "%s/agent.sock", dir);
  const char *argv[] = {PY, AGENT, "--socket", sock, "--dir", dir,
                        "--rotate-s", rotate_s, "--ttl-s", agent_ttl,
                        agent_tcp ? "--tcp" : NULL, NULL};
  int before = agent_events("ready");
  agent_pid = th_spawn(argv, "wl_agent.log");
  for (int i = 0; i < 300 && agent_pid > 0; i++) {
    if (agent_events("ready") > before) {
      agent_tcp_port = 0;
      char *t = th_slurp(th_path("wl_agent.log"), NULL);
      const char *p = t ? strstr(t, "ready tcp_port=") : NULL;
      for (const char *q = p; q; q = strstr(q + 1, "ready tcp_port="))
        p = q; /* the last one: this agent's */
      if (p)
        agent_tcp_port = atoi(p + strlen("ready tcp_port="));
      free(t);
      return true;
    }
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
    mesh__creds_t *c = mesh__creds_acquire(m);
    bool have = c != NULL;
    mesh__creds_release(c);
    if (now > g && have)
      return now;
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
      "\"http://127.0.0.1:5\"}}",
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
  char s1[128] = "", s2[128] = "";
  mesh__x509_serial_text(mesh__x509_chain_at(c1->chain, 0), s1, sizeof s1);
  mesh__x509_serial_text(mesh__x509_chain_at(c2->chain, 0), s2, sizeof s2);
  CU_ASSERT(s1[0] && strcmp(s1, s2) != 0);
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
  char ep[800];
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

/* The agent goes away: the last SVID is kept while valid, then withdrawn. */
static void test_expiry_without_agent(void) {
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  agent_ttl = "3"; /* not_before is 30 s back: lifetime 33 s, 3 s left */
  bool up = agent_start("3600");
  agent_ttl = "3600";
  CU_ASSERT_FATAL(up);
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"wait_ms\": 15000", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  agent_stop();
  char id[256];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  int i = 0;
  while (i++ < 200 && mesh_self_id(m, id, sizeof id) == MESH_OK)
    usleep(50000);
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_ERR_NOT_FOUND);
  CU_ASSERT(i > 20); /* kept for a while first (about 3 s) */
  mesh_free(m);
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
  char *t3 = NULL;
  CU_ASSERT_EQUAL(mesh__wl_jwt_svid(m, "", &t3, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_PTR_NULL(t3);
  char buf[4096], small[8];
  CU_ASSERT_EQUAL(mesh_jwt_svid(m, "spiffe://example.org/db", buf,
                                sizeof buf, &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(buf, t1);
  CU_ASSERT_EQUAL(mesh_jwt_svid(m, "spiffe://example.org/db", small,
                                sizeof small, &st),
                  MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(agent_events("sent FetchJWTSVID"), 1); /* still cached */
  /* A second audience is a second token. */
  CU_ASSERT_EQUAL(mesh_jwt_svid(m, "spiffe://example.org/web", buf,
                                sizeof buf, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(agent_events("sent FetchJWTSVID"), 2);
  /* Without a Workload API source. */
  mesh_t *plain = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &plain, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_jwt_svid(plain, "x", buf, sizeof buf, &st),
                  MESH_ERR_NOT_FOUND);
  mesh_free(plain);
  free(t1);
  free(t2);
  mesh_free(m);
  agent_stop();
}

#define MESHCTL TEST_BUILDDIR "/tools/meshctl"

static const char *wl_config_file(const char *name, const char *extra) {
  char cfg[2048];
  snprintf(cfg, sizeof cfg,
           "{\"identity\": {\"source\": \"workload_api\", "
           "\"endpoint\": \"unix://%s\"%s%s}}",
           sock, extra ? ", " : "", extra ? extra : "");
  const char *p = th_path(name);
  CU_ASSERT_FATAL(th_write(p, cfg));
  return p;
}

/* Output of a shell command (static), its exit status in *rc. */
static const char *run(const char *cmd, int *rc) {
  static char out[8192];
  out[0] = '\0';
  FILE *f = popen(cmd, "r");
  if (!f) {
    *rc = -1;
    return out;
  }
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = '\0';
  int s = pclose(f);
  *rc = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  return out;
}

/* meshctl identity / jwt, with and without an agent. */
static void test_meshctl(void) {
  control("{\"ids\": [[\"" ID_A "\", \"\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  const char *cfg = wl_config_file("wl_a.json", NULL);
  char cmd[8192];
  int rc;
  snprintf(cmd, sizeof cmd, "%s identity --config %s 2>&1", MESHCTL, cfg);
  const char *out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "spiffe_id:  " ID_A));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "source:     workload_api"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "bundles:    example.org"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "serial:     "));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "not_after:  20"));
  /* The serial is the one the agent sent. */
  const char *ser = strstr(out, "serial:     ");
  if (ser) {
    char hex[80];
    sscanf(ser + 12, "%79s", hex);
    const char *h = hex;
    while (*h == '0')
      h++; /* python prints without leading zeros */
    char want[128];
    snprintf(want, sizeof want, "sent FetchX509SVID %s", h);
    CU_ASSERT(agent_events(want) >= 1);
  }
  snprintf(cmd, sizeof cmd,
           "%s jwt --config %s --audience spiffe://example.org/db 2>&1",
           MESHCTL, cfg);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT(strncmp(out, "eyJ", 3) == 0 && strchr(out, '.'));
  /* PyJWT, an independent implementation, checks signature and audience
   * against the agent's JWKS (the JWT bundle libmesh received). */
  char tok[4096];
  snprintf(tok, sizeof tok, "%s", out);
  tok[strcspn(tok, "\n")] = '\0';
  snprintf(cmd, sizeof cmd,
           PY " -c \"import jwt,sys; from cryptography.hazmat.primitives "
           "import serialization as s; k=s.load_pem_private_key(open('%s/"
           "jwt.key','rb').read(),None).public_key(); print(jwt.decode('%s',"
           "k,algorithms=['ES256'],audience='spiffe://example.org/db')"
           "['sub'])\" 2>&1",
           dir, tok);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, ID_A));
  agent_stop();
  /* No agent: fails within the timeout, naming the socket. */
  snprintf(cmd, sizeof cmd, "%s identity --config %s --timeout 2s 2>&1",
           MESHCTL, cfg);
  int64_t t0 = mesh__now_ms();
  out = run(cmd, &rc);
  int64_t took = mesh__now_ms() - t0;
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT(took >= 1900 && took < 8000);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, sock));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "MESH_ERR_TIMEOUT"));
  snprintf(cmd, sizeof cmd, "%s identity --config %s 2>&1", MESHCTL, cfg);
  t0 = mesh__now_ms();
  out = run(cmd, &rc);
  took = mesh__now_ms() - t0;
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT(took < 12000); /* default timeout 10 s */
  snprintf(cmd, sizeof cmd, "%s jwt --config %s --audience x --timeout 2s "
           "2>&1", MESHCTL, cfg);
  out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, sock));
}

/* Serial (hex, lower case, no leading zeros) of the certificate
 * `openssl s_client` sees at port. */
static bool s_client_serial(int port, char *out, size_t len) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
           "-cert %s/client.crt -key %s/client.key -CAfile %s/ca.crt "
           "-verify_return_error 2>/dev/null | openssl x509 -noout -serial",
           port, dir, dir, dir);
  int rc;
  const char *o = run(cmd, &rc);
  const char *p = strstr(o, "serial=");
  if (rc != 0 || !p)
    return false;
  p += 7;
  while (*p == '0' && p[1] != '\n')
    p++;
  snprintf(out, len, "%s", p);
  out[strcspn(out, "\n")] = '\0';
  for (char *q = out; *q; q++)
    if (*q >= 'A' && *q <= 'F')
      *q = (char)(*q - 'A' + 'a');
  return true;
}

#define LOAD_THREADS 3
#define LOAD_CALLS 60

#define LOAD_CALLS_MAX 1000

typedef struct load {
  mesh_t *m;
  const char *to;
  int ok, fail;
  uint64_t gen_target; /* keep calling until our SVID rotated this far */
} load_t;

/* At least LOAD_CALLS echo calls, each a new mTLS connection (a new
 * handshake with whatever SVID is current), and on until the own SVID has
 * rotated twice (count-bound by LOAD_CALLS_MAX, time cap 90 s). */
static void *load_main(void *arg) {
  load_t *w = arg;
  int64_t end = mesh__now_ms() + 90000;
  for (int i = 0; i < LOAD_CALLS_MAX && mesh__now_ms() < end &&
                  (i < LOAD_CALLS ||
                   mesh__identity_generation(w->m) < w->gen_target);
       i++) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    char b = 0;
    int rc = mesh_dial(w->m, w->to, NULL, &c, &st);
    if (rc == MESH_OK && mesh_conn_write_all(c, "x", 1) == MESH_OK &&
        mesh_conn_read(c, &b, 1) == 1 && b == 'x' &&
        !strcmp(mesh_conn_peer_id(c), ID_A)) {
      w->ok++;
    } else {
      w->fail++;
      fprintf(stderr, "call %d failed: %s %s\n", i, mesh_code_name(rc),
              st.message);
    }
    mesh_conn_close(c);
    usleep(20000);
  }
  return NULL;
}

/* Interop: `meshctl serve` (process 1, ID a) and this process (ID b), both
 * identified only through the Workload API, call each other over mTLS
 * from 3 threads while the agent rotates every second: no call fails;
 * openssl s_client with the agent's CA sees the server's certificate
 * change. */
static void test_interop_rotation(void) {
  if (!th_require("openssl", "openssl"))
    return;
  control("{\"ids\": [[\"" ID_A "\", \"a\"], [\"" ID_B "\", \"b\"]]}");
  CU_ASSERT_FATAL(agent_start("1"));
  const char *cfg = wl_config_file("wl_srv.json", "\"svid_hint\": \"a\", "
                                                  "\"wait_ms\": 15000");
  int port = th_free_port();
  char lp[64];
  snprintf(lp, sizeof lp, "127.0.0.1:%d", port);
  const char *argv[] = {MESHCTL, "serve", "--config", cfg, "--listen", lp,
                        NULL};
  pid_t srv = th_spawn(argv, "wl_serve.log");
  CU_ASSERT_FATAL(srv > 0 && th_wait_port(port, 20000));
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"svid_hint\": \"b\", \"wait_ms\": 15000", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  char s1[80] = "", s2[80] = "";
  CU_ASSERT(s_client_serial(port, s1, sizeof s1));
  uint64_t g0 = mesh__identity_generation(m);
  load_t w[LOAD_THREADS];
  pthread_t th[LOAD_THREADS];
  for (int k = 0; k < LOAD_THREADS; k++) {
    w[k] = (load_t){m, lp, 0, 0, mesh__identity_generation(m) + 2};
    CU_ASSERT_FATAL(pthread_create(&th[k], NULL, load_main, &w[k]) == 0);
  }
  int ok = 0, fail = 0;
  for (int k = 0; k < LOAD_THREADS; k++) {
    pthread_join(th[k], NULL);
    ok += w[k].ok;
    fail += w[k].fail;
  }
  uint64_t g1 = mesh__identity_generation(m);
  CU_ASSERT_EQUAL(fail, 0);
  CU_ASSERT(ok >= LOAD_THREADS * LOAD_CALLS);
  CU_ASSERT(g1 >= g0 + 2); /* our own SVID rotated during the calls */
  CU_ASSERT(s_client_serial(port, s2, sizeof s2));
  CU_ASSERT(s1[0] && s2[0] && strcmp(s1, s2) != 0);
  char want[128];
  snprintf(want, sizeof want, "sent FetchX509SVID %s", s2);
  CU_ASSERT(agent_events(want) >= 1); /* the rotated one the agent sent */
  fprintf(stderr, "interop: %d calls ok, own generation %llu -> %llu, "
                  "server serial %s -> %s\n", ok, (unsigned long long)g0,
          (unsigned long long)g1, s1, s2);
  mesh_free(m);
  th_stop(srv);
  agent_stop();
}

/* The trust set once it holds n bundles (10 s at most; NULL: never). */
static mesh__creds_t *wait_trust(mesh_t *m, size_t n) {
  for (int i = 0; i < 200; i++) {
    mesh__creds_t *t = mesh__identity_trust_acquire(m);
    if (t && (size_t)t->nbundles == n)
      return t;
    mesh__creds_release(t);
    usleep(50000);
  }
  return NULL;
}

/* "bundles_only": FetchX509Bundles instead of FetchX509SVID: trust
 * bundles (own and federated, each message the complete set) without an
 * own SVID; mesh_new waits for the first set; the view and meshctl show
 * them. */
static void test_bundles_only(void) {
  CU_ASSERT(mesh_config_check("{\"identity\": {\"source\": \"workload_api\", "
                              "\"bundles_only\": true, \"svid_hint\": "
                              "\"a\"}}",
                              NULL, NULL) > 0);
  CU_ASSERT(mesh_config_check("{\"identity\": {\"source\": \"workload_api\", "
                              "\"bundles_only\": \"yes\"}}",
                              NULL, NULL) > 0);
  CU_ASSERT(mesh_config_check("{\"identity\": {\"cert\": \"a\", \"key\": "
                              "\"b\", \"bundle\": \"c\", \"bundles_only\": "
                              "true}}",
                              NULL, NULL) > 0);
  control("{\"ids\": [[\"" ID_A "\", \"a\"]]}");
  CU_ASSERT_FATAL(agent_start("3600"));
  char fed[700], ctl[1600];
  snprintf(fed, sizeof fed, "%s/ca.crt", dir); /* another CA file will do */
  snprintf(ctl, sizeof ctl,
           "{\"ids\": [[\"" ID_A "\", \"a\"]], \"federated\": "
           "{\"spiffe://other.org\": \"%s\"}}",
           fed);
  control(ctl);
  int svid_calls = agent_events("call FetchX509SVID");
  mesh_status_t st;
  mesh_t *m = wl_mesh("\"bundles_only\": true, \"wait_ms\": 15000", &st);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_PTR_NULL(mesh__creds_acquire(m)); /* no own SVID */
  char id[256];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_ERR_NOT_FOUND);
  mesh__creds_t *t = wait_trust(m, 2); /* until the federated one is in */
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_PTR_NOT_NULL(mesh__creds_bundle(t, "example.org"));
  CU_ASSERT_PTR_NOT_NULL(mesh__creds_bundle(t, "other.org"));
  mesh__creds_release(t);
  CU_ASSERT(agent_events("call FetchX509Bundles header=true") >= 1);
  CU_ASSERT_EQUAL(agent_events("call FetchX509SVID"), svid_calls);
  cJSON *v = mesh__view_render(m, "identity");
  CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(v, "status")),
                         "bundles only (no SVID)");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(cJSON_GetObjectItem(v, "bundles")), 2);
  cJSON_Delete(v);
  /* a complete set without other.org: it is gone */
  control("{\"ids\": [[\"" ID_A "\", \"a\"]]}");
  t = wait_trust(m, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_PTR_NULL(mesh__creds_bundle(t, "other.org"));
  mesh__creds_release(t);
  /* dials need an own SVID: refused with the usual code */
  mesh_conn_t *conn = NULL;
  CU_ASSERT_EQUAL(mesh_dial(m, "127.0.0.1:9", NULL, &conn, &st), MESH_ERR_SVID);
  mesh_free(m);
  /* meshctl identity prints the trust domains */
  const char *cfg = wl_config_file("wl_bundles.json", "\"bundles_only\": true");
  char cmd[2048];
  int rc;
  snprintf(cmd, sizeof cmd, "%s identity --config %s 2>&1", MESHCTL, cfg);
  const char *out = run(cmd, &rc);
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "spiffe_id:  (none: bundles only)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "bundles:    example.org"));
  agent_stop();
}

/* A tcp:// Workload Endpoint (SPIFFE Workload Endpoint spec: an IP
 * address and port), from the config and from SPIFFE_ENDPOINT_SOCKET;
 * the unix socket's path is nowhere in either. */
static void test_tcp_endpoint(void) {
  control("{\"ids\": [[\"" ID_B "\", \"\"]]}");
  agent_tcp = true;
  bool up = agent_start("3600");
  int port = agent_tcp_port;
  agent_tcp = false;
  CU_ASSERT_FATAL(up);
  CU_ASSERT_FATAL(port > 0);
  int calls = agent_events("call FetchX509SVID");
  char cfg[512];
  snprintf(cfg, sizeof cfg,
           "{\"identity\": {\"source\": \"workload_api\", \"endpoint\": "
           "\"tcp://127.0.0.1:%d\", \"wait_ms\": 15000}}",
           port);
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(cfg, &m, &st), MESH_OK);
  char id[256];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, ID_B);
  mesh_free(m);
  char env[64];
  snprintf(env, sizeof env, "tcp://127.0.0.1:%d", port);
  setenv("SPIFFE_ENDPOINT_SOCKET", env, 1);
  m = NULL;
  CU_ASSERT_EQUAL(mesh_new("{\"identity\": {\"source\": \"workload_api\", "
                           "\"wait_ms\": 15000}}",
                           &m, &st),
                  MESH_OK);
  unsetenv("SPIFFE_ENDPOINT_SOCKET");
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, ID_B);
  mesh_free(m);
  CU_ASSERT(agent_events("call FetchX509SVID") >= calls + 2);
  /* nothing listens on another port: a bounded wait, a clear error */
  snprintf(cfg, sizeof cfg,
           "{\"identity\": {\"source\": \"workload_api\", \"endpoint\": "
           "\"tcp://127.0.0.1:%d\", \"wait_ms\": 1000}}",
           th_free_port());
  m = NULL;
  int rc = mesh_new(cfg, &m, &st);
  CU_ASSERT_NOT_EQUAL(rc, MESH_OK);
  if (rc == MESH_OK)
    mesh_free(m);
  else
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "tcp://127.0.0.1:"));
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
  CU_add_test(s, "expiry_without_agent", test_expiry_without_agent);
  CU_add_test(s, "jwt_svid", test_jwt_svid);
  CU_add_test(s, "meshctl", test_meshctl);
  CU_add_test(s, "interop_rotation", test_interop_rotation);
  CU_add_test(s, "bundles_only", test_bundles_only);
  CU_add_test(s, "tcp_endpoint", test_tcp_endpoint);
}

int main(void) { return th_run_suites("test_workload", add); }
