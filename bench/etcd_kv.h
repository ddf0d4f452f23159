/* SPDX-License-Identifier: Apache-2.0 */
/* Bench helper: writes to a real etcd through its v3 HTTP/JSON gateway
 * (plain HTTP/1.1 on loopback, one connection per request), in the layout
 * of etcd's Go naming package that libmesh's etcd source reads. */
#ifndef BENCH_ETCD_KV_H
#define BENCH_ETCD_KV_H

#include <stddef.h>

/** Put key=value pairs, 100 per transaction.  @return 0 or -1. */
int etcd_put_many(const char *hostport, char *const *keys, char *const *vals,
                  size_t n);
/** Put one key.  @return 0 or -1. */
int etcd_put(const char *hostport, const char *key, const char *val);
/** Delete one key.  @return 0 or -1. */
int etcd_del(const char *hostport, const char *key);
/** The naming package's value for addr ("ip:port"), into buf. */
void etcd_naming_value(char *buf, size_t size, const char *addr);

#endif
