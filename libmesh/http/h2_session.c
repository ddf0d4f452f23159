/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/2 sessions: nghttp2 set up with the library's limits, its callbacks
 * (frames in), and the caller-driven I/O: whichever thread waits drives
 * the transport, the others sleep on the condition variable (h2.h, the
 * threading rule). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "http/h2_int.h"


void mesh__h2_settings_default(mesh__h2_settings_t *s) {
  *s = (mesh__h2_settings_t){
      .max_concurrent_streams = 100,
      .initial_window = 1u << 20,
      .conn_window = 16u << 20,
      .max_frame_size = 16384,
      .max_header_list = 65536,
      .header_table_size = 4096,
      .keepalive_ms = 0,
      .keepalive_timeout_ms = 20000,
      .keepalive_without_calls = true,
      .max_ping_strikes = 2,
      .max_resets_burst = 1000,
      .max_resets_per_s = 100,
      .max_continuations = 8,
      .max_settings = 32,
      .max_outbound_ack = 1000,
      .max_control_per_s = 1000,
      .max_empty_frames = 100,
  };
}

void mesh__h2_die(mesh__h2_session_t *s, int code, const char *fmt, ...) {
  if (s->dead_rc)
    return;
  s->dead_rc = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->dead_msg, sizeof s->dead_msg, fmt, ap);
  va_end(ap);
  mesh__log(s->m, MESH_LOG_DEBUG, "h2_session_end", "code=%s msg=\"%s\"",
            mesh_code_name(code), s->dead_msg);
  pthread_cond_broadcast(&s->cv);
}

/* A hostile peer: GOAWAY with code, then the session is over. */
static int calm(mesh__h2_session_t *s, uint32_t code, const char *why) {
  nghttp2_session_terminate_session(s->ng, code);
  mesh__h2_die(s, MESH_ERR_HTTP_PARSE, "%s: GOAWAY sent", why);
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int mesh__h2_submit_ping(mesh__h2_session_t *s) {
  uint8_t data[8];
  uint64_t seq = ++s->ping_seq;
  memcpy(data, &seq, sizeof data);
  if (nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, data) != 0)
    return MESH_ERR_NOMEM;
  s->ping_sent_ms = mesh__now_ms();
  return MESH_OK;
}

/* ---- nghttp2 callbacks ---------------------------------------------------- */

static mesh__h2_stream_t *stream_of(mesh__h2_session_t *s, int32_t id) {
  return nghttp2_session_get_stream_user_data(s->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f,
                            void *user) {
  mesh__h2_session_t *s = user;
  if (f->hd.type != NGHTTP2_HEADERS)
    return 0;
  mesh__h2_stream_t *x = stream_of(s, f->hd.stream_id);
  if (!x && f->headers.cat == NGHTTP2_HCAT_REQUEST && s->server) {
    x = mesh__h2_stream_new(s, f->hd.stream_id);
    if (!x)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, x);
    return 0;
  }
  if (!x)
    return 0;
  /* a second block after the head (not a 1xx) is the trailers */
  x->in_trailers = x->hdrs_done;
  if (!x->in_trailers)
    mesh__h2_list_free(&x->hdrs); /* after a 1xx: start over */
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f,
                     const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen, uint8_t flags, void *user) {
  (void)ng;
  (void)flags;
  mesh__h2_session_t *s = user;
  mesh__h2_stream_t *x = stream_of(s, f->hd.stream_id);
  if (!x)
    return 0;
  mesh__h2_list_t *l = x->in_trailers ? &x->trailers : &x->hdrs;
  /* HPACK bomb: a small block decoding into a huge list ends here. */
  if (l->bytes + nlen + vlen + 32 > s->set.max_header_list)
    return calm(s, NGHTTP2_ENHANCE_YOUR_CALM, "header list over the limit");
  if (mesh__h2_list_add(l, name, nlen, value, vlen) != MESH_OK)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

/* SETTINGS and PING floods: nghttp2 bounds the acks it queues; this bounds
 * the rate at which we process them at all. */
static int count_control(mesh__h2_session_t *s) {
  int64_t now = mesh__now_ms();
  if (now - s->ctrl_window_ms >= 1000) {
    s->ctrl_window_ms = now;
    s->ctrl_count = 0;
  }
  if (++s->ctrl_count > s->set.max_control_per_s)
    return calm(s, NGHTTP2_ENHANCE_YOUR_CALM, "SETTINGS/PING flood");
  return 0;
}

static void on_head_done(mesh__h2_session_t *s, mesh__h2_stream_t *x,
                         const nghttp2_frame *f) {
  if (x->in_trailers)
    return;
  if (f->headers.cat == NGHTTP2_HCAT_RESPONSE || !s->server) {
    const char *st = x->hdrs.n ? x->hdrs.v[0].value : "";
    if (st[0] == '1' && strlen(st) == 3) {
      mesh__h2_list_free(&x->hdrs); /* interim: wait for the final one */
      return;
    }
  }
  x->hdrs_done = true;
  if (s->server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    if (s->qtail)
      s->qtail->qnext = x;
    else
      s->qhead = x;
    s->qtail = x;
  }
}

/* gRPC's ping abuse policy (h2.h, min_ping_interval_ms): a PING sooner
 * than allowed is a strike; past max_ping_strikes, GOAWAY
 * ENHANCE_YOUR_CALM with gRPC's debug data, which gRPC clients read as
 * "ping less often". */
static void ping_policy(mesh__h2_session_t *s) {
  if (!s->server || s->set.min_ping_interval_ms <= 0 || s->too_many_pings)
    return;
  int64_t now = mesh__now_ms();
  bool idle = s->all == NULL;
  int64_t gap = idle && !s->set.permit_pings_without_calls
                    ? 7200000
                    : s->set.min_ping_interval_ms;
  bool early = s->last_ping_recv_ms && now < s->last_ping_recv_ms + gap;
  s->last_ping_recv_ms = now;
  if (!early || ++s->ping_strikes <= s->set.max_ping_strikes ||
      !s->set.max_ping_strikes)
    return;
  static const char why[] = "too_many_pings";
  nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(s->ng),
                        NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why,
                        sizeof why - 1);
  s->too_many_pings = true; /* feed() flushes it and ends the session */
}

static void goaway_in(mesh__h2_session_t *s, const nghttp2_goaway *g) {
  s->goaway_recv = true;
  s->goaway_code = g->error_code;
  if (g->error_code == NGHTTP2_ENHANCE_YOUR_CALM)
    mesh__h2_ka_calm(s, g->opaque_data, g->opaque_data_len);
  if (g->error_code == NGHTTP2_ENHANCE_YOUR_CALM)
    mesh__log(s->m, MESH_LOG_WARN, "h2_goaway_calm",
              "the peer sent GOAWAY ENHANCE_YOUR_CALM \"%.*s\" (with "
              "\"too_many_pings\": http.http2.keepalive_time_ms is shorter "
              "than it allows)",
              (int)(g->opaque_data_len > 64 ? 64 : g->opaque_data_len),
              (const char *)g->opaque_data);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f,
                         void *user) {
  (void)ng;
  mesh__h2_session_t *s = user;
  mesh__h2_stream_t *x = f->hd.stream_id ? stream_of(s, f->hd.stream_id)
                                         : NULL;
  switch (f->hd.type) {
  case NGHTTP2_HEADERS:
    if (x)
      on_head_done(s, x, f);
    break;
  case NGHTTP2_DATA:
    if (f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      if (++s->empty_data > s->set.max_empty_frames)
        return calm(s, NGHTTP2_ENHANCE_YOUR_CALM, "empty DATA flood");
    } else {
      s->empty_data = 0;
    }
    break;
  case NGHTTP2_SETTINGS:
    if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) {
      s->settings_seen = true;
      return count_control(s);
    }
    break;
  case NGHTTP2_PING:
    if (f->hd.flags & NGHTTP2_FLAG_ACK) {
      if (s->ping_sent_ms) {
        s->ping_rtt_ms = mesh__now_ms() - s->ping_sent_ms;
        s->ping_sent_ms = 0;
      }
      if (s->final_goaway) {
        s->final_goaway = false;
        nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(s->ng),
                              NGHTTP2_NO_ERROR, NULL, 0);
      }
      break;
    }
    ping_policy(s);
    return count_control(s);
  case NGHTTP2_RST_STREAM:
    if (x) {
      x->rst_frame = true;
      x->rst_code = f->rst_stream.error_code;
      x->refused = f->rst_stream.error_code == NGHTTP2_REFUSED_STREAM;
    }
    break;
  case NGHTTP2_GOAWAY:
    goaway_in(s, &f->goaway);
    break;
  default:
    break;
  }
  if (x && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    x->remote_closed = true;
  pthread_cond_broadcast(&s->cv);
  return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id,
                   const uint8_t *data, size_t len, void *user) {
  (void)flags;
  mesh__h2_session_t *s = user;
  mesh__h2_stream_t *x = stream_of(s, id);
  if (!x || x->released) {
    nghttp2_session_consume(ng, id, len); /* nobody will read it */
    return 0;
  }
  if (mesh__h2_buf_add(&x->rbuf, data, len) != MESH_OK)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code,
                           void *user) {
  mesh__h2_session_t *s = user;
  mesh__h2_stream_t *x = stream_of(s, id);
  if (!x)
    return 0;
  x->closed = true;
  if (code && !x->rst_code) {
    x->rst_code = code;
    x->refused = code == NGHTTP2_REFUSED_STREAM;
  }
  if (!s->server && id % 2 == 1 && s->nopen_local)
    s->nopen_local--;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  if (x->released) {
    mesh__h2_stream_destroy(x); /* its owner let go before the end */
  } else if (!x->owned && !x->hdrs_done) {
    mesh__h2_stream_destroy(x); /* never handed out: nobody holds it */
  } else if (!x->owned) {
    /* queued for accept but reset before: drop it from the queue */
    mesh__h2_stream_t **pp = &s->qhead, *prev = NULL;
    while (*pp && *pp != x) {
      prev = *pp;
      pp = &(*pp)->qnext;
    }
    if (*pp) {
      *pp = x->qnext;
      if (s->qtail == x)
        s->qtail = prev;
    }
    mesh__h2_stream_destroy(x);
  }
  pthread_cond_broadcast(&s->cv);
  return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f,
                         void *user) {
  mesh__h2_session_t *s = user;
  mesh__h2_stream_t *x = f->hd.stream_id ? stream_of(s, f->hd.stream_id)
                                         : NULL;
  /* our side ended on a stream its owner let go while the peer still
   * sends: stop it politely (RFC 9113 section 8.1) */
  if (x && x->released && !x->remote_closed &&
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
      (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS))
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                              NGHTTP2_NO_ERROR);
  if (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) {
    s->ping_strikes = 0; /* as gRPC: PINGs while we send are fine */
    s->last_ping_recv_ms = 0;
  }
  if (f->hd.type == NGHTTP2_GOAWAY) {
    s->goaway_sent = true;
    if (!s->goaway_code)
      s->goaway_code = f->goaway.error_code;
  }
  return 0;
}

static int on_error(nghttp2_session *ng, int lib_error, const char *msg,
                    size_t len, void *user) {
  (void)ng;
  mesh__h2_session_t *s = user;
  mesh__log(s->m, MESH_LOG_DEBUG, "h2_protocol", "error=%d msg=\"%.*s\"",
            lib_error, (int)len, msg);
  return 0;
}

/* ---- setup ----------------------------------------------------------------- */

static int make_ng(mesh__h2_session_t *s) {
  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cb) != 0)
    return MESH_ERR_NOMEM;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return MESH_ERR_NOMEM;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(cb, on_error);
  const mesh__h2_settings_t *t = &s->set;
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  nghttp2_option_set_max_outbound_ack(opt, t->max_outbound_ack);
  nghttp2_option_set_max_settings(opt, t->max_settings);
  nghttp2_option_set_stream_reset_rate_limit(opt, t->max_resets_burst,
                                             t->max_resets_per_s);
  nghttp2_option_set_max_continuations(opt, t->max_continuations);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  int rv = s->server ? nghttp2_session_server_new2(&s->ng, cb, s, opt)
                     : nghttp2_session_client_new2(&s->ng, cb, s, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0)
    return MESH_ERR_NOMEM;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, t->max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, t->initial_window},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, t->max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, t->max_header_list},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, t->header_table_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  size_t niv = sizeof iv / sizeof iv[0] - (s->server ? 1 : 0);
  if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
      nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                            (int32_t)t->conn_window) != 0)
    return MESH_ERR_NOMEM;
  return MESH_OK;
}

static bool settings_ok(const mesh__h2_settings_t *t) {
  return t->initial_window <= 0x7fffffffu && t->conn_window <= 0x7fffffffu &&
         t->max_frame_size >= 16384 && t->max_frame_size <= 16777215 &&
         t->max_header_list >= 1024 && t->max_concurrent_streams >= 1;
}

int mesh__h2_session_new_io(mesh_t *m, const mesh__h2_io_t *io, bool server,
                            const mesh__h2_settings_t *set,
                            mesh__h2_session_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!io || !io->read || !io->write || !out ||
      (set && !settings_ok(set))) {
    if (io && io->close)
      io->close(io->ctx);
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "h2 session: transport and out are required, "
                      "settings must be in range");
  }
  mesh__h2_session_t *s = calloc(1, sizeof *s);
  if (!s) {
    if (io->close)
      io->close(io->ctx);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  s->m = m;
  s->io = *io;
  s->io_open = true;
  s->server = server;
  s->fd = io->fd ? io->fd(io->ctx) : -1;
  s->ping_rtt_ms = -1;
  s->last_rx_ms = mesh__now_ms();
  atomic_init(&s->refs, 1);
  if (set)
    s->set = *set;
  else
    mesh__h2_settings_default(&s->set);
  mesh__h2_ka_apply(s);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&s->mu, NULL);
  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc = s->wake_fd < 0 ? MESH_ERR_FD_LIMIT : make_ng(s);
  if (rc == MESH_OK) {
    pthread_mutex_lock(&s->mu);
    rc = mesh__h2_flush(s); /* preface + SETTINGS */
    pthread_mutex_unlock(&s->mu);
  }
  if (rc != MESH_OK) {
    mesh__h2_session_free(s);
    return mesh__fail(st, rc, "h2 session setup: %s", mesh_strerror(rc));
  }
  *out = s;
  return MESH_OK;
}

const char *mesh__h2_session_peer_id(const mesh__h2_session_t *s) {
  return s ? s->peer_id : "";
}

bool mesh__h2_session_tls(const mesh__h2_session_t *s) {
  return s && s->tls;
}

int mesh__h2_session_fd(const mesh__h2_session_t *s) {
  return s ? s->fd : -1;
}

/* ---- lifetime ---------------------------------------------------------------- */

void mesh__h2_ref(mesh__h2_session_t *s) {
  atomic_fetch_add(&s->refs, 1);
}

void mesh__h2_close_io(mesh__h2_session_t *s) {
  if (!s->io_open)
    return;
  s->io_open = false;
  if (s->io.close)
    s->io.close(s->io.ctx);
}

void mesh__h2_unref(mesh__h2_session_t *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  while (s->all)
    mesh__h2_stream_destroy(s->all);
  mesh__h2_close_io(s);
  nghttp2_session_del(s->ng);
  mesh__h2_buf_free(&s->out);
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

void mesh__h2_session_free(mesh__h2_session_t *s) {
  if (!s)
    return;
  pthread_mutex_lock(&s->mu);
  if (!s->dead_rc && s->ng && !s->goaway_sent) {
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    mesh__h2_flush(s);
  }
  mesh__h2_die(s, MESH_ERR_CLOSED, "session closed by us");
  if (s->driving) {
    s->close_pending = true; /* the driver is in poll on the fd */
    mesh__h2_kick(s);
  } else {
    mesh__h2_close_io(s);
  }
  pthread_mutex_unlock(&s->mu);
  mesh__h2_unref(s);
}

/* ---- I/O ----------------------------------------------------------------------- */

int mesh__h2_session_drain(mesh__h2_session_t *s) {
  if (!s)
    return MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&s->mu);
  int rc = s->dead_rc;
  if (!rc && !s->draining) {
    s->draining = true;
    /* server: the shutdown notice (last id 2^31-1) and a PING; the final
     * GOAWAY with the last stream we took goes out when the PING comes
     * back (on_frame_recv), so requests already in flight are not lost */
    if (s->server && nghttp2_submit_shutdown_notice(s->ng) == 0 &&
        !s->ping_sent_ms && mesh__h2_submit_ping(s) == MESH_OK) {
      s->final_goaway = true;
    } else if (nghttp2_submit_goaway(
                   s->ng, NGHTTP2_FLAG_NONE,
                   nghttp2_session_get_last_proc_stream_id(s->ng),
                   NGHTTP2_NO_ERROR, NULL, 0) != 0) {
      rc = MESH_ERR_INTERNAL;
    }
    if (rc == MESH_OK)
      rc = mesh__h2_flush(s);
    mesh__h2_kick(s);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

uint32_t mesh__h2_session_available(mesh__h2_session_t *s) {
  if (!s)
    return 0;
  pthread_mutex_lock(&s->mu);
  uint32_t n = 0;
  if (!s->dead_rc && !s->goaway_recv && !s->goaway_sent && !s->draining) {
    uint32_t max = nghttp2_session_get_remote_settings(
        s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    n = max > s->nopen_local ? max - s->nopen_local : 0;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

bool mesh__h2_session_alive(mesh__h2_session_t *s) {
  if (!s)
    return false;
  pthread_mutex_lock(&s->mu);
  bool ok = !s->dead_rc && !s->goaway_recv && !s->goaway_sent && !s->draining;
  pthread_mutex_unlock(&s->mu);
  return ok;
}

int mesh__h2_session_status(mesh__h2_session_t *s, uint32_t *goaway_code,
                            mesh_status_t *st) {
  mesh__ok(st);
  if (!s)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "no session");
  pthread_mutex_lock(&s->mu);
  int rc = s->dead_rc;
  if (goaway_code)
    *goaway_code = s->goaway_code;
  if (rc)
    mesh__fail(st, rc, "%s", s->dead_msg);
  pthread_mutex_unlock(&s->mu);
  return rc;
}
