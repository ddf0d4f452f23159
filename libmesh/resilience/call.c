/* The call layer: dialing a configured service.  Placeholder until the
 * resilience part lands: service-name dials are not available yet. */
#include "core/core.h"

int mesh__dial_service(mesh_t *m, mesh__service_t *svc,
                       const mesh_dial_opts_t *opts, mesh_conn_t **out,
                       mesh_status_t *st) {
  (void)m;
  (void)opts;
  (void)out;
  return mesh__fail(st, MESH_ERR_UNSUPPORTED,
                    "dialing service \"%s\" by name needs the call layer",
                    svc ? svc->name : "?");
}
