/* SPDX-License-Identifier: Apache-2.0 */
/* The policy model: parse the "authz" section into an immutable set.
 * Validation and construction are one pass, so what `check` accepts is
 * exactly what `init` and reloads build.  Field names follow Istio's
 * AuthorizationPolicy (camelCase), and both the Istio nesting
 * ({"source": {...}}, {"operation": {...}}) and the flat form are read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"

/* ---- from / to / when --------------------------------------------------------- */

/* Accept {"source": {...}} (Istio) or the source object itself. */
static const cJSON *unwrap(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                           const char *wrapper, char *inner) {
  if (!cJSON_IsObject(it)) {
    mesh__cfg_error(b->c, p, "expected an object");
    return NULL;
  }
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(it, wrapper);
  if (w && cJSON_GetArraySize(it) == 1) {
    mesh__cfg_path(inner, p, wrapper);
    return w;
  }
  mesh__strlcpy(inner, p, MESH__PATH_MAX);
  return it;
}

static void source_build(mesh__az_bctx_t *b, const cJSON *it, const char *p0,
                         mesh__az_source_t *s) {
  static const char *const keys[] = {
      "principals",     "notPrincipals",     "namespaces",
      "notNamespaces",  "ipBlocks",          "notIpBlocks",
      "remoteIpBlocks", "notRemoteIpBlocks", NULL};
  char p[MESH__PATH_MAX];
  const cJSON *o = unwrap(b, it, p0, "source", p);
  if (!o || !mesh__cfg_object(b->c, o, p, keys))
    return;
  mesh__az_strs_build(b, o, p, "principals", MESH__AZS_PRINCIPAL,
                      &s->principals);
  mesh__az_strs_build(b, o, p, "notPrincipals", MESH__AZS_PRINCIPAL,
                      &s->not_principals);
  mesh__az_strs_build(b, o, p, "namespaces", MESH__AZS_NAMESPACE,
                      &s->namespaces);
  mesh__az_strs_build(b, o, p, "notNamespaces", MESH__AZS_NAMESPACE,
                      &s->not_namespaces);
  /* Without a trusted proxy in front, the remote address is the peer's:
   * remoteIpBlocks may be given only instead of ipBlocks, not with it. */
  bool remote = cJSON_GetObjectItemCaseSensitive(o, "remoteIpBlocks") ||
                cJSON_GetObjectItemCaseSensitive(o, "notRemoteIpBlocks");
  bool direct = cJSON_GetObjectItemCaseSensitive(o, "ipBlocks") ||
                cJSON_GetObjectItemCaseSensitive(o, "notIpBlocks");
  if (remote && direct) {
    mesh__cfg_error(b->c, p,
                    "use ipBlocks or remoteIpBlocks, not both (without a "
                    "trusted proxy both mean the peer address)");
    return;
  }
  mesh__az_cidrs_build(b, o, p, remote ? "remoteIpBlocks" : "ipBlocks",
                       &s->ip_blocks);
  mesh__az_cidrs_build(b, o, p, remote ? "notRemoteIpBlocks" : "notIpBlocks",
                       &s->not_ip_blocks);
}

static void source_free(mesh__az_source_t *s) {
  mesh__az_strs_free(&s->principals);
  mesh__az_strs_free(&s->not_principals);
  mesh__az_strs_free(&s->namespaces);
  mesh__az_strs_free(&s->not_namespaces);
  free(s->ip_blocks.v);
  free(s->not_ip_blocks.v);
}

static void operation_build(mesh__az_bctx_t *b, const cJSON *it, const char *p0,
                            mesh__az_operation_t *o) {
  static const char *const keys[] = {"hosts",   "notHosts", "methods",
                                     "notMethods", "paths", "notPaths",
                                     "ports",   "notPorts", NULL};
  char p[MESH__PATH_MAX];
  const cJSON *v = unwrap(b, it, p0, "operation", p);
  if (!v || !mesh__cfg_object(b->c, v, p, keys))
    return;
  mesh__az_strs_build(b, v, p, "hosts", MESH__AZS_HOST, &o->hosts);
  mesh__az_strs_build(b, v, p, "notHosts", MESH__AZS_HOST, &o->not_hosts);
  mesh__az_strs_build(b, v, p, "methods", MESH__AZS_METHOD, &o->methods);
  mesh__az_strs_build(b, v, p, "notMethods", MESH__AZS_METHOD, &o->not_methods);
  mesh__az_strs_build(b, v, p, "paths", MESH__AZS_PATH, &o->paths);
  mesh__az_strs_build(b, v, p, "notPaths", MESH__AZS_PATH, &o->not_paths);
  mesh__az_ports_build(b, v, p, "ports", &o->ports);
  mesh__az_ports_build(b, v, p, "notPorts", &o->not_ports);
}

static void operation_free(mesh__az_operation_t *o) {
  mesh__az_strs_free(&o->hosts);
  mesh__az_strs_free(&o->not_hosts);
  mesh__az_strs_free(&o->methods);
  mesh__az_strs_free(&o->not_methods);
  mesh__az_strs_free(&o->paths);
  mesh__az_strs_free(&o->not_paths);
  free(o->ports.v);
  free(o->not_ports.v);
}

static const struct {
  const char *name;
  int key;
} cond_keys[] = {
    {"source.ip", MESH__AZ_K_SOURCE_IP},
    {"remote.ip", MESH__AZ_K_REMOTE_IP},
    {"source.namespace", MESH__AZ_K_SOURCE_NS},
    {"source.principal", MESH__AZ_K_SOURCE_PRINCIPAL},
    {"destination.port", MESH__AZ_K_DEST_PORT},
};

/* Parse "request.headers[Name]" or a fixed key; -1 if unsupported. */
static int cond_key(mesh__az_bctx_t *b, const char *k, char **header) {
  static const char pre[] = "request.headers[";
  size_t n = strlen(k);
  if (strncmp(k, pre, sizeof pre - 1) == 0 && n > sizeof pre &&
      k[n - 1] == ']') {
    const char *name = k + sizeof pre - 1;
    size_t nn = n - sizeof pre;
    if (!mesh__token_valid(name, nn))
      return -1;
    *header = mesh__az_dupn(b, name, nn);
    return MESH__AZ_K_HEADER;
  }
  for (size_t i = 0; i < sizeof cond_keys / sizeof cond_keys[0]; i++)
    if (strcmp(cond_keys[i].name, k) == 0)
      return cond_keys[i].key;
  return -1;
}

static void cond_build(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                       mesh__az_cond_t *w) {
  static const char *const keys[] = {"key", "values", "notValues", NULL};
  if (!mesh__cfg_object(b->c, it, p, keys))
    return;
  const char *k;
  char kp[MESH__PATH_MAX];
  mesh__cfg_path(kp, p, "key");
  if (!mesh__cfg_string(b->c, it, p, "key", NULL, &k) || !k) {
    if (!cJSON_GetObjectItemCaseSensitive(it, "key"))
      mesh__cfg_error(b->c, kp, "required");
    return;
  }
  w->key = cond_key(b, k, &w->header);
  if (w->key < 0) {
    mesh__cfg_error(b->c, kp,
                    "unsupported condition \"%s\" (supported: "
                    "request.headers[NAME], source.ip, remote.ip, "
                    "source.namespace, source.principal, destination.port)",
                    k);
    return;
  }
  if (!cJSON_GetObjectItemCaseSensitive(it, "values") &&
      !cJSON_GetObjectItemCaseSensitive(it, "notValues")) {
    mesh__cfg_error(b->c, p, "at least one of values or notValues is required");
    return;
  }
  switch (w->key) {
  case MESH__AZ_K_SOURCE_IP:
  case MESH__AZ_K_REMOTE_IP:
    mesh__az_cidrs_build(b, it, p, "values", &w->ips);
    mesh__az_cidrs_build(b, it, p, "notValues", &w->not_ips);
    break;
  case MESH__AZ_K_DEST_PORT:
    mesh__az_ports_build(b, it, p, "values", &w->ports);
    mesh__az_ports_build(b, it, p, "notValues", &w->not_ports);
    break;
  default: {
    int ctx = w->key == MESH__AZ_K_SOURCE_PRINCIPAL ? MESH__AZS_PRINCIPAL
              : w->key == MESH__AZ_K_SOURCE_NS      ? MESH__AZS_NAMESPACE
                                                    : MESH__AZS_PLAIN;
    mesh__az_strs_build(b, it, p, "values", ctx, &w->values);
    mesh__az_strs_build(b, it, p, "notValues", ctx, &w->not_values);
  }
  }
}

static void cond_free(mesh__az_cond_t *w) {
  free(w->header);
  mesh__az_strs_free(&w->values);
  mesh__az_strs_free(&w->not_values);
  free(w->ips.v);
  free(w->not_ips.v);
  free(w->ports.v);
  free(w->not_ports.v);
}

/* ---- rules and policies ----------------------------------------------------
 */

/* Build an array-of-objects field: allocate n items, call fn on each. */
typedef void (*item_fn)(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                        void *out);

static void *items_build(mesh__az_bctx_t *b, const cJSON *obj, const char *path,
                         const char *key, size_t size, item_fn fn,
                         size_t *count) {
  *count = 0;
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!arr)
    return NULL;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(b->c, p, "expected an array");
    return NULL;
  }
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return NULL;
  char *v = mesh__az_zalloc(b, (size_t)n, size);
  if (!v)
    return NULL;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    mesh__az_idx_path(p, path, key, i++);
    fn(b, it, p, v + *count * size);
    (*count)++;
  }
  return v;
}

static void source_item(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                        void *o) {
  source_build(b, it, p, o);
}
static void operation_item(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                           void *o) {
  operation_build(b, it, p, o);
}
static void cond_item(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                      void *o) {
  cond_build(b, it, p, o);
}

static void rule_item(mesh__az_bctx_t *b, const cJSON *it, const char *p,
                      void *o) {
  static const char *const keys[] = {"from", "to", "when", NULL};
  mesh__az_rule_t *r = o;
  if (!mesh__cfg_object(b->c, it, p, keys))
    return;
  r->from =
      items_build(b, it, p, "from", sizeof *r->from, source_item, &r->nfrom);
  r->to = items_build(b, it, p, "to", sizeof *r->to, operation_item, &r->nto);
  r->when =
      items_build(b, it, p, "when", sizeof *r->when, cond_item, &r->nwhen);
}

static void rule_free(mesh__az_rule_t *r) {
  for (size_t i = 0; i < r->nfrom; i++)
    source_free(&r->from[i]);
  for (size_t i = 0; i < r->nto; i++)
    operation_free(&r->to[i]);
  for (size_t i = 0; i < r->nwhen; i++)
    cond_free(&r->when[i]);
  free(r->from);
  free(r->to);
  free(r->when);
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128)
    return false;
  for (; *s; s++) {
    char ch = *s;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
      return false;
  }
  return true;
}

static const char *const actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};
static const char *const providers[] = {"opa", "callback", NULL};

typedef struct pctx {
  mesh__az_bctx_t *b;
  bool have_opa;
} pctx_t;

static void policy_build(pctx_t *pc, const cJSON *it, const char *p,
                         mesh__az_policy_t *pol) {
  static const char *const keys[] = {"name", "action", "provider", "rules",
                                     NULL};
  mesh__az_bctx_t *b = pc->b;
  if (!mesh__cfg_object(b->c, it, p, keys))
    return;
  const char *name;
  char np[MESH__PATH_MAX];
  mesh__cfg_path(np, p, "name");
  if (!mesh__cfg_string(b->c, it, p, "name", NULL, &name)) {
    if (!cJSON_GetObjectItemCaseSensitive(it, "name"))
      mesh__cfg_error(b->c, np, "required");
  } else if (!valid_name(name)) {
    mesh__cfg_error(b->c, np,
                    "invalid policy name (1-128 of A-Z a-z 0-9 - _ .)");
  } else {
    pol->name = mesh__az_dupn(b, name, strlen(name));
  }
  mesh__cfg_enum(b->c, it, p, "action", actions, MESH__AZ_ALLOW, &pol->action);
  int def = pc->have_opa ? MESH__AZ_PROVIDER_OPA : MESH__AZ_PROVIDER_CALLBACK;
  bool given =
      mesh__cfg_enum(b->c, it, p, "provider", providers, def, &pol->provider);
  char pp[MESH__PATH_MAX];
  mesh__cfg_path(pp, p, "provider");
  if (given && pol->action != MESH__AZ_CUSTOM)
    mesh__cfg_error(b->c, pp, "only a CUSTOM policy has a provider");
  if (pol->action == MESH__AZ_CUSTOM &&
      pol->provider == MESH__AZ_PROVIDER_OPA && !pc->have_opa)
    mesh__cfg_error(b->c, pp, "provider \"opa\" needs the authz.opa section");
  pol->rules = items_build(b, it, p, "rules", sizeof *pol->rules, rule_item,
                           &pol->nrules);
}

static void opa_build(mesh__az_bctx_t *b, const cJSON *o, const char *path,
                      mesh__az_opa_cfg_t *cfg) {
  static const char *const keys[] = {"url", "timeout_ms", "cache_ttl_ms",
                                     "cache_size", "fail_open", NULL};
  if (!mesh__cfg_object(b->c, o, path, keys))
    return;
  const char *url;
  char up[MESH__PATH_MAX];
  mesh__cfg_path(up, path, "url");
  if (!mesh__cfg_string(b->c, o, path, "url", NULL, &url)) {
    if (!cJSON_GetObjectItemCaseSensitive(o, "url"))
      mesh__cfg_error(b->c, up, "required");
  } else if (strncmp(url, "http://", 7) != 0 &&
             strncmp(url, "https://", 8) != 0) {
    mesh__cfg_error(b->c, up, "expected an http:// or https:// URL");
  } else if (!strstr(url, "/v1/data")) {
    mesh__cfg_error(b->c, up,
                    "expected the Data API path, e.g. "
                    "http://127.0.0.1:8181/v1/data/mesh/allow");
  } else {
    cfg->url = mesh__az_dupn(b, url, strlen(url));
  }
  mesh__cfg_int(b->c, o, path, "timeout_ms", 1, 60000, 200, &cfg->timeout_ms);
  mesh__cfg_int(b->c, o, path, "cache_ttl_ms", 0, 86400000, 5000,
                &cfg->cache_ttl_ms);
  mesh__cfg_int(b->c, o, path, "cache_size", 0, 1 << 20, 1024,
                &cfg->cache_size);
  mesh__cfg_bool(b->c, o, path, "fail_open", false, &cfg->fail_open);
}

static void set_free(mesh__authz_set_t *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++) {
    mesh__az_policy_t *p = &s->policies[i];
    for (size_t j = 0; j < p->nrules; j++)
      rule_free(&p->rules[j]);
    free(p->rules);
    free(p->name);
  }
  free(s->policies);
  free(s->opa.url);
  free(s);
}

static void check_unique_names(mesh__az_bctx_t *b, const mesh__authz_set_t *s,
                               const char *path) {
  for (size_t i = 0; i < s->n; i++)
    for (size_t j = 0; j < i; j++)
      if (s->policies[i].name && s->policies[j].name &&
          strcmp(s->policies[i].name, s->policies[j].name) == 0) {
        char p[MESH__PATH_MAX];
        snprintf(p, sizeof p, "%s.policies[%zu].name", path, i);
        mesh__cfg_error(b->c, p, "duplicate policy name \"%s\"",
                        s->policies[i].name);
      }
}

static void policies_build(pctx_t *pc, const cJSON *cfg, const char *path,
                           mesh__authz_set_t *s) {
  mesh__az_bctx_t *b = pc->b;
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(cfg, "policies");
  if (!arr)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "policies");
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(b->c, p, "expected an array of policies");
    return;
  }
  int n = cJSON_GetArraySize(arr);
  s->policies = mesh__az_zalloc(b, (size_t)n, sizeof *s->policies);
  if (!s->policies)
    return;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char ip[MESH__PATH_MAX];
    mesh__az_idx_path(ip, path, "policies", (int)s->n);
    mesh__az_policy_t *pol = &s->policies[s->n++];
    policy_build(pc, it, ip, pol);
    size_t *count[] = {&s->nallow, &s->ndeny, &s->naudit, &s->ncustom};
    (*count[pol->action])++;
  }
  check_unique_names(b, s, path);
}

static const char *const protocols[] = {"http", "tcp", NULL};

int mesh__authz_set_build(mesh__cfg_t *c, const cJSON *cfg, const char *path,
                          mesh__authz_set_t **out) {
  static const char *const keys[] = {"policies", "dry_run",
                                     "protocol", "opa",
                                     "path_normalization", NULL};
  if (out)
    *out = NULL;
  if (!cfg)
    return MESH_OK;
  int nerr0 = c->nerr;
  if (!mesh__cfg_object(c, cfg, path, keys))
    return MESH_ERR_CONFIG;
  mesh__az_bctx_t b = {.c = c};
  mesh__authz_set_t *s = mesh__az_zalloc(&b, 1, sizeof *s);
  if (!s)
    return MESH_ERR_NOMEM;
  atomic_init(&s->refs, 1);
  mesh__cfg_bool(c, cfg, path, "dry_run", false, &s->dry_run);
  mesh__cfg_enum(c, cfg, path, "protocol", protocols, MESH__AZ_PROTO_HTTP,
                 &s->protocol);
  s->path_norm_given =
      mesh__cfg_enum(c, cfg, path, "path_normalization",
                     mesh__path_norm_names(), MESH__PATH_NORM_DEFAULT,
                     &s->path_norm);
  const cJSON *opa = cJSON_GetObjectItemCaseSensitive(cfg, "opa");
  if (opa) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "opa");
    opa_build(&b, opa, p, &s->opa);
    s->have_opa = true;
  }
  pctx_t pc = {.b = &b, .have_opa = s->have_opa};
  policies_build(&pc, cfg, path, s);
  int rc = b.oom ? MESH_ERR_NOMEM
           : c->nerr > nerr0 ? MESH_ERR_CONFIG
                             : MESH_OK;
  if (rc != MESH_OK || !out) {
    set_free(s);
    return rc;
  }
  *out = s;
  return MESH_OK;
}

void mesh__authz_set_ref(mesh__authz_set_t *s) {
  if (s)
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void mesh__authz_set_unref(mesh__authz_set_t *s) {
  if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
    set_free(s);
}
