/* SPDX-License-Identifier: Apache-2.0 */
/* The worker loop: epoll for I/O, a binary heap of timers, and a queue of
 * posted functions woken through an eventfd.  One thread runs it: the
 * library's worker, or the application inside mesh_process(). */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct timer {
  int64_t id;
  int64_t due_ms;
  mesh__timer_fn fn;
  void *user;
} timer_t_;

/* A timer's id names a slot (low 24 bits) that knows where the timer sits
 * in the heap, so cancelling is O(log n): with a timer per service (file
 * polls, discovery), a scan per cancel made mesh_free quadratic. */
#define SLOT_BITS 24
#define SLOT_MASK ((INT64_C(1) << SLOT_BITS) - 1)
typedef struct tslot {
  int64_t id;  /* of the timer holding it; 0 when free */
  size_t pos;  /* heap index, or the next free slot */
} tslot_t;

typedef struct watch {
  int fd;
  unsigned events;
  mesh__io_fn fn;
  void *user;
  struct watch *next;
} watch_t;

typedef struct post {
  mesh__post_fn fn;
  void *user;
  struct post *next;
} post_t;

struct mesh__loop {
  int epfd;
  int evfd;
  pthread_t thread;
  bool has_thread;
  _Atomic bool stop;

  /* timers: touched only on the loop thread (or before it starts) */
  timer_t_ *heap;
  size_t nheap, capheap;
  int64_t next_id;
  tslot_t *slots; /* capheap of them */
  size_t free_slot; /* head of the free list, capheap when none */

  watch_t *watches; /* loop thread only */

  pthread_mutex_t post_mu;
  post_t *post_head, *post_tail;
};

/* ---- timer heap ---------------------------------------------------------- */

static tslot_t *slot_of(mesh__loop_t *l, size_t i) {
  return &l->slots[l->heap[i].id & SLOT_MASK];
}

static void heap_swap(mesh__loop_t *l, size_t a, size_t b) {
  timer_t_ t = l->heap[a];
  l->heap[a] = l->heap[b];
  l->heap[b] = t;
  slot_of(l, a)->pos = a;
  slot_of(l, b)->pos = b;
}

static void heap_up(mesh__loop_t *l, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (l->heap[p].due_ms <= l->heap[i].due_ms)
      break;
    heap_swap(l, p, i);
    i = p;
  }
}

static void heap_down(mesh__loop_t *l, size_t i) {
  for (;;) {
    size_t a = 2 * i + 1, b = a + 1, m = i;
    if (a < l->nheap && l->heap[a].due_ms < l->heap[m].due_ms)
      m = a;
    if (b < l->nheap && l->heap[b].due_ms < l->heap[m].due_ms)
      m = b;
    if (m == i)
      return;
    heap_swap(l, m, i);
    i = m;
  }
}

static void heap_remove_at(mesh__loop_t *l, size_t i) {
  tslot_t *sl = slot_of(l, i);
  sl->id = 0;
  sl->pos = l->free_slot;
  l->free_slot = (size_t)(sl - l->slots);
  l->nheap--;
  if (i == l->nheap)
    return;
  l->heap[i] = l->heap[l->nheap];
  slot_of(l, i)->pos = i;
  heap_down(l, i);
  heap_up(l, i);
}

/* Room for one more timer (heap entry and slot).  @return 0 or NOMEM. */
static int timers_reserve(mesh__loop_t *l) {
  if (l->nheap < l->capheap)
    return 0;
  size_t cap = l->capheap ? l->capheap * 2 : 16;
  if (cap > (size_t)SLOT_MASK + 1)
    return MESH_ERR_NOMEM;
  timer_t_ *h = realloc(l->heap, cap * sizeof *h);
  if (h)
    l->heap = h;
  tslot_t *sl = h ? realloc(l->slots, cap * sizeof *sl) : NULL;
  if (!sl)
    return MESH_ERR_NOMEM;
  l->slots = sl;
  /* every slot is in use (nheap == capheap): the new ones are the list */
  for (size_t i = l->capheap; i < cap; i++)
    sl[i] = (tslot_t){0, i + 1};
  l->free_slot = l->capheap;
  l->capheap = cap;
  return 0;
}

int64_t mesh__loop_timer(mesh__loop_t *l, int64_t delay_ms, mesh__timer_fn fn,
                         void *user) {
  if (!l || !fn)
    return MESH_ERR_INVALID_ARG;
  if (timers_reserve(l) != 0)
    return MESH_ERR_NOMEM;
  if (delay_ms < 0)
    delay_ms = 0;
  size_t k = l->free_slot;
  tslot_t *sl = &l->slots[k];
  l->free_slot = sl->pos;
  int64_t id = (++l->next_id << SLOT_BITS) | (int64_t)k;
  timer_t_ *t = &l->heap[l->nheap];
  t->id = id;
  t->due_ms = mesh__now_ms() + delay_ms;
  t->fn = fn;
  t->user = user;
  sl->id = id;
  sl->pos = l->nheap;
  l->nheap++;
  heap_up(l, l->nheap - 1);
  return id;
}

void mesh__loop_timer_cancel(mesh__loop_t *l, int64_t id) {
  if (!l || id <= 0)
    return;
  size_t k = (size_t)(id & SLOT_MASK);
  if (k >= l->capheap || l->slots[k].id != id)
    return; /* fired, cancelled, or never ours */
  heap_remove_at(l, l->slots[k].pos);
}

static void run_timers(mesh__loop_t *l) {
  int64_t now = mesh__now_ms();
  /* Bound the round so a timer that re-arms at 0 ms cannot starve I/O. */
  size_t budget = l->nheap;
  while (budget-- > 0 && l->nheap > 0 && l->heap[0].due_ms <= now) {
    timer_t_ t = l->heap[0];
    heap_remove_at(l, 0);
    t.fn(t.user);
  }
}

int mesh__loop_timeout(mesh__loop_t *l) {
  if (!l)
    return -1;
  pthread_mutex_lock(&l->post_mu);
  bool posts = l->post_head != NULL;
  pthread_mutex_unlock(&l->post_mu);
  if (posts)
    return 0;
  if (l->nheap == 0)
    return -1;
  int64_t d = l->heap[0].due_ms - mesh__now_ms();
  if (d < 0)
    return 0;
  return d > 60000 ? 60000 : (int)d;
}

/* ---- I/O watches --------------------------------------------------------- */

static uint32_t to_epoll(unsigned ev) {
  uint32_t e = 0;
  if (ev & MESH__IO_READ)
    e |= EPOLLIN;
  if (ev & MESH__IO_WRITE)
    e |= EPOLLOUT;
  return e;
}

static watch_t *find_watch(mesh__loop_t *l, int fd) {
  for (watch_t *w = l->watches; w; w = w->next)
    if (w->fd == fd)
      return w;
  return NULL;
}

int mesh__loop_watch(mesh__loop_t *l, int fd, unsigned events, mesh__io_fn fn,
                     void *user) {
  if (!l || fd < 0 || !fn)
    return MESH_ERR_INVALID_ARG;
  watch_t *w = find_watch(l, fd);
  struct epoll_event ee = {.events = to_epoll(events), .data.fd = fd};
  if (w) {
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ee) != 0)
      return MESH_ERR_IO;
    w->events = events;
    w->fn = fn;
    w->user = user;
    return MESH_OK;
  }
  w = calloc(1, sizeof *w);
  if (!w)
    return MESH_ERR_NOMEM;
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ee) != 0) {
    free(w);
    return MESH_ERR_IO;
  }
  w->fd = fd;
  w->events = events;
  w->fn = fn;
  w->user = user;
  w->next = l->watches;
  l->watches = w;
  return MESH_OK;
}

void mesh__loop_unwatch(mesh__loop_t *l, int fd) {
  if (!l)
    return;
  for (watch_t **pp = &l->watches; *pp; pp = &(*pp)->next) {
    if ((*pp)->fd == fd) {
      watch_t *w = *pp;
      *pp = w->next;
      epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
      free(w);
      return;
    }
  }
}

/* ---- posts ----------------------------------------------------------------- */

int mesh__loop_post(mesh__loop_t *l, mesh__post_fn fn, void *user) {
  if (!l || !fn)
    return MESH_ERR_INVALID_ARG;
  post_t *p = calloc(1, sizeof *p);
  if (!p)
    return MESH_ERR_NOMEM;
  p->fn = fn;
  p->user = user;
  pthread_mutex_lock(&l->post_mu);
  if (l->post_tail)
    l->post_tail->next = p;
  else
    l->post_head = p;
  l->post_tail = p;
  pthread_mutex_unlock(&l->post_mu);
  uint64_t one = 1;
  ssize_t w = write(l->evfd, &one, sizeof one);
  (void)w; /* EAGAIN means the counter is already non-zero: still woken */
  return MESH_OK;
}

static void run_posts(mesh__loop_t *l) {
  pthread_mutex_lock(&l->post_mu);
  post_t *p = l->post_head;
  l->post_head = l->post_tail = NULL;
  pthread_mutex_unlock(&l->post_mu);
  while (p) {
    post_t *next = p->next;
    p->fn(p->user);
    free(p);
    p = next;
  }
}

struct call_wait {
  mesh__post_fn fn;
  void *user;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};

static void call_trampoline(void *u) {
  struct call_wait *cw = u;
  cw->fn(cw->user);
  pthread_mutex_lock(&cw->mu);
  cw->done = true;
  pthread_cond_signal(&cw->cv);
  pthread_mutex_unlock(&cw->mu);
}

int mesh__loop_call(mesh__loop_t *l, mesh__post_fn fn, void *user) {
  if (!l || !fn)
    return MESH_ERR_INVALID_ARG;
  /* Without a running thread (external mode, or not started) the caller is
   * the loop's owner: run inline. */
  if (!l->has_thread || mesh__loop_on_thread(l)) {
    fn(user);
    return MESH_OK;
  }
  struct call_wait cw = {.fn = fn, .user = user, .done = false};
  pthread_mutex_init(&cw.mu, NULL);
  pthread_cond_init(&cw.cv, NULL);
  int rc = mesh__loop_post(l, call_trampoline, &cw);
  if (rc == MESH_OK) {
    pthread_mutex_lock(&cw.mu);
    while (!cw.done)
      pthread_cond_wait(&cw.cv, &cw.mu);
    pthread_mutex_unlock(&cw.mu);
  }
  pthread_cond_destroy(&cw.cv);
  pthread_mutex_destroy(&cw.mu);
  return rc;
}

/* ---- running --------------------------------------------------------------- */

void mesh__loop_run_once(mesh__loop_t *l, int wait_ms) {
  struct epoll_event evs[32];
  int t = mesh__loop_timeout(l);
  if (t < 0 || (wait_ms >= 0 && wait_ms < t))
    t = wait_ms;
  int n = epoll_wait(l->epfd, evs, 32, t);
  for (int i = 0; i < n; i++) {
    int fd = evs[i].data.fd;
    if (fd == l->evfd) {
      uint64_t v;
      ssize_t r = read(l->evfd, &v, sizeof v);
      (void)r;
      continue;
    }
    watch_t *w = find_watch(l, fd);
    if (!w)
      continue; /* unwatched by an earlier callback in this round */
    unsigned ev = 0;
    if (evs[i].events & EPOLLIN)
      ev |= MESH__IO_READ;
    if (evs[i].events & EPOLLOUT)
      ev |= MESH__IO_WRITE;
    if (evs[i].events & (EPOLLERR | EPOLLHUP))
      ev |= MESH__IO_ERROR | MESH__IO_READ;
    w->fn(fd, ev, w->user);
  }
  run_timers(l);
  run_posts(l);
}

static void *loop_main(void *arg) {
  mesh__loop_t *l = arg;
  while (!atomic_load(&l->stop))
    mesh__loop_run_once(l, 1000);
  run_posts(l); /* do not strand mesh__loop_call() waiters */
  return NULL;
}

bool mesh__loop_on_thread(mesh__loop_t *l) {
  return l && l->has_thread && pthread_equal(pthread_self(), l->thread);
}

int mesh__loop_new(mesh__loop_t **out) {
  if (!out)
    return MESH_ERR_INVALID_ARG;
  mesh__loop_t *l = calloc(1, sizeof *l);
  if (!l)
    return MESH_ERR_NOMEM;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (l->epfd < 0 || l->evfd < 0) {
    int fdl = errno == EMFILE || errno == ENFILE;
    if (l->epfd >= 0)
      close(l->epfd);
    if (l->evfd >= 0)
      close(l->evfd);
    free(l);
    return fdl ? MESH_ERR_FD_LIMIT : MESH_ERR_IO;
  }
  struct epoll_event ee = {.events = EPOLLIN, .data.fd = l->evfd};
  epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ee);
  pthread_mutex_init(&l->post_mu, NULL);
  *out = l;
  return MESH_OK;
}

int mesh__loop_start_thread(mesh__loop_t *l) {
  if (!l || l->has_thread)
    return MESH_ERR_INVALID_ARG;
  atomic_store(&l->stop, false);
  if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
    return MESH_ERR_NOMEM;
  l->has_thread = true;
  return MESH_OK;
}

void mesh__loop_stop(mesh__loop_t *l) {
  if (!l || !l->has_thread)
    return;
  atomic_store(&l->stop, true);
  uint64_t one = 1;
  ssize_t w = write(l->evfd, &one, sizeof one);
  (void)w;
  pthread_join(l->thread, NULL);
  l->has_thread = false;
}

int mesh__loop_fd(mesh__loop_t *l) { return l ? l->epfd : -1; }

void mesh__loop_free(mesh__loop_t *l) {
  if (!l)
    return;
  mesh__loop_stop(l);
  run_posts(l);
  while (l->watches) {
    watch_t *w = l->watches;
    l->watches = w->next;
    free(w);
  }
  free(l->heap);
  free(l->slots);
  close(l->epfd);
  close(l->evfd);
  pthread_mutex_destroy(&l->post_mu);
  free(l);
}
