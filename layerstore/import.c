/* layerstore/import.c - `mkimg import`: a rootfs tarball or directory as a one-layer image. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerstore/internal.h"

/* The tree of the directory open as fd as a plain tar blob (ret: digest == diff_id), no mtime
 * later than epoch (MK_EPOCH_NONE: as they are). */
static int dir_fd_to_blob(struct mk_store *store, int fd, int64_t epoch, struct mk_layer_desc *ret,
                          struct mk_error **err)
{
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int out = ls_tmpfile(store, &tmp, err);
    if (out < 0)
        return -1;
    char diff_id[MK_DIGEST_SIZE];
    uint64_t size = 0;
    if (ls_tar_write_dir(fd, out, epoch, diff_id, &size, err) < 0) {
        unlink(tmp);
        return -1;
    }
    if (ls_blob_commit_tmp(store, out, tmp, diff_id, err) < 0)
        return -1;
    memset(ret, 0, sizeof(*ret));
    memcpy(ret->digest, diff_id, MK_DIGEST_SIZE);
    memcpy(ret->diff_id, diff_id, MK_DIGEST_SIZE);
    ret->media_type = mk_xstrdup(MK_MEDIA_OCI_LAYER);
    ret->size = size;
    return 0;
}

int layerstore_dir_to_blob(struct mk_store *store, const char *dir, struct mk_layer_desc *ret,
                           struct mk_error **err)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_errno(err, "opening \"%s\"", dir);
    return dir_fd_to_blob(store, fd, MK_EPOCH_NONE, ret, err);
}

static int import_layer(struct mk_store *store, const char *path, int64_t epoch,
                        struct mk_layer_desc *ret, struct mk_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mk_error_set(err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                            "opening \"%s\"", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mk_error_errno(err, "stat \"%s\"", path);
    if (!S_ISDIR(st.st_mode))
        return layerstore_layer_import_tar(store, fd, "", ret, NULL, err);
    /* The user's directory is only read: write its tar as a blob, then unpack that into a
     * snapshot, so the snapshot holds exactly what the layer says. */
    if (dir_fd_to_blob(store, fd, epoch, ret, err) < 0)
        return -1;
    if (ls_snapshot_unpack(store, ret->diff_id, ret->diff_id, ret->diff_id, err) < 0) {
        free(ret->media_type);
        ret->media_type = NULL;
        return -1;
    }
    return 0;
}

int layerstore_import(struct mk_store *store, const char *path, const char *ref,
                      struct mk_image **ret, struct mk_error **err)
{
    return layerstore_import_platform(store, path, ref, NULL, MK_EPOCH_NONE, ret, err);
}

int layerstore_import_platform(struct mk_store *store, const char *path, const char *ref,
                               const struct mk_platform *platform, int64_t epoch,
                               struct mk_image **ret, struct mk_error **err)
{
    _cleanup_free_ char *name = mk_ref_local_name(ref, err);
    if (!name)
        return -1;
    struct mk_layer_desc layer;
    if (import_layer(store, path, epoch, &layer, err) < 0)
        return mk_error_wrap(err, "importing \"%s\"", path);
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    struct mk_platform host;
    mk_platform_host(&host);
    const struct mk_platform *p = platform ? platform : &host;
    cfg.os = mk_xstrdup(p->os);
    cfg.architecture = mk_xstrdup(p->arch);
    cfg.variant = p->variant[0] ? mk_xstrdup(p->variant) : NULL;
    cfg.created = mk_epoch_rfc3339(epoch);
    mk_strv_push(&cfg.diff_ids, layer.diff_id);
    _cleanup_free_ char *by = mk_xasprintf("mkimg import %s", path);
    layerstore_config_add_history(&cfg, cfg.created, by, NULL, false);
    struct mk_image *img = NULL;
    int r = layerstore_image_write(store, &cfg, &layer, 1, &img, err);
    layerstore_config_release(&cfg);
    free(layer.media_type);
    if (r < 0 || (platform ? layerstore_tag_add_platform(store, img, name, NULL, err)
                           : layerstore_tag(store, img, name, err)) < 0) {
        layerstore_image_free(img);
        return -1;
    }
    mk_strv_push(&img->tags, name);
    if (ret)
        *ret = img;
    else
        layerstore_image_free(img);
    return 0;
}
