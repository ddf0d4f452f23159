/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl resolve: what a client would see for a service: its endpoints
 * with health, weight, priority, locality and labels, and the load
 * balancer's view of them (usable or not, the subsets each belongs to, the
 * share of picks the split and the weights give it).
 *
 * Two sources: a config file (a context of our own is created, its
 * discovery answers, active health checks run once) or, with --admin, a
 * running process's admin endpoint, whose /endpoints carries the live LB
 * state (ejections, requests in flight, latency EWMA) and /config the
 * split.  Both are turned into the admin endpoint's JSON shape first, so
 * the rest of the command has one input. */
#include "meshctl.h"
#include "core/core.h" /* mesh__json_parse: the library's JSON rules */

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char resolve_help[] =
    "usage: meshctl resolve SERVICE --config FILE [--timeout DURATION] "
    "[--json]\n"
    "                       [--verbose]\n"
    "       meshctl resolve SERVICE --admin HOST:PORT [--json]\n"
    "\n"
    "Show the endpoints of SERVICE as a client sees them: address, health,\n"
    "weight, priority, locality, labels, and the load balancer's state:\n"
    "whether the endpoint is usable, the subsets it is in, and its expected\n"
    "share of picks (the split's weight times its weight inside the subset,\n"
    "over the usable endpoints of the highest priority that has any).\n"
    "\n"
    "  --config FILE       resolve with this config: waits for discovery's\n"
    "                      first answer (and for the first active health\n"
    "                      check when the service has one); the config's\n"
    "                      \"register\", \"admin\" and \"tracing\" sections\n"
    "                      are ignored: nothing is registered or exported\n"
    "  --admin HOST:PORT   ask a running process's admin endpoint instead:\n"
    "                      adds the live state (ejections, requests in\n"
    "                      flight, latency EWMA) and the resilience state\n"
    "                      (breaker thresholds and counters, outlier\n"
    "                      settings, ejected hosts, connect timeout; per\n"
    "                      cluster for a service split across clusters)\n"
    "  --timeout DURATION  how long to wait (default 5s)\n"
    "  --json              print JSON instead of a table\n"
    "  --verbose           keep the config's log level (default: warnings\n"
    "                      and errors only, on standard error)\n"
    "\n"
    "Exit status: 0 with the answer, 1 when discovery failed or the service\n"
    "or the admin endpoint cannot be read, 2 on a usage error.\n";

#define DEFAULT_TIMEOUT_S 5

/* ---- small JSON readers (input from a config or the network) ------------- */

static const char *jstr(const cJSON *o, const char *key, const char *def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) && v->valuestring ? v->valuestring : def;
}

static double jnum(const cJSON *o, const char *key, double def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static bool jbool(const cJSON *o, const char *key, bool def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* ---- input 1: our own context from a config file ------------------------- */

static const char *health_name(int h) {
  switch (h) {
  case MESH_HEALTH_HEALTHY: return "healthy";
  case MESH_HEALTH_UNHEALTHY: return "unhealthy";
  case MESH_HEALTH_DRAINING: return "draining";
  default: return "unknown";
  }
}

static cJSON *endpoint_json(const mesh_endpoints_t *e, size_t i) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "address", mesh_endpoint_address(e, i));
  cJSON_AddNumberToObject(o, "port", mesh_endpoint_port(e, i));
  cJSON_AddNumberToObject(o, "weight", mesh_endpoint_weight(e, i));
  cJSON_AddNumberToObject(o, "priority", mesh_endpoint_priority(e, i));
  cJSON *loc = cJSON_AddObjectToObject(o, "locality");
  cJSON_AddStringToObject(loc, "region", mesh_endpoint_region(e, i));
  cJSON_AddStringToObject(loc, "zone", mesh_endpoint_zone(e, i));
  cJSON_AddStringToObject(loc, "subzone", mesh_endpoint_subzone(e, i));
  cJSON *labels = cJSON_AddObjectToObject(o, "labels");
  for (size_t j = 0; j < mesh_endpoint_label_count(e, i); j++) {
    const char *k, *v;
    if (mesh_endpoint_label_at(e, i, j, &k, &v) == MESH_OK)
      cJSON_AddStringToObject(labels, k, v);
  }
  int h = mesh_endpoint_health(e, i);
  cJSON_AddStringToObject(o, "health", health_name(h));
  cJSON_AddBoolToObject(o, "usable", h == MESH_HEALTH_UNKNOWN ||
                                         h == MESH_HEALTH_HEALTHY);
  return o;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* With an active health check, its first verdicts are part of the answer:
 * wait (bounded) until no endpoint is left "unknown". */
static void wait_health(mesh_t *m, const char *service, int64_t deadline_ms) {
  for (int round = 0; round < 1000; round++) {
    mesh_endpoints_t *e = NULL;
    if (mesh_endpoints_get(m, service, &e, NULL) != MESH_OK)
      return;
    size_t unknown = 0;
    for (size_t i = 0; i < mesh_endpoints_count(e); i++)
      if (mesh_endpoint_health(e, i) == MESH_HEALTH_UNKNOWN)
        unknown++;
    mesh_endpoints_free(e);
    if (unknown == 0 || mono_ms() >= deadline_ms)
      return;
    nanosleep(&(struct timespec){0, 20 * 1000000}, NULL);
  }
}

/* Print the services a config has, to help after a typo. */
static void list_services(const cJSON *cfg) {
  const cJSON *svcs = cJSON_GetObjectItemCaseSensitive(cfg, "services");
  const cJSON *s;
  fprintf(stderr, "meshctl resolve: services in the config:");
  int n = 0;
  cJSON_ArrayForEach(s, svcs) {
    fprintf(stderr, " %s", s->string);
    n++;
  }
  fprintf(stderr, "%s\n", n ? "" : " none");
}

/* Parse the config and drop what must not run inside meshctl; logs below
 * warnings would bury the answer unless asked for. */
static cJSON *load_config(const char *path, bool verbose) {
  size_t len;
  char *text = meshctl_read_config(path, &len);
  if (!text) {
    fprintf(stderr, "meshctl resolve: %s: cannot read%s\n", path,
            errno == EFBIG ? ": larger than the configuration size limit "
                             "(MESH_CONFIG_MAX_BYTES)"
                           : "");
    return NULL;
  }
  mesh__json_err_t je;
  cJSON *cfg = mesh__json_parse(text, len, &je);
  free(text);
  if (!cfg && je.kind == MESH__JSON_DUPLICATE) {
    fprintf(stderr, "meshctl resolve: %s: %s\n", path, je.message);
    return NULL;
  }
  if (!cJSON_IsObject(cfg)) {
    fprintf(stderr,
            "meshctl resolve: %s: not a JSON object (meshctl check-config "
            "%s lists the errors)\n",
            path, path);
    cJSON_Delete(cfg);
    return NULL;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(cfg, "register");
  cJSON_DeleteItemFromObjectCaseSensitive(cfg, "admin");
  cJSON_DeleteItemFromObjectCaseSensitive(cfg, "tracing");
  if (!verbose) {
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "log");
    cJSON *log = cJSON_AddObjectToObject(cfg, "log");
    cJSON_AddStringToObject(log, "level", "warn");
  }
  return cfg;
}

typedef struct input {
  cJSON *svc_cfg;   /* services.<name> of the config (owned), or NULL */
  cJSON *endpoints; /* array of endpoint objects in the admin shape (owned) */
  char source[32];
  double version;
  bool live;        /* from a running process: LB state is real */
  cJSON *res;       /* its /resilience entry (owned), or NULL */
  bool failed;      /* discovery's first answer was an error */
} input_t;

static int from_config(const char *path, const char *service,
                       int64_t timeout_s, bool verbose, input_t *in) {
  cJSON *cfg = load_config(path, verbose);
  if (!cfg)
    return MESHCTL_FAIL;
  char *json = cJSON_PrintUnformatted(cfg);
  mesh_status_t st;
  mesh_t *m = NULL;
  int rc = json ? mesh_new(json, &m, &st) : MESH_ERR_NOMEM;
  free(json);
  if (rc != MESH_OK) {
    cJSON_Delete(cfg);
    return meshctl_report(rc, &st);
  }
  int64_t deadline = mono_ms() + timeout_s * 1000;
  rc = mesh_discovery_wait(m, service, (int)(timeout_s * 1000), &st);
  if (rc != MESH_OK && rc != MESH_ERR_DISCOVERY) {
    mesh_free(m);
    meshctl_report(rc, &st);
    if (rc == MESH_ERR_UNKNOWN_SERVICE)
      list_services(cfg);
    cJSON_Delete(cfg);
    return MESHCTL_FAIL;
  }
  if (rc == MESH_ERR_DISCOVERY) {
    fprintf(stderr, "meshctl resolve: discovery failed: %s\n", st.message);
    in->failed = true;
  }
  const cJSON *svc = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cfg, "services"), service);
  if (cJSON_GetObjectItemCaseSensitive(svc, "health_check"))
    wait_health(m, service, deadline);
  mesh_endpoints_t *e = NULL;
  rc = mesh_endpoints_get(m, service, &e, &st);
  if (rc != MESH_OK) {
    mesh_free(m);
    cJSON_Delete(cfg);
    return meshctl_report(rc, &st);
  }
  in->endpoints = cJSON_CreateArray();
  for (size_t i = 0; in->endpoints && i < mesh_endpoints_count(e); i++)
    cJSON_AddItemToArray(in->endpoints, endpoint_json(e, i));
  in->version = (double)mesh_endpoints_version(e);
  mesh_endpoints_free(e);
  mesh_free(m);
  in->svc_cfg = cJSON_Duplicate(svc, 1);
  snprintf(in->source, sizeof in->source, "%s",
           jstr(cJSON_GetObjectItemCaseSensitive(svc, "discovery"), "type",
                "none"));
  cJSON_Delete(cfg);
  return in->endpoints ? MESHCTL_OK : MESHCTL_FAIL;
}

/* ---- input 2: a running process's admin endpoint ------------------------- */

static cJSON *admin_get(const char *addr, const char *path,
                        int64_t timeout_s) {
  return meshctl_admin_get("resolve", addr, path, (long)(timeout_s * 1000),
                           NULL);
}

static const cJSON *find_named(const cJSON *arr, const char *name) {
  const cJSON *s;
  cJSON_ArrayForEach(s, arr) {
    if (!strcmp(jstr(s, "name", ""), name))
      return s;
  }
  return NULL;
}

static int from_admin(const char *addr, const char *service,
                      int64_t timeout_s, input_t *in) {
  cJSON *eps = admin_get(addr, "/endpoints", timeout_s);
  if (!eps)
    return MESHCTL_FAIL;
  const cJSON *svc =
      find_named(cJSON_GetObjectItemCaseSensitive(eps, "services"), service);
  if (!svc) {
    fprintf(stderr, "meshctl resolve: %s has no service \"%s\"\n", addr,
            service);
    cJSON_Delete(eps);
    return MESHCTL_FAIL;
  }
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(svc, "endpoints");
  in->endpoints = cJSON_IsArray(arr) ? cJSON_Duplicate(arr, 1)
                                     : cJSON_CreateArray();
  snprintf(in->source, sizeof in->source, "%s", jstr(svc, "source", "none"));
  in->version = jnum(svc, "version", 0);
  in->live = true;
  cJSON_Delete(eps);
  /* The split and subsets are in the effective config. */
  cJSON *cfg = admin_get(addr, "/config", timeout_s);
  const cJSON *scfg = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(cfg, "services"), service);
  in->svc_cfg = cJSON_IsObject(scfg) ? cJSON_Duplicate(scfg, 1) : NULL;
  cJSON_Delete(cfg);
  in->res = meshctl_res_fetch("resolve", addr, service,
                              (long)(timeout_s * 1000));
  return in->endpoints ? MESHCTL_OK : MESHCTL_FAIL;
}

/* ---- the LB view: subsets and shares ------------------------------------- */

/* Does endpoint ep carry every label of the subset selector sel? */
static bool in_subset(const cJSON *ep, const cJSON *sel) {
  const cJSON *labels = cJSON_GetObjectItemCaseSensitive(ep, "labels");
  const cJSON *kv;
  cJSON_ArrayForEach(kv, sel) {
    const char *have = jstr(labels, kv->string, NULL);
    if (!have || !cJSON_IsString(kv) || strcmp(have, kv->valuestring))
      return false;
  }
  return true;
}

/* Selector of a split entry: a named subset or inline labels. */
static const cJSON *split_selector(const cJSON *svc, const cJSON *entry) {
  const cJSON *sub = cJSON_GetObjectItemCaseSensitive(entry, "subset");
  if (cJSON_IsObject(sub))
    return sub;
  if (!cJSON_IsString(sub))
    return NULL;
  return cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(svc, "subsets"), sub->valuestring);
}

static void split_name(const cJSON *entry, char *out, size_t len) {
  const cJSON *sub = cJSON_GetObjectItemCaseSensitive(entry, "subset");
  if (cJSON_IsString(sub)) {
    snprintf(out, len, "%s", sub->valuestring);
    return;
  }
  size_t n = 0;
  out[0] = '\0';
  const cJSON *kv;
  cJSON_ArrayForEach(kv, sub) {
    int w = snprintf(out + n, len - n, "%s%s=%s", n ? "," : "", kv->string,
                     cJSON_IsString(kv) ? kv->valuestring : "?");
    if (w < 0 || (size_t)w >= len - n)
      return;
    n += (size_t)w;
  }
}

/* Add `share` of the picks to the usable members of sel (NULL: all) in the
 * highest priority level that has one, by weight.  @return false when no
 * member is usable (the picks fail, or fall back). */
static bool give_share(cJSON *eps, const cJSON *sel, double share) {
  double best = INFINITY, total = 0;
  const cJSON *ep;
  cJSON_ArrayForEach(ep, eps) {
    if ((!sel || in_subset(ep, sel)) && jbool(ep, "usable", true))
      best = fmin(best, jnum(ep, "priority", 0));
  }
  if (isinf(best))
    return false;
  cJSON_ArrayForEach(ep, eps) {
    if ((!sel || in_subset(ep, sel)) && jbool(ep, "usable", true) &&
        jnum(ep, "priority", 0) == best)
      total += jnum(ep, "weight", 1);
  }
  cJSON *e;
  cJSON_ArrayForEach(e, eps) {
    if ((sel && !in_subset(e, sel)) || !jbool(e, "usable", true) ||
        jnum(e, "priority", 0) != best)
      continue;
    double add = share * jnum(e, "weight", 1) / total;
    cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "share");
    if (s)
      cJSON_SetNumberValue(s, s->valuedouble + add);
  }
  return true;
}

/* Annotate every endpoint with "subsets" and "share"; collect warnings. */
static void lb_view(cJSON *eps, const cJSON *svc, cJSON *warnings) {
  const cJSON *subsets = cJSON_GetObjectItemCaseSensitive(svc, "subsets");
  cJSON *e;
  cJSON_ArrayForEach(e, eps) {
    cJSON *names = cJSON_AddArrayToObject(e, "subsets");
    const cJSON *sub;
    cJSON_ArrayForEach(sub, subsets) {
      if (in_subset(e, sub))
        cJSON_AddItemToArray(names, cJSON_CreateString(sub->string));
    }
    cJSON_AddNumberToObject(e, "share", 0);
  }
  const cJSON *split = cJSON_GetObjectItemCaseSensitive(svc, "split");
  double total = 0;
  const cJSON *entry;
  cJSON_ArrayForEach(entry, split) total += jnum(entry, "weight", 0);
  bool any = strcmp(jstr(cJSON_GetObjectItemCaseSensitive(svc, "lb"),
                         "subset_fallback", "none"),
                    "any") == 0;
  if (cJSON_GetArraySize(split) == 0 || total <= 0) {
    if (!give_share(eps, NULL, 1.0) && cJSON_GetArraySize(eps) > 0)
      cJSON_AddItemToArray(warnings,
                           cJSON_CreateString("no usable endpoint: every "
                                              "call fails (or panics onto "
                                              "unusable ones)"));
    return;
  }
  cJSON_ArrayForEach(entry, split) {
    double w = jnum(entry, "weight", 0) / total;
    if (w <= 0)
      continue;
    if (give_share(eps, split_selector(svc, entry), w))
      continue;
    char name[256], msg[512];
    split_name(entry, name, sizeof name);
    snprintf(msg, sizeof msg,
             "split entry \"%s\" (%.0f%% of calls) has no usable endpoint: "
             "%s",
             name, w * 100,
             any ? "its calls use every endpoint (subset_fallback \"any\")"
                 : "its calls fail with MESH_ERR_NO_ENDPOINTS");
    cJSON_AddItemToArray(warnings, cJSON_CreateString(msg));
    if (any)
      give_share(eps, NULL, w);
  }
}

/* ---- output -------------------------------------------------------------- */

static void lb_summary(const cJSON *svc, char *out, size_t len) {
  const cJSON *lb = cJSON_GetObjectItemCaseSensitive(svc, "lb");
  const char *policy = jstr(lb, "policy", "round_robin");
  size_t n = 0;
  int w = snprintf(out, len, "lb %s", policy);
  n = w > 0 ? (size_t)w : 0;
  if (!strcmp(policy, "least_request") || !strcmp(policy, "peak_ewma")) {
    w = snprintf(out + n, len - n, " (choice_count %.0f)",
                 jnum(lb, "choice_count", 2));
    n += w > 0 && (size_t)w < len - n ? (size_t)w : 0;
  }
  const cJSON *split = cJSON_GetObjectItemCaseSensitive(svc, "split");
  const cJSON *entry;
  bool first = true;
  cJSON_ArrayForEach(entry, split) {
    char name[256];
    split_name(entry, name, sizeof name);
    w = snprintf(out + n, len - n, "%s%s %.0f", first ? "; split " : ", ",
                 name, jnum(entry, "weight", 0));
    n += w > 0 && (size_t)w < len - n ? (size_t)w : 0;
    first = false;
  }
}

static void join_strings(const cJSON *arr, char *out, size_t len) {
  size_t n = 0;
  out[0] = '\0';
  const cJSON *s;
  cJSON_ArrayForEach(s, arr) {
    int w = snprintf(out + n, len - n, "%s%s", n ? "," : "",
                     cJSON_IsString(s) ? s->valuestring : "?");
    if (w < 0 || (size_t)w >= len - n)
      return;
    n += (size_t)w;
  }
}

static void join_labels(const cJSON *labels, char *out, size_t len) {
  size_t n = 0;
  out[0] = '\0';
  const cJSON *kv;
  cJSON_ArrayForEach(kv, labels) {
    int w = snprintf(out + n, len - n, "%s%s=%s", n ? " " : "", kv->string,
                     cJSON_IsString(kv) ? kv->valuestring : "?");
    if (w < 0 || (size_t)w >= len - n)
      return;
    n += (size_t)w;
  }
}

static void locality(const cJSON *ep, char *out, size_t len) {
  const cJSON *loc = cJSON_GetObjectItemCaseSensitive(ep, "locality");
  const char *r = jstr(loc, "region", ""), *z = jstr(loc, "zone", ""),
             *s = jstr(loc, "subzone", "");
  if (!*r && !*z && !*s)
    snprintf(out, len, "-");
  else
    snprintf(out, len, "%s/%s%s%s", *r ? r : "-", *z ? z : "-", *s ? "/" : "",
             s);
}

static void state(const cJSON *ep, char *out, size_t len) {
  if (jbool(ep, "ejected", false))
    snprintf(out, len, "ejected %.1fs", jnum(ep, "ejected_for_ms", 0) / 1000);
  else
    snprintf(out, len, "%s", jbool(ep, "usable", true) ? "usable" : "unusable");
}

typedef struct row {
  char ep[80], health[16], state[32], weight[16], prio[16], loc[128],
      subsets[128], share[16], active[16], ewma[16], labels[256];
} row_t;

static void fill_row(const cJSON *ep, bool live, row_t *r) {
  const char *addr = jstr(ep, "address", "?");
  snprintf(r->ep, sizeof r->ep, strchr(addr, ':') ? "[%s]:%.0f" : "%s:%.0f",
           addr, jnum(ep, "port", 0));
  snprintf(r->health, sizeof r->health, "%s", jstr(ep, "health", "unknown"));
  state(ep, r->state, sizeof r->state);
  snprintf(r->weight, sizeof r->weight, "%.0f", jnum(ep, "weight", 1));
  snprintf(r->prio, sizeof r->prio, "%.0f", jnum(ep, "priority", 0));
  locality(ep, r->loc, sizeof r->loc);
  join_strings(cJSON_GetObjectItemCaseSensitive(ep, "subsets"), r->subsets,
               sizeof r->subsets);
  if (!r->subsets[0])
    snprintf(r->subsets, sizeof r->subsets, "-");
  snprintf(r->share, sizeof r->share, "%.1f%%", jnum(ep, "share", 0) * 100);
  const cJSON *lb = cJSON_GetObjectItemCaseSensitive(ep, "lb");
  snprintf(r->active, sizeof r->active, "%.0f",
           jnum(lb, "active_requests", 0));
  snprintf(r->ewma, sizeof r->ewma, "%.2fms", jnum(lb, "ewma_ms", 0));
  if (!live)
    r->active[0] = r->ewma[0] = '\0';
  join_labels(cJSON_GetObjectItemCaseSensitive(ep, "labels"), r->labels,
              sizeof r->labels);
  if (!r->labels[0])
    snprintf(r->labels, sizeof r->labels, "-");
}

#define NCOLS 11

static const char *const col_names[NCOLS] = {
    "ENDPOINT", "HEALTH", "STATE",  "WEIGHT", "PRIO",  "LOCALITY",
    "SUBSETS",  "SHARE",  "ACTIVE", "EWMA",   "LABELS"};

static const char *col(const row_t *r, int c) {
  const char *v[NCOLS] = {r->ep,      r->health,  r->state, r->weight,
                          r->prio,    r->loc,     r->subsets, r->share,
                          r->active,  r->ewma,    r->labels};
  return v[c];
}

static void print_table(const cJSON *eps, bool live) {
  int n = cJSON_GetArraySize(eps);
  row_t *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
  if (!rows)
    return;
  int width[NCOLS];
  for (int c = 0; c < NCOLS; c++)
    width[c] = (int)strlen(col_names[c]);
  int i = 0;
  const cJSON *ep;
  cJSON_ArrayForEach(ep, eps) {
    fill_row(ep, live, &rows[i]);
    for (int c = 0; c < NCOLS; c++)
      if ((int)strlen(col(&rows[i], c)) > width[c])
        width[c] = (int)strlen(col(&rows[i], c));
    i++;
  }
  for (int c = 0; c < NCOLS; c++)
    if (live || (c != 8 && c != 9))
      printf("%-*s%s", c == NCOLS - 1 ? 0 : width[c], col_names[c],
             c == NCOLS - 1 ? "\n" : "  ");
  for (i = 0; i < n; i++)
    for (int c = 0; c < NCOLS; c++)
      if (live || (c != 8 && c != 9))
        printf("%-*s%s", c == NCOLS - 1 ? 0 : width[c], col(&rows[i], c),
               c == NCOLS - 1 ? "\n" : "  ");
  free(rows);
}

static void print_text(const char *service, const input_t *in,
                       const cJSON *warnings) {
  int n = cJSON_GetArraySize(in->endpoints), usable = 0;
  const cJSON *ep;
  cJSON_ArrayForEach(ep, in->endpoints) usable += jbool(ep, "usable", true);
  printf("%s: %d endpoint%s, %d usable (discovery %s, version %.0f%s)\n",
         service, n, n == 1 ? "" : "s", usable, in->source, in->version,
         in->live ? ", live" : "");
  char lb[1024];
  lb_summary(in->svc_cfg, lb, sizeof lb);
  printf("%s\n", lb);
  if (in->res)
    meshctl_res_print(in->res);
  if (n > 0) {
    printf("\n");
    print_table(in->endpoints, in->live);
  }
  const cJSON *w;
  cJSON_ArrayForEach(w, warnings) printf("warning: %s\n", w->valuestring);
}

static void print_json(const char *service, input_t *in, cJSON *warnings) {
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "service", service);
  cJSON_AddStringToObject(doc, "source", in->source);
  cJSON_AddNumberToObject(doc, "version", in->version);
  cJSON_AddBoolToObject(doc, "live", in->live);
  const cJSON *lb = cJSON_GetObjectItemCaseSensitive(in->svc_cfg, "lb");
  cJSON_AddStringToObject(doc, "policy", jstr(lb, "policy", "round_robin"));
  cJSON_AddItemReferenceToObject(doc, "endpoints", in->endpoints);
  cJSON_AddItemReferenceToObject(doc, "warnings", warnings);
  if (in->res)
    cJSON_AddItemReferenceToObject(doc, "resilience", in->res);
  char *text = cJSON_Print(doc);
  if (text)
    printf("%s\n", text);
  free(text);
  cJSON_Delete(doc);
}

/* ---- the command --------------------------------------------------------- */

int meshctl_resolve(int argc, char **argv) {
  const char *config = NULL, *admin = NULL, *timeout = NULL;
  bool json = false, verbose = false, help = false;
  const meshctl_opt_t opts[] = {{"config", &config, NULL},
                                {"admin", &admin, NULL},
                                {"timeout", &timeout, NULL},
                                {"json", NULL, &json},
                                {"verbose", NULL, &verbose},
                                {NULL, NULL, NULL}};
  const char *service = NULL;
  size_t npos = 0;
  if (!meshctl_parse_args(argc, argv, 1, opts, &help, &service, 1, &npos)) {
    fputs(resolve_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(resolve_help, stdout);
    return MESHCTL_OK;
  }
  if (!service || !config == !admin) {
    fprintf(stderr,
            "meshctl resolve: give SERVICE and one of --config or --admin\n\n"
            "%s",
            resolve_help);
    return MESHCTL_USAGE;
  }
  int64_t secs = DEFAULT_TIMEOUT_S;
  if (timeout && (!meshctl_parse_duration(timeout, &secs) || secs <= 0 ||
                  secs > 3600)) {
    fprintf(stderr, "meshctl resolve: invalid --timeout \"%s\"\n", timeout);
    return MESHCTL_USAGE;
  }
  input_t in = {NULL, NULL, "none", 0, false, NULL, false};
  int rc = config ? from_config(config, service, secs, verbose, &in)
                  : from_admin(admin, service, secs, &in);
  cJSON *warnings = cJSON_CreateArray();
  if (rc == MESHCTL_OK && warnings) {
    lb_view(in.endpoints, in.svc_cfg, warnings);
    if (json)
      print_json(service, &in, warnings);
    else
      print_text(service, &in, warnings);
  }
  cJSON_Delete(warnings);
  cJSON_Delete(in.endpoints);
  cJSON_Delete(in.svc_cfg);
  cJSON_Delete(in.res);
  fflush(stdout);
  return rc == MESHCTL_OK && in.failed ? MESHCTL_FAIL : rc;
}
