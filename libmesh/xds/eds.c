/* SPDX-License-Identifier: Apache-2.0 */
/* EDS: a ClusterLoadAssignment to the endpoints discovery publishes
 * (localities, priorities, weights, health), with gRFC A27's validation:
 * priorities contiguous from 0, a locality at most once per priority,
 * endpoint weights >= 1.  What libmesh has no mechanism for (drop_overloads,
 * DEGRADED hosts, stale-after, weighted priority health) is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/proto/endpoint.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

void mesh__xds_eds_free(mesh__xds_eds_t *e) {
  if (!e)
    return;
  free(e->name);
  free(e->eps);
  cJSON_Delete(e->locality_weights);
  cJSON_Delete(e->labels_);
  mesh__xds_arena_free(e->arena_); /* the message lives in it */
  free(e);
}

static int health_of(Meshxds__HealthStatus h, int *out) {
  switch (h) {
  case MESHXDS__HEALTH_STATUS__UNKNOWN: *out = MESH__HEALTH_UNKNOWN; return 0;
  case MESHXDS__HEALTH_STATUS__HEALTHY: *out = MESH__HEALTH_HEALTHY; return 0;
  case MESHXDS__HEALTH_STATUS__UNHEALTHY:
  case MESHXDS__HEALTH_STATUS__TIMEOUT: *out = MESH__HEALTH_UNHEALTHY; return 0;
  case MESHXDS__HEALTH_STATUS__DRAINING: *out = MESH__HEALTH_DRAINING; return 0;
  default: return -1; /* DEGRADED: libmesh has no degraded tier */
  }
}

/* The locality key of lb.locality_weights: "region/zone/subzone". */
static void locality_key(const Meshxds__Locality *l, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s/%s", l && l->region ? l->region : "",
           l && l->zone ? l->zone : "", l && l->sub_zone ? l->sub_zone : "");
}

/* Labels of an endpoint: filter_metadata["envoy.lb"] string values (Envoy's
 * subset load balancer reads the same place).  Other value kinds refused. */
static int labels_of(const Meshxds__LbEndpoint *lb, cJSON *all,
                     const cJSON **out, char *why, size_t cap) {
  *out = NULL;
  if (!lb->metadata)
    return 0;
  for (size_t i = 0; i < lb->metadata->n_filter_metadata; i++) {
    Meshxds__Metadata__FilterMetadataEntry *fe = lb->metadata->filter_metadata[i];
    if (strcmp(fe->key, "envoy.lb") != 0 || !fe->value)
      continue; /* other filters' metadata is theirs, not the picker's */
    cJSON *o = cJSON_CreateObject();
    if (!o)
      return MESH_ERR_NOMEM;
    cJSON_AddItemToArray(all, o);
    for (size_t k = 0; k < fe->value->n_fields; k++) {
      Meshxds__Struct__FieldsEntry *f = fe->value->fields[k];
      if (!f->value || f->value->kind_case != MESHXDS__VALUE__KIND_STRING_VALUE) {
        return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED,
                                "metadata envoy.lb.%s: only string values "
                                "are supported as labels", f->key);
      }
      cJSON_AddStringToObject(o, f->key, f->value->string_value);
    }
    *out = o;
  }
  return 0;
}

/* One endpoint; why gets the reason of a refusal. */
static int one_ep(const Meshxds__LbEndpoint *lb, const Meshxds__Locality *loc,
                  uint32_t prio, mesh__xds_eds_t *e, char *why, size_t cap) {
  const Meshxds__Endpoint *ep = lb->endpoint;
  if (!ep || !ep->address)
    return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "endpoint: no address");
  if (ep->address->address_case != MESHXDS__ADDRESS__ADDRESS_SOCKET_ADDRESS)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "endpoint.address: only socket_address is "
                    "supported");
  const Meshxds__SocketAddress *sa = ep->address->socket_address;
  if (sa->protocol != MESHXDS__SOCKET_ADDRESS__PROTOCOL__TCP)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "socket_address.protocol: UDP is not "
                    "supported");
  if (sa->named_port && *sa->named_port)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "socket_address.named_port is not supported");
  if (sa->resolver_name && *sa->resolver_name)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "socket_address.resolver_name is not "
                    "supported");
  if (!sa->address || !*sa->address || strlen(sa->address) > 253)
    return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "socket_address.address: empty or too long");
  if (sa->port_value < 1 || sa->port_value > 65535)
    return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "socket_address.port_value %u: out of 1..65535",
                    sa->port_value);
  mesh__ep_t *o = &e->eps[e->n];
  memset(o, 0, sizeof *o);
  o->address = sa->address;
  o->hostname = ep->hostname && *ep->hostname ? ep->hostname : NULL;
  o->port = (uint16_t)sa->port_value;
  o->weight = lb->load_balancing_weight ? lb->load_balancing_weight->value : 1;
  if (o->weight < 1)
    return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "load_balancing_weight: must be >= 1");
  o->priority = prio;
  if (loc) {
    o->region = *loc->region ? loc->region : NULL;
    o->zone = *loc->zone ? loc->zone : NULL;
    o->subzone = *loc->sub_zone ? loc->sub_zone : NULL;
  }
  if (health_of(lb->health_status, &o->health) < 0)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "health_status DEGRADED: libmesh has no "
                    "degraded tier");
  int rc = labels_of(lb, e->labels_, &o->labels, why, cap);
  if (rc)
    return rc;
  e->n++;
  return 0;
}

/* Policy: overprovisioning only; drops and the rest refused. */
static int policy(const Meshxds__ClusterLoadAssignment__Policy *p,
                  mesh__xds_eds_t *e, char *why, size_t cap) {
  e->overprovisioning = 140;
  if (!p)
    return 0;
  for (size_t i = 0; i < p->n_drop_overloads; i++)
    if (mesh__xds_fraction_ppm(p->drop_overloads[i]->drop_percentage) > 0)
      return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "policy.drop_overloads[%zu] (%s): libmesh "
                      "does not drop calls", i,
                      p->drop_overloads[i]->category);
  if (p->endpoint_stale_after)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "policy.endpoint_stale_after is not supported");
  if (p->weighted_priority_health)
    return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "policy.weighted_priority_health is not "
                    "supported");
  if (p->overprovisioning_factor) {
    uint32_t f = p->overprovisioning_factor->value;
    if (f < 1 || f > 100000)
      return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "policy.overprovisioning_factor %u: out of "
                      "1..100000", f);
    e->overprovisioning = f;
  }
  return 0;
}

/* Localities: A27 validation, weights map; why carries the path. */
static int localities(const Meshxds__ClusterLoadAssignment *m,
                      mesh__xds_eds_t *e, char *why, size_t cap) {
  uint32_t maxp = 0;
  bool weighted = false;
  for (size_t i = 0; i < m->n_endpoints; i++) {
    const Meshxds__LocalityLbEndpoints *l = m->endpoints[i];
    if (l->priority > 1000)
      return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "endpoints[%zu].priority %u: too large", i,
                      l->priority);
    maxp = l->priority > maxp ? l->priority : maxp;
    weighted |= l->load_balancing_weight != NULL;
    if (l->proximity)
      return mesh__xds_refuse(why, cap, MESH_ERR_UNSUPPORTED, "endpoints[%zu].proximity is not supported",
                      i);
    char ki[256], kj[256];
    locality_key(l->locality, ki, sizeof ki);
    for (size_t j = 0; j < i; j++) {
      locality_key(m->endpoints[j]->locality, kj, sizeof kj);
      if (m->endpoints[j]->priority == l->priority && strcmp(ki, kj) == 0)
        return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "endpoints[%zu]: locality %s repeated in "
                        "priority %u", i, ki, l->priority);
    }
    for (size_t k = 0; k < l->n_lb_endpoints; k++) {
      char sub[200];
      int rc = one_ep(l->lb_endpoints[k], l->locality, l->priority, e, sub,
                      sizeof sub);
      if (rc)
        return mesh__xds_refuse(why, cap, rc, "endpoints[%zu].lb_endpoints"
                                "[%zu]: %s", i, k, sub);
    }
  }
  /* A27: priorities must be contiguous from 0 */
  for (uint32_t p = 0; m->n_endpoints && p <= maxp; p++) {
    bool seen = false;
    for (size_t i = 0; i < m->n_endpoints && !seen; i++)
      seen = m->endpoints[i]->priority == p;
    if (!seen)
      return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "endpoints: priority %u missing (priorities "
                      "must be contiguous from 0)", p);
  }
  e->npriorities = m->n_endpoints ? maxp + 1 : 0;
  if (!weighted)
    return 0;
  /* as Envoy and gRPC: a locality without a weight takes no traffic */
  if (!(e->locality_weights = cJSON_CreateObject()))
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < m->n_endpoints; i++) {
    const Meshxds__LocalityLbEndpoints *l = m->endpoints[i];
    char k[256];
    locality_key(l->locality, k, sizeof k);
    uint32_t w = l->load_balancing_weight ? l->load_balancing_weight->value : 0;
    if (w > 1000000)
      return mesh__xds_refuse(why, cap, MESH_ERR_CONFIG, "endpoints[%zu].load_balancing_weight %u: "
                      "over 1000000", i, w);
    if (!cJSON_GetObjectItemCaseSensitive(e->locality_weights, k))
      cJSON_AddNumberToObject(e->locality_weights, k, w);
  }
  return 0;
}

int mesh__xds_decode_eds(const uint8_t *buf, size_t len, mesh__xds_eds_t **out,
                         mesh_status_t *st) {
  *out = NULL;
  mesh__xds_arena_t *arena = mesh__xds_arena_new();
  Meshxds__ClusterLoadAssignment *m =
      arena ? meshxds__cluster_load_assignment__unpack(
                  mesh__xds_arena_allocator(arena), len, buf)
            : NULL;
  if (!m) {
    mesh__xds_arena_free(arena);
    return mesh__fail(st, MESH_ERR_PARSE, "ClusterLoadAssignment: malformed "
                      "protobuf");
  }
  mesh__xds_eds_t *e = calloc(1, sizeof *e);
  if (!e) {
    mesh__xds_arena_free(arena);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  e->msg_ = m;
  e->arena_ = arena;
  size_t total = 0;
  for (size_t i = 0; i < m->n_endpoints; i++)
    total += m->endpoints[i]->n_lb_endpoints;
  e->name = strdup(m->cluster_name);
  e->eps = calloc(total ? total : 1, sizeof *e->eps);
  e->labels_ = cJSON_CreateArray();
  char why[300] = "";
  int rc = MESH_ERR_NOMEM;
  if (e->name && e->eps && e->labels_) {
    rc = *m->cluster_name ? 0 : MESH_ERR_CONFIG;
    if (rc)
      mesh__xds_refuse(why, sizeof why, rc, "cluster_name: empty");
    if (!rc)
      rc = policy(m->policy, e, why, sizeof why);
    if (!rc)
      rc = localities(m, e, why, sizeof why);
  }
  if (rc) {
    if (rc == MESH_ERR_NOMEM)
      mesh__fail(st, rc, "out of memory");
    else
      mesh__fail(st, rc, "ClusterLoadAssignment \"%s\": %s", m->cluster_name,
                 why);
    mesh__xds_eds_free(e);
    return rc;
  }
  *out = e;
  return MESH_OK;
}
