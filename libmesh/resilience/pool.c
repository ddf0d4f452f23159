/* SPDX-License-Identifier: Apache-2.0 */
/* The idle connection pool of one endpoint.
 *
 * A short per-endpoint mutex guards a LIFO stack: the most recently used
 * connection is the warmest and the least likely to have been closed by the
 * peer's idle timer.  Connections are closed outside the lock, because a
 * TLS close may write a close_notify. */
#include "resilience/resilience.h"

#include <poll.h>
#include <stdlib.h>
#include <time.h>

typedef struct idle {
  void *conn;
  int64_t since_ms;
  bool trimmed; /* its buffers were given back (ops.buffers) */
} idle_t;

typedef struct mux {
  void *sess;
  const mesh__mux_ops_t *ops;
  uint32_t inflight;
  int64_t idle_since_ms;
} mux_t;

#define MUX_MAX 64 /* sessions per endpoint */

static void mux_clear(mesh__pool_t *p, bool all);
static bool mux_dead(const mux_t *e);
static void mux_drop(mesh__pool_t *p, size_t i, mux_t *closing);

struct mesh__pool {
  pthread_mutex_t mu;
  mesh__pool_ops_t ops;
  void *user;
  idle_t *v;    /* v[0] oldest .. v[n-1] newest */
  size_t n, cap;
  struct mux *mux; /* shared sessions (HTTP/2), MUX_MAX */
  size_t nmux;
  bool dialing;      /* a caller is dialing a connection to share */
  bool plain;        /* the last dial gave no shared session (HTTP/1.1):
                        callers do not wait for each other's dials */
  pthread_cond_t dialed; /* signalled when that dial ends */
};

bool mesh__pool_fd_alive(int fd) {
  if (fd < 0)
    return false;
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
  int r = poll(&p, 1, 0);
  if (r < 0)
    return false;
  /* Idle means silent: readable is EOF, a reset, or bytes nobody asked
   * for (a late response, a TLS alert) -- none of them is safe to reuse. */
  return r == 0;
}

static bool alive(mesh__pool_t *p, void *c) {
  return p->ops.alive ? p->ops.alive(c) : mesh__pool_fd_alive(p->ops.fd(c));
}

mesh__pool_t *mesh__pool_new(const mesh__pool_ops_t *ops, void *user) {
  if (!ops || !ops->fd || !ops->close)
    return NULL;
  mesh__pool_t *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->mux = calloc(MUX_MAX, sizeof *p->mux);
  if (!p->mux) {
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->dialed, &ca);
  pthread_condattr_destroy(&ca);
  p->ops = *ops;
  p->user = user;
  return p;
}

void *mesh__pool_user(const mesh__pool_t *p) { return p ? p->user : NULL; }

void mesh__pool_free(mesh__pool_t *p) {
  if (!p)
    return;
  mesh__pool_clear(p);
  mux_clear(p, true);
  free(p->mux);
  free(p->v);
  if (p->ops.drop)
    p->ops.drop(p->user);
  pthread_cond_destroy(&p->dialed);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

bool mesh__pool_put(mesh__pool_t *p, void *conn, int64_t now_ms,
                    uint32_t max_idle) {
  if (!p || !conn)
    return false;
  bool parked = false;
  if (p->ops.buffers) /* before another thread can take it */
    p->ops.buffers(conn, true);
  pthread_mutex_lock(&p->mu);
  if (p->n < max_idle) {
    if (p->n == p->cap) {
      size_t cap = p->cap ? p->cap * 2 : 4;
      idle_t *v = realloc(p->v, cap * sizeof *v);
      if (v) {
        p->v = v;
        p->cap = cap;
      }
    }
    if (p->n < p->cap) {
      p->v[p->n].conn = conn;
      p->v[p->n].since_ms = now_ms;
      p->v[p->n].trimmed = false;
      p->n++;
      parked = true;
    }
  }
  pthread_mutex_unlock(&p->mu);
  if (!parked)
    p->ops.close(conn, p->user);
  return parked;
}

void *mesh__pool_take(mesh__pool_t *p, int64_t now_ms,
                      int64_t idle_timeout_ms, int64_t check_after_ms) {
  if (!p)
    return NULL;
  /* Bounded: at most every parked connection is looked at once. */
  for (;;) {
    void *c = NULL;
    bool expired = false, fresh = false;
    pthread_mutex_lock(&p->mu);
    if (p->n > 0) {
      idle_t it = p->v[--p->n];
      c = it.conn;
      expired = idle_timeout_ms > 0 && now_ms - it.since_ms >= idle_timeout_ms;
      fresh = now_ms - it.since_ms < check_after_ms;
    }
    pthread_mutex_unlock(&p->mu);
    if (!c)
      return NULL;
    /* Parked a moment ago: reused without the check (one syscall less
     * per call; docs/config/resilience.md, pool.check_after_ms). */
    if (!expired && (fresh || alive(p, c)))
      return c;
    p->ops.close(c, p->user);
  }
}

size_t mesh__pool_sweep(mesh__pool_t *p, int64_t now_ms,
                        int64_t idle_timeout_ms) {
  if (!p)
    return 0;
  void *dead[64];
  size_t nd = 0;
  pthread_mutex_lock(&p->mu);
  size_t keep = 0;
  for (size_t i = 0; i < p->n; i++) {
    idle_t it = p->v[i];
    bool expired =
        idle_timeout_ms > 0 && now_ms - it.since_ms >= idle_timeout_ms;
    if (nd < 64 && (expired || !alive(p, it.conn))) {
      dead[nd++] = it.conn;
      continue;
    }
    /* idle a while: its buffers back (frees only; nobody can take it) */
    if (p->ops.buffers && !it.trimmed &&
        now_ms - it.since_ms >= MESH__POOL_TRIM_MS) {
      p->ops.buffers(it.conn, false);
      it.trimmed = true;
    }
    p->v[keep++] = it;
  }
  p->n = keep;
  /* shared sessions: advance each one (keepalive PINGs, GOAWAY, EOF) --
   * nobody else drives an idle one -- and close the dead idle ones */
  mux_t mdead[MUX_MAX];
  size_t nm = 0;
  for (size_t i = 0; i < p->nmux;) {
    mux_t *e = &p->mux[i];
    bool gone = mux_dead(e) || (idle_timeout_ms > 0 &&
                                now_ms - e->idle_since_ms >= idle_timeout_ms);
    if (e->inflight == 0 && gone)
      mux_drop(p, i, &mdead[nm++]);
    else
      i++;
  }
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < nd; i++)
    p->ops.close(dead[i], p->user);
  for (size_t i = 0; i < nm; i++)
    mdead[i].ops->close(mdead[i].sess, p->user);
  return nd + nm;
}

size_t mesh__pool_clear(mesh__pool_t *p) {
  if (!p)
    return 0;
  pthread_mutex_lock(&p->mu);
  idle_t *v = p->v;
  size_t n = p->n;
  p->v = NULL;
  p->n = p->cap = 0;
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < n; i++)
    p->ops.close(v[i].conn, p->user);
  free(v);
  mux_clear(p, false);
  return n;
}

size_t mesh__pool_idle(mesh__pool_t *p) {
  if (!p)
    return 0;
  pthread_mutex_lock(&p->mu);
  size_t n = p->n;
  pthread_mutex_unlock(&p->mu);
  return n;
}

mesh__pool_t *mesh__res_pool_peek(mesh__host_t *h) {
  /* host->pool is published by a CAS in mesh__res_pool(). */
  return h ? atomic_load_explicit(&h->pool, memory_order_acquire) : NULL;
}

/* ---- shared (multiplexed) connections ------------------------------------
 * An HTTP/2 session carries many calls at once: it stays in the pool while
 * in use, each call counting in `inflight`, and is handed out while that is
 * below the peer's concurrency limit.  A session that can take no new
 * stream (GOAWAY, dead) is closed once its last call is done. */


static bool mux_dead(const mux_t *e) {
  return !e->ops->alive(e->sess);
}

/* Remove entry i (locked); its session goes to *closing. */
static void mux_drop(mesh__pool_t *p, size_t i, mux_t *closing) {
  *closing = p->mux[i];
  p->mux[i] = p->mux[--p->nmux];
}

/* The least busy live session with room (locked); dead and expired idle
 * ones go to dead[]. */
static mux_t *mux_pick(mesh__pool_t *p, int64_t now_ms,
                       int64_t idle_timeout_ms, mux_t *dead, size_t *nd) {
  mux_t *best = NULL;
  for (size_t i = 0; i < p->nmux;) {
    mux_t *e = &p->mux[i];
    bool expired = e->inflight == 0 && idle_timeout_ms > 0 &&
                   now_ms - e->idle_since_ms >= idle_timeout_ms;
    if (e->inflight == 0 && (expired || mux_dead(e))) {
      mux_drop(p, i, &dead[(*nd)++]);
      continue;
    }
    /* the least busy session with room: spread calls over the
     * connections there are (the peer may serve each one serially) */
    if (e->inflight < e->ops->capacity(e->sess) &&
        (!best || e->inflight < best->inflight))
      best = e;
    i++;
  }
  return best;
}

/* Sleep on the pool's condition variable until deadline (locked). */
static void wait_dialed(mesh__pool_t *p, int64_t deadline_ms) {
  mesh__cond_wait_until(&p->dialed, &p->mu, CLOCK_MONOTONIC, deadline_ms);
}

void *mesh__pool_mux_get(mesh__pool_t *p, int64_t now_ms,
                         int64_t idle_timeout_ms, int64_t wait_until_ms,
                         bool *dial) {
  if (dial)
    *dial = false;
  if (!p)
    return NULL;
  mux_t dead[2 * MUX_MAX]; /* a pick drops at most MUX_MAX */
  size_t nd = 0;
  mux_t *best;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    best = mux_pick(p, now_ms, idle_timeout_ms, dead, &nd);
    if (best || !dial || p->plain)
      break;
    if (!p->dialing) { /* this caller dials; the others wait for it */
      p->dialing = true;
      *dial = true;
      break;
    }
    /* somebody is dialing a connection to share: wait for it rather than
     * dial one more (N callers arriving together share one handshake) */
    if (mesh__now_ms() >= wait_until_ms || nd > MUX_MAX)
      break;
    wait_dialed(p, wait_until_ms);
    now_ms = mesh__now_ms();
  }
  void *out = NULL;
  if (best) {
    best->inflight++;
    out = best->sess;
  }
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < nd; i++)
    dead[i].ops->close(dead[i].sess, p->user);
  return out;
}

void mesh__pool_mux_dialed(mesh__pool_t *p, bool plain) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->dialing = false;
  if (plain)
    p->plain = true;
  pthread_cond_broadcast(&p->dialed);
  pthread_mutex_unlock(&p->mu);
}

bool mesh__pool_mux_add(mesh__pool_t *p, void *sess,
                        const mesh__mux_ops_t *ops, int64_t now_ms) {
  if (!p || !sess || !ops)
    return false;
  bool ok = false;
  pthread_mutex_lock(&p->mu);
  if (p->nmux < MUX_MAX) {
    p->mux[p->nmux++] =
        (mux_t){.sess = sess, .ops = ops, .inflight = 1,
                .idle_since_ms = now_ms};
    p->plain = false;
    ok = true;
  }
  pthread_mutex_unlock(&p->mu);
  return ok;
}

void mesh__pool_mux_put(mesh__pool_t *p, void *sess, int64_t now_ms) {
  if (!p || !sess)
    return;
  mux_t closing = {0};
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < p->nmux; i++) {
    mux_t *e = &p->mux[i];
    if (e->sess != sess)
      continue;
    if (e->inflight)
      e->inflight--;
    e->idle_since_ms = now_ms;
    if (e->inflight == 0 && mux_dead(e))
      mux_drop(p, i, &closing);
    break;
  }
  pthread_mutex_unlock(&p->mu);
  if (closing.sess)
    closing.ops->close(closing.sess, p->user);
}

size_t mesh__pool_mux_count(mesh__pool_t *p) {
  if (!p)
    return 0;
  pthread_mutex_lock(&p->mu);
  size_t n = p->nmux;
  pthread_mutex_unlock(&p->mu);
  return n;
}

/* Close the sessions no call uses (pool_clear / pool_free). */
static void mux_clear(mesh__pool_t *p, bool all) {
  mux_t closing[MUX_MAX];
  size_t nc = 0;
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < p->nmux;) {
    if (all || p->mux[i].inflight == 0)
      mux_drop(p, i, &closing[nc++]);
    else
      i++;
  }
  pthread_mutex_unlock(&p->mu);
  for (size_t i = 0; i < nc; i++)
    closing[i].ops->close(closing[i].sess, p->user);
}
