/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_dial(): the call layer owns dialing a service.  A name goes
 * name -> pick -> pool -> dial here (one try of the call machinery, its
 * connection handed to the application); a "host:port" goes straight to
 * tls/, which only dials an address and handshakes. */
#include "resilience/call.h"

#include <string.h>

int mesh__dial_service(mesh_t *m, mesh__service_t *svc,
                       const mesh_dial_opts_t *opts, mesh_conn_t **out,
                       mesh_status_t *st) {
  mesh_status_t local;
  if (!st)
    st = &local;
  mesh__ok(st);
  if (!out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "out must not be NULL");
  *out = NULL;
  mesh_call_t c;
  memset(&c, 0, sizeof c);
  c.x = &c.own;
  /* The application's trace parent (mesh_dial_opts_set_trace_parent) is
   * the parent of the call span, which parents the dial below. */
  mesh_call_opts_t co;
  mesh__call_opts_defaults(&co);
  if (opts && opts->has_parent) {
    co.conn.has_parent = true;
    co.conn.parent = opts->parent;
  }
  int rc = mesh__callx_init(c.x, m, svc ? svc->name : NULL, &co, st);
  if (rc != MESH_OK)
    return rc;
  if (opts && opts->hash_key) {
    c.x->hash_key = opts->hash_key;
    c.x->hash_key_len = opts->hash_key_len;
  }
  if (opts && opts->timeout_ms > 0) {
    /* The dial timeout bounds the whole dial, connect retries included. */
    c.x->deadline_ms = c.x->start_ms + opts->timeout_ms;
    c.x->connect_ms = opts->timeout_ms;
  }
  rc = mesh__call_acquire(&c, false, opts, st);
  if (rc == MESH_OK || rc == MESH_ERR_WANT_READ || rc == MESH_ERR_WANT_WRITE) {
    /* Ownership passes to the application: the connection leaves the
     * breaker's count and the try ends here (no outcome to report). */
    *out = c.conn;
    c.conn = NULL;
    if (c.holds_conn)
      mesh__breaker_give(&c.x->br->connections);
    c.holds_conn = false;

  }
  mesh__call_release(&c);
  mesh__span_end(&c.span);
  if (rc != MESH_OK && rc != MESH_ERR_WANT_READ && rc != MESH_ERR_WANT_WRITE)
    mesh__span_fail(&c.x->span, rc, st->message);
  mesh__span_end(&c.x->span);
  mesh__callx_fini(c.x);
  return rc;
}

int mesh_dial(mesh_t *m, const char *target, const mesh_dial_opts_t *opts,
              mesh_conn_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!m || !target || !out)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "mesh_dial: m, target and out must not be NULL");
  if (strchr(target, ':') && strncmp(target, "xds:///", 7) != 0)
    return mesh__tls_dial_host(m, target, opts, out, st);
  /* a name not configured may be one xds subscribes on first use: the
   * wait for its resources is bounded by the connect timeout */
  mesh__service_t *svc;
  int ur = mesh__service_use(m, target, opts ? opts->timeout_ms : 0, &svc, st);
  if (ur < 0)
    return ur;
  if (!svc)
    return mesh__fail(st, MESH_ERR_UNKNOWN_SERVICE,
                      "\"%s\" is neither a configured service nor "
                      "\"host:port\"",
                      target);
  /* The service's name labels the connection metrics; a zeroed copy
   * means the same as no options to the call layer. */
  mesh_dial_opts_t o;
  if (opts)
    o = *opts;
  else
    memset(&o, 0, sizeof o);
  o.service = svc->name;
  return mesh__dial_service(m, svc, &o, out, st);
}
