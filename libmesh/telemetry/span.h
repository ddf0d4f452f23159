/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: spans, for every part to instrument its work.
 *
 * A span lives in caller storage (usually the stack, or inside the object
 * whose work it measures).  An unsampled span costs a random id and a
 * sampler decision: no allocation, no lock.  A sampled span also records
 * its name, attributes, events and status in a heap record, reports to the
 * application's hooks, the admin page's recent list and the exporters.
 *
 * Where the parts open spans (names follow "mesh.<what>"; attribute keys
 * below are OpenTelemetry semantic conventions plus mesh.*):
 *
 *   resilience  "mesh.call"      CLIENT  one per mesh_dial()/call by name:
 *                                        mesh.service, error.type
 *               "mesh.try"       CLIENT  child of mesh.call, one per try:
 *                                        server.address, server.port,
 *                                        network.peer.address,
 *                                        mesh.try (0 for the first)
 *   tls         "mesh.dial"      CLIENT  TCP connect + handshake, child of
 *                                        the try (or root for a dial to
 *                                        "host:port"): server.address,
 *                                        server.port, network.peer.address
 *               "mesh.handshake" INTERNAL child of dial/accept:
 *                                        tls.protocol.version, tls.cipher,
 *                                        tls.resumed, mesh.peer.spiffe_id
 *               "mesh.accept"    SERVER  inbound connection: client.address,
 *                                        client.port, mesh.peer.spiffe_id
 *   http        "mesh.request"   SERVER/CLIENT one per HTTP request, with
 *                                        the context extracted from (or
 *                                        injected into) its headers:
 *                                        http.request.method, url.path,
 *                                        http.response.status_code
 *   authz       an event "authz.deny" / attribute mesh.authz.policy on
 *               the request or accept span.
 *
 * Usage:
 *   mesh__span_t call;
 *   mesh__span_start(m, &call, "mesh.call", MESH_SPAN_CLIENT, NULL, app_ctx);
 *   mesh__span_attr_str(&call, MESH__ATTR_SERVICE, svc->name);
 *   for (each try) {
 *     mesh__span_t try_;
 *     mesh__span_start(m, &try_, "mesh.try", MESH_SPAN_CLIENT, &call, NULL);
 *     ...; mesh__span_fail(&try_, rc, "connect refused");  (on error)
 *     mesh__span_end(&try_);
 *   }
 *   mesh__span_end(&call);
 *
 * Threading: a span belongs to one thread at a time (like a connection);
 * different spans may be used concurrently.  Every started span must be
 * ended exactly once; ending a span that was never started (zeroed) is a
 * no-op, so `mesh__span_t s = {0};` then an early-return path is safe.
 */
#ifndef MESH_TELEMETRY_SPAN_H
#define MESH_TELEMETRY_SPAN_H

#include <stdbool.h>
#include <stdint.h>

#include <mesh/trace.h>

#include "core/core.h"

/* Attribute keys (borrowed by spans: always pass these constants or other
 * string literals). */
#define MESH__ATTR_SERVER_ADDRESS "server.address"
#define MESH__ATTR_SERVER_PORT "server.port"
#define MESH__ATTR_CLIENT_ADDRESS "client.address"
#define MESH__ATTR_CLIENT_PORT "client.port"
#define MESH__ATTR_PEER_ADDRESS "network.peer.address"
#define MESH__ATTR_PEER_PORT "network.peer.port"
#define MESH__ATTR_TRANSPORT "network.transport"
#define MESH__ATTR_TLS_VERSION "tls.protocol.version"
#define MESH__ATTR_TLS_CIPHER "tls.cipher"
#define MESH__ATTR_TLS_RESUMED "tls.resumed"
#define MESH__ATTR_RPC_SYSTEM "rpc.system"
#define MESH__ATTR_RPC_SERVICE "rpc.service"
#define MESH__ATTR_RPC_METHOD "rpc.method"
#define MESH__ATTR_HTTP_METHOD "http.request.method"
#define MESH__ATTR_HTTP_STATUS "http.response.status_code"
#define MESH__ATTR_URL_PATH "url.path"
#define MESH__ATTR_ERROR_TYPE "error.type"
#define MESH__ATTR_PEER_SPIFFE_ID "mesh.peer.spiffe_id"
#define MESH__ATTR_SERVICE "mesh.service"
#define MESH__ATTR_TRY "mesh.try"

#define MESH__SPAN_MAX_ATTRS 24
#define MESH__SPAN_MAX_EVENTS 8

typedef struct mesh__span {
  struct mesh_span *rec;   /* recording data; NULL when not recorded */
  mesh_t *m;
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];    /* zero for a root */
  uint8_t sampled;         /* 1: sampled (propagated as such) */
  uint8_t sampling;        /* mesh_sampling_t to propagate (debug kept) */
  uint8_t started;
  uint8_t trace_id_64;
  uint8_t random;          /* W3C random-trace-id flag (our ids, or the
                              remote parent's flag) */
  const char *tracestate;  /* borrowed from the remote parent, or "" */
} mesh__span_t;

/** Start a span.  The parent is `parent` if given and started, else the
 *  remote context `remote` if given (extracted from a carrier, borrowed:
 *  it must outlive this span and its children), else a new trace.
 *  name is copied when recorded.  Never fails: without memory the span is
 *  simply not recorded. */
void mesh__span_start(mesh_t *m, mesh__span_t *sp, const char *name,
                      mesh_span_kind_t kind, const mesh__span_t *parent,
                      const mesh_trace_ctx_t *remote);

/** Is the span recorded (attributes worth computing)? */
static inline bool mesh__span_recording(const mesh__span_t *sp) {
  return sp && sp->rec;
}

/* Attributes: key borrowed (use the constants), values copied.  No-ops on
 * spans that are not recorded; beyond MESH__SPAN_MAX_ATTRS they are
 * counted as dropped.  Setting a key again replaces its value. */
void mesh__span_attr_str(mesh__span_t *sp, const char *key, const char *v);
void mesh__span_attr_int(mesh__span_t *sp, const char *key, int64_t v);
void mesh__span_attr_bool(mesh__span_t *sp, const char *key, bool v);
void mesh__span_attr_double(mesh__span_t *sp, const char *key, double v);
/** A timestamped event (name borrowed: a literal). */
void mesh__span_event(mesh__span_t *sp, const char *name);
/** Status OK or ERROR with a message (copied; ignored for OK). */
void mesh__span_status(mesh__span_t *sp, mesh_span_status_t code,
                       const char *msg);
/** ERROR status from a mesh code: error.type = mesh_code_name(code), the
 *  message = msg or mesh_strerror(code). */
void mesh__span_fail(mesh__span_t *sp, int code, const char *msg);
/** End: hooks, recent list, exporters.  Idempotent. */
void mesh__span_end(mesh__span_t *sp);

/** The context to propagate downstream of this span. */
void mesh__span_context(const mesh__span_t *sp, mesh_trace_ctx_t *out);
/** Inject the span's context in the configured formats.
 *  @return as mesh_trace_inject(). */
int mesh__span_inject(const mesh__span_t *sp, mesh_trace_setter set,
                      void *user);

/* ---- the tracer (telemetry/span.c), set up by the "tracing" part --------- */

/** Random non-zero ids from a per-thread generator (no lock, no syscall
 *  after the first call on a thread). */
void mesh__random_id(uint8_t *out, size_t n);

#endif /* MESH_TELEMETRY_SPAN_H */
