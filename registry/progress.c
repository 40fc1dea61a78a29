/* registry/progress.c - transfer progress of one blob ("pulling sha256:0123456789ab: 52.4 MB
 * of 200 MB, 10.5 MB/s, 14s left") and one line when it is done. A client moves one blob at a
 * time (parallel transfers use clones), so the state hangs off the client.
 *
 * Not on a terminal: a plain line every 2 s ($MKIMG_PROGRESS_INTERVAL_MS, for tests). On a
 * terminal: one live line per moving blob, a block at the bottom redrawn at most every 100 ms;
 * every other log line (reg_log goes through reg_progress_print) is written above the block,
 * which is erased and drawn again around it. One lock for the block, as the blobs move on
 * several threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/internal.h"

#define DEFAULT_INTERVAL_MS 2000
#define TTY_INTERVAL_MS 100
#define TTY_LINES_MAX 16

struct reg_progress {
    const char *verb, *done_verb;
    char digest[20]; /* "sha256:" and 12 hex digits */
    uint64_t total, bytes;
    struct timespec start, last;
    long interval_ms;
    bool tty;       /* a line in the live block */
    char line[160]; /* tty: what the block shows for it */
};

/* The live block: the blobs shown, top to bottom, and how many lines are on the screen. */
static pthread_mutex_t block_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg_progress *block[TTY_LINES_MAX];
static size_t block_n, block_drawn;

/* With block_lock held. */
static void block_erase(FILE *f)
{
    if (block_drawn)
        fprintf(f, "\r\033[%zuA\033[J", block_drawn);
    block_drawn = 0;
}

static void block_draw(FILE *f)
{
    for (size_t i = 0; i < block_n; i++)
        fprintf(f, "\033[K%s\n", block[i]->line);
    block_drawn = block_n;
}

void reg_progress_print(FILE *f, const char *msg)
{
    pthread_mutex_lock(&block_lock);
    flockfile(f);
    block_erase(f);
    fprintf(f, "%s\n", msg);
    block_draw(f);
    fflush(f);
    funlockfile(f);
    pthread_mutex_unlock(&block_lock);
}

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
    pthread_mutex_lock(&block_lock);
    if (isatty(fileno(c->log)) && block_n < TTY_LINES_MAX) {
        p->tty = true;
        snprintf(p->line, sizeof(p->line), "%s %s: starting", p->verb, p->digest);
        block[block_n++] = p;
    }
    pthread_mutex_unlock(&block_lock);
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
    if (since(&p->last) * 1000 < (double)(p->tty ? TTY_INTERVAL_MS : p->interval_ms))
        return;
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    double secs = since(&p->start), rate = secs > 0 ? (double)bytes / secs : 0;
    char got[32], all[32], r[32], left[32] = "";
    human((double)bytes, got, sizeof(got));
    human((double)p->total, all, sizeof(all));
    human(rate, r, sizeof(r));
    if (rate > 0 && p->total > bytes)
        snprintf(left, sizeof(left), ", %.0fs left", (double)(p->total - bytes) / rate);
    if (!p->tty) {
        reg_log(c, "%s %s: %s of %s, %s/s%s", p->verb, p->digest, got, all, r, left);
        return;
    }
    pthread_mutex_lock(&block_lock);
    snprintf(p->line, sizeof(p->line), "%s %s: %s of %s, %s/s%s", p->verb, p->digest, got, all, r,
             left);
    flockfile(c->log);
    block_erase(c->log);
    block_draw(c->log);
    fflush(c->log);
    funlockfile(c->log);
    pthread_mutex_unlock(&block_lock);
}

/* Takes p out of the live block (its line goes with the next redraw). */
static void block_remove(struct reg_progress *p)
{
    if (!p || !p->tty)
        return;
    pthread_mutex_lock(&block_lock);
    for (size_t i = 0; i < block_n; i++)
        if (block[i] == p) {
            memmove(block + i, block + i + 1, (block_n - i - 1) * sizeof(block[0]));
            block_n--;
            break;
        }
    pthread_mutex_unlock(&block_lock);
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
    block_remove(p);
    reg_log(c, "%s %s: %s in %.1fs, %s/s", p->done_verb, p->digest, all, secs, r);
    reg_progress_free(p);
    c->progress = NULL;
}

void reg_progress_free(struct reg_progress *p)
{
    block_remove(p);
    free(p);
}
