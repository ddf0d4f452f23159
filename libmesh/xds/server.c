/* SPDX-License-Identifier: Apache-2.0 */
/* An xDS-enabled server (gRFC A36) and its RBAC policy (A41): with
 * `"xds": {"server_address": "IP:PORT"}` and a bootstrap carrying
 * server_listener_resource_name_template, the context subscribes to the
 * Listener named by the template (its "%s" replaced by the address) and
 * hands the RBAC filter of the accepted Listener, mapped onto the authz
 * policy model (rbac.c), down to authz as its external set.  Until the
 * first Listener arrives every request is denied (A36: a server does not
 * serve before its Listener); a Listener without an RBAC filter places no
 * xDS restriction; a NACKed Listener never reaches here (the last good one
 * stays in force), nor does anything while the control plane is away. */
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

/* ALLOW with a policy that has no rules: matches nothing, so denies all. */
static const char pending_json[] =
    "{\"policies\":[{\"name\":\"xds-listener-pending\",\"action\":\"ALLOW\"}]}";

void mesh__xds_server_check(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                            const mesh__xds_bootstrap_t *b) {
  const char *addr = NULL;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "server_address");
  if (!mesh__cfg_string(c, cfg, path, "server_address", NULL, &addr) || !addr)
    return;
  const char *colon = strrchr(addr, ':');
  if (!*addr || !colon || colon == addr || !colon[1] ||
      strspn(colon + 1, "0123456789") != strlen(colon + 1))
    mesh__cfg_error(c, p, "\"%s\": want IP:PORT (the address the server "
                    "listens on, as gRFC A36 names its Listener)", addr);
  else if (b && !b->server_listener_template)
    mesh__cfg_error(c, p, "the bootstrap has no "
                    "server_listener_resource_name_template");
}

char *mesh__xds_server_name(const char *tmpl, const char *addr) {
  const char *pct = strstr(tmpl, "%s");
  size_t n = strlen(tmpl) + strlen(addr) + 1;
  char *out = malloc(n);
  if (!out)
    return NULL;
  if (!pct) {
    memcpy(out, tmpl, strlen(tmpl) + 1);
    return out;
  }
  snprintf(out, n, "%.*s%s%s", (int)(pct - tmpl), tmpl, addr, pct + 2);
  return out;
}

int mesh__xds_server_start(mesh_t *m, mesh__xds_ads_t *ads,
                           const mesh__xds_bootstrap_t *b, const cJSON *cfg,
                           char **name, mesh_status_t *st) {
  *name = NULL;
  const char *addr = cJSON_GetStringValue(
      cJSON_GetObjectItemCaseSensitive(cfg, "server_address"));
  if (!addr || !b->server_listener_template)
    return MESH_OK;
  if (!(*name = mesh__xds_server_name(b->server_listener_template, addr)))
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  cJSON *doc = cJSON_Parse(pending_json);
  mesh_status_t ast;
  int rc = doc ? mesh__authz_set_external(m, doc, *name, &ast)
               : MESH_ERR_NOMEM;
  cJSON_Delete(doc);
  if (rc)
    return mesh__fail(st, rc, "xds: server listener \"%s\": %s", *name,
                      rc == MESH_ERR_NOMEM ? "out of memory" : ast.message);
  rc = mesh__xds_ads_watch(ads, MESH__XDS_T_LDS, *name);
  if (rc)
    return mesh__fail(st, rc, "xds: server listener \"%s\": %s", *name,
                      mesh_strerror(rc));
  mesh__log(m, MESH_LOG_INFO, "xds_server_listener",
            "listener=\"%s\" state=pending", *name);
  return MESH_OK;
}

void mesh__xds_server_on_lds(mesh_t *m, const char *name,
                             const mesh__xds_lds_t *l) {
  if (!l->server) {
    /* an api_listener under the server's name: not a server Listener
     * (A36); the policy in force stays */
    mesh__log(m, MESH_LOG_WARN, "xds_server_listener",
              "listener=\"%s\" state=ignored reason=\"has an api_listener: "
              "not a server Listener; the policy in force stays\"", name);
    return;
  }
  mesh_status_t st;
  if (mesh__authz_set_external(m, l->rbac, name, &st) != MESH_OK)
    mesh__log(m, MESH_LOG_ERROR, "xds_server_listener",
              "listener=\"%s\" state=kept error=\"%s\"", name, st.message);
  else
    mesh__log(m, MESH_LOG_INFO, "xds_server_listener",
              "listener=\"%s\" state=applied rbac=%s", name,
              l->rbac ? "yes" : "none");
}
