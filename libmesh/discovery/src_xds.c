/* SPDX-License-Identifier: Apache-2.0 */
/* The "xds" discovery source: passive.  The xds part (a layer above) owns
 * the ADS stream and pushes each accepted EDS update of the service's
 * cluster through mesh__disc_apply() on the loop thread; until the first
 * one the set is empty, and a control-plane outage keeps the last set
 * (fail static). */
#include "discovery/discovery.h"

#include <string.h>

/* "cluster" (a CDS root) or "listener" (an LDS root: its route's
 * clusters, a weighted split among them as Istio canaries are), not both. */
void mesh__disc_check_xds(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"type", "cluster", "listener", NULL};
  mesh__cfg_object(c, v, path, keys);
  static const char *const names[] = {"cluster", "listener"};
  const char *val[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++)
    if (mesh__cfg_string(c, v, path, names[i], NULL, &val[i]) && val[i] &&
        !*val[i]) {
      char p[MESH__PATH_MAX];
      mesh__cfg_path(p, path, names[i]);
      mesh__cfg_error(c, p, "must not be empty");
    }
  if (val[0] && val[1]) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "listener");
    mesh__cfg_error(c, p, "give \"cluster\" or \"listener\", not both");
  }
}

const char *mesh__disc_xds_cluster(const mesh__service_t *svc) {
  const cJSON *d = svc && svc->cfg
                       ? cJSON_GetObjectItemCaseSensitive(svc->cfg, "discovery")
                       : NULL;
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
  if (!cJSON_IsString(t) || strcmp(t->valuestring, "xds") != 0)
    return NULL;
  const cJSON *cl = cJSON_GetObjectItemCaseSensitive(d, "cluster");
  return cJSON_IsString(cl) && *cl->valuestring ? cl->valuestring : svc->name;
}

static int xds_start(mesh__disc_svc_t *d, mesh_status_t *st) {
  (void)d;
  (void)st;
  return MESH_OK;
}

static void xds_stop(mesh__disc_svc_t *d) { (void)d; }

const mesh__disc_source_t mesh__disc_xds = {"xds", xds_start, xds_stop};
