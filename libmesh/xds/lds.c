/* SPDX-License-Identifier: Apache-2.0 */
/* LDS: a client Listener (api_listener holding an HttpConnectionManager,
 * gRFC A27) to the route configuration it names or carries, and its HTTP
 * filters (fault, router); a server Listener (gRFC A36) to its address and
 * filter chains (matches in lds_fcm.c): the RBAC filter (A41) as the
 * inbound policy and each chain's downstream TLS context (A29: mTLS, TLS,
 * plaintext; certificate provider instances). */
#include <stdlib.h>
#include <string.h>

#include "xds/proto/filters.pb-c.h"
#include "xds/proto/listener.pb-c.h"
#include "xds/proto/tls.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

#define HCM_URL                                                             \
  MESH__XDS_TYPE_PREFIX "envoy.extensions.filters.network."                 \
                        "http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_URL \
  MESH__XDS_TYPE_PREFIX "envoy.extensions.filters.http.router.v3.Router"
#define RBAC_URL MESH__XDS_TYPE_PREFIX "envoy.extensions.filters.http.rbac.v3.RBAC"
#define DOWNSTREAM_TLS_URL \
  MESH__XDS_TYPE_PREFIX "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

/* RBAC to the authz policy model (rbac.c). */
int mesh__xds_rbac(const uint8_t *buf, size_t len, cJSON **out, why_t *w);

void mesh__xds_lds_free(mesh__xds_lds_t *l) {
  if (!l)
    return;
  free(l->name);
  free(l->rds_name);
  cJSON_Delete(l->route_config);
  cJSON_Delete(l->fault);
  cJSON_Delete(l->rbac);
  free(l->tls_cert_instance);
  free(l->tls_ca_instance);
  for (size_t i = 0; i < l->nchains; i++)
    mesh__xds_fchain_fini(&l->chains[i]);
  free(l->chains);
  mesh__xds_fchain_fini(l->defchain);
  free(l->defchain);
  free(l);
}

static int dup_instance(const char *name, char **out, why_t *w, const char *f) {
  if (!name || !*name)
    return REFUSE(w, MESH_ERR_CONFIG, "%s.instance_name: empty", f);
  free(*out);
  *out = strdup(name);
  return *out ? 0 : MESH_ERR_NOMEM;
}

/* Over 60 lines: one case per form of A29's fields (both generations
 * Istio emits), each naming its own field path in the refusal. */
int mesh__xds_tls_instances(const void *commonv, char **cert, char **ca,
                            bool need_ca, mesh__xds_san_t **san, size_t *nsan,
                            why_t *w) {
  const Meshxds__CommonTlsContext *c = commonv;
  if (!c)
    return REFUSE(w, MESH_ERR_CONFIG, "common_tls_context: missing");
  if (c->n_tls_certificates || c->n_tls_certificate_sds_secret_configs)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "common_tls_context: "
                  "tls_certificates and SDS are not supported (use "
                  "certificate provider instances)");
  int rc = 0;
  if (c->tls_certificate_provider_instance)
    rc = dup_instance(c->tls_certificate_provider_instance->instance_name,
                      cert, w, "tls_certificate_provider_instance");
  else if (c->tls_certificate_certificate_provider_instance)
    rc = dup_instance(c->tls_certificate_certificate_provider_instance->instance_name,
                      cert, w, "tls_certificate_certificate_provider_instance");
  if (rc)
    return rc;
  switch (c->validation_context_type_case) {
  case MESHXDS__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT:
    if (c->validation_context->ca_certificate_provider_instance)
      rc = dup_instance(c->validation_context->ca_certificate_provider_instance
                            ->instance_name, ca, w,
                        "validation_context.ca_certificate_provider_instance");
    break;
  case MESHXDS__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT: {
    const Meshxds__CommonTlsContext__CombinedCertificateValidationContext *cv =
        c->combined_validation_context;
    if (cv->validation_context_certificate_provider_instance)
      rc = dup_instance(cv->validation_context_certificate_provider_instance
                            ->instance_name, ca, w,
                        "combined_validation_context.validation_context_"
                        "certificate_provider_instance");
    else if (cv->default_validation_context &&
             cv->default_validation_context->ca_certificate_provider_instance)
      rc = dup_instance(cv->default_validation_context
                            ->ca_certificate_provider_instance->instance_name,
                        ca, w, "default_validation_context.ca_certificate_"
                        "provider_instance");
    if (!rc && cv->validation_context_sds_secret_config)
      rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "combined_validation_context: SDS "
                  "is not supported");
    if (!rc && cv->default_validation_context)
      rc = mesh__xds_sans(cv->default_validation_context, san, nsan, w);
    break;
  }
  case MESHXDS__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_CERTIFICATE_PROVIDER_INSTANCE:
    rc = dup_instance(c->validation_context_certificate_provider_instance
                          ->instance_name, ca, w,
                      "validation_context_certificate_provider_instance");
    break;
  case MESHXDS__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG:
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "validation_context_sds_secret_"
                "config: SDS is not supported");
    break;
  default:
    break;
  }
  if (!rc && c->validation_context_type_case ==
                 MESHXDS__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT)
    rc = mesh__xds_sans(c->validation_context, san, nsan, w);
  if (!rc && !*ca && need_ca)
    rc = REFUSE(w, MESH_ERR_CONFIG, "no CA certificate provider instance");
  return rc;
}

/* The HTTP filters: optional unknown ones skipped (the resource says so),
 * the router last, fault and (server only) RBAC decoded. */
static int filters(const Meshxds__HttpConnectionManager *h, mesh__xds_lds_t *l,
                   why_t *w) {
  size_t n = h->n_http_filters;
  if (!n || !h->http_filters[n - 1]->typed_config ||
      strcmp(h->http_filters[n - 1]->typed_config->type_url, ROUTER_URL))
    return REFUSE(w, MESH_ERR_CONFIG, "http_filters: the last filter must be "
                  "the router");
  for (size_t i = 0; i + 1 < n; i++) {
    const Meshxds__HttpFilter *f = h->http_filters[i];
    const char *url = f->typed_config ? f->typed_config->type_url : "";
    const uint8_t *b = f->typed_config ? f->typed_config->value.data : NULL;
    size_t bl = f->typed_config ? f->typed_config->value.len : 0;
    why_t sub = {""};
    int rc = 0;
    if (strcmp(url, FAULT_URL) == 0 && !l->fault)
      rc = mesh__xds_fault(b, bl, &l->fault, &sub);
    else if (strcmp(url, RBAC_URL) == 0 && l->server && !l->rbac)
      rc = mesh__xds_rbac(b, bl, &l->rbac, &sub);
    else if (strcmp(url, ROUTER_URL) == 0)
      rc = REFUSE(&sub, MESH_ERR_CONFIG, "router before the last filter");
    else if (!f->is_optional)
      rc = REFUSE(&sub, MESH_ERR_UNSUPPORTED, "%s (%s) is not supported%s",
                  f->name, url, strcmp(url, RBAC_URL) == 0 ? " on a client" :
                  "");
    if (rc)
      return REFUSE(w, rc, "http_filters[%zu]: %s", i, sub.msg);
  }
  return 0;
}

static int hcm(const Meshxds__Any *a, mesh__xds_lds_t *l, why_t *w) {
  if (!a || strcmp(a->type_url, HCM_URL))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "only HttpConnectionManager is "
                  "supported");
  Meshxds__HttpConnectionManager *h =
      meshxds__http_connection_manager__unpack(NULL, a->value.len, a->value.data);
  if (!h)
    return REFUSE(w, MESH_ERR_PARSE, "HttpConnectionManager: malformed");
  int rc = filters(h, l, w);
  why_t sub = {""};
  if (rc)
    ;
  else if (h->route_specifier_case ==
           MESHXDS__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
    const Meshxds__ConfigSource *cs = h->rds->config_source;
    if (cs && !cs->ads && !cs->self)
      rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "rds.config_source: only ads and "
                  "self are supported");
    else if (!*h->rds->route_config_name)
      rc = REFUSE(w, MESH_ERR_CONFIG, "rds.route_config_name: empty");
    else if (!(l->rds_name = strdup(h->rds->route_config_name)))
      rc = MESH_ERR_NOMEM;
  } else if (h->route_specifier_case ==
             MESHXDS__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG) {
    rc = mesh__xds_route_config(h->route_config, &l->route_config, &sub);
    if (rc)
      rc = REFUSE(w, rc, "route_config: %s", sub.msg);
  } else {
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "only rds and route_config are "
                "supported (scoped_routes is not)");
  }
  meshxds__http_connection_manager__free_unpacked(h, NULL);
  return rc;
}

/* A chain's DownstreamTlsContext (A29): TLS mode and instances. */
static int chain_tls(const Meshxds__TransportSocket *t, mesh__xds_fchain_t *c,
                     why_t *w) {
  c->tls = MESH__XDS_CHAIN_PLAIN;
  if (!t)
    return 0;
  if (!t->typed_config || strcmp(t->typed_config->type_url, DOWNSTREAM_TLS_URL))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "transport_socket %s: only "
                  "DownstreamTlsContext is supported", t->name);
  Meshxds__DownstreamTlsContext *d = meshxds__downstream_tls_context__unpack(
      NULL, t->typed_config->value.len, t->typed_config->value.data);
  if (!d)
    return REFUSE(w, MESH_ERR_PARSE, "transport_socket: malformed");
  bool req = d->require_client_certificate &&
             d->require_client_certificate->value;
  c->tls = req ? MESH__XDS_CHAIN_MTLS : MESH__XDS_CHAIN_TLS;
  why_t sub = {""};
  /* A29: without require_client_certificate the validation context is
   * optional (a client certificate, when sent, is still verified) */
  int rc = mesh__xds_tls_instances(d->common_tls_context, &c->cert_instance,
                                   &c->ca_instance, req, NULL, NULL, &sub);
  if (!rc && !c->cert_instance)
    rc = REFUSE(&sub, MESH_ERR_CONFIG, "no certificate provider instance");
  meshxds__downstream_tls_context__free_unpacked(d, NULL);
  return rc ? REFUSE(w, rc, "transport_socket: %s", sub.msg) : 0;
}

/* One server filter chain: its match, its one network filter (the
 * HttpConnectionManager, whose RBAC must equal the other chains': libmesh
 * has one inbound policy per listener), its transport. */
static int chain(const Meshxds__FilterChain *fc, mesh__xds_fchain_t *c,
                 mesh__xds_lds_t *l, bool first, why_t *w) {
  c->name = strdup(fc->name);
  if (!c->name)
    return MESH_ERR_NOMEM;
  int rc = mesh__xds_fcm_decode(fc->filter_chain_match, c, w);
  if (rc)
    return rc;
  if (fc->n_filters != 1)
    return REFUSE(w, MESH_ERR_CONFIG, "exactly one network filter (the "
                  "HttpConnectionManager) is required");
  mesh__xds_lds_t h = {.server = true};
  why_t sub = {""};
  rc = hcm(fc->filters[0]->typed_config, &h, &sub);
  if (rc)
    rc = REFUSE(w, rc, "filters[0]: %s", sub.msg);
  else if (first) {
    l->rbac = h.rbac;
    h.rbac = NULL;
  } else if (!cJSON_Compare(h.rbac, l->rbac, true) &&
             !(h.rbac == NULL && l->rbac == NULL))
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "filters[0]: an RBAC filter "
                "different from the first chain's (libmesh applies one "
                "inbound policy per listener)");
  free(h.rds_name);
  cJSON_Delete(h.route_config);
  cJSON_Delete(h.fault);
  cJSON_Delete(h.rbac);
  return rc ? rc : chain_tls(fc->transport_socket, c, w);
}

static int address(const Meshxds__Listener *m, mesh__xds_lds_t *l, why_t *w) {
  if (!m->address)
    return 0;
  if (m->address->address_case != MESHXDS__ADDRESS__ADDRESS_SOCKET_ADDRESS)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "address: only socket_address is "
                  "supported");
  const Meshxds__SocketAddress *a = m->address->socket_address;
  if (strlen(a->address) >= sizeof l->address || a->port_value > 65535)
    return REFUSE(w, MESH_ERR_CONFIG, "address: \"%.64s\" port %u is not "
                  "an address", a->address, a->port_value);
  memcpy(l->address, a->address, strlen(a->address) + 1);
  l->port = a->port_value;
  return 0;
}

/* Server side (A36): the address, every filter chain, the default one. */
static int server(const Meshxds__Listener *m, mesh__xds_lds_t *l, why_t *w) {
  if (m->n_listener_filters)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "listener_filters: not supported "
                  "(gRFC A36)");
  int rc = address(m, l, w);
  if (rc)
    return rc;
  if (!m->n_filter_chains && !m->default_filter_chain)
    return REFUSE(w, MESH_ERR_CONFIG, "no filter chain");
  if (m->n_filter_chains) {
    l->chains = calloc(m->n_filter_chains, sizeof *l->chains);
    if (!l->chains)
      return MESH_ERR_NOMEM;
  }
  why_t sub = {""};
  for (size_t i = 0; i < m->n_filter_chains; i++) {
    l->nchains = i + 1;
    rc = chain(m->filter_chains[i], &l->chains[i], l, i == 0, &sub);
    if (rc)
      return rc == MESH_ERR_NOMEM ? rc : REFUSE(w, rc, "filter_chains[%zu]: "
                                                "%s", i, sub.msg);
  }
  if (m->default_filter_chain) {
    l->defchain = calloc(1, sizeof *l->defchain);
    if (!l->defchain)
      return MESH_ERR_NOMEM;
    rc = chain(m->default_filter_chain, l->defchain, l, !m->n_filter_chains,
               &sub);
    if (rc)
      return rc == MESH_ERR_NOMEM ? rc : REFUSE(w, rc, "default_filter_chain: "
                                                "%s", sub.msg);
  }
  rc = mesh__xds_fcm_check(l, w);
  if (rc)
    return rc;
  /* the first chain's TLS, as the fields said before chains were kept */
  const mesh__xds_fchain_t *c0 = l->nchains ? &l->chains[0] : l->defchain;
  l->require_client_cert = c0->tls == MESH__XDS_CHAIN_MTLS;
  l->tls_cert_instance = c0->cert_instance ? strdup(c0->cert_instance) : NULL;
  l->tls_ca_instance = c0->ca_instance ? strdup(c0->ca_instance) : NULL;
  if ((c0->cert_instance && !l->tls_cert_instance) ||
      (c0->ca_instance && !l->tls_ca_instance))
    return MESH_ERR_NOMEM;
  return 0;
}

int mesh__xds_decode_lds(const uint8_t *buf, size_t len, mesh__xds_lds_t **out,
                         mesh_status_t *st) {
  *out = NULL;
  Meshxds__Listener *m = meshxds__listener__unpack(NULL, len, buf);
  if (!m)
    return mesh__fail(st, MESH_ERR_PARSE, "Listener: malformed protobuf");
  mesh__xds_lds_t *l = calloc(1, sizeof *l);
  why_t w = {""};
  int rc = MESH_ERR_NOMEM;
  if (l && (l->name = strdup(m->name))) {
    l->server = m->api_listener == NULL;
    if (!*m->name)
      rc = REFUSE(&w, MESH_ERR_CONFIG, "name: empty");
    else if (!l->server) {
      rc = hcm(m->api_listener->api_listener, l, &w);
      if (rc) {
        why_t sub = w;
        rc = REFUSE(&w, rc, "api_listener: %s", sub.msg);
      }
    } else
      rc = server(m, l, &w);
  }
  if (rc == MESH_ERR_NOMEM)
    mesh__fail(st, rc, "out of memory");
  else if (rc)
    mesh__fail(st, rc, "listener \"%s\": %s", m->name, w.msg);
  meshxds__listener__free_unpacked(m, NULL);
  if (rc) {
    mesh__xds_lds_free(l);
    return rc;
  }
  *out = l;
  return MESH_OK;
}
