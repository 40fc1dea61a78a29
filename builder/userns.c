/* builder/userns.c - the rootless entry: this process moves into a user namespace where it
 * is root, with its /etc/subuid and /etc/subgid ranges mapped behind id 0.
 *
 * unshare(CLONE_NEWUSER) only works in a single-threaded process, so the CLI calls this
 * first thing. Only the setuid helpers newuidmap/newgidmap may map subordinate ids, and
 * they must be told the pid from outside the namespace: a helper forked before the
 * unshare waits until we are in the namespace, then runs them on our pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

static bool userns_entered;
static bool userns_single_id;

struct subid_range {
    unsigned long start, count;
};

/* First range for the user (by name or by uid) in /etc/subuid or /etc/subgid. */
static bool find_subid_range(const char *file, const char *name, unsigned long id,
                             struct subid_range *ret)
{
    _cleanup_free_ char *data = NULL;
    struct mk_error *e = NULL;
    if (mk_read_file_at(AT_FDCWD, file, 1u << 20, &data, NULL, &e) < 0) {
        mk_error_free(e);
        return false;
    }
    char idstr[32];
    snprintf(idstr, sizeof(idstr), "%lu", id);
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f1 = strchr(line, ':');
        if (!f1)
            continue;
        *f1++ = '\0';
        char *f2 = strchr(f1, ':');
        if (!f2)
            continue;
        *f2++ = '\0';
        if (strcmp(line, idstr) != 0 && (!name || strcmp(line, name) != 0))
            continue;
        uint64_t start, count;
        if (mk_parse_u64(f1, &start) < 0 || mk_parse_u64(f2, &count) < 0 || count == 0 ||
            start > UINT32_MAX || count > UINT32_MAX - start)
            continue;
        ret->start = (unsigned long)start;
        ret->count = (unsigned long)count;
        return true;
    }
    return false;
}

/* Runs argv (no shell) and waits; returns its exit status, or -1 if it could not run. */
static int run_tool(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int write_proc_file(const char *path, const char *data, struct mk_error **err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", path);
    size_t len = strlen(data);
    if (write(fd, data, len) != (ssize_t)len)
        return mk_error_errno(err, "writing \"%s\"", path);
    return 0;
}

static bool is_initial_userns_root(void)
{
    _cleanup_free_ char *map = NULL;
    struct mk_error *e = NULL;
    if (mk_read_file_at(AT_FDCWD, "/proc/self/uid_map", 4096, &map, NULL, &e) < 0) {
        mk_error_free(e);
        return false;
    }
    unsigned long a, b, c;
    return sscanf(map, "%lu %lu %lu", &a, &b, &c) == 3 && a == 0 && b == 0 && c == 4294967295ul &&
           geteuid() == 0;
}

int builder_enter_userns(bool *ret_single_id, struct mk_error **err)
{
    if (userns_entered || is_initial_userns_root()) {
        userns_entered = true;
        *ret_single_id = userns_single_id;
        return 0;
    }
    uid_t uid = geteuid();
    gid_t gid = getegid();
    char namebuf[4096];
    struct passwd pw, *pwp = NULL;
    const char *name = NULL;
    if (getpwuid_r(uid, &pw, namebuf, sizeof(namebuf), &pwp) == 0 && pwp)
        name = pwp->pw_name;

    struct subid_range ur, gr;
    bool have_ranges = find_subid_range("/etc/subuid", name, uid, &ur) &&
                       find_subid_range("/etc/subgid", name, uid, &gr);

    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0)
        return mk_error_errno(err, "creating a pipe");
    pid_t self = getpid();
    pid_t helper = -1;
    if (have_ranges) {
        helper = fork();
        if (helper < 0) {
            close(go[0]);
            close(go[1]);
            return mk_error_errno(err, "forking the id map helper");
        }
        if (helper == 0) {
            close(go[1]);
            char c;
            if (read(go[0], &c, 1) != 1)
                _exit(1);
            char p[32], u[32], g[32], us[32], uc[32], gs[32], gc[32];
            snprintf(p, sizeof(p), "%d", (int)self);
            snprintf(u, sizeof(u), "%u", (unsigned)uid);
            snprintf(g, sizeof(g), "%u", (unsigned)gid);
            snprintf(us, sizeof(us), "%lu", ur.start);
            snprintf(uc, sizeof(uc), "%lu", ur.count);
            snprintf(gs, sizeof(gs), "%lu", gr.start);
            snprintf(gc, sizeof(gc), "%lu", gr.count);
            char *uargv[] = {"newuidmap", p, "0", u, "1", "1", us, uc, NULL};
            char *gargv[] = {"newgidmap", p, "0", g, "1", "1", gs, gc, NULL};
            _exit(run_tool(uargv) == 0 && run_tool(gargv) == 0 ? 0 : 1);
        }
    }
    close(go[0]);
    if (unshare(CLONE_NEWUSER) < 0) {
        int saved = errno;
        close(go[1]);
        if (helper > 0)
            while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
                ;
        if (saved == EINVAL)
            return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                                "creating a user namespace (the process is multi-threaded)");
        return mk_error_set(err, MK_ERR_UNSUPPORTED, saved,
                            "user namespaces are not available to unprivileged users (check "
                            "sysctl user.max_user_namespaces and "
                            "kernel.unprivileged_userns_clone)");
    }
    bool mapped = false;
    if (helper > 0) {
        if (write(go[1], "x", 1) == 1) {
            int st;
            while (waitpid(helper, &st, 0) < 0 && errno == EINTR)
                ;
            mapped = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        } else {
            kill(helper, SIGKILL);
            while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    close(go[1]);
    if (!mapped) {
        /* Without newuidmap an unprivileged process may still map its own ids, after
         * giving up setgroups(2) for good. */
        char map[64];
        if (write_proc_file("/proc/self/setgroups", "deny", err) < 0)
            return mk_error_wrap(err, "setting up the user namespace");
        snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
        if (write_proc_file("/proc/self/uid_map", map, err) < 0)
            return mk_error_wrap(err, "setting up the user namespace");
        snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
        if (write_proc_file("/proc/self/gid_map", map, err) < 0)
            return mk_error_wrap(err, "setting up the user namespace");
    }
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
        return mk_error_errno(err, "becoming root in the user namespace");
    if (unshare(CLONE_NEWNS) < 0)
        return mk_error_errno(err, "creating a mount namespace");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return mk_error_errno(err, "making mounts private");
    userns_entered = true;
    userns_single_id = !mapped;
    *ret_single_id = userns_single_id;
    return 0;
}
