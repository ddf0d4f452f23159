/* SPDX-License-Identifier: Apache-2.0 */
/* CDS: a Cluster to the libmesh service config it stands for ("lb",
 * "outlier_detection", "circuit_breakers", "timeouts"), checked by the
 * parts that own those keys, plus what the xDS client watches next (the
 * EDS name, an aggregate cluster's children, or a LOGICAL_DNS cluster's
 * name to resolve: logical_dns.c).  Refused: every cluster type but EDS,
 * LOGICAL_DNS and aggregate, custom lb policies, LRS, active health
 * checks, and each knob libmesh has no mechanism for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/proto/cluster.pb-c.h"
#include "xds/proto/tls.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

#define AGGREGATE_URL \
  MESH__XDS_TYPE_PREFIX "envoy.extensions.clusters.aggregate.v3.ClusterConfig"
#define UPSTREAM_TLS_URL \
  MESH__XDS_TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


void mesh__xds_cds_free(mesh__xds_cds_t *c) {
  if (!c)
    return;
  free(c->name);
  free(c->eds_name);
  for (size_t i = 0; i < c->nchildren; i++)
    free(c->children[i]);
  free(c->children);
  free(c->dns.host);
  free(c->dns.ep_hostname);
  cJSON_Delete(c->svc);
  free(c->tls_cert_instance);
  free(c->tls_ca_instance);
  mesh__xds_san_free(c->san, c->nsan);
  free(c);
}

static bool ads_source(const Meshxds__ConfigSource *s) {
  return !s || s->ads || s->self;
}

static int discovery(const Meshxds__Cluster *m, mesh__xds_cds_t *c, why_t *w) {
  if (m->cluster_discovery_type_case ==
      MESHXDS__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE) {
    const Meshxds__Cluster__CustomClusterType *t = m->cluster_type;
    if (!t->typed_config || strcmp(t->typed_config->type_url, AGGREGATE_URL))
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "cluster_type %s: only "
                    "envoy.clusters.aggregate is supported", t->name);
    Meshxds__AggregateClusterConfig *a = meshxds__aggregate_cluster_config__unpack(
        NULL, t->typed_config->value.len, t->typed_config->value.data);
    if (!a)
      return REFUSE(w, MESH_ERR_PARSE, "cluster_type.typed_config: malformed");
    int rc = a->n_clusters ? 0 : REFUSE(w, MESH_ERR_CONFIG,
                                        "aggregate: no clusters");
    c->kind = MESH__XDS_CLUSTER_AGGREGATE;
    c->children = calloc(a->n_clusters + 1, sizeof *c->children);
    for (size_t i = 0; !rc && c->children && i < a->n_clusters; i++) {
      if (!*a->clusters[i])
        rc = REFUSE(w, MESH_ERR_CONFIG, "aggregate.clusters[%zu]: empty", i);
      else if (!(c->children[c->nchildren++] = strdup(a->clusters[i])))
        rc = MESH_ERR_NOMEM;
    }
    if (!c->children)
      rc = MESH_ERR_NOMEM;
    meshxds__aggregate_cluster_config__free_unpacked(a, NULL);
    return rc;
  }
  static const char *const names[] = {"STATIC", "STRICT_DNS", "LOGICAL_DNS",
                                      "EDS", "ORIGINAL_DST"};
  if (m->type == MESHXDS__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS)
    return mesh__xds_cds_dns(m, c, w); /* logical_dns.c */
  if (m->type != MESHXDS__CLUSTER__DISCOVERY_TYPE__EDS)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "type %s: only EDS, LOGICAL_DNS "
                  "and aggregate clusters are supported",
                  (unsigned)m->type < 5 ? names[m->type] : "?");
  const Meshxds__Cluster__EdsClusterConfig *e = m->eds_cluster_config;
  if (e && !ads_source(e->eds_config))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "eds_cluster_config.eds_config: "
                  "only ads and self are supported");
  c->kind = MESH__XDS_CLUSTER_EDS;
  c->eds_name = strdup(e && *e->service_name ? e->service_name : m->name);
  return c->eds_name ? 0 : MESH_ERR_NOMEM;
}

/* lb_policy and its configs -> "lb".  Over 60 lines: one switch arm per
 * policy, each with its own config message; split up it would only move
 * the arms apart from the switch that chooses them. */
static int lb(const Meshxds__Cluster *m, cJSON *svc, why_t *w) {
  cJSON *o = cJSON_AddObjectToObject(svc, "lb");
  if (!o)
    return MESH_ERR_NOMEM;
  if (m->load_balancing_policy)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "load_balancing_policy: custom "
                  "policies (gRFC A52) are not supported");
  switch (m->lb_policy) {
  case MESHXDS__CLUSTER__LB_POLICY__ROUND_ROBIN:
    cJSON_AddStringToObject(o, "policy", "round_robin");
    break;
  case MESHXDS__CLUSTER__LB_POLICY__RANDOM:
    cJSON_AddStringToObject(o, "policy", "random");
    break;
  case MESHXDS__CLUSTER__LB_POLICY__LEAST_REQUEST: {
    cJSON_AddStringToObject(o, "policy", "least_request");
    const Meshxds__Cluster__LeastRequestLbConfig *l = m->least_request_lb_config;
    if (l && (l->active_request_bias || l->slow_start_config))
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "least_request_lb_config: "
                    "active_request_bias and slow_start_config are not "
                    "supported");
    if (l && l->choice_count)
      cJSON_AddNumberToObject(o, "choice_count", l->choice_count->value);
    break;
  }
  case MESHXDS__CLUSTER__LB_POLICY__RING_HASH: {
    cJSON_AddStringToObject(o, "policy", "ring_hash");
    const Meshxds__Cluster__RingHashLbConfig *r = m->ring_hash_lb_config;
    if (r && r->hash_function != MESHXDS__CLUSTER__RING_HASH_LB_CONFIG__HASH_FUNCTION__XX_HASH)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "ring_hash_lb_config."
                    "hash_function: only XX_HASH is supported");
    cJSON *rh = cJSON_AddObjectToObject(o, "ring_hash");
    if (r && r->minimum_ring_size)
      cJSON_AddNumberToObject(rh, "minimum_ring_size",
                              (double)r->minimum_ring_size->value);
    if (r && r->maximum_ring_size)
      cJSON_AddNumberToObject(rh, "maximum_ring_size",
                              (double)r->maximum_ring_size->value);
    break;
  }
  case MESHXDS__CLUSTER__LB_POLICY__MAGLEV:
    cJSON_AddStringToObject(o, "policy", "maglev");
    if (m->maglev_lb_config && m->maglev_lb_config->table_size)
      cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "maglev"),
                              "table_size",
                              (double)m->maglev_lb_config->table_size->value);
    break;
  default:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "lb_policy %d: not supported",
                  (int)m->lb_policy);
  }
  const Meshxds__Cluster__CommonLbConfig *cl = m->common_lb_config;
  if (cl && cl->zone_aware_lb_config)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "common_lb_config."
                  "zone_aware_lb_config is not supported");
  if (cl && cl->locality_weighted_lb_config)
    cJSON_AddBoolToObject(o, "locality_weighted", 1);
  if (cl && cl->healthy_panic_threshold) {
    double v = cl->healthy_panic_threshold->value;
    if (!(v >= 0 && v <= 100) || v != (double)(int)v)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "common_lb_config."
                    "healthy_panic_threshold %g: libmesh takes a whole "
                    "percent 0..100", v);
    cJSON_AddNumberToObject(o, "panic_threshold", v);
  }
  return 0;
}

/* add "key": duration in ms */
static int add_ms(cJSON *o, const char *key, const Meshxds__Duration *d,
                  why_t *w, const char *field) {
  int64_t ms;
  if (!d)
    return 0;
  if (mesh__xds_duration_ms(d, &ms))
    return REFUSE(w, MESH_ERR_CONFIG, "%s: negative or too long", field);
  cJSON_AddNumberToObject(o, key, (double)ms);
  return 0;
}

#define U32(o, key, f) \
  do { if (f) cJSON_AddNumberToObject(o, key, (f)->value); } while (0)

static int outlier(const Meshxds__OutlierDetection *d, cJSON *svc, why_t *w) {
  if (!d)
    return 0;
  if (d->split_external_local_origin_errors)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "outlier_detection."
                  "split_external_local_origin_errors is not supported");
  cJSON *o = cJSON_AddObjectToObject(svc, "outlier_detection");
  U32(o, "consecutive_5xx", d->consecutive_5xx);
  U32(o, "max_ejection_percent", d->max_ejection_percent);
  U32(o, "enforcing_consecutive_5xx", d->enforcing_consecutive_5xx);
  U32(o, "enforcing_success_rate", d->enforcing_success_rate);
  U32(o, "success_rate_minimum_hosts", d->success_rate_minimum_hosts);
  U32(o, "success_rate_request_volume", d->success_rate_request_volume);
  U32(o, "success_rate_stdev_factor", d->success_rate_stdev_factor);
  U32(o, "consecutive_gateway_failure", d->consecutive_gateway_failure);
  U32(o, "enforcing_consecutive_gateway_failure",
      d->enforcing_consecutive_gateway_failure);
  U32(o, "failure_percentage_threshold", d->failure_percentage_threshold);
  U32(o, "enforcing_failure_percentage", d->enforcing_failure_percentage);
  U32(o, "failure_percentage_minimum_hosts", d->failure_percentage_minimum_hosts);
  if (d->successful_active_health_check_uneject_host)
    cJSON_AddBoolToObject(o, "successful_active_health_check_uneject_host",
                          d->successful_active_health_check_uneject_host->value);
  U32(o, "failure_percentage_request_volume",
      d->failure_percentage_request_volume);
  int rc = add_ms(o, "interval_ms", d->interval, w, "outlier_detection.interval");
  rc = rc ? rc : add_ms(o, "base_ejection_time_ms", d->base_ejection_time, w,
                        "outlier_detection.base_ejection_time");
  rc = rc ? rc : add_ms(o, "max_ejection_time_ms", d->max_ejection_time, w,
                        "outlier_detection.max_ejection_time");
  rc = rc ? rc : add_ms(o, "max_ejection_time_jitter_ms",
                        d->max_ejection_time_jitter, w,
                        "outlier_detection.max_ejection_time_jitter");
  return rc;
}

/* A breaker limit: xDS's 2^32-1 ("unlimited", Istio's default) saturates to
 * libmesh's largest limit, which no process reaches. */
static void limit(cJSON *o, const char *key, const Meshxds__UInt32Value *v) {
  if (v)
    cJSON_AddNumberToObject(o, key, v->value > INT32_MAX ? INT32_MAX : v->value);
}

static int breakers(const Meshxds__CircuitBreakers *b, cJSON *svc, why_t *w) {
  if (!b)
    return 0;
  if (b->n_per_host_thresholds)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "circuit_breakers."
                  "per_host_thresholds is not supported");
  for (size_t i = 0; i < b->n_thresholds; i++) {
    const Meshxds__CircuitBreakers__Thresholds *t = b->thresholds[i];
    if (t->priority != MESHXDS__CIRCUIT_BREAKERS__THRESHOLDS__ROUTING_PRIORITY__DEFAULT)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "circuit_breakers.thresholds[%zu]"
                    ": priority HIGH: libmesh has one routing priority", i);
    if (t->retry_budget)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "circuit_breakers.thresholds[%zu]"
                    ".retry_budget is not supported", i);
    if (cJSON_GetObjectItemCaseSensitive(svc, "circuit_breakers"))
      return REFUSE(w, MESH_ERR_CONFIG, "circuit_breakers.thresholds[%zu]: "
                    "a second DEFAULT priority entry", i);
    cJSON *o = cJSON_AddObjectToObject(svc, "circuit_breakers");
    limit(o, "max_connections", t->max_connections);
    limit(o, "max_pending_requests", t->max_pending_requests);
    limit(o, "max_requests", t->max_requests);
    limit(o, "max_retries", t->max_retries);
  }
  return 0;
}

static int transport(const Meshxds__TransportSocket *t, mesh__xds_cds_t *c,
                     why_t *w) {
  if (!t)
    return 0;
  if (!t->typed_config || strcmp(t->typed_config->type_url, UPSTREAM_TLS_URL))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "transport_socket %s: only "
                  "UpstreamTlsContext is supported", t->name);
  Meshxds__UpstreamTlsContext *u = meshxds__upstream_tls_context__unpack(
      NULL, t->typed_config->value.len, t->typed_config->value.data);
  if (!u)
    return REFUSE(w, MESH_ERR_PARSE, "transport_socket: malformed "
                  "UpstreamTlsContext");
  why_t sub = {""};
  int rc = mesh__xds_tls_instances(u->common_tls_context, &c->tls_cert_instance,
                                   &c->tls_ca_instance, true, &c->san,
                                   &c->nsan, &sub);
  meshxds__upstream_tls_context__free_unpacked(u, NULL);
  return rc ? REFUSE(w, rc, "transport_socket: %s", sub.msg) : 0;
}

/* What the cluster says beside lb, outlier and breakers. */
static int others(const Meshxds__Cluster *m, mesh__xds_cds_t *c, why_t *w) {
  if (m->n_health_checks)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "health_checks: active health "
                  "checks from xDS are not supported");
  if (m->lrs_server)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "lrs_server: load reporting is "
                  "not supported");
  if (m->max_requests_per_connection)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "max_requests_per_connection is "
                  "not supported");
  if (m->load_assignment && c->kind != MESH__XDS_CLUSTER_LOGICAL_DNS)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "load_assignment: inline "
                  "endpoints are not supported (use EDS)");
  if (m->connect_timeout) {
    cJSON *t = cJSON_AddObjectToObject(c->svc, "timeouts");
    int rc = add_ms(t, "connect_ms", m->connect_timeout, w, "connect_timeout");
    if (rc)
      return rc;
  }
  return transport(m->transport_socket, c, w);
}

int mesh__xds_decode_cds(const uint8_t *buf, size_t len, mesh__xds_cds_t **out,
                         mesh_status_t *st) {
  *out = NULL;
  Meshxds__Cluster *m = meshxds__cluster__unpack(NULL, len, buf);
  if (!m)
    return mesh__fail(st, MESH_ERR_PARSE, "Cluster: malformed protobuf");
  mesh__xds_cds_t *c = calloc(1, sizeof *c);
  why_t w = {""};
  int rc = MESH_ERR_NOMEM;
  if (c && (c->name = strdup(m->name)) && (c->svc = cJSON_CreateObject())) {
    rc = *m->name ? 0 : REFUSE(&w, MESH_ERR_CONFIG, "name: empty");
    rc = rc ? rc : discovery(m, c, &w);
    rc = rc ? rc : lb(m, c->svc, &w);
    rc = rc ? rc : outlier(m->outlier_detection, c->svc, &w);
    rc = rc ? rc : breakers(m->circuit_breakers, c->svc, &w);
    rc = rc ? rc : others(m, c, &w);
  }
  char what[300];
  snprintf(what, sizeof what, "cluster \"%s\"", m->name);
  if (rc == MESH_ERR_NOMEM)
    mesh__fail(st, rc, "out of memory");
  else if (rc)
    mesh__fail(st, rc, "%s: %s", what, w.msg);
  else
    rc = mesh__xds_check_svc(c->svc, what, st);
  meshxds__cluster__free_unpacked(m, NULL);
  if (rc) {
    mesh__xds_cds_free(c);
    return rc;
  }
  *out = c;
  return MESH_OK;
}
