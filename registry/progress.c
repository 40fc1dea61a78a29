/* registry/progress.c - transfer progress of one blob: periodic lines on the client's log
 * ("pulling sha256:0123456789ab: 52.4 MB of 200 MB, 10.5 MB/s, 14s left") while it moves,
 * and one line when it is done. A client moves one blob at a time (parallel transfers use
 * clones), so the state hangs off the client; lines go through reg_log, whole. The interval
 * is 2 s, or $MKIMG_PROGRESS_INTERVAL_MS (for tests). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/internal.h"

#define DEFAULT_INTERVAL_MS 2000

struct reg_progress {
    const char *verb, *done_verb;
    char digest[20]; /* "sha256:" and 12 hex digits */
    uint64_t total, bytes;
    struct timespec start, last;
    long interval_ms;
};

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* Decimal units with three significant digits, as podman and the cli show sizes. */
static void human(double n, char *buf, size_t size)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    size_t u = 0;
    while (n >= 1000 && u + 1 < MK_ARRAY_SIZE(units)) {
        n /= 1000;
        u++;
    }
    snprintf(buf, size,
             n < 10 && u    ? "%.2f %s"
             : n < 100 && u ? "%.1f %s"
                            : "%.0f %s",
             n, units[u]);
}

void reg_progress_begin(struct reg_client *c, bool upload, const char *digest, uint64_t total)
{
    if (!c->log)
        return;
    reg_progress_free(c->progress);
    struct reg_progress *p = mk_xcalloc(1, sizeof(*p));
    p->verb = upload ? "pushing" : "pulling";
    p->done_verb = upload ? "pushed" : "pulled";
    snprintf(p->digest, sizeof(p->digest), "%s", digest);
    p->total = total;
    const char *env = getenv("MKIMG_PROGRESS_INTERVAL_MS");
    uint64_t ms;
    p->interval_ms =
        env && mk_parse_u64(env, &ms) == 0 && ms < 3600000 ? (long)ms : DEFAULT_INTERVAL_MS;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    p->last = p->start;
    c->progress = p;
}

void reg_progress_update(const struct reg_client *c, uint64_t bytes)
{
    struct reg_progress *p = c->progress;
    if (!p || bytes == p->bytes)
        return;
    p->bytes = bytes;
    if (since(&p->last) * 1000 < (double)p->interval_ms)
        return;
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    double secs = since(&p->start), rate = secs > 0 ? (double)bytes / secs : 0;
    char got[32], all[32], r[32], left[32] = "";
    human((double)bytes, got, sizeof(got));
    human((double)p->total, all, sizeof(all));
    human(rate, r, sizeof(r));
    if (rate > 0 && p->total > bytes)
        snprintf(left, sizeof(left), ", %.0fs left", (double)(p->total - bytes) / rate);
    reg_log(c, "%s %s: %s of %s, %s/s%s", p->verb, p->digest, got, all, r, left);
}

void reg_progress_end(struct reg_client *c)
{
    struct reg_progress *p = c->progress;
    if (!p)
        return;
    double secs = since(&p->start);
    char all[32], r[32];
    human((double)p->total, all, sizeof(all));
    human(secs > 0 ? (double)p->total / secs : 0, r, sizeof(r));
    reg_log(c, "%s %s: %s in %.1fs, %s/s", p->done_verb, p->digest, all, secs, r);
    reg_progress_free(p);
    c->progress = NULL;
}

void reg_progress_free(struct reg_progress *p)
{
    free(p);
}
