/* SPDX-License-Identifier: Apache-2.0 */
/* The cost of request authentication per request: decide() over a token
 * of each algorithm (split, base64url, JSON, signature, claims), thread
 * CPU time, median of runs.  Tokens and keys come from the test peer:
 *   /usr/bin/python3 tests/test_authn_peer.py mint DIR https://issuer.example aud1
 *   build/bench/jwt DIR [iterations]
 * Prints "name,ns_per_request" lines (the micro bench's format):
 *   authn_decide_<tok>_ns          no cache (every request verifies)
 *   authn_decide_<tok>_cached_ns   verified-token cache, warm
 *   authn_keys_{mutex,pub}_<n>t_ns the key-set lookup of a request: the
 *                                  per-rule mutex it replaced vs
 *                                  mesh__pub_acquire, n threads at once
 *                                  (wall time per lookup and thread: a
 *                                  thread waiting on the lock shows) */
#include "bench_util.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authn/authn.h"

static char *slurp(const char *dir, const char *name) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  if (b)
    b[n] = '\0';
  fclose(f);
  return b;
}

static const char *bearer;
static const char *get(const char *name, void *ctx) {
  (void)ctx;
  return strcasecmp(name, "Authorization") == 0 ? bearer : NULL;
}

static const mesh__jwks_t *keys(const mesh__authn_rule_t *r, bool refetch,
                                void *user) {
  (void)user;
  return refetch ? NULL : r->inline_keys;
}

/* ---- the key-set lookup: mutex (before) vs publication point (after) ---- */

#define LOOKUPS 2000000
static pthread_mutex_t lk_mu = PTHREAD_MUTEX_INITIALIZER;
static mesh__jwks_t *lk_cur;
static mesh__pub_t lk_pub;

static void jwks_ref(void *k) { mesh__jwks_ref(k); }

static void *lookup_mutex(void *out) {
  int64_t t0 = wall_ns();
  for (int i = 0; i < LOOKUPS; i++) {
    pthread_mutex_lock(&lk_mu);
    mesh__jwks_t *k = lk_cur;
    mesh__jwks_ref(k);
    pthread_mutex_unlock(&lk_mu);
    mesh__jwks_unref(k);
  }
  *(double *)out = (double)(wall_ns() - t0) / LOOKUPS;
  return NULL;
}

static void *lookup_pub(void *out) {
  int64_t t0 = wall_ns();
  for (int i = 0; i < LOOKUPS; i++)
    mesh__jwks_unref(mesh__pub_acquire(&lk_pub, jwks_ref));
  *(double *)out = (double)(wall_ns() - t0) / LOOKUPS;
  return NULL;
}

static int cmp(const void *a, const void *b);

/* Median over 5 runs of the mean per-lookup CPU time of nt threads. */
static double lookups(void *(*fn)(void *), int nt) {
  double runs[5];
  for (int r = 0; r < 5; r++) {
    pthread_t th[2];
    double per[2] = {0, 0}, sum = 0;
    for (int t = 0; t < nt; t++)
      pthread_create(&th[t], NULL, fn, &per[t]);
    for (int t = 0; t < nt; t++) {
      pthread_join(th[t], NULL);
      sum += per[t];
    }
    runs[r] = sum / nt;
  }
  qsort(runs, 5, sizeof runs[0], cmp);
  return runs[2];
}

static void bench_lookups(const mesh__authn_cfg_t *cfg) {
  lk_cur = cfg->rules[0].inline_keys;
  mesh__pub_init(&lk_pub);
  mesh__jwks_ref(lk_cur);
  mesh__pub_swap(&lk_pub, lk_cur);
  for (int nt = 1; nt <= 2; nt++) {
    printf("authn_keys_mutex_%dt_ns,%.1f\n", nt, lookups(lookup_mutex, nt));
    printf("authn_keys_pub_%dt_ns,%.1f\n", nt, lookups(lookup_pub, nt));
  }
  mesh__jwks_unref(mesh__pub_swap(&lk_pub, NULL));
  mesh__pub_fini(&lk_pub);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: jwt DIR [iterations]\n");
    return 2;
  }
  int iters = argc > 2 ? atoi(argv[2]) : 2000;
  char *jwks = slurp(argv[1], "jwks.json"), *toks = slurp(argv[1], "tokens.json");
  if (!jwks || !toks || iters < 1) {
    fprintf(stderr, "jwt: cannot read %s/jwks.json and tokens.json\n", argv[1]);
    return 2;
  }
  cJSON *cfgj = cJSON_CreateObject();
  cJSON *rule = cJSON_CreateObject();
  cJSON_AddStringToObject(rule, "issuer", "https://issuer.example");
  cJSON_AddStringToObject(rule, "jwks", jwks);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(cfgj, "jwt_rules"), rule);
  mesh_status_t st = {0};
  mesh__cfg_t c = {.first = &st};
  mesh__authn_cfg_t *cfg = NULL;
  cJSON *rows = mesh__json_parse(toks, strlen(toks), NULL);
  if (mesh__authn_cfg_build(&c, cfgj, "authn", &cfg) != MESH_OK || !rows) {
    fprintf(stderr, "jwt: bad config or tokens: %s\n", st.message);
    return 1;
  }
  static const char *const names[] = {"rs256", "ps256", "es256", "es384",
                                      "bad_signature", "expired"};
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    const cJSON *row, *tok = NULL;
    cJSON_ArrayForEach(row, rows) {
      if (strcmp(cJSON_GetObjectItem(row, "name")->valuestring, names[k]) == 0)
        tok = cJSON_GetObjectItem(row, "token");
    }
    if (!tok)
      continue;
    static char buf[32768];
    snprintf(buf, sizeof buf, "Bearer %s", tok->valuestring);
    bearer = buf;
    mesh__authn_input_t in = {.header = get};
    for (int cached = 0; cached < 2; cached++) {
      mesh__jwt_cache_t *cache = cached ? mesh__jwt_cache_new(1024) : NULL;
      double runs[5];
      for (int r = 0; r < 5; r++) {
        int64_t t0 = thread_ns();
        for (int i = 0; i < iters; i++) {
          mesh__authn_result_t res;
          mesh__authn_decide_cached(cfg, &in, (int64_t)time(NULL), keys, NULL,
                                    cache, &res);
          mesh__authn_result_free(&res);
        }
        runs[r] = (double)(thread_ns() - t0) / iters;
      }
      qsort(runs, 5, sizeof runs[0], cmp);
      printf("authn_decide_%s%s_ns,%.0f\n", names[k], cached ? "_cached" : "",
             runs[2]);
      mesh__jwt_cache_free(cache);
    }
  }
  bench_lookups(cfg);
  mesh__authn_cfg_free(cfg);
  cJSON_Delete(rows);
  cJSON_Delete(cfgj);
  free(jwks);
  free(toks);
  return 0;
}
