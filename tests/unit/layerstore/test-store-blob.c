/* Blobs and the store layout: digests verified, nothing half-stored, temp entries cleaned. */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/layerstore.h"
#include "tap.h"

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int file_fd(const char *path, const char *content)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
        exit(1);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

int main(void)
{
    tap_tmpdir();
    struct mk_store *st = NULL;
    struct mk_error *err = NULL;
    tap_ok(layerstore_open("store", &st, &err) == 0, "open creates a store");
    struct stat sb;
    tap_ok(stat("store/blobs/sha256", &sb) == 0 && S_ISDIR(sb.st_mode) &&
               stat("store/snapshots", &sb) == 0 && stat("store/tmp", &sb) == 0 &&
               stat("store/lock", &sb) == 0,
           "layout directories and lock exist");
    char *s = NULL;
    mk_read_file_at(AT_FDCWD, "store/oci-layout", 4096, &s, NULL, NULL);
    tap_is_str(s, "{\"imageLayoutVersion\":\"1.0.0\"}", "oci-layout");
    free(s);
    s = NULL;
    mk_read_file_at(AT_FDCWD, "store/index.json", 4096, &s, NULL, NULL);
    tap_ok(s && strstr(s, "\"manifests\":[]") && strstr(s, "\"schemaVersion\":2"),
           "empty index.json");
    free(s);

    char d[MK_DIGEST_SIZE];
    tap_ok(layerstore_blob_put_buf(st, "{}", 2, d, &err) == 0, "put_buf");
    tap_is_str(d, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
               "digest of {}");
    tap_ok(layerstore_blob_exists(st, d), "blob exists");
    tap_ok(layerstore_blob_put_buf(st, "{}", 2, d, &err) == 0, "putting it again is fine");
    char *path = layerstore_blob_path(st, d);
    tap_ok(path && stat(path, &sb) == 0 && sb.st_size == 2, "blob_path names the file");
    free(path);
    tap_ok(layerstore_blob_path(st, "sha256:../../etc") == NULL, "no path for a bad digest");
    char *data = NULL;
    size_t len = 0;
    tap_ok(layerstore_blob_read(st, d, 100, &data, &len, &err) == 0 && len == 2 &&
               strcmp(data, "{}") == 0,
           "blob_read");
    free(data);
    data = NULL;
    tap_ok(layerstore_blob_read(st, d, 1, &data, &len, &err) < 0, "blob_read past max fails");
    mk_error_free(err);
    err = NULL;

    int fd = file_fd("in", "hello blob\n");
    char d2[MK_DIGEST_SIZE];
    uint64_t size = 0;
    const char *wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    tap_ok(layerstore_blob_put_fd(st, fd, wrong, d2, &size, &err) < 0 && err &&
               err->code == MK_ERR_DIGEST,
           "put_fd with a wrong digest fails with MK_ERR_DIGEST");
    mk_error_free(err);
    err = NULL;
    tap_ok(!layerstore_blob_exists(st, wrong), "mismatch stores nothing");
    tap_is_int(count_entries("store/blobs/sha256"), 1, "only the first blob is stored");
    tap_is_int(count_entries("store/tmp"), 0, "no temp file left after a mismatch");
    lseek(fd, 0, SEEK_SET);
    char want[MK_DIGEST_SIZE];
    mk_sha256_buffer("hello blob\n", 11, want);
    tap_ok(layerstore_blob_put_fd(st, fd, want, d2, &size, &err) == 0, "put_fd with the right "
                                                                       "digest");
    tap_is_str(d2, want, "put_fd digest");
    tap_is_int(size, 11, "put_fd size");
    tap_is_int(count_entries("store/tmp"), 0, "no temp file left after a put");
    close(fd);
    int bfd = layerstore_blob_open(st, d2, &err);
    char buf[32] = {0};
    tap_ok(bfd >= 0 && read(bfd, buf, sizeof(buf)) == 11 && strcmp(buf, "hello blob\n") == 0,
           "blob_open reads the content");
    if (bfd >= 0)
        close(bfd);
    tap_ok(layerstore_blob_open(st, wrong, &err) < 0 && err->code == MK_ERR_NOT_FOUND,
           "blob_open of a missing blob: MK_ERR_NOT_FOUND");
    mk_error_free(err);
    err = NULL;

    /* A corrupted blob is refused by blob_read. */
    path = layerstore_blob_path(st, d2);
    chmod(path, 0644);
    close(file_fd(path, "tampered\n"));
    free(path);
    tap_ok(layerstore_blob_read(st, d2, 100, &data, &len, &err) < 0 && err->code == MK_ERR_DIGEST,
           "blob_read detects a corrupted blob");
    mk_error_free(err);
    err = NULL;

    /* Temp dirs: live ones (locked by a handle) survive another open, stale ones go. */
    char *live = layerstore_tmpdir(st, "live-", &err);
    tap_ok(live && stat(live, &sb) == 0 && S_ISDIR(sb.st_mode), "tmpdir created");
    mkdir("store/tmp/stale-dir", 0700);
    close(file_fd("store/tmp/stale-dir/f", "x"));
    close(file_fd("store/tmp/stale-file", "x"));
    struct mk_store *st2 = NULL;
    tap_ok(layerstore_open("store", &st2, &err) == 0, "second open");
    tap_ok(stat("store/tmp/stale-dir", &sb) < 0 && stat("store/tmp/stale-file", &sb) < 0,
           "stale temp entries removed at open");
    tap_ok(live && stat(live, &sb) == 0, "a live temp dir survives another open");
    layerstore_free(st2);
    tap_ok(layerstore_tmpdir_remove(st, live, &err) == 0 && stat(live, &sb) < 0, "tmpdir_remove");
    free(live);
    live = layerstore_tmpdir(st, "gone-", &err);
    layerstore_free(st);
    st = NULL;
    tap_ok(layerstore_open("store", &st, &err) == 0 && live && stat(live, &sb) < 0,
           "a temp dir of a closed handle is stale");
    free(live);
    layerstore_free(st);

    tap_ok(strcmp(mk_host_arch(), "unknown") != 0, "host arch is known");
    return tap_done();
}
