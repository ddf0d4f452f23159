/* SPDX-License-Identifier: Apache-2.0 */
/* The one JSON entry point of the library: every text parsed with cJSON
 * (configuration, policies, discovery files, etcd values and answers, OPA
 * answers, meshctl inputs) goes through mesh__json_parse(), so the same
 * rules hold everywhere:
 *   - nothing but white space after the value;
 *   - no object with the same key twice.  cJSON keeps both members and its
 *     lookups return the first, while jq, Python and Go read the last: a
 *     document two readers understand differently is refused, naming the
 *     JSON path of the second occurrence.
 * The size cap of configuration text (mesh_config_set_max_bytes) lives here
 * too: it is checked on the length, before a byte is parsed. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- size cap of configuration text ------------------------------------ */

static _Atomic size_t config_max; /* 0: not set by the application */

size_t mesh_config_set_max_bytes(size_t max) {
  size_t old = mesh__config_max_bytes();
  atomic_store(&config_max, max);
  return old;
}

/* Clamped so that max + 1 never wraps. */
#define CAP_LIMIT (SIZE_MAX / 2)

size_t mesh__config_max_bytes(void) {
  size_t v = atomic_load(&config_max);
  if (v)
    return v > CAP_LIMIT ? CAP_LIMIT : v;
  const char *env = getenv("MESH_CONFIG_MAX_BYTES");
  if (env && *env) {
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(env, &end, 10);
    if (!errno && end && !*end && x > 0)
      return x > CAP_LIMIT ? CAP_LIMIT : (size_t)x;
  }
  return MESH_CONFIG_MAX_BYTES_DEFAULT;
}

size_t mesh_config_max_bytes(void) { return mesh__config_max_bytes(); }

int mesh__config_size_error(size_t len, char *msg, size_t cap) {
  size_t max = mesh__config_max_bytes();
  if (len <= max)
    return 0;
  snprintf(msg, cap,
           "configuration is larger than the limit of %zu bytes (at least "
           "%zu bytes; raise it with mesh_config_set_max_bytes() or "
           "MESH_CONFIG_MAX_BYTES)",
           max, len);
  return 1;
}

/* ---- duplicate keys ----------------------------------------------------- */

typedef struct member {
  const char *name;
  size_t idx; /* document order */
} member_t;

static int cmp_member(const void *a, const void *b) {
  const member_t *x = a, *y = b;
  int r = strcmp(x->name, y->name);
  if (r)
    return r;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

typedef struct dupctx {
  char path[MESH__PATH_MAX];
  mesh__json_dup_fn fn;
  void *user;
  int n;
} dupctx_t;

/* Append ".key" or "[i]" to the path at len; returns the new length (the
 * path is cut at a whole component when it does not fit). */
static size_t push(dupctx_t *d, size_t len, const char *key, int idx) {
  char part[MESH__PATH_MAX];
  int n = key ? snprintf(part, sizeof part, "%s%s", len ? "." : "", key)
              : snprintf(part, sizeof part, "[%d]", idx);
  if (n < 0 || len + (size_t)n >= sizeof d->path)
    return len;
  memcpy(d->path + len, part, (size_t)n + 1);
  return len + (size_t)n;
}

static void report_dups(dupctx_t *d, const cJSON *obj, size_t len,
                        member_t *v, size_t n) {
  size_t k = 0;
  for (const cJSON *it = obj->child; it; it = it->next, k++)
    v[k] = (member_t){it->string ? it->string : "", k};
  qsort(v, n, sizeof *v, cmp_member);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(v[i - 1].name, v[i].name) != 0)
      continue;
    /* report each duplicated name once, however often it repeats */
    if (i >= 2 && strcmp(v[i - 2].name, v[i].name) == 0)
      continue;
    push(d, len, v[i].name, 0);
    d->n++;
    if (d->fn)
      d->fn(d->path, v[i].name, d->user);
    d->path[len] = '\0';
  }
}

static int walk(dupctx_t *d, const cJSON *node, size_t len) {
  size_t n = 0;
  for (const cJSON *it = node->child; it; it = it->next)
    n++;
  if (cJSON_IsObject(node) && n > 1) {
    member_t *v = malloc(n * sizeof *v);
    if (!v)
      return MESH_ERR_NOMEM;
    report_dups(d, node, len, v, n);
    free(v);
  }
  int i = 0;
  for (const cJSON *it = node->child; it; it = it->next, i++) {
    if (!cJSON_IsObject(it) && !cJSON_IsArray(it))
      continue;
    size_t l = cJSON_IsObject(node) ? push(d, len, it->string, 0)
                                    : push(d, len, NULL, i);
    int rc = walk(d, it, l);
    d->path[len] = '\0';
    if (rc != MESH_OK)
      return rc;
  }
  return MESH_OK;
}

int mesh__json_dups(const cJSON *root, mesh__json_dup_fn fn, void *user) {
  if (!root)
    return 0;
  dupctx_t d = {.fn = fn, .user = user};
  int rc = walk(&d, root, 0);
  return rc != MESH_OK ? rc : d.n;
}

/* ---- parsing ------------------------------------------------------------ */

static void keep_first(const char *path, const char *key, void *user) {
  mesh__json_err_t *e = user;
  if (e->kind != MESH__JSON_OK)
    return;
  e->kind = MESH__JSON_DUPLICATE;
  mesh__strlcpy(e->path, path, sizeof e->path);
  snprintf(e->message, sizeof e->message, "%s: duplicate key \"%s\"",
           *path ? path : "(root)", key);
}

static void position(const char *buf, size_t off, mesh__json_err_t *e) {
  e->line = 1;
  e->column = 1;
  for (size_t i = 0; i < off; i++) {
    if (buf[i] == '\n') {
      e->line++;
      e->column = 1;
    } else {
      e->column++;
    }
  }
}

static cJSON *syntax_error(const char *buf, size_t off, mesh__json_err_t *e) {
  e->kind = MESH__JSON_SYNTAX;
  e->offset = off;
  position(buf, off, e);
  snprintf(e->message, sizeof e->message,
           "JSON syntax error at line %d, column %d", e->line, e->column);
  return NULL;
}

typedef struct dup_fwd {
  mesh__json_err_t *err;
  mesh__json_dup_fn fn;
  void *user;
} dup_fwd_t;

static void on_dup(const char *path, const char *key, void *user) {
  dup_fwd_t *f = user;
  keep_first(path, key, f->err);
  if (f->fn)
    f->fn(path, key, f->user);
}

cJSON *mesh__json_parse_dups(const char *buf, size_t len,
                             mesh__json_err_t *err, mesh__json_dup_fn fn,
                             void *user) {
  mesh__json_err_t dummy;
  mesh__json_err_t *e = err ? err : &dummy;
  memset(e, 0, sizeof *e);
  if (!buf)
    return syntax_error("", 0, e);
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
  if (!v)
    return syntax_error(buf, end && end >= buf ? (size_t)(end - buf) : 0, e);
  for (const char *p = end; p < buf + len; p++) {
    if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
      cJSON_Delete(v);
      return syntax_error(buf, (size_t)(p - buf), e);
    }
  }
  dup_fwd_t f = {e, fn, user};
  int n = mesh__json_dups(v, on_dup, &f);
  if (n == 0)
    return v;
  if (n < 0) {
    e->kind = MESH__JSON_NOMEM;
    mesh__strlcpy(e->message, "out of memory", sizeof e->message);
  }
  cJSON_Delete(v);
  return NULL;
}

cJSON *mesh__json_parse(const char *buf, size_t len, mesh__json_err_t *err) {
  return mesh__json_parse_dups(buf, len, err, NULL, NULL);
}

/* ---- packing ------------------------------------------------------------ */

typedef struct pack {
  cJSON *node; /* next free node */
  char *text;  /* next free string byte, after the last node */
} pack_t;

/* Nodes and string bytes of v and its children (not its siblings). */
static void pack_count(const cJSON *v, size_t *nodes, size_t *text) {
  (*nodes)++;
  if (v->string)
    *text += strlen(v->string) + 1;
  if (v->valuestring)
    *text += strlen(v->valuestring) + 1;
  for (const cJSON *c = v->child; c; c = c->next)
    pack_count(c, nodes, text); /* depth <= cJSON's nesting limit */
}

static char *pack_str(pack_t *p, const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *d = memcpy(p->text, s, n);
  p->text += n;
  return d;
}

/* A copy of v and its children; links to siblings are the caller's. */
static cJSON *pack_node(pack_t *p, const cJSON *v) {
  cJSON *c = p->node++;
  *c = (cJSON){.type = v->type & ~(cJSON_IsReference | cJSON_StringIsConst),
               .valueint = v->valueint, .valuedouble = v->valuedouble};
  c->string = pack_str(p, v->string);
  c->valuestring = pack_str(p, v->valuestring);
  cJSON *prev = NULL;
  for (const cJSON *k = v->child; k; k = k->next) {
    cJSON *n = pack_node(p, k);
    n->prev = prev;
    if (prev)
      prev->next = n;
    else
      c->child = n;
    prev = n;
  }
  if (c->child) /* as cJSON links them: the first item's prev is the last */
    c->child->prev = prev;
  return c;
}

cJSON *mesh__json_pack(const cJSON *root) {
  if (!root)
    return NULL;
  size_t nodes = 0, text = 0;
  pack_count(root, &nodes, &text);
  cJSON *block = malloc(nodes * sizeof *block + text);
  if (!block)
    return NULL;
  pack_t p = {block, (char *)(block + nodes)};
  pack_node(&p, root);
  return block;
}
