/* SPDX-License-Identifier: Apache-2.0 */
/* The cost of request authentication per request: decide() over a token
 * of each algorithm (split, base64url, JSON, signature, claims), thread
 * CPU time, median of runs.  Tokens and keys come from the test peer:
 *   /usr/bin/python3 tests/test_authn_peer.py mint DIR https://issuer.example aud1
 *   build/bench/jwt DIR [iterations]
 * Prints "name,ns_per_request" lines (the micro bench's format). */
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

static int64_t thread_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
    double runs[5];
    for (int r = 0; r < 5; r++) {
      int64_t t0 = thread_ns();
      for (int i = 0; i < iters; i++) {
        mesh__authn_result_t res;
        mesh__authn_decide(cfg, &in, (int64_t)time(NULL), keys, NULL, &res);
        mesh__authn_result_free(&res);
      }
      runs[r] = (double)(thread_ns() - t0) / iters;
    }
    qsort(runs, 5, sizeof runs[0], cmp);
    printf("authn_decide_%s_ns,%.0f\n", names[k], runs[2]);
  }
  mesh__authn_cfg_free(cfg);
  cJSON_Delete(rows);
  cJSON_Delete(cfgj);
  free(jwks);
  free(toks);
  return 0;
}
