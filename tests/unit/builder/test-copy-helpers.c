/* COPY's helpers: --chmod values (octal and chmod(1) symbolic) and the directory creation
 * COPY, WORKDIR and VOLUME share, which follows symlinks (dangling ones too) inside the root. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "tap.h"

static void chmod_case(const char *spec, mode_t cur, bool dir, int want)
{
    unsigned got = 0;
    int r = mk_chmod_apply(spec, cur, dir, &got);
    if (want < 0)
        tap_ok(r < 0, "--chmod=%s is refused", spec);
    else
        tap_ok(r == 0 && got == (unsigned)want, "--chmod=%s on %s %o gives %o (got %o)", spec,
               dir ? "dir" : "file", (unsigned)cur, (unsigned)want, got);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int main(void)
{
    chmod_case("777", 0644, false, 0777);
    chmod_case("0755", 0600, false, 0755);
    chmod_case("u=rwx,go=rx", 0644, false, 0755);
    chmod_case("a+x,o-r", 0644, false, 0751);
    chmod_case("u+rwX,g=u-w,o=", 0755, true, 0750);
    chmod_case("u+rwX,g=u-w,o=", 0644, false, 0640);
    chmod_case("+x", 0644, false, 0755);
    chmod_case("g+s,o+t", 0755, true, 03755);
    chmod_case("u+z", 0644, false, -1);
    chmod_case("u+x,", 0644, false, -1);
    chmod_case("", 0644, false, -1);
    chmod_case("88", 0644, false, -1);
    chmod_case("07777", 0644, false, -1);

    tap_tmpdir();
    mkdir("root", 0755);
    mkdir("outside", 0755);
    int root = open("root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct mk_error *err = NULL;
    bool created = false;

    /* /blah -> /test-log -> /data/log (missing): VOLUME /blah/test. */
    mkdir("root/data", 0755);
    symlink("/test-log", "root/blah");
    symlink("/data/log", "root/test-log");
    int fd = builder_mkdir_follow(root, "/blah/test", 0755, 0, 0, &created, &err);
    tap_ok(fd >= 0 && created && is_dir("root/data/log/test"),
           "dangling symlink chain: the directory is created at the target");
    tap_ok(readlink("root/blah", (char[64]){0}, 64) > 0, "the symlinks stay symlinks");
    if (fd >= 0)
        close(fd);
    fd = builder_mkdir_follow(root, "/blah/test", 0755, 0, 0, &created, &err);
    tap_ok(fd >= 0 && !created, "an existing directory: nothing created");
    if (fd >= 0)
        close(fd);

    symlink("../log", "root/rel");
    fd = builder_mkdir_follow(root, "/rel/x", 0755, 0, 0, NULL, &err);
    tap_ok(fd >= 0 && is_dir("root/log/x"), "relative symlink resolved from its directory");
    if (fd >= 0)
        close(fd);

    symlink("../../../../outside", "root/up");
    fd = builder_mkdir_follow(root, "/up/evil", 0755, 0, 0, NULL, &err);
    tap_ok(fd >= 0 && is_dir("root/outside/evil") && !is_dir("outside/evil"),
           "\"..\" in a symlink stops at the root");
    if (fd >= 0)
        close(fd);

    symlink("/loop", "root/loop");
    fd = builder_mkdir_follow(root, "/loop/test", 0755, 0, 0, NULL, &err);
    tap_ok(fd < 0 && err && err->sys_errno == ELOOP, "a symlink to itself is ELOOP");
    mk_error_free(err);
    err = NULL;

    close(creat("root/file", 0644));
    fd = builder_mkdir_follow(root, "/file/sub", 0755, 0, 0, NULL, &err);
    tap_ok(fd < 0 && err && err->sys_errno == ENOTDIR, "a file in the way is ENOTDIR");
    mk_error_free(err);
    close(root);
    return tap_done();
}
