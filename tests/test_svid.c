/* SPDX-License-Identifier: Apache-2.0 */
/* X.509-SVID rules, trust bundles and peer verification: certificates from
 * the library's dev CA (with deliberate defects from MESH_CA_ISSUE_*) and
 * from the openssl command line (an independent issuer). */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "identity/pemfile.h"
#include "config.h" /* MESH_TLS_MBEDTLS */
#ifdef MESH_TLS_MBEDTLS
#include <mbedtls/ecp.h>

#include "identity/mbx.h"
#endif

#define TD "example.org"
#define TD2 "other.org"
#define WEB "spiffe://example.org/ns/default/sa/web"

/* Parse a PEM file into a fresh chain through the build's X.509 seam
 * (caller frees); NULL on failure. */
static mesh__x509_chain_t *crt_file(const char *path) {
  mesh__x509_chain_t *c = mesh__x509_chain_new();
  if (mesh__pem_load_crts(c, path, NULL) != MESH_OK) {
    mesh__x509_chain_free(c);
    return NULL;
  }
  return c;
}

static void crt_free(mesh__x509_chain_t *c) { mesh__x509_chain_free(c); }

static const mesh__x509_t *leaf(const mesh__x509_chain_t *c) {
  return mesh__x509_chain_at(c, 0);
}

static const char *tpath(const char *name, const char *ext) {
  char n[300];
  snprintf(n, sizeof n, "%s%s", name, ext);
  return th_path(n);
}

/* A second CA with the same trust domain name but its own key. */
static const char *rogue_ca(void) {
  static char cert[512];
  if (cert[0])
    return cert;
  snprintf(cert, sizeof cert, "%s", th_path("rogue-ca.crt"));
  mesh_status_t st;
  if (mesh_ca_init(TD, 86400, cert, th_path("rogue-ca.key"), &st) != MESH_OK)
    fprintf(stderr, "rogue_ca: %s\n", st.message);
  return cert;
}

static int suite_init(void) {
  if (!th_ca(TD) || !th_ca(TD2) || !rogue_ca()[0])
    return 1;
  bool ok = th_svid(TD, WEB, "web", 0, 0, 0) &&
            th_svid(TD, "spiffe://example.org/db", "db", 0, 0, 0) &&
            th_svid(TD2, "spiffe://other.org/api", "api", 0, 0, 0) &&
            th_svid(TD, WEB, "expired", -7200, -3600, 0) &&
            th_svid(TD, WEB, "future", 3600, 7200, 0) &&
            th_svid(TD, WEB, "as_ca", 0, 0, MESH_CA_ISSUE_AS_CA) &&
            th_svid(TD, WEB, "no_uri", 0, 0, MESH_CA_ISSUE_NO_URI) &&
            th_svid(TD, WEB, "two_uris", 0, 0, MESH_CA_ISSUE_TWO_URIS) &&
            th_svid(TD, WEB, "chain", 0, 0, MESH_CA_ISSUE_CHAIN) &&
            /* an other.org ID signed by the example.org CA */
            th_svid(TD, "spiffe://other.org/impostor", "impostor", 0, 0, 0) &&
            th_svid(TD, "spiffe://third.org/x", "third", 0, 0, 0);
  if (!ok)
    return 1;
  mesh_status_t st;
  return mesh_ca_issue(rogue_ca(), th_path("rogue-ca.key"), WEB, 0, 0, 0,
                       th_path("rogue.crt"), th_path("rogue.key"),
                       &st) != MESH_OK;
}

/* ---- mesh__svid_leaf_check ------------------------------------------------ */

struct leaf_case {
  const char *name; /* <name>.crt in the temp dir */
  int want;
  const char *msg;
};

static const struct leaf_case leaf_cases[] = {
  {"web", MESH_OK, ""},
  {"chain", MESH_OK, ""},
  {"as_ca", MESH_ERR_SVID,
   "SVID " WEB ": leaf certificate is a CA (basicConstraints CA:TRUE)"},
  {"no_uri", MESH_ERR_SVID,
   "certificate has no URI SAN (an X.509-SVID carries its SPIFFE ID in "
   "exactly one)"},
  {"two_uris", MESH_ERR_SVID,
   "certificate has 2 URI SANs (an X.509-SVID must have exactly one)"},
  {"example.org-ca", MESH_ERR_SVID,
   "SVID spiffe://example.org: a leaf SPIFFE ID must have a path"},
};

static void test_mesh__svid_leaf_check(void) {
  for (size_t i = 0; i < sizeof leaf_cases / sizeof leaf_cases[0]; i++) {
    const struct leaf_case *tc = &leaf_cases[i];
    mesh__x509_chain_t *c = crt_file(tpath(tc->name, ".crt"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char id[MESH_SPIFFE_ID_MAX + 1] = "";
    mesh_status_t st;
    int rc = mesh__svid_leaf_check(leaf(c), id, sizeof id, &st);
    if (rc != tc->want || strcmp(st.message, tc->msg) != 0)
      fprintf(stderr, "leaf %s: rc=%d %s\n", tc->name, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want);
    CU_ASSERT_STRING_EQUAL(st.message, tc->msg);
    if (tc->want == MESH_OK) {
      CU_ASSERT_STRING_EQUAL(id, WEB);
    }
    crt_free(c);
  }
}

static void test_mesh__svid_leaf_check_args(void) {
  mesh__x509_chain_t *c = crt_file(th_path("web.crt"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  mesh_status_t st;
  char small[10];
  CU_ASSERT_EQUAL(mesh__svid_leaf_check(leaf(c), small, sizeof small, &st),
                  MESH_ERR_BUFFER);
  CU_ASSERT_EQUAL(mesh__svid_leaf_check(leaf(c), NULL, 0, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__svid_leaf_check(NULL, NULL, 0, &st),
                  MESH_ERR_INVALID_ARG);
  crt_free(c);
  /* the CHAIN flag writes leaf then CA; the CA passes the signing rules */
  mesh__x509_chain_t *ch = crt_file(th_path("chain.crt"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
  CU_ASSERT_EQUAL(mesh__x509_chain_len(ch), 2);
  CU_ASSERT(mesh__x509_is_ca(mesh__x509_chain_at(ch, 1)));
  CU_ASSERT_EQUAL(mesh__svid_chain_check(ch, NULL, 0, &st), MESH_OK);
  /* a chain whose second certificate is a leaf violates the rules */
  mesh__x509_chain_t *two = crt_file(th_path("web.crt"));
  CU_ASSERT_EQUAL(mesh__pem_load_crts(two, th_path("db.crt"), NULL), MESH_OK);
  CU_ASSERT_EQUAL(mesh__svid_chain_check(two, NULL, 0, &st), MESH_ERR_SVID);
  CU_ASSERT_STRING_EQUAL(
      st.message, "chain certificate #1: signing certificate is not a CA "
                  "(basicConstraints)");
  crt_free(two);
  crt_free(ch);
}

/* Leaves minted by openssl from an extension file, signed by our CA: rules
 * we cannot break through MESH_CA_ISSUE_* flags. */
struct ossl_case {
  const char *ext;
  int want;
  const char *msg; /* substring */
};

#define KU_DS "keyUsage=critical,digitalSignature\n"
#define EKU_BOTH "extendedKeyUsage=serverAuth,clientAuth\n"

static const struct ossl_case ossl_cases[] = {
  {"subjectAltName=URI:spiffe://example.org/x\n" KU_DS EKU_BOTH, MESH_OK, ""},
  {"subjectAltName=DNS:x.example,URI:spiffe://example.org/x,"
   "email:a@example.org\n" KU_DS,
   MESH_OK, ""},
  {"subjectAltName=URI:https://example.org/x\n" KU_DS, MESH_ERR_SPIFFE_ID,
   "URI SAN: invalid SPIFFE ID \"https://example.org/x\": scheme is missing"},
  {"subjectAltName=URI:spiffe://Example.org/x\n" KU_DS, MESH_ERR_SPIFFE_ID,
   "trust domain must be lowercase"},
  {"subjectAltName=URI:spiffe://example.org/a/../b\n" KU_DS,
   MESH_ERR_SPIFFE_ID, "path cannot contain dot segments"},
  {"subjectAltName=URI:spiffe://example.org\n" KU_DS, MESH_ERR_SVID,
   "a leaf SPIFFE ID must have a path"},
  {"subjectAltName=URI:spiffe://example.org/x\n", MESH_ERR_SVID,
   "leaf has no keyUsage extension"},
  {"subjectAltName=URI:spiffe://example.org/x\n"
   "keyUsage=critical,keyAgreement\n",
   MESH_ERR_SVID, "leaf keyUsage lacks digitalSignature"},
  {"subjectAltName=URI:spiffe://example.org/x\n"
   "keyUsage=critical,digitalSignature,keyCertSign\n",
   MESH_ERR_SVID, "leaf keyUsage has keyCertSign or cRLSign"},
  {"subjectAltName=URI:spiffe://example.org/x\n"
   "keyUsage=critical,digitalSignature,cRLSign\n",
   MESH_ERR_SVID, "leaf keyUsage has keyCertSign or cRLSign"},
  {"subjectAltName=URI:spiffe://example.org/x\n" KU_DS
   "extendedKeyUsage=serverAuth\n",
   MESH_ERR_SVID, "leaf extendedKeyUsage lacks serverAuth or clientAuth"},
  {"subjectAltName=URI:spiffe://example.org/x\n" KU_DS
   "basicConstraints=critical,CA:TRUE\n",
   MESH_ERR_SVID, "leaf certificate is a CA"},
};

static bool openssl_leaf(const char *ext, const char *out) {
  const char *extf = th_path("ossl.ext");
  if (!th_write(extf, ext))
    return false;
  char cmd[3000];
  snprintf(cmd, sizeof cmd,
           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -keyout '%s' -subj /O=SPIFFE -out '%s' && "
           "openssl x509 -req -in '%s' -CA '%s' -CAkey '%s' -set_serial 7 "
           "-days 1 -extfile '%s' -out '%s'",
           th_path("ossl.key"), th_path("ossl.csr"), th_path("ossl.csr"),
           th_path(TD "-ca.crt"), th_path(TD "-ca.key"), extf, out);
  return th_sh(cmd) == 0;
}

static void test_mesh__svid_leaf_check_openssl(void) {
  if (!th_require("openssl", "openssl"))
    return;
  for (size_t i = 0; i < sizeof ossl_cases / sizeof ossl_cases[0]; i++) {
    const struct ossl_case *tc = &ossl_cases[i];
    const char *out = th_path("ossl.crt");
    CU_ASSERT_FATAL(openssl_leaf(tc->ext, out));
    mesh__x509_chain_t *c = crt_file(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    mesh_status_t st;
    int rc = mesh__svid_leaf_check(leaf(c), NULL, 0, &st);
    if (rc != tc->want || !strstr(st.message, tc->msg))
      fprintf(stderr, "openssl case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->msg));
    crt_free(c);
  }
}

/* An intermediate CA (openssl) between our root and the leaf. */
static bool openssl_intermediate(const char *int_ext, const char *name) {
  char cmd[4000];
  th_write(th_path("int.ext"), int_ext);
  th_write(th_path("il.ext"), "subjectAltName=URI:spiffe://example.org/inter\n"
                              KU_DS EKU_BOTH);
  snprintf(cmd, sizeof cmd,
           "cd '%s' && "
           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -keyout int.key -subj '/O=SPIFFE/CN=intermediate' "
           "-out int.csr && "
           "openssl x509 -req -in int.csr -CA " TD "-ca.crt -CAkey " TD
           "-ca.key -set_serial 8 -days 1 -extfile int.ext -out int.crt && "
           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           "-nodes -keyout %s.key -subj /O=SPIFFE -out il.csr && "
           "openssl x509 -req -in il.csr -CA int.crt -CAkey int.key "
           "-set_serial 9 -days 1 -extfile il.ext -out %s-leaf.crt && "
           "cat %s-leaf.crt int.crt > %s.crt",
           th_tmpdir(), name, name, name, name);
  return th_sh(cmd) == 0;
}

static void test_mesh__creds_load_intermediate(void) {
  if (!th_require("openssl", "openssl"))
    return;
  CU_ASSERT_FATAL(openssl_intermediate(
      "basicConstraints=critical,CA:TRUE\n"
      "keyUsage=critical,keyCertSign,cRLSign\n"
      "subjectAltName=URI:spiffe://example.org\n",
      "il"));
  char cert[512], key[512], b[512];
  snprintf(cert, sizeof cert, "%s", th_path("il.crt"));
  snprintf(key, sizeof key, "%s", th_path("il.key"));
  snprintf(b, sizeof b, "%s", th_path(TD "-ca.crt"));
  mesh__creds_src_t src = {.cert = cert, .key = key, .bundle = b};
  mesh__creds_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh__creds_load(&src, 1, &c, &st), MESH_OK);
  CU_ASSERT_STRING_EQUAL(c->id, "spiffe://example.org/inter");
  CU_ASSERT_EQUAL(mesh__x509_chain_len(c->chain), 2);
  /* as a peer: the chain verifies, the leaf alone does not */
  mesh__x509_chain_t *full = crt_file(cert);
  mesh__x509_chain_t *alone = crt_file(th_path("il-leaf.crt"));
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, full, NULL, 0, &st), MESH_OK);
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, alone, NULL, 0, &st),
                  MESH_ERR_CERT_UNTRUSTED);
  crt_free(full);
  crt_free(alone);
  mesh__creds_release(c);
  /* an intermediate whose SPIFFE ID has a path breaks X.509-SVID 3.2 */
  CU_ASSERT_FATAL(openssl_intermediate(
      "basicConstraints=critical,CA:TRUE\n"
      "keyUsage=critical,keyCertSign\n"
      "subjectAltName=URI:spiffe://example.org/ca\n",
      "il2"));
  snprintf(cert, sizeof cert, "%s", th_path("il2.crt"));
  snprintf(key, sizeof key, "%s", th_path("il2.key"));
  CU_ASSERT_EQUAL(mesh__creds_load(&src, 1, &c, &st), MESH_ERR_SVID);
  CU_ASSERT_PTR_NOT_NULL(strstr(
      st.message, "il2.crt: chain certificate #1: signing certificate "
                  "SPIFFE ID spiffe://example.org/ca must not have a path"));
  /* an intermediate without keyCertSign */
  CU_ASSERT_FATAL(openssl_intermediate(
      "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,cRLSign\n",
      "il3"));
  snprintf(cert, sizeof cert, "%s", th_path("il3.crt"));
  snprintf(key, sizeof key, "%s", th_path("il3.key"));
  CU_ASSERT_EQUAL(mesh__creds_load(&src, 1, &c, &st), MESH_ERR_SVID);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(st.message, "signing certificate keyUsage lacks keyCertSign"));
}

/* ---- the X.509 seam's accessors: one expected text for both builds ----- */

/* A certificate with every kind of name attribute the "identity" view may
 * show: DC, a multi-valued RDN, emailAddress, an OID without a short name
 * here (street), UTF-8 outside ASCII; a serial with its high bit set (a
 * sign byte in the DER). */
static void test_mesh__x509_accessors(void) {
  if (!th_require("openssl", "openssl"))
    return;
  th_write(th_path("acc.ext"),
           "subjectAltName=URI:" WEB ",URI:spiffe://example.org/two\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth\n");
  char cmd[3000];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl req -new -newkey ec -pkeyopt "
           "ec_paramgen_curve:P-256 -nodes -keyout acc.key -utf8 "
           "-multivalue-rdn -subj "
           "'/DC=org/DC=example/O=SPIFFE/OU=a+CN=b/emailAddress=x@y"
           "/street=z/CN=caf\xc3\xa9' -out acc.csr 2>/dev/null && "
           "openssl x509 -req -in acc.csr -CA " TD "-ca.crt -CAkey " TD
           "-ca.key -set_serial 0xABCDEF01 -days 2 -extfile acc.ext "
           "-out acc.crt 2>/dev/null",
           th_tmpdir());
  CU_ASSERT_FATAL(th_sh(cmd) == 0);
  mesh__x509_chain_t *ch = crt_file(th_path("acc.crt"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
  const mesh__x509_t *x = leaf(ch);
  char buf[512];
  CU_ASSERT_EQUAL(mesh__x509_dn_text(x, false, buf, sizeof buf), 0);
  if (strncmp(buf, "DC=org, DC=example, O=SPIFFE, CN=b + OU=a", 40) != 0)
    fprintf(stderr, "subject text: %s\n", buf);
  /* (a SET OF is sorted by its DER: CN before OU; street has no short
   * name in either library's table we follow) */
  CU_ASSERT_STRING_EQUAL(buf, "DC=org, DC=example, O=SPIFFE, CN=b + OU=a, "
                              "emailAddress=x@y, 2.5.4.9=z, CN=caf??");
  char small[12];
  CU_ASSERT_EQUAL(mesh__x509_dn_text(x, false, small, sizeof small), -1);
  CU_ASSERT_STRING_EQUAL(small, "DC=org, DC=");
  CU_ASSERT_EQUAL(mesh__x509_serial_text(x, buf, sizeof buf), 0);
  CU_ASSERT_STRING_EQUAL(buf, "AB:CD:EF:01");
  CU_ASSERT_EQUAL(mesh__x509_not_after(x) - mesh__x509_not_before(x),
                  2 * 86400);
  CU_ASSERT(llabs((long long)(mesh__x509_not_before(x) - mesh__wall_s())) <
            600);
  char uri[64];
  size_t ulen = 0;
  CU_ASSERT_EQUAL(mesh__x509_uri_sans(x, uri, sizeof uri, &ulen), 2);
  CU_ASSERT_EQUAL(ulen, strlen(WEB));
  CU_ASSERT_EQUAL(memcmp(uri, WEB, ulen), 0);
  unsigned bits = 0;
  CU_ASSERT(mesh__x509_key_usage(x, &bits));
  CU_ASSERT_EQUAL(bits, MESH__KU_DIGITAL_SIGNATURE);
  CU_ASSERT(mesh__x509_ext_key_usage(x, &bits));
  CU_ASSERT_EQUAL(bits, MESH__EKU_SERVER);
  CU_ASSERT(!mesh__x509_is_ca(x));
  /* PEM out is the file's PEM, byte for byte (64-column base64) */
  size_t flen = 0;
  char *file = th_slurp(th_path("acc.crt"), &flen);
  CU_ASSERT_EQUAL(mesh__x509_chain_pem(ch, buf, sizeof buf), MESH_ERR_BUFFER);
  CU_ASSERT_STRING_EQUAL(buf, "");
  char pem[4096];
  CU_ASSERT_EQUAL(mesh__x509_chain_pem(ch, pem, sizeof pem), (long)flen);
  CU_ASSERT_STRING_EQUAL(pem, file ? file : "?");
  free(file);
  /* DER out parses back to the same certificate */
  unsigned char *der = NULL;
  size_t dlen = 0;
  CU_ASSERT_EQUAL_FATAL(mesh__x509_der(x, &der, &dlen), 0);
  mesh__x509_chain_t *back = mesh__x509_chain_new();
  CU_ASSERT_EQUAL(mesh__x509_chain_parse(back, der, dlen, false, "der", NULL),
                  MESH_OK);
  CU_ASSERT(mesh__x509_same(leaf(back), x));
  free(der);
  mesh__x509_chain_free(back);
  /* the key belongs to it, another does not */
  mesh__x509_key_t *k = NULL, *other = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_key(&k, th_path("acc.key"), &st),
                        MESH_OK);
  CU_ASSERT_EQUAL_FATAL(mesh__pem_load_key(&other, th_path("web.key"), &st),
                        MESH_OK);
  CU_ASSERT(mesh__x509_key_matches(k, x));
  CU_ASSERT(!mesh__x509_key_matches(other, x));
  mesh__x509_key_free(k);
  mesh__x509_key_free(other);
  mesh__x509_chain_free(ch);
}

/* ---- mesh__x509_flags_to_code -------------------------------------------------- */

struct flags_case {
  uint32_t flags;
  int want;
  const char *msg;
};

static const struct flags_case flags_cases[] = {
  {0, MESH_OK, ""},
  {MESH__X509_NOT_TRUSTED, MESH_ERR_CERT_UNTRUSTED,
   "certificate chain does not lead to the trust bundle"},
  {MESH__X509_EXPIRED, MESH_ERR_CERT_EXPIRED, "certificate expired"},
  {MESH__X509_FUTURE, MESH_ERR_CERT_NOT_YET_VALID,
   "certificate not yet valid"},
  {MESH__X509_NOT_TRUSTED | MESH__X509_EXPIRED,
   MESH_ERR_CERT_UNTRUSTED, "validity has expired"},
  {MESH__X509_EXPIRED | MESH__X509_FUTURE,
   MESH_ERR_CERT_EXPIRED, "certificate expired"},
  {MESH__X509_BAD_KEY, MESH_ERR_CERT_UNTRUSTED,
   "certificate chain rejected"},
  {MESH__X509_KEY_USAGE, MESH_ERR_CERT_UNTRUSTED,
   "certificate chain rejected (Usage does not match the keyUsage extension)"},
};

static void test_mesh__x509_flags_to_code(void) {
  for (size_t i = 0; i < sizeof flags_cases / sizeof flags_cases[0]; i++) {
    mesh_status_t st;
    int rc = mesh__x509_flags_to_code(flags_cases[i].flags, &st);
    if (rc != flags_cases[i].want || !strstr(st.message, flags_cases[i].msg))
      fprintf(stderr, "flags case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, flags_cases[i].want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, flags_cases[i].msg));
    CU_ASSERT(strchr(st.message, '\n') == NULL);
  }
}

/* ---- mesh__creds_load -------------------------------------------------------- */

struct load_case {
  const char *cert, *key, *bundle; /* names in the temp dir (NULL: none) */
  const char *btd, *bpath;         /* one federation bundle */
  bool allow_expired;
  int want;
  const char *msg; /* substring */
};

static void write_fixtures(void) {
  th_write(th_path("bad-b64.pem"), "-----BEGIN CERTIFICATE-----\nZZZZ!!\n"
                                   "-----END CERTIFICATE-----\n");
  th_write(th_path("garbage.pem"), "hello, not a certificate\n");
  th_write(th_path("empty.pem"), "");
  th_write(th_path("bad-key.pem"), "-----BEGIN EC PRIVATE KEY-----\nAAAA\n"
                                   "-----END EC PRIVATE KEY-----\n");
  /* DER that starts like a certificate and stops short */
  th_write(th_path("garbage.der"), "\x30\x82\x01\x10\x30\x82"
                                   "garbage");
  /* keys no SVID here may carry: Ed25519 (neither our checks nor mbedTLS
   * 2.28 take it), RSA-1024 (below every verify profile) */
  th_write(th_path("odd.ext"), "subjectAltName=URI:" WEB "\n" KU_DS);
  char cmd[2000];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && openssl genpkey -algorithm ed25519 -out ed.key && "
           "openssl req -new -key ed.key -subj /O=SPIFFE -out ed.csr && "
           "openssl x509 -req -in ed.csr -CA " TD "-ca.crt -CAkey " TD
           "-ca.key -set_serial 5 -days 1 -extfile odd.ext -out ed.crt && "
           "openssl genrsa -out r1024.key 1024 && "
           "openssl req -new -key r1024.key -subj /O=SPIFFE -out r1024.csr && "
           "openssl x509 -req -in r1024.csr -CA " TD "-ca.crt -CAkey " TD
           "-ca.key -set_serial 6 -days 1 -extfile odd.ext -out r1024.crt",
           th_tmpdir());
  CU_ASSERT_FATAL(th_sh(cmd) == 0);
}

static const struct load_case load_cases[] = {
  {"web.crt", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_OK, ""},
  {"chain.crt", "chain.key", TD "-ca.crt", NULL, NULL, false, MESH_OK, ""},
  {"web.crt", "web.key", NULL, TD, TD "-ca.crt", false, MESH_OK, ""},
  {"web.crt", "db.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_KEY_MISMATCH,
   "db.key: private key does not match the certificate in "},
  {"web.crt", TD "-ca.key", TD "-ca.crt", NULL, NULL, false,
   MESH_ERR_KEY_MISMATCH, "does not match"},
  {"bad-b64.pem", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "bad-b64.pem: malformed certificate"},
  {"garbage.pem", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "garbage.pem: malformed certificate"},
  {"empty.pem", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "empty.pem: file is empty"},
  {"web.key", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "web.key: no PEM CERTIFICATE block"},
  {"web.crt", "bad-key.pem", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "bad-key.pem: malformed private key"},
  {"garbage.der", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "garbage.der: malformed certificate"},
  {"ed.crt", "ed.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "ed.crt: malformed certificate"},
  {"web.crt", "ed.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "ed.key: malformed private key"},
  {"r1024.crt", "r1024.key", TD "-ca.crt", NULL, NULL, false,
   MESH_ERR_CERT_UNTRUSTED, "r1024.crt: SVID " WEB " (trust domain "
   "example.org): certificate chain rejected"},
  {"web.crt", "web.crt", TD "-ca.crt", NULL, NULL, false, MESH_ERR_PEM,
   "web.crt: malformed private key"},
  {"web.crt", "web.key", "bad-b64.pem", NULL, NULL, false, MESH_ERR_PEM,
   "bad-b64.pem: malformed certificate"},
  {"missing.crt", "web.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_IO,
   "missing.crt: cannot open: No such file or directory"},
  {"web.crt", "missing.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_IO,
   "missing.key: cannot open"},
  {"web.crt", "web.key", "missing-ca.crt", NULL, NULL, false, MESH_ERR_IO,
   "missing-ca.crt: cannot open"},
  {"as_ca.crt", "as_ca.key", TD "-ca.crt", NULL, NULL, false, MESH_ERR_SVID,
   "as_ca.crt: SVID " WEB ": leaf certificate is a CA"},
  {"two_uris.crt", "two_uris.key", TD "-ca.crt", NULL, NULL, false,
   MESH_ERR_SVID, "two_uris.crt: certificate has 2 URI SANs"},
  {"web.crt", "web.key", "rogue-ca.crt", NULL, NULL, false,
   MESH_ERR_CERT_UNTRUSTED, "web.crt: SVID " WEB " (trust domain example.org)"
                            ": certificate chain does not lead to the trust "
                            "bundle"},
  {"web.crt", "web.key", NULL, TD2, TD2 "-ca.crt", false,
   MESH_ERR_TRUST_DOMAIN,
   "web.crt: no trust bundle for the SVID's own trust domain \"example.org\""},
  {"expired.crt", "expired.key", TD "-ca.crt", NULL, NULL, false,
   MESH_ERR_CERT_EXPIRED, "expired.crt: SVID " WEB " expired at "},
  {"expired.crt", "expired.key", TD "-ca.crt", NULL, NULL, true, MESH_OK, ""},
  {"future.crt", "future.key", TD "-ca.crt", NULL, NULL, false,
   MESH_ERR_CERT_NOT_YET_VALID, "future.crt: SVID " WEB " is not valid before "},
  {"future.crt", "future.key", TD "-ca.crt", NULL, NULL, true, MESH_OK, ""},
  {"web.crt", "web.key", "web.crt", NULL, NULL, false, MESH_ERR_SVID,
   "web.crt: certificate #1: signing certificate is not a CA"},
  {"web.crt", "web.key", TD "-ca.crt", TD, TD "-ca.crt", false,
   MESH_ERR_CONFIG, "identity.bundles.example.org: the SVID's own trust "
                    "domain is also given by identity.bundle"},
  {"web.crt", "web.key", TD "-ca.crt", "Bad", TD "-ca.crt", false,
   MESH_ERR_SPIFFE_ID, "trust domain must be lowercase"},
};

static int load_one(const struct load_case *tc, mesh__creds_t **out,
                    mesh_status_t *st) {
  char cert[512], key[512], bundle[512], bpath[512];
  snprintf(cert, sizeof cert, "%s", th_path(tc->cert));
  snprintf(key, sizeof key, "%s", th_path(tc->key));
  snprintf(bundle, sizeof bundle, "%s", tc->bundle ? th_path(tc->bundle) : "");
  snprintf(bpath, sizeof bpath, "%s", tc->bpath ? th_path(tc->bpath) : "");
  const char *tds[] = {tc->btd};
  const char *paths[] = {bpath};
  mesh__creds_src_t src = {.cert = cert,
                           .key = key,
                           .bundle = tc->bundle ? bundle : NULL,
                           .bundle_tds = tds,
                           .bundle_paths = paths,
                           .nbundles = tc->btd ? 1 : 0,
                           .allow_expired = tc->allow_expired};
  return mesh__creds_load(&src, 7, out, st);
}

static void test_mesh__creds_load(void) {
  write_fixtures();
  for (size_t i = 0; i < sizeof load_cases / sizeof load_cases[0]; i++) {
    const struct load_case *tc = &load_cases[i];
    mesh__creds_t *c = NULL;
    mesh_status_t st;
    int rc = load_one(tc, &c, &st);
    if (rc != tc->want || !strstr(st.message, tc->msg))
      fprintf(stderr, "load case %zu: rc=%d %s\n", i, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->msg));
    CU_ASSERT_EQUAL(rc == MESH_OK, c != NULL);
    if (c) {
      CU_ASSERT_STRING_EQUAL(c->id, WEB);
      CU_ASSERT_STRING_EQUAL(c->td, TD);
      CU_ASSERT_EQUAL(c->generation, 7);
      CU_ASSERT_EQUAL(c->nbundles, 1);
      CU_ASSERT(c->not_after > c->not_before);
    }
    mesh__creds_release(c);
  }
}

static void test_mesh__creds_load_fields(void) {
  const char *tds[] = {TD2};
  char b2[512];
  snprintf(b2, sizeof b2, "%s", th_path(TD2 "-ca.crt"));
  const char *paths[] = {b2};
  char cert[512], key[512], b1[512];
  snprintf(cert, sizeof cert, "%s", th_path("web.crt"));
  snprintf(key, sizeof key, "%s", th_path("web.key"));
  snprintf(b1, sizeof b1, "%s", th_path(TD "-ca.crt"));
  mesh__creds_src_t src = {.cert = cert, .key = key, .bundle = b1,
                           .bundle_tds = tds, .bundle_paths = paths,
                           .nbundles = 1};
  mesh__creds_t *c = NULL;
  mesh_status_t st;
  CU_ASSERT_EQUAL_FATAL(mesh__creds_load(&src, 1, &c, &st), MESH_OK);
  int64_t now = mesh__wall_s();
  /* th_svid default: issue time - 60 s .. issue time + 1 h.  The SVID was
   * issued at suite setup, which under valgrind can be minutes ago: check
   * the window's length exactly and its position loosely. */
  CU_ASSERT_EQUAL(c->not_after - c->not_before, 3660);
  CU_ASSERT(c->not_before <= now - 60 && c->not_before >= now - 660);
  CU_ASSERT_EQUAL(c->nbundles, 2);
  CU_ASSERT_PTR_NOT_NULL(mesh__creds_bundle(c, TD));
  CU_ASSERT_PTR_NOT_NULL(mesh__creds_bundle(c, TD2));
  CU_ASSERT_PTR_NULL(mesh__creds_bundle(c, "third.org"));
  CU_ASSERT_PTR_NULL(mesh__creds_bundle(c, NULL));
  CU_ASSERT_EQUAL(mesh__x509_chain_len(c->all_roots), 2);
#ifdef MESH_TLS_MBEDTLS
  /* EC comb tables exist before publication (no lazy write later) */
  const mbedtls_x509_crt *ar = mesh__x509_chain_native(c->all_roots);
  CU_ASSERT_PTR_NOT_NULL(
      mbedtls_pk_ec(*(mbedtls_pk_context *)mesh__x509_key_native(c->key))
          ->MESH__MBX(grp).MESH__MBX(T));
  for (size_t i = 0; i < c->nbundles; i++) {
    const mbedtls_x509_crt *r = mesh__x509_chain_native(c->bundles[i].roots);
    CU_ASSERT_PTR_NOT_NULL(mbedtls_pk_ec(r->pk)->MESH__MBX(grp).MESH__MBX(T));
  }
  CU_ASSERT_PTR_NOT_NULL(mbedtls_pk_ec(ar->pk)->MESH__MBX(grp).MESH__MBX(T));
#endif
  /* refcount: one extra ref, two releases free it (ASan checks) */
  CU_ASSERT_PTR_EQUAL(mesh__creds_ref(c), c);
  CU_ASSERT_EQUAL(atomic_load(&c->refs), 2);
  mesh__creds_release(c);
  CU_ASSERT_EQUAL(atomic_load(&c->refs), 1);
  mesh__creds_release(c);
  mesh__creds_release(NULL);
  CU_ASSERT_PTR_NULL(mesh__creds_ref(NULL));
  CU_ASSERT_EQUAL(mesh__creds_load(NULL, 1, &c, &st), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh__creds_load(&src, 1, NULL, &st), MESH_ERR_INVALID_ARG);
}

/* ---- mesh__creds_verify_peer -------------------------------------------------- */

struct peer_case {
  const char *name;
  int want;
  const char *msg; /* substring */
  const char *id;  /* expected peer ID on success */
};

static const struct peer_case peer_cases[] = {
  {"db", MESH_OK, "", "spiffe://example.org/db"},
  {"chain", MESH_OK, "", WEB},
  {"api", MESH_OK, "", "spiffe://other.org/api"}, /* federation */
  {"impostor", MESH_ERR_CERT_UNTRUSTED,
   "peer: SVID spiffe://other.org/impostor (trust domain other.org): "
   "certificate chain does not lead to the trust bundle"},
  {"third", MESH_ERR_TRUST_DOMAIN,
   "peer spiffe://third.org/x: no trust bundle for trust domain "
   "\"third.org\""},
  {"rogue", MESH_ERR_CERT_UNTRUSTED, "does not lead to the trust bundle"},
  {"expired", MESH_ERR_CERT_EXPIRED, "peer: SVID " WEB " expired at "},
  {"future", MESH_ERR_CERT_NOT_YET_VALID,
   "peer: SVID " WEB " is not valid before "},
  {"as_ca", MESH_ERR_SVID, "peer: SVID " WEB ": leaf certificate is a CA"},
  {"no_uri", MESH_ERR_SVID, "peer: certificate has no URI SAN"},
  {"two_uris", MESH_ERR_SVID, "peer: certificate has 2 URI SANs"},
  {TD "-ca", MESH_ERR_SVID, "must have a path"},
};

static mesh__creds_t *federated_creds(void) {
  static char cert[512], key[512], b1[512], b2[512];
  snprintf(cert, sizeof cert, "%s", th_path("web.crt"));
  snprintf(key, sizeof key, "%s", th_path("web.key"));
  snprintf(b1, sizeof b1, "%s", th_path(TD "-ca.crt"));
  snprintf(b2, sizeof b2, "%s", th_path(TD2 "-ca.crt"));
  static const char *tds[] = {TD2};
  static const char *paths[] = {b2};
  mesh__creds_src_t src = {.cert = cert, .key = key, .bundle = b1,
                           .bundle_tds = tds, .bundle_paths = paths,
                           .nbundles = 1};
  mesh__creds_t *c = NULL;
  mesh_status_t st;
  if (mesh__creds_load(&src, 1, &c, &st) != MESH_OK)
    fprintf(stderr, "federated_creds: %s\n", st.message);
  return c;
}

static void test_mesh__creds_verify_peer(void) {
  mesh__creds_t *c = federated_creds();
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  for (size_t i = 0; i < sizeof peer_cases / sizeof peer_cases[0]; i++) {
    const struct peer_case *tc = &peer_cases[i];
    mesh__x509_chain_t *p = crt_file(tpath(tc->name, ".crt"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char id[MESH_SPIFFE_ID_MAX + 1] = "";
    mesh_status_t st;
    int rc = mesh__creds_verify_peer(c, p, id, sizeof id, &st);
    if (rc != tc->want || !strstr(st.message, tc->msg))
      fprintf(stderr, "peer %s: rc=%d %s\n", tc->name, rc, st.message);
    CU_ASSERT_EQUAL(rc, tc->want);
    CU_ASSERT_PTR_NOT_NULL(strstr(st.message, tc->msg));
    if (tc->want == MESH_OK) {
      CU_ASSERT_STRING_EQUAL(id, tc->id);
    } else {
      CU_ASSERT_EQUAL(strncmp(st.message, "peer", 4), 0);
    }
    crt_free(p);
  }
  mesh_status_t st;
  /* why the bundle of the peer's own trust domain matters: plain chain
   * verification against the union of bundles accepts the impostor */
  mesh__x509_chain_t *imp = crt_file(th_path("impostor.crt"));
  uint32_t flags = 1;
  char e[160];
  CU_ASSERT_EQUAL(mesh__x509_verify(imp, c->all_roots, &flags, e, sizeof e),
                  0);
  CU_ASSERT_EQUAL(flags, 0);
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, imp, NULL, 0, &st),
                  MESH_ERR_CERT_UNTRUSTED);
  crt_free(imp);
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, NULL, NULL, 0, &st),
                  MESH_ERR_NO_PEER_CERT);
  mesh__x509_chain_t *empty = mesh__x509_chain_new();
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, empty, NULL, 0, &st),
                  MESH_ERR_NO_PEER_CERT);
  mesh__x509_chain_free(empty);
  mesh__x509_chain_t *p = crt_file(th_path("db.crt"));
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(NULL, p, NULL, 0, &st),
                  MESH_ERR_INVALID_ARG);
  char small[8];
  CU_ASSERT_EQUAL(mesh__creds_verify_peer(c, p, small, sizeof small, &st),
                  MESH_ERR_BUFFER);
  crt_free(p);
  mesh__creds_release(c);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("svid", suite_init, NULL);
  CU_add_test(s, "mesh__svid_leaf_check", test_mesh__svid_leaf_check);
  CU_add_test(s, "mesh__svid_leaf_check_args",
              test_mesh__svid_leaf_check_args);
  CU_add_test(s, "mesh__svid_leaf_check_openssl",
              test_mesh__svid_leaf_check_openssl);
  CU_add_test(s, "mesh__x509_flags_to_code", test_mesh__x509_flags_to_code);
  CU_add_test(s, "mesh__creds_load", test_mesh__creds_load);
  CU_add_test(s, "mesh__creds_load_fields", test_mesh__creds_load_fields);
  CU_add_test(s, "mesh__creds_load_intermediate",
              test_mesh__creds_load_intermediate);
  CU_add_test(s, "mesh__creds_verify_peer", test_mesh__creds_verify_peer);
  CU_add_test(s, "mesh__x509_accessors", test_mesh__x509_accessors);
}

int main(void) { return th_run_suites("test_svid", add); }
