/* The policy model: parse the "authz" section into an immutable set.
 * Validation and construction are one pass, so what `check` accepts is
 * exactly what `init` and reloads build.  Field names follow Istio's
 * AuthorizationPolicy (camelCase), and both the Istio nesting
 * ({"source": {...}}, {"operation": {...}}) and the flat form are read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"

typedef struct bctx {
  mesh__cfg_t *c;
  bool oom;
} bctx_t;

static void *zalloc(bctx_t *b, size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p)
    b->oom = true;
  return p;
}

static char *dupn(bctx_t *b, const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) {
    b->oom = true;
    return NULL;
  }
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* "base.key[i]" (or "base[i]"), truncated quietly like every config path. */
static void idx_path(char *out, const char *base, const char *key, int i) {
  if (key)
    mesh__cfg_path(out, base, key);
  else
    mesh__strlcpy(out, base, MESH__PATH_MAX);
  size_t len = strlen(out);
  if (len + 16 < MESH__PATH_MAX)
    snprintf(out + len, MESH__PATH_MAX - len, "[%d]", i);
}

/* ---- string matchers ------------------------------------------------------ */

enum str_ctx { S_PLAIN, S_PRINCIPAL, S_PATH, S_METHOD, S_HOST, S_NAMESPACE };

static void strip_spiffe(const char **s, size_t *n) {
  if (*n >= 9 && strncmp(*s, "spiffe://", 9) == 0) {
    *s += 9;
    *n -= 9;
  }
}

/* Istio allows a single '*' at the start or the end (or alone). */
static bool str_parse(bctx_t *b, const char *p, const char *s, int ctx,
                      mesh__az_str_t *out) {
  size_t n = strlen(s);
  if (n == 0) {
    mesh__cfg_error(b->c, p, "empty value");
    return false;
  }
  out->icase = ctx == S_HOST;
  if (n == 1 && s[0] == '*') {
    out->kind = MESH__AZ_PRESENCE;
  } else if (s[n - 1] == '*') {
    out->kind = MESH__AZ_PREFIX;
    n--;
  } else if (s[0] == '*') {
    out->kind = MESH__AZ_SUFFIX;
    s++;
    n--;
  } else {
    out->kind = MESH__AZ_EXACT;
  }
  if (out->kind != MESH__AZ_PRESENCE && memchr(s, '*', n)) {
    mesh__cfg_error(b->c, p,
                    "\"*\" is allowed only at the start or the end of \"%s\"",
                    s);
    return false;
  }
  if (ctx == S_PRINCIPAL && out->kind != MESH__AZ_SUFFIX)
    strip_spiffe(&s, &n);
  if (ctx == S_PATH && out->kind != MESH__AZ_SUFFIX &&
      out->kind != MESH__AZ_PRESENCE && s[0] != '/') {
    mesh__cfg_error(b->c, p, "a path must start with \"/\" or \"*\"");
    return false;
  }
  if (ctx == S_METHOD && out->kind == MESH__AZ_EXACT &&
      !mesh__token_valid(s, n)) {
    mesh__cfg_error(b->c, p, "\"%s\" is not an HTTP method token", s);
    return false;
  }
  if (ctx == S_NAMESPACE && memchr(s, '/', n)) {
    mesh__cfg_error(b->c, p, "a namespace cannot contain \"/\"");
    return false;
  }
  out->s = dupn(b, s, n);
  out->n = n;
  return out->s != NULL;
}

static void strs_build(bctx_t *b, const cJSON *obj, const char *path,
                       const char *key, int ctx, mesh__az_strs_t *out) {
  const cJSON *arr;
  if (!mesh__cfg_strings(b->c, obj, path, key, &arr) || !arr)
    return;
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return;
  out->v = zalloc(b, (size_t)n, sizeof *out->v);
  if (!out->v)
    return;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    char p[MESH__PATH_MAX];
    idx_path(p, path, key, i++);
    if (str_parse(b, p, it->valuestring, ctx, &out->v[out->n]))
      out->n++;
  }
}

static void strs_free(mesh__az_strs_t *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i].s);
  free(s->v);
}

/* ---- IP blocks and ports --------------------------------------------------- */

static void cidrs_build(bctx_t *b, const cJSON *obj, const char *path,
                        const char *key, mesh__az_cidrs_t *out) {
  const cJSON *arr;
  if (!mesh__cfg_strings(b->c, obj, path, key, &arr) || !arr)
    return;
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return;
  mesh__cidr_t *v = zalloc(b, (size_t)n, sizeof *v);
  if (!v)
    return;
  out->v = v;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    char p[MESH__PATH_MAX];
    idx_path(p, path, key, i++);
    if (mesh__cidr_parse(it->valuestring, &v[out->n]) == MESH_OK)
      out->n++;
    else
      mesh__cfg_error(b->c, p,
                      "\"%s\" is not an IP address or CIDR block "
                      "(e.g. \"10.0.0.0/8\", \"2001:db8::/32\")",
                      it->valuestring);
  }
}

/* A port as Istio spells it ("8080") or as a JSON number. */
static int port_value(const cJSON *it) {
  if (cJSON_IsNumber(it)) {
    double d = it->valuedouble;
    return (d >= 0 && d <= 65535 && d == (double)(int)d) ? (int)d : -1;
  }
  if (!cJSON_IsString(it) || !it->valuestring[0] ||
      strlen(it->valuestring) > 5)
    return -1;
  int v = 0;
  for (const char *s = it->valuestring; *s; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
  }
  return v <= 65535 ? v : -1;
}

static void ports_build(bctx_t *b, const cJSON *obj, const char *path,
                        const char *key, mesh__az_ports_t *out) {
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!arr)
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(b->c, p, "expected an array of ports");
    return;
  }
  int n = cJSON_GetArraySize(arr);
  if (n == 0)
    return;
  out->v = zalloc(b, (size_t)n, sizeof *out->v);
  if (!out->v)
    return;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    idx_path(p, path, key, i++);
    int v = port_value(it);
    if (v < 0)
      mesh__cfg_error(b->c, p, "expected a port number 0-65535");
    else
      out->v[out->n++] = v;
  }
}

/* ---- from / to / when --------------------------------------------------------- */

/* Accept {"source": {...}} (Istio) or the source object itself. */
static const cJSON *unwrap(bctx_t *b, const cJSON *it, const char *p,
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

static void source_build(bctx_t *b, const cJSON *it, const char *p0,
                         mesh__az_source_t *s) {
  static const char *const keys[] = {
      "principals",     "notPrincipals",     "namespaces", "notNamespaces",
      "ipBlocks",       "notIpBlocks",       "remoteIpBlocks",
      "notRemoteIpBlocks", NULL};
  char p[MESH__PATH_MAX];
  const cJSON *o = unwrap(b, it, p0, "source", p);
  if (!o || !mesh__cfg_object(b->c, o, p, keys))
    return;
  strs_build(b, o, p, "principals", S_PRINCIPAL, &s->principals);
  strs_build(b, o, p, "notPrincipals", S_PRINCIPAL, &s->not_principals);
  strs_build(b, o, p, "namespaces", S_NAMESPACE, &s->namespaces);
  strs_build(b, o, p, "notNamespaces", S_NAMESPACE, &s->not_namespaces);
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
  cidrs_build(b, o, p, remote ? "remoteIpBlocks" : "ipBlocks", &s->ip_blocks);
  cidrs_build(b, o, p, remote ? "notRemoteIpBlocks" : "notIpBlocks",
              &s->not_ip_blocks);
}

static void source_free(mesh__az_source_t *s) {
  strs_free(&s->principals);
  strs_free(&s->not_principals);
  strs_free(&s->namespaces);
  strs_free(&s->not_namespaces);
  free(s->ip_blocks.v);
  free(s->not_ip_blocks.v);
}

static void operation_build(bctx_t *b, const cJSON *it, const char *p0,
                            mesh__az_operation_t *o) {
  static const char *const keys[] = {"hosts",   "notHosts", "methods",
                                     "notMethods", "paths", "notPaths",
                                     "ports",   "notPorts", NULL};
  char p[MESH__PATH_MAX];
  const cJSON *v = unwrap(b, it, p0, "operation", p);
  if (!v || !mesh__cfg_object(b->c, v, p, keys))
    return;
  strs_build(b, v, p, "hosts", S_HOST, &o->hosts);
  strs_build(b, v, p, "notHosts", S_HOST, &o->not_hosts);
  strs_build(b, v, p, "methods", S_METHOD, &o->methods);
  strs_build(b, v, p, "notMethods", S_METHOD, &o->not_methods);
  strs_build(b, v, p, "paths", S_PATH, &o->paths);
  strs_build(b, v, p, "notPaths", S_PATH, &o->not_paths);
  ports_build(b, v, p, "ports", &o->ports);
  ports_build(b, v, p, "notPorts", &o->not_ports);
}

static void operation_free(mesh__az_operation_t *o) {
  strs_free(&o->hosts);
  strs_free(&o->not_hosts);
  strs_free(&o->methods);
  strs_free(&o->not_methods);
  strs_free(&o->paths);
  strs_free(&o->not_paths);
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
static int cond_key(bctx_t *b, const char *k, char **header) {
  static const char pre[] = "request.headers[";
  size_t n = strlen(k);
  if (strncmp(k, pre, sizeof pre - 1) == 0 && n > sizeof pre &&
      k[n - 1] == ']') {
    const char *name = k + sizeof pre - 1;
    size_t nn = n - sizeof pre;
    if (!mesh__token_valid(name, nn))
      return -1;
    *header = dupn(b, name, nn);
    return MESH__AZ_K_HEADER;
  }
  for (size_t i = 0; i < sizeof cond_keys / sizeof cond_keys[0]; i++)
    if (strcmp(cond_keys[i].name, k) == 0)
      return cond_keys[i].key;
  return -1;
}

static void cond_build(bctx_t *b, const cJSON *it, const char *p,
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
    cidrs_build(b, it, p, "values", &w->ips);
    cidrs_build(b, it, p, "notValues", &w->not_ips);
    break;
  case MESH__AZ_K_DEST_PORT:
    ports_build(b, it, p, "values", &w->ports);
    ports_build(b, it, p, "notValues", &w->not_ports);
    break;
  default: {
    int ctx = w->key == MESH__AZ_K_SOURCE_PRINCIPAL ? S_PRINCIPAL
              : w->key == MESH__AZ_K_SOURCE_NS      ? S_NAMESPACE
                                                    : S_PLAIN;
    strs_build(b, it, p, "values", ctx, &w->values);
    strs_build(b, it, p, "notValues", ctx, &w->not_values);
  }
  }
}

static void cond_free(mesh__az_cond_t *w) {
  free(w->header);
  strs_free(&w->values);
  strs_free(&w->not_values);
  free(w->ips.v);
  free(w->not_ips.v);
  free(w->ports.v);
  free(w->not_ports.v);
}

/* ---- rules and policies ---------------------------------------------------- */

/* Build an array-of-objects field: allocate n items, call fn on each. */
typedef void (*item_fn)(bctx_t *b, const cJSON *it, const char *p, void *out);

static void *items_build(bctx_t *b, const cJSON *obj, const char *path,
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
  char *v = zalloc(b, (size_t)n, size);
  if (!v)
    return NULL;
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, arr) {
    idx_path(p, path, key, i++);
    fn(b, it, p, v + *count * size);
    (*count)++;
  }
  return v;
}

static void source_item(bctx_t *b, const cJSON *it, const char *p, void *o) {
  source_build(b, it, p, o);
}
static void operation_item(bctx_t *b, const cJSON *it, const char *p,
                           void *o) {
  operation_build(b, it, p, o);
}
static void cond_item(bctx_t *b, const cJSON *it, const char *p, void *o) {
  cond_build(b, it, p, o);
}

static void rule_item(bctx_t *b, const cJSON *it, const char *p, void *o) {
  static const char *const keys[] = {"from", "to", "when", NULL};
  mesh__az_rule_t *r = o;
  if (!mesh__cfg_object(b->c, it, p, keys))
    return;
  r->from = items_build(b, it, p, "from", sizeof *r->from, source_item,
                        &r->nfrom);
  r->to = items_build(b, it, p, "to", sizeof *r->to, operation_item, &r->nto);
  r->when = items_build(b, it, p, "when", sizeof *r->when, cond_item,
                        &r->nwhen);
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
  bctx_t *b;
  bool have_opa;
} pctx_t;

static void policy_build(pctx_t *pc, const cJSON *it, const char *p,
                         mesh__az_policy_t *pol) {
  static const char *const keys[] = {"name", "action", "provider", "rules",
                                     NULL};
  bctx_t *b = pc->b;
  if (!mesh__cfg_object(b->c, it, p, keys))
    return;
  const char *name;
  char np[MESH__PATH_MAX];
  mesh__cfg_path(np, p, "name");
  if (!mesh__cfg_string(b->c, it, p, "name", NULL, &name)) {
    if (!cJSON_GetObjectItemCaseSensitive(it, "name"))
      mesh__cfg_error(b->c, np, "required");
  } else if (!valid_name(name)) {
    mesh__cfg_error(b->c, np, "invalid policy name (1-128 of A-Z a-z 0-9 - _ .)");
  } else {
    pol->name = dupn(b, name, strlen(name));
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

static void opa_build(bctx_t *b, const cJSON *o, const char *path,
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
    cfg->url = dupn(b, url, strlen(url));
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

static void check_unique_names(bctx_t *b, const mesh__authz_set_t *s,
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
  bctx_t *b = pc->b;
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
  s->policies = zalloc(b, (size_t)n, sizeof *s->policies);
  if (!s->policies)
    return;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char ip[MESH__PATH_MAX];
    idx_path(ip, path, "policies", (int)s->n);
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
  bctx_t b = {.c = c};
  mesh__authz_set_t *s = zalloc(&b, 1, sizeof *s);
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
