/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the observe part, the high read-only layer (exporters,
 * Prometheus text, the "tracing" section, the admin endpoint).  No other
 * part includes this or calls into observe: they count things, open spans
 * and register views through "telemetry/telemetry.h", and observe reads
 * them.  Its files share observe/exporter.h among themselves. */
#ifndef MESH_OBSERVE_OBSERVE_H
#define MESH_OBSERVE_OBSERVE_H

#include "core/core.h"
#include "telemetry/telemetry.h"

#endif /* MESH_OBSERVE_OBSERVE_H */
