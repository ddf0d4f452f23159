/* SPDX-License-Identifier: Apache-2.0 */
/* The caller-driven I/O of an HTTP/2 session: flush what nghttp2 queued,
 * read and feed what the transport has, keepalive PINGs, and the wait that
 * makes one waiting thread the driver while the others sleep on the
 * condition variable (h2.h, the threading rule). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/h2_int.h"

#define READ_CHUNK 16384u
#define OUT_BATCH 16384u  /* bytes gathered before a write (one record) */
#define READS_PER_TURN 64 /* then let the others in; more input may wait */

void mesh__h2_kick(mesh__h2_session_t *s) {
  if (s->driving && s->wake_fd >= 0) {
    uint64_t one = 1;
    ssize_t w = write(s->wake_fd, &one, sizeof one);
    (void)w; /* a full counter already wakes the driver */
  }
}

/* Write s->out, then whatever nghttp2 has queued, until the transport
 * would block. */
int mesh__h2_flush(mesh__h2_session_t *s) {
  if (!s->io_open)
    return MESH_ERR_CLOSED;
  for (;;) {
    /* gather the frames nghttp2 has (one per mem_send) into one write: a
     * request's HEADERS and DATA leave as one TLS record */
    while (s->out.len < OUT_BATCH) {
      const uint8_t *p;
      ssize_t n = nghttp2_session_mem_send(s->ng, &p);
      if (n < 0) {
        mesh__h2_die(s, MESH_ERR_INTERNAL, "nghttp2: %s",
                     nghttp2_strerror((int)n));
        return MESH_ERR_INTERNAL;
      }
      if (n == 0)
        break;
      if (mesh__h2_buf_add(&s->out, p, (size_t)n) != MESH_OK) {
        mesh__h2_die(s, MESH_ERR_NOMEM, "out of memory");
        return MESH_ERR_NOMEM;
      }
    }
    if (s->out.len == 0)
      return MESH_OK;
    long w = s->io.write(s->io.ctx, s->out.p + s->out.off, s->out.len);
    if (w == MESH_ERR_WANT_WRITE || w == MESH_ERR_WANT_READ)
      return MESH_OK;
    if (w <= 0) {
      mesh__h2_die(s, w < 0 ? (int)w : MESH_ERR_IO, "writing to the peer: %s",
                   mesh_strerror(w < 0 ? (int)w : MESH_ERR_IO));
      return s->dead_rc;
    }
    s->out.off += (size_t)w;
    s->out.len -= (size_t)w;
    if (s->out.len == 0)
      s->out.off = 0;
  }
}

/* Feed bytes to nghttp2; a protocol error queues a GOAWAY (nghttp2 does
 * that itself for the errors it detects) and kills the session. */
static int feed(mesh__h2_session_t *s, const uint8_t *p, size_t n) {
  s->last_rx_ms = mesh__now_ms();
  ssize_t r = nghttp2_session_mem_recv(s->ng, p, n);
  if (r >= 0 && s->too_many_pings) { /* h2_session.c ping_policy */
    mesh__h2_flush(s);
    mesh__h2_die(s, MESH_ERR_HTTP_PARSE, "too many PINGs from the peer: "
                 "GOAWAY ENHANCE_YOUR_CALM sent");
    return MESH_ERR_HTTP_PARSE;
  }
  if (r >= 0)
    return MESH_OK;
  if (r == NGHTTP2_ERR_NOMEM) {
    mesh__h2_die(s, MESH_ERR_NOMEM, "out of memory");
    return MESH_ERR_NOMEM;
  }
  if (!s->goaway_sent)
    nghttp2_session_terminate_session(s->ng, r == NGHTTP2_ERR_FLOODED
                                                 ? NGHTTP2_ENHANCE_YOUR_CALM
                                                 : NGHTTP2_PROTOCOL_ERROR);
  mesh__h2_flush(s);
  mesh__h2_die(s, MESH_ERR_HTTP_PARSE, "HTTP/2 protocol error: %s",
               nghttp2_strerror((int)r));
  return MESH_ERR_HTTP_PARSE;
}

int mesh__h2_session_input(mesh__h2_session_t *s, const void *buf, size_t n,
                           mesh_status_t *st) {
  mesh__ok(st);
  if (!s || (!buf && n))
    return mesh__fail(st, MESH_ERR_INVALID_ARG, "h2 input: bad arguments");
  pthread_mutex_lock(&s->mu);
  int rc = s->dead_rc ? s->dead_rc : feed(s, buf, n);
  if (rc == MESH_OK)
    rc = mesh__h2_flush(s);
  if (rc != MESH_OK)
    mesh__fail(st, rc, "%s", s->dead_msg);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Read what the transport has (bounded per turn).  *more: stopped early
 * with input possibly pending (TLS buffers records: do not poll). */
static int pump_in(mesh__h2_session_t *s, bool *more) {
  uint8_t buf[READ_CHUNK];
  *more = false;
  for (int i = 0; i < READS_PER_TURN; i++) {
    if (s->dead_rc || !s->io_open)
      return s->dead_rc;
    long n = s->io.read(s->io.ctx, buf, sizeof buf);
    if (n == MESH_ERR_WANT_READ || n == MESH_ERR_WANT_WRITE)
      return MESH_OK;
    if (n == 0) {
      mesh__h2_die(s, MESH_ERR_PEER_CLOSED, "the peer closed the connection");
      return s->dead_rc;
    }
    if (n < 0) {
      mesh__h2_die(s, (int)n, "reading from the peer: %s",
                   mesh_strerror((int)n));
      return s->dead_rc;
    }
    int rc = feed(s, buf, (size_t)n);
    if (rc != MESH_OK)
      return rc;
  }
  *more = true;
  return MESH_OK;
}

/* Keepalive: a PING after silence, death when it goes unanswered.
 * @return ms until the next keepalive event (-1: none). */
static int64_t keepalive(mesh__h2_session_t *s, int64_t now) {
  if (s->set.keepalive_ms <= 0 || s->dead_rc)
    return -1;
  /* gRPC's permit_without_calls: an idle client session stays silent */
  if (!s->set.keepalive_without_calls && !s->server && !s->nopen_local &&
      !s->ping_sent_ms)
    return -1;
  if (s->ping_sent_ms) {
    int64_t due = s->ping_sent_ms + s->set.keepalive_timeout_ms;
    if (now >= due) {
      mesh__h2_die(s, MESH_ERR_TIMEOUT, "keepalive PING unanswered for %lld ms",
                   (long long)s->set.keepalive_timeout_ms);
      return -1;
    }
    return due - now;
  }
  int64_t due = s->last_rx_ms + s->set.keepalive_ms;
  if (now < due)
    return due - now;
  mesh__h2_submit_ping(s);
  return s->set.keepalive_timeout_ms;
}

/* nghttp2 has nothing more to read or write: the session is over. */
static void check_done(mesh__h2_session_t *s) {
  if (!s->dead_rc && s->out.len == 0 && !nghttp2_session_want_read(s->ng) &&
      !nghttp2_session_want_write(s->ng))
    mesh__h2_die(s, MESH_ERR_PEER_CLOSED, "session finished (GOAWAY%s)",
                 s->goaway_recv ? " received" : " sent");
}

/* One turn as the driver (locked on entry and exit; the lock is released
 * around poll).  wait_ms: -1 forever, else at most this long. */
static void drive(mesh__h2_session_t *s, int wait_ms, bool (*done)(void *),
                  void *arg) {
  bool more = false;
  pump_in(s, &more);
  mesh__h2_flush(s);
  int64_t ka = keepalive(s, mesh__now_ms());
  mesh__h2_flush(s);
  check_done(s);
  /* what was already there may be what the caller waits for */
  if (s->dead_rc || more || !s->io_open || s->fd < 0 || (done && done(arg)))
    return;
  if (ka >= 0 && (wait_ms < 0 || ka < wait_ms))
    wait_ms = (int)(ka > 0x7fffffff ? 0x7fffffff : ka);
  struct pollfd p[2] = {
      {.fd = s->fd, .events = POLLIN},
      {.fd = s->wake_fd, .events = POLLIN},
  };
  if (s->out.len || nghttp2_session_want_write(s->ng))
    p[0].events |= POLLOUT;
  s->driving = true;
  pthread_mutex_unlock(&s->mu);
  int r = poll(p, 2, wait_ms);
  pthread_mutex_lock(&s->mu);
  s->driving = false;
  if (r > 0 && p[1].revents) {
    uint64_t v;
    ssize_t n = read(s->wake_fd, &v, sizeof v);
    (void)n;
  }
  if (s->close_pending) {
    mesh__h2_close_io(s);
    return;
  }
  if (r < 0 && errno != EINTR) {
    mesh__h2_die(s, MESH_ERR_IO, "poll: %s", strerror(errno));
    return;
  }
  pump_in(s, &more);
  mesh__h2_flush(s);
  check_done(s);
}

static void wait_cv(mesh__h2_session_t *s, int64_t deadline_ms) {
  if (deadline_ms <= 0) {
    pthread_cond_wait(&s->cv, &s->mu);
    return;
  }
  mesh__cond_wait_until(&s->cv, &s->mu, CLOCK_MONOTONIC, deadline_ms);
}

int mesh__h2_wait(mesh__h2_session_t *s, bool (*done)(void *arg), void *arg,
                  int64_t deadline_ms) {
  for (;;) {
    if (done(arg))
      return MESH_OK;
    if (s->dead_rc)
      return s->dead_rc;
    int64_t now = mesh__now_ms();
    if (deadline_ms > 0 && now >= deadline_ms)
      return MESH_ERR_TIMEOUT;
    if (s->driving) {
      wait_cv(s, deadline_ms);
      continue;
    }
    int64_t left = deadline_ms > 0 ? deadline_ms - now : -1;
    drive(s, left > 0x7fffffff ? 0x7fffffff : (int)left, done, arg);
    pthread_cond_broadcast(&s->cv);
  }
}

int mesh__h2_session_poll(mesh__h2_session_t *s, int wait_ms) {
  if (!s)
    return MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&s->mu);
  if (!s->dead_rc && !s->driving) {
    drive(s, wait_ms < 0 ? 0 : wait_ms, NULL, NULL);
    pthread_cond_broadcast(&s->cv);
  }
  int rc = s->dead_rc;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static bool ping_back(void *arg) {
  mesh__h2_session_t *s = arg;
  return s->ping_sent_ms == 0;
}

long mesh__h2_session_ping(mesh__h2_session_t *s, int64_t deadline_ms) {
  if (!s)
    return MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&s->mu);
  int rc = s->dead_rc;
  if (!rc && !s->ping_sent_ms) {
    rc = mesh__h2_submit_ping(s);
    if (rc == MESH_OK)
      mesh__h2_flush(s);
  }
  if (rc == MESH_OK)
    rc = mesh__h2_wait(s, ping_back, s, deadline_ms);
  long out = rc == MESH_OK ? (long)s->ping_rtt_ms : rc;
  pthread_mutex_unlock(&s->mu);
  return out;
}

