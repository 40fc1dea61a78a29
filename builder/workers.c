/* builder/workers.c - --jobs: independent stages built at once by helper processes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "builder/rooms.h"
#include "common/fsutil.h"
#include "parser/parser.h"

/* ---- --jobs: independent stages at once ---------------------------------------------------
 *
 * Each stage but the target is built by a helper process (fork) as soon as the stages it
 * uses are done, up to opts->jobs at a time. A helper builds its stage with the usual step
 * cache; the stages it uses are already in that cache (built by earlier helpers), so it
 * collects them silently. The helpers report the cache keys they stored; then this process
 * builds everything in order, where every prebuilt step is a silent cache hit (also with
 * --no-cache: the keys this build stored count as fresh). */

static bool depends_on(const struct build *b, size_t i, size_t j)
{
    const struct stage *s = &b->stages[i];
    for (size_t k = 0; k < s->n_deps; k++)
        if (s->deps[k] == j || depends_on(b, s->deps[k], j))
            return true;
    return false;
}

/* Worth forking when two stages (not the target) could run at the same time. */
bool stages_parallel(const struct build *b)
{
    for (size_t i = 0; i < b->n_stages; i++)
        for (size_t j = i + 1; j < b->n_stages; j++)
            if (i != b->target && j != b->target && b->stages[i].needed && b->stages[j].needed &&
                !depends_on(b, j, i) && !depends_on(b, i, j))
                return true;
    return false;
}

/* ---- probes: stages of cache hits need no helper ------------------------------------------
 *
 * A helper costs a fork and a second pass over its stage; on a rebuild where nothing changed
 * every stage is cache hits and the helpers only slow it down. So before a stage gets a
 * helper, this process tries it with b->probing set: silent, taking what the store has, and
 * stopped (probe_stop) by the first step that would do work: a miss (step_begin), a source
 * root (src_root_open), a pull or a lazy image (stage_image_get), ONBUILD triggers. A stage
 * whose probe ends is built here: its dependents can be probed in turn, and the final pass
 * (build_stages) shows it, in order, like the target. Otherwise its state is reset and a
 * helper builds it, as without probes. */

/* No probe where the usual path does not fit or a key alone may download: --no-cache (every
 * step is a miss), --pull=always (the store's image may not be the one to use), --cache-from
 * and --cache-to (hits from sources, records to note), an ADD of a URL or git repository. */
static bool stage_probe_fits(const struct build *b, const struct stage *s)
{
    if (b->opts->no_cache || b->opts->pull == REGISTRY_PULL_ALWAYS || b->rc)
        return false;
    for (size_t k = s->first + 1; k < s->end; k++) {
        const struct mk_df_node *n = b->insts.v[k].node;
        for (size_t a = 0; b->insts.v[k].kind == MK_INST_ADD && a + 1 < n->args.n; a++) {
            const char *w = n->args.v[a];
            if (strchr(w, '$') || strstr(w, "://") || mk_str_has_prefix(w, "git@"))
                return false;
        }
    }
    return true;
}

/* Builds stage s in this process if every step of it is a cache hit; true when it did. */
static bool stage_probe(struct build *b, struct stage *s)
{
    if (!stage_probe_fits(b, s))
        return false;
    size_t step = b->step, cached = b->cached_steps;
    struct mk_error *e = NULL;
    b->probing = true;
    int r = build_stage(b, s, &e);
    step_end(b);
    b->probing = false;
    b->silent = false;
    b->step = step;
    b->cached_steps = cached;
    mk_error_free(e);
    if (r < 0)
        stage_reset(s);
    return r == 0;
}

/* The helper process: builds stage i (and collects what it uses), reports, exits. */
__attribute__((noreturn)) static void stage_helper(struct build *b, size_t i, int fd)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(1);
    b->result_fd = fd;
    snapshots_forget_trees(b);
    /* Writes in the build's window if it is open, else in one of its own, closed (synced)
     * before the report: a stage of cache hits syncs nothing. */
    layerstore_sync_adopt(b->store);
    b->ui = builder_progress_new(b->opts->quiet ? -1 : b->opts->log_fd,
                                 b->opts->progress == MK_PROGRESS_RAWJSON ? MK_PROGRESS_RAWJSON
                                                                          : MK_PROGRESS_PLAIN);
    builder_progress_tag_results(b->ui);
    struct mk_error *err = NULL;
    int r = 0;
    for (size_t k = 0; r == 0 && k <= i; k++) {
        struct stage *s = &b->stages[k];
        /* A stage a probe built is here already. */
        if (!s->needed || (k != i && (!depends_on(b, i, k) || s->built)))
            continue;
        s->prebuilt = k != i;
        r = build_stage(b, s, &err);
    }
    step_end(b);
    /* The stages a helper builds are what other stages use: all kept, in its window. */
    snapshots_settle(b, false);
    builder_hashcache_save(b->hc, NULL);
    if (layerstore_sync_end(b->store, r < 0 ? NULL : &err) < 0 && r == 0)
        r = -1;
    if (r < 0) {
        /* "error CODE ERRNO STATUS\tWHERE\tMESSAGE", one line */
        _cleanup_free_ char *line =
            mk_xasprintf("error %d %d %d\t%s\t%s", err->code, err->sys_errno, err->status,
                         err->where ? err->where : "", err->msg);
        for (char *p = line; *p; p++)
            if (*p == '\n')
                *p = ' ';
        mk_write_all(fd, line, strlen(line), NULL);
        mk_write_all(fd, "\n", 1, NULL);
    } else {
        mk_write_all(fd, "ok\n", 3, NULL);
    }
    _exit(r < 0 ? 1 : 0);
}

struct helper {
    pid_t pid;
    size_t stage;
    int fd;
};

/* Reads a finished helper's report: cache keys into fresh_keys; an error into err. */
static int helper_collect(struct build *b, struct helper *h, struct mk_error **err)
{
    struct mk_buf data = MK_BUF_INIT;
    char chunk[8192];
    ssize_t got;
    lseek(h->fd, 0, SEEK_SET);
    while ((got = read(h->fd, chunk, sizeof(chunk))) > 0 || (got < 0 && errno == EINTR))
        if (got > 0)
            mk_buf_add(&data, chunk, (size_t)got);
    close(h->fd);
    h->fd = -1;
    bool ok = false;
    char *save = NULL;
    int ret = 0;
    for (char *l = data.data ? strtok_r(data.data, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save)) {
        if (mk_str_has_prefix(l, "key ")) {
            mk_strv_push(&b->fresh_keys, l + 4);
        } else if (mk_str_has_prefix(l, "cache-mount ") && strchr(l, '\t')) {
            /* "cache-mount ID\tDIR": a RUN cache mount for --cache-to (remote-cache.c) */
            *strchr(l, '\t') = '\0';
            rcache_mount_note(b, l + 12, l + strlen(l) + 1);
        } else if (strcmp(l, "ok") == 0) {
            ok = true;
        } else if (mk_str_has_prefix(l, "error ") && ret == 0) {
            int code = MK_ERR_FAILED, sys = 0, status = 0;
            sscanf(l + 6, "%d %d %d", &code, &sys, &status);
            char *where = strchr(l, '\t');
            char *msg = where ? strchr(where + 1, '\t') : NULL;
            if (!msg)
                continue;
            *where++ = '\0';
            *msg++ = '\0';
            ret = mk_error_set_at(err, code, *where ? where : NULL, "%s", msg);
            if (err && *err) {
                (*err)->sys_errno = sys;
                (*err)->status = status;
            }
        }
    }
    mk_buf_release(&data);
    if (ret < 0)
        return -1;
    if (!ok)
        return mk_error_set(err, mk_interrupted ? MK_ERR_INTERRUPTED : MK_ERR_FAILED, 0, "%s",
                            mk_interrupted ? "interrupted" : "building a stage failed");
    return 0;
}

int prebuild_stages(struct build *b, unsigned jobs, struct mk_error **err)
{
    size_t n = b->n_stages;
    _cleanup_free_ bool *done = mk_xcalloc(n, sizeof(bool));
    _cleanup_free_ bool *started = mk_xcalloc(n, sizeof(bool));
    _cleanup_free_ struct helper *run = mk_xcalloc(jobs, sizeof(*run));
    size_t n_run = 0;
    int ret = 0;
    for (size_t i = 0; i < n; i++)
        done[i] = !b->stages[i].needed || i == b->target;
    for (;;) {
        /* Start what is ready. */
        for (size_t i = 0; ret == 0 && !mk_interrupted && i < n && n_run < jobs; i++) {
            if (done[i] || started[i])
                continue;
            bool ready = true;
            for (size_t k = 0; k < b->stages[i].n_deps; k++)
                ready &= done[b->stages[i].deps[k]];
            if (!ready)
                continue;
            if (stage_probe(b, &b->stages[i])) {
                done[i] = true;
                continue;
            }
            /* The report goes through a file, not a pipe: it can be longer than a pipe
             * holds, and is read once the helper is gone. */
            _cleanup_free_ char *dir = layerstore_tmpdir(b->store, "stage-", err);
            if (!dir) {
                ret = -1;
                break;
            }
            _cleanup_free_ char *path = mk_xasprintf("%s/report", dir);
            int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            unlink(path);
            layerstore_tmpdir_remove(b->store, dir, NULL);
            if (fd < 0) {
                ret = mk_error_errno(err, "creating a stage report");
                break;
            }
            builder_sandbox_reap(); /* not for a helper to inherit, nor to reap */
            pid_t pid = fork();
            if (pid < 0) {
                close(fd);
                ret = mk_error_errno(err, "starting a stage");
                break;
            }
            if (pid == 0)
                stage_helper(b, i, fd);
            started[i] = true;
            run[n_run++] = (struct helper){.pid = pid, .stage = i, .fd = fd};
        }
        if (n_run == 0)
            break;
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) {
                if (mk_interrupted)
                    for (size_t k = 0; k < n_run; k++)
                        kill(run[k].pid, SIGTERM);
                continue;
            }
            ret = mk_error_errno(err, "waiting for a stage");
            break;
        }
        for (size_t k = 0; k < n_run; k++) {
            if (run[k].pid != pid)
                continue;
            struct helper h = run[k];
            run[k] = run[--n_run];
            if (helper_collect(b, &h, ret == 0 ? err : NULL) < 0 && ret == 0) {
                ret = -1;
                /* One stage failed: the build fails; stop the others. */
                for (size_t m = 0; m < n_run; m++)
                    kill(run[m].pid, SIGTERM);
            }
            done[h.stage] = true;
            break;
        }
    }
    /* On an early exit the helpers still running are stopped and waited for. */
    for (size_t k = 0; k < n_run; k++) {
        kill(run[k].pid, SIGTERM);
        while (waitpid(run[k].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close(run[k].fd);
    }
    if (ret == 0 && mk_interrupted)
        ret = mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
    bool forked = false;
    for (size_t i = 0; ret == 0 && i < n; i++) {
        b->stages[i].prebuilt = b->stages[i].needed && i != b->target && started[i];
        forked |= started[i];
    }
    /* A probe may have read the file digests before the helpers hashed and saved theirs
     * (with what they inherited of this process's): the final pass reads the table again
     * rather than hash their files a second time. */
    if (forked) {
        builder_hashcache_free(b->hc);
        b->hc = NULL;
    }
    return ret;
}
