/* SPDX-License-Identifier: Apache-2.0 */
/* Pure policy evaluation: attributes in, decision out.  No I/O, no
 * allocation, no locks, so it runs on any thread and is fuzzed directly.
 *
 * Matching is three-valued because the connection-level check runs before
 * any HTTP request exists: a field that needs an HTTP attribute which is not
 * there yet is UNKNOWN, and each stage says what UNKNOWN means for it. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "authz/authz.h"

typedef enum tri { T_NO = 0, T_YES = 1, T_UNK = 2 } tri_t;

static tri_t tri_and(tri_t a, tri_t b) {
  if (a == T_NO || b == T_NO)
    return T_NO;
  return (a == T_UNK || b == T_UNK) ? T_UNK : T_YES;
}

static tri_t tri_or(tri_t a, tri_t b) {
  if (a == T_YES || b == T_YES)
    return T_YES;
  return (a == T_UNK || b == T_UNK) ? T_UNK : T_NO;
}

static tri_t tri(bool b) { return b ? T_YES : T_NO; }

/* ---- primitive matchers ----------------------------------------------------- */

static bool eqn(const char *a, const char *b, size_t n, bool icase) {
  return icase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

bool mesh__az_str_match(const mesh__az_str_t *m, const char *v) {
  if (!m || !v)
    return false;
  size_t n = strlen(v);
  switch (m->kind) {
  case MESH__AZ_PRESENCE:
    return n > 0;
  case MESH__AZ_EXACT:
    return n == m->n && eqn(v, m->s, n, m->icase);
  case MESH__AZ_PREFIX:
    return n >= m->n && eqn(v, m->s, m->n, m->icase);
  default:
    return n >= m->n && eqn(v + n - m->n, m->s, m->n, m->icase);
  }
}

bool mesh__az_principal_match(const mesh__az_str_t *m, const char *id) {
  if (!id)
    return false;
  if (strncmp(id, "spiffe://", 9) == 0)
    id += 9;
  return mesh__az_str_match(m, id);
}

/* Does p hold needle[0..n) followed, at once or later, by a "/"?  `later`
 * lets the "/" come anywhere after it (a ".*" in between). */
static bool at_then_slash(const char *p, const char *needle, size_t n,
                          bool later) {
  if (strncmp(p, needle, n) != 0)
    return false;
  return later ? strchr(p + n, '/') != NULL : p[n] == '/';
}

/* Istio builds ".*" "/ns/" + ns + "/" ".*" with every "*" of ns as ".*"
 * (its srcNamespaceGenerator) and matches the whole principal: any "/ns/"
 * segment of the ID counts, and a "*" may span segments. */
bool mesh__az_ns_match(const mesh__az_str_t *m, const char *principal) {
  if (!m || !principal)
    return false;
  for (const char *p = strstr(principal, "/ns/"); p;
       p = strstr(p + 1, "/ns/")) {
    const char *ns = p + 4;
    switch (m->kind) {
    case MESH__AZ_EXACT:
      if (at_then_slash(ns, m->s, m->n, false))
        return true;
      break;
    case MESH__AZ_PREFIX:
      if (at_then_slash(ns, m->s, m->n, true))
        return true;
      break;
    case MESH__AZ_PRESENCE:
      return strchr(ns, '/') != NULL;
    default: /* SUFFIX: ".*" then the text and "/" anywhere after */
      for (const char *q = ns; *q; q++)
        if (at_then_slash(q, m->s, m->n, false))
          return true;
      return false; /* later "/ns/" starts lie inside what was searched */
    }
  }
  return false;
}

/* Istio matches hosts with (?i)<host>(:[0-9]+)? (HostMatcherWithRegex):
 * "h:8080" is host "h", whichever way the client spelled the port. */
static bool host_match(const mesh__az_str_t *m, const char *host) {
  if (mesh__az_str_match(m, host))
    return true;
  const char *colon = strrchr(host, ':');
  if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
    return false;
  char bare[256];
  size_t n = (size_t)(colon - host);
  if (n >= sizeof bare)
    return false;
  memcpy(bare, host, n);
  bare[n] = '\0';
  return mesh__az_str_match(m, bare);
}

typedef bool (*str_fn)(const mesh__az_str_t *m, const char *v);

/* An absent list (n == 0) matches anything; otherwise any entry. */
static bool any_str(const mesh__az_strs_t *l, const char *v, str_fn fn) {
  for (size_t i = 0; i < l->n; i++)
    if (fn(&l->v[i], v))
      return true;
  return false;
}

static bool strs_ok(const mesh__az_strs_t *yes, const mesh__az_strs_t *no,
                    const char *v, str_fn fn) {
  if (yes->n && !any_str(yes, v, fn))
    return false;
  return !(no->n && any_str(no, v, fn));
}

static bool any_cidr(const mesh__az_cidrs_t *l, const struct sockaddr *sa) {
  for (size_t i = 0; i < l->n; i++)
    if (mesh__cidr_match(&l->v[i], sa))
      return true;
  return false;
}

static bool cidrs_ok(const mesh__az_cidrs_t *yes, const mesh__az_cidrs_t *no,
                     const mesh_authz_request_t *r) {
  const struct sockaddr *sa =
      r->src.ss_family ? (const struct sockaddr *)&r->src : NULL;
  if (yes->n && !any_cidr(yes, sa))
    return false;
  return !(no->n && any_cidr(no, sa));
}

static bool any_port(const mesh__az_ports_t *l, int port) {
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i] == port)
      return true;
  return false;
}

static bool ports_ok(const mesh__az_ports_t *yes, const mesh__az_ports_t *no,
                     int port) {
  if (yes->n && !any_port(yes, port))
    return false;
  return !(no->n && any_port(no, port));
}

/* Header conditions see all occurrences of a field joined with ",", as
 * Envoy's header matchers do: "x: a" + "x: b" is "a,b", so a second copy
 * of a header cannot satisfy or dodge a condition on its own.  The joined
 * value is walked in place, never built. */
typedef struct joined {
  const mesh_authz_request_t *r;
  const char *name;
  size_t len;  /* total length, separators included */
  size_t count;
} joined_t;

static void joined_init(joined_t *j, const mesh_authz_request_t *r,
                        const char *name) {
  j->r = r;
  j->name = name;
  j->len = 0;
  j->count = 0;
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcasecmp(r->hdrs[i].name, name) == 0) {
      j->len += strlen(r->hdrs[i].value) + (j->count ? 1 : 0);
      j->count++;
    }
}

/* Compare the joined value at [off, off+n) with s. */
static bool joined_eq(const joined_t *j, size_t off, const char *s, size_t n,
                      bool icase) {
  size_t pos = 0, k = 0; /* pos: offset of the current piece; k: matched */
  bool first = true;
  for (size_t i = 0; i < j->r->nhdrs && k < n; i++) {
    if (strcasecmp(j->r->hdrs[i].name, j->name) != 0)
      continue;
    if (!first) {
      if (pos >= off && pos < off + n && s[k++] != ',')
        return false;
      pos++;
    }
    first = false;
    const char *v = j->r->hdrs[i].value;
    for (; *v && k < n; v++, pos++) {
      if (pos < off)
        continue;
      int a = (unsigned char)*v, b = (unsigned char)s[k++];
      if (icase) {
        a = tolower(a);
        b = tolower(b);
      }
      if (a != b)
        return false;
    }
  }
  return k == n;
}

static bool joined_match(const joined_t *j, const mesh__az_str_t *m) {
  if (j->count == 0)
    return false;
  switch (m->kind) {
  case MESH__AZ_PRESENCE:
    return j->len > 0;
  case MESH__AZ_EXACT:
    return j->len == m->n && joined_eq(j, 0, m->s, m->n, m->icase);
  case MESH__AZ_PREFIX:
    return j->len >= m->n && joined_eq(j, 0, m->s, m->n, m->icase);
  default:
    return j->len >= m->n &&
           joined_eq(j, j->len - m->n, m->s, m->n, m->icase);
  }
}

static bool header_any(const mesh_authz_request_t *r, const char *name,
                       const mesh__az_strs_t *l) {
  joined_t j;
  joined_init(&j, r, name);
  for (size_t i = 0; i < l->n; i++)
    if (joined_match(&j, &l->v[i]))
      return true;
  return false;
}

/* ---- source / operation / condition ---------------------------------------- */

static tri_t source_match(const mesh__az_source_t *s,
                          const mesh_authz_request_t *r) {
  const char *principal = r->principal ? r->principal : "";
  if (!strs_ok(&s->principals, &s->not_principals, principal,
               mesh__az_principal_match))
    return T_NO;
  if (!strs_ok(&s->namespaces, &s->not_namespaces, principal,
               mesh__az_ns_match))
    return T_NO;
  return tri(cidrs_ok(&s->ip_blocks, &s->not_ip_blocks, r));
}

static bool has_http_fields(const mesh__az_operation_t *o) {
  return o->hosts.n || o->not_hosts.n || o->methods.n || o->not_methods.n ||
         o->paths.n || o->not_paths.n;
}

static tri_t operation_match(const mesh__az_operation_t *o,
                             const mesh_authz_request_t *r) {
  if (!ports_ok(&o->ports, &o->not_ports, r->port))
    return T_NO;
  if (!has_http_fields(o))
    return T_YES;
  if (!r->http)
    return T_UNK;
  const char *host = r->host ? r->host : "";
  const char *method = r->method ? r->method : "";
  const char *path = r->path ? r->path : "";
  bool ok = strs_ok(&o->hosts, &o->not_hosts, host, host_match) &&
            strs_ok(&o->methods, &o->not_methods, method, mesh__az_str_match) &&
            strs_ok(&o->paths, &o->not_paths, path, mesh__az_str_match);
  return tri(ok);
}

static tri_t cond_match(const mesh__az_cond_t *w,
                        const mesh_authz_request_t *r) {
  const char *principal = r->principal ? r->principal : "";
  switch (w->key) {
  case MESH__AZ_K_HEADER:
    if (!r->http)
      return T_UNK;
    if (w->values.n && !header_any(r, w->header, &w->values))
      return T_NO;
    return tri(!(w->not_values.n && header_any(r, w->header, &w->not_values)));
  case MESH__AZ_K_SOURCE_IP:
  case MESH__AZ_K_REMOTE_IP:
    return tri(cidrs_ok(&w->ips, &w->not_ips, r));
  case MESH__AZ_K_SOURCE_NS:
    return tri(strs_ok(&w->values, &w->not_values, principal,
                       mesh__az_ns_match));
  case MESH__AZ_K_SOURCE_PRINCIPAL:
    return tri(strs_ok(&w->values, &w->not_values, principal,
                       mesh__az_principal_match));
  case MESH__AZ_K_DEST_PORT:
    return tri(ports_ok(&w->ports, &w->not_ports, r->port));
  default:
    return T_NO;
  }
}

/* A rule: one `from`, one `to` and every `when` (absent lists match). */
static tri_t rule_match(const mesh__az_rule_t *rule,
                        const mesh_authz_request_t *r) {
  tri_t from = rule->nfrom ? T_NO : T_YES;
  for (size_t i = 0; i < rule->nfrom && from != T_YES; i++)
    from = tri_or(from, source_match(&rule->from[i], r));
  if (from == T_NO)
    return T_NO;
  tri_t to = rule->nto ? T_NO : T_YES;
  for (size_t i = 0; i < rule->nto && to != T_YES; i++)
    to = tri_or(to, operation_match(&rule->to[i], r));
  tri_t m = tri_and(from, to);
  for (size_t i = 0; i < rule->nwhen && m != T_NO; i++)
    m = tri_and(m, cond_match(&rule->when[i], r));
  return m;
}

/* A policy matches when any rule does; a policy without rules never. */
static tri_t policy_match(const mesh__az_policy_t *p,
                          const mesh_authz_request_t *r) {
  tri_t m = T_NO;
  for (size_t i = 0; i < p->nrules && m != T_YES; i++)
    m = tri_or(m, rule_match(&p->rules[i], r));
  return m;
}

/* What UNKNOWN means: at TCP stage Istio treats HTTP-only fields as matched
 * in DENY (and CUSTOM) rules and as not matched in ALLOW rules; at the
 * connection stage of an HTTP listener a DENY waits for the request and an
 * ALLOW keeps the connection open for it. */
static bool resolve(tri_t m, int action, int stage) {
  if (m != T_UNK)
    return m == T_YES;
  if (stage == MESH__AZ_STAGE_TCP)
    return action == MESH__AZ_DENY || action == MESH__AZ_CUSTOM;
  return action == MESH__AZ_ALLOW;
}

/* ---- the decision ---------------------------------------------------------- */

static void decide(mesh__authz_result_t *out, int d,
                   const mesh__az_policy_t *p, const char *reason) {
  out->decision = d;
  out->decider = p;
  out->policy = p ? p->name : "";
  out->reason = reason;
}

void mesh__authz_eval(const mesh__authz_set_t *s,
                      const mesh_authz_request_t *r, int stage,
                      mesh__authz_result_t *out) {
  memset(out, 0, sizeof *out);
  decide(out, MESH__AZ_DECIDE_ALLOW, NULL, "no policies");
  if (!s || !r)
    return;
  if (stage == MESH__AZ_STAGE_REQUEST && !r->http)
    stage = MESH__AZ_STAGE_TCP;
  /* CUSTOM providers and AUDIT marks apply to whole requests only. */
  for (size_t i = 0; i < s->n && stage != MESH__AZ_STAGE_CONN; i++) {
    const mesh__az_policy_t *p = &s->policies[i];
    if (p->action == MESH__AZ_CUSTOM && !out->custom[p->provider] &&
        resolve(policy_match(p, r), p->action, stage))
      out->custom[p->provider] = p;
    else if (p->action == MESH__AZ_AUDIT && !out->audit &&
             resolve(policy_match(p, r), MESH__AZ_ALLOW, stage))
      out->audit = p->name;
  }
  for (size_t i = 0; i < s->n; i++) {
    const mesh__az_policy_t *p = &s->policies[i];
    if (p->action == MESH__AZ_DENY &&
        resolve(policy_match(p, r), p->action, stage)) {
      decide(out, MESH__AZ_DECIDE_DENY, p, "matched a DENY policy");
      return;
    }
  }
  if (s->nallow == 0) {
    decide(out, MESH__AZ_DECIDE_ALLOW, NULL, "no ALLOW policy");
    return;
  }
  for (size_t i = 0; i < s->n; i++) {
    const mesh__az_policy_t *p = &s->policies[i];
    if (p->action == MESH__AZ_ALLOW &&
        resolve(policy_match(p, r), p->action, stage)) {
      decide(out, MESH__AZ_DECIDE_ALLOW, p, "matched an ALLOW policy");
      return;
    }
  }
  decide(out, MESH__AZ_DECIDE_DENY, NULL, "no ALLOW policy matched");
}
