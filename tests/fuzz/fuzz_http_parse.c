/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the HTTP/1.1 parser (http/parse.h): request and response heads,
 * body framing, and path normalization.  Besides memory safety it checks
 * one property: feeding the same bytes in two pieces gives the same answer
 * as feeding them at once (no framing decision depends on read sizes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authz/authz.h"
#include "http/parse.h"

static int head(const char *p, size_t n, int request, size_t split,
                mesh__http_msg_t *msg, mesh__http_hdr_t *hdrs) {
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_head = 4096;
  lim.max_body = 4096;
  mesh__http_msg_init(msg, hdrs, 64);
  int rc = MESH_ERR_WANT_READ;
  if (split && split < n)
    rc = request ? mesh__http_parse_request(msg, p, split, &lim)
                 : mesh__http_parse_response(msg, p, split, 0, &lim);
  if (rc == MESH_ERR_WANT_READ)
    rc = request ? mesh__http_parse_request(msg, p, n, &lim)
                 : mesh__http_parse_response(msg, p, n, 0, &lim);
  return rc;
}

static void body(const mesh__http_msg_t *msg, const char *p, size_t n) {
  mesh__http_limits_t lim;
  mesh__http_limits_default(&lim);
  lim.max_head = 4096;
  lim.max_body = 4096;
  mesh__http_body_t b;
  mesh__http_body_init(&b, msg, &lim);
  size_t pos = 0;
  for (int guard = 0; guard < 100000 && !b.done; guard++) {
    size_t used;
    mesh__http_str_t d;
    int rc = mesh__http_body_parse(&b, p + pos, n - pos, &used, &d);
    if (used > n - pos || (d.n && (d.p < p || d.p + d.n > p + n)))
      abort();
    pos += used;
    if (rc < 0)
      break;
  }
  mesh__http_body_eof(&b);
}

/* The path every consumer of a parsed request sees, in each mode: policy
 * evaluation (r.path) and the OPA input carry the same one, the
 * normalization is a fixed point, and outside NONE it holds no "/./",
 * "/../", backslash or %00 (no "//" in the merge modes). */
static void paths(const mesh__http_msg_t *m) {
  char t[4200], out[4200], again[4200];
  if (m->target.n >= sizeof t)
    return;
  memcpy(t, m->target.p, m->target.n);
  t[m->target.n] = '\0';
  for (int mode = 0; mode <= MESH__PATH_DECODE_AND_MERGE_SLASHES; mode++) {
    size_t n;
    if (mesh__path_normalize(t, m->target.n, mode, out, sizeof out, &n))
      continue;
    if (mesh__path_normalize(out, n, mode, again, sizeof again, NULL) ||
        strcmp(out, again) != 0 || strstr(out, "%00"))
      abort();
    if (mode != MESH__PATH_NONE && strcmp(out, "*") != 0 &&
        (strstr(out, "/./") || strstr(out, "/../") || strchr(out, '\\') ||
         (mode >= MESH__PATH_MERGE_SLASHES && strstr(out, "//"))))
      abort();
    mesh_authz_request_t r;
    mesh__az_req_init(&r);
    r.http = true;
    r.method = "GET";
    r.target = t;
    r.path = out;
    char *doc = mesh__opa_input(&r, "");
    cJSON *root = doc ? cJSON_Parse(doc) : NULL;
    const cJSON *p = cJSON_GetObjectItem(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(root, "input"),
                                    "attributes"),
                "request"),
            "http"),
        "path");
    if (doc && (!cJSON_IsString(p) ||
                strncmp(p->valuestring, out, n) != 0 ||
                (p->valuestring[n] != '\0' && p->valuestring[n] != '?')))
      abort();
    cJSON_Delete(root);
    free(doc);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int request = data[0] & 1;
  size_t split = data[0] >> 1;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  mesh__http_hdr_t h1[64], h2[64];
  mesh__http_msg_t m1, m2;
  int a = head(p, n, request, 0, &m1, h1);
  int b = head(p, n, request, split, &m2, h2);
  if (a != b || (a > 0 && (m1.framing != m2.framing ||
                           m1.content_length != m2.content_length ||
                           m1.nhdrs != m2.nhdrs)))
    abort();
  if (a > 0)
    body(&m1, p + a, n - (size_t)a);
  if (a > 0 && request)
    paths(&m1);
  return 0;
}
