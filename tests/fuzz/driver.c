/* SPDX-License-Identifier: Apache-2.0 */
/* Replays a fuzz harness's corpus without libFuzzer, so `make check` runs
 * every seed and every past crash (kept as a regression input) on each build.
 * The corpus is tests/fuzz/corpus/<FUZZ_NAME>/. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = nb;
    }
    size_t r = fread(buf + len, 1, cap - len, f);
    if (r == 0)
      break;
    len += r;
  }
  fclose(f);
  /* exact-size copy so ASan catches reads past the end */
  uint8_t *exact = malloc(len ? len : 1);
  if (exact && len)
    memcpy(exact, buf, len);
  free(buf);
  if (!exact)
    return -1;
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  char dir[1024];
  if (argc > 1)
    snprintf(dir, sizeof dir, "%s", argv[1]);
  else
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", TEST_SRCDIR,
             FUZZ_NAME);
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "%s: no corpus at %s\n", FUZZ_NAME, dir);
    printf("fuzz_%s replay: 0 passed, 1 failed\n", FUZZ_NAME);
    return 1;
  }
  int n = 0, bad = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (replay(p) != 0)
      bad++;
    n++;
  }
  closedir(d);
  printf("replayed %d inputs from %s\n", n, dir);
  int ok = n > 0 && bad == 0;
  printf("fuzz_%s replay: %d passed, %d failed\n", FUZZ_NAME, ok, !ok);
  return ok ? 0 : 1;
}
