/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the libFuzzer harnesses: a property that must hold aborts
 * (libFuzzer and the replay driver both report an abort as a failure), and
 * small helpers to cut one input into several fields. */
#ifndef MESH_TESTS_FUZZ_H
#define MESH_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A crash is not the only bug a fuzzer can find: a harness also checks what
 * the code promises (round trips, agreement between two parsers). */
#define FUZZ_ASSERT(cond)                                                    \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__,    \
              #cond);                                                        \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* A NUL-terminated copy of data (caller frees); NULL when out of memory. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return NULL;
  if (size)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* Cut the next field off *data at the first `sep` byte (the field excludes
 * it); the last field runs to the end.  Returns the field length. */
static inline size_t fuzz_field(const uint8_t **data, size_t *size,
                                uint8_t sep, const uint8_t **field) {
  *field = *data;
  const uint8_t *p = *size ? memchr(*data, sep, *size) : NULL;
  size_t n = p ? (size_t)(p - *data) : *size;
  size_t skip = p ? n + 1 : n;
  *data += skip;
  *size -= skip;
  return n;
}

#endif
