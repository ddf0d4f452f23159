/* SPDX-License-Identifier: Apache-2.0 */
/* Loading one set of credentials (SVID chain, key, trust bundles) from PEM
 * files into an immutable, refcounted mesh__creds_t. */
#include "identity/pemfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ecp.h>

static void creds_free(mesh__creds_t *c) {
  if (!c)
    return;
  mbedtls_x509_crt_free(&c->chain);
  mbedtls_pk_free(&c->key);
  for (size_t i = 0; i < c->nbundles; i++)
    mbedtls_x509_crt_free(&c->bundles[i].roots);
  free(c->bundles);
  mbedtls_x509_crt_free(&c->all_roots);
  free(c);
}

static mesh__creds_t *creds_alloc(size_t nbundles) {
  mesh__creds_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  atomic_init(&c->refs, 1);
  mbedtls_x509_crt_init(&c->chain);
  mbedtls_pk_init(&c->key);
  mbedtls_x509_crt_init(&c->all_roots);
  c->bundles = calloc(nbundles ? nbundles : 1, sizeof *c->bundles);
  if (!c->bundles) {
    free(c);
    return NULL;
  }
  for (size_t i = 0; i < nbundles; i++)
    mbedtls_x509_crt_init(&c->bundles[i].roots);
  c->nbundles = nbundles;
  return c;
}

mesh__creds_t *mesh__creds_ref(mesh__creds_t *c) {
  if (c)
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return c;
}

void mesh__creds_release(mesh__creds_t *c) {
  if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
    creds_free(c);
}

/* Prepend "prefix: " to the message already in st. */
static int with_prefix(mesh_status_t *st, int rc, const char *prefix) {
  if (!st)
    return rc;
  char msg[sizeof st->message];
  mesh__strlcpy(msg, st->message, sizeof msg);
  return mesh__fail(st, rc, "%s: %s", prefix, msg);
}

static int64_t x509_time_to_unix(const mbedtls_x509_time *t) {
  struct tm tm = {.tm_year = t->year - 1900,
                  .tm_mon = t->mon - 1,
                  .tm_mday = t->day,
                  .tm_hour = t->hour,
                  .tm_min = t->min,
                  .tm_sec = t->sec};
  return (int64_t)timegm(&tm);
}

static int load_chain(mesh__creds_t *c, const char *path, mesh_status_t *st) {
  int rc = mesh__pem_load_crts(&c->chain, path, st);
  if (rc != MESH_OK)
    return rc;
  rc = mesh__svid_chain_check(&c->chain, c->id, sizeof c->id, st);
  if (rc != MESH_OK)
    return with_prefix(st, rc, path);
  mesh_spiffe_id_parse(c->id, c->td, sizeof c->td, NULL, 0, NULL);
  c->not_before = x509_time_to_unix(&c->chain.valid_from);
  c->not_after = x509_time_to_unix(&c->chain.valid_to);
  return MESH_OK;
}

static int load_key(mesh__creds_t *c, const char *path, const char *cert,
                    mesh_status_t *st) {
  int rc = mesh__pem_load_key(&c->key, path, st);
  if (rc != MESH_OK)
    return rc;
  if (mbedtls_pk_check_pair(&c->chain.pk, &c->key MESH__MBX_RNG) != 0)
    return mesh__fail(st, MESH_ERR_KEY_MISMATCH,
                      "%s: private key does not match the certificate in %s",
                      path, cert);
  return MESH_OK;
}

static int load_bundle(mesh__bundle_t *b, const char *td, const char *path,
                       mesh_status_t *st) {
  mesh__strlcpy(b->td, td, sizeof b->td);
  int rc = mesh__pem_load_crts(&b->roots, path, st);
  if (rc != MESH_OK)
    return rc;
  int i = 1;
  for (const mbedtls_x509_crt *r = &b->roots; r && r->raw.p; r = r->next, i++) {
    rc = mesh__svid_signing_check(r, st);
    if (rc != MESH_OK) {
      char p[4200];
      snprintf(p, sizeof p, "%s: certificate #%d", path, i);
      return with_prefix(st, rc, p);
    }
  }
  return MESH_OK;
}

static int load_bundles(mesh__creds_t *c, const mesh__creds_src_t *src,
                        mesh_status_t *st) {
  size_t k = 0;
  for (size_t i = 0; i < src->nbundles; i++) {
    if (src->bundle && strcmp(src->bundle_tds[i], c->td) == 0)
      return mesh__fail(st, MESH_ERR_CONFIG,
                        "identity.bundles.%s: the SVID's own trust domain is "
                        "also given by identity.bundle",
                        c->td);
    int rc = load_bundle(&c->bundles[k++], src->bundle_tds[i],
                         src->bundle_paths[i], st);
    if (rc != MESH_OK)
      return rc;
  }
  if (src->bundle)
    return load_bundle(&c->bundles[k], c->td, src->bundle, st);
  return MESH_OK;
}

/* The union of every bundle, as mbedTLS's ca_chain wants it. */
static int build_all_roots(mesh__creds_t *c, mesh_status_t *st) {
  for (size_t i = 0; i < c->nbundles; i++) {
    for (const mbedtls_x509_crt *r = &c->bundles[i].roots; r && r->raw.p;
         r = r->next) {
      if (mbedtls_x509_crt_parse_der(&c->all_roots, r->raw.p, r->raw.len))
        return mesh__fail(st, MESH_ERR_NOMEM, "cannot copy trust bundle");
    }
  }
  return MESH_OK;
}

/* mbedTLS (FIXED_POINT_OPTIM) fills an EC group's comb table for the
 * base point lazily, inside the first multiplication, by writing to the
 * group.  Published creds are shared by concurrent handshakes, so that
 * first write would race: compute it here, before anyone else sees it. */
static int warm_pk(mbedtls_pk_context *pk, mesh__rng_t *r) {
  if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY &&
      mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECDSA)
    return 0;
  mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
  mbedtls_ecp_point R;
  mbedtls_mpi k;
  mbedtls_ecp_point_init(&R);
  mbedtls_mpi_init(&k);
  int e = mbedtls_mpi_lset(&k, 2);
  if (e == 0)
    e = mbedtls_ecp_mul(&ec->MESH__MBX(grp), &R, &k, &ec->MESH__MBX(grp).G, mbedtls_ctr_drbg_random,
                        &r->drbg);
  mbedtls_mpi_free(&k);
  mbedtls_ecp_point_free(&R);
  return e;
}

static int warm_chain(mbedtls_x509_crt *crt, mesh__rng_t *r) {
  for (; crt && crt->raw.p; crt = crt->next) {
    int e = warm_pk(&crt->pk, r);
    if (e)
      return e;
  }
  return 0;
}

static int warm(mesh__creds_t *c, mesh_status_t *st) {
  mesh__rng_t r;
  int rc = mesh__rng_init(&r, st);
  if (rc != MESH_OK)
    return rc;
  int e = warm_pk(&c->key, &r);
  if (e == 0)
    e = warm_chain(&c->all_roots, &r);
  for (size_t i = 0; e == 0 && i < c->nbundles; i++)
    e = warm_chain(&c->bundles[i].roots, &r);
  mesh__rng_free(&r);
  if (e)
    return mesh__fail(st, MESH_ERR_TLS, "cannot prepare EC keys (-0x%04x)",
                      (unsigned)-e);
  return MESH_OK;
}

static int map_bundles(mesh__creds_t *c, const mesh__bundle_map_t *map,
                       const char *origin, mesh_status_t *st);
static int der_bundle(mesh__creds_t *c, size_t i, const mesh__der_bundle_t *b,
                      const char *origin, mesh_status_t *st);

static int check_own(mesh__creds_t *c, const mesh__creds_src_t *src,
                     mesh_status_t *st) {
  const mesh__bundle_t *b = mesh__creds_bundle(c, c->td);
  if (!b && src->bundle_map)
    return mesh__fail(st, MESH_ERR_TRUST_DOMAIN,
                      "%s: no trust bundle for the SVID's own trust domain "
                      "\"%s\" in the trust bundle map %s",
                      src->cert, c->td, src->bundle_map);
  if (!b)
    return mesh__fail(st, MESH_ERR_TRUST_DOMAIN,
                      "%s: no trust bundle for the SVID's own trust domain "
                      "\"%s\" (set identity.bundle or identity.bundles)",
                      src->cert, c->td);
  uint32_t ignore = 0;
  if (src->allow_expired)
    ignore = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
  int rc = mesh__svid_verify(&c->chain, b, c->id, ignore, st);
  return rc == MESH_OK ? rc : with_prefix(st, rc, src->cert);
}

static int src_valid(const mesh__creds_src_t *src, mesh_status_t *st) {
  if (!src || !src->cert || !src->key)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "credentials need a certificate and a key file");
  if (!src->bundle && src->nbundles == 0 && !src->bundle_map)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "credentials need at least one trust bundle");
  for (size_t i = 0; i < src->nbundles; i++) {
    if (!src->bundle_tds[i] || !src->bundle_paths[i])
      return mesh__fail(st, MESH_ERR_INVALID_ARG, "bundle %zu is NULL", i);
    int rc = mesh__spiffe_td_validate(src->bundle_tds[i], st);
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

int mesh__creds_load(const mesh__creds_src_t *src, uint64_t generation,
                     mesh__creds_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (!out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "out must not be NULL");
  *out = NULL;
  int rc = src_valid(src, st);
  if (rc != MESH_OK)
    return rc;
  mesh__bundle_map_t map = {0};
  if (src->bundle_map)
    rc = mesh__bundle_map_load(src->bundle_map, &map, st);
  if (rc != MESH_OK)
    return rc;
  size_t nb = src->bundle_map ? map.n
                              : src->nbundles + (src->bundle ? 1 : 0);
  mesh__creds_t *c = creds_alloc(nb);
  if (!c) {
    mesh__bundle_map_free(&map);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  c->generation = generation;
  rc = load_chain(c, src->cert, st);
  if (rc == MESH_OK)
    rc = load_key(c, src->key, src->cert, st);
  if (rc == MESH_OK && !src->bundle_map)
    rc = load_bundles(c, src, st);
  if (rc == MESH_OK && src->bundle_map)
    rc = map_bundles(c, &map, src->bundle_map, st);
  mesh__bundle_map_free(&map);
  if (rc == MESH_OK)
    rc = check_own(c, src, st);
  if (rc == MESH_OK)
    rc = build_all_roots(c, st);
  if (rc == MESH_OK)
    rc = warm(c, st);
  if (rc != MESH_OK) {
    c->nbundles = nb; /* free every initialised slot */
    creds_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}

/* The bundles of a trust bundle map, checked as pushed DER bundles are. */
static int map_bundles(mesh__creds_t *c, const mesh__bundle_map_t *map,
                       const char *origin, mesh_status_t *st) {
  c->nbundles = 0; /* grows as bundles load: duplicates are seen */
  for (size_t i = 0; i < map->n; i++) {
    int rc = der_bundle(c, i, &map->v[i], origin, st);
    c->nbundles = i + 1;
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

/* ---- from DER (pushing sources) ------------------------------------------ */

static int der_crts(mbedtls_x509_crt *out, const uint8_t *p, size_t n,
                    const char *what, mesh_status_t *st) {
  if (!p || n == 0)
    return mesh__fail(st, MESH_ERR_PEM, "%s: empty", what);
  /* Concatenated DER: mbedTLS parses the first SEQUENCE and ignores what
   * follows; raw.len of the certificate it added says where the next one
   * starts. */
  size_t off = 0;
  while (off < n) {
    int e = mbedtls_x509_crt_parse_der(out, p + off, n - off);
    if (e)
      return mesh__fail(st, MESH_ERR_PEM,
                        "%s: malformed DER certificate at byte %zu (-0x%04x)",
                        what, off, (unsigned)-e);
    const mbedtls_x509_crt *last = out;
    while (last->next)
      last = last->next;
    off += last->raw.len;
  }
  return MESH_OK;
}

static int der_chain(mesh__creds_t *c, const mesh__creds_der_t *src,
                     mesh_status_t *st) {
  int rc = der_crts(&c->chain, src->chain, src->chain_len, src->origin, st);
  if (rc == MESH_OK)
    rc = mesh__svid_chain_check(&c->chain, c->id, sizeof c->id, st);
  if (rc != MESH_OK)
    return with_prefix(st, rc, src->origin);
  mesh_spiffe_id_parse(c->id, c->td, sizeof c->td, NULL, 0, NULL);
  c->not_before = x509_time_to_unix(&c->chain.valid_from);
  c->not_after = x509_time_to_unix(&c->chain.valid_to);
  int e = src->key && src->key_len
              ? mbedtls_pk_parse_key(&c->key, src->key, src->key_len, NULL,
                                     0 MESH__MBX_RNG)
              : -1;
  if (e)
    return mesh__fail(st, MESH_ERR_PEM, "%s: malformed private key (-0x%04x)",
                      src->origin, (unsigned)-e);
  if (mbedtls_pk_check_pair(&c->chain.pk, &c->key MESH__MBX_RNG) != 0)
    return mesh__fail(st, MESH_ERR_KEY_MISMATCH,
                      "%s: private key does not match the SVID %s",
                      src->origin, c->id);
  return MESH_OK;
}

/* Bundle i; c->nbundles == i (the ones before it are loaded). */
static int der_bundle(mesh__creds_t *c, size_t i, const mesh__der_bundle_t *b,
                      const char *origin, mesh_status_t *st) {
  char what[400];
  snprintf(what, sizeof what, "%s: bundle of \"%s\"", origin,
           b->td ? b->td : "");
  int rc = mesh__spiffe_td_validate(b->td, st);
  if (rc == MESH_OK && mesh__creds_bundle(c, b->td))
    rc = mesh__fail(st, MESH_ERR_CONFIG, "trust domain given twice");
  if (rc == MESH_OK) {
    mesh__strlcpy(c->bundles[i].td, b->td, sizeof c->bundles[i].td);
    rc = der_crts(&c->bundles[i].roots, b->der, b->len, what, st);
    if (rc != MESH_OK)
      return rc;
  }
  for (const mbedtls_x509_crt *r = &c->bundles[i].roots;
       rc == MESH_OK && r && r->raw.p; r = r->next)
    rc = mesh__svid_signing_check(r, st);
  return rc == MESH_OK ? rc : with_prefix(st, rc, what);
}

int mesh__creds_from_der(const mesh__creds_der_t *src, uint64_t generation,
                         mesh__creds_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (!out || !src || !src->origin || (src->nbundles && !src->bundles))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "mesh__creds_from_der: NULL");
  *out = NULL;
  mesh__creds_t *c = creds_alloc(src->nbundles);
  if (!c)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  c->nbundles = 0; /* grows as bundles load: duplicates are seen */
  c->generation = generation;
  int rc = der_chain(c, src, st);
  for (size_t i = 0; rc == MESH_OK && i < src->nbundles; i++) {
    rc = der_bundle(c, i, &src->bundles[i], src->origin, st);
    c->nbundles = i + 1;
  }
  if (rc == MESH_OK) {
    mesh__creds_src_t fake = {.cert = src->origin};
    rc = check_own(c, &fake, st);
  }
  if (rc == MESH_OK)
    rc = build_all_roots(c, st);
  if (rc == MESH_OK)
    rc = warm(c, st);
  if (rc != MESH_OK) {
    c->nbundles = src->nbundles; /* free every initialised slot */
    creds_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}

int mesh__creds_trust_from_der(const mesh__der_bundle_t *b, size_t n,
                               const char *origin, uint64_t generation,
                               mesh__creds_t **out, mesh_status_t *st) {
  mesh__ok(st);
  *out = NULL;
  if (!origin || (n && !b))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "mesh__creds_trust_from_der");
  if (n == 0)
    return mesh__fail(st, MESH_ERR_PARSE, "%s: no trust bundle", origin);
  mesh__creds_t *c = creds_alloc(n);
  if (!c)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  c->nbundles = 0; /* grows as bundles load: duplicates are seen */
  c->generation = generation;
  int rc = MESH_OK;
  for (size_t i = 0; rc == MESH_OK && i < n; i++) {
    rc = der_bundle(c, i, &b[i], origin, st);
    c->nbundles = i + 1;
  }
  if (rc == MESH_OK)
    rc = build_all_roots(c, st);
  if (rc != MESH_OK) {
    c->nbundles = n; /* free every initialised slot */
    creds_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}
