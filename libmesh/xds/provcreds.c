/* SPDX-License-Identifier: Apache-2.0 */
/* Credentials from the certificate provider instances a TLS context names
 * (gRFC A29): the identity certificate and key from one instance
 * (tls_certificate_provider_instance), the trust bundles from another
 * (the validation context's instance; the certificate instance's own when
 * the context has none), so an instance may hold only a certificate and
 * another only a bundle.  The result is a TLS generation of its own (not
 * the context's identity): the xDS-enabled server's filter chains use it
 * per connection.  The files are read when a resource is applied and
 * again when they change (provwatch.c: every refresh_interval). */
#include <stdatomic.h>
#include <stdio.h>

#include "tls/tls.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

/* Generations of their own: bit 62 keeps them apart from the identity's
 * and from the ADS connection's A65 files (bit 63). */
static _Atomic uint64_t prov_gens;

int mesh__xds_prov_gen(mesh_t *m, const mesh__xds_bootstrap_t *b,
                       const char *cert_inst, const char *ca_inst,
                       mesh__tlsgen_t **out, mesh_status_t *st) {
  *out = NULL;
  const mesh__xds_certprov_t *p = mesh__xds_certprov_find(b, cert_inst);
  const mesh__xds_certprov_t *q =
      ca_inst ? mesh__xds_certprov_find(b, ca_inst) : p;
  if (!p || !q)
    return mesh__fail(st, MESH_ERR_CONFIG, "certificate provider instance "
                      "\"%.100s\" is not in the bootstrap's "
                      "certificate_providers", !p ? cert_inst : ca_inst);
  if (!p->cert_file)
    return mesh__fail(st, MESH_ERR_CONFIG, "certificate provider instance "
                      "\"%.100s\" has no certificate_file: it cannot be a "
                      "TLS context's identity certificate", cert_inst);
  if (!q->ca_file && !q->map_file)
    return mesh__fail(st, MESH_ERR_CONFIG, "certificate provider instance "
                      "\"%.100s\" has neither ca_certificate_file nor "
                      "spiffe_trust_bundle_map_file%s", q->name,
                      ca_inst ? "" : " (the TLS context has no validation "
                      "context: libmesh checks its own certificate against "
                      "the instance's trust bundle)");
  mesh__creds_src_t src = {.cert = p->cert_file,
                           .key = p->key_file,
                           .bundle = q->map_file ? NULL : q->ca_file,
                           .bundle_map = q->map_file};
  mesh__creds_t *cr;
  uint64_t g = (1ull << 62) | atomic_fetch_add(&prov_gens, 1);
  mesh_status_t why;
  int rc = mesh__creds_load(&src, g, &cr, &why);
  if (rc == MESH_OK)
    rc = mesh__tlsgen_new(m, cr, out, &why);
  if (rc != MESH_OK)
    return mesh__fail(st, rc, "certificate provider instances \"%.80s\" / "
                      "\"%.80s\": %s", cert_inst, ca_inst ? ca_inst : cert_inst,
                      why.message);
  return MESH_OK;
}
