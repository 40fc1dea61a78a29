/* builder/progress.c - what a build shows while it runs.
 *
 * plain: a line per step ("[3/9] RUN make"), the RUN's output line by line behind the step's
 * prefix and, as buildx prints them, the seconds since the step started ("#3 0.412 "), and a
 * result line (" => CACHED", " => done 1.23s").
 * tty: the same, but the running step is one live status line at the bottom with its time
 * ticking; when the step ends the line stays with its time or CACHED, and RUN output scrolls
 * above it.
 *
 * rawjson: BuildKit's SolveStatus objects, one per line: a vertex when a step starts and
 * again when it ends, each RUN output line as a log of its vertex (base64, as Go encodes
 * []byte). A vertex's digest is the sha256 of its label, stable across builds.
 *
 * RUN output arrives through a pipe per RUN; a thread reads it, cuts it into lines and writes
 * them (in tty mode it also redraws the status line every 100 ms). Every write to the log goes
 * through one mutex, so lines never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "builder/internal.h"
#include "common/digest.h"
#include "common/fsutil.h"

#define LINE_MAX_BYTES 4096
#define TICK_MS 100

struct mk_progress_ui {
    int fd; /* -1 = quiet */
    bool tty;
    bool json; /* rawjson */
    char vertex[MK_DIGEST_SIZE];
    char started[40]; /* rawjson: the step's start, RFC 3339 with nanoseconds */
    size_t cols;      /* tty: the terminal's width */
    bool tag_results; /* plain: result lines carry the step prefix too (stages in parallel) */
    pthread_mutex_t lock;
    /* the current step */
    char *label;  /* "[3/9] RUN make" */
    char *prefix; /* "#3 " */
    bool timed, open;
    struct timespec t0;
    bool status_shown; /* tty: the status line is on the screen */
    /* the running RUN's output */
    int pipe_rd, pipe_wr;
    pthread_t reader;
    bool reading;
};

static double elapsed(const struct mk_progress_ui *p)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - p->t0.tv_sec) + (double)(t.tv_nsec - p->t0.tv_nsec) / 1e9;
}

static void put(struct mk_progress_ui *p, const char *s, size_t n)
{
    mk_write_all(p->fd, s, n, NULL);
}

static void now_rfc3339(char out[40])
{
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09ldZ", t.tv_nsec);
}

/* One SolveStatus line; called with the lock held. Takes o. */
static void put_json(struct mk_progress_ui *p, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        MK_BUG("json_dumps failed");
    _cleanup_free_ char *line = mk_xasprintf("%s\n", s);
    free(s);
    put(p, line, strlen(line));
}

static json_t *vertex_json(const struct mk_progress_ui *p)
{
    json_t *v = json_object();
    json_object_set_new(v, "digest", json_string(p->vertex));
    json_object_set_new(v, "name", json_string(p->label ? p->label : ""));
    json_object_set_new(v, "started", json_string(p->started));
    return v;
}

static void put_log_json(struct mk_progress_ui *p, const char *data, size_t n, int stream)
{
    char ts[40];
    now_rfc3339(ts);
    _cleanup_free_ char *b = mk_base64(data, n);
    json_t *l = json_object();
    json_object_set_new(l, "vertex", json_string(p->vertex));
    json_object_set_new(l, "stream", json_integer(stream));
    json_object_set_new(l, "data", json_string(b));
    json_object_set_new(l, "timestamp", json_string(ts));
    json_t *o = json_object();
    json_object_set_new(o, "logs", json_pack("[o]", l));
    put_json(p, o);
}

/* Called with the lock held. */
static void clear_status(struct mk_progress_ui *p)
{
    if (p->tty && p->status_shown) {
        put(p, "\r\033[K", 4);
        p->status_shown = false;
    }
}

/* tty: the label on one line that fits the terminal next to the time. */
static char *status_text(const struct mk_progress_ui *p)
{
    _cleanup_free_ char *l = mk_xstrdup(p->label);
    for (char *c = l; *c; c++)
        if (*c == '\n' || *c == '\t' || *c == '\r')
            *c = ' ';
    size_t room = p->cols > 20 ? p->cols - 12 : 8;
    if (strlen(l) > room)
        memcpy(l + room - 3, "...", 4);
    return MK_TAKE_PTR(l);
}

static void draw_status(struct mk_progress_ui *p)
{
    if (!p->tty || !p->open)
        return;
    _cleanup_free_ char *l = status_text(p);
    _cleanup_free_ char *s = mk_xasprintf("\r\033[K%s  %.1fs", l, elapsed(p));
    put(p, s, strlen(s));
    p->status_shown = true;
}

struct mk_progress_ui *builder_progress_new(int fd, enum mk_progress mode)
{
    struct mk_progress_ui *p = mk_xcalloc(1, sizeof(*p));
    p->fd = fd;
    p->json = fd >= 0 && mode == MK_PROGRESS_RAWJSON;
    p->tty = fd >= 0 && (mode == MK_PROGRESS_TTY || (mode == MK_PROGRESS_AUTO && isatty(fd)));
    struct winsize ws;
    p->cols = p->tty && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
    p->pipe_rd = p->pipe_wr = -1;
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

void builder_progress_tag_results(struct mk_progress_ui *p)
{
    p->tag_results = true;
}

void builder_progress_free(struct mk_progress_ui *p)
{
    if (!p)
        return;
    builder_progress_output_end(p);
    pthread_mutex_lock(&p->lock);
    clear_status(p);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_destroy(&p->lock);
    free(p->label);
    free(p->prefix);
    free(p);
}

void builder_progress_step(struct mk_progress_ui *p, size_t step, size_t n_steps, const char *text,
                           bool timed)
{
    if (p->fd < 0)
        return;
    pthread_mutex_lock(&p->lock);
    free(p->label);
    free(p->prefix);
    p->label = mk_xasprintf("[%zu/%zu] %s", step, n_steps, text);
    p->prefix = mk_xasprintf("#%zu ", step);
    p->timed = timed;
    p->open = true;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    if (p->json) {
        mk_sha256_buffer(p->label, strlen(p->label), p->vertex);
        now_rfc3339(p->started);
        json_t *o = json_object();
        json_object_set_new(o, "vertexes", json_pack("[o]", vertex_json(p)));
        put_json(p, o);
    } else if (p->tty) {
        clear_status(p);
        draw_status(p);
    } else {
        _cleanup_free_ char *s = mk_xasprintf("%s\n", p->label);
        put(p, s, strlen(s));
    }
    pthread_mutex_unlock(&p->lock);
}

void builder_progress_done(struct mk_progress_ui *p, const char *result)
{
    if (p->fd < 0)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->open && p->json) {
        p->open = false;
        json_t *v = vertex_json(p);
        char ts[40];
        now_rfc3339(ts);
        json_object_set_new(v, "completed", json_string(ts));
        if (result && strcmp(result, "CACHED") == 0)
            json_object_set_new(v, "cached", json_true());
        else if (result)
            json_object_set_new(v, "error", json_string(result));
        json_t *o = json_object();
        json_object_set_new(o, "vertexes", json_pack("[o]", v));
        put_json(p, o);
    } else if (p->open) {
        p->open = false;
        _cleanup_free_ char *s = NULL;
        if (p->tty) {
            clear_status(p);
            _cleanup_free_ char *l = status_text(p);
            s = result ? mk_xasprintf("%s  %s\n", l, result)
                       : mk_xasprintf("%s  %.1fs\n", l, elapsed(p));
        } else if (result || p->timed) {
            _cleanup_free_ char *r =
                result ? mk_xstrdup(result) : mk_xasprintf("done %.2fs", elapsed(p));
            s = p->tag_results ? mk_xasprintf("%s=> %s\n", p->prefix, r)
                               : mk_xasprintf(" => %s\n", r);
        }
        if (s)
            put(p, s, strlen(s));
    }
    pthread_mutex_unlock(&p->lock);
}

void builder_progress_log(struct mk_progress_ui *p, const char *text)
{
    if (p->fd < 0)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->json) {
        put_log_json(p, text, strlen(text), 2);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    clear_status(p);
    put(p, text, strlen(text));
    draw_status(p);
    pthread_mutex_unlock(&p->lock);
}

/* One line of RUN output (without its newline), behind the step's prefix. */
static void output_line(struct mk_progress_ui *p, const char *line, size_t n)
{
    pthread_mutex_lock(&p->lock);
    if (p->json) {
        _cleanup_free_ char *l = mk_xasprintf("%.*s\n", (int)n, line);
        put_log_json(p, l, n + 1, 1);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    clear_status(p);
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_adds(&b, p->prefix ? p->prefix : "");
    if (!p->tty && p->open)
        mk_buf_addf(&b, "%.3f ", elapsed(p));
    mk_buf_add(&b, line, n);
    mk_buf_addc(&b, '\n');
    put(p, b.data, b.len);
    mk_buf_release(&b);
    draw_status(p);
    pthread_mutex_unlock(&p->lock);
}

static void *reader_main(void *arg)
{
    struct mk_progress_ui *p = arg;
    char buf[LINE_MAX_BYTES];
    size_t have = 0;
    for (;;) {
        struct pollfd pfd = {.fd = p->pipe_rd, .events = POLLIN};
        int r = poll(&pfd, 1, p->tty ? TICK_MS : -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            pthread_mutex_lock(&p->lock);
            draw_status(p);
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        ssize_t n = read(p->pipe_rd, buf + have, sizeof(buf) - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have; i++)
            if (buf[i] == '\n') {
                output_line(p, buf + start, i - start);
                start = i + 1;
            }
        if (start == 0 && have == sizeof(buf)) {
            output_line(p, buf, have); /* a line longer than the buffer: cut it */
            start = have;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    if (have)
        output_line(p, buf, have);
    return NULL;
}

int builder_progress_output_begin(struct mk_progress_ui *p)
{
    if (p->fd < 0)
        return -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return p->fd; /* no pipe: the output goes to the log as it is */
    p->pipe_rd = fds[0];
    p->pipe_wr = fds[1];
    if (pthread_create(&p->reader, NULL, reader_main, p) != 0) {
        close(fds[0]);
        close(fds[1]);
        p->pipe_rd = p->pipe_wr = -1;
        return p->fd;
    }
    p->reading = true;
    return p->pipe_wr;
}

void builder_progress_output_end(struct mk_progress_ui *p)
{
    if (!p->reading)
        return;
    /* The RUN's processes are gone with its pid namespace; our end is the last writer. */
    close(p->pipe_wr);
    pthread_join(p->reader, NULL);
    close(p->pipe_rd);
    p->pipe_rd = p->pipe_wr = -1;
    p->reading = false;
}
