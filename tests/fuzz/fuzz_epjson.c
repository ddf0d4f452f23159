/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz file discovery: the endpoints file as src_file.c reads it (JSON
 * parsed exactly, the document or its "endpoints" member validated), then
 * the snapshot discovery would publish from it.
 * Input: the file's bytes.
 * Properties: every accepted endpoint is within the documented limits; the
 * snapshot holds each address:port once, ordered; rebuilding from the same
 * endpoints on top of it reports "unchanged". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "discovery/discovery.h"
#include "discovery/etcd.h"
#include "fuzz.h"

static void check_snapshot(const mesh__ep_t *eps, size_t n) {
  mesh__snapshot_t *s = NULL;
  int rc = mesh__snap_build(NULL, eps, n, &s);
  if (rc == MESH_ERR_NOMEM)
    return;
  FUZZ_ASSERT(rc == MESH_OK);
  if (!s) /* identical to "no previous set": only when there is nothing */
    return;
  FUZZ_ASSERT(s->n <= n);
  for (size_t i = 0; i < s->n; i++) {
    const mesh__host_t *h = s->hosts[i];
    FUZZ_ASSERT(h->port > 0 && h->weight >= 1);
    for (size_t j = i + 1; j < s->n; j++)
      FUZZ_ASSERT(!(h->port == s->hosts[j]->port &&
                    strcmp(h->address, s->hosts[j]->address) == 0));
  }
  mesh__snapshot_t *again = NULL;
  rc = mesh__snap_build(s, eps, n, &again);
  FUZZ_ASSERT(rc == MESH_ERR_NOMEM || again == NULL);
  mesh__snap_release(again);
  mesh__snap_release(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_strndup(data, size);
  if (!text)
    return 0;
  size_t off = 0;
  cJSON *doc = mesh__json_parse_exact(text, size, &off);
  free(text);
  if (!doc) {
    FUZZ_ASSERT(off <= size);
    return 0;
  }
  const cJSON *arr = cJSON_IsObject(doc)
                         ? cJSON_GetObjectItemCaseSensitive(doc, "endpoints")
                         : doc;
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__ep_t *eps = NULL;
  size_t n = 0;
  int rc = mesh__ep_parse_list(&c, arr, "endpoints", &eps, &n);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PARSE || rc == MESH_ERR_NOMEM);
  if (rc == MESH_ERR_PARSE)
    FUZZ_ASSERT(c.nerr > 0 && st.message[0]);
  if (rc == MESH_OK) {
    FUZZ_ASSERT(c.nerr == 0 && n <= MESH__DISC_MAX_ENDPOINTS);
    for (size_t i = 0; i < n; i++) {
      FUZZ_ASSERT(eps[i].address && mesh__disc_valid_address(eps[i].address));
      FUZZ_ASSERT(eps[i].port >= 1);
      FUZZ_ASSERT(eps[i].weight >= 1 &&
                  eps[i].weight <= MESH__DISC_MAX_WEIGHT);
      FUZZ_ASSERT(eps[i].priority <= MESH__DISC_MAX_PRIORITY);
      FUZZ_ASSERT(eps[i].health >= MESH__HEALTH_UNKNOWN &&
                  eps[i].health <= MESH__HEALTH_DRAINING);
      FUZZ_ASSERT(!eps[i].labels ||
                  cJSON_GetArraySize(eps[i].labels) <= MESH__DISC_MAX_LABELS);
    }
    check_snapshot(eps, n);
  }
  free(eps);
  cJSON_Delete(doc);
  return 0;
}
