/* SPDX-License-Identifier: Apache-2.0 */
/* The admin endpoint's inside, shared by its server (admin.c: sockets,
 * connections, the worker loop) and its views (admin_views.c: what each
 * path answers).  Nothing outside observe/admin*.c includes it. */
#ifndef MESH_OBSERVE_ADMIN_H
#define MESH_OBSERVE_ADMIN_H

#include <stddef.h>

#include "core/core.h"
#include "http/http.h"

typedef struct mesh__admin mesh__admin_t;

struct mesh__admin {
  mesh_t *m;
  int fd;
  int port;
  struct admin_conn *conns; /* admin.c */
  size_t nconns;
};

/* A response being built: status, content type, malloc'd body. */
typedef struct resp {
  int status;
  const char *ctype;
  char *body; /* malloc'd */
  size_t len;
  const char *extra; /* extra header lines, CRLF-terminated, or NULL */
} resp_t;

/* The admin page (admin_page.c). */
extern const char mesh__admin_page[];

/* The reason phrase of an HTTP status. */
const char *mesh__admin_reason(int status);
/* A text/plain response (body copied; on no memory the body stays NULL). */
void mesh__admin_resp_text(resp_t *r, int status, const char *text);
/* Fill r with what target's path answers; returns the path as counted in
 * mesh_admin_requests_total ("/", "/metrics", ..., "other"). */
const char *mesh__admin_route(mesh__admin_t *a, mesh__http_str_t target,
                              resp_t *r);

/* POST /log?level=NAME: set the context's log level; r says the result. */
void mesh__admin_set_log(mesh__admin_t *a, mesh__http_str_t target, resp_t *r);

#endif
