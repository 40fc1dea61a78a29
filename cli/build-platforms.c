/* cli/build-platforms.c - `mkimg build --platform A,B,...`: one build per platform, the tags
 * pointing at an index of them; outputs as BuildKit writes them for several platforms (oci: the
 * index in the layout; local and tar: a directory per platform, linux_arm64/). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "common/atomic-file.h"
#include "common/fsutil.h"

/* "type=T,dest=D" (or a bare directory: local) into its parts; the spec was checked. */
static void output_parse(const char *spec, char **ret_type, char **ret_dest)
{
    if (!strchr(spec, '=')) {
        *ret_type = mk_xstrdup("local");
        *ret_dest = mk_xstrdup(spec);
        return;
    }
    const char *t = strstr(spec, "type="), *d = strstr(spec, "dest=");
    *ret_type = t ? mk_xstrndup(t + 5, strcspn(t + 5, ",")) : mk_xstrdup("");
    *ret_dest = d ? mk_xstrndup(d + 5, strcspn(d + 5, ",")) : mk_xstrdup("");
}

/* BuildKit's platform-split: DIR/linux_arm64/... for each platform. */
static int export_split(struct mk_store *store, struct mk_image **imgs, size_t n, const char *dir,
                        int64_t epoch, struct mk_error **err)
{
    if (mk_mkdir_p(dir, 0755, err) < 0)
        return mk_error_set_where(err, dir);
    for (size_t i = 0; i < n; i++) {
        struct mk_platform p;
        layerstore_config_platform(&imgs[i]->config, &p);
        char ps[MK_PLATFORM_MAX];
        mk_platform_format(&p, ps);
        for (char *c = ps; *c; c++)
            if (*c == '/')
                *c = '_';
        _cleanup_free_ char *sub = mk_xasprintf("%s/%s", dir, ps);
        if (builder_export(store, imgs[i], "local", sub, epoch, err) < 0)
            return -1;
    }
    return 0;
}

/* type=tar: one tar holding the platform-split tree (BuildKit's layout), to dest or "-". */
static int export_tar(struct mk_store *store, struct mk_image **imgs, size_t n, const char *dest,
                      int64_t epoch, struct mk_error **err)
{
    _cleanup_free_ char *tmp = layerstore_tmpdir(store, "out-", err);
    if (!tmp)
        return -1;
    int r = export_split(store, imgs, n, tmp, epoch, err);
    _cleanup_close_ int dfd = r == 0 ? open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (r == 0 && dfd < 0)
        r = mk_error_errno(err, "opening \"%s\"", tmp);
    _cleanup_(mk_atomic_file_release) struct mk_atomic_file out = {.fd = -1, .dirfd = -1};
    if (r == 0 && strcmp(dest, "-") == 0)
        r = layerstore_tar_tree(dfd, STDOUT_FILENO, epoch, err);
    else if (r == 0 && (mk_atomic_file_init(&out, AT_FDCWD, dest, 0644, err) < 0 ||
                        layerstore_tar_tree(dfd, out.fd, epoch, err) < 0 ||
                        mk_atomic_file_commit_unsynced(&out, err) < 0)) /* docs/save.md */
        r = mk_error_set_where(err, dest);
    layerstore_tmpdir_remove(store, tmp, NULL);
    return r;
}

/* type=oci: the name's index and every platform's image, in an OCI layout directory (dest
 * ending in "/") or archive. */
static int export_oci(struct mk_store *store, const char *name, const char *dest,
                      struct mk_error **err)
{
    return cli_save_archive(store, &name, 1,
                            mk_str_has_suffix(dest, "/") ? MK_ARCHIVE_OCI_DIR : MK_ARCHIVE_OCI,
                            MK_COMPRESS_GZIP, 0, dest, err);
}

static int write_outputs(struct mk_store *store, struct mk_image **imgs, size_t n,
                         const struct mk_build_opts *opts, const struct mk_strv *outputs)
{
    for (size_t o = 0; o < outputs->n; o++) {
        _cleanup_free_ char *type = NULL, *dest = NULL;
        output_parse(outputs->v[o], &type, &dest);
        struct mk_error *err = NULL;
        int r;
        if (strcmp(type, "local") == 0)
            r = export_split(store, imgs, n, dest, opts->epoch, &err);
        else if (strcmp(type, "tar") == 0)
            r = export_tar(store, imgs, n, dest, opts->epoch, &err);
        else
            r = export_oci(store, opts->tags.v[0], dest, &err);
        if (r < 0)
            return cli_fail(err);
    }
    return 0;
}

int cli_build_platforms_check(const struct mk_build_opts *opts, const struct mk_strv *outputs)
{
    for (size_t i = 0; i < outputs->n; i++) {
        _cleanup_free_ char *type = NULL, *dest = NULL;
        output_parse(outputs->v[i], &type, &dest);
        if (strcmp(type, "docker") == 0)
            return cli_usage("build: a Docker archive holds one platform: use type=oci for "
                             "several");
        if (strcmp(type, "local") != 0 && strcmp(type, "tar") != 0 && strcmp(type, "oci") != 0)
            return cli_usage("build: --output type=%s is not supported with several platforms "
                             "yet (local, tar or oci)",
                             type);
        if (strcmp(dest, "-") == 0)
            return cli_usage("build: with several platforms, --output needs dest=PATH");
        if (strcmp(type, "oci") == 0 && opts->tags.n == 0)
            return cli_usage("build: --output type=oci with several platforms needs -t NAME");
    }
    return 0;
}

int cli_build_platforms(struct mk_store *store, const struct mk_build_opts *opts,
                        const struct mk_strv *outputs, bool push, const struct registry_opts *ropts,
                        const char *manifest_list, const char *iidfile)
{
    struct mk_strv platforms = MK_STRV_INIT;
    _cleanup_free_ char *list = mk_xstrdup(opts->platform);
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        mk_strv_push(&platforms, t);
    struct mk_image **imgs = NULL;
    char index[MK_DIGEST_SIZE];
    struct mk_error *err = NULL;
    int rc = 0;
    if (builder_build_platforms(store, opts, &platforms, &imgs, index, &err) < 0) {
        mk_strv_release(&platforms);
        return cli_fail(err);
    }
    if (!opts->quiet) {
        for (size_t i = 0; i < opts->tags.n; i++)
            fprintf(stderr, "tagged %s\n", opts->tags.v[i]);
        for (size_t i = 0; i < platforms.n; i++)
            fprintf(stderr, "built %s for %s\n", imgs[i]->config_digest, platforms.v[i]);
    }
    printf("%s\n", index);
    rc = write_outputs(store, imgs, platforms.n, opts, outputs);
    /* --manifest LIST: each platform's image goes into the list too. */
    for (size_t i = 0; rc == 0 && manifest_list && i < platforms.n; i++) {
        const char *d = imgs[i]->manifest_digest;
        char list_digest[MK_DIGEST_SIZE];
        if (cli_manifest_add(store, manifest_list, &d, 1, false, list_digest, &err) < 0)
            rc = cli_fail(err);
    }
    for (size_t i = 0; push && rc == 0 && i < opts->tags.n; i++) {
        char digest[MK_DIGEST_SIZE];
        if (registry_push(store, opts->tags.v[i], NULL, ropts, digest, &err) < 0) {
            rc = cli_fail(err);
            break;
        }
        if (!opts->quiet)
            fprintf(stderr, "pushed %s@%s\n", opts->tags.v[i], digest);
    }
    /* --iidfile: the index's digest, as BuildKit writes for several platforms. */
    if (rc == 0 && iidfile &&
        mk_write_file_atomic(AT_FDCWD, iidfile, index, strlen(index), 0644, &err) < 0) {
        mk_error_set_where(&err, iidfile);
        rc = cli_fail(err);
    }
    for (size_t i = 0; i < platforms.n; i++)
        layerstore_image_free(imgs[i]);
    free(imgs);
    mk_strv_release(&platforms);
    return rc;
}
