/* SPDX-License-Identifier: Apache-2.0 */
/* The parts of the library, in set-up order.  Each part registers its
 * top-level config section and its per-service keys here, and nowhere else. */
#include "core/parts.h"

/* Top-level parts: init in this order, fini in reverse. */
const mesh__part_t *const mesh__parts[] = {
  /* first, so that its fini (which frees the registry) runs last */
  &mesh__part_metrics,
  &mesh__part_tracing,
  &mesh__identity_part,
  /* the Workload API source: pushes SVIDs into identity (may wait for the
   * first one), before anything dials */
  &mesh__wl_part,
  /* the xDS certificate provider source: hands identity the files of a
   * bootstrap's file_watcher instance, before anything dials */
  &mesh__xds_certprov_part,
  &mesh__tls_part,
  &mesh__authn_part,
  &mesh__authz_part,
  &mesh__http_part,
  &mesh__inbound_part,
  &mesh__locality_part,
  &mesh__xds_part,
  /* last: serves what every other part has set up */
  &mesh__part_admin,
  &mesh__register_part,
  NULL,
};

/* Per-service keys ("peers" is core's own). */
const mesh__svc_part_t *const mesh__svc_parts[] = {
  &mesh__lb_svc_part,
  &mesh__subsets_svc_part,
  &mesh__split_svc_part,
  /* discovery publishes static endpoints at init: keep it after lb so that
   * svc->prepare_snapshot is already set (it also re-prepares on the first
   * loop turn if not). */
  &mesh__disc_part,
  /* resilience after discovery and lb: its fini runs first and still sees
   * the endpoints (it closes their pooled connections). */
  &mesh__res_part_outlier,
  &mesh__res_part_health,
  &mesh__res_part_breakers,
  &mesh__res_part_retry,
  &mesh__res_part_timeouts,
  &mesh__res_part_hedge,
  &mesh__res_part_pool,
  &mesh__res_part_alpn,
  &mesh__routes_svc_part,
  &mesh__jwt_svc_part, /* after routes: it fills svc->http */
  &mesh__grpc_svc_part,
  NULL,
};
