/* SPDX-License-Identifier: Apache-2.0 */
/* Client credentials per service, set by a part above (xds: the cluster's
 * UpstreamTlsContext, gRFC A29): dials labelled with that service use the
 * given generation (its certificate and trust) instead of the identity's,
 * and accept only a server whose URI SAN (its SPIFFE ID: libmesh SVIDs
 * carry exactly one) passes one of the SAN matchers, when any is given
 * (match_subject_alt_names: exact, prefix, suffix, contains, optionally
 * ignoring case).  A dial reads the table under a mutex, and only when
 * some service has an entry (a flag read first): dials are per
 * connection, pooled by the call layer, not per request. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct mesh__tls_svcc {
  char *service;
  char *tag;                 /* the setter's summary of what it set */
  mesh__tlsgen_t *gen;       /* reference held, or NULL: the identity's */
  mesh__tls_san_t *san;
  size_t nsan;
};

void mesh__tls_san_free(mesh__tls_san_t *v, size_t n) {
  for (size_t i = 0; v && i < n; i++)
    free(v[i].value);
  free(v);
}

static int san_copy(const mesh__tls_san_t *in, size_t n, mesh__tls_san_t **out) {
  *out = NULL;
  if (!n)
    return MESH_OK;
  mesh__tls_san_t *v = calloc(n, sizeof *v);
  if (!v)
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < n; i++) {
    v[i] = in[i];
    v[i].value = strdup(in[i].value ? in[i].value : "");
    if (!v[i].value) {
      mesh__tls_san_free(v, i);
      return MESH_ERR_NOMEM;
    }
  }
  *out = v;
  return MESH_OK;
}

static void entry_fini(struct mesh__tls_svcc *e) {
  free(e->service);
  free(e->tag);
  mesh__tlsgen_release(e->gen);
  mesh__tls_san_free(e->san, e->nsan);
}

void mesh__tls_svcc_fini(mesh__tls_t *t) {
  for (size_t i = 0; i < t->nsvcc; i++)
    entry_fini(&t->svcc[i]);
  free(t->svcc);
  t->svcc = NULL;
  t->nsvcc = 0;
}

static struct mesh__tls_svcc *find(mesh__tls_t *t, const char *service) {
  for (size_t i = 0; i < t->nsvcc; i++)
    if (strcmp(t->svcc[i].service, service) == 0)
      return &t->svcc[i];
  return NULL;
}

int mesh__tls_svc_creds_set(mesh_t *m, const char *service, const char *tag,
                            mesh__tlsgen_t *gen, const mesh__tls_san_t *san,
                            size_t nsan) {
  mesh__tls_t *t = m ? m->tls : NULL;
  if (!t || !service) {
    mesh__tlsgen_release(gen);
    return MESH_ERR_INVALID_ARG;
  }
  struct mesh__tls_svcc e = {.gen = gen, .nsan = nsan};
  e.service = strdup(service);
  e.tag = strdup(tag ? tag : "");
  if (!e.service || !e.tag || san_copy(san, nsan, &e.san) != MESH_OK) {
    entry_fini(&e);
    return MESH_ERR_NOMEM;
  }
  pthread_mutex_lock(&t->svcc_mu);
  struct mesh__tls_svcc *old = find(t, service), drop = {0};
  int rc = MESH_OK;
  if (old) {
    drop = *old;
    *old = e;
  } else {
    struct mesh__tls_svcc *v =
        realloc(t->svcc, (t->nsvcc + 1) * sizeof *t->svcc);
    if (v) {
      t->svcc = v;
      t->svcc[t->nsvcc++] = e;
    } else {
      drop = e;
      rc = MESH_ERR_NOMEM;
    }
  }
  atomic_store(&t->has_svcc, t->nsvcc > 0);
  pthread_mutex_unlock(&t->svcc_mu);
  entry_fini(&drop);
  return rc;
}

bool mesh__tls_svc_creds_tagged(mesh_t *m, const char *service,
                                const char *tag) {
  mesh__tls_t *t = m->tls;
  pthread_mutex_lock(&t->svcc_mu);
  const struct mesh__tls_svcc *e = find(t, service);
  bool same = e && strcmp(e->tag, tag) == 0;
  pthread_mutex_unlock(&t->svcc_mu);
  return same;
}

int mesh__tls_svc_creds_get(mesh_t *m, const char *service,
                            mesh__tlsgen_t **gen, mesh__tls_san_t **san,
                            size_t *nsan) {
  mesh__tls_t *t = m->tls;
  *gen = NULL;
  *san = NULL;
  *nsan = 0;
  if (!service || !atomic_load(&t->has_svcc))
    return MESH_OK;
  int rc = MESH_OK;
  pthread_mutex_lock(&t->svcc_mu);
  const struct mesh__tls_svcc *e = find(t, service);
  if (e) {
    rc = san_copy(e->san, e->nsan, san);
    if (rc == MESH_OK) {
      *nsan = e->nsan;
      *gen = e->gen;
      if (*gen)
        atomic_fetch_add(&(*gen)->refs, 1);
    }
  }
  pthread_mutex_unlock(&t->svcc_mu);
  return rc;
}

static bool has_suffix(const char *s, const char *x, bool icase) {
  size_t a = strlen(s), b = strlen(x);
  if (b > a)
    return false;
  return icase ? strcasecmp(s + a - b, x) == 0 : strcmp(s + a - b, x) == 0;
}

static bool contains(const char *s, const char *x, bool icase) {
  size_t b = strlen(x);
  for (const char *p = s; *p; p++)
    if ((icase ? strncasecmp(p, x, b) : strncmp(p, x, b)) == 0)
      return true;
  return !*x;
}

bool mesh__tls_san_match(const mesh__tls_san_t *v, size_t n, const char *id) {
  if (!n)
    return true;
  for (size_t i = 0; i < n; i++) {
    const char *x = v[i].value;
    bool ic = v[i].ignore_case, ok = false;
    switch (v[i].kind) {
    case MESH__SAN_EXACT:
      ok = ic ? strcasecmp(id, x) == 0 : strcmp(id, x) == 0;
      break;
    case MESH__SAN_PREFIX:
      ok = ic ? strncasecmp(id, x, strlen(x)) == 0
              : strncmp(id, x, strlen(x)) == 0;
      break;
    case MESH__SAN_SUFFIX:
      ok = has_suffix(id, x, ic);
      break;
    case MESH__SAN_CONTAINS:
      ok = contains(id, x, ic);
      break;
    default:
      break;
    }
    if (ok)
      return true;
  }
  return false;
}

/* Replace e's generation with gen if e still carries tag; the generation
 * that is no longer used is returned for release outside the lock. */
static mesh__tlsgen_t *swap_gen(mesh__tls_t *t, const char *service,
                                const char *tag, mesh__tlsgen_t *gen,
                                bool *done) {
  pthread_mutex_lock(&t->svcc_mu);
  struct mesh__tls_svcc *e = find(t, service);
  *done = e && strcmp(e->tag, tag) == 0;
  if (*done) {
    mesh__tlsgen_t *old = e->gen;
    e->gen = gen;
    gen = old;
  }
  pthread_mutex_unlock(&t->svcc_mu);
  return gen;
}

size_t mesh__tls_svc_creds_regen(mesh_t *m, mesh__tls_svc_regen_fn fn,
                                 void *user) {
  mesh__tls_t *t = m ? m->tls : NULL;
  if (!t || !fn || !atomic_load(&t->has_svcc))
    return 0;
  /* a snapshot of (service, tag): fn reads files, not under the lock */
  pthread_mutex_lock(&t->svcc_mu);
  size_t n = t->nsvcc, k = 0, done = 0;
  char **v = calloc(2 * (n ? n : 1), sizeof *v);
  for (size_t i = 0; v && i < n; i++) {
    v[2 * i] = strdup(t->svcc[i].service);
    v[2 * i + 1] = strdup(t->svcc[i].tag);
  }
  pthread_mutex_unlock(&t->svcc_mu);
  for (; v && k < n; k++) {
    if (!v[2 * k] || !v[2 * k + 1])
      continue;
    mesh__tlsgen_t *gen = fn(m, v[2 * k], v[2 * k + 1], user);
    if (!gen)
      continue;
    bool ok;
    mesh__tlsgen_release(swap_gen(t, v[2 * k], v[2 * k + 1], gen, &ok));
    done += ok;
  }
  for (size_t i = 0; v && i < 2 * n; i++)
    free(v[i]);
  free(v);
  return done;
}
