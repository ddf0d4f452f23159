/* SPDX-License-Identifier: Apache-2.0 */
/* Maglev (Eisenbud et al., NSDI 2016, listing 1), built like Envoy's
 * MaglevTable so the same key maps to the same host:
 *  - hosts ordered by their hash key ("ip:port", see ring_hash.c);
 *  - offset = xxHash64(key, seed 0) % M, skip = xxHash64(key, seed 1) %
 *    (M - 1) + 1, permutation(j) = (offset + skip * j) % M;
 *  - weighted filling: normalized weights; in round r a host takes a slot
 *    when r * w >= its running target, which then grows by max_w
 *    (Envoy's exact arithmetic, in doubles);
 *  - a request hash h reads table[h % M].
 * An unusable host is skipped by reading the next slots, (h + k) % M; Envoy
 * rebuilds the table without it.
 * Build cost: about M ln M slot probes, see fill(). */
#include "lb/lb.h"

#include <stdlib.h>
#include <string.h>

/* One host while the table fills, in key order (the keys, up to 320 bytes
 * each, are only needed to hash and sort); the walk itself runs on walk_t,
 * built from this. */
typedef struct entry {
  uint32_t idx;
  uint32_t skip;   /* < m */
  uint32_t inv;    /* skip^-1 mod m (0: none, m not prime; NO_INV: not
                      computed yet: only hosts with a turn in the tail
                      need it, and Euclid's divides cost ~0.1 ms for
                      1,000 hosts) */
  uint32_t pos;    /* offset: where the walk starts */
  double weight, target;
} entry_t;

/* The hosts' keys, packed: key i is text + off[i] (NUL-terminated).  A
 * fixed 320-byte slot per host made a 320 KB array for 1,000 hosts: fresh
 * pages on every build, and a sort that walked all of them. */
typedef struct keys {
  char *text;
  uint32_t *off;
} keys_t;

/* A host to sort: the key's first 8 bytes big-endian (zero-padded after
 * the NUL, so they order as strcmp does), then the whole key on a tie:
 * most comparisons read no key text. */
typedef struct sortkey {
  uint64_t pre;
  uint32_t i;
} sortkey_t;

static uint64_t key_prefix(const char *key, size_t len) {
  uint64_t v = 0;
  for (size_t j = 0; j < 8; j++)
    v = v << 8 | (j < len ? (unsigned char)key[j] : 0u);
  return v;
}

static int cmp_key(const void *a, const void *b, void *arg) {
  const keys_t *k = arg;
  const sortkey_t *x = a, *y = b;
  if (x->pre != y->pre)
    return x->pre < y->pre ? -1 : 1;
  int c = strcmp(k->text + k->off[x->i], k->text + k->off[y->i]);
  if (c)
    return c;
  return x->i < y->i ? -1 : x->i > y->i;
}

/* a^-1 mod m by extended Euclid; 0 when gcd(a, m) != 1. */
static uint32_t inverse(uint64_t a, uint32_t m) {
  int64_t t = 0, nt = 1, r = m, nr = (int64_t)(a % m);
  while (nr) {
    int64_t q = r / nr, x = t - q * nt, y = r - q * nr;
    t = nt;
    nt = x;
    r = nr;
    nr = y;
  }
  if (r != 1)
    return 0;
  return (uint32_t)(t < 0 ? t + m : t);
}

#define NO_INV UINT32_MAX /* inv < m <= UINT32_MAX */

/* Hosts with a positive weight, sorted by key, with their permutations. */
static entry_t *entries(const mesh__lb_pool_t *p, const double *norm,
                        uint32_t m, uint32_t *ne, double *max_w) {
  size_t n = p->n ? p->n : 1, cap = n * 24, used = 0;
  entry_t *e = calloc(n, sizeof *e);
  keys_t keys = {malloc(cap), malloc(n * sizeof *keys.off)};
  sortkey_t *order = malloc(n * sizeof *order);
  uint64_t *offset = malloc(n * sizeof *offset);
  uint64_t *skip = malloc(n * sizeof *skip);
  if (!e || !keys.text || !keys.off || !order || !offset || !skip)
    goto fail;
  uint32_t k = 0;
  *max_w = 0.0;
  for (uint32_t i = 0; i < p->n; i++) {
    if (norm[i] <= 0)
      continue;
    char key[320];
    size_t len = mesh__lb_host_key(p->hosts[i], key, sizeof key);
    if (len == 0)
      continue;
    if (used + len + 1 > cap) {
      char *t = realloc(keys.text, cap * 2 + len + 1);
      if (!t)
        goto fail;
      keys.text = t;
      cap = cap * 2 + len + 1;
    }
    memcpy(keys.text + used, key, len + 1);
    keys.off[i] = (uint32_t)used;
    used += len + 1;
    offset[i] = mesh__xxh64(key, len, 0) % m;
    skip[i] = mesh__xxh64(key, len, 1) % (m - 1) + 1;
    order[k++] = (sortkey_t){key_prefix(key, len), i};
    if (norm[i] > *max_w)
      *max_w = norm[i];
  }
  qsort_r(order, k, sizeof *order, cmp_key, &keys);
  for (uint32_t j = 0; j < k; j++) {
    uint32_t i = order[j].i;
    e[j] = (entry_t){.idx = i, .skip = (uint32_t)skip[i],
                     .inv = NO_INV,
                     .pos = (uint32_t)offset[i], .weight = norm[i]};
  }
  *ne = k;
  goto out;
fail:
  free(e);
  e = NULL;
out:
  free(keys.text);
  free(keys.off);
  free(order);
  free(offset);
  free(skip);
  return e;
}

/* The last TAIL free slots are found without walking: slot f is step
 * j = (f - pos) * skip^-1 mod m of the walk from pos, so the next free slot
 * is the free f with the least j (the one a walk stops at).  The walk's
 * expected m / F probes with F slots left cost more than the F
 * multiplications per turn this takes once F < ~sqrt(m): for m = 65537 the
 * last 256 slots take a sixth of all probes.  The mod is Barrett's
 * (a multiply, not a divide): that is what moves the break-even up. */
#ifndef MESH__MAGLEV_TAIL
#define MESH__MAGLEV_TAIL 256u
#endif
#define TAIL MESH__MAGLEV_TAIL

typedef struct tail {
  uint32_t n, slot[TAIL];
  uint64_t mu; /* floor(2^64 / m), Barrett's constant */
} tail_t;

/* x mod m for any x < 2^64: q is floor(x / m) or one less. */
static inline uint64_t mod_m(uint64_t x, uint32_t m, uint64_t mu) {
#ifdef __SIZEOF_INT128__
  uint64_t q = (uint64_t)(((unsigned __int128)x * mu) >> 64);
  uint64_t r = x - q * m;
  return r >= m ? r - m : r;
#else /* no 128-bit product: the divide */
  (void)mu;
  return x % m;
#endif
}

static uint32_t tail_take(tail_t *t, uint32_t m, uint32_t pos, uint32_t inv) {
  uint32_t best = 0;
  uint64_t bj = UINT64_MAX;
  for (uint32_t k = 0; k < t->n; k++) {
    uint64_t d = t->slot[k] >= pos ? t->slot[k] - pos : t->slot[k] + m - pos;
    uint64_t j = mod_m(d * inv, m, t->mu);
    if (j < bj) {
      bj = j;
      best = k;
    }
  }
  uint32_t c = t->slot[best];
  t->slot[best] = t->slot[--t->n];
  return c;
}

/* a + b mod m for a, b < m (m <= MESH__LB_MAGLEV_MAX: the sum fits). */
static inline uint32_t add_m(uint32_t a, uint32_t b, uint32_t m) {
  uint32_t r = a + b;
  return r >= m ? r - m : r;
}

/* What a host's turn reads and writes, 32 bytes: half a cache line, kept
 * apart from the weights and the inverse (entry_t), which a turn with
 * equal weights outside the tail never reads. */
typedef struct walk {
  uint32_t pos; /* (offset + skip * next) % m */
  uint32_t s4;  /* 4 * skip % m */
  uint32_t idx; /* the host's index in the pool */
  uint32_t unused;
  uint32_t st[4]; /* 0, skip, 2 * skip, 3 * skip, each % m */
} walk_t;

/* Index of the lowest zero bit of a 4-bit mask (4: all set, not read). */
static const uint8_t first_free[16] = {0, 1, 0, 2, 0, 1, 0, 3,
                                       0, 1, 0, 2, 0, 1, 0, 4};

/* First free slot on w's walk, four steps per iteration: the four
 * positions are computed from the same c and their bytes OR-ed into a
 * mask, with no branch between them.  A step-by-step walk mispredicts its
 * exit once per turn (~17 cycles) and chains every probe on the previous
 * position; here a turn at fill < ~75% usually ends in the first
 * iteration with a predicted branch, so consecutive turns (other hosts)
 * overlap.  8 steps per iteration and two hosts in lockstep were slower. */
static uint32_t walk4(const uint8_t *taken, uint32_t m, const walk_t *w) {
  uint32_t c = w->pos;
  for (;;) {
    uint32_t c1 = add_m(c, w->st[1], m), c2 = add_m(c, w->st[2], m);
    uint32_t c3 = add_m(c, w->st[3], m);
    unsigned busy = (unsigned)taken[c] | (unsigned)taken[c1] << 1 |
                    (unsigned)taken[c2] << 2 | (unsigned)taken[c3] << 3;
    if (busy != 15)
      return add_m(c, w->st[first_free[busy]], m);
    c = add_m(c, w->s4, m);
  }
}

/* The same walk a step at a time.  With one or two hosts each turn starts
 * where the same host's previous turn ended, so walk4's loads and table
 * lookup would sit on one long dependency chain; the predicted branch of
 * this loop runs ahead of it (1 host: 0.25 ms here vs 0.8 with walk4). */
static uint32_t walk1(const uint8_t *taken, uint32_t m, const walk_t *w) {
  uint32_t c = w->pos;
  while (taken[c])
    c = add_m(c, w->st[1], m);
  return c;
}

typedef struct fill {
  uint32_t *table;
  uint8_t *taken; /* m bytes, 1 = taken: fits L2, one load per probe */
  entry_t *e;     /* sorted hosts: weights, inverses */
  walk_t *w;      /* the same order: walks */
  uint32_t m, ne, i, filled; /* i: the host whose turn comes next */
  uint64_t round;
  double max_w;
  bool uniform; /* all weights equal: every host takes every turn */
} fill_t;

/* Does host i take a slot in this round?  Envoy's weighted turns: when
 * round * w >= its running target, which then grows by max_w. */
static inline bool turn(entry_t *x, uint64_t round, double max_w) {
  if ((double)round * x->weight < x->target)
    return false;
  x->target += max_w;
  return true;
}

static inline void take(fill_t *f, walk_t *x, uint32_t c) {
  f->taken[c] = 1;
  f->table[c] = x->idx;
  x->pos = add_m(c, x->st[1], f->m);
}

/* Equal weights, three hosts or more (the usual case): turns until
 * `stop` slots are filled, i.e. fill stop / ne rounds and the next host's
 * turns.  Its own loop with everything in locals: the byte stores to
 * taken[] may alias *f (char), and the general loop's tests cost 15%. */
static void walk_uniform(fill_t *f, uint32_t stop) {
  uint8_t *taken = f->taken;
  uint32_t *table = f->table, m = f->m;
  walk_t *w = f->w, *end = f->w + f->ne, *x = w + f->i;
  for (uint32_t filled = f->filled; filled < stop; filled++) {
    uint32_t c = walk4(taken, m, x);
    taken[c] = 1;
    table[c] = x->idx;
    x->pos = add_m(c, x->st[1], m);
    if (++x == end)
      x = w;
  }
  f->round += (f->i + (stop - f->filled)) / f->ne;
  f->i = (uint32_t)(x - w);
  f->filled = stop;
}

/* Turns until `stop` slots are filled, by walking: weighted or one or
 * two hosts. */
static void walk_phase(fill_t *f, uint32_t stop) {
  if (f->uniform && f->ne >= 3 && f->filled < stop) {
    walk_uniform(f, stop);
    return;
  }
  uint8_t *taken = f->taken;
  uint32_t *table = f->table;
  walk_t *w = f->w;
  entry_t *e = f->e;
  uint32_t i = f->i, filled = f->filled, ne = f->ne, m = f->m;
  uint64_t round = f->round;
  double max_w = f->max_w;
  bool uniform = f->uniform;
  while (filled < stop) {
    walk_t *x = &w[i];
    if (uniform || turn(&e[i], round, max_w)) {
      uint32_t c = ne < 3 ? walk1(taken, m, x) : walk4(taken, m, x);
      taken[c] = 1;
      table[c] = x->idx;
      x->pos = add_m(c, x->st[1], m);
      filled++;
    }
    if (++i == ne) {
      i = 0;
      round++;
    }
  }
  f->i = i;
  f->filled = filled;
  f->round = round;
}

/* Next free slot of host i's walk in the tail: invert it (see tail_t);
 * without an inverse (m not prime) walk and unlist the slot. */
static uint32_t tail_next(fill_t *f, tail_t *t) {
  entry_t *x = &f->e[f->i];
  const walk_t *w = &f->w[f->i];
  if (x->inv == NO_INV)
    x->inv = inverse(x->skip, f->m);
  if (x->inv)
    return tail_take(t, f->m, w->pos, x->inv);
  uint32_t c = walk1(f->taken, f->m, w);
  for (uint32_t k = 0; k < t->n; k++)
    if (t->slot[k] == c) {
      t->slot[k] = t->slot[--t->n];
      break;
    }
  return c;
}

/* Each host walks its permutation (offset + skip * j) % m to its next
 * free slot, the position advancing by additions (no divide).  The walk
 * is the whole cost (~360,000 probes for m = 65537 down to the tail), so
 * the hot state is the 32-byte walk_t and the map is one byte per slot (a
 * bitmap fits L1 but needs shifts per probe: slower, measured). */
static int fill(uint32_t *table, uint32_t m, entry_t *e, uint32_t ne,
                double max_w) {
  fill_t f = {.table = table, .taken = calloc(m, 1), .e = e,
              .w = malloc(ne * sizeof *f.w), .m = m, .ne = ne, .round = 1,
              .max_w = max_w, .uniform = true};
  if (!f.taken || !f.w) {
    free(f.taken);
    free(f.w);
    return MESH_ERR_NOMEM;
  }
  for (uint32_t i = 0; i < ne; i++) {
    uint32_t s = e[i].skip, s2 = add_m(s, s, m);
    f.w[i] = (walk_t){.pos = e[i].pos, .s4 = add_m(s2, s2, m),
                      .idx = e[i].idx, .st = {0, s, s2, add_m(s2, s, m)}};
    f.uniform = f.uniform && e[i].weight == max_w;
  }
  walk_phase(&f, m > TAIL ? m - TAIL : 0);
  tail_t tail = {.mu = UINT64_MAX / m};
  for (uint32_t c = 0; c < m; c++)
    if (!f.taken[c])
      tail.slot[tail.n++] = c;
  while (f.filled < m) {
    if (f.uniform || turn(&f.e[f.i], f.round, max_w)) {
      take(&f, &f.w[f.i], tail_next(&f, &tail));
      f.filled++;
    }
    if (++f.i == ne) {
      f.i = 0;
      f.round++;
    }
  }
  free(f.taken);
  free(f.w);
  return MESH_OK;
}

int mesh__maglev_build(mesh__lb_pool_t *p, const double *norm,
                       uint32_t table_size) {
  if (p->n == 0 || table_size < 2)
    return MESH_OK;
  uint32_t ne = 0;
  double max_w = 0;
  entry_t *e = entries(p, norm, table_size, &ne, &max_w);
  if (!e)
    return MESH_ERR_NOMEM;
  if (ne == 0) {
    free(e);
    return MESH_OK;
  }
  p->table = malloc(sizeof *p->table * table_size);
  if (!p->table || fill(p->table, table_size, e, ne, max_w) != MESH_OK) {
    free(p->table);
    p->table = NULL;
    free(e);
    return MESH_ERR_NOMEM;
  }
  p->table_size = table_size;
  free(e);
  return MESH_OK;
}

mesh__host_t *mesh__maglev_pick(const mesh__lb_pool_t *p, uint64_t hash,
                                const mesh__lb_ctx_t *ctx, int64_t now_ms,
                                bool need_usable, bool need_fresh) {
  if (!p->table)
    return NULL;
  uint64_t at = hash % p->table_size;
  for (uint32_t k = 0; k < p->table_size; k++) {
    mesh__host_t *h = p->hosts[p->table[(at + k) % p->table_size]];
    if (mesh__lb_acceptable(h, ctx, now_ms, need_usable, need_fresh))
      return h;
  }
  return NULL;
}
