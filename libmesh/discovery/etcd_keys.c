/* SPDX-License-Identifier: Apache-2.0 */
/* The etcd source's key map: one entry per key under a service's prefix,
 * the endpoint its value describes (etcd's Go naming package layout,
 * mesh__etcd_parse_endpoint), published as the service's set.  A malformed
 * value keeps that key's last good endpoint. */
#include "discovery/etcd_src.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef mesh__etcd_kv_t kv_t;
typedef mesh__etcd_src_t etcd_src_t;

static uint64_t hash_str(const char *s) {
  uint64_t x = 1469598103934665603ull;
  for (; *s; s++) {
    x ^= (unsigned char)*s;
    x *= 1099511628211ull;
  }
  return x;
}

static kv_t **find_slot(etcd_src_t *s, const char *key) {
  kv_t **pp = &s->tab[hash_str(key) & (s->tabsz - 1)];
  while (*pp && strcmp((*pp)->key, key) != 0)
    pp = &(*pp)->next;
  return pp;
}

static void kv_free(kv_t *k) {
  cJSON_Delete(k->doc);
  free(k);
}

static bool grow(etcd_src_t *s) {
  if (s->nkv < s->tabsz)
    return true;
  size_t nsz = s->tabsz ? s->tabsz * 2 : 64;
  kv_t **nt = calloc(nsz, sizeof *nt);
  if (!nt)
    return false;
  for (size_t i = 0; i < s->tabsz; i++) {
    while (s->tab[i]) {
      kv_t *k = s->tab[i];
      s->tab[i] = k->next;
      size_t h = hash_str(k->key) & (nsz - 1);
      k->next = nt[h];
      nt[h] = k;
    }
  }
  free(s->tab);
  s->tab = nt;
  s->tabsz = nsz;
  return true;
}

static void note_bad(etcd_src_t *s, const char *key, const char *why) {
  snprintf(s->bad++ ? s->bad_last : s->bad_first, sizeof s->bad_first,
           "%.120s: %.120s", key, why);
}

bool mesh__etcd_del_key(etcd_src_t *s, const char *key) {
  if (!s->tab)
    return false;
  kv_t **pp = find_slot(s, key);
  if (!*pp)
    return false;
  kv_t *k = *pp;
  *pp = k->next;
  kv_free(k);
  s->nkv--;
  return true;
}

/* k (NULL: a new entry for key), or k moved to hold a host of hl bytes
 * (*pp updated), or NULL when out of memory (k unchanged). */
static kv_t *kv_fit(kv_t **pp, kv_t *k, const char *key, size_t hl) {
  if (k && k->hostcap >= hl)
    return k;
  size_t kl = k ? k->klen : strlen(key);
  if (kl > UINT32_MAX - 1 || hl > UINT32_MAX)
    return NULL;
  kv_t *nk = realloc(k, sizeof *k + kl + 1 + hl);
  if (!nk)
    return NULL;
  if (!k) {
    memset(nk, 0, sizeof *nk);
    nk->klen = (uint32_t)kl;
    memcpy(nk->key, key, kl + 1);
  }
  nk->hostcap = (uint32_t)hl;
  *pp = nk;
  return nk;
}

bool mesh__etcd_put_key(etcd_src_t *s, const char *key, const char *val,
                        size_t vlen) {
  char err[256], host[MESH__DISC_MAX_HOSTNAME + 1];
  cJSON *doc;
  mesh__ep_t ep;
  bool deleted;
  if (mesh__etcd_parse_endpoint(val, vlen, &doc, &ep, host, sizeof host,
                                &deleted, err, sizeof err) != MESH_OK) {
    note_bad(s, key, err);
    kv_t **pp = s->tab ? find_slot(s, key) : NULL;
    if (pp && *pp)
      (*pp)->gen = s->gen; /* keep the last good value through a re-list */
    return false;
  }
  if (deleted || !grow(s)) {
    cJSON_Delete(doc);
    if (deleted)
      return mesh__etcd_del_key(s, key);
    note_bad(s, key, "out of memory");
    return false;
  }
  /* ep borrows from the value only for Metadata's strings and labels */
  if (!ep.region && !ep.zone && !ep.subzone && !ep.labels) {
    cJSON_Delete(doc);
    doc = NULL;
  }
  kv_t **pp = find_slot(s, key);
  bool fresh = *pp == NULL;
  size_t hl = strlen(host) + 1;
  kv_t *k = kv_fit(pp, *pp, key, hl);
  if (!k) {
    cJSON_Delete(doc);
    note_bad(s, key, "out of memory");
    return false;
  }
  if (fresh)
    s->nkv++;
  cJSON_Delete(k->doc);
  k->doc = doc;
  char *h = k->key + k->klen + 1;
  memcpy(h, host, hl);
  k->ep = ep;
  k->ep.address = h;
  k->gen = s->gen;
  return true;
}

void mesh__etcd_sweep(etcd_src_t *s) {
  for (size_t i = 0; i < s->tabsz; i++) {
    for (kv_t **pp = &s->tab[i]; *pp;) {
      kv_t *k = *pp;
      if (k->gen != s->gen) {
        *pp = k->next;
        kv_free(k);
        s->nkv--;
      } else {
        pp = &k->next;
      }
    }
  }
}

void mesh__etcd_keys_free(etcd_src_t *s) {
  for (size_t i = 0; i < s->tabsz; i++) {
    while (s->tab[i]) {
      kv_t *k = s->tab[i];
      s->tab[i] = k->next;
      kv_free(k);
    }
  }
  free(s->tab);
  s->tab = NULL;
  s->tabsz = s->nkv = 0;
}

/* One report per answer or watch message (which may carry several events),
 * naming the first and the last bad key. */
void mesh__etcd_report_bad(etcd_src_t *s) {
  bool more = s->bad > 1;
  if (s->bad)
    mesh__disc_error(s->d, "%u malformed value%s under %s (first: %s%s%s)",
                     s->bad, more ? "s" : "", s->prefix, s->bad_first,
                     more ? "; last: " : "", more ? s->bad_last : "");
  s->bad = 0;
}

void mesh__etcd_publish(etcd_src_t *s) {
  mesh__ep_t *eps = calloc(s->nkv ? s->nkv : 1, sizeof *eps);
  if (!eps) {
    mesh__disc_error(s->d, "out of memory");
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < s->tabsz; i++)
    for (kv_t *k = s->tab[i]; k && n < MESH__DISC_MAX_ENDPOINTS; k = k->next)
      eps[n++] = k->ep;
  mesh__disc_apply(s->d, eps, n);
  free(eps);
}

bool mesh__etcd_decode_kv(const cJSON *kv, char **key, size_t *klen,
                          char **val, size_t *vlen) {
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
  *key = *val = NULL;
  *vlen = 0;
  if (!cJSON_IsString(k) || mesh__b64_decode(k->valuestring, key, klen))
    return false;
  if (strlen(*key) != *klen) {
    free(*key);
    *key = NULL;
    return false;
  }
  /* A delete event carries no value; a put with an empty value has none
   * either (the gateway omits empty fields). */
  if (cJSON_IsString(v) && mesh__b64_decode(v->valuestring, val, vlen)) {
    free(*key);
    *key = NULL;
    return false;
  }
  return true;
}
