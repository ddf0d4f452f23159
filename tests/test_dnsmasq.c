/* SPDX-License-Identifier: Apache-2.0 */
/* dnsmasq for the DNS tests (see test_dnsmasq.h). */
#include "test_dnsmasq.h"

#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

#define TDNS_MAX_RECORDS 32

pid_t tdns_start(int port, const char *hosts_file,
                 const char *const records[], const char *logname) {
  char portopt[32], addn[600], user[80];
  snprintf(portopt, sizeof portopt, "--port=%d", port);
  snprintf(addn, sizeof addn, "--addn-hosts=%s", hosts_file);
  /* as root dnsmasq would drop to "nobody", which cannot read our files */
  struct passwd *pw = getpwuid(getuid());
  snprintf(user, sizeof user, "--user=%s", pw ? pw->pw_name : "root");
  const char *argv[16 + TDNS_MAX_RECORDS + 1] = {
      "dnsmasq", "-d", "-k", portopt, "--listen-address=127.0.0.1",
      "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
      "--local=/test/", "--local-ttl=1", "--log-queries", "--log-facility=-",
      "--pid-file=", user, addn};
  size_t n = 16;
  for (size_t i = 0; records && records[i] && i < TDNS_MAX_RECORDS; i++)
    argv[n++] = records[i];
  argv[n] = NULL;
  pid_t pid = th_spawn(argv, logname);
  return pid > 0 && th_wait_port(port, 5000) ? pid : -1;
}
