/* SPDX-License-Identifier: Apache-2.0 */
/* meshctl: the command table and helpers shared by subcommands.
 * A subcommand is one function `int meshctl_<name>(int argc, char **argv)`
 * in tools/meshctl_<name>.c (argv[0] is the subcommand name), declared
 * here and listed in the table in tools/meshctl.c.  It returns the process
 * exit code: 0 success, 1 failure, 2 usage error. */
#ifndef MESH_TOOLS_MESHCTL_H
#define MESH_TOOLS_MESHCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <mesh/mesh.h>

#define MESHCTL_OK 0
#define MESHCTL_FAIL 1
#define MESHCTL_USAGE 2

typedef struct meshctl_cmd {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} meshctl_cmd_t;

/* ---- subcommands -------------------------------------------------------- */
int meshctl_ca(int argc, char **argv);
int meshctl_dial(int argc, char **argv);
int meshctl_serve(int argc, char **argv);
int meshctl_check_config(int argc, char **argv);
int meshctl_resolve(int argc, char **argv);
int meshctl_grpc(int argc, char **argv);
int meshctl_xds(int argc, char **argv);
int meshctl_identity(int argc, char **argv);
int meshctl_jwt(int argc, char **argv);

/* ---- helpers (tools/meshctl.c) ------------------------------------------- */

/* One option of a subcommand: "--name value", "--name=value", or a flag. */
typedef struct meshctl_opt {
  const char *name;  /* without the leading "--" */
  const char **value; /* receives the value (string options) */
  bool *flag;         /* set for flags (value == NULL) */
} meshctl_opt_t;

/** Parse argv[first..argc) against opts (NULL-name terminated).  "--help"
 *  and "-h" set *help.  Prints the problem to stderr.
 *  @return true on success. */
bool meshctl_parse_opts(int argc, char **argv, int first,
                        const meshctl_opt_t *opts, bool *help);

/** As meshctl_parse_opts(), and collect up to npos positional arguments
 *  (those that are neither options nor option values) into pos[0..*got).
 *  More positionals than npos is an error.  @return true on success. */
bool meshctl_parse_args(int argc, char **argv, int first,
                        const meshctl_opt_t *opts, bool *help,
                        const char **pos, size_t npos, size_t *got);

/** Parse a duration: "90", "90s", "15m", "24h", "7d", "1h30m".  Plain
 *  numbers are seconds.  @return true and seconds in *out when valid. */
bool meshctl_parse_duration(const char *s, int64_t *out);

/** As meshctl_read_file(), for configuration text: at most
 *  mesh_config_max_bytes() bytes (EFBIG past it, after reading at most one
 *  byte more). */
char *meshctl_read_config(const char *path, size_t *len);

/** Read a whole file ("-": standard input) into a malloc'd NUL-terminated
 *  buffer, at most MESHCTL_FILE_MAX bytes.
 *  @return the buffer (length in *len), or NULL with errno set (EFBIG when
 *          too large). */
#define MESHCTL_FILE_MAX (64u << 20)
char *meshctl_read_file(const char *path, size_t *len);

/** Print "meshctl: CODE_NAME: message" to stderr; returns MESHCTL_FAIL. */
int meshctl_report(int rc, const mesh_status_t *st);

/** GET http://ADDR PATH from a running process's admin endpoint
 *  (tools/meshctl_admin.c): plain HTTP, no proxy, at most timeout_ms and
 *  MESHCTL_ADMIN_MAX bytes of body, parsed as JSON.
 *  @return the document (cJSON_Delete it), or NULL after printing
 *          "meshctl WHO: URL: problem" to stderr (the transfer error, the
 *          HTTP status followed by hint404 on a 404, or "not JSON"). */
#define MESHCTL_ADMIN_MAX (16u << 20)
struct cJSON;
struct cJSON *meshctl_admin_get(const char *who, const char *addr,
                                const char *path, long timeout_ms,
                                const char *hint404);
/** The /resilience view's object of service at addr (owned), or NULL
 *  (the failure is reported on standard error). */
struct cJSON *meshctl_res_fetch(const char *who, const char *addr,
                                const char *service, long timeout_ms);
/** Print it: one line for the service, or one per cluster. */
void meshctl_res_print(const struct cJSON *svc);

#endif /* MESH_TOOLS_MESHCTL_H */
