/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_call_request(): send a request buffer, read the response until the
 * application's framing function says it is complete, under the retry
 * policy and, when the service has `hedge`, with hedged attempts.
 *
 * Everything runs on the calling thread: attempts in flight are driven
 * non-blocking and waited on together with poll(2).  Getting a connection
 * for a new attempt is blocking (a pooled one is immediate; a new one takes
 * up to the connect timeout), so a hedge that must dial delays reading the
 * others by that much, never beyond the deadline.
 *
 * Hedging follows gRPC's policy (gRFC A6): attempts are sent delay_ms
 * apart, up to max_attempts in total; a failure that the retry policy would
 * retry starts the next attempt at once; the first complete response that
 * is not a retriable error wins and the rest are cancelled (closed, not
 * reported against their endpoints).  Every attempt after the first takes a
 * slot of the retry budget; when the budget refuses a hedge, hedging stops
 * and the attempts in flight carry on. */
#include "resilience/call.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATT 5 /* hedge.max_attempts is at most 5 */

typedef struct att {
  mesh_call_t c;
  bool live;
  bool writing;
  short want;             /* POLLIN or POLLOUT */
  size_t sent;
  unsigned char *buf;
  size_t len, cap;
} att_t;

typedef struct req {
  mesh__callx_t x;
  const unsigned char *req;
  size_t req_len;
  mesh_call_frame_fn frame;
  void *user;
  size_t resp_cap;
  uint32_t max_att;       /* attempts in total */
  att_t a[MAX_ATT];       /* slots, reused once an attempt ended */
  uint32_t started;       /* attempts started so far */
  /* the best answer so far: a complete response, maybe an error status */
  unsigned char *resp;
  size_t *resp_len;
  int *status_out;
  bool have_resp;
} req_t;

/* How a step of an attempt ended. */
enum { STEP_MORE = 0, STEP_DONE = 1, STEP_FAIL = 2 };

typedef struct step {
  int kind;
  int outcome;            /* STEP_FAIL */
  int status;             /* STEP_DONE / STEP_FAIL with a response */
  size_t n;               /* STEP_DONE: response length */
  int code;               /* MESH_ERR_BUFFER for an oversized response */
} step_t;

static int io_outcome(long rc) {
  return rc == MESH_ERR_TIMEOUT ? MESH__OUT_TIMEOUT : MESH__OUT_RESET;
}

static step_t fail_step(int outcome) {
  step_t s = {STEP_FAIL, outcome, 0, 0, 0};
  return s;
}

static step_t step_write(att_t *a, req_t *r) {
  while (a->sent < r->req_len) {
    long n = mesh_conn_write(a->c.conn, r->req + a->sent, r->req_len - a->sent);
    if (n == MESH_ERR_WANT_WRITE || n == MESH_ERR_WANT_READ) {
      a->want = n == MESH_ERR_WANT_READ ? POLLIN : POLLOUT;
      return (step_t){STEP_MORE, 0, 0, 0, 0};
    }
    if (n <= 0)
      return fail_step(io_outcome(n));
    a->sent += (size_t)n;
  }
  a->writing = false;
  a->want = POLLIN;
  return (step_t){STEP_MORE, 0, 0, 0, 0};
}

static bool grow(att_t *a, size_t cap_max) {
  if (a->len < a->cap)
    return true;
  if (a->cap >= cap_max)
    return false;
  size_t cap = a->cap ? a->cap * 2 : 4096;
  if (cap > cap_max)
    cap = cap_max;
  unsigned char *b = realloc(a->buf, cap);
  if (!b)
    return false;
  a->buf = b;
  a->cap = cap;
  return true;
}

static step_t step_read(att_t *a, req_t *r) {
  /* Bounded: a peer streaming garbage fast still yields to the others. */
  for (int guard = 0; guard < 64; guard++) {
    if (!grow(a, r->resp_cap)) {
      step_t s = fail_step(MESH__OUT_PROTOCOL_ERROR);
      s.code = a->cap >= r->resp_cap ? MESH_ERR_BUFFER : MESH_ERR_NOMEM;
      return s;
    }
    long n = mesh_conn_read(a->c.conn, a->buf + a->len, a->cap - a->len);
    if (n == MESH_ERR_WANT_READ || n == MESH_ERR_WANT_WRITE) {
      a->want = n == MESH_ERR_WANT_WRITE ? POLLOUT : POLLIN;
      return (step_t){STEP_MORE, 0, 0, 0, 0};
    }
    if (n == 0)
      return fail_step(MESH__OUT_RESET); /* EOF before the end */
    if (n < 0)
      return fail_step(io_outcome(n));
    a->len += (size_t)n;
    int status = 0;
    long f = r->frame(a->buf, a->len, &status, r->user);
    if (f < 0 || (size_t)f > a->len)
      return fail_step(MESH__OUT_PROTOCOL_ERROR);
    if (f > 0)
      return (step_t){STEP_DONE, 0, status, (size_t)f, 0};
  }
  a->want = POLLIN;
  return (step_t){STEP_MORE, 0, 0, 0, 0};
}

static step_t step(att_t *a, req_t *r) {
  if (a->writing) {
    step_t s = step_write(a, r);
    if (s.kind != STEP_MORE || a->writing)
      return s;
  }
  return step_read(a, r);
}

/* End attempt a; it no longer counts as live. */
static void end_att(att_t *a, int outcome, int status) {
  /* Pooled connections are used in blocking mode by the next owner. */
  if (a->c.conn)
    a->c.conn->nonblocking = false;
  mesh__call_finish(&a->c, outcome, status);
  a->live = false;
  free(a->buf);
  a->buf = NULL;
  a->len = a->cap = 0;
}

static void keep_response(req_t *r, att_t *a, size_t n, int status) {
  memcpy(r->resp, a->buf, n);
  if (r->resp_len)
    *r->resp_len = n;
  if (r->status_out)
    *r->status_out = status;
  r->have_resp = true;
}

static int launch(req_t *r, bool slot, mesh_status_t *st) {
  att_t *a = NULL;
  for (uint32_t i = 0; i < MAX_ATT && !a; i++)
    if (!r->a[i].live)
      a = &r->a[i];
  if (!a) { /* cannot happen: at most max_attempts (<= 5) are live */
    if (slot)
      mesh__breaker_give(&r->x.br->retries);
    return mesh__fail(st, MESH_ERR_INTERNAL, "no free attempt slot");
  }
  memset(a, 0, sizeof *a);
  a->c.x = &r->x;
  int rc = mesh__call_acquire(&a->c, slot, NULL, st);
  if (rc != MESH_OK)
    return rc;
  mesh__call_arm(&a->c);
  a->c.conn->nonblocking = true;
  a->live = true;
  a->writing = r->req_len > 0;
  a->want = a->writing ? POLLOUT : POLLIN;
  r->started++;
  return MESH_OK;
}

static uint32_t live_count(const req_t *r) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < MAX_ATT; i++)
    n += r->a[i].live;
  return n;
}

static void cancel_all(req_t *r, int outcome) {
  for (uint32_t i = 0; i < MAX_ATT; i++)
    if (r->a[i].live)
      end_att(&r->a[i], outcome, 0);
}

/* One more attempt after a failure (or for a hedge): attempts left, budget,
 * backoff when nothing else is in flight.  @return MESH_OK if launched. */
static int another(req_t *r, bool backoff, mesh_status_t *st) {
  if (r->started >= r->max_att)
    return mesh__fail(st, r->x.last_rc, "service \"%s\": %s (after %u "
                      "attempt%s)", r->x.svc->name, r->x.last_msg,
                      r->started, r->started == 1 ? "" : "s");
  bool slot;
  int rc = mesh__callx_may_retry(&r->x, &slot, st);
  if (rc == MESH_OK && backoff)
    rc = mesh__callx_backoff(&r->x, st);
  if (rc != MESH_OK) {
    if (slot)
      mesh__breaker_give(&r->x.br->retries);
    return rc;
  }
  r->x.retries++;
  return launch(r, slot, st);
}

/* A failed attempt: record it, end it, decide whether to go on.
 * @return MESH_OK to keep going, else the code that ends the call. */
static int on_failure(req_t *r, att_t *a, step_t s, mesh_status_t *st) {
  char endpoint[MESH__HOST_KEY_MAX];
  mesh__strlcpy(endpoint, a->c.host->key, sizeof endpoint);
  char detail[128];
  mesh__strlcpy(detail, s.code == MESH_ERR_BUFFER
                            ? "response larger than the caller's buffer"
                            : mesh_conn_errmsg(a->c.conn),
                sizeof detail);
  mesh__callx_avoid(&r->x, a->c.host);
  end_att(a, s.outcome, s.status);
  int rc = mesh__call_try_error(&r->x, endpoint, s.outcome, s.status, detail);
  if (s.code == MESH_ERR_BUFFER)
    mesh__callx_remember(&r->x, rc = MESH_ERR_BUFFER, r->x.last_msg);
  bool others = live_count(r) > 0;
  if (rc != MESH_ERR_DEADLINE && s.code != MESH_ERR_BUFFER &&
      mesh__retry_wanted(&r->x.retry, s.outcome, s.status)) {
    mesh_status_t tmp;
    int lr = another(r, !others, others ? &tmp : st);
    if (lr == MESH_OK || others)
      return MESH_OK; /* with others in flight a refused retry is no end */
    return lr;
  }
  if (others)
    return MESH_OK;
  return mesh__fail(st, rc, "service \"%s\": %s", r->x.svc->name,
                    r->x.last_msg);
}

/* A complete response on a: the winner, unless its status asks for a
 * retry.  @return 1 won, 0 keep going, < 0 the code that ends the call. */
static int on_done(req_t *r, att_t *a, step_t s, mesh_status_t *st) {
  const mesh__retry_cfg_t *rc = &r->x.retry;
  keep_response(r, a, s.n, s.status);
  if (!mesh__status_is_error(rc, s.status) ||
      !mesh__retry_wanted(rc, MESH__OUT_OK, s.status)) {
    end_att(a, s.n == a->len ? MESH__OUT_OK : MESH__OUT_OK_CLOSE, s.status);
    return 1;
  }
  step_t f = {STEP_FAIL, s.n == a->len ? MESH__OUT_OK : MESH__OUT_OK_CLOSE,
              s.status, 0, 0};
  int e = on_failure(r, a, f, st);
  return e == MESH_OK ? 0 : e;
}

static int64_t next_wake(const req_t *r, int64_t next_hedge) {
  int64_t t = next_hedge;
  if (r->x.deadline_ms && (t == 0 || r->x.deadline_ms < t))
    t = r->x.deadline_ms;
  for (uint32_t i = 0; i < MAX_ATT; i++) {
    int64_t d = r->a[i].live ? r->a[i].c.try_deadline_ms : 0;
    if (d && (t == 0 || d < t))
      t = d;
  }
  return t;
}

/* Drive every live attempt as far as it goes without blocking.
 * @return 1 when the call is decided (*rc set), else 0. */
static int progress(req_t *r, int *rc, mesh_status_t *st) {
  for (uint32_t i = 0; i < MAX_ATT; i++) {
    att_t *a = &r->a[i];
    if (!a->live)
      continue;
    step_t s = step(a, r);
    if (s.kind == STEP_DONE) {
      int w = on_done(r, a, s, st);
      if (w == 0)
        continue;
      *rc = w < 0 ? w : MESH_OK;
      if (w == 1 && mesh__status_is_error(&r->x.retry, s.status))
        *rc = mesh__fail(st, MESH_ERR_UPSTREAM,
                         "service \"%s\": endpoint answered status %d",
                         r->x.svc->name, s.status);
      return 1;
    }
    if (s.kind == STEP_FAIL) {
      *rc = on_failure(r, a, s, st);
      if (*rc != MESH_OK)
        return 1;
    }
  }
  return 0;
}

/* The overall deadline and each attempt's per-try timeout.
 * @return 1 when the call is decided (*rc set), else 0. */
static int expire(req_t *r, int64_t now, int *rc, mesh_status_t *st) {
  if (r->x.deadline_ms && now >= r->x.deadline_ms) {
    cancel_all(r, MESH__OUT_TIMEOUT);
    *rc = mesh__fail(st, MESH_ERR_DEADLINE,
                     "service \"%s\": deadline of %lld ms exceeded (%u "
                     "attempt%s)",
                     r->x.svc->name,
                     (long long)(r->x.deadline_ms - r->x.start_ms), r->started,
                     r->started == 1 ? "" : "s");
    return 1;
  }
  for (uint32_t i = 0; i < MAX_ATT; i++) {
    att_t *a = &r->a[i];
    if (!a->live || !a->c.try_deadline_ms || now < a->c.try_deadline_ms)
      continue;
    *rc = on_failure(r, a, fail_step(MESH__OUT_TIMEOUT), st);
    if (*rc != MESH_OK)
      return 1;
  }
  return 0;
}

/* The hedge timer fired: one more attempt if allowed.  Returns the next
 * time to hedge, 0 for never again. */
static int64_t hedge(req_t *r, int64_t now) {
  if (r->started >= r->max_att)
    return 0;
  mesh_status_t tmp; /* a refused hedge is no error: the others carry on */
  if (another(r, false, &tmp) != MESH_OK)
    return 0;
  atomic_fetch_add(&r->x.rs->hedges, 1);
  return r->started < r->max_att ? now + r->x.rs->cfg->hedge.delay_ms : 0;
}

/* Sleep until an attempt has I/O, a timer is due, or at most a second. */
static void wait_io(req_t *r, int64_t next_hedge) {
  struct pollfd pfd[MAX_ATT];
  nfds_t n = 0;
  for (uint32_t i = 0; i < MAX_ATT; i++) {
    if (!r->a[i].live)
      continue;
    pfd[n].fd = mesh_conn_fd(r->a[i].c.conn);
    pfd[n].events = r->a[i].want;
    pfd[n].revents = 0;
    n++;
  }
  int64_t wake = next_wake(r, next_hedge);
  int ms = 1000;
  if (wake) {
    int64_t d = wake - mesh__now_ms();
    ms = d <= 0 ? 0 : (d < 1000 ? (int)d : 1000);
  }
  poll(pfd, n, ms);
}

static int run(req_t *r, mesh_status_t *st) {
  int rc = launch(r, false, st);
  if (rc != MESH_OK)
    return rc;
  int64_t delay = r->x.rs->cfg->hedge.delay_ms;
  int64_t next_hedge = r->x.hedge && r->max_att > 1 ? mesh__now_ms() + delay
                                                    : 0;
  for (;;) {
    if (progress(r, &rc, st))
      return rc;
    int64_t now = mesh__now_ms();
    if (expire(r, now, &rc, st))
      return rc;
    if (next_hedge && now >= next_hedge) {
      next_hedge = hedge(r, now);
      if (next_hedge && delay == 0)
        continue; /* all at once */
    }
    if (live_count(r) == 0) /* defensive: on_failure ends the call first */
      return mesh__fail(st, r->x.last_rc ? r->x.last_rc : MESH_ERR_INTERNAL,
                        "service \"%s\": %s", r->x.svc->name, r->x.last_msg);
    wait_io(r, next_hedge);
  }
}

int mesh_call_request(mesh_t *m, const char *service,
                      const mesh_call_opts_t *opts, const void *req,
                      size_t req_len, mesh_call_frame_fn frame, void *user,
                      void *resp, size_t resp_cap, size_t *resp_len,
                      int *status_code, mesh_status_t *st) {
  mesh_status_t local; /* the machinery keeps the last message */
  if (!st)
    st = &local;
  mesh__ok(st);
  if (resp_len)
    *resp_len = 0;
  if (status_code)
    *status_code = 0;
  if (!frame || (!req && req_len) || !resp || resp_cap == 0)
    return mesh__fail(st, MESH_ERR_INVALID_ARG,
                      "frame and a response buffer are required");
  req_t *r = calloc(1, sizeof *r);
  if (!r)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  int rc = mesh__callx_init(&r->x, m, service, opts, st);
  if (rc != MESH_OK) {
    free(r);
    return rc;
  }
  r->req = req;
  r->req_len = req_len;
  r->frame = frame;
  r->user = user;
  r->resp = resp;
  r->resp_cap = resp_cap;
  r->resp_len = resp_len;
  r->status_out = status_code;
  /* With hedging, max_attempts bounds every attempt (gRPC); otherwise
   * the first try plus num_retries. */
  if (r->x.hedge) {
    r->max_att = r->x.rs->cfg->hedge.max_attempts;
    r->x.max_retries = r->max_att - 1;
  } else {
    r->max_att = r->x.max_retries + 1; /* one at a time */
  }
  rc = run(r, st);
  cancel_all(r, MESH__OUT_CANCELLED);
  mesh__callx_done(&r->x, rc);
  if (rc != MESH_OK && rc != MESH_ERR_UPSTREAM) {
    /* a response kept from a retried error is not the answer */
    if (resp_len)
      *resp_len = 0;
    if (status_code)
      *status_code = 0;
  }
  mesh__callx_fini(&r->x);
  free(r);
  return rc;
}
