/* SPDX-License-Identifier: Apache-2.0 */
/* Hedging of streaming calls (gRFC A6 hedgingPolicy): client-streaming,
 * server-streaming and bidi calls.
 *
 * The application's messages (and its close_send) go into a buffer; each
 * try has a writer thread that replays the buffer on its own stream, in
 * order, and then follows it as the application sends more.  A scheduler
 * thread starts the first try at once and each further one hedgingDelay
 * later (up to maxAttempts; each after the first takes a retry-budget
 * slot, as retries do), on an endpoint the call has not used yet when
 * there is one.  Each try's reader thread waits for the response headers:
 *   - response headers (the server answers: A6's commit point), OK, or a
 *     fatal status: the call commits to that try; the others are
 *     cancelled (RST_STREAM CANCEL); recv() then reads the committed try
 *     on the application's thread, so no other try's message ever reaches
 *     the application;
 *   - a status in nonFatalStatusCodes (or a refused stream): the try ends
 *     and the next hedge goes at once (after grpc-retry-pushback-ms when
 *     the server sends it; a negative pushback stops hedging).
 * Buffer limits (A6): the call holds at most perRpcBufferLimit bytes
 * (default 256 KiB) and the service's hedged calls together at most
 * retryBufferSize (default 16 MiB).  Past either, no further hedge
 * starts: the call stays with the tries in flight (the first to answer
 * wins), the buffer drops what all of them have written, and send()
 * waits while they are more than the limit behind.  (A try whose server
 * stopped reading then holds send() until a commit or the deadline:
 * dropping the try that lags was tried and dropped the wrong one -- a
 * stalled grpcio server's transport can take data in faster than a
 * working one that reads it.)  Once committed,
 * send() returns when the committed try has written the message.
 *
 * mesh__grpc_hs_start returns once a try has its stream (as a call
 * without hedging does after its one try), while the hedges go on
 * meanwhile: a first try that is merely slow to connect does not hold
 * the call back past hedgingDelay.  When no try can get a stream (every
 * host refuses, no endpoint, the budget refuses the hedges), start fails
 * with the error a call without hedging returns (the last try's). */
#include "grpc/grpc_cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HS_MAX 5 /* gRPC clamps maxAttempts to 5 */

typedef struct mesh__grpc_hs hs_t;

typedef struct hs_att {
  hs_t *h;
  int i;
  mesh_grpc_call_t *k;   /* the try's own call state */
  pthread_t rt, wt;      /* reader, writer */
  bool have_rt, have_wt, wt_joined;
  bool slot;             /* a retry budget slot taken for it */
  size_t sent;           /* messages written (number of the next one) */
  bool sent_close;       /* END_STREAM written */
  bool live;             /* may still write buffered messages */
  bool ended;            /* lost or failed: its writer stops */
  int werr;              /* the writer's error, 0 none */
} hs_att_t;

typedef struct hs_msg {
  uint8_t *b;            /* prefix + message */
  size_t n;
} hs_msg_t;

struct mesh__grpc_hs {
  mesh_grpc_call_t *c;
  _Atomic uint64_t *chan; /* the service's bytes held for replay */
  pthread_mutex_t xmu;   /* the logical call (c->xp) */
  pthread_mutex_t mu;    /* everything below, and each try's stream */
  pthread_cond_t cv;
  hs_msg_t *q;           /* messages base .. total-1 */
  size_t qcap, base, total, held, limit, chan_limit;
  bool closed;           /* the application's close_send */
  bool over;             /* a buffer limit was passed: no more hedges */
  hs_att_t a[HS_MAX];
  int n, max, nfailed, winner, last;
  int nopen;             /* tries whose stream opened */
  int open_rc;           /* the last try that got no stream: why */
  char open_why[sizeof(((mesh_status_t *)0)->message)];
  bool stop, finishing, sched_done, have_sched;
  int64_t next_ms;
  pthread_t sched;
};

/* ---- the buffer ------------------------------------------------------------------ */

static bool more_hedges(const hs_t *h) {
  return h->winner < 0 && !h->stop && !h->finishing && h->n < h->max &&
         !(h->c->deadline_ms && mesh__now_ms() >= h->c->deadline_ms);
}

/* Drop the messages no try can need any more (locked): all of them while
 * a hedge may still start; else those every live try has written. */
static void release(hs_t *h) {
  if (more_hedges(h))
    return;
  size_t min = h->total;
  for (int i = 0; i < h->n; i++)
    if (h->a[i].live && h->a[i].sent < min)
      min = h->a[i].sent;
  size_t drop = min > h->base ? min - h->base : 0;
  if (!drop)
    return;
  for (size_t i = 0; i < drop; i++) {
    h->held -= h->q[i].n;
    atomic_fetch_sub(h->chan, h->q[i].n);
    free(h->q[i].b);
  }
  memmove(h->q, h->q + drop, (h->total - min) * sizeof *h->q);
  h->base = min;
}

/* Append a framed copy of msg (locked).  @return MESH_OK, MESH_ERR_NOMEM. */
static int append(hs_t *h, const void *msg, size_t len) {
  size_t used = h->total - h->base;
  if (used == h->qcap) {
    size_t cap = h->qcap ? 2 * h->qcap : 16;
    hs_msg_t *q = realloc(h->q, cap * sizeof *q);
    if (!q)
      return MESH_ERR_NOMEM;
    h->q = q;
    h->qcap = cap;
  }
  uint8_t *b = malloc(len + MESH__GRPC_PREFIX);
  if (!b)
    return MESH_ERR_NOMEM;
  mesh__grpc_prefix(b, len);
  if (len)
    memcpy(b + MESH__GRPC_PREFIX, msg, len);
  h->q[used] = (hs_msg_t){b, len + MESH__GRPC_PREFIX};
  h->total++;
  h->held += len + MESH__GRPC_PREFIX;
  uint64_t chan = atomic_fetch_add(h->chan, len + MESH__GRPC_PREFIX) + len +
                  MESH__GRPC_PREFIX;
  if (!h->over && (h->held > h->limit || chan > h->chan_limit)) {
    h->over = true; /* A6: commit to what runs, no more hedges */
    h->stop = true;
  }
  return MESH_OK;
}

/* ---- a try --------------------------------------------------------------------- */

/* Replays the buffer on the try's stream, then follows it. */
static void *wr_main(void *arg) {
  hs_att_t *a = arg;
  hs_t *h = a->h;
  mesh_grpc_call_t *k = a->k;
  mesh_status_t st;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    if (h->finishing || a->ended || atomic_load(&k->cancelled))
      break;
    if (a->sent < h->total || (h->closed && !a->sent_close)) {
      bool end = a->sent == h->total;
      hs_msg_t m = end ? (hs_msg_t){NULL, 0} : h->q[a->sent - h->base];
      pthread_mutex_unlock(&h->mu); /* m stays: a->sent is not past it */
      int rc = mesh__h2_stream_write(k->stream, m.b, m.n, end,
                                     k->try_deadline_ms, &st);
      pthread_mutex_lock(&h->mu);
      if (rc != MESH_OK) {
        a->werr = rc;
        break;
      }
      if (end) {
        a->sent_close = true;
        break;
      }
      a->sent++;
      release(h);
      pthread_cond_broadcast(&h->cv);
      continue;
    }
    pthread_cond_wait(&h->cv, &h->mu);
  }
  a->live = false;
  release(h);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* Cancel every try but keep (locked). */
static void cancel_others(hs_t *h, int keep) {
  for (int i = 0; i < h->n; i++) {
    mesh_grpc_call_t *k = h->a[i].k;
    if (i == keep || atomic_exchange(&k->cancelled, true))
      continue;
    if (k->stream) /* published under h->mu (try.c) */
      mesh__h2_stream_reset(k->stream, MESH__H2_CANCEL);
  }
}

/* The try's verdict once its response headers (or its end) came (locked):
 * true when the call commits to it. */
static bool decide(hs_t *h, hs_att_t *a, int rc) {
  mesh_grpc_call_t *k = a->k;
  mesh__grpc_tokens_t *tk = &h->c->xp->rs->grpc_tokens_missing;
  if (k->status > 0 && !atomic_load(&k->cancelled) && /* A6 throttling */
           (k->pushback < 0 || mesh__grpc_hedge_non_fatal(k, k->status)))
    mesh__grpc_throttle_record(&h->c->cfg, tk, false);
  if (h->winner >= 0 || atomic_load(&k->cancelled) || h->finishing)
    return false;
  if ((rc == MESH_OK && !k->done) || k->status == MESH__GRPC_OK ||
      (!k->refused && !mesh__grpc_hedge_non_fatal(k, k->status))) {
    h->winner = a->i;
    h->stop = true;
    cancel_others(h, a->i);
    return true;
  }
  if (k->pushback < 0) {
    h->stop = true; /* the server says: no more */
  } else {
    int64_t now = mesh__now_ms(); /* the next hedge goes now */
    h->next_ms = k->pushback > 0 ? now + k->pushback_ms : now;
  }
  return false;
}

/* A try that did not win: stop its writer, end it. */
static void lose(hs_t *h, hs_att_t *a) {
  mesh_grpc_call_t *k = a->k;
  a->ended = true;
  if (k->stream)
    mesh__h2_stream_reset(k->stream, MESH__H2_CANCEL);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (a->have_wt) {
    pthread_join(a->wt, NULL);
    a->wt_joined = true;
  }
  if (atomic_load(&k->cancelled) && k->status < 0) {
    mesh__grpc_set_status(k, MESH__GRPC_CANCELLED, "hedge cancelled");
    k->outcome = MESH__OUT_CANCELLED; /* no verdict on the endpoint */
  }
  mesh__grpc_try_end(k);
  pthread_mutex_lock(&h->mu);
  h->nfailed++;
  h->last = a->i;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

static void *rd_main(void *arg) {
  hs_att_t *a = arg;
  hs_t *h = a->h;
  mesh_grpc_call_t *k = a->k;
  mesh_status_t st;
  mesh__ok(&st);
  int rc = mesh__grpc_try_start(k, a->slot, &st);
  if (rc != MESH_OK) {
    if (k->status < 0) /* no connection at all */
      mesh__grpc_set_status(k, MESH__GRPC_UNAVAILABLE,
                            st.message[0] ? st.message : "no connection");
    pthread_mutex_lock(&h->mu);
    a->live = false;
    h->open_rc = rc; /* start() may return it */
    mesh__strlcpy(h->open_why, st.message, sizeof h->open_why);
  } else {
    pthread_mutex_lock(&h->mu);
    h->nopen++;
    pthread_cond_broadcast(&h->cv); /* start() returns */
    a->have_wt = pthread_create(&a->wt, NULL, wr_main, a) == 0;
    if (!a->have_wt)
      a->live = false;
    pthread_mutex_unlock(&h->mu);
    rc = a->have_wt ? mesh__grpc_read_headers(k, &st) : MESH_ERR_NOMEM;
    if (rc == MESH_ERR_NOMEM && k->status < 0)
      mesh__grpc_set_status(k, MESH__GRPC_RESOURCE_EXHAUSTED, "out of memory");
    pthread_mutex_lock(&h->mu);
  }
  if (decide(h, a, rc)) {
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL; /* the application reads it from now on */
  }
  lose(h, a); /* unlocks */
  return NULL;
}

/* ---- the schedule ---------------------------------------------------------------- */

/* Start try i (locked).  A hedge after the first needs the budget. */
static int start(hs_t *h, int i) {
  mesh_grpc_call_t *c = h->c;
  bool slot = false;
  if (i > 0) {
    int rc = mesh__grpc_hedge_admit(c, &h->xmu, &slot);
    if (rc != MESH_OK)
      return rc;
  }
  hs_att_t *a = &h->a[i];
  *a = (hs_att_t){.h = h, .i = i, .slot = slot, .live = true};
  a->k = mesh__grpc_hedge_child(c, i, &h->xmu, &h->mu);
  if (!a->k || pthread_create(&a->rt, NULL, rd_main, a) != 0) {
    if (slot)
      mesh__breaker_give(&c->xp->rs->br.retries);
    mesh_grpc_call_free(a->k);
    a->k = NULL;
    return MESH_ERR_NOMEM;
  }
  a->have_rt = true;
  h->n++;
  return MESH_OK;
}

static void wait_until(hs_t *h, int64_t until_ms) {
  if (!until_ms)
    pthread_cond_wait(&h->cv, &h->mu);
  else
    mesh__cond_wait_until(&h->cv, &h->mu, CLOCK_MONOTONIC, until_ms);
}

static void *sched_main(void *arg) {
  hs_t *h = arg;
  pthread_mutex_lock(&h->mu);
  while (more_hedges(h)) {
    int64_t now = mesh__now_ms();
    if (now < h->next_ms) {
      int64_t until = h->next_ms;
      if (h->c->deadline_ms && h->c->deadline_ms < until)
        until = h->c->deadline_ms;
      wait_until(h, until);
      continue;
    }
    if (start(h, h->n) != MESH_OK)
      h->stop = true;
    else
      h->next_ms = now + h->c->mcfg->hedge.delay_ms;
  }
  h->sched_done = true;
  release(h);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* Wait for a change the call's own threads make (locked).  They end by
 * the deadline; the timed wait only keeps a waiter from sleeping forever
 * should one not (never a busy loop: 1 s steps past deadline + 5 s). */
static void wait_change(hs_t *h) {
  int64_t d = h->c->deadline_ms, now = mesh__now_ms();
  if (!d)
    pthread_cond_wait(&h->cv, &h->mu);
  else
    wait_until(h, d + 5000 > now ? d + 5000 : now + 1000);
}

/* Every try ended without a commit and none will start (locked). */
static bool all_failed(const hs_t *h) {
  return h->winner < 0 && h->sched_done && h->nfailed == h->n;
}

/* Wait for a commit or for every try to fail (locked).  @return the
 * committed try or -1. */
static int wait_commit(hs_t *h) {
  while (h->winner < 0 && !all_failed(h))
    wait_change(h);
  return h->winner;
}

/* ---- the call's API ---------------------------------------------------------------- */

int mesh__grpc_hs_start(mesh_grpc_call_t *c, mesh_status_t *st) {
  hs_t *h = calloc(1, sizeof *h);
  if (!h)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  pthread_mutex_init(&h->xmu, NULL);
  pthread_mutex_init(&h->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cv, &ca);
  pthread_condattr_destroy(&ca);
  h->c = c;
  h->chan = &c->xp->rs->grpc_buffered;
  h->limit = c->cfg.rpc_buf ? c->cfg.rpc_buf : MESH__GRPC_RPC_BUF_DEFAULT;
  h->chan_limit = c->cfg.chan_buf ? c->cfg.chan_buf
                                  : MESH__GRPC_CHAN_BUF_DEFAULT;
  h->max = (int)c->mcfg->hedge.max_attempts;
  if (h->max > HS_MAX)
    h->max = HS_MAX;
  h->winner = h->last = -1;
  c->hs = h;
  /* the first try at once (before any message can pass a limit) */
  pthread_mutex_lock(&h->mu);
  int rc = start(h, 0);
  h->next_ms = mesh__now_ms() + c->mcfg->hedge.delay_ms;
  pthread_mutex_unlock(&h->mu);
  if (rc != MESH_OK || pthread_create(&h->sched, NULL, sched_main, h) != 0) {
    mesh__grpc_hs_end(c, true);
    return mesh__fail(st, MESH_ERR_NOMEM, "no thread for the hedged call");
  }
  h->have_sched = true;
  /* a stream, or none can come: a failed try committed (fatal status) or
   * every try failed and no hedge will start */
  pthread_mutex_lock(&h->mu);
  while (!h->nopen && h->winner < 0 && !all_failed(h))
    wait_change(h);
  bool none = !h->nopen && h->open_rc != MESH_OK;
  rc = h->open_rc;
  char why[sizeof h->open_why];
  mesh__strlcpy(why, h->open_why, sizeof why);
  pthread_mutex_unlock(&h->mu);
  if (!none)
    return MESH_OK; /* (no stream but no error: the status tells) */
  mesh__grpc_hs_end(c, true);
  return mesh__fail(st, rc, "%s", why);
}

/* Has the message numbered seq (or the close) left as far as send()
 * waits for it (locked)? */
static bool sent_enough(const hs_t *h, size_t seq, bool close) {
  if (atomic_load(&h->c->cancelled) || all_failed(h))
    return true;
  if (h->winner >= 0) {
    const hs_att_t *w = &h->a[h->winner];
    return !w->live || w->werr || (close ? w->sent_close : w->sent > seq);
  }
  bool any = false;
  for (int i = 0; i < h->n; i++)
    any = any || h->a[i].live;
  return !h->over || h->held <= h->limit || (!any && h->sched_done);
}

int mesh__grpc_hs_send(mesh_grpc_call_t *c, const void *msg, size_t len,
                       mesh_status_t *st) {
  hs_t *h = c->hs;
  size_t max = c->mcfg && c->mcfg->max_req ? c->mcfg->max_req : UINT32_MAX;
  if (msg && len > max) /* gRPC: RESOURCE_EXHAUSTED, nothing sent */
    return mesh__fail(st, MESH_ERR_MSG_TOO_LARGE,
                      "message of %zu bytes over the limit of %zu", len, max);
  pthread_mutex_lock(&h->mu);
  int rc = MESH_OK;
  if (atomic_load(&c->cancelled))
    rc = mesh__fail(st, MESH_ERR_CANCELLED, "the call was cancelled");
  else if (h->closed || all_failed(h) ||
           (h->winner >= 0 && h->a[h->winner].k->done))
    rc = mesh__fail(st, MESH_ERR_CLOSED, "the call is half-closed or done");
  else if (msg && append(h, msg, len) != MESH_OK)
    rc = mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  if (rc == MESH_OK) {
    h->closed = msg == NULL;
    size_t seq = h->total - 1;
    pthread_cond_broadcast(&h->cv);
    while (!sent_enough(h, seq, msg == NULL))
      wait_change(h);
    if (h->winner >= 0 && h->a[h->winner].werr)
      rc = mesh__fail(st, h->a[h->winner].werr, "the call's stream failed "
                      "(recv or finish give its status)");
  }
  pthread_mutex_unlock(&h->mu);
  return rc;
}

int mesh__grpc_hs_recv(mesh_grpc_call_t *c, void **msg, size_t *len,
                       mesh_status_t *st) {
  hs_t *h = c->hs;
  pthread_mutex_lock(&h->mu);
  int w = wait_commit(h);
  pthread_mutex_unlock(&h->mu);
  if (w < 0)
    return 0; /* every try failed: finish gives the last status */
  mesh_grpc_call_t *k = h->a[w].k;
  if (!c->headers && k->headers)
    mesh__grpc_md_copy(k->headers, &c->headers);
  return mesh_grpc_call_recv(k, msg, len, st);
}

void mesh__grpc_hs_cancel(mesh_grpc_call_t *c) {
  hs_t *h = c->hs;
  pthread_mutex_lock(&h->mu);
  h->stop = true;
  cancel_others(h, -1);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

/* The chosen try's results become the call's. */
static void take(mesh_grpc_call_t *c, mesh_grpc_call_t *k) {
  c->status = k->status;
  free(c->message);
  c->message = k->message;
  k->message = NULL;
  if (!c->headers) {
    c->headers = k->headers;
    k->headers = NULL;
  }
  mesh_grpc_metadata_free(c->trailers);
  c->trailers = k->trailers;
  k->trailers = NULL;
  mesh__strlcpy(c->peer_id, k->peer_id, sizeof c->peer_id);
  c->outcome = k->outcome;
}

/* Read the committed try to its end (the application did not). */
static void drain(mesh_grpc_call_t *k) {
  for (int guard = 0; k->stream && !k->done && k->status < 0; guard++) {
    void *m = NULL;
    size_t l;
    mesh_status_t st;
    int r = mesh_grpc_call_recv(k, &m, &l, &st);
    free(m);
    if (r <= 0)
      break;
  }
}

void mesh__grpc_hs_end(mesh_grpc_call_t *c, bool cancel) {
  hs_t *h = c->hs;
  if (!h)
    return;
  if (cancel)
    mesh__grpc_hs_cancel(c);
  pthread_mutex_lock(&h->mu);
  int w = cancel ? h->winner : wait_commit(h);
  pthread_mutex_unlock(&h->mu);
  if (w >= 0 && !cancel)
    drain(h->a[w].k);
  pthread_mutex_lock(&h->mu);
  h->finishing = h->stop = true;
  if (w >= 0 && h->a[w].live && h->a[w].k->stream)
    mesh__h2_stream_reset(h->a[w].k->stream, MESH__H2_CANCEL);
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (h->have_sched)
    pthread_join(h->sched, NULL);
  for (int i = 0; i < h->n; i++) {
    hs_att_t *a = &h->a[i];
    pthread_join(a->rt, NULL);
    if (a->have_wt && !a->wt_joined)
      pthread_join(a->wt, NULL);
  }
  w = h->winner;
  if (w >= 0) {
    mesh_grpc_call_t *k = h->a[w].k;
    if (atomic_load(&k->cancelled) && k->status < 0) {
      mesh__grpc_set_status(k, MESH__GRPC_CANCELLED, "cancelled by the client");
      k->outcome = MESH__OUT_CANCELLED;
    }
    mesh__grpc_try_end(k);
  }
  int pick = w >= 0 ? w : h->last;
  if (pick >= 0)
    take(c, h->a[pick].k);
  if (c->status == MESH__GRPC_OK) /* A6 throttling: a success */
    mesh__grpc_throttle_record(&c->cfg, &c->xp->rs->grpc_tokens_missing,
                               true);
  else if (cancel)
    mesh__grpc_set_status(c, MESH__GRPC_CANCELLED, "cancelled by the client");
  else
    mesh__grpc_set_status(c, MESH__GRPC_UNAVAILABLE, "no hedged try started");
  c->attempts = h->n;
  for (size_t i = 0; i < h->total - h->base; i++) {
    atomic_fetch_sub(h->chan, h->q[i].n);
    free(h->q[i].b);
  }
  free(h->q);
  for (int i = 0; i < h->n; i++)
    mesh_grpc_call_free(h->a[i].k);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  pthread_mutex_destroy(&h->xmu);
  free(h);
  c->hs = NULL;
  c->done = true;
}
