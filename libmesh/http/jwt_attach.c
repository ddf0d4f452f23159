/* SPDX-License-Identifier: Apache-2.0 */
/* JWT-SVIDs on outbound HTTP calls: a service configured with
 *   "services": {"orders": {"jwt_svid": {"audience": "spiffe://td/orders"}}}
 * gets "authorization: Bearer <JWT-SVID for that audience>" on every call
 * mesh_http_call() makes to it (replacing one the caller set).  The token
 * comes from identity's provider, which the Workload API part registers
 * (it sits above http and caches tokens per audience until near expiry).
 * No token, no call: a service that is configured to carry one is never
 * called without it (the error names the service and the audience). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "identity/identity.h"

#define AUD_MAX 1024

static void jwt_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  static const char *const keys[] = {"audience", NULL};
  if (!v || !mesh__cfg_object(c, v, path, keys))
    return;
  const char *aud = NULL;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "audience");
  if (!mesh__cfg_string(c, v, path, "audience", NULL, &aud))
    return;
  if (!aud || !*aud)
    mesh__cfg_error(c, p, "an audience is required");
  else if (strlen(aud) > AUD_MAX)
    mesh__cfg_error(c, p, "longer than %d bytes", AUD_MAX);
  for (const char *q = aud; q && *q; q++)
    if ((unsigned char)*q < 0x20 || *q == 0x7f) {
      mesh__cfg_error(c, p, "control characters are not allowed");
      break;
    }
}

static int jwt_init(mesh_t *m, mesh__service_t *svc, const cJSON *v,
                    mesh_status_t *st) {
  (void)m;
  const cJSON *aud = cJSON_GetObjectItemCaseSensitive(v, "audience");
  if (!v || !svc->http || !cJSON_IsString(aud))
    return MESH_OK; /* checked before: absent */
  svc->http->jwt_aud = mesh__strdup(aud->valuestring);
  return svc->http->jwt_aud ? MESH_OK
                            : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
}

static void jwt_fini(mesh_t *m, mesh__service_t *svc) {
  (void)m;
  if (!svc->http)
    return;
  free(svc->http->jwt_aud);
  svc->http->jwt_aud = NULL;
}

/* After "routes": that part allocates svc->http. */
const mesh__svc_part_t mesh__jwt_svc_part = {
    .key = "jwt_svid",
    .check = jwt_check,
    .init = jwt_init,
    .fini = jwt_fini,
};

int mesh__http_jwt_header(mesh_t *m, const mesh__service_t *svc, char **value,
                          mesh_status_t *st) {
  *value = NULL;
  const char *aud = svc && svc->http ? svc->http->jwt_aud : NULL;
  if (!aud)
    return MESH_OK;
  char *tok = NULL;
  int rc = mesh__identity_jwt_svid(m, aud, &tok, st);
  if (rc != MESH_OK) {
    char why[sizeof st->message];
    mesh__strlcpy(why, st ? st->message : "", sizeof why);
    return mesh__fail(st, rc, "services.%s.jwt_svid: no JWT-SVID for \"%s\": %s",
                      svc->name, aud, why);
  }
  size_t n = strlen(tok) + sizeof "Bearer ";
  *value = malloc(n);
  if (*value)
    snprintf(*value, n, "Bearer %s", tok);
  free(tok);
  return *value ? MESH_OK : mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
}
