/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh — mutual-TLS connections: dial, listen, accept, I/O. */
#ifndef MESH_CONN_H
#define MESH_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <mesh/export.h>
#include <mesh/error.h>
#include <mesh/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mesh_ctx mesh_t;
typedef struct mesh_conn mesh_conn_t;
typedef struct mesh_listener mesh_listener_t;
typedef struct mesh_dial_opts mesh_dial_opts_t;

/* ---- dial options (opaque builder, typed setters: no varargs) --------- */

/* Setters copy their arguments and return MESH_OK, MESH_ERR_INVALID_ARG
 * (NULL or out of range) or MESH_ERR_NOMEM.  An options object may be used
 * for many dials, from one thread at a time. */

/** New options with defaults; NULL when out of memory. */
MESH_EXTERN mesh_dial_opts_t *mesh_dial_opts_new(void);
/** NULL is a no-op. */
MESH_EXTERN void mesh_dial_opts_free(mesh_dial_opts_t *o);
/** Overall connect + handshake budget, ms; 0 = the config's
 *  tls.connect_timeout_ms and tls.handshake_timeout_ms. */
MESH_EXTERN int mesh_dial_opts_set_timeout(mesh_dial_opts_t *o, int timeout_ms);
/** Add an accepted peer pattern (see mesh_spiffe_match()); replaces the
 *  service's configured `peers` once any is added.  At most 16. Copied. */
MESH_EXTERN int mesh_dial_opts_add_peer(mesh_dial_opts_t *o,
                                        const char *pattern);
/** Comma-separated ALPN protocol list, e.g. "h2,http/1.1" (at most 8
 *  names of 1-255 bytes); replaces `tls.alpn` for the dial; NULL resets.
 *  Copied. */
MESH_EXTERN int mesh_dial_opts_set_alpn(mesh_dial_opts_t *o, const char *alpn);
/** Return at once with MESH_ERR_WANT_READ/WRITE; finish the handshake with
 *  mesh_conn_handshake() when mesh_conn_fd() is ready. */
MESH_EXTERN int mesh_dial_opts_set_nonblocking(mesh_dial_opts_t *o, int on);
/** Key for hash-based load balancing (ring_hash, maglev); copied, at most
 *  1024 bytes (the rule of mesh_call_opts_set_hash_key()). */
MESH_EXTERN int mesh_dial_opts_set_hash_key(mesh_dial_opts_t *o,
                                            const char *key, size_t len);

/** Parent of the dial's spans, e.g. a context extracted with
 *  mesh_trace_extract() from the request being served, so the library's
 *  spans join the application's trace (as mesh_call_opts_set_trace_parent()
 *  does for calls).  A dial to "host:port" opens "mesh.dial" under it (and
 *  "mesh.handshake" under that); without one it starts a new trace,
 *  subject to sampling.  A sampling-only context (ids all zero, e.g. from
 *  "b3: 0") passes its decision on.  ctx is copied; NULL clears it.
 *  @return MESH_OK or MESH_ERR_INVALID_ARG (o NULL). */
MESH_EXTERN int mesh_dial_opts_set_trace_parent(mesh_dial_opts_t *o,
                                                const mesh_trace_ctx_t *ctx);

/** Dial a service by name from the config, or "host:port" / "[v6]:port".
 *  With an "xds" section, another name (or "xds:///NAME") is subscribed
 *  from the control plane on first use and the dial waits for it, bounded
 *  by the timeout (docs/config/xds.md; unknown there:
 *  MESH_ERR_UNKNOWN_SERVICE).  Blocking unless opts say otherwise.  The peer must present an SVID that
 *  verifies against the bundle of its trust domain and matches the peers
 *  allowed for the target.  Thread-safe.
 *  @param opts may be NULL (defaults).
 *  @param out  receives the connection; also set with WANT_READ/WANT_WRITE.
 *  On failure the connection is closed, *out is NULL and st says which
 *  peer failed which check.
 *  @return MESH_OK, MESH_ERR_WANT_READ/WRITE (non-blocking), MESH_ERR_TIMEOUT,
 *          MESH_ERR_CONNECT, MESH_ERR_CERT_*, MESH_ERR_PEER_ID,
 *          MESH_ERR_TRUST_DOMAIN, MESH_ERR_NO_PEER_CERT, MESH_ERR_SVID
 *          (peer breaks the X.509-SVID rules, or we have no SVID),
 *          MESH_ERR_PLAINTEXT_PEER, MESH_ERR_RESET, MESH_ERR_TLS (also: the
 *          peer refused our certificate; the message names its alert.  In
 *          TLS 1.3 a server checks our certificate after our handshake is
 *          done: its refusal then comes from the first mesh_conn_read, as
 *          MESH_ERR_TLS with the same words),
 *          MESH_ERR_INVALID_ARG (malformed target), MESH_ERR_UNKNOWN_SERVICE,
 *          MESH_ERR_NO_ENDPOINTS, MESH_ERR_CIRCUIT_OPEN, MESH_ERR_FD_LIMIT,
 *          MESH_ERR_IO, MESH_ERR_NOMEM. */
MESH_EXTERN int mesh_dial(mesh_t *m, const char *target,
                          const mesh_dial_opts_t *opts, mesh_conn_t **out,
                          mesh_status_t *st);

/** Listen on "host:port" / "[v6]:port" (NULL: config `inbound.listen`);
 *  port 0 picks one.  The mode (STRICT / PERMISSIVE) and allowed peers come
 *  from the `inbound` section.  Thread-safe.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_IO, MESH_ERR_FD_LIMIT. */
MESH_EXTERN int mesh_listen(mesh_t *m, const char *addr,
                            mesh_listener_t **out, mesh_status_t *st);
/** The bound port (useful after port 0); -1 for NULL. */
MESH_EXTERN int mesh_listener_port(const mesh_listener_t *l);
/** The listening socket, readable when a peer is pending; -1 for NULL. */
MESH_EXTERN int mesh_listener_fd(const mesh_listener_t *l);
/** Close the listening socket.  NULL is a no-op. */
MESH_EXTERN void mesh_listener_close(mesh_listener_t *l);

/** Accept one connection and complete its handshake (blocking).  Waits at
 *  most timeout_ms (-1: forever) for a connection to complete (or fail)
 *  its handshake; each handshake has `tls.handshake_timeout_ms`.  Many
 *  handshakes progress at once (up to 64 pending, 16 per peer address;
 *  the oldest gives way past either bound) and the first to finish is
 *  returned, so idle or slow peers delay nobody; handshakes still in
 *  progress when timeout_ms elapses stay pending for the next call.  The peer must present an SVID that
 *  verifies against the bundle of its trust domain and matches
 *  `inbound.peers`.  A peer that fails the handshake or the peer check is
 *  closed and its error returned with detail; call again for the next
 *  peer.  In PERMISSIVE mode a plaintext peer is accepted as a non-TLS
 *  connection (mesh_conn_is_tls() == 0).  The connection is in blocking
 *  mode.  One thread at a time per listener.
 *  @return MESH_OK, MESH_ERR_TIMEOUT, MESH_ERR_FD_LIMIT, MESH_ERR_PEER_CLOSED
 *          (closed before sending a byte), or a handshake error as
 *          mesh_dial (MESH_ERR_NO_PEER_CERT when a STRICT peer sends no
 *          certificate). */
MESH_EXTERN int mesh_accept(mesh_listener_t *l, int timeout_ms,
                            mesh_conn_t **out, mesh_status_t *st);

/** Non-blocking accept: takes one pending socket and returns a
 *  non-blocking connection whose handshake continues with
 *  mesh_conn_handshake() (poll mesh_conn_fd() as it asks).  Poll
 *  mesh_listener_fd() for readability to learn of pending sockets.
 *  @return MESH_OK (*out set, handshake pending), MESH_ERR_WANT_READ (no
 *          pending socket), MESH_ERR_FD_LIMIT, MESH_ERR_IO, MESH_ERR_SVID
 *          (no identity loaded). */
MESH_EXTERN int mesh_accept_start(mesh_listener_t *l, mesh_conn_t **out,
                                  mesh_status_t *st);

/** Advance a handshake.  Non-blocking connections take one step and
 *  return MESH_ERR_WANT_READ/WRITE to say what to poll for; the budget
 *  (dial timeout or tls.handshake_timeout_ms) still applies: a call after
 *  it elapsed fails with MESH_ERR_TIMEOUT.  Blocking connections finish.
 *  A failure is sticky: later calls return the same code.
 *  @return MESH_OK when done, MESH_ERR_WANT_READ/WRITE, or an error as
 *          mesh_dial / mesh_accept. */
MESH_EXTERN int mesh_conn_handshake(mesh_conn_t *c, mesh_status_t *st);

/** Read up to len bytes.  Blocking connections wait up to the read
 *  timeout.  Non-blocking: decrypted bytes may stay buffered inside the
 *  connection, so keep reading until MESH_ERR_WANT_READ before polling the
 *  fd again.
 *  @return bytes read (> 0), 0 at EOF (close_notify or FIN), or a negative
 *  code: MESH_ERR_WANT_READ/WRITE (non-blocking), MESH_ERR_TIMEOUT (not
 *  sticky), MESH_ERR_RESET, MESH_ERR_TLS, MESH_ERR_IO, MESH_ERR_CLOSED,
 *  MESH_ERR_INVALID_ARG (NULL or len 0). */
MESH_EXTERN long mesh_conn_read(mesh_conn_t *c, void *buf, size_t len);
/** Write up to len bytes (at most one TLS record's worth per call).
 *  Non-blocking: after MESH_ERR_WANT_*, call again with the same buffer.
 *  @return bytes written (> 0) or a negative code as mesh_conn_read
 *          (MESH_ERR_CLOSED after mesh_conn_shutdown). */
MESH_EXTERN long mesh_conn_write(mesh_conn_t *c, const void *buf, size_t len);
/** Write all of buf (blocking connections only).
 *  @return MESH_OK or a negative code; MESH_ERR_INVALID_ARG when
 *          non-blocking. */
MESH_EXTERN int mesh_conn_write_all(mesh_conn_t *c, const void *buf,
                                    size_t len);
/** I/O timeouts for blocking reads and writes, ms; -1 or 0 = none
 *  (defaults: tls.read_timeout_ms, tls.write_timeout_ms).
 *  @return MESH_OK or MESH_ERR_INVALID_ARG. */
MESH_EXTERN int mesh_conn_set_timeouts(mesh_conn_t *c, int read_ms,
                                       int write_ms);
/** Send close_notify (TLS) and shut down the write side; reading stays
 *  possible until the peer closes.  @return MESH_OK, MESH_ERR_WANT_WRITE
 *  (non-blocking: call again), MESH_ERR_CLOSED (failed connection), or an
 *  I/O error. */
MESH_EXTERN int mesh_conn_shutdown(mesh_conn_t *c);
/** Close and free (sends close_notify first if it can without blocking,
 *  also in answer to the peer's).  A client connection that ended without
 *  a close_notify from either side (reset, fatal alert, FIN alone or inside
 *  a record) drops the saved session of its target (see docs/config/tls.md;
 *  a read that returned that end already dropped it).  NULL is a no-op.
 *  Strings borrowed from c become invalid. */
MESH_EXTERN void mesh_conn_close(mesh_conn_t *c);

/** The socket, for poll() in non-blocking use; -1 for NULL.  Do not read,
 *  write or close it directly. */
MESH_EXTERN int mesh_conn_fd(const mesh_conn_t *c);
/** Peer SPIFFE ID once the handshake is done; "" for a plaintext
 *  (PERMISSIVE) peer or before. Borrowed. */
MESH_EXTERN const char *mesh_conn_peer_id(const mesh_conn_t *c);
/** Negotiated cipher suite name ("" for plaintext). Borrowed. */
MESH_EXTERN const char *mesh_conn_cipher(const mesh_conn_t *c);
/** TLS version name, e.g. "TLSv1.2" ("" for plaintext). Borrowed. */
MESH_EXTERN const char *mesh_conn_tls_version(const mesh_conn_t *c);
/** Negotiated ALPN protocol or "". Borrowed. */
MESH_EXTERN const char *mesh_conn_alpn(const mesh_conn_t *c);
/** 1 if the TLS session was resumed (ticket or saved session), else 0. */
MESH_EXTERN int mesh_conn_resumed(const mesh_conn_t *c);
/** 1 for TLS, 0 for a plaintext peer accepted in PERMISSIVE mode. */
MESH_EXTERN int mesh_conn_is_tls(const mesh_conn_t *c);
/** "ip:port" of the peer. Borrowed. */
MESH_EXTERN const char *mesh_conn_peer_addr(const mesh_conn_t *c);
/** The peer's certificate chain as PEM into buf (NUL-terminated), leaf
 *  first.  After a resumed handshake only the leaf is known.
 *  @return bytes written without the NUL, MESH_ERR_BUFFER,
 *          MESH_ERR_NOT_FOUND (plaintext or not open), MESH_ERR_INVALID_ARG */
MESH_EXTERN long mesh_conn_peer_chain_pem(const mesh_conn_t *c, char *buf,
                                          size_t len);
/** Detail of the last error on this connection (never NULL). Borrowed. */
MESH_EXTERN const char *mesh_conn_errmsg(const mesh_conn_t *c);

#ifdef __cplusplus
}
#endif
#endif /* MESH_CONN_H */
