/* SPDX-License-Identifier: Apache-2.0 */
/* A service's "alpn": the ALPN list its dials offer, as an Istio preset
 * name or an explicit list (Envoy's cluster alpn_protocols).
 *
 * The presets are the lists Istio's sidecar offers upstream over mTLS
 * (pilot's ALPN override filter: mtlsHTTP11ALPN, mtlsHTTP2ALPN, and
 * ALPNInMesh for TCP).  An Istio inbound listener in PERMISSIVE mode picks
 * its mTLS filter chain when the ClientHello offers one of "istio",
 * "istio-http/1.0", "istio-http/1.1", "istio-h2" (or
 * "istio-peer-exchange"); anything else is handed to the application as
 * is.  The plain protocol last lets a server outside the mesh (or a
 * libmesh server listing "h2" / "http/1.1") still select a standard name.
 * "istio-peer-exchange" is left out on purpose: a client offering it
 * must speak Istio's TCP metadata exchange when it is selected. */
#include "tls/tls.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  const char *list;
} presets[] = {
    {"istio-http/1.1", "istio-http/1.1,istio,http/1.1"},
    {"istio-h2", "istio-h2,istio,h2"},
    {"istio", "istio"},
};

bool mesh__alpn_is_h2(const char *negotiated) {
  return negotiated &&
         (!strcmp(negotiated, "h2") || !strcmp(negotiated, "istio-h2"));
}

bool mesh__alpn_has(const char *list, const char *name) {
  size_t n = name ? strlen(name) : 0;
  for (const char *p = list; p && *p && n;) {
    size_t k = strcspn(p, ",");
    if (k == n && strncmp(p, name, n) == 0)
      return true;
    p += k;
    if (*p == ',')
      p++;
  }
  return false;
}

const char *mesh__tls_alpn_preset(const char *name) {
  for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++)
    if (strcmp(presets[i].name, name) == 0)
      return presets[i].list;
  return NULL;
}

/* One name of an explicit list: 1-255 bytes, no comma (lists travel
 * comma-separated to the dial), appended to out. */
static bool add_name(mesh__cfg_t *c, const char *q, const char *s, char *out,
                     size_t outlen) {
  size_t len = strlen(s);
  if (len == 0 || len > 255) {
    mesh__cfg_error(c, q, "protocol name must be 1-255 bytes");
    return false;
  }
  if (strchr(s, ',')) {
    mesh__cfg_error(c, q, "protocol name must not contain ','");
    return false;
  }
  size_t used = strlen(out);
  if (used + len + 2 > outlen) {
    mesh__cfg_error(c, q, "list too long");
    return false;
  }
  if (used)
    out[used++] = ',';
  memcpy(out + used, s, len + 1);
  return true;
}

static bool explicit_list(mesh__cfg_t *c, const cJSON *v, const char *path,
                          char *out, size_t outlen) {
  int n = cJSON_GetArraySize(v);
  if (n == 0 || n > MESH__ALPN_MAX) {
    mesh__cfg_error(c, path, "must list 1 to %d protocols", MESH__ALPN_MAX);
    return false;
  }
  bool ok = true;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    char q[MESH__PATH_MAX + 16];
    snprintf(q, sizeof q, "%s[%d]", path, i++);
    if (!cJSON_IsString(it)) {
      mesh__cfg_error(c, q, "expected a string");
      ok = false;
    } else if (!add_name(c, q, it->valuestring, out, outlen)) {
      ok = false;
    }
  }
  return ok;
}

bool mesh__tls_svc_alpn(mesh__cfg_t *c, const cJSON *v, const char *path,
                        char *out, size_t outlen) {
  if (outlen)
    out[0] = '\0';
  if (!v)
    return false;
  if (cJSON_IsString(v)) {
    const char *list = mesh__tls_alpn_preset(v->valuestring);
    if (!list) {
      mesh__cfg_error(c, path,
                      "unknown ALPN preset \"%s\" (expected \"istio-http/1.1\","
                      " \"istio-h2\", \"istio\", or an array of protocol "
                      "names)",
                      v->valuestring);
      return false;
    }
    if (strlen(list) >= outlen)
      return false;
    memcpy(out, list, strlen(list) + 1);
    return true;
  }
  if (cJSON_IsArray(v)) {
    bool ok = explicit_list(c, v, path, out, outlen);
    if (!ok && outlen)
      out[0] = '\0';
    return ok;
  }
  mesh__cfg_error(c, path,
                  "expected a preset name (\"istio-http/1.1\", \"istio-h2\", "
                  "\"istio\") or an array of protocol names");
  return false;
}
