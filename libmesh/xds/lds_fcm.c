/* SPDX-License-Identifier: Apache-2.0 */
/* A36 filter chain matching for an xDS-enabled server: the decoded
 * FilterChainMatch of each chain, the check that no two chains claim the
 * same connections (gRPC NACKs that), and the pure choice of a chain for
 * one connection, in Envoy's order: destination IP (longest prefix),
 * source type (a specific type over ANY), source IP (longest prefix),
 * source port (a listed port over none); no match -> the default chain;
 * none -> the connection is closed.  A36 pins the fields that depend on
 * features gRPC servers lack: destination_port (use_original_dst),
 * server_names and application_protocols (listener filters) never match,
 * transport_protocol matches only "" or "raw_buffer". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "xds/proto/listener.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

void mesh__xds_fchain_fini(mesh__xds_fchain_t *c) {
  if (!c)
    return;
  free(c->name);
  free(c->dst);
  free(c->src);
  free(c->sports);
  free(c->cert_instance);
  free(c->ca_instance);
  memset(c, 0, sizeof *c);
}

static void mask(mesh__xds_cidr_t *r) {
  unsigned bytes = r->family == 4 ? 4 : 16;
  for (unsigned i = 0; i < bytes; i++) {
    unsigned keep = r->len > i * 8 ? r->len - i * 8 : 0;
    if (keep < 8)
      r->addr[i] &= (uint8_t)(0xff00u >> keep);
  }
}

static int cidrs(Meshxds__CidrRange **in, size_t n, mesh__xds_cidr_t **out,
                 size_t *nout, const char *field, why_t *w) {
  if (!n)
    return 0;
  if (!(*out = calloc(n, sizeof **out)))
    return MESH_ERR_NOMEM;
  *nout = n;
  for (size_t i = 0; i < n; i++) {
    mesh__xds_cidr_t *r = &(*out)[i];
    const char *a = in[i]->address_prefix;
    if (inet_pton(AF_INET, a, r->addr) == 1)
      r->family = 4;
    else if (inet_pton(AF_INET6, a, r->addr) == 1)
      r->family = 6;
    else
      return REFUSE(w, MESH_ERR_CONFIG, "%s[%zu].address_prefix: \"%.64s\" "
                    "is not an IP address", field, i, a);
    unsigned max = r->family == 4 ? 32 : 128;
    /* gRPC: an absent prefix_len is 0, a longer one is the address's */
    r->len = in[i]->prefix_len ? in[i]->prefix_len->value : 0;
    if (r->len > max)
      r->len = max;
    mask(r);
  }
  return 0;
}

int mesh__xds_fcm_decode(const void *matchv, mesh__xds_fchain_t *c, why_t *w) {
  const Meshxds__FilterChainMatch *f = matchv;
  if (!f)
    return 0;
  if (f->destination_port || f->n_server_names || f->n_application_protocols ||
      (*f->transport_protocol && strcmp(f->transport_protocol, "raw_buffer")))
    c->never = true;
  switch (f->source_type) {
  case MESHXDS__FILTER_CHAIN_MATCH__CONNECTION_SOURCE_TYPE__ANY:
    c->source_type = MESH__XDS_SRC_ANY;
    break;
  case MESHXDS__FILTER_CHAIN_MATCH__CONNECTION_SOURCE_TYPE__SAME_IP_OR_LOOPBACK:
    c->source_type = MESH__XDS_SRC_LOCAL;
    break;
  case MESHXDS__FILTER_CHAIN_MATCH__CONNECTION_SOURCE_TYPE__EXTERNAL:
    c->source_type = MESH__XDS_SRC_EXTERNAL;
    break;
  default:
    return REFUSE(w, MESH_ERR_CONFIG, "filter_chain_match.source_type: "
                  "unknown value %d", (int)f->source_type);
  }
  int rc = cidrs(f->prefix_ranges, f->n_prefix_ranges, &c->dst, &c->ndst,
                 "filter_chain_match.prefix_ranges", w);
  if (!rc)
    rc = cidrs(f->source_prefix_ranges, f->n_source_prefix_ranges, &c->src,
               &c->nsrc, "filter_chain_match.source_prefix_ranges", w);
  if (rc || !f->n_source_ports)
    return rc;
  if (!(c->sports = calloc(f->n_source_ports, sizeof *c->sports)))
    return MESH_ERR_NOMEM;
  c->nsports = f->n_source_ports;
  for (size_t i = 0; i < c->nsports; i++) {
    if (f->source_ports[i] > 65535)
      return REFUSE(w, MESH_ERR_CONFIG, "filter_chain_match.source_ports[%zu]: "
                    "%u is not a port", i, f->source_ports[i]);
    c->sports[i] = f->source_ports[i];
  }
  return 0;
}

/* ---- duplicates ---------------------------------------------------------- */

static bool cidr_eq(const mesh__xds_cidr_t *a, const mesh__xds_cidr_t *b) {
  return a->family == b->family && a->len == b->len &&
         memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16) == 0;
}

/* Both lists empty, or one range in both: the same "entry" in gRPC's
 * matcher tree. */
static bool cidrs_meet(const mesh__xds_cidr_t *a, size_t na,
                       const mesh__xds_cidr_t *b, size_t nb) {
  if (!na || !nb)
    return !na && !nb;
  for (size_t i = 0; i < na; i++)
    for (size_t j = 0; j < nb; j++)
      if (cidr_eq(&a[i], &b[j]))
        return true;
  return false;
}

static bool ports_meet(const mesh__xds_fchain_t *a, const mesh__xds_fchain_t *b) {
  if (!a->nsports || !b->nsports)
    return !a->nsports && !b->nsports;
  for (size_t i = 0; i < a->nsports; i++)
    for (size_t j = 0; j < b->nsports; j++)
      if (a->sports[i] == b->sports[j])
        return true;
  return false;
}

int mesh__xds_fcm_check(const mesh__xds_lds_t *l, why_t *w) {
  for (size_t i = 0; i < l->nchains; i++)
    for (size_t j = i + 1; j < l->nchains; j++) {
      const mesh__xds_fchain_t *a = &l->chains[i], *b = &l->chains[j];
      if (a->never || b->never || a->source_type != b->source_type)
        continue;
      if (cidrs_meet(a->dst, a->ndst, b->dst, b->ndst) &&
          cidrs_meet(a->src, a->nsrc, b->src, b->nsrc) && ports_meet(a, b))
        return REFUSE(w, MESH_ERR_CONFIG, "filter_chains[%zu] and [%zu]: "
                      "duplicate filter_chain_match (gRFC A36: no two "
                      "chains may match the same connection)", i, j);
    }
  return 0;
}

/* ---- the choice for one connection --------------------------------------- */

typedef struct ip {
  int family; /* 4, 6, 0: not IP (no prefix matches) */
  uint8_t a[16];
  int port;
} ip_t;

static ip_t ip_of(const struct sockaddr *sa) {
  ip_t r = {0};
  if (sa && sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const void *)sa;
    r.family = 4;
    memcpy(r.a, &s4->sin_addr, 4);
    r.port = ntohs(s4->sin_port);
  } else if (sa && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const void *)sa;
    r.port = ntohs(s6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      r.family = 4;
      memcpy(r.a, s6->sin6_addr.s6_addr + 12, 4);
    } else {
      r.family = 6;
      memcpy(r.a, &s6->sin6_addr, 16);
    }
  }
  return r;
}

/* The longest range of the list holding x; -1 for an empty list (any
 * address, less specific than /0), -2 when none holds it. */
static int longest(const mesh__xds_cidr_t *r, size_t n, const ip_t *x) {
  if (!n)
    return -1;
  int best = -2;
  for (size_t i = 0; i < n; i++) {
    if (r[i].family != x->family)
      continue;
    mesh__xds_cidr_t t = {.family = x->family, .len = r[i].len};
    memcpy(t.addr, x->a, 16);
    mask(&t);
    if (cidr_eq(&t, &r[i]) && (int)r[i].len > best)
      best = (int)r[i].len;
  }
  return best;
}

static bool is_local(const ip_t *src, const ip_t *dst) {
  static const uint8_t lo6[16] = {[15] = 1};
  if (src->family == 4 && src->a[0] == 127)
    return true;
  if (src->family == 6 && memcmp(src->a, lo6, 16) == 0)
    return true;
  return src->family == dst->family &&
         memcmp(src->a, dst->a, src->family == 4 ? 4 : 16) == 0;
}

/* Keep the candidates whose score equals the best (scores < -1 dropped). */
static size_t keep_best(const mesh__xds_fchain_t **cand, int *score, size_t n) {
  int best = -2;
  for (size_t i = 0; i < n; i++)
    if (score[i] > best)
      best = score[i];
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (best > -2 && score[i] == best) {
      cand[k] = cand[i];
      score[k++] = 0;
    }
  return k;
}

static int port_score(const mesh__xds_fchain_t *c, int port) {
  if (!c->nsports)
    return -1;
  for (size_t i = 0; i < c->nsports; i++)
    if ((int)c->sports[i] == port)
      return 0;
  return -2;
}

const mesh__xds_fchain_t *mesh__xds_fcm_pick(const mesh__xds_lds_t *l,
                                             const struct sockaddr *dst,
                                             const struct sockaddr *src) {
  size_t n = 0;
  ip_t d = ip_of(dst), s = ip_of(src);
  const mesh__xds_fchain_t **cand =
      l->nchains ? calloc(l->nchains, sizeof *cand) : NULL;
  int *score = l->nchains ? calloc(l->nchains, sizeof *score) : NULL;
  const mesh__xds_fchain_t *out = l->defchain;
  if (l->nchains && (!cand || !score))
    goto done; /* out of memory: the default chain, as if none matched */
  for (size_t i = 0; i < l->nchains; i++)
    if (!l->chains[i].never) {
      cand[n] = &l->chains[i];
      score[n] = longest(cand[n]->dst, cand[n]->ndst, &d);
      n++;
    }
  n = keep_best(cand, score, n);
  bool local = is_local(&s, &d);
  for (size_t i = 0; i < n; i++) {
    int t = cand[i]->source_type;
    score[i] = t == MESH__XDS_SRC_ANY ? -1
               : (t == MESH__XDS_SRC_LOCAL) == local ? 0 : -2;
  }
  n = keep_best(cand, score, n);
  for (size_t i = 0; i < n; i++)
    score[i] = longest(cand[i]->src, cand[i]->nsrc, &s);
  n = keep_best(cand, score, n);
  for (size_t i = 0; i < n; i++)
    score[i] = port_score(cand[i], s.port);
  n = keep_best(cand, score, n);
  if (n)
    out = cand[0]; /* duplicates are refused at decode: n == 1 */
done:
  free(cand);
  free(score);
  return out;
}

const char *mesh__xds_lds_instance(const mesh__xds_lds_t *l, size_t k) {
  size_t total = l->nchains + (l->defchain ? 1 : 0);
  for (size_t i = 0; i < total; i++) {
    const mesh__xds_fchain_t *c = i < l->nchains ? &l->chains[i] : l->defchain;
    const char *two[2] = {c->cert_instance, c->ca_instance};
    for (int j = 0; j < 2; j++)
      if (two[j] && k-- == 0)
        return two[j];
  }
  return NULL;
}

static int dup_n(void **dst, const void *src, size_t n, size_t size) {
  *dst = NULL;
  if (!n)
    return 0;
  *dst = malloc(n * size);
  if (!*dst)
    return MESH_ERR_NOMEM;
  memcpy(*dst, src, n * size);
  return 0;
}

int mesh__xds_fchain_copy(mesh__xds_fchain_t *d, const mesh__xds_fchain_t *s) {
  *d = *s;
  d->name = strdup(s->name ? s->name : "");
  d->cert_instance = s->cert_instance ? strdup(s->cert_instance) : NULL;
  d->ca_instance = s->ca_instance ? strdup(s->ca_instance) : NULL;
  int rc = dup_n((void **)&d->dst, s->dst, s->ndst, sizeof *s->dst);
  rc = rc ? rc : dup_n((void **)&d->src, s->src, s->nsrc, sizeof *s->src);
  rc = rc ? rc
          : dup_n((void **)&d->sports, s->sports, s->nsports,
                  sizeof *s->sports);
  if (rc || !d->name || (s->cert_instance && !d->cert_instance) ||
      (s->ca_instance && !d->ca_instance)) {
    if (!rc) /* the lists were copied: free them too */
      rc = MESH_ERR_NOMEM;
    mesh__xds_fchain_fini(d);
    return rc;
  }
  return 0;
}
