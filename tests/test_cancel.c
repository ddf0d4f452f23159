/* SPDX-License-Identifier: Apache-2.0 */
/* Cancel tokens (include/mesh/cancel.h, libmesh/core/cancel.c): firing,
 * the readable fd, the wakeup fd, and a sleep cut short from another
 * thread.  The call layer's use (a retry backoff ended by a token) is
 * tested through the Go binding (TestCallContextCutsBackoff) and Python
 * (tests/test_interrupt.py). */
#include <mesh/mesh.h>

#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "core/cancel_int.h"
#include "core/core.h"
#include "helpers.h"

static void test_cancel_basics(void) {
  CU_ASSERT_EQUAL(mesh_cancel_new(NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_cancel_fire(NULL), MESH_ERR_INVALID_ARG);
  CU_ASSERT_EQUAL(mesh_cancel_fired(NULL), 0);
  CU_ASSERT_EQUAL(mesh_cancel_fd(NULL), -1);
  CU_ASSERT_EQUAL(mesh_cancel_wakeup_fd(NULL), -1);
  mesh_cancel_free(NULL);
  mesh_cancel_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_cancel_new(&c), MESH_OK);
  CU_ASSERT_EQUAL(mesh_cancel_fired(c), 0);
  struct pollfd p = {.fd = mesh_cancel_fd(c), .events = POLLIN};
  CU_ASSERT_EQUAL(poll(&p, 1, 0), 0);
  CU_ASSERT_EQUAL(mesh_cancel_fire(c), MESH_OK);
  CU_ASSERT_EQUAL(mesh_cancel_fire(c), MESH_OK); /* idempotent */
  CU_ASSERT_EQUAL(mesh_cancel_fired(c), 1);
  CU_ASSERT_EQUAL(poll(&p, 1, 0), 1);
  CU_ASSERT_TRUE(mesh__cancel_sleep(c, 10000)); /* at once */
  mesh_cancel_free(c);
}

static void test_cancel_wakeup_fd(void) {
  mesh_cancel_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_cancel_new(&c), MESH_OK);
  char sig = 2; /* what a signal handler's wakeup write looks like */
  CU_ASSERT_EQUAL(write(mesh_cancel_wakeup_fd(c), &sig, 1), 1);
  CU_ASSERT_EQUAL(mesh_cancel_fired(c), 1);
  mesh_cancel_free(c);
}

static void *fire_later(void *arg) {
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  mesh_cancel_fire(arg);
  return NULL;
}

static void test_cancel_cuts_sleep(void) {
  /* Unfired: the sleep lasts its time and reports no cancel. */
  int64_t t0 = mesh__now_ms();
  CU_ASSERT_FALSE(mesh__cancel_sleep(NULL, 20));
  CU_ASSERT_TRUE(mesh__now_ms() - t0 >= 20);
  mesh_cancel_t *c = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh_cancel_new(&c), MESH_OK);
  pthread_t t;
  pthread_create(&t, NULL, fire_later, c);
  t0 = mesh__now_ms();
  CU_ASSERT_TRUE(mesh__cancel_sleep(c, 60000));
  /* fired after 100 ms; a generous cap for a loaded machine/valgrind */
  CU_ASSERT_TRUE(mesh__now_ms() - t0 < 20000);
  pthread_join(t, NULL);
  mesh_cancel_free(c);
}

static void add(void) {
  CU_pSuite s = CU_add_suite("cancel", NULL, NULL);
  CU_add_test(s, "basics", test_cancel_basics);
  CU_add_test(s, "wakeup_fd", test_cancel_wakeup_fd);
  CU_add_test(s, "cuts_sleep", test_cancel_cuts_sleep);
}

int main(void) { return th_run_suites("test_cancel", add); }
