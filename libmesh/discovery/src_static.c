/* SPDX-License-Identifier: Apache-2.0 */
/* The "static" discovery source: endpoints listed in the config, published
 * once at mesh_new(). */
#include "discovery/discovery.h"

#include <stdlib.h>

void mesh__disc_check_static(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"type", "endpoints", "resolver", NULL};
  mesh__cfg_object(c, v, path, keys);
  mesh__disc_check_resolver(c, v, path);
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(v, "endpoints");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "endpoints");
  if (!arr) {
    mesh__cfg_error(c, p, "required for type \"static\"");
    return;
  }
  mesh__ep_t *eps;
  size_t n;
  mesh__ep_parse_list(c, arr, p, &eps, &n);
  free(eps);
}

static int static_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  mesh__cfg_t c = {.first = st};
  mesh__ep_t *eps;
  size_t n;
  int rc = mesh__ep_parse_list(
      &c, cJSON_GetObjectItemCaseSensitive(d->cfg, "endpoints"), "endpoints",
      &eps, &n);
  if (rc != MESH_OK)
    return rc == MESH_ERR_NOMEM ? mesh__fail(st, rc, "out of memory")
                                : MESH_ERR_CONFIG;
  rc = mesh__disc_apply(d, eps, n);
  free(eps);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "services.%s.discovery: %s", d->svc->name,
                      mesh_strerror(rc));
  return MESH_OK;
}

const mesh__disc_source_t mesh__disc_static = {"static", static_start, NULL};
