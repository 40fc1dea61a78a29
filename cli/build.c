/* cli/build.c - mkimg build [OPTIONS] CONTEXT */
#include <fcntl.h>
#include <getopt.h>
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

static void build_usage(FILE *f)
{
    fputs(
        "usage: mkimg build [OPTIONS] CONTEXT  (a directory, \"-\" for a tar on stdin, an\n"
        "                                     http(s) tarball URL or a git URL REPO#REF:DIR)\n"
        "  -t, --tag NAME[:TAG]     name the image (repeatable)\n"
        "  -f, --file FILE          the Dockerfile (default CONTEXT/Dockerfile; \"-\": stdin)\n"
        "      --build-arg K[=V]    set a build-time variable (V from the environment if omitted)\n"
        "      --target STAGE       build up to this stage\n"
        "      --secret id=ID[,src=PATH|,env=VAR]  a secret for RUN --mount=type=secret (id=X\n"
        "                           alone: the variable X, else the file X; must exist)\n"
        "      --network MODE       default (host), host or none for RUN\n"
        "      --no-cache           do not use the build cache\n"
        "      --push               push every -t name to its registry after the build\n"
        "  -o, --output SPEC        also write the result: type=oci|docker,dest=FILE.tar|-,\n"
        "                           type=oci,dest=DIR/, type=tar,dest=FILE|-, "
        "type=local,dest=DIR,\n"
        "                           type=image[,push=true], type=registry; name=NAME (else the -t\n"
        "                           names), compression=gzip|zstd|uncompressed,\n"
        "                           compression-level=N (a plain DIR: type=local; -: a tar on\n"
        "                           stdout)\n"
        "      --explain-cache      for each step that misses the cache, say which input changed\n"
        "      --pull[=POLICY]      base images: missing (default), always, never "
        "(offline)\n" CLI_REGISTRY_HELP
        "      --ignorefile FILE    use FILE instead of the context's .dockerignore\n"
        "      --iidfile FILE       write the image ID to FILE\n"
        "      --progress MODE      auto, plain, tty, rawjson or quiet (default:\n"
        "                           $BUILDKIT_PROGRESS, else auto)\n"
        "      --load               accepted: the image always goes to the local store\n"
        "  -q, --quiet              print only the image ID\n"
        "      --label K=V          set a label on the image (repeatable)\n"
        "      --annotation K=V     set an annotation on the image's manifest (repeatable)\n"
        "      --metadata-file FILE write the image's digests and names to FILE as JSON\n"
        "      --platform P[,P...]  the target platforms (e.g. linux/amd64,linux/arm64): an index\n"
        "      --manifest LIST      add the image(s) to the manifest list LIST (made if missing)\n"
        "      --timestamp SECONDS  clamp created times and file mtimes (as SOURCE_DATE_EPOCH)\n"
        "      --squash             merge the layers this build adds into one\n"
        "  -j, --jobs N             build up to N independent stages at once (default: all)\n"
        "      --allow ENTITLEMENT  security.insecure: let RUN --security=insecure run with\n"
        "                           every privilege (no seccomp, all capabilities);\n"
        "                           network.host: accepted (RUN has the host's network)\n",
        f);
}

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
        struct registry_opts po = *ropts;
        po.compression = o.compression == MK_COMPRESS_ZSTD   ? "zstd"
                         : o.compression == MK_COMPRESS_NONE ? "none"
                                                             : NULL;
        for (size_t i = 0; i < names->n; i++) {
            char digest[MK_DIGEST_SIZE];
            if (layerstore_tag(store, img, names->v[i], &err) < 0 ||
                (o.push && registry_push(store, names->v[i], NULL, &po, digest, &err) < 0))
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
     * that name, and one asked by ID under all of its tags. An OCI index lists one image per
     * name, and skopeo or podman refuse an archive that holds several, so an OCI export
     * records the first name; a Docker archive's RepoTags take every one. */
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

int cmd_build(struct mk_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tag", required_argument, NULL, 't'},
        {"file", required_argument, NULL, 'f'},
        {"build-arg", required_argument, NULL, 'a'},
        {"secret", required_argument, NULL, 's'},
        {"target", required_argument, NULL, 'T'},
        {"network", required_argument, NULL, 'n'},
        {"no-cache", no_argument, NULL, 'N'},
        {"push", no_argument, NULL, 'U'},
        {"output", required_argument, NULL, 'o'},
        {"explain-cache", no_argument, NULL, 'X'},
        {"pull", optional_argument, NULL, 'P'},
        {"ignorefile", required_argument, NULL, 'I'},
        {"iidfile", required_argument, NULL, 'i'},
        {"progress", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"label", required_argument, NULL, 'L'},
        {"annotation", required_argument, NULL, 'A'},
        {"metadata-file", required_argument, NULL, 'M'},
        {"platform", required_argument, NULL, 'F'},
        {"manifest", required_argument, NULL, 'm'},
        {"timestamp", required_argument, NULL, 'S'},
        {"squash", no_argument, NULL, 'Q'},
        {"jobs", required_argument, NULL, 'j'},
        {"allow", required_argument, NULL, 'W'},
        {"load", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        CLI_REGISTRY_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct mk_build_opts opts;
    memset(&opts, 0, sizeof(opts));
    struct registry_opts ropts;
    memset(&ropts, 0, sizeof(ropts));
    ropts.retries = -1;
    opts.registry = &ropts;
    opts.log_fd = STDERR_FILENO;
    const char *iidfile = NULL, *metadata_file = NULL, *manifest_list = NULL, *timestamp = NULL;
    bool push = false, progress_given = false;
    struct mk_strv outputs = MK_STRV_INIT;
    _cleanup_(builder_source_release) struct builder_source src = {0};
    int rc = 2;
    int c, idx = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "t:f:o:j:qh", longopts, &idx)) != -1) {
        switch (c) {
        case 1: /* --tls-verify, --cert-dir, --authfile, --creds, --retry */
            if ((rc = cli_registry_opt(&ropts, longopts[idx].name, optarg)) != 0)
                goto out;
            rc = 2;
            break;
        case 't':
            mk_strv_push(&opts.tags, optarg);
            break;
        case 'f':
            opts.dockerfile = optarg;
            break;
        case 'a':
            mk_strv_push(&opts.build_args, optarg);
            break;
        case 'T':
            opts.target = optarg;
            break;
        case 's':
            if ((rc = parse_secret(optarg, &opts.secrets)) != 0)
                goto out;
            rc = 2;
            break;
        case 'n':
            if (strcmp(optarg, "none") == 0)
                opts.network = MK_NET_NONE;
            else if (strcmp(optarg, "host") == 0 || strcmp(optarg, "default") == 0)
                opts.network = MK_NET_HOST;
            else {
                rc = cli_usage("build: unknown --network \"%s\" (use default, host or none)",
                               optarg);
                goto out;
            }
            break;
        case 'W':
            /* network.host: RUN has the host's network unless --network=none says otherwise. */
            if (strcmp(optarg, "network.host") == 0)
                break;
            if (strcmp(optarg, "security.insecure") != 0) {
                rc = cli_usage("build: unknown --allow \"%s\" (security.insecure or network.host)",
                               optarg);
                goto out;
            }
            opts.allow_insecure = true;
            break;
        case 'N':
            opts.no_cache = true;
            break;
        case 'U':
            push = true;
            break;
        case 'o':
            mk_strv_push(&outputs, optarg);
            break;
        case 'X':
            opts.explain_cache = true;
            break;
        case 'P': {
            int p = registry_pull_policy_parse(optarg ? optarg : "always");
            if (p < 0) {
                rc = cli_usage("build: unknown --pull \"%s\" (use missing, always or never)",
                               optarg);
                goto out;
            }
            opts.pull = (enum registry_pull_policy)p;
            break;
        }
        case 'I':
            opts.ignorefile = optarg;
            break;
        case 'i':
            iidfile = optarg;
            break;
        case 'p':
            if ((rc = parse_progress("--progress", optarg, &opts)) != 0)
                goto out;
            progress_given = true;
            rc = 2;
            break;
        case 'D': /* --load: the image is in the local store anyway */
            break;
        case 'L':
        case 'A':
            if (!*optarg || *optarg == '=') {
                rc = cli_usage("build: --%s needs KEY=VALUE", c == 'L' ? "label" : "annotation");
                goto out;
            }
            mk_strv_push(c == 'L' ? &opts.labels : &opts.annotations, optarg);
            break;
        case 'M':
            metadata_file = optarg;
            break;
        case 'F':
            opts.platform = optarg;
            break;
        case 'm':
            manifest_list = optarg;
            break;
        case 'S': {
            int64_t v;
            if (!*optarg || mk_epoch_parse(optarg, &v, NULL) < 0) {
                rc = cli_usage("build: --timestamp takes seconds since the epoch, not \"%s\"",
                               optarg);
                goto out;
            }
            timestamp = optarg;
            break;
        }
        case 'Q':
            opts.squash = true;
            break;
        case 'j': {
            uint64_t v;
            if (mk_parse_u64(optarg, &v) < 0 || v < 1 || v > 64) {
                rc = cli_usage("build: --jobs takes a number from 1 to 64, not \"%s\"", optarg);
                goto out;
            }
            opts.jobs = (unsigned)v;
            break;
        }
        case 'q':
            opts.quiet = true;
            break;
        case 'h':
            build_usage(stdout);
            rc = 0;
            goto out;
        default:
            rc = cli_usage("build: unknown option \"%s\" (see \"mkimg build --help\")",
                           argv[optind - 1]);
            goto out;
        }
    }
    /* The epoch: --build-arg SOURCE_DATE_EPOCH=N (as BuildKit), else --timestamp (as
     * buildah), else the environment's (as buildx passes it on). */
    const char *epoch_what = "--timestamp";
    for (size_t i = 0; i < opts.build_args.n; i++)
        if (mk_str_has_prefix(opts.build_args.v[i], "SOURCE_DATE_EPOCH=")) {
            timestamp = opts.build_args.v[i] + 18;
            epoch_what = "--build-arg SOURCE_DATE_EPOCH";
        }
    if ((rc = cli_epoch(timestamp, epoch_what, &opts.epoch)) != 0)
        goto out;
    /* As with buildx, BUILDKIT_PROGRESS is the default --progress. */
    const char *env_progress = getenv("BUILDKIT_PROGRESS");
    if (!progress_given && env_progress && *env_progress &&
        (rc = parse_progress("BUILDKIT_PROGRESS", env_progress, &opts)) != 0)
        goto out;
    rc = 2;
    /* Options may follow the context (getopt permutes argv, as docker's parser allows). */
    if (optind != argc - 1) {
        rc = cli_usage("build: expected exactly one CONTEXT (a directory, \"-\" or a URL; see "
                       "\"mkimg build --help\")");
        goto out;
    }
    const char *context = argv[optind];
    if (opts.dockerfile && strcmp(opts.dockerfile, "-") == 0 && strcmp(context, "-") == 0) {
        rc = cli_usage("build: the build context and the Dockerfile cannot both come from stdin");
        goto out;
    }
    for (size_t i = 0; i < opts.tags.n; i++)
        if ((rc = cli_check_new_name(opts.tags.v[i])) != 0)
            goto out;
    if (push && opts.tags.n == 0) {
        rc = cli_usage("build: --push needs a name to push to (-t NAME)");
        goto out;
    }
    /* A bad --output is a usage error before any work, not after the build. */
    bool stdout_taken = false;
    for (size_t i = 0; i < outputs.n; i++) {
        _cleanup_(output_release) struct output o;
        if ((rc = output_parse(outputs.v[i], &o)) != 0)
            goto out;
        if (o.dest && strcmp(o.dest, "-") == 0 && strcmp(o.type, "local") != 0) {
            if (stdout_taken) {
                rc = cli_usage("build: only one --output can go to stdout");
                goto out;
            }
            stdout_taken = true;
        }
    }
    rc = 2;

    bool several = opts.platform && strchr(opts.platform, ',');
    if (several && (rc = cli_build_platforms_check(&opts, &outputs)) != 0)
        goto out;
    struct mk_store *store = cli_store(cli);
    if (!store) {
        rc = 1;
        goto out;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct mk_image *img = NULL;
    struct mk_error *err = NULL;
    if (builder_source_prepare(store, context, opts.dockerfile, &ropts, &src, &err) < 0) {
        rc = cli_fail(err);
        goto out;
    }
    opts.context_dir = src.context_dir;
    if (src.dockerfile) {
        opts.df_name =
            opts.dockerfile && strcmp(opts.dockerfile, "-") != 0 ? opts.dockerfile : "Dockerfile";
        opts.dockerfile = src.dockerfile;
    }
    if (several) {
        if (metadata_file)
            cli_warn("--metadata-file is not written for several platforms yet");
        rc = cli_build_platforms(store, &opts, &outputs, push, &ropts, manifest_list, iidfile);
        goto out;
    }
    if (builder_build(store, &opts, &img, &err) < 0) {
        rc = cli_fail(err);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!opts.quiet && opts.progress != MK_PROGRESS_RAWJSON) {
        double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        for (size_t i = 0; i < opts.tags.n; i++)
            fprintf(stderr, "tagged %s\n", opts.tags.v[i]);
        fprintf(stderr, "built %s in %.2fs\n", img->config_digest, secs);
    }
    /* An output on stdout is all that goes there, as with buildx. */
    if (!stdout_taken) {
        printf("%s\n", img->config_digest);
        fflush(stdout);
    }
    rc = 0;
    for (size_t i = 0; rc == 0 && i < outputs.n; i++)
        rc = write_output(store, img, outputs.v[i], &opts.tags, &ropts, opts.quiet, opts.epoch);
    if (rc == 0 && manifest_list) {
        const char *d = img->manifest_digest;
        char list_digest[MK_DIGEST_SIZE];
        if (cli_manifest_add(store, manifest_list, &d, 1, false, list_digest, &err) < 0)
            rc = cli_fail(err);
    }
    for (size_t i = 0; push && rc == 0 && i < opts.tags.n; i++) {
        char digest[MK_DIGEST_SIZE];
        if (registry_push(store, opts.tags.v[i], NULL, &ropts, digest, &err) < 0) {
            rc = cli_fail(err);
            break;
        }
        if (!opts.quiet)
            fprintf(stderr, "pushed %s@%s\n", opts.tags.v[i], digest);
    }
    if (rc == 0 && metadata_file && write_metadata(img, &opts.tags, metadata_file) < 0)
        rc = 1;
    if (iidfile) {
        _cleanup_free_ char *line = mk_xasprintf("%s", img->config_digest);
        if (mk_write_file_atomic(AT_FDCWD, iidfile, line, strlen(line), 0644, &err) < 0) {
            mk_error_set_where(&err, iidfile);
            rc = cli_fail(err);
        }
    }
    layerstore_image_free(img);
out:
    mk_strv_release(&opts.tags);
    mk_strv_release(&opts.build_args);
    mk_strv_release(&opts.secrets);
    mk_strv_release(&opts.labels);
    mk_strv_release(&opts.annotations);
    mk_strv_release(&outputs);
    return rc;
}
