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

/* A boolean flag: absent = def, bare or "true" (any case) = true. */
static bool flag_bool(const struct mk_df_node *n, const char *name, bool def)
{
    const char *v = NULL;
    if (!mk_df_node_flag(n, name, &v))
        return def;
    return !v || strcasecmp(v, "true") == 0;
}

/* ADD's --checksum and --keep-git-dir. */
static void add_flags(const struct mk_df_node *n, const char **ret_checksum, bool *ret_keep_git_dir)
{
    mk_df_node_flag(n, "checksum", ret_checksum);
    *ret_keep_git_dir = flag_bool(n, "keep-git-dir", false);
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

int do_copy(struct build *b, struct stage *s, const struct mk_df_node *n, bool is_add,
            struct mk_error **err)
{
    const char *kw = is_add ? "ADD" : "COPY";
    if (n->args.n < 2 && !(n->n_heredocs && n->args.n >= 1))
        return node_error(b, n, err, "%s requires at least two arguments", kw);
    const char *from = NULL, *chown = NULL, *chmod = NULL, *checksum = NULL;
    bool keep_git_dir = false;
    mk_df_node_flag(n, "from", &from);
    mk_df_node_flag(n, "chown", &chown);
    mk_df_node_flag(n, "chmod", &chmod);
    add_flags(n, &checksum, &keep_git_dir);
    /* As BuildKit: --link copies into an empty root (no symlink of an earlier layer is
     * followed, parents are plain directories); with --chmod it is ignored. */
    bool link = flag_bool(n, "link", false) && !chmod;
    if (from && is_add)
        return node_error(b, n, err, "ADD does not support --from (use COPY --from)");
    struct mk_copy_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.src_rootfd = -1;
    mode_t mode = 0;
    if (chmod && builder_chmod_apply(chmod, 0644, false, &mode) < 0)
        return node_error(b, n, err,
                          "invalid --chmod value \"%s\" (octal, e.g. 0755, or symbolic, "
                          "e.g. u=rwx,go=rx)",
                          chmod);
    spec.chmod = chmod;
    /* Local archives are unpacked unless --unpack=false, downloads only with --unpack=true. */
    spec.extract = is_add && flag_bool(n, "unpack", true);
    spec.parents = mk_df_node_flag(n, "parents", NULL);

    struct mk_strv sources = MK_STRV_INIT, src_lowers = MK_STRV_INIT, excludes = MK_STRV_INIT;
    struct mk_ignore *exclude = NULL;
    struct src_root src = {NULL, -1}, heredocs = {NULL, -1};
    struct url_sources urls = {MK_STRV_INIT, MK_STRV_INIT, MK_STRV_INIT, {NULL, -1}, keep_git_dir};
    struct mk_copy_spec url_spec;
    _cleanup_free_ char *from_name = NULL;
    _cleanup_free_ char *dest_word = NULL, *chown_exp = NULL, *dest = NULL;
    _cleanup_free_ char *upper = NULL, *work = NULL, *created_by = NULL;
    int ret = -1;
    size_t next_heredoc = 0;
    /* BuildKit's history line: flags, expanded sources, heredocs, then the destination. */
    struct mk_buf hist_src = MK_BUF_INIT;
    if (n->n_heredocs && (from || n->args.n != n->n_heredocs + 1)) {
        node_error(b, n, err, "%s with heredoc sources takes only heredocs as sources", kw);
        goto out;
    }
    if (n->n_heredocs && write_heredocs(b, s, n, &heredocs, err) < 0)
        goto out;
    for (size_t i = 0; i + 1 < n->args.n; i++) {
        char *w = NULL;
        if (n->n_heredocs) {
            mk_buf_addf(&hist_src, " <<%s", n->heredocs[next_heredoc].name);
            mk_strv_push(&sources, n->heredocs[next_heredoc++].name);
            continue;
        }
        if (expand_word(b, s, n, n->args.v[i], &w, err) < 0)
            goto out;
        mk_buf_addf(&hist_src, " %s", w);
        if (builder_is_http_url(w) || (is_add && builder_is_git_url(w))) {
            if (!is_add) {
                node_error(b, n, err, "COPY cannot take a URL (\"%s\") as a source: use ADD", w);
                free(w);
                goto out;
            }
            /* A git URL's rel is set when it is checked out (git_download). */
            _cleanup_free_ char *name =
                builder_is_git_url(w) ? mk_xstrdup("") : builder_url_filename(w);
            mk_strv_pushf(&urls.rel, "%zu/%s", urls.urls.n, name);
            mk_strv_push_take(&urls.urls, w);
            mk_strv_push(&urls.digests, "");
            continue;
        }
        mk_strv_push_take(&sources, w);
    }
    if (expand_word(b, s, n, n->args.v[n->args.n - 1], &dest_word, err) < 0 ||
        (chown && expand_word(b, s, n, chown, &chown_exp, err) < 0))
        goto out;
    spec.chown = chown_exp;
    created_by = mk_xasprintf("%s%s%s%s%s%s%s %s # buildkit", kw, spec.parents ? " --parents" : "",
                              chown_exp ? " --chown=" : "", chown_exp ? chown_exp : "",
                              chmod ? " --chmod=" : "", chmod ? chmod : "",
                              hist_src.data ? hist_src.data : "", dest_word);
    for (size_t i = 0; i < n->flags.n; i++) {
        char *w = NULL;
        if (!mk_str_has_prefix(n->flags.v[i], "--exclude="))
            continue;
        if (expand_word(b, s, n, n->flags.v[i] + strlen("--exclude="), &w, err) < 0)
            goto out;
        mk_strv_push_take(&excludes, w);
    }
    if (excludes.n && mk_ignore_new(&excludes, &exclude, err) < 0) {
        node_error(b, n, err, "invalid --exclude pattern");
        goto out;
    }
    spec.exclude = exclude;
    spec.dest_is_dir = mk_str_has_suffix(dest_word, "/") || strcmp(dest_word, ".") == 0 ||
                       mk_str_has_suffix(dest_word, "/.");
    if (checksum) {
        /* BuildKit's rules and wording. */
        if (sources.n + urls.urls.n != 1) {
            node_error(b, n, err, "checksum can't be specified for multiple sources");
            goto out;
        }
        if (!urls.urls.n) {
            node_error(b, n, err, "checksum requires HTTP(S) or Git sources");
            goto out;
        }
        bool git = builder_is_git_url(urls.urls.v[0]);
        if (git ? !builder_git_commit_valid(checksum) : !mk_digest_valid(checksum)) {
            node_error(b, n, err, "invalid --checksum value \"%s\" (want %s)", checksum,
                       git ? "the commit's hex digits" : "sha256:<64 hex digits>");
            goto out;
        }
    }
    if (urls.urls.n && sources.n + urls.urls.n > 1 && !spec.dest_is_dir) {
        node_error(b, n, err,
                   "when using ADD with more than one source file, the destination must be a "
                   "directory and end with a /");
        goto out;
    }
    if (urls.urls.n) {
        urls.root.tmp = layerstore_tmpdir(b->store, "url-", err);
        if (!urls.root.tmp) {
            node_where(b, n, err);
            goto out;
        }
        urls.root.fd = open(urls.root.tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (urls.root.fd < 0) {
            mk_error_errno(err, "opening \"%s\"", urls.root.tmp);
            goto out;
        }
        /* Without --checksum only the content can tell whether the step is cached: docker
         * downloads on every build too. */
        for (size_t i = 0; !checksum && i < urls.urls.n; i++)
            if (url_download(b, n, &urls, i, NULL, err) < 0)
                goto out;
    }
    if (dest_word[0] == '/')
        dest = mk_xstrdup(dest_word);
    else
        dest = mk_xasprintf("%s/%s", s->config.working_dir ? s->config.working_dir : "", dest_word);
    if (from) {
        _cleanup_free_ char *from_exp = NULL;
        if (expand_word(b, s, n, from, &from_exp, err) < 0)
            goto out;
        if (from_lowerdirs(b, s, n, from_exp, &src_lowers, err) < 0)
            goto out;
        from_name = MK_TAKE_PTR(from_exp);
        /* The source root is mounted only on a cache miss: its layers (in src_lowers)
         * already name its content for the key. */
    } else if (n->n_heredocs) {
        spec.src_rootfd = heredocs.fd;
    } else {
        spec.ctx = b->ctx;
    }
    spec.sources = &sources;
    spec.dest = dest;

    char key[MK_DIGEST_SIZE];
    {
        if (!b->hc && builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
            goto out;
        struct copy_key k = {.b = b, .h = key_begin(b, s, kw), .srcfd = spec.src_rootfd};
        key_part("source stage or image");
        key_add_lowers(k.h, &src_lowers);
        key_part("heredocs");
        for (size_t i = 0; i < n->n_heredocs; i++)
            key_add(k.h, n->heredocs[i].content);
        key_part("sources and options");
        key_add_strv(k.h, &sources);
        key_add(k.h, dest);
        key_add(k.h, spec.dest_is_dir ? "dir" : "file");
        key_add(k.h, spec.chown);
        key_add(k.h, chmod);
        key_add(k.h, spec.parents ? "parents" : "");
        key_add_strv(k.h, &excludes);
        if (link)
            key_add(k.h, "link");
        if (spec.extract != is_add)
            key_add(k.h, "unpack");
        for (size_t i = 0; i < urls.urls.n; i++) {
            key_part("url %s", urls.urls.v[i]);
            key_add(k.h, urls.urls.v[i]);
            key_add(k.h, urls.rel.v[i]);
            key_add(k.h, checksum ? checksum : urls.digests.v[i]);
            key_add(k.h, flag_bool(n, "unpack", false) ? "unpack" : "");
            if (urls.keep_git_dir && builder_is_git_url(urls.urls.v[i]))
                key_add(k.h, "keep-git-dir");
        }
        struct mk_copy_spec vspec = spec;
        vspec.visit = copy_key_visit;
        vspec.visit_arg = &k;
        int r = from ? 0 : builder_copy_into(-1, &vspec, err);
        mk_sha256_final(k.h, key);
        mk_sha256_free(k.h);
        if (r < 0) {
            node_error(b, n, err, "%s failed", kw);
            goto out;
        }
    }
    bool hit = false;
    cache_lookup(b, s, key, created_by, &hit);
    if (hit) {
        ret = 0;
        goto out;
    }

    for (size_t i = 0; checksum && i < urls.urls.n; i++)
        if (url_download(b, n, &urls, i, checksum, err) < 0)
            goto out;
    if (from) {
        if (src_root_open(b, &src_lowers, &src, err) < 0) {
            node_error(b, n, err, "COPY --from=%s", from_name);
            goto out;
        }
        spec.src_rootfd = src.fd;
    }
    if (step_begin(b, s, &upper, &work, err) < 0)
        goto out;
    struct mk_sandbox_spec sb;
    sandbox_spec_init(&sb, s, upper, work);
    if (link)
        sb.lowerdirs = NULL;
    if (urls.urls.n) {
        url_spec = spec;
        url_spec.ctx = NULL;
        url_spec.src_rootfd = urls.root.fd;
        url_spec.sources = &urls.rel;
        url_spec.extract = is_add && flag_bool(n, "unpack", false);
        url_spec.parents = false;
        url_spec.exclude = NULL;
    }
    struct copy_call call = {.spec = &spec, .url_spec = urls.urls.n ? &url_spec : NULL};
    if (builder_sandbox_call(&sb, copy_fn, &call, err) < 0) {
        node_error(b, n, err, "%s failed", kw);
        goto out;
    }
    ret = step_commit(b, s, upper, created_by, err);
    if (ret == 0)
        cache_store(b, s, key, false);
out:
    step_end(b);
    mk_buf_release(&hist_src);
    src_root_release(b, &src);
    src_root_release(b, &heredocs);
    url_sources_release(b, &urls);
    mk_ignore_free(exclude);
    mk_strv_release(&excludes);
    mk_strv_release(&src_lowers);
    mk_strv_release(&sources);
    return ret;
}
