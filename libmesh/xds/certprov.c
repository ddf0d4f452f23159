/* SPDX-License-Identifier: Apache-2.0 */
/* The xDS certificate provider as the mesh identity (gRFC A29, A87):
 * "identity": {"source": "xds", "certificate_provider": NAME} (NAME
 * defaults to "default", the instance Istio's bootstrap declares) takes
 * the SVID, key and trust bundles from the bootstrap's file_watcher
 * instance NAME.  The bootstrap is the xds section's (or the
 * GRPC_XDS_BOOTSTRAP* environment's), as for the ADS session.  Layering:
 * identity (below) knows nothing of xDS; this part hands it the files
 * through mesh__identity_watch_files() and identity watches them with its
 * own rotation path (refresh_interval is the poll interval). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "xds/xds.h"

#define DEFAULT_INSTANCE "default"

const char *mesh__xds_identity_instance(const cJSON *root) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "identity");
  const cJSON *src = cJSON_GetObjectItemCaseSensitive(id, "source");
  if (!cJSON_IsString(src) || strcmp(src->valuestring, "xds") != 0)
    return NULL;
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(id,
                                                    "certificate_provider");
  return cJSON_IsString(n) && *n->valuestring ? n->valuestring
                                              : DEFAULT_INSTANCE;
}

/* "a, b" of the bootstrap's instances, for messages. */
static void instance_names(const mesh__xds_bootstrap_t *b, char *out,
                           size_t cap) {
  size_t k = 0;
  out[0] = '\0';
  for (size_t i = 0; i < b->nproviders && k + 1 < cap; i++) {
    int n = snprintf(out + k, cap - k, "%s%s", i ? ", " : "",
                     b->providers[i].name);
    if (n < 0)
      break;
    k += (size_t)n;
  }
}

/* Why instance name cannot be the identity (absent, no SVID or no trust,
 * a file that is not a readable regular file), or MESH_OK. */
static int usable(const mesh__xds_bootstrap_t *b, const char *name,
                  mesh_status_t *st) {
  const mesh__xds_certprov_t *p = mesh__xds_certprov_find(b, name);
  char names[200];
  instance_names(b, names, sizeof names);
  if (!p)
    return mesh__fail(st, MESH_ERR_CONFIG, "no certificate provider instance "
                      "\"%s\" in the xDS bootstrap (%s%s)", name,
                      names[0] ? "instances: " : "it has no "
                      "certificate_providers", names);
  if (!p->cert_file)
    return mesh__fail(st, MESH_ERR_CONFIG, "certificate provider instance "
                      "\"%s\" has no certificate_file and private_key_file: "
                      "it cannot be the identity", name);
  if (!p->ca_file && !p->map_file)
    return mesh__fail(st, MESH_ERR_CONFIG, "certificate provider instance "
                      "\"%s\" has neither ca_certificate_file nor "
                      "spiffe_trust_bundle_map_file: libmesh verifies peers "
                      "with the identity's own trust bundles", name);
  const char *const keys[] = {"certificate_file", "private_key_file",
                              "spiffe_trust_bundle_map_file",
                              "ca_certificate_file"};
  /* A87: with a bundle map the CA file is not read */
  const char *const files[] = {p->cert_file, p->key_file, p->map_file,
                               p->map_file ? NULL : p->ca_file};
  for (size_t i = 0; i < 4; i++) {
    mesh_status_t why;
    if (files[i] && mesh__file_check(files[i], &why) != MESH_OK)
      return mesh__fail(st, MESH_ERR_CONFIG, "certificate provider instance "
                        "\"%s\": %s: %s", name, keys[i], why.message);
  }
  return MESH_OK;
}

static void certprov_check(mesh__cfg_t *c, const cJSON *cfg,
                           const char *path) {
  (void)cfg;
  const char *name = mesh__xds_identity_instance(c->root);
  if (!name)
    return;
  /* bootstrap errors are the xds part's to report (once) */
  mesh__cfg_t quiet = {.root = c->root};
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_load(
      &quiet, cJSON_GetObjectItemCaseSensitive(c->root, "xds"), "xds");
  if (!b)
    return;
  mesh_status_t st;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "certificate_provider");
  if (usable(b, name, &st) != MESH_OK)
    mesh__cfg_error(c, p, "%s", st.message);
  mesh__xds_bootstrap_free(b);
}

static int certprov_init(mesh_t *m, const cJSON *cfg, mesh_status_t *st) {
  (void)cfg;
  const char *name = mesh__xds_identity_instance(m->config);
  if (!name)
    return MESH_OK;
  mesh__cfg_t c = {.first = st};
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_load(
      &c, cJSON_GetObjectItemCaseSensitive(m->config, "xds"), "xds");
  if (!b)
    return MESH_ERR_CONFIG;
  int rc = usable(b, name, st);
  if (rc != MESH_OK) {
    mesh__xds_bootstrap_free(b);
    return rc;
  }
  const mesh__xds_certprov_t *p = mesh__xds_certprov_find(b, name);
  char origin[300];
  snprintf(origin, sizeof origin, "xds certificate provider \"%.200s\" "
           "(file_watcher)", name);
  mesh__identity_files_t f = {
      .origin = origin,
      .cert = p->cert_file,
      .key = p->key_file,
      .bundle = p->ca_file,
      .bundle_map = p->map_file,
      .interval_ms = p->refresh_ms,
  };
  rc = mesh__identity_watch_files(m, &f, st);
  if (rc != MESH_OK && st) {
    char msg[sizeof st->message];
    mesh__strlcpy(msg, st->message, sizeof msg);
    mesh__fail(st, rc, "identity (%s): %s", origin, msg);
  }
  mesh__xds_bootstrap_free(b);
  return rc;
}

const mesh__part_t mesh__xds_certprov_part = {
    .key = "identity",
    .check = certprov_check,
    .init = certprov_init,
};
