/* SPDX-License-Identifier: Apache-2.0 */
/* Rotation of the certificate provider instances that filter chains and
 * clusters name (gRFC A29 file_watcher: the files are re-read every
 * refresh_interval; new handshakes use the new files, connections in
 * flight keep theirs).  Each bootstrap instance's files are watched with
 * identity's file watch (mesh__fwatch_*: the same stat() signatures as
 * the identity's own files); the identity's own instance (identity
 * source "xds", certprov.c) is already watched by identity, so its
 * rotations arrive through mesh__identity_on_change instead of a second
 * poll of the same files.  A change rebuilds the credentials of every
 * server chain (server.c) and every service (tlsctx.c) naming the
 * instance; files that do not load keep the last good credentials. */
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

struct mesh__xds_pw {
  mesh__fwatch_t **w;
  size_t n;
};

static void rotate(mesh_t *m, const char *inst) {
  mesh__xds_server_rotate(m, mesh__xds_srv_of(m), inst);
  mesh__xds_cluster_rotate(m, inst);
}

/* user: the instance's name, owned by the bootstrap (outlives the watch) */
static void on_files(mesh_t *m, void *user) { rotate(m, user); }

/* The identity's instance rotated (the identity published new creds). */
static void on_identity(mesh_t *m, mesh__creds_t *c, void *user) {
  (void)c;
  (void)user;
  const char *inst = mesh__xds_identity_instance(m->config);
  if (inst && mesh__xds_boot_of(m))
    rotate(m, inst);
}

void mesh__xds_provwatch_free(mesh_t *m, mesh__xds_pw_t *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    mesh__fwatch_free(m, p->w[i]);
  free(p->w);
  free(p);
}

int mesh__xds_provwatch_start(mesh_t *m, const mesh__xds_bootstrap_t *b,
                              mesh__xds_pw_t **out, mesh_status_t *st) {
  *out = NULL;
  if (!b->nproviders)
    return MESH_OK;
  mesh__xds_pw_t *p = calloc(1, sizeof *p);
  if (!p || !(p->w = calloc(b->nproviders, sizeof *p->w))) {
    free(p);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  const char *own = mesh__xds_identity_instance(m->config);
  int rc = MESH_OK;
  for (size_t i = 0; i < b->nproviders && rc == MESH_OK; i++) {
    const mesh__xds_certprov_t *v = &b->providers[i];
    if (own && !strcmp(own, v->name)) {
      rc = mesh__identity_on_change(m, on_identity, NULL);
      if (rc != MESH_OK)
        mesh__fail(st, rc, "xds: certificate provider \"%s\": cannot follow "
                   "the identity's rotations: %s", v->name, mesh_strerror(rc));
      continue;
    }
    const char *paths[4];
    size_t n = 0;
    const char *all[] = {v->cert_file, v->key_file, v->ca_file, v->map_file};
    for (size_t k = 0; k < 4; k++)
      if (all[k])
        paths[n++] = all[k];
    if (n)
      rc = mesh__fwatch_new(m, paths, n, v->refresh_ms, on_files, v->name,
                            &p->w[p->n++], st);
  }
  if (rc != MESH_OK) {
    mesh__xds_provwatch_free(m, p);
    return rc;
  }
  *out = p;
  return MESH_OK;
}
