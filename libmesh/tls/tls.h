/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: mutual TLS — settings, per-generation TLS
 * configurations, the client session cache, and the connection object.
 * The TLS library sits behind tls/backend.h (mbedTLS or OpenSSL).
 *
 * Shape:
 *   - struct mesh__tls (m->tls) holds the "tls" and "inbound" settings, the
 *     backend's state, the current generation and the client session cache.
 *   - A generation (mesh__tlsgen_t) is built from one identity snapshot
 *     (mesh__creds_t): the backend's client and server contexts and the
 *     server's session-ticket keys.  It is
 *     refcounted: a rotation publishes a new generation for new handshakes
 *     while connections in flight keep theirs.
 *   - A connection (struct mesh_conn) is a socket plus an optional TLS
 *     context, driven by one state machine for blocking and non-blocking use.
 */
#ifndef MESH_TLS_TLS_H
#define MESH_TLS_TLS_H

#include <sys/socket.h>

#include "core/core.h"
#include "identity/identity.h"
#include "telemetry/telemetry.h"
#include "tls/backend.h"

/* ---- settings ("tls" and "inbound" sections, tls/part.c) --------------- */

#define MESH__TLS_V12 12
#define MESH__TLS_V13 13

#define MESH__INBOUND_STRICT 0
#define MESH__INBOUND_PERMISSIVE 1

/* Upper bound of ALPN protocols in a list (config or dial option). */
#define MESH__ALPN_MAX 8

/* A match_subject_alt_names entry (gRFC A29), against the URI SAN. */
#define MESH__SAN_EXACT 0
#define MESH__SAN_PREFIX 1
#define MESH__SAN_SUFFIX 2
#define MESH__SAN_CONTAINS 3
typedef struct mesh__tls_san {
  int kind;                      /* MESH__SAN_* */
  bool ignore_case;
  char *value;
} mesh__tls_san_t;

typedef struct mesh__tls_settings {
  int min_version;               /* MESH__TLS_V12 or _V13 */
  int max_version;               /* default: the backend's highest */
  char *alpn[MESH__ALPN_MAX + 1]; /* NULL-terminated, owned (a backend
                                     may keep a pointer to this array) */
  size_t nalpn;
  bool resumption;
  int ticket_lifetime_s;
  int session_cache_size;
  int connect_timeout_ms;
  int handshake_timeout_ms;
  int read_timeout_ms;           /* -1: none */
  int write_timeout_ms;          /* -1: none */
} mesh__tls_settings_t;

typedef struct mesh__inbound {
  char *listen;                  /* "host:port" */
  int mode;                      /* MESH__INBOUND_* */
  char **peers;                  /* patterns, owned */
  size_t npeers;
} mesh__inbound_t;

/* ---- client session cache (tls/sesscache.c) ----------------------------- */

typedef struct mesh__sess_entry {
  char key[64];                  /* normalised "ip:port" of the target */
  uint64_t generation;           /* creds generation it was made with */
  int64_t saved_ms;              /* monotonic */
  uint64_t id;                   /* which session (mesh__sesscache_put) */
  uint64_t lru;
  bool used;
  mesh__be_sess_t *sess;         /* backend's saved session */
} mesh__sess_entry_t;

typedef struct mesh__sesscache {
  bool ready;
  pthread_mutex_t mu;
  mesh__sess_entry_t *v;
  size_t n;
  uint64_t tick;
  uint64_t ids;                  /* last session id given */
  int64_t max_age_ms;
} mesh__sesscache_t;

int mesh__sesscache_init(mesh__sesscache_t *sc, size_t n, int64_t max_age_ms);
void mesh__sesscache_fini(mesh__sesscache_t *sc);
/** Load a saved session for c's target and generation into c; its id goes
 *  to c->offered_id.
 *  @return true if one was set (the handshake will try to resume it). */
bool mesh__sesscache_load(mesh__sesscache_t *sc, mesh_conn_t *c);
/** Save the session of a finished client handshake (backends that learn
 *  of sessions later, as TLS 1.3 tickets, call _put instead). */
void mesh__sesscache_save(mesh__sesscache_t *sc, mesh_conn_t *c);
/** Keep s (ownership taken) as the session of c's target and generation;
 *  its id goes to c->sess_id: a new one, except after a TLS 1.2
 *  resumption (the same session again: the id c resumed). */
void mesh__sesscache_put(mesh__sesscache_t *sc, mesh_conn_t *c,
                         mesh__be_sess_t *s);
/** Forget key's session if it is still session id (0: nothing), not a
 *  newer one another connection saved meanwhile.  After a failed
 *  resumption (id: c->offered_id) or an unclean end (c->sess_id). */
void mesh__sesscache_drop(mesh__sesscache_t *sc, const char *key,
                          uint64_t id);

/* ---- generations (tls/tlsconf.c) ----------------------------------------- */

typedef struct mesh__tlsgen {
  _Atomic uint32_t refs;
  mesh__creds_t *creds;          /* reference held */
  uint64_t generation;
  void *be;                      /* backend's contexts (mesh__tls_be) */
} mesh__tlsgen_t;

/* ---- metrics (tls/observe.c) ----------------------------------------------
 * Series registered at init or, for failure reasons and services, on first
 * use; handles cached here so that the hot path only does atomic adds. */

/* Failure reasons are indexed by -code; codes beyond share slot 0. */
#define MESH__TLS_FAIL_SLOTS 64

typedef struct mesh__tls_obs {
  mesh__metric_t *handshakes[2][2];   /* [server][resumed] */
  mesh__metric_t *hs_seconds[2];      /* [server] */
  _Atomic(mesh__metric_t *) active_inbound; /* service="inbound" */
  _Atomic(mesh__metric_t *) active_direct;  /* service="" (host:port) */
  _Atomic(mesh__metric_t *) fail[2][MESH__TLS_FAIL_SLOTS];
  _Atomic(mesh__metric_t *) *active_svc; /* per configured service, by
                                            index in m->services->v */
  size_t nsvc;
} mesh__tls_obs_t;

/* Connection-level authorization of inbound peers, plugged in at init by
 * the part above (authz/ sets it; tls/ never calls authz/ itself).  Same
 * contract as mesh__authz_check_conn: MESH_OK or MESH_ERR_DENIED. */
typedef int (*mesh__tls_conn_authz_fn)(mesh_t *m, const char *peer_id,
                                       const struct sockaddr *peer,
                                       int local_port, mesh_status_t *st);

/* Per-connection inbound transport, chosen right after accept() by a
 * part above (xds/server.c for an xDS-enabled server's filter chains,
 * gRFC A36); tls/ never calls it by name.  local/peer: the socket's two
 * ends.  Returns a MESH__INPICK_*; on CLOSE, why[cap] says why.  *gen:
 * credentials of the chain's own (one reference given to the
 * connection), or left NULL: the identity's. */
#define MESH__INPICK_CONFIG 0  /* the inbound section's mode */
#define MESH__INPICK_MTLS 1    /* mTLS, a client certificate required */
#define MESH__INPICK_TLS 2     /* TLS, a client certificate optional (one
                                  sent must verify) */
#define MESH__INPICK_PLAIN 3   /* plaintext allowed (PERMISSIVE: a TLS
                                  ClientHello still gets mTLS) */
#define MESH__INPICK_CLOSE 4   /* no filter chain: close, send nothing */
struct mesh__tlsgen;
typedef int (*mesh__tls_inpick_fn)(mesh_t *m, const struct sockaddr *local,
                                   const struct sockaddr *peer,
                                   struct mesh__tlsgen **gen, char *why,
                                   size_t cap);
/* ---- client credentials per service (tls/svccreds.c) --------------------
 * A part above (xds) gives a service its own generation (reference
 * taken; NULL: the identity's) and SAN matchers (copied); dials with
 * opts->service equal to it use them.  Replaces the previous entry; tag
 * (copied) lets the setter skip a reload when nothing changed.
 * @return MESH_OK, MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG. */
int mesh__tls_svc_creds_set(mesh_t *m, const char *service, const char *tag,
                            struct mesh__tlsgen *gen,
                            const mesh__tls_san_t *san, size_t nsan);
/** Is service's entry the one set with tag (the setter's summary)? */
bool mesh__tls_svc_creds_tagged(mesh_t *m, const char *service,
                                const char *tag);
/** The entry of service: a generation reference (or NULL) and a copy of
 *  the matchers (free with mesh__tls_san_free).  MESH_OK or NOMEM. */
int mesh__tls_svc_creds_get(mesh_t *m, const char *service,
                            struct mesh__tlsgen **gen, mesh__tls_san_t **san,
                            size_t *nsan);
void mesh__tls_san_free(mesh__tls_san_t *v, size_t n);
/** New credentials for entries whose files rotated: fn is called (without
 *  the table's lock: it may read files) with each entry's service and
 *  tag, and returns a new generation (reference handed over) or NULL to
 *  leave the entry alone.  An entry is only updated if its tag is still
 *  the same afterwards (a concurrent set wins).  Dials in flight keep the
 *  generation they took.  @return how many entries got a new one. */
typedef struct mesh__tlsgen *(*mesh__tls_svc_regen_fn)(mesh_t *m,
                                                       const char *service,
                                                       const char *tag,
                                                       void *user);
size_t mesh__tls_svc_creds_regen(mesh_t *m, mesh__tls_svc_regen_fn fn,
                                 void *user);
/** Does id pass one of the n matchers (n == 0: yes)? */
bool mesh__tls_san_match(const mesh__tls_san_t *v, size_t n, const char *id);
struct mesh__tls;
void mesh__tls_svcc_fini(struct mesh__tls *t);

/** Plug in the inbound choice (NULL removes it); at init, before accepts. */
void mesh__tls_set_inpick(mesh_t *m, mesh__tls_inpick_fn fn);


struct mesh__tls_svcc;

typedef struct mesh__tls {
  mesh__tls_settings_t set;
  /* client credentials per service (tls/svccreds.c) */
  pthread_mutex_t svcc_mu;
  struct mesh__tls_svcc *svcc;
  size_t nsvcc;
  _Atomic bool has_svcc;
  mesh__tls_conn_authz_fn conn_authz; /* NULL: no authorization part */
  mesh__tls_inpick_fn inpick;    /* NULL: every accept uses in.mode */
  int keylog_fd;                 /* SSLKEYLOGFILE, -1: off */
  pthread_mutex_t keylog_mu;
  mesh__inbound_t in;
  void *be;                      /* backend's process state */
  pthread_mutex_t mu;            /* guards gen */
  mesh__tlsgen_t *gen;
  mesh__sesscache_t cache;
  mesh__tls_obs_t obs;
} mesh__tls_t;

/** SSLKEYLOGFILE (NSS key log format, for Wireshark): append one line
 *  ("CLIENT_RANDOM <hex> <hex>", or a TLS 1.3 secret label); backends call
 *  it from their key export hooks when t->keylog_fd >= 0. */
void mesh__tls_keylog(mesh__tls_t *t, const char *label,
                      const unsigned char *client_random, size_t crlen,
                      const unsigned char *secret, size_t slen);
/** The same for a ready-made line (OpenSSL formats its own). */
void mesh__tls_keylog_line(mesh__tls_t *t, const char *line);

/** The generation for the current credentials, with a reference taken;
 *  builds a new one when the identity's generation changed.
 *  @return MESH_OK, MESH_ERR_SVID (no identity loaded), MESH_ERR_TLS,
 *          MESH_ERR_NOMEM, MESH_ERR_INVALID_ARG (no tls part). */
int mesh__tlsgen_acquire(mesh_t *m, mesh__tlsgen_t **out, mesh_status_t *st);
void mesh__tlsgen_release(mesh__tlsgen_t *g);
/** A generation of its own for creds that are not the identity's (the
 *  xDS control-plane connection's A65 files): not published, not cached;
 *  the caller's reference on creds is taken (released on failure too).
 *  Give creds a generation no identity snapshot has (the session cache is
 *  keyed by it).  @return as gen_build: MESH_OK, MESH_ERR_TLS,
 *  MESH_ERR_NOMEM, MESH_ERR_INTERNAL (no tls part). */
int mesh__tlsgen_new(mesh_t *m, mesh__creds_t *creds, mesh__tlsgen_t **out,
                     mesh_status_t *st);

/* ---- connection (tls/conn.c, handshake.c, io.c) ------------------------- */

typedef enum mesh__conn_state {
  MESH__CONN_CONNECTING,  /* TCP connect in progress */
  MESH__CONN_SNIFF,       /* server, PERMISSIVE: waiting for the 1st byte */
  MESH__CONN_HANDSHAKE,   /* TLS handshake in progress */
  MESH__CONN_OPEN,
  MESH__CONN_FAILED,      /* sticky error in last_err */
} mesh__conn_state_t;

#define MESH__ADDR_MAX 64  /* "[v6addr]:port" */

struct mesh_conn {
  mesh_t *m;
  int fd;
  mesh__conn_state_t state;
  bool server;
  bool tls;               /* false: plaintext peer (PERMISSIVE) */
  bool nonblocking;
  bool own_alpn;          /* alpn_list overrides the generation's */
  bool truncated;         /* read: FIN inside a TLS record */
  int rx_alert;           /* fatal alert received after the handshake (in
                             TLS 1.3 a refused client certificate is
                             reported at the first read), 0 none */
  bool verified;          /* our peer check ran (full handshake) */
  bool cert_optional;     /* server: a client certificate is optional
                             (MESH__INPICK_TLS) */
  bool resumed;
  uint64_t offered_id;    /* client: id of the cached session it offered,
                             0 none */
  uint64_t sess_id;       /* client: id of the cached session it resumed or
                             last saved, 0 none (an unclean end drops that
                             one only) */
  bool got_ticket;        /* client: a session was saved after the
                             handshake (TLS 1.3 ticket) */
  bool shut;              /* close_notify / FIN sent */
  bool eof;               /* peer closed its side */
  bool rx_close_notify;   /* the peer's close_notify arrived (backend read
                             sets it; eof without it: FIN alone) */
  bool opened;            /* the handshake completed (state was OPEN) */
  bool end_unclean;       /* judged an unclean end (conn.c judge_end):
                             its session is already dropped */
  uint64_t rx_bytes;      /* application bytes read (mesh_conn_read): the
                             call layer's "nothing of the response came" */
  int last_err;           /* sticky code once FAILED */
  int verify_code;        /* result of our peer check in the callback */
  int sys_errno;          /* last socket errno seen by the BIO */
  int read_ms, write_ms;  /* blocking I/O timeouts, -1 none */
  /* Blocking mode after the handshake (tls/io.c): the socket itself
   * blocks, so a read waiting for a reply is one recv, not poll + recv.
   * Every other socket call passes MSG_DONTWAIT (mesh__conn_io_flags). */
  bool fd_blocking;       /* O_NONBLOCK cleared */
  bool io_block;          /* inside a blocking read/write: calls may wait */
  int64_t io_deadline;    /* of that read/write, monotonic ms; 0 none */
  int64_t so_rcv_ms, so_snd_ms; /* SO_RCVTIMEO/SO_SNDTIMEO set, 0 none */
  int64_t deadline_ms;    /* end of the current phase, monotonic; 0 none */
  int64_t phase_ms;       /* length of the current phase (for messages) */
  int64_t hs_timeout_ms;  /* > 0: handshake phase length once connected;
                             0: the handshake shares the connect budget */
  mesh__tlsgen_t *gen;    /* reference held while the conn lives */
  void *be;               /* backend's TLS state, NULL before setup */
  char *alpn_buf;         /* storage for alpn_list strings */
  const char *alpn_list[MESH__ALPN_MAX + 1];
  mesh__tls_san_t *san;   /* client: SAN matchers of the service, owned */
  size_t nsan;
  char **peers;           /* client: expected patterns, owned */
  size_t npeers;
  const char *const *peers_ref; /* server: borrowed from m->tls->in */
  size_t npeers_ref;
  unsigned char first[8]; /* first bytes from the peer: TLS or not? */
  size_t nfirst;
  char target[MESH__ADDR_MAX]; /* session-cache key ("ip:port") */
  char peer_addr[MESH__ADDR_MAX];
  char *peer_id;          /* verified SPIFFE ID, heap (IDs may reach 2 KiB,
                             an idle pooled conn should not); NULL before */
  char errmsg[sizeof(((mesh_status_t *)0)->message)];
  /* server: what connection-level authorization looks at */
  struct sockaddr_storage peer_sa;
  int local_port;
  /* observability (tls/observe.c) */
  mesh__span_t span;      /* "mesh.dial" (client) / "mesh.accept" (server) */
  mesh__span_t hs_span;   /* "mesh.handshake", child of span */
  char *tracestate;       /* owned copy the spans borrow, or NULL */
  int64_t hs_start_ns;    /* TLS handshake start (monotonic), 0 before */
  mesh__metric_t *active; /* mesh_connections_active series to count in */
  bool obs_done;          /* outcome counted, spans of the setup ended */
  bool obs_counted;       /* +1 on `active` (undone at close) */
};

/** Allocate a connection around fd (taken over: closed by conn_close).
 *  @return NULL when out of memory (fd is closed then). */
mesh_conn_t *mesh__conn_new(mesh_t *m, int fd, bool server, bool nonblocking);
/** Set up the TLS context of c from its generation (and own ALPN).
 *  @return MESH_OK, MESH_ERR_NOMEM, MESH_ERR_TLS. */
int mesh__conn_tls_setup(mesh_conn_t *c, mesh_status_t *st);
/** Record a failure on c (sticky), copy it into st.  Returns code. */
int mesh__conn_fail(mesh_conn_t *c, mesh_status_t *st, int code,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** Give up a connection still in setup (logged and counted once, as any
 *  setup failure); no-op once open or failed. */
void mesh__conn_abort(mesh_conn_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** One non-blocking step of connect/sniff/handshake.
 *  @return MESH_OK (open), MESH_ERR_WANT_READ/WRITE, or an error. */
int mesh__conn_step(mesh_conn_t *c, mesh_status_t *st);
/** Drive the handshake to the end, waiting with poll until the deadline. */
int mesh__conn_finish(mesh_conn_t *c, mesh_status_t *st);
/** A read of c (io.c) returned its end (0) or failed: judge now how the
 *  connection ended, as close would (an unclean end of a client's
 *  connection forgets its session at once).  No-op while c is still up. */
void mesh__conn_read_end(mesh_conn_t *c);
/** Is a pooled idle connection still usable (no EOF/RST/unread bytes)? */
bool mesh__conn_idle_ok(mesh_conn_t *c);
/** Record buffers of an open TLS connection (io.c): keep them between
 *  requests (a pooled connection in use) or give them back (idle for a
 *  while).  No-op for plaintext and for backends with one policy. */
void mesh__conn_buffers(mesh_conn_t *c, bool keep);
/** Application bytes mesh_conn_read() returned on c so far (0 for NULL):
 *  unchanged across a try means nothing of a response arrived. */
uint64_t mesh__conn_rx_bytes(const mesh_conn_t *c);
/** After the handshake of a blocking-mode TLS connection: clear
 *  O_NONBLOCK (tls/io.c).  Best effort: on failure the socket stays
 *  non-blocking and I/O polls as before. */
void mesh__conn_block(mesh_conn_t *c);
/** Flags for a backend BIO's recv (rd) or send: MSG_DONTWAIT unless a
 *  blocking read/write is in progress on a blocking socket; then the
 *  socket's timeout is first set to the time left of that operation
 *  (never more; quantized so that a slowly shrinking deadline costs no
 *  setsockopt).  @return the flags (MSG_DONTWAIT when the deadline has
 *  passed or the timeout cannot be set: the BIO reports want-read/write
 *  and io.c polls until the deadline). */
int mesh__conn_io_flags(mesh_conn_t *c, bool rd);

/* ---- instrumentation (tls/observe.c) ------------------------------------ */

/** Register the part's series (tls init); failures leave NULL handles,
 *  which every update accepts. */
int mesh__tls_obs_init(mesh_t *m, mesh__tls_t *t);
void mesh__tls_obs_fini(mesh__tls_t *t);
/** Client: choose the connection gauge of opts->service and open the
 *  "mesh.dial" span under opts' parent; without one only if root_ok (a
 *  public mesh_dial to "host:port"). */
void mesh__conn_obs_dial(mesh_conn_t *c, const mesh_dial_opts_t *opts,
                         bool root_ok);
/** Client: a dial that failed before it had a connection (no
 *  credentials, socket or immediate connect error): a failed span. */
void mesh__tls_obs_dial_failed(mesh_t *m, const struct sockaddr *sa,
                               socklen_t len, const mesh_dial_opts_t *opts,
                               bool root_ok, int code, const char *msg);
/** Server: open the "mesh.accept" span. */
void mesh__conn_obs_accept(mesh_conn_t *c);
/** The TLS handshake starts: timer and "mesh.handshake" span. */
void mesh__conn_obs_tls_start(mesh_conn_t *c);
/** The connection is open: count it, end the setup spans. */
void mesh__conn_obs_open(mesh_conn_t *c);
/** Setup failed with code: count it (once TCP was up), end the spans.
 *  Idempotent. */
void mesh__conn_obs_fail(mesh_conn_t *c, int code);
/** At close: leave the gauge, end spans of an unfinished setup. */
void mesh__conn_obs_close(mesh_conn_t *c);
/** "cert_expired" for MESH_ERR_CERT_EXPIRED: the reason label. */
void mesh__tls_reason(int code, char *buf, size_t len);

/* ---- peer verification (tls/verify.c) ---------------------------------- */

/** Install the inbound connection-level authorizer (from a part's init,
 *  after the tls part's, before any accept). */
void mesh__tls_set_conn_authz(mesh_t *m, mesh__tls_conn_authz_fn fn);
/** Run it for c's peer (id "" for a plaintext peer).  @return MESH_OK
 *  when allowed or none is installed, else MESH_ERR_DENIED with st. */
int mesh__tls_conn_authz(mesh_conn_t *c, const char *id, mesh_status_t *st);

/** After a resumed handshake (no certificate exchanged): check the saved
 *  peer leaf against the allowed peers and its validity dates. */
int mesh__verify_resumed(mesh_conn_t *c, mesh_status_t *st);
/** Is id allowed by the patterns (none = any verified ID)? */
bool mesh__peers_allow(const char *const *pats, size_t n, const char *id);

/* ---- error mapping (tls/errmap.c) ------------------------------------ */

/** Name of a TLS alert description ("unknown_ca"), or "alert". */
const char *mesh__tls_alert_name(int desc);
/** The alert sent to a peer our check refuses with this mesh code, the
 *  same under every backend: certificate_expired (45) for
 *  MESH_ERR_CERT_EXPIRED, unknown_ca (48) for MESH_ERR_CERT_UNTRUSTED and
 *  MESH_ERR_TRUST_DOMAIN, bad_certificate (42) for any other. */
int mesh__tls_refusal_alert(int code);
/** Turn a failed handshake (as the backend reported it) into a mesh code
 *  with a message naming the peer and the check. */
int mesh__tls_handshake_error(mesh_conn_t *c, const mesh__hsf_t *f,
                              mesh_status_t *st);
/** "peer X rejected our certificate (... alert name, N)" or "peer X
 *  aborted ...": a fatal alert received, in words. */
int mesh__tls_alert_error(mesh_conn_t *c, int desc, mesh_status_t *st);
/** Keep the first bytes from the peer (they tell a plaintext peer apart);
 *  backends call it from their socket reads. */
void mesh__conn_note_first(mesh_conn_t *c, const unsigned char *b,
                           size_t n);
/** Does this look like the start of a TLS record? (for plaintext peers) */
bool mesh__tls_record_start(const unsigned char *b, size_t n);

/* ---- sockets (tls/sock.c) ----------------------------------------------- */

/** Parse "host:port" or "[v6]:port" (numeric or resolvable host).
 *  @return MESH_OK, MESH_ERR_INVALID_ARG, MESH_ERR_CONNECT (no such host). */
int mesh__sock_resolve(const char *target, bool passive,
                       struct sockaddr_storage *ss, socklen_t *len,
                       mesh_status_t *st);
/** Syntax check only (config validation, no I/O). */
bool mesh__sock_addr_syntax(const char *target);
/** "ip:port" / "[ip]:port" of an address. */
void mesh__sock_format(const struct sockaddr *sa, char *buf, size_t len);
/** Non-blocking, close-on-exec TCP socket with TCP_NODELAY, connect
 *  started.  *fd_out set on MESH_OK even if connect is in progress
 *  (*in_progress = true).  @return MESH_OK, MESH_ERR_CONNECT,
 *  MESH_ERR_FD_LIMIT, MESH_ERR_IO. */
int mesh__sock_connect(const struct sockaddr *sa, socklen_t len, int *fd_out,
                       bool *in_progress, mesh_status_t *st);
/** Map errno of socket()/accept() to MESH_ERR_FD_LIMIT or err. */
int mesh__sock_errno_code(int e, int fallback);
/** Wait for events on fd until deadline (monotonic ms, 0 = forever).
 *  @return 1 ready, 0 timed out, MESH_ERR_IO on poll failure. */
int mesh__sock_wait(int fd, short events, int64_t deadline_ms);
/** Deadline for a timeout in ms (<0: none → 0). */
int64_t mesh__deadline(int64_t timeout_ms);

/* ---- dialing (tls/dial.c), for the call layer --------------------------- */

/** Dial one resolved address with mTLS.  Expected peers: opts peers if any
 *  were added, else svc_peers (a cJSON array of patterns, may be NULL),
 *  else any ID that verifies against a bundle we hold.  Spans are opened
 *  only when opts carry a trace parent (the call layer passes its try's);
 *  opts->service labels the connection metrics.
 *  @return as mesh_dial(). */
int mesh__tls_dial_addr(mesh_t *m, const struct sockaddr *sa, socklen_t len,
                        const cJSON *svc_peers, const mesh_dial_opts_t *opts,
                        mesh_conn_t **out, mesh_status_t *st);
/** Dial "host:port" (resolved here) as a root dial: its spans start a trace
 *  when the options carry no parent.  @return as mesh_dial(). */
int mesh__tls_dial_host(mesh_t *m, const char *target,
                        const mesh_dial_opts_t *opts, mesh_conn_t **out,
                        mesh_status_t *st);
/** As mesh__tls_dial_host with credentials other than the identity's:
 *  gen (from mesh__tlsgen_new; a reference is taken for the connection,
 *  the caller keeps its own).  The same handshake, SPIFFE verification
 *  and errors; spans only under a parent in opts (a background dial, as
 *  mesh__tls_dial_addr).  @return as mesh_dial(). */
int mesh__tls_dial_host_gen(mesh_t *m, const char *target,
                            mesh__tlsgen_t *gen, const mesh_dial_opts_t *opts,
                            mesh_conn_t **out, mesh_status_t *st);

/* ---- a service's ALPN (tls/alpn.c), for the call layer ------------------ */

/* Room for the longest list a service's "alpn" yields (comma-separated). */
#define MESH__SVC_ALPN_LEN (MESH__ALPN_MAX * 256)
/** The comma-separated list of an Istio preset ("istio-http/1.1",
 *  "istio-h2", "istio"); NULL if name is not one.  Static. */
const char *mesh__tls_alpn_preset(const char *name);
/** Does the comma-separated list (may be NULL) hold name? */
bool mesh__alpn_has(const char *list, const char *name);
/** Is the negotiated protocol (may be NULL) HTTP/2: "h2", or "istio-h2",
 *  which an Istio peer may select from the istio-h2 preset? */
bool mesh__alpn_is_h2(const char *negotiated);
/** Validate a service's "alpn" value v (NULL: absent) at path: a preset
 *  name or an array of 1..MESH__ALPN_MAX names of 1-255 bytes without ','.
 *  Errors go to c.  @return true when v is present and valid; out (outlen
 *  >= MESH__SVC_ALPN_LEN) then holds the list comma-separated, else "". */
bool mesh__tls_svc_alpn(mesh__cfg_t *c, const cJSON *v, const char *path,
                        char *out, size_t outlen);

/* Parts registered in core/parts.c. */
extern const mesh__part_t mesh__tls_part;
extern const mesh__part_t mesh__inbound_part;

#endif /* MESH_TLS_TLS_H */
