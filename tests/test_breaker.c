/* SPDX-License-Identifier: Apache-2.0 */
/* Circuit breakers: exact limits, never below zero, overflow counting, and
 * the limit holding under contention (also run under ThreadSanitizer). */
#include "helpers.h"

#include <pthread.h>

#include "resilience/resilience.h"

static void test_mesh__breaker_take(void) {
  static const struct {
    int64_t start, max;
    bool want;
    int64_t after;
  } cases[] = {
      {0, 1, true, 1},  {1, 1, false, 1},       {0, 0, false, 0},
      {1023, 1024, true, 1024}, {1024, 1024, false, 1024},
      {5, 3, false, 5}, /* a lowered limit refuses, never takes */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    _Atomic int64_t c = cases[i].start;
    _Atomic uint64_t ov = 0;
    CU_ASSERT_EQUAL(mesh__breaker_take(&c, cases[i].max, &ov), cases[i].want);
    CU_ASSERT_EQUAL(atomic_load(&c), cases[i].after);
    CU_ASSERT_EQUAL(atomic_load(&ov), cases[i].want ? 0u : 1u);
  }
  _Atomic int64_t c = 0;
  CU_ASSERT_TRUE(mesh__breaker_take(&c, 2, NULL));
  CU_ASSERT_TRUE(mesh__breaker_take(&c, 2, NULL));
  CU_ASSERT_FALSE(mesh__breaker_take(&c, 2, NULL));
}

static void test_mesh__breaker_give(void) {
  _Atomic int64_t c = 2;
  mesh__breaker_give(&c);
  CU_ASSERT_EQUAL(atomic_load(&c), 1);
  mesh__breaker_give(&c);
  mesh__breaker_give(&c); /* an unmatched give must not go negative */
  CU_ASSERT_EQUAL(atomic_load(&c), 0);
  CU_ASSERT_TRUE(mesh__breaker_take(&c, 1, NULL));
  CU_ASSERT_FALSE(mesh__breaker_take(&c, 1, NULL));
}

/* ---- contention ------------------------------------------------------------ */

#define LIMIT 3
#define ROUNDS 20000

struct shared {
  _Atomic int64_t ctr;
  _Atomic uint64_t ov;
  _Atomic int inside;     /* holders right now, counted independently */
  _Atomic int max_inside;
  _Atomic uint64_t taken;
};

static void *hammer(void *arg) {
  struct shared *s = arg;
  for (int i = 0; i < ROUNDS; i++) {
    if (!mesh__breaker_take(&s->ctr, LIMIT, &s->ov))
      continue;
    atomic_fetch_add(&s->taken, 1);
    int in = atomic_fetch_add(&s->inside, 1) + 1;
    int m = atomic_load(&s->max_inside);
    while (in > m && !atomic_compare_exchange_weak(&s->max_inside, &m, in)) {
    }
    atomic_fetch_sub(&s->inside, 1);
    mesh__breaker_give(&s->ctr);
  }
  return NULL;
}

static void test_mesh__breaker_take_threads(void) {
  struct shared s = {0};
  pthread_t t[8];
  for (int i = 0; i < 8; i++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, hammer, &s), 0);
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  CU_ASSERT(atomic_load(&s.max_inside) <= LIMIT);
  CU_ASSERT(atomic_load(&s.max_inside) >= 1);
  CU_ASSERT_EQUAL(atomic_load(&s.taken) + atomic_load(&s.ov),
                  (uint64_t)8 * ROUNDS);
  CU_ASSERT_EQUAL(atomic_load(&s.ctr), 0);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("breaker", NULL, NULL);
  CU_add_test(s, "mesh__breaker_take", test_mesh__breaker_take);
  CU_add_test(s, "mesh__breaker_give", test_mesh__breaker_give);
  CU_add_test(s, "mesh__breaker_take_threads", test_mesh__breaker_take_threads);
}

int main(void) { return th_run_suites("test_breaker", add); }
