/* SPDX-License-Identifier: Apache-2.0 */
/* The xDS bootstrap in gRPC's format (gRFC A27, A29 certificate providers,
 * A36 server_listener_resource_name_template), read from the `xds`
 * section's "bootstrap" (a file name or an inline object), else
 * $GRPC_XDS_BOOTSTRAP (a file), else $GRPC_XDS_BOOTSTRAP_CONFIG (JSON
 * text).  gRPC ignores keys it does not know; libmesh refuses them, except
 * the ones gRPC and Istio write that carry nothing libmesh would need
 * ("UserAgentVersionType" in Istio's node; an empty "authorities"), so an
 * Istio-generated bootstrap parses unchanged and a setting is never lost. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "identity/identity.h"
#include "xds/xds.h"

#define BOOTSTRAP_MAX (1 << 20)

void mesh__xds_bootstrap_free(mesh__xds_bootstrap_t *b) {
  if (!b)
    return;
  for (size_t i = 0; i < b->nservers; i++) {
    free(b->servers[i].uri);
    free(b->servers[i].tls_ca_file);
    free(b->servers[i].tls_cert_file);
    free(b->servers[i].tls_key_file);
  }
  free(b->servers);
  for (size_t i = 0; i < b->nproviders; i++) {
    free(b->providers[i].name);
    free(b->providers[i].cert_file);
    free(b->providers[i].key_file);
    free(b->providers[i].ca_file);
    free(b->providers[i].map_file);
  }
  free(b->providers);
  free(b->node_id);
  free(b->node_cluster);
  free(b->region);
  free(b->zone);
  free(b->subzone);
  cJSON_Delete(b->node_metadata);
  free(b->server_listener_template);
  free(b);
}

static char *dup_str(mesh__cfg_t *c, const cJSON *o, const char *path,
                     const char *key, bool required) {
  const char *s = NULL;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  mesh__cfg_string(c, o, path, key, NULL, &s);
  if (required && (!s || !*s)) {
    if (!cJSON_GetObjectItemCaseSensitive(o, key))
      mesh__cfg_error(c, p, "required");
    else if (s)
      mesh__cfg_error(c, p, "must not be empty");
    return NULL;
  }
  return s ? mesh__strdup(s) : NULL;
}

/* "600s", "1.5s" (proto3 JSON Duration) to ms. */
static bool duration_ms(const char *s, int64_t *ms) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || strcmp(end, "s") != 0 || v < 0 || v > 315576000000.0)
    return false;
  *ms = (int64_t)(v * 1000.0 + 0.999);
  return true;
}

/* The "tls" channel credentials' config (gRFC A65): the three files.
 * libmesh's TLS is mutual and SPIFFE-verified (tls/verify.c), so the
 * certificate must be an X.509-SVID and the CA file is the bundle of its
 * trust domain; the three go together.  Without a config the mesh's own
 * identity is used.  refresh_interval is accepted and checked: the files
 * are read again at every (re)connection, which is when libmesh needs
 * them (gRPC's watcher re-reads them on that period for the same end). */
static void tls_config(mesh__cfg_t *c, const cJSON *cr, const char *path,
                       mesh__xds_server_t *out) {
  static const char *const keys[] = {"ca_certificate_file",
      "certificate_file", "private_key_file", "refresh_interval", NULL};
  const cJSON *cf = cJSON_GetObjectItemCaseSensitive(cr, "config");
  if (!cf)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "config");
  if (!mesh__cfg_object(c, cf, p, keys))
    return;
  out->tls_ca_file = dup_str(c, cf, p, "ca_certificate_file", false);
  out->tls_cert_file = dup_str(c, cf, p, "certificate_file", false);
  out->tls_key_file = dup_str(c, cf, p, "private_key_file", false);
  const char *ri = NULL;
  int64_t ms;
  mesh__cfg_string(c, cf, p, "refresh_interval", NULL, &ri);
  char q[MESH__PATH_MAX];
  mesh__cfg_path(q, p, "refresh_interval");
  if (ri && !duration_ms(ri, &ms))
    mesh__cfg_error(c, q, "a duration such as \"600s\"");
  int n = !!out->tls_ca_file + !!out->tls_cert_file + !!out->tls_key_file;
  if (n != 0 && n != 3)
    mesh__cfg_error(c, p, "ca_certificate_file, certificate_file and "
                    "private_key_file go together (libmesh's TLS is mutual "
                    "and verifies SPIFFE IDs; omit all three to use the "
                    "mesh identity)");
  const char *const names[] = {"ca_certificate_file", "certificate_file",
                               "private_key_file"};
  const char *const got[] = {out->tls_ca_file, out->tls_cert_file,
                             out->tls_key_file};
  for (size_t i = 0; i < 3; i++) {
    mesh__cfg_path(q, p, names[i]);
    if (got[i] && !*got[i])
      mesh__cfg_error(c, q, "must not be empty");
    else if (got[i] && access(got[i], R_OK) != 0)
      mesh__cfg_error(c, q, "cannot read \"%.200s\": %s", got[i],
                      strerror(errno));
  }
  if (n != 3 || c->nerr)
    return;
  /* Load them once now, so that a bad file is a config error here and
   * not a retry loop later; the connection loads them again. */
  mesh__creds_src_t src = {.cert = out->tls_cert_file,
                           .key = out->tls_key_file,
                           .bundle = out->tls_ca_file};
  mesh__creds_t *creds = NULL;
  mesh_status_t st;
  if (mesh__creds_load(&src, 1, &creds, &st) != MESH_OK)
    mesh__cfg_error(c, p, "%s", st.message);
  mesh__creds_release(creds);
}

/* channel_creds: the first type libmesh supports wins (gRPC's rule);
 * unknown types before it are skipped, as gRPC skips them. */
static void server(mesh__cfg_t *c, const cJSON *s, const char *path,
                   mesh__xds_server_t *out) {
  static const char *const keys[] = {"server_uri", "channel_creds",
                                     "server_features", NULL};
  if (!mesh__cfg_object(c, s, path, keys))
    return;
  out->uri = dup_str(c, s, path, "server_uri", true);
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "channel_creds");
  const cJSON *cr = cJSON_GetObjectItemCaseSensitive(s, "channel_creds");
  bool found = false;
  if (!cJSON_IsArray(cr) || !cJSON_GetArraySize(cr)) {
    mesh__cfg_error(c, p, "required: a non-empty array");
  } else {
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, cr) {
      const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
      char q[MESH__PATH_MAX];
      if (snprintf(q, sizeof q, "%s[%d]", p, i++) >= (int)sizeof q)
        q[sizeof q - 1] = '\0'; /* a path that long is cut, not lost */
      if (found || !cJSON_IsString(t))
        continue;
      if (strcmp(t->valuestring, "insecure") == 0 ||
          strcmp(t->valuestring, "tls") == 0) {
        found = true;
        out->tls = t->valuestring[0] == 't';
        if (out->tls)
          tls_config(c, it, q, out);
      }
    }
    if (!found)
      mesh__cfg_error(c, p, "no supported type (libmesh supports insecure "
                      "and tls)");
  }
  char u[MESH__PATH_MAX];
  mesh__cfg_path(u, path, "server_uri");
  if (out->tls && out->uri && strncmp(out->uri, "unix:", 5) == 0)
    mesh__cfg_error(c, u, "channel_creds \"tls\" needs a host:port target "
                    "(a unix socket is local: use \"insecure\")");
  const cJSON *f = NULL;
  mesh__cfg_strings(c, s, path, "server_features", &f);
  const cJSON *it;
  cJSON_ArrayForEach(it, f) {
    if (strcmp(it->valuestring, "ignore_resource_deletion") == 0)
      out->ignore_resource_deletion = true;
  }
}

static void provider(mesh__cfg_t *c, const cJSON *pv, const char *path,
                     mesh__xds_certprov_t *out) {
  static const char *const keys[] = {"plugin_name", "config", NULL};
  static const char *const ckeys[] = {"certificate_file", "private_key_file",
      "ca_certificate_file", "refresh_interval",
      "spiffe_trust_bundle_map_file", NULL};
  out->name = mesh__strdup(pv->string);
  out->refresh_ms = 600000; /* gRPC's default: 10 minutes */
  if (!mesh__cfg_object(c, pv, path, keys))
    return;
  const char *plugin = NULL;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "plugin_name");
  mesh__cfg_string(c, pv, path, "plugin_name", NULL, &plugin);
  if (!plugin || strcmp(plugin, "file_watcher") != 0) {
    mesh__cfg_error(c, p, "only \"file_watcher\" is supported");
    return;
  }
  mesh__cfg_path(p, path, "config");
  const cJSON *cf = cJSON_GetObjectItemCaseSensitive(pv, "config");
  if (!mesh__cfg_object(c, cf, p, ckeys))
    return;
  out->cert_file = dup_str(c, cf, p, "certificate_file", false);
  out->key_file = dup_str(c, cf, p, "private_key_file", false);
  out->ca_file = dup_str(c, cf, p, "ca_certificate_file", false);
  out->map_file = dup_str(c, cf, p, "spiffe_trust_bundle_map_file", false);
  char q[MESH__PATH_MAX];
  mesh__cfg_path(q, p, "certificate_file");
  if (!out->cert_file != !out->key_file)
    mesh__cfg_error(c, q, "certificate_file and private_key_file go "
                    "together");
  if (!out->cert_file && !out->ca_file && !out->map_file)
    mesh__cfg_error(c, p, "neither certificates nor a CA file");
  const char *const files[] = {"certificate_file", "private_key_file",
                               "ca_certificate_file",
                               "spiffe_trust_bundle_map_file"};
  char *const got[] = {out->cert_file, out->key_file, out->ca_file,
                       out->map_file};
  for (size_t i = 0; i < 4; i++) {
    mesh__cfg_path(q, p, files[i]);
    if (got[i] && !*got[i])
      mesh__cfg_error(c, q, "must not be empty");
  }
  const char *ri = NULL;
  mesh__cfg_path(q, p, "refresh_interval");
  if (mesh__cfg_string(c, cf, p, "refresh_interval", NULL, &ri) && ri &&
      !duration_ms(ri, &out->refresh_ms))
    mesh__cfg_error(c, q, "expected a duration in seconds like \"600s\" "
                    "or \"0.5s\", got \"%.40s\"", ri);
  else if (ri && (out->refresh_ms < 10 || out->refresh_ms > 86400000))
    mesh__cfg_error(c, q, "must be between 0.01s and 86400s, got \"%.40s\"",
                    ri);
}

const mesh__xds_certprov_t *mesh__xds_certprov_find(
    const mesh__xds_bootstrap_t *b, const char *name) {
  for (size_t i = 0; b && name && i < b->nproviders; i++)
    if (b->providers[i].name && !strcmp(b->providers[i].name, name))
      return &b->providers[i];
  return NULL;
}

static void node(mesh__cfg_t *c, const cJSON *n, const char *path,
                 mesh__xds_bootstrap_t *b) {
  static const char *const keys[] = {"id", "cluster", "metadata", "locality",
      "UserAgentVersionType", "user_agent_name", "user_agent_version", NULL};
  static const char *const lkeys[] = {"region", "zone", "sub_zone", NULL};
  if (!n)
    return;
  if (!mesh__cfg_object(c, n, path, keys))
    return;
  b->node_id = dup_str(c, n, path, "id", false);
  b->node_cluster = dup_str(c, n, path, "cluster", false);
  const cJSON *md = cJSON_GetObjectItemCaseSensitive(n, "metadata");
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "metadata");
  if (md && !cJSON_IsObject(md))
    mesh__cfg_error(c, p, "expected an object");
  else if (md)
    b->node_metadata = cJSON_Duplicate(md, 1);
  const cJSON *l = cJSON_GetObjectItemCaseSensitive(n, "locality");
  mesh__cfg_path(p, path, "locality");
  if (l && mesh__cfg_object(c, l, p, lkeys)) {
    b->region = dup_str(c, l, p, "region", false);
    b->zone = dup_str(c, l, p, "zone", false);
    b->subzone = dup_str(c, l, p, "sub_zone", false);
  }
}

static void servers(mesh__cfg_t *c, const cJSON *doc, const char *path,
                    mesh__xds_bootstrap_t *b) {
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "xds_servers");
  const cJSON *xs = cJSON_GetObjectItemCaseSensitive(doc, "xds_servers");
  int n = cJSON_GetArraySize(xs);
  if (!cJSON_IsArray(xs) || n == 0) {
    mesh__cfg_error(c, p, "required: a non-empty array");
    return;
  }
  b->servers = calloc((size_t)n, sizeof *b->servers);
  const cJSON *it;
  cJSON_ArrayForEach(it, xs) {
    char q[MESH__PATH_MAX];
    snprintf(q, sizeof q, "%.200s[%zu]", p, b->nservers);
    if (b->servers)
      server(c, it, q, &b->servers[b->nservers++]);
  }
}

static void providers(mesh__cfg_t *c, const cJSON *doc, const char *path,
                      mesh__xds_bootstrap_t *b) {
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "certificate_providers");
  const cJSON *cp = cJSON_GetObjectItemCaseSensitive(doc,
                                                      "certificate_providers");
  if (!cp)
    return;
  if (!cJSON_IsObject(cp)) {
    mesh__cfg_error(c, p, "expected an object");
    return;
  }
  b->providers = calloc((size_t)cJSON_GetArraySize(cp) + 1,
                        sizeof *b->providers);
  const cJSON *it;
  cJSON_ArrayForEach(it, cp) {
    char q[MESH__PATH_MAX];
    mesh__cfg_path(q, p, it->string);
    if (b->providers)
      provider(c, it, q, &b->providers[b->nproviders++]);
  }
}

mesh__xds_bootstrap_t *mesh__xds_bootstrap_parse(mesh__cfg_t *c,
                                                 const cJSON *doc,
                                                 const char *path) {
  static const char *const keys[] = {"xds_servers", "node",
      "certificate_providers", "server_listener_resource_name_template",
      "client_default_listener_resource_name_template", "authorities", NULL};
  int before = c->nerr;
  if (!mesh__cfg_object(c, doc, path, keys))
    return NULL;
  mesh__xds_bootstrap_t *b = calloc(1, sizeof *b);
  if (!b) {
    mesh__cfg_error(c, path, "out of memory");
    return NULL;
  }
  servers(c, doc, path, b);
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "node");
  node(c, cJSON_GetObjectItemCaseSensitive(doc, "node"), p, b);
  providers(c, doc, path, b);
  b->server_listener_template =
      dup_str(c, doc, path, "server_listener_resource_name_template", false);
  const char *t = NULL;
  mesh__cfg_path(p, path, "client_default_listener_resource_name_template");
  if (mesh__cfg_string(c, doc, path,
                       "client_default_listener_resource_name_template", NULL,
                       &t) && t && strcmp(t, "%s") != 0)
    mesh__cfg_error(c, p, "only \"%%s\" is supported (no xDS federation)");
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "authorities");
  mesh__cfg_path(p, path, "authorities");
  if (a && (!cJSON_IsObject(a) || cJSON_GetArraySize(a) > 0))
    mesh__cfg_error(c, p, "xDS federation (gRFC A47) is not supported");
  if (c->nerr != before) {
    mesh__xds_bootstrap_free(b);
    return NULL;
  }
  return b;
}

static cJSON *parse_text(mesh__cfg_t *c, const char *text, size_t len,
                         const char *path) {
  mesh__json_err_t e;
  cJSON *doc = mesh__json_parse(text, len, &e);
  if (!doc)
    mesh__cfg_error(c, path, "%s", e.message);
  return doc;
}

static cJSON *read_file(mesh__cfg_t *c, const char *file, const char *path) {
  FILE *f = fopen(file, "rb");
  if (!f) {
    mesh__cfg_error(c, path, "cannot open %s: %s", file, strerror(errno));
    return NULL;
  }
  char *buf = malloc(BOOTSTRAP_MAX + 1);
  size_t n = buf ? fread(buf, 1, BOOTSTRAP_MAX + 1, f) : 0;
  fclose(f);
  cJSON *doc = NULL;
  if (!buf)
    mesh__cfg_error(c, path, "out of memory");
  else if (n > BOOTSTRAP_MAX)
    mesh__cfg_error(c, path, "%s: over %d bytes", file, BOOTSTRAP_MAX);
  else
    doc = parse_text(c, buf, n, path);
  free(buf);
  return doc;
}

mesh__xds_bootstrap_t *mesh__xds_bootstrap_load(mesh__cfg_t *c,
                                                const cJSON *section,
                                                const char *path) {
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "bootstrap");
  const cJSON *bs = section ? cJSON_GetObjectItemCaseSensitive(section,
                                                              "bootstrap")
                            : NULL;
  if (bs && cJSON_IsObject(bs))
    return mesh__xds_bootstrap_parse(c, bs, p);
  cJSON *doc = NULL;
  const char *env;
  if (bs && cJSON_IsString(bs)) {
    doc = read_file(c, bs->valuestring, p);
  } else if (bs) {
    mesh__cfg_error(c, p, "expected a file name or an object");
    return NULL;
  } else if ((env = getenv("GRPC_XDS_BOOTSTRAP")) && *env) {
    snprintf(p, sizeof p, "GRPC_XDS_BOOTSTRAP");
    doc = read_file(c, env, p);
  } else if ((env = getenv("GRPC_XDS_BOOTSTRAP_CONFIG")) && *env) {
    snprintf(p, sizeof p, "GRPC_XDS_BOOTSTRAP_CONFIG");
    doc = parse_text(c, env, strlen(env), p);
  } else {
    mesh__cfg_error(c, p, "no bootstrap: set xds.bootstrap, "
                    "GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG");
    return NULL;
  }
  if (!doc)
    return NULL;
  mesh__xds_bootstrap_t *b = mesh__xds_bootstrap_parse(c, doc, p);
  cJSON_Delete(doc);
  return b;
}
