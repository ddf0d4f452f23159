/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection (Istio's HTTPFaultInjection): delay a percentage of
 * requests by a fixed time, abort a percentage with a status.  The decision
 * is pure: the caller supplies the random draws. */
#include "http/http.h"

static void delay_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__fault_t *f) {
  static const char *const keys[] = {"fixed_delay_ms", "percentage", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "fixed_delay_ms");
  if (!mesh__cfg_int(c, v, path, "fixed_delay_ms", 0, 3600000, 0,
                     &f->delay_ms) &&
      !cJSON_GetObjectItemCaseSensitive(v, "fixed_delay_ms"))
    mesh__cfg_error(c, p, "required");
  /* Istio: an absent percentage means every request */
  mesh__cfg_double(c, v, path, "percentage", 0, 100, 100, &f->delay_pct);
  f->delay = true;
}

static void abort_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                        mesh__fault_t *f) {
  static const char *const keys[] = {"http_status", "percentage", NULL};
  if (!mesh__cfg_object(c, v, path, keys))
    return;
  char p[MESH__PATH_MAX];
  mesh__cfg_path(p, path, "http_status");
  int64_t status;
  if (!mesh__cfg_int(c, v, path, "http_status", 200, 599, 0, &status) &&
      !cJSON_GetObjectItemCaseSensitive(v, "http_status"))
    mesh__cfg_error(c, p, "required");
  f->abort_status = (int)status;
  mesh__cfg_double(c, v, path, "percentage", 0, 100, 100, &f->abort_pct);
  f->abort = true;
}

void mesh__fault_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                       mesh__fault_t *out) {
  static const char *const keys[] = {"delay", "abort", NULL};
  mesh__fault_t f = {0};
  if (mesh__cfg_object(c, v, path, keys)) {
    char p[MESH__PATH_MAX];
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(v, "delay");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(v, "abort");
    if (d) {
      mesh__cfg_path(p, path, "delay");
      delay_parse(c, d, p, &f);
    }
    if (a) {
      mesh__cfg_path(p, path, "abort");
      abort_parse(c, a, p, &f);
    }
    if (!d && !a)
      mesh__cfg_error(c, path, "needs \"delay\" or \"abort\"");
  }
  if (out)
    *out = f;
}

void mesh__fault_decide(const mesh__fault_t *f, double u_delay,
                        double u_abort, int64_t *delay_ms, int *status) {
  *delay_ms = 0;
  *status = 0;
  if (!f)
    return;
  if (f->delay && u_delay * 100.0 < f->delay_pct)
    *delay_ms = f->delay_ms;
  if (f->abort && u_abort * 100.0 < f->abort_pct)
    *status = f->abort_status;
}
