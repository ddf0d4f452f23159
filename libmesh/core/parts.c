/* The parts of the library, in set-up order.  Each part registers its
 * top-level config section and its per-service keys here, and nowhere else. */
#include "core/parts.h"

/* Top-level parts: init in this order, fini in reverse. */
const mesh__part_t *const mesh__parts[] = {
  &mesh__identity_part,
  &mesh__tls_part,
  &mesh__inbound_part,
  NULL,
};

/* Per-service keys ("peers" is core's own). */
const mesh__svc_part_t *const mesh__svc_parts[] = {
  NULL,
};
