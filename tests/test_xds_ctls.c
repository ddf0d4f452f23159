/* SPDX-License-Identifier: Apache-2.0 */
/* gRFC A29 on the client side (libmesh/xds/tlsctx.c, provcreds.c,
 * tls/svccreds.c): two xds services whose clusters' UpstreamTlsContexts
 * name different certificate provider instances dial a real mTLS server
 * with different client certificates (the server says which it saw); an
 * instance holding only a bundle combines with one holding only a
 * certificate; match_subject_alt_names (exact, prefix, suffix, contains,
 * ignore_case) decides whether the server's URI SAN is accepted; an
 * instance the bootstrap lacks is a NACK and the last good cluster (and
 * its certificate) stays. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "helpers.h"
#include "mesh/mesh.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds_vec.h"

#define CDS_T "type.googleapis.com/envoy.config.cluster.v3.Cluster"
#define EDS_T "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
#define UTLS_T \
  "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define NORETRY "\"retry\":{\"num_retries\":0}"
#define TD "example.org"
#define SERVER_ID "spiffe://example.org/server"
#define A_ID "spiffe://example.org/client-a"
#define B_ID "spiffe://example.org/client-b"

static int suite_init(void) {
  if (!th_ca(TD))
    return 1;
  return th_svid(TD, SERVER_ID, "server", 0, 0, 0) && th_svid(TD, A_ID, "client-a", 0, 0, 0) &&
                 th_svid(TD, B_ID, "client-b", 0, 0, 0) &&
                 th_svid(TD, "spiffe://example.org/plain", "plain", 0, 0, 0)
             ? 0
             : 1;
}

static int feed(mesh_t *m, const char *url, const char *version, const char *type,
                const char *const *res, size_t n, mesh_status_t *st) {
  size_t cap = 1 << 16, o = 0;
  char *text = malloc(cap);
  o += (size_t)snprintf(text, cap, "version_info: \"%s\" nonce: \"n%s\" type_url: \"%s\" ",
                        version, version, url);
  for (size_t i = 0; i < n; i++) {
    char *any = xv_any(url, type, res[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(any);
    o += (size_t)snprintf(text + o, cap - o, "resources { %s } ", any);
    free(any);
  }
  uint8_t *b;
  size_t len;
  CU_ASSERT_EQUAL_FATAL(xv_encode("DiscoveryResponse", text, &b, &len), 0);
  free(text);
  int rc = mesh__xds_feed(m, b, len, st);
  free(b);
  return rc;
}

/* XDS_WRITE_CORPUS=DIR: the Cluster resources as fuzz seeds. */
static void save_seed(const char *text) {
  const char *dir = getenv("XDS_WRITE_CORPUS");
  static int seq;
  uint8_t *b;
  size_t n;
  if (!dir || xv_encode("Cluster", text, &b, &n))
    return;
  char path[512];
  snprintf(path, sizeof path, "%s/Cluster-tls-%02d", dir, seq++);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(b, 1, n, f);
    fclose(f);
  }
  free(b);
}

/* A Cluster resource with an UpstreamTlsContext (cert instance, CA
 * instance or NULL, validation context extra text), malloc'd. */
static char *cluster(const char *name, const char *cert, const char *ca, const char *san) {
  char t[2048];
  snprintf(t, sizeof t, "common_tls_context { tls_certificate_provider_instance { "
           "instance_name: \"%s\" } validation_context { %s%s%s %s } }", cert,
           ca ? "ca_certificate_provider_instance { instance_name: \"" : "", ca ? ca : "",
           ca ? "\" }" : "", san ? san : "");
  char *any = xv_any(UTLS_T, "UpstreamTlsContext", t);
  CU_ASSERT_PTR_NOT_NULL_FATAL(any);
  size_t n = strlen(any) + 512;
  char *out = malloc(n);
  snprintf(out, n, "name: \"%s\" type: EDS eds_cluster_config { service_name: \"%s\" } "
           "transport_socket { name: \"tls\" typed_config { %s } }", name, name, any);
  free(any);
  save_seed(out);
  return out;
}

/* The server: a plain libmesh mTLS listener; each accepted peer's ID. */
typedef struct srv {
  mesh_t *m;
  mesh_listener_t *l;
  pthread_t th;
  int port;
} srv_t;

/* The server thread: accepts until stop, keeping the last peer's ID. */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[256];
static _Atomic int stop, accepted;

static void *serve(void *arg) {
  srv_t *s = arg;
  while (!atomic_load(&stop)) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    if (mesh_accept(s->l, 100, &c, &st) != MESH_OK)
      continue;
    pthread_mutex_lock(&seen_mu);
    snprintf(seen, sizeof seen, "%s", mesh_conn_peer_id(c));
    pthread_mutex_unlock(&seen_mu);
    atomic_fetch_add(&accepted, 1);
    mesh_conn_close(c);
  }
  return NULL;
}

static bool accepted_more(void *arg) { return atomic_load(&accepted) > *(int *)arg; }

/* Dial service svc (no retries: the first try is the verdict); *srv_saw:
 * the client ID the server accepted ("" if none).  Returns the code. */
static int dial(mesh_t *cl, const char *svc, char *srv_saw, size_t cap,
                mesh_status_t *st) {
  int before = atomic_load(&accepted);
  mesh_conn_t *c = NULL;
  int rc = mesh_dial(cl, svc, NULL, &c, st);
  srv_saw[0] = '\0';
  if (rc == MESH_OK) {
    mesh_conn_close(c);
    /* the server's side of the handshake ends just after the client's */
    CU_ASSERT(th_wait_for(accepted_more, &before, 5000, "server accepted the dial"));
    pthread_mutex_lock(&seen_mu);
    snprintf(srv_saw, cap, "%s", seen);
    pthread_mutex_unlock(&seen_mu);
  }
  return rc;
}

static void test_xds_cluster_tls_live(void) {
  char cfg[8192];
  srv_t s = {0};
  s.port = th_free_port();
  mesh_status_t st;
  snprintf(cfg, sizeof cfg, "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"},\"inbound\":{\"listen\":\"127.0.0.1:%d\"}}",
           th_path("server.crt"), th_path("server.key"), th_ca(TD), s.port);
  CU_ASSERT_EQUAL_FATAL(mesh_new(cfg, &s.m, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh_listen(s.m, NULL, &s.l, &st), MESH_OK);
  atomic_store(&stop, 0);
  pthread_create(&s.th, NULL, serve, &s);
  /* the client: identity "plain"; instances a (client-a + CA), b-cert
   * (client-b only) and roots (the CA only) */
  snprintf(cfg, sizeof cfg,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\",\"key\":\"%s\","
           "\"bundle\":\"%s\"},\"xds\":{\"bootstrap\":{\"xds_servers\":[{\"server_uri\":"
           "\"127.0.0.1:1\",\"channel_creds\":[{\"type\":\"insecure\"}]}],\"node\":{\"id\":"
           "\"n\"},\"certificate_providers\":{"
           "\"a\":{\"plugin_name\":\"file_watcher\",\"config\":{\"certificate_file\":\"%s\","
           "\"private_key_file\":\"%s\",\"ca_certificate_file\":\"%s\"}},"
           "\"b-cert\":{\"plugin_name\":\"file_watcher\",\"config\":{\"certificate_file\":"
           "\"%s\",\"private_key_file\":\"%s\"}},"
           "\"roots\":{\"plugin_name\":\"file_watcher\",\"config\":{"
           "\"ca_certificate_file\":\"%s\"}}}}},"
           "\"services\":{\"sa\":{\"discovery\":{\"type\":\"xds\",\"cluster\":\"ca\"}},"
           "\"sb\":{\"discovery\":{\"type\":\"xds\",\"cluster\":\"cb\"}},"
           "\"sp\":{\"discovery\":{\"type\":\"xds\",\"cluster\":\"cp\"}}}}",
           th_path("plain.crt"), th_path("plain.key"), th_ca(TD), th_path("client-a.crt"),
           th_path("client-a.key"), th_ca(TD), th_path("client-b.crt"),
           th_path("client-b.key"), th_ca(TD));
  mesh_t *cl = NULL;
  int rc = mesh_new(cfg, &cl, &st);
  if (rc)
    fprintf(stderr, "\nclient: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  char *ca = cluster("ca", "a", "a", NULL); /* one instance, both */
  char *cb = cluster("cb", "b-cert", "roots", NULL);
  const char *plain = "name: \"cp\" type: EDS eds_cluster_config { service_name: \"cp\" }";
  const char *cds[] = {ca, cb, plain};
  rc = feed(cl, CDS_T, "1", "Cluster", cds, 3, &st);
  if (rc)
    fprintf(stderr, "\ncds: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  char eds[3][256];
  const char *edsp[3];
  const char *names[] = {"ca", "cb", "cp"};
  for (int i = 0; i < 3; i++) {
    snprintf(eds[i], sizeof eds[i], "cluster_name: \"%s\" endpoints { lb_endpoints { "
             "endpoint { address { socket_address { address: \"127.0.0.1\" port_value: %d "
             "} } } } }", names[i], s.port);
    edsp[i] = eds[i];
  }
  CU_ASSERT_EQUAL_FATAL(feed(cl, EDS_T, "1", "ClusterLoadAssignment", edsp, 3, &st), MESH_OK);
  /* each service presents its cluster's instance's certificate */
  static const struct {
    const char *svc, *want;
  } rows[] = {{"sa", A_ID}, {"sb", B_ID}, {"sp", "spiffe://example.org/plain"}};
  char saw[256];
  for (size_t i = 0; i < 3; i++) {
    rc = dial(cl, rows[i].svc, saw, sizeof saw, &st);
    if (rc)
      fprintf(stderr, "\ndial %s: %s\n", rows[i].svc, st.message);
    CU_ASSERT_EQUAL(rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(saw, rows[i].want);
  }
  /* match_subject_alt_names on cluster ca: the server is SERVER_ID */
  static const struct {
    const char *san;
    bool ok;
  } sans[] = {
      {"match_subject_alt_names { exact: \"" SERVER_ID "\" }", true},
      {"match_subject_alt_names { exact: \"spiffe://example.org/other\" }", false},
      {"match_subject_alt_names { prefix: \"spiffe://example.org/ser\" }", true},
      {"match_subject_alt_names { prefix: \"spiffe://other.org/\" }", false},
      {"match_subject_alt_names { suffix: \"/server\" }", true},
      {"match_subject_alt_names { suffix: \"/SERVER\" }", false},
      {"match_subject_alt_names { suffix: \"/SERVER\" ignore_case: true }", true},
      {"match_subject_alt_names { contains: \"org/serv\" }", true},
      {"match_subject_alt_names { contains: \"nope\" } "
       "match_subject_alt_names { exact: \"" SERVER_ID "\" }", true},
      {"match_subject_alt_names { contains: \"nope\" } "
       "match_subject_alt_names { prefix: \"x\" }", false},
  };
  for (size_t i = 0; i < sizeof sans / sizeof *sans; i++) {
    char *c = cluster("ca", "a", "a", sans[i].san);
    char ver[16];
    snprintf(ver, sizeof ver, "%zu", i + 2);
    const char *one[] = {c, cb, plain};
    CU_ASSERT_EQUAL_FATAL(feed(cl, CDS_T, ver, "Cluster", one, 3, &st), MESH_OK);
    free(c);
    mesh_status_t dst;
    rc = dial(cl, "sa", saw, sizeof saw, &dst);
    if ((rc == MESH_OK) != sans[i].ok)
      fprintf(stderr, "\nsan row %zu: rc %d %s\n", i, rc, rc ? dst.message : "");
    CU_ASSERT_EQUAL(rc == MESH_OK, sans[i].ok);
    if (!sans[i].ok) {
      CU_ASSERT_EQUAL(rc, MESH_ERR_PEER_ID);
      CU_ASSERT_PTR_NOT_NULL(strstr(dst.message, "match_subject_alt_names"));
    }
  }
  /* a regex SAN matcher and an unknown instance: NACKs; the last good
   * cluster (the last row's: no match) stays, then a good one again */
  char *bad[2] = {cluster("ca", "a", "a", "match_subject_alt_names { safe_regex { "
                          "regex: \".*\" } }"),
                  cluster("ca", "nope", "roots", NULL)};
  const char *msgs[] = {"safe_regex is not supported", "certificate provider instance "
                        "\"nope\" is not in the bootstrap's certificate_providers"};
  for (int k = 0; k < 2; k++) {
    const char *one[] = {bad[k], cb, plain};
    rc = feed(cl, CDS_T, k ? "101" : "100", "Cluster", one, 3, &st);
    CU_ASSERT_EQUAL(rc, MESH_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, msgs[k]));
    if (!strstr(st.message, msgs[k]))
      fprintf(stderr, "\nnack %d: %s\n", k, st.message);
    free(bad[k]);
  }
  CU_ASSERT_EQUAL_FATAL(feed(cl, CDS_T, "102", "Cluster", cds, 3, &st), MESH_OK);
  rc = dial(cl, "sa", saw, sizeof saw, &st);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(saw, A_ID);
  /* an unknown instance for cluster ca while sa dials: NACK, client-a stays */
  char *nope = cluster("ca", "nope", "a", NULL);
  const char *one[] = {nope, cb, plain};
  CU_ASSERT_EQUAL(feed(cl, CDS_T, "103", "Cluster", one, 3, &st), MESH_ERR_CONFIG);
  free(nope);
  rc = dial(cl, "sa", saw, sizeof saw, &st);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(saw, A_ID);
  free(ca);
  free(cb);
  mesh_free(cl);
  atomic_store(&stop, 1);
  pthread_join(s.th, NULL);
  mesh_listener_close(s.l);
  mesh_free(s.m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("xds_ctls", suite_init, NULL);
  CU_add_test(s, "cluster TLS: instances per cluster, SAN matchers, NACK",
              test_xds_cluster_tls_live);
}

int main(void) { return th_run_suites("test_xds_ctls", add); }
