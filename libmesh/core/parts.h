/* libmesh internal: the registry of parts (core/parts.c). */
#ifndef MESH_CORE_PARTS_H
#define MESH_CORE_PARTS_H

#include "core/core.h"

/* NULL-terminated tables. */
extern const mesh__part_t *const mesh__parts[];
extern const mesh__svc_part_t *const mesh__svc_parts[];

/* Each part defines its descriptor; declared here for parts.c. */
extern const mesh__part_t mesh__identity_part;
extern const mesh__part_t mesh__tls_part;
extern const mesh__part_t mesh__inbound_part;

#endif /* MESH_CORE_PARTS_H */
