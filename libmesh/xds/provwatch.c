/* SPDX-License-Identifier: Apache-2.0 */
/* Rotation of the certificate provider instances that filter chains and
 * clusters name (gRFC A29 file_watcher: the files are re-read every
 * refresh_interval; new handshakes use the new files, connections in
 * flight keep theirs).  Each bootstrap instance's files are watched with
 * identity's file watch (mesh__fwatch_*: the same stat() signatures as
 * the identity's own files); the identity's own instance (identity
 * source "xds", certprov.c) is already watched by identity, so its
 * rotations arrive through mesh__identity_on_change instead (its watch
 * here only retries failures).  A change rebuilds the credentials of
 * every server chain (server.c) and every service (tlsctx.c) naming the
 * instance; files that do not load keep the last good credentials.
 *
 * Failures are retried every refresh_interval, changed or not, as gRPC's
 * watcher re-reads its files: a rotation that failed, a Listener refused
 * because its instances did not load (server.c keeps it and applies it
 * once they do) and a cluster whose instances did not load when it was
 * applied (kept here, "pend").  One line per distinct failure of an
 * instance (state=retrying kind=CODE), one when it loads again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

typedef struct inst {
  mesh__xds_pw_t *p;
  const char *name;  /* the bootstrap's (outlives the watch) */
  mesh__fwatch_t *w; /* NULL: no files */
  bool own;          /* the identity's instance: rotations come from it */
  int64_t refresh_ms;
  /* under p->mu */
  bool failed;
  unsigned retries;
  char last[256]; /* the failure last logged */
} inst_t;

/* A cluster whose instances did not load when applied (tlsctx.c). */
typedef struct pend {
  char *service;
  mesh__xds_cds_t c; /* name, instances, SAN matchers only */
} pend_t;

struct mesh__xds_pw {
  pthread_mutex_t mu; /* pend, and the insts' failure state */
  inst_t *v;
  size_t n;
  pend_t *pend;
  size_t npend;
};

static void pend_fini(pend_t *e) {
  free(e->service);
  free(e->c.name);
  free(e->c.tls_cert_instance);
  free(e->c.tls_ca_instance);
  mesh__xds_san_free(e->c.san, e->c.nsan);
}

static char *dup0(const char *s) { return s ? strdup(s) : NULL; }

static bool pend_copy(pend_t *e, const char *service, const mesh__xds_cds_t *c) {
  *e = (pend_t){.service = strdup(service), .c.name = dup0(c->name),
                .c.tls_cert_instance = dup0(c->tls_cert_instance),
                .c.tls_ca_instance = dup0(c->tls_ca_instance)};
  bool ok = e->service && e->c.name && e->c.tls_cert_instance &&
            (!c->tls_ca_instance || e->c.tls_ca_instance);
  if (ok && c->nsan && !(e->c.san = calloc(c->nsan, sizeof *e->c.san)))
    ok = false;
  for (size_t i = 0; ok && i < c->nsan; i++) {
    e->c.san[i] = c->san[i];
    e->c.san[i].value = strdup(c->san[i].value);
    e->c.nsan = i + 1;
    ok = e->c.san[i].value != NULL;
  }
  if (!ok)
    pend_fini(e);
  return ok;
}

static bool pend_names(const pend_t *e, const char *inst) {
  const char *ca = e->c.tls_ca_instance ? e->c.tls_ca_instance
                                        : e->c.tls_cert_instance;
  return !strcmp(e->c.tls_cert_instance, inst) || !strcmp(ca, inst);
}

static mesh__xds_pw_t *pw(mesh_t *m) { return mesh__xds_pw_of(m); }

static inst_t *find(mesh__xds_pw_t *p, const char *name) {
  for (size_t i = 0; p && name && i < p->n; i++)
    if (!strcmp(p->v[i].name, name))
      return &p->v[i];
  return NULL;
}

void mesh__xds_provwatch_retry(mesh_t *m, const char *inst) {
  inst_t *in = find(pw(m), inst);
  if (in)
    mesh__fwatch_retry(in->w);
}

void mesh__xds_provwatch_pend(mesh_t *m, const char *service,
                              const mesh__xds_cds_t *c) {
  mesh__xds_pw_t *p = pw(m);
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < p->npend; i++)
    if (!strcmp(p->pend[i].service, service)) { /* the newest update wins */
      pend_fini(&p->pend[i]);
      p->pend[i] = p->pend[--p->npend];
      break;
    }
  bool add = c && c->tls_cert_instance;
  pend_t *v = add ? realloc(p->pend, (p->npend + 1) * sizeof *v) : NULL;
  if (v) {
    p->pend = v;
    if (pend_copy(&v[p->npend], service, c))
      p->npend++;
  }
  pthread_mutex_unlock(&p->mu);
  if (add) {
    mesh__xds_provwatch_retry(m, c->tls_cert_instance);
    mesh__xds_provwatch_retry(m, c->tls_ca_instance);
  }
}

/* The clusters waiting for inst, loaded again; the first failure. */
static int pend_retry(mesh_t *m, mesh__xds_pw_t *p, const char *inst,
                      bool loud, mesh_status_t *st) {
  int first = MESH_OK;
  mesh_status_t e;
  pthread_mutex_lock(&p->mu); /* loads under it: nothing here calls back */
  for (size_t i = 0; i < p->npend;) {
    pend_t *x = &p->pend[i];
    if (!pend_names(x, inst)) {
      i++;
      continue;
    }
    int rc = mesh__xds_cluster_tls_load(m, x->service, &x->c, loud, &e);
    if (rc == MESH_OK) {
      pend_fini(x);
      p->pend[i] = p->pend[--p->npend];
      continue;
    }
    if (first == MESH_OK) {
      first = rc;
      *st = e;
    }
    i++;
  }
  pthread_mutex_unlock(&p->mu);
  return first;
}

/* One line per distinct failure of an instance, one when it loads. */
static void report(mesh_t *m, inst_t *in, int rc, const mesh_status_t *st,
                   bool changed) {
  mesh__xds_pw_t *p = in->p;
  pthread_mutex_lock(&p->mu);
  bool was = in->failed, say;
  unsigned n = in->retries;
  if (rc == MESH_OK) {
    say = was;
    in->failed = false;
    in->retries = 0;
    in->last[0] = '\0';
  } else {
    say = changed || !was || strcmp(in->last, st->message);
    in->failed = true;
    in->retries += was;
    mesh__strlcpy(in->last, st->message, sizeof in->last);
  }
  pthread_mutex_unlock(&p->mu);
  if (!say)
    return;
  if (rc == MESH_OK)
    mesh__log(m, MESH_LOG_INFO, "xds_certprov", "instance=%s state=loaded "
              "retries=%u", in->name, n);
  else
    mesh__log(m, MESH_LOG_ERROR, "xds_certprov", "instance=%s state=retrying "
              "kind=%s error=\"%s\" retry_ms=%lld", in->name,
              mesh_code_name(rc), st->message, (long long)in->refresh_ms);
}

/* Everything that takes credentials from in: loaded again (changed: the
 * files did, and each user logs its own failure).  true: all loaded. */
static bool attempt(mesh_t *m, inst_t *in, bool changed) {
  mesh_status_t st, first;
  int rc = mesh__xds_server_rotate(m, mesh__xds_srv_of(m), in->name, changed,
                                   &first);
  int r2 = mesh__xds_cluster_rotate(m, in->name, changed, &st);
  if (rc == MESH_OK && r2 != MESH_OK) {
    rc = r2;
    first = st;
  }
  r2 = pend_retry(m, in->p, in->name, changed, &st);
  if (rc == MESH_OK && r2 != MESH_OK) {
    rc = r2;
    first = st;
  }
  report(m, in, rc, &first, changed);
  return rc == MESH_OK;
}

/* fwatch: the files changed, or the last attempt failed. */
static bool on_files(mesh_t *m, bool changed, void *user) {
  inst_t *in = user;
  /* the identity's own instance rotates through on_identity; its watch
   * only retries what failed */
  if (in->own && !mesh__fwatch_failed(in->w))
    return true;
  return attempt(m, in, changed);
}

/* The identity's instance rotated (the identity published new creds). */
static void on_identity(mesh_t *m, mesh__creds_t *c, void *user) {
  (void)c;
  (void)user;
  /* looked up, not kept: the identity may outlive the xds part */
  inst_t *in = find(pw(m), mesh__xds_identity_instance(m->config));
  if (in && mesh__xds_boot_of(m) && !attempt(m, in, true))
    mesh__fwatch_retry(in->w);
}

void mesh__xds_provwatch_free(mesh_t *m, mesh__xds_pw_t *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    mesh__fwatch_free(m, p->v[i].w);
  for (size_t i = 0; i < p->npend; i++)
    pend_fini(&p->pend[i]);
  free(p->pend);
  free(p->v);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int mesh__xds_provwatch_start(mesh_t *m, const mesh__xds_bootstrap_t *b,
                              mesh__xds_pw_t **out, mesh_status_t *st) {
  *out = NULL;
  if (!b->nproviders)
    return MESH_OK;
  mesh__xds_pw_t *p = calloc(1, sizeof *p);
  if (!p || !(p->v = calloc(b->nproviders, sizeof *p->v))) {
    free(p);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  pthread_mutex_init(&p->mu, NULL);
  const char *own = mesh__xds_identity_instance(m->config);
  int rc = MESH_OK;
  for (size_t i = 0; i < b->nproviders && rc == MESH_OK; i++) {
    const mesh__xds_certprov_t *v = &b->providers[i];
    inst_t *in = &p->v[p->n++];
    *in = (inst_t){.p = p, .name = v->name, .refresh_ms = v->refresh_ms,
                   .own = own && !strcmp(own, v->name)};
    if (in->own) {
      rc = mesh__identity_on_change(m, on_identity, NULL);
      if (rc != MESH_OK)
        mesh__fail(st, rc, "xds: certificate provider \"%s\": cannot follow "
                   "the identity's rotations: %s", v->name, mesh_strerror(rc));
    }
    const char *paths[4];
    size_t n = 0;
    const char *all[] = {v->cert_file, v->key_file, v->ca_file, v->map_file};
    for (size_t k = 0; k < 4; k++)
      if (all[k])
        paths[n++] = all[k];
    if (n && rc == MESH_OK)
      rc = mesh__fwatch_new(m, paths, n, v->refresh_ms, on_files, in, &in->w,
                            st);
  }
  if (rc != MESH_OK) {
    mesh__xds_provwatch_free(m, p);
    return rc;
  }
  *out = p;
  return MESH_OK;
}
