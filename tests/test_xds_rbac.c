/* SPDX-License-Identifier: Apache-2.0 */
/* An xDS-enabled server (gRFC A36) enforcing its Listener's RBAC filter
 * (A41) through authz, against tests/xds/rbac_cp.py (python3-grpcio) and
 * real mTLS clients (curl with two SPIFFE identities): ALLOW by principal,
 * DENY on a normalized path, a NACKed update keeps the last policy, an
 * update while a client calls switches its verdict, ALLOW with no policy
 * denies all, no RBAC filter restricts nothing, and the control plane
 * killed changes nothing.  Plus the config checks of xds.server_address. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "helpers.h"
#include "mesh/mesh.h"
#include "test_grpc_util.h"

#define TD "example.org"
#define ALICE "spiffe://example.org/ns/default/sa/alice"
#define BOB "spiffe://example.org/ns/default/sa/bob"
#define TMPL "xds.test/grpc/lds/inbound/%s"

/* th_path's ring is not for threads: the caller thread and the test build
 * their paths from th_tmpdir() (made before any thread starts). */
static void tpath(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", th_tmpdir(), name);
}

static const char *cp_log = "rbac_cp.log";

static char *slurp_log(void) {
  char p[512];
  tpath(p, sizeof p, cp_log);
  return th_slurp(p, NULL);
}

static int cp_port_of_log(void) {
  char *log = slurp_log();
  const char *p = log ? strstr(log, "port ") : NULL;
  int port = p ? atoi(p + 5) : 0;
  free(log);
  return port;
}

static bool log_has(const char *s) {
  char *log = slurp_log();
  bool ok = log && strstr(log, s);
  free(log);
  return ok;
}

static int count_in_log(const char *s) {
  char *log = slurp_log();
  int n = 0;
  for (const char *p = log; p && (p = strstr(p, s)); p += strlen(s))
    n++;
  free(log);
  return n;
}

/* ---- the server: accept, serve, close, until stopped -------------------- */

typedef struct srv {
  mesh_t *m;
  mesh_listener_t *l;
  pthread_t t;
  atomic_bool stop;
  atomic_int denied_conns;
  int port;
} srv_t;

static int hello(const mesh_http_request_t *req, mesh_http_response_t *resp,
                 void *user) {
  (void)req;
  (void)user;
  mesh_http_response_set_status(resp, 200);
  mesh_http_response_set_body(resp, "hello", 5);
  return 0;
}

static void *srv_main(void *arg) {
  srv_t *s = arg;
  while (!atomic_load(&s->stop)) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_accept(s->l, 200, &c, &st);
    if (rc == MESH_ERR_DENIED)
      atomic_fetch_add(&s->denied_conns, 1);
    if (rc != MESH_OK)
      continue;
    mesh_http_serve(s->m, c, hello, NULL, NULL);
    mesh_conn_close(c);
  }
  return NULL;
}

static char *server_config(int cp_port, const char *addr, bool tmpl) {
  char *buf = malloc(4096);
  snprintf(buf, 4096,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"inbound\":{\"listen\":\"%s\","
           "\"mode\":\"STRICT\"},\"xds\":{\"server_address\":\"%s\","
           "\"bootstrap\":{\"xds_servers\":[{\"server_uri\":\"127.0.0.1:%d\","
           "\"channel_creds\":[{\"type\":\"insecure\"}],\"server_features\":"
           "[\"xds_v3\"]}],\"node\":{\"id\":\"rbac-test\"}%s}}}",
           th_path("server.crt"), th_path("server.key"), th_ca(TD),
           strchr(addr, '.') && addr[strlen(addr) - 1] != ':' &&
           !strstr(addr, ":x") ? addr : "127.0.0.1:0", addr,
           cp_port, tmpl ? ",\"server_listener_resource_name_template\":\""
           TMPL "\"" : "");
  return buf;
}

static bool srv_start(srv_t *s, int cp_port, int port) {
  memset(s, 0, sizeof *s);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  char *cfg = server_config(cp_port, addr, true);
  mesh_status_t st;
  int rc = mesh_new(cfg, &s->m, &st);
  free(cfg);
  if (rc != MESH_OK || mesh_listen(s->m, NULL, &s->l, &st) != MESH_OK) {
    fprintf(stderr, "server: %s\n", st.message);
    return false;
  }
  s->port = mesh_listener_port(s->l);
  return pthread_create(&s->t, NULL, srv_main, s) == 0;
}

static void srv_stop(srv_t *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->t, NULL);
  mesh_listener_close(s->l);
  mesh_free(s->m);
}

/* ---- the clients: curl over mTLS ------------------------------------------ */

static atomic_int curl_seq;

/* GET path as `who` ("alice" or "bob"); the status, 0 when the connection
 * was refused, -1 when curl could not run. */
static int get_h(const srv_t *s, const char *who, const char *path,
                 const char *hdr) {
  int n = atomic_fetch_add(&curl_seq, 1);
  char out[64], cmd[2048], crt[400], key[400], codef[400];
  snprintf(out, sizeof out, "curl.%d.code", n);
  tpath(codef, sizeof codef, out);
  bool a = strcmp(who, "alice") == 0;
  tpath(crt, sizeof crt, a ? "alice.crt" : "bob.crt");
  tpath(key, sizeof key, a ? "alice.key" : "bob.key");
  snprintf(cmd, sizeof cmd,
           "curl -sk --http1.1 --max-time 20 --path-as-is --cert '%s' "
           "--key '%s' -o /dev/null -w '%%{http_code}' %s%s%s "
           "'https://127.0.0.1:%d%s' > '%s'",
           crt, key, hdr ? "-H '" : "", hdr ? hdr : "", hdr ? "'" : "", s->port, path,
           codef);
  th_sh(cmd);
  char *c = th_slurp(codef, NULL);
  int code = c && *c ? atoi(c) : -1;
  free(c);
  remove(codef);
  return code;
}

static int get(const srv_t *s, const char *who, const char *path) {
  return get_h(s, who, path, NULL);
}

struct want {
  const srv_t *s;
  const char *who, *path;
  int status;
};

static bool reaches(void *arg) {
  struct want *w = arg;
  return get(w->s, w->who, w->path) == w->status;
}

static int push(int fd, const char *cmd, int *pushes) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s\n", cmd);
  if (write(fd, line, (size_t)n) != n)
    return -1;
  (*pushes)++;
  char tag[32];
  snprintf(tag, sizeof tag, "pushed %d", *pushes);
  int64_t end = th_now_ms() + 30000;
  while (!log_has(tag) && th_now_ms() < end)
    usleep(10000);
  return log_has(tag) ? 0 : -1;
}

#define WAIT_STATUS(srv, who_, path_, st_, what)                          \
  do {                                                                    \
    struct want w_ = {(srv), (who_), (path_), (st_)};                     \
    CU_ASSERT(th_wait_for(reaches, &w_, TH_CAP_MS, (what)));              \
  } while (0)

/* A client calling in a loop while the policy changes. */
struct caller {
  const srv_t *s;
  atomic_bool stop;
  atomic_int ok_after_deny, denied, served;
  pthread_t t;
};

static void *caller_main(void *arg) {
  struct caller *c = arg;
  while (!atomic_load(&c->stop)) {
    int code = get(c->s, "alice", "/hello");
    if (code == 200) {
      atomic_fetch_add(&c->served, 1);
      if (atomic_load(&c->denied))
        atomic_fetch_add(&c->ok_after_deny, 1);
    } else {
      atomic_fetch_add(&c->denied, 1);
    }
  }
  return NULL;
}

static uint64_t counter(mesh_t *m, const char *name) {
  uint64_t v = 0;
  mesh_authz_counter(m, name, &v);
  return v;
}

static void test_xds_rbac_live(void) {
  if (!th_require("curl", "curl"))
    return;
  CU_ASSERT_FATAL(th_ca(TD) != NULL);
  CU_ASSERT_FATAL(th_svid(TD, "spiffe://example.org/ns/default/sa/server",
                          "server", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid(TD, ALICE, "alice", 0, 0, 0));
  CU_ASSERT_FATAL(th_svid(TD, BOB, "bob", 0, 0, 0));
  int port = th_free_port();
  char name[128], addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  snprintf(name, sizeof name, "xds.test/grpc/lds/inbound/%s", addr);
  int fd = -1;
  const char *argv[] = {"/usr/bin/python3",
                        TEST_SRCDIR "/tests/xds/rbac_cp.py", name, NULL};
  pid_t cp = th_spawn_stdin(argv, "rbac_cp.log", &fd);
  CU_ASSERT_FATAL(cp > 0);
  int cp_port = 0;
  for (int i = 0; i < 3000 && !(cp_port = cp_port_of_log()); i++)
    usleep(10000);
  CU_ASSERT_FATAL(cp_port > 0);
  int pushes = 0;
  /* the first Listener: only alice */
  CU_ASSERT_FATAL(push(fd, "allow " ALICE, &pushes) == 0);
  srv_t s;
  CU_ASSERT_FATAL(srv_start(&s, cp_port, port));
  WAIT_STATUS(&s, "alice", "/hello", 200, "alice allowed by the first RBAC");
  /* xDS RBAC is an HTTP filter (A41): a principals-only policy denies
   * bob's request (403), not his connection */
  uint64_t cd0 = counter(s.m, "conn_deny"), d0 = counter(s.m, "deny");
  CU_ASSERT_EQUAL(get(&s, "bob", "/hello"), 403);
  bool ok;
  TH_WAIT_UNTIL(ok, counter(s.m, "deny") > d0, "request deny counted");
  CU_ASSERT(ok);
  CU_ASSERT_EQUAL(counter(s.m, "conn_deny"), cd0);

  /* DENY on a path: everyone else allowed, /admin refused with 403, also
   * when the path only becomes /admin once normalized */
  CU_ASSERT(push(fd, "denypath /admin", &pushes) == 0);
  WAIT_STATUS(&s, "bob", "/hello", 200, "bob allowed once DENY replaced ALLOW");
  CU_ASSERT_EQUAL(get(&s, "alice", "/admin"), 403);
  CU_ASSERT_EQUAL(get(&s, "bob", "/admin"), 403);
  CU_ASSERT_EQUAL(get(&s, "bob", "/x/../admin"), 403);
  CU_ASSERT_EQUAL(get(&s, "bob", "/admin/sub"), 200); /* exact, not prefix */

  /* an unsupported matcher: NACKed with the reason, last policy in force */
  uint64_t deny0 = counter(s.m, "deny");
  CU_ASSERT(push(fd, "bad", &pushes) == 0);
  int64_t end = th_now_ms() + 30000;
  while (!log_has("nack ") && th_now_ms() < end)
    usleep(10000);
  CU_ASSERT(log_has("permission header x-user: only exact, prefix, suffix "
                    "and present matches are supported"));
  CU_ASSERT_EQUAL(get(&s, "alice", "/admin"), 403);
  CU_ASSERT_EQUAL(get(&s, "bob", "/hello"), 200);
  CU_ASSERT(counter(s.m, "deny") > deny0);

  /* a policy update while alice calls: her verdict switches, once */
  struct caller c = {.s = &s};
  CU_ASSERT_FATAL(pthread_create(&c.t, NULL, caller_main, &c) == 0);
  while (atomic_load(&c.served) < 3 && th_now_ms() < end + 60000)
    usleep(10000);
  CU_ASSERT(push(fd, "allow " BOB, &pushes) == 0);
  int64_t cap = th_now_ms() + TH_CAP_MS;
  while (atomic_load(&c.denied) < 3 && th_now_ms() < cap)
    usleep(10000);
  atomic_store(&c.stop, true);
  pthread_join(c.t, NULL);
  CU_ASSERT(atomic_load(&c.served) >= 3);
  CU_ASSERT(atomic_load(&c.denied) >= 3);
  CU_ASSERT_EQUAL(atomic_load(&c.ok_after_deny), 0);
  CU_ASSERT_EQUAL(get(&s, "bob", "/admin"), 200);

  /* a header permission (a `when` condition on the rule) */
  CU_ASSERT(push(fd, "denyheader on", &pushes) == 0);
  WAIT_STATUS(&s, "alice", "/hello", 200, "alice allowed without the header");
  CU_ASSERT_EQUAL(get_h(&s, "alice", "/hello", "x-debug: on"), 403);
  CU_ASSERT_EQUAL(get_h(&s, "bob", "/hello", "x-debug: only"), 403);
  CU_ASSERT_EQUAL(get_h(&s, "bob", "/hello", "x-debug: no"), 200);

  /* ALLOW with no policy denies everyone */
  CU_ASSERT(push(fd, "allownone", &pushes) == 0);
  WAIT_STATUS(&s, "bob", "/hello", 403, "ALLOW without policies denies bob");
  CU_ASSERT_EQUAL(get(&s, "alice", "/hello"), 403);

  /* no RBAC filter: no xDS restriction */
  CU_ASSERT(push(fd, "none", &pushes) == 0);
  WAIT_STATUS(&s, "alice", "/admin", 200, "no RBAC filter allows alice");
  CU_ASSERT_EQUAL(get(&s, "bob", "/admin"), 200);

  /* fail static: alice only, then the control plane goes away */
  CU_ASSERT(push(fd, "allow " ALICE, &pushes) == 0);
  WAIT_STATUS(&s, "bob", "/hello", 403, "bob denied again");
  CU_ASSERT(write(fd, "stop\n", 5) == 5);
  end = th_now_ms() + 30000;
  while (!log_has("stopped") && th_now_ms() < end)
    usleep(10000);
  CU_ASSERT(log_has("stopped"));
  th_kill(cp);
  for (int i = 0; i < 10; i++) {
    CU_ASSERT_EQUAL(get(&s, "alice", "/hello"), 200);
    CU_ASSERT_EQUAL(get(&s, "bob", "/hello"), 403);
    usleep(100000);
  }
  CU_ASSERT_EQUAL(count_in_log("nack "), 1);
  close(fd);
  srv_stop(&s);
}

static void first_err(const char *msg, void *user) {
  char *out = user;
  if (!*out)
    snprintf(out, 384, "%s", msg);
}

/* server_address: IP:PORT, and the bootstrap must carry the template. */
static void test_xds_rbac_config(void) {
  CU_ASSERT_FATAL(th_ca(TD) != NULL);
  CU_ASSERT_FATAL(th_svid(TD, "spiffe://example.org/ns/default/sa/server",
                          "server", 0, 0, 0));
  struct {
    const char *addr;
    bool tmpl;
    const char *err; /* NULL: valid */
  } rows[] = {
      {"127.0.0.1:8443", true, NULL},
      {"127.0.0.1:8443", false, "xds.server_address: the bootstrap has no "
                                "server_listener_resource_name_template"},
      {"8443", true, "xds.server_address: \"8443\": want IP:PORT"},
      {"127.0.0.1:", true, "want IP:PORT"},
      {"127.0.0.1:x1", true, "want IP:PORT"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char *cfg = server_config(1, rows[i].addr, rows[i].tmpl);
    char msg[384] = "";
    int rc = mesh_config_check(cfg, first_err, msg);
    if (rows[i].err) {
      CU_ASSERT_EQUAL(rc, 1);
      CU_ASSERT_PTR_NOT_NULL(strstr(msg, rows[i].err));
      if (!strstr(msg, rows[i].err))
        fprintf(stderr, "row %zu: %s\n", i, msg);
    } else {
      CU_ASSERT_EQUAL(rc, 0);
      if (rc)
        fprintf(stderr, "row %zu: %s\n", i, msg);
    }
    free(cfg);
  }
}

static char *bootstrap_json(int cp_port, const char *addr) {
  char *buf = malloc(2048);
  snprintf(buf, 2048,
           "\"xds\":{\"server_address\":\"%s\",\"bootstrap\":{\"xds_servers\":"
           "[{\"server_uri\":\"127.0.0.1:%d\",\"channel_creds\":[{\"type\":"
           "\"insecure\"}],\"server_features\":[\"xds_v3\"]}],\"node\":{\"id\":"
           "\"rbac-grpc\"},\"server_listener_resource_name_template\":\"%s\"}}",
           addr, cp_port, TMPL);
  return buf;
}

static int unary(mesh_t *m, int port, const char *method, char *msg,
                 size_t cap) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  void *resp = NULL;
  size_t rl;
  mesh_grpc_call_t *c = NULL;
  mesh_grpc_unary(m, target, method, NULL, "x", 1, &resp, &rl, &c, NULL);
  int code = c ? mesh_grpc_call_status(c) : -1;
  if (msg)
    snprintf(msg, cap, "%s", c ? mesh_grpc_call_status_message(c) : "");
  mesh_grpc_free(resp);
  mesh_grpc_call_free(c);
  return code;
}

/* The gRPC server path: a DENY policy on a method answers
 * PERMISSION_DENIED "RBAC: access denied", as authz from the config. */
static void test_xds_rbac_grpc(void) {
  CU_ASSERT_FATAL(tg_svid("srv") && tg_svid("cli"));
  const char *addr = "127.0.0.1:1"; /* names the Listener only */
  char name[128];
  snprintf(name, sizeof name, "xds.test/grpc/lds/inbound/%s", addr);
  cp_log = "rbac_cp_grpc.log";
  int fd = -1;
  const char *argv[] = {"/usr/bin/python3",
                        TEST_SRCDIR "/tests/xds/rbac_cp.py", name, NULL};
  pid_t cp = th_spawn_stdin(argv, cp_log, &fd);
  CU_ASSERT_FATAL(cp > 0);
  int cp_port = 0;
  for (int i = 0; i < 3000 && !(cp_port = cp_port_of_log()); i++)
    usleep(10000);
  CU_ASSERT_FATAL(cp_port > 0);
  int pushes = 0;
  CU_ASSERT_FATAL(push(fd, "denypath /mesh.v1.Echo/Collect", &pushes) == 0);
  char *extra = bootstrap_json(cp_port, addr);
  tg_server_t s;
  bool up = tg_server_start(&s, extra);
  free(extra);
  CU_ASSERT_FATAL(up);
  mesh_t *m = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_new(tg_config("cli", NULL), &m, NULL), MESH_OK);
  int code = -1;
  int64_t cap = th_now_ms() + TH_CAP_MS;
  while ((code = unary(m, s.port, "/mesh.v1.Echo/Echo", NULL, 0)) !=
             MESH_GRPC_OK && th_now_ms() < cap)
    usleep(20000);
  CU_ASSERT_EQUAL(code, MESH_GRPC_OK);
  char msg[256];
  CU_ASSERT_EQUAL(unary(m, s.port, "/mesh.v1.Echo/Collect", msg, sizeof msg),
                  MESH_GRPC_PERMISSION_DENIED);
  CU_ASSERT_STRING_EQUAL(msg, "RBAC: access denied");
  uint64_t denied = 0;
  CU_ASSERT_EQUAL(mesh_authz_counter(s.m, "deny", &denied), MESH_OK);
  CU_ASSERT(denied >= 1);
  /* the policy swapped live: Echo denied, Collect allowed */
  CU_ASSERT(push(fd, "denypath /mesh.v1.Echo/Echo", &pushes) == 0);
  cap = th_now_ms() + TH_CAP_MS;
  while ((code = unary(m, s.port, "/mesh.v1.Echo/Echo", NULL, 0)) !=
             MESH_GRPC_PERMISSION_DENIED && th_now_ms() < cap)
    usleep(20000);
  CU_ASSERT_EQUAL(code, MESH_GRPC_PERMISSION_DENIED);
  code = unary(m, s.port, "/mesh.v1.Echo/Collect", NULL, 0);
  CU_ASSERT(code >= 0 && code != MESH_GRPC_PERMISSION_DENIED);
  mesh_free(m);
  tg_server_stop(&s);
  close(fd);
  th_stop(cp);
  cp_log = "rbac_cp.log";
}

/* Before its Listener arrives the server denies everything (A36). */
static void test_xds_rbac_pending(void) {
  CU_ASSERT_FATAL(th_ca(TD) != NULL);
  CU_ASSERT_FATAL(th_svid(TD, "spiffe://example.org/ns/default/sa/server",
                          "server", 0, 0, 0));
  int port = th_free_port();
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  /* a control plane that is not there */
  char *cfg = server_config(th_free_port(), addr, true);
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(cfg, &m, &st), MESH_OK);
  free(cfg);
  CU_ASSERT(mesh__authz_active(m));
  mesh_authz_request_t *r = mesh_authz_request_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(r);
  mesh_authz_request_set_principal(r, ALICE);
  CU_ASSERT_EQUAL(mesh_authz_check(m, r, &st), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "no ALLOW policy matched"));
  if (!strstr(st.message, "no ALLOW policy matched"))
    fprintf(stderr, "pending: %s\n", st.message);
  mesh_authz_request_free(r);
  mesh_free(m);
}

/* The configured authz set and the external (xDS) set both apply; either
 * denies; clearing the external set lifts its restriction only; a bad
 * external document changes nothing. */
static int decide(mesh_t *m, const char *who, const char *path,
                  char *msg, size_t cap) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  mesh_authz_request_set_principal(r, who);
  mesh_authz_request_set_http(r, "GET", path, "svc");
  mesh_status_t st = {0};
  int rc = mesh_authz_check(m, r, &st);
  if (msg)
    snprintf(msg, cap, "%s", st.message);
  mesh_authz_request_free(r);
  return rc;
}

static void test_xds_rbac_layered(void) {
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(
      "{\"log\":{\"level\":\"error\"},\"authz\":{\"policies\":[{\"name\":"
      "\"local\",\"action\":\"DENY\",\"rules\":[{\"to\":[{\"operation\":"
      "{\"paths\":[\"/local\"]}}]}]}]}}", &m, &st), MESH_OK);
  cJSON *doc = cJSON_Parse(
      "{\"policies\":[{\"name\":\"xds-allow\",\"action\":\"ALLOW\","
      "\"rules\":[{\"from\":[{\"principals\":[\"" ALICE "\"]}]}]}]}");
  CU_ASSERT_EQUAL_FATAL(mesh__authz_set_external(m, doc, "test", &st), MESH_OK);
  char msg[384];
  CU_ASSERT_EQUAL(decide(m, ALICE, "/x", NULL, 0), MESH_OK);
  CU_ASSERT_EQUAL(decide(m, ALICE, "/local", msg, sizeof msg), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"local\""));
  CU_ASSERT_EQUAL(decide(m, BOB, "/x", msg, sizeof msg), MESH_ERR_DENIED);
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no ALLOW policy matched"));
  /* refused document: the set in force stays */
  cJSON *bad = cJSON_Parse("{\"policies\":[{\"name\":\"b\",\"action\":\"NOPE\"}]}");
  CU_ASSERT_EQUAL(mesh__authz_set_external(m, bad, "test", &st), MESH_ERR_CONFIG);
  CU_ASSERT_EQUAL(decide(m, BOB, "/x", NULL, 0), MESH_ERR_DENIED);
  /* cleared: only the configured set */
  CU_ASSERT_EQUAL(mesh__authz_set_external(m, NULL, "test", &st), MESH_OK);
  CU_ASSERT_EQUAL(decide(m, BOB, "/x", NULL, 0), MESH_OK);
  CU_ASSERT_EQUAL(decide(m, BOB, "/local", NULL, 0), MESH_ERR_DENIED);
  cJSON_Delete(doc);
  cJSON_Delete(bad);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_rbac", NULL, NULL);
  CU_add_test(s, "xds_rbac_config", test_xds_rbac_config);
  CU_add_test(s, "xds_rbac_pending", test_xds_rbac_pending);
  CU_add_test(s, "xds_rbac_layered", test_xds_rbac_layered);
  CU_add_test(s, "xds_rbac_live", test_xds_rbac_live);
  CU_add_test(s, "xds_rbac_grpc", test_xds_rbac_grpc);
}

int main(void) { return th_run_suites("test_xds_rbac", add); }
