/* SPDX-License-Identifier: Apache-2.0 */
/* What identity shows the readers (Prometheus text, the admin endpoint),
 * registered by identity itself through telemetry so that no reader calls
 * into identity: the SVID expiry gauge and the "identity" view (the SVID,
 * its chain and the trust bundles held). */
#include "identity/identity.h"
#include "telemetry/telemetry.h"

#include <math.h>
#include <stdio.h>

static double svid_expires_in(void *user) {
  mesh_t *m = user;
  mesh__creds_t *c = mesh__creds_acquire(m);
  if (!c)
    return NAN;
  double left = (double)(c->not_after - mesh__wall_s());
  mesh__creds_release(c);
  return left;
}

static void add_time(cJSON *o, const char *key, const mbedtls_x509_time *t) {
  char buf[32];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", t->year, t->mon,
           t->day, t->hour, t->min, t->sec);
  cJSON_AddStringToObject(o, key, buf);
}

static cJSON *chain_json(const mesh__creds_t *c) {
  cJSON *chain = cJSON_CreateArray();
  for (const mbedtls_x509_crt *crt = &c->chain; chain && crt && crt->raw.p;
       crt = crt->next) {
    cJSON *e = cJSON_CreateObject();
    if (!e)
      break;
    char buf[512];
    if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->subject) >= 0)
      cJSON_AddStringToObject(e, "subject", buf);
    if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->issuer) >= 0)
      cJSON_AddStringToObject(e, "issuer", buf);
    if (mbedtls_x509_serial_gets(buf, sizeof buf, &crt->serial) >= 0)
      cJSON_AddStringToObject(e, "serial", buf);
    add_time(e, "not_before", &crt->valid_from);
    add_time(e, "not_after", &crt->valid_to);
    cJSON_AddItemToArray(chain, e);
  }
  return chain;
}

/* Each bundle's roots with their validity (the admin page shows expiry). */
static cJSON *roots_json(const mesh__creds_t *c) {
  cJSON *roots = cJSON_CreateArray();
  for (size_t i = 0; roots && i < c->nbundles; i++) {
    for (const mbedtls_x509_crt *crt = &c->bundles[i].roots;
         crt && crt->raw.p; crt = crt->next) {
      cJSON *e = cJSON_CreateObject();
      if (!e)
        break;
      char buf[512];
      cJSON_AddStringToObject(e, "trust_domain", c->bundles[i].td);
      if (mbedtls_x509_dn_gets(buf, sizeof buf, &crt->subject) >= 0)
        cJSON_AddStringToObject(e, "subject", buf);
      add_time(e, "not_after", &crt->valid_to);
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
