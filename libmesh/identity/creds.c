/* SPDX-License-Identifier: Apache-2.0 */
/* Loading one set of credentials (SVID chain, key, trust bundles) from PEM
 * files into an immutable, refcounted mesh__creds_t. */
#include "identity/pemfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void creds_free(mesh__creds_t *c) {
  if (!c)
    return;
  mesh__x509_chain_free(c->chain);
  mesh__x509_key_free(c->key);
  for (size_t i = 0; i < c->nbundles; i++)
    mesh__x509_chain_free(c->bundles[i].roots);
  free(c->bundles);
  mesh__x509_chain_free(c->all_roots);
  free(c);
}

static mesh__creds_t *creds_alloc(size_t nbundles) {
  mesh__creds_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  atomic_init(&c->refs, 1);
  c->chain = mesh__x509_chain_new();
  c->all_roots = mesh__x509_chain_new();
  c->bundles = calloc(nbundles ? nbundles : 1, sizeof *c->bundles);
  c->nbundles = nbundles;
  bool ok = c->chain && c->all_roots && c->bundles;
  for (size_t i = 0; ok && i < nbundles; i++)
    ok = (c->bundles[i].roots = mesh__x509_chain_new()) != NULL;
  if (!ok) {
    if (!c->bundles)
      c->nbundles = 0;
    creds_free(c);
    return NULL;
  }
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

/* Leaf validity into c (the chain holds a leaf: the SVID check passed). */
static void leaf_dates(mesh__creds_t *c) {
  const mesh__x509_t *leaf = mesh__x509_chain_at(c->chain, 0);
  c->not_before = mesh__x509_not_before(leaf);
  c->not_after = mesh__x509_not_after(leaf);
}

static int load_chain(mesh__creds_t *c, const char *path, mesh_status_t *st) {
  int rc = mesh__pem_load_crts(c->chain, path, st);
  if (rc != MESH_OK)
    return rc;
  rc = mesh__svid_chain_check(c->chain, c->id, sizeof c->id, st);
  if (rc != MESH_OK)
    return with_prefix(st, rc, path);
  mesh_spiffe_id_parse(c->id, c->td, sizeof c->td, NULL, 0, NULL);
  leaf_dates(c);
  return MESH_OK;
}

static int load_key(mesh__creds_t *c, const char *path, const char *cert,
                    mesh_status_t *st) {
  int rc = mesh__pem_load_key(&c->key, path, st);
  if (rc != MESH_OK)
    return rc;
  if (!mesh__x509_key_matches(c->key, mesh__x509_chain_at(c->chain, 0)))
    return mesh__fail(st, MESH_ERR_KEY_MISMATCH,
                      "%s: private key does not match the certificate in %s",
                      path, cert);
  return MESH_OK;
}

static int load_bundle(mesh__bundle_t *b, const char *td, const char *path,
                       mesh_status_t *st) {
  mesh__strlcpy(b->td, td, sizeof b->td);
  int rc = mesh__pem_load_crts(b->roots, path, st);
  if (rc != MESH_OK)
    return rc;
  for (size_t i = 0; i < mesh__x509_chain_len(b->roots); i++) {
    rc = mesh__svid_signing_check(mesh__x509_chain_at(b->roots, i), st);
    if (rc != MESH_OK) {
      char p[4200];
      snprintf(p, sizeof p, "%s: certificate #%zu", path, i + 1);
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

/* The union of every bundle (the TLS library's own trust store). */
static int build_all_roots(mesh__creds_t *c, mesh_status_t *st) {
  for (size_t i = 0; i < c->nbundles; i++) {
    const mesh__x509_chain_t *b = c->bundles[i].roots;
    for (size_t k = 0; k < mesh__x509_chain_len(b); k++)
      if (mesh__x509_chain_add(c->all_roots, mesh__x509_chain_at(b, k)))
        return mesh__fail(st, MESH_ERR_NOMEM, "cannot copy trust bundle");
  }
  return MESH_OK;
}

/* Whatever the library computes lazily (mbedTLS: EC comb tables) is
 * computed before the creds are published and shared. */
static int warm(mesh__creds_t *c, mesh_status_t *st) {
  int rc = mesh__x509_warm(c->key, c->all_roots, st);
  for (size_t i = 0; rc == MESH_OK && i < c->nbundles; i++)
    rc = mesh__x509_warm(NULL, c->bundles[i].roots, st);
  return rc;
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
    ignore = MESH__X509_EXPIRED | MESH__X509_FUTURE;
  int rc = mesh__svid_verify(c->chain, b, c->id, ignore, st);
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

static int der_crts(mesh__x509_chain_t *out, const uint8_t *p, size_t n,
                    const char *what, mesh_status_t *st) {
  if (!p || n == 0)
    return mesh__fail(st, MESH_ERR_PEM, "%s: empty", what);
  /* Concatenated DER: one certificate at a time. */
  size_t off = 0;
  while (off < n) {
    size_t used = 0;
    char e[160];
    if (mesh__x509_chain_parse_der1(out, p + off, n - off, &used, e,
                                    sizeof e) != 0)
      return mesh__fail(st, MESH_ERR_PEM,
                        "%s: malformed DER certificate at byte %zu: %s", what,
                        off, e);
    off += used;
  }
  return MESH_OK;
}

static int der_chain(mesh__creds_t *c, const mesh__creds_der_t *src,
                     mesh_status_t *st) {
  int rc = der_crts(c->chain, src->chain, src->chain_len, src->origin, st);
  if (rc == MESH_OK)
    rc = mesh__svid_chain_check(c->chain, c->id, sizeof c->id, st);
  if (rc != MESH_OK)
    return with_prefix(st, rc, src->origin);
  mesh_spiffe_id_parse(c->id, c->td, sizeof c->td, NULL, 0, NULL);
  leaf_dates(c);
  if (!src->key || !src->key_len)
    return mesh__fail(st, MESH_ERR_PEM, "%s: malformed private key: empty",
                      src->origin);
  rc = mesh__x509_key_parse(&c->key, src->key, src->key_len, false,
                            src->origin, st);
  if (rc != MESH_OK)
    return rc;
  if (!mesh__x509_key_matches(c->key, mesh__x509_chain_at(c->chain, 0)))
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
    rc = der_crts(c->bundles[i].roots, b->der, b->len, what, st);
    if (rc != MESH_OK)
      return rc;
  }
  const mesh__x509_chain_t *r = c->bundles[i].roots;
  for (size_t k = 0; rc == MESH_OK && k < mesh__x509_chain_len(r); k++)
    rc = mesh__svid_signing_check(mesh__x509_chain_at(r, k), st);
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
