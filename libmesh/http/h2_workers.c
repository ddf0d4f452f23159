/* SPDX-License-Identifier: Apache-2.0 */
/* Server streams of one HTTP/2 session served concurrently: the thread
 * that accepts keeps driving the session (it waits in accept), and each
 * accepted stream runs on a thread of its own (kept for reuse), bounded per
 * session by the MAX_CONCURRENT_STREAMS we advertise and in the process by
 * MESH__H2_WORKERS_MAX.  The gRPC server (grpc/server.c) and
 * mesh_http_serve() over HTTP/2 (h2_serve.c) both serve streams this way.
 *
 * The per-session bound counts handlers, not open streams: a stream the
 * peer resets stays counted until its handler returns, so a rapid-reset
 * peer cannot start more handlers than the limit (the next stream waits in
 * the session's accept queue, which nghttp2 bounds by the same limit, and
 * nghttp2's reset rate limit ends the session). */
#include <stdlib.h>
#include <time.h>

#include "http/h2_int.h"

static _Atomic int workers_total; /* in the process */

int mesh__h2_workers_total(void) {
  return atomic_load(&workers_total);
}

void mesh__h2_workers_init(mesh__h2_workers_t *w, mesh__h2_session_t *s,
                           uint32_t limit) {
  w->s = s;
  w->limit = limit ? limit : 1;
  atomic_init(&w->running, 0);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
}

void mesh__h2_workers_destroy(mesh__h2_workers_t *w) {
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

int mesh__h2_workers_running(mesh__h2_workers_t *w) {
  return atomic_load(&w->running);
}

/* Locked (session mutex): may one more handler start? */
static bool slot_free(void *arg) {
  mesh__h2_workers_t *w = arg;
  return (uint32_t)atomic_load(&w->running) < w->limit &&
         atomic_load(&workers_total) < MESH__H2_WORKERS_MAX;
}

int mesh__h2_workers_accept(mesh__h2_workers_t *w, int64_t deadline_ms,
                            mesh__h2_stream_t **out, mesh_status_t *st) {
  mesh__h2_session_t *s = w->s;
  for (;;) {
    /* A handler of this session ending wakes us (workers_done); one of
     * another session does not: the process-wide bound is rechecked at
     * least every 100 ms.  The session is driven meanwhile. */
    int64_t now = mesh__now_ms();
    int64_t until = now + 100;
    if (deadline_ms > 0 && deadline_ms < until)
      until = deadline_ms;
    pthread_mutex_lock(&s->mu);
    int rc = mesh__h2_wait(s, slot_free, w, until);
    pthread_mutex_unlock(&s->mu);
    if (rc == MESH_OK)
      break;
    if (rc != MESH_ERR_TIMEOUT) { /* dead: what accept says about it */
      *out = NULL;
      return mesh__fail(st, rc == MESH_ERR_CLOSED ? MESH_ERR_PEER_CLOSED : rc,
                        "h2 accept: the session ended");
    }
    if (deadline_ms > 0 && until >= deadline_ms) {
      *out = NULL;
      return mesh__fail(st, MESH_ERR_TIMEOUT,
                        "h2 accept: no free handler before the deadline");
    }
  }
  /* only this thread starts handlers: the slot stays free */
  return mesh__h2_accept(s, deadline_ms, out, st);
}

typedef struct job {
  mesh__h2_workers_t *w;
  mesh__h2_stream_t *x;
  mesh__h2_worker_fn fn;
  void *arg;
  struct job *next;
} job_t;

/* A handler ended: count it, wake whoever waits in
 * mesh__h2_workers_wait(), then the accepting thread, whether it drives
 * (poll: the eventfd) or sleeps on the session's condition variable.  w
 * may be gone once running drops (its owner returns): the session is held
 * by our own reference for the wake-up. */
static void workers_done(mesh__h2_workers_t *w) {
  mesh__h2_session_t *s = w->s;
  mesh__h2_ref(s);
  pthread_mutex_lock(&w->mu);
  atomic_fetch_sub(&workers_total, 1);
  atomic_fetch_sub(&w->running, 1);
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_lock(&s->mu);
  mesh__h2_kick(s);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  mesh__h2_unref(s);
}

static void run_job(job_t *j) {
  mesh__h2_workers_t *w = j->w;
  j->fn(j->arg, j->x);
  mesh__h2_stream_free(j->x);
  free(j);
  workers_done(w);
}

/* ---- the threads: kept for reuse, as a thread per stream costs a
 * pthread_create (stack mmap, clone) per request ---------------------------- */

#define IDLE_MS 10000 /* an idle thread lingers this long for the next job */

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t pool_mu;
static pthread_cond_t pool_cv;   /* jobs queued (monotonic clock) */
static job_t *q_head, *q_tail;
static int q_len, idle;          /* under pool_mu */

static void pool_init(void) {
  pthread_mutex_init(&pool_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&pool_cv, &ca);
  pthread_condattr_destroy(&ca);
}

/* Runs its first job, then queued ones, until idle for IDLE_MS. */
static void *pool_thread(void *p) {
  job_t *j = p;
  for (;;) {
    run_job(j);
    pthread_mutex_lock(&pool_mu);
    int64_t until = mesh__now_ms() + IDLE_MS;
    idle++;
    while (!q_head && mesh__now_ms() < until)
      mesh__cond_wait_until(&pool_cv, &pool_mu, CLOCK_MONOTONIC, until);
    idle--;
    j = q_head;
    if (j) {
      q_head = j->next;
      if (!q_head)
        q_tail = NULL;
      q_len--;
    }
    pthread_mutex_unlock(&pool_mu);
    if (!j)
      return NULL;
  }
}

/* Hand j to an idle thread (true), or say a new one is needed. */
static bool hand_to_idle(job_t *j) {
  pthread_once(&pool_once, pool_init);
  pthread_mutex_lock(&pool_mu);
  bool queued = idle > q_len; /* every queued job has its idle thread */
  if (queued) {
    j->next = NULL;
    if (q_tail)
      q_tail->next = j;
    else
      q_head = j;
    q_tail = j;
    q_len++;
    pthread_cond_signal(&pool_cv);
  }
  pthread_mutex_unlock(&pool_mu);
  return queued;
}

int mesh__h2_workers_spawn(mesh__h2_workers_t *w, mesh__h2_stream_t *x,
                           mesh__h2_worker_fn fn, void *arg) {
  job_t *j = malloc(sizeof *j);
  if (!j) {
    mesh__h2_stream_reset(x, MESH__H2_REFUSED_STREAM);
    mesh__h2_stream_free(x);
    return MESH_ERR_NOMEM;
  }
  *j = (job_t){w, x, fn, arg, NULL};
  atomic_fetch_add(&w->running, 1);
  atomic_fetch_add(&workers_total, 1);
  if (hand_to_idle(j))
    return MESH_OK;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int e = pthread_create(&t, &at, pool_thread, j);
  pthread_attr_destroy(&at);
  if (e == 0)
    return MESH_OK;
  /* no thread: the peer may retry a refused stream elsewhere */
  free(j);
  mesh__h2_stream_reset(x, MESH__H2_REFUSED_STREAM);
  mesh__h2_stream_free(x);
  atomic_fetch_sub(&workers_total, 1);
  pthread_mutex_lock(&w->mu);
  atomic_fetch_sub(&w->running, 1);
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return MESH_ERR_NOMEM;
}

void mesh__h2_workers_wait(mesh__h2_workers_t *w) {
  pthread_mutex_lock(&w->mu);
  while (atomic_load(&w->running) > 0)
    pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
}
