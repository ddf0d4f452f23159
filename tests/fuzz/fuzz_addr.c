/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the one "host:port" syntax of core (core/addr.c) and discovery's
 * stricter reading of it (mesh__disc_split_hostport).
 * Input: the address (any bytes; cut at the first NUL).
 * Properties: a verdict in range and host/port set only on success; an
 * accepted address rebuilds to itself ("[v6]" kept for hosts with ':');
 * discovery accepts only what core accepts with ports 1-65535, and with a
 * host shorter than its buffer; exact-size host buffers never overrun. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "discovery/discovery.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_strndup(data, size);
  if (!s)
    return 0;
  char host[256];
  uint16_t port = 7;
  int v = mesh__hostport_split(s, host, sizeof host, 0, &port);
  FUZZ_ASSERT(v >= MESH__HP_OK && v <= MESH__HP_PORT);
  if (v == MESH__HP_OK) {
    size_t hl = strlen(host);
    FUZZ_ASSERT(hl > 0 && hl < sizeof host);
    char again[300];
    snprintf(again, sizeof again, s[0] == '[' ? "[%s]:%s" : "%s:%s", host,
             strrchr(s, ':') + 1);
    FUZZ_ASSERT(strcmp(again, s) == 0);
    /* exactly the room the host needs, then one byte less */
    char *h = malloc(hl + 1);
    uint16_t p2;
    if (h) {
      FUZZ_ASSERT(mesh__hostport_split(s, h, hl + 1, 0, &p2) == MESH__HP_OK);
      FUZZ_ASSERT(p2 == port && strcmp(h, host) == 0);
      FUZZ_ASSERT(mesh__hostport_split(s, h, hl, 0, &p2) == MESH__HP_HOST_LEN);
    }
    free(h);
  }
  char dhost[256], err[128];
  uint16_t dport;
  int rc = mesh__disc_split_hostport(s, dhost, sizeof dhost, &dport, err,
                                     sizeof err);
  FUZZ_ASSERT(rc == MESH_OK || rc == MESH_ERR_PARSE);
  if (rc == MESH_OK)
    FUZZ_ASSERT(v == MESH__HP_OK && port >= 1 && dport == port &&
                strcmp(dhost, host) == 0);
  else
    FUZZ_ASSERT(err[0] != '\0');
  free(s);
  return 0;
}
