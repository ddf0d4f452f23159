/* SPDX-License-Identifier: Apache-2.0 */
/* The property "mesh_config_check() == mesh_new()" (one validator, one
 * verdict), shared by the config fuzz harness and tests/test_config.c's
 * replay of the whole config corpus.
 *
 *   - check reports errors  -> mesh_new fails with MESH_ERR_CONFIG, no
 *     context, and its message starts with check's first error.  (Always
 *     compared: mesh_new validates before it opens anything.)
 *   - check reports none    -> mesh_new succeeds.  Compared only for
 *     documents that name no file, socket, address or URL: the others may
 *     fail for what is outside the document (a missing file, a taken
 *     port), and a fuzzed config must never make a test touch the network
 *     or the file system. */
#ifndef MESH_TESTS_FUZZ_CONFIG_PROP_H
#define MESH_TESTS_FUZZ_CONFIG_PROP_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mesh/mesh.h>

/* Keys whose presence means I/O at mesh_new (files, listeners, resolvers,
 * registries, exporters, external authorizers, health checks).  Static
 * endpoints stay allowed: they are data until something dials. */
static const char *const cprop_io_keys[] = {
    "path",     "cert",     "key",    "bundle", "bundles",      "etcd",
    "listen",   "dns",      "endpoint", "register", "url",      "servers",
    "admin",    "opa",      "otlp",   "zipkin", "exporter",     "health_check",
    NULL};
/* Values that select an I/O source ("type": "dns", "file", "etcd"). */
static const char *const cprop_io_values[] = {"dns", "file", "etcd", NULL};

static inline bool cprop_touches_io(const cJSON *n, int depth) {
  if (!n || depth > 64)
    return depth > 64;
  if (cJSON_IsString(n) && n->valuestring) {
    if (strstr(n->valuestring, "://"))
      return true;
    for (int i = 0; cprop_io_values[i]; i++)
      if (strcmp(n->valuestring, cprop_io_values[i]) == 0)
        return true;
  }
  if (n->string)
    for (int i = 0; cprop_io_keys[i]; i++)
      if (strcmp(n->string, cprop_io_keys[i]) == 0)
        return true;
  for (const cJSON *c = n->child; c; c = c->next)
    if (cprop_touches_io(c, depth + 1))
      return true;
  return false;
}

typedef struct cprop_errs {
  int n;
  char first[512];
} cprop_errs_t;

static inline void cprop_on_error(const char *path_and_reason, void *user) {
  cprop_errs_t *e = user;
  if (e->n++ == 0)
    snprintf(e->first, sizeof e->first, "%s", path_and_reason);
}

enum { CPROP_SAME, CPROP_NOT_COMPARED, CPROP_DIFFER };

/* Compare the two verdicts on s; on CPROP_DIFFER, why (>= 1 KiB). */
static inline int cprop_check_vs_new(const char *s, char *why, size_t wlen) {
  cprop_errs_t e = {0};
  int n = mesh_config_check(s, cprop_on_error, &e);
  why[0] = '\0';
  if (n < 0 || n != e.n) {
    snprintf(why, wlen, "check returned %d, reported %d errors", n, e.n);
    return CPROP_DIFFER;
  }
  bool io = true;
  if (n == 0) {
    cJSON *doc = cJSON_Parse(s);
    io = !doc || cprop_touches_io(doc, 0);
    cJSON_Delete(doc);
    if (io)
      return CPROP_NOT_COMPARED;
  }
  mesh_t *m = NULL;
  mesh_status_t st;
  int rc = mesh_new(s, &m, &st);
  if (rc == MESH_OK)
    mesh_free(m);
  /* mesh_new's message is the first error, cut with " [...]" where it
   * does not fit (core/mesh.c), then "(and N more errors)": compare the
   * part before any cut */
  size_t cmp = strlen(st.message);
  const char *cut = strstr(st.message, " [...]");
  if (cut)
    cmp = (size_t)(cut - st.message);
  if (cmp > strlen(e.first))
    cmp = strlen(e.first);
  if (n > 0 && (rc != MESH_ERR_CONFIG || m ||
                strncmp(st.message, e.first, cmp) != 0)) {
    snprintf(why, wlen, "check: %d error(s), first \"%s\"; mesh_new: %d \"%s\"",
             n, e.first, rc, rc == MESH_OK ? "" : st.message);
    return CPROP_DIFFER;
  }
  if (n == 0 && rc != MESH_OK) {
    snprintf(why, wlen, "check: OK; mesh_new: %d \"%s\"", rc, st.message);
    return CPROP_DIFFER;
  }
  return CPROP_SAME;
}

#endif /* MESH_TESTS_FUZZ_CONFIG_PROP_H */
