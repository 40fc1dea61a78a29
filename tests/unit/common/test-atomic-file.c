/* Atomic output files: the content appears whole under the target's name or not at all, a
 * symlink at the target's name is replaced rather than followed, and nothing is left behind
 * by a write that is abandoned or fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomic-file.h"
#include "common/fsutil.h"
#include "tap.h"

static const char *slurp(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    return buf;
}

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    if (d)
        closedir(d);
    return n;
}

/* Writes data through an atomic file at path, a FIFO a child reads into got: whether the
 * writer committed and the child read all of it. */
static bool write_to_fifo(const char *path, const char *got)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10); /* no writer ever comes when the FIFO was replaced */
        int in = open(path, O_RDONLY | O_CLOEXEC);
        int out = open(got, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char buf[64];
        ssize_t n;
        while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                _exit(1);
        _exit(in >= 0 && out >= 0 ? 0 : 1);
    }
    struct mk_atomic_file f;
    struct mk_error *err = NULL;
    bool ok = mk_atomic_file_init(&f, AT_FDCWD, path, 0644, &err) == 0 &&
              write(f.fd, "piped\n", 6) == 6 && mk_atomic_file_commit_unsynced(&f, &err) == 0;
    mk_atomic_file_release(&f);
    mk_error_free(err);
    int status = 0;
    return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0 && ok;
}

/* A device or FIFO at the target's name is written in place, not replaced; a symlink to
 * one is followed only when its owner is root or the caller. */
static void in_place_tests(void)
{
    mkdir("dev", 0755);
    struct stat st;
    tap_ok(mkfifo("dev/fifo", 0600) == 0 && write_to_fifo("dev/fifo", "dev/got"),
           "a FIFO as the target: written in place");
    tap_ok(lstat("dev/fifo", &st) == 0 && S_ISFIFO(st.st_mode), "it is still the FIFO");
    tap_is_str(slurp("dev/got"), "piped\n", "and its reader got the bytes");
    tap_ok(symlink("fifo", "dev/out") == 0 && write_to_fifo("dev/out", "dev/got2"),
           "a symlink of the caller's to the FIFO: written through");
    tap_ok(lstat("dev/out", &st) == 0 && S_ISLNK(st.st_mode), "the symlink stays");
    tap_is_str(slurp("dev/got2"), "piped\n", "its reader got the bytes");
    tap_is_int(count_entries("dev"), 4, "no temp file beside them");
    if (geteuid() != 0) {
        tap_skip("a character device at the target's name: needs root for mknod");
        return;
    }
    struct mk_error *err = NULL;
    tap_ok(mknod("dev/null", S_IFCHR | 0666, makedev(1, 3)) == 0 &&
               mk_write_file_atomic(AT_FDCWD, "dev/null", "gone\n", 5, 0644, &err) == 0,
           "save -o /dev/null: written to the device");
    tap_ok(lstat("dev/null", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
           "which is still the null device, not a file with the archive");
    mk_error_free(err);
}

int main(void)
{
    tap_tmpdir();
    mkdir("out", 0755);
    struct mk_error *err = NULL;

    tap_ok(mk_write_file_atomic(AT_FDCWD, "out/a", "one\n", 4, 0600, &err) == 0,
           "write a new file");
    tap_is_str(slurp("out/a"), "one\n", "with its content");
    struct stat st;
    tap_ok(stat("out/a", &st) == 0 && (st.st_mode & 0777) == 0600, "with its mode");
    tap_ok(mk_write_file_atomic(AT_FDCWD, "out/a", "two\n", 4, 0600, &err) == 0, "replace it");
    tap_is_str(slurp("out/a"), "two\n", "with the new content");
    tap_is_int(count_entries("out"), 1, "no temp file left beside it");

    /* A symlink at the target's own name: replaced, never written through. */
    int fd = open("victim", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    tap_ok(fd >= 0 && write(fd, "keep\n", 5) == 5, "a victim file");
    close(fd);
    tap_ok(symlink("../victim", "out/link") == 0, "a symlink to it where the output goes");
    tap_ok(mk_write_file_atomic(AT_FDCWD, "out/link", "new\n", 4, 0644, &err) == 0,
           "write over the symlink");
    tap_is_str(slurp("victim"), "keep\n", "the victim is unchanged");
    tap_ok(lstat("out/link", &st) == 0 && S_ISREG(st.st_mode), "the link became a file");
    tap_is_str(slurp("out/link"), "new\n", "holding the new content");

    /* Streaming, abandoned before commit: nothing appears, nothing is left. */
    struct mk_atomic_file f;
    tap_ok(mk_atomic_file_init(&f, AT_FDCWD, "out/b", 0644, &err) == 0, "start a streamed file");
    tap_ok(write(f.fd, "partial", 7) == 7, "write part of it");
    tap_is_int(count_entries("out"), 3, "only its temp file is visible meanwhile");
    mk_atomic_file_release(&f);
    tap_ok(access("out/b", F_OK) < 0 && errno == ENOENT, "abandoned: the target never appears");
    tap_is_int(count_entries("out"), 2, "and the temp file is gone");
    mk_atomic_file_release(&f); /* released twice: a no-op */

    /* Streaming, committed. */
    tap_ok(mk_atomic_file_init(&f, AT_FDCWD, "out/c", 0644, &err) == 0 &&
               write(f.fd, "whole\n", 6) == 6 && mk_atomic_file_commit(&f, &err) == 0,
           "a streamed file committed");
    mk_atomic_file_release(&f);
    tap_is_str(slurp("out/c"), "whole\n", "appears whole");
    tap_is_int(count_entries("out"), 3, "with nothing beside it");

    /* Failures. */
    tap_ok(mk_write_file_atomic(AT_FDCWD, "missing/x", "x", 1, 0644, &err) < 0 && err,
           "a missing directory fails");
    mk_error_free(err);
    err = NULL;
    tap_ok(mk_atomic_file_init(&f, AT_FDCWD, "out/", 0644, &err) < 0 && err && f.fd < 0,
           "a path without a file name fails, f released");
    mk_error_free(err);
    err = NULL;
    tap_ok(mkdir("out/d", 0755) == 0 && mk_atomic_file_init(&f, AT_FDCWD, "out/d", 0644, &err) == 0,
           "start a file whose target is a directory");
    tap_ok(mk_atomic_file_commit(&f, &err) < 0 && err, "its commit fails");
    mk_atomic_file_release(&f);
    mk_error_free(err);
    tap_is_int(count_entries("out"), 4, "and leaves no temp file");
    in_place_tests();
    return tap_done();
}
