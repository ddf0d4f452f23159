/* SPDX-License-Identifier: Apache-2.0 */
/* tls interop with independent TLS stacks, all started here on loopback:
 *   - the library's client against `openssl s_server -Verify` and against
 *     HAProxy with `verify required`;
 *   - `openssl s_client`, `curl --cert` and libcurl against the library's
 *     server.
 * Every peer is checked both ways: it accepted our SVID, and we saw its. */
#include "helpers.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_tls_peer.h"

#define CONTAINS(hay, needle) CU_ASSERT(tp_contains((hay), (needle)))

static char *file_of(const char *name) { return strdup(th_path(name)); }

/* Read from c until `want` bytes or `until` appears (bounded). */
static size_t read_some(mesh_conn_t *c, char *buf, size_t len,
                        const char *until) {
  size_t got = 0;
  buf[0] = '\0';
  for (int i = 0; i < 100 && got < len - 1; i++) {
    long n = mesh_conn_read(c, buf + got, len - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
    buf[got] = '\0';
    if (until && strstr(buf, until))
      break;
  }
  return got;
}

/* Wait until a log file contains s (bounded). */
static bool log_has(const char *log, const char *s, int ms) {
  for (int w = 0; w <= ms; w += 20) {
    char *buf = th_slurp(th_path(log), NULL);
    bool ok = buf && strstr(buf, s);
    free(buf);
    if (ok)
      return true;
    usleep(20000);
  }
  return false;
}

/* ---- library client → openssl s_server ------------------------------------- */

static pid_t start_s_server(int port, const char *mode, const char *log) {
  char acc[32];
  snprintf(acc, sizeof acc, "127.0.0.1:%d", port);
  char *crt = file_of("server.crt"), *key = file_of("server.key"),
       *ca = file_of(TD "-ca.crt");
  const char *argv[] = {"openssl", "s_server", "-accept", acc, "-cert", crt,
                        "-key", key, "-CAfile", ca, "-Verify", "1",
                        "-verify_return_error", mode, NULL};
  pid_t pid = th_spawn(argv, log);
  free(crt);
  free(key);
  free(ca);
  if (pid > 0 && !th_wait_port(port, 5000)) {
    th_stop(pid);
    return -1;
  }
  return pid;
}

static void test_mesh_dial_openssl_s_server(void) {
  tp_certs();
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(cm != NULL);
  int port = th_free_port();
  pid_t pid = start_s_server(port, "-rev", "s_server-rev.log");
  CU_ASSERT_FATAL(pid > 0);

  mesh_dial_opts_t *o = mesh_dial_opts_new();
  mesh_dial_opts_add_peer(o, SERVER_ID);
  for (int i = 0; i < 2; i++) {
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_dial(cm, tp_addr(port), o, &c, &st);
    if (rc != MESH_OK)
      fprintf(stderr, "\n  dial s_server: %s\n", st.message);
    CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
    CU_ASSERT_STRING_EQUAL(mesh_conn_tls_version(c), tp_tls_version());
    /* The second dial resumes with the session s_server gave us. */
    CU_ASSERT_EQUAL(mesh_conn_resumed(c), i);
    mesh_conn_set_timeouts(c, 5000, 5000);
    CU_ASSERT_EQUAL(mesh_conn_write_all(c, "hello mesh\n", 11), MESH_OK);
    char buf[256];
    read_some(c, buf, sizeof buf, "\n");
    CONTAINS(buf, "hsem olleh");
    mesh_conn_close(c);
  }
  mesh_dial_opts_free(o);
  /* s_server saw our client certificate and verified it. */
  CU_ASSERT(log_has("s_server-rev.log", "CONNECTION ESTABLISHED", 2000));
  CU_ASSERT(log_has("s_server-rev.log", "Verification: OK", 2000));
  th_stop(pid);

  /* -www: s_server's HTTP status page over our connection. */
  port = th_free_port();
  pid = start_s_server(port, "-www", "s_server-www.log");
  CU_ASSERT_FATAL(pid > 0);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_dial(cm, tp_addr(port), NULL, &c, &st), MESH_OK);
  mesh_conn_set_timeouts(c, 5000, 5000);
  const char *req = "GET / HTTP/1.0\r\n\r\n";
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, req, strlen(req)), MESH_OK);
  char page[16384];
  read_some(c, page, sizeof page, "</HTML>");
  CONTAINS(page, "HTTP/1.0 200 ok");
  CONTAINS(page, "ECDHE-ECDSA-AES128-GCM-SHA256");
  mesh_conn_close(c);
  th_stop(pid);
  mesh_free(cm);
}

/* ---- library client → HAProxy (verify required) ---------------------------- */

static pid_t start_haproxy(int port) {
  char *crt = th_slurp(th_path("server.crt"), NULL);
  char *key = th_slurp(th_path("server.key"), NULL);
  CU_ASSERT_FATAL(crt && key);
  size_t n = strlen(crt) + strlen(key) + 2;
  char *pem = malloc(n);
  snprintf(pem, n, "%s%s", crt, key);
  CU_ASSERT(th_write(th_path("haproxy.pem"), pem));
  free(pem);
  free(crt);
  free(key);
  char cfg[2048];
  snprintf(cfg, sizeof cfg,
           "global\n"
           "  maxconn 64\n"
           "defaults\n"
           "  mode http\n"
           "  timeout connect 2s\n"
           "  timeout client 5s\n"
           "  timeout server 5s\n"
           "frontend mtls\n"
           "  bind 127.0.0.1:%d ssl crt %s ca-file %s verify required\n"
           "  http-request return status 200 content-type text/plain "
           "lf-string \"haproxy: client cert %%[ssl_c_used] verify "
           "%%[ssl_c_verify] %%[ssl_fc_protocol]\\n\"\n",
           port, th_path("haproxy.pem"), th_path(TD "-ca.crt"));
  CU_ASSERT(th_write(th_path("haproxy.cfg"), cfg));
  char *cfgpath = file_of("haproxy.cfg");
  const char *argv[] = {"haproxy", "-f", cfgpath, "-db", NULL};
  pid_t pid = th_spawn(argv, "haproxy.log");
  free(cfgpath);
  if (pid > 0 && !th_wait_port(port, 5000)) {
    th_stop(pid);
    return -1;
  }
  return pid;
}

static void test_mesh_dial_haproxy(void) {
  tp_certs();
  if (!th_require("haproxy", "haproxy"))
    return;
  int port = th_free_port();
  pid_t pid = start_haproxy(port);
  CU_ASSERT_FATAL(pid > 0);
  mesh_t *cm = tp_mesh("client", TD, NULL);
  CU_ASSERT_FATAL(cm != NULL);
  mesh_conn_t *c = NULL;
  mesh_status_t st;
  int rc = mesh_dial(cm, tp_addr(port), NULL, &c, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "\n  dial haproxy: %s\n", st.message);
  CU_ASSERT_EQUAL_FATAL(rc, MESH_OK);
  CU_ASSERT_STRING_EQUAL(mesh_conn_peer_id(c), SERVER_ID);
  mesh_conn_set_timeouts(c, 5000, 5000);
  const char *req = "GET / HTTP/1.1\r\nHost: mesh\r\nConnection: close\r\n\r\n";
  CU_ASSERT_EQUAL(mesh_conn_write_all(c, req, strlen(req)), MESH_OK);
  char buf[2048];
  char want[64];
  snprintf(want, sizeof want, "%s\n", tp_tls_version());
  read_some(c, buf, sizeof buf, want);
  CONTAINS(buf, "HTTP/1.1 200");
  snprintf(want, sizeof want, "haproxy: client cert 1 verify 0 %s",
           tp_tls_version());
  CONTAINS(buf, want);
  mesh_conn_close(c);
  mesh_free(cm);

  /* HAProxy refuses an SVID from a CA it does not trust, and says so. */
  mesh_t *om = tp_mesh("other", TD2 "," TD, NULL);
  CU_ASSERT_FATAL(om != NULL);
  rc = tp_dial_refused(om, tp_addr(port), NULL, &st);
  CU_ASSERT_EQUAL(rc, MESH_ERR_TLS);
  CONTAINS(st.message, "rejected our certificate");
  CONTAINS(st.message, OTHER_ID);
  mesh_free(om);
  th_stop(pid);
}

/* ---- openssl s_client → library server -------------------------------------- */

static pid_t s_client(int port, const char *svid, const char *extra,
                      const char *extra_arg, const char *log, int *in) {
  char conn[32], crt[300], key[300], ca[300];
  snprintf(conn, sizeof conn, "127.0.0.1:%d", port);
  snprintf(crt, sizeof crt, "%s.crt", th_path(svid));
  snprintf(key, sizeof key, "%s.key", th_path(svid));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  const char *argv[] = {"openssl", "s_client", "-connect", conn, "-cert", crt,
                        "-key", key, "-CAfile", ca, "-verify_return_error",
                        "-quiet", extra, extra_arg, NULL};
  return th_spawn_stdin(argv, log, in);
}

static void test_mesh_accept_openssl_s_client(void) {
  tp_certs();
  mesh_t *sm = tp_mesh("server", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_ONESHOT));
  /* First connection saves its session, the second resumes it. */
  char *sess = file_of("s_client.sess");
  const char *flags[2] = {"-sess_out", "-sess_in"};
  for (int i = 0; i < 2; i++) {
    char log[32];
    snprintf(log, sizeof log, "s_client-%d.log", i);
    int in = -1;
    pid_t pid = s_client(srv.port, "client", flags[i], sess, log, &in);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(write(in, "ping from openssl\n", 18) == 18);
    CU_ASSERT(log_has(log, "ping from openssl", 5000));
    close(in);
    th_stop(pid);
  }
  free(sess);
  CU_ASSERT(tp_server_wait(&srv, 2, 2000));
  for (int i = 0; i < 2; i++) {
    tp_result_t r = tp_server_result(&srv, i);
    CU_ASSERT_EQUAL(r.rc, MESH_OK);
    CU_ASSERT_STRING_EQUAL(r.peer, CLIENT_ID);
    CU_ASSERT_EQUAL(r.resumed, i); /* our session ticket, used by OpenSSL */
  }
  tp_server_stop(&srv);
  mesh_free(sm);
}

/* ---- curl and libcurl → library server -------------------------------------- */

static void test_mesh_accept_curl(void) {
  tp_certs();
  if (!th_require("curl", "curl"))
    return;
  mesh_t *sm = tp_mesh("server", TD, NULL);
  CU_ASSERT_FATAL(sm != NULL);
  tp_server_t srv;
  CU_ASSERT_FATAL(tp_server_start(&srv, sm, NULL, TP_HTTP));
  /* SVIDs carry no DNS name or CN, so curl cannot check a host name: pin
   * the server's public key instead (-k drops only the name/chain check;
   * the pin still authenticates the server). */
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "openssl x509 -in '%s' -pubkey -noout > '%s' && "
           "curl -sS --max-time 10 --cert '%s' --key '%s' --cacert '%s' -k "
           "--pinnedpubkey '%s' https://127.0.0.1:%d/ -o '%s'",
           th_path("server.crt"), th_path("server.pub"),
           th_path("client.crt"), th_path("client.key"),
           th_path(TD "-ca.crt"), th_path("server.pub"), srv.port,
           th_path("curl.out"));
  CU_ASSERT_EQUAL(th_sh(cmd), 0);
  char *out = th_slurp(th_path("curl.out"), NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CONTAINS(out, "hello " CLIENT_ID);
  free(out);

  /* A wrong pin: curl refuses our server (proves the pin is checked). */
  snprintf(cmd, sizeof cmd,
           "openssl x509 -in '%s' -pubkey -noout > '%s' && "
           "curl -sS --max-time 10 --cert '%s' --key '%s' -k "
           "--pinnedpubkey '%s' https://127.0.0.1:%d/",
           th_path("client.crt"), th_path("wrong.pub"), th_path("client.crt"),
           th_path("client.key"), th_path("wrong.pub"), srv.port);
  CU_ASSERT_NOT_EQUAL(th_sh(cmd), 0);

  /* libcurl (OpenSSL) with full chain verification, no host name check. */
  CURL *h = curl_easy_init();
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  char url[64];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/", srv.port);
  FILE *f = fopen(th_path("libcurl.out"), "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char crt[300], key[300], ca[300];
  snprintf(crt, sizeof crt, "%s", th_path("client.crt"));
  snprintf(key, sizeof key, "%s", th_path("client.key"));
  snprintf(ca, sizeof ca, "%s", th_path(TD "-ca.crt"));
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_SSLCERT, crt);
  curl_easy_setopt(h, CURLOPT_SSLKEY, key);
  curl_easy_setopt(h, CURLOPT_CAINFO, ca);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
  CURLcode cc = curl_easy_perform(h);
  fclose(f);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  CU_ASSERT_EQUAL(cc, CURLE_OK);
  CU_ASSERT_EQUAL(code, 200);
  out = th_slurp(th_path("libcurl.out"), NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(out);
  CONTAINS(out, "hello " CLIENT_ID);
  free(out);

  CU_ASSERT(tp_server_wait(&srv, 3, 2000));
  CU_ASSERT_STRING_EQUAL(tp_server_result(&srv, 0).peer, CLIENT_ID);
  CU_ASSERT_STRING_EQUAL(tp_server_result(&srv, 2).peer, CLIENT_ID);
  tp_server_stop(&srv);
  mesh_free(sm);
}

/* ---- meshctl dial/serve and examples/echo, as a user runs them ------------- */

static void write_config(const char *file, const char *svid, const char *extra) {
  char cfg[4096];
  tp_config(cfg, sizeof cfg, svid, TD, extra);
  CU_ASSERT(th_write(th_path(file), cfg));
}

static void test_tools_and_examples(void) {
  tp_certs();
  write_config("srv.json", "server",
               "\"inbound\":{\"peers\":[\"" CLIENT_ID "\"]}");
  write_config("cli.json", "client", NULL);
  char *srv = file_of("srv.json"), *cli = file_of("cli.json");
  static const struct {
    const char *name;
    const char *server[12];
  } cases[] = {
      {"meshctl",
       {TEST_BUILDDIR "/tools/meshctl", "serve", "--config", NULL, "--listen",
        NULL, "--count", "1", NULL}},
      {"examples/echo",
       {TEST_BUILDDIR "/examples/echo/echo_server", NULL, NULL, "1", NULL}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int port = th_free_port();
    char listen[32], cmd[2048], log[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *argv[12];
    memcpy(argv, cases[i].server, sizeof argv);
    if (i == 0) {
      argv[3] = srv;
      argv[5] = listen;
    } else {
      argv[1] = srv;
      argv[2] = listen;
    }
    snprintf(log, sizeof log, "tool-%zu.log", i);
    pid_t pid = th_spawn(argv, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(th_wait_port(port, 5000));
    char out[300];
    snprintf(out, sizeof out, "%s", th_path("tool-client.out"));
    if (i == 0)
      snprintf(cmd, sizeof cmd,
               "'%s/tools/meshctl' dial --config '%s' --to 127.0.0.1:%d "
               "--peer %s --send 'hello tools' > '%s' 2>&1",
               TEST_BUILDDIR, cli, port, SERVER_ID, out);
    else
      snprintf(cmd, sizeof cmd,
               "'%s/examples/echo/echo_client' '%s' 127.0.0.1:%d "
               "'hello tools' %s > '%s' 2>&1",
               TEST_BUILDDIR, cli, port, SERVER_ID, out);
    CU_ASSERT_EQUAL(th_sh(cmd), 0);
    char *got = th_slurp(out, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CONTAINS(got, "connected to " SERVER_ID);
    CONTAINS(got, "hello tools");
    free(got);
    /* The server printed the client's identity (and exits: --count 1;
     * th_wait_port's probe connection was refused first). */
    CU_ASSERT(log_has(log, "peer " CLIENT_ID, 5000));
    th_stop(pid);
  }
  free(srv);
  free(cli);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("tls interop", NULL, NULL);
  CU_add_test(s, "mesh_dial to openssl s_server -Verify",
              test_mesh_dial_openssl_s_server);
  CU_add_test(s, "mesh_dial to haproxy verify required",
              test_mesh_dial_haproxy);
  CU_add_test(s, "mesh_accept from openssl s_client",
              test_mesh_accept_openssl_s_client);
  CU_add_test(s, "mesh_accept from curl and libcurl", test_mesh_accept_curl);
  CU_add_test(s, "meshctl dial/serve and examples/echo",
              test_tools_and_examples);
}

int main(void) {
  if (!th_require("openssl", "openssl"))
    return 77; /* SKIP; scripts/test fails on any skip */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = th_run_suites("test_tls_interop", add);
  curl_global_cleanup();
  return rc;
}
