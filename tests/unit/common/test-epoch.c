/* The build epoch: one parser with one bound, and its RFC 3339 time. */
#include <string.h>

#include "common/epoch.h"
#include "common/util.h"
#include "tap.h"

static const struct {
    const char *in;
    int64_t want;
    const char *rfc3339; /* NULL: now */
} good[] = {
    {NULL, MK_EPOCH_NONE, NULL},
    {"", MK_EPOCH_NONE, NULL},
    {"0", 0, "1970-01-01T00:00:00Z"},
    {"86400", 86400, "1970-01-02T00:00:00Z"},
    {"1700000000", 1700000000, "2023-11-14T22:13:20Z"},
    {"0001700000000", 1700000000, "2023-11-14T22:13:20Z"},
    {"253402300799", 253402300799, "9999-12-31T23:59:59Z"},
};

static const char *const bad[] = {
    "abc", "-1", "+1", " 1", "1 ", "1e9", "0x10", "1.5", "253402300800", "18446744073709551616",
};

int main(void)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(good); i++) {
        int64_t v = 42;
        const char *in = good[i].in ? good[i].in : "(null)";
        tap_ok(mk_epoch_parse(good[i].in, &v, NULL) == 0 && v == good[i].want, "\"%s\" is %lld", in,
               (long long)good[i].want);
        _cleanup_free_ char *t = mk_epoch_rfc3339(v);
        if (good[i].rfc3339)
            tap_is_str(t, good[i].rfc3339, "\"%s\" as RFC 3339", in);
        else
            tap_ok(strlen(t) == 20 && t[10] == 'T' && t[19] == 'Z' && strncmp(t, "1970", 4) != 0,
                   "no epoch: now, as RFC 3339 (%s)", t);
    }
    for (size_t i = 0; i < MK_ARRAY_SIZE(bad); i++) {
        int64_t v = 42;
        struct mk_error *err = NULL;
        int r = mk_epoch_parse(bad[i], &v, &err);
        tap_ok(r < 0 && v == 42 && err && err->code == MK_ERR_USAGE &&
                   strcmp(err->msg, "not a number of seconds since 1970 (0 to 253402300799)") == 0,
               "\"%s\" refused, saying why", bad[i]);
        mk_error_free(err);
    }
    return tap_done();
}
