/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile peers against the security defaults of SECURITY.md, each with
 * the setting left at its default: TLS downgrades offered by OpenSSL
 * clients and servers (TLS 1.0/1.1, CBC and NULL suites) are refused while
 * AEAD suites work; a client's renegotiation attempt is refused; the
 * external authorizer fails closed when unreachable; the admin endpoint
 * listens on loopback only. */
#include "helpers.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "test_fault_peer.h"
#include "tls/tls.h"

static mesh_t *new_mesh(const char *json) {
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(json, &m, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_new: %s\n%s\n", st.message, json);
  CU_ASSERT_EQUAL(rc, MESH_OK);
  return m;
}

/* A mesh with the named SVID and nothing else configured (defaults). */
static mesh_t *mesh_of(const char *svid) {
  char id[1024], json[2048];
  fp_identity(id, sizeof id, svid, NULL);
  snprintf(json, sizeof json, "{\"log\":{\"level\":\"error\"},%s}", id);
  return new_mesh(json);
}

/* Run argv with stdin fed from `input` (then EOF); wait at most ms.
 * Returns the log (caller frees) or NULL. */
static char *run(const char *const argv[], const char *log, const char *input,
                 int ms) {
  int in = -1;
  pid_t pid = th_spawn_stdin(argv, log, &in);
  if (pid <= 0)
    return NULL;
  /* the lines of input, 300 ms apart (an interactive s_client command
   * acts only after the handshake) */
  for (const char *p = input; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
    usleep(300000);
    if (write(in, p, n) != (ssize_t)n)
      break;
    p += n;
  }
  usleep(300000);
  close(in);
  int status;
  bool done = false;
  for (int i = 0; i < ms / 10 && !done; i++) {
    done = waitpid(pid, &status, WNOHANG) == pid;
    if (!done)
      usleep(10000);
  }
  if (done)
    th_kill(pid); /* reaped: only forgets it; the group is gone */
  else
    th_stop(pid);
  return th_slurp(th_path(log), NULL);
}

static bool has(const char *hay, const char *needle) {
  if (hay && strstr(hay, needle))
    return true;
  fprintf(stderr, "\n  missing \"%s\" in:\n%.1500s\n", needle,
          hay ? hay : "(no output)");
  return false;
}

/* ---- TLS: protocol and suite downgrades ----------------------------------------- */

typedef struct offer {
  const char *name;
  const char *args[4];
  bool accepted;
  const char *client_says; /* in OpenSSL's output */
} offer_t;

static const offer_t offers[] = {
    /* NULL: TLS 1.3 where the backend has it, else ECDHE-ECDSA (1.2) */
    {"default offer (TLS 1.2/1.3)", {NULL}, true, NULL},
    {"ChaCha20-Poly1305 (AEAD)",
     {"-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305", NULL}, true,
     "CHACHA20-POLY1305"},
    {"TLS 1.0 only", {"-tls1", "-cipher", "DEFAULT@SECLEVEL=0", NULL}, false,
     "alert protocol version"},
    {"TLS 1.1 only", {"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", NULL}, false,
     "alert protocol version"},
    {"CBC suites only",
     {"-tls1_2", "-cipher",
      "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
      "ECDHE-ECDSA-AES128-SHA",
      NULL},
     false, "alert handshake failure"},
    {"NULL encryption only",
     {"-tls1_2", "-cipher", "ECDHE-ECDSA-NULL-SHA:@SECLEVEL=0", NULL}, false,
     "alert handshake failure"},
};

static void test_tls_downgrade_offers_refused(void) {
  CU_ASSERT_FATAL(fp_certs());
  mesh_t *sm = mesh_of("fserver");
  CU_ASSERT_FATAL(sm != NULL);
  fp_server_t srv;
  CU_ASSERT_FATAL(fp_server_start(&srv, sm, 0));
  char conn[32], crt[300], key[300], ca[300];
  snprintf(conn, sizeof conn, "127.0.0.1:%d", srv.port);
  snprintf(crt, sizeof crt, "%s", th_path("fclient.crt"));
  snprintf(key, sizeof key, "%s", th_path("fclient.key"));
  snprintf(ca, sizeof ca, "%s", th_ca(FP_TD));
  int refused = 0, accepted = 0;
  for (size_t i = 0; i < sizeof offers / sizeof offers[0]; i++) {
    const offer_t *o = &offers[i];
    const char *argv[16] = {"openssl", "s_client", "-connect", conn, "-cert",
                            crt, "-key", key, "-CAfile", ca};
    int k = 10;
    for (int j = 0; o->args[j]; j++)
      argv[k++] = o->args[j];
    argv[k] = NULL;
    char log[32];
    snprintf(log, sizeof log, "offer-%zu.log", i);
    int before = atomic_load(&srv.refused) + atomic_load(&srv.accepted);
    char *out = run(argv, log, "ping\n", 5000);
    for (int w = 0; w < 200 && atomic_load(&srv.refused) +
                                       atomic_load(&srv.accepted) ==
                                   before;
         w++)
      fp_sleep_ms(10);
    printf("\n  %-30s -> %s", o->name, o->accepted ? "accepted" : "refused");
    const char *says = o->client_says;
    if (!says)
      says = mesh__tls_be.has_tls13() ? "New, TLSv1.3, Cipher is TLS_"
                                      : "Cipher is ECDHE-ECDSA-";
    CU_ASSERT(has(out, says));
    if (o->accepted) {
      accepted++;
      CU_ASSERT(has(out, "ping")); /* echoed over the AEAD channel */
    } else {
      refused++;
    }
    CU_ASSERT_EQUAL(atomic_load(&srv.refused), refused);
    CU_ASSERT_EQUAL(atomic_load(&srv.accepted), accepted);
    free(out);
  }
  printf("\n");
  pthread_mutex_lock(&srv.mu);
  CU_ASSERT_PTR_NOT_NULL(strstr(srv.last_error, "no ciphersuites in common"));
  pthread_mutex_unlock(&srv.mu);
  fp_server_stop(&srv);
  mesh_free(sm);
}

/* The dial side: OpenSSL servers that only speak an old protocol or only
 * offer CBC are refused; the default server is reached with an AEAD. */
static void test_tls_downgrade_servers_refused(void) {
  CU_ASSERT_FATAL(fp_certs());
  mesh_t *cm = mesh_of("fclient");
  CU_ASSERT_FATAL(cm != NULL);
  static const struct {
    const char *name;
    const char *args[4];
    int rc;
  } servers[] = {
      {"default", {NULL}, MESH_OK},
      {"TLS 1.1 only", {"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", NULL},
       MESH_ERR_TLS},
      {"CBC suites only",
       {"-tls1_2", "-cipher",
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA", NULL},
       MESH_ERR_TLS},
  };
  char crt[300], key[300], ca[300], acc[32];
  snprintf(crt, sizeof crt, "%s", th_path("fserver.crt"));
  snprintf(key, sizeof key, "%s", th_path("fserver.key"));
  snprintf(ca, sizeof ca, "%s", th_ca(FP_TD));
  for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++) {
    int port = th_free_port();
    snprintf(acc, sizeof acc, "127.0.0.1:%d", port);
    const char *argv[20] = {"openssl", "s_server", "-accept", acc, "-cert",
                            crt, "-key", key, "-CAfile", ca, "-Verify", "1",
                            "-rev"};
    int k = 13;
    for (int j = 0; servers[i].args[j]; j++)
      argv[k++] = servers[i].args[j];
    argv[k] = NULL;
    char log[32];
    snprintf(log, sizeof log, "s_server-%zu.log", i);
    pid_t pid = th_spawn(argv, log);
    CU_ASSERT_FATAL(pid > 0 && th_wait_port(port, 5000));
    mesh_dial_opts_t *o = mesh_dial_opts_new();
    mesh_dial_opts_add_peer(o, FP_SERVER_ID);
    mesh_dial_opts_set_timeout(o, 3000);
    mesh_conn_t *c = NULL;
    mesh_status_t st;
    int rc = mesh_dial(cm, acc, o, &c, &st);
    mesh_dial_opts_free(o);
    printf("\n  %-16s -> %s %s", servers[i].name, mesh_code_name(rc),
           rc == MESH_OK ? mesh_conn_cipher(c) : st.message);
    CU_ASSERT_EQUAL(rc, servers[i].rc);
    if (rc == MESH_OK) {
      const char *cipher = mesh_conn_cipher(c);
      CU_ASSERT(strstr(cipher, "GCM") || strstr(cipher, "CHACHA20-POLY1305"));
      CU_ASSERT_STRING_EQUAL(mesh_conn_tls_version(c),
                             mesh__tls_be.has_tls13() ? "TLSv1.3" : "TLSv1.2");
    } else {
      CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "127.0.0.1:"));
    }
    mesh_conn_close(c);
    th_stop(pid);
  }
  printf("\n");
  mesh_free(cm);
}

/* A client asking for renegotiation (OpenSSL's "R" command) is refused:
 * the session keeps its first handshake. */
static void test_tls_renegotiation_refused(void) {
  CU_ASSERT_FATAL(fp_certs());
  mesh_t *sm = mesh_of("fserver");
  CU_ASSERT_FATAL(sm != NULL);
  fp_server_t srv;
  CU_ASSERT_FATAL(fp_server_start(&srv, sm, 0));
  char conn[32], crt[300], key[300], ca[300];
  snprintf(conn, sizeof conn, "127.0.0.1:%d", srv.port);
  snprintf(crt, sizeof crt, "%s", th_path("fclient.crt"));
  snprintf(key, sizeof key, "%s", th_path("fclient.key"));
  snprintf(ca, sizeof ca, "%s", th_ca(FP_TD));
  const char *argv[] = {"openssl", "s_client", "-connect", conn, "-cert", crt,
                        "-key", key, "-CAfile", ca, "-tls1_2", NULL};
  char *out = run(argv, "reneg.log", "before\nR\nafter\n", 5000);
  CU_ASSERT(has(out, "before"));      /* the session worked */
  CU_ASSERT(has(out, "RENEGOTIATING")); /* OpenSSL asked */
  CU_ASSERT(has(out, "no renegotiation"));
  free(out);
  CU_ASSERT_EQUAL(atomic_load(&srv.accepted), 1); /* one handshake only */
  fp_server_stop(&srv);
  mesh_free(sm);
}

/* ---- authorization: the external authorizer fails closed by default ----------------- */

static void test_opa_unreachable_fails_closed(void) {
  int dead = th_free_port();
  char json[1024];
  snprintf(json, sizeof json,
           "{\"log\":{\"level\":\"error\"},\"authz\":{\"policies\":[{"
           "\"name\":\"ext\",\"action\":\"CUSTOM\",\"provider\":\"opa\","
           "\"rules\":[{}]}],\"opa\":{\"url\":\"http://127.0.0.1:%d/v1/data/"
           "mesh/allow\",\"timeout_ms\":300}}}",
           dead);
  mesh_t *m = new_mesh(json);
  CU_ASSERT_FATAL(m != NULL);
  mesh_authz_request_t *r = mesh_authz_request_new();
  CU_ASSERT_EQUAL(mesh_authz_request_set_principal(
                      r, "spiffe://example.org/ns/default/sa/web"),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_authz_request_set_http(r, "GET", "/x", "svc"), MESH_OK);
  mesh_status_t st;
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_EQUAL(mesh_authz_check(m, r, &st), MESH_ERR_DENIED);
  CU_ASSERT(mesh__now_ms() - t0 < 2000);
  CU_ASSERT(has(st.message, "fail closed"));
  uint64_t errs = 0;
  CU_ASSERT_EQUAL(mesh_authz_counter(m, "opa_error", &errs), MESH_OK);
  CU_ASSERT_EQUAL(errs, 1);
  mesh_authz_request_free(r);
  mesh_free(m);
}

/* ---- the admin endpoint: loopback only unless told otherwise --------------------------- */

/* Local address of the listening TCP socket on port (IPv4 and IPv6
 * tables), as the kernel reports it; "" if none. */
static void listener_addr(int port, char *out, size_t len) {
  out[0] = '\0';
  static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  for (int t = 0; t < 2 && !out[0]; t++) {
    FILE *f = fopen(tables[t], "r"); /* /proc files report size 0 */
    char line[512];
    for (int i = 0; f && i < 100000 && !out[0] && fgets(line, sizeof line, f);
         i++) {
      char local[64];
      unsigned lport, st;
      if (sscanf(line, "%*d: %63[0-9A-Fa-f]:%x %*s %x", local, &lport,
                 &st) == 3 &&
          (int)lport == port && st == 0x0A /* LISTEN */)
        snprintf(out, len, "%s", local);
    }
    if (f)
      fclose(f);
  }
}

static void test_admin_default_loopback(void) {
  mesh_t *m = new_mesh("{\"log\":{\"level\":\"error\"},\"admin\":{}}");
  CU_ASSERT_FATAL(m != NULL);
  int port = mesh_admin_port(m);
  CU_ASSERT_FATAL(port > 0);
  char local[64];
  listener_addr(port, local, sizeof local);
  printf("\n  admin listens on %s (kernel's hex of 127.0.0.1: 0100007F)\n",
         local);
  CU_ASSERT_STRING_EQUAL(local, "0100007F");
  mesh_free(m);
  /* and without the key, nothing listens */
  m = new_mesh("{\"log\":{\"level\":\"error\"}}");
  CU_ASSERT_EQUAL(mesh_admin_port(m), MESH_ERR_NOT_FOUND);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("fault_security", NULL, NULL);
  CU_add_test(s, "tls_downgrade_offers_refused",
              test_tls_downgrade_offers_refused);
  CU_add_test(s, "tls_downgrade_servers_refused",
              test_tls_downgrade_servers_refused);
  CU_add_test(s, "tls_renegotiation_refused", test_tls_renegotiation_refused);
  CU_add_test(s, "opa_unreachable_fails_closed",
              test_opa_unreachable_fails_closed);
  CU_add_test(s, "admin_default_loopback", test_admin_default_loopback);
}

int main(void) {
  if (!th_require("openssl", "openssl"))
    return 77; /* SKIP; scripts/test fails on any skip */
  return th_run_suites("test_fault_security", add);
}
