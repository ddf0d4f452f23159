/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/2 streams: open (client) or accept (server), DATA out through a
 * deferred data provider, DATA in through a queue whose flow-control
 * credit goes back to the peer as the application reads, header blocks,
 * trailers, resets. */
#include <stdlib.h>
#include <string.h>

#include "http/h2_int.h"

#define SEND_CAP 65536u /* DATA queued per stream before write() waits */

/* ---- small containers ---------------------------------------------------- */

int mesh__h2_buf_add(mesh__h2_buf_t *b, const void *p, size_t n) {
  if (!n)
    return MESH_OK;
  if (b->off && b->off + b->len + n > b->cap) {
    memmove(b->p, b->p + b->off, b->len);
    b->off = 0;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (!np)
      return MESH_ERR_NOMEM;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->off + b->len, p, n);
  b->len += n;
  return MESH_OK;
}

void mesh__h2_buf_free(mesh__h2_buf_t *b) {
  free(b->p);
  *b = (mesh__h2_buf_t){0};
}

/* take up to n bytes from the front */
static size_t buf_take(mesh__h2_buf_t *b, void *dst, size_t n) {
  if (n > b->len)
    n = b->len;
  if (!n)
    return 0;
  memcpy(dst, b->p + b->off, n);
  b->off += n;
  b->len -= n;
  if (!b->len)
    b->off = 0;
  return n;
}

int mesh__h2_list_add(mesh__h2_list_t *l, const uint8_t *name, size_t nlen,
                      const uint8_t *value, size_t vlen) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    mesh__h2_hdr_t *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return MESH_ERR_NOMEM;
    l->v = v;
    l->cap = cap;
  }
  char *blob = malloc(nlen + vlen + 2);
  if (!blob)
    return MESH_ERR_NOMEM;
  memcpy(blob, name, nlen);
  blob[nlen] = '\0';
  memcpy(blob + nlen + 1, value, vlen);
  blob[nlen + 1 + vlen] = '\0';
  l->v[l->n].name = blob;
  l->v[l->n].value = blob + nlen + 1;
  l->n++;
  l->bytes += nlen + vlen + 32;
  return MESH_OK;
}

void mesh__h2_list_free(mesh__h2_list_t *l) {
  for (size_t i = 0; i < l->n; i++)
    free((char *)l->v[i].name); /* one blob per field */
  free(l->v);
  *l = (mesh__h2_list_t){0};
}

/* ---- stream objects ---------------------------------------------------- */

mesh__h2_stream_t *mesh__h2_stream_new(mesh__h2_session_t *s, int32_t id) {
  mesh__h2_stream_t *x = calloc(1, sizeof *x);
  if (!x)
    return NULL;
  x->s = s;
  x->id = id;
  x->next = s->all;
  if (s->all)
    s->all->prev = x;
  s->all = x;
  return x;
}

void mesh__h2_stream_destroy(mesh__h2_stream_t *x) {
  mesh__h2_session_t *s = x->s;
  if (x->prev)
    x->prev->next = x->next;
  else
    s->all = x->next;
  if (x->next)
    x->next->prev = x->prev;
  if (x->id > 0 && s->ng) {
    if (x->rbuf.len && !x->closed)
      nghttp2_session_consume(s->ng, x->id, x->rbuf.len);
    if (!x->closed)
      nghttp2_session_set_stream_user_data(s->ng, x->id, NULL);
  }
  mesh__h2_list_free(&x->hdrs);
  mesh__h2_list_free(&x->trailers);
  mesh__h2_buf_free(&x->rbuf);
  mesh__h2_buf_free(&x->sbuf);
  free(x->tr_nv);
  free(x);
}

/* ---- header lists out ----------------------------------------------------- */

static bool valid_list(const mesh__h2_hdr_t *h, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!h[i].name || !h[i].value || !h[i].name[0])
      return false;
    for (const char *p = h[i].name; *p; p++)
      if ((*p >= 'A' && *p <= 'Z') || *p == ' ' || (*p == ':' && p != h[i].name))
        return false;
    if (strpbrk(h[i].value, "\r\n"))
      return false;
  }
  return true;
}

/* An nghttp2_nv array; with own, names and values are copied into the same
 * allocation (trailers submitted later); else they point at h. */
static nghttp2_nv *to_nv(const mesh__h2_hdr_t *h, size_t n, bool own) {
  size_t extra = 0;
  if (own)
    for (size_t i = 0; i < n; i++)
      extra += strlen(h[i].name) + strlen(h[i].value) + 2;
  nghttp2_nv *nv = malloc(n * sizeof *nv + extra + 1);
  if (!nv)
    return NULL;
  char *p = (char *)(nv + n);
  for (size_t i = 0; i < n; i++) {
    size_t nl = strlen(h[i].name), vl = strlen(h[i].value);
    const char *name = h[i].name, *value = h[i].value;
    if (own) {
      memcpy(p, name, nl + 1);
      name = p;
      p += nl + 1;
      memcpy(p, value, vl + 1);
      value = p;
      p += vl + 1;
    }
    nv[i] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl,
                         NGHTTP2_NV_FLAG_NONE};
  }
  return nv;
}

/* ---- DATA out ------------------------------------------------------------------ */

ssize_t mesh__h2_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf,
                           size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *user) {
  (void)user;
  mesh__h2_stream_t *x = src->ptr;
  size_t n = buf_take(&x->sbuf, buf, len);
  if (x->sbuf.len == 0 && x->eos_queued) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    x->local_closed = true;
    if (x->tr_nv) {
      if (nghttp2_submit_trailer(ng, id, x->tr_nv, x->tr_n) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      free(x->tr_nv);
      x->tr_nv = NULL;
    }
  } else if (n == 0) {
    return NGHTTP2_ERR_DEFERRED;
  }
  pthread_cond_broadcast(&x->s->cv); /* room in sbuf for writers */
  return (ssize_t)n;
}

static nghttp2_data_provider provider(mesh__h2_stream_t *x) {
  return (nghttp2_data_provider){{.ptr = x}, mesh__h2_data_read};
}

/* The error a stream call returns when the stream cannot go on. */
static int stream_err(const mesh__h2_stream_t *x) {
  if (x->reset_by_us)
    return MESH_ERR_CLOSED;
  if (x->rst_frame)
    return MESH_ERR_RESET;
  if (x->closed && x->rst_code)
    return x->refused ? MESH_ERR_PEER_CLOSED : MESH_ERR_RESET;
  return x->s->dead_rc;
}

static int fail_stream(mesh__h2_stream_t *x, int rc, mesh_status_t *st,
                       const char *what) {
  if (rc == MESH_ERR_TIMEOUT)
    return mesh__fail(st, rc, "h2 stream %d: %s: timed out", x->id, what);
  if (rc == MESH_ERR_RESET)
    return mesh__fail(st, rc, "h2 stream %d: %s: reset by the peer (code %u)",
                      x->id, what, x->rst_code);
  return mesh__fail(st, rc, "h2 stream %d: %s: %s", x->id, what,
                    x->s->dead_rc ? x->s->dead_msg : mesh_strerror(rc));
}

static bool send_room(void *arg) {
  mesh__h2_stream_t *x = arg;
  return x->sbuf.len < SEND_CAP || stream_err(x) != MESH_OK ||
         (x->closed && !x->reset_by_us);
}

/* Queue bytes in chunks as room appears (locked). */
static int queue_data(mesh__h2_stream_t *x, const uint8_t *p, size_t len,
                      int64_t deadline_ms) {
  mesh__h2_session_t *s = x->s;
  while (len) {
    int rc = mesh__h2_wait(s, send_room, x, deadline_ms);
    if (rc == MESH_OK)
      rc = stream_err(x);
    if (rc == MESH_OK && x->closed)
      rc = MESH_ERR_CLOSED;
    if (rc != MESH_OK)
      return rc;
    size_t n = SEND_CAP - x->sbuf.len;
    n = n > len ? len : n;
    if (mesh__h2_buf_add(&x->sbuf, p, n) != MESH_OK)
      return MESH_ERR_NOMEM;
    p += n;
    len -= n;
    nghttp2_session_resume_data(s->ng, x->id);
    mesh__h2_flush(s);
    mesh__h2_kick(s);
  }
  return MESH_OK;
}

int mesh__h2_stream_write(mesh__h2_stream_t *x, const void *buf, size_t len,
                          bool end_stream, int64_t deadline_ms,
                          mesh_status_t *st) {
  mesh__ok(st);
  if (!x || (!buf && len))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 write: bad arguments");
  mesh__h2_session_t *s = x->s;
  pthread_mutex_lock(&s->mu);
  int rc = stream_err(x);
  if (rc == MESH_OK && (x->eos_queued || !x->provider))
    rc = MESH_ERR_CLOSED; /* ended, or no body announced / no response */
  if (rc == MESH_OK)
    rc = queue_data(x, buf, len, deadline_ms);
  if (rc == MESH_OK && end_stream) {
    x->eos_queued = true;
    nghttp2_session_resume_data(s->ng, x->id);
    mesh__h2_flush(s);
    mesh__h2_kick(s);
  }
  if (rc != MESH_OK)
    fail_stream(x, rc, st, "write");
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int mesh__h2_stream_send_trailers(mesh__h2_stream_t *x,
                                  const mesh__h2_hdr_t *hdrs, size_t n,
                                  int64_t deadline_ms, mesh_status_t *st) {
  mesh__ok(st);
  (void)deadline_ms; /* the queue is bounded by write(): nothing to wait */
  if (!x || (!hdrs && n) || !valid_list(hdrs, n))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 trailers: bad list");
  mesh__h2_session_t *s = x->s;
  pthread_mutex_lock(&s->mu);
  int rc = stream_err(x);
  if (rc == MESH_OK && (x->eos_queued || !x->provider))
    rc = MESH_ERR_CLOSED;
  if (rc == MESH_OK && n) {
    x->tr_nv = to_nv(hdrs, n, true);
    x->tr_n = n;
    rc = x->tr_nv ? MESH_OK : MESH_ERR_NOMEM;
  }
  if (rc == MESH_OK) {
    x->eos_queued = true;
    nghttp2_session_resume_data(s->ng, x->id);
    mesh__h2_flush(s);
    mesh__h2_kick(s);
  }
  if (rc != MESH_OK)
    fail_stream(x, rc, st, "trailers");
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- opening and responding ------------------------------------------------ */

int mesh__h2_stream_open(mesh__h2_session_t *s, const mesh__h2_hdr_t *hdrs,
                         size_t n, bool end_stream, mesh__h2_stream_t **out,
                         mesh_status_t *st) {
  return mesh__h2_stream_open_q(s, hdrs, n, end_stream, false, out, st);
}

/* queue: over the peer's limit, let nghttp2 hold the HEADERS until a
 * stream ends (the pool over-subscribed a session whose SETTINGS lowered
 * the limit after it was handed out). */
int mesh__h2_stream_open_q(mesh__h2_session_t *s, const mesh__h2_hdr_t *hdrs,
                           size_t n, bool end_stream, bool queue,
                           mesh__h2_stream_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (out)
    *out = NULL;
  if (!s || !out || !hdrs || !n || !valid_list(hdrs, n) || s->server)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "h2 open: a client session and a valid header list "
                      "(lower-case names, pseudo-headers first) are required");
  nghttp2_nv *nv = to_nv(hdrs, n, false);
  if (!nv)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  pthread_mutex_lock(&s->mu);
  int rc = MESH_OK;
  uint32_t max = nghttp2_session_get_remote_settings(
      s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  if (s->dead_rc || s->goaway_recv || s->goaway_sent || s->draining)
    rc = mesh__fail(st, MESH_ERR_PEER_CLOSED, "h2 open: session is %s",
                    s->dead_rc ? "closed" : "going away");
  else if (s->nopen_local >= max && !queue)
    rc = mesh__fail(st, MESH_ERR_CIRCUIT_OPEN,
                    "h2 open: the peer allows %u concurrent streams", max);
  mesh__h2_stream_t *x = rc == MESH_OK ? mesh__h2_stream_new(s, 0) : NULL;
  if (rc == MESH_OK && !x)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK) {
    nghttp2_data_provider dp = provider(x);
    x->provider = !end_stream;
    x->local_closed = end_stream;
    int32_t id = nghttp2_submit_request(s->ng, NULL, nv, n,
                                        end_stream ? NULL : &dp, x);
    if (id < 0) {
      mesh__h2_stream_destroy(x);
      rc = mesh__fail(st, id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
                              ? MESH_ERR_PEER_CLOSED
                              : MESH_ERR_INVALID_ARG,
                      "h2 open: %s", nghttp2_strerror(id));
    } else {
      x->id = id;
      x->owned = true;
      s->nopen_local++;
      mesh__h2_ref(s);
      /* the HTTP client writes the body next: HEADERS go out with it */
      if (end_stream || !queue) {
        mesh__h2_flush(s);
        mesh__h2_kick(s);
      }
      *out = x;
    }
  }
  pthread_mutex_unlock(&s->mu);
  free(nv);
  return rc;
}

int mesh__h2_stream_respond(mesh__h2_stream_t *x, const mesh__h2_hdr_t *hdrs,
                            size_t n, bool end_stream, mesh_status_t *st) {
  return mesh__h2_stream_respond_lazy(x, hdrs, n, end_stream, false, st);
}

int mesh__h2_stream_respond_lazy(mesh__h2_stream_t *x,
                                 const mesh__h2_hdr_t *hdrs, size_t n,
                                 bool end_stream, bool lazy,
                                 mesh_status_t *st) {
  mesh__ok(st);
  if (!x || !hdrs || !n || !valid_list(hdrs, n) ||
      strcmp(hdrs[0].name, ":status") != 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "h2 respond: a header list with \":status\" first");
  mesh__h2_session_t *s = x->s;
  nghttp2_nv *nv = to_nv(hdrs, n, false);
  if (!nv)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  pthread_mutex_lock(&s->mu);
  int rc = x->responded || !s->server ? MESH_ERR_INVALID_ARG : stream_err(x);
  if (rc == MESH_OK && x->closed)
    rc = MESH_ERR_CLOSED;
  if (rc == MESH_OK) {
    nghttp2_data_provider dp = provider(x);
    x->provider = !end_stream;
    x->local_closed = end_stream;
    rc = nghttp2_submit_response(s->ng, x->id, nv, n, end_stream ? NULL : &dp)
             ? MESH_ERR_INVALID_ARG
             : MESH_OK;
  }
  if (rc == MESH_OK) {
    x->responded = true;
    if (end_stream || !lazy) {
      mesh__h2_flush(s);
      mesh__h2_kick(s);
    }
  } else {
    fail_stream(x, rc, st, "respond");
  }
  pthread_mutex_unlock(&s->mu);
  free(nv);
  return rc;
}

/* ---- receiving ------------------------------------------------------------------ */

static bool have_head(void *arg) {
  mesh__h2_stream_t *x = arg;
  return x->hdrs_done || stream_err(x) != MESH_OK || x->closed;
}

int mesh__h2_stream_headers(mesh__h2_stream_t *x, int64_t deadline_ms,
                            const mesh__h2_hdr_t **hdrs, size_t *n,
                            mesh_status_t *st) {
  mesh__ok(st);
  if (!x || !hdrs || !n)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 headers: bad arguments");
  mesh__h2_session_t *s = x->s;
  pthread_mutex_lock(&s->mu);
  int rc = mesh__h2_wait(s, have_head, x, deadline_ms);
  if (rc == MESH_OK && !x->hdrs_done)
    rc = stream_err(x) ? stream_err(x) : MESH_ERR_RESET;
  if (rc == MESH_OK) {
    *hdrs = x->hdrs.v;
    *n = x->hdrs.n;
  } else {
    fail_stream(x, rc, st, "waiting for headers");
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static bool readable(void *arg) {
  mesh__h2_stream_t *x = arg;
  return x->rbuf.len || x->remote_closed || stream_err(x) != MESH_OK ||
         x->closed;
}

long mesh__h2_stream_read(mesh__h2_stream_t *x, void *buf, size_t len,
                          int64_t deadline_ms, mesh_status_t *st) {
  mesh__ok(st);
  if (!x || !buf || !len)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 read: bad arguments");
  mesh__h2_session_t *s = x->s;
  pthread_mutex_lock(&s->mu);
  long out;
  int rc = mesh__h2_wait(s, readable, x, deadline_ms);
  if (rc == MESH_OK && x->rbuf.len) {
    size_t n = buf_take(&x->rbuf, buf, len);
    if (!x->closed) {
      /* the credit goes back now: the peer may send as much again */
      nghttp2_session_consume(s->ng, x->id, n);
      mesh__h2_flush(s);
      mesh__h2_kick(s);
    }
    out = (long)n;
  } else if (rc == MESH_OK && x->remote_closed) {
    out = 0;
  } else {
    if (rc == MESH_OK)
      rc = stream_err(x) ? stream_err(x) : MESH_ERR_RESET;
    out = fail_stream(x, rc, st, "read");
  }
  pthread_mutex_unlock(&s->mu);
  return out;
}

static bool ended(void *arg) {
  mesh__h2_stream_t *x = arg;
  mesh__h2_session_t *s = x->s;
  if (x->rbuf.len && !x->closed) /* discard unread DATA, give credit */
    nghttp2_session_consume(s->ng, x->id, x->rbuf.len);
  x->rbuf.len = x->rbuf.off = 0;
  return x->remote_closed || stream_err(x) != MESH_OK || x->closed;
}

int mesh__h2_stream_trailers(mesh__h2_stream_t *x, int64_t deadline_ms,
                             const mesh__h2_hdr_t **hdrs, size_t *n,
                             mesh_status_t *st) {
  mesh__ok(st);
  if (!x || !hdrs || !n)
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 trailers: bad arguments");
  mesh__h2_session_t *s = x->s;
  pthread_mutex_lock(&s->mu);
  int rc = mesh__h2_wait(s, ended, x, deadline_ms);
  if (rc == MESH_OK && !x->remote_closed)
    rc = stream_err(x) ? stream_err(x) : MESH_ERR_RESET;
  if (rc == MESH_OK) {
    mesh__h2_flush(s);
    *hdrs = x->trailers.v;
    *n = x->trailers.n;
  } else {
    fail_stream(x, rc, st, "waiting for the end of the stream");
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- accepting ---------------------------------------------------------------- */

static bool acceptable(void *arg) {
  mesh__h2_session_t *s = arg;
  return s->qhead != NULL;
}

int mesh__h2_accept(mesh__h2_session_t *s, int64_t deadline_ms,
                    mesh__h2_stream_t **out, mesh_status_t *st) {
  mesh__ok(st);
  if (!s || !out || !s->server)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "h2 accept: a server session is required");
  *out = NULL;
  pthread_mutex_lock(&s->mu);
  int rc = mesh__h2_wait(s, acceptable, s, deadline_ms);
  if (rc == MESH_OK) {
    mesh__h2_stream_t *x = s->qhead;
    s->qhead = x->qnext;
    if (!s->qhead)
      s->qtail = NULL;
    x->qnext = NULL;
    x->owned = true;
    mesh__h2_ref(s);
    *out = x;
  } else if (rc == MESH_ERR_TIMEOUT) {
    mesh__fail(st, rc, "h2 accept: no stream before the deadline");
  } else {
    if (rc == MESH_ERR_CLOSED)
      rc = MESH_ERR_PEER_CLOSED;
    mesh__fail(st, rc, "h2 accept: %s", s->dead_msg);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- ending -------------------------------------------------------------------- */

static void reset_locked(mesh__h2_stream_t *x, uint32_t code) {
  mesh__h2_session_t *s = x->s;
  if (x->closed || x->reset_by_us || s->dead_rc)
    return;
  x->reset_by_us = true;
  nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, x->id, code);
  mesh__h2_flush(s);
  mesh__h2_kick(s);
  pthread_cond_broadcast(&s->cv);
}

void mesh__h2_stream_reset(mesh__h2_stream_t *x, uint32_t code) {
  if (!x)
    return;
  pthread_mutex_lock(&x->s->mu);
  reset_locked(x, code);
  pthread_mutex_unlock(&x->s->mu);
}

uint32_t mesh__h2_stream_error(const mesh__h2_stream_t *x) {
  return x ? x->rst_code : 0;
}
bool mesh__h2_stream_refused(const mesh__h2_stream_t *x) {
  return x && x->refused;
}

int32_t mesh__h2_stream_id(const mesh__h2_stream_t *x) {
  return x ? x->id : -1;
}

mesh__h2_session_t *mesh__h2_stream_session(const mesh__h2_stream_t *x) {
  return x ? x->s : NULL;
}

void mesh__h2_stream_free(mesh__h2_stream_t *x) {
  if (!x)
    return;
  mesh__h2_session_t *s = x->s;
  pthread_mutex_lock(&s->mu);
  if (!x->closed && !s->dead_rc) {
    /* a stream whose end we queued finishes sending on its own (the DATA
     * still queued goes out as the window opens; if the peer is still
     * sending, RST_STREAM NO_ERROR follows our END_STREAM: on_frame_send);
     * anything else (a server that never answered, a client cancelling)
     * is reset now */
    if (!(x->eos_queued || x->local_closed))
      reset_locked(x, NGHTTP2_CANCEL);
    x->released = true; /* on_stream_close destroys it */
  } else {
    mesh__h2_stream_destroy(x);
  }
  pthread_mutex_unlock(&s->mu);
  mesh__h2_unref(s);
}
