/* SPDX-License-Identifier: Apache-2.0 */
/* libmesh internal: the structures behind h2.h, shared by h2_session.c
 * and h2_stream.c only.  Every field is guarded by the session's mutex
 * unless it says otherwise. */
#ifndef MESH_HTTP_H2_INT_H
#define MESH_HTTP_H2_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <nghttp2/nghttp2.h>

#include "http/h2.h"

/* A byte queue: bytes p[off .. off+len). */
typedef struct mesh__h2_buf {
  uint8_t *p;
  size_t off, len, cap;
} mesh__h2_buf_t;

/* A received header list: owned strings. */
typedef struct mesh__h2_list {
  mesh__h2_hdr_t *v;
  size_t n, cap;
  size_t bytes; /* RFC 9113 size: name + value + 32 each */
} mesh__h2_list_t;

struct mesh__h2_stream {
  mesh__h2_session_t *s;
  int32_t id;
  struct mesh__h2_stream *prev, *next; /* all streams of the session */
  struct mesh__h2_stream *qnext;       /* accept queue */
  /* receiving */
  mesh__h2_list_t hdrs;     /* request / final response head */
  mesh__h2_list_t trailers;
  bool hdrs_done;           /* head complete */
  bool in_trailers;         /* the block being received is trailers */
  bool remote_closed;       /* END_STREAM received */
  mesh__h2_buf_t rbuf;      /* DATA not read yet (bounded by our window) */
  /* sending */
  mesh__h2_buf_t sbuf;      /* DATA queued, not handed to nghttp2 yet */
  bool provider;            /* submitted with a data provider */
  bool eos_queued;          /* our END_STREAM follows sbuf */
  bool local_closed;        /* END_STREAM (or trailers) handed over */
  nghttp2_nv *tr_nv;        /* trailers to send after sbuf (owned) */
  size_t tr_n;
  bool responded;           /* server: response head submitted */
  /* ending */
  bool closed;              /* nghttp2 closed the stream */
  bool rst_frame;           /* the peer sent RST_STREAM */
  uint32_t rst_code;
  bool refused;
  bool reset_by_us;
  bool owned;               /* a handle is out (opened or accepted) */
  bool released;            /* ... and was freed before nghttp2 closed it */
};

struct mesh__h2_session {
  mesh_t *m;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic int refs;
  nghttp2_session *ng;
  mesh__h2_io_t io;
  bool io_open;
  bool server;
  mesh__h2_settings_t set;
  int wake_fd;              /* eventfd: wakes the driver out of poll */
  bool driving;             /* a thread is inside poll (lock released) */
  bool close_pending;       /* freed while a driver polled: it closes io */
  /* how it ended */
  int dead_rc;              /* 0 alive */
  char dead_msg[200];
  uint32_t goaway_code;
  bool goaway_recv, goaway_sent, draining;
  bool final_goaway;        /* drain: the last GOAWAY waits for a PING ack */
  /* output nghttp2 produced that the transport did not take yet */
  mesh__h2_buf_t out;
  /* streams */
  mesh__h2_stream_t *all;
  mesh__h2_stream_t *qhead, *qtail; /* server: ready to accept */
  uint32_t nopen_local;     /* client streams we opened, not closed */
  /* flood accounting */
  int64_t ctrl_window_ms;
  uint32_t ctrl_count;
  uint32_t empty_data;
  /* keepalive */
  int64_t last_rx_ms;
  int64_t ping_sent_ms;     /* 0: no PING outstanding */
  int64_t ping_rtt_ms;      /* last measured, -1 none */
  uint64_t ping_seq;
  int64_t last_ping_recv_ms;  /* server: ping abuse policy */
  uint32_t ping_strikes;
  bool too_many_pings;        /* GOAWAY ENHANCE_YOUR_CALM queued: end */
  /* transport facts (immutable after new) */
  char peer_id[2048];
  int fd;
  bool tls;                 /* the transport is TLS (":scheme" https) */
  bool settings_seen;       /* the peer's first SETTINGS arrived */
  char ka_key[136];         /* client: the peer's address (h2_backoff.c) */
};

/* ---- h2_session.c, h2_drive.c ------------------------------------------- */

/** Mark the session dead with code (first cause wins), wake everyone. */
void mesh__h2_die(mesh__h2_session_t *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Queue a PING and note when (locked).  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__h2_submit_ping(mesh__h2_session_t *s);
/** Hand queued frames to the transport without blocking.  Locked. */
int mesh__h2_flush(mesh__h2_session_t *s);
/** Wait (locked) until done(arg) is true, driving the session when no
 *  other thread does.  @return MESH_OK when done, MESH_ERR_TIMEOUT, or the
 *  session's dead_rc when it died first (done() is checked first). */
int mesh__h2_wait(mesh__h2_session_t *s, bool (*done)(void *arg), void *arg,
                  int64_t deadline_ms);
/** Wake a driver that polls, after queueing output from another thread. */
void mesh__h2_kick(mesh__h2_session_t *s);
void mesh__h2_ref(mesh__h2_session_t *s);
/** Close the transport once (locked, or no other thread left). */
void mesh__h2_close_io(mesh__h2_session_t *s);
void mesh__h2_unref(mesh__h2_session_t *s);

/* ---- h2_backoff.c ------------------------------------------------------- */

/** Client session being made: note its target and use the keepalive time
 *  a "too_many_pings" GOAWAY raised for it, if longer than set's. */
void mesh__h2_ka_apply(mesh__h2_session_t *s);
/** GOAWAY ENHANCE_YOUR_CALM received (locked) with this debug data: on
 *  "too_many_pings", double the target's keepalive time (logged once per
 *  raise). */
void mesh__h2_ka_calm(mesh__h2_session_t *s, const uint8_t *data,
                      size_t len);

/* ---- h2_io.c ------------------------------------------------------------ */

/** A transport over a mesh connection (non-blocking use: the caller sets
 *  c->nonblocking).  take: close c with the session. */
void mesh__h2_io_conn(mesh__h2_io_t *io, mesh_conn_t *c, bool take);

/* ---- h2_stream.c ------------------------------------------------------ */

/** New stream object linked into s (not yet owned). */
mesh__h2_stream_t *mesh__h2_stream_new(mesh__h2_session_t *s, int32_t id);
/** Unlink and free (locked).  Consumes what was unread. */
void mesh__h2_stream_destroy(mesh__h2_stream_t *x);
/** mesh__h2_stream_open(); with queue, a full session queues the stream
 *  instead of refusing it (MESH_ERR_CIRCUIT_OPEN). */
int mesh__h2_stream_open_q(mesh__h2_session_t *s, const mesh__h2_hdr_t *hdrs,
                           size_t n, bool end_stream, bool queue,
                           mesh__h2_stream_t **out, mesh_status_t *st);
/** mesh__h2_stream_respond(); lazy: without END_STREAM the head waits for
 *  the body's write (the HTTP server writes it at once). */
int mesh__h2_stream_respond_lazy(mesh__h2_stream_t *x,
                                 const mesh__h2_hdr_t *hdrs, size_t n,
                                 bool end_stream, bool lazy,
                                 mesh_status_t *st);
/** nghttp2 data source read callback for our DATA. */
ssize_t mesh__h2_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf,
                           size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *user);
/** Append to a byte queue.  @return MESH_OK or MESH_ERR_NOMEM. */
int mesh__h2_buf_add(mesh__h2_buf_t *b, const void *p, size_t n);
void mesh__h2_buf_free(mesh__h2_buf_t *b);
/** Append one received field to a list.  @return MESH_OK, MESH_ERR_NOMEM. */
int mesh__h2_list_add(mesh__h2_list_t *l, const uint8_t *name, size_t nlen,
                      const uint8_t *value, size_t vlen);
void mesh__h2_list_free(mesh__h2_list_t *l);

#endif /* MESH_HTTP_H2_INT_H */
