/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz etcd discovery: the watch stream cut into JSON messages
 * (mesh__jsplit_feed), each message as the gateway sends it (range "kvs",
 * watch "result.events[].kv", base64 keys and values), and each value as
 * an endpoint in the gRPC naming layout (mesh__etcd_parse_endpoint).  The
 * whole input is also tried as one value.
 * Input: bytes of a watch stream (or one stored value).
 * Properties: the splitter gives the same messages whatever the pieces the
 * bytes arrive in; base64 decodes what it encodes; accepted endpoints are
 * within the limits. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "discovery/discovery.h"
#include "discovery/etcd.h"
#include "fuzz.h"

#define MAX_MSG 4096
#define MAX_KEEP 64

static void check_value(const char *val, size_t len) {
  cJSON *doc = NULL;
  mesh__ep_t ep;
  char host[MESH__DISC_MAX_HOSTNAME + 3], err[200];
  bool deleted = true;
  int rc = mesh__etcd_parse_endpoint(val, len, &doc, &ep, host, sizeof host,
                                     &deleted, err, sizeof err);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PARSE);
  if (rc != MESH_OK) {
    FUZZ_ASSERT(doc == NULL && err[0]);
    return;
  }
  FUZZ_ASSERT(doc != NULL);
  if (!deleted) {
    FUZZ_ASSERT(ep.address && mesh__disc_valid_address(ep.address));
    FUZZ_ASSERT(ep.port >= 1 && ep.weight >= 1 &&
                ep.weight <= MESH__DISC_MAX_WEIGHT);
  }
  cJSON_Delete(doc);
}

/* One key/value pair of the gateway, base64-encoded. */
static void check_kv(const cJSON *kv) {
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
  char *out;
  size_t len;
  if (cJSON_IsString(k) && mesh__b64_decode(k->valuestring, &out, &len) ==
                               MESH_OK)
    free(out);
  if (cJSON_IsString(v) &&
      mesh__b64_decode(v->valuestring, &out, &len) == MESH_OK) {
    check_value(out, len);
    free(out);
  }
}

static void check_message(const char *msg, size_t len) {
  cJSON *m = mesh__json_parse_exact(msg, len, NULL);
  if (!m)
    return;
  int64_t x;
  (void)mesh__etcd_int(m, "revision", &x);
  const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(m, "kvs");
  const cJSON *it;
  cJSON_ArrayForEach(it, kvs) check_kv(it);
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(m, "result");
  const cJSON *hdr = cJSON_GetObjectItemCaseSensitive(res, "header");
  (void)mesh__etcd_int(hdr, "revision", &x);
  const cJSON *evs = cJSON_GetObjectItemCaseSensitive(res, "events");
  cJSON_ArrayForEach(it, evs)
      check_kv(cJSON_GetObjectItemCaseSensitive(it, "kv"));
  cJSON_Delete(m);
}

struct msgs {
  size_t n;
  char *v[MAX_KEEP];
  size_t len[MAX_KEEP];
};

static bool on_msg(const char *msg, size_t len, void *user) {
  struct msgs *ms = user;
  FUZZ_ASSERT(len >= 2 && (msg[0] == '{' || msg[0] == '['));
  FUZZ_ASSERT(msg[len - 1] == '}' || msg[len - 1] == ']');
  if (ms->n < MAX_KEEP) {
    ms->v[ms->n] = fuzz_strndup((const uint8_t *)msg, len);
    ms->len[ms->n] = len;
  }
  ms->n++;
  return true;
}

static void msgs_free(struct msgs *ms) {
  for (size_t i = 0; i < ms->n && i < MAX_KEEP; i++)
    free(ms->v[i]);
}

/* Feed in pieces of `step` bytes; returns the last rc. */
static int split(const uint8_t *data, size_t size, size_t step,
                 struct msgs *ms, size_t *left) {
  mesh__jsplit_t j;
  mesh__jsplit_init(&j, MAX_MSG);
  int rc = MESH_OK;
  for (size_t off = 0; off < size && rc == MESH_OK; off += step) {
    size_t n = size - off < step ? size - off : step;
    rc = mesh__jsplit_feed(&j, (const char *)data + off, n, on_msg, ms);
  }
  *left = j.len;
  mesh__jsplit_free(&j);
  return rc;
}

static void check_b64(const uint8_t *data, size_t size) {
  char *enc = mesh__b64_encode(data, size);
  if (!enc)
    return;
  char *dec;
  size_t len;
  FUZZ_ASSERT(mesh__b64_decode(enc, &dec, &len) == MESH_OK);
  FUZZ_ASSERT(len == size && (size == 0 || memcmp(dec, data, size) == 0));
  free(dec);
  free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_value((const char *)data, size);
  check_b64(data, size < 1024 ? size : 1024);
  char *s = fuzz_strndup(data, size);
  if (s) {
    char *out;
    size_t len;
    if (mesh__b64_decode(s, &out, &len) == MESH_OK)
      free(out);
    free(s);
  }

  struct msgs whole = {0}, bits = {0};
  size_t lw, lb;
  int rw = split(data, size, size ? size : 1, &whole, &lw);
  int rb = split(data, size, 7, &bits, &lb);
  if (rw == MESH_OK && rb == MESH_OK) {
    FUZZ_ASSERT(whole.n == bits.n && lw == lb);
    for (size_t i = 0; i < whole.n && i < MAX_KEEP; i++)
      FUZZ_ASSERT(whole.len[i] == bits.len[i] &&
                  (!whole.v[i] || !bits.v[i] ||
                   memcmp(whole.v[i], bits.v[i], whole.len[i]) == 0));
  }
  for (size_t i = 0; i < whole.n && i < MAX_KEEP; i++)
    if (whole.v[i])
      check_message(whole.v[i], whole.len[i]);
  msgs_free(&whole);
  msgs_free(&bits);
  return 0;
}
