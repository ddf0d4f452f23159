/* SPDX-License-Identifier: Apache-2.0 */
/* Retry policy: which outcomes to retry (the jittered backoff is core/rand.c),
 * and the retry budget (Envoy's semantics and defaults). */
#include "resilience/resilience.h"

#include <pthread.h>

static bool code_listed(const mesh__retry_cfg_t *rc, int status) {
  for (size_t i = 0; i < rc->ncodes; i++)
    if (rc->codes[i] == status)
      return true;
  return false;
}

bool mesh__retry_wanted(const mesh__retry_cfg_t *rc, int outcome, int status) {
  unsigned on = rc->retry_on;
  switch (outcome) {
  case MESH__OUT_CONNECT_FAILURE:
    /* Envoy: 5xx, gateway-error and reset all include connect failures. */
    return (on & (MESH__RETRY_CONNECT_FAILURE | MESH__RETRY_RESET |
                  MESH__RETRY_5XX | MESH__RETRY_GATEWAY_ERROR)) != 0;
  case MESH__OUT_RESET:
  case MESH__OUT_TIMEOUT:
    /* A reset or a per-try timeout becomes a 503/504 in Envoy's router. */
    return (on & (MESH__RETRY_RESET | MESH__RETRY_5XX |
                  MESH__RETRY_GATEWAY_ERROR)) != 0;
  case MESH__OUT_PROTOCOL_ERROR:
    return (on & MESH__RETRY_5XX) != 0;
  case MESH__OUT_OK:
  case MESH__OUT_OK_CLOSE:
    if ((on & MESH__RETRY_5XX) && status >= 500 && status <= 599)
      return true;
    if ((on & MESH__RETRY_GATEWAY_ERROR) && status >= 502 && status <= 504)
      return true;
    if ((on & MESH__RETRY_STATUS_CODES) && status > 0 && code_listed(rc, status))
      return true;
    return false;
  default:
    return false;
  }
}

bool mesh__status_is_error(const mesh__retry_cfg_t *rc, int status) {
  if (status >= 500 && status <= 599)
    return true;
  return (rc->retry_on & MESH__RETRY_STATUS_CODES) && status > 0 &&
         code_listed(rc, status);
}

int64_t mesh__retry_limit(const mesh__retry_cfg_t *rc, const mesh__cb_cfg_t *cb,
                          int64_t active, int64_t pending) {
  if (!rc->budget)
    return cb->max_retries;
  if (active < 0)
    active = 0;
  if (pending < 0)
    pending = 0;
  /* Envoy: budget_percent of the active and pending requests, and never
   * fewer than min_retry_concurrency. */
  int64_t lim = (int64_t)(rc->budget_percent / 100.0 * (double)(active + pending));
  if (lim < (int64_t)rc->min_retry_concurrency)
    lim = rc->min_retry_concurrency;
  return lim;
}

bool mesh__retry_admit(mesh__breakers_t *b, const mesh__retry_cfg_t *rc,
                       const mesh__cb_cfg_t *cb) {
  /* Every try holds a request slot, also while it waits for a connection
   * (and is then counted in pending as well): Envoy's active + pending is
   * our requests. */
  int64_t req = atomic_load(&b->requests), pend = atomic_load(&b->pending);
  if (pend > req)
    pend = req;
  int64_t lim = mesh__retry_limit(rc, cb, req - pend, pend);
  return mesh__breaker_take(&b->retries, lim, &b->ov_retries);
}
