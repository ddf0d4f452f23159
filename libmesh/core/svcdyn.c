/* SPDX-License-Identifier: Apache-2.0 */
/* Services added at run time.  The services section is fixed at mesh_new;
 * a part above (xds: gRPC's xds resolver subscribes a name when a channel
 * first uses it) may add services later through mesh__service_add, and
 * resolves the names calls and dials use through m->svc_resolve.  Added
 * services stay until mesh_free, so lock-free readers (mesh__service_find)
 * never see one freed; the array has a fixed capacity (m->svc_dyn_max,
 * the resolver's limit) so it is never moved under them. */
#include "core/parts.h"

#include <stdlib.h>
#include <string.h>

int mesh__service_use(mesh_t *m, const char *name, int64_t timeout_ms,
                      mesh__service_t **out, mesh_status_t *st) {
  mesh__service_t *s = mesh__service_find(m, name);
  *out = s;
  if (s && !s->own_cfg)
    return MESH_OK;
  if (!m || !m->svc_resolve)
    return s ? MESH_OK : 1;
  return m->svc_resolve(m, name, timeout_ms, out, st);
}

/* Every per-service part's fini, in reverse (as services_fini). */
static void svc_free(mesh_t *m, mesh__service_t *s) {
  size_t n = 0;
  while (mesh__svc_parts[n])
    n++;
  for (size_t j = n; j-- > 0;)
    if (mesh__svc_parts[j]->fini)
      mesh__svc_parts[j]->fini(m, s);
  cJSON_Delete(s->own_cfg);
  free(s->name);
  free(s);
}

int mesh__service_add(mesh_t *m, const char *name, cJSON *cfg,
                      mesh__service_t **out, mesh_status_t *st) {
  struct mesh__services *ss = m ? m->services : NULL;
  *out = NULL;
  /* config names, or a resolver's target form (xds:///host:port) */
  if (!ss || !name || !*name || strlen(name) > 512 || mesh__service_find(m, name)) {
    cJSON_Delete(cfg);
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "service \"%.128s\": "
                      "invalid name or already present", name ? name : "");
  }
  size_t nd = atomic_load_explicit(&ss->ndyn, memory_order_relaxed);
  if (nd >= m->svc_dyn_max) {
    cJSON_Delete(cfg);
    return mesh__fail(st, MESH_ERR_UNSUPPORTED, "no room for another "
                      "service added at run time (%zu)", m->svc_dyn_max);
  }
  mesh__service_t *s = calloc(1, sizeof *s);
  if (!s || !(s->name = strdup(name))) {
    free(s);
    cJSON_Delete(cfg);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  s->own_cfg = cfg;
  s->cfg = cfg;
  s->peers = cJSON_GetObjectItemCaseSensitive(cfg, "peers");
  for (size_t j = 0; mesh__svc_parts[j]; j++) {
    const mesh__svc_part_t *p = mesh__svc_parts[j];
    int rc = p->init ? p->init(m, s, cJSON_GetObjectItemCaseSensitive(cfg, p->key), st)
                     : MESH_OK;
    if (rc != MESH_OK) {
      svc_free(m, s);
      return rc;
    }
  }
  ss->dyn[nd] = s;
  atomic_store_explicit(&ss->ndyn, nd + 1, memory_order_release);
  *out = s;
  return MESH_OK;
}

void mesh__services_dyn_fini(mesh_t *m) {
  struct mesh__services *ss = m->services;
  if (!ss || !ss->dyn)
    return;
  size_t nd = atomic_load(&ss->ndyn);
  for (size_t i = nd; i-- > 0;)
    svc_free(m, ss->dyn[i]);
  atomic_store(&ss->ndyn, 0);
  free(ss->dyn);
  ss->dyn = NULL;
}
