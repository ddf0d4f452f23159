/* SPDX-License-Identifier: Apache-2.0 */
/* TLS configurations, one generation per identity snapshot.
 *
 * Building a backend's contexts is costly (seeding, key warm-up), so it
 * happens once per credentials generation, not per connection.  Handshakes take a reference on the generation they start
 * with; a rotation publishes a new one and the old one is freed when its
 * last connection closes. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

static void gen_free(mesh__tlsgen_t *g) {
  mesh__tls_be.gen_free(g);
  mesh__creds_release(g->creds);
  free(g);
}

static int gen_build(mesh_t *m, mesh__creds_t *creds, mesh__tlsgen_t **out,
                     mesh_status_t *st) {
  mesh__tlsgen_t *g = calloc(1, sizeof *g);
  if (!g) {
    mesh__creds_release(creds);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  atomic_init(&g->refs, 1);
  g->creds = creds;
  g->generation = creds->generation;
  int rc = mesh__tls_be.gen_new(m->tls, g, st);
  if (rc != MESH_OK) {
    gen_free(g);
    return rc;
  }
  *out = g;
  return MESH_OK;
}

int mesh__tlsgen_acquire(mesh_t *m, mesh__tlsgen_t **out, mesh_status_t *st) {
  *out = NULL;
  if (!m->tls)
    return mesh__fail(st, MESH_ERR_INTERNAL, "the tls part is not set up");
  mesh__tls_t *t = m->tls;
  /* Fast path: one atomic read tells whether the current generation is
   * still the identity's. */
  uint64_t want = mesh__identity_generation(m);
  pthread_mutex_lock(&t->mu);
  if (t->gen && want && t->gen->generation == want) {
    atomic_fetch_add(&t->gen->refs, 1);
    *out = t->gen;
    pthread_mutex_unlock(&t->mu);
    return MESH_OK;
  }
  pthread_mutex_unlock(&t->mu);
  mesh__creds_t *creds = mesh__creds_acquire(m);
  if (!creds)
    return mesh__fail(st, MESH_ERR_SVID,
                      "no SVID loaded: mTLS needs the identity section "
                      "(SVID and trust bundle)");
  pthread_mutex_lock(&t->mu);
  mesh__tlsgen_t *g = t->gen;
  if (g && g->generation == creds->generation) {
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&t->mu);
    mesh__creds_release(creds);
    *out = g;
    return MESH_OK;
  }
  /* Build under the lock: rotations are rare and this keeps concurrent
   * dials from seeding the same generation twice. */
  mesh__tlsgen_t *ng = NULL;
  int rc = gen_build(m, creds, &ng, st); /* takes the creds reference */
  if (rc != MESH_OK) {
    pthread_mutex_unlock(&t->mu);
    return rc;
  }
  t->gen = ng;
  atomic_fetch_add(&ng->refs, 1);
  pthread_mutex_unlock(&t->mu);
  mesh__tlsgen_release(g);
  mesh__log(m, MESH_LOG_INFO, "tls_config", "generation=%llu id=%s",
            (unsigned long long)ng->generation, ng->creds->id);
  *out = ng;
  return MESH_OK;
}

int mesh__tlsgen_new(mesh_t *m, mesh__creds_t *creds, mesh__tlsgen_t **out,
                     mesh_status_t *st) {
  *out = NULL;
  if (!m->tls) {
    mesh__creds_release(creds);
    return mesh__fail(st, MESH_ERR_INTERNAL, "the tls part is not set up");
  }
  return gen_build(m, creds, out, st);
}

void mesh__tlsgen_release(mesh__tlsgen_t *g) {
  if (!g)
    return;
  if (atomic_fetch_sub(&g->refs, 1) == 1)
    gen_free(g);
}
