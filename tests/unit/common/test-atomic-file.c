/* Atomic output files: the content appears whole under the target's name or not at all, a
 * symlink at the target's name is replaced rather than followed, and nothing is left behind
 * by a write that is abandoned or fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
    return tap_done();
}
