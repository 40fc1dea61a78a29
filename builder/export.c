/* builder/export.c - `build --output type=tar|local`: the image's root file system, as a tar
 * or as a directory tree, read through the same overlay mount a RUN step sees. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/atomic-file.h"
#include "common/fsutil.h"

struct tar_arg {
    int out_fd;
    int64_t epoch;
};

static int tar_fn(int rootfd, void *arg, struct mk_error **err)
{
    struct tar_arg *a = arg;
    /* An O_PATH root cannot be read as a directory: reopen it. */
    _cleanup_close_ int dfd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening the image root");
    return layerstore_tar_tree(dfd, a->out_fd, a->epoch, err);
}

/* Writes the image's root file system as a tar to out_fd. */
static int export_tar(struct mk_store *store, const struct mk_image *img, int out_fd, int64_t epoch,
                      struct mk_error **err)
{
    struct mk_strv lowers = MK_STRV_INIT;
    struct mk_workspace ws = {0};
    int r = -1;
    if (builder_image_lowerdirs(store, img, &lowers, err) < 0 ||
        builder_workspace_new(store, "export-", &ws, err) < 0)
        goto out;
    struct mk_sandbox_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.lowerdirs = &lowers;
    spec.upperdir = ws.upper;
    spec.workdir = ws.work;
    spec.stdout_fd = spec.stderr_fd = -1;
    struct tar_arg a = {.out_fd = out_fd, .epoch = epoch};
    r = builder_sandbox_call(&spec, tar_fn, &a, err);
out:
    builder_workspace_release(store, &ws);
    mk_strv_release(&lowers);
    return r;
}

int builder_export(struct mk_store *store, const struct mk_image *img, const char *type,
                   const char *dest, int64_t epoch, struct mk_error **err)
{
    if (strcmp(type, "tar") != 0 && strcmp(type, "local") != 0)
        return mk_error_set(err, MK_ERR_USAGE, 0, "unknown output type \"%s\"", type);
    if (strcmp(dest, "-") == 0 && strcmp(type, "tar") == 0)
        return export_tar(store, img, STDOUT_FILENO, epoch, err);
    if (strcmp(type, "tar") == 0) {
        _cleanup_(mk_atomic_file_release) struct mk_atomic_file out = {.fd = -1, .dirfd = -1};
        int r = mk_atomic_file_init(&out, AT_FDCWD, dest, 0644, err);
        if (r == 0)
            r = export_tar(store, img, out.fd, epoch, err);
        if (r == 0) /* an export, as save's archives (docs/save.md): renamed whole, unsynced */
            r = mk_atomic_file_commit_unsynced(&out, err);
        return r < 0 ? mk_error_set_where(err, dest) : 0;
    }
    /* type=local: the tar goes through a private temp dir of the store, then is unpacked
     * under dest. */
    _cleanup_free_ char *tmpdir = layerstore_tmpdir(store, "export-", err);
    if (!tmpdir)
        return mk_error_set_where(err, dest);
    _cleanup_free_ char *tmp_path = mk_xasprintf("%s/rootfs.tar", tmpdir);
    _cleanup_close_ int fd =
        open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int r = fd < 0 ? mk_error_errno(err, "creating \"%s\"", tmp_path)
                   : export_tar(store, img, fd, epoch, err);
    if (r == 0)
        r = mk_mkdir_p(dest, 0755, err);
    _cleanup_close_ int dfd = r == 0 ? open(dest, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    bool extracted = false;
    if (r == 0 && (dfd < 0 || lseek(fd, 0, SEEK_SET) < 0))
        r = mk_error_errno(err, "opening \"%s\"", dest);
    if (r == 0)
        r = layerstore_extract(fd, dfd, "/", NULL, &extracted, err);
    layerstore_tmpdir_remove(store, tmpdir, NULL);
    return r < 0 ? mk_error_set_where(err, dest) : 0;
}
