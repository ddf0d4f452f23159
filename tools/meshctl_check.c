/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl check-config: validate configuration files with the library's
 * own checker (mesh_config_check) and list every error with its JSON path,
 * not just the first one mesh_new() would stop at.  Nothing is started:
 * no worker, no sockets, no discovery. */
#include "meshctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char check_help[] =
    "usage: meshctl check-config [--quiet] [--max-bytes N] FILE...\n"
    "\n"
    "Validate libmesh JSON configuration files without starting anything\n"
    "and print every error as \"FILE: json.path: reason\".  \"-\" reads\n"
    "standard input.  Exit status: 0 when every file is valid, 1 when any\n"
    "has an error (or cannot be read), 2 on a usage error.\n"
    "\n"
    "  --quiet        print only the errors (no \"FILE: OK\" lines or totals)\n"
    "  --max-bytes N  refuse files larger than N bytes (default: the\n"
    "                 library's cap, 4 MiB unless MESH_CONFIG_MAX_BYTES says\n"
    "                 otherwise; see mesh_config_set_max_bytes())\n"
    "\n"
    "Checked: JSON syntax, unknown keys, types, ranges and every part's own\n"
    "rules (see docs/config.md).  Not checked: whether files named in the\n"
    "config exist and parse (mesh_new() does that when it loads them).\n";

static void on_error(const char *path_and_reason, void *user) {
  printf("%s: %s\n", (const char *)user, path_and_reason);
}

/* Check one file; returns its number of errors (a read failure is one). */
static int check_file(const char *path, bool quiet) {
  const char *name = strcmp(path, "-") ? path : "<stdin>";
  size_t len = 0;
  char *text = meshctl_read_config(path, &len);
  if (!text && errno == EFBIG) {
    printf("%s: larger than the limit of %zu bytes (raise it with "
           "--max-bytes or MESH_CONFIG_MAX_BYTES)\n",
           name, mesh_config_max_bytes());
    return 1;
  }
  if (!text) {
    printf("%s: cannot read: %s\n", name, strerror(errno));
    return 1;
  }
  /* The checker takes a C string: a NUL inside would hide the rest. */
  size_t nul = strlen(text);
  if (nul != len) {
    printf("%s: NUL byte at offset %zu: not a JSON text\n", name, nul);
    free(text);
    return 1;
  }
  int n = mesh_config_check(text, on_error, (void *)name);
  free(text);
  if (n < 0) {
    printf("%s: %s\n", name, mesh_strerror(n));
    return 1;
  }
  if (!quiet && n == 0)
    printf("%s: OK\n", name);
  else if (!quiet)
    printf("%s: %d error%s\n", name, n, n == 1 ? "" : "s");
  return n;
}

int meshctl_check_config(int argc, char **argv) {
  bool quiet = false, help = false;
  const char *max_s = NULL;
  const meshctl_opt_t opts[] = {{"quiet", NULL, &quiet},
                                {"max-bytes", &max_s, NULL},
                                {NULL, NULL, NULL}};
  const char *files[64];
  size_t nfiles = 0;
  if (!meshctl_parse_args(argc, argv, 1, opts, &help, files,
                          sizeof files / sizeof files[0], &nfiles)) {
    fputs(check_help, stderr);
    return MESHCTL_USAGE;
  }
  if (help) {
    fputs(check_help, stdout);
    return MESHCTL_OK;
  }
  if (max_s) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(max_s, &end, 10);
    if (errno || !end || *end || v == 0 || max_s[0] == '-') {
      fprintf(stderr, "meshctl check-config: --max-bytes: expected a "
                      "positive number of bytes, got \"%s\"\n", max_s);
      return MESHCTL_USAGE;
    }
    mesh_config_set_max_bytes((size_t)v);
  }
  if (nfiles == 0) {
    fprintf(stderr, "meshctl check-config: no FILE given\n\n%s", check_help);
    return MESHCTL_USAGE;
  }
  int bad = 0;
  for (size_t i = 0; i < nfiles; i++)
    if (check_file(files[i], quiet) > 0)
      bad++;
  fflush(stdout);
  return bad ? MESHCTL_FAIL : MESHCTL_OK;
}
