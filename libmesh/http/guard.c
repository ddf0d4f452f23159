/* SPDX-License-Identifier: Apache-2.0 */
/* The security steps of every inbound request, in Istio's order, shared by
 * the HTTP/1.1 loop (server.c) and HTTP/2 (h2_serve.c): request
 * authentication (a token that is present and fails: 401), then
 * authorization over the same request view plus the verified JWT (403).
 * Between the two, the header view follows RequestAuthentication (the
 * token header removed unless forward_original_token, output_claim_to_headers
 * set), so authorization and the handler see what Envoy's RBAC filter and
 * the upstream would. */
#include <string.h>
#include <strings.h>

#include "http/http.h"

static const char *ar_header(const char *name, void *ctx) {
  return mesh__az_req_header(ctx, name);
}

int mesh__http_guard(mesh_t *m, mesh_authz_request_t *ar, mesh__az_hdr_t *hdrs,
                     size_t *nhdrs, size_t cap, mesh__authn_result_t *an,
                     mesh_status_t *st) {
  mesh__authn_result_free(an);
  if (mesh__authn_active(m)) {
    const char *q = ar->target ? strchr(ar->target, '?') : NULL;
    mesh__authn_input_t in = {.header = ar_header,
                              .ctx = ar,
                              .query = q ? q + 1 : NULL,
                              .query_len = q ? strlen(q + 1) : 0};
    if (mesh__authn_check_request(m, &in, an, st) != MESH_OK)
      return 401;
    ar->req_principal = an->principal;
    ar->jwt_claims = an->claims;
    /* as Envoy's jwt_authn before RBAC: policies see the headers the
     * handler will (token removed, claims added) */
    *nhdrs = mesh__http_authn_headers(an, hdrs, *nhdrs, cap);
    ar->hdrs = hdrs;
    ar->nhdrs = *nhdrs;
  }
  if (mesh__authz_active(m) && mesh__authz_check_request(m, ar, st) != MESH_OK)
    return 403;
  return 0;
}

size_t mesh__http_authn_headers(const mesh__authn_result_t *an,
                                mesh__az_hdr_t *v, size_t n, size_t cap) {
  if (!an->authenticated)
    return n;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    bool drop = an->strip_header && strcasecmp(v[i].name, an->strip_header) == 0;
    for (size_t k = 0; k < an->nout && !drop; k++)
      drop = strcasecmp(v[i].name, an->out_name[k]) == 0; /* replaced */
    if (!drop)
      v[w++] = v[i];
  }
  for (size_t k = 0; k < an->nout && w < cap; k++)
    v[w++] = (mesh__az_hdr_t){an->out_name[k], an->out_value[k]};
  return w;
}
