/* SPDX-License-Identifier: Apache-2.0 */
/* Endpoint model: hosts, snapshot building with host reuse, and the
 * lock-free publication point under concurrent readers. */
#include "helpers.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint/endpoint.h"

/* ---- hosts ---------------------------------------------------------------- */

struct host_case {
  const char *address;
  uint16_t port;
  bool resolved;
  int family;
  const char *key;
};

static const struct host_case host_cases[] = {
  {"127.10.0.1", 8080, true, AF_INET, "127.10.0.1:8080"},
  {"::1", 443, true, AF_INET6, "[::1]:443"},
  {"2001:db8::7", 1, true, AF_INET6, "[2001:db8::7]:1"},
  {"payments.internal", 9000, false, 0, "payments.internal:9000"},
  {"127.10.0.256", 80, false, 0, "127.10.0.256:80"},
};

static void test_mesh__host_new(void) {
  for (size_t i = 0; i < sizeof host_cases / sizeof host_cases[0]; i++) {
    const struct host_case *tc = &host_cases[i];
    mesh__host_t *h = mesh__host_new(tc->address, tc->port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_STRING_EQUAL(h->address, tc->address);
    CU_ASSERT_EQUAL(h->port, tc->port);
    CU_ASSERT_EQUAL(h->resolved, tc->resolved);
    CU_ASSERT_STRING_EQUAL(h->key, tc->key);
    CU_ASSERT_EQUAL(h->weight, 1);
    CU_ASSERT_EQUAL(h->source_health, MESH__HEALTH_UNKNOWN);
    if (tc->resolved) {
      CU_ASSERT_EQUAL(h->sa.ss_family, tc->family);
      uint16_t p = tc->family == AF_INET
                       ? ((struct sockaddr_in *)&h->sa)->sin_port
                       : ((struct sockaddr_in6 *)&h->sa)->sin6_port;
      CU_ASSERT_EQUAL(ntohs(p), tc->port);
    }
    mesh__host_ref(h);
    CU_ASSERT_EQUAL(atomic_load(&h->refs), 2);
    mesh__host_unref(h);
    mesh__host_unref(h);
  }
  /* a long hostname: the key is cut, but keeps its port */
  char longname[200];
  memset(longname, 'h', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  mesh__host_t *h = mesh__host_new(longname, 65535);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  CU_ASSERT_EQUAL(strlen(h->key), MESH__HOST_KEY_MAX - 1);
  CU_ASSERT_STRING_EQUAL(h->key + strlen(h->key) - 6, ":65535");
  CU_ASSERT_STRING_EQUAL(h->address, longname);
  mesh__host_unref(h);
  h = mesh__host_new("2001:db8:1111:2222:3333:4444:5555:6666", 8);
  CU_ASSERT_STRING_EQUAL(h->key, "[2001:db8:1111:2222:3333:4444:5555:6666]:8");
  mesh__host_unref(h);
  CU_ASSERT_PTR_NULL(mesh__host_new(NULL, 1));
  mesh__host_unref(NULL);
}

static int freed_res;
static void count_res_free(struct mesh__res_host *p) {
  (void)p;
  freed_res++;
}
static void count_pool_free(struct mesh__pool *p) {
  (void)p;
  freed_res++;
}
static const mesh__host_state_ops_t count_ops = {count_res_free,
                                                 count_pool_free};

static void test_mesh__host_unref(void) {
  /* Owned per-host state of other parts is freed with the host, through
   * the ops its part registered. */
  mesh__host_state_ops_set(&count_ops);
  mesh__host_t *h = mesh__host_new("127.10.0.1", 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(h);
  static int dummy;
  h->res = (struct mesh__res_host *)&dummy;
  h->pool = (struct mesh__pool *)&dummy;
  freed_res = 0;
  mesh__host_ref(h);
  mesh__host_unref(h);
  CU_ASSERT_EQUAL(freed_res, 0);
  mesh__host_unref(h);
  CU_ASSERT_EQUAL(freed_res, 2);
  mesh__host_state_ops_set(NULL);
}

struct usable_case {
  int source, hc;
  int64_t ejected_until, now;
  bool want;
};

static const struct usable_case usable_cases[] = {
  {MESH__HEALTH_UNKNOWN, MESH__HEALTH_UNKNOWN, 0, 1000, true},
  {MESH__HEALTH_HEALTHY, MESH__HEALTH_HEALTHY, 0, 1000, true},
  {MESH__HEALTH_UNHEALTHY, MESH__HEALTH_UNKNOWN, 0, 1000, false},
  {MESH__HEALTH_DRAINING, MESH__HEALTH_HEALTHY, 0, 1000, false},
  {MESH__HEALTH_HEALTHY, MESH__HEALTH_UNHEALTHY, 0, 1000, false},
  {MESH__HEALTH_HEALTHY, MESH__HEALTH_HEALTHY, 2000, 1000, false},
  {MESH__HEALTH_HEALTHY, MESH__HEALTH_HEALTHY, 1000, 1000, true},
  {MESH__HEALTH_HEALTHY, MESH__HEALTH_HEALTHY, 500, 1000, true},
};

static void test_mesh__host_usable(void) {
  for (size_t i = 0; i < sizeof usable_cases / sizeof usable_cases[0]; i++) {
    const struct usable_case *tc = &usable_cases[i];
    mesh__host_t *h = mesh__host_new("127.11.1.1", 80);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    h->source_health = tc->source;
    atomic_store(&h->hc_health, tc->hc);
    atomic_store(&h->ejected_until_ms, tc->ejected_until);
    if (mesh__host_usable(h, tc->now) != tc->want)
      fprintf(stderr, "usable case %zu failed\n", i);
    CU_ASSERT_EQUAL(mesh__host_usable(h, tc->now), tc->want);
    mesh__host_unref(h);
  }
  CU_ASSERT_FALSE(mesh__host_usable(NULL, 0));
}

/* ---- snapshot building ---------------------------------------------------- */

static mesh__ep_t ep(const char *addr, uint16_t port, uint32_t weight) {
  mesh__ep_t e = {.address = addr, .port = port, .weight = weight,
                  .health = MESH__HEALTH_HEALTHY};
  return e;
}

static mesh__host_t *find_host(const mesh__snapshot_t *s, const char *addr,
                               uint16_t port) {
  for (size_t i = 0; i < s->n; i++)
    if (s->hosts[i]->port == port && strcmp(s->hosts[i]->address, addr) == 0)
      return s->hosts[i];
  return NULL;
}

static void test_mesh__snap_build(void) {
  cJSON *labels = cJSON_Parse("{\"version\":\"v2\",\"az\":\"a\"}");
  mesh__ep_t v1[] = {ep("127.10.0.2", 80, 1), ep("127.10.0.1", 80, 2),
                     ep("127.10.0.1", 81, 1), ep("127.10.0.2", 80, 9)};
  v1[1].region = "eu";
  v1[1].zone = "eu-1";
  v1[1].labels = labels;
  mesh__snapshot_t *s1 = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__snap_build(NULL, v1, 4, &s1), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s1);
  /* the repeated 127.10.0.2:80 keeps its first entry (weight 1) */
  CU_ASSERT_EQUAL(s1->n, 3);
  CU_ASSERT_STRING_EQUAL(s1->hosts[0]->key, "127.10.0.1:80");
  CU_ASSERT_STRING_EQUAL(s1->hosts[1]->key, "127.10.0.1:81");
  CU_ASSERT_STRING_EQUAL(s1->hosts[2]->key, "127.10.0.2:80");
  CU_ASSERT_EQUAL(s1->hosts[2]->weight, 1);
  mesh__host_t *h1 = s1->hosts[0];
  CU_ASSERT_EQUAL(h1->weight, 2);
  CU_ASSERT_STRING_EQUAL(h1->region, "eu");
  CU_ASSERT_STRING_EQUAL(h1->zone, "eu-1");
  CU_ASSERT_PTR_NULL(h1->subzone);
  CU_ASSERT_EQUAL(h1->nlabels, 2);
  CU_ASSERT_STRING_EQUAL(h1->labels[0].key, "az"); /* sorted */
  CU_ASSERT_STRING_EQUAL(mesh__host_label(h1, "version"), "v2");
  CU_ASSERT_PTR_NULL(mesh__host_label(h1, "nope"));

  /* the same set again (any order): nothing to publish */
  mesh__ep_t same[] = {v1[2], v1[0], v1[1]};
  mesh__snapshot_t *s_same = (mesh__snapshot_t *)1;
  CU_ASSERT_EQUAL(mesh__snap_build(s1, same, 3, &s_same), MESH_OK);
  CU_ASSERT_PTR_NULL(s_same);

  /* live state on the hosts that stay */
  atomic_store(&find_host(s1, "127.10.0.1", 81)->active_rq, 7);
  atomic_store(&find_host(s1, "127.10.0.2", 80)->ejected_until_ms, 12345);
  atomic_store(&find_host(s1, "127.10.0.2", 80)->hc_health,
               MESH__HEALTH_UNHEALTHY);

  /* drop 127.10.0.1:80, change weight of 127.10.0.2:80, add 127.10.0.3:80 */
  mesh__ep_t v2[] = {ep("127.10.0.3", 80, 1), ep("127.10.0.2", 80, 5), v1[2]};
  mesh__snapshot_t *s2 = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__snap_build(s1, v2, 3, &s2), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
  CU_ASSERT_EQUAL(s2->n, 3);
  CU_ASSERT_PTR_NULL(find_host(s2, "127.10.0.1", 80));
  mesh__host_t *kept = find_host(s2, "127.10.0.1", 81);
  CU_ASSERT_PTR_EQUAL(kept, find_host(s1, "127.10.0.1", 81));
  CU_ASSERT_EQUAL(atomic_load(&kept->active_rq), 7);
  CU_ASSERT_EQUAL(atomic_load(&kept->refs), 2); /* held by s1 and s2 */
  mesh__host_t *changed = find_host(s2, "127.10.0.2", 80);
  CU_ASSERT_PTR_NOT_EQUAL(changed, find_host(s1, "127.10.0.2", 80));
  CU_ASSERT_EQUAL(changed->weight, 5);
  CU_ASSERT_EQUAL(atomic_load(&changed->ejected_until_ms), 12345);
  CU_ASSERT_EQUAL(atomic_load(&changed->hc_health), MESH__HEALTH_UNHEALTHY);

  /* a label change is a change too */
  cJSON *labels2 = cJSON_Parse("{\"version\":\"v3\",\"az\":\"a\"}");
  mesh__ep_t v3[] = {v2[0], v2[1], v2[2]};
  v3[0].labels = labels2;
  mesh__snapshot_t *s3 = NULL;
  CU_ASSERT_EQUAL(mesh__snap_build(s2, v3, 3, &s3), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s3);
  CU_ASSERT_STRING_EQUAL(mesh__host_label(find_host(s3, "127.10.0.3", 80),
                                          "version"),
                         "v3");
  CU_ASSERT_PTR_EQUAL(find_host(s3, "127.10.0.1", 81), kept);

  /* to empty, and empty to empty */
  mesh__snapshot_t *s4 = NULL, *s5 = (mesh__snapshot_t *)1;
  CU_ASSERT_EQUAL(mesh__snap_build(s3, NULL, 0, &s4), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s4);
  CU_ASSERT_EQUAL(s4->n, 0);
  CU_ASSERT_EQUAL(mesh__snap_build(s4, NULL, 0, &s5), MESH_OK);
  CU_ASSERT_PTR_NULL(s5);
  CU_ASSERT_EQUAL(mesh__snap_build(s4, NULL, 2, &s5), MESH_ERR_INVALID_ARG);

  mesh__snap_release(s1);
  CU_ASSERT_EQUAL(atomic_load(&kept->refs), 2); /* s2, s3 */
  mesh__snap_release(s2);
  mesh__snap_release(s3);
  mesh__snap_release(s4);
  mesh__snap_release(NULL);
  cJSON_Delete(labels);
  cJSON_Delete(labels2);
}

/* 10,000 endpoints: every host present once, and a one-host change reuses
 * the other 9,999.  Prints the time of each update (bench/ keeps figures). */
static void test_mesh__snap_build_10k(void) {
  enum { N = 10000 };
  char(*addr)[32] = calloc(N, sizeof *addr);
  mesh__ep_t *eps = calloc(N, sizeof *eps);
  CU_ASSERT_PTR_NOT_NULL_FATAL(addr);
  CU_ASSERT_PTR_NOT_NULL_FATAL(eps);
  for (int i = 0; i < N; i++) {
    snprintf(addr[i], sizeof addr[i], "127.%d.%d.%d", 10 + (i >> 16),
             (i >> 8) & 255, i & 255);
    eps[i] = ep(addr[i], 8080, 1 + (uint32_t)(i % 3));
    eps[i].zone = i % 2 ? "z1" : "z2";
  }
  int64_t t0 = mesh__now_ns();
  mesh__snapshot_t *s1 = NULL, *s2 = NULL, *s3 = (mesh__snapshot_t *)1;
  CU_ASSERT_EQUAL_FATAL(mesh__snap_build(NULL, eps, N, &s1), MESH_OK);
  int64_t t1 = mesh__now_ns();
  CU_ASSERT_EQUAL_FATAL(s1->n, N);
  for (size_t i = 1; i < s1->n; i++)
    CU_ASSERT(strcmp(s1->hosts[i - 1]->address, s1->hosts[i]->address) < 0);
  eps[1234].weight = 77;
  int64_t t2 = mesh__now_ns();
  CU_ASSERT_EQUAL_FATAL(mesh__snap_build(s1, eps, N, &s2), MESH_OK);
  int64_t t3 = mesh__now_ns();
  CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
  CU_ASSERT_EQUAL(s2->n, N);
  size_t same = 0;
  for (size_t i = 0; i < N; i++)
    same += s1->hosts[i] == s2->hosts[i];
  CU_ASSERT_EQUAL(same, N - 1);
  CU_ASSERT_EQUAL(mesh__snap_build(s2, eps, N, &s3), MESH_OK);
  int64_t t4 = mesh__now_ns();
  CU_ASSERT_PTR_NULL(s3);
  /* drop one, add two that sort in the middle and at the ends: the
   * merge keeps the whole array ordered */
  mesh__ep_t *eps2 = calloc(N + 2, sizeof *eps2);
  memcpy(eps2, eps, N * sizeof *eps);
  eps2[500] = eps2[N - 1];
  eps2[N - 1] = ep("127.10.19.5", 1, 1);
  eps2[N] = ep("127.0.0.1", 80, 1);
  eps2[N + 1] = ep("127.9.9.9", 80, 1);
  mesh__snapshot_t *s4 = NULL;
  CU_ASSERT_EQUAL_FATAL(mesh__snap_build(s2, eps2, N + 2, &s4), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(s4);
  CU_ASSERT_EQUAL(s4->n, N + 2);
  CU_ASSERT_STRING_EQUAL(s4->hosts[0]->address, "127.0.0.1");
  CU_ASSERT_STRING_EQUAL(s4->hosts[N + 1]->address, "127.9.9.9");
  CU_ASSERT_PTR_NULL(find_host(s4, "127.10.1.244", 8080)); /* #500, dropped */
  size_t bad_order = 0;
  for (size_t i = 1; i < s4->n; i++) {
    int c = strcmp(s4->hosts[i - 1]->address, s4->hosts[i]->address);
    if (c > 0 || (c == 0 && s4->hosts[i - 1]->port >= s4->hosts[i]->port))
      bad_order++;
  }
  CU_ASSERT_EQUAL(bad_order, 0);
  CU_ASSERT_PTR_NOT_NULL(find_host(s4, "127.10.19.5", 1));
  CU_ASSERT_PTR_NOT_NULL(find_host(s4, "127.10.19.5", 8080));
  mesh__snap_release(s4);
  free(eps2);
  printf("\n  10k build: first %.2f ms, one change %.2f ms, no change %.2f ms\n",
         (t1 - t0) / 1e6, (t3 - t2) / 1e6, (t4 - t3) / 1e6);
  mesh__snap_release(s1);
  mesh__snap_release(s2);
  free(eps);
  free(addr);
}

/* ---- publication ---------------------------------------------------------- */

static _Atomic int lb_freed;
static void count_lb_free(void *p) {
  (void)p;
  atomic_fetch_add(&lb_freed, 1);
}

struct reader_arg {
  mesh__snapref_t *ref;
  _Atomic bool *stop;
  _Atomic uint64_t *total; /* reads of all readers, or NULL */
  uint64_t reads;
  bool monotonic;
  bool consistent;
};

static void *reader(void *p) {
  struct reader_arg *a = p;
  uint64_t last = 0;
  a->monotonic = a->consistent = true;
  for (uint64_t i = 0; i < 5000000 && !atomic_load(a->stop); i++) {
    mesh__snapshot_t *s = mesh__snap_acquire(a->ref);
    if (!s)
      continue;
    if (s->version < last)
      a->monotonic = false;
    last = s->version;
    /* every snapshot in this test has version == n == port of host 0 */
    if (s->n != s->version || (s->n && s->hosts[0]->port != s->version))
      a->consistent = false;
    a->reads++;
    if (a->total)
      atomic_fetch_add(a->total, 1);
    mesh__snap_release(s);
  }
  return NULL;
}

static mesh__snapshot_t *numbered_snap(uint64_t v) {
  mesh__snapshot_t *s = mesh__snap_new(v);
  for (uint64_t i = 0; s && i < v; i++)
    s->hosts[s->n++] = mesh__host_new("127.0.0.1", (uint16_t)v);
  s->version = v;
  s->lb = s;
  s->lb_free = count_lb_free;
  return s;
}

static void test_mesh__snap_publish(void) {
  mesh__snapref_t ref;
  mesh__snapref_init(&ref);
  CU_ASSERT_PTR_NULL(mesh__snap_acquire(&ref));
  _Atomic bool stop = false;
  _Atomic uint64_t total = 0;
  enum { READERS = 3, PUBLISHES = 2000, MIN_READS = 1000 };
  struct reader_arg args[READERS];
  pthread_t th[READERS];
  atomic_store(&lb_freed, 0);
  for (int i = 0; i < READERS; i++) {
    args[i] = (struct reader_arg){.ref = &ref, .stop = &stop, .total = &total};
    pthread_create(&th[i], NULL, reader, &args[i]);
  }
  /* At least PUBLISHES, and on until the readers made MIN_READS reads
   * meanwhile: bounded by counts (on a loaded machine the readers may not
   * even start while 2000 publishes run), the cap only stops a broken
   * run. */
  uint64_t published = 0;
  int64_t cap = th_now_ms() + TH_CAP_MS;
  while (published < PUBLISHES ||
         (atomic_load(&total) < MIN_READS && th_now_ms() < cap)) {
    published++;
    mesh__snap_publish(&ref, numbered_snap(published % 50 + 1));
  }
  uint64_t during = atomic_load(&total);
  if (during < MIN_READS)
    th_cap_report("snapshot reads while publishing");
  atomic_store(&stop, true);
  for (int i = 0; i < READERS; i++) {
    pthread_join(th[i], NULL);
    CU_ASSERT(args[i].consistent);
  }
  CU_ASSERT(during >= MIN_READS);
  /* every replaced snapshot was freed exactly once */
  CU_ASSERT_EQUAL((uint64_t)atomic_load(&lb_freed), published - 1);
  mesh__snapshot_t *cur = mesh__snap_acquire(&ref);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cur);
  CU_ASSERT_EQUAL(atomic_load(&cur->refs), 2);
  mesh__snap_release(cur);
  mesh__snapref_fini(&ref);
  CU_ASSERT_EQUAL((uint64_t)atomic_load(&lb_freed), published);
}

/* Versions seen by one reader never go backwards. */
static void test_mesh__snap_acquire(void) {
  mesh__snapref_t ref;
  mesh__snapref_init(&ref);
  _Atomic bool stop = false;
  struct reader_arg a = {.ref = &ref, .stop = &stop};
  pthread_t th;
  pthread_create(&th, NULL, reader, &a);
  for (uint64_t v = 1; v <= 300; v++)
    mesh__snap_publish(&ref, numbered_snap(v));
  atomic_store(&stop, true);
  pthread_join(th, NULL);
  CU_ASSERT(a.monotonic);
  CU_ASSERT(a.consistent);
  mesh__snapshot_t *cur = mesh__snap_acquire(&ref);
  CU_ASSERT_EQUAL(cur->version, 300);
  mesh__snap_release(cur);
  mesh__snapref_fini(&ref);
  CU_ASSERT_PTR_NULL(mesh__snap_acquire(NULL));
}

static void add(void) {
  CU_pSuite s = CU_add_suite("endpoint", NULL, NULL);
  CU_add_test(s, "mesh__host_new", test_mesh__host_new);
  CU_add_test(s, "mesh__host_unref", test_mesh__host_unref);
  CU_add_test(s, "mesh__host_usable", test_mesh__host_usable);
  CU_add_test(s, "mesh__snap_build", test_mesh__snap_build);
  CU_add_test(s, "mesh__snap_build_10k", test_mesh__snap_build_10k);
  CU_add_test(s, "mesh__snap_publish", test_mesh__snap_publish);
  CU_add_test(s, "mesh__snap_acquire", test_mesh__snap_acquire);
}

int main(void) { return th_run_suites("test_endpoint", add); }
