/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the configuration path: JSON text -> validation -> context.
 * Every input goes through mesh_config_check() and, for the property that
 * both give one verdict, mesh_new() (config_prop.h): always when the check
 * finds errors (mesh_new must refuse it with the same first error, before
 * any I/O), and for valid documents that name no file, socket, address or
 * URL.  The decision is made on the parsed document, so a key spelled
 * with \u escapes is seen for what it is. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_prop.h"
#include "core/core.h"
#include "fuzz.h"

/* core/json.c, the library's one JSON entry point, against cJSON itself:
 * it accepts exactly what cJSON parses with nothing but white space after
 * it and no key twice in an object, and then yields the same tree. */
static void json_entry_point(const uint8_t *data, size_t size) {
  mesh__json_err_t e;
  cJSON *v = mesh__json_parse((const char *)data, size, &e);
  const char *end = NULL;
  cJSON *raw = cJSON_ParseWithLengthOpts((const char *)data, size, &end, 0);
  bool trailing = false;
  for (const char *p = end; raw && p < (const char *)data + size; p++)
    trailing |= *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t';
  int dups = raw ? mesh__json_dups(raw, NULL, NULL) : 0;
  FUZZ_ASSERT(dups >= 0);
  FUZZ_ASSERT((v != NULL) == (raw && !trailing && dups == 0));
  if (v) {
    char *a = cJSON_PrintUnformatted(v), *b = cJSON_PrintUnformatted(raw);
    FUZZ_ASSERT(!a || !b || strcmp(a, b) == 0);
    free(a);
    free(b);
  } else if (e.kind == MESH__JSON_DUPLICATE) {
    FUZZ_ASSERT(strstr(e.message, "duplicate key") != NULL);
  } else {
    FUZZ_ASSERT(e.kind == MESH__JSON_SYNTAX && e.line >= 1);
  }
  cJSON_Delete(v);
  cJSON_Delete(raw);
}

static void count_error(const char *path_and_reason, void *user) {
  FUZZ_ASSERT(path_and_reason && path_and_reason[0]);
  (*(int *)user)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_strndup(data, size);
  if (!s)
    return 0;
  json_entry_point(data, size);
  int reported = 0;
  int n = mesh_config_check(s, count_error, &reported);
  /* every error counted is reported, with its path and reason */
  FUZZ_ASSERT(n < 0 || n == reported);
  /* one validator, one verdict: check == new (config_prop.h) */
  char why[1024];
  int verdict = cprop_check_vs_new(s, why, sizeof why);
  if (verdict == CPROP_DIFFER)
    fprintf(stderr, "check != new: %s\n", why);
  FUZZ_ASSERT(verdict != CPROP_DIFFER);
  free(s);
  return 0;
}
