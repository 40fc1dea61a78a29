/* Rootless detection: mapped root in a user namespace is not real root, so layers holding
 * device nodes and setuid files still import there (without those). */
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"
#include "tap.h"

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    int r = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
    close(fd);
    return r;
}

/* Child: enters a user namespace mapping only uid/gid 0 and imports layer.tar there.
 * Exit 0 = rootless detected and import fine; 10+ = which check failed. */
static int child(void)
{
    if (unshare(CLONE_NEWUSER) < 0)
        return 77;
    if (write_file("/proc/self/setgroups", "deny") < 0 ||
        write_file("/proc/self/uid_map", "0 0 1") < 0 ||
        write_file("/proc/self/gid_map", "0 0 1") < 0)
        return 77;
    if (geteuid() != 0)
        return 10;
    if (!ls_rootless())
        return 11;
    struct mk_store *st = NULL;
    struct mk_error *err = NULL;
    if (layerstore_open("store", &st, &err) < 0)
        return 12;
    struct mk_image *img = NULL;
    if (layerstore_import(st, "layer.tar", "dev:1", &img, &err) < 0) {
        fprintf(stderr, "# import: %s\n", err->msg);
        return 13;
    }
    char chain[MK_DIGEST_SIZE];
    layerstore_image_chain_id(img, 1, chain);
    char *snap = layerstore_snapshot_path(st, chain);
    char *p = mk_xasprintf("%s/suid", snap);
    struct stat sb;
    if (stat(p, &sb) < 0 || (sb.st_mode & S_ISUID))
        return 14;
    free(p);
    free(snap);
    layerstore_image_free(img);
    layerstore_free(st);
    return 0;
}

int main(void)
{
    tap_tmpdir();
    char *map = NULL;
    bool init_root = geteuid() == 0 &&
                     mk_read_file_at(AT_FDCWD, "/proc/self/uid_map", 4096, &map, NULL, NULL) == 0 &&
                     strstr(map, "4294967295");
    free(map);
    if (!init_root) {
        tap_skip("needs real root in the initial user namespace");
        return tap_done();
    }
    tap_ok(!ls_rootless(), "real root is not rootless");
    mkdir("src", 0755);
    int fd = open("src/suid", O_WRONLY | O_CREAT, 04755);
    close(fd);
    chmod("src/suid", 04755);
    tap_ok(mknod("src/null", S_IFCHR | 0666, makedev(1, 3)) == 0, "made a device node to pack");
    char *const tar_argv[] = {"tar", "--numeric-owner", "-cf", "layer.tar", "-C", "src", ".", NULL};
    tap_ok(run(tar_argv) == 0, "packed a layer with a device and a setuid file");
    pid_t pid = fork();
    if (pid == 0)
        _exit(child());
    int status = 0;
    waitpid(pid, &status, 0);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc == 77) {
        tap_skip("user namespaces (kernel) not available");
        return tap_done();
    }
    tap_is_int(rc, 0, "mapped root in a userns is rootless and imports the layer (no setuid)");
    return tap_done();
}
