/* SPDX-License-Identifier: Apache-2.0 */
/* RDS: a RouteConfiguration to libmesh's route model (see xds.h): virtual
 * hosts by domain, routes on path prefix/exact/regex, headers and runtime
 * fractions, weighted clusters as splits, timeouts, retry policy, hash
 * policy, per-route fault injection.  Refused: every action but "route",
 * cluster_header and plugins, rewrites, query-parameter and gRPC matchers,
 * per-filter configs other than the fault filter's. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds/proto/filters.pb-c.h"
#include "xds/proto/route.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

static int regex_ok(const Meshxds__RegexMatcher *r, why_t *w, const char *f) {
  regex_t re;
  if (!r || !r->regex)
    return REFUSE(w, MESH_ERR_CONFIG, "%s: no regex", f);
  if (regcomp(&re, r->regex, REG_EXTENDED | REG_NOSUB) != 0)
    return REFUSE(w, MESH_ERR_CONFIG, "%s: regex \"%.60s\" does not compile "
                  "(POSIX extended syntax)", f, r->regex);
  regfree(&re);
  return 0;
}

static int string_match(const Meshxds__StringMatcher *m, cJSON *o, why_t *w,
                        const char *f) {
  if (!m)
    return REFUSE(w, MESH_ERR_CONFIG, "%s: no matcher", f);
  if (m->ignore_case)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "%s.ignore_case is not supported", f);
  switch (m->match_pattern_case) {
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_EXACT:
    return cJSON_AddStringToObject(o, "exact", m->exact), 0;
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_PREFIX:
    return cJSON_AddStringToObject(o, "prefix", m->prefix), 0;
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
    return cJSON_AddStringToObject(o, "suffix", m->suffix), 0;
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
    return cJSON_AddStringToObject(o, "contains", m->contains), 0;
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
    cJSON_AddStringToObject(o, "regex", m->safe_regex->regex);
    return regex_ok(m->safe_regex, w, f);
  default:
    return REFUSE(w, MESH_ERR_CONFIG, "%s: no pattern", f);
  }
}

static int header(const Meshxds__HeaderMatcher *h, cJSON *arr, why_t *w) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToArray(arr, o);
  cJSON_AddStringToObject(o, "name", h->name);
  if (h->invert_match)
    cJSON_AddBoolToObject(o, "invert", 1);
  switch (h->header_match_specifier_case) {
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
    return cJSON_AddStringToObject(o, "exact", h->exact_match), 0;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
    return cJSON_AddStringToObject(o, "prefix", h->prefix_match), 0;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
    return cJSON_AddStringToObject(o, "suffix", h->suffix_match), 0;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
    return cJSON_AddStringToObject(o, "contains", h->contains_match), 0;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
    return cJSON_AddBoolToObject(o, "present", h->present_match), 0;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
    cJSON_AddStringToObject(o, "regex", h->safe_regex_match->regex);
    return regex_ok(h->safe_regex_match, w, "headers.safe_regex_match");
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
    return string_match(h->string_match, o, w, "headers.string_match");
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "headers[%s].range_match is not "
                  "supported", h->name);
  default:
    return REFUSE(w, MESH_ERR_CONFIG, "headers[%s]: no match specifier",
                  h->name);
  }
}

static int match(const Meshxds__RouteMatch *m, cJSON *route, why_t *w) {
  if (!m)
    return REFUSE(w, MESH_ERR_CONFIG, "match: missing");
  cJSON *o = cJSON_AddObjectToObject(route, "match");
  switch (m->path_specifier_case) {
  case MESHXDS__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
    cJSON_AddStringToObject(o, "prefix", m->prefix);
    break;
  case MESHXDS__ROUTE_MATCH__PATH_SPECIFIER_PATH:
    cJSON_AddStringToObject(o, "path", m->path);
    break;
  case MESHXDS__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX:
    cJSON_AddStringToObject(o, "regex", m->safe_regex->regex);
    if (regex_ok(m->safe_regex, w, "match.safe_regex"))
      return MESH_ERR_CONFIG;
    break;
  default:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "match: only prefix, path and "
                  "safe_regex are supported");
  }
  if (m->case_sensitive)
    cJSON_AddBoolToObject(o, "case_sensitive", m->case_sensitive->value);
  if (m->n_query_parameters || m->grpc)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "match: query_parameters and grpc "
                  "matchers are not supported");
  if (m->runtime_fraction) {
    if (m->runtime_fraction->runtime_key && *m->runtime_fraction->runtime_key)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "match.runtime_fraction."
                    "runtime_key: libmesh has no runtime");
    cJSON_AddNumberToObject(o, "fraction_ppm", mesh__xds_fraction_ppm(
                                m->runtime_fraction->default_value));
  }
  cJSON *hs = m->n_headers ? cJSON_AddArrayToObject(o, "headers") : NULL;
  for (size_t i = 0; i < m->n_headers; i++)
    if (header(m->headers[i], hs, w))
      return MESH_ERR_UNSUPPORTED;
  return 0;
}

static int clusters(const Meshxds__RouteAction *a, cJSON *route, why_t *w) {
  cJSON *cl = cJSON_AddArrayToObject(route, "clusters");
  if (a->cluster_specifier_case == MESHXDS__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER) {
    if (!*a->cluster)
      return REFUSE(w, MESH_ERR_CONFIG, "route.cluster: empty");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cl, c);
    cJSON_AddStringToObject(c, "name", a->cluster);
    cJSON_AddNumberToObject(c, "weight", 1);
    return 0;
  }
  if (a->cluster_specifier_case != MESHXDS__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "route: only cluster and "
                  "weighted_clusters are supported");
  const Meshxds__WeightedCluster *wc = a->weighted_clusters;
  if (wc->runtime_key_prefix && *wc->runtime_key_prefix)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "weighted_clusters."
                  "runtime_key_prefix: libmesh has no runtime");
  uint64_t sum = 0;
  for (size_t i = 0; i < wc->n_clusters; i++) {
    const Meshxds__WeightedCluster__ClusterWeight *x = wc->clusters[i];
    if (!*x->name)
      return REFUSE(w, MESH_ERR_CONFIG, "weighted_clusters[%zu].name: empty", i);
    if (x->metadata_match)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "weighted_clusters[%zu]."
                    "metadata_match is not supported", i);
    if (x->n_typed_per_filter_config)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "weighted_clusters[%zu]."
                    "typed_per_filter_config is not supported", i);
    uint32_t wt = x->weight ? x->weight->value : 0;
    sum += wt;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cl, c);
    cJSON_AddStringToObject(c, "name", x->name);
    cJSON_AddNumberToObject(c, "weight", wt);
  }
  /* gRFC A28: the sum must be > 0 and fit 32 bits; total_weight, when
   * given, must equal it */
  if (sum == 0 || sum > UINT32_MAX)
    return REFUSE(w, MESH_ERR_CONFIG, "weighted_clusters: weights sum to "
                  "%llu (must be 1..2^32-1)", (unsigned long long)sum);
  if (wc->total_weight && wc->total_weight->value != sum)
    return REFUSE(w, MESH_ERR_CONFIG, "weighted_clusters.total_weight %u != "
                  "sum of weights %llu", wc->total_weight->value,
                  (unsigned long long)sum);
  return 0;
}

/* retry_on tokens: libmesh's own, and gRPC status names kept apart for the
 * gRPC client ("refused-stream" is what every libmesh client does once
 * anyway: a refused stream is retried transparently). */
static int retry(const Meshxds__RetryPolicy *r, cJSON *route, why_t *w) {
  static const char *const http[] = {"connect-failure", "reset", "5xx",
      "gateway-error", "retriable-status-codes", NULL};
  static const char *const grpc[] = {"cancelled", "deadline-exceeded",
      "internal", "resource-exhausted", "unavailable", NULL};
  if (!r)
    return 0;
  cJSON *o = cJSON_AddObjectToObject(route, "retry");
  cJSON *on = cJSON_AddArrayToObject(o, "retry_on");
  cJSON *gon = cJSON_AddArrayToObject(o, "grpc_retry_on");
  const char *p = r->retry_on;
  while (p && *p) {
    size_t n = strcspn(p, ",");
    char tok[64];
    snprintf(tok, sizeof tok, "%.*s", (int)(n < 63 ? n : 63), p);
    bool known = strcmp(tok, "refused-stream") == 0;
    for (size_t i = 0; !known && http[i]; i++)
      known = strcmp(tok, http[i]) == 0;
    if (known && strcmp(tok, "refused-stream") != 0)
      cJSON_AddItemToArray(on, cJSON_CreateString(tok));
    bool is_grpc = false;
    for (size_t i = 0; !known && !is_grpc && grpc[i]; i++)
      is_grpc = strcmp(tok, grpc[i]) == 0;
    known = known || is_grpc;
    if (is_grpc)
      cJSON_AddItemToArray(gon, cJSON_CreateString(tok));
    if (!known)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "retry_policy.retry_on: \"%s\" "
                    "is not supported", tok);
    p += n + (p[n] == ',');
  }
  cJSON_AddNumberToObject(o, "num_retries",
                          r->num_retries ? r->num_retries->value : 1);
  if (r->n_retriable_status_codes) {
    cJSON *c = cJSON_AddArrayToObject(o, "retriable_status_codes");
    for (size_t i = 0; i < r->n_retriable_status_codes; i++)
      cJSON_AddItemToArray(c, cJSON_CreateNumber(r->retriable_status_codes[i]));
  }
  int64_t ms;
  if (r->per_try_timeout) {
    if (mesh__xds_duration_ms(r->per_try_timeout, &ms))
      return REFUSE(w, MESH_ERR_CONFIG, "retry_policy.per_try_timeout: bad");
    cJSON_AddNumberToObject(o, "per_try_ms", (double)ms);
  }
  if (r->retry_back_off) {
    if (mesh__xds_duration_ms(r->retry_back_off->base_interval, &ms) || ms < 1)
      return REFUSE(w, MESH_ERR_CONFIG, "retry_back_off.base_interval: must "
                    "be >= 1ms");
    cJSON_AddNumberToObject(o, "base_interval_ms", (double)ms);
    if (r->retry_back_off->max_interval) {
      if (mesh__xds_duration_ms(r->retry_back_off->max_interval, &ms))
        return REFUSE(w, MESH_ERR_CONFIG, "retry_back_off.max_interval: bad");
      cJSON_AddNumberToObject(o, "max_interval_ms", (double)ms);
    }
  }
  return 0;
}

/* gRFC A42: header hashes and the channel id; the rest refused. */
static int hash_policy(const Meshxds__RouteAction *a, cJSON *route, why_t *w) {
  cJSON *arr = a->n_hash_policy ? cJSON_AddArrayToObject(route, "hash_policy")
                                : NULL;
  for (size_t i = 0; i < a->n_hash_policy; i++) {
    const Meshxds__HashPolicy *h = a->hash_policy[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    if (h->terminal)
      cJSON_AddBoolToObject(o, "terminal", 1);
    if (h->policy_specifier_case == MESHXDS__HASH_POLICY__POLICY_SPECIFIER_HEADER &&
        !h->header->regex_rewrite && *h->header->header_name) {
      cJSON_AddStringToObject(o, "header", h->header->header_name);
    } else if (h->policy_specifier_case ==
                   MESHXDS__HASH_POLICY__POLICY_SPECIFIER_FILTER_STATE &&
               strcmp(h->filter_state->key, "io.grpc.channel_id") == 0) {
      cJSON_AddBoolToObject(o, "channel_id", 1);
    } else {
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "hash_policy[%zu]: only header "
                    "(without regex_rewrite) and filter_state "
                    "io.grpc.channel_id are supported", i);
    }
  }
  return 0;
}

int mesh__xds_fault(const uint8_t *buf, size_t len, cJSON **out, why_t *w) {
  *out = NULL;
  Meshxds__HTTPFault *f = meshxds__httpfault__unpack(NULL, len, buf);
  if (!f)
    return REFUSE(w, MESH_ERR_PARSE, "HTTPFault: malformed protobuf");
  int rc = 0;
  cJSON *o = cJSON_CreateObject();
  if (f->n_headers || f->n_downstream_nodes || *f->upstream_cluster ||
      f->max_active_faults)
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "HTTPFault: headers, "
                "downstream_nodes, upstream_cluster and max_active_faults are "
                "not supported");
  else if (f->response_rate_limit)
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "HTTPFault.response_rate_limit is "
                "not supported");
  else if (f->delay && (f->delay->header_delay || !f->delay->fixed_delay))
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "HTTPFault.delay: only fixed_delay "
                "is supported");
  else if (f->abort && f->abort->error_type_case ==
                           MESHXDS__FAULT_ABORT__ERROR_TYPE_HEADER_ABORT)
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "HTTPFault.abort.header_abort is not "
                "supported");
  int64_t ms = 0;
  if (!rc && f->delay) {
    if (mesh__xds_duration_ms(f->delay->fixed_delay, &ms))
      rc = REFUSE(w, MESH_ERR_CONFIG, "HTTPFault.delay.fixed_delay: bad");
    cJSON_AddNumberToObject(o, "delay_ms", (double)ms);
    cJSON_AddNumberToObject(o, "delay_ppm",
                            mesh__xds_fraction_ppm(f->delay->percentage));
  }
  if (!rc && f->abort) {
    if (f->abort->error_type_case == MESHXDS__FAULT_ABORT__ERROR_TYPE_HTTP_STATUS) {
      if (f->abort->http_status < 200 || f->abort->http_status > 599)
        rc = REFUSE(w, MESH_ERR_CONFIG, "HTTPFault.abort.http_status %u: out "
                    "of 200..599", f->abort->http_status);
      cJSON_AddNumberToObject(o, "abort_http", f->abort->http_status);
    } else if (f->abort->error_type_case == MESHXDS__FAULT_ABORT__ERROR_TYPE_GRPC_STATUS) {
      if (f->abort->grpc_status > 16)
        rc = REFUSE(w, MESH_ERR_CONFIG, "HTTPFault.abort.grpc_status %u: out "
                    "of 0..16", f->abort->grpc_status);
      cJSON_AddNumberToObject(o, "abort_grpc", f->abort->grpc_status);
    } else {
      rc = REFUSE(w, MESH_ERR_CONFIG, "HTTPFault.abort: no status");
    }
    cJSON_AddNumberToObject(o, "abort_ppm",
                            mesh__xds_fraction_ppm(f->abort->percentage));
  }
  meshxds__httpfault__free_unpacked(f, NULL);
  if (rc)
    cJSON_Delete(o);
  else
    *out = o;
  return rc;
}

/* typed_per_filter_config: the fault filter's override only. */
static int per_filter(size_t n, Meshxds__Route__TypedPerFilterConfigEntry **e,
                      cJSON *route, why_t *w) {
  for (size_t i = 0; i < n; i++) {
    if (strcmp(e[i]->key, FAULT_FILTER) != 0 || !e[i]->value ||
        strcmp(e[i]->value->type_url, FAULT_URL) != 0)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "typed_per_filter_config[%s]: "
                    "only %s overrides are supported", e[i]->key, FAULT_FILTER);
    cJSON *f;
    int rc = mesh__xds_fault(e[i]->value->value.data, e[i]->value->value.len,
                             &f, w);
    if (rc)
      return rc;
    cJSON_AddItemToObject(route, "fault", f);
  }
  return 0;
}

static int route(const Meshxds__Route *r, const Meshxds__RetryPolicy *vh_retry,
                 cJSON *arr, why_t *w) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToArray(arr, o);
  if (r->name && *r->name)
    cJSON_AddStringToObject(o, "name", r->name);
  int rc = match(r->match, o, w);
  if (rc)
    return rc;
  if (r->action_case != MESHXDS__ROUTE__ACTION_ROUTE)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "action: only route is supported "
                  "(redirect, direct_response and non_forwarding_action are "
                  "not)");
  const Meshxds__RouteAction *a = r->route;
  if ((a->prefix_rewrite && *a->prefix_rewrite) || a->regex_rewrite)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "route.%s is not supported",
                  a->regex_rewrite ? "regex_rewrite" : "prefix_rewrite");
  if (a->metadata_match)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "route.metadata_match (subset "
                  "load balancing by endpoint metadata) is not supported");
  int64_t ms = -1;
  if (a->max_stream_duration && a->max_stream_duration->max_stream_duration) {
    if (mesh__xds_duration_ms(a->max_stream_duration->max_stream_duration, &ms))
      return REFUSE(w, MESH_ERR_CONFIG, "route.max_stream_duration: bad");
  }
  if (ms <= 0 && a->timeout && mesh__xds_duration_ms(a->timeout, &ms))
    return REFUSE(w, MESH_ERR_CONFIG, "route.timeout: negative or too long");
  if (ms >= 0 && (a->timeout || a->max_stream_duration))
    cJSON_AddNumberToObject(o, "timeout_ms", (double)ms);
  rc = clusters(a, o, w);
  rc = rc ? rc : retry(a->retry_policy ? a->retry_policy : vh_retry, o, w);
  rc = rc ? rc : hash_policy(a, o, w);
  return rc ? rc : per_filter(r->n_typed_per_filter_config,
                              r->typed_per_filter_config, o, w);
}

int mesh__xds_route_config(const void *rcv, cJSON **out, why_t *w) {
  const Meshxds__RouteConfiguration *rc = rcv;
  cJSON *doc = cJSON_CreateObject();
  *out = doc;
  if (!doc)
    return MESH_ERR_NOMEM;
  cJSON_AddStringToObject(doc, "name", rc->name);
  cJSON *vhs = cJSON_AddArrayToObject(doc, "virtual_hosts");
  for (size_t i = 0; i < rc->n_virtual_hosts; i++) {
    const Meshxds__VirtualHost *v = rc->virtual_hosts[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(vhs, o);
    cJSON_AddStringToObject(o, "name", v->name);
    if (!v->n_domains)
      return REFUSE(w, MESH_ERR_CONFIG, "virtual_hosts[%zu]: no domains", i);
    if (v->n_typed_per_filter_config)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "virtual_hosts[%zu]."
                    "typed_per_filter_config is not supported", i);
    cJSON *d = cJSON_AddArrayToObject(o, "domains");
    for (size_t k = 0; k < v->n_domains; k++)
      cJSON_AddItemToArray(d, cJSON_CreateString(v->domains[k]));
    cJSON *routes = cJSON_AddArrayToObject(o, "routes");
    for (size_t k = 0; k < v->n_routes; k++) {
      why_t sub = {""};
      int e = route(v->routes[k], v->retry_policy, routes, &sub);
      if (e)
        return REFUSE(w, e, "virtual_hosts[%zu].routes[%zu]: %s", i, k,
                      sub.msg);
    }
  }
  return 0;
}

int mesh__xds_decode_rds(const uint8_t *buf, size_t len, cJSON **out,
                         mesh_status_t *st) {
  *out = NULL;
  Meshxds__RouteConfiguration *m =
      meshxds__route_configuration__unpack(NULL, len, buf);
  if (!m)
    return mesh__fail(st, MESH_ERR_PARSE, "RouteConfiguration: malformed "
                      "protobuf");
  why_t w = {""};
  cJSON *doc = NULL;
  int rc = *m->name ? mesh__xds_route_config(m, &doc, &w)
                    : REFUSE(&w, MESH_ERR_CONFIG, "name: empty");
  if (rc)
    mesh__fail(st, rc, "route_configuration \"%s\": %s", m->name, w.msg);
  meshxds__route_configuration__free_unpacked(m, NULL);
  if (rc) {
    cJSON_Delete(doc);
    return rc;
  }
  *out = doc;
  return MESH_OK;
}
