/* SPDX-License-Identifier: Apache-2.0 */
/* What identity shows the readers (Prometheus text, the admin endpoint),
 * registered by identity itself through telemetry so that no reader calls
 * into identity: the SVID expiry gauge and the "identity" view (the SVID,
 * its chain and the trust bundles held). */
#include "identity/identity.h"
#include "telemetry/telemetry.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static double svid_expires_in(void *user) {
  mesh_t *m = user;
  mesh__creds_t *c = mesh__creds_acquire(m);
  if (!c)
    return NAN;
  double left = (double)(c->not_after - mesh__wall_s());
  mesh__creds_release(c);
  return left;
}

static void add_time(cJSON *o, const char *key, int64_t t) {
  char buf[64];
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
  cJSON_AddStringToObject(o, key, buf);
}

static cJSON *chain_json(const mesh__creds_t *c) {
  cJSON *chain = cJSON_CreateArray();
  for (size_t i = 0; chain && i < mesh__x509_chain_len(c->chain); i++) {
    const mesh__x509_t *crt = mesh__x509_chain_at(c->chain, i);
    cJSON *e = cJSON_CreateObject();
    if (!e)
      break;
    char buf[512];
    if (mesh__x509_dn_text(crt, false, buf, sizeof buf) == 0)
      cJSON_AddStringToObject(e, "subject", buf);
    if (mesh__x509_dn_text(crt, true, buf, sizeof buf) == 0)
      cJSON_AddStringToObject(e, "issuer", buf);
    if (mesh__x509_serial_text(crt, buf, sizeof buf) == 0)
      cJSON_AddStringToObject(e, "serial", buf);
    add_time(e, "not_before", mesh__x509_not_before(crt));
    add_time(e, "not_after", mesh__x509_not_after(crt));
    cJSON_AddItemToArray(chain, e);
  }
  return chain;
}

/* Each bundle's roots with their validity (the admin page shows expiry). */
static cJSON *roots_json(const mesh__creds_t *c) {
  cJSON *roots = cJSON_CreateArray();
  for (size_t i = 0; roots && i < c->nbundles; i++) {
    const mesh__x509_chain_t *b = c->bundles[i].roots;
    for (size_t k = 0; k < mesh__x509_chain_len(b); k++) {
      const mesh__x509_t *crt = mesh__x509_chain_at(b, k);
      cJSON *e = cJSON_CreateObject();
      if (!e)
        break;
      char buf[512];
      cJSON_AddStringToObject(e, "trust_domain", c->bundles[i].td);
      if (mesh__x509_dn_text(crt, false, buf, sizeof buf) == 0)
        cJSON_AddStringToObject(e, "subject", buf);
      add_time(e, "not_after", mesh__x509_not_after(crt));
      cJSON_AddItemToArray(roots, e);
    }
  }
  return roots;
}

/* The document of the admin endpoint's /identity. */
static cJSON *identity_view(mesh_t *m, void *user) {
  (void)user;
  cJSON *doc = cJSON_CreateObject();
  if (!doc)
    return NULL;
  char state[300];
  cJSON_AddStringToObject(doc, "source", mesh__identity_source(m));
  mesh__identity_source_state(m, state, sizeof state);
  if (state[0])
    cJSON_AddStringToObject(doc, "source_state", state);
  mesh__creds_t *c = mesh__creds_acquire(m);
  mesh__creds_t *t = c ? NULL : mesh__identity_trust_acquire(m);
  if (!c) {
    cJSON_AddNullToObject(doc, "spiffe_id");
    cJSON_AddStringToObject(doc, "status", t ? "bundles only (no SVID)"
                                             : "no SVID loaded");
  }
  if (t) { /* FetchX509Bundles: trust without an own identity */
    cJSON_AddNumberToObject(doc, "generation", (double)t->generation);
    cJSON *bundles = cJSON_AddArrayToObject(doc, "bundles");
    for (size_t i = 0; bundles && i < t->nbundles; i++)
      cJSON_AddItemToArray(bundles, cJSON_CreateString(t->bundles[i].td));
    cJSON *roots = roots_json(t);
    if (roots)
      cJSON_AddItemToObject(doc, "bundle_roots", roots);
    mesh__creds_release(t);
  }
  if (!c)
    return doc;
  cJSON_AddStringToObject(doc, "spiffe_id", c->id);
  cJSON_AddStringToObject(doc, "trust_domain", c->td);
  cJSON_AddNumberToObject(doc, "not_before", (double)c->not_before);
  cJSON_AddNumberToObject(doc, "not_after", (double)c->not_after);
  cJSON_AddNumberToObject(doc, "expires_in_s",
                          (double)(c->not_after - mesh__wall_s()));
  cJSON_AddNumberToObject(doc, "generation", (double)c->generation);
  cJSON *chain = chain_json(c);
  if (chain)
    cJSON_AddItemToObject(doc, "chain", chain);
  cJSON *bundles = cJSON_AddArrayToObject(doc, "bundles");
  for (size_t i = 0; bundles && i < c->nbundles; i++)
    cJSON_AddItemToArray(bundles, cJSON_CreateString(c->bundles[i].td));
  cJSON *roots = roots_json(c);
  if (roots)
    cJSON_AddItemToObject(doc, "bundle_roots", roots);
  mesh__creds_release(c);
  return doc;
}

void mesh__identity_register_gauges(mesh_t *m) {
  mesh__gauge_func(
      m, "mesh_svid_expires_in_seconds",
      "Seconds until this workload's X.509-SVID expires (NaN: none loaded).",
      NULL, svid_expires_in, m);
  mesh__view_register(m, "identity", identity_view, NULL);
}
