/* Fuzz the configuration path: JSON text -> validation -> context.
 * Every input goes through mesh_config_check() and, for the property that
 * both give one verdict, mesh_new() (config_prop.h): always when the check
 * finds errors (mesh_new must refuse it with the same first error, before
 * any I/O), and for valid documents that name no file, socket, address or
 * URL.  The decision is made on the parsed document, so a key spelled
 * with \u escapes is seen for what it is. */
#include <stdint.h>
#include <stdlib.h>

#include "config_prop.h"
#include "fuzz.h"

static void count_error(const char *path_and_reason, void *user) {
  FUZZ_ASSERT(path_and_reason && path_and_reason[0]);
  (*(int *)user)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_strndup(data, size);
  if (!s)
    return 0;
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
