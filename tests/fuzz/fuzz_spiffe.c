/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz SPIFFE IDs: validation, splitting and pattern matching.
 * Input: "<pattern>\n<id>" (no newline: the whole input is the id and is
 * also used as its own pattern).
 * Properties: parse agrees with validate; a valid ID splits into a trust
 * domain and path that rebuild it, and matches itself, "*" and its trust
 * domain; an invalid ID matches nothing; short buffers fail cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mesh/mesh.h>

#include "fuzz.h"
#include "identity/identity.h"

static void check_valid(const char *id) {
  char td[MESH_TRUST_DOMAIN_MAX + 1], path[MESH_SPIFFE_ID_MAX + 1];
  FUZZ_ASSERT(mesh_spiffe_id_parse(id, td, sizeof td, path, sizeof path,
                                   NULL) == MESH_OK);
  FUZZ_ASSERT(strlen(id) <= MESH_SPIFFE_ID_MAX);
  FUZZ_ASSERT(td[0] != '\0' && strlen(td) <= MESH_TRUST_DOMAIN_MAX);
  FUZZ_ASSERT(path[0] == '\0' || path[0] == '/');
  char whole[sizeof td + sizeof path + 16];
  snprintf(whole, sizeof whole, "spiffe://%s%s", td, path);
  FUZZ_ASSERT(strcmp(whole, id) == 0);
  FUZZ_ASSERT(mesh__spiffe_td_validate(td, NULL) == MESH_OK);
  FUZZ_ASSERT(mesh_spiffe_match(id, id) == 1);
  FUZZ_ASSERT(mesh_spiffe_match(id + 9, id) == 1); /* Istio principal form */
  FUZZ_ASSERT(mesh_spiffe_match("*", id) == 1);
  snprintf(whole, sizeof whole, "spiffe://%s", td);
  FUZZ_ASSERT(mesh_spiffe_match(whole, id) == 1);

  /* Exact-size buffers, then one byte short: ASan sees any overrun. */
  size_t tn = strlen(td) + 1, pn = strlen(path) + 1;
  char *t = malloc(tn), *p = malloc(pn);
  if (t && p) {
    FUZZ_ASSERT(mesh_spiffe_id_parse(id, t, tn, p, pn, NULL) == MESH_OK);
    mesh_status_t st;
    FUZZ_ASSERT(mesh_spiffe_id_parse(id, t, tn - 1, NULL, 0, &st) ==
                MESH_ERR_BUFFER);
    if (pn > 1)
      FUZZ_ASSERT(mesh_spiffe_id_parse(id, NULL, 0, p, pn - 1, &st) ==
                  MESH_ERR_BUFFER);
  }
  free(t);
  free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *f;
  size_t fn = fuzz_field(&data, &size, '\n', &f);
  char *pattern = fuzz_strndup(f, fn);
  char *id = size ? fuzz_strndup(data, size) : fuzz_strndup(f, fn);
  if (!pattern || !id)
    goto out;
  mesh_status_t st;
  int rc = mesh_spiffe_id_validate(id, &st);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_SPIFFE_ID);
  FUZZ_ASSERT(st.code == rc && strlen(st.message) < sizeof st.message);
  if (rc == MESH_OK) {
    check_valid(id);
  } else {
    char td[MESH_TRUST_DOMAIN_MAX + 1];
    FUZZ_ASSERT(mesh_spiffe_id_parse(id, td, sizeof td, NULL, 0, NULL) ==
                MESH_ERR_SPIFFE_ID);
    FUZZ_ASSERT(mesh_spiffe_match("*", id) == 0);
    FUZZ_ASSERT(mesh_spiffe_match(pattern, id) == 0);
  }
  int m = mesh_spiffe_match(pattern, id);
  FUZZ_ASSERT(m == 0 || m == 1);
  /* Both strings as trust domains too (the bundle map keys). */
  rc = mesh__spiffe_td_validate(pattern, &st);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_SPIFFE_ID);
out:
  free(pattern);
  free(id);
  return 0;
}
