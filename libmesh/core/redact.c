/* SPDX-License-Identifier: Apache-2.0 */
/* Secret redaction, exact rather than guessed.
 *
 * What is a secret is named, not inferred from how a key is spelled:
 *   - in the configuration, each part lists the JSON paths of its secret
 *     fields (mesh__part_t.secrets, mesh__svc_part_t.secrets: exporter
 *     header values, etcd passwords); those values are replaced whole;
 *   - the userinfo of every URL (`scheme://user:pass@host`), wherever it
 *     appears: a config string, a log line, an error message, a label;
 *   - in log lines, the values of a short list of field names that only
 *     ever carry credentials (password=, token=, authorization=, ...),
 *     matched as whole names, so `key=` (an etcd key name) stays readable;
 *     the word after "Bearer "/"Basic "; PEM private-key blocks.
 * Every log line (core/log.c), every error message (mesh__fail,
 * mesh__cfg_error) and the admin /config view (mesh__json_redact) pass
 * through here. */
#include "core/parts.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REDACTED "[REDACTED]"

/* Field names (whole, any case) that only ever carry credentials. */
static const char *const secret_fields[] = {
    "password",   "passwd",        "secret",
    "token",      "access_token",  "refresh_token", "id_token",
    "api_key",    "apikey",        "x-api-key",     "authorization",
    "proxy-authorization", "cookie", "set-cookie",  "credentials",
    "client_secret", NULL};

bool mesh__secret_key(const char *key, size_t len) {
  if (!key)
    return false;
  for (size_t w = 0; secret_fields[w]; w++)
    if (strlen(secret_fields[w]) == len &&
        strncasecmp(key, secret_fields[w], len) == 0)
      return true;
  return false;
}

/* Replace line[start, end) with rep, keeping the line NUL-terminated within
 * cap (the tail is cut if it does not fit).  Returns the new end of rep. */
static size_t splice(char *line, size_t cap, size_t start, size_t end,
                     const char *rep) {
  size_t len = strlen(line), rl = strlen(rep);
  if (start + rl + 1 > cap)
    rl = cap - start - 1;
  size_t tail = len - end;
  if (start + rl + tail + 1 > cap)
    tail = cap - start - rl - 1;
  memmove(line + start + rl, line + end, tail);
  memcpy(line + start, rep, rl);
  line[start + rl + tail] = '\0';
  return start + rl;
}

/* ---- URL userinfo ---------------------------------------------------------- */

static bool authority_end(char c) {
  return c == '\0' || c == '/' || c == '?' || c == '#' || c == '"' ||
         c == '\'' || c == '\\' || c == '<' || c == '>' || c == '`' ||
         isspace((unsigned char)c);
}

int mesh__redact_userinfo(char *s, size_t cap) {
  if (!s || cap == 0)
    return 0;
  int n = 0;
  for (char *p = strstr(s, "://"); p; p = strstr(p, "://")) {
    size_t a = (size_t)(p - s) + 3, at = 0, e = a;
    for (; !authority_end(s[e]); e++)
      if (s[e] == '@')
        at = e; /* the last '@': a sloppy password may hold one */
    if (at > a && !(at - a == strlen(REDACTED) &&
                    strncmp(s + a, REDACTED, at - a) == 0)) {
      splice(s, cap, a, at, REDACTED);
      n++;
    }
    p = s + a;
    if ((size_t)(p - s) >= strlen(s))
      break;
  }
  return n;
}

char *mesh__redact_userinfo_dup(const char *s) {
  size_t cap = strlen(s) + sizeof REDACTED;
  char *out = malloc(cap);
  if (out) {
    mesh__strlcpy(out, s, cap);
    mesh__redact_userinfo(out, cap);
  }
  return out;
}

/* ---- log lines ----------------------------------------------------------------- */

static bool keychar(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

/* The end of a value starting at v: a quoted string (with \" escapes) or a
 * run up to the next space. */
static size_t value_end(const char *line, size_t v) {
  size_t i = v;
  if (line[i] == '"') {
    for (i++; line[i] && line[i] != '"'; i++)
      if (line[i] == '\\' && line[i + 1])
        i++;
    return line[i] ? i + 1 : i;
  }
  while (line[i] && line[i] != ' ' && line[i] != ',' && line[i] != '&' &&
         line[i] != '"')
    i++;
  return i;
}

static int redact_pem(char *line, size_t cap) {
  int n = 0;
  size_t from = 0;
  for (;;) {
    char *b = strstr(line + from, "-----BEGIN ");
    char *hdr_end = b ? strstr(b + 11, "-----") : NULL;
    if (!hdr_end)
      return n;
    /* only private keys: certificates are public */
    bool priv = memmem(b, (size_t)(hdr_end - b), "PRIVATE KEY", 11) != NULL;
    char *end = strstr(hdr_end + 5, "-----END ");
    char *stop = end ? strstr(end + 9, "-----") : NULL;
    size_t s = (size_t)(b - line);
    size_t e = stop ? (size_t)(stop - line) + 5 : strlen(line);
    if (!priv) {
      from = e;
      continue;
    }
    from = splice(line, cap, s, e, "[REDACTED PRIVATE KEY]");
    n++;
  }
}

/* "Bearer <token>" / "Basic <creds>" at i: redact the word after it.
 * Returns the index to continue from, or i when nothing matched. */
static size_t redact_scheme(char *line, size_t cap, size_t i, int *n) {
  size_t w = strncasecmp(line + i, "bearer ", 7) == 0  ? 7
             : strncasecmp(line + i, "basic ", 6) == 0 ? 6
                                                       : 0;
  if (!w || (i > 0 && keychar(line[i - 1])))
    return i;
  size_t v = i + w, e = v;
  while (line[e] && line[e] != ' ' && line[e] != '"' && line[e] != ',')
    e++;
  if (e == v || strncmp(line + v, REDACTED, strlen(REDACTED)) == 0)
    return e;
  (*n)++;
  return splice(line, cap, v, e, REDACTED);
}

int mesh__log_redact(char *line, size_t cap) {
  if (!line || cap == 0)
    return 0;
  int n = redact_pem(line, cap) + mesh__redact_userinfo(line, cap);
  for (size_t i = 0; line[i]; i++) {
    size_t j = redact_scheme(line, cap, i, &n);
    if (j != i) {
      i = j - 1;
      continue;
    }
    if (line[i] != '=' && line[i] != ':')
      continue;
    size_t k = i;
    while (k > 0 && keychar(line[k - 1]))
      k--;
    if (k == i || !mesh__secret_key(line + k, i - k))
      continue;
    size_t v = i + 1;
    while (line[v] == ' ' && line[i] == ':')
      v++;
    /* keep an auth scheme word, redact what follows it */
    if (redact_scheme(line, cap, v, &n) != v)
      continue;
    size_t e = value_end(line, v);
    if (e == v || strncmp(line + v, REDACTED, strlen(REDACTED)) == 0)
      continue;
    i = splice(line, cap, v, e, REDACTED) - 1;
    n++;
  }
  return n;
}

/* ---- the configuration ----------------------------------------------------------- */

static void redact_value(cJSON *parent, cJSON *it) {
  if (cJSON_IsString(it)) {
    cJSON_SetValuestring(it, REDACTED);
    return;
  }
  if (cJSON_IsNull(it))
    return;
  if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
    for (cJSON *c = it->child; c; c = c->next)
      redact_value(it, c);
    return;
  }
  cJSON *r = cJSON_CreateString(REDACTED);
  if (r && !cJSON_ReplaceItemViaPointer(parent, it, r))
    cJSON_Delete(r);
}

/* Redact what `pattern` (dot-separated names, "*" for any member or
 * element) names under node. */
static void redact_path(cJSON *node, const char *pattern) {
  if (!node || !pattern)
    return;
  const char *dot = strchr(pattern, '.');
  size_t len = dot ? (size_t)(dot - pattern) : strlen(pattern);
  bool any = len == 1 && pattern[0] == '*';
  cJSON *next;
  for (cJSON *it = node->child; it; it = next) {
    next = it->next; /* it may be replaced (and freed) below */
    if (!any && (!it->string || strlen(it->string) != len ||
                 strncmp(it->string, pattern, len) != 0))
      continue;
    if (dot)
      redact_path(it, dot + 1);
    else
      redact_value(node, it);
  }
}

static void redact_strings(cJSON *node) {
  for (cJSON *it = node ? node->child : NULL; it; it = it->next) {
    if (cJSON_IsString(it) && it->valuestring) {
      if (strstr(it->valuestring, "PRIVATE KEY-----"))
        cJSON_SetValuestring(it, REDACTED);
      else if (strstr(it->valuestring, "://") &&
               strchr(it->valuestring, '@')) {
        char *s = mesh__redact_userinfo_dup(it->valuestring);
        if (!s) {
          cJSON_SetValuestring(it, REDACTED);
          continue;
        }
        cJSON_SetValuestring(it, s);
        free(s);
      }
    }
    redact_strings(it);
  }
}

static void redact_section(cJSON *sec, const char *const *secrets) {
  for (size_t i = 0; sec && secrets && secrets[i]; i++)
    redact_path(sec, secrets[i]);
}

void mesh__json_redact(cJSON *root) {
  if (!root)
    return;
  for (size_t i = 0; mesh__parts[i]; i++)
    if (mesh__parts[i]->key)
      redact_section(
          cJSON_GetObjectItemCaseSensitive(root, mesh__parts[i]->key),
          mesh__parts[i]->secrets);
  cJSON *svcs = cJSON_GetObjectItemCaseSensitive(root, "services");
  for (cJSON *s = cJSON_IsObject(svcs) ? svcs->child : NULL; s; s = s->next)
    for (size_t i = 0; mesh__svc_parts[i]; i++)
      redact_section(
          cJSON_GetObjectItemCaseSensitive(s, mesh__svc_parts[i]->key),
          mesh__svc_parts[i]->secrets);
  redact_strings(root);
}
