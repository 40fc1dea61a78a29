/* builder/step-copy.c - COPY and ADD: sources from the context, a stage or image, heredocs
 * and URLs, their cache key, and the copy into the stage's upperdir. */
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

/* ---- COPY / ADD --------------------------------------------------------------------------- */

struct copy_call {
    const struct mk_copy_spec *spec;     /* local sources (context, stage, heredocs) */
    const struct mk_copy_spec *url_spec; /* ADD <url>: the downloads, or NULL */
};

static int copy_fn(int rootfd, void *arg, struct mk_error **err)
{
    struct copy_call *c = arg;
    if (c->spec->sources->n && builder_copy_into(rootfd, c->spec, err) < 0)
        return -1;
    return c->url_spec ? builder_copy_into(rootfd, c->url_spec, err) : 0;
}

/* ADD <url>: the downloads live in a store tmpdir, one subdirectory per URL so that two
 * URLs with the same file name do not collide; it is the source root of a second copy. */
struct url_sources {
    struct mk_strv urls, rel, digests; /* rel: "0/name"; digests: "" until downloaded */
    struct src_root root;
    bool keep_git_dir; /* git URLs: rel "0" (or "0/subdir"), digests "git:COMMIT" */
};

static void url_sources_release(struct build *b, struct url_sources *u);

/* ADD <git URL>: a checkout of the ref; with --checksum, that is the commit it must be. */
static int git_download(struct build *b, const struct mk_df_node *n, struct url_sources *u,
                        size_t i, const char *checksum, struct mk_error **err)
{
    _cleanup_free_ char *rel = NULL, *commit = NULL, *name = mk_xasprintf("%zu", i);
    if (builder_add_git(u->urls.v[i], u->keep_git_dir, u->root.tmp, name, &rel, &commit, err) < 0)
        return node_where(b, n, err);
    if (checksum && strcmp(checksum, commit) != 0) {
        _cleanup_free_ char *where = where_of(b, n);
        return mk_error_set_at(err, MK_ERR_DIGEST, where,
                               "fetching \"%s\": checksum mismatch: got %s, want %s", u->urls.v[i],
                               commit, checksum);
    }
    free(u->rel.v[i]);
    u->rel.v[i] = MK_TAKE_PTR(rel);
    free(u->digests.v[i]);
    u->digests.v[i] = mk_xasprintf("git:%s", commit);
    return 0;
}

static int url_download(struct build *b, const struct mk_df_node *n, struct url_sources *u,
                        size_t i, const char *checksum, struct mk_error **err)
{
    if (builder_is_git_url(u->urls.v[i]))
        return git_download(b, n, u, i, checksum, err);
    char d[MK_DIGEST_SIZE];
    if (builder_url_fetch(u->urls.v[i], b->opts->registry, u->root.fd, u->rel.v[i], d, err) < 0)
        return node_where(b, n, err);
    if (checksum && strcmp(d, checksum) != 0) {
        _cleanup_free_ char *where = where_of(b, n);
        return mk_error_set_at(err, MK_ERR_DIGEST, where,
                               "downloading \"%s\": checksum mismatch: got %s, want %s",
                               u->urls.v[i], d, checksum);
    }
    free(u->digests.v[i]);
    u->digests.v[i] = mk_xstrdup(d);
    return 0;
}

/* COPY <<EOF: each heredoc becomes a file named after its delimiter in a private dir that
 * serves as the copy's source root. */
static int write_heredocs(struct build *b, struct stage *s, const struct mk_df_node *n,
                          struct src_root *r, struct mk_error **err)
{
    r->tmp = layerstore_tmpdir(b->store, "heredoc-", err);
    if (!r->tmp)
        return node_where(b, n, err);
    _cleanup_close_ int dfd = open(r->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", r->tmp);
    for (size_t i = 0; i < n->n_heredocs; i++) {
        const struct mk_df_heredoc *h = &n->heredocs[i];
        if (!*h->name || strchr(h->name, '/'))
            return node_error(b, n, err, "invalid heredoc name \"%s\"", h->name);
        struct mk_buf body = MK_BUF_INIT;
        const char *p = h->content;
        while (*p) {
            if (h->chomp)
                while (*p == '\t')
                    p++;
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
            mk_buf_add(&body, p, len);
            p += len;
        }
        char *data = mk_buf_detach(&body);
        if (h->expand) {
            /* As BuildKit (ExpandRaw): variables expanded, quotes kept. */
            char *exp = NULL;
            struct mk_error *e = NULL;
            struct mk_strv env = MK_STRV_INIT;
            stage_expand_env(s, &env);
            if (mk_shell_word_keep_quotes(data, &env, &exp, &e) == 0) {
                free(data);
                data = exp;
            }
            mk_strv_release(&env);
            mk_error_free(e);
        }
        _cleanup_close_ int fd =
            openat(dfd, h->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        int wr = fd < 0 ? mk_error_errno(err, "writing heredoc \"%s\"", h->name)
                        : mk_write_all(fd, data, strlen(data), err);
        if (fd >= 0)
            fchmod(fd, 0644);
        free(data);
        if (wr < 0)
            return node_where(b, n, err);
    }
    r->fd = open(r->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (r->fd < 0)
        return mk_error_errno(err, "opening \"%s\"", r->tmp);
    return 0;
}

static void url_sources_release(struct build *b, struct url_sources *u)
{
    src_root_release(b, &u->root);
    mk_strv_release(&u->urls);
    mk_strv_release(&u->rel);
    mk_strv_release(&u->digests);
}

/* One COPY or ADD while it runs. */
struct copy_job {
    const struct mk_inst *in;
    const char *kw; /* "COPY" or "ADD" */
    bool is_add, link;
    struct mk_copy_spec spec, url_spec;
    struct mk_strv sources, src_lowers, excludes;
    struct mk_ignore *exclude;
    struct src_root src, heredocs;
    struct url_sources urls;
    char *from_name, *dest_word, *chown, *dest, *created_by;
    struct mk_buf hist_src; /* BuildKit's history line: expanded sources and heredocs */
    char key[MK_DIGEST_SIZE];
};

static void copy_job_release(struct build *b, struct copy_job *j)
{
    mk_buf_release(&j->hist_src);
    src_root_release(b, &j->src);
    src_root_release(b, &j->heredocs);
    url_sources_release(b, &j->urls);
    mk_ignore_free(j->exclude);
    mk_strv_release(&j->excludes);
    mk_strv_release(&j->src_lowers);
    mk_strv_release(&j->sources);
    free(j->from_name);
    free(j->dest_word);
    free(j->chown);
    free(j->dest);
    free(j->created_by);
}

/* The sources, expanded: heredocs, URLs (ADD) and paths in the context or --from. */
static int copy_sources(struct build *b, struct stage *s, struct copy_job *j, struct mk_error **err)
{
    const struct mk_df_node *n = j->in->node;
    size_t next_heredoc = 0;
    for (size_t i = 0; i + 1 < n->args.n; i++) {
        char *w = NULL;
        if (n->n_heredocs) {
            mk_buf_addf(&j->hist_src, " <<%s", n->heredocs[next_heredoc].name);
            mk_strv_push(&j->sources, n->heredocs[next_heredoc++].name);
            continue;
        }
        if (expand_word(b, s, n, n->args.v[i], &w, err) < 0)
            return -1;
        mk_buf_addf(&j->hist_src, " %s", w);
        if (builder_is_http_url(w) || (j->is_add && builder_is_git_url(w))) {
            if (!j->is_add) {
                node_error(b, n, err, "COPY cannot take a URL (\"%s\") as a source: use ADD", w);
                free(w);
                return -1;
            }
            /* A git URL's rel is set when it is checked out (git_download). */
            _cleanup_free_ char *name =
                builder_is_git_url(w) ? mk_xstrdup("") : builder_url_filename(w);
            mk_strv_pushf(&j->urls.rel, "%zu/%s", j->urls.urls.n, name);
            mk_strv_push_take(&j->urls.urls, w);
            mk_strv_push(&j->urls.digests, "");
            continue;
        }
        mk_strv_push_take(&j->sources, w);
    }
    return 0;
}

/* The destination, --chown and --exclude expanded; the history line. */
static int copy_options(struct build *b, struct stage *s, struct copy_job *j, struct mk_error **err)
{
    const struct mk_df_node *n = j->in->node;
    const struct mk_inst_copy *c = &j->in->copy;
    if (expand_word(b, s, n, n->args.v[n->args.n - 1], &j->dest_word, err) < 0 ||
        (c->chown && expand_word(b, s, n, c->chown, &j->chown, err) < 0))
        return -1;
    j->spec.chown = j->chown;
    j->created_by = mk_xasprintf(
        "%s%s%s%s%s%s%s %s # buildkit", j->kw, j->spec.parents ? " --parents" : "",
        j->chown ? " --chown=" : "", j->chown ? j->chown : "", c->chmod ? " --chmod=" : "",
        c->chmod ? c->chmod : "", j->hist_src.data ? j->hist_src.data : "", j->dest_word);
    for (size_t i = 0; i < c->excludes.n; i++) {
        char *w = NULL;
        if (expand_word(b, s, n, c->excludes.v[i], &w, err) < 0)
            return -1;
        mk_strv_push_take(&j->excludes, w);
    }
    if (j->excludes.n && mk_ignore_new(&j->excludes, &j->exclude, err) < 0)
        return node_error(b, n, err, "invalid --exclude pattern");
    j->spec.exclude = j->exclude;
    j->spec.dest_is_dir = mk_str_has_suffix(j->dest_word, "/") || strcmp(j->dest_word, ".") == 0 ||
                          mk_str_has_suffix(j->dest_word, "/.");
    if (j->dest_word[0] == '/')
        j->dest = mk_xstrdup(j->dest_word);
    else
        j->dest =
            mk_xasprintf("%s/%s", s->config.working_dir ? s->config.working_dir : "", j->dest_word);
    return 0;
}

/* ADD <url>: the rules that need the expanded sources, the download dir, and (without
 * --checksum, when only the content can tell whether the step is cached, as docker does)
 * the downloads. */
static int copy_urls(struct build *b, struct copy_job *j, struct mk_error **err)
{
    const struct mk_df_node *n = j->in->node;
    const char *checksum = j->in->copy.checksum;
    if (checksum && !j->urls.urls.n)
        return node_error(b, n, err, "checksum requires HTTP(S) or Git sources");
    bool git = checksum && j->urls.urls.n && builder_is_git_url(j->urls.urls.v[0]);
    if (checksum && (git ? !builder_git_commit_valid(checksum) : !mk_digest_valid(checksum)))
        return node_error(b, n, err, "invalid --checksum value \"%s\" (want %s)", checksum,
                          git ? "the commit's hex digits" : "sha256:<64 hex digits>");
    if (!j->urls.urls.n)
        return 0;
    if (j->sources.n + j->urls.urls.n > 1 && !j->spec.dest_is_dir)
        return node_error(b, n, err,
                          "when using ADD with more than one source file, the destination must "
                          "be a directory and end with a /");
    j->urls.root.tmp = layerstore_tmpdir(b->store, "url-", err);
    if (!j->urls.root.tmp)
        return node_where(b, n, err);
    j->urls.root.fd = open(j->urls.root.tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (j->urls.root.fd < 0)
        return mk_error_errno(err, "opening \"%s\"", j->urls.root.tmp);
    for (size_t i = 0; !checksum && i < j->urls.urls.n; i++)
        if (url_download(b, n, &j->urls, i, NULL, err) < 0)
            return -1;
    return 0;
}

static int copy_key(struct build *b, struct stage *s, struct copy_job *j, struct mk_error **err)
{
    const struct mk_inst_copy *c = &j->in->copy;
    const struct mk_df_node *n = j->in->node;
    if (!b->hc && builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
        return -1;
    struct copy_key k = {.b = b, .h = key_begin(b, s, j->kw), .srcfd = j->spec.src_rootfd};
    key_part("source stage or image");
    key_add_lowers(k.h, &j->src_lowers);
    key_part("heredocs");
    for (size_t i = 0; i < n->n_heredocs; i++)
        key_add(k.h, n->heredocs[i].content);
    key_part("sources and options");
    key_add_strv(k.h, &j->sources);
    key_add(k.h, j->dest);
    key_add(k.h, j->spec.dest_is_dir ? "dir" : "file");
    key_add(k.h, j->spec.chown);
    key_add(k.h, c->chmod);
    key_add(k.h, j->spec.parents ? "parents" : "");
    key_add_strv(k.h, &j->excludes);
    if (j->link)
        key_add(k.h, "link");
    if (j->spec.extract != j->is_add)
        key_add(k.h, "unpack");
    for (size_t i = 0; i < j->urls.urls.n; i++) {
        key_part("url %s", j->urls.urls.v[i]);
        key_add(k.h, j->urls.urls.v[i]);
        key_add(k.h, j->urls.rel.v[i]);
        key_add(k.h, c->checksum ? c->checksum : j->urls.digests.v[i]);
        key_add(k.h, c->unpack == 1 ? "unpack" : "");
        if (j->urls.keep_git_dir && builder_is_git_url(j->urls.urls.v[i]))
            key_add(k.h, "keep-git-dir");
    }
    struct mk_copy_spec vspec = j->spec;
    vspec.visit = copy_key_visit;
    vspec.visit_arg = &k;
    int r = c->from ? 0 : builder_copy_into(-1, &vspec, err);
    mk_sha256_final(k.h, j->key);
    mk_sha256_free(k.h);
    return r < 0 ? node_error(b, n, err, "%s failed", j->kw) : 0;
}

/* A cache miss: the downloads with --checksum, the --from root, the copy in a sandbox. */
static int copy_exec(struct build *b, struct stage *s, struct copy_job *j, struct mk_error **err)
{
    const struct mk_df_node *n = j->in->node;
    const char *checksum = j->in->copy.checksum;
    _cleanup_free_ char *upper = NULL, *work = NULL;
    int ret = -1;
    for (size_t i = 0; checksum && i < j->urls.urls.n; i++)
        if (url_download(b, n, &j->urls, i, checksum, err) < 0)
            return -1;
    if (j->in->copy.from) {
        if (src_root_open(b, &j->src_lowers, &j->src, err) < 0)
            return node_error(b, n, err, "COPY --from=%s", j->from_name);
        j->spec.src_rootfd = j->src.fd;
    }
    if (step_begin(b, s, &upper, &work, err) < 0)
        goto out;
    struct mk_sandbox_spec sb;
    sandbox_spec_init(&sb, s, upper, work);
    if (j->link)
        sb.lowerdirs = NULL;
    if (j->urls.urls.n) {
        j->url_spec = j->spec;
        j->url_spec.ctx = NULL;
        j->url_spec.src_rootfd = j->urls.root.fd;
        j->url_spec.sources = &j->urls.rel;
        j->url_spec.extract = j->is_add && j->in->copy.unpack == 1;
        j->url_spec.parents = false;
        j->url_spec.exclude = NULL;
    }
    struct copy_call call = {.spec = &j->spec, .url_spec = j->urls.urls.n ? &j->url_spec : NULL};
    if (builder_sandbox_call(&sb, copy_fn, &call, err) < 0) {
        node_error(b, n, err, "%s failed", j->kw);
        goto out;
    }
    ret = step_commit(b, s, upper, j->created_by, err);
    if (ret == 0)
        cache_store(b, s, j->key, false);
out:
    step_end(b);
    return ret;
}

int do_copy(struct build *b, struct stage *s, const struct mk_inst *in, bool is_add,
            struct mk_error **err)
{
    const struct mk_inst_copy *c = &in->copy;
    struct copy_job j = {
        .in = in,
        .kw = is_add ? "ADD" : "COPY",
        .is_add = is_add,
        /* As BuildKit: --link copies into an empty root (no symlink of an earlier layer is
         * followed, parents are plain directories); with --chmod it is ignored. */
        .link = c->link && !c->chmod,
        .sources = MK_STRV_INIT,
        .src_lowers = MK_STRV_INIT,
        .excludes = MK_STRV_INIT,
        .src = {NULL, -1},
        .heredocs = {NULL, -1},
        .urls = {MK_STRV_INIT, MK_STRV_INIT, MK_STRV_INIT, {NULL, -1}, c->keep_git_dir},
        .hist_src = MK_BUF_INIT,
    };
    j.spec.src_rootfd = -1;
    j.spec.chmod = c->chmod;
    /* Local archives are unpacked unless --unpack=false, downloads only with --unpack=true. */
    j.spec.extract = is_add && c->unpack != 0;
    j.spec.parents = c->parents;
    int ret = -1;
    if ((in->node->n_heredocs && write_heredocs(b, s, in->node, &j.heredocs, err) < 0) ||
        copy_sources(b, s, &j, err) < 0 || copy_options(b, s, &j, err) < 0 ||
        copy_urls(b, &j, err) < 0)
        goto out;
    if (c->from) {
        if (expand_word(b, s, in->node, c->from, &j.from_name, err) < 0 ||
            from_lowerdirs(b, s, in->node, j.from_name, &j.src_lowers, err) < 0)
            goto out;
        /* The source root is mounted only on a cache miss: its layers (in src_lowers)
         * already name its content for the key. */
    } else if (in->node->n_heredocs) {
        j.spec.src_rootfd = j.heredocs.fd;
    } else {
        j.spec.ctx = b->ctx;
    }
    j.spec.sources = &j.sources;
    j.spec.dest = j.dest;
    if (copy_key(b, s, &j, err) < 0)
        goto out;
    bool hit = false;
    cache_lookup(b, s, j.key, j.created_by, &hit);
    ret = hit ? 0 : copy_exec(b, s, &j, err);
out:
    copy_job_release(b, &j);
    return ret;
}
