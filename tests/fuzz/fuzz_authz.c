/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz authorization: an "authz" section (policies) built as the config
 * and mesh_authz_reload() build it, then evaluated against a request at
 * every stage; path normalization and IP blocks on the way.
 * Input: the authz JSON, then optionally a line "%%" and request lines:
 *   p=<principal> i=<peer ip> o=<port> m=<method> t=<target> h=<host>
 *   x=<header name>:<value>
 * (without "%%", a fixed set of requests is used).
 * Properties: evaluation is deterministic and total (allow or deny, a
 * reason, a policy name); no policies allow everything; a connection-level
 * denial is never lifted by the request-level check; path normalization
 * is idempotent in every mode and leaves no "//" (merge modes), "/./",
 * "/../", backslash or %00; the OPA input carries the path RBAC matched. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "authz/authz.h"
#include "fuzz.h"

/* Every mode: a fixed point, never longer than the target, and (except
 * NONE) free of the forms a policy could be dodged with. */
static void check_path(const char *t) {
  size_t n = strlen(t);
  char *a = malloc(n + 2), *b = malloc(n + 2);
  for (int mode = MESH__PATH_NONE;
       a && b && mode <= MESH__PATH_DECODE_AND_MERGE_SLASHES; mode++) {
    size_t an;
    if (mesh__path_normalize(t, n, mode, a, n + 2, &an) != MESH_OK)
      continue;
    FUZZ_ASSERT(an == strlen(a) && an <= n + 1);
    FUZZ_ASSERT(mesh__path_normalize(a, an, mode, b, n + 2, NULL) == MESH_OK);
    FUZZ_ASSERT(strcmp(a, b) == 0);
    FUZZ_ASSERT(!strstr(a, "%00"));
    if (mode == MESH__PATH_NONE || strcmp(a, "*") == 0)
      continue;
    FUZZ_ASSERT(a[0] == '/');
    FUZZ_ASSERT(!strstr(a, "/./") && !strstr(a, "/../") && !strchr(a, '\\'));
    FUZZ_ASSERT(!(an >= 2 && strcmp(a + an - 2, "/.") == 0));
    FUZZ_ASSERT(!(an >= 3 && strcmp(a + an - 3, "/..") == 0));
    if (mode >= MESH__PATH_MERGE_SLASHES)
      FUZZ_ASSERT(!strstr(a, "//"));
  }
  free(a);
  free(b);
}

/* OPA's input carries the path RBAC matched (and the query as sent), and
 * the target as sent in original_path. */
static void check_opa_path(const mesh_authz_request_t *r) {
  if (!r->http)
    return;
  char *doc = mesh__opa_input(r, "");
  cJSON *root = doc ? cJSON_Parse(doc) : NULL;
  const cJSON *http = cJSON_GetObjectItem(
      cJSON_GetObjectItem(
          cJSON_GetObjectItem(cJSON_GetObjectItem(root, "input"),
                              "attributes"),
          "request"),
      "http");
  const cJSON *p = cJSON_GetObjectItem(http, "path");
  const cJSON *o = cJSON_GetObjectItem(http, "original_path");
  if (doc) {
    FUZZ_ASSERT(cJSON_IsString(p) && cJSON_IsString(o));
    size_t pn = strcspn(p->valuestring, "?");
    FUZZ_ASSERT(pn == strlen(r->path) &&
                memcmp(p->valuestring, r->path, pn) == 0);
    FUZZ_ASSERT(strcmp(o->valuestring, r->target) == 0);
  }
  cJSON_Delete(root);
  free(doc);
}

static void eval(const mesh__authz_set_t *s, const mesh_authz_request_t *r,
                 int stage, mesh__authz_result_t *out) {
  mesh__authz_result_t again;
  mesh__authz_eval(s, r, stage, out);
  mesh__authz_eval(s, r, stage, &again);
  FUZZ_ASSERT(out->decision == MESH__AZ_DECIDE_ALLOW ||
              out->decision == MESH__AZ_DECIDE_DENY);
  FUZZ_ASSERT(out->policy && out->reason && out->reason[0]);
  FUZZ_ASSERT(again.decision == out->decision &&
              strcmp(again.policy, out->policy) == 0);
  if (!s || s->n == 0)
    FUZZ_ASSERT(out->decision == MESH__AZ_DECIDE_ALLOW);
  if (out->decision == MESH__AZ_DECIDE_DENY && out->policy[0]) {
    bool found = false;
    for (size_t i = 0; s && i < s->n; i++)
      found |= strcmp(s->policies[i].name, out->policy) == 0;
    FUZZ_ASSERT(found);
  }
}

static void check_request(const mesh__authz_set_t *s,
                          const mesh_authz_request_t *r) {
  mesh__authz_result_t conn, req, tcp;
  check_opa_path(r);
  eval(s, r, MESH__AZ_STAGE_CONN, &conn);
  eval(s, r, MESH__AZ_STAGE_TCP, &tcp);
  if (!r->http)
    return;
  eval(s, r, MESH__AZ_STAGE_REQUEST, &req);
  /* The accept-time check only denies what no request could make
   * allowed; CUSTOM providers may still deny later, never allow. */
  if (conn.decision == MESH__AZ_DECIDE_DENY)
    FUZZ_ASSERT(req.decision == MESH__AZ_DECIDE_DENY);
}

/* Apply one "k=value" line to r. */
static void apply(mesh_authz_request_t *r, char *line, char **target,
                  char **method, char **host) {
  if (strlen(line) < 2 || line[1] != '=')
    return;
  char *v = line + 2;
  switch (line[0]) {
  case 'p':
    mesh_authz_request_set_principal(r, v);
    break;
  case 'i':
    mesh_authz_request_set_source_ip(r, v);
    break;
  case 'o':
    mesh_authz_request_set_port(r, atoi(v));
    break;
  case 'm':
    *method = v;
    break;
  case 't':
    *target = v;
    check_path(v);
    break;
  case 'h':
    *host = v;
    break;
  case 'x': {
    char *colon = strchr(v, ':');
    if (colon) {
      *colon = '\0';
      mesh_authz_request_add_header(r, v, colon + 1);
    }
    break;
  }
  default:
    break;
  }
}

static mesh_authz_request_t *parse_request(char *text) {
  mesh_authz_request_t *r = mesh_authz_request_new();
  if (!r)
    return NULL;
  char *target = NULL, *method = NULL, *host = NULL;
  for (char *line = text; line;) {
    char *nl = strchr(line, '\n');
    if (nl)
      *nl = '\0';
    apply(r, line, &target, &method, &host);
    line = nl ? nl + 1 : NULL;
  }
  if (method || target) {
    int rc = mesh_authz_request_set_http(r, method ? method : "GET",
                                         target ? target : "/", host);
    FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_HTTP_PARSE ||
                rc == MESH_ERR_INVALID_ARG);
  }
  return r;
}

static const char *const fixed[] = {
    "p=spiffe://cluster.local/ns/default/sa/sleep\ni=127.1.2.3\no=8080\n"
    "m=GET\nt=/info?x=1\nh=httpbin\nx=x-tenant:acme",
    "p=spiffe://cluster.local/ns/dev/sa/web\ni=::ffff:127.168.0.9\no=443\n"
    "m=POST\nt=//admin/../%61dmin/\nh=Example.COM",
    "i=2001:db8::7\no=9000",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_strndup(data, size);
  if (!text)
    return 0;
  char *reqs = strstr(text, "\n%%\n");
  if (reqs) {
    *reqs = '\0';
    reqs += 4;
  }
  cJSON *root = cJSON_Parse(text);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__authz_set_t *s = NULL;
  int rc = mesh__authz_set_build(&c, root, "authz", &s);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_CONFIG || rc == MESH_ERR_NOMEM);
  if (rc == MESH_ERR_CONFIG)
    FUZZ_ASSERT(c.nerr > 0 && st.message[0] && !s);
  if (rc == MESH_OK && s) {
    FUZZ_ASSERT(s->nallow + s->ndeny + s->ncustom + s->naudit == s->n);
    if (reqs) {
      mesh_authz_request_t *r = parse_request(reqs);
      if (r)
        check_request(s, r);
      mesh_authz_request_free(r);
    } else {
      for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        char *t = strdup(fixed[i]);
        mesh_authz_request_t *r = t ? parse_request(t) : NULL;
        if (r)
          check_request(s, r);
        mesh_authz_request_free(r);
        free(t);
      }
    }
    mesh__authz_set_unref(s);
  } else if (reqs) {
    /* no policies at all: everything is allowed */
    mesh_authz_request_t *r = parse_request(reqs);
    if (r)
      check_request(NULL, r);
    mesh_authz_request_free(r);
  }
  cJSON_Delete(root);
  free(text);
  return 0;
}
