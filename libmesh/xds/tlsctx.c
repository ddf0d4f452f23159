/* SPDX-License-Identifier: Apache-2.0 */
/* A cluster's UpstreamTlsContext (gRFC A29) on the client side: the
 * certificate provider instances it names choose the certificate a
 * service's dials present and the bundle they trust (provcreds.c), and
 * its match_subject_alt_names (exact, prefix, suffix, contains; regex is
 * refused) must pass the server's URI SAN, i.e. its SPIFFE ID.  Handed to
 * tls as the service's own credentials (tls/svccreds.c); a cluster
 * without a TLS context dials with the mesh identity (libmesh is always
 * mTLS).  A service whose route splits among clusters takes the first
 * cluster's context (per-cluster credentials inside one service would
 * need the dial to know the picked host's cluster: not done). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"
#include "xds/proto/tls.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

void mesh__xds_san_free(mesh__xds_san_t *v, size_t n) {
  for (size_t i = 0; v && i < n; i++)
    free(v[i].value);
  free(v);
}

int mesh__xds_sans(const void *vcv, mesh__xds_san_t **san, size_t *nsan,
                   why_t *w) {
  const Meshxds__CertificateValidationContext *cv = vcv;
  size_t n = cv ? cv->n_match_subject_alt_names : 0;
  if (!n)
    return 0;
  if (!san)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "match_subject_alt_names is not "
                  "supported on a server (DownstreamTlsContext)");
  mesh__xds_san_t *v = calloc(n, sizeof *v);
  if (!v)
    return MESH_ERR_NOMEM;
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    const Meshxds__StringMatcher *m = cv->match_subject_alt_names[i];
    const char *x = NULL;
    switch (m->match_pattern_case) {
    case MESHXDS__STRING_MATCHER__MATCH_PATTERN_EXACT:
      v[i].kind = MESH__SAN_EXACT;
      x = m->exact;
      break;
    case MESHXDS__STRING_MATCHER__MATCH_PATTERN_PREFIX:
      v[i].kind = MESH__SAN_PREFIX;
      x = m->prefix;
      break;
    case MESHXDS__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
      v[i].kind = MESH__SAN_SUFFIX;
      x = m->suffix;
      break;
    case MESHXDS__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
      v[i].kind = MESH__SAN_CONTAINS;
      x = m->contains;
      break;
    case MESHXDS__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
      rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "match_subject_alt_names[%zu]: "
                  "safe_regex is not supported", i);
      break;
    default:
      rc = REFUSE(w, MESH_ERR_CONFIG, "match_subject_alt_names[%zu]: no "
                  "match pattern", i);
      break;
    }
    v[i].ignore_case = m->ignore_case;
    if (!rc) {
      v[i].value = strdup(x ? x : "");
      rc = v[i].value ? 0 : MESH_ERR_NOMEM;
    }
  }
  if (rc) {
    mesh__xds_san_free(v, n);
    return rc;
  }
  mesh__xds_san_free(*san, *nsan); /* the latest validation context's */
  *san = v;
  *nsan = n;
  return 0;
}

/* "LEN:certLEN:ca|kind:icase:value|..." : what decides the credentials
 * (the instance names length-prefixed so that rotation can read them
 * back, whatever characters they hold). */
static char *tag_of(const mesh__xds_cds_t *c) {
  size_t cap = 64, k = 0;
  cap += c->tls_cert_instance ? strlen(c->tls_cert_instance) : 0;
  cap += c->tls_ca_instance ? strlen(c->tls_ca_instance) : 0;
  for (size_t i = 0; i < c->nsan; i++)
    cap += strlen(c->san[i].value) + 16;
  char *t = malloc(cap);
  if (!t)
    return NULL;
  const char *ce = c->tls_cert_instance ? c->tls_cert_instance : "";
  const char *ca = c->tls_ca_instance ? c->tls_ca_instance : "";
  k += (size_t)snprintf(t, cap, "%zu:%s%zu:%s", strlen(ce), ce, strlen(ca),
                        ca);
  for (size_t i = 0; i < c->nsan && k < cap; i++)
    k += (size_t)snprintf(t + k, cap - k, "|%d:%d:%s", c->san[i].kind,
                          c->san[i].ignore_case, c->san[i].value);
  return t;
}

int mesh__xds_cluster_tls_load(mesh_t *m, const char *service,
                               const mesh__xds_cds_t *c, bool loud,
                               mesh_status_t *st) {
  mesh__ok(st);
  const mesh__xds_bootstrap_t *b = mesh__xds_boot_of(m);
  char *tag = tag_of(c);
  if (!tag || !b || !m->tls || mesh__tls_svc_creds_tagged(m, service, tag)) {
    free(tag);
    return tag ? MESH_OK : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  mesh__tlsgen_t *gen = NULL;
  if (c->tls_cert_instance &&
      mesh__xds_prov_gen(m, b, c->tls_cert_instance, c->tls_ca_instance, &gen,
                         st) != MESH_OK) {
    /* the dials keep what they had */
    if (loud)
      mesh__log(m, MESH_LOG_ERROR, "xds_cluster_tls", "service=%s cluster=%s "
                "state=kept error=\"%s\"", service, c->name, st->message);
    free(tag);
    return st->code;
  }
  mesh__tls_san_t *san = c->nsan ? calloc(c->nsan, sizeof *san) : NULL;
  for (size_t i = 0; san && i < c->nsan; i++)
    san[i] = (mesh__tls_san_t){.kind = c->san[i].kind,
                               .ignore_case = c->san[i].ignore_case,
                               .value = c->san[i].value};
  int rc = c->nsan && !san ? MESH_ERR_NOMEM
                           : mesh__tls_svc_creds_set(m, service, tag, gen, san,
                                                     c->nsan);
  if (c->nsan && !san)
    mesh__tlsgen_release(gen);
  free(san); /* the values were borrowed: set() copies them */
  mesh__log(m, rc ? MESH_LOG_ERROR : MESH_LOG_INFO, "xds_cluster_tls",
            "service=%s cluster=%s state=%s cert_instance=%s ca_instance=%s "
            "san_matchers=%zu", service, c->name, rc ? "kept" : "applied",
            c->tls_cert_instance ? c->tls_cert_instance : "(identity)",
            c->tls_ca_instance ? c->tls_ca_instance : "(identity)", c->nsan);
  free(tag);
  return rc ? mesh__fail(st, rc, "%s", mesh_strerror(rc)) : MESH_OK;
}

void mesh__xds_cluster_tls(mesh_t *m, const char *service,
                           const mesh__xds_cds_t *c) {
  mesh_status_t st;
  int rc = mesh__xds_cluster_tls_load(m, service, c, true, &st);
  /* files that did not load: retried every refresh_interval (provwatch.c)
   * until they do or another cluster update replaces this one */
  bool retry = rc != MESH_OK && rc != MESH_ERR_NOMEM && rc != MESH_ERR_CONFIG;
  mesh__xds_provwatch_pend(m, service, retry ? c : NULL);
}

/* One length-prefixed name of a tag at *p into out ("" when empty). */
static bool tag_name(const char **p, char *out, size_t cap) {
  char *end;
  unsigned long n = strtoul(*p, &end, 10);
  if (*end != ':' || n >= cap || strlen(end + 1) < n)
    return false;
  memcpy(out, end + 1, n);
  out[n] = '\0';
  *p = end + 1 + n;
  return true;
}

struct rot {
  const char *inst;
  bool loud;
  int rc;           /* the first failure */
  mesh_status_t st;
};

/* A service whose credentials come from instance inst (user): new ones
 * from its files, or NULL (not concerned, or kept: logged if loud). */
static mesh__tlsgen_t *regen(mesh_t *m, const char *service, const char *tag,
                             void *user) {
  struct rot *r = user;
  const char *inst = r->inst, *p = tag;
  char ce[256], ca[256];
  if (!tag_name(&p, ce, sizeof ce) || !tag_name(&p, ca, sizeof ca) || !*ce ||
      (strcmp(ce, inst) && strcmp(*ca ? ca : ce, inst)))
    return NULL;
  mesh__tlsgen_t *gen = NULL;
  mesh_status_t st;
  int rc = mesh__xds_prov_gen(m, mesh__xds_boot_of(m), ce, *ca ? ca : NULL,
                              &gen, &st);
  if (rc != MESH_OK) {
    /* the dials keep the last good credentials */
    if (r->loud)
      mesh__log(m, MESH_LOG_ERROR, "xds_cluster_tls", "service=%s "
                "instance=%s state=kept error=\"%s\"", service, inst,
                st.message);
    if (r->rc == MESH_OK) {
      r->rc = rc;
      r->st = st;
    }
    return NULL;
  }
  return gen;
}

int mesh__xds_cluster_rotate(mesh_t *m, const char *inst, bool loud,
                             mesh_status_t *st) {
  struct rot r = {.inst = inst, .loud = loud, .rc = MESH_OK};
  size_t n = mesh__tls_svc_creds_regen(m, regen, &r);
  if (n)
    mesh__log(m, MESH_LOG_INFO, "xds_cluster_tls", "instance=%s "
              "state=rotated services=%zu", inst, n);
  if (r.rc != MESH_OK)
    return mesh__fail(st, r.rc, "%s", r.st.message);
  mesh__ok(st);
  return MESH_OK;
}
