/* SPDX-License-Identifier: Apache-2.0 */
/* The dev CA and SVID loading per crypto seam (ca_mbedtls.c / ca_openssl.c
 * by configure --with-tls): thread CPU time per call, median of RUNS runs
 * of N calls each:
 *   build/bench/ca DIR [N [RUNS]]        (DIR: an empty scratch directory)
 * Prints "name,ns_per_call" lines (the micro bench's format):
 *   ca_init_ns      mesh_ca_init: P-256 key, self-signed CA, two files
 *   ca_issue_ns     mesh_ca_issue: load + pair-check the CA, P-256 key,
 *                   sign the SVID, two files
 *   svid_load_ns    mesh__creds_load of that SVID (parse, SVID rules, key
 *                   match, chain verify against the bundle) */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"

#define ID "spiffe://example.org/ns/default/sa/web"

static char p_ca[900], p_cak[900], p_crt[900], p_key[900];

static int op_init(void) {
  mesh_status_t st;
  int rc = mesh_ca_init("example.org", 86400, p_ca, p_cak, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_ca_init: %s\n", st.message);
  return rc;
}

static int op_issue(void) {
  mesh_status_t st;
  int rc = mesh_ca_issue(p_ca, p_cak, ID, 0, 0, 0, p_crt, p_key, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh_ca_issue: %s\n", st.message);
  return rc;
}

static int op_load(void) {
  mesh_status_t st;
  mesh__creds_src_t src = {.cert = p_crt, .key = p_key, .bundle = p_ca};
  mesh__creds_t *c = NULL;
  int rc = mesh__creds_load(&src, 1, &c, &st);
  if (rc != MESH_OK)
    fprintf(stderr, "mesh__creds_load: %s\n", st.message);
  mesh__creds_release(c);
  return rc;
}

/* Median over runs of the mean thread CPU ns per call; -1 on an error. */
static double measure(int (*op)(void), int n, int runs) {
  double *v = calloc((size_t)runs, sizeof *v);
  if (!v)
    return -1;
  for (int r = 0; r < runs; r++) {
    int64_t t0 = thread_ns();
    for (int i = 0; i < n; i++)
      if (op() != MESH_OK) {
        free(v);
        return -1;
      }
    v[r] = (double)(thread_ns() - t0) / n;
  }
  double m = median(v, runs);
  free(v);
  return m;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [N [RUNS]]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 20;
  int runs = argc > 3 ? atoi(argv[3]) : 5;
  if (n <= 0 || runs <= 0)
    return 2;
  snprintf(p_ca, sizeof p_ca, "%s/ca.crt", argv[1]);
  snprintf(p_cak, sizeof p_cak, "%s/ca.key", argv[1]);
  snprintf(p_crt, sizeof p_crt, "%s/svid.crt", argv[1]);
  snprintf(p_key, sizeof p_key, "%s/svid.key", argv[1]);
  /* warm up (first-use seeding, tables) and make the files */
  if (op_init() != MESH_OK || op_issue() != MESH_OK || op_load() != MESH_OK)
    return 1;
  const struct {
    const char *name;
    int (*op)(void);
  } ops[] = {{"ca_init_ns", op_init},
             {"ca_issue_ns", op_issue},
             {"svid_load_ns", op_load}};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    double ns = measure(ops[i].op, n, runs);
    if (ns < 0)
      return 1;
    printf("%s,%.0f\n", ops[i].name, ns);
  }
  return 0;
}
