/* ADD's archive extraction (layerstore_extract): compression detected from content, files
 * that are not archives left to the caller, and no entry or planted symlink writing outside
 * the root it is given. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/layerstore.h"
#include "tap.h"

/* Entries as "TYPE PATH [TARGET|DATA]" lines: f file, d directory, l symlink. */
static void write_tar(const char *out, int filter, const char *const *lines)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter != ARCHIVE_FILTER_NONE)
        archive_write_add_filter(a, filter);
    archive_write_open_filename(a, out);
    for (; *lines; lines++) {
        char type = (*lines)[0];
        const char *path = *lines + 2;
        const char *sp = strchr(path, ' ');
        char name[256];
        snprintf(name, sizeof(name), "%.*s", sp ? (int)(sp - path) : (int)strlen(path), path);
        const char *extra = sp ? sp + 1 : "";
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        archive_entry_set_uid(e, 2510);
        archive_entry_set_gid(e, 2516);
        archive_entry_set_perm(e, type == 'd' ? 0750 : 0640);
        archive_entry_set_filetype(e, type == 'd' ? AE_IFDIR : type == 'l' ? AE_IFLNK : AE_IFREG);
        if (type == 'l')
            archive_entry_set_symlink(e, extra);
        if (type == 'f')
            archive_entry_set_size(e, (la_int64_t)strlen(extra));
        archive_write_header(a, e);
        if (type == 'f')
            archive_write_data(a, extra, strlen(extra));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static int extract(const char *tar, int rootfd, const struct layerstore_extract_opts *o,
                   bool *extracted, struct mk_error **err)
{
    int fd = open(tar, O_RDONLY | O_CLOEXEC);
    int r = layerstore_extract(fd, rootfd, "/dst", o, extracted, err);
    close(fd);
    return r;
}

static char *slurp(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

int main(void)
{
    const char *tmp = tap_tmpdir();
    mkdir("root", 0755);
    mkdir("canary", 0755);
    int rootfd = open("root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct mk_error *err = NULL;
    bool ex = false;

    static const char *const plain[] = {"d testdir/", "f testdir/testfile.txt hello\n", NULL};
    static const struct {
        int filter;
        const char *name;
    } filters[] = {{ARCHIVE_FILTER_NONE, "plain"},
                   {ARCHIVE_FILTER_GZIP, "gzip"},
                   {ARCHIVE_FILTER_BZIP2, "bzip2"},
                   {ARCHIVE_FILTER_XZ, "xz"},
                   {ARCHIVE_FILTER_ZSTD, "zstd"}};
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        write_tar("a.tar", filters[i].filter, plain);
        ex = false;
        int r = extract("a.tar", rootfd, NULL, &ex, &err);
        tap_ok(r == 0 && ex, "%s tar is extracted", filters[i].name);
        tap_is_str(slurp("root/dst/testdir/testfile.txt"), "hello\n", "%s: file content",
                   filters[i].name);
        unlink("root/dst/testdir/testfile.txt");
        rmdir("root/dst/testdir");
    }
    struct stat st;
    write_tar("a.tar", ARCHIVE_FILTER_GZIP, plain);
    tap_ok(extract("a.tar", rootfd, NULL, &ex, &err) == 0 && stat("root/dst/testdir", &st) == 0 &&
               (st.st_mode & 07777) == 0750 && st.st_uid == 2510 && st.st_gid == 2516,
           "modes and owners come from the archive");
    struct layerstore_extract_opts o = {.chown = true, .uid = 1, .gid = 2};
    tap_ok(extract("a.tar", rootfd, &o, &ex, &err) == 0 &&
               stat("root/dst/testdir/testfile.txt", &st) == 0 && st.st_uid == 1 && st.st_gid == 2,
           "chown option overrides the archive's owners");

    FILE *f = fopen("text.txt", "w");
    fputs("just text, not an archive\n", f);
    fclose(f);
    ex = true;
    tap_ok(extract("text.txt", rootfd, NULL, &ex, &err) == 0 && !ex,
           "a file that is not an archive is reported as such");

    static const char *const dotdot[] = {"f ../../canary/evil x", NULL};
    write_tar("a.tar", ARCHIVE_FILTER_NONE, dotdot);
    tap_ok(extract("a.tar", rootfd, NULL, &ex, &err) < 0 && err, "\"..\" entries are refused");
    mk_error_free(err);
    err = NULL;
    tap_ok(access("canary/evil", F_OK) < 0, "nothing written outside the root by \"..\"");

    /* The host path of the canary, as a symlink the archive plants and then writes through. */
    char first[4200];
    snprintf(first, sizeof(first), "l link %s/canary", tmp);
    const char *planted[] = {first, "f link/evil x", NULL};
    write_tar("a.tar", ARCHIVE_FILTER_NONE, planted);
    /* Resolved inside the root the link dangles: refusing is as good as writing inside. */
    extract("a.tar", rootfd, NULL, &ex, &err);
    mk_error_free(err);
    err = NULL;
    tap_ok(access("canary/evil", F_OK) < 0, "a planted absolute symlink stays inside the root");
    close(rootfd);
    return tap_done();
}
