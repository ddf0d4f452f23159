/* SPDX-License-Identifier: Apache-2.0 */
/* The request-authentication attributes of a policy: request principals
 * ("iss/sub") and the request.auth.* conditions, read from the verified JWT
 * the HTTP layer hands over (authz never calls authn: the principal and the
 * claims tree are plain fields of the request). */
#include <string.h>

#include "authz/authz.h"

int mesh__az_reqauth_key(mesh__az_bctx_t *b, const char *k,
                         mesh__az_cond_t *w) {
  if (strcmp(k, "request.auth.principal") == 0)
    return MESH__AZ_K_REQ_PRINCIPAL;
  if (strcmp(k, "request.auth.audiences") == 0)
    return MESH__AZ_K_REQ_AUDIENCES;
  if (strcmp(k, "request.auth.presenter") == 0)
    return MESH__AZ_K_REQ_PRESENTER;
  static const char pre[] = "request.auth.claims";
  if (strncmp(k, pre, sizeof pre - 1) != 0)
    return -1;
  /* Istio: request.auth.claims[a][b]... with non-empty names */
  const char *p = k + sizeof pre - 1;
  if (*p != '[')
    return -1;
  while (*p == '[') {
    const char *end = strchr(p + 1, ']');
    if (!end || end == p + 1 || memchr(p + 1, '[', (size_t)(end - p - 1)) ||
        w->nclaim == MESH__AZ_CLAIM_DEPTH)
      return -1;
    w->claim[w->nclaim++] = mesh__az_dupn(b, p + 1, (size_t)(end - p - 1));
    p = end + 1;
  }
  return *p ? -1 : MESH__AZ_K_REQ_CLAIMS;
}

/* Any pattern of l matching the string v or, for a list, any element. */
static bool any_value(const mesh__az_strs_t *l, const cJSON *v) {
  if (cJSON_IsString(v)) {
    for (size_t i = 0; i < l->n; i++)
      if (mesh__az_str_match(&l->v[i], v->valuestring))
        return true;
    return false;
  }
  const cJSON *e;
  if (cJSON_IsArray(v))
    cJSON_ArrayForEach(e, v) {
      if (cJSON_IsString(e) && any_value(l, e))
        return true;
    }
  return false;
}

bool mesh__az_reqauth_match(const mesh__az_cond_t *w,
                            const mesh_authz_request_t *r) {
  const cJSON *v = NULL;
  cJSON principal = {0};
  switch (w->key) {
  case MESH__AZ_K_REQ_PRINCIPAL:
    if (r->req_principal && r->req_principal[0]) {
      principal.type = cJSON_String;
      principal.valuestring = (char *)r->req_principal;
      v = &principal;
    }
    break;
  case MESH__AZ_K_REQ_AUDIENCES:
    v = cJSON_GetObjectItemCaseSensitive(r->jwt_claims, "aud");
    break;
  case MESH__AZ_K_REQ_PRESENTER:
    v = cJSON_GetObjectItemCaseSensitive(r->jwt_claims, "azp");
    break;
  default:
    v = r->jwt_claims;
    for (size_t i = 0; v && i < w->nclaim; i++)
      v = cJSON_GetObjectItemCaseSensitive(v, w->claim[i]);
  }
  if (w->values.n && !any_value(&w->values, v))
    return false;
  return !(w->not_values.n && any_value(&w->not_values, v));
}
