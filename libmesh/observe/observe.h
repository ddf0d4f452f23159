/* libmesh internal: the observe part, the high read-only layer (exporters,
 * Prometheus text, the admin endpoint).  No other part includes this: they
 * count things and open spans through "telemetry/telemetry.h". */
#ifndef MESH_OBSERVE_OBSERVE_H
#define MESH_OBSERVE_OBSERVE_H

#include "core/core.h"
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>


#endif /* MESH_OBSERVE_OBSERVE_H */
