/* SPDX-License-Identifier: Apache-2.0 */
/* The xDS certificate provider as the mesh identity ("identity.source":
 * "xds", gRFC A29 file_watcher, A87 SPIFFE trust bundle map): config
 * checks with their messages, rotation of the files under a running mesh
 * with live mTLS peers (the library's own listener, openssl s_client), a
 * bad file swap that keeps the last good identity, trust updates through
 * the bundle map, an Istio-generated bootstrap unchanged, meshctl identity
 * and check-config, and the NACK of a TLS context naming an instance the
 * bootstrap does not have. */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <mesh/mesh.h>

#include "identity/identity.h"
#include "xds/xds.h"
#include "xds_vec.h"

#define TD "example.org"
#define TD2 "other.org"
#define WEB "spiffe://example.org/web"
#define WEB2 "spiffe://example.org/web-v2"
#define API "spiffe://other.org/api"
#define MESHCTL TEST_BUILDDIR "/tools/meshctl"
#define XT "type.googleapis.com/envoy.extensions."
#define ROUTER_URL XT "filters.http.router.v3.Router"
#define HCM_URL                                                          \
  XT "filters.network.http_connection_manager.v3.HttpConnectionManager"
#define DTLS_URL XT "transport_sockets.tls.v3.DownstreamTlsContext"
#define UTLS_URL                                                         \
  "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."      \
  "UpstreamTlsContext"

/* ---- log capture ------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[65536];

static void log_fn(int level, const char *line, void *user) {
  (void)level;
  (void)user;
  pthread_mutex_lock(&log_mu);
  size_t n = strlen(log_buf);
  snprintf(log_buf + n, sizeof log_buf - n, "%s\n", line);
  pthread_mutex_unlock(&log_mu);
}

static bool log_has(void *s) {
  pthread_mutex_lock(&log_mu);
  bool r = strstr(log_buf, s) != NULL;
  pthread_mutex_unlock(&log_mu);
  return r;
}

static void log_clear(void) {
  pthread_mutex_lock(&log_mu);
  log_buf[0] = '\0';
  pthread_mutex_unlock(&log_mu);
}

/* ---- fixtures ----------------------------------------------------------------- */

/* The base64 body of a PEM certificate file (= base64 of its DER). */
static char *pem_b64(const char *path) {
  char *pem = th_slurp(path, NULL);
  if (!pem)
    return NULL;
  char *out = calloc(1, strlen(pem) + 1);
  const char *p = strstr(pem, "-----\n");
  const char *end = strstr(pem, "-----END");
  size_t k = 0;
  for (p = p ? p + 6 : end; p && p < end; p++)
    if (*p != '\n' && *p != '\r')
      out[k++] = *p;
  free(pem);
  return out;
}

/* A SPIFFE trust bundle map of the CAs of tds[0..n). */
static bool write_map(const char *file, const char *const *tds, size_t n) {
  char buf[16384];
  size_t k = (size_t)snprintf(buf, sizeof buf, "{\"trust_domains\":{");
  for (size_t i = 0; i < n; i++) {
    char *b = pem_b64(th_ca(tds[i]));
    if (!b)
      return false;
    k += (size_t)snprintf(buf + k, sizeof buf - k,
                          "%s\"%s\":{\"spiffe_sequence\":1,\"keys\":["
                          "{\"kty\":\"EC\",\"use\":\"jwt-svid\",\"kid\":\"j\"},"
                          "{\"kty\":\"EC\",\"use\":\"x509-svid\","
                          "\"x5c\":[\"%s\"]}]}",
                          i ? "," : "", tds[i], b);
    free(b);
  }
  snprintf(buf + k, sizeof buf - k, "}}");
  return th_write(th_path(file), buf);
}

/* A bootstrap file with instance "default" (and "other" without CA)
 * over the files named; extra goes into default's config. */
static const char *bootstrap(const char *file, const char *cert,
                             const char *key, const char *ca,
                             const char *extra) {
  char buf[8192];
  snprintf(buf, sizeof buf,
           "{\"xds_servers\":[{\"server_uri\":\"127.0.0.1:1\","
           "\"channel_creds\":[{\"type\":\"insecure\"}]}],"
           "\"node\":{\"id\":\"n1\"},"
           "\"certificate_providers\":{"
           "\"default\":{\"plugin_name\":\"file_watcher\",\"config\":{"
           "\"certificate_file\":\"%s\",\"private_key_file\":\"%s\""
           "%s%s%s%s}},"
           "\"other\":{\"plugin_name\":\"file_watcher\",\"config\":{"
           "\"certificate_file\":\"%s\",\"private_key_file\":\"%s\"}}}}",
           cert, key, ca ? ",\"ca_certificate_file\":\"" : "", ca ? ca : "",
           ca ? "\"" : "", extra ? extra : "", cert, key);
  const char *p = th_path(file);
  return th_write(p, buf) ? p : NULL;
}

static int suite_init(void) {
  if (!th_ca(TD) || !th_ca(TD2))
    return 1;
  return th_svid(TD, WEB, "web", 0, 0, 0) && th_svid(TD2, API, "api", 0, 0, 0)
             ? 0
             : 1;
}

/* Config with identity from the xds source; bootstrap by file name. */
static char *xds_config(const char *boot, const char *instance,
                        const char *extra) {
  char *j = malloc(4096);
  snprintf(j, 4096,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"source\":\"xds\""
           "%s%s%s},\"xds\":{\"bootstrap\":\"%s\"}%s}",
           instance ? ",\"certificate_provider\":\"" : "",
           instance ? instance : "", instance ? "\"" : "", boot,
           extra ? extra : "");
  return j;
}

/* ---- config checks -------------------------------------------------------------- */

struct cfg_case {
  const char *name;
  const char *instance; /* identity.certificate_provider */
  const char *boot_extra; /* added to instance default's config */
  bool no_ca;
  const char *cert;       /* certificate_file (default: web.crt) */
  const char *identity_extra; /* JSON inside "identity" replacing it */
  const char *want;       /* substring of the first error; NULL: valid */
};

static void collect(const char *msg, void *user) {
  char *buf = user;
  size_t n = strlen(buf);
  snprintf(buf + n, 4096 - n, "%s\n", msg);
}

static void test_config_checks(void) {
  const struct cfg_case cases[] = {
      {"valid", NULL, NULL, false, NULL, NULL, NULL},
      {"valid, named", "default", ",\"refresh_interval\":\"0.5s\"", false,
       NULL, NULL, NULL},
      {"unknown instance", "nope", NULL, false, NULL, NULL,
       "identity.certificate_provider: no certificate provider instance "
       "\"nope\" in the xDS bootstrap (instances: default, other)"},
      {"instance without CA", "other", NULL, false, NULL, NULL,
       "has neither ca_certificate_file nor spiffe_trust_bundle_map_file"},
      {"missing certificate file", NULL, NULL, false, "/nonexistent/c.pem",
       NULL, "instance \"default\": certificate_file: /nonexistent/c.pem"},
      {"refresh_interval not a duration", NULL,
       ",\"refresh_interval\":\"10m\"", false, NULL, NULL,
       "refresh_interval: expected a duration in seconds like \"600s\""},
      {"refresh_interval too short", NULL,
       ",\"refresh_interval\":\"0.001s\"", false, NULL, NULL,
       "refresh_interval: must be between 0.01s and 86400s"},
      {"refresh_interval negative", NULL, ",\"refresh_interval\":\"-5s\"",
       false, NULL, NULL, "expected a duration in seconds"},
      {"unknown provider key", NULL, ",\"watch\":true", false, NULL, NULL,
       "certificate_providers.default.config.watch: unknown key"},
      {"empty map file name", NULL, ",\"spiffe_trust_bundle_map_file\":\"\"",
       false, NULL, NULL, "spiffe_trust_bundle_map_file: must not be empty"},
      {"files keys with xds", NULL, NULL, false, NULL,
       "\"source\":\"xds\",\"cert\":\"/x\"",
       "identity.cert: not used with \"source\": \"xds\""},
      {"workload keys with xds", NULL, NULL, false, NULL,
       "\"source\":\"xds\",\"endpoint\":\"unix:///x\"",
       "identity.endpoint: not used with \"source\": \"xds\""},
      {"instance with files source", NULL, NULL, false, NULL,
       "\"cert\":\"/x\",\"key\":\"/y\",\"bundle\":\"/z\","
       "\"certificate_provider\":\"default\"",
       "identity.certificate_provider: only with \"source\": \"xds\""},
      {"empty instance", "", NULL, false, NULL, NULL,
       "identity.certificate_provider: must not be empty"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const struct cfg_case *k = &cases[i];
    char cert[512];
    snprintf(cert, sizeof cert, "%s", k->cert ? k->cert : th_path("web.crt"));
    const char *boot = bootstrap("cfg-boot.json", cert, th_path("web.key"),
                                 k->no_ca ? NULL : th_ca(TD), k->boot_extra);
    CU_ASSERT_PTR_NOT_NULL_FATAL(boot);
    char *j = xds_config(boot, k->instance, NULL);
    if (k->identity_extra) {
      free(j);
      j = malloc(4096);
      snprintf(j, 4096, "{\"identity\":{%s},\"xds\":{\"bootstrap\":\"%s\"}}",
               k->identity_extra, boot);
    }
    char errs[4096] = "";
    int n = mesh_config_check(j, collect, errs);
    bool ok = k->want ? n >= 1 && strstr(errs, k->want) : n == 0;
    if (!ok)
      fprintf(stderr, "\n  case %s: %d errors:\n%s", k->name, n, errs);
    CU_ASSERT(ok);
    if (!k->want) { /* valid: mesh_new agrees */
      mesh_t *m = NULL;
      mesh_status_t st;
      CU_ASSERT_EQUAL(mesh_new(j, &m, &st), MESH_OK);
      mesh_free(m);
    }
    free(j);
  }
  /* no bootstrap at all: the xds part says so, once */
  unsetenv("GRPC_XDS_BOOTSTRAP");
  unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  char errs[4096] = "";
  CU_ASSERT_EQUAL(mesh_config_check("{\"identity\":{\"source\":\"xds\"}}",
                                    collect, errs), 1);
  CU_ASSERT_PTR_NOT_NULL(strstr(errs, "xds.bootstrap: no bootstrap"));
}

/* Files that pass the check but do not make an identity: mesh_new fails
 * with the provider named. */
static void test_load_errors(void) {
  struct {
    const char *map; /* bundle map content, or NULL: CA file */
    const char *want;
  } cases[] = {
      {"{\"trust_domains\":", "map.json: "},
      {"{\"domains\":{}}", "expected {\"trust_domains\""},
      {"{\"trust_domains\":{}}", "no trust bundle for the SVID's own trust "
                                  "domain \"example.org\" in the trust "
                                  "bundle map"},
      {"{\"trust_domains\":{\"example.org\":{\"keys\":[{\"kty\":\"EC\","
       "\"use\":\"x509-svid\",\"x5c\":[\"@@@\"]}]}}}", "x5c: not base64"},
      {"{\"trust_domains\":{\"example.org\":{\"keys\":[{\"kty\":\"EC\","
       "\"use\":\"x509-svid\",\"x5c\":[\"QUJD\",\"QUJD\"]}]}}}",
       "exactly one certificate"},
      {"{\"trust_domains\":{\"Bad..td\":{\"keys\":[]}}}",
       "trust_domains.Bad..td: invalid trust domain"},
      {"{\"trust_domains\":{\"example.org\":{\"keys\":[{\"kty\":\"EC\","
       "\"use\":\"x509-svid\",\"x5c\":[\"QUJD\"]}]}}}",
       "malformed DER certificate"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CU_ASSERT_FATAL(th_write(th_path("map.json"), cases[i].map));
    char extra[600];
    snprintf(extra, sizeof extra, ",\"spiffe_trust_bundle_map_file\":\"%s\"",
             th_path("map.json"));
    const char *boot = bootstrap("le-boot.json", th_path("web.crt"),
                                 th_path("web.key"), th_ca(TD), extra);
    char *j = xds_config(boot, NULL, NULL);
    mesh_t *m = NULL;
    mesh_status_t st;
    int rc = mesh_new(j, &m, &st);
    CU_ASSERT_NOT_EQUAL(rc, MESH_OK);
    bool ok = strstr(st.message, cases[i].want) &&
              strstr(st.message, "identity (xds certificate provider "
                                 "\"default\" (file_watcher)): ");
    if (!ok)
      fprintf(stderr, "\n  case %zu: %s\n", i, st.message);
    CU_ASSERT(ok);
    mesh_free(m);
    free(j);
  }
}

/* ---- an mTLS echo server on the library ------------------------------------------ */

#define MAX_CONNS 64
typedef struct server {
  mesh_listener_t *l;
  pthread_t th, conns[MAX_CONNS];
  mesh_conn_t *cs[MAX_CONNS];
  int n;
  _Atomic bool stop;
  _Atomic int accepted;
} server_t;

static void *echo(void *p) {
  mesh_conn_t *c = p;
  char buf[512];
  for (;;) {
    long n = mesh_conn_read(c, buf, sizeof buf);
    if (n <= 0 || mesh_conn_write_all(c, buf, (size_t)n) != MESH_OK)
      break;
  }
  return NULL;
}

static void *accept_loop(void *p) {
  server_t *s = p;
  while (!atomic_load(&s->stop) && s->n < MAX_CONNS) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    if (mesh_accept(s->l, 100, &c, &st) != MESH_OK)
      continue;
    s->cs[s->n] = c;
    if (pthread_create(&s->conns[s->n], NULL, echo, c) != 0) {
      mesh_conn_close(c);
      continue;
    }
    s->n++;
    atomic_fetch_add(&s->accepted, 1);
  }
  return NULL;
}

static bool server_start(server_t *s, mesh_t *m) {
  memset(s, 0, sizeof *s);
  mesh_status_t st;
  if (mesh_listen(m, "127.0.0.1:0", &s->l, &st) != MESH_OK)
    return false;
  return pthread_create(&s->th, NULL, accept_loop, s) == 0;
}

static void server_stop(server_t *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->th, NULL);
  /* the peers have closed by now; a socket-level shutdown ends any echo
   * thread still reading (mesh_conn_* of a connection is one thread's) */
  for (int i = 0; i < s->n; i++)
    shutdown(mesh_conn_fd(s->cs[i]), SHUT_RDWR);
  for (int i = 0; i < s->n; i++) {
    pthread_join(s->conns[i], NULL);
    mesh_conn_close(s->cs[i]);
  }
  mesh_listener_close(s->l);
}

/* Serial (hex, lower case) of the certificate openssl s_client sees. */
static bool s_client_serial(int port, char *out, size_t len) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
           "-cert %s -key %s -CAfile %s -verify_return_error 2>/dev/null "
           "| openssl x509 -noout -serial > %s",
           port, th_path("api.crt"), th_path("api.key"), th_ca(TD),
           th_path("serial.txt"));
  if (th_sh(cmd) != 0)
    return false;
  char *s = th_slurp(th_path("serial.txt"), NULL);
  const char *p = s ? strstr(s, "serial=") : NULL;
  bool ok = p != NULL;
  if (ok) {
    snprintf(out, len, "%s", p + 7);
    out[strcspn(out, "\r\n")] = '\0';
    for (char *q = out; *q; q++)
      if (*q >= 'A' && *q <= 'F')
        *q = (char)(*q - 'A' + 'a');
  }
  free(s);
  return ok;
}

static void serial_hex(mesh_t *m, char *out, size_t len) {
  mesh__creds_t *c = mesh__creds_acquire(m);
  char ser[128] = "";
  if (c)
    mesh__x509_serial_text(mesh__x509_chain_at(c->chain, 0), ser, sizeof ser);
  size_t k = 0;
  for (const char *p = ser; *p && k + 1 < len; p++)
    if (*p != ':')
      out[k++] = *p >= 'A' && *p <= 'F' ? (char)(*p - 'A' + 'a') : *p;
  out[k] = '\0';
  mesh__creds_release(c);
}

/* Install name.{crt,key} as the watched files (key first; each rename is
 * atomic, as kubelet and Istio's agent swap them). */
static void install(const char *name, const char *to) {
  char a[600], b[600];
  snprintf(a, sizeof a, "%s.key", th_path(name));
  snprintf(b, sizeof b, "%s.key", th_path(to));
  CU_ASSERT_EQUAL(rename(a, b), 0);
  snprintf(a, sizeof a, "%s.crt", th_path(name));
  snprintf(b, sizeof b, "%s.crt", th_path(to));
  CU_ASSERT_EQUAL(rename(a, b), 0);
}

struct gen_arg {
  mesh_t *m;
  uint64_t want;
};

static bool gen_reached(void *p) {
  struct gen_arg *g = p;
  return mesh__identity_generation(g->m) >= g->want;
}

/* A client with the files source for other.org (trusting example.org):
 * dial and one echo round trip. */
static int dial_echo(mesh_t *client, int port, mesh_status_t *st) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(client, target, NULL, &c, st);
  if (rc != MESH_OK)
    return rc;
  char buf[8] = "";
  if (mesh_conn_write_all(c, "ping", 4) != MESH_OK ||
      mesh_conn_read(c, buf, 4) != 4 || memcmp(buf, "ping", 4))
    rc = MESH_ERR_IO;
  mesh_conn_close(c);
  return rc;
}

static mesh_t *api_client(void) {
  char j[2048];
  snprintf(j, sizeof j,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundles\":{\"%s\":\"%s\",\"%s\":\"%s\"}}}",
           th_path("api.crt"), th_path("api.key"), TD2, th_ca(TD2), TD,
           th_ca(TD));
  mesh_t *m = NULL;
  mesh_status_t st;
  if (mesh_new(j, &m, &st) != MESH_OK)
    fprintf(stderr, "api client: %s\n", st.message);
  return m;
}

/* Rotation with live peers: the provider's files are replaced under a
 * running listener; new handshakes (openssl s_client and a libmesh
 * client) see the new SVID, a connection opened before keeps working;
 * a broken swap keeps the last good identity with an error logged; the
 * trust bundle map's update lets a new trust domain in. */
static void test_rotation_live(void) {
  if (!th_require("openssl", "openssl"))
    return;
  CU_ASSERT_FATAL(th_svid(TD, WEB, "rot", 0, 0, 0));
  const char *const tds1[] = {TD};
  CU_ASSERT_FATAL(write_map("rot-map.json", tds1, 1));
  char extra[600];
  snprintf(extra, sizeof extra, ",\"refresh_interval\":\"0.05s\","
           "\"spiffe_trust_bundle_map_file\":\"%s\"", th_path("rot-map.json"));
  /* the CA file names the other trust domain: A87 ignores it */
  const char *boot = bootstrap("rot-boot.json", th_path("rot.crt"),
                               th_path("rot.key"), th_ca(TD2), extra);
  CU_ASSERT_PTR_NOT_NULL_FATAL(boot);
  CU_ASSERT_EQUAL(setenv("GRPC_XDS_BOOTSTRAP", boot, 1), 0);
  mesh_t *m = NULL;
  mesh_status_t st;
  /* no xds section: the bootstrap comes from the environment, and no ADS
   * session starts (no xds service) */
  const char *j = "{\"log\":{\"level\":\"error\"},"
                  "\"identity\":{\"source\":\"xds\"}}";
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  unsetenv("GRPC_XDS_BOOTSTRAP");
  mesh_set_log(m, MESH_LOG_DEBUG, log_fn, NULL);
  char id[MESH_SPIFFE_ID_MAX + 1];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB);
  server_t srv;
  CU_ASSERT_FATAL(server_start(&srv, m));
  int port = mesh_listener_port(srv.l);
  mesh_t *client = api_client();
  CU_ASSERT_PTR_NOT_NULL_FATAL(client);

  /* 1. other.org is not in the map yet: the server refuses the client */
  CU_ASSERT_NOT_EQUAL(dial_echo(client, port, &st), MESH_OK);
  const char *const tds2[] = {TD, TD2};
  CU_ASSERT_FATAL(write_map("rot-map.json", tds2, 2));
  struct gen_arg g = {m, 2};
  CU_ASSERT(th_wait_for(gen_reached, &g, TH_CAP_MS, "map update"));
  CU_ASSERT_EQUAL(dial_echo(client, port, &st), MESH_OK);

  /* 2. a connection in flight, then the SVID rotates */
  char s1[128], s2[128], seen[128];
  serial_hex(m, s1, sizeof s1);
  CU_ASSERT(s_client_serial(port, seen, sizeof seen));
  CU_ASSERT_STRING_EQUAL(seen, s1);
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  mesh_conn_t *inflight = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(client, target, NULL, &inflight, &st),
                        MESH_OK);
  CU_ASSERT_FATAL(th_svid(TD, WEB2, "rot-new", -60, 7200, 0));
  install("rot-new", "rot");
  g.want = 3;
  CU_ASSERT(th_wait_for(gen_reached, &g, TH_CAP_MS, "rotation"));
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB2);
  serial_hex(m, s2, sizeof s2);
  CU_ASSERT_STRING_NOT_EQUAL(s1, s2);
  CU_ASSERT(s_client_serial(port, seen, sizeof seen));
  CU_ASSERT_STRING_EQUAL(seen, s2);
  CU_ASSERT_EQUAL(dial_echo(client, port, &st), MESH_OK);
  char buf[8] = "";
  CU_ASSERT_EQUAL(mesh_conn_write_all(inflight, "old!", 4), MESH_OK);
  CU_ASSERT_EQUAL(mesh_conn_read(inflight, buf, 4), 4);
  CU_ASSERT_EQUAL(memcmp(buf, "old!", 4), 0);
  const char *peer = mesh_conn_peer_id(inflight);
  CU_ASSERT_PTR_NOT_NULL(peer);
  if (peer)
    CU_ASSERT_STRING_EQUAL(peer, WEB); /* the old SVID, untouched */
  mesh_conn_close(inflight);

  /* 3. a broken swap: the last good identity stays, an error is logged */
  log_clear();
  CU_ASSERT_FATAL(th_write(th_path("rot.crt"), "-----BEGIN CERTIFICATE-----\n"
                                               "garbage\n"
                                               "-----END CERTIFICATE-----\n"));
  CU_ASSERT(th_wait_for(log_has, "event=svid_reload_failed code=MESH_ERR_PEM",
                        TH_CAP_MS, "reload failure logged"));
  CU_ASSERT(log_has("rot.crt: "));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 3);
  CU_ASSERT(s_client_serial(port, seen, sizeof seen));
  CU_ASSERT_STRING_EQUAL(seen, s2);
  CU_ASSERT_EQUAL(dial_echo(client, port, &st), MESH_OK);
  /* a broken map too */
  CU_ASSERT_FATAL(th_write(th_path("rot-map.json"), "{\"trust_domains\":7}"));
  CU_ASSERT(th_wait_for(log_has, "expected {'trust_domains'", TH_CAP_MS,
                        "map failure logged"));
  CU_ASSERT_EQUAL(dial_echo(client, port, &st), MESH_OK);

  /* 4. good files again: picked up */
  CU_ASSERT_FATAL(write_map("rot-map.json", tds1, 1));
  CU_ASSERT_FATAL(th_svid(TD, WEB, "rot-fix", 0, 0, 0));
  install("rot-fix", "rot");
  g.want = 4;
  CU_ASSERT(th_wait_for(gen_reached, &g, TH_CAP_MS, "recovery"));
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB);
  /* other.org left the map: refused again */
  CU_ASSERT_NOT_EQUAL(dial_echo(client, port, &st), MESH_OK);

  server_stop(&srv);
  mesh_free(client);
  mesh_free(m);
}

/* ---- an Istio-generated bootstrap, meshctl ----------------------------------------- */

/* Istio's grpc bootstrap (pilot-agent's grpcxds template), with paths in
 * the temp dir: node metadata GENERATOR grpc, the "default" instance. */
static const char *istio_bootstrap(void) {
  char buf[8192];
  snprintf(buf, sizeof buf,
           "{\n"
           "  \"xds_servers\": [{\"server_uri\": \"unix:///%s\",\n"
           "    \"channel_creds\": [{\"type\": \"insecure\"}],\n"
           "    \"server_features\": [\"xds_v3\"]}],\n"
           "  \"node\": {\n"
           "    \"id\": \"sidecar~127.0.0.7~web-5d8c.default~default.svc."
           "cluster.local\",\n"
           "    \"metadata\": {\"GENERATOR\": \"grpc\", \"INSTANCE_IPS\": "
           "\"127.0.0.7\", \"ISTIO_VERSION\": \"1.20.0\", \"NAMESPACE\": "
           "\"default\", \"CLUSTER_ID\": \"Kubernetes\"},\n"
           "    \"locality\": {},\n"
           "    \"UserAgentVersionType\": null\n"
           "  },\n"
           "  \"certificate_providers\": {\n"
           "    \"default\": {\"plugin_name\": \"file_watcher\", \"config\": {\n"
           "      \"certificate_file\": \"%s\",\n"
           "      \"private_key_file\": \"%s\",\n"
           "      \"ca_certificate_file\": \"%s\",\n"
           "      \"refresh_interval\": \"900s\"}}\n"
           "  },\n"
           "  \"server_listener_resource_name_template\": \"xds.istio.io/"
           "grpc/lds/inbound/%%s\"\n"
           "}\n",
           th_path("no-agent.sock"), th_path("web.crt"), th_path("web.key"),
           th_ca(TD));
  const char *p = th_path("istio-bootstrap.json");
  return th_write(p, buf) ? p : NULL;
}

static char *run(const char *cmd, int *rc) {
  char full[4096];
  snprintf(full, sizeof full, "%s > %s 2>&1", cmd, th_path("run.out"));
  *rc = th_sh(full);
  char *out = th_slurp(th_path("run.out"), NULL);
  return out ? out : strdup("");
}

static void test_istio_bootstrap_meshctl(void) {
  const char *boot = istio_bootstrap();
  CU_ASSERT_PTR_NOT_NULL_FATAL(boot);
  /* the identity alone, bootstrap from GRPC_XDS_BOOTSTRAP (the variable
   * Istio sets), and with an xds service too (ADS to the agent socket,
   * absent here: the identity does not wait for it) */
  char *cfgs[2];
  cfgs[0] = strdup("{\"identity\":{\"source\":\"xds\"}}");
  cfgs[1] = malloc(1024);
  snprintf(cfgs[1], 1024,
           "{\"identity\":{\"source\":\"xds\",\"certificate_provider\":"
           "\"default\"},\"xds\":{\"bootstrap\":\"%s\"},\"services\":{"
           "\"web\":{\"discovery\":{\"type\":\"xds\"}}}}", boot);
  CU_ASSERT_EQUAL(setenv("GRPC_XDS_BOOTSTRAP", boot, 1), 0);
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_FATAL(th_write(th_path("istio.json"), cfgs[i]));
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL(mesh_new(cfgs[i], &m, &st), MESH_OK);
    char id[MESH_SPIFFE_ID_MAX + 1] = "";
    CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
    CU_ASSERT_STRING_EQUAL(id, WEB);
    char serial[128];
    serial_hex(m, serial, sizeof serial);
    mesh_free(m);
    char cmd[1024];
    int rc;
    snprintf(cmd, sizeof cmd, "%s identity --config %s", MESHCTL,
             th_path("istio.json"));
    char *out = run(cmd, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    char want[256];
    snprintf(want, sizeof want, "serial:     %s\n", serial);
    bool ok = strstr(out, "source:     xds\n") &&
              strstr(out, "provider:   xds certificate provider \"default\" "
                          "(file_watcher)\n") &&
              strstr(out, "spiffe_id:  " WEB "\n") && strstr(out, want) &&
              strstr(out, "not_after:  20") &&
              strstr(out, "bundles:    example.org\n");
    if (!ok)
      fprintf(stderr, "\n  meshctl identity:\n%s", out);
    CU_ASSERT(ok);
    free(out);
    snprintf(cmd, sizeof cmd, "%s check-config %s", MESHCTL,
             th_path("istio.json"));
    out = run(cmd, &rc);
    CU_ASSERT_EQUAL(rc, 0);
    free(out);
    free(cfgs[i]);
  }
  /* check-config names a missing file; meshctl identity fails with it */
  char bad[1024];
  snprintf(bad, sizeof bad, "{\"identity\":{\"source\":\"xds\","
           "\"certificate_provider\":\"default\"},\"xds\":{\"bootstrap\":"
           "\"%s\"}}", bootstrap("bad-boot.json", "/nonexistent/cert.pem",
                                 th_path("web.key"), th_ca(TD), NULL));
  CU_ASSERT_FATAL(th_write(th_path("bad.json"), bad));
  char cmd[1024];
  int rc;
  snprintf(cmd, sizeof cmd, "%s check-config %s", MESHCTL, th_path("bad.json"));
  char *out = run(cmd, &rc);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "identity.certificate_provider: "
                                     "certificate provider instance "
                                     "\"default\": certificate_file: "
                                     "/nonexistent/cert.pem"));
  free(out);
  snprintf(cmd, sizeof cmd, "%s identity --config %s", MESHCTL,
           th_path("bad.json"));
  out = run(cmd, &rc);
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/cert.pem"));
  free(out);
  unsetenv("GRPC_XDS_BOOTSTRAP");
}

/* ---- A29 reference checking: NACK ------------------------------------------------- */

static void test_unknown_instance_nack(void) {
  mesh__cfg_t c = {0};
  cJSON *doc = cJSON_Parse(
      "{\"xds_servers\":[{\"server_uri\":\"127.0.0.1:1\",\"channel_creds\":"
      "[{\"type\":\"insecure\"}]}],\"certificate_providers\":{\"default\":"
      "{\"plugin_name\":\"file_watcher\",\"config\":{\"ca_certificate_file\":"
      "\"/x\"}}}}");
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_parse(&c, doc, "b");
  cJSON_Delete(doc);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  struct {
    const char *cert, *ca;
    bool ok;
  } cases[] = {
      {"default", "default", true},
      {NULL, "default", true},
      {"nope", "default", false},
      {"default", "gone", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mesh__xds_ads_t *a = mesh__xds_ads_new(b, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_CDS, "web"), MESH_OK);
    char tls[512], text[8192], resp[16384];
    snprintf(tls, sizeof tls, "common_tls_context { %s%s%s "
             "combined_validation_context { default_validation_context { "
             "ca_certificate_provider_instance { instance_name: \"%s\" } } } }",
             cases[i].cert ? "tls_certificate_provider_instance { "
                             "instance_name: \"" : "",
             cases[i].cert ? cases[i].cert : "", cases[i].cert ? "\" }" : "",
             cases[i].ca);
    char *any = xv_any(UTLS_URL, "UpstreamTlsContext", tls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    snprintf(text, sizeof text, "name: \"web\" type: EDS transport_socket { "
             "name: \"envoy.transport_sockets.tls\" typed_config { %s } }", any);
    free(any);
    any = xv_any(MESH__XDS_CDS, "Cluster", text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    snprintf(resp, sizeof resp, "version_info: \"1\" nonce: \"n1\" "
             "type_url: \"%s\" resources { %s }", MESH__XDS_CDS, any);
    free(any);
    uint8_t *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", resp, &buf, &len), 0);
    mesh_status_t st;
    int rc = mesh__xds_ads_on_response(a, buf, len, &st);
    free(buf);
    if (cases[i].ok) {
      CU_ASSERT_EQUAL(rc, MESH_OK);
      CU_ASSERT_PTR_NOT_NULL(mesh__xds_ads_cached(a, MESH__XDS_T_CDS, "web"));
    } else {
      char want[200];
      snprintf(want, sizeof want, "cluster \"web\": transport_socket: "
               "certificate provider instance \"%s\" is not in the "
               "bootstrap's certificate_providers",
               cases[i].cert && !strcmp(cases[i].cert, "nope") ? "nope"
                                                               : "gone");
      CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
      if (!strstr(st.message, want))
        fprintf(stderr, "\n  nack: %s\n", st.message);
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, want));
      CU_ASSERT_PTR_NULL(mesh__xds_ads_cached(a, MESH__XDS_T_CDS, "web"));
      /* the NACK goes out with the reason */
      uint8_t *rq;
      size_t rqn;
      CU_ASSERT_EQUAL(mesh__xds_ads_next_request(a, &rq, &rqn), MESH_OK);
      free(rq);
    }
    mesh__xds_ads_free(a);
  }
  /* a server Listener (LDS) too: its DownstreamTlsContext names "istio" */
  mesh__xds_ads_t *a = mesh__xds_ads_new(b, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_EQUAL(mesh__xds_ads_watch(a, MESH__XDS_T_LDS, "in"), MESH_OK);
  char *router = xv_any(ROUTER_URL, "Router", "");
  char hbuf[4096], text[16384], resp[32768];
  snprintf(hbuf, sizeof hbuf, "rds { route_config_name: \"in\" } "
           "http_filters { name: \"router\" typed_config { %s } }", router);
  free(router);
  char *hcm = xv_any(HCM_URL, "HttpConnectionManager", hbuf);
  char *dtls = xv_any(DTLS_URL, "DownstreamTlsContext",
      "common_tls_context { tls_certificate_provider_instance { "
      "instance_name: \"istio\" } validation_context_certificate_provider_"
      "instance { instance_name: \"default\" } }");
  CU_ASSERT_FATAL(hcm && dtls);
  snprintf(text, sizeof text, "name: \"in\" address { socket_address { "
           "address: \"0.0.0.0\" port_value: 8080 } } filter_chains { filters "
           "{ name: \"hcm\" typed_config { %s } } transport_socket { name: "
           "\"tls\" typed_config { %s } } }", hcm, dtls);
  free(hcm);
  free(dtls);
  char *any = xv_any(MESH__XDS_LDS, "Listener", text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(any);
  snprintf(resp, sizeof resp, "version_info: \"1\" nonce: \"n1\" type_url: "
           "\"%s\" resources { %s }", MESH__XDS_LDS, any);
  free(any);
  uint8_t *buf;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", resp, &buf, &len), 0);
  mesh_status_t st;
  CU_ASSERT_EQUAL(mesh__xds_ads_on_response(a, buf, len, &st), MESH_ERR_CONFIG);
  free(buf);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "listener \"in\": "
                                "transport_socket: certificate provider "
                                "instance \"istio\" is not in the bootstrap"));
  CU_ASSERT_PTR_NULL(mesh__xds_ads_cached(a, MESH__XDS_T_LDS, "in"));
  mesh__xds_ads_free(a);
  mesh__xds_bootstrap_free(b);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("certprov", suite_init, NULL);
  CU_add_test(s, "config checks", test_config_checks);
  CU_add_test(s, "load errors name the provider", test_load_errors);
  CU_add_test(s, "rotation with live mTLS peers", test_rotation_live);
  CU_add_test(s, "Istio bootstrap, meshctl identity and check-config",
              test_istio_bootstrap_meshctl);
  CU_add_test(s, "unknown instance is a NACK", test_unknown_instance_nack);
}

int main(void) { return th_run_suites("test_certprov", add); }
