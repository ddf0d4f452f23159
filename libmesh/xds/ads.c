/* SPDX-License-Identifier: Apache-2.0 */
/* ADS, state of the world: subscriptions, the cache of last good
 * resources, ACK/NACK bookkeeping (see xds.h).  No I/O: bytes in, bytes
 * out, so the transport that drives it stays thin and this is tested and
 * fuzzed on its own. */
#include <stdlib.h>
#include <string.h>

#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"
#include "xds/ads_int.h"

#define MESH_STR_(x) #x
#define MESH_STR(x) MESH_STR_(x)
#define RESOURCE_URL "type.googleapis.com/envoy.service.discovery.v3.Resource"
#define MAX_AGGREGATE_DEPTH 16 /* gRPC's limit on nested aggregate clusters */

static void recompute(mesh__xds_ads_t *a);

static void obj_free(mesh__xds_type_t t, void *o) {
  if (!o)
    return;
  switch (t) {
  case MESH__XDS_T_LDS: mesh__xds_lds_free(o); break;
  case MESH__XDS_T_RDS: cJSON_Delete(o); break;
  case MESH__XDS_T_CDS: mesh__xds_cds_free(o); break;
  default: mesh__xds_eds_free(o); break;
  }
}

static char *dup0(const char *s) { return s ? mesh__strdup(s) : NULL; }

mesh__xds_ads_t *mesh__xds_ads_new(const mesh__xds_bootstrap_t *b,
                                   const mesh__xds_sink_t *sink) {
  mesh__xds_ads_t *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  if (b) {
    a->node_id = dup0(b->node_id);
    a->cluster = dup0(b->node_cluster);
    a->region = dup0(b->region);
    a->zone = dup0(b->zone);
    a->subzone = dup0(b->subzone);
    a->meta = b->node_metadata ? cJSON_PrintUnformatted(b->node_metadata) : NULL;
    a->ignore_deletion = b->nservers && b->servers[0].ignore_resource_deletion;
    a->check_insts = true;
    a->insts = calloc(b->nproviders + 1, sizeof *a->insts);
    for (size_t i = 0; a->insts && i < b->nproviders; i++) {
      a->insts[a->ninsts] = dup0(b->providers[i].name);
      if (a->insts[a->ninsts])
        a->ninsts++;
    }
    if (!a->insts || a->ninsts != b->nproviders) {
      mesh__xds_ads_free(a);
      return NULL;
    }
  }
  if (sink)
    a->sink = *sink;
  return a;
}

void mesh__xds_ads_free(mesh__xds_ads_t *a) {
  if (!a)
    return;
  for (int t = 0; t < MESH__XDS_T_N_; t++) {
    for (size_t i = 0; i < a->t[t].n; i++) {
      free(a->t[t].r[i].name);
      free(a->t[t].r[i].version);
      obj_free(t, a->t[t].r[i].obj);
    }
    free(a->t[t].r);
    free(a->t[t].version);
    free(a->t[t].nonce);
    for (size_t i = 0; i < a->nroots[t]; i++)
      free(a->roots[t][i]);
    free(a->roots[t]);
  }
  free(a->node_id);
  free(a->cluster);
  free(a->region);
  free(a->zone);
  free(a->subzone);
  free(a->meta);
  for (size_t i = 0; i < a->ninsts; i++)
    free(a->insts[i]);
  free(a->insts);
  free(a);
}

static res_t *find(tstate_t *t, const char *name) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->r[i].name, name) == 0)
      return &t->r[i];
  return NULL;
}

/* The entry for name, created (REQUESTED) when absent; NULL on OOM. */
static res_t *get(tstate_t *t, const char *name) {
  res_t *r = find(t, name);
  if (r)
    return r;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    res_t *nr = realloc(t->r, cap * sizeof *nr);
    if (!nr)
      return NULL;
    t->r = nr;
    t->cap = cap;
  }
  r = &t->r[t->n];
  memset(r, 0, sizeof *r);
  if (!(r->name = mesh__strdup(name)))
    return NULL;
  t->n++;
  return r;
}

static void want(mesh__xds_ads_t *a, mesh__xds_type_t t, const char *name) {
  res_t *r = name && *name ? get(&a->t[t], name) : NULL;
  if (r)
    r->want = true;
}

int mesh__xds_ads_watch(mesh__xds_ads_t *a, mesh__xds_type_t t,
                        const char *name) {
  if (!a || !name || !*name || (t != MESH__XDS_T_LDS && t != MESH__XDS_T_CDS))
    return MESH_ERR_INVALID_ARG;
  for (size_t i = 0; i < a->nroots[t]; i++)
    if (strcmp(a->roots[t][i], name) == 0)
      return MESH_OK;
  char **nr = realloc(a->roots[t], (a->nroots[t] + 1) * sizeof *nr);
  if (!nr)
    return MESH_ERR_NOMEM;
  a->roots[t] = nr;
  if (!(nr[a->nroots[t]] = mesh__strdup(name)))
    return MESH_ERR_NOMEM;
  a->nroots[t]++;
  recompute(a);
  return MESH_OK;
}

/* Every cluster a route configuration names. */
static void want_route_clusters(mesh__xds_ads_t *a, const cJSON *rc) {
  const cJSON *vh, *r, *c;
  cJSON_ArrayForEach(vh, cJSON_GetObjectItem(rc, "virtual_hosts")) {
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(vh, "routes")) {
      cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "clusters"))
        want(a, MESH__XDS_T_CDS, cJSON_GetStringValue(cJSON_GetObjectItem(c, "name")));
    }
  }
}

/* The subscription set: the roots and what their cached resources lead to
 * (LDS -> RDS -> CDS -> aggregate children -> EDS).  A type whose set
 * changed gets a request due; entries no longer wanted leave the cache. */
static void recompute(mesh__xds_ads_t *a) {
  for (int t = 0; t < MESH__XDS_T_N_; t++)
    for (size_t i = 0; i < a->t[t].n; i++)
      a->t[t].r[i].want = false;
  for (size_t i = 0; i < a->nroots[MESH__XDS_T_LDS]; i++)
    want(a, MESH__XDS_T_LDS, a->roots[MESH__XDS_T_LDS][i]);
  for (size_t i = 0; i < a->nroots[MESH__XDS_T_CDS]; i++)
    want(a, MESH__XDS_T_CDS, a->roots[MESH__XDS_T_CDS][i]);
  tstate_t *lt = &a->t[MESH__XDS_T_LDS], *rt = &a->t[MESH__XDS_T_RDS];
  for (size_t i = 0; i < lt->n; i++) {
    const mesh__xds_lds_t *l = lt->r[i].obj;
    if (lt->r[i].want && l && l->rds_name)
      want(a, MESH__XDS_T_RDS, l->rds_name);
    if (lt->r[i].want && l && l->route_config)
      want_route_clusters(a, l->route_config);
  }
  for (size_t i = 0; i < rt->n; i++)
    if (rt->r[i].want && rt->r[i].obj)
      want_route_clusters(a, rt->r[i].obj);
  /* aggregate clusters: children are clusters too, to a bounded depth */
  tstate_t *ct = &a->t[MESH__XDS_T_CDS];
  for (int depth = 0; depth < MAX_AGGREGATE_DEPTH; depth++) {
    size_t before = ct->n;
    for (size_t i = 0; i < ct->n; i++) {
      const mesh__xds_cds_t *c = ct->r[i].obj;
      for (size_t k = 0; ct->r[i].want && c && k < c->nchildren; k++)
        want(a, MESH__XDS_T_CDS, c->children[k]);
    }
    if (ct->n == before)
      break;
  }
  for (size_t i = 0; i < ct->n; i++) {
    const mesh__xds_cds_t *c = ct->r[i].obj;
    if (ct->r[i].want && c && c->eds_name)
      want(a, MESH__XDS_T_EDS, c->eds_name);
  }
  for (int t = 0; t < MESH__XDS_T_N_; t++) {
    tstate_t *ts = &a->t[t];
    size_t o = 0;
    for (size_t i = 0; i < ts->n; i++) {
      res_t *r = &ts->r[i];
      if (r->want != r->sent)
        ts->due = true;
      if (!r->want) {
        free(r->name);
        free(r->version);
        obj_free(t, r->obj);
        continue;
      }
      ts->r[o++] = *r;
    }
    ts->n = o;
  }
}

int mesh__xds_ads_next_request(mesh__xds_ads_t *a, uint8_t **buf,
                               size_t *len) {
  *buf = NULL;
  *len = 0;
  int t = 0;
  while (t < MESH__XDS_T_N_ && !a->t[t].due)
    t++;
  if (t == MESH__XDS_T_N_)
    return MESH_ERR_NOT_FOUND;
  tstate_t *ts = &a->t[t];
  Meshxds__DiscoveryRequest rq = MESHXDS__DISCOVERY_REQUEST__INIT;
  Meshxds__Node node = MESHXDS__NODE__INIT;
  Meshxds__Locality loc = MESHXDS__LOCALITY__INIT;
  Meshxds__Status err = MESHXDS__STATUS__INIT;
  char **names = calloc(ts->n + 1, sizeof *names);
  if (!names)
    return MESH_ERR_NOMEM;
  for (size_t i = 0; i < ts->n; i++)
    names[i] = ts->r[i].name;
  rq.n_resource_names = ts->n;
  rq.resource_names = names;
  rq.type_url = (char *)mesh__xds_type_url(t);
  rq.version_info = ts->version ? ts->version : "";
  rq.response_nonce = ts->nonce ? ts->nonce : "";
  if (ts->nack[0]) {
    err.code = 3; /* INVALID_ARGUMENT, as gRPC and Envoy send */
    err.message = ts->nack;
    rq.error_detail = &err;
  }
  if (!a->node_sent) {
    /* the node goes in the first request of a stream only (as gRPC) */
    node.id = a->node_id ? a->node_id : "";
    node.cluster = a->cluster ? a->cluster : "";
    node.user_agent_name = "libmesh";
    node.user_agent_version = MESH_STR(MESH_VERSION_MAJOR) "." MESH_STR(MESH_VERSION_MINOR);
    loc.region = a->region ? a->region : "";
    loc.zone = a->zone ? a->zone : "";
    loc.sub_zone = a->subzone ? a->subzone : "";
    node.locality = &loc;
    static char *features[] = {"xds.config.resource-in-sotw"};
    node.n_client_features = 1;
    node.client_features = features;
    rq.node = &node;
  }
  size_t n = meshxds__discovery_request__get_packed_size(&rq);
  uint8_t *b = malloc(n ? n : 1);
  if (b)
    meshxds__discovery_request__pack(&rq, b);
  free(names);
  if (!b)
    return MESH_ERR_NOMEM;
  a->node_sent = true;
  ts->due = false;
  ts->nack[0] = '\0';
  int64_t now = mesh__now_ms();
  for (size_t i = 0; i < ts->n; i++) {
    ts->r[i].sent = true;
    if (!ts->r[i].asked_ms && !ts->r[i].obj)
      ts->r[i].asked_ms = now; /* the does-not-exist timer starts */
  }
  *buf = b;
  *len = n;
  return MESH_OK;
}

void mesh__xds_ads_on_reconnect(mesh__xds_ads_t *a) {
  a->node_sent = false;
  for (int t = 0; t < MESH__XDS_T_N_; t++) {
    tstate_t *ts = &a->t[t];
    free(ts->nonce);
    ts->nonce = NULL;
    ts->nack[0] = '\0';
    ts->due = ts->n > 0;
    for (size_t i = 0; i < ts->n; i++)
      ts->r[i].asked_ms = 0; /* A27: timers restart on the new stream */
  }
}

/* Decode one resource of type t; *name gets its name (also for a refused
 * one when its name field can be read), *obj the decoded object. */
static int decode_one(mesh__xds_type_t t, const ProtobufCBinaryData *v,
                      char **name, void **obj, mesh_status_t *st) {
  int rc;
  *obj = NULL;
  *name = NULL;
  switch (t) {
  case MESH__XDS_T_LDS:
    rc = mesh__xds_decode_lds(v->data, v->len, (mesh__xds_lds_t **)obj, st);
    break;
  case MESH__XDS_T_RDS:
    rc = mesh__xds_decode_rds(v->data, v->len, (cJSON **)obj, st);
    break;
  case MESH__XDS_T_CDS:
    rc = mesh__xds_decode_cds(v->data, v->len, (mesh__xds_cds_t **)obj, st);
    break;
  default:
    rc = mesh__xds_decode_eds(v->data, v->len, (mesh__xds_eds_t **)obj, st);
    break;
  }
  Meshxds__NameOnly *n = meshxds__name_only__unpack(NULL, v->len, v->data);
  if (n && *n->name)
    *name = mesh__strdup(n->name);
  if (n)
    meshxds__name_only__free_unpacked(n, NULL);
  return rc;
}

static bool unknown_inst(const mesh__xds_ads_t *a, const char *name) {
  for (size_t i = 0; i < a->ninsts; i++)
    if (strcmp(a->insts[i], name) == 0)
      return false;
  return true;
}

/* A29: every certificate provider instance a TLS context names must be
 * one of the bootstrap's.  MESH_OK or MESH_ERR_CONFIG with the reason. */
static int check_insts(const mesh__xds_ads_t *a, mesh__xds_type_t t,
                       const void *obj, mesh_status_t *st) {
  const char *names[2] = {NULL, NULL}, *what = NULL, *res = NULL;
  if (!a->check_insts || !obj)
    return MESH_OK;
  if (t == MESH__XDS_T_CDS) {
    const mesh__xds_cds_t *c = obj;
    names[0] = c->tls_cert_instance;
    names[1] = c->tls_ca_instance;
    what = "cluster";
    res = c->name;
  } else if (t == MESH__XDS_T_LDS) {
    /* every filter chain's (A36) */
    const mesh__xds_lds_t *l = obj;
    what = "listener";
    res = l->name;
    for (size_t k = 0;; k++) {
      names[0] = mesh__xds_lds_instance(l, k);
      if (!names[0] || unknown_inst(a, names[0]))
        break;
    }
  }
  for (int k = 0; k < 2; k++)
    if (names[k] && unknown_inst(a, names[k]))
      return mesh__fail(st, MESH_ERR_CONFIG, "%s \"%.100s\": "
                        "transport_socket: certificate provider instance "
                        "\"%.100s\" is not in the bootstrap's "
                        "certificate_providers", what, res ? res : "",
                        names[k]);
  return MESH_OK;
}

static void publish(mesh__xds_ads_t *a, mesh__xds_type_t t, res_t *r) {
  const mesh__xds_sink_t *k = &a->sink;
  if (t == MESH__XDS_T_LDS && k->lds)
    k->lds(k->user, r->name, r->obj);
  else if (t == MESH__XDS_T_RDS && k->rds)
    k->rds(k->user, r->name, r->obj);
  else if (t == MESH__XDS_T_CDS && k->cds)
    k->cds(k->user, r->name, r->obj);
  else if (t == MESH__XDS_T_EDS && k->eds)
    k->eds(k->user, r->name, r->obj);
}

/* Append "; msg" to the NACK text (cut when full). */
static void nack_add(tstate_t *ts, const char *msg) {
  size_t n = strlen(ts->nack);
  if (n + 3 < sizeof ts->nack)
    mesh__xds_refuse(ts->nack + n, sizeof ts->nack - n, 0, "%s%s",
                     n ? "; " : "", msg);
}

/* One resource of a response: accept (cache, publish) or refuse (keep
 * the last good one).  seen[] marks the names this response carried. */
static void one_resource(mesh__xds_ads_t *a, mesh__xds_type_t t,
                         const Meshxds__Any *any, const char *version,
                         bool *seen, size_t *accepted) {
  tstate_t *ts = &a->t[t];
  const Meshxds__Any *inner = any;
  Meshxds__Resource *wrap = NULL;
  if (strcmp(any->type_url, RESOURCE_URL) == 0) {
    wrap = meshxds__resource__unpack(NULL, any->value.len, any->value.data);
    inner = wrap ? wrap->resource : NULL;
  }
  char m[sizeof ts->nack];
  if (!inner || strcmp(inner->type_url, mesh__xds_type_url(t)) != 0) {
    snprintf(m, sizeof m, "resource of type %.100s in a %s response",
             inner ? inner->type_url : "(none)", mesh__xds_type_url(t));
    nack_add(ts, m);
    if (wrap)
      meshxds__resource__free_unpacked(wrap, NULL);
    return;
  }
  char *name;
  void *obj;
  mesh_status_t st = {0};
  int rc = decode_one(t, &inner->value, &name, &obj, &st);
  if (rc == MESH_OK)
    rc = check_insts(a, t, obj, &st);
  if (rc == MESH_OK && t == MESH__XDS_T_CDS)
    rc = mesh__xds_ads_agg_check(a, obj, &st); /* loops, depth (A37) */
  if (wrap)
    meshxds__resource__free_unpacked(wrap, NULL);
  res_t *r = name ? find(ts, name) : NULL;
  size_t idx = r ? (size_t)(r - ts->r) : 0;
  if (r && seen[idx]) {
    snprintf(m, sizeof m, "resource \"%.100s\" twice in one response", name);
    rc = MESH_ERR_CONFIG;
    mesh__strlcpy(st.message, m, sizeof st.message);
  }
  if (rc) {
    nack_add(ts, st.message);
    if (r) {
      r->status = MESH__XDS_NACKED;
      mesh__strlcpy(r->err, st.message, sizeof r->err);
      seen[idx] = true;
    }
  } else if (r) { /* names not subscribed are dropped */
    obj_free(t, r->obj);
    r->obj = obj;
    obj = NULL;
    r->status = MESH__XDS_ACKED;
    r->err[0] = '\0';
    free(r->version);
    r->version = mesh__strdup(version);
    r->updated_ms = mesh__now_ms();
    seen[idx] = true;
    (*accepted)++;
    publish(a, t, r);
  }
  obj_free(t, obj);
  free(name);
}

/* LDS and CDS responses carry the full state: a subscribed name absent
 * from one does not exist (unless the server said ignore_resource_deletion,
 * then the cached one stays, as gRFC A53 has it). */
static void absent(mesh__xds_ads_t *a, mesh__xds_type_t t, const bool *seen) {
  tstate_t *ts = &a->t[t];
  if (t != MESH__XDS_T_LDS && t != MESH__XDS_T_CDS)
    return;
  for (size_t i = 0; i < ts->n; i++) {
    res_t *r = &ts->r[i];
    if (seen[i] || (a->ignore_deletion && r->obj))
      continue;
    bool had = r->obj != NULL;
    obj_free(t, r->obj);
    r->obj = NULL;
    r->status = MESH__XDS_DOES_NOT_EXIST;
    mesh__strlcpy(r->err, "not in the control plane's full-state response",
                  sizeof r->err);
    if (had && a->sink.removed)
      a->sink.removed(a->sink.user, t, r->name);
  }
}

int mesh__xds_ads_on_response(mesh__xds_ads_t *a, const uint8_t *buf,
                              size_t len, mesh_status_t *st) {
  Meshxds__DiscoveryResponse *m =
      meshxds__discovery_response__unpack(NULL, len, buf);
  if (!m)
    return mesh__fail(st, MESH_ERR_PARSE, "DiscoveryResponse: malformed");
  int t = mesh__xds_type_of(m->type_url);
  if (t < 0) {
    mesh__fail(st, MESH_ERR_PARSE, "DiscoveryResponse: type %.100s was never "
               "requested", m->type_url);
    meshxds__discovery_response__free_unpacked(m, NULL);
    return MESH_ERR_PARSE;
  }
  tstate_t *ts = &a->t[t];
  free(ts->nonce);
  ts->nonce = mesh__strdup(m->nonce);
  ts->nack[0] = '\0';
  bool *seen = calloc(ts->n + 1, sizeof *seen);
  size_t accepted = 0;
  for (size_t i = 0; seen && i < m->n_resources; i++)
    one_resource(a, t, m->resources[i], m->version_info, seen, &accepted);
  if (!seen)
    nack_add(ts, "out of memory");
  else
    absent(a, t, seen);
  free(seen);
  a->updates += accepted;
  ts->due = true;
  int rc = MESH_OK;
  if (ts->nack[0]) {
    a->nacks++;
    rc = mesh__fail(st, MESH_ERR_CONFIG, "%s", ts->nack);
  } else {
    free(ts->version);
    ts->version = mesh__strdup(m->version_info);
  }
  meshxds__discovery_response__free_unpacked(m, NULL);
  recompute(a);
  return rc;
}

static const char *const status_names[] = {"REQUESTED", "ACKED", "NACKED",
                                           "DOES_NOT_EXIST"};

cJSON *mesh__xds_ads_view(const mesh__xds_ads_t *a) {
  cJSON *v = cJSON_CreateObject();
  cJSON *types = cJSON_AddObjectToObject(v, "types");
  for (int t = 0; a && t < MESH__XDS_T_N_; t++) {
    const tstate_t *ts = &a->t[t];
    cJSON *o = cJSON_AddObjectToObject(types, mesh__xds_type_url(t));
    cJSON_AddStringToObject(o, "version", ts->version ? ts->version : "");
    cJSON_AddStringToObject(o, "nonce", ts->nonce ? ts->nonce : "");
    cJSON *rs = cJSON_AddObjectToObject(o, "resources");
    for (size_t i = 0; i < ts->n; i++) {
      const res_t *r = &ts->r[i];
      cJSON *e = cJSON_AddObjectToObject(rs, r->name);
      cJSON_AddStringToObject(e, "status", status_names[r->status]);
      cJSON_AddStringToObject(e, "version", r->version ? r->version : "");
      cJSON_AddNumberToObject(e, "last_update_ms", (double)r->updated_ms);
      if (r->status == MESH__XDS_NACKED || r->status == MESH__XDS_DOES_NOT_EXIST)
        cJSON_AddStringToObject(e, "error", r->err); /* why (A27 timer or absent) */
    }
  }
  cJSON_AddNumberToObject(v, "updates", a ? (double)a->updates : 0);
  cJSON_AddNumberToObject(v, "nacks", a ? (double)a->nacks : 0);
  return v;
}

void mesh__xds_ads_counts(const mesh__xds_ads_t *a, uint64_t *updates,
                          uint64_t *nacks) {
  *updates = a->updates;
  *nacks = a->nacks;
}

const void *mesh__xds_ads_cached(const mesh__xds_ads_t *a, mesh__xds_type_t t,
                                 const char *name) {
  if (!a || !name || t < 0 || t >= MESH__XDS_T_N_)
    return NULL;
  const tstate_t *ts = &a->t[t];
  for (size_t i = 0; i < ts->n; i++)
    if (strcmp(ts->r[i].name, name) == 0)
      return ts->r[i].obj;
  return NULL;
}
