/* SPDX-License-Identifier: Apache-2.0 */
/* The etcd client's config object (endpoints, TLS files, credentials,
 * timeout), shared by the etcd discovery source and registration: checked
 * here, read by mesh__etcd_new() (etcd.c). */
#include "discovery/etcd.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

bool mesh__etcd_urls(const cJSON *eps, char ***urls, char ***shown,
                     size_t *n) {
  size_t max = (size_t)cJSON_GetArraySize(eps);
  *n = 0;
  *urls = calloc(max ? max : 1, sizeof **urls);
  *shown = calloc(max ? max : 1, sizeof **shown);
  if (!*urls || !*shown)
    return false;
  const cJSON *it;
  cJSON_ArrayForEach(it, eps) {
    if (!cJSON_IsString(it))
      continue;
    size_t l = strlen(it->valuestring);
    char *u = strdup(it->valuestring);
    /* "http://h:2379/" and "http://h:2379" name the same base. */
    if (u && l > 0 && u[l - 1] == '/')
      u[l - 1] = '\0';
    char *sh = u ? mesh__redact_userinfo_dup(u) : NULL;
    if (!u || !sh) {
      free(u);
      free(sh);
      return false;
    }
    (*shown)[*n] = sh;
    (*urls)[(*n)++] = u;
  }
  return true;
}

void mesh__etcd_check(mesh__cfg_t *c, const cJSON *obj, const char *path) {
  char p[MESH__PATH_MAX];
  const cJSON *eps;
  mesh__cfg_path(p, path, "endpoints");
  if (!mesh__cfg_strings(c, obj, path, "endpoints", &eps)) {
    if (!cJSON_GetObjectItemCaseSensitive(obj, "endpoints"))
      mesh__cfg_error(c, p, "required: etcd client URLs "
                            "(\"http://127.0.0.1:2379\")");
  } else {
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, eps) {
      char ip[MESH__PATH_MAX + 16];
      snprintf(ip, sizeof ip, "%s[%d]", p, i++);
      const char *u = it->valuestring;
      if (!u)
        continue;
      if ((strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) ||
          strlen(u) > 512 || strlen(u) < 9)
        mesh__cfg_error(c, ip, "expected an http:// or https:// URL");
    }
    if (i == 0)
      mesh__cfg_error(c, p, "must list at least one URL");
  }
  const char *ca, *cert, *key, *user, *pass;
  mesh__cfg_string(c, obj, path, "ca", NULL, &ca);
  mesh__cfg_string(c, obj, path, "cert", NULL, &cert);
  mesh__cfg_string(c, obj, path, "key", NULL, &key);
  mesh__cfg_string(c, obj, path, "username", NULL, &user);
  mesh__cfg_string(c, obj, path, "password", NULL, &pass);
  if (!cert != !key) {
    mesh__cfg_path(p, path, cert ? "key" : "cert");
    mesh__cfg_error(c, p, "\"cert\" and \"key\" go together");
  }
  if (!user != !pass) {
    mesh__cfg_path(p, path, user ? "password" : "username");
    mesh__cfg_error(c, p, "\"username\" and \"password\" go together");
  }
  int64_t to;
  mesh__cfg_int(c, obj, path, "timeout_ms", 10, 600000,
                MESH__ETCD_TIMEOUT_DEFAULT_MS, &to);
}
