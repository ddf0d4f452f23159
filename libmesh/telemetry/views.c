/* SPDX-License-Identifier: Apache-2.0 */
/* Views: named renderers a part registers so that a reader (the admin
 * endpoint) can show the part's state without calling into it.  A short
 * list under a mutex: registration happens at init, rendering per admin
 * request, neither on a hot path. */
#include "telemetry/telemetry.h"

#include <stdlib.h>
#include <string.h>

struct mesh__view {
  struct mesh__view *next;
  const char *name; /* borrowed literal */
  mesh__view_fn render;
  void *user;
};

int mesh__view_register(mesh_t *m, const char *name, mesh__view_fn render,
                        void *user) {
  if (!name || !*name || !render)
    return MESH_ERR_INVALID_ARG;
  struct mesh__observe *o = mesh__observe_get(m);
  if (!o)
    return m ? MESH_ERR_NOMEM : MESH_ERR_INVALID_ARG;
  pthread_mutex_lock(&o->views_mu);
  struct mesh__view **pp = &o->views;
  while (*pp && strcmp((*pp)->name, name) != 0)
    pp = &(*pp)->next;
  if (!*pp) {
    *pp = calloc(1, sizeof **pp);
    if (!*pp) {
      pthread_mutex_unlock(&o->views_mu);
      return MESH_ERR_NOMEM;
    }
    (*pp)->name = name;
  }
  (*pp)->render = render;
  (*pp)->user = user;
  pthread_mutex_unlock(&o->views_mu);
  return MESH_OK;
}

void mesh__view_unregister(mesh_t *m, const char *name) {
  struct mesh__observe *o = m && name ? m->observe : NULL;
  if (!o)
    return;
  pthread_mutex_lock(&o->views_mu);
  for (struct mesh__view **pp = &o->views; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, name) == 0) {
      struct mesh__view *v = *pp;
      *pp = v->next;
      free(v);
      break;
    }
  }
  pthread_mutex_unlock(&o->views_mu);
}

cJSON *mesh__view_render(mesh_t *m, const char *name) {
  struct mesh__observe *o = m && name ? m->observe : NULL;
  if (!o)
    return NULL;
  mesh__view_fn fn = NULL;
  void *user = NULL;
  pthread_mutex_lock(&o->views_mu);
  for (struct mesh__view *v = o->views; v; v = v->next) {
    if (strcmp(v->name, name) == 0) {
      fn = v->render;
      user = v->user;
      break;
    }
  }
  pthread_mutex_unlock(&o->views_mu);
  return fn ? fn(m, user) : NULL;
}

void mesh__views_free(struct mesh__observe *o) {
  struct mesh__view *v = o->views;
  while (v) {
    struct mesh__view *next = v->next;
    free(v);
    v = next;
  }
  o->views = NULL;
}
