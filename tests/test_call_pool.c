/* SPDX-License-Identifier: Apache-2.0 */
/* The idle connection pool, over plain socket pairs: LIFO reuse, max_idle,
 * idle timeout, and detection before reuse of a peer that closed, reset or
 * sent stray bytes.  Also run under ThreadSanitizer (concurrent put/take). */
#include "helpers.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "resilience/resilience.h"

/* A "connection" is one end of a socketpair; the test keeps the other. */
typedef struct fake {
  int fd, peer;
} fake_t;

static _Atomic int closed;

static int fake_fd(void *c) { return ((fake_t *)c)->fd; }
static void fake_close(void *c, void *user) {
  fake_t *f = c;
  if (user)
    atomic_fetch_add((_Atomic int *)user, 1);
  close(f->fd);
  if (f->peer >= 0)
    close(f->peer);
  free(f);
  atomic_fetch_add(&closed, 1);
}
static const mesh__pool_ops_t ops = {fake_fd, NULL, fake_close, NULL};

static fake_t *fake_new(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return NULL;
  fake_t *f = malloc(sizeof *f);
  f->fd = sv[0];
  f->peer = sv[1];
  return f;
}

static void test_mesh__pool_take(void) {
  atomic_store(&closed, 0);
  mesh__pool_t *p = mesh__pool_new(&ops, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_PTR_NULL(mesh__pool_take(p, 0, 1000, 0));
  fake_t *a = fake_new(), *b = fake_new();
  CU_ASSERT_TRUE(mesh__pool_put(p, a, 100, 4));
  CU_ASSERT_TRUE(mesh__pool_put(p, b, 200, 4));
  CU_ASSERT_EQUAL(mesh__pool_idle(p), 2);
  /* most recently parked first */
  CU_ASSERT_PTR_EQUAL(mesh__pool_take(p, 300, 1000, 0), b);
  CU_ASSERT_PTR_EQUAL(mesh__pool_take(p, 300, 1000, 0), a);
  CU_ASSERT_PTR_NULL(mesh__pool_take(p, 300, 1000, 0));
  CU_ASSERT_EQUAL(atomic_load(&closed), 0);
  fake_close(a, NULL);
  fake_close(b, NULL);
  mesh__pool_free(p);
}

static void test_mesh__pool_put(void) {
  atomic_store(&closed, 0);
  mesh__pool_t *p = mesh__pool_new(&ops, NULL);
  for (int i = 0; i < 3; i++)
    CU_ASSERT_TRUE(mesh__pool_put(p, fake_new(), 0, 3));
  /* the 4th is over max_idle: closed at once, not parked */
  CU_ASSERT_FALSE(mesh__pool_put(p, fake_new(), 0, 3));
  CU_ASSERT_EQUAL(atomic_load(&closed), 1);
  CU_ASSERT_EQUAL(mesh__pool_idle(p), 3);
  /* max_idle 0 means no pooling */
  CU_ASSERT_FALSE(mesh__pool_put(p, fake_new(), 0, 0));
  CU_ASSERT_EQUAL(atomic_load(&closed), 2);
  mesh__pool_free(p); /* closes the 3 parked ones */
  CU_ASSERT_EQUAL(atomic_load(&closed), 5);
  mesh__pool_free(NULL);
  CU_ASSERT_PTR_NULL(mesh__pool_new(NULL, NULL));
}

static void test_mesh__pool_take_dead(void) {
  atomic_store(&closed, 0);
  mesh__pool_t *p = mesh__pool_new(&ops, NULL);
  fake_t *ok = fake_new(), *eof = fake_new(), *stray = fake_new(),
         *rst = fake_new();
  mesh__pool_put(p, ok, 0, 8);
  mesh__pool_put(p, eof, 0, 8);
  mesh__pool_put(p, stray, 0, 8);
  mesh__pool_put(p, rst, 0, 8);
  /* peers: one closes, one sends bytes nobody asked for, one shuts down */
  close(eof->peer);
  eof->peer = -1;
  CU_ASSERT_EQUAL(write(stray->peer, "x", 1), 1);
  shutdown(rst->peer, SHUT_WR);
  /* take skips (and closes) the three, newest first, and returns ok */
  CU_ASSERT_PTR_EQUAL(mesh__pool_take(p, 1, 1000, 0), ok);
  CU_ASSERT_EQUAL(atomic_load(&closed), 3);
  CU_ASSERT_EQUAL(mesh__pool_idle(p), 0);
  fake_close(ok, NULL);
  mesh__pool_free(p);
}

/* pool.check_after_ms: a connection parked less than that long ago is
 * returned without the idle check (even with a closed peer); at that age
 * or older it is checked, and a dead one closed. */
static void test_mesh__pool_take_fresh(void) {
  atomic_store(&closed, 0);
  mesh__pool_t *p = mesh__pool_new(&ops, NULL);
  fake_t *a = fake_new(), *b = fake_new();
  mesh__pool_put(p, a, 0, 8);
  close(a->peer);
  a->peer = -1;
  CU_ASSERT_PTR_EQUAL(mesh__pool_take(p, 9, 1000, 10), a);
  CU_ASSERT_EQUAL(atomic_load(&closed), 0);
  mesh__pool_put(p, a, 100, 8);
  mesh__pool_put(p, b, 100, 8);
  close(b->peer);
  b->peer = -1;
  /* both are 10 ms old: checked, found dead (closed peers), closed */
  CU_ASSERT_PTR_NULL(mesh__pool_take(p, 110, 1000, 10));
  CU_ASSERT_EQUAL(atomic_load(&closed), 2);
  mesh__pool_free(p);
}

static void test_mesh__pool_sweep(void) {
  atomic_store(&closed, 0);
  mesh__pool_t *p = mesh__pool_new(&ops, NULL);
  fake_t *old = fake_new(), *young = fake_new(), *dead = fake_new();
  mesh__pool_put(p, old, 1000, 8);
  mesh__pool_put(p, dead, 1500, 8);
  mesh__pool_put(p, young, 1900, 8);
  close(dead->peer);
  dead->peer = -1;
  /* idle timeout 1000 ms at t=2000: old expired (1000 >= 1000), dead gone */
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, 2000, 1000), 2);
  CU_ASSERT_EQUAL(mesh__pool_idle(p), 1);
  /* expiry also applies on take */
  CU_ASSERT_PTR_NULL(mesh__pool_take(p, 2900, 1000, 0));
  CU_ASSERT_EQUAL(atomic_load(&closed), 3);
  /* idle_timeout 0: never expires */
  fake_t *f = fake_new();
  mesh__pool_put(p, f, 0, 8);
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, INT64_MAX / 2, 0), 0);
  CU_ASSERT_EQUAL(mesh__pool_clear(p), 1);
  CU_ASSERT_EQUAL(atomic_load(&closed), 4);
  mesh__pool_free(p);
}

/* ops.buffers: kept at every put, given back once by the first sweep that
 * finds the connection parked MESH__POOL_TRIM_MS or more. */
typedef struct bfake {
  fake_t f;
  int keeps, trims;
  bool kept; /* state as the last call left it */
} bfake_t;

static void bfake_buffers(void *c, bool keep) {
  bfake_t *b = c;
  if (keep)
    b->keeps++;
  else
    b->trims++;
  b->kept = keep;
}
static void bfake_close(void *c, void *user) {
  (void)user;
  bfake_t *b = c;
  close(b->f.fd);
  close(b->f.peer);
  free(b);
}
static const mesh__pool_ops_t bops = {fake_fd, NULL, bfake_close, NULL,
                                      bfake_buffers};

static bfake_t *bfake_new(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
    return NULL;
  bfake_t *b = calloc(1, sizeof *b);
  b->f.fd = sv[0];
  b->f.peer = sv[1];
  return b;
}

static void test_mesh__pool_buffers(void) {
  mesh__pool_t *p = mesh__pool_new(&bops, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  bfake_t *a = bfake_new(), *b = bfake_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(a);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  const int64_t T = MESH__POOL_TRIM_MS;
  CU_ASSERT_TRUE(mesh__pool_put(p, a, 1000, 4));
  CU_ASSERT_TRUE(mesh__pool_put(p, b, 1000 + T / 2, 4));
  CU_ASSERT(a->keeps == 1 && a->kept && a->trims == 0);
  /* young: nothing given back */
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, 1000 + T - 1, 0), 0);
  CU_ASSERT(a->trims == 0 && b->trims == 0);
  /* a parked T: its buffers back, once; b still young */
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, 1000 + T, 0), 0);
  CU_ASSERT(a->trims == 1 && !a->kept && b->trims == 0);
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, 1000 + T + T / 2, 0), 0);
  CU_ASSERT(a->trims == 1 && b->trims == 1 && !b->kept);
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, 1000 + 10 * T, 0), 0);
  CU_ASSERT(a->trims == 1 && b->trims == 1);
  CU_ASSERT_EQUAL(mesh__pool_idle(p), 2);
  /* taken and parked again: kept again, trimmed again once idle */
  CU_ASSERT_PTR_EQUAL(mesh__pool_take(p, 1000 + 10 * T, 0, 0), b);
  CU_ASSERT_TRUE(mesh__pool_put(p, b, 1000 + 10 * T, 4));
  CU_ASSERT(b->keeps == 2 && b->kept);
  CU_ASSERT_EQUAL(mesh__pool_sweep(p, 1000 + 11 * T, 0), 0);
  CU_ASSERT(b->trims == 2 && !b->kept && a->trims == 1);
  mesh__pool_free(p);
}

static void test_mesh__pool_fd_alive(void) {
  int sv[2];
  CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CU_ASSERT_TRUE(mesh__pool_fd_alive(sv[0]));
  close(sv[1]);
  CU_ASSERT_FALSE(mesh__pool_fd_alive(sv[0]));
  close(sv[0]);
  CU_ASSERT_FALSE(mesh__pool_fd_alive(-1));
}

/* ---- concurrent put/take ------------------------------------------------------ */

static void *churn(void *arg) {
  mesh__pool_t *p = arg;
  for (int i = 0; i < 2000; i++) {
    void *c = mesh__pool_take(p, i, 0, 0);
    if (!c)
      c = fake_new();
    mesh__pool_put(p, c, i, 4);
  }
  return NULL;
}

static void test_mesh__pool_threads(void) {
  atomic_store(&closed, 0);
  mesh__pool_t *p = mesh__pool_new(&ops, NULL);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, churn, p);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  CU_ASSERT(mesh__pool_idle(p) <= 4);
  CU_ASSERT(mesh__pool_idle(p) >= 1);
  mesh__pool_free(p);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("pool", NULL, NULL);
  CU_add_test(s, "mesh__pool_take", test_mesh__pool_take);
  CU_add_test(s, "mesh__pool_put", test_mesh__pool_put);
  CU_add_test(s, "mesh__pool_take_dead", test_mesh__pool_take_dead);
  CU_add_test(s, "mesh__pool_take: check_after_ms", test_mesh__pool_take_fresh);
  CU_add_test(s, "mesh__pool_sweep", test_mesh__pool_sweep);
  CU_add_test(s, "mesh__pool_sweep: buffers back after MESH__POOL_TRIM_MS",
              test_mesh__pool_buffers);
  CU_add_test(s, "mesh__pool_fd_alive", test_mesh__pool_fd_alive);
  CU_add_test(s, "mesh__pool_threads", test_mesh__pool_threads);
}

int main(void) { return th_run_suites("test_call_pool", add); }
