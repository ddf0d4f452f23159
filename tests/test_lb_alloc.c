/* SPDX-License-Identifier: Apache-2.0 */
/* The pick path does no heap allocation: this program counts the
 * allocations made while picks run and expects none — for every policy,
 * with subsets, splits, localities, priorities, retries and health-view
 * refreshes in the mix.
 *
 * Counting: the plain build replaces malloc, calloc and realloc (glibc lets
 * an executable interpose them; valgrind still sees the calls through
 * __libc_malloc).  Under AddressSanitizer or ThreadSanitizer the sanitizer
 * owns malloc, so its allocation hook counts instead. */
#include "test_lb_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TLB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TLB_SANITIZED 1
#endif
#endif

static _Atomic bool counting;
static _Atomic long allocations;

static void count(void) {
  if (atomic_load_explicit(&counting, memory_order_relaxed))
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

#ifdef TLB_SANITIZED
/* sanitizer/allocator_interface.h (not shipped with GCC 12) */
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *));

static void on_malloc(const volatile void *p, size_t n) {
  (void)p;
  (void)n;
  count();
}

static void on_free(const volatile void *p) { (void)p; }

static void install(void) {
  __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);

void *malloc(size_t n) {
  count();
  return __libc_malloc(n);
}

void *calloc(size_t n, size_t m) {
  count();
  return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n) {
  count();
  return __libc_realloc(p, n);
}

static void install(void) {}
#endif

static const char *const policies[] = {"round_robin", "random",
                                       "least_request", "peak_ewma",
                                       "ring_hash", "maglev"};

static const tlb_ep_t eps[] = {
  {"127.10.0.1", 80, 1, 0, "r", "a", "{\"v\":\"1\"}"},
  {"127.10.0.2", 80, 2, 0, "r", "a", "{\"v\":\"1\"}"},
  {"127.10.0.3", 80, 3, 0, "r", "b", "{\"v\":\"1\"}"},
  {"127.10.0.4", 80, 1, 0, "r", "b", "{\"v\":\"2\"}"},
  {"127.10.0.5", 80, 1, 0, "r", "c", "{\"v\":\"2\"}"},
  {"127.10.0.6", 80, 2, 0, "r", "c", "{\"v\":\"1\"}"},
  {"127.10.1.1", 80, 1, 1, "r", "a", "{\"v\":\"1\"}"},
  {"127.10.1.2", 80, 1, 1, "r", "b", "{\"v\":\"2\"}"},
};

static void picks(const char *extra) {
  for (size_t p = 0; p < 6; p++) {
    char json[512];
    snprintf(json, sizeof json,
             "{\"lb\":{\"policy\":\"%s\"%s},"
             "\"subsets\":{\"one\":{\"v\":\"1\"}},"
             "\"split\":[{\"subset\":\"one\",\"weight\":9},"
             "{\"subset\":{\"v\":\"2\"},\"weight\":1}]}",
             policies[p], extra);
    tlb_svc_t *t = tlb_svc(json, "{\"region\":\"r\",\"zone\":\"a\"}");
    mesh__snapshot_t *s = tlb_snap(eps, 8);
    CU_ASSERT_FATAL(t && s);
    CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
    tlb_set_health(s->hosts[1], MESH__HEALTH_UNHEALTHY);
    mesh__lb_rand(); /* the RNG's lazy seeding is outside the window */
    int64_t now = mesh__now_ms();
    long failed = 0;
    atomic_store(&allocations, 0);
    atomic_store(&counting, true);
    for (int i = 0; i < 20000; i++) {
      char key[16] = "key-0000";
      key[4 + i % 4] = (char)('0' + i % 10);
      mesh__host_t *tried = s->hosts[i % 8];
      mesh__lb_ctx_t ctx = {
        .hash_key = key,
        .hash_key_len = 8,
        .sticky_key = (i & 1) ? key : NULL,
        .sticky_key_len = 8,
        .avoid = &tried,
        .navoid = (size_t)(i % 3 == 0),
        .subset = (i % 11 == 0) ? "one" : NULL,
        /* time moves on: health views are recomputed inside picks */
        .now_ms = now + i / 10,
      };
      mesh__host_t *h = NULL;
      failed += mesh__lb_pick(&t->svc, s, &ctx, &h) != MESH_OK;
      mesh__lb_begin(h);
      mesh__lb_end(h);
      mesh__lb_report(h, 1000 * (i % 9), i % 5 != 0);
    }
    mesh__lb_refresh(s, now);
    atomic_store(&counting, false);
    long n = atomic_load(&allocations);
    if (n)
      fprintf(stderr, "%s%s: %ld allocations in picks\n", policies[p], extra,
              n);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(failed, 0);
    mesh__snap_release(s);
    tlb_svc_free(t);
  }
}

static void test_mesh__lb_pick_no_alloc(void) { picks(""); }

static void test_mesh__lb_pick_no_alloc_locality(void) {
  picks(",\"locality_weighted\":true");
}

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_alloc", NULL, NULL);
  CU_add_test(s, "mesh__lb_pick allocates nothing",
              test_mesh__lb_pick_no_alloc);
  CU_add_test(s, "mesh__lb_pick allocates nothing (locality_weighted)",
              test_mesh__lb_pick_no_alloc_locality);
}

int main(void) {
  install();
  return th_run_suites("test_lb_alloc", add);
}
