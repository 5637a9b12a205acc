/*
 * internal.h - helpers shared by the files of proto/, not part of its API.
 */
#ifndef ADV_PROTO_INTERNAL_H
#define ADV_PROTO_INTERNAL_H

#include "proto.h"

#include "core/explain.h"

/* Replace control characters and invalid UTF-8 in s with '?'. */
void adv_proto_sanitize(char *s);

/* A JSON string of s, made safe first when it is not valid UTF-8. */
json_t *adv_proto_string(const char *s);

/* The name in names[0..n) closest to key (edit distance <= 2, and less than
 * half its length), or NULL: for "did you mean" hints. */
const char *adv_proto_suggest(const char *key, const char *const *names, int n);

/* "unknown key 'epoch' (did you mean 'epochs'?)", as invalid_argument;
 * where ("" or " for 'status'") is inserted after the key. */
int adv_proto_unknown_key(adv_error *e, const char *key, const char *where,
                          const char *const *names, int n);

#endif
