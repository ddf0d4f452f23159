/* SPDX-License-Identifier: Apache-2.0 */
/* Hash pickers: xxHash64, Envoy-compatible ring_hash and maglev placement
 * (vectors from Envoy's own ring_hash_lb_test.cc and maglev_lb_test.cc),
 * key stability when a host leaves, and skipping of unusable hosts. */
#include "test_lb_util.h"

/* ---- xxHash64 ---------------------------------------------------------------- */

struct xxh_case {
  const char *in;
  uint64_t seed;
  uint64_t want;
};

/* Reference values of XXH64 (xxHash's own sanity list and python-xxhash). */
static const struct xxh_case xxh_cases[] = {
  {"", 0, 0xEF46DB3751D8E999ULL},
  {"a", 0, 0xD24EC4F1A98C6E5BULL},
  {"abc", 0, 0x44BC2CF5AD770999ULL},
  {"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1ULL},
};

static void test_mesh__xxh64(void) {
  for (size_t i = 0; i < sizeof xxh_cases / sizeof xxh_cases[0]; i++) {
    const struct xxh_case *tc = &xxh_cases[i];
    uint64_t got = mesh__xxh64(tc->in, strlen(tc->in), tc->seed);
    if (got != tc->want)
      fprintf(stderr, "xxh64(\"%s\") = %016llx, want %016llx\n", tc->in,
              (unsigned long long)got, (unsigned long long)tc->want);
    CU_ASSERT_EQUAL(got, tc->want);
  }
  CU_ASSERT_EQUAL(mesh__xxh64(NULL, 0, 0), 0xEF46DB3751D8E999ULL);
  /* seed changes the value; every length 0..64 hashes differently */
  CU_ASSERT_NOT_EQUAL(mesh__xxh64("a", 1, 0), mesh__xxh64("a", 1, 1));
  char buf[64];
  memset(buf, 'x', sizeof buf);
  for (size_t n = 1; n < sizeof buf; n++)
    CU_ASSERT_NOT_EQUAL(mesh__xxh64(buf, n, 0), mesh__xxh64(buf, n - 1, 0));
}

/* ---- Envoy vectors ------------------------------------------------------------- */

static const tlb_ep_t six[] = {
  {"127.0.0.1", 90}, {"127.0.0.1", 91}, {"127.0.0.1", 92},
  {"127.0.0.1", 93}, {"127.0.0.1", 94}, {"127.0.0.1", 95},
};

static const mesh__lb_pool_t *level0(const mesh__snapshot_t *s) {
  const mesh__lb_state_t *st = s->lb;
  return &st->sets[0].lv[0].pool;
}

static void test_mesh__ring_build(void) {
  /* Envoy RingHashLoadBalancerTest.Basic: minimum_ring_size 12. */
  static const struct {
    uint16_t port;
    uint64_t hash;
  } want[] = {
    {94, 833437586790550860ULL},   {92, 928266305478181108ULL},
    {90, 1033482794131418490ULL},  {95, 3551244743356806947ULL},
    {93, 3851675632748031481ULL},  {91, 5583722120771150861ULL},
    {91, 6311230543546372928ULL},  {93, 7700377290971790572ULL},
    {95, 13144177310400110813ULL}, {92, 13444792449719432967ULL},
    {94, 15516499411664133160ULL}, {90, 16117243373044804889ULL},
  };
  tlb_svc_t *t = tlb_svc("{\"lb\":{\"policy\":\"ring_hash\","
                         "\"ring_hash\":{\"minimum_ring_size\":12}}}",
                         NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  mesh__snapshot_t *s = tlb_snap(six, 6);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  const mesh__lb_pool_t *p = level0(s);
  CU_ASSERT_EQUAL_FATAL(p->nring, 12);
  for (size_t i = 0; i < 12; i++) {
    CU_ASSERT_EQUAL(p->ring[i].hash, want[i].hash);
    CU_ASSERT_EQUAL(p->hosts[p->ring[i].idx]->port, want[i].port);
  }
  /* Envoy's lookups: 0 and UINT64_MAX wrap to the first entry (:94); an
   * exact position is that entry, one more is the next. */
  CU_ASSERT_EQUAL(p->hosts[p->ring[mesh__ring_find(p, 0)].idx]->port, 94);
  CU_ASSERT_EQUAL(p->hosts[p->ring[mesh__ring_find(p, UINT64_MAX)].idx]->port,
                  94);
  CU_ASSERT_EQUAL(
      p->hosts[p->ring[mesh__ring_find(p, 3551244743356806947ULL)].idx]->port,
      95);
  CU_ASSERT_EQUAL(
      p->hosts[p->ring[mesh__ring_find(p, 3551244743356806948ULL)].idx]->port,
      93);
  mesh__snap_release(s);
  tlb_svc_free(t);
}

static void test_mesh__ring_build_sizes(void) {
  /* Defaults: 1024 minimum; weights scale entries (Envoy arithmetic). */
  tlb_svc_t *t = tlb_svc("{\"lb\":{\"policy\":\"ring_hash\"}}", NULL);
  tlb_ep_t eps[] = {{"127.10.0.1", 80, 1}, {"127.10.0.2", 80, 3}};
  mesh__snapshot_t *s = tlb_snap(eps, 2);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  const mesh__lb_pool_t *p = level0(s);
  size_t per[2] = {0, 0};
  for (size_t i = 0; i < p->nring; i++)
    per[p->hosts[p->ring[i].idx]->weight == 3]++;
  /* the ring is 1024 entries in all, shared 1:3 */
  CU_ASSERT_EQUAL(per[0], 256);
  CU_ASSERT_EQUAL(per[1], 768);
  CU_ASSERT_EQUAL(p->nring, 1024);
  mesh__snap_release(s);
  tlb_svc_free(t);
  /* maximum_ring_size caps the ring */
  t = tlb_svc("{\"lb\":{\"policy\":\"ring_hash\",\"ring_hash\":"
              "{\"minimum_ring_size\":64,\"maximum_ring_size\":100}}}",
              NULL);
  s = tlb_snap_n(200);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  CU_ASSERT(level0(s)->nring >= 100 && level0(s)->nring <= 101);
  mesh__snap_release(s);
  tlb_svc_free(t);
}

static void check_table(const char *svc_json, const tlb_ep_t *eps, size_t n,
                        const uint16_t *ports, size_t m) {
  tlb_svc_t *t = tlb_svc(svc_json, NULL);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  mesh__snapshot_t *s = tlb_snap(eps, n);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  const mesh__lb_pool_t *p = level0(s);
  CU_ASSERT_EQUAL_FATAL(p->table_size, m);
  for (size_t i = 0; i < m; i++) {
    if (p->hosts[p->table[i]]->port != ports[i])
      fprintf(stderr, "maglev slot %zu: %u, want %u\n", i,
              p->hosts[p->table[i]]->port, ports[i]);
    CU_ASSERT_EQUAL(p->hosts[p->table[i]]->port, ports[i]);
  }
  mesh__snap_release(s);
  tlb_svc_free(t);
}

/* Listing 1 of the Maglev paper with Envoy's weighted turns, walked slot
 * by slot with a % per step: the reference the optimized build (inverted
 * tail, Barrett mod, four-step walks, separate walk state) must match.
 * Hosts with a weight <= 0 take no slot (mesh__maglev_build skips them). */
static const char *ref_keys;
static const uint32_t *ref_off;
static int ref_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  int c = strcmp(ref_keys + ref_off[x], ref_keys + ref_off[y]);
  return c ? c : (x > y) - (x < y);
}

static void maglev_reference(const mesh__lb_pool_t *p, const double *norm,
                             uint32_t m, uint32_t *table) {
  uint32_t n = p->n, k = 0, *order = calloc(n, sizeof *order);
  uint32_t *off = calloc(n, sizeof *off), *pos = calloc(n, sizeof *pos);
  uint32_t *skip = calloc(n, sizeof *skip);
  double *target = calloc(n, sizeof *target), max_w = 0;
  char *keys = calloc(n, 64);
  uint8_t *taken = calloc(m, 1);
  for (uint32_t i = 0; i < n; i++) {
    size_t len = mesh__lb_host_key(p->hosts[i], keys + 64 * i, 64);
    off[i] = 64 * i;
    pos[i] = (uint32_t)(mesh__xxh64(keys + 64 * i, len, 0) % m);
    skip[i] = (uint32_t)(mesh__xxh64(keys + 64 * i, len, 1) % (m - 1) + 1);
    if (norm[i] > 0)
      order[k++] = i;
    max_w = norm[i] > max_w ? norm[i] : max_w;
  }
  ref_keys = keys;
  ref_off = off;
  qsort(order, k, sizeof *order, ref_cmp);
  uint32_t filled = 0;
  for (uint64_t round = 1; filled < m; round++) {
    for (uint32_t o = 0; o < k && filled < m; o++) {
      uint32_t i = order[o];
      if ((double)round * norm[i] < target[i])
        continue;
      target[i] += max_w;
      uint32_t c = pos[i];
      while (taken[c])
        c = (c + skip[i]) % m;
      taken[c] = 1;
      table[c] = i;
      pos[i] = (c + skip[i]) % m;
      filled++;
    }
  }
  free(order), free(off), free(pos), free(skip), free(target), free(keys);
  free(taken);
}

static void test_maglev_reference(void) {
  static const struct {
    size_t hosts;
    uint32_t m;
    bool weighted;
  } cases[] = {{1000, 65537, false}, {300, 65537, true}, {7, 65537, true},
               {1000, 5003, false}, {50, 257, true}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    mesh__snapshot_t *s = tlb_snap_n(cases[c].hosts);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    mesh__lb_pool_t pool = {.n = (uint32_t)s->n, .hosts = s->hosts};
    double *norm = calloc(s->n, sizeof *norm), sum = 0;
    for (size_t i = 0; i < s->n; i++)
      sum += cases[c].weighted ? (double)(i % 3 + 1) : 1.0;
    for (size_t i = 0; i < s->n; i++)
      norm[i] = (cases[c].weighted ? (double)(i % 3 + 1) : 1.0) / sum;
    uint32_t *want = calloc(cases[c].m, sizeof *want);
    maglev_reference(&pool, norm, cases[c].m, want);
    CU_ASSERT_EQUAL_FATAL(mesh__maglev_build(&pool, norm, cases[c].m),
                          MESH_OK);
    CU_ASSERT_EQUAL_FATAL(pool.table_size, cases[c].m);
    size_t diff = 0;
    for (uint32_t i = 0; i < cases[c].m; i++)
      diff += pool.table[i] != want[i];
    if (diff)
      fprintf(stderr, "case %zu: %zu slots differ\n", c, diff);
    CU_ASSERT_EQUAL(diff, 0);
    free(pool.table);
    free(want);
    free(norm);
    mesh__snap_release(s);
  }
}

/* xorshift64: the many-sets test is reproducible. */
static uint64_t ref_rand(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

/* n distinct hosts with random addresses (IPv4 and IPv6) and ports. */
static mesh__snapshot_t *random_snap(size_t n, uint64_t *rng) {
  tlb_ep_t *eps = calloc(n, sizeof *eps);
  char (*addr)[48] = calloc(n, 48);
  for (size_t i = 0; i < n; i++) {
    uint64_t r = ref_rand(rng);
    if (r % 5 == 0)
      snprintf(addr[i], 48, "fd%02x::%zx:%x", (unsigned)(r >> 8 & 0xff), i,
               (unsigned)(r >> 16 & 0xffff));
    else
      snprintf(addr[i], 48, "10.%u.%zu.%zu", (unsigned)(r >> 8 & 0xff),
               i / 250, i % 250 + 1);
    eps[i] = (tlb_ep_t){.address = addr[i],
                        .port = (uint16_t)(1 + (r >> 32) % 65535)};
  }
  mesh__snapshot_t *s = tlb_snap(eps, n);
  free(addr);
  free(eps);
  return s;
}

/* Weights by mode: 0 equal, 1 cycling 1..3, 2 random 1..1000, 3 one heavy
 * host (x100), 4 some hosts at 0 (no slot) and the rest random 1..5. */
static void random_norm(double *norm, size_t n, int mode, uint64_t *rng) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t r = ref_rand(rng);
    double w = mode == 1   ? (double)(i % 3 + 1)
               : mode == 2 ? (double)(1 + r % 1000)
               : mode == 3 ? (i == n / 2 ? 100.0 : 1.0)
               : mode == 4 ? (i % 4 == 1 && n > 1 ? 0.0 : (double)(1 + r % 5))
                           : 1.0;
    norm[i] = w;
    sum += w;
  }
  for (size_t i = 0; i < n; i++)
    norm[i] /= sum;
}

/* 150 random host sets x sizes x weight modes, each table equal to the
 * reference's: host count 1..1,500 (1, 2 and 3 hosts use another walk),
 * prime sizes 2..65537 (below 4 the four-step walk repeats slots). */
static void test_maglev_reference_many(void) {
  static const uint32_t primes[] = {2, 3, 5, 7, 17, 257, 1009, 5003, 65537};
  static const size_t hosts[] = {1, 2, 3, 4, 5, 7, 13, 64, 300, 1000, 1500};
  uint64_t rng = 0x9e3779b97f4a7c15u;
  size_t bad = 0;
  for (int c = 0; c < 150; c++) {
    size_t n = hosts[ref_rand(&rng) % (sizeof hosts / sizeof hosts[0])];
    uint32_t m = primes[ref_rand(&rng) % (sizeof primes / sizeof primes[0])];
    int mode = (int)(ref_rand(&rng) % 5);
    if (c < 5) /* the bench's shape first: 1,000 equal hosts at 65537 */
      n = 1000, m = 65537, mode = c == 0 ? 0 : mode;
    mesh__snapshot_t *s = random_snap(n, &rng);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL_FATAL(s->n, n);
    mesh__lb_pool_t pool = {.n = (uint32_t)n, .hosts = s->hosts};
    double *norm = calloc(n, sizeof *norm);
    random_norm(norm, n, mode, &rng);
    uint32_t *want = calloc(m, sizeof *want);
    maglev_reference(&pool, norm, m, want);
    CU_ASSERT_EQUAL_FATAL(mesh__maglev_build(&pool, norm, m), MESH_OK);
    CU_ASSERT_EQUAL_FATAL(pool.table_size, m);
    size_t diff = 0;
    for (uint32_t i = 0; i < m; i++)
      diff += pool.table[i] != want[i];
    if (diff) {
      fprintf(stderr, "set %d (%zu hosts, m %u, weights %d): %zu differ\n",
              c, n, m, mode, diff);
      bad++;
    }
    free(pool.table);
    free(want);
    free(norm);
    mesh__snap_release(s);
  }
  CU_ASSERT_EQUAL(bad, 0);
}

static void test_mesh__maglev_build(void) {
  /* Envoy MaglevLoadBalancerTest.Basic (table 7). */
  static const uint16_t basic[] = {92, 94, 90, 91, 95, 90, 93};
  check_table("{\"lb\":{\"policy\":\"maglev\",\"maglev\":{\"table_size\":7}}}",
              six, 6, basic, 7);
  /* .Weighted: :90 weight 1, :91 weight 2, table 17. */
  static const uint16_t weighted[] = {91, 90, 90, 91, 90, 91, 91, 90, 91,
                                      91, 91, 91, 91, 90, 91, 90, 91};
  tlb_ep_t w[] = {{"127.0.0.1", 90, 1}, {"127.0.0.1", 91, 2}};
  check_table("{\"lb\":{\"policy\":\"maglev\",\"maglev\":{\"table_size\":17}}}",
              w, 2, weighted, 17);
  /* .LocalityWeightedSameLocalityWeights: zones A and B weigh 1 each, so
   * the host weights (1, 2) no longer matter. */
  static const uint16_t same[] = {91, 90, 90, 91, 90, 91, 91, 90, 90,
                                  91, 90, 91, 90, 90, 91, 90, 91};
  tlb_ep_t lw[] = {{"127.0.0.1", 90, 1, 0, NULL, "A"},
                   {"127.0.0.1", 91, 2, 0, NULL, "B"}};
  check_table("{\"lb\":{\"policy\":\"maglev\",\"maglev\":{\"table_size\":17},"
              "\"locality_weighted\":true,"
              "\"locality_weights\":{\"/A\":1,\"/B\":1}}}",
              lw, 2, same, 17);
  /* .LocalityWeightedDifferentLocalityWeights: A=8, B=0 (excluded), C=2. */
  static const uint16_t diff[] = {91, 90, 90, 90, 90, 90, 91, 90, 90,
                                  91, 90, 91, 90, 90, 90, 90, 90};
  tlb_ep_t ld[] = {{"127.0.0.1", 90, 1, 0, NULL, "A"},
                   {"127.0.0.1", 91, 2, 0, NULL, "C"},
                   {"127.0.0.1", 92, 3, 0, NULL, "B"}};
  check_table("{\"lb\":{\"policy\":\"maglev\",\"maglev\":{\"table_size\":17},"
              "\"locality_weighted\":true,"
              "\"locality_weights\":{\"/A\":8,\"/B\":0,\"/C\":2}}}",
              ld, 3, diff, 17);
}

static void test_mesh__lb_host_key(void) {
  tlb_ep_t eps[] = {{"127.11.2.3", 8080}, {"2001:db8:0:0::1", 443},
                    {"payments.internal", 9000}};
  mesh__snapshot_t *s = tlb_snap(eps, 3);
  char buf[128];
  const char *want[] = {"127.11.2.3:8080", "[2001:db8::1]:443",
                        "payments.internal:9000"};
  for (size_t i = 0; i < 3; i++) {
    mesh__host_t *h = tlb_find(s, eps[i].address, eps[i].port);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(mesh__lb_host_key(h, buf, sizeof buf) > 0);
    CU_ASSERT_STRING_EQUAL(buf, want[i]);
  }
  CU_ASSERT_EQUAL(mesh__lb_host_key(s->hosts[0], buf, 4), 0); /* too small */
  mesh__snap_release(s);
}

/* ---- key movement ---------------------------------------------------------------- */

#define NKEYS 20000
#define NHOSTS 10

/* Host (by address) of every key through the full pick path. */
static void map_keys(tlb_svc_t *t, mesh__snapshot_t *s, const char **out) {
  for (int k = 0; k < NKEYS; k++) {
    char key[32];
    int len = snprintf(key, sizeof key, "user-%d", k);
    mesh__lb_ctx_t ctx = {.hash_key = key, .hash_key_len = (size_t)len};
    mesh__host_t *h = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &h), MESH_OK);
    out[k] = h ? h->key : "";
  }
}

static void key_movement(const char *policy, double max_moved_rebuild) {
  char json[128];
  snprintf(json, sizeof json, "{\"lb\":{\"policy\":\"%s\"}}", policy);
  tlb_svc_t *t = tlb_svc(json, NULL);
  mesh__snapshot_t *s = tlb_snap_n(NHOSTS);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  static const char *before[NKEYS], *after[NKEYS];
  map_keys(t, s, before);
  /* Same keys, same hosts: deterministic. */
  map_keys(t, s, after);
  for (int k = 0; k < NKEYS; k++)
    CU_ASSERT_PTR_EQUAL(before[k], after[k]);

  /* (a) one host becomes unusable (ejected): only its keys move, to the
   * next entries; every other key stays. */
  mesh__host_t *gone = s->hosts[3];
  int64_t now = mesh__now_ms();
  atomic_store(&gone->ejected_until_ms, now + 60000);
  mesh__lb_refresh(s, now);
  map_keys(t, s, after);
  int moved = 0, on_gone = 0, wrong = 0;
  for (int k = 0; k < NKEYS; k++) {
    on_gone += before[k] == gone->key;
    moved += before[k] != after[k];
    wrong += before[k] != after[k] && before[k] != gone->key;
    CU_ASSERT(after[k] != gone->key);
  }
  CU_ASSERT_EQUAL(wrong, 0);
  CU_ASSERT_EQUAL(moved, on_gone);
  /* about 1/N of the keys lived there: within 0.6/N .. 1.4/N */
  CU_ASSERT(moved > NKEYS * 0.6 / NHOSTS && moved < NKEYS * 1.4 / NHOSTS);
  printf("\n  %s: ejecting 1 of %d hosts moved %.2f%% of keys", policy,
         NHOSTS, 100.0 * moved / NKEYS);

  /* (b) the host leaves the snapshot: the structure is rebuilt over N-1
   * hosts, as Envoy does.  Its keys move; others mostly stay. */
  tlb_ep_t eps[NHOSTS - 1];
  char addr[NHOSTS][32];
  size_t k2 = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->hosts[i] == gone)
      continue;
    mesh__strlcpy(addr[k2], s->hosts[i]->address, sizeof addr[k2]);
    eps[k2] = (tlb_ep_t){.address = addr[k2], .port = s->hosts[i]->port};
    k2++;
  }
  mesh__snapshot_t *s2 = tlb_snap(eps, NHOSTS - 1);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s2), MESH_OK);
  static const char *rebuilt[NKEYS];
  for (int k = 0; k < NKEYS; k++) {
    char key[32];
    int len = snprintf(key, sizeof key, "user-%d", k);
    mesh__lb_ctx_t ctx = {.hash_key = key, .hash_key_len = (size_t)len};
    mesh__host_t *h = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s2, &ctx, &h), MESH_OK);
    rebuilt[k] = h ? h->key : "";
  }
  moved = 0;
  for (int k = 0; k < NKEYS; k++)
    moved += strcmp(before[k], rebuilt[k]) != 0;
  printf("; removing it moved %.2f%%", 100.0 * moved / NKEYS);
  CU_ASSERT(moved >= on_gone);
  CU_ASSERT(moved < NKEYS * max_moved_rebuild);
  mesh__snap_release(s2);
  mesh__snap_release(s);
  tlb_svc_free(t);
}

/* Tolerances for (b): ring_hash re-scales Envoy's ring for N-1 hosts (each
 * remaining host gains entries, which take keys from neighbours), so up to
 * 2/N moves; maglev's table refill disturbs a little more than 1/N. */
static void test_ring_hash_key_movement(void) {
  key_movement("ring_hash", 2.0 / NHOSTS);
}

static void test_maglev_key_movement(void) {
  key_movement("maglev", 1.5 / NHOSTS);
}

/* ---- distribution and retries ------------------------------------------------- */

static void hash_distribution(const char *policy) {
  char json[128];
  snprintf(json, sizeof json, "{\"lb\":{\"policy\":\"%s\"}}", policy);
  tlb_svc_t *t = tlb_svc(json, NULL);
  tlb_ep_t eps[] = {{"127.10.0.1", 80, 1}, {"127.10.0.2", 80, 2},
                    {"127.10.0.3", 80, 3}, {"127.10.0.4", 80, 4}};
  mesh__snapshot_t *s = tlb_snap(eps, 4);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  unsigned counts[4] = {0};
  for (int k = 0; k < 40000; k++) {
    char key[32];
    int len = snprintf(key, sizeof key, "session-%d", k);
    mesh__lb_ctx_t ctx = {.hash_key = key, .hash_key_len = (size_t)len};
    mesh__host_t *h = NULL;
    CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &h), MESH_OK);
    counts[tlb_index(s, h)]++;
  }
  /* Hash placement is not sampling: the shares of a 1024-entry ring are
   * within a few percent of the weights, not chi-square tight.  State the
   * tolerance: each host within 20% (relative) of its weight share. */
  double wsum = 0;
  for (int i = 0; i < 4; i++)
    wsum += s->hosts[i]->weight;
  for (int i = 0; i < 4; i++) {
    double want = 40000.0 * s->hosts[i]->weight / wsum;
    CU_ASSERT(fabs(counts[i] - want) < 0.2 * want);
  }
  /* No key: a random point of the ring or table, same shares. */
  mesh__lb_seed(TLB_SEED);
  CU_ASSERT_EQUAL(tlb_count(t, s, NULL, 40000, counts), 0);
  for (int i = 0; i < 4; i++) {
    double want = 40000.0 * s->hosts[i]->weight / wsum;
    CU_ASSERT(fabs(counts[i] - want) < 0.2 * want);
  }
  mesh__snap_release(s);
  tlb_svc_free(t);
}

static void test_ring_hash_distribution(void) { hash_distribution("ring_hash"); }
static void test_maglev_distribution(void) { hash_distribution("maglev"); }

static void hash_avoid(const char *policy) {
  char json[128];
  snprintf(json, sizeof json, "{\"lb\":{\"policy\":\"%s\"}}", policy);
  tlb_svc_t *t = tlb_svc(json, NULL);
  mesh__snapshot_t *s = tlb_snap_n(5);
  CU_ASSERT_EQUAL_FATAL(mesh__lb_prepare(&t->svc, s), MESH_OK);
  mesh__lb_ctx_t ctx = {.hash_key = "k", .hash_key_len = 1};
  mesh__host_t *first = NULL, *second = NULL, *again = NULL;
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &first), MESH_OK);
  /* a retry avoiding the first host gets another one, deterministically */
  ctx.avoid = &first;
  ctx.navoid = 1;
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &second), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(second);
  CU_ASSERT_PTR_NOT_EQUAL(first, second);
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &again), MESH_OK);
  CU_ASSERT_PTR_EQUAL(second, again);
  /* every host avoided: a tried host is better than none */
  ctx.avoid = s->hosts;
  ctx.navoid = s->n;
  CU_ASSERT_EQUAL(mesh__lb_pick(&t->svc, s, &ctx, &again), MESH_OK);
  CU_ASSERT_PTR_NOT_NULL(again);
  mesh__snap_release(s);
  tlb_svc_free(t);
}

static void test_ring_hash_avoid(void) { hash_avoid("ring_hash"); }
static void test_maglev_avoid(void) { hash_avoid("maglev"); }

static void add(void) {
  CU_pSuite s = CU_add_suite("lb_hash", NULL, NULL);
  CU_add_test(s, "mesh__xxh64", test_mesh__xxh64);
  CU_add_test(s, "mesh__lb_host_key", test_mesh__lb_host_key);
  CU_add_test(s, "mesh__ring_build (Envoy vectors)", test_mesh__ring_build);
  CU_add_test(s, "mesh__ring_build sizes", test_mesh__ring_build_sizes);
  CU_add_test(s, "mesh__maglev_build (Envoy vectors)", test_mesh__maglev_build);
  CU_add_test(s, "mesh__maglev_build = plain walk", test_maglev_reference);
  CU_add_test(s, "mesh__maglev_build = plain walk, 150 random sets",
              test_maglev_reference_many);
  CU_add_test(s, "ring_hash key movement", test_ring_hash_key_movement);
  CU_add_test(s, "maglev key movement", test_maglev_key_movement);
  CU_add_test(s, "ring_hash distribution", test_ring_hash_distribution);
  CU_add_test(s, "maglev distribution", test_maglev_distribution);
  CU_add_test(s, "ring_hash avoid", test_ring_hash_avoid);
  CU_add_test(s, "maglev avoid", test_maglev_avoid);
}

int main(void) { return th_run_suites("test_lb_hash", add); }
