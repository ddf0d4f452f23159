/* SPDX-License-Identifier: Apache-2.0 */
/* The identity part: dev CA (API and meshctl, checked with openssl), the
 * "identity" config section, public accessors, reload and rotation on the
 * worker thread. */
#include "helpers.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "identity/identity.h"
#include "identity/pemfile.h"

#define TD "example.org"
#define TD2 "other.org"
#define WEB "spiffe://example.org/ns/default/sa/web"
#define WEB2 "spiffe://example.org/ns/default/sa/web-v2"
#define MESHCTL TEST_BUILDDIR "/tools/meshctl"

static char *p_dup(const char *name) { return strdup(th_path(name)); }

static mode_t file_mode(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (sb.st_mode & 07777) : (mode_t)-1;
}

/* Does file contain s?  Returns the number of occurrences. */
static int file_count(const char *path, const char *s) {
  char *buf = th_slurp(path, NULL);
  if (!buf)
    return -1;
  int n = 0;
  for (const char *p = buf; (p = strstr(p, s)); p += strlen(s))
    n++;
  free(buf);
  return n;
}

/* ---- log capture ----------------------------------------------------------- */

typedef struct logcap {
  pthread_mutex_t mu;
  char buf[65536];
  size_t len;
} logcap_t;

static logcap_t logs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void log_fn(int level, const char *line, void *user) {
  logcap_t *l = user;
  (void)level;
  pthread_mutex_lock(&l->mu);
  size_t n = strlen(line);
  if (l->len + n + 2 < sizeof l->buf) {
    memcpy(l->buf + l->len, line, n);
    l->len += n;
    l->buf[l->len++] = '\n';
    l->buf[l->len] = '\0';
  }
  pthread_mutex_unlock(&l->mu);
}

static void logs_clear(void) {
  pthread_mutex_lock(&logs.mu);
  logs.len = 0;
  logs.buf[0] = '\0';
  pthread_mutex_unlock(&logs.mu);
}

static bool logs_have(const char *s) {
  pthread_mutex_lock(&logs.mu);
  bool r = strstr(logs.buf, s) != NULL;
  pthread_mutex_unlock(&logs.mu);
  return r;
}

/* Wait up to ms for cond(m, arg); bounded polling. */
static bool wait_for(bool (*cond)(mesh_t *, const void *), mesh_t *m,
                     const void *arg, int ms) {
  for (int i = 0; i <= ms / 10; i++) {
    if (cond(m, arg))
      return true;
    usleep(10000);
  }
  return false;
}

static bool gen_at_least(mesh_t *m, const void *arg) {
  return mesh__identity_generation(m) >= *(const uint64_t *)arg;
}

static bool log_has(mesh_t *m, const void *arg) {
  (void)m;
  return logs_have(arg);
}

/* ---- fixtures -------------------------------------------------------------- */

static int suite_init(void) {
  if (!th_ca(TD) || !th_ca(TD2))
    return 1;
  bool ok = th_svid(TD, WEB, "web", 0, 0, 0) &&
            th_svid(TD, "spiffe://example.org/db", "db", 0, 0, 0) &&
            th_svid(TD2, "spiffe://other.org/api", "api", 0, 0, 0);
  return ok ? 0 : 1;
}

/* Identity config JSON for cert/key/bundle names in the temp dir. */
static char *identity_json(const char *cert, const char *key,
                           const char *bundle, const char *extra) {
  char *j = malloc(4096);
  snprintf(j, 4096,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundle\":\"%s\"%s}}",
           th_path(cert), th_path(key), th_path(bundle), extra ? extra : "");
  return j;
}

/* ---- mesh_ca_init / mesh_ca_issue ------------------------------------------- */

static void test_mesh_ca_init(void) {
  mesh_status_t st;
  const char *crt = th_path("init-ca.crt"), *key = th_path("init-ca.key");
  char c[512], k[512];
  snprintf(c, sizeof c, "%s", crt);
  snprintf(k, sizeof k, "%s", key);
  CU_ASSERT_EQUAL(mesh_ca_init(NULL, 60, c, k, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_ca_init(TD, 0, c, k, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "lifetime must be positive"));
  CU_ASSERT_EQUAL(mesh_ca_init("Example.org", 60, c, k, &st),
                  MESH_ERR_SPIFFE_ID);
  CU_ASSERT_EQUAL(mesh_ca_init("example.org:80", 60, c, k, &st),
                  MESH_ERR_SPIFFE_ID);
  CU_ASSERT_EQUAL(mesh_ca_init(TD, 60, "/nonexistent-dir/ca.crt",
                               "/nonexistent-dir/ca.key", &st),
                  MESH_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "/nonexistent-dir/ca.key"));
  CU_ASSERT_EQUAL(access(c, F_OK), -1);

  mode_t old = umask(0);
  CU_ASSERT_EQUAL_FATAL(mesh_ca_init(TD, 86400, c, k, &st), MESH_OK);
  umask(old);
  CU_ASSERT_EQUAL(file_mode(k), 0600);
  CU_ASSERT_EQUAL(file_mode(c), 0644);
  mesh__x509_chain_t *cach = mesh__x509_chain_new();
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_crts(cach, c, &st), MESH_OK);
  const mesh__x509_t *ca = mesh__x509_chain_at(cach, 0);
  CU_ASSERT(mesh__x509_is_ca(ca));
  unsigned ku = 0;
  CU_ASSERT(mesh__x509_key_usage(ca, &ku));
  CU_ASSERT_EQUAL(ku, MESH__KU_KEY_CERT_SIGN | MESH__KU_CRL_SIGN);
  char uri[64];
  size_t ulen;
  CU_ASSERT_EQUAL(mesh__x509_uri_sans(ca, uri, sizeof uri, &ulen), 1);
  CU_ASSERT_EQUAL(ulen, strlen("spiffe://" TD));
  CU_ASSERT_EQUAL(memcmp(uri, "spiffe://" TD, ulen), 0);
  CU_ASSERT_EQUAL(mesh__svid_signing_check(ca, &st), MESH_OK);
  mesh__x509_chain_free(cach);
  /* P-256 key, ECDSA with SHA-256 (read by the openssl tool) */
  if (th_require("openssl", "openssl")) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in '%s' -noout -text | grep -q 'prime256v1' && "
             "openssl x509 -in '%s' -noout -text | "
             "grep -q 'Signature Algorithm: ecdsa-with-SHA256'",
             c, c);
    CU_ASSERT_EQUAL(th_sh(cmd), 0);
  }
}

struct issue_case {
  const char *ca_cert, *ca_key, *id;
  int64_t nb, na;
  unsigned flags;
  const char *out;
  int want;
  const char *msg;
};

static void test_mesh_ca_issue_errors(void) {
  th_write(th_path("garbage.crt"), "not PEM at all");
  int64_t now = (int64_t)time(NULL);
  const struct issue_case cases[] = {
    {TD "-ca.crt", TD "-ca.key", NULL, 0, 0, 0, "x", MESH_ERR_INVALID_ARG,
     "must not be NULL"},
    {TD "-ca.crt", TD "-ca.key", "spiffe://example.org/a/", 0, 0, 0, "x",
     MESH_ERR_SPIFFE_ID, "trailing slash"},
    {TD "-ca.crt", TD "-ca.key", WEB, now, now, 0, "x", MESH_ERR_INVALID_ARG,
     "must be after not_before"},
    {TD "-ca.crt", TD "-ca.key", WEB, 0, 0, 0x100, "x", MESH_ERR_INVALID_ARG,
     "unknown flags 0x100"},
    {TD "-ca.crt", TD2 "-ca.key", WEB, 0, 0, 0, "x", MESH_ERR_KEY_MISMATCH,
     TD2 "-ca.key: private key does not match the CA certificate"},
    {"web.crt", "web.key", WEB, 0, 0, 0, "x", MESH_ERR_SVID,
     "web.crt: not a CA certificate"},
    {"missing.crt", TD "-ca.key", WEB, 0, 0, 0, "x", MESH_ERR_IO,
     "missing.crt: cannot open"},
    {"garbage.crt", TD "-ca.key", WEB, 0, 0, 0, "x", MESH_ERR_PEM,
     "garbage.crt: malformed certificate"},
    {TD "-ca.crt", "garbage.crt", WEB, 0, 0, 0, "x", MESH_ERR_PEM,
     "garbage.crt: malformed private key"},
    {TD "-ca.crt", TD "-ca.key", WEB, 0, 0, 0, "no-such-dir/x", MESH_ERR_IO,
     "no-such-dir/x.key: cannot create"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct issue_case *tc = &cases[i];
    char *ca = p_dup(tc->ca_cert), *cak = p_dup(tc->ca_key);
    char crt[600], key[600];
    snprintf(crt, sizeof crt, "%s.crt", th_path(tc->out));
    snprintf(key, sizeof key, "%s.key", th_path(tc->out));
    mesh_status_t st;
    int rc = mesh_ca_issue(ca, cak, tc->id, tc->nb, tc->na, tc->flags, crt,
                           key, &st);
    if (rc != tc->want || !strstr(st.message, tc->msg))
      fprintf(stderr, "issue case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->msg));
    CU_ASSERT_EQUAL(access(crt, F_OK), -1); /* nothing half-written */
    free(ca);
    free(cak);
  }
}

/* Loading the CA files, through either crypto seam (ca_mbedtls.c,
 * ca_openssl.c): the same codes and messages; rows match the whole message
 * except after "malformed ...: " (the crypto library's own words). */
static bool bad_ca_fixtures(void) {
  char cmd[3000];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && cp " TD "-ca.key key-only.pem && "
           "printf -- '-----BEGIN CERTIFICATE-----\\nZZZZ!!\\n"
           "-----END CERTIFICATE-----\\n' > bad-b64.crt && "
           "cat " TD "-ca.crt bad-b64.crt > ca-plus-bad.crt && "
           "cat bad-b64.crt " TD "-ca.crt > bad-plus-ca.crt && "
           "head -c 200 " TD "-ca.crt > cut.crt && "
           "openssl ec -in " TD "-ca.key -aes128 -passout pass:x -out enc1.key "
           "2>/dev/null && "
           "openssl pkcs8 -topk8 -in " TD "-ca.key -passout pass:x -out "
           "enc8.key && "
           "openssl x509 -in " TD "-ca.crt -outform DER -out ca.der && "
           "openssl pkey -in " TD "-ca.key -outform DER -out ca-key.der && "
           "openssl pkcs8 -topk8 -nocrypt -in " TD "-ca.key -out ca-p8.key",
           th_tmpdir());
  return th_sh(cmd) == 0;
}

static void test_mesh_ca_issue_bad_ca(void) {
  CU_ASSERT_FATAL(bad_ca_fixtures());
  const struct {
    const char *crt, *key;
    int want;
    const char *msg; /* the whole message after the temp dir's path */
  } cases[] = {
    {"key-only.pem", TD "-ca.key", MESH_ERR_PEM,
     "key-only.pem: no PEM CERTIFICATE block"},
    {"bad-b64.crt", TD "-ca.key", MESH_ERR_PEM,
     "bad-b64.crt: malformed certificate: "},
    {"cut.crt", TD "-ca.key", MESH_ERR_PEM, "cut.crt: malformed certificate: "},
    {"ca-plus-bad.crt", TD "-ca.key", MESH_ERR_PEM,
     "ca-plus-bad.crt: 1 certificate could not be parsed"},
    {"bad-plus-ca.crt", TD "-ca.key", MESH_ERR_PEM,
     "bad-plus-ca.crt: 1 certificate could not be parsed"},
    {TD "-ca.crt", "enc1.key", MESH_ERR_PEM,
     "enc1.key: private key is encrypted (not supported)"},
    {TD "-ca.crt", "enc8.key", MESH_ERR_PEM,
     "enc8.key: private key is encrypted (not supported)"},
    {TD "-ca.crt", "bad-b64.crt", MESH_ERR_PEM,
     "bad-b64.crt: malformed private key: "},
    {"ca.der", "ca-key.der", MESH_OK, ""},
    {"ca.der", "ca-p8.key", MESH_OK, ""},
    {TD "-ca.crt", "ca-key.der", MESH_OK, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *ca = p_dup(cases[i].crt), *cak = p_dup(cases[i].key);
    char *crt = p_dup("badca.crt"), *key = p_dup("badca.key");
    unlink(crt);
    mesh_status_t st;
    int rc = mesh_ca_issue(ca, cak, WEB, 0, 0, 0, crt, key, &st);
    char want[1200];
    snprintf(want, sizeof want, "%s/%s", th_tmpdir(), cases[i].msg);
    bool msg_ok = rc == MESH_OK
                      ? true
                      : strncmp(st.message, want, strlen(want)) == 0 &&
                            (strstr(want, "malformed") ||
                             strcmp(st.message, want) == 0);
    if (rc != cases[i].want || !msg_ok)
      fprintf(stderr, "bad CA case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, cases[i].want);
    CU_ASSERT(msg_ok);
    CU_ASSERT_EQUAL(access(crt, F_OK), rc == MESH_OK ? 0 : -1);
    free(ca);
    free(cak);
    free(crt);
    free(key);
  }
}

static void test_mesh_ca_issue(void) {
  int64_t nb = (int64_t)time(NULL) - 10, na = nb + 1000;
  mesh_status_t st;
  char *ca = p_dup(TD "-ca.crt"), *cak = p_dup(TD "-ca.key");
  char *c1 = p_dup("iss1.crt"), *k1 = p_dup("iss1.key");
  char *c2 = p_dup("iss2.crt"), *k2 = p_dup("iss2.key");
  CU_ASSERT_EQUAL(mesh_ca_issue(ca, cak, WEB, nb, na, 0, c1, k1, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(mesh_ca_issue(ca, cak, WEB, nb, na, 0, c2, k2, &st),
                  MESH_OK);
  CU_ASSERT_EQUAL(file_mode(k1), 0600);
  mesh__x509_chain_t *ach = mesh__x509_chain_new();
  mesh__x509_chain_t *bch = mesh__x509_chain_new();
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_crts(ach, c1, &st), MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_crts(bch, c2, &st), MESH_OK);
  const mesh__x509_t *a = mesh__x509_chain_at(ach, 0);
  const mesh__x509_t *b = mesh__x509_chain_at(bch, 0);
  /* random 128-bit serials, fresh keys */
  char sa[128], sb[128];
  CU_ASSERT_EQUAL(mesh__x509_serial_text(a, sa, sizeof sa), 0);
  CU_ASSERT_EQUAL(mesh__x509_serial_text(b, sb, sizeof sb), 0);
  CU_ASSERT_STRING_NOT_EQUAL(sa, sb);
  CU_ASSERT(strlen(sa) >= 15 * 3 - 1); /* >= 15 bytes as "AB:" */
  mesh__x509_key_t *kb = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_key(&kb, k2, &st), MESH_OK);
  CU_ASSERT(mesh__x509_key_matches(kb, b));
  CU_ASSERT(!mesh__x509_key_matches(kb, a));
  mesh__x509_key_free(kb);
  /* the requested validity, to the second */
  CU_ASSERT_EQUAL(mesh__x509_not_before(a), nb);
  CU_ASSERT_EQUAL(mesh__x509_not_after(a), na);
  CU_ASSERT(!mesh__x509_is_ca(a));
  unsigned ku = 0;
  CU_ASSERT(mesh__x509_key_usage(a, &ku));
  CU_ASSERT_EQUAL(ku, MESH__KU_DIGITAL_SIGNATURE);
  char id[MESH_SPIFFE_ID_MAX + 1];
  CU_ASSERT_EQUAL(mesh__svid_leaf_check(a, id, sizeof id, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB);
  /* issuer DN of the leaf is the CA's subject */
  mesh__x509_chain_t *cac = mesh__x509_chain_new();
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_crts(cac, ca, &st), MESH_OK);
  char dn1[512], dn2[512];
  CU_ASSERT_EQUAL(mesh__x509_dn_text(a, true, dn1, sizeof dn1), 0);
  CU_ASSERT_EQUAL(
      mesh__x509_dn_text(mesh__x509_chain_at(cac, 0), false, dn2, sizeof dn2),
      0);
  CU_ASSERT_STRING_EQUAL(dn1, dn2);
  CU_ASSERT_EQUAL(strncmp(dn1, "O=SPIFFE, ", 10), 0);
  mesh__x509_chain_free(cac);
  mesh__x509_chain_free(ach);
  mesh__x509_chain_free(bch);
  /* a 2048-byte SPIFFE ID fits */
  char longid[MESH_SPIFFE_ID_MAX + 1];
  snprintf(longid, sizeof longid, "spiffe://%s/", TD);
  size_t k = strlen(longid);
  while (k < MESH_SPIFFE_ID_MAX) {
    longid[k] = (k % 50) ? 'x' : '/';
    k++;
  }
  longid[k - 1] = 'z';
  longid[k] = '\0';
  CU_ASSERT_EQUAL(mesh_ca_issue(ca, cak, longid, 0, 0, MESH_CA_ISSUE_TWO_URIS,
                                c2, k2, &st),
                  MESH_OK);
  bch = mesh__x509_chain_new();
  CU_ASSERT_EQUAL(mesh__pem_load_crts(bch, c2, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__x509_uri_sans(mesh__x509_chain_at(bch, 0), NULL, 0, NULL),
                  2);
  mesh__x509_chain_free(bch);
  free(ca);
  free(cak);
  free(c1);
  free(k1);
  free(c2);
  free(k2);
}

/* ---- meshctl, verified by openssl -------------------------------------------- */

static int meshctl(const char *args) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && '%s' %s >meshctl.out 2>meshctl.err", th_tmpdir(),
           MESHCTL, args);
  return th_sh(cmd);
}

static int tmp_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command built from fmt inside the temp dir. */
static int tmp_sh(const char *fmt, ...) {
  char cmd[2048], inner[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(inner, sizeof inner, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "cd '%s' && %s", th_tmpdir(), inner);
  return th_sh(cmd);
}

static void test_meshctl_ca(void) {
  if (!th_require("openssl", "openssl"))
    return;
  CU_ASSERT_FATAL(access(MESHCTL, X_OK) == 0);
  CU_ASSERT_EQUAL(meshctl("--help"), 0);
  CU_ASSERT_EQUAL(file_count(th_path("meshctl.out"), "  ca "), 1);
  CU_ASSERT_EQUAL(meshctl(""), 2);
  CU_ASSERT_EQUAL(meshctl("nosuch"), 2);
  CU_ASSERT_EQUAL(meshctl("ca --help"), 0);
  CU_ASSERT_EQUAL(meshctl("ca init --help"), 0);
  CU_ASSERT_EQUAL(file_count(th_path("meshctl.out"), "--td TRUST_DOMAIN"), 2);
  CU_ASSERT_EQUAL(meshctl("ca issue --help"), 0);
  CU_ASSERT_EQUAL(file_count(th_path("meshctl.out"), "--id SPIFFE_ID"), 2);
  CU_ASSERT_EQUAL(meshctl("ca init"), 2); /* --td missing */
  CU_ASSERT_EQUAL(meshctl("ca init --td x --bogus 1"), 2);
  CU_ASSERT_EQUAL(meshctl("ca init --td x --ttl 1y"), 2);

  CU_ASSERT_EQUAL_FATAL(meshctl("ca init --td example.org --out-cert m-ca.crt "
                                "--out-key m-ca.key --ttl 87600h"),
                        0);
  CU_ASSERT_EQUAL(meshctl("ca init --td example.org --out-cert m-ca.crt "
                          "--out-key m-ca.key"),
                  1); /* refuses to overwrite the key */
  CU_ASSERT_EQUAL(file_count(th_path("meshctl.err"), "--force"), 1);
  CU_ASSERT_EQUAL_FATAL(
      meshctl("ca issue --ca-cert m-ca.crt --ca-key m-ca.key --id " WEB
              " --out-cert m-web.crt --out-key m-web.key --ttl 24h"),
      0);
  CU_ASSERT_EQUAL(file_mode(th_path("m-ca.key")), 0600);
  CU_ASSERT_EQUAL(file_mode(th_path("m-web.key")), 0600);

  /* openssl: chain, purposes, extensions, key pair, lifetimes */
  CU_ASSERT_EQUAL(tmp_sh("openssl verify -CAfile m-ca.crt %s m-web.crt",
                         "-purpose sslserver"),
                  0);
  CU_ASSERT_EQUAL(tmp_sh("openssl verify -CAfile m-ca.crt %s m-web.crt",
                         "-purpose sslclient"),
                  0);
  CU_ASSERT_NOT_EQUAL(tmp_sh("openssl verify -CAfile %s m-web.crt",
                             TD2 "-ca.crt"),
                      0);
  CU_ASSERT_EQUAL(tmp_sh("openssl x509 -in m-web.crt -noout -text > %s",
                         "web.txt"),
                  0);
  const char *txt = th_path("web.txt");
  CU_ASSERT_EQUAL(file_count(txt, "URI:"), 1);
  CU_ASSERT_EQUAL(file_count(txt, "URI:" WEB), 1);
  CU_ASSERT_EQUAL(file_count(txt, "CA:FALSE"), 1);
  CU_ASSERT_EQUAL(file_count(txt, "Digital Signature"), 1);
  CU_ASSERT_EQUAL(file_count(txt, "Certificate Sign"), 0);
  CU_ASSERT_EQUAL(file_count(txt, "TLS Web Server Authentication, TLS Web "
                                  "Client Authentication"),
                  1);
  CU_ASSERT_EQUAL(file_count(txt, "NIST CURVE: P-256"), 1);
  CU_ASSERT(file_count(txt, "ecdsa-with-SHA256") >= 1);
  /* OpenSSL 3.0 writes "O = SPIFFE", 3.5 (Debian 13) "O=SPIFFE" */
  CU_ASSERT_EQUAL(file_count(txt, "Subject: O = SPIFFE") +
                      file_count(txt, "Subject: O=SPIFFE"),
                  1);
  CU_ASSERT_EQUAL(tmp_sh("openssl x509 -in m-ca.crt -noout -text > %s",
                         "ca.txt"),
                  0);
  const char *ctxt = th_path("ca.txt");
  CU_ASSERT_EQUAL(file_count(ctxt, "CA:TRUE"), 1);
  CU_ASSERT_EQUAL(file_count(ctxt, "Certificate Sign, CRL Sign"), 1);
  CU_ASSERT_EQUAL(file_count(ctxt, "URI:spiffe://example.org\n"), 1);
  CU_ASSERT_EQUAL(tmp_sh("openssl pkey -in m-web.key -pubout > %s", "k.pub"),
                  0);
  CU_ASSERT_EQUAL(tmp_sh("openssl x509 -in m-web.crt -noout -pubkey > %s",
                         "c.pub"),
                  0);
  CU_ASSERT_EQUAL(tmp_sh("cmp k.pub c.pub"), 0);
  /* 24 h from one minute ago: valid in 86000 s, not in 86400 s */
  CU_ASSERT_EQUAL(tmp_sh("openssl x509 -in m-web.crt -noout %s",
                         "-checkend 86000"),
                  0);
  CU_ASSERT_NOT_EQUAL(tmp_sh("openssl x509 -in m-web.crt -noout %s",
                             "-checkend 86400"),
                      0);
  CU_ASSERT_EQUAL(tmp_sh("openssl x509 -in m-ca.crt -noout %s",
                         "-checkend 315000000"),
                  0);
  CU_ASSERT_NOT_EQUAL(tmp_sh("openssl x509 -in m-ca.crt -noout %s",
                             "-checkend 315400000"),
                      0);

  /* --chain writes leaf + CA; errors map to exit 1 with the code name */
  CU_ASSERT_EQUAL(meshctl("ca issue --ca-cert m-ca.crt --ca-key m-ca.key "
                          "--id spiffe://example.org/c --out-cert m-c.crt "
                          "--out-key m-c.key --chain"),
                  0);
  CU_ASSERT_EQUAL(file_count(th_path("m-c.crt"), "BEGIN CERTIFICATE"), 2);
  CU_ASSERT_EQUAL(meshctl("ca issue --ca-cert m-ca.crt --ca-key m-ca.key "
                          "--id spiffe://example.org/bad/ --out-cert m-x.crt "
                          "--out-key m-x.key"),
                  1);
  CU_ASSERT_EQUAL(file_count(th_path("meshctl.err"),
                             "MESH_ERR_SPIFFE_ID: invalid SPIFFE ID"),
                  1);
  CU_ASSERT_EQUAL(meshctl("ca issue --id " WEB), 2);
}

/* ---- config ------------------------------------------------------------------ */

static void test_mesh_new_identity_config(void) {
  struct {
    const char *json;
    int want;
    const char *msg;
  } cases[] = {
    {"{\"identity\":{\"key\":\"k\",\"bundle\":\"b\"}}", MESH_ERR_CONFIG,
     "identity.cert: required (path of a PEM file)"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\"}}", MESH_ERR_CONFIG,
     "identity: needs \"bundle\" or \"bundles\""},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundles\":{}}}",
     MESH_ERR_CONFIG, "identity: needs \"bundle\" or \"bundles\""},
    {"{\"identity\":{\"cert\":\"\",\"key\":\"k\",\"bundle\":\"b\"}}",
     MESH_ERR_CONFIG, "identity.cert: must not be empty"},
    {"{\"identity\":{\"cert\":1,\"key\":\"k\",\"bundle\":\"b\"}}",
     MESH_ERR_CONFIG, "identity.cert: expected a string, got a number"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundles\":"
     "{\"Bad\":\"b\"}}}",
     MESH_ERR_CONFIG,
     "identity.bundles.Bad: invalid trust domain \"Bad\": trust domain must "
     "be lowercase"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundles\":"
     "{\"ok.org\":5}}}",
     MESH_ERR_CONFIG, "identity.bundles.ok.org: expected a string"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundles\":[]}}",
     MESH_ERR_CONFIG, "identity.bundles: expected an object"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundle\":\"b\","
     "\"reload_interval_ms\":5}}",
     MESH_ERR_CONFIG,
     "identity.reload_interval_ms: must be 0 (no polling) or at least 10"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundle\":\"b\","
     "\"expiry_warning_s\":-1}}",
     MESH_ERR_CONFIG, "identity.expiry_warning_s"},
    {"{\"identity\":{\"cert\":\"c\",\"key\":\"k\",\"bundle\":\"b\","
     "\"certs\":\"x\"}}",
     MESH_ERR_CONFIG, "identity.certs: unknown key (expected one of"},
    {"{\"identity\":\"x\"}", MESH_ERR_CONFIG,
     "identity: expected an object, got a string"},
    {"{\"identity\":{\"cert\":\"/nonexistent/c.pem\",\"key\":\"k\","
     "\"bundle\":\"b\"}}",
     MESH_ERR_IO, "/nonexistent/c.pem: cannot open"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mesh_t *m = NULL;
    mesh_status_t st;
    int rc = mesh_new(cases[i].json, &m, &st);
    if (rc != cases[i].want || !strstr(st.message, cases[i].msg))
      fprintf(stderr, "config case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, cases[i].want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, cases[i].msg));
    CU_ASSERT_PTR_NULL(m);
    /* validation alone agrees (and does not open files) */
    int nerr = mesh_config_check(cases[i].json, NULL, NULL);
    CU_ASSERT_EQUAL(nerr > 0, cases[i].want == MESH_ERR_CONFIG);
  }
}

static void test_mesh_new_identity_load_errors(void) {
  th_write(th_path("bad.pem"), "-----BEGIN CERTIFICATE-----\nQUJD\n"
                               "-----END CERTIFICATE-----\n");
  struct {
    const char *cert, *key, *bundle;
    int want;
    const char *msg;
  } cases[] = {
    {"web.crt", "db.key", TD "-ca.crt", MESH_ERR_KEY_MISMATCH,
     "db.key: private key does not match the certificate in "},
    {"bad.pem", "web.key", TD "-ca.crt", MESH_ERR_PEM, "bad.pem: "},
    {"web.crt", "web.key", "bad.pem", MESH_ERR_PEM, "bad.pem: "},
    {"web.crt", "web.key", TD2 "-ca.crt", MESH_ERR_CERT_UNTRUSTED,
     "web.crt: SVID " WEB},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *j = identity_json(cases[i].cert, cases[i].key, cases[i].bundle,
                            NULL);
    mesh_t *m = NULL;
    mesh_status_t st;
    int rc = mesh_new(j, &m, &st);
    if (rc != cases[i].want || !strstr(st.message, cases[i].msg))
      fprintf(stderr, "load case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, cases[i].want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, cases[i].msg));
    CU_ASSERT_PTR_NULL(m);
    free(j);
  }
}

/* ---- accessors ---------------------------------------------------------------- */

static void test_mesh_self_id(void) {
  char *j = identity_json("web.crt", "web.key", TD "-ca.crt",
                          ",\"reload_interval_ms\":0");
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  free(j);
  char id[MESH_SPIFFE_ID_MAX + 1];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB);
  char small[10];
  CU_ASSERT_EQUAL(mesh_self_id(m, small, sizeof small), MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(mesh_self_id(m, NULL, 10), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_self_id(NULL, id, sizeof id), MESH_ERR_INVALID_ARG);
  int64_t left = mesh_svid_expires_in(m);
  CU_ASSERT(left > 3500 && left <= 3600);
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 1);
  mesh__creds_t *c = mesh__creds_acquire(m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(c->generation, 1);
  CU_ASSERT_EQUAL(atomic_load(&c->refs), 2);
  mesh__creds_release(c);
  mesh_free(m);

  /* no identity section */
  CU_ASSERT_EQUAL_FATAL(mesh_new("{}", &m, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(mesh_svid_expires_in(m), INT64_MIN);
  CU_ASSERT_PTR_NULL(mesh__creds_acquire(m));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 0);
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(mesh__identity_on_change(m, NULL, NULL),
                  MESH_ERR_INVALID_ARG);
  mesh_free(m);
  CU_ASSERT_EQUAL(mesh_svid_expires_in(NULL), INT64_MIN);
  CU_ASSERT_EQUAL(mesh_identity_reload(NULL, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_PTR_NULL(mesh__creds_acquire(NULL));
}

static void test_mesh_new_identity_federation(void) {
  char j[4096];
  snprintf(j, sizeof j,
           "{\"log\":{\"level\":\"error\"},\"identity\":{\"cert\":\"%s\","
           "\"key\":\"%s\",\"bundles\":{\"%s\":\"%s\",\"%s\":\"%s\"}}}",
           th_path("web.crt"), th_path("web.key"), TD, th_path(TD "-ca.crt"),
           TD2, th_path(TD2 "-ca.crt"));
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  mesh__creds_t *c = mesh__creds_acquire(m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(c->nbundles, 2);
  mesh__x509_chain_t *peer = mesh__x509_chain_new();
  CU_ASSERT_EQUAL(mesh__pem_load_crts(peer, th_path("api.crt"), &st), MESH_OK);
  char id[MESH_SPIFFE_ID_MAX + 1];
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, peer, id, sizeof id, &st),
                  MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, "spiffe://other.org/api");
  mesh__x509_chain_free(peer);
  mesh__creds_release(c);
  mesh_free(m);
}

/* ---- reload and rotation --------------------------------------------------- */

static void on_change(mesh_t *m, mesh__creds_t *c, void *user) {
  (void)m;
  atomic_store((_Atomic uint64_t *)user, c->generation);
}

static void test_mesh_identity_reload(void) {
  /* private copies so other tests' files stay untouched */
  CU_ASSERT_FATAL(th_svid(TD, WEB, "rl", 0, 0, 0));
  char *j = identity_json("rl.crt", "rl.key", TD "-ca.crt",
                          ",\"reload_interval_ms\":0");
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  free(j);
  logs_clear();
  mesh_set_log(m, MESH_LOG_DEBUG, log_fn, &logs);
  _Atomic uint64_t seen = 0;
  CU_ASSERT_EQUAL(mesh__identity_on_change(m, on_change, &seen), MESH_OK);
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 2);
  CU_ASSERT_EQUAL(atomic_load(&seen), 2);
  CU_ASSERT(logs_have("event=svid_reloaded id=\"" WEB "\" generation=2"));
  /* a broken file: error returned and logged, old identity kept */
  CU_ASSERT_FATAL(th_write(th_path("rl.crt"), "garbage"));
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_PEM);
  CU_ASSERT_PTR_NOT_NULL(strstr(st.message, "rl.crt: malformed certificate"));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 2);
  CU_ASSERT(logs_have("level=error event=svid_reload_failed "
                      "code=MESH_ERR_PEM reason=\""));
  CU_ASSERT(logs_have("kept=old"));
  char id[MESH_SPIFFE_ID_MAX + 1];
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB);
  CU_ASSERT_EQUAL(atomic_load(&seen), 2);
  /* a mismatched key is refused the same way */
  CU_ASSERT_FATAL(th_svid(TD, WEB2, "rl", 0, 0, 0));
  char *rk = p_dup("rl.key"), *dk = p_dup("db.key");
  char *dkey = th_slurp(dk, NULL);
  CU_ASSERT_FATAL(dkey && th_write(rk, dkey));
  free(dkey);
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_KEY_MISMATCH);
  CU_ASSERT(logs_have("code=MESH_ERR_KEY_MISMATCH"));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 2);
  /* an expired SVID is not rotated in (it would be a downgrade) */
  CU_ASSERT_FATAL(th_svid(TD, WEB2, "rl", -7200, -3600, 0));
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_CERT_EXPIRED);
  /* key readable by others: loaded, with a warning */
  CU_ASSERT_FATAL(th_svid(TD, WEB2, "rl", 0, 0, 0));
  CU_ASSERT_EQUAL(chmod(rk, 0644), 0);
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
  CU_ASSERT(logs_have("level=warn event=svid_key_permissions"));
  CU_ASSERT(logs_have("mode=0644"));
  CU_ASSERT_EQUAL(mesh_self_id(m, id, sizeof id), MESH_OK);
  CU_ASSERT_STRING_EQUAL(id, WEB2);
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 3);
  CU_ASSERT_EQUAL(atomic_load(&seen), 3);
  free(rk);
  free(dk);
  mesh_free(m);
}

/* The default warns in the last third of the SVID's lifetime (SPIRE
 * rotates at half): a freshly issued SVID never warns, whatever its
 * lifetime; an explicit expiry_warning_s is an absolute window. */
static void test_mesh_identity_expiry_warning(void) {
  CU_ASSERT_FATAL(th_svid(TD, WEB, "short", -10, 100, 0));  /* 91% left */
  CU_ASSERT_FATAL(th_svid(TD, WEB, "late", -300, 100, 0));  /* 25% left */
  CU_ASSERT_FATAL(th_svid(TD, WEB, "fresh", 0, 0, 0));      /* default 1 h */
  struct {
    const char *name, *extra;
    bool warn;
    int64_t left_min, left_max;
  } cases[] = {
    {"short", ",\"reload_interval_ms\":0", false, 90, 100},
    {"late", ",\"reload_interval_ms\":0", true, 90, 100},
    {"fresh", ",\"reload_interval_ms\":0", false, 3500, 3600},
    {"short", ",\"reload_interval_ms\":0,\"expiry_warning_s\":200", true, 90,
     100},
    {"short", ",\"reload_interval_ms\":0,\"expiry_warning_s\":60", false, 90,
     100},
    {"late", ",\"reload_interval_ms\":0,\"expiry_warning_s\":0", false, 90,
     100},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char crt[64], key[64];
    snprintf(crt, sizeof crt, "%s.crt", cases[i].name);
    snprintf(key, sizeof key, "%s.key", cases[i].name);
    char *j = identity_json(crt, key, TD "-ca.crt", cases[i].extra);
    mesh_t *m = NULL;
    mesh_status_t st;
    CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
    free(j);
    logs_clear();
    mesh_set_log(m, MESH_LOG_DEBUG, log_fn, &logs);
    CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
    if (logs_have("level=warn event=svid_expiring id=\"" WEB "\"") !=
        cases[i].warn)
      fprintf(stderr, "expiry warning case %zu (%s%s): expected %s\n", i,
              cases[i].name, cases[i].extra, cases[i].warn ? "one" : "none");
    CU_ASSERT_EQUAL(logs_have("level=warn event=svid_expiring id=\"" WEB "\""),
                    cases[i].warn);
    int64_t left = mesh_svid_expires_in(m);
    CU_ASSERT(left > cases[i].left_min && left <= cases[i].left_max);
    mesh_free(m);
  }
}

/* No line of a key's PEM body appears in s. */
static bool free_of_key(const char *s, const char *keypem) {
  char line[128];
  for (const char *p = keypem; *p;) {
    size_t n = strcspn(p, "\n");
    if (n >= 16 && n < sizeof line && strncmp(p, "-----", 5) != 0) {
      memcpy(line, p, n);
      line[n] = '\0';
      if (strstr(s, line))
        return false;
      /* a fragment of it, too (a message cut to a prefix) */
      line[16] = '\0';
      if (strstr(s, line))
        return false;
    }
    p += n;
    if (*p)
      p++;
  }
  return strstr(s, "PRIVATE KEY") == NULL;
}

static void test_no_key_material_in_logs(void) {
  CU_ASSERT_FATAL(th_svid(TD, WEB, "sec", 0, 0, 0));
  char *keyp = p_dup("sec.key"), *crtp = p_dup("sec.crt");
  char *key = th_slurp(keyp, NULL), *crt = th_slurp(crtp, NULL);
  char *other = th_slurp(th_path("db.key"), NULL);
  CU_ASSERT_FATAL(key && crt && other);
  char *j = identity_json("sec.crt", "sec.key", TD "-ca.crt",
                          ",\"reload_interval_ms\":0");
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  free(j);
  logs_clear();
  mesh_set_log(m, MESH_LOG_TRACE, log_fn, &logs);
  char msgs[4096] = "";
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
  /* 1. a key with one corrupted base64 character */
  char *bad = strdup(key);
  bad[strlen(bad) / 2] = '!';
  CU_ASSERT_FATAL(th_write(keyp, bad));
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_PEM);
  strncat(msgs, st.message, sizeof msgs - strlen(msgs) - 1);
  /* 2. the key file given where the certificate belongs */
  CU_ASSERT_FATAL(th_write(keyp, key) && th_write(crtp, key));
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_PEM);
  strncat(msgs, st.message, sizeof msgs - strlen(msgs) - 1);
  /* 3. a key that does not match */
  CU_ASSERT_FATAL(th_write(crtp, crt) && th_write(keyp, other));
  CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_ERR_KEY_MISMATCH);
  strncat(msgs, st.message, sizeof msgs - strlen(msgs) - 1);
  CU_ASSERT(logs_have("svid_reload_failed"));
  pthread_mutex_lock(&logs.mu);
  CU_ASSERT(free_of_key(logs.buf, key));
  CU_ASSERT(free_of_key(logs.buf, other));
  pthread_mutex_unlock(&logs.mu);
  CU_ASSERT(free_of_key(msgs, key));
  CU_ASSERT(free_of_key(msgs, other));
  /* the check itself can fail: a key line is found when present */
  CU_ASSERT_FALSE(free_of_key(key, key));
  mesh_free(m);
  free(bad);
  free(key);
  free(crt);
  free(other);
  free(keyp);
  free(crtp);
}

static void replace_files(const char *from, const char *to) {
  char a[600], b[600];
  /* key first, then certificate: each rename is atomic */
  snprintf(a, sizeof a, "%s.key", th_path(from));
  snprintf(b, sizeof b, "%s.key", th_path(to));
  CU_ASSERT_EQUAL(rename(a, b), 0);
  snprintf(a, sizeof a, "%s.crt", th_path(from));
  snprintf(b, sizeof b, "%s.crt", th_path(to));
  CU_ASSERT_EQUAL(rename(a, b), 0);
}

static bool self_is(mesh_t *m, const void *want) {
  char id[MESH_SPIFFE_ID_MAX + 1];
  return mesh_self_id(m, id, sizeof id) == MESH_OK && !strcmp(id, want);
}

static void test_rotation_worker(void) {
  CU_ASSERT_FATAL(th_svid(TD, WEB, "rot", 0, 0, 0));
  char *j = identity_json("rot.crt", "rot.key", TD "-ca.crt",
                          ",\"reload_interval_ms\":50,"
                          "\"expiry_warning_s\":0");
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  free(j);
  logs_clear();
  mesh_set_log(m, MESH_LOG_DEBUG, log_fn, &logs);
  /* an in-flight handshake holds generation 1 */
  mesh__creds_t *old = mesh__creds_acquire(m);
  CU_ASSERT_PTR_NOT_NULL_FATAL(old);
  int64_t old_left = mesh_svid_expires_in(m);

  /* 1. a new SVID (new ID, longer life) replaces the files */
  CU_ASSERT_FATAL(th_svid(TD, WEB2, "rot-new", -60, 7200, 0));
  replace_files("rot-new", "rot");
  uint64_t two = 2;
  CU_ASSERT_FATAL(wait_for(gen_at_least, m, &two, 3000));
  CU_ASSERT(wait_for(self_is, m, WEB2, 3000));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 2);
  int64_t left = mesh_svid_expires_in(m);
  CU_ASSERT(left > old_left + 3000 && left <= 7200);
  CU_ASSERT(logs_have("event=svid_reloaded id=\"" WEB2 "\" generation=2"));
  /* the in-flight holder is untouched */
  CU_ASSERT_STRING_EQUAL(old->id, WEB);
  CU_ASSERT_EQUAL(old->generation, 1);
  CU_ASSERT_EQUAL(atomic_load(&old->refs), 1); /* only ours remains */
  mesh__creds_release(old);

  /* 2. a broken certificate file keeps the old identity */
  logs_clear();
  CU_ASSERT_FATAL(th_write(th_path("rot.crt"), "-----BEGIN CERTIFICATE-----\n"
                                               "broken\n"
                                               "-----END CERTIFICATE-----\n"));
  CU_ASSERT(wait_for(log_has, m, "event=svid_reload_failed code=MESH_ERR_PEM",
                     3000));
  CU_ASSERT(logs_have("rot.crt: "));
  usleep(200000); /* several polls: the failure is logged once, not per poll */
  pthread_mutex_lock(&logs.mu);
  char *first = strstr(logs.buf, "svid_reload_failed");
  bool once = first && !strstr(first + 1, "svid_reload_failed");
  pthread_mutex_unlock(&logs.mu);
  CU_ASSERT(once);
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 2);
  CU_ASSERT(self_is(m, WEB2));

  /* 3. a bundle that does not sign the SVID is refused too */
  logs_clear();
  CU_ASSERT_FATAL(th_svid(TD, WEB, "rot-fix", 0, 0, 0));
  char *bundle = p_dup(TD "-ca.crt"), *other = p_dup(TD2 "-ca.crt");
  char *saved = th_slurp(bundle, NULL);
  char *otherpem = th_slurp(other, NULL);
  CU_ASSERT_FATAL(saved && otherpem);
  CU_ASSERT_FATAL(th_write(bundle, otherpem));
  replace_files("rot-fix", "rot");
  CU_ASSERT(wait_for(log_has, m, "code=MESH_ERR_CERT_UNTRUSTED", 3000));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 2);

  /* 4. the bundle restored: the pending SVID is picked up */
  CU_ASSERT_FATAL(th_write(bundle, saved));
  uint64_t three = 3;
  CU_ASSERT(wait_for(gen_at_least, m, &three, 3000));
  CU_ASSERT(self_is(m, WEB));
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 3);
  free(saved);
  free(otherpem);
  free(bundle);
  free(other);
  mesh_free(m);
}

/* Many threads acquire/release while the worker rotates: exercised under
 * ASan/TSan-like timing, every acquired creds stays intact while held. */
struct spin_arg {
  mesh_t *m;
  _Atomic bool stop;
  _Atomic long bad, n;
};

static void *spin(void *p) {
  struct spin_arg *a = p;
  for (long i = 0; i < 200000 && !atomic_load(&a->stop); i++) {
    mesh__creds_t *c = mesh__creds_acquire(a->m);
    if (!c || strncmp(c->id, "spiffe://example.org/", 21) != 0 ||
        mesh__x509_chain_len(c->chain) == 0)
      atomic_fetch_add(&a->bad, 1);
    atomic_fetch_add(&a->n, 1);
    mesh__creds_release(c);
  }
  return NULL;
}

static void test_mesh__creds_acquire_concurrent(void) {
  CU_ASSERT_FATAL(th_svid(TD, WEB, "conc", 0, 0, 0));
  char *j = identity_json("conc.crt", "conc.key", TD "-ca.crt",
                          ",\"reload_interval_ms\":0,\"expiry_warning_s\":0");
  mesh_t *m = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh_new(j, &m, &st), MESH_OK);
  free(j);
  mesh_set_log(m, MESH_LOG_ERROR, log_fn, &logs);
  struct spin_arg a = {.m = m};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, spin, &a);
  for (int i = 0; i < 10; i++)
    CU_ASSERT_EQUAL(mesh_identity_reload(m, &st), MESH_OK);
  atomic_store(&a.stop, true);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  CU_ASSERT_EQUAL(atomic_load(&a.bad), 0);
  CU_ASSERT(atomic_load(&a.n) > 0);
  CU_ASSERT_EQUAL(mesh__identity_generation(m), 11);
  mesh_free(m);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("identity", suite_init, NULL);
  CU_add_test(s, "mesh_ca_init", test_mesh_ca_init);
  CU_add_test(s, "mesh_ca_issue_errors", test_mesh_ca_issue_errors);
  CU_add_test(s, "mesh_ca_issue_bad_ca", test_mesh_ca_issue_bad_ca);
  CU_add_test(s, "mesh_ca_issue", test_mesh_ca_issue);
  CU_add_test(s, "meshctl_ca", test_meshctl_ca);
  CU_add_test(s, "mesh_new_identity_config", test_mesh_new_identity_config);
  CU_add_test(s, "mesh_new_identity_load_errors",
              test_mesh_new_identity_load_errors);
  CU_add_test(s, "mesh_self_id", test_mesh_self_id);
  CU_add_test(s, "mesh_new_identity_federation",
              test_mesh_new_identity_federation);
  CU_add_test(s, "mesh_identity_reload", test_mesh_identity_reload);
  CU_add_test(s, "mesh_identity_expiry_warning",
              test_mesh_identity_expiry_warning);
  CU_add_test(s, "no_key_material_in_logs", test_no_key_material_in_logs);
  CU_add_test(s, "rotation_worker", test_rotation_worker);
  CU_add_test(s, "mesh__creds_acquire_concurrent",
              test_mesh__creds_acquire_concurrent);
}

int main(void) { return th_run_suites("test_identity", add); }
