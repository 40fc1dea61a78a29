/* builder/stages.c - the stage graph: stages of the Dockerfile, which ones the target needs,
 * their platforms, FROM (an image or an earlier stage), ONBUILD, and the root file system of a
 * stage or image that COPY --from and RUN --mount=from= read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "builder/rooms.h"
#include "common/fsutil.h"
#include "parser/parser.h"

static struct stage *find_stage(struct build *b, const char *name, size_t before);
static struct stage *source_stage(struct build *b, const char *name, size_t before);

/* COPY --from: the source stage's or image's root, mounted read-only-in-practice by a
 * sandbox child that hands an fd of it back over a socket. The mount outlives the child's
 * mount namespace as long as the fd is open (like a lazy unmount), and disappears with it. */
static int send_root_fn(int rootfd, void *arg, struct mk_error **err)
{
    int sock = *(int *)arg;
    char byte = 'r';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &rootfd, sizeof(int));
    if (sendmsg(sock, &msg, 0) != 1)
        return mk_error_errno(err, "handing over the source root");
    return 0;
}

static int recv_fd(int sock, struct mk_error **err)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    if (recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
        return mk_error_errno(err, "receiving the source root");
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return mk_error_set(err, MK_ERR_IO, 0, "receiving the source root: no descriptor");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

void src_root_release(struct build *b, struct src_root *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->tmp) {
        layerstore_tmpdir_remove(b->store, r->tmp, NULL);
        free(r->tmp);
        r->tmp = NULL;
    }
}

int src_root_open(struct build *b, const struct mk_strv *lowerdirs, struct src_root *r,
                  struct mk_error **err)
{
    r->fd = -1;
    if (b->probing)
        return probe_stop(err);
    struct mk_workspace ws;
    if (snapshots_ensure(b, lowerdirs, err) < 0 || rcache_fetch(b, lowerdirs, err) < 0 ||
        builder_workspace_new(b->store, "src-", &ws, err) < 0)
        return -1;
    r->tmp = MK_TAKE_PTR(ws.tmp);
    _cleanup_free_ char *upper = MK_TAKE_PTR(ws.upper);
    _cleanup_free_ char *work = MK_TAKE_PTR(ws.work);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        return mk_error_errno(err, "socketpair");
    struct mk_sandbox_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.lowerdirs = lowerdirs;
    spec.upperdir = upper;
    spec.workdir = work;
    spec.stdout_fd = spec.stderr_fd = -1;
    int rc = builder_sandbox_call(&spec, send_root_fn, &sv[1], err);
    if (rc == 0)
        r->fd = recv_fd(sv[0], err);
    close(sv[0]);
    close(sv[1]);
    return rc < 0 || r->fd < 0 ? -1 : 0;
}

/* The image name for the stage's platform (FROM, COPY --from, RUN --mount from=): from a
 * name that holds several, or pulled for it. For the host's platform a plain image of any
 * platform is taken, as before there were platforms. */
static int stage_image_get(struct build *b, const struct stage *s, const char *name,
                           struct mk_image **ret, struct mk_error **err)
{
    /* A named context: an image reference, or the ID of the image made of a directory, a
     * remote context or an OCI layout (in the store, never pulled). */
    const char *named = builder_named_context(&b->opts->named_contexts, name);
    if (named && mk_digest_valid(named))
        return layerstore_image_get(b->store, named, ret, err);
    name = named ? named : name;
    struct registry_opts ropts;
    if (b->opts->registry)
        ropts = *b->opts->registry;
    else
        memset(&ropts, 0, sizeof(ropts));
    char plat[MK_PLATFORM_MAX];
    mk_platform_format(&s->platform, plat);
    struct mk_platform host;
    mk_platform_host(&host);
    if (!mk_platform_equal(&s->platform, &host))
        ropts.platform = plat;
    /* A pulled base joins the platforms the name holds: the next platform's build finds
     * it, and this one's stays. */
    ropts.add_platform = true;
    /* A probe takes what the store has (it is not made with --pull=always): a pull, or the
     * layers of a lazy image, are work for a helper process. */
    if (b->probing)
        return registry_image_get(b->store, name, REGISTRY_PULL_NEVER, &ropts, ret, err);
    /* A lazy image of this store (docs/remote-cache.md): its layers fetched first. */
    if (builder_lazy_complete(b->store, name, b->opts->registry, err) < 0)
        return -1;
    return registry_image_get(b->store, name, b->opts->pull, &ropts, ret, err);
}

/* Lowerdirs of a --from value: an earlier stage (by name or index) or an image. */
int from_lowerdirs(struct build *b, struct stage *s, const struct mk_df_node *n, const char *from,
                   struct mk_strv *ret, struct mk_error **err)
{
    struct stage *src = source_stage(b, from, s->index);
    if (src) {
        if (!src->built)
            return node_error(b, n, err, "stage \"%s\" was not built", from);
        mk_strv_copy(ret, &src->lowerdirs);
        return 0;
    }
    struct mk_image *img = NULL;
    if (stage_image_get(b, s, from, &img, err) < 0) {
        if (*err && (*err)->code == MK_ERR_NOT_FOUND && b->opts->pull == REGISTRY_PULL_NEVER) {
            mk_error_free(*err);
            *err = NULL;
            return node_error(b, n, err,
                              "--from=%s names no earlier stage and no image in the store", from);
        }
        return node_error(b, n, err, "--from=%s names no earlier stage, and as an image", from);
    }
    int r = builder_image_lowerdirs(b->store, img, ret, err);
    layerstore_image_free(img);
    return r < 0 ? node_where(b, n, err) : 0;
}

/* ---- stages ------------------------------------------------------------------------------- */

static int stage_from_base(struct build *b, struct stage *s, const struct mk_inst *in,
                           struct mk_error **err);

/* Like BuildKit, a stage whose base sets no PATH gets the default one in its config. */
int stage_from(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err)
{
    if (stage_from_base(b, s, in, err) < 0)
        return -1;
    if (!mk_strv_env_get(&s->config.env, "PATH"))
        mk_strv_env_set(&s->config.env, "PATH", MK_DEFAULT_PATH_ENV + 5);
    return 0;
}

static int stage_from_base(struct build *b, struct stage *s, const struct mk_inst *in,
                           struct mk_error **err)
{
    const struct mk_df_node *n = in->node;
    _cleanup_free_ char *image = NULL;
    int r = mk_shell_word(in->from.image, &b->meta_args, b->df->escape, &image, err);
    if (r < 0)
        return node_where(b, n, err);
    if (!*image)
        return node_error(b, n, err, "base name (%s) should not be blank", in->from.image);
    s->base_name = mk_xstrdup(image);

    /* An earlier stage by name (case-insensitive) or index, unless a named context is. */
    const char *named = builder_named_context(&b->opts->named_contexts, image);
    for (size_t i = 0; !named && i < s->index; i++) {
        struct stage *p = &b->stages[i];
        char idx[32];
        snprintf(idx, sizeof(idx), "%zu", i);
        if ((p->name && strcasecmp(p->name, image) == 0)) {
            if (!p->built)
                return node_error(b, n, err, "stage \"%s\" was not built", image);
            layerstore_config_copy(&s->config, &p->config);
            for (size_t l = 0; l < p->n_layers; l++) {
                s->layers = mk_xreallocarray(s->layers, s->n_layers + 1, sizeof(*s->layers));
                s->layers[s->n_layers] = p->layers[l];
                s->layers[s->n_layers].media_type = mk_xstrdup(p->layers[l].media_type);
                s->n_layers++;
            }
            memcpy(s->chain, p->chain, MK_DIGEST_SIZE);
            mk_strv_copy(&s->lowerdirs, &p->lowerdirs);
            s->base_ref = p->base_ref ? mk_xstrdup(p->base_ref) : NULL;
            memcpy(s->base_digest, p->base_digest, MK_DIGEST_SIZE);
            s->n_base_layers = p->n_base_layers;
            s->n_base_history = p->n_base_history;
            return 0;
        }
    }
    if (strcasecmp(image, "scratch") == 0) {
        s->config.os = mk_xstrdup(s->platform.os);
        s->config.architecture = mk_xstrdup(s->platform.arch);
        s->config.variant = s->platform.variant[0] ? mk_xstrdup(s->platform.variant) : NULL;
        return 0;
    }
    struct mk_image *img = NULL;
    if (stage_image_get(b, s, image, &img, err) < 0)
        return node_error(b, n, err, "base image \"%s\"", image);
    layerstore_config_copy(&s->config, &img->config);
    s->n_layers = img->n_layers;
    s->layers = mk_xcalloc(img->n_layers ? img->n_layers : 1, sizeof(*s->layers));
    for (size_t l = 0; l < img->n_layers; l++) {
        s->layers[l] = img->layers[l];
        s->layers[l].media_type = mk_xstrdup(img->layers[l].media_type);
    }
    layerstore_image_chain_id(img, img->n_layers, s->chain);
    s->n_base_layers = img->n_layers;
    s->n_base_history = s->config.n_history;
    if (!named || !mk_digest_valid(named)) {
        /* "busybox" -> "docker.io/library/busybox:latest", as BuildKit writes base.name. */
        const char *base = named ? named : image;
        struct mk_ref *ref = NULL;
        s->base_ref =
            mk_ref_parse(base, &ref, NULL) == 0 ? mk_ref_qualified(ref) : mk_xstrdup(base);
        mk_ref_free(ref);
    }
    memcpy(s->base_digest, img->manifest_digest, MK_DIGEST_SIZE);
    r = builder_image_lowerdirs(b->store, img, &s->lowerdirs, err);
    layerstore_image_free(img);
    if (r < 0)
        return node_error(b, n, err, "preparing base image \"%s\"", image);
    return 0;
}

void stage_reset(struct stage *s)
{
    free(s->base_name);
    free(s->base_ref);
    layerstore_config_release(&s->config);
    memset(&s->config, 0, sizeof(s->config));
    for (size_t i = 0; i < s->n_layers; i++)
        free(s->layers[i].media_type);
    free(s->layers);
    mk_strv_release(&s->lowerdirs);
    mk_strv_release(&s->args);
    mk_strv_release(&s->arg_names);
    s->base_name = s->base_ref = NULL;
    s->layers = NULL;
    s->n_layers = s->n_base_layers = s->n_base_history = 0;
    s->chain[0] = s->base_digest[0] = '\0';
    s->cmd_set = s->built = false;
}

int probe_stop(struct mk_error **err)
{
    return mk_error_set(err, MK_ERR_FAILED, 0, "not a cache hit");
}

/* ONBUILD triggers of the base image run first, as if written after FROM. */
int run_onbuild(struct build *b, struct stage *s, const struct mk_df_node *from,
                struct mk_error **err)
{
    if (!s->config.onbuild.n)
        return 0;
    struct mk_strv triggers = MK_STRV_INIT;
    mk_strv_copy(&triggers, &s->config.onbuild);
    mk_strv_clear(&s->config.onbuild);
    int ret = 0;
    for (size_t i = 0; i < triggers.n && ret == 0; i++) {
        struct mk_df *df = NULL;
        if (mk_df_parse(triggers.v[i], strlen(triggers.v[i]), b->df_name, &df, err) < 0) {
            ret = node_where(b, from, err);
            break;
        }
        for (size_t k = 0; k < df->n_nodes && ret == 0; k++) {
            /* The trigger runs as if written at the FROM line. */
            struct mk_df_node *tn = &df->nodes[k];
            tn->start_line = from->start_line;
            tn->end_line = from->end_line;
            struct mk_inst in;
            logf_(b, "  ONBUILD %s\n", tn->original);
            ret = mk_inst_parse_node(tn, b->df_name, &in, err);
            if (ret == 0 && in.kind == MK_INST_FROM)
                ret = node_error(b, tn, err, "FROM isn't allowed as an ONBUILD trigger");
            if (ret == 0)
                ret = run_instruction(b, s, &in, err);
            mk_inst_release(&in);
        }
        mk_df_free(df);
    }
    mk_strv_release(&triggers);
    return ret;
}

/* BuildKit's automatic platform args, in the global scope (a stage redeclares them). */
void predefined_args(struct build *b)
{
    struct mk_platform host;
    mk_platform_host(&host);
    char tp[MK_PLATFORM_MAX], bp[MK_PLATFORM_MAX];
    mk_platform_format(&b->target_platform, tp);
    mk_platform_format(&host, bp);
    const char *names[][2] = {
        {"TARGETPLATFORM", tp},
        {"TARGETOS", b->target_platform.os},
        {"TARGETARCH", b->target_platform.arch},
        {"TARGETVARIANT", b->target_platform.variant},
        {"BUILDPLATFORM", bp},
        {"BUILDOS", host.os},
        {"BUILDARCH", host.arch},
        {"BUILDVARIANT", host.variant},
    };
    for (size_t i = 0; i < MK_ARRAY_SIZE(names); i++)
        if (!mk_strv_env_get(&b->meta_args, names[i][0]))
            mk_strv_env_set(&b->meta_args, names[i][0], names[i][1]);
}

/* Marks the target and the stages it needs (FROM <stage>, COPY --from=<stage>). */
static struct stage *find_stage(struct build *b, const char *name, size_t before)
{
    for (size_t i = 0; i < before; i++)
        if (b->stages[i].name && strcasecmp(b->stages[i].name, name) == 0)
            return &b->stages[i];
    uint64_t idx;
    if (mk_parse_u64(name, &idx) == 0 && idx < before)
        return &b->stages[idx];
    return NULL;
}

/* The stage a FROM, --from or from= names; none when a named context of that name replaces
 * it (as buildx: the stage is then neither needed nor built). */
static struct stage *source_stage(struct build *b, const char *name, size_t before)
{
    return builder_named_context(&b->opts->named_contexts, name) ? NULL
                                                                 : find_stage(b, name, before);
}

/* The values an ARG line gives, as do_arg computes them, without side effects: enough to
 * know which stage a "COPY --from=${ARG}" needs before the stage runs. */
static void needed_scope_arg(struct build *b, struct mk_strv *scope, const struct mk_inst *in)
{
    for (size_t i = 0; i < in->n_kvs; i++) {
        const char *name = in->kvs[i].key, *word = in->kvs[i].value;
        _cleanup_free_ char *def = NULL;
        if (word && mk_shell_word(word, scope, b->df->escape, &def, NULL) < 0)
            continue;
        const char *v = mk_strv_env_get(&b->build_args, name);
        if (!v)
            v = word ? def : mk_strv_env_get(&b->meta_args, name);
        mk_strv_env_set(scope, name, v ? v : "");
    }
}

static int mark_needed(struct build *b, size_t i, struct mk_error **err);

/* Stage s uses the stage that word names (when it names one): it is needed, and s waits for
 * it. "${VARIANT}": the stage's ARGs as declared so far (scope) name the stage. */
static int need_dep(struct build *b, struct stage *s, const char *word, const struct mk_strv *scope,
                    struct mk_error **err)
{
    _cleanup_free_ char *expanded = NULL;
    if (strchr(word, '$') && mk_shell_word(word, scope, b->df->escape, &expanded, NULL) == 0)
        word = expanded;
    struct stage *d = source_stage(b, word, s->index);
    if (!d)
        return 0;
    s->deps = mk_xreallocarray(s->deps, s->n_deps + 1, sizeof(*s->deps));
    s->deps[s->n_deps++] = d->index;
    return mark_needed(b, d->index, err);
}

static int mark_needed(struct build *b, size_t i, struct mk_error **err)
{
    struct stage *s = &b->stages[i];
    if (s->needed)
        return 0;
    s->needed = true;
    _cleanup_(mk_strv_release) struct mk_strv scope = MK_STRV_INIT;
    const struct mk_inst *from = &b->insts.v[s->first];
    _cleanup_free_ char *base = NULL;
    if (mk_shell_word(from->from.image, &b->meta_args, b->df->escape, &base, err) < 0)
        return node_where(b, from->node, err);
    if (need_dep(b, s, base, &scope, err) < 0)
        return -1;
    for (size_t k = s->first + 1; k < s->end; k++) {
        const struct mk_inst *in = &b->insts.v[k];
        if (in->kind == MK_INST_ARG)
            needed_scope_arg(b, &scope, in);
        if ((in->kind == MK_INST_COPY || in->kind == MK_INST_ADD) && in->copy.from &&
            need_dep(b, s, in->copy.from, &scope, err) < 0)
            return -1;
        for (size_t m = 0; in->kind == MK_INST_RUN && m < in->run.n_mounts; m++)
            if (in->run.mounts[m].from && need_dep(b, s, in->run.mounts[m].from, &scope, err) < 0)
                return -1;
    }
    return 0;
}

int split_stages(struct build *b, struct mk_error **err)
{
    struct mk_df *df = b->df;
    size_t i = 0;
    /* Global ARGs before the first FROM. */
    /* mk_inst_parse made sure only ARGs come before the first FROM, and that there is one. */
    for (; i < df->n_nodes && b->insts.v[i].kind != MK_INST_FROM; i++)
        if (do_arg(b, NULL, &b->meta_args, &b->insts.v[i], err) < 0)
            return -1;
    for (; i < df->n_nodes; i++) {
        const struct mk_inst *in = &b->insts.v[i];
        if (in->kind != MK_INST_FROM) {
            b->stages[b->n_stages - 1].end = i + 1;
            continue;
        }
        b->stages = mk_xreallocarray(b->stages, b->n_stages + 1, sizeof(*b->stages));
        struct stage *s = &b->stages[b->n_stages];
        memset(s, 0, sizeof(*s));
        s->index = b->n_stages++;
        s->first = i;
        s->end = i + 1;
        /* lowercase, and unique (mk_inst_parse) */
        s->name = in->from.name ? mk_xstrdup(in->from.name) : NULL;
    }
    if (b->opts->target && *b->opts->target) {
        struct stage *t = find_stage(b, b->opts->target, b->n_stages);
        if (!t || !t->name || strcasecmp(t->name, b->opts->target) != 0)
            return mk_error_set(err, MK_ERR_USAGE, 0, "target stage \"%s\" could not be found",
                                b->opts->target);
        b->target = t->index;
    } else {
        b->target = b->n_stages - 1;
    }
    if (mark_needed(b, b->target, err) < 0)
        return -1;
    for (size_t k = 0; k < b->n_stages; k++)
        if (b->stages[k].needed) {
            b->stages[k].step0 = b->n_steps;
            b->n_steps += b->stages[k].end - b->stages[k].first;
        }
    return 0;
}

/* Each stage's platform, before anything runs: FROM --platform (expanded with the global
 * args, so $BUILDPLATFORM works), else the stage it starts from, else the target. A needed
 * stage with RUN on a platform this host cannot run fails here, not with "exec format
 * error" halfway through the build. */
int stage_platforms(struct build *b, struct mk_error **err)
{
    for (size_t i = 0; i < b->n_stages; i++) {
        struct stage *s = &b->stages[i];
        const struct mk_inst *in = &b->insts.v[s->first];
        const struct mk_df_node *n = in->node;
        s->platform = b->target_platform;
        const char *flag = in->from.platform;
        _cleanup_free_ char *image = NULL;
        struct mk_strv env = MK_STRV_INIT;
        mk_strv_copy(&env, &b->meta_args);
        int r = mk_shell_word(in->from.image, &env, b->df->escape, &image, NULL);
        const struct stage *from = r == 0 ? source_stage(b, image, i) : NULL;
        if (from && from->name && strcasecmp(from->name, image) == 0) {
            s->platform = from->platform;
            s->pinned = from->pinned;
        }
        if (flag) {
            s->pinned = true;
            _cleanup_free_ char *p = NULL;
            r = mk_shell_word(flag, &env, b->df->escape, &p, err);
            if (r == 0)
                r = mk_platform_parse(p, &s->platform, err);
            if (r < 0) {
                mk_strv_release(&env);
                return node_where(b, n, err);
            }
        }
        mk_strv_release(&env);
        if (!s->needed)
            continue;
        for (size_t k = s->first + 1; k < s->end; k++)
            if (b->insts.v[k].kind == MK_INST_RUN) {
                if (builder_platform_check_run(&s->platform, err) < 0)
                    return node_where(b, &b->df->nodes[k], err);
                break;
            }
    }
    return 0;
}

/* opts->pinned_only: only the needed stages whose platform FROM --platform fixes, and what
 * they use, are built (the last of them as the target). Returns how many. */
size_t keep_pinned(struct build *b)
{
    size_t kept = 0;
    for (size_t i = b->n_stages; i-- > 0;) {
        struct stage *s = &b->stages[i];
        bool keep = s->needed && s->pinned;
        for (size_t k = i + 1; !keep && k < b->n_stages; k++)
            for (size_t d = 0; b->stages[k].needed && d < b->stages[k].n_deps; d++)
                keep |= b->stages[k].deps[d] == i;
        s->needed = keep;
        if (keep && !kept++)
            b->target = i;
    }
    b->n_steps = 0;
    for (size_t k = 0; k < b->n_stages; k++)
        if (b->stages[k].needed) {
            b->stages[k].step0 = b->n_steps;
            b->n_steps += b->stages[k].end - b->stages[k].first;
        }
    return kept;
}
