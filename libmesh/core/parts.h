/* SPDX-License-Identifier: Apache-2.0 */
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
extern const mesh__part_t mesh__wl_part;          /* workload/wl_client.c */
extern const mesh__part_t mesh__inbound_part;
extern const mesh__part_t mesh__part_metrics;
extern const mesh__part_t mesh__part_tracing;
extern const mesh__part_t mesh__part_admin;
extern const mesh__part_t mesh__register_part;  /* discovery/register.c */
extern const mesh__svc_part_t mesh__disc_part;  /* discovery/discovery.c */
extern const mesh__part_t mesh__locality_part;        /* lb/locality.c */
extern const mesh__svc_part_t mesh__lb_svc_part;      /* lb/lb.c */
extern const mesh__svc_part_t mesh__subsets_svc_part; /* lb/subset.c */
extern const mesh__svc_part_t mesh__split_svc_part;   /* lb/subset.c */
extern const mesh__part_t mesh__authz_part;
extern const mesh__part_t mesh__authn_part;
extern const mesh__part_t mesh__http_part;
extern const mesh__part_t mesh__xds_part;          /* xds/part.c */
extern const mesh__part_t mesh__xds_certprov_part; /* xds/certprov.c */
extern const mesh__svc_part_t mesh__routes_svc_part;
extern const mesh__svc_part_t mesh__jwt_svc_part;    /* http/jwt_attach.c */
extern const mesh__svc_part_t mesh__grpc_svc_part;     /* grpc/svcconfig.c */

extern const mesh__svc_part_t mesh__res_part_outlier; /* resilience/svc.c */
extern const mesh__svc_part_t mesh__res_part_health;
extern const mesh__svc_part_t mesh__res_part_breakers;
extern const mesh__svc_part_t mesh__res_part_retry;
extern const mesh__svc_part_t mesh__res_part_timeouts;
extern const mesh__svc_part_t mesh__res_part_hedge;
extern const mesh__svc_part_t mesh__res_part_pool;
extern const mesh__svc_part_t mesh__res_part_alpn;
#endif /* MESH_CORE_PARTS_H */
