/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — metrics (Prometheus exposition) and the admin endpoint. */
#ifndef MESH_METRICS_H
#define MESH_METRICS_H

#include <stddef.h>
#include <mesh/export.h>
#include <mesh/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;

/** Render every metric of the context in the Prometheus text exposition
 *  format 0.0.4 (what the admin endpoint serves at /metrics).
 *  Thread-safe.
 *  @param buf   receives the NUL-terminated text (may be NULL if len is 0).
 *  @param len   size of buf.
 *  @param need  optional: receives the size needed, NUL included.
 *  @return the text length (>= 0), MESH_ERR_BUFFER when buf is too small
 *          (call again with *need bytes), MESH_ERR_INVALID_ARG,
 *          MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_metrics_text(mesh_t *m, char *buf, size_t len,
                                  size_t *need);

/** The TCP port the admin endpoint listens on (useful with
 *  `"admin": {"listen": "127.0.0.1:0"}`).  Thread-safe.
 *  @return the port, or MESH_ERR_NOT_FOUND when the admin endpoint is not
 *          configured (it is off unless the "admin" section is present). */
MESH_EXTERN int mesh_admin_port(mesh_t *m);

#ifdef __cplusplus
}
#endif
#endif /* MESH_METRICS_H */
