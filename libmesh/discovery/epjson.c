/* SPDX-License-Identifier: Apache-2.0 */
/* Endpoint JSON: validation of endpoints from the config, files and etcd.
 * Everything here is untrusted input: every field is type- and
 * range-checked, errors carry the JSON path, nothing does I/O. */
#include "discovery/discovery.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const health_names[] = {"unknown", "healthy", "unhealthy",
                                           "draining", NULL};

static bool valid_hostname(const char *s) {
  size_t len = strlen(s), label = 0;
  if (len == 0 || len > MESH__DISC_MAX_HOSTNAME)
    return false;
  for (const char *p = s; *p; p++) {
    char ch = *p;
    if (ch == '.') {
      if (label == 0)
        return false; /* empty label */
      label = 0;
      continue;
    }
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
    if (!ok || ++label > 63)
      return false;
  }
  return true;
}

bool mesh__disc_valid_address(const char *s) {
  if (!s)
    return false;
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
    return true;
  /* Something that looks like a dotted quad but is not one (10.0.0.256)
   * is a typo, not a hostname. */
  bool digits_dots = true;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || *p == '.'))
      digits_dots = false;
  return !digits_dots && valid_hostname(s);
}

int mesh__disc_split_hostport(const char *s, char *host, size_t hostlen,
                              uint16_t *port, char *err, size_t errlen) {
  if (!s || !*s) {
    snprintf(err, errlen, "empty address");
    return MESH_ERR_PARSE;
  }
  switch (mesh__hostport_split(s, host, hostlen, 1, port)) {
  case MESH__HP_OK:
    break;
  case MESH__HP_BRACKETS:
    snprintf(err, errlen, "expected [ipv6]:port");
    return MESH_ERR_PARSE;
  case MESH__HP_NO_PORT:
    snprintf(err, errlen, "expected host:port (IPv6 in brackets)");
    return MESH_ERR_PARSE;
  case MESH__HP_HOST_LEN:
    snprintf(err, errlen, "host empty or longer than %zu bytes",
             hostlen ? hostlen - 1 : 0);
    return MESH_ERR_PARSE;
  default:
    snprintf(err, errlen, "port must be 1-65535");
    return MESH_ERR_PARSE;
  }
  unsigned char buf[sizeof(struct in6_addr)];
  if (*s == '[' && inet_pton(AF_INET6, host, buf) != 1) {
    snprintf(err, errlen, "not an IPv6 address in brackets");
    return MESH_ERR_PARSE;
  }
  if (!mesh__disc_valid_address(host)) {
    snprintf(err, errlen, "not an IP address or hostname");
    return MESH_ERR_PARSE;
  }
  return MESH_OK;
}

/* An optional string of at most max bytes with no control characters;
 * *out is NULL when absent or invalid. */
static void check_text(mesh__cfg_t *c, const cJSON *obj, const char *path,
                       const char *key, size_t max, const char **out) {
  if (!mesh__cfg_string(c, obj, path, key, NULL, out))
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, key);
  if (strlen(*out) > max) {
    mesh__cfg_error(c, p, "longer than %zu bytes", max);
    *out = NULL;
    return;
  }
  for (const unsigned char *s = (const unsigned char *)*out; *s; s++) {
    if (*s < 0x20 || *s == 0x7f) {
      mesh__cfg_error(c, p, "contains a control character");
      *out = NULL;
      return;
    }
  }
}

static bool check_locality(mesh__cfg_t *c, const cJSON *v, const char *path,
                           mesh__ep_t *e) {
  static const char *const keys[] = {"region", "zone", "subzone", NULL};
  int before = c->nerr;
  if (!mesh__cfg_object(c, v, path, keys))
    return false;
  check_text(c, v, path, "region", MESH__DISC_MAX_LOCALITY, &e->region);
  check_text(c, v, path, "zone", MESH__DISC_MAX_LOCALITY, &e->zone);
  check_text(c, v, path, "subzone", MESH__DISC_MAX_LOCALITY, &e->subzone);
  return c->nerr == before;
}

static bool check_labels(mesh__cfg_t *c, const cJSON *v, const char *path) {
  if (!cJSON_IsObject(v)) {
    mesh__cfg_error(c, path, "expected an object of string labels");
    return false;
  }
  int before = c->nerr, n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    char p[MESH__PATH_MAX];
    mesh__cfg_path(p, path, it->string);
    if (++n > MESH__DISC_MAX_LABELS) {
      mesh__cfg_error(c, path, "more than %d labels", MESH__DISC_MAX_LABELS);
      break;
    }
    size_t kl = strlen(it->string);
    if (kl == 0 || kl > MESH__DISC_MAX_LABEL_KEY)
      mesh__cfg_error(c, p, "label key must be 1-%d bytes",
                      MESH__DISC_MAX_LABEL_KEY);
    const char *val;
    check_text(c, v, path, it->string, MESH__DISC_MAX_LABEL_VALUE, &val);
    for (const cJSON *o = v->child; o != it; o = o->next)
      if (strcmp(o->string, it->string) == 0)
        mesh__cfg_error(c, p, "duplicate label");
  }
  return c->nerr == before;
}

bool mesh__ep_parse_attrs(mesh__cfg_t *c, const cJSON *obj, const char *path,
                          mesh__ep_t *e) {
  int before = c->nerr;
  int64_t w, prio;
  mesh__cfg_int(c, obj, path, "weight", 1, MESH__DISC_MAX_WEIGHT, 1, &w);
  mesh__cfg_int(c, obj, path, "priority", 0, MESH__DISC_MAX_PRIORITY, 0,
                &prio);
  e->weight = (uint32_t)w;
  e->priority = (uint32_t)prio;
  mesh__cfg_enum(c, obj, path, "health", health_names, MESH__HEALTH_UNKNOWN,
                 &e->health);
  e->region = e->zone = e->subzone = NULL;
  e->labels = NULL;
  char p[MESH__PATH_MAX];
  const cJSON *loc = cJSON_GetObjectItemCaseSensitive(obj, "locality");
  if (loc) {
    mesh__cfg_path(p, path, "locality");
    check_locality(c, loc, p, e);
  }
  const cJSON *labels = cJSON_GetObjectItemCaseSensitive(obj, "labels");
  if (labels) {
    mesh__cfg_path(p, path, "labels");
    if (check_labels(c, labels, p))
      e->labels = labels;
  }
  return c->nerr == before;
}

bool mesh__ep_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                    mesh__ep_t *e) {
  static const char *const keys[] = {"address",  "port",   "weight",
                                     "priority", "locality", "labels",
                                     "health",   NULL};
  memset(e, 0, sizeof *e);
  int before = c->nerr;
  if (!mesh__cfg_object(c, v, path, keys))
    return false;
  char p[MESH__PATH_MAX];
  if (!mesh__cfg_string(c, v, path, "address", NULL, &e->address)) {
    if (!cJSON_GetObjectItemCaseSensitive(v, "address")) {
      mesh__cfg_path(p, path, "address");
      mesh__cfg_error(c, p, "required");
    }
  } else if (!mesh__disc_valid_address(e->address)) {
    mesh__cfg_path(p, path, "address");
    mesh__cfg_error(c, p, "not an IP address or hostname");
  }
  int64_t port;
  if (!mesh__cfg_int(c, v, path, "port", 1, 65535, 0, &port) &&
      !cJSON_GetObjectItemCaseSensitive(v, "port")) {
    mesh__cfg_path(p, path, "port");
    mesh__cfg_error(c, p, "required");
  }
  e->port = (uint16_t)port;
  mesh__ep_parse_attrs(c, v, path, e);
  return c->nerr == before;
}

int mesh__ep_parse_list(mesh__cfg_t *c, const cJSON *arr, const char *path,
                        mesh__ep_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!cJSON_IsArray(arr)) {
    mesh__cfg_error(c, path, "expected an array of endpoints");
    return MESH_ERR_PARSE;
  }
  int count = cJSON_GetArraySize(arr);
  if (count > MESH__DISC_MAX_ENDPOINTS) {
    mesh__cfg_error(c, path, "%d endpoints: more than the limit of %d", count,
                    MESH__DISC_MAX_ENDPOINTS);
    return MESH_ERR_PARSE;
  }
  mesh__ep_t *eps = calloc(count ? (size_t)count : 1, sizeof *eps);
  if (!eps)
    return MESH_ERR_NOMEM;
  int before = c->nerr;
  size_t i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    char p[MESH__PATH_MAX];
    snprintf(p, sizeof p, "%s[%zu]", path, i);
    mesh__ep_parse(c, it, p, &eps[i]);
    i++;
    /* A file of garbage should not produce 100,000 log lines. */
    if (c->nerr - before >= 20)
      break;
  }
  if (c->nerr != before) {
    free(eps);
    return MESH_ERR_PARSE;
  }
  *out = eps;
  *n = i;
  return MESH_OK;
}
