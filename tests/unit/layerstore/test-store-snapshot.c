/* Layers and snapshots: commit an upperdir, import a (compressed) tar, unpack missing
 * snapshots from blobs, import a rootfs directory as a tagged image. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "layerstore/layerstore.h"
#include "tap.h"
#include "store-fixture.h"

static void put(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
        exit(1);
    close(fd);
}

static bool has_file(const char *dir, const char *name, const char *content)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *s = NULL;
    if (mk_read_file_at(AT_FDCWD, path, 4096, &s, NULL, NULL) < 0)
        return false;
    bool ok = strcmp(s, content) == 0;
    free(s);
    return ok;
}

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

/* import of a directory and of a tarball (l2: the layer the tarball gave before) */
static void test_import(struct mk_store *st, const struct mk_layer_desc *l2)
{
    struct mk_error *err = NULL;
    struct mk_image *img = NULL;
    int r;
    mkdir("rootfs", 0755);
    mkdir("rootfs/bin", 0755);
    put("rootfs/bin/tool", "#!/bin/sh\n");
    r = layerstore_import(st, "rootfs", "imp", &img, &err);
    if (r < 0)
        tap_diag("import: %s", err->msg);
    tap_ok(r == 0 && img->n_layers == 1 && img->tags.n == 1 &&
               strcmp(img->tags.v[0], "imp:latest") == 0,
           "import a directory as imp:latest");
    tap_ok(r == 0 && strcmp(img->config.os, "linux") == 0 && img->config.n_history == 1 &&
               strcmp(img->config.history[0].created_by, "mkimg import rootfs") == 0 &&
               !img->config.has_cmd && img->config.created,
           "imported config: os, history, no Cmd, created");
    char chain[MK_DIGEST_SIZE];
    if (r == 0) {
        layerstore_image_chain_id(img, 1, chain);
        char *sp = layerstore_snapshot_path(st, chain);
        tap_ok(has_file(sp, "bin/tool", "#!/bin/sh\n"), "imported dir has its snapshot");
        free(sp);
    }
    tap_ok(has_file("rootfs", "bin/tool", "#!/bin/sh\n"), "the source directory is untouched");
    layerstore_image_free(img);
    img = NULL;
    r = layerstore_import(st, "layer.tar.gz", "127.0.0.1:5000/x/y:z", &img, &err);
    tap_ok(r == 0 && strcmp(img->layers[0].diff_id, l2->diff_id) == 0,
           "import a tarball gives the same layer");
    layerstore_image_free(img);
    img = NULL;
    tap_ok(layerstore_import(st, "nonexistent", "x", &img, &err) < 0 &&
               err->code == MK_ERR_NOT_FOUND,
           "import of a missing path fails");
    mk_error_free(err);
    err = NULL;
    tap_ok(layerstore_import(st, "rootfs", "Bad:name", &img, &err) < 0 &&
               err->code == MK_ERR_INVALID,
           "import with a bad name fails before any work");
    mk_error_free(err);
    err = NULL;
    put("garbage", "this is not a tar archive at all, not even close................");
    tap_ok(layerstore_import(st, "garbage", "g", &img, &err) < 0, "import of a non-tar fails");
    mk_error_free(err);
    err = NULL;
    tap_is_int(count_entries("store/tmp"), 0, "no temp entries left after failures");
}

/* Three processes importing the same new layer at once: all succeed, one snapshot. */
static void test_race(struct mk_store *st)
{
    struct mk_error *err = NULL;
    char chain[MK_DIGEST_SIZE];
    mkdir("rootfs/race", 0755);
    put("rootfs/race/f", "race\n");
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct mk_store *cs = NULL;
            struct mk_image *ci = NULL;
            char ref[32];
            snprintf(ref, sizeof(ref), "race:%d", i);
            if (layerstore_open("store", &cs, NULL) < 0 ||
                layerstore_import(cs, "rootfs", ref, &ci, NULL) < 0)
                _exit(1);
            layerstore_image_free(ci);
            layerstore_free(cs);
            _exit(0);
        }
    }
    int all_ok = 1;
    for (int i = 0; i < 3; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        all_ok &= WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    tap_ok(all_ok, "concurrent imports of one layer all succeed");
    struct mk_image *r0 = NULL;
    if (layerstore_image_get(st, "race:0", &r0, &err) == 0) {
        layerstore_image_chain_id(r0, 1, chain);
        char *sp = layerstore_snapshot_path(st, chain);
        tap_ok(has_file(sp, "race/f", "race\n"), "the shared snapshot is complete");
        free(sp);
        layerstore_image_free(r0);
    } else {
        tap_ok(0, "race:0 exists");
        mk_error_free(err);
        err = NULL;
    }
    tap_is_int(count_entries("store/tmp"), 0, "no temp entries left after the race");
}

int main(void)
{
    struct mk_store *st = fixture_store();
    struct mk_error *err = NULL;

    /* commit_dir: an upperdir inside a store temp dir becomes layer + snapshot */
    char *tmp = layerstore_tmpdir(st, "build-", &err);
    char *upper = mk_xasprintf("%s/upper", tmp);
    mkdir(upper, 0755);
    char *p = mk_xasprintf("%s/etc", upper);
    mkdir(p, 0755);
    free(p);
    p = mk_xasprintf("%s/etc/hostname", upper);
    put(p, "box\n");
    free(p);
    struct mk_layer_desc l1;
    char chain1[MK_DIGEST_SIZE];
    int r = layerstore_layer_commit_dir(st, upper, NULL, "", MK_EPOCH_NONE, &l1, chain1, &err);
    if (r < 0)
        tap_diag("commit_dir: %s", err->msg);
    tap_ok(r == 0, "commit_dir");
    tap_ok(r == 0 && strcmp(l1.digest, l1.diff_id) == 0 && strcmp(chain1, l1.diff_id) == 0 &&
               strcmp(l1.media_type, MK_MEDIA_OCI_LAYER) == 0 && l1.size >= 1024,
           "first layer: digest == diff_id == chain id, plain tar");
    tap_ok(layerstore_blob_exists(st, l1.digest), "layer blob stored");
    char *snap1 = layerstore_snapshot_path(st, chain1);
    tap_ok(layerstore_snapshot_exists(st, chain1) && has_file(snap1, "etc/hostname", "box\n"),
           "upperdir renamed into the snapshot");
    struct stat sb;
    tap_ok(stat(upper, &sb) < 0, "upperdir is gone");
    free(upper);
    layerstore_tmpdir_remove(st, tmp, NULL);
    free(tmp);

    /* a second layer on top, from a gzip tar made by tar(1) */
    mkdir("src", 0755);
    put("src/hello.txt", "hi\n");
    char *const tar_argv[] = {"tar", "--numeric-owner", "-czf", "layer.tar.gz", "-C", "src", ".",
                              NULL};
    if (run(tar_argv) != 0)
        return 1;
    int fd = open("layer.tar.gz", O_RDONLY);
    struct mk_layer_desc l2;
    char chain2[MK_DIGEST_SIZE], want_chain[MK_DIGEST_SIZE];
    r = layerstore_layer_import_tar(st, fd, chain1, &l2, chain2, &err);
    close(fd);
    if (r < 0)
        tap_diag("import_tar: %s", err->msg);
    tap_ok(r == 0, "import a gzip layer tar");
    mk_chain_id(chain1, l2.diff_id, want_chain);
    tap_is_str(chain2, want_chain, "chain id of the second layer");
    char *bp = layerstore_blob_path(st, l2.digest);
    char got[MK_DIGEST_SIZE];
    uint64_t size = 0;
    fd = open(bp, O_RDONLY);
    tap_ok(fd >= 0 && mk_sha256_fd(fd, got, &size, NULL) == 0 && strcmp(got, l2.diff_id) == 0 &&
               size == l2.size,
           "the stored blob is the uncompressed tar (its digest is the diff_id)");
    if (fd >= 0)
        close(fd);
    free(bp);
    char *snap2 = layerstore_snapshot_path(st, chain2);
    tap_ok(has_file(snap2, "hello.txt", "hi\n"), "second snapshot unpacked");
    tap_is_int(count_entries("store/tmp"), 0, "no temp entries left");

    /* an image of both layers; its snapshots come back (unpacked again when deleted) */
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.os = mk_xstrdup("linux");
    cfg.architecture = mk_xstrdup(mk_host_arch());
    mk_strv_push(&cfg.diff_ids, l1.diff_id);
    mk_strv_push(&cfg.diff_ids, l2.diff_id);
    struct mk_layer_desc layers[2] = {l1, l2};
    struct mk_image *img = NULL;
    tap_ok(layerstore_image_write(st, &cfg, layers, 2, &img, &err) == 0, "image_write");
    layerstore_config_release(&cfg);
    tap_ok(mk_rm_rf(snap1, NULL) == 0 && !layerstore_snapshot_exists(st, chain1),
           "drop the first snapshot");
    struct mk_strv dirs = MK_STRV_INIT;
    r = layerstore_image_snapshots(st, img, &dirs, &err);
    if (r < 0)
        tap_diag("image_snapshots: %s", err->msg);
    tap_ok(r == 0 && dirs.n == 2 && strcmp(dirs.v[0], snap2) == 0 && strcmp(dirs.v[1], snap1) == 0,
           "image_snapshots lists top-most first");
    tap_ok(has_file(snap1, "etc/hostname", "box\n"),
           "a missing snapshot is unpacked from its blob");
    mk_strv_release(&dirs);
    tap_is_int(count_entries("store/tmp"), 0, "no temp entries left after unpacking");
    layerstore_image_free(img);

    test_import(st, &l2);
    test_race(st);
    free(snap1);
    free(snap2);
    free(l1.media_type);
    free(l2.media_type);
    layerstore_free(st);
    return tap_done();
}
