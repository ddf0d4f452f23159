/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl: command-line companion of libmesh.  Dispatches to the
 * subcommands listed in the table below. */
#include "meshctl.h"
#include "tls/backend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* One line per subcommand, implemented in tools/meshctl_<name>.c. */
static const meshctl_cmd_t commands[] = {
  {"ca", "development CA: mint a CA and X.509-SVIDs (init, issue)",
   meshctl_ca},
  {"dial", "open an mTLS connection and show who answered", meshctl_dial},
  {"serve", "accept mTLS connections, show peers, echo", meshctl_serve},
  {"check-config", "validate config files, list every error with its path",
   meshctl_check_config},
  {"resolve", "show a service's endpoints: health, weight, labels, LB state",
   meshctl_resolve},
  {"grpc", "call a gRPC method with raw bytes, or serve the echo service",
   meshctl_grpc},
  {"xds", "the xDS client's resources: version, ACK/NACK, errors", meshctl_xds},
  {"identity", "show the current SVID, its bundles and its source",
   meshctl_identity},
  {"jwt", "fetch a JWT-SVID for an audience from the Workload API",
   meshctl_jwt},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
  fprintf(f, "usage: meshctl <command> [options]\n"
             "       meshctl <command> --help\n\ncommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nlibmesh %s, TLS backend %s (%s)\n", mesh_version(),
          mesh__tls_be.name, mesh__tls_be.lib_version());
}

/* meshctl version / --version: the library and its TLS backend (scripts
 * and the cross-backend tests read the "tls13:" line). */
static int version(void) {
  printf("meshctl (libmesh) %s\n", mesh_version());
  printf("tls backend: %s (%s)\n", mesh__tls_be.name,
         mesh__tls_be.lib_version());
  printf("tls13: %s\n", mesh__tls_be.has_tls13() ? "yes" : "no");
  return MESHCTL_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return MESHCTL_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return MESHCTL_OK;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version"))
    return version();
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (!strcmp(cmd, commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "meshctl: unknown command \"%s\" (try meshctl --help)\n",
          cmd);
  return MESHCTL_USAGE;
}

/* ---- helpers ---------------------------------------------------------------- */

static const meshctl_opt_t *find_opt(const meshctl_opt_t *opts,
                                     const char *name, size_t len) {
  for (; opts->name; opts++)
    if (strlen(opts->name) == len && !strncmp(opts->name, name, len))
      return opts;
  return NULL;
}

bool meshctl_parse_opts(int argc, char **argv, int first,
                        const meshctl_opt_t *opts, bool *help) {
  *help = false;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      *help = true;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "meshctl: unexpected argument \"%s\"\n", a);
      return false;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const meshctl_opt_t *o = find_opt(opts, name, len);
    if (!o) {
      fprintf(stderr, "meshctl: unknown option \"--%.*s\"\n", (int)len, name);
      return false;
    }
    if (o->flag) {
      if (eq) {
        fprintf(stderr, "meshctl: option --%s takes no value\n", o->name);
        return false;
      }
      *o->flag = true;
      continue;
    }
    if (eq) {
      *o->value = eq + 1;
    } else if (i + 1 < argc) {
      *o->value = argv[++i];
    } else {
      fprintf(stderr, "meshctl: option --%s needs a value\n", o->name);
      return false;
    }
  }
  return true;
}

static int64_t unit_seconds(char u) {
  switch (u) {
  case 's':
    return 1;
  case 'm':
    return 60;
  case 'h':
    return 3600;
  case 'd':
    return 86400;
  default:
    return 0;
  }
}

bool meshctl_parse_duration(const char *s, int64_t *out) {
  if (!s || !*s)
    return false;
  int64_t total = 0;
  const int64_t cap = (int64_t)1 << 40; /* ~35,000 years: plenty */
  while (*s) {
    if (*s < '0' || *s > '9')
      return false;
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (errno || n < 0 || n > cap)
      return false;
    int64_t mult = *end ? unit_seconds(*end) : 1;
    if (mult == 0 || (*end == '\0' && total != 0))
      return false; /* unknown unit, or "1h30" without a unit at the end */
    total += (int64_t)n * mult;
    if (total > cap)
      return false;
    s = *end ? end + 1 : end;
  }
  *out = total;
  return true;
}

int meshctl_report(int rc, const mesh_status_t *st) {
  fprintf(stderr, "meshctl: %s: %s\n", mesh_code_name(rc),
          st && st->message[0] ? st->message : mesh_strerror(rc));
  return MESHCTL_FAIL;
}

/* Is argv[i] the value of the option before it ("--name value")? */
static bool is_option_value(char **argv, int i, int first,
                            const meshctl_opt_t *opts) {
  if (i <= first)
    return false;
  const char *prev = argv[i - 1];
  if (strncmp(prev, "--", 2) != 0 || strchr(prev, '='))
    return false;
  const meshctl_opt_t *o = find_opt(opts, prev + 2, strlen(prev + 2));
  return o && !o->flag;
}

bool meshctl_parse_args(int argc, char **argv, int first,
                        const meshctl_opt_t *opts, bool *help,
                        const char **pos, size_t npos, size_t *got) {
  *got = 0;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    fprintf(stderr, "meshctl: out of memory\n");
    return false;
  }
  int n = 0;
  bool ok = true;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    bool positional = strncmp(a, "--", 2) != 0 && strcmp(a, "-h") != 0 &&
                      !is_option_value(argv, i, first, opts);
    if (!positional) {
      rest[n++] = argv[i];
    } else if (*got < npos) {
      pos[(*got)++] = a;
    } else {
      fprintf(stderr, "meshctl: unexpected argument \"%s\"\n", a);
      ok = false;
    }
  }
  ok = ok && meshctl_parse_opts(n, rest, 0, opts, help);
  free(rest);
  return ok;
}

/* ---- reading files ------------------------------------------------------- */

/* Read a whole stream; NULL with errno set on failure (EFBIG: too large). */
static char *read_stream(FILE *f, size_t *len, size_t max) {
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    size_t want = cap - n - 1;
    if (want > max + 1 - n)
      want = max + 1 - n; /* never read more than one byte past max */
    n += fread(buf + n, 1, want, f);
    if (n > max) {
      free(buf);
      errno = EFBIG;
      return NULL;
    }
    if (ferror(f)) {
      free(buf);
      return NULL;
    }
    if (feof(f)) {
      buf[n] = '\0';
      *len = n;
      return buf;
    }
    cap *= 2;
    char *nb = realloc(buf, cap);
    if (!nb)
      free(buf);
    buf = nb;
  }
  errno = ENOMEM;
  return NULL;
}

static char *read_limited(const char *path, size_t *len, size_t max) {
  if (!strcmp(path, "-"))
    return read_stream(stdin, len, max);
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *text = read_stream(f, len, max);
  int saved = errno;
  fclose(f);
  errno = saved;
  return text;
}

char *meshctl_read_file(const char *path, size_t *len) {
  return read_limited(path, len, MESHCTL_FILE_MAX);
}

char *meshctl_read_config(const char *path, size_t *len) {
  return read_limited(path, len, mesh_config_max_bytes());
}
