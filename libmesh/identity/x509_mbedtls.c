/* SPDX-License-Identifier: Apache-2.0 */
/* The X.509 seam (x509_be.h) on mbedTLS 2.28 / 3.x: what pemfile.c,
 * svid.c, creds.c and views.c did with mbedTLS before the seam, moved. */
#include "identity/mbx.h"
#include "identity/x509_be.h"
#include "identity/x509_dn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>

struct mesh__x509_chain {
  mbedtls_x509_crt own;   /* the list, when the chain owns it */
  mbedtls_x509_crt *head; /* &own, or the wrapped list */
  bool wrapped;
  const mbedtls_x509_crt **v; /* index over the list */
  size_t n, cap;
};

struct mesh__x509_key {
  mbedtls_pk_context pk;
};

#define CRT(x) ((const mbedtls_x509_crt *)(const void *)(x))

void mesh__mbedtls_err(int err, char *buf, size_t len) {
  mbedtls_strerror(err, buf, len);
  /* mbedTLS texts contain " - " separators but no newlines; keep as is. */
}

/* ---- chains -------------------------------------------------------------- */

/* Rebuild the index after the list grew.  @return 0 or -1 (OOM). */
static int reindex(mesh__x509_chain_t *ch) {
  size_t n = 0;
  for (const mbedtls_x509_crt *c = ch->head; c && c->raw.p; c = c->next)
    n++;
  if (n > ch->cap) {
    const mbedtls_x509_crt **v = realloc(ch->v, n * sizeof *v);
    if (!v)
      return -1;
    ch->v = v;
    ch->cap = n;
  }
  n = 0;
  for (const mbedtls_x509_crt *c = ch->head; c && c->raw.p; c = c->next)
    ch->v[n++] = c;
  ch->n = n;
  return 0;
}

mesh__x509_chain_t *mesh__x509_chain_new(void) {
  mesh__x509_chain_t *ch = calloc(1, sizeof *ch);
  if (!ch)
    return NULL;
  mbedtls_x509_crt_init(&ch->own);
  ch->head = &ch->own;
  return ch;
}

void mesh__x509_chain_free(mesh__x509_chain_t *ch) {
  if (!ch)
    return;
  if (!ch->wrapped)
    mbedtls_x509_crt_free(&ch->own);
  free(ch->v);
  free(ch);
}

size_t mesh__x509_chain_len(const mesh__x509_chain_t *ch) {
  return ch ? ch->n : 0;
}

const mesh__x509_t *mesh__x509_chain_at(const mesh__x509_chain_t *ch,
                                        size_t i) {
  return ch && i < ch->n ? (const mesh__x509_t *)(const void *)ch->v[i]
                         : NULL;
}

int mesh__x509_chain_parse(mesh__x509_chain_t *ch, const unsigned char *buf,
                           size_t len, bool pem, const char *origin,
                           mesh_status_t *st) {
  (void)pem; /* mbedTLS tells PEM from DER itself */
  int r = mbedtls_x509_crt_parse(ch->head, buf, len);
  if (reindex(ch) != 0)
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", origin);
  if (r == 0)
    return MESH_OK;
  if (r > 0)
    return mesh__fail(st, MESH_ERR_PEM,
                      "%s: %d certificate%s could not be parsed", origin, r,
                      r > 1 ? "s" : "");
  char e[160];
  mesh__mbedtls_err(r, e, sizeof e);
  if (r == MBEDTLS_ERR_X509_ALLOC_FAILED)
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", origin);
  return mesh__fail(st, MESH_ERR_PEM, "%s: malformed certificate: %s", origin,
                    e);
}

int mesh__x509_chain_parse_der1(mesh__x509_chain_t *ch, const unsigned char *p,
                                size_t n, size_t *used, char *err,
                                size_t errlen) {
  /* mbedTLS parses the first SEQUENCE and ignores what follows; raw.len
   * of the certificate it added says where the next one starts. */
  int e = mbedtls_x509_crt_parse_der(ch->head, p, n);
  if (e) {
    mesh__mbedtls_err(e, err, errlen);
    return -1;
  }
  if (reindex(ch) != 0) {
    mesh__strlcpy(err, "out of memory", errlen);
    return -1;
  }
  *used = ch->v[ch->n - 1]->raw.len;
  return 0;
}

int mesh__x509_chain_add(mesh__x509_chain_t *ch, const mesh__x509_t *crt) {
  const mbedtls_x509_crt *c = CRT(crt);
  if (mbedtls_x509_crt_parse_der(ch->head, c->raw.p, c->raw.len) != 0)
    return -1;
  return reindex(ch);
}

long mesh__x509_chain_pem(const mesh__x509_chain_t *ch, char *buf,
                          size_t len) {
  size_t off = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < mesh__x509_chain_len(ch); i++) {
    size_t olen = 0;
    if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n",
                                 "-----END CERTIFICATE-----\n",
                                 ch->v[i]->raw.p, ch->v[i]->raw.len,
                                 (unsigned char *)buf + off, len - off,
                                 &olen) != 0) {
      buf[0] = '\0';
      return MESH_ERR_BUFFER;
    }
    off += olen - 1; /* olen counts the NUL */
  }
  return (long)off;
}

/* ---- one certificate ----------------------------------------------------- */

#define SAN_URI_TAG (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 6)

size_t mesh__x509_uri_sans(const mesh__x509_t *crt, char *first, size_t cap,
                           size_t *first_len) {
  size_t n = 0;
  if (first_len)
    *first_len = 0;
  for (const mbedtls_x509_sequence *s = &CRT(crt)->subject_alt_names; s;
       s = s->next) {
    if (!s->buf.p || s->buf.tag != SAN_URI_TAG)
      continue;
    if (n == 0 && first)
      memcpy(first, s->buf.p, s->buf.len < cap ? s->buf.len : cap);
    if (n == 0 && first_len)
      *first_len = s->buf.len;
    n++;
  }
  return n;
}

bool mesh__x509_is_ca(const mesh__x509_t *crt) {
  return CRT(crt)->MESH__MBX(ca_istrue) != 0;
}

bool mesh__x509_key_usage(const mesh__x509_t *crt, unsigned *bits) {
  const mbedtls_x509_crt *c = CRT(crt);
  *bits = 0;
  if (!(c->MESH__MBX(ext_types) & MBEDTLS_X509_EXT_KEY_USAGE))
    return false;
  *bits = c->MESH__MBX(key_usage) &
          (MESH__KU_DIGITAL_SIGNATURE | MESH__KU_KEY_CERT_SIGN |
           MESH__KU_CRL_SIGN);
  return true;
}

bool mesh__x509_ext_key_usage(const mesh__x509_t *crt, unsigned *bits) {
  const mbedtls_x509_crt *c = CRT(crt);
  *bits = 0;
  if (!(c->MESH__MBX(ext_types) & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE))
    return false;
  /* anyExtendedKeyUsage passes both checks */
  if (mbedtls_x509_crt_check_extended_key_usage(
          c, MBEDTLS_OID_SERVER_AUTH,
          MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) == 0)
    *bits |= MESH__EKU_SERVER;
  if (mbedtls_x509_crt_check_extended_key_usage(
          c, MBEDTLS_OID_CLIENT_AUTH,
          MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) == 0)
    *bits |= MESH__EKU_CLIENT;
  return true;
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

int64_t mesh__x509_not_before(const mesh__x509_t *crt) {
  return x509_time_to_unix(&CRT(crt)->valid_from);
}

int64_t mesh__x509_not_after(const mesh__x509_t *crt) {
  return x509_time_to_unix(&CRT(crt)->valid_to);
}

int mesh__x509_serial_text(const mesh__x509_t *crt, char *buf, size_t len) {
  return mbedtls_x509_serial_gets(buf, len, &CRT(crt)->serial) >= 0 ? 0 : -1;
}

int mesh__x509_dn_text(const mesh__x509_t *crt, bool issuer, char *buf,
                       size_t len) {
  const mbedtls_x509_name *n =
      issuer ? &CRT(crt)->issuer : &CRT(crt)->subject;
  size_t off = 0;
  bool first = true, merged = false, ok = true;
  buf[0] = '\0';
  for (; ok && n; n = n->next) {
    if (!n->oid.p) {
      merged = false;
      continue;
    }
    ok = mesh__dn_append(buf, len, &off, first, merged, n->oid.p, n->oid.len,
                         n->val.p, n->val.len);
    first = false;
    merged = n->MESH__MBX(next_merged) != 0;
  }
  return ok ? 0 : -1;
}

int mesh__x509_der(const mesh__x509_t *crt, unsigned char **der,
                   size_t *len) {
  const mbedtls_x509_crt *c = CRT(crt);
  *der = malloc(c->raw.len ? c->raw.len : 1);
  if (!*der)
    return -1;
  memcpy(*der, c->raw.p, c->raw.len);
  *len = c->raw.len;
  return 0;
}

/* v3_ext is the [3] field's content: SEQUENCE OF Extension ::= SEQUENCE {
 * extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }.
 * mbedTLS has already checked that it decodes. */
int mesh__x509_ext_walk(const mesh__x509_t *crt, mesh__x509_ext_cb cb,
                        void *arg) {
  const mbedtls_x509_buf *v = &CRT(crt)->v3_ext; /* public in 2.28 and 3.x */
  if (!v->p || v->len == 0) /* a v1/v2 certificate: no extensions */
    return 0;
  unsigned char *p = v->p, *end = v->p + v->len;
  size_t len;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
                                              MBEDTLS_ASN1_SEQUENCE) != 0)
    return 0;
  end = p + len;
  while (p < end) {
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
                                                MBEDTLS_ASN1_SEQUENCE) != 0)
      return 0;
    unsigned char *next = p + len, *oid;
    size_t oidlen;
    if (mbedtls_asn1_get_tag(&p, next, &oidlen, MBEDTLS_ASN1_OID) != 0)
      return 0;
    oid = p;
    p += oidlen;
    int crit = 0;
    if (mbedtls_asn1_get_bool(&p, next, &crit) != 0)
      crit = 0; /* DEFAULT FALSE: absent */
    int r = cb(arg, oid, oidlen, crit != 0);
    if (r)
      return r;
    p = next;
  }
  return 0;
}

bool mesh__x509_same(const mesh__x509_t *a, const mesh__x509_t *b) {
  return CRT(a)->raw.len == CRT(b)->raw.len &&
         memcmp(CRT(a)->raw.p, CRT(b)->raw.p, CRT(a)->raw.len) == 0;
}

/* ---- keys ---------------------------------------------------------------- */

int mesh__x509_key_parse(mesh__x509_key_t **out, const unsigned char *buf,
                         size_t len, bool pem, const char *origin,
                         mesh_status_t *st) {
  (void)pem;
  *out = NULL;
  mesh__x509_key_t *k = calloc(1, sizeof *k);
  if (!k)
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", origin);
  mbedtls_pk_init(&k->pk);
  int r = mbedtls_pk_parse_key(&k->pk, buf, len, NULL, 0 MESH__MBX_RNG);
  if (r == 0) {
    *out = k;
    return MESH_OK;
  }
  mesh__x509_key_free(k);
  char e[160];
  mesh__mbedtls_err(r, e, sizeof e);
  if (r == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
    return mesh__fail(st, MESH_ERR_PEM,
                      "%s: private key is encrypted (not supported)", origin);
  if (r == MBEDTLS_ERR_PK_ALLOC_FAILED)
    return mesh__fail(st, MESH_ERR_NOMEM, "%s: out of memory", origin);
  return mesh__fail(st, MESH_ERR_PEM, "%s: malformed private key: %s", origin,
                    e);
}

void mesh__x509_key_free(mesh__x509_key_t *k) {
  if (!k)
    return;
  mbedtls_pk_free(&k->pk);
  free(k);
}

bool mesh__x509_key_matches(const mesh__x509_key_t *k,
                            const mesh__x509_t *crt) {
  /* mbedTLS takes non-const pointers but does not modify them */
  return mbedtls_pk_check_pair((mbedtls_pk_context *)&CRT(crt)->pk,
                               (mbedtls_pk_context *)&k->pk MESH__MBX_RNG) ==
         0;
}

/* ---- verification -------------------------------------------------------- */

int mesh__x509_verify(const mesh__x509_chain_t *chain,
                      const mesh__x509_chain_t *roots, uint32_t *flags,
                      char *err, size_t errlen) {
  *flags = 0;
  /* mbedTLS takes non-const pointers but does not modify the chains
   * (the roots' EC tables are precomputed at load: mesh__x509_warm). */
  int r = mbedtls_x509_crt_verify(chain->head, roots->head, NULL, NULL, flags,
                                  NULL, NULL);
  if (r != 0 && *flags == 0) {
    mesh__mbedtls_err(r, err, errlen);
    return -1;
  }
  return 0;
}

/* mbedTLS (FIXED_POINT_OPTIM) fills an EC group's comb table for the
 * base point lazily, inside the first multiplication, by writing to the
 * group.  Published creds are shared by concurrent handshakes, so that
 * first write would race: compute it here, before anyone else sees it. */
static int warm_pk(const mbedtls_pk_context *pk, mesh__rng_t *r) {
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
    e = mbedtls_ecp_mul(&ec->MESH__MBX(grp), &R, &k, &ec->MESH__MBX(grp).G,
                        mbedtls_ctr_drbg_random, &r->drbg);
  mbedtls_mpi_free(&k);
  mbedtls_ecp_point_free(&R);
  return e;
}

int mesh__x509_warm(const mesh__x509_key_t *key,
                    const mesh__x509_chain_t *chain, mesh_status_t *st) {
  mesh__rng_t r;
  int rc = mesh__rng_init(&r, st);
  if (rc != MESH_OK)
    return rc;
  int e = key ? warm_pk(&key->pk, &r) : 0;
  for (size_t i = 0; e == 0 && i < mesh__x509_chain_len(chain); i++)
    e = warm_pk(&chain->v[i]->pk, &r);
  mesh__rng_free(&r);
  if (e)
    return mesh__fail(st, MESH_ERR_TLS, "cannot prepare EC keys (-0x%04x)",
                      (unsigned)-e);
  return MESH_OK;
}

/* ---- the TLS backend's view ---------------------------------------------- */

void *mesh__x509_chain_native(const mesh__x509_chain_t *ch) {
  return ch ? ch->head : NULL;
}

void *mesh__x509_key_native(const mesh__x509_key_t *k) {
  return k ? (void *)&k->pk : NULL;
}

const mesh__x509_t *mesh__x509_from_native(const void *crt) {
  return (const mesh__x509_t *)crt;
}

mesh__x509_chain_t *mesh__x509_chain_wrap(void *native) {
  mesh__x509_chain_t *ch = mesh__x509_chain_new();
  if (!ch)
    return NULL;
  ch->wrapped = true;
  ch->head = native ? native : &ch->own;
  if (reindex(ch) != 0) {
    mesh__x509_chain_free(ch);
    return NULL;
  }
  return ch;
}

int mesh__x509_chain_add_native(mesh__x509_chain_t *ch, void *crt) {
  return mesh__x509_chain_add(ch, mesh__x509_from_native(crt));
}

/* ---- RNG (the dev CA's, the warm-up's) ----------------------------------- */

int mesh__rng_init(mesh__rng_t *r, mesh_status_t *st) {
  mbedtls_entropy_init(&r->entropy);
  mbedtls_ctr_drbg_init(&r->drbg);
  static const unsigned char pers[] = "libmesh identity";
  int e = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
                                pers, sizeof pers - 1);
  if (e == 0)
    return MESH_OK;
  char t[160];
  mesh__mbedtls_err(e, t, sizeof t);
  return mesh__fail(st, MESH_ERR_TLS, "cannot seed the RNG: %s", t);
}

void mesh__rng_free(mesh__rng_t *r) {
  mbedtls_ctr_drbg_free(&r->drbg);
  mbedtls_entropy_free(&r->entropy);
}

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>

int mesh__mbx_rng(void *p, unsigned char *out, size_t len) {
  (void)p;
  if (psa_crypto_init() != PSA_SUCCESS)
    return -1;
  return psa_generate_random(out, len) == PSA_SUCCESS ? 0 : -1;
}
#endif
