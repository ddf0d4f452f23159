/* SPDX-License-Identifier: Apache-2.0 */
/* The RBAC HTTP filter (gRFC A41) to libmesh's authz policy model (Istio's
 * AuthorizationPolicy: docs/config/authz.md).  An RBAC policy matches when
 * any permission and any principal match; an authz rule matches when one
 * "to" and one "from" entry match: so each permission becomes one "to"
 * operation and each principal one "from" source.  A permission or
 * principal maps when it is a leaf, a "not" of a leaf, or an and-set of
 * leaves and or-sets of leaves of one kind (the shape Istio generates);
 * anything else (metadata, conditions, requested_server_name, ...) is
 * refused, never approximated. */
#include <stdlib.h>
#include <string.h>

#include "xds/proto/filters.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

/* "exact" -> "x", prefix -> "x*", suffix -> "*x" (Istio's path and
 * principal syntax); contains/regex/ignore_case refused. */
static int glob_of(const Meshxds__StringMatcher *m, char *out, size_t cap,
                   why_t *w) {
  if (!m || m->ignore_case)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "string matcher: missing or "
                  "ignore_case");
  switch (m->match_pattern_case) {
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_EXACT:
    snprintf(out, cap, "%s", m->exact);
    return 0;
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_PREFIX:
    snprintf(out, cap, "%s*", m->prefix);
    return 0;
  case MESHXDS__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
    snprintf(out, cap, "*%s", m->suffix);
    return 0;
  default:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "string matcher: only exact, "
                  "prefix and suffix are supported");
  }
}

/* Append s to o[key] (an array, created on first use). */
static void add(cJSON *o, const char *key, const char *s) {
  cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!a)
    a = cJSON_AddArrayToObject(o, key);
  cJSON_AddItemToArray(a, cJSON_CreateString(s));
}

/* Move from's only member into to, under the same key. */
static void move_first(cJSON *from, cJSON *to) {
  char key[32];
  snprintf(key, sizeof key, "%s", from->child->string);
  cJSON *it = cJSON_DetachItemViaPointer(from, from->child);
  cJSON_AddItemToObject(to, key, it);
}

/* A header permission other than an exact :method: a `when` condition
 * on request.headers[name] of the rule (each permission is one rule, so
 * the condition stays with its permission).  The operation carries the
 * conditions under a private key that policy() moves to the rule. */
static int header_cond(const Meshxds__HeaderMatcher *h, cJSON *op, bool neg,
                       why_t *w) {
  char v[300];
  const char *name = h->name;
  if (!*name || name[0] == ':' || strlen(name) > 200 ||
      strcspn(name, "[]\"") != strlen(name))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "permission header \"%.200s\": "
                  "pseudo-headers other than an exact :method are not "
                  "supported", name);
  switch (h->header_match_specifier_case) {
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
    snprintf(v, sizeof v, "%s", h->exact_match);
    break;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
    snprintf(v, sizeof v, "%s*", h->prefix_match);
    break;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
    snprintf(v, sizeof v, "*%s", h->suffix_match);
    break;
  case MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
    if (!h->present_match)
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "permission header %s: "
                    "present_match false is not supported", name);
    snprintf(v, sizeof v, "*");
    break;
  default:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "permission header %s: only "
                  "exact, prefix, suffix and present matches are supported",
                  name);
  }
  if (!*v || (strchr(v, '*') && strlen(v) == 1 && h->header_match_specifier_case !=
              MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH))
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "permission header %s: an empty "
                  "value is not supported", name);
  bool inv = neg != h->invert_match;
  cJSON *when = cJSON_GetObjectItemCaseSensitive(op, "_when");
  if (!when)
    when = cJSON_AddArrayToObject(op, "_when");
  cJSON *c = cJSON_CreateObject();
  char key[240];
  snprintf(key, sizeof key, "request.headers[%s]", name);
  cJSON_AddStringToObject(c, "key", key);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(c, inv ? "notValues" : "values"),
                       cJSON_CreateString(v));
  cJSON_AddItemToArray(when, c);
  return 0;
}

static int perm_leaf(const Meshxds__Permission *p, cJSON *op, bool neg,
                     why_t *w) {
  char v[300];
  switch (p->rule_case) {
  case MESHXDS__PERMISSION__RULE_URL_PATH:
    if (glob_of(p->url_path->path, v, sizeof v, w))
      return MESH_ERR_UNSUPPORTED;
    add(op, neg ? "notPaths" : "paths", v);
    return 0;
  case MESHXDS__PERMISSION__RULE_HEADER:
    if (strcmp(p->header->name, ":method") == 0 && !p->header->invert_match &&
        p->header->header_match_specifier_case ==
            MESHXDS__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH) {
      add(op, neg ? "notMethods" : "methods", p->header->exact_match);
      return 0;
    }
    return header_cond(p->header, op, neg, w);
  case MESHXDS__PERMISSION__RULE_DESTINATION_PORT:
    snprintf(v, sizeof v, "%u", p->destination_port);
    add(op, neg ? "notPorts" : "ports", v);
    return 0;
  default:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "permission rule %d is not "
                  "supported", (int)p->rule_case);
  }
}

/* One permission -> one operation object (NULL when "any"). */
static int permission(const Meshxds__Permission *p, cJSON *op, why_t *w) {
  if (p->rule_case == MESHXDS__PERMISSION__RULE_ANY)
    return p->any ? 0 : REFUSE(w, MESH_ERR_CONFIG, "permission any: false");
  if (p->rule_case == MESHXDS__PERMISSION__RULE_NOT_RULE)
    return perm_leaf(p->not_rule, op, true, w);
  if (p->rule_case == MESHXDS__PERMISSION__RULE_OR_RULES &&
      p->or_rules->n_rules == 1)
    return permission(p->or_rules->rules[0], op, w);
  if (p->rule_case != MESHXDS__PERMISSION__RULE_AND_RULES)
    return perm_leaf(p, op, false, w);
  for (size_t i = 0; i < p->and_rules->n_rules; i++) {
    const Meshxds__Permission *q = p->and_rules->rules[i];
    if (q->rule_case == MESHXDS__PERMISSION__RULE_OR_RULES) {
      /* an or-set: leaves of one kind, which an operation ORs */
      cJSON *probe = cJSON_CreateObject();
      int rc = 0;
      for (size_t k = 0; !rc && k < q->or_rules->n_rules; k++)
        rc = perm_leaf(q->or_rules->rules[k], probe, false, w);
      if (!rc && cJSON_GetObjectItemCaseSensitive(probe, "_when"))
        rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "permission or_rules of header "
                    "matchers are not supported");
      if (!rc && cJSON_GetArraySize(probe) != 1)
        rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "permission or_rules mixing "
                    "kinds is not supported");
      if (!rc && cJSON_GetObjectItemCaseSensitive(op, probe->child->string))
        rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "permission and_rules with two "
                    "%s sets is not supported", probe->child->string);
      if (!rc)
        move_first(probe, op);
      cJSON_Delete(probe);
      if (rc)
        return rc;
    } else if (q->rule_case != MESHXDS__PERMISSION__RULE_ANY) {
      int rc = q->rule_case == MESHXDS__PERMISSION__RULE_NOT_RULE
                   ? perm_leaf(q->not_rule, op, true, w)
                   : perm_leaf(q, op, false, w);
      if (rc)
        return rc;
    }
  }
  return 0;
}

static int cidr(const Meshxds__CidrRange *c, char *out, size_t cap) {
  snprintf(out, cap, "%s/%u", c->address_prefix,
           c->prefix_len ? c->prefix_len->value : (strchr(c->address_prefix, ':') ? 128 : 32));
  return 0;
}

static int princ_leaf(const Meshxds__Principal *p, cJSON *src, bool neg,
                      why_t *w) {
  char v[300];
  switch (p->identifier_case) {
  case MESHXDS__PRINCIPAL__IDENTIFIER_AUTHENTICATED:
    if (!p->authenticated->principal_name) {
      /* any authenticated peer: Istio writes principals ["*"] */
      add(src, neg ? "notPrincipals" : "principals", "*");
      return 0;
    }
    if (glob_of(p->authenticated->principal_name, v, sizeof v, w))
      return MESH_ERR_UNSUPPORTED;
    add(src, neg ? "notPrincipals" : "principals", v);
    return 0;
  case MESHXDS__PRINCIPAL__IDENTIFIER_SOURCE_IP:
  case MESHXDS__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP:
  case MESHXDS__PRINCIPAL__IDENTIFIER_REMOTE_IP: {
    const Meshxds__CidrRange *c = p->identifier_case ==
        MESHXDS__PRINCIPAL__IDENTIFIER_SOURCE_IP ? p->source_ip :
        p->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP ?
        p->direct_remote_ip : p->remote_ip;
    cidr(c, v, sizeof v);
    add(src, neg ? "notIpBlocks" : "ipBlocks", v);
    return 0;
  }
  default:
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "principal identifier %d is not "
                  "supported", (int)p->identifier_case);
  }
}

static int principal(const Meshxds__Principal *p, cJSON *src, why_t *w) {
  if (p->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_ANY)
    return p->any ? 0 : REFUSE(w, MESH_ERR_CONFIG, "principal any: false");
  if (p->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_NOT_ID)
    return princ_leaf(p->not_id, src, true, w);
  const Meshxds__Principal__Set *set =
      p->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_AND_IDS ? p->and_ids
      : p->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_OR_IDS &&
              p->or_ids->n_ids == 1 ? p->or_ids : NULL;
  if (!set)
    return princ_leaf(p, src, false, w);
  for (size_t i = 0; i < set->n_ids; i++) {
    const Meshxds__Principal *q = set->ids[i];
    int rc = 0;
    if (q->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_OR_IDS) {
      cJSON *probe = cJSON_CreateObject();
      for (size_t k = 0; !rc && k < q->or_ids->n_ids; k++)
        rc = princ_leaf(q->or_ids->ids[k], probe, false, w);
      if (!rc && cJSON_GetArraySize(probe) != 1)
        rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "principal or_ids mixing kinds "
                    "is not supported");
      if (!rc && cJSON_GetObjectItemCaseSensitive(src, probe->child->string))
        rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "principal and_ids with two %s "
                    "sets is not supported", probe->child->string);
      if (!rc)
        move_first(probe, src);
      cJSON_Delete(probe);
    } else if (q->identifier_case == MESHXDS__PRINCIPAL__IDENTIFIER_NOT_ID) {
      rc = princ_leaf(q->not_id, src, true, w);
    } else if (q->identifier_case != MESHXDS__PRINCIPAL__IDENTIFIER_ANY) {
      rc = princ_leaf(q, src, false, w);
    }
    if (rc)
      return rc;
  }
  return 0;
}

static int policy(const char *name, const Meshxds__Policy *p, const char *action,
                  cJSON *pols, why_t *w) {
  static const Meshxds__Policy empty = MESHXDS__POLICY__INIT;
  if (!p)
    p = &empty; /* a map entry without a value: a policy matching nothing */
  if (p->condition || p->checked_condition)
    return REFUSE(w, MESH_ERR_UNSUPPORTED, "policies[%s]: conditions (CEL) "
                  "are not supported", name);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToArray(pols, o);
  /* authz names are 1-128 of [A-Za-z0-9-_.]; Istio's RBAC names carry
   * brackets ("ns[default]-policy[x]-rule[0]"): others become '_' */
  char nm[129];
  snprintf(nm, sizeof nm, "%s", *name ? name : "_");
  for (char *q = nm; *q; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
          (*q >= '0' && *q <= '9') || *q == '-' || *q == '_' || *q == '.'))
      *q = '_';
  cJSON_AddStringToObject(o, "name", nm);
  cJSON_AddStringToObject(o, "action", action);
  /* principals once, then one rule per permission (rules are ORed, as
   * RBAC's permissions are) with the principals as its "from" */
  cJSON *from = cJSON_CreateArray();
  for (size_t i = 0; i < p->n_principals; i++) {
    cJSON *src = cJSON_CreateObject();
    cJSON_AddItemToArray(from, src);
    why_t sub = {""};
    if (principal(p->principals[i], src, &sub)) {
      cJSON_Delete(from);
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "policies[%s].principals[%zu]: "
                    "%s", name, i, sub.msg);
    }
  }
  cJSON *rules = cJSON_AddArrayToObject(o, "rules");
  for (size_t i = 0; i < p->n_permissions; i++) {
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddItemToArray(rules, rule);
    cJSON *op = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(rule, "to"), op);
    cJSON_AddItemToObject(rule, "from", cJSON_Duplicate(from, true));
    why_t sub = {""};
    if (permission(p->permissions[i], op, &sub)) {
      cJSON_Delete(from);
      return REFUSE(w, MESH_ERR_UNSUPPORTED, "policies[%s].permissions[%zu]: "
                    "%s", name, i, sub.msg);
    }
    cJSON *when = cJSON_DetachItemFromObjectCaseSensitive(op, "_when");
    if (when)
      cJSON_AddItemToObject(rule, "when", when);
  }
  cJSON_Delete(from);
  /* RBAC: a policy without permissions or principals never matches */
  if (!p->n_permissions || !p->n_principals)
    cJSON_DeleteItemFromObject(o, "rules");
  return 0;
}

int mesh__xds_rbac(const uint8_t *buf, size_t len, cJSON **out, why_t *w) {
  *out = NULL;
  Meshxds__RBAC *r = meshxds__rbac__unpack(NULL, len, buf);
  if (!r)
    return REFUSE(w, MESH_ERR_PARSE, "RBAC: malformed protobuf");
  int rc = 0;
  cJSON *doc = cJSON_CreateObject();
  cJSON *pols = cJSON_AddArrayToObject(doc, "policies");
  if (r->shadow_rules || r->shadow_matcher)
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "RBAC.%s is not supported",
                r->shadow_rules ? "shadow_rules" : "shadow_matcher");
  /* matcher replaces rules and denies what it does not match: ignoring it
   * would allow everything */
  if (r->matcher)
    rc = REFUSE(w, MESH_ERR_UNSUPPORTED, "RBAC.matcher is not supported");
  /* no rules: the filter allows everything (A41); authz with no policy too */
  const Meshxds__RBACRules *rules = rc ? NULL : r->rules;
  const char *action = NULL;
  if (rules) {
    action = rules->action == MESHXDS__RBACRULES__ACTION__ALLOW  ? "ALLOW"
             : rules->action == MESHXDS__RBACRULES__ACTION__DENY ? "DENY"
                                                                 : "AUDIT";
    if (rules->n_policies == 0 && rules->action == MESHXDS__RBACRULES__ACTION__ALLOW) {
      /* ALLOW with no policy denies everything: one policy matching nothing */
      cJSON *o = cJSON_CreateObject();
      cJSON_AddItemToArray(pols, o);
      cJSON_AddStringToObject(o, "name", "xds-allow-nothing");
      cJSON_AddStringToObject(o, "action", "ALLOW");
    }
  }
  for (size_t i = 0; !rc && rules && i < rules->n_policies; i++)
    rc = policy(rules->policies[i]->key, rules->policies[i]->value, action,
                pols, w);
  meshxds__rbac__free_unpacked(r, NULL);
  if (!rc) {
    /* the authz part's own check: what it would refuse is a NACK */
    mesh_status_t st = {0};
    cJSON *wrap = cJSON_CreateObject();
    if (!wrap || !cJSON_AddItemReferenceToObject(wrap, "authz", doc))
      rc = REFUSE(w, MESH_ERR_NOMEM, "out of memory");
    else if (mesh__xds_check_doc(wrap, "authz.", "RBAC as authz", &st))
      rc = REFUSE(w, MESH_ERR_CONFIG, "%s", st.message);
    cJSON_Delete(wrap);
  }
  if (rc)
    cJSON_Delete(doc);
  else
    *out = doc;
  return rc;
}
