/* SPDX-License-Identifier: Apache-2.0 */
/* "http.http2": the settings of every HTTP/2 session a context makes.
 * Keepalive follows gRPC (doc/keepalive.md): the client sends a PING after
 * keepalive_time_ms without hearing from the peer and drops the
 * connection when no ack comes within keepalive_timeout_ms; without
 * keepalive_permit_without_calls it pings only while a call is open.  A
 * server applies gRPC's ping abuse policy: PINGs closer together than
 * min_ping_interval_ms (2 h while no call is open, unless
 * keepalive_permit_without_calls) are strikes, and more than
 * max_ping_strikes end the connection with GOAWAY ENHANCE_YOUR_CALM
 * "too_many_pings". */
#include "http/http.h"

void mesh__h2_settings_config_default(mesh__h2_settings_t *s) {
  mesh__h2_settings_default(s);
  s->keepalive_ms = 0;                 /* gRPC: off (infinite) */
  s->keepalive_timeout_ms = 20000;     /* gRPC: 20 s */
  s->keepalive_without_calls = false;  /* gRPC: false */
  s->min_ping_interval_ms = 300000;    /* gRPC: 5 min */
  s->max_ping_strikes = 2;             /* gRPC: 2 */
  s->permit_pings_without_calls = false;
}

static const char *const keys[] = {
    "keepalive_time_ms",    "keepalive_timeout_ms",
    "keepalive_permit_without_calls", "min_ping_interval_ms",
    "max_ping_strikes",     "max_concurrent_streams",
    NULL};

void mesh__h2_settings_parse(mesh__cfg_t *c, const cJSON *v, const char *path,
                             mesh__h2_settings_t *s) {
  mesh__h2_settings_config_default(s);
  if (!v || !mesh__cfg_object(c, v, path, keys))
    return;
  int64_t x;
  const int64_t day = 86400000;
  mesh__cfg_int(c, v, path, "keepalive_time_ms", 0, day, s->keepalive_ms,
                &s->keepalive_ms);
  mesh__cfg_int(c, v, path, "keepalive_timeout_ms", 1, day,
                s->keepalive_timeout_ms, &s->keepalive_timeout_ms);
  bool permit = false;
  mesh__cfg_bool(c, v, path, "keepalive_permit_without_calls", false, &permit);
  s->keepalive_without_calls = s->permit_pings_without_calls = permit;
  mesh__cfg_int(c, v, path, "min_ping_interval_ms", 0, day,
                s->min_ping_interval_ms, &s->min_ping_interval_ms);
  if (mesh__cfg_int(c, v, path, "max_ping_strikes", 0, 1000,
                    s->max_ping_strikes, &x))
    s->max_ping_strikes = (uint32_t)x;
  if (mesh__cfg_int(c, v, path, "max_concurrent_streams", 1, 1u << 20,
                    s->max_concurrent_streams, &x))
    s->max_concurrent_streams = (uint32_t)x;
}
