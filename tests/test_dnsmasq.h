/* SPDX-License-Identifier: Apache-2.0 */
/* dnsmasq for the DNS tests, on 127.0.0.1:port: authoritative for *.test
 * (nothing is forwarded), TTL 1 s, queries logged, records from the
 * caller's --host-record/--srv-host options plus an addn-hosts file that
 * a SIGHUP reloads.  Stopped by th_stop() or at exit (th_spawn). */
#ifndef MESH_TESTS_DNSMASQ_H
#define MESH_TESTS_DNSMASQ_H

#include <stdbool.h>
#include <sys/types.h>

/* Start dnsmasq and wait until it listens; records: NULL-terminated extra
 * options.  The pid (> 0) or -1. */
pid_t tdns_start(int port, const char *hosts_file,
                 const char *const records[], const char *logname);

#endif
