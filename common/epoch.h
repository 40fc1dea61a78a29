/* common/epoch.h - the build epoch (SOURCE_DATE_EPOCH, reproducible-builds.org).
 *
 * An epoch is seconds since 1970-01-01T00:00:00Z, or MK_EPOCH_NONE. Only the CLI reads it
 * from the environment (or from --timestamp / --build-arg SOURCE_DATE_EPOCH) and it travels
 * from there as a value: struct mk_build_opts.epoch, the layer writer's epoch argument (no
 * mtime in a layer tar is later than it) and the created times the builder writes into the
 * config. No library code reads or sets the environment variable.
 */
#ifndef MK_COMMON_EPOCH_H
#define MK_COMMON_EPOCH_H

#include <stdint.h>

#include "common/error.h"

#define MK_EPOCH_NONE (-1)
/* 9999-12-31T23:59:59Z: the last second an RFC 3339 time (four-digit year) can say. */
#define MK_EPOCH_MAX INT64_C(253402300799)

/* Parses s, decimal digits only, 0 to MK_EPOCH_MAX. NULL or "" is MK_EPOCH_NONE (an empty
 * SOURCE_DATE_EPOCH is an unset one, as with BuildKit). Anything else is MK_ERR_USAGE
 * ("not a number of seconds since 1970 ..."); the caller says where the value came from
 * with mk_error_set_where. */
int mk_epoch_parse(const char *s, int64_t *ret, struct mk_error **err);

/* "2023-11-14T22:13:20Z": the epoch's time, or now for MK_EPOCH_NONE. Caller frees. */
char *mk_epoch_rfc3339(int64_t epoch);

#endif
