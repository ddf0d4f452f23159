/* libmesh internal: the observe part, the high read-only layer (exporters,
 * Prometheus text, the admin endpoint).  No other part includes this: they
 * count things and open spans through "telemetry/telemetry.h". */
#ifndef MESH_OBSERVE_OBSERVE_H
#define MESH_OBSERVE_OBSERVE_H

#include "core/core.h"
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/** Replace, in place, the values of secret-looking keys (`k=v` or
 *  `k: v`; keys that are or end in password, passwd, token, key, secret,
 *  authorization, credential(s), cookie, any case) with "[REDACTED]", the
 *  word after "Bearer "/"Basic ", and PEM private-key blocks.  The line
 *  stays NUL-terminated within cap (cut at the end if it must grow past
 *  it).  Meant for mesh__log() (core/log.c) before a line leaves the
 *  library.  @return the number of values redacted. */
int mesh__log_redact(char *line, size_t cap);

/** Redact a JSON tree in place (the admin /config view): values of secret
 *  keys, strings holding a private key or a bearer token. */
void mesh__json_redact(cJSON *node);

/** Does a JSON object key name a secret (same rule as mesh__log_redact)? */
bool mesh__secret_key(const char *key, size_t len);

#endif /* MESH_OBSERVE_OBSERVE_H */
