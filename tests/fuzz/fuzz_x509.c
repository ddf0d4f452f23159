/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz certificate input as the identity part reads it: a PEM or DER file
 * of certificates (mesh__pem_load_crts), the X.509-SVID rules
 * (mesh__svid_leaf_check, mesh__svid_chain_check), peer verification
 * against a fixed trust bundle (mesh__creds_verify_peer), private keys
 * (mesh__pem_load_key), and the whole load of an identity whose SVID,
 * or whose trust bundle, is the input (mesh__creds_load), and the input
 * as a SPIFFE trust bundle map (gRFC A87, mesh__bundle_map_parse, and the
 * load with the map as the only trust source), and the input as the dev
 * CA's certificate or key (mesh__ca_load, through the crypto seam this
 * build has: ca_mbedtls.c or ca_openssl.c).
 * Input: the bytes of a certificate, chain, bundle or key file.
 * The fixed identity (tests/fuzz/data: a dev CA for example.org valid for
 * 50 years, an SVID and its key) was made with mesh_ca_init/mesh_ca_issue.
 * Properties: a verified peer passed the SVID rules, has a valid SPIFFE
 * ID of the bundle's trust domain, and the chain check agrees on the ID. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mesh/mesh.h>

#include "fuzz.h"
#include "identity/ca_be.h"
#include "identity/identity.h"
#include "identity/pemfile.h"

#define DATA TEST_SRCDIR "/tests/fuzz/data/"

static mesh__creds_t *creds; /* the fixed identity, loaded once */
static int fd = -1;          /* memfd holding the current input */
static char path[64];        /* its name, for the file-based loaders */

static void setup(void) {
  if (fd >= 0)
    return;
  fd = memfd_create("fuzz-x509", 0);
  FUZZ_ASSERT(fd >= 0);
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  mesh__creds_src_t src = {.cert = DATA "svid.crt",
                           .key = DATA "svid.key",
                           .bundle = DATA "ca.crt",
                           .allow_expired = true};
  mesh_status_t st;
  if (mesh__creds_load(&src, 1, &creds, &st) != MESH_OK) {
    fprintf(stderr, "fuzz_x509: fixed identity: %s\n", st.message);
    abort();
  }
}

static void set_input(const uint8_t *data, size_t size) {
  FUZZ_ASSERT(ftruncate(fd, 0) == 0);
  size_t off = 0;
  while (off < size) {
    ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
    FUZZ_ASSERT(w > 0);
    off += (size_t)w;
  }
}

/* mesh__x509_ext_walk: every extension has an OID. */
static int count_ext(void *arg, const unsigned char *oid, size_t n,
                     bool crit) {
  (void)crit;
  FUZZ_ASSERT(oid && n > 0);
  (*(size_t *)arg)++;
  return 0;
}

static void check_chain(const mesh__x509_chain_t *crt) {
  char leaf_id[MESH_SPIFFE_ID_MAX + 1], chain_id[MESH_SPIFFE_ID_MAX + 1];
  char peer_id[MESH_SPIFFE_ID_MAX + 1];
  mesh_status_t st;
  int leaf = mesh__svid_leaf_check(mesh__x509_chain_at(crt, 0), leaf_id,
                                   sizeof leaf_id, &st);
  FUZZ_ASSERT(leaf == MESH_OK || leaf == MESH_ERR_SVID ||
              leaf == MESH_ERR_SPIFFE_ID);
  if (leaf == MESH_OK)
    FUZZ_ASSERT(mesh_spiffe_id_validate(leaf_id, NULL) == MESH_OK);
  int chain = mesh__svid_chain_check(crt, chain_id, sizeof chain_id, &st);
  if (chain == MESH_OK) {
    FUZZ_ASSERT(leaf == MESH_OK && strcmp(leaf_id, chain_id) == 0);
    for (size_t i = 1; i < mesh__x509_chain_len(crt); i++)
      FUZZ_ASSERT(mesh__svid_signing_check(mesh__x509_chain_at(crt, i),
                                           NULL) == MESH_OK);
  }
  int peer = mesh__creds_verify_peer(creds, crt, peer_id, sizeof peer_id, &st);
  if (peer == MESH_OK) {
    FUZZ_ASSERT(leaf == MESH_OK && strcmp(leaf_id, peer_id) == 0);
    char td[MESH_TRUST_DOMAIN_MAX + 1];
    FUZZ_ASSERT(mesh_spiffe_id_parse(peer_id, td, sizeof td, NULL, 0,
                                     NULL) == MESH_OK);
    FUZZ_ASSERT(mesh__creds_bundle(creds, td) != NULL);
  } else {
    FUZZ_ASSERT(peer < 0 && st.code == peer && st.message[0]);
  }
  /* a short ID buffer must not be overrun */
  char small[16];
  (void)mesh__svid_leaf_check(mesh__x509_chain_at(crt, 0), small,
                              sizeof small, NULL);
  /* the readers' accessors on whatever parsed */
  for (size_t i = 0; i < mesh__x509_chain_len(crt); i++) {
    const mesh__x509_t *x = mesh__x509_chain_at(crt, i);
    char buf[64];
    unsigned bits;
    (void)mesh__x509_dn_text(x, false, buf, sizeof buf);
    (void)mesh__x509_dn_text(x, true, buf, sizeof buf);
    (void)mesh__x509_serial_text(x, buf, sizeof buf);
    (void)mesh__x509_key_usage(x, &bits);
    (void)mesh__x509_ext_key_usage(x, &bits);
    (void)mesh__x509_not_before(x);
    (void)mesh__x509_not_after(x);
    size_t next = 0;
    FUZZ_ASSERT(mesh__x509_ext_walk(x, count_ext, &next) == 0);
  }
}

/* The whole identity load with the input in one role. */
static void check_load(bool input_is_cert) {
  mesh__creds_src_t src = {.cert = input_is_cert ? path : DATA "svid.crt",
                           .key = DATA "svid.key",
                           .bundle = input_is_cert ? DATA "ca.crt" : path,
                           .allow_expired = true};
  mesh__creds_t *c = NULL;
  mesh_status_t st;
  int rc = mesh__creds_load(&src, 2, &c, &st);
  FUZZ_ASSERT((rc == MESH_OK) == (c != NULL));
  if (rc == MESH_OK)
    FUZZ_ASSERT(mesh_spiffe_id_validate(c->id, NULL) == MESH_OK);
  else
    FUZZ_ASSERT(st.message[0]);
  mesh__creds_release(c);
}

/* The input as a trust bundle map: parsed bundles have valid trust
 * domains and bytes; a load that succeeds trusts the SVID's own domain. */
static void check_map(const uint8_t *data, size_t size) {
  mesh__bundle_map_t map;
  mesh_status_t st;
  int rc = mesh__bundle_map_parse((const char *)data, size, "map", &map, &st);
  if (rc != MESH_OK) {
    FUZZ_ASSERT(map.n == 0 && map.v == NULL && st.message[0]);
    return;
  }
  for (size_t i = 0; i < map.n; i++) {
    FUZZ_ASSERT(mesh__spiffe_td_validate(map.v[i].td, NULL) == MESH_OK);
    FUZZ_ASSERT(map.v[i].der && map.v[i].len > 0);
  }
  size_t n = map.n;
  mesh__bundle_map_free(&map);
  if (n == 0)
    return;
  mesh__creds_src_t src = {.cert = DATA "svid.crt", .key = DATA "svid.key",
                           .bundle_map = path, .allow_expired = true};
  mesh__creds_t *c = NULL;
  rc = mesh__creds_load(&src, 2, &c, &st);
  FUZZ_ASSERT((rc == MESH_OK) == (c != NULL));
  if (c)
    FUZZ_ASSERT(mesh__creds_bundle(c, c->td) != NULL && c->nbundles == n);
  mesh__creds_release(c);
}

/* The input as the dev CA's certificate (with the fixed SVID's key) or key
 * (with the fixed SVID certificate; the data has no CA key): a known code,
 * a CA exactly on MESH_OK (never, with a leaf's pair: the parsers, pair
 * check and CA test run, and nothing is accepted). */
static void check_ca(bool input_is_cert) {
  mesh__ca_ca_t *ca = NULL;
  mesh_status_t st;
  int rc = mesh__ca_load(&ca, input_is_cert ? path : DATA "svid.crt",
                         input_is_cert ? DATA "svid.key" : path, &st);
  FUZZ_ASSERT(rc != MESH_OK && ca == NULL);
  FUZZ_ASSERT(rc == MESH_ERR_PEM || rc == MESH_ERR_NOMEM ||
              rc == MESH_ERR_KEY_MISMATCH || rc == MESH_ERR_SVID);
  FUZZ_ASSERT(st.code == rc && st.message[0]);
  mesh__ca_free(ca);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  set_input(data, size);
  check_map(data, size);
  mesh_status_t st;
  mesh__x509_chain_t *crt = mesh__x509_chain_new();
  FUZZ_ASSERT(crt != NULL);
  int rc = mesh__pem_load_crts(crt, path, &st);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PEM || rc == MESH_ERR_NOMEM);
  if (rc == MESH_OK)
    check_chain(crt);
  mesh__x509_chain_free(crt);
  /* The full load checks the fixed key (slow: EC arithmetic): only for
   * inputs that get past the certificate parser. */
  if (rc == MESH_OK) {
    check_load(true);
    check_load(false);
  }
  check_ca(true);
  check_ca(false);

  mesh__x509_key_t *pk = NULL;
  rc = mesh__pem_load_key(&pk, path, &st);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PEM || rc == MESH_ERR_NOMEM);
  FUZZ_ASSERT((rc == MESH_OK) == (pk != NULL));
  mesh__x509_key_free(pk);
  return 0;
}
