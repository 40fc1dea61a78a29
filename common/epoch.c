/* common/epoch.c - parsing and printing the build epoch. */
#include <time.h>

#include "common/epoch.h"
#include "common/util.h"

int mk_epoch_parse(const char *s, int64_t *ret, struct mk_error **err)
{
    if (!s || !*s) {
        *ret = MK_EPOCH_NONE;
        return 0;
    }
    uint64_t v;
    if (mk_parse_u64(s, &v) < 0 || v > (uint64_t)MK_EPOCH_MAX)
        return mk_error_set(err, MK_ERR_USAGE, 0, "not a number of seconds since 1970 (0 to %lld)",
                            (long long)MK_EPOCH_MAX);
    *ret = (int64_t)v;
    return 0;
}

char *mk_epoch_rfc3339(int64_t epoch)
{
    time_t t = epoch == MK_EPOCH_NONE ? time(NULL) : (time_t)epoch;
    struct tm tm;
    char buf[64];
    if (!gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return mk_xstrdup("1970-01-01T00:00:00Z");
    return mk_xstrdup(buf);
}
