/* SPDX-License-Identifier: Apache-2.0 */
/* Samplers with OpenTelemetry semantics: always_on, always_off,
 * traceidratio, and parentbased_* (follow a parent's decision, use the
 * named sampler for roots).  Pure functions: no I/O, no allocation. */
#include "telemetry/tracer.h"

#include <math.h>

const char *const mesh__sampler_names[] = {
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    NULL,
};

void mesh__sampler_init(mesh__sampler_t *s, int type, double ratio) {
  s->type = type;
  if (!(ratio >= 0)) /* NaN too */
    ratio = 0;
  if (ratio > 1)
    ratio = 1;
  s->ratio = ratio;
  /* As OpenTelemetry Go: the low 8 bytes of the trace id, big endian,
   * shifted to 63 bits, compared with ratio * 2^63.  Deterministic per
   * trace, so every service keeps or drops the same traces. */
  s->bound = ratio >= 1 ? UINT64_MAX : (uint64_t)(ratio * 9223372036854775808.0);
}

static bool by_ratio(const mesh__sampler_t *s, const uint8_t tid[16]) {
  uint64_t x = 0;
  for (int i = 8; i < 16; i++)
    x = (x << 8) | tid[i];
  return (x >> 1) < s->bound;
}

bool mesh__sampler_decide(const mesh__sampler_t *s, const uint8_t tid[16],
                          int parent) {
  switch (s->type) {
  case MESH__SAMPLER_ALWAYS_ON:
    return true;
  case MESH__SAMPLER_ALWAYS_OFF:
    return false;
  case MESH__SAMPLER_TRACEIDRATIO:
    return by_ratio(s, tid);
  default:
    break;
  }
  if (parent == MESH__PARENT_SAMPLED)
    return true;
  if (parent == MESH__PARENT_NOT_SAMPLED)
    return false;
  switch (s->type) {
  case MESH__SAMPLER_PB_ALWAYS_ON:
    return true;
  case MESH__SAMPLER_PB_ALWAYS_OFF:
    return false;
  default:
    return by_ratio(s, tid);
  }
}
