/* SPDX-License-Identifier: Apache-2.0 */
/* What identity shows the readers (Prometheus text, admin endpoint): the
 * SVID expiry gauge, registered by identity itself through telemetry, so
 * no reader calls into identity. */
#include "identity/identity.h"
#include "telemetry/telemetry.h"

#include <math.h>

static double svid_expires_in(void *user) {
  mesh_t *m = user;
  mesh__creds_t *c = mesh__creds_acquire(m);
  if (!c)
    return NAN;
  double left = (double)(c->not_after - mesh__wall_s());
  mesh__creds_release(c);
  return left;
}

void mesh__identity_register_gauges(mesh_t *m) {
  mesh__gauge_func(
      m, "mesh_svid_expires_in_seconds",
      "Seconds until this workload's X.509-SVID expires (NaN: none loaded).",
      NULL, svid_expires_in, m);
}
