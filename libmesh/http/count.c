/* SPDX-License-Identifier: Apache-2.0 */
/* mesh_http_requests_total{service,code}: one counter per service and
 * status code, registered on first use.  A service's slots are allocated
 * at its first counted request (4.8 KB each; thousands of services that
 * never carry an HTTP request through the L7 layer need none). */
#include <stdio.h>
#include <stdlib.h>

#include "http/http.h"

/* svc's series slots, allocated by the first caller (a racing one frees
 * its copy and takes the winner's); NULL when out of memory. */
static struct mesh__http_codes *svc_codes(struct mesh__http_svc *hs) {
  struct mesh__http_codes *t =
      atomic_load_explicit(&hs->by_code, memory_order_acquire);
  if (t)
    return t;
  struct mesh__http_codes *n = calloc(1, sizeof *n);
  if (!n)
    return NULL;
  if (atomic_compare_exchange_strong_explicit(&hs->by_code, &t, n,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
    return n;
  free(n);
  return t;
}

void mesh__http_count(mesh_t *m, mesh__service_t *svc, int code) {
  if (!m || !m->http || (svc && !svc->http))
    return;
  int idx = code >= 100 && code < MESH__HTTP_CODES ? code : 0;
  struct mesh__http_codes *t = svc ? svc_codes(svc->http) : NULL;
  if (svc && !t)
    return; /* out of memory: not counted */
  _Atomic(mesh__metric_t *) *slot = svc ? &t->c[idx] : &m->http->inbound[idx];
  mesh__metric_t *c = atomic_load_explicit(slot, memory_order_acquire);
  if (!c) {
    /* Registration is idempotent: a race registers the same series. */
    char labels[200], num[8];
    snprintf(num, sizeof num, "%d", idx);
    snprintf(labels, sizeof labels, "service=%s,code=%s",
             svc ? svc->name : "inbound", idx ? num : "error");
    c = mesh__counter(m, "mesh_http_requests_total",
                      "HTTP requests through the L7 layer, by service "
                      "(\"inbound\" for requests served) and status code.",
                      labels);
    atomic_store_explicit(slot, c, memory_order_release);
  }
  mesh__counter_add(c, 1);
}
