/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: HTTP/2 sessions and streams on nghttp2.
 *
 *   h2_session.c  the session: nghttp2 set-up and callbacks, limits, drain
 *   h2_drive.c    the caller-driven I/O: flush, read, keepalive, wait
 *   h2_stream.c   streams: open, write (flow control), read, headers,
 *                 trailers, reset; server accept
 *   h2_io.c       transports: a mesh connection, a plain fd (h2c over TCP
 *                 or a unix socket), memory (tests, fuzzing)
 *   h2_serve.c    HTTP/2 requests through the HTTP layer's handler API
 *   h2_client.c   mesh_http_call over HTTP/2, sessions shared in the pool
 *
 * A session is one HTTP/2 connection, client or server, over a transport.
 * nghttp2 does the framing (bytes in, bytes out); this layer does the I/O,
 * the waiting and the limits.
 *
 * THREADING RULE (read this first)
 *   The CALLER drives a session; the worker loop never does.  Several
 *   threads may use different streams of one session at the same time, and
 *   one thread may block in mesh__h2_accept() while others use streams.
 *   Every function below takes the session's mutex; all I/O on the
 *   transport happens under it and is non-blocking.  A thread that must
 *   wait (for response headers, data, flow-control window, a new stream)
 *   becomes the session's "driver" if nobody else is: it polls the socket
 *   with the mutex released, then reads/writes under the mutex and wakes the
 *   others (condition variable).  Other waiters sleep on the condition
 *   variable until the driver makes progress or their deadline passes; one
 *   of them takes over when the driver returns.  So progress (PING acks,
 *   WINDOW_UPDATEs, SETTINGS acks) happens only while some thread is inside
 *   a call on the session; an idle pooled session is advanced with
 *   mesh__h2_session_poll() (the pool's liveness check does that).
 *   A stream handle belongs to one thread at a time (like a mesh_conn_t);
 *   a session handle may be shared by any number of threads.
 *   Callbacks: none.  Nothing here calls back into the application; the
 *   server side is accept-style.
 *
 * LIFETIME
 *   The session is reference counted: each stream holds a reference.
 *   mesh__h2_session_free() closes the transport (after a GOAWAY when it
 *   can send one without blocking) and drops the creator's reference;
 *   streams still held then fail with MESH_ERR_CLOSED and must still be
 *   freed by their owners.  Memory goes with the last reference.
 *
 * HEADERS
 *   A header list is an array of mesh__h2_hdr_t with NUL-terminated name
 *   and value.  Requests carry the pseudo-headers first (":method",
 *   ":scheme", ":path", ":authority"; nghttp2 checks them), responses
 *   ":status" first.  Names must be lower case (HTTP/2 rule).  Lists handed
 *   to the library are copied; lists returned by it are borrowed from the
 *   stream and stay valid until the stream is freed.
 *
 * ERRORS
 *   MESH_OK / negative mesh codes as everywhere.  On streams:
 *     MESH_ERR_RESET        the peer reset the stream (RST_STREAM; code in
 *                           mesh__h2_stream_error()), or the connection was
 *                           lost in the middle of it;
 *     MESH_ERR_PEER_CLOSED  the session ended (GOAWAY, EOF) before the
 *                           stream ended; mesh__h2_stream_refused() says
 *                           whether the peer never processed it (safe to
 *                           retry elsewhere: REFUSED_STREAM, or above the
 *                           GOAWAY's last stream id);
 *     MESH_ERR_TIMEOUT      the deadline passed (the stream stays usable);
 *     MESH_ERR_CLOSED       the session was freed, or the stream was reset
 *                           by us;
 *     MESH_ERR_HTTP_PARSE   protocol error (malformed frames or headers);
 *     MESH_ERR_HTTP_TOO_LARGE  a header list over the limit.
 *   Deadlines are absolute mesh__now_ms() values; 0 means "no deadline"
 *   (waits forever: use it only where the peer is trusted to answer).
 */
#ifndef MESH_HTTP_H2_H
#define MESH_HTTP_H2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mesh/call.h>
#include <mesh/http.h>

#include "core/core.h"

typedef struct mesh__h2_session mesh__h2_session_t;
typedef struct mesh__h2_stream mesh__h2_stream_t;

/* One header field.  Same layout as mesh__az_hdr_t (authz), so the HTTP
 * layer can hand its lists over without copying. */
typedef struct mesh__h2_hdr {
  const char *name;
  const char *value;
} mesh__h2_hdr_t;

/* HTTP/2 error codes (RFC 9113 section 7) used by callers. */
#define MESH__H2_NO_ERROR 0x0u
#define MESH__H2_PROTOCOL_ERROR 0x1u
#define MESH__H2_INTERNAL_ERROR 0x2u
#define MESH__H2_FLOW_CONTROL_ERROR 0x3u
#define MESH__H2_REFUSED_STREAM 0x7u
#define MESH__H2_CANCEL 0x8u
#define MESH__H2_ENHANCE_YOUR_CALM 0xbu

/* ---- settings and limits ---------------------------------------------------- */

/* Every number has a default (mesh__h2_settings_default); the hostile-peer
 * limits end the session with GOAWAY (ENHANCE_YOUR_CALM or PROTOCOL_ERROR)
 * when a peer exceeds them. */
typedef struct mesh__h2_settings {
  uint32_t max_concurrent_streams; /* we allow the peer to open: 100 */
  uint32_t initial_window;         /* per stream, bytes: 1 MiB */
  uint32_t conn_window;            /* connection, bytes: 16 MiB */
  uint32_t max_frame_size;         /* we accept: 16384 */
  uint32_t max_header_list;        /* decoded header list, bytes: 64 KiB */
  uint32_t header_table_size;      /* our HPACK decoder table: 4096 */
  int64_t keepalive_ms;            /* PING after this much silence while a
                                      thread drives; 0: off.  Default 0 */
  int64_t keepalive_timeout_ms;    /* no ack within: session dead.  20000 */
  bool keepalive_without_calls;    /* PING also while no stream is open
                                      (gRPC's permit_without_calls).
                                      Default true; the config's default
                                      is gRPC's: false */
  /* server: gRPC's ping abuse policy.  A PING sooner than
   * min_ping_interval_ms after the previous one (2 h while no stream is
   * open, unless permit_pings_without_calls) is a strike; more than
   * max_ping_strikes strikes end the session with GOAWAY
   * ENHANCE_YOUR_CALM "too_many_pings".  Sending HEADERS or DATA clears
   * the strikes.  0: off (the struct default; the config's is gRPC's
   * 300000 ms and 2 strikes). */
  int64_t min_ping_interval_ms;
  uint32_t max_ping_strikes;       /* 0: any number */
  bool permit_pings_without_calls;
  /* hostile peers */
  uint32_t max_resets_burst;       /* RST_STREAMs from the peer: token
                                      bucket of this size ... 1000 */
  uint32_t max_resets_per_s;       /* ... refilled at this rate: 100 */
  uint32_t max_continuations;      /* CONTINUATION frames per header
                                      block: 8 */
  uint32_t max_settings;           /* entries per SETTINGS frame: 32 */
  uint32_t max_outbound_ack;       /* queued PING/SETTINGS acks: 1000 */
  uint32_t max_control_per_s;      /* SETTINGS + PING frames per second
                                      before GOAWAY: 1000 */
  uint32_t max_empty_frames;       /* DATA frames without payload and
                                      without END_STREAM in a row: 100 */
} mesh__h2_settings_t;

/** Fill s with the defaults above.  Cannot fail. */
void mesh__h2_settings_default(mesh__h2_settings_t *s);

/* ---- transports (h2_io.c) ----------------------------------------------------- */

/* Non-blocking byte I/O.  read: bytes (> 0), 0 at EOF, MESH_ERR_WANT_READ /
 * MESH_ERR_WANT_WRITE, or another negative code.  write: bytes accepted
 * (> 0), MESH_ERR_WANT_*, or a negative code.  fd: what to poll (-1: no
 * fd, memory transport).  close: release the transport (may be NULL). */
typedef struct mesh__h2_io {
  long (*read)(void *ctx, void *buf, size_t n);
  long (*write)(void *ctx, const void *buf, size_t n);
  int (*fd)(void *ctx);
  void (*close)(void *ctx);
  void *ctx;
} mesh__h2_io_t;

/* ---- sessions (h2_session.c) ----------------------------------------------------- */

/** A session over an open mesh connection (TLS with ALPN "h2" or
 *  "istio-h2", or a plaintext peer a PERMISSIVE listener accepted and that
 *  starts with the h2c preface).  Takes c over (closed by the session, also
 *  on failure).  A client session sends the preface and SETTINGS at once.
 *  @param set  NULL: defaults.  Copied.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_NOMEM, or a write error
 *          of the preface. */
int mesh__h2_session_new_conn(mesh_t *m, mesh_conn_t *c, bool server,
                              const mesh__h2_settings_t *set,
                              mesh__h2_session_t **out, mesh_status_t *st);

/** As above over a connected socket (plaintext h2c "prior knowledge": TCP
 *  or unix).  Takes fd over (closed by the session). */
int mesh__h2_session_new_fd(mesh_t *m, int fd, bool server,
                            const mesh__h2_settings_t *set,
                            mesh__h2_session_t **out, mesh_status_t *st);

/** As above over any transport (tests, fuzzing: a memory transport).
 *  io is copied; io->close runs when the session ends. */
int mesh__h2_session_new_io(mesh_t *m, const mesh__h2_io_t *io, bool server,
                            const mesh__h2_settings_t *set,
                            mesh__h2_session_t **out, mesh_status_t *st);

/** Plaintext h2c client: connect to "host:port", "[v6]:port" or
 *  "unix:/path" (the xDS "insecure" and SPIFFE Workload API case) within
 *  timeout_ms (<= 0: 5000) and start a client session.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (bad target), MESH_ERR_CONNECT,
 *          MESH_ERR_TIMEOUT, MESH_ERR_FD_LIMIT, MESH_ERR_NOMEM. */
int mesh__h2_dial_plain(mesh_t *m, const char *target, int timeout_ms,
                        const mesh__h2_settings_t *set,
                        mesh__h2_session_t **out, mesh_status_t *st);

/** Bytes the caller already read from the transport before the session
 *  took it over (the HTTP server sniffing the h2c preface), processed as
 *  if read from it; also the fuzz harness's entry (memory transport).
 *  @return MESH_OK, or the error that killed the session (a GOAWAY is
 *          queued for a protocol error). */
int mesh__h2_session_input(mesh__h2_session_t *s, const void *buf, size_t n,
                           mesh_status_t *st);

/** Close the transport (a GOAWAY NO_ERROR first if it can be written
 *  without blocking), fail the streams still open with MESH_ERR_CLOSED,
 *  and drop the creator's reference.  NULL is a no-op.  Any thread. */
void mesh__h2_session_free(mesh__h2_session_t *s);

/** Graceful drain (server or client): send GOAWAY NO_ERROR announcing the
 *  last stream we will process; no new peer streams are accepted after it
 *  (mesh__h2_accept() then returns MESH_ERR_PEER_CLOSED once the streams it
 *  handed out are done); the streams in flight finish.  Server: the
 *  two-step form (a GOAWAY with last id 2^31-1, then the final one after a
 *  PING round trip, as RFC 9113 section 6.8 suggests) so requests already on
 *  the wire are not lost.  @return MESH_OK or an I/O error. */
int mesh__h2_session_drain(mesh__h2_session_t *s);

/** Client: how many more streams may be opened now: the peer's
 *  MAX_CONCURRENT_STREAMS minus the streams open; 0 when full, going away
 *  (GOAWAY sent or received) or dead.  The pool uses it to pick a session
 *  or dial another. */
uint32_t mesh__h2_session_available(mesh__h2_session_t *s);

/** False once the session received or sent GOAWAY, hit a protocol error,
 *  or lost its transport: never open streams on it again, re-dial. */
bool mesh__h2_session_alive(mesh__h2_session_t *s);

/** Advance the session without waiting for anything in particular: read
 *  what is there (answering PINGs and SETTINGS, noticing GOAWAY/EOF),
 *  write what is queued, send a keepalive PING when due.  Waits at most
 *  wait_ms for input (0: do not wait).  Returns at once if another thread
 *  is driving.
 *  @return MESH_OK (still alive), or why the session is dead. */
int mesh__h2_session_poll(mesh__h2_session_t *s, int wait_ms);

/** Send a PING and wait for its ack: the round trip in ms (>= 0), or
 *  MESH_ERR_TIMEOUT / MESH_ERR_PEER_CLOSED. */
long mesh__h2_session_ping(mesh__h2_session_t *s, int64_t deadline_ms);

/** What ended the session: the GOAWAY error code received (or sent), and
 *  a message in st.  @return MESH_OK while alive, else the error code the
 *  streams saw. */
int mesh__h2_session_status(mesh__h2_session_t *s, uint32_t *goaway_code,
                            mesh_status_t *st);

/** The transport's peer SPIFFE ID ("" for plaintext).  Borrowed, valid
 *  while the session lives. */
const char *mesh__h2_session_peer_id(const mesh__h2_session_t *s);

/** True when the transport is TLS (":scheme" https). */
bool mesh__h2_session_tls(const mesh__h2_session_t *s);

/** The transport's fd (for getpeername etc.), -1 for memory. */
int mesh__h2_session_fd(const mesh__h2_session_t *s);

/* ---- client streams (h2_stream.c) ------------------------------------------- */

/** Open a stream: send HEADERS with hdrs (pseudo-headers first).  With
 *  end_stream the request has no body (GET); else send it with
 *  mesh__h2_stream_write().  Does not wait for the peer.
 *  @return MESH_OK, MESH_ERR_CIRCUIT_OPEN (no stream available: the peer's
 *          MAX_CONCURRENT_STREAMS reached; use another session),
 *          MESH_ERR_PEER_CLOSED (the session is going away or dead),
 *          MESH_ERR_INVALID_ARG (bad header list), MESH_ERR_NOMEM. */
int mesh__h2_stream_open(mesh__h2_session_t *s, const mesh__h2_hdr_t *hdrs,
                         size_t n, bool end_stream, mesh__h2_stream_t **out,
                         mesh_status_t *st);

/** Queue len bytes of DATA (copied) and, with end_stream, end our side.
 *  Blocks while more than the stream's send buffer (64 KiB) is queued and
 *  the peer's flow-control window is closed.  len 0 with end_stream sends
 *  an empty DATA frame with END_STREAM.
 *  @return MESH_OK, MESH_ERR_TIMEOUT, MESH_ERR_RESET, MESH_ERR_PEER_CLOSED,
 *          MESH_ERR_CLOSED (already ended or reset), MESH_ERR_NOMEM. */
int mesh__h2_stream_write(mesh__h2_stream_t *s, const void *buf, size_t len,
                          bool end_stream, int64_t deadline_ms,
                          mesh_status_t *st);

/** Wait for the peer's header block: client: the final response headers
 *  (":status" first; 1xx skipped); server: the request's (available at
 *  once after accept).  *hdrs is borrowed from the stream.
 *  @return MESH_OK or a stream error (see ERRORS). */
int mesh__h2_stream_headers(mesh__h2_stream_t *s, int64_t deadline_ms,
                            const mesh__h2_hdr_t **hdrs, size_t *n,
                            mesh_status_t *st);

/** Read DATA: up to len bytes.  Flow control is given back to the peer as
 *  the application reads (so a slow reader holds the peer back instead of
 *  buffering without bound).
 *  @return bytes (> 0), 0 at the peer's end of stream, or a stream error. */
long mesh__h2_stream_read(mesh__h2_stream_t *s, void *buf, size_t len,
                          int64_t deadline_ms, mesh_status_t *st);

/** Wait for the peer's end of stream and return its trailers (*n = 0 when
 *  it sent none).  DATA still unread is discarded.  Borrowed.
 *  @return MESH_OK or a stream error. */
int mesh__h2_stream_trailers(mesh__h2_stream_t *s, int64_t deadline_ms,
                             const mesh__h2_hdr_t **hdrs, size_t *n,
                             mesh_status_t *st);

/** Send RST_STREAM with code (e.g. MESH__H2_CANCEL) unless the stream has
 *  already ended both ways.  Later calls on it return MESH_ERR_CLOSED. */
void mesh__h2_stream_reset(mesh__h2_stream_t *s, uint32_t code);

/** The RST_STREAM code the peer sent (0 when none). */
uint32_t mesh__h2_stream_error(const mesh__h2_stream_t *s);

/** True when the peer never processed the stream (REFUSED_STREAM, or the
 *  stream is above a GOAWAY's last stream id): safe to retry. */
bool mesh__h2_stream_refused(const mesh__h2_stream_t *s);

/** The stream id (odd: client-initiated). */
int32_t mesh__h2_stream_id(const mesh__h2_stream_t *s);

/** The session a stream belongs to (borrowed). */
mesh__h2_session_t *mesh__h2_stream_session(const mesh__h2_stream_t *s);

/** Release the stream and drop its session reference.  If our side has
 *  not ended (no END_STREAM / trailers queued) the stream is reset with
 *  CANCEL (the way to cancel a call).  If it has, the queued DATA and
 *  trailers still go out; when the peer has not ended its side then,
 *  RST_STREAM NO_ERROR follows our END_STREAM.  NULL is a no-op. */
void mesh__h2_stream_free(mesh__h2_stream_t *s);

/* ---- server side (h2_stream.c) ---------------------------------------------- */

/** Wait for the next stream the peer opened whose header block is
 *  complete; its request headers are then available at once with
 *  mesh__h2_stream_headers(), its body with mesh__h2_stream_read().  Hand
 *  the stream to another thread if you like; keep calling accept to drive
 *  the session when no stream is in use.
 *  @return MESH_OK (*out set), MESH_ERR_TIMEOUT, MESH_ERR_PEER_CLOSED
 *          (the peer closed / GOAWAY and no stream will come), or the error
 *          that killed the session (MESH_ERR_HTTP_PARSE for a protocol
 *          violation: a GOAWAY was sent). */
int mesh__h2_accept(mesh__h2_session_t *s, int64_t deadline_ms,
                    mesh__h2_stream_t **out, mesh_status_t *st);

/** Send the response header block (":status" first).  With end_stream
 *  there is no body and no trailers.
 *  @return MESH_OK, MESH_ERR_INVALID_ARG (bad list, or sent twice),
 *          MESH_ERR_RESET, MESH_ERR_PEER_CLOSED, MESH_ERR_CLOSED. */
int mesh__h2_stream_respond(mesh__h2_stream_t *s, const mesh__h2_hdr_t *hdrs,
                            size_t n, bool end_stream, mesh_status_t *st);

/** End our side with a trailer block (gRPC's grpc-status): after the data
 *  queued so far.  Either side may send trailers; a client usually
 *  does not.  Blocks like mesh__h2_stream_write() until queued data fits.
 *  @return as mesh__h2_stream_write(). */
int mesh__h2_stream_send_trailers(mesh__h2_stream_t *s,
                                  const mesh__h2_hdr_t *hdrs, size_t n,
                                  int64_t deadline_ms, mesh_status_t *st);

/* ---- server streams served concurrently (h2_workers.c) --------------------- */

/* The thread that owns a server session accepts; each accepted stream runs
 * on a thread of its own (threads are kept 10 s for reuse, process-wide).  At most `limit` handlers run per
 * session (pass the MAX_CONCURRENT_STREAMS we advertise) and at most
 * MESH__H2_WORKERS_MAX in the process; a stream beyond waits in the
 * session's accept queue while the accepting thread keeps driving the
 * session.  Used by the gRPC server and by mesh_http_serve() over h2. */
#define MESH__H2_WORKERS_MAX 512

typedef struct mesh__h2_workers {
  mesh__h2_session_t *s; /* borrowed: free it after mesh__h2_workers_wait */
  uint32_t limit;
  _Atomic int running;   /* handlers started, not yet returned */
  pthread_mutex_t mu;
  pthread_cond_t cv;
} mesh__h2_workers_t;

/** Runs on the stream's thread; x is freed after it returns. */
typedef void (*mesh__h2_worker_fn)(void *arg, mesh__h2_stream_t *x);

/** Cannot fail.  limit 0 counts as 1. */
void mesh__h2_workers_init(mesh__h2_workers_t *w, mesh__h2_session_t *s,
                           uint32_t limit);
/** After mesh__h2_workers_wait(). */
void mesh__h2_workers_destroy(mesh__h2_workers_t *w);
/** mesh__h2_accept() once a handler may start: waits for a free slot
 *  first, driving the session meanwhile.  Call from one thread only.
 *  @return as mesh__h2_accept(). */
int mesh__h2_workers_accept(mesh__h2_workers_t *w, int64_t deadline_ms,
                            mesh__h2_stream_t **out, mesh_status_t *st);
/** Run fn(arg, x) on a thread (an idle one or a new one), which frees x
 *  afterwards.  Without a
 *  thread x is reset (REFUSED_STREAM: the peer may retry) and freed.
 *  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__h2_workers_spawn(mesh__h2_workers_t *w, mesh__h2_stream_t *x,
                           mesh__h2_worker_fn fn, void *arg);
/** Wait until every handler started through w has returned. */
void mesh__h2_workers_wait(mesh__h2_workers_t *w);
/** Handlers running: of w; in the process (tests, admin). */
int mesh__h2_workers_running(mesh__h2_workers_t *w);
int mesh__h2_workers_total(void);

/* ---- the HTTP layer over HTTP/2 (h2_serve.c) ------------------------------- */

/** Does buf start (as far as it goes) with the client connection preface
 *  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"?  Used to tell h2c prior knowledge
 *  from HTTP/1.1 on a plaintext connection. */
bool mesh__h2_is_preface(const void *buf, size_t n);

struct mesh__http_peer;
/** Serve HTTP/2 requests on a session through the HTTP layer: each stream
 *  becomes a mesh_http_request_t (authorization, tracing, metrics as for
 *  HTTP/1.1) handed to handler; its response goes back on the stream.
 *  Streams run one after another on the calling thread.  Returns when the
 *  peer is done (GOAWAY/EOF), after http.idle_timeout_ms without a new
 *  stream (then drains), or when the session failed.  Frees the session.
 *  @return MESH_OK (peer done) or the session's error. */
int mesh__h2_serve_http(mesh_t *m, mesh__h2_session_t *s,
                        const struct mesh__http_peer *peer,
                        mesh_http_handler_fn handler, void *user,
                        mesh_status_t *st);

/** mesh_http_serve()'s protocol choice: ALPN "h2"/"istio-h2", or a
 *  plaintext peer whose first bytes are the h2c preface, is served with
 *  mesh__h2_serve_http(); anything else by the HTTP/1.1 loop (sniffed bytes
 *  replayed).  c stays the caller's (not closed). */
int mesh__h2_http_serve_conn(mesh_t *m, mesh_conn_t *c,
                             const struct mesh__http_peer *peer,
                             mesh_http_handler_fn handler, void *user,
                             mesh_status_t *st);

/* ---- mesh_http_call over HTTP/2 (h2_client.c) ------------------------------ */

struct mesh__az_hdr;
struct mesh__http_limits;
/** One request as one stream of s (client): headers from req (names
 *  lower-cased, connection-specific fields dropped) and extra (trace
 *  context, replacing the caller's fields of the same name), the body, the
 *  whole response (body bounded by lim->max_body).
 *  @return MESH_OK with *out, or a stream error (see ERRORS). */
int mesh__h2_http_exchange(mesh__h2_session_t *s, const char *host, bool tls,
                           const mesh_http_request_t *req,
                           const struct mesh__az_hdr *extra, size_t nextra,
                           const struct mesh__http_limits *lim,
                           int64_t deadline, mesh_http_response_t **out,
                           mesh_status_t *st);

/** mesh_http_call's try over HTTP/2, when the call layer gave the try a
 *  shared session or a connection that negotiated "h2" (which then
 *  becomes a session shared through the host's pool).
 *  @return MESH_ERR_NOT_FOUND when the try is HTTP/1.1 (not ours), else a
 *          mesh_call_outcome_t (with *status and *out) or an error. */
int mesh__h2_http_try(mesh_call_t *call, mesh_conn_t *conn, const char *host,
                      const mesh_http_request_t *req,
                      const struct mesh__az_hdr *extra, size_t nextra,
                      const struct mesh__http_limits *lim, int64_t deadline,
                      mesh_http_response_t **out, int *status,
                      mesh_status_t *st);

/** The HTTP/2 session of a call-layer try (options with
 *  mesh__call_opts_set_mux): the shared session the pool handed the try,
 *  or a new one over conn -- a fresh connection that negotiated "h2" /
 *  "istio-h2" (or, with prior_knowledge, any plaintext connection: h2c) --
 *  which the host's pool then shares with later calls once the peer's
 *  SETTINGS arrived (waited for until deadline, at most 2 s).  The session
 *  stays the call layer's: do not free it (mesh__call_finish() hands it
 *  back).  set: settings of a new session (NULL: the context's http.http2).
 *  @return MESH_OK (*out borrowed), MESH_ERR_NOT_FOUND (conn is not
 *          HTTP/2), or the error of starting the session (conn closed). */
int mesh__h2_call_session(mesh_call_t *call, mesh_conn_t *conn,
                          bool prior_knowledge,
                          const mesh__h2_settings_t *set, int64_t deadline,
                          mesh__h2_session_t **out, mesh_status_t *st);

#endif /* MESH_HTTP_H2_H */
