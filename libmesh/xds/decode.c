/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the xDS decoders: type URLs, durations, fractions, and
 * the check of a decoded service config by the parts that own its keys. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh.h"
#include "xds/proto/base.pb-c.h"
#include "xds/xds.h"
#include "xds/xds_int.h"

static const char *const type_urls[MESH__XDS_T_N_] = {
    MESH__XDS_LDS, MESH__XDS_RDS, MESH__XDS_CDS, MESH__XDS_EDS};

const char *mesh__xds_type_url(mesh__xds_type_t t) {
  return (unsigned)t < MESH__XDS_T_N_ ? type_urls[t] : NULL;
}

int mesh__xds_type_of(const char *url) {
  for (int i = 0; url && i < MESH__XDS_T_N_; i++)
    if (strcmp(url, type_urls[i]) == 0)
      return i;
  return -1;
}

int mesh__xds_duration_ms(const void *duration, int64_t *ms) {
  const Meshxds__Duration *d = duration;
  *ms = 0;
  if (!d)
    return MESH_OK;
  if (d->seconds < 0 || d->nanos < 0 || d->nanos > 999999999 ||
      d->seconds > INT32_MAX / 1000)
    return MESH_ERR_CONFIG;
  int64_t v = d->seconds * 1000 + (d->nanos + 999999) / 1000000;
  if (v > INT32_MAX)
    return MESH_ERR_CONFIG;
  *ms = v;
  return MESH_OK;
}

uint32_t mesh__xds_fraction_ppm(const void *fractional_percent) {
  const Meshxds__FractionalPercent *f = fractional_percent;
  if (!f)
    return 0;
  uint64_t mul;
  switch (f->denominator) {
  case MESHXDS__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__HUNDRED: mul = 10000; break;
  case MESHXDS__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__TEN_THOUSAND: mul = 100; break;
  default: mul = 1; break;
  }
  uint64_t v = (uint64_t)f->numerator * mul;
  return v > 1000000 ? 1000000 : (uint32_t)v; /* Envoy caps at 100% */
}

struct first_err {
  mesh_status_t *st;
  const char *what, *strip;
  bool seen;
};

static void on_err(const char *msg, void *user) {
  struct first_err *f = user;
  if (f->seen)
    return;
  f->seen = true;
  size_t n = strlen(f->strip);
  if (strncmp(msg, f->strip, n) == 0)
    msg += n;
  mesh__fail(f->st, MESH_ERR_CONFIG, "%s: %s", f->what, msg);
}

/* The public checker, the one mesh_new() runs, over a synthetic document:
 * what it refuses is refused here, in its words. */
int mesh__xds_check_doc(const cJSON *doc, const char *strip, const char *what,
                        mesh_status_t *st) {
  char *text = cJSON_PrintUnformatted(doc);
  if (!text)
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  struct first_err f = {st, what, strip, false};
  int n = mesh_config_check(text, on_err, &f);
  free(text);
  if (n < 0)
    return mesh__fail(st, n, "%s: cannot check: %s", what, mesh_strerror(n));
  return n ? MESH_ERR_CONFIG : MESH_OK;
}

int mesh__xds_check_svc(const cJSON *svc, const char *what, mesh_status_t *st) {
  cJSON *doc = cJSON_CreateObject();
  cJSON *svcs = cJSON_AddObjectToObject(doc, "services");
  if (!svcs || !cJSON_AddItemReferenceToObject(svcs, "x", (cJSON *)svc)) {
    cJSON_Delete(doc);
    return mesh__fail(st, MESH_ERR_NOMEM, "out of memory");
  }
  int rc = mesh__xds_check_doc(doc, "services.x.", what, st);
  cJSON_Delete(doc);
  return rc;
}

int mesh__xds_refuse(char *buf, size_t cap, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  return code;
}

/* ---- arena: protobuf-c unpacks into one bump allocator -------------------
 * An EDS resource of 10,000 endpoints is ~60,000 small allocations when
 * protobuf-c unpacks it with malloc, and as many frees: most of the time
 * of an update.  An arena makes them a few large blocks freed at once. */
typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} arena_block_t;

struct mesh__xds_arena {
  ProtobufCAllocator pa;
  arena_block_t *head;
};

static void *arena_alloc(void *ud, size_t size) {
  mesh__xds_arena_t *a = ud;
  size = (size + 15) & ~(size_t)15;
  arena_block_t *b = a->head;
  if (!b || b->cap - b->used < size) {
    size_t cap = size > 65536 ? size : 65536;
    b = malloc(sizeof *b + cap);
    if (!b)
      return NULL;
    b->cap = cap;
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  return p;
}

static void arena_free_one(void *ud, void *p) {
  (void)ud;
  (void)p; /* released with the arena */
}

mesh__xds_arena_t *mesh__xds_arena_new(void) {
  mesh__xds_arena_t *a = calloc(1, sizeof *a);
  if (a) {
    a->pa.alloc = arena_alloc;
    a->pa.free = arena_free_one;
    a->pa.allocator_data = a;
  }
  return a;
}

ProtobufCAllocator *mesh__xds_arena_allocator(mesh__xds_arena_t *a) {
  return &a->pa;
}

void mesh__xds_arena_free(mesh__xds_arena_t *a) {
  if (!a)
    return;
  while (a->head) {
    arena_block_t *n = a->head->next;
    free(a->head);
    a->head = n;
  }
  free(a);
}
