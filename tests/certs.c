/* SPDX-License-Identifier: Apache-2.0 */
/* Test certificates minted with the library's development CA. */
#include "helpers.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <mesh/mesh.h>

const char *th_ca(const char *td) {
  static char cert[16][512];
  static int k;
  char name[300];
  snprintf(name, sizeof name, "%s-ca.crt", td);
  char *c = cert[k++ % 16];
  snprintf(c, 512, "%s", th_path(name));
  if (access(c, R_OK) == 0)
    return c;
  char key[512];
  snprintf(name, sizeof name, "%s-ca.key", td);
  snprintf(key, sizeof key, "%s", th_path(name));
  mesh_status_t st;
  if (mesh_ca_init(td, 86400, c, key, &st) != MESH_OK) {
    fprintf(stderr, "th_ca: %s\n", st.message);
    return NULL;
  }
  return c;
}

bool th_svid(const char *td, const char *id, const char *name, long nb_off,
             long na_off, unsigned flags) {
  const char *ca = th_ca(td);
  if (!ca)
    return false;
  char cakey[512], crt[512], key[512], n[300];
  snprintf(n, sizeof n, "%s-ca.key", td);
  snprintf(cakey, sizeof cakey, "%s", th_path(n));
  snprintf(n, sizeof n, "%s.crt", name);
  snprintf(crt, sizeof crt, "%s", th_path(n));
  snprintf(n, sizeof n, "%s.key", name);
  snprintf(key, sizeof key, "%s", th_path(n));
  long now = (long)time(NULL);
  long nb = nb_off || na_off ? now + nb_off : 0;
  long na = nb_off || na_off ? now + na_off : 0;
  mesh_status_t st;
  if (mesh_ca_issue(ca, cakey, id, nb, na, flags, crt, key, &st) != MESH_OK) {
    fprintf(stderr, "th_svid: %s\n", st.message);
    return false;
  }
  return true;
}
