/* tests/unit/builder/test-build-twice.c - builder_build holds no process-wide state: builds
 * with --explain-cache in one process, from two threads and then from the main thread, each
 * explaining its own steps.
 *
 * The threads take turns. Two builds at the same moment are not safe yet: the RUN sandbox
 * starts its container with a raw clone() that then allocates memory, and a thread of the
 * parent may hold the allocator's lock at that moment (seen here as a child spinning forever
 * under ASan). */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/builder.h"
#include "common/fsutil.h"
#include "tap.h"

#define STEPS 12
#define ROUNDS 2

struct job {
    int no;
    char dir[64];
    struct mk_store *store;
    int failures; /* builds that failed or explained wrongly */
    char *why;
};

static void write_file(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
        exit(1);
    close(fd);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* One build of the job's context; the explain lines it logged into *ret_log. */
static int build(struct job *j, int round, char **ret_log)
{
    _cleanup_free_ char *ctx = mk_xasprintf("%s/ctx", j->dir);
    _cleanup_free_ char *log = mk_xasprintf("%s/log-%d", j->dir, round);
    int fd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct mk_build_opts o;
    memset(&o, 0, sizeof(o));
    o.context_dir = ctx;
    o.explain_cache = true;
    o.log_fd = fd;
    o.progress = MK_PROGRESS_PLAIN;
    o.jobs = 1;
    o.epoch = MK_EPOCH_NONE;
    o.pull = REGISTRY_PULL_NEVER;
    mk_strv_pushf(&o.tags, "job%d:%d", j->no, round);
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    int r = builder_build(j->store, &o, &img, &err);
    if (r < 0)
        j->why = mk_xasprintf("build %d: %s", round, err->msg);
    mk_error_free(err);
    layerstore_image_free(img);
    mk_strv_release(&o.tags);
    close(fd);
    mk_read_file_at(AT_FDCWD, log, 1 << 20, ret_log, NULL, NULL);
    return r;
}

/* First build: every step misses with no earlier build; second: every step is cached;
 * third, after file 5 changed: the step that copies it names it. */
static void *run_job(void *arg)
{
    struct job *j = arg;
    for (int round = 0; round < 3; round++) {
        if (round == 2) {
            _cleanup_free_ char *f = mk_xasprintf("%s/ctx/f5", j->dir);
            write_file(f, "changed\n");
        }
        _cleanup_free_ char *log = NULL;
        if (build(j, round, &log) < 0 || !log) {
            j->failures++;
            continue;
        }
        bool ok = round == 0   ? count(log, "cache miss: no earlier build of this step") == STEPS
                  : round == 1 ? count(log, "=> CACHED") == STEPS && !strstr(log, "cache miss")
                               : count(log, "cache miss: file f5 changed") == 1 &&
                                     count(log, "=> CACHED") == 5;
        if (!ok) {
            j->failures++;
            if (!j->why)
                j->why = mk_xasprintf("round %d explained:\n%s", round, log);
        }
    }
    return NULL;
}

static void make_job(struct job *j, int no, int round)
{
    j->no = no;
    snprintf(j->dir, sizeof(j->dir), "job%d-%d", no, round);
    _cleanup_free_ char *ctx = mk_xasprintf("%s/ctx", j->dir);
    _cleanup_free_ char *store = mk_xasprintf("%s/store", j->dir);
    if (mk_mkdir_p(ctx, 0755, NULL) < 0 || layerstore_open(store, &j->store, NULL) < 0)
        exit(1);
    struct mk_buf df = MK_BUF_INIT;
    mk_buf_adds(&df, "FROM scratch\n");
    for (int i = 0; i < STEPS; i++) {
        _cleanup_free_ char *f = mk_xasprintf("%s/f%d", ctx, i);
        _cleanup_free_ char *content = mk_xasprintf("job %d file %d\n", no, i);
        write_file(f, content);
        mk_buf_addf(&df, "COPY f%d /f%d\n", i, i);
    }
    _cleanup_free_ char *dfp = mk_xasprintf("%s/Dockerfile", ctx);
    write_file(dfp, df.data);
    mk_buf_release(&df);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("1..0 # SKIP COPY runs in a sandbox: needs root\n");
        return 77;
    }
    tap_tmpdir();
    for (int round = 0; round < ROUNDS; round++) {
        struct job jobs[2];
        memset(jobs, 0, sizeof(jobs));
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            make_job(&jobs[i], i, round);
            pthread_create(&th[i], NULL, run_job, &jobs[i]);
            pthread_join(th[i], NULL);
        }
        for (int i = 0; i < 2; i++) {
            if (!tap_ok(jobs[i].failures == 0,
                        "round %d, thread %d: three builds, each explained on its own", round, i))
                tap_diag("%s", jobs[i].why ? jobs[i].why : "?");
            free(jobs[i].why);
            layerstore_free(jobs[i].store);
        }
    }
    /* The same process once more, one build after the other. */
    struct job j;
    memset(&j, 0, sizeof(j));
    make_job(&j, 9, 9);
    run_job(&j);
    tap_ok(j.failures == 0, "and in sequence in the same process");
    if (j.why)
        tap_diag("%s", j.why);
    free(j.why);
    layerstore_free(j.store);
    return tap_done();
}
