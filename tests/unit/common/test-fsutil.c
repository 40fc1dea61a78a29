/* Path resolution inside a root, with openat2 and with the user-space fallback: both must
 * keep every lookup inside the root, whatever symlinks and ".." the tree holds. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
    run("openat2", rootfd);
    mk_fsutil_test_force_fallback(true);
    run("fallback", rootfd);
    mk_fsutil_test_force_fallback(false);

    struct mk_error *err = NULL;
    tap_ok(mk_rm_rf("root", &err) == 0 && access("root", F_OK) < 0, "rm -rf removes the tree");
    tap_ok(access("etc/passwd", F_OK) == 0, "rm -rf did not follow the symlinks out");
    mk_error_free(err);
    close(rootfd);
    return tap_done();
}
