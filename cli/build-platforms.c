/* cli/build-platforms.c - `mkimg build --platform A,B,...`: one build per platform, the tags
 * pointing at an index of them; outputs split per platform as BuildKit's are. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "cli/cli.h"

/* type=local,dest=DIR: DIR/linux_arm64/... for each platform (BuildKit's platform-split). */
static int write_outputs(struct mk_store *store, struct mk_image **imgs, size_t n,
                         const struct mk_strv *outputs)
{
    for (size_t o = 0; o < outputs->n; o++) {
        const char *spec = outputs->v[o];
        const char *dest = strstr(spec, "dest=");
        dest = dest ? dest + 5 : spec;
        _cleanup_free_ char *dir = mk_xstrndup(dest, strcspn(dest, ","));
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            struct mk_error *err = NULL;
            mk_error_errno(&err, "creating the output directory");
            mk_error_set_where(&err, dir);
            return cli_fail(err);
        }
        for (size_t i = 0; i < n; i++) {
            struct mk_platform p;
            layerstore_config_platform(&imgs[i]->config, &p);
            char ps[MK_PLATFORM_MAX];
            layerstore_platform_format(&p, ps);
            for (char *c = ps; *c; c++)
                if (*c == '/')
                    *c = '_';
            _cleanup_free_ char *sub = mk_xasprintf("%s/%s", dir, ps);
            struct mk_error *err = NULL;
            if (builder_export(store, imgs[i], "local", sub, &err) < 0)
                return cli_fail(err);
        }
    }
    return 0;
}

int cli_build_platforms_check(const struct mk_strv *outputs)
{
    for (size_t i = 0; i < outputs->n; i++) {
        const char *o = outputs->v[i];
        if (strchr(o, '=') && !strstr(o, "type=local"))
            return cli_usage("build: with several platforms, --output supports type=local only "
                             "(not \"%s\")",
                             o);
    }
    return 0;
}

int cli_build_platforms(struct mk_store *store, const struct mk_build_opts *opts,
                        const struct mk_strv *outputs, bool push, const struct registry_opts *ropts,
                        const char *manifest_list)
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
    rc = write_outputs(store, imgs, platforms.n, outputs);
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
    for (size_t i = 0; i < platforms.n; i++)
        layerstore_image_free(imgs[i]);
    free(imgs);
    mk_strv_release(&platforms);
    return rc;
}
