/* The call layer: dialing a configured service through pick, pool and
 * breakers.  (Work in progress: the call API lands with the lb and tls
 * parts.) */
#include "resilience/resilience.h"

/* ---- pools of mesh_conn_t per host ---------------------------------------- */

static int conn_fd(void *c) { return mesh_conn_fd(c); }
static void conn_close(void *c) { mesh_conn_close(c); }
static const mesh__pool_ops_t conn_ops = {conn_fd, conn_close};

static void pool_free_cb(void *p) { mesh__pool_free(p); }

mesh__pool_t *mesh__res_pool(mesh__host_t *h) {
  if (!h)
    return NULL;
  mesh__pool_t *p = mesh__res_pool_peek(h);
  if (p)
    return p;
  p = mesh__pool_new(&conn_ops);
  if (!p)
    return NULL;
  __atomic_store_n(&h->pool_free, pool_free_cb, __ATOMIC_RELEASE);
  void *expected = NULL;
  if (__atomic_compare_exchange_n(&h->pool, &expected, p, false,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return p;
  mesh__pool_free(p);
  return expected;
}

mesh__snapshot_t *mesh__res_snapshot(mesh__service_t *svc) {
  (void)svc; /* discovery's per-service publication point: not merged yet */
  return NULL;
}

int mesh__dial_service(mesh_t *m, mesh__service_t *svc,
                       const mesh_dial_opts_t *opts, mesh_conn_t **out,
                       mesh_status_t *st) {
  (void)m;
  (void)opts;
  (void)out;
  return mesh__fail(st, MESH_ERR_UNSUPPORTED,
                    "dialing service \"%s\" by name needs the call layer",
                    svc ? svc->name : "?");
}
