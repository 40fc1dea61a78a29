/* builder/step-copy.c - COPY and ADD: sources from the context, a stage or image, heredocs
 * and URLs, their cache key, and the copy into the stage's upperdir. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
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
    /* A COPY from the context: the regular files it copies (dest, source digest) under
     * reuse_id, which names this COPY on this parent whatever the files hold; an earlier
     * build's table says which of its snapshot's files can be reused (copy_reuse_prepare). */
    bool reusable;
    char reuse_id[MK_DIGEST_SIZE];
    struct mk_context_file *files;
    size_t n_files, cap_files;
    struct mk_strv reuse_dests;
    int reuse_fd, upper_fd;
    struct mk_snapshot_files *reuse_files;
    char reuse_chain[MK_DIGEST_SIZE]; /* the snapshot files are linked from, or "" */
    bool files_from_key; /* j->files are filled by the final key walk (speculative copy) */
    bool files_walked;   /* j->files were filled by the key's first walk (probe_digest) */
};

static void copy_job_release(struct build *b, struct copy_job *j)
{
    layerstore_context_table_free(j->files, j->n_files);
    mk_strv_release(&j->reuse_dests);
    layerstore_snapshot_files_free(j->reuse_files);
    mk_closep(&j->reuse_fd);
    mk_closep(&j->upper_fd);
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

/* A reusable COPY's table of what it copies. Listed by the key's walk when there is one that
 * knows the digests (probe_digest_table: a hit pays for the list only), else made on a miss
 * by a walk of its own (the digests are in the hash cache by then). */
struct reuse_visit {
    struct build *b;
    struct copy_job *j;
};

/* A regular file of the table: its destination and source digest (the placeholder
 * "unknown" for a file a speculative copy is to hash). */
static void reuse_file_add(struct copy_job *j, const char *dest, const struct stat *st,
                           const char digest[MK_DIGEST_SIZE])
{
    if (!j->reusable)
        return;
    if (*dest != '/' || strpbrk(dest, "\t\n")) {
        j->reusable = false; /* not a line of a table */
        return;
    }
    if (j->n_files == j->cap_files) {
        j->cap_files = j->cap_files ? 2 * j->cap_files : 256;
        j->files = mk_xreallocarray(j->files, j->cap_files, sizeof(*j->files));
    }
    struct mk_context_file *f = &j->files[j->n_files++];
    memcpy(f->digest, digest, MK_DIGEST_SIZE);
    f->path = mk_xstrdup(dest);
    f->size = (uint64_t)st->st_size;
    f->mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    f->ino = (uint64_t)st->st_ino;
}

static int reuse_visit(const char *rel, const struct stat *st, const char *dest, void *arg,
                       struct mk_error **err)
{
    struct reuse_visit *v = arg;
    struct copy_job *j = v->j;
    if (!S_ISREG(st->st_mode) || !j->reusable)
        return 0;
    char digest[MK_DIGEST_SIZE];
    if (j->files_from_key) {
        /* A speculative copy: a file the hash cache does not know is copied (and hashed). */
        if (!builder_hashcache_known(v->b->hc, rel, st, digest))
            snprintf(digest, sizeof(digest), "unknown");
    } else if (builder_hashcache_file(v->b->hc, builder_context_dirfd(v->b->ctx), rel, st, digest,
                                      err) < 0)
        return -1;
    reuse_file_add(j, dest, st, digest);
    return 0;
}

/* The table's line naming the snapshot it describes (no destination is relative). */
#define REUSE_SNAPSHOT "snapshot"

static void reuse_id(struct build *b, struct stage *s, struct copy_job *j)
{
    struct mk_sha256 *h = mk_sha256_new();
    char plat[MK_PLATFORM_MAX], epoch[32];
    mk_platform_format(&s->platform, plat);
    snprintf(epoch, sizeof(epoch), "%lld", (long long)b->opts->epoch);
    const char *parts[] = {"mkimg-copy-reuse-v1",
                           s->chain[0] ? s->chain : "scratch",
                           plat,
                           epoch,
                           j->created_by,
                           j->dest,
                           j->spec.dest_is_dir ? "dir" : "file"};
    for (size_t i = 0; i < MK_ARRAY_SIZE(parts); i++)
        key_add(h, parts[i]);
    key_add_strv(h, &j->sources);
    key_add_strv(h, &j->excludes);
    mk_sha256_final(h, j->reuse_id);
    mk_sha256_free(h);
}

static int cmp_file_path(const void *a, const void *b)
{
    return strcmp(((const struct mk_context_file *)a)->path,
                  ((const struct mk_context_file *)b)->path);
}

/* A miss of a reusable COPY: the destinations whose source digest is the one the last build
 * of this COPY on this parent copied, when its snapshot is still there. Anything missing or
 * unreadable: everything is copied. */
static void copy_reuse_prepare(struct build *b, struct copy_job *j, const char *upper)
{
    struct mk_context_file *prev = NULL;
    size_t n = 0;
    struct mk_error *e = NULL;
    bool have = layerstore_context_table_get(b->store, j->reuse_id, &prev, &n, &e) == 0;
    mk_error_free(e);
    if (!have && j->files_from_key) {
        /* The table to record is made by the key's walk after the copy. */
        layerstore_context_table_free(j->files, j->n_files);
        j->files = NULL;
        j->n_files = j->cap_files = 0;
        return;
    }
    /* The key's first walk went through the same files (same spec), with the same digests:
     * no walk of its own. */
    struct mk_copy_spec vspec = j->spec;
    struct reuse_visit rv = {.b = b, .j = j};
    vspec.visit = reuse_visit;
    vspec.visit_arg = &rv;
    struct mk_error *we = NULL;
    if ((!j->files_walked && builder_copy_into(-1, &vspec, &we) < 0) || !j->reusable) {
        mk_error_free(we);
        j->reusable = false;
        layerstore_context_table_free(prev, n);
        return;
    }
    if (!have)
        return;
    const char *chain = NULL;
    for (size_t i = 0; i < n && !chain; i++)
        if (strcmp(prev[i].path, REUSE_SNAPSHOT) == 0)
            chain = prev[i].digest;
    _cleanup_free_ char *snap = chain ? layerstore_snapshot_path(b->store, chain) : NULL;
    j->reuse_fd = snap ? open(snap, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    j->upper_fd = j->reuse_fd >= 0 ? open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (j->upper_fd >= 0) {
        /* Both sorted by destination; a destination twice in either is left out. */
        struct mk_context_file *cur = mk_xreallocarray(NULL, j->n_files + 1, sizeof(*cur));
        memcpy(cur, j->files, j->n_files * sizeof(*cur));
        qsort(cur, j->n_files, sizeof(*cur), cmp_file_path);
        qsort(prev, n, sizeof(*prev), cmp_file_path);
        size_t p = 0;
        for (size_t i = 0; i < j->n_files; i++) {
            if ((i > 0 && strcmp(cur[i].path, cur[i - 1].path) == 0) ||
                (i + 1 < j->n_files && strcmp(cur[i].path, cur[i + 1].path) == 0))
                continue;
            while (p < n && strcmp(prev[p].path, cur[i].path) < 0)
                p++;
            if (p < n && strcmp(prev[p].path, cur[i].path) == 0 &&
                (p + 1 >= n || strcmp(prev[p + 1].path, cur[i].path) != 0) &&
                memcmp(prev[p].digest, cur[i].digest, MK_DIGEST_SIZE) == 0)
                mk_strv_push(&j->reuse_dests, cur[i].path);
        }
        free(cur);
        j->spec.reuse_dests = &j->reuse_dests;
        j->spec.reuse_fd = j->reuse_fd;
        j->spec.upper_fd = j->upper_fd;
        j->reuse_files = layerstore_snapshot_files_open(b->store, chain);
        j->spec.reuse_files = j->reuse_files;
        memcpy(j->reuse_chain, chain, MK_DIGEST_SIZE);
    }
    layerstore_context_table_free(prev, n);
    if (j->files_from_key) {
        /* Walked for the reuse only: the key's walk after the copy makes the table. */
        layerstore_context_table_free(j->files, j->n_files);
        j->files = NULL;
        j->n_files = j->cap_files = 0;
    }
}

/* After the commit: this COPY's table, naming the snapshot just made. Best effort: without
 * it the next build of this COPY copies everything. */
static void copy_reuse_record(struct build *b, struct stage *s, struct copy_job *j)
{
    if (j->n_files == j->cap_files) {
        j->cap_files = j->cap_files + 1;
        j->files = mk_xreallocarray(j->files, j->cap_files, sizeof(*j->files));
    }
    struct mk_context_file *f = &j->files[j->n_files++];
    memset(f, 0, sizeof(*f));
    f->path = mk_xstrdup(REUSE_SNAPSHOT);
    memcpy(f->digest, s->chain, MK_DIGEST_SIZE);
    struct mk_error *e = NULL;
    layerstore_context_table_put(b->store, j->reuse_id, j->files, j->n_files, &e);
    mk_error_free(e);
}

/* ---- a COPY from the context whose files the hash cache does not know (issue 19) ----
 * Its key needs their digests, which cost a read of every byte before the copy reads them
 * again. Instead the copy is made first, speculatively, hashing what it writes (copy.c,
 * spec->digests); the key is then made from those digests, and a hit throws the upperdir
 * away. The key is the one the hash cache would have given (the same walk, the digests of
 * the same bytes), and the digests go into the hash cache, so a rebuild stats each file once.
 * A file changed during the copy: its digest is that of what was written (the key describes
 * the layer), and it stays out of the hash cache. Anything the copy and the key's walk saw
 * differently (a file added, removed or retyped meanwhile): the speculation is dropped and the
 * step is made as before. */
struct spec_file {
    const char *rel; /* into spec_copy.raw */
    uint32_t mode;
    char digest[MK_DIGEST_SIZE];
    bool used;
};

struct spec_copy {
    struct copy_key k; /* first: the hooks get &k */
    struct copy_job *j;
    size_t deferred; /* probe: files whose digest the copy is to give */
    bool hash_small; /* probe: small unknown files are hashed now (see probe_digest) */
    int fd;          /* the copy's records (memfd), -1 */
    char *raw;
    struct spec_file *files; /* sorted by rel */
    size_t n_files;
    bool mismatch;
};

static void spec_copy_release(struct spec_copy *sc)
{
    mk_closep(&sc->fd);
    free(sc->raw);
    free(sc->files);
    sc->raw = NULL;
    sc->files = NULL;
    sc->n_files = 0;
}

/* Files below this size are hashed by the key as before when the hash cache knows part of the
 * context (a touched file among many: copying all of them to hash one would cost more). */
#define SPEC_SMALL (1u << 20)

/* The first key's hook: the hash cache's digest, else a placeholder and the file deferred. */
static int probe_digest(struct copy_key *k, const char *rel, const struct stat *st,
                        const char *dest, char out[MK_DIGEST_SIZE], struct mk_error **err)
{
    (void)dest;
    struct spec_copy *sc = (struct spec_copy *)k;
    if (builder_hashcache_known(k->b->hc, rel, st, out))
        return 0;
    if (sc->hash_small && (uint64_t)st->st_size < SPEC_SMALL)
        return builder_hashcache_file(k->b->hc, builder_context_dirfd(k->b->ctx), rel, st, out,
                                      err);
    sc->deferred++;
    snprintf(out, MK_DIGEST_SIZE, "unknown");
    return 0;
}

/* probe_digest, and the file in the reuse table as copy_reuse_prepare's walk would put it. */
static int probe_digest_table(struct copy_key *k, const char *rel, const struct stat *st,
                              const char *dest, char out[MK_DIGEST_SIZE], struct mk_error **err)
{
    if (probe_digest(k, rel, st, dest, out, err) < 0)
        return -1;
    reuse_file_add(((struct spec_copy *)k)->j, dest, st, out);
    return 0;
}

static int cmp_spec_file(const void *a, const void *b)
{
    return strcmp(((const struct spec_file *)a)->rel, ((const struct spec_file *)b)->rel);
}

/* The final key's hook: the digest of what the copy wrote, else (a file linked from an
 * earlier snapshot) the hash cache's; a reusable COPY's table is filled on the way. */
static int spec_digest(struct copy_key *k, const char *rel, const struct stat *st, const char *dest,
                       char out[MK_DIGEST_SIZE], struct mk_error **err)
{
    (void)err;
    struct spec_copy *sc = (struct spec_copy *)k;
    struct spec_file key = {.rel = rel};
    struct spec_file *f =
        sc->n_files ? bsearch(&key, sc->files, sc->n_files, sizeof(key), cmp_spec_file) : NULL;
    if (f && f->mode == (uint32_t)st->st_mode) {
        memcpy(out, f->digest, MK_DIGEST_SIZE);
        f->used = true;
    } else if (f || !builder_hashcache_known(k->b->hc, rel, st, out)) {
        sc->mismatch = true;
        snprintf(out, MK_DIGEST_SIZE, "unknown");
    }
    if (sc->j->files_from_key)
        reuse_file_add(sc->j, dest, st, out);
    return 0;
}

/* The copy's records: into sc->files, and the digests of files that did not change while
 * copied into the hash cache. */
static int spec_read(struct build *b, struct spec_copy *sc, struct mk_error **err)
{
    struct stat fst;
    if (fstat(sc->fd, &fst) < 0)
        return mk_error_errno(err, "reading the copy's digests");
    size_t len = (size_t)fst.st_size, n = 0;
    sc->raw = mk_xmalloc(len + 1);
    if (pread(sc->fd, sc->raw, len, 0) != (ssize_t)len)
        return mk_error_errno(err, "reading the copy's digests");
    for (size_t off = 0; off < len;) {
        struct mk_copy_digest d;
        if (len - off < sizeof(d))
            return mk_error_set(err, MK_ERR_IO, 0, "the copy's digests are cut short");
        memcpy(&d, sc->raw + off, sizeof(d));
        off += sizeof(d);
        if (d.rel_len == 0 || d.rel_len > len - off || d.digest[MK_DIGEST_SIZE - 1] != '\0')
            return mk_error_set(err, MK_ERR_IO, 0, "the copy's digests are cut short");
        /* The path is made a string in place: its record is read already. */
        char *rel = sc->raw + off - 1;
        memmove(rel, sc->raw + off, d.rel_len);
        rel[d.rel_len] = '\0';
        off += d.rel_len;
        sc->files = mk_xreallocarray(sc->files, n + 1, sizeof(*sc->files));
        sc->files[n] = (struct spec_file){.rel = rel, .mode = d.mode};
        memcpy(sc->files[n].digest, d.digest, MK_DIGEST_SIZE);
        n++;
        if (d.stable) {
            struct stat st;
            memset(&st, 0, sizeof(st));
            st.st_size = (off_t)d.size;
            st.st_mtim.tv_sec = (time_t)(d.mtime_ns / 1000000000u);
            st.st_mtim.tv_nsec = (long)(d.mtime_ns % 1000000000u);
            st.st_ino = (ino_t)d.ino;
            builder_hashcache_put(b->hc, rel, &st, d.digest);
        }
    }
    if (n)
        qsort(sc->files, n, sizeof(*sc->files), cmp_spec_file);
    /* One source copied twice (two sources naming it): the same bytes both times, or no
     * speculation. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w && strcmp(sc->files[w - 1].rel, sc->files[i].rel) == 0) {
            if (strcmp(sc->files[w - 1].digest, sc->files[i].digest) != 0 ||
                sc->files[w - 1].mode != sc->files[i].mode)
                sc->mismatch = true;
            continue;
        }
        sc->files[w++] = sc->files[i];
    }
    sc->n_files = w;
    return 0;
}

static int copy_key(struct build *b, struct stage *s, struct copy_job *j, struct spec_copy *sc,
                    int (*file_digest)(struct copy_key *, const char *, const struct stat *,
                                       const char *, char *, struct mk_error **),
                    struct mk_error **err)
{
    const struct mk_inst_copy *c = &j->in->copy;
    const struct mk_df_node *n = j->in->node;
    if (!b->hc && builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
        return -1;
    struct copy_key k0 = {.b = b, .h = key_begin(b, s, j->kw), .srcfd = j->spec.src_rootfd};
    struct copy_key *kp = sc ? &sc->k : &k0;
    if (sc) {
        sc->k = k0;
        sc->k.file_digest = file_digest;
        sc->j = j;
    }
#define k (*kp)
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
    vspec.digests = false;
    vspec.visit = copy_key_visit;
    vspec.visit_arg = &k;
    int r = c->from ? 0 : builder_copy_into(-1, &vspec, err);
    mk_sha256_final(k.h, j->key);
    mk_sha256_free(k.h);
    return r < 0 ? node_error(b, n, err, "%s failed", j->kw) : 0;
#undef k
}

/* Before the speculative copy: where its records go. */
static int spec_prepare(struct copy_job *j, struct spec_copy *sc, struct mk_error **err)
{
    sc->fd = memfd_create("mkimg-digests", MFD_CLOEXEC);
    if (sc->fd < 0)
        return mk_error_errno(err, "creating a memfd");
    j->spec.digests = true;
    j->spec.digest_fd = sc->fd;
    return 0;
}

/* After the speculative copy: the key from what it wrote, and its lookup. 1: a hit (the
 * upperdir goes), 0: a miss (it is committed), 2: the copy and the key disagree. */
static int spec_finish(struct build *b, struct stage *s, struct copy_job *j, struct spec_copy *sc,
                       struct mk_error **err)
{
    j->spec.digests = false;
    if (spec_read(b, sc, err) < 0 || copy_key(b, s, j, sc, spec_digest, err) < 0)
        return -1;
    for (size_t i = 0; i < sc->n_files; i++)
        if (!sc->files[i].used)
            sc->mismatch = true;
    if (sc->mismatch)
        return 2;
    bool hit = false;
    cache_lookup(b, s, j->key, j->created_by, &hit);
    return hit ? 1 : 0;
}

/* A cache miss: the downloads with --checksum, the --from root, the copy in a sandbox. */
static int copy_exec(struct build *b, struct stage *s, struct copy_job *j, struct spec_copy *sc,
                     struct mk_error **err)
{
    const struct mk_df_node *n = j->in->node;
    const char *checksum = j->in->copy.checksum;
    _cleanup_free_ char *upper = NULL, *work = NULL;
    _cleanup_close_ int direct_fd = -1;
    int ret = -1;
    for (size_t i = 0; checksum && i < j->urls.urls.n; i++)
        if (url_download(b, n, &j->urls, i, checksum, err) < 0)
            return -1;
    if (j->in->copy.from) {
        if (src_root_open(b, &j->src_lowers, &j->src, err) < 0)
            return node_error(b, n, err, "COPY --from=%s", j->from_name);
        j->spec.src_rootfd = j->src.fd;
    }
    /* The durability window's marker (and its fsync) before the copy dirties the page cache,
     * not after it, when it waits behind the copy's writeback. */
    if (step_begin(b, s, &upper, &work, err) < 0 || layerstore_sync_begin(b->store, err) < 0)
        goto out;
    if (j->reusable)
        copy_reuse_prepare(b, j, upper);
    direct_fd = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC);
    j->spec.direct = direct_fd >= 0;
    j->spec.direct_fd = direct_fd;
    if (sc && spec_prepare(j, sc, err) < 0)
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
    if (sc) {
        int r = spec_finish(b, s, j, sc, err);
        if (r != 0) {
            ret = r < 0 ? node_error(b, n, err, "%s failed", j->kw) : r;
            goto out;
        }
    }
    ret = step_commit_like(b, s, upper, j->created_by, j->reuse_chain[0] ? j->reuse_chain : NULL,
                           err);
    if (ret == 0)
        cache_store(b, s, j->key, false);
    if (ret == 0 && j->reusable)
        copy_reuse_record(b, s, j);
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
        .reuse_dests = MK_STRV_INIT,
        .reuse_fd = -1,
        .upper_fd = -1,
    };
    j.spec.src_rootfd = -1;
    j.spec.chmod = c->chmod;
    /* Local archives are unpacked unless --unpack=false, downloads only with --unpack=true. */
    j.spec.extract = is_add && c->unpack != 0;
    j.spec.parents = c->parents;
    struct spec_copy sc = {.fd = -1};
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
    /* Only a COPY from the context is reused: its sources' digests are known per file. */
    j.reusable = !is_add && !c->from && !in->node->n_heredocs && !j.urls.urls.n && !j.link;
    if (j.reusable)
        reuse_id(b, s, &j);
    /* From the context with digests to find: copied while hashed (spec_copy above) when the
     * hash cache knew nothing of the context, or the files to hash are big. Not with
     * --cache-from: a hit there needs no layer below it, the copy would fetch them all. */
    bool speculate =
        !is_add && !c->from && !in->node->n_heredocs && !j.urls.urls.n && !b->opts->cache_from.n;
    if (speculate && !b->hc &&
        builder_hashcache_open(b->store, b->opts->context_dir, &b->hc, err) < 0)
        goto out;
    /* The hash cache knows nothing of the context (its first build): no file's digest is
     * known, so the first key's walk is left out. */
    bool cold = speculate && builder_hashcache_was_empty(b->hc);
    sc.hash_small = speculate && !cold;
    /* A reusable COPY's table is filled by that walk (copy_reuse_prepare needs no walk). */
    j.files_walked = speculate && !cold && j.reusable;
    if (!cold && copy_key(b, s, &j, speculate ? &sc : NULL,
                          j.files_walked ? probe_digest_table : probe_digest, err) < 0)
        goto out;
    if (cold || sc.deferred) {
        j.files_from_key = true;
        ret = copy_exec(b, s, &j, &sc, err);
        if (ret == 1)
            ret = 0; /* a hit: the copy is thrown away */
        if (ret != 2)
            goto out;
        /* The copy and the key's walk disagree (the context changed meanwhile): as before. */
        spec_copy_release(&sc);
        j.files_from_key = j.files_walked = false;
        j.spec.digests = false;
        layerstore_context_table_free(j.files, j.n_files);
        j.files = NULL;
        j.n_files = j.cap_files = 0;
        mk_strv_clear(&j.reuse_dests);
        j.spec.reuse_dests = NULL;
        layerstore_snapshot_files_free(j.reuse_files);
        j.reuse_files = NULL;
        j.spec.reuse_files = NULL;
        mk_closep(&j.reuse_fd);
        mk_closep(&j.upper_fd);
        if (copy_key(b, s, &j, NULL, NULL, err) < 0)
            goto out;
    }
    bool hit = false;
    cache_lookup(b, s, j.key, j.created_by, &hit);
    ret = hit ? 0 : copy_exec(b, s, &j, NULL, err);
out:
    spec_copy_release(&sc);
    copy_job_release(b, &j);
    return ret;
}
