/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP routing (Istio VirtualService-like): the top-level "http" section
 * (limits, timeouts, routes) and the per-service "routes" key.  A route
 * matches on path (exact or prefix), method and headers (exact, prefix,
 * present, absent), all of which must hold; the first matching route wins
 * and sends the request to a service, a subset of it, or a weighted split. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"

/* ---- settings ------------------------------------------------------------------- */

/* Envoy's defaults: request heads up to 60 KiB and 100 fields; the body
 * limit is its per-connection buffer limit (1 MiB); idle connections close
 * after 1 h (HttpConnectionManager idle_timeout).  Envoy has no default for
 * the time a request may take to arrive; libmesh bounds it at 60 s, because
 * a serving thread blocked forever on a slow peer is a denial of service. */
static const mesh__http_settings_t defaults = {
    .lim = {.max_head = MESH__HTTP_MAX_HEAD_DEFAULT,
            .max_headers = MESH__HTTP_MAX_HEADERS_DEFAULT,
            .max_body = MESH__HTTP_MAX_BODY_DEFAULT},
    .idle_timeout_ms = 3600000,
    .request_timeout_ms = 60000,
};

void mesh__http_settings_default(mesh__http_settings_t *s) {
  *s = defaults;
  mesh__h2_settings_config_default(&s->h2);
}

static mesh__http_settings_t def_value; /* for contexts without m->http */
static pthread_once_t def_once = PTHREAD_ONCE_INIT;
static void def_init(void) { mesh__http_settings_default(&def_value); }

const mesh__http_settings_t *mesh__http_settings(mesh_t *m) {
  if (m && m->http)
    return &m->http->set;
  pthread_once(&def_once, def_init);
  return &def_value;
}

/* ---- parsing -------------------------------------------------------------------- */

static char *dup(const char *s) {
  return s ? strdup(s) : NULL;
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

static void path_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                       mesh__route_t *r) {
  static const char *const keys[] = {"exact", "prefix", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  const char *e = NULL, *p = NULL;
  mesh__cfg_string(c, v, path, "exact", NULL, &e);
  mesh__cfg_string(c, v, path, "prefix", NULL, &p);
  if ((e != NULL) == (p != NULL)) {
    mesh__cfg_error(c, path, "needs exactly one of \"exact\" or \"prefix\"");
    return;
  }
  const char *s = e ? e : p;
  if (s[0] != '/') {
    char q[MESH__PATH_MAX];
    mesh__cfg_path(q, path, e ? "exact" : "prefix");
    mesh__cfg_error(c, q, "a path must start with \"/\"");
    return;
  }
  r->path_kind = e ? MESH__RT_PATH_EXACT : MESH__RT_PATH_PREFIX;
  r->path = dup(s);
}

static void methods_parse(mesh__cfg_t *c, const cJSON *m, const char *path,
                          mesh__route_t *r) {
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "method");
  if (cJSON_IsString(m)) {
    if (!mesh__http_valid_token(m->valuestring, strlen(m->valuestring))) {
      mesh__cfg_error(c, p, "\"%s\" is not an HTTP method", m->valuestring);
      return;
    }
    r->methods = calloc(1, sizeof *r->methods);
    if (r->methods)
      r->methods[r->nmethods++] = dup(m->valuestring);
    return;
  }
  if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0) {
    mesh__cfg_error(c, p, "expected a method or a non-empty array of methods");
    return;
  }
  r->methods = calloc((size_t)cJSON_GetArraySize(m), sizeof *r->methods);
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, m) {
    char q[MESH__PATH_MAX];
    idx_path(q, path, "method", i++);
    if (!cJSON_IsString(it) ||
        !mesh__http_valid_token(it->valuestring, strlen(it->valuestring)))
      mesh__cfg_error(c, q, "expected an HTTP method");
    else if (r->methods)
      r->methods[r->nmethods++] = dup(it->valuestring);
  }
}

static void header_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                         mesh__rt_hdr_t *h) {
  static const char *const keys[] = {"name", "exact", "prefix", "present",
                                     NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  const char *name = NULL, *e = NULL, *p = NULL;
  bool present = true;
  bool has_present = mesh__cfg_bool(c, v, path, "present", true, &present);
  mesh__cfg_string(c, v, path, "exact", NULL, &e);
  mesh__cfg_string(c, v, path, "prefix", NULL, &p);
  char np[MESH__PATH_MAX];
  mesh__cfg_path(np, path, "name");
  if (!mesh__cfg_string(c, v, path, "name", NULL, &name) || !name ||
      !mesh__http_valid_token(name, strlen(name))) {
    mesh__cfg_error(c, np, "required: a header field name");
    return;
  }
  int n = (e != NULL) + (p != NULL) + has_present;
  if (n != 1) {
    mesh__cfg_error(c, path,
                    "needs exactly one of \"exact\", \"prefix\", \"present\"");
    return;
  }
  h->name = dup(name);
  h->kind = e ? MESH__RT_EXACT
            : p ? MESH__RT_PREFIX
            : present ? MESH__RT_PRESENT
                      : MESH__RT_ABSENT;
  h->value = dup(e ? e : p);
}

static void match_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__route_t *r) {
  static const char *const keys[] = {"path", "method", "headers", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  char p[MESH__PATH_MAX];
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, "path");
  if (x) {
    mesh__cfg_path(p, path, "path");
    path_parse(c, x, p, r);
  }
  x = cJSON_GetObjectItemCaseSensitive(v, "method");
  if (x)
    methods_parse(c, x, path, r);
  x = cJSON_GetObjectItemCaseSensitive(v, "headers");
  if (!x)
    return;
  mesh__cfg_path(p, path, "headers");
  if (!cJSON_IsArray(x)) {
    mesh__cfg_error(c, p, "expected an array of header matches");
    return;
  }
  int n = cJSON_GetArraySize(x);
  r->hdrs = calloc(n ? (size_t)n : 1, sizeof *r->hdrs);
  const cJSON *it;
  cJSON_ArrayForEach(it, x) {
    char q[MESH__PATH_MAX];
    idx_path(q, path, "headers", (int)r->nhdrs);
    if (r->hdrs)
      header_parse(c, it, q, &r->hdrs[r->nhdrs++]);
  }
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 128)
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
      return false;
  return true;
}

static void dest_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                       const char *def_service, const char *def_subset,
                       bool weighted, mesh__rt_dest_t *d) {
  const char *svc = NULL, *sub = NULL;
  int64_t w = 1;
  mesh__cfg_string(c, v, path, "service", def_service, &svc);
  mesh__cfg_string(c, v, path, "subset", def_subset, &sub);
  if (weighted) {
    char wp[MESH__PATH_MAX];
    mesh__cfg_path(wp, path, "weight");
    if (!mesh__cfg_int(c, v, path, "weight", 0, 1000000, 0, &w) &&
        !cJSON_GetObjectItemCaseSensitive(v, "weight"))
      mesh__cfg_error(c, wp, "required");
  }
  char sp[MESH__PATH_MAX];
  mesh__cfg_path(sp, path, "service");
  if (!svc) {
    mesh__cfg_error(c, sp, "required (a service of the config)");
    return;
  }
  if (!valid_name(svc)) {
    mesh__cfg_error(c, sp, "invalid service name \"%s\"", svc);
    return;
  }
  d->service = dup(svc);
  d->subset = dup(sub);
  d->weight = (uint32_t)w;
}

static void split_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        const char *def_service, mesh__route_t *r) {
  static const char *const keys[] = {"service", "subset", "weight", NULL};
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "split");
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
    mesh__cfg_error(c, p, "expected a non-empty array of destinations");
    return;
  }
  r->dests = calloc((size_t)cJSON_GetArraySize(v), sizeof *r->dests);
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, v) {
    char q[MESH__PATH_MAX];
    idx_path(q, path, "split", i++);
    if (!mesh__cfg_object(c, it, q, keys) || !r->dests)
      continue;
    mesh__rt_dest_t *d = &r->dests[r->ndests];
    dest_parse(c, it, q, def_service, NULL, true, d);
    if (d->service) {
      r->total_weight += d->weight;
      r->ndests++;
    }
  }
  if (r->ndests && r->total_weight == 0)
    mesh__cfg_error(c, p, "the weights add up to 0");
}

static void route_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        const char *owner, mesh__route_t *r) {
  static const char *const keys[] = {"name",    "match",      "service",
                                     "subset",  "split",      "timeout_ms",
                                     "retries", "fault",      NULL};
  static const char *const top_keys[] = {
      "name",    "hosts", "match", "service", "subset",
      "split",   "timeout_ms", "retries", "fault", NULL};
  r->retries = -1;
  if (!mesh__cfg_object(c, v, path, owner ? keys : top_keys))
    return;
  const cJSON *hosts;
  if (!owner && mesh__cfg_strings(c, v, path, "hosts", &hosts) && hosts) {
    int n = cJSON_GetArraySize(hosts);
    r->hosts = calloc(n ? (size_t)n : 1, sizeof *r->hosts);
    const cJSON *h;
    cJSON_ArrayForEach(h, hosts) if (r->hosts) r->hosts[r->nhosts++] =
        dup(h->valuestring);
  }
  const char *name = NULL;
  if (mesh__cfg_string(c, v, path, "name", NULL, &name))
    r->name = dup(name);
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, "match");
  char p[MESH__PATH_MAX];
  if (x) {
    mesh__cfg_path(p, path, "match");
    match_parse(c, x, p, r);
  }
  const cJSON *split = cJSON_GetObjectItemCaseSensitive(v, "split");
  const char *svc = owner;
  mesh__cfg_string(c, v, path, "service", owner, &svc);
  if (split) {
    if (cJSON_GetObjectItemCaseSensitive(v, "subset")) {
      mesh__cfg_path(p, path, "subset");
      mesh__cfg_error(c, p, "use \"split\" or \"subset\", not both");
    }
    split_parse(c, split, path, svc, r);
  } else {
    r->dests = calloc(1, sizeof *r->dests);
    if (r->dests) {
      dest_parse(c, v, path, owner, NULL, false, &r->dests[0]);
      if (r->dests[0].service) {
        r->ndests = 1;
        r->total_weight = 1;
      }
    }
  }
  mesh__cfg_int(c, v, path, "timeout_ms", 0, 86400000, 0, &r->timeout_ms);
  int64_t retries;
  if (mesh__cfg_int(c, v, path, "retries", 0, 100, -1, &retries))
    r->retries = (int)retries;
  x = cJSON_GetObjectItemCaseSensitive(v, "fault");
  if (x) {
    mesh__cfg_path(p, path, "fault");
    mesh__fault_parse(c, x, p, &r->fault);
    r->has_fault = true;
  }
}

static void route_free(mesh__route_t *r) {
  free(r->name);
  for (size_t i = 0; i < r->nhosts; i++)
    free(r->hosts[i]);
  free(r->hosts);
  free(r->path);
  for (size_t i = 0; i < r->nmethods; i++)
    free(r->methods[i]);
  free(r->methods);
  for (size_t i = 0; i < r->nhdrs; i++) {
    free(r->hdrs[i].name);
    free(r->hdrs[i].value);
  }
  free(r->hdrs);
  for (size_t i = 0; i < r->ndests; i++) {
    free(r->dests[i].service);
    free(r->dests[i].subset);
  }
  free(r->dests);
}

void mesh__routes_free(mesh__routes_t *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++)
    route_free(&t->v[i]);
  free(t->v);
  t->v = NULL;
  t->n = 0;
}

void mesh__routes_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        const char *owner, mesh__routes_t *out) {
  mesh__routes_t t = {0};
  if (!cJSON_IsArray(v)) {
    mesh__cfg_error(c, path, "expected an array of routes");
    return;
  }
  int n = cJSON_GetArraySize(v);
  t.v = calloc(n ? (size_t)n : 1, sizeof *t.v);
  if (!t.v) {
    mesh__cfg_error(c, path, "out of memory");
    return;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    char p[MESH__PATH_MAX];
    idx_path(p, path, NULL, (int)t.n);
    route_parse(c, it, p, owner, &t.v[t.n++]);
  }
  if (out)
    *out = t;
  else
    mesh__routes_free(&t);
}

/* ---- matching (pure) -------------------------------------------------------------- */

static bool header_ok(const mesh__rt_hdr_t *h, const mesh__rt_input_t *in) {
  /* a repeated field is matched joined with ",", as Envoy does */
  const char *v = mesh__http_hdr_value(in->hdrs, in->nhdrs, in->joined,
                                       in->njoined, h->name);
  switch (h->kind) {
  case MESH__RT_PRESENT:
    return v != NULL;
  case MESH__RT_ABSENT:
    return v == NULL;
  case MESH__RT_EXACT:
    return v && strcmp(v, h->value) == 0;
  default:
    return v && strncmp(v, h->value, strlen(h->value)) == 0;
  }
}

static bool host_ok(const mesh__route_t *r, const char *host) {
  if (!r->nhosts)
    return true;
  for (size_t i = 0; i < r->nhosts; i++)
    if (strcmp(r->hosts[i], "*") == 0 || (host && strcmp(r->hosts[i], host) == 0))
      return true;
  return false;
}

static bool route_ok(const mesh__route_t *r, const mesh__rt_input_t *in) {
  const char *path = in->path ? in->path : "";
  if (!host_ok(r, in->host))
    return false;
  if (r->path_kind == MESH__RT_PATH_EXACT && strcmp(path, r->path) != 0)
    return false;
  if (r->path_kind == MESH__RT_PATH_PREFIX &&
      strncmp(path, r->path, strlen(r->path)) != 0)
    return false;
  if (r->nmethods) {
    bool any = false;
    for (size_t i = 0; i < r->nmethods && !any; i++)
      any = in->method && strcmp(in->method, r->methods[i]) == 0;
    if (!any)
      return false;
  }
  for (size_t i = 0; i < r->nhdrs; i++)
    if (!header_ok(&r->hdrs[i], in))
      return false;
  return true;
}

const mesh__route_t *mesh__routes_match(const mesh__routes_t *t,
                                        const mesh__rt_input_t *in) {
  for (size_t i = 0; t && in && i < t->n; i++)
    if (t->v[i].ndests && route_ok(&t->v[i], in))
      return &t->v[i];
  return NULL;
}

const mesh__rt_dest_t *mesh__route_pick(const mesh__route_t *r, double u) {
  if (!r || !r->ndests || !r->total_weight)
    return NULL;
  uint64_t x = (uint64_t)(u * (double)r->total_weight);
  if (x >= r->total_weight)
    x = r->total_weight - 1;
  for (size_t i = 0; i < r->ndests; i++) {
    if (x < r->dests[i].weight)
      return &r->dests[i];
    x -= r->dests[i].weight;
  }
  return &r->dests[r->ndests - 1];
}

/* ---- the parts ------------------------------------------------------------------- */

/* Services and subsets named by routes must exist: looked up in the
 * document being checked (c->root), by check(), so that mesh_config_check
 * and mesh_new agree. */
static void check_refs(mesh__cfg_t *c, const cJSON *v, const char *path,
                       const char *owner) {
  mesh__routes_t t = {0};
  int nerr = c->nerr;
  mesh__routes_parse(c, v, path, owner, &t);
  const cJSON *svcs = cJSON_GetObjectItemCaseSensitive(c->root, "services");
  for (size_t i = 0; c->root && c->nerr == nerr && i < t.n; i++)
    for (size_t j = 0; j < t.v[i].ndests; j++) {
      const mesh__rt_dest_t *d = &t.v[i].dests[j];
      const cJSON *s = cJSON_GetObjectItemCaseSensitive(svcs, d->service);
      char p[MESH__PATH_MAX];
      snprintf(p, sizeof p, "%s[%zu]", path, i);
      const cJSON *subs = cJSON_GetObjectItemCaseSensitive(s, "subsets");
      if (!s)
        mesh__cfg_error(c, p, "unknown service \"%s\"", d->service);
      else if (d->subset && !cJSON_GetObjectItemCaseSensitive(subs, d->subset))
        mesh__cfg_error(c, p, "service \"%s\" has no subset \"%s\"",
                        d->service, d->subset);
    }
  mesh__routes_free(&t);
}

static void settings_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                           mesh__http_settings_t *s) {
  mesh__http_settings_default(s);
  int64_t x;
  if (mesh__cfg_int(c, v, path, "max_header_bytes", 1024, 1 << 20,
                    (int64_t)s->lim.max_head, &x))
    s->lim.max_head = (size_t)x;
  if (mesh__cfg_int(c, v, path, "max_headers", 1, 10000,
                    (int64_t)s->lim.max_headers, &x))
    s->lim.max_headers = (size_t)x;
  if (mesh__cfg_int(c, v, path, "max_body_bytes", 0, (int64_t)1 << 40,
                    (int64_t)s->lim.max_body, &x))
    s->lim.max_body = (uint64_t)x;
  mesh__cfg_int(c, v, path, "idle_timeout_ms", 1, 86400000, s->idle_timeout_ms,
                &s->idle_timeout_ms);
  mesh__cfg_int(c, v, path, "request_timeout_ms", 1, 86400000,
                s->request_timeout_ms, &s->request_timeout_ms);
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "http2");
  mesh__h2_settings_parse(c, cJSON_GetObjectItemCaseSensitive(v, "http2"), p,
                          &s->h2);
}

static const char *const http_keys[] = {
    "max_header_bytes", "max_headers",        "max_body_bytes",
    "idle_timeout_ms",  "request_timeout_ms", "routes",
    "http2",            NULL};

static void http_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!v || !mesh__cfg_object(c, v, path, http_keys))
    return;
  mesh__http_settings_t s;
  settings_parse(c, v, path, &s);
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "routes");
  if (r) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, "routes");
    check_refs(c, r, p, NULL);
  }
}

static void http_fini(mesh_t *m) {
  if (!m->http)
    return;
  mesh__routes_free(&m->http->routes);
  mesh__h2_ka_free(atomic_load(&m->http->ka));
  free(m->http);
  m->http = NULL;
}

static int http_init(mesh_t *m, const cJSON *v, mesh_status_t *st) {
  struct mesh__http *h = calloc(1, sizeof *h);
  if (!h)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  m->http = h;
  mesh__cfg_t c = {.first = st};
  if (!v) {
    mesh__http_settings_default(&h->set);
    return MESH_OK;
  }
  settings_parse(&c, v, "http", &h->set);
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(v, "routes");
  if (r)
    mesh__routes_parse(&c, r, "http.routes", NULL, &h->routes);
  return c.nerr ? MESH_ERR_CONFIG : MESH_OK;
}

const mesh__part_t mesh__http_part = {
    .key = "http",
    .check = http_check,
    .init = http_init,
    .fini = http_fini,
};

static void routes_check(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (v)
    check_refs(c, v, path, c->svc_name ? c->svc_name : "self");
}

/* Every service gets its state (metrics), with or without routes. */
static int routes_init(mesh_t *m, mesh__service_t *svc, const cJSON *v,
                       mesh_status_t *st) {
  struct mesh__http_svc *hs = calloc(1, sizeof *hs);
  if (!hs)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  svc->http = hs;
  if (!v)
    return MESH_OK;
  char path[MESH__PATH_MAX];
  snprintf(path, sizeof path, "services.%s.routes", svc->name);
  mesh__cfg_t c = {.first = st};
  mesh__routes_parse(&c, v, path, svc->name, &hs->routes);
  return c.nerr ? MESH_ERR_CONFIG : MESH_OK;
}

static void routes_fini(mesh_t *m, mesh__service_t *svc) {
  (void)m;
  if (!svc->http)
    return;
  mesh__routes_free(&svc->http->routes);
  free(atomic_load(&svc->http->by_code));
  free(svc->http);
  svc->http = NULL;
}

const mesh__svc_part_t mesh__routes_svc_part = {
    .key = "routes",
    .check = routes_check,
    .init = routes_init,
    .fini = routes_fini,
};
