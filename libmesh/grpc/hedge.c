/* SPDX-License-Identifier: Apache-2.0 */
/* Hedging of unary calls (gRFC A6 hedgingPolicy).  The first try starts at
 * once, each further one hedgingDelay after the previous (up to
 * maxAttempts), on another endpoint when there is one; each runs on its
 * own thread and its own HTTP/2 stream.  The first try that ends with OK
 * or with a status not in nonFatalStatusCodes commits the call: the others
 * are cancelled (RST_STREAM CANCEL).  A non-fatal status starts the next
 * hedge at once (or after the server's grpc-retry-pushback-ms; a negative
 * pushback stops hedging).  When every try failed non-fatally, the call
 * ends with the status of the last one to finish.  Hedges take a retry
 * budget slot each and count as retries (the service's budget applies);
 * the deadline is the call's. */
#include "grpc/grpc_cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEDGE_MAX 5 /* gRPC clamps maxAttempts to 5 */

typedef struct hedge hedge_t;

typedef struct att {
  hedge_t *h;
  int i;
  mesh_grpc_call_t *k; /* the try's own call state */
  pthread_t t;
  bool slot;           /* a retry budget slot taken for it */
  void *resp;
  size_t len;
} att_t;

struct hedge {
  mesh_grpc_call_t *c;
  const void *req;
  size_t len;
  pthread_mutex_t xmu; /* the logical call (c->xp) */
  pthread_mutex_t mu;  /* below, and each try's stream (k->smu) */
  pthread_cond_t cv;
  att_t a[HEDGE_MAX];
  int n, ndone, winner, last;
  bool stop;
  int64_t next_ms;
};

mesh_grpc_call_t *mesh__grpc_hedge_child(mesh_grpc_call_t *p, int i,
                                         pthread_mutex_t *xmu,
                                         pthread_mutex_t *smu) {
  mesh_grpc_call_t *k = calloc(1, sizeof *k);
  if (!k)
    return NULL;
  k->m = p->m;
  k->status = -1;
  k->path = strdup(p->path);
  k->authority = strdup(p->authority);
  k->auth = p->auth ? strdup(p->auth) : NULL; /* the call's JWT-SVID */
  k->max_recv = p->max_recv;
  mesh__grpc_dec_init(&k->dec, k->max_recv);
  if (!k->path || !k->authority || (p->auth && !k->auth) ||
      mesh__grpc_md_copy(p->md, &k->md) != MESH_OK) {
    mesh_grpc_call_free(k);
    return NULL;
  }
  k->deadline_ms = p->deadline_ms;
  k->via_service = true;
  k->xp = p->xp;
  k->xmu = xmu;
  k->smu = smu;
  k->mcfg = p->mcfg;
  k->attempts = i; /* grpc-previous-rpc-attempts: the hedges before it */
  return k;
}

/* Cancel every running try but keep (locked). */
static void cancel_others(hedge_t *h, int keep) {
  for (int i = 0; i < h->n; i++) {
    mesh_grpc_call_t *k = h->a[i].k;
    if (i == keep || atomic_exchange(&k->cancelled, true))
      continue;
    if (k->stream) /* published under h->mu (try.c) */
      mesh__h2_stream_reset(k->stream, MESH__H2_CANCEL);
  }
}

bool mesh__grpc_hedge_non_fatal(const mesh_grpc_call_t *c, int code) {
  uint32_t nf = c->mcfg->hedge.non_fatal;
  return code > 0 && code < MESH__GRPC_NCODES && (nf & (1u << code));
}

static void *att_main(void *arg) {
  att_t *a = arg;
  hedge_t *h = a->h;
  mesh_grpc_call_t *k = a->k;
  mesh_status_t st;
  mesh__ok(&st);
  mesh__grpc_unary_try(k, a->slot, h->req, h->len, &a->resp, &a->len, &st);
  if (k->status < 0) /* no connection at all */
    mesh__grpc_set_status(k, MESH__GRPC_UNAVAILABLE,
                          st.message[0] ? st.message : "no connection");
  mesh__grpc_tokens_t *tk = &h->c->xp->rs->grpc_tokens_missing;
  if (k->status == MESH__GRPC_OK) /* A6 throttling: successes and */
    mesh__grpc_throttle_record(&h->c->cfg, tk, true);
  else if (k->pushback < 0 || mesh__grpc_hedge_non_fatal(k, k->status))
    mesh__grpc_throttle_record(&h->c->cfg, tk, false); /* failures */
  pthread_mutex_lock(&h->mu);
  h->ndone++;
  h->last = a->i;
  if (h->winner < 0 && !atomic_load(&k->cancelled)) {
    if (k->status == MESH__GRPC_OK ||
        (!k->refused && !mesh__grpc_hedge_non_fatal(k, k->status))) {
      h->winner = a->i; /* commit: the others are cancelled */
      h->stop = true;
      cancel_others(h, a->i);
    } else if (k->pushback < 0) {
      h->stop = true; /* the server says: no more */
    } else {
      int64_t now = mesh__now_ms(); /* the next hedge goes now */
      h->next_ms = k->pushback > 0 ? now + k->pushback_ms : now;
    }
  }
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* May a hedge after the first start?  retryThrottling's tokens, then the
 * call's retry budget (under xmu, the lock of the call's shared state);
 * counts the retry.  *slot: a budget slot taken (given back at the end).
 * Shared by unary (this file) and streaming (hstream.c) hedges. */
int mesh__grpc_hedge_admit(mesh_grpc_call_t *c, pthread_mutex_t *xmu,
                           bool *slot) {
  mesh_status_t bst;
  if (!mesh__grpc_throttle_ok(&c->cfg, &c->xp->rs->grpc_tokens_missing))
    return MESH_ERR_RETRY_BUDGET; /* retryThrottling: no more hedges */
  pthread_mutex_lock(xmu);
  int rc = mesh__callx_may_retry(c->xp, slot, &bst);
  if (rc == MESH_OK)
    c->xp->retries++;
  pthread_mutex_unlock(xmu);
  return rc;
}

/* Start try i (locked).  A hedge after the first needs the budget. */
static int start(hedge_t *h, int i) {
  mesh_grpc_call_t *c = h->c;
  bool slot = false;
  if (i > 0) {
    int rc = mesh__grpc_hedge_admit(c, &h->xmu, &slot);
    if (rc != MESH_OK)
      return rc;
  }
  mesh_grpc_call_t *k = mesh__grpc_hedge_child(c, i, &h->xmu, &h->mu);
  att_t *a = &h->a[i];
  *a = (att_t){.h = h, .i = i, .k = k, .slot = slot};
  if (!k || pthread_create(&a->t, NULL, att_main, a) != 0) {
    if (slot)
      mesh__breaker_give(&c->xp->br->retries);
    mesh_grpc_call_free(k);
    a->k = NULL;
    return MESH_ERR_NOMEM;
  }
  h->n++;
  return MESH_OK;
}

/* Wait on h->cv until until_ms (0: no limit; locked). */
static void wait_until(hedge_t *h, int64_t until_ms) {
  if (!until_ms) {
    pthread_cond_wait(&h->cv, &h->mu);
    return;
  }
  mesh__cond_wait_until(&h->cv, &h->mu, CLOCK_MONOTONIC, until_ms);
}

/* The schedule (see the top comment).  @return the try whose status is
 * the call's, or -1 when none could start. */
static int run(hedge_t *h) {
  mesh_grpc_call_t *c = h->c;
  int max = (int)c->mcfg->hedge.max_attempts;
  if (max > HEDGE_MAX)
    max = HEDGE_MAX;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    if (h->winner >= 0)
      break;
    int64_t now = mesh__now_ms();
    bool more = !h->stop && h->n < max &&
                !(c->deadline_ms && now >= c->deadline_ms);
    if (!more && h->ndone == h->n)
      break;
    if (more && now >= h->next_ms) {
      if (start(h, h->n) != MESH_OK)
        h->stop = true;
      else
        h->next_ms = now + c->mcfg->hedge.delay_ms;
      continue;
    }
    wait_until(h, more ? h->next_ms : 0);
  }
  int pick = h->winner >= 0 ? h->winner : h->last;
  pthread_mutex_unlock(&h->mu);
  for (int i = 0; i < h->n; i++)
    pthread_join(h->a[i].t, NULL);
  return pick;
}

/* The committed try's results become the call's. */
static void take(mesh_grpc_call_t *c, att_t *a, void **resp, size_t *len) {
  mesh_grpc_call_t *k = a->k;
  c->status = k->status;
  free(c->message);
  c->message = k->message;
  k->message = NULL;
  c->headers = k->headers;
  c->trailers = k->trailers;
  k->headers = k->trailers = NULL;
  mesh__strlcpy(c->peer_id, k->peer_id, sizeof c->peer_id);
  c->outcome = k->outcome;
  if (k->status == MESH__GRPC_OK) {
    *resp = a->resp;
    *len = a->len;
    a->resp = NULL;
  }
}

int mesh__grpc_hedged(mesh_grpc_call_t *c, const void *req, size_t len,
                      void **resp, size_t *resp_len, mesh_status_t *st) {
  hedge_t *h = calloc(1, sizeof *h);
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
  h->req = req ? req : "";
  h->len = len;
  h->winner = h->last = -1;
  int pick = run(h);
  int rc = MESH_OK;
  if (pick >= 0)
    take(c, &h->a[pick], resp, resp_len);
  else
    rc = mesh__fail(st, MESH_ERR_NOMEM, "no hedged try could start");
  c->attempts = h->n;
  for (int i = 0; i < h->n; i++) {
    free(h->a[i].resp);
    mesh_grpc_call_free(h->a[i].k);
  }
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  pthread_mutex_destroy(&h->xmu);
  free(h);
  return rc;
}
