/* Path resolution inside a root, with openat2 and with the user-space fallback: both must
 * keep every lookup inside the root, whatever symlinks and ".." the tree holds, and openat2's
 * failures (injected) must be retried, walked around or returned as each calls for. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "tap.h"

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(content, f);
        fclose(f);
    }
}

/* Reads the file path resolves to inside root ("" when it cannot be opened). */
static const char *read_in_root(int rootfd, const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    int fd = mk_open_in_root(rootfd, path, O_RDONLY, 0, NULL);
    if (fd < 0)
        return "";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    return buf;
}

static void run(const char *mode, int rootfd)
{
    tap_is_str(read_in_root(rootfd, "/etc/passwd"), "inside\n", "%s: absolute path stays in root",
               mode);
    tap_is_str(read_in_root(rootfd, "../../../etc/passwd"), "inside\n", "%s: .. clamps at root",
               mode);
    tap_is_str(read_in_root(rootfd, "abs/etc/passwd"), "inside\n",
               "%s: absolute symlink to / resolves in root", mode);
    tap_is_str(read_in_root(rootfd, "rel/etc/passwd"), "inside\n",
               "%s: relative symlink escaping resolves in root", mode);
    tap_is_str(read_in_root(rootfd, "leaf"), "inside\n",
               "%s: leaf symlink to /etc/passwd resolves in root", mode);
    tap_is_str(read_in_root(rootfd, "dir/sub/../file"), "f\n", "%s: .. inside the tree", mode);
    tap_is_str(read_in_root(rootfd, "./dir//file"), "f\n", "%s: . and // components", mode);
    errno = 0;
    int fd = mk_open_in_root(rootfd, "loop", O_RDONLY, 0, NULL);
    tap_ok(fd < 0 && errno == ELOOP, "%s: symlink loop fails with ELOOP", mode);
    if (fd >= 0)
        close(fd);
    fd = mk_open_in_root(rootfd, "leaf", O_RDONLY | O_NOFOLLOW | O_PATH, 0, NULL);
    struct stat st;
    tap_ok(fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode),
           "%s: O_NOFOLLOW keeps a leaf link", mode);
    if (fd >= 0)
        close(fd);

    char made[64];
    snprintf(made, sizeof(made), "abs/new-%s/a/b", mode);
    struct mk_error *err = NULL;
    fd = mk_mkdir_p_in_root(rootfd, made, 0755, &err);
    tap_ok(fd >= 0, "%s: mkdir -p through an absolute symlink", mode);
    if (fd >= 0)
        close(fd);
    char inside[64];
    snprintf(inside, sizeof(inside), "root/new-%s/a/b", mode);
    tap_ok(access(inside, F_OK) == 0, "%s: ... created inside the root", mode);
    mk_error_free(err);
    err = NULL;
    char *name = NULL;
    fd = mk_open_parent_in_root(rootfd, "rel/x/y", true, &name, &err);
    tap_ok(fd >= 0 && name && strcmp(name, "y") == 0, "%s: open_parent creates parents in root",
           mode);
    tap_ok(access("root/x", F_OK) == 0, "%s: ... the parent is inside the root", mode);
    if (fd >= 0)
        close(fd);
    free(name);
    mk_error_free(err);
    rmdir("root/x");
}

/* The errors put in place of openat2's answer: one per call, then 0 (the real call). */
static int inject_errs[64], inject_n, inject_calls;

static int inject(void)
{
    return inject_calls < inject_n ? inject_errs[inject_calls++] : (inject_calls++, 0);
}

static void inject_set(int err, int times)
{
    inject_calls = 0;
    inject_n = times;
    for (int i = 0; i < times; i++)
        inject_errs[i] = err;
    mk_fsutil_test_inject_openat2(inject);
}

/* How openat2's failures are met: EAGAIN retried (a rename raced a lookup through ".."),
 * the errors a seccomp filter or an older kernel gives walked around, real answers kept. */
static void test_openat2_errors(int rootfd)
{
    inject_set(0, 0);
    tap_is_str(read_in_root(rootfd, "dir/sub/../file"), "f\n", "openat2 is there");
    if (inject_calls != 1) {
        tap_skip("openat2 not used on this kernel (%d calls)", inject_calls);
        mk_fsutil_test_inject_openat2(NULL);
        return;
    }

    inject_set(EAGAIN, 3);
    tap_is_str(read_in_root(rootfd, "dir/sub/../file"), "f\n", "EAGAIN three times: retried");
    tap_is_int(inject_calls, 4, "... by openat2 itself, on the fourth call");

    inject_set(EAGAIN, 64);
    tap_is_str(read_in_root(rootfd, "rel/etc/passwd"), "inside\n",
               "EAGAIN every time: resolved in the root all the same");
    tap_ok(inject_calls > 1 && inject_calls < 64,
           "... after a bounded number of tries (%d), by the walk", inject_calls);

    static const int fallback[] = {EPERM, EINVAL, E2BIG};
    for (size_t i = 0; i < MK_ARRAY_SIZE(fallback); i++) {
        inject_set(fallback[i], 1);
        tap_is_str(read_in_root(rootfd, "abs/etc/passwd"), "inside\n",
                   "%s from openat2: the walk resolves in the root", strerror(fallback[i]));
        tap_is_int(inject_calls, 1, "... without retrying openat2");
        inject_set(0, 0);
        read_in_root(rootfd, "dir/file");
        tap_is_int(inject_calls, 1, "... which the next open uses again");
    }

    inject_set(ENOENT, 1);
    errno = 0;
    int fd = mk_open_in_root(rootfd, "dir/file", O_RDONLY, 0, NULL);
    tap_ok(fd < 0 && errno == ENOENT && inject_calls == 1,
           "another error (ENOENT) is the answer: not retried, not walked around");
    if (fd >= 0)
        close(fd);

    inject_set(ENOSYS, 1);
    tap_is_str(read_in_root(rootfd, "leaf"), "inside\n", "ENOSYS: the walk resolves in the root");
    read_in_root(rootfd, "dir/file");
    tap_is_int(inject_calls, 1, "... and openat2 is not called again");
    mk_fsutil_test_force_fallback(false);
    mk_fsutil_test_inject_openat2(NULL);
}

/* mk_llistxattrat: a file with and without xattrs, a symlink to the first (itself, not
 * followed); then the same with listxattrat refused as a kernel before 6.13 refuses it
 * (ENOSYS, by a seccomp filter in a child), where the /proc path answers instead. */
static int xattr_answers(int dfd)
{
    char list[64];
    ssize_t a = mk_llistxattrat(dfd, "xa", list, sizeof(list));
    bool named = a == 7 && memcmp(list, "user.k", 7) == 0;
    return (named ? 1 : 0) | (mk_llistxattrat(dfd, "xa", NULL, 0) == 7 ? 2 : 0) |
           (mk_llistxattrat(dfd, "plain", NULL, 0) == 0 ? 4 : 0) |
           (mk_llistxattrat(dfd, "xlink", NULL, 0) == 0 ? 8 : 0) |
           (mk_llistxattrat(dfd, "missing", NULL, 0) < 0 && errno == ENOENT ? 16 : 0);
}

static void test_llistxattrat(void)
{
    mkdir("xattrs", 0755);
    write_file("xattrs/xa", "x");
    write_file("xattrs/plain", "p");
    symlink("xa", "xattrs/xlink");
    if (setxattr("xattrs/xa", "user.k", "v", 1, 0) < 0) {
        tap_skip("no user xattrs here: %s", strerror(errno));
        return;
    }
    int dfd = open("xattrs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    tap_is_int(xattr_answers(dfd), 31, "llistxattrat: list, size, none, a symlink itself, ENOENT");
    pid_t pid = fork();
    if (pid == 0) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), 465, 0) < 0 ||
            seccomp_load(ctx) < 0)
            _exit(99);
        errno = 0;
        bool refused = syscall(465, dfd, "xa", AT_SYMLINK_NOFOLLOW, NULL, 0) < 0 && errno == ENOSYS;
        _exit(refused ? xattr_answers(dfd) : 98);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    tap_is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 31,
               "without listxattrat (ENOSYS): the same answers by /proc/self/fd");
    close(dfd);
}

int main(void)
{
    tap_tmpdir();
    mkdir("root", 0755);
    mkdir("root/etc", 0755);
    mkdir("root/dir", 0755);
    mkdir("root/dir/sub", 0755);
    mkdir("etc", 0755);
    write_file("root/etc/passwd", "inside\n");
    write_file("etc/passwd", "OUTSIDE\n");
    write_file("root/dir/file", "f\n");
    symlink("/", "root/abs");
    symlink("../../../../../../..", "root/rel");
    symlink("/etc/passwd", "root/leaf");
    symlink("loop", "root/loop");
    int rootfd = open("root", O_PATH | O_DIRECTORY);
    inject_set(0, 0);
    run("openat2", rootfd);
    tap_ok(inject_calls > 0, "openat2: resolved by openat2 (%d calls)", inject_calls);
    mk_fsutil_test_force_fallback(true);
    inject_set(0, 0);
    run("fallback", rootfd);
    tap_is_int(inject_calls, 0, "fallback: openat2 never called");
    mk_fsutil_test_force_fallback(false);
    test_openat2_errors(rootfd);
    test_llistxattrat();

    struct mk_error *err = NULL;
    tap_ok(mk_rm_rf("root", &err) == 0 && access("root", F_OK) < 0, "rm -rf removes the tree");
    tap_ok(access("etc/passwd", F_OK) == 0, "rm -rf did not follow the symlinks out");
    mk_error_free(err);
    close(rootfd);
    return tap_done();
}
