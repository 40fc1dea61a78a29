/* builder/platform.c - building for other platforms: whether this host can run a platform's
 * programs (natively or through QEMU user emulation registered in binfmt_misc), and one build
 * per platform joined into an image index.
 *
 * Emulation needs nothing from mkimg: with a binfmt_misc handler registered with the F flag
 * the kernel opens the interpreter (qemu-aarch64 etc.) at registration time, so exec of a
 * foreign binary works inside RUN's namespaces and chroot, where the interpreter's path does
 * not exist. qemu-user is an ordinary x86-64 process there, so RUN's seccomp filter applies
 * to it as to anything else. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

#define BINFMT_DIR "/proc/sys/fs/binfmt_misc"

/* QEMU's names for the OCI architectures it emulates. */
static const char *const qemu_arch[][2] = {
    {"amd64", "x86_64"},    {"arm64", "aarch64"},     {"arm", "arm"},
    {"386", "i386"},        {"ppc64le", "ppc64le"},   {"s390x", "s390x"},
    {"riscv64", "riscv64"}, {"mips64le", "mips64el"}, {"loong64", "loongarch64"},
};

/* What /proc/sys/fs/binfmt_misc/NAME says: enabled, and with the F flag. */
static void binfmt_state(const char *name, bool *ret_found, bool *ret_enabled, bool *ret_fix)
{
    *ret_found = *ret_enabled = *ret_fix = false;
    _cleanup_free_ char *path = mk_xasprintf("%s/%s", BINFMT_DIR, name);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (mk_read_file_at(AT_FDCWD, path, 1 << 16, &data, &len, NULL) < 0)
        return;
    *ret_found = true;
    *ret_enabled = mk_str_has_prefix(data, "enabled");
    const char *f = strstr(data, "\nflags: ");
    if (f) {
        f += 8;
        size_t n = strcspn(f, "\n");
        *ret_fix = memchr(f, 'F', n) != NULL;
    }
}

int builder_platform_check_run(const struct mk_platform *p, struct mk_error **err)
{
    struct mk_platform host;
    mk_platform_host(&host);
    char want[MK_PLATFORM_MAX];
    mk_platform_format(p, want);
    if (strcmp(p->os, "linux") != 0)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, 0, "RUN for %s: only linux programs can run",
                            want);
    if (strcmp(p->arch, host.arch) == 0)
        return 0;
    const char *q = NULL;
    for (size_t i = 0; i < MK_ARRAY_SIZE(qemu_arch); i++)
        if (strcmp(qemu_arch[i][0], p->arch) == 0)
            q = qemu_arch[i][1];
    if (!q)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                            "RUN for %s: no QEMU user emulation is known for architecture \"%s\"",
                            want, p->arch);
    _cleanup_free_ char *name = mk_xasprintf("qemu-%s", q);
    bool found, enabled, fix;
    binfmt_state(name, &found, &enabled, &fix);
    const char *why = !found     ? "is not registered in " BINFMT_DIR
                      : !enabled ? "is disabled"
                      : !fix     ? "lacks the F flag (it cannot work inside a container)"
                                 : NULL;
    if (!why)
        return 0;
    return mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                        "RUN for %s needs QEMU user emulation, but binfmt_misc handler \"%s\" "
                        "%s (install qemu-user-static and binfmt-support)",
                        want, name, why);
}

/* ---- one process per platform ---------------------------------------------------------- */

/* A platform's build running in a child: its log comes through a pipe (relayed line by line
 * behind "[linux/arm64] "), its result through a report file read once it is gone. */
struct platform_job {
    pid_t pid;
    int log_fd;    /* read end, -1 once at EOF */
    int report_fd; /* unlinked temp file */
    char prefix[MK_PLATFORM_MAX + 4];
    struct mk_buf line;
};

static _Noreturn void platform_child(struct mk_store *store, struct mk_build_opts *one, int log_wr,
                                     int report_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    one->log_fd = log_wr;
    one->progress = MK_PROGRESS_PLAIN;
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    char *rep;
    if (builder_build(store, one, &img, &err) == 0)
        rep = mk_xasprintf("ok\n%s\n", img->manifest_digest);
    else
        rep = mk_xasprintf("err\n%d %d %d\n%s\n%s", err->code, err->sys_errno, err->status,
                           err->where ? err->where : "", err->msg);
    int r = mk_write_all(report_fd, rep, strlen(rep), NULL);
    _exit(r < 0 ? 2 : img ? 0 : 1);
}

/* Reads what the child reported: its image, or its error as it was. */
static int platform_collect(struct mk_store *store, struct platform_job *j, struct mk_image **ret,
                            struct mk_error **err)
{
    char data[1 << 14];
    ssize_t len = pread(j->report_fd, data, sizeof(data) - 1, 0);
    if (len < 0)
        return mk_error_errno(err, "reading the build report of %s", j->prefix);
    data[len] = '\0';
    if (mk_str_has_prefix(data, "ok\n")) {
        _cleanup_free_ char *d = mk_xstrndup(data + 3, strcspn(data + 3, "\n"));
        return layerstore_image_get(store, d, ret, err);
    }
    int code = MK_ERR_FAILED, sys = 0, status = 0;
    char *p = strchr(data, '\n');
    if (!mk_str_has_prefix(data, "err\n") || !p ||
        sscanf(p + 1, "%d %d %d", &code, &sys, &status) != 3)
        return mk_error_set(err, MK_ERR_FAILED, 0, "the build %sstopped", j->prefix);
    char *where = strchr(p + 1, '\n');
    char *msg = where ? strchr(where + 1, '\n') : NULL;
    if (!msg)
        return mk_error_set(err, MK_ERR_FAILED, 0, "the build %sstopped", j->prefix);
    *msg++ = '\0';
    where++;
    mk_error_set_at(err, code, *where ? where : NULL, "%s", msg);
    if (err && *err) {
        (*err)->sys_errno = sys;
        (*err)->status = status;
    }
    return -1;
}

/* Copies complete lines from the children's logs to log_fd, each behind its platform. */
static void platform_relay(struct platform_job *jobs, size_t n, int log_fd, int timeout_ms)
{
    _cleanup_free_ struct pollfd *pf = mk_xcalloc(n, sizeof(*pf));
    for (size_t i = 0; i < n; i++)
        pf[i] = (struct pollfd){.fd = jobs[i].log_fd, .events = POLLIN};
    if (poll(pf, (nfds_t)n, timeout_ms) <= 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)) || jobs[i].log_fd < 0)
            continue;
        char buf[8192];
        ssize_t got = read(jobs[i].log_fd, buf, sizeof(buf));
        if (got <= 0 && !(got < 0 && errno == EINTR)) {
            close(jobs[i].log_fd);
            jobs[i].log_fd = -1;
            got = 0;
        }
        for (ssize_t k = 0; k < got; k++) {
            if (buf[k] != '\n' && jobs[i].line.len < 4096) {
                mk_buf_addc(&jobs[i].line, buf[k]);
                continue;
            }
            if (log_fd >= 0) {
                _cleanup_free_ char *l = mk_xasprintf("%s%s\n", jobs[i].prefix,
                                                      jobs[i].line.data ? jobs[i].line.data : "");
                mk_write_all(log_fd, l, strlen(l), NULL);
            }
            mk_buf_reset(&jobs[i].line);
        }
    }
}

static int cpus(void)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > 64 ? 64 : (int)c;
}

/* Builds every platform, as many at once as there are cores, each in a process of its own
 * (builder_build keeps per-process state). imgs[i] receives platform i's image. */
static int build_parallel(struct mk_store *store, struct mk_build_opts *one,
                          const struct mk_strv *platforms, const struct mk_platform_entry *plats,
                          struct mk_image **imgs, struct mk_error **err)
{
    size_t n = platforms->n, started = 0, running = 0, max = (size_t)cpus();
    struct platform_job *jobs = mk_xcalloc(n, sizeof(*jobs));
    int log_fd = one->quiet ? -1 : one->log_fd;
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        jobs[i].pid = -1;
        jobs[i].log_fd = jobs[i].report_fd = -1;
        char p[MK_PLATFORM_MAX];
        mk_platform_format(&plats[i].platform, p);
        snprintf(jobs[i].prefix, sizeof(jobs[i].prefix), "[%s] ", p);
        mk_buf_init(&jobs[i].line, 8192);
    }
    while (ret == 0 || running > 0) {
        while (ret == 0 && !mk_interrupted && started < n && running < max) {
            struct platform_job *j = &jobs[started];
            int pipefd[2];
            _cleanup_free_ char *dir = layerstore_tmpdir(store, "platform-", err);
            if (!dir) {
                ret = -1;
                break;
            }
            _cleanup_free_ char *path = mk_xasprintf("%s/report", dir);
            j->report_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            unlink(path);
            layerstore_tmpdir_remove(store, dir, NULL);
            if (j->report_fd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
                ret = mk_error_errno(err, "starting the build for %s", platforms->v[started]);
                break;
            }
            one->platform = platforms->v[started];
            j->pid = fork();
            if (j->pid == 0) {
                close(pipefd[0]);
                platform_child(store, one, pipefd[1], j->report_fd);
            }
            close(pipefd[1]);
            if (j->pid < 0) {
                close(pipefd[0]);
                ret = mk_error_errno(err, "starting the build for %s", platforms->v[started]);
                break;
            }
            j->log_fd = pipefd[0];
            started++;
            running++;
        }
        if (running == 0)
            break;
        platform_relay(jobs, started, log_fd, 100);
        for (size_t i = 0; i < started; i++) {
            struct platform_job *j = &jobs[i];
            int status;
            if (j->pid <= 0 || j->log_fd >= 0 || waitpid(j->pid, &status, WNOHANG) != j->pid)
                continue;
            j->pid = 0;
            running--;
            if (platform_collect(store, j, &imgs[i], ret == 0 ? err : NULL) < 0 && ret == 0) {
                ret = -1;
                mk_error_wrap(err, "building for %s", platforms->v[i]);
                /* One platform failed: the build fails; stop the others. */
                for (size_t k = 0; k < started; k++)
                    if (jobs[k].pid > 0)
                        kill(jobs[k].pid, SIGTERM);
            }
        }
        if (mk_interrupted && ret == 0) {
            ret = mk_error_set(err, MK_ERR_INTERRUPTED, 0, "interrupted");
            for (size_t k = 0; k < started; k++)
                if (jobs[k].pid > 0)
                    kill(jobs[k].pid, SIGTERM);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].log_fd >= 0)
            close(jobs[i].log_fd);
        if (jobs[i].report_fd >= 0)
            close(jobs[i].report_fd);
        mk_buf_release(&jobs[i].line);
    }
    free(jobs);
    return ret;
}

int builder_build_platforms(struct mk_store *store, const struct mk_build_opts *opts,
                            const struct mk_strv *platforms, struct mk_image ***ret_images,
                            char ret_index[MK_DIGEST_SIZE], struct mk_error **err)
{
    size_t n = platforms->n;
    if (n == 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "--platform: no platform given");
    struct mk_platform_entry *entries = mk_xcalloc(n, sizeof(*entries));
    struct mk_image **imgs = mk_xcalloc(n + 1, sizeof(*imgs));
    struct mk_build_opts one = *opts;
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        r = mk_platform_parse(platforms->v[i], &entries[i].platform, err);
        for (size_t k = 0; r == 0 && k < i; k++)
            if (mk_platform_equal(&entries[i].platform, &entries[k].platform))
                r = mk_error_set(err, MK_ERR_USAGE, 0, "platform \"%s\" given twice",
                                 platforms->v[i]);
        if (r < 0)
            mk_error_set_where(err, "--platform");
    }
    /* Every platform's stages are checked (emulation present where RUN needs it) before
     * the first build starts. */
    one.plan_only = true;
    for (size_t i = 0; r == 0 && i < n; i++) {
        one.platform = platforms->v[i];
        r = builder_build(store, &one, NULL, err);
    }
    one.plan_only = false;
    /* The stages FROM --platform fixes ($BUILDPLATFORM's cross-compilers) first, one
     * platform after the other: a stage that is the same for two targets is then built
     * once and found in the cache by the other, as BuildKit builds it once. */
    memset(&one.tags, 0, sizeof(one.tags));
    one.pinned_only = true;
    for (size_t i = 0; r == 0 && i < n; i++) {
        one.platform = platforms->v[i];
        r = builder_build(store, &one, NULL, err);
    }
    one.pinned_only = false;
    /* Then every platform at once (as many as there are cores). The per-platform images
     * stay out of index.json when the index gets a name. */
    one.no_tag = opts->tags.n > 0;
    if (r == 0)
        r = build_parallel(store, &one, platforms, entries, imgs, err);
    for (size_t i = 0; r == 0 && i < n; i++)
        layerstore_image_platform_entry(imgs[i], &entries[i]);
    char index[MK_DIGEST_SIZE] = "";
    if (r == 0 && opts->tags.n == 0)
        r = layerstore_index_write(store, entries, n, index, NULL, err);
    for (size_t i = 0; r == 0 && i < opts->tags.n; i++) {
        r = layerstore_tag_entries(store, entries, n, opts->tags.v[i], index, err);
        if (r < 0) {
            for (size_t k = 0; k < i; k++)
                layerstore_untag(store, opts->tags.v[k], NULL);
            mk_error_set_where(err, opts->tags.v[i]);
        }
    }
    free(entries);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            layerstore_image_free(imgs[i]);
        free(imgs);
        return -1;
    }
    *ret_images = imgs;
    memcpy(ret_index, index, MK_DIGEST_SIZE);
    return 0;
}
