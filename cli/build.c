/* cli/build.c - mkimg build [OPTIONS] CONTEXT */
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "common/atomic-file.h"
#include "common/fsutil.h"

/* One --output, as buildx takes it: "type=T[,dest=D][,name=N]...[,push=BOOL][,compression=C]
 * [,compression-level=N]", "-" (a rootfs tar on stdout) or a plain directory (type=local).
 * Archives name exactly what was asked (name=, else the -t names), not every tag that points
 * at the same image; "dest=-" streams them to stdout. Files are atomic (common/atomic-file.h):
 * a temp file beside the destination, renamed when complete. */
struct output {
    char *type, *dest;
    struct mk_strv names;
    bool push;
    enum mk_compression compression;
    int level;
};

static void output_release(struct output *o)
{
    free(o->type);
    free(o->dest);
    mk_strv_release(&o->names);
}

static int parse_bool(const char *v, bool *ret)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        return *ret = true, 0;
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return *ret = false, 0;
    return -1;
}

/* "k=v,k=v" as buildx's --output and --secret take it: keys and values alternate in ret (split
 * at each pair's first '='). 0, or the status of a usage error naming flag. */
static int split_pairs(const char *flag, const char *spec, struct mk_strv *ret)
{
    _cleanup_free_ char *copy = mk_xstrdup(spec);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq)
            return cli_usage("build: --%s \"%s\": \"%s\" is not KEY=VALUE", flag, spec, t);
        *eq = '\0';
        mk_strv_push(ret, t);
        mk_strv_push(ret, eq + 1);
    }
    return 0;
}

static int output_parse(const char *spec, struct output *o)
{
    memset(o, 0, sizeof(*o));
    o->compression = MK_COMPRESS_GZIP;
    if (strcmp(spec, "-") == 0) {
        o->type = mk_xstrdup("tar");
        o->dest = mk_xstrdup("-");
        return 0;
    }
    if (!strchr(spec, '=')) {
        o->type = mk_xstrdup("local");
        o->dest = mk_xstrdup(spec);
        return 0;
    }
    _cleanup_(mk_strv_release) struct mk_strv kv = MK_STRV_INIT;
    int rc = split_pairs("output", spec, &kv);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i + 1 < kv.n; i += 2) {
        const char *t = kv.v[i], *v = kv.v[i + 1];
        if (strcmp(t, "type") == 0) {
            free(o->type);
            o->type = mk_xstrdup(v);
        } else if (strcmp(t, "dest") == 0) {
            free(o->dest);
            o->dest = mk_xstrdup(v);
        } else if (strcmp(t, "name") == 0) {
            if (cli_check_new_name(v) != 0)
                return 1;
            mk_strv_push(&o->names, v);
        } else if (strcmp(t, "push") == 0) {
            if (parse_bool(v, &o->push) < 0)
                return cli_usage("build: --output push= takes true or false, not \"%s\"", v);
        } else if (strcmp(t, "compression") == 0) {
            if (strcmp(v, "gzip") == 0)
                o->compression = MK_COMPRESS_GZIP;
            else if (strcmp(v, "zstd") == 0)
                o->compression = MK_COMPRESS_ZSTD;
            else if (strcmp(v, "uncompressed") == 0)
                o->compression = MK_COMPRESS_NONE;
            else
                return cli_usage("build: --output compression= takes gzip, zstd or "
                                 "uncompressed, not \"%s\"",
                                 v);
        } else if (strcmp(t, "compression-level") == 0) {
            uint64_t n;
            if (mk_parse_u64(v, &n) < 0 || n > 22)
                return cli_usage("build: --output compression-level= takes 0 to 22, not \"%s\"", v);
            o->level = (int)n;
        } else if (strcmp(t, "oci-mediatypes") == 0 || strcmp(t, "force-compression") == 0 ||
                   strcmp(t, "tar") == 0) {
            /* OCI media types are what mkimg writes; layers are always compressed as asked. */
            bool b;
            if (parse_bool(v, &b) < 0 || (strcmp(t, "oci-mediatypes") == 0 && !b) ||
                (strcmp(t, "tar") == 0 && !b))
                return cli_usage("build: --output %s=%s is not supported", t, v);
        } else {
            return cli_usage("build: unknown --output option \"%s\"", t);
        }
    }
    if (!o->type)
        return cli_usage("build: --output needs type= (e.g. type=oci,dest=img.tar)");
    if (strcmp(o->type, "registry") == 0) {
        free(o->type);
        o->type = mk_xstrdup("image");
        o->push = true;
    }
    bool image = strcmp(o->type, "image") == 0;
    if (strcmp(o->type, "local") && strcmp(o->type, "tar") && strcmp(o->type, "docker") &&
        strcmp(o->type, "oci") && !image)
        return cli_usage("build: unknown --output type \"%s\" (oci, docker, tar, local, image or "
                         "registry)",
                         o->type);
    if (!image && (!o->dest || !*o->dest))
        return cli_usage("build: --output type=%s needs dest= (e.g. type=%s,dest=out.tar)", o->type,
                         o->type);
    return 0;
}

static int write_archive(struct mk_store *store, const struct output *o, const char *const *names,
                         size_t n, enum mk_archive_format fmt)
{
    struct mk_error *err = NULL;
    if (cli_save_archive(store, names, n, fmt, o->compression, o->level, o->dest, &err) < 0)
        return cli_fail(err);
    return 0;
}

static int write_output(struct mk_store *store, const struct mk_image *img, const char *spec,
                        const struct mk_strv *tags, const struct registry_opts *ropts, bool quiet,
                        int64_t epoch)
{
    _cleanup_(output_release) struct output o;
    int rc = output_parse(spec, &o);
    if (rc != 0 || !store)
        return rc;
    const struct mk_strv *names = o.names.n ? &o.names : tags;
    struct mk_error *err = NULL;
    if (strcmp(o.type, "local") == 0 || strcmp(o.type, "tar") == 0) {
        if (builder_export(store, img, o.type, o.dest, epoch, &err) < 0)
            return cli_fail(err);
        return 0;
    }
    if (strcmp(o.type, "image") == 0) {
        if (!names->n)
            return cli_usage("build: --output type=%s needs name= or -t", o.type);
        /* A lazy image (docs/remote-cache.md) is named outside index.json and pushed by its
         * manifest. */
        bool lazy = false;
        for (size_t i = 0; i < img->n_layers; i++)
            lazy |= !layerstore_blob_exists(store, img->layers[i].digest);
        struct registry_opts po = *ropts;
        po.compression = o.compression == MK_COMPRESS_ZSTD   ? "zstd"
                         : o.compression == MK_COMPRESS_NONE ? "none"
                                                             : NULL;
        for (size_t i = 0; i < names->n; i++) {
            char digest[MK_DIGEST_SIZE];
            int r = lazy ? layerstore_lazy_tag(store, names->v[i], img->manifest_digest, &err)
                         : layerstore_tag(store, img, names->v[i], &err);
            if (r < 0 ||
                (o.push && registry_push(store, lazy ? img->manifest_digest : names->v[i],
                                         lazy ? names->v[i] : NULL, &po, digest, &err) < 0))
                return cli_fail(err);
            if (o.push && !quiet)
                fprintf(stderr, "pushed %s@%s\n", names->v[i], digest);
        }
        return 0;
    }
    enum mk_archive_format fmt = strcmp(o.type, "docker") == 0    ? MK_ARCHIVE_DOCKER
                                 : mk_str_has_suffix(o.dest, "/") ? MK_ARCHIVE_OCI_DIR
                                                                  : MK_ARCHIVE_OCI;
    /* Only the names asked for go in: layerstore_save records an image asked by a name under
     * that name, and one asked by its manifest digest under none (not under every tag that
     * points at it). An OCI index lists one image per name, and skopeo or podman refuse an
     * archive that holds several, so an OCI export records the first name; a Docker archive's
     * RepoTags take every one. */
    if (!names->n) {
        const char *id = img->manifest_digest;
        return write_archive(store, &o, &id, 1, fmt);
    }
    size_t n = fmt == MK_ARCHIVE_DOCKER ? names->n : 1;
    /* A name= that no image has yet is the archive's only: it is tagged for the save and the
     * tag removed after. One that names another image is refused rather than moved. */
    struct mk_strv added = MK_STRV_INIT;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct mk_image *other = NULL;
        if (layerstore_image_get(store, names->v[i], &other, &err) == 0) {
            if (strcmp(other->config_digest, img->config_digest) != 0) {
                mk_error_set(&err, MK_ERR_EXISTS, 0,
                             "--output name \"%s\" already names another image", names->v[i]);
                rc = cli_fail(err);
            }
            layerstore_image_free(other);
        } else if (err->code != MK_ERR_NOT_FOUND) {
            rc = cli_fail(err);
        } else {
            mk_error_free(err);
            err = NULL;
            if (layerstore_tag(store, img, names->v[i], &err) < 0)
                rc = cli_fail(err);
            else
                mk_strv_push(&added, names->v[i]);
        }
    }
    if (rc == 0)
        rc = write_archive(store, &o, (const char *const *)names->v, n, fmt);
    for (size_t i = 0; i < added.n; i++) {
        if (layerstore_untag(store, added.v[i], &err) < 0) {
            mk_error_free(err);
            err = NULL;
        }
    }
    mk_strv_release(&added);
    return rc;
}

/* --secret as buildx takes it: id=ID[,type=file|env][,src=PATH][,env=VAR]; with neither src
 * nor env, the variable named ID when it is set, else the file named ID. The source must exist
 * now: a secret that went missing silently would give a build without it. Appends
 * "id=ID,src=PATH" or "id=ID,env=VAR" to out; returns 0 or the exit status after the message. */
static int parse_secret(const char *spec, struct mk_strv *out)
{
    _cleanup_(mk_strv_release) struct mk_strv kv = MK_STRV_INIT;
    const char *id = NULL, *type = NULL, *src = NULL, *env = NULL;
    int rc = split_pairs("secret", spec, &kv);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i + 1 < kv.n; i += 2) {
        const char *t = kv.v[i], *v = kv.v[i + 1];
        if (strcmp(t, "id") == 0)
            id = v;
        else if (strcmp(t, "type") == 0)
            type = v;
        else if (strcmp(t, "src") == 0 || strcmp(t, "source") == 0)
            src = v;
        else if (strcmp(t, "env") == 0)
            env = v;
        else
            return cli_usage("build: --secret \"%s\": unknown key \"%s\" (id, type, src, env)",
                             spec, t);
    }
    if (!id || !*id)
        return cli_usage("build: --secret needs id=ID (with src=PATH or env=VAR)");
    if (type && strcmp(type, "file") != 0 && strcmp(type, "env") != 0)
        return cli_usage("build: --secret \"%s\": unknown type \"%s\" (file or env)", spec, type);
    if (type && strcmp(type, "env") == 0 && !env) {
        env = src ? src : id;
        src = NULL;
    }
    if (type && strcmp(type, "file") == 0 && !src)
        src = id;
    if (!src && !env) {
        struct stat st;
        if (getenv(id))
            env = id;
        else if (stat(id, &st) == 0)
            src = id;
        else {
            struct mk_error *err = NULL;
            mk_error_set(&err, MK_ERR_NOT_FOUND, 0,
                         "build: secret \"%s\": no environment variable or file named \"%s\" "
                         "(use --secret id=%s,src=PATH or env=VAR)",
                         id, id, id);
            return cli_fail(err);
        }
    }
    struct mk_error *err = NULL;
    if (src) {
        struct stat st;
        if (stat(src, &st) < 0) {
            mk_error_errno(&err, "build: secret \"%s\": \"%s\"", id, src);
            return cli_fail(err);
        }
        if (!S_ISREG(st.st_mode)) {
            mk_error_set(&err, MK_ERR_INVALID, 0, "build: secret \"%s\": \"%s\" is not a file", id,
                         src);
            return cli_fail(err);
        }
        _cleanup_free_ char *canon = mk_xasprintf("id=%s,src=%s", id, src);
        mk_strv_push(out, canon);
        return 0;
    }
    if (!getenv(env)) {
        mk_error_set(&err, MK_ERR_NOT_FOUND, 0,
                     "build: secret \"%s\": environment variable \"%s\" is not set", id, env);
        return cli_fail(err);
    }
    _cleanup_free_ char *canon = mk_xasprintf("id=%s,env=%s", id, env);
    mk_strv_push(out, canon);
    return 0;
}

static int parse_progress(const char *what, const char *v, struct mk_build_opts *opts)
{
    if (strcmp(v, "quiet") == 0)
        opts->quiet = true;
    else if (strcmp(v, "plain") == 0)
        opts->progress = MK_PROGRESS_PLAIN;
    else if (strcmp(v, "tty") == 0)
        opts->progress = MK_PROGRESS_TTY;
    else if (strcmp(v, "auto") == 0)
        opts->progress = MK_PROGRESS_AUTO;
    else if (strcmp(v, "rawjson") == 0)
        opts->progress = MK_PROGRESS_RAWJSON;
    else
        return cli_usage("build: unknown %s \"%s\" (auto, plain, tty, rawjson or quiet)", what, v);
    return 0;
}

/* --metadata-file: what BuildKit writes there, for CI scripts that read it. */
static int write_metadata(const struct mk_image *img, const struct mk_strv *tags, const char *path)
{
    json_t *o = json_object();
    json_object_set_new(o, "containerimage.config.digest", json_string(img->config_digest));
    json_object_set_new(o, "containerimage.digest", json_string(img->manifest_digest));
    json_t *desc = json_object();
    json_object_set_new(
        desc, "mediaType",
        json_string(img->docker_manifest ? MK_MEDIA_DOCKER_MANIFEST : MK_MEDIA_OCI_MANIFEST));
    json_object_set_new(desc, "digest", json_string(img->manifest_digest));
    json_object_set_new(desc, "size", json_integer((json_int_t)img->manifest_size));
    json_object_set_new(o, "containerimage.descriptor", desc);
    if (tags->n) {
        struct mk_buf names = MK_BUF_INIT;
        for (size_t i = 0; i < tags->n; i++) {
            _cleanup_free_ char *norm = mk_ref_local_name(tags->v[i], NULL);
            mk_buf_addf(&names, "%s%s", i ? "," : "", norm ? norm : tags->v[i]);
        }
        json_object_set_new(o, "image.name", json_string(names.data));
        mk_buf_release(&names);
    }
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(o);
    struct mk_error *err = NULL;
    int r = mk_write_file_atomic(AT_FDCWD, path, text, strlen(text), 0644, &err);
    free(text);
    if (r < 0) {
        mk_error_set_where(&err, path);
        cli_fail(err);
    }
    return r;
}

enum {
    OPT_TAG = 1,
    OPT_FILE,
    OPT_BUILD_ARG,
    OPT_TARGET,
    OPT_SECRET,
    OPT_NETWORK,
    OPT_NO_CACHE,
    OPT_PUSH,
    OPT_OUTPUT,
    OPT_EXPLAIN_CACHE,
    OPT_PULL,
    OPT_IGNOREFILE,
    OPT_IIDFILE,
    OPT_PROGRESS,
    OPT_LOAD,
    OPT_QUIET,
    OPT_LABEL,
    OPT_ANNOTATION,
    OPT_METADATA_FILE,
    OPT_PLATFORM,
    OPT_MANIFEST,
    OPT_TIMESTAMP,
    OPT_SQUASH,
    OPT_JOBS,
    OPT_ALLOW,
    OPT_CACHE_FROM,
    OPT_CACHE_TO,
    OPT_BUILD_CONTEXT,
};

static const struct cli_opt build_opts[] = {
    {OPT_TAG, 't', "tag", "NAME[:TAG]", "name the image (repeatable)", CLI_COMP_IMAGE, NULL},
    {OPT_FILE, 'f', "file", "FILE", "the Dockerfile (default CONTEXT/Dockerfile; \"-\": stdin)",
     CLI_COMP_FILE, NULL},
    {OPT_BUILD_ARG, 0, "build-arg", "K[=V]",
     "set a build-time variable (V from the environment if omitted)", 0, NULL},
    {OPT_TARGET, 0, "target", "STAGE", "build up to this stage", 0, NULL},
    {OPT_BUILD_CONTEXT, 0, "build-context", "NAME=VALUE",
     "use VALUE for the stage or image NAME (FROM, --from): a DIR, docker-image://REF, "
     "oci-layout://PATH[:TAG|@DIGEST], an http(s) tarball or a git URL (repeatable)",
     0, NULL},
    {OPT_SECRET, 0, "secret", "id=ID[,src=PATH|,env=VAR]",
     "a secret for RUN --mount=type=secret (id=X alone: the variable X, else the file X; must "
     "exist)",
     0, NULL},
    {OPT_NETWORK, 0, "network", "MODE", "default (host), host or none for RUN", CLI_COMP_WORDS,
     "default host none"},
    {OPT_NO_CACHE, 0, "no-cache", NULL, "do not use the build cache", 0, NULL},
    {OPT_PUSH, 0, "push", NULL, "push every -t name to its registry after the build", 0, NULL},
    {OPT_OUTPUT, 'o', "output", "SPEC",
     "also write the result: type=oci|docker,dest=FILE.tar|-, type=oci,dest=DIR/, "
     "type=tar,dest=FILE|-, type=local,dest=DIR, type=image[,push=true], type=registry; "
     "name=NAME (else the -t names, none without -t), compression=gzip|zstd|uncompressed, "
     "compression-level=N (a plain DIR: type=local; -: a tar on stdout)",
     CLI_COMP_FILE, NULL},
    {OPT_EXPLAIN_CACHE, 0, "explain-cache", NULL,
     "for each step that misses the cache, say which input changed", 0, NULL},
    {OPT_CACHE_FROM, 0, "cache-from", "SPEC",
     "also take cached steps from an exported cache: type=local,src=DIR, "
     "type=registry,ref=REF or REF (repeatable)",
     CLI_COMP_FILE, NULL},
    {OPT_CACHE_TO, 0, "cache-to", "SPEC",
     "export the build cache: type=local,dest=DIR, type=registry,ref=REF or type=inline; "
     "mode=min (the final stage's steps) or max (every stage's); ignore-error=true; "
     "compression=gzip|zstd (registry); cache-mounts=true (RUN cache mounts too) (repeatable)",
     CLI_COMP_FILE, NULL},
    {OPT_PULL, 0, "pull", "[=POLICY]", "base images: missing (default), always, never (offline)",
     CLI_COMP_WORDS, "missing always never"},
    {OPT_IGNOREFILE, 0, "ignorefile", "FILE", "use FILE instead of the context's .dockerignore",
     CLI_COMP_FILE, NULL},
    {OPT_IIDFILE, 0, "iidfile", "FILE", "write the image ID to FILE", CLI_COMP_FILE, NULL},
    {OPT_PROGRESS, 0, "progress", "MODE",
     "auto, plain, tty, rawjson or quiet (default: $BUILDKIT_PROGRESS, else auto)", CLI_COMP_WORDS,
     "auto plain tty rawjson quiet"},
    {OPT_LOAD, 0, "load", NULL, "accepted: the image always goes to the local store", 0, NULL},
    {OPT_QUIET, 'q', "quiet", NULL, "print only the image ID", 0, NULL},
    {OPT_LABEL, 0, "label", "K=V", "set a label on the image (repeatable)", 0, NULL},
    {OPT_ANNOTATION, 0, "annotation", "K=V",
     "set an annotation on the image's manifest (repeatable)", 0, NULL},
    {OPT_METADATA_FILE, 0, "metadata-file", "FILE",
     "write the image's digests and names to FILE as JSON", CLI_COMP_FILE, NULL},
    {OPT_PLATFORM, 0, "platform", "P[,P...]",
     "the target platforms (e.g. linux/amd64,linux/arm64): several make an index", CLI_COMP_WORDS,
     cli_platform_words},
    {OPT_MANIFEST, 0, "manifest", "LIST",
     "add the image(s) to the manifest list LIST (made if missing)", CLI_COMP_IMAGE, NULL},
    {OPT_TIMESTAMP, 0, "timestamp", "SECONDS",
     "clamp created times and file mtimes (as SOURCE_DATE_EPOCH)", 0, NULL},
    {OPT_SQUASH, 0, "squash", NULL, "merge the layers this build adds into one", 0, NULL},
    {OPT_JOBS, 'j', "jobs", "N", "build up to N independent stages at once (default: all)", 0,
     NULL},
    {OPT_ALLOW, 0, "allow", "ENTITLEMENT",
     "security.insecure: let RUN --security=insecure run with every privilege (no seccomp, all "
     "capabilities); network.host: accepted (RUN has the host's network)",
     CLI_COMP_WORDS, "security.insecure network.host"},
    {0},
};

const struct cli_cmd cli_cmd_build = {
    .name = "build",
    .synopsis = "[OPTIONS] CONTEXT",
    .summary = "build an image from a Dockerfile",
    .description = "CONTEXT is a directory, \"-\" for a tar on stdin, an http(s) tarball URL or "
                   "a git URL (REPO#REF:DIR). Options may come before or after it. The image "
                   "ID is printed on stdout unless an --output goes there.",
    .opts = build_opts,
    .more = cli_registry_opts,
    .operand = CLI_COMP_DIR,
    .fn = cmd_build,
};

/* What the options say, beyond the builder's own options. */
struct build_cli {
    struct mk_build_opts opts;
    struct registry_opts ropts;
    const char *iidfile, *metadata_file, *manifest_list;
    const char *timestamp; /* --timestamp, checked */
    bool push, progress_given, stdout_taken;
    struct mk_strv outputs, named_contexts; /* --build-context, as given */
};

static void build_cli_release(struct build_cli *b)
{
    mk_strv_release(&b->opts.tags);
    mk_strv_release(&b->opts.build_args);
    mk_strv_release(&b->opts.secrets);
    mk_strv_release(&b->opts.labels);
    mk_strv_release(&b->opts.annotations);
    mk_strv_release(&b->opts.cache_from);
    mk_strv_release(&b->opts.cache_to);
    mk_strv_release(&b->outputs);
    mk_strv_release(&b->named_contexts);
    mk_strv_release(&b->opts.named_contexts);
}

/* The options with a value that is checked. 0, or the exit status after the message. */
static int build_checked_opt(struct build_cli *b, int id, const char *arg)
{
    struct mk_build_opts *opts = &b->opts;
    uint64_t v;
    int64_t epoch;
    int p;
    switch (id) {
    case OPT_SECRET:
        return parse_secret(arg, &opts->secrets);
    case OPT_NETWORK:
        if (strcmp(arg, "none") == 0)
            opts->network = MK_NET_NONE;
        else if (strcmp(arg, "host") == 0 || strcmp(arg, "default") == 0)
            opts->network = MK_NET_HOST;
        else
            return cli_usage("build: unknown --network \"%s\" (use default, host or none)", arg);
        return 0;
    case OPT_ALLOW:
        /* network.host: RUN has the host's network unless --network=none says otherwise. */
        if (strcmp(arg, "network.host") == 0)
            return 0;
        if (strcmp(arg, "security.insecure") != 0)
            return cli_usage("build: unknown --allow \"%s\" (security.insecure or network.host)",
                             arg);
        opts->allow_insecure = true;
        return 0;
    case OPT_PULL:
        if ((p = registry_pull_policy_parse(arg ? arg : "always")) < 0)
            return cli_usage("build: unknown --pull \"%s\" (use missing, always or never)", arg);
        opts->pull = (enum registry_pull_policy)p;
        return 0;
    case OPT_PROGRESS:
        b->progress_given = true;
        return parse_progress("--progress", arg, opts);
    case OPT_LABEL:
    case OPT_ANNOTATION:
        if (!*arg || *arg == '=')
            return cli_usage("build: --%s needs KEY=VALUE",
                             id == OPT_LABEL ? "label" : "annotation");
        mk_strv_push(id == OPT_LABEL ? &opts->labels : &opts->annotations, arg);
        return 0;
    case OPT_TIMESTAMP:
        if (!*arg || mk_epoch_parse(arg, &epoch, NULL) < 0)
            return cli_usage("build: --timestamp takes seconds since the epoch, not \"%s\"", arg);
        b->timestamp = arg;
        return 0;
    case OPT_JOBS:
        if (mk_parse_u64(arg, &v) < 0 || v < 1 || v > 64)
            return cli_usage("build: --jobs takes a number from 1 to 64, not \"%s\"", arg);
        opts->jobs = (unsigned)v;
        return 0;
    }
    if (id >= CLI_REG_FIRST && id <= CLI_REG_LAST)
        return cli_registry_opt(&b->ropts, id, arg);
    MK_BUG("unhandled build option");
}

/* One option; 0, or the exit status. */
static int build_opt(struct build_cli *b, int id, const char *arg)
{
    struct mk_build_opts *opts = &b->opts;
    switch (id) {
    case OPT_TAG:
        mk_strv_push(&opts->tags, arg);
        break;
    case OPT_FILE:
        opts->dockerfile = arg;
        break;
    case OPT_BUILD_ARG:
        mk_strv_push(&opts->build_args, arg);
        break;
    case OPT_TARGET:
        opts->target = arg;
        break;
    case OPT_BUILD_CONTEXT:
        mk_strv_push(&b->named_contexts, arg);
        break;
    case OPT_NO_CACHE:
        opts->no_cache = true;
        break;
    case OPT_PUSH:
        b->push = true;
        break;
    case OPT_OUTPUT:
        mk_strv_push(&b->outputs, arg);
        break;
    case OPT_EXPLAIN_CACHE:
        opts->explain_cache = true;
        break;
    case OPT_CACHE_FROM:
        mk_strv_push(&opts->cache_from, arg);
        break;
    case OPT_CACHE_TO:
        mk_strv_push(&opts->cache_to, arg);
        break;
    case OPT_IGNOREFILE:
        opts->ignorefile = arg;
        break;
    case OPT_IIDFILE:
        b->iidfile = arg;
        break;
    case OPT_LOAD: /* the image is in the local store anyway */
        break;
    case OPT_METADATA_FILE:
        b->metadata_file = arg;
        break;
    case OPT_PLATFORM:
        opts->platform = arg;
        break;
    case OPT_MANIFEST:
        b->manifest_list = arg;
        break;
    case OPT_SQUASH:
        opts->squash = true;
        break;
    case OPT_QUIET:
        opts->quiet = true;
        break;
    default:
        return build_checked_opt(b, id, arg);
    }
    return 0;
}

/* Everything that can be refused before any work: the context, the names, the outputs. */
static int build_check(struct build_cli *b, const char *context)
{
    struct mk_build_opts *opts = &b->opts;
    int rc;
    /* As with buildx, BUILDKIT_PROGRESS is the default --progress. */
    const char *env_progress = getenv("BUILDKIT_PROGRESS");
    if (!b->progress_given && env_progress && *env_progress &&
        (rc = parse_progress("BUILDKIT_PROGRESS", env_progress, opts)) != 0)
        return rc;
    /* The epoch: --build-arg SOURCE_DATE_EPOCH=N (as BuildKit), else --timestamp (as
     * buildah), else the environment's (as buildx passes it on). */
    const char *epoch = b->timestamp, *epoch_what = "--timestamp";
    for (size_t i = 0; i < opts->build_args.n; i++)
        if (mk_str_has_prefix(opts->build_args.v[i], "SOURCE_DATE_EPOCH=")) {
            epoch = opts->build_args.v[i] + 18;
            epoch_what = "--build-arg SOURCE_DATE_EPOCH";
        }
    if ((rc = cli_epoch(epoch, epoch_what, &opts->epoch)) != 0)
        return rc;
    if (opts->dockerfile && strcmp(opts->dockerfile, "-") == 0 && strcmp(context, "-") == 0)
        return cli_usage("build: the build context and the Dockerfile cannot both come from stdin");
    for (size_t i = 0; i < opts->tags.n; i++)
        if ((rc = cli_check_new_name(opts->tags.v[i])) != 0)
            return rc;
    if (b->push && opts->tags.n == 0)
        return cli_usage("build: --push needs a name to push to (-t NAME)");
    /* A bad --output is a usage error before any work, not after the build. */
    for (size_t i = 0; i < b->outputs.n; i++) {
        _cleanup_(output_release) struct output o;
        if ((rc = output_parse(b->outputs.v[i], &o)) != 0)
            return rc;
        if (o.dest && strcmp(o.dest, "-") == 0 && strcmp(o.type, "local") != 0) {
            if (b->stdout_taken)
                return cli_usage("build: only one --output can go to stdout");
            b->stdout_taken = true;
        }
    }
    return 0;
}

/* Every --output is a push of the image (type=image,push=true or type=registry). */
static bool outputs_push_only(const struct mk_strv *outputs)
{
    for (size_t i = 0; i < outputs->n; i++) {
        _cleanup_(output_release) struct output o;
        if (output_parse(outputs->v[i], &o) != 0 || strcmp(o.type, "image") != 0 || !o.push)
            return false;
    }
    return true;
}

/* Some --output reads the image's root file system (type=local or type=tar). */
static bool outputs_rootfs(const struct mk_strv *outputs)
{
    for (size_t i = 0; i < outputs->n; i++) {
        _cleanup_(output_release) struct output o;
        if (output_parse(outputs->v[i], &o) == 0 &&
            (strcmp(o.type, "local") == 0 || strcmp(o.type, "tar") == 0))
            return true;
    }
    return false;
}

/* After the build: outputs, the manifest list, pushes, the metadata and iid files. */
static int build_finish(struct mk_store *store, struct build_cli *b, const struct mk_image *img)
{
    struct mk_build_opts *opts = &b->opts;
    struct mk_error *err = NULL;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->outputs.n; i++)
        rc = write_output(store, img, b->outputs.v[i], &opts->tags, &b->ropts, opts->quiet,
                          opts->epoch);
    if (rc == 0 && b->manifest_list) {
        const char *d = img->manifest_digest;
        char list_digest[MK_DIGEST_SIZE];
        if (cli_manifest_add(store, b->manifest_list, &d, 1, false, list_digest, &err) < 0)
            rc = cli_fail(err);
    }
    for (size_t i = 0; b->push && rc == 0 && i < opts->tags.n; i++) {
        char digest[MK_DIGEST_SIZE], lazy[MK_DIGEST_SIZE];
        /* A lazy image (opts->lazy_push) is named outside index.json: pushed by manifest. */
        bool is_lazy = layerstore_lazy_ref_get(store, opts->tags.v[i], lazy) == 0;
        if (registry_push(store, is_lazy ? lazy : opts->tags.v[i], is_lazy ? opts->tags.v[i] : NULL,
                          &b->ropts, digest, &err) < 0)
            return cli_fail(err);
        if (!opts->quiet)
            fprintf(stderr, "pushed %s@%s\n", opts->tags.v[i], digest);
    }
    if (rc == 0 && b->metadata_file && write_metadata(img, &opts->tags, b->metadata_file) < 0)
        rc = 1;
    if (b->iidfile) {
        _cleanup_free_ char *line = mk_xasprintf("%s", img->config_digest);
        if (mk_write_file_atomic(AT_FDCWD, b->iidfile, line, strlen(line), 0644, &err) < 0) {
            mk_error_set_where(&err, b->iidfile);
            rc = cli_fail(err);
        }
    }
    return rc;
}

/* The build itself, its report, and what comes after it. */
static int build_run(struct mk_store *store, struct build_cli *b, const char *context)
{
    struct mk_build_opts *opts = &b->opts;
    _cleanup_(builder_source_release) struct builder_source src = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mk_error *err = NULL;
    if (builder_source_prepare(store, context, opts->dockerfile, &b->ropts, &src, &err) < 0 ||
        builder_named_contexts_prepare(store, &b->named_contexts, &b->ropts, &opts->named_contexts,
                                       &err) < 0)
        return cli_fail(err);
    opts->context_dir = src.context_dir;
    if (src.dockerfile) {
        opts->df_name = opts->dockerfile && strcmp(opts->dockerfile, "-") != 0 ? opts->dockerfile
                                                                               : "Dockerfile";
        opts->dockerfile = src.dockerfile;
    }
    cli_debug("build: context %s, Dockerfile %s", opts->context_dir,
              opts->dockerfile ? opts->dockerfile : "(the context's)");
    opts->export_rootfs = outputs_rootfs(&b->outputs);
    if (opts->platform && strchr(opts->platform, ',')) {
        if (b->metadata_file)
            cli_warn("--metadata-file is not written for several platforms yet");
        return cli_build_platforms(store, opts, &b->outputs, b->push, &b->ropts, b->manifest_list,
                                   b->iidfile);
    }
    struct mk_image *img = NULL;
    /* Only pushed: layers a registry cache holds can stay there (docs/remote-cache.md). */
    opts->lazy_push =
        !b->manifest_list && (b->outputs.n == 0 ? b->push : outputs_push_only(&b->outputs));
    if (builder_build(store, opts, &img, &err) < 0)
        return cli_fail(err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!opts->quiet && opts->progress != MK_PROGRESS_RAWJSON) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        for (size_t i = 0; i < opts->tags.n; i++)
            fprintf(stderr, "tagged %s\n", opts->tags.v[i]);
        fprintf(stderr, "built %s in %.2fs\n", img->config_digest, secs);
    }
    /* An output on stdout is all that goes there, as with buildx. */
    if (!b->stdout_taken) {
        printf("%s\n", img->config_digest);
        fflush(stdout);
    }
    int rc = build_finish(store, b, img);
    layerstore_image_free(img);
    return rc;
}

int cmd_build(struct mk_cli *cli, int argc, char **argv)
{
    _cleanup_(build_cli_release) struct build_cli b;
    memset(&b, 0, sizeof(b));
    b.ropts.retries = -1;
    b.opts.registry = &b.ropts;
    b.opts.log_fd = STDERR_FILENO;
    struct cli_args a;
    cli_args_init(&a, &cli_cmd_build, argc, argv);
    for (int id, rc; (id = cli_args_next(&a)) != CLI_ARGS_END;) {
        if (id == CLI_ARGS_EXIT)
            return a.status;
        if ((rc = build_opt(&b, id, a.arg)) != 0)
            return rc;
    }
    /* Options may follow the context (argv is permuted, as docker's parser allows). */
    if (a.first != argc - 1)
        return cli_usage("build: expected exactly one CONTEXT (a directory, \"-\" or a URL; see "
                         "\"mkimg build --help\")");
    const char *context = argv[a.first];
    int rc = build_check(&b, context);
    if (rc != 0)
        return rc;
    if (b.opts.platform && strchr(b.opts.platform, ',') &&
        (rc = cli_build_platforms_check(&b.opts, &b.outputs)) != 0)
        return rc;
    struct mk_store *store = cli_store(cli);
    if (!store)
        return 1;
    return build_run(store, &b, context);
}
