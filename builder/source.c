/* builder/source.c - build contexts that are not a local directory, and a Dockerfile read from
 * stdin: "-" (a tar, plain or compressed, on stdin), an http(s) URL of a tarball, a git
 * repository ("https://host/repo.git#ref:subdir", "git@host:repo.git", "git://..."), as
 * `docker build` takes them.
 *
 * Everything lands in one private temp dir of the store, which builder_source_release (also
 * after Ctrl-C: the signal only sets mk_interrupted) removes; a crash leaves it unlocked for
 * prune. Archives are unpacked by layerstore_extract, which resolves every entry inside the
 * new context dir, and the Dockerfile of such a context is resolved inside it too and copied
 * out, so that a hostile archive cannot make us read a host file through a symlink. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "builder/internal.h"
#include "common/fsutil.h"

#define SOURCE_MAX (64ull << 30)        /* a context archive: layerstore_extract's own data cap */
#define DOCKERFILE_COPY_MAX (16u << 20) /* as the builder's cap on a Dockerfile */
#define GIT_ERR_MAX 4096
#define OCI_INDEX_MAX (4u << 20) /* an oci-layout's index.json */
#define OCI_REF_NAME "org.opencontainers.image.ref.name"

bool builder_source_is_git(const char *s)
{
    /* ADD's rule (BuildKit's ParseGitRef), plus docker build's github.com/ shorthand. */
    return mk_str_has_prefix(s, "github.com/") || builder_is_git_url(s);
}

bool builder_source_is_remote(const char *s)
{
    return strcmp(s, "-") == 0 || builder_source_is_git(s) || mk_str_has_prefix(s, "https://") ||
           mk_str_has_prefix(s, "http://");
}

/* What messages may show of a URL: without a "user:password@" part. Caller frees. */
static char *redact_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    if (!scheme)
        return mk_xstrdup(url);
    const char *host = scheme + 3, *end = host + strcspn(host, "/#?");
    const char *at = memchr(host, '@', (size_t)(end - host));
    if (!at)
        return mk_xstrdup(url);
    return mk_xasprintf("%.*s%s", (int)(host - url), url, at + 1);
}

/* Copies fd to the end into out_fd, at most max bytes; a signal stops it. */
static int copy_stream(int in_fd, int out_fd, uint64_t max, const char *what, struct mk_error **err)
{
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = read(in_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR && !mk_interrupted)
            continue;
        if (mk_interrupted)
            return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "reading %s: interrupted", what);
        if (n < 0)
            return mk_error_errno(err, "reading %s", what);
        if (n == 0)
            return 0;
        total += (uint64_t)n;
        if (total > max)
            return mk_error_set(err, MK_ERR_INVALID, 0, "reading %s: more than %llu bytes", what,
                                (unsigned long long)max);
        if (mk_write_all(out_fd, buf, (size_t)n, err) < 0)
            return mk_error_wrap(err, "reading %s", what);
    }
}

static int create_file(const char *path, struct mk_error **err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        mk_error_errno(err, "creating \"%s\"", path);
    return fd;
}

/* The bytes in fd (a tar or compressed tar, else a Dockerfile, as docker takes them) become
 * the context dir ctx, or the file df_path and an empty context. */
static int unpack_input(int fd, const char *input_path, const char *ctx, const char *df_path,
                        bool *ret_is_dockerfile, struct mk_error **err)
{
    if (lseek(fd, 0, SEEK_SET) < 0)
        return mk_error_errno(err, "rewinding \"%s\"", input_path);
    _cleanup_close_ int dfd = open(ctx, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", ctx);
    bool extracted = false;
    if (layerstore_extract(fd, dfd, "/", NULL, &extracted, err) < 0)
        return mk_error_wrap(err, "unpacking the build context");
    *ret_is_dockerfile = !extracted;
    if (!extracted && rename(input_path, df_path) < 0)
        return mk_error_errno(err, "renaming \"%s\"", input_path);
    return 0;
}

/* The environment git runs with: ours, made for a run without a terminal. Built before the
 * fork (no allocation in the child of a process that may have threads), never by changing
 * our own. */
static void git_env(struct mk_strv *env)
{
    for (char **e = environ; *e; e++)
        mk_strv_push(env, *e);
    /* Never ask for a password on the terminal: credentials come from git's own helpers. */
    mk_strv_env_set(env, "GIT_TERMINAL_PROMPT", "0");
    mk_strv_env_set(env, "GIT_ASKPASS", "true");
    /* SSL_CERT_FILE trusts a CA for every download of the build, git's too (git's libcurl
     * may be built against GnuTLS, which does not read it). */
    const char *cafile = mk_strv_env_get(env, "SSL_CERT_FILE");
    if (cafile && *cafile && !mk_strv_env_get(env, "GIT_SSL_CAINFO")) {
        _cleanup_free_ char *ca = mk_xstrdup(cafile);
        mk_strv_env_set(env, "GIT_SSL_CAINFO", ca);
    }
}

/* Runs git with argv in dir (NULL: ours); its output goes to log_path, whose last line is the
 * error message when it fails. */
static int run_git(char *const *argv, const char *dir, const char *log_path, const char *what,
                   struct mk_error **err)
{
    _cleanup_close_ int logfd =
        open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (logfd < 0)
        return mk_error_errno(err, "creating \"%s\"", log_path);
    _cleanup_(mk_strv_release) struct mk_strv env = MK_STRV_INIT;
    git_env(&env);
    pid_t pid = fork();
    if (pid < 0)
        return mk_error_errno(err, "%s: fork", what);
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 ||
            (dir && chdir(dir) < 0))
            _exit(127);
        execvpe(argv[0], argv, env.v);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return mk_error_errno(err, "%s: waiting for git", what);
    if (mk_interrupted)
        return mk_error_set(err, MK_ERR_INTERRUPTED, 0, "%s: interrupted", what);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return mk_error_set(err, MK_ERR_UNSUPPORTED, 0,
                            "%s: cannot run \"git\" (install the git package)", what);
    _cleanup_free_ char *out = NULL;
    size_t len = 0;
    struct mk_error *e = NULL;
    if (mk_read_file_at(AT_FDCWD, log_path, 1u << 20, &out, &len, &e) < 0) {
        mk_error_free(e);
        out = NULL;
    }
    /* The last non-empty line, control bytes escaped: the server chose its text. */
    const char *line = "";
    if (out) {
        while (len && (out[len - 1] == '\n' || out[len - 1] == '\r'))
            out[--len] = '\0';
        char *nl = strrchr(out, '\n');
        line = nl ? nl + 1 : out;
        if (strlen(line) > GIT_ERR_MAX)
            out[(size_t)(line - out) + GIT_ERR_MAX] = '\0';
    }
    _cleanup_free_ char *shown = mk_str_escape_control(line);
    size_t cmd = 1;
    while (argv[cmd] && strcmp(argv[cmd], "-c") == 0 && argv[cmd + 1])
        cmd += 2;
    return mk_error_set(err, MK_ERR_FAILED, 0, "%s: git %s failed%s%s", what, argv[cmd],
                        *shown ? ": " : "", shown);
}

/* "URL#ref:subdir" -> remote URL, ref (NULL = the remote's HEAD), subdir (NULL = the root). */
static void split_git_url(const char *s, char **ret_url, char **ret_ref, char **ret_subdir)
{
    const char *hash = strchr(s, '#');
    *ret_ref = *ret_subdir = NULL;
    if (mk_str_has_prefix(s, "github.com/"))
        *ret_url = mk_xasprintf("https://%.*s", (int)(hash ? (size_t)(hash - s) : strlen(s)), s);
    else
        *ret_url = hash ? mk_xstrndup(s, (size_t)(hash - s)) : mk_xstrdup(s);
    if (!hash)
        return;
    const char *frag = hash + 1, *colon = strchr(frag, ':');
    size_t rn = colon ? (size_t)(colon - frag) : strlen(frag);
    if (rn)
        *ret_ref = mk_xstrndup(frag, rn);
    if (colon && colon[1])
        *ret_subdir = mk_xstrdup(colon + 1);
}

/* The first line git printed into log_path (its stdout there), e.g. rev-parse's answer. */
static int git_output_line(const char *log_path, char **ret, struct mk_error **err)
{
    _cleanup_free_ char *out = NULL;
    size_t len = 0;
    if (mk_read_file_at(AT_FDCWD, log_path, 4096, &out, &len, err) < 0)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    *ret = MK_TAKE_PTR(out);
    return 0;
}

static int fetch_git(const char *spec, const char *kind, const char *tmpdir, const char *ctx,
                     bool keep_git_dir, char **ret_subdir, char **ret_commit, struct mk_error **err)
{
    _cleanup_free_ char *url = NULL, *ref = NULL, *subdir = NULL, *commit = NULL;
    split_git_url(spec, &url, &ref, &subdir);
    _cleanup_free_ char *shown = redact_url(url);
    _cleanup_free_ char *what = mk_xasprintf("fetching %s \"%s\"", kind, shown);
    if (ref && ref[0] == '-')
        return mk_error_set(err, MK_ERR_USAGE, 0, "%s: invalid ref \"%s\"", what, ref);
    _cleanup_free_ char *log_path = mk_xasprintf("%s/git.log", tmpdir);
    /* A shallow fetch of just the ref (a branch, a tag or a commit), as BuildKit does. */
    char *init[] = {"git", "-c", "init.defaultBranch=mkimg", "init", "-q", (char *)ctx, NULL};
    char *fetch[] = {"git", "-c", "protocol.version=2", "fetch", "-q", "--depth=1", "--no-tags",
                     "--",  url,  ref ? ref : "HEAD",   NULL};
    char *checkout[] = {"git",        "-c", "advice.detachedHead=false", "checkout", "-q",
                        "FETCH_HEAD", NULL};
    char *submodules[] = {"git",         "-c",        "protocol.file.allow=user",
                          "submodule",   "update",    "--init",
                          "--recursive", "--depth=1", "-q",
                          NULL};
    char *rev_parse[] = {"git", "rev-parse", "HEAD", NULL};
    if (run_git(init, NULL, log_path, what, err) < 0 ||
        run_git(fetch, ctx, log_path, what, err) < 0 ||
        run_git(checkout, ctx, log_path, what, err) < 0)
        return -1;
    _cleanup_free_ char *gitmodules = mk_xasprintf("%s/.gitmodules", ctx);
    if (access(gitmodules, F_OK) == 0 && run_git(submodules, ctx, log_path, what, err) < 0)
        return -1;
    if (run_git(rev_parse, ctx, log_path, what, err) < 0 ||
        git_output_line(log_path, &commit, err) < 0)
        return -1;
    /* As BuildKit, .git is not part of a context, nor of ADD without --keep-git-dir. */
    _cleanup_close_ int dfd = open(ctx, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", ctx);
    if (!keep_git_dir && mk_rm_rf_at(dfd, ".git", err) < 0)
        return -1;
    *ret_subdir = MK_TAKE_PTR(subdir);
    *ret_commit = MK_TAKE_PTR(commit);
    return 0;
}

/* subdir (NULL: dir itself), resolved inside dir: "../x" or a symlink cannot leave it. */
static int resolve_subdir(const char *dir, const char *subdir, const char *kind, char **ret,
                          struct mk_error **err)
{
    if (!subdir) {
        *ret = mk_xstrdup(dir);
        return 0;
    }
    _cleanup_close_ int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int sfd =
        root < 0 ? -1 : mk_open_in_root(root, subdir, O_PATH | O_DIRECTORY, 0, err);
    if (sfd < 0)
        return root < 0 ? mk_error_errno(err, "opening \"%s\"", dir)
                        : mk_error_wrap(err, "the %s's subdirectory \"%s\"", kind, subdir);
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", sfd);
    ssize_t n = readlink(link, real, sizeof(real) - 1);
    if (n < 0)
        return mk_error_errno(err, "resolving \"%s\"", subdir);
    real[n] = '\0';
    *ret = mk_xstrdup(real);
    return 0;
}

int builder_git_checkout(const char *spec, const char *kind, const char *tmpdir, const char *dest,
                         bool keep_git_dir, char **ret_dir, char **ret_commit,
                         struct mk_error **err)
{
    _cleanup_free_ char *subdir = NULL, *commit = NULL, *dir = NULL;
    if (fetch_git(spec, kind, tmpdir, dest, keep_git_dir, &subdir, &commit, err) < 0 ||
        resolve_subdir(dest, subdir, kind, &dir, err) < 0)
        return -1;
    *ret_dir = MK_TAKE_PTR(dir);
    *ret_commit = MK_TAKE_PTR(commit);
    return 0;
}

/* The Dockerfile named rel inside the context at ctx (resolved inside it), copied to out. */
static int copy_dockerfile(const char *ctx, const char *rel, const char *out, bool *ret_found,
                           struct mk_error **err)
{
    _cleanup_close_ int dfd = open(ctx, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", ctx);
    struct mk_error *e = NULL;
    _cleanup_close_ int in = mk_open_in_root(dfd, rel, O_RDONLY | O_NONBLOCK, 0, &e);
    if (in < 0) {
        bool missing = e && (e->code == MK_ERR_NOT_FOUND || e->sys_errno == ENOENT);
        if (missing) {
            mk_error_free(e);
            *ret_found = false;
            return 0;
        }
        *err = e;
        return -1;
    }
    struct stat st;
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
        return mk_error_set(err, MK_ERR_INVALID, 0, "\"%s\" in the build context is not a file",
                            rel);
    _cleanup_close_ int fd = create_file(out, err);
    if (fd < 0 || copy_stream(in, fd, DOCKERFILE_COPY_MAX, rel, err) < 0)
        return -1;
    *ret_found = true;
    return 0;
}

/* The Dockerfile of a remote context (-f names a file inside it, as with docker; else
 * builder_dockerfile_default), copied to out, and its own ignore file NAME.dockerignore, when
 * the context has one, to out.dockerignore: beside the copy, where the context reader looks. */
static int copy_context_dockerfile(const char *ctx, const char *dockerfile, const char *out,
                                   struct mk_error **err)
{
    _cleanup_close_ int dfd = open(ctx, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_errno(err, "opening \"%s\"", ctx);
    const char *name = dockerfile ? dockerfile : builder_dockerfile_default(dfd);
    bool found = false;
    if (copy_dockerfile(ctx, name, out, &found, err) < 0)
        return -1;
    if (!found)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "no \"%s\" in the build context", name);
    _cleanup_free_ char *ignore = mk_xasprintf("%s.dockerignore", name);
    _cleanup_free_ char *ignore_out = mk_xasprintf("%s.dockerignore", out);
    return copy_dockerfile(ctx, ignore, ignore_out, &found, err);
}

/* A remote context (git, http(s) or "-") into the new directory ctx under tmpdir: ret_dir is
 * the context directory (a git subdir resolved inside ctx), or, when the bytes were no tar,
 * NULL and they are the file df_path. */
static int fetch_context(const char *context, const struct registry_opts *ropts, const char *tmpdir,
                         const char *ctx, const char *df_path, char **ret_dir,
                         struct mk_error **err)
{
    *ret_dir = NULL;
    if (mkdir(ctx, 0755) < 0)
        return mk_error_errno(err, "creating \"%s\"", ctx);
    if (builder_source_is_git(context)) {
        _cleanup_free_ char *commit = NULL;
        return builder_git_checkout(context, "git context", tmpdir, ctx, false, ret_dir, &commit,
                                    err);
    }
    _cleanup_free_ char *input = mk_xasprintf("%s/input", tmpdir);
    _cleanup_close_ int fd = create_file(input, err);
    if (fd < 0)
        return -1;
    if (strcmp(context, "-") == 0) {
        if (copy_stream(STDIN_FILENO, fd, SOURCE_MAX, "the build context from stdin", err) < 0)
            return -1;
    } else {
        struct registry_fetch_result res;
        if (registry_fetch_url(context, ropts, SOURCE_MAX, fd, &res, err) < 0)
            return -1;
    }
    bool is_dockerfile = false;
    if (unpack_input(fd, input, ctx, df_path, &is_dockerfile, err) < 0)
        return -1;
    *ret_dir = is_dockerfile ? NULL : mk_xstrdup(ctx);
    return 0;
}

int builder_source_prepare(struct mk_store *store, const char *context, const char *dockerfile,
                           const struct registry_opts *ropts, struct builder_source *ret,
                           struct mk_error **err)
{
    bool remote = builder_source_is_remote(context);
    bool df_stdin = dockerfile && strcmp(dockerfile, "-") == 0;
    memset(ret, 0, sizeof(*ret));
    if (df_stdin && strcmp(context, "-") == 0)
        return mk_error_set(err, MK_ERR_USAGE, 0,
                            "the build context and the Dockerfile cannot both come from stdin");
    if (!remote && !df_stdin) {
        ret->context_dir = mk_xstrdup(context);
        return 0;
    }
    _cleanup_(builder_source_releasep) struct builder_source *src = mk_xcalloc(1, sizeof(*src));
    src->store = store;
    src->tmpdir = layerstore_tmpdir(store, "context-", err);
    if (!src->tmpdir)
        return -1;
    _cleanup_free_ char *df_path = mk_xasprintf("%s/Dockerfile", src->tmpdir);
    _cleanup_free_ char *ctx = mk_xasprintf("%s/context", src->tmpdir);
    if (df_stdin) {
        _cleanup_close_ int fd = create_file(df_path, err);
        if (fd < 0 || copy_stream(STDIN_FILENO, fd, DOCKERFILE_COPY_MAX,
                                  "the Dockerfile from stdin", err) < 0)
            return -1;
        src->dockerfile = mk_xstrdup(df_path);
    }
    if (!remote) {
        src->context_dir = mk_xstrdup(context);
        goto done;
    }
    if (fetch_context(context, ropts, src->tmpdir, ctx, df_path, &src->context_dir, err) < 0)
        return -1;
    if (!src->context_dir) {
        if (src->dockerfile)
            return mk_error_set(err, MK_ERR_USAGE, 0,
                                "the build context is not a tar archive (a Dockerfile given "
                                "as the context needs no -f)");
        src->dockerfile = mk_xstrdup(df_path);
        src->context_dir = mk_xstrdup(ctx);
    }
    if (!src->dockerfile && copy_context_dockerfile(src->context_dir, dockerfile, df_path, err) < 0)
        return -1;
    if (!src->dockerfile)
        src->dockerfile = mk_xstrdup(df_path);
done:
    *ret = *src;
    memset(src, 0, sizeof(*src));
    return 0;
}

void builder_source_release(struct builder_source *src)
{
    if (!src)
        return;
    if (src->tmpdir)
        layerstore_tmpdir_remove(src->store, src->tmpdir, NULL);
    free(src->tmpdir);
    free(src->context_dir);
    free(src->dockerfile);
    memset(src, 0, sizeof(*src));
}

void builder_source_releasep(struct builder_source **src)
{
    if (*src) {
        builder_source_release(*src);
        free(*src);
    }
}

/* ---- --build-context NAME=VALUE ---------------------------------------------------------- */

/* The tree at dir as an untagged one-layer image of the host's platform (findable by ID).
 * It has no creation time: the same tree gives the same image, so the build cache holds. */
static int import_dir(struct mk_store *store, const char *tmpdir, const char *dir, char **ret_id,
                      struct mk_error **err)
{
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return mk_error_set(err, errno == ENOENT ? MK_ERR_NOT_FOUND : MK_ERR_IO, errno,
                            "opening \"%s\"", dir);
    _cleanup_free_ char *tar = mk_xasprintf("%s/tree.tar", tmpdir);
    _cleanup_close_ int fd = create_file(tar, err);
    if (fd < 0 || layerstore_tar_tree(dfd, fd, MK_EPOCH_NONE, err) < 0)
        return -1;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return mk_error_errno(err, "rewinding \"%s\"", tar);
    struct mk_layer_desc layer;
    if (layerstore_layer_import_tar(store, fd, "", &layer, NULL, err) < 0)
        return -1;
    struct mk_image_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    struct mk_platform host;
    mk_platform_host(&host);
    cfg.os = mk_xstrdup(host.os);
    cfg.architecture = mk_xstrdup(host.arch);
    cfg.variant = host.variant[0] ? mk_xstrdup(host.variant) : NULL;
    mk_strv_push(&cfg.diff_ids, layer.diff_id);
    struct mk_image *img = NULL;
    int r = layerstore_image_write(store, &cfg, &layer, 1, &img, err);
    if (r == 0)
        r = layerstore_tag(store, img, NULL, err);
    if (r == 0)
        *ret_id = mk_xstrdup(img->config_digest);
    layerstore_image_free(img);
    layerstore_config_release(&cfg);
    free(layer.media_type);
    return r;
}

/* The descriptor of index.json (in data) that sel names: "@DIGEST", ":TAG" (its ref.name),
 * or "" (the tag latest, else the only image). A copy without annotations, so loading it
 * tags nothing. */
static json_t *oci_layout_pick(const char *data, size_t len, const char *sel, struct mk_error **err)
{
    json_auto_t *idx = json_loadb(data, len, 0, NULL);
    json_t *list = json_object_get(idx, "manifests");
    if (!json_is_array(list))
        return mk_error_set(err, MK_ERR_PARSE, 0, "bad index.json"), NULL;
    if (sel[0] == '@')
        return json_pack("{ss}", "digest", sel + 1);
    const char *tag = sel[0] == ':' ? sel + 1 : "latest";
    size_t i;
    json_t *d, *pick = NULL;
    json_array_foreach(list, i, d)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(d, "annotations"), OCI_REF_NAME));
        /* A bare tag (BuildKit's layouts), or NAME:TAG (as `mkimg save` and skopeo write). */
        const char *colon = name ? strrchr(name, ':') : NULL;
        if (name && (strcmp(name, tag) == 0 ||
                     (colon && strcmp(colon + 1, tag) == 0 && !strchr(colon, '/'))))
            pick = d;
    }
    if (!pick && !sel[0] && json_array_size(list) == 1)
        pick = json_array_get(list, 0);
    if (!pick)
        return mk_error_set(err, MK_ERR_NOT_FOUND, 0, "no image tagged \"%s\" in index.json", tag),
               NULL;
    json_t *ret = json_deep_copy(pick);
    json_object_del(ret, "annotations");
    return ret;
}

/* Links (else copies) every blob of the layout at src into dst/blobs/sha256. */
static int oci_layout_blobs(const char *src, const char *dst, struct mk_error **err)
{
    _cleanup_free_ char *from = mk_xasprintf("%s/blobs/sha256", src);
    _cleanup_free_ char *to = mk_xasprintf("%s/blobs/sha256", dst);
    if (mk_mkdir_p(to, 0755, err) < 0)
        return -1;
    DIR *d = opendir(from);
    if (!d)
        return mk_error_errno(err, "opening \"%s\"", from);
    struct dirent *e;
    int r = 0;
    while (r == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        _cleanup_close_ int in = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        _cleanup_free_ char *a = mk_xasprintf("%s/%s", from, e->d_name);
        _cleanup_free_ char *b = mk_xasprintf("%s/%s", to, e->d_name);
        if (link(a, b) == 0)
            continue;
        _cleanup_close_ int out = create_file(b, err);
        r = out < 0 ? -1 : copy_stream(in, out, UINT64_MAX, a, err);
    }
    closedir(d);
    return r;
}

/* oci-layout://PATH[:TAG|@DIGEST]: the image loaded into the store untagged (by ID). */
static int load_oci_layout(struct mk_store *store, const char *tmpdir, const char *spec,
                           char **ret_id, struct mk_error **err)
{
    const char *at = strrchr(spec, '@'), *slash = strrchr(spec, '/');
    const char *colon = strrchr(slash ? slash : spec, ':');
    const char *sel = at ? at : colon ? colon : spec + strlen(spec);
    _cleanup_free_ char *path = mk_xstrndup(spec, (size_t)(sel - spec));
    if (at && !mk_digest_valid(at + 1))
        return mk_error_set(err, MK_ERR_USAGE, 0, "invalid digest \"%s\"", at + 1);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    _cleanup_free_ char *index = mk_xasprintf("%s/index.json", path);
    if (mk_read_file_at(AT_FDCWD, index, OCI_INDEX_MAX, &data, &len, err) < 0)
        return mk_error_wrap(err, "no OCI layout at \"%s\"", path);
    json_auto_t *desc = oci_layout_pick(data, len, sel, err);
    if (!desc)
        return mk_error_wrap(err, "\"%s\"", path);
    json_auto_t *out = json_pack("{sis[O]}", "schemaVersion", 2, "manifests", desc);
    _cleanup_free_ char *layout = mk_xasprintf("%s/layout", tmpdir);
    _cleanup_free_ char *out_json = json_dumps(out, JSON_COMPACT);
    static const char version[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    if (oci_layout_blobs(path, layout, err) < 0)
        return -1;
    _cleanup_close_ int lfd = open(layout, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lfd < 0)
        return mk_error_errno(err, "opening \"%s\"", layout);
    if (mk_write_file_atomic(lfd, "index.json", out_json, strlen(out_json), 0644, err) < 0 ||
        mk_write_file_atomic(lfd, "oci-layout", version, strlen(version), 0644, err) < 0)
        return -1;
    /* layerstore_load verifies every blob on the way in, as for `mkimg load`. */
    _cleanup_free_ char *tar = mk_xasprintf("%s/layout.tar", tmpdir);
    _cleanup_close_ int fd = create_file(tar, err);
    if (fd < 0 || layerstore_tar_tree(lfd, fd, MK_EPOCH_NONE, err) < 0)
        return -1;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return mk_error_errno(err, "rewinding \"%s\"", tar);
    _cleanup_(mk_strv_release) struct mk_strv loaded = MK_STRV_INIT;
    if (layerstore_load(store, fd, &loaded, err) < 0)
        return mk_error_wrap(err, "loading \"%s\"", path);
    if (loaded.n != 1 || !mk_digest_valid(loaded.v[0]))
        MK_BUG("an untagged load gave no image ID");
    *ret_id = mk_xstrdup(loaded.v[0]);
    return 0;
}

/* What one VALUE stands for: an image reference the builder resolves as a FROM (docker-image),
 * or the ID of an image made here now (a directory, a remote context, an OCI layout). */
static int named_context_value(struct mk_store *store, const char *tmpdir, const char *value,
                               const struct registry_opts *ropts, char **ret, struct mk_error **err)
{
    if (mk_str_has_prefix(value, "docker-image://")) {
        const char *ref = value + strlen("docker-image://");
        _cleanup_free_ char *norm = mk_ref_local_name(ref, err);
        if (!norm)
            return -1;
        *ret = mk_xstrdup(ref);
        return 0;
    }
    if (mk_str_has_prefix(value, "oci-layout://"))
        return load_oci_layout(store, tmpdir, value + strlen("oci-layout://"), ret, err);
    if (builder_source_is_git(value) || mk_str_has_prefix(value, "https://") ||
        mk_str_has_prefix(value, "http://")) {
        _cleanup_free_ char *ctx = mk_xasprintf("%s/context", tmpdir);
        _cleanup_free_ char *file = mk_xasprintf("%s/file", tmpdir);
        _cleanup_free_ char *dir = NULL;
        if (fetch_context(value, ropts, tmpdir, ctx, file, &dir, err) < 0)
            return -1;
        if (!dir)
            return mk_error_set(err, MK_ERR_INVALID, 0, "not a tar archive");
        return import_dir(store, tmpdir, dir, ret, err);
    }
    const char *scheme = strstr(value, "://");
    if (scheme)
        return mk_error_set(err, MK_ERR_USAGE, 0,
                            "unknown scheme \"%.*s\" (use a directory, docker-image://, "
                            "oci-layout://, an http(s) URL or a git URL)",
                            (int)(scheme + 3 - value), value);
    return import_dir(store, tmpdir, value, ret, err);
}

/* The key a name is looked up by: its familiar form, as BuildKit compares them
 * ("docker.io/library/alpine" is "alpine:latest"). Caller frees; NULL for an invalid name. */
static char *context_key(const char *name)
{
    struct mk_ref *ref = NULL;
    if (mk_ref_parse(name, &ref, NULL) < 0)
        return NULL;
    char *key = mk_ref_familiar(ref);
    mk_ref_free(ref);
    return key;
}

int builder_named_contexts_prepare(struct mk_store *store, const struct mk_strv *specs,
                                   const struct registry_opts *ropts, struct mk_strv *ret,
                                   struct mk_error **err)
{
    struct mk_strv out = MK_STRV_INIT;
    for (size_t i = 0; i < specs->n; i++) {
        const char *spec = specs->v[i], *eq = strchr(spec, '=');
        if (!eq || eq == spec || !eq[1]) {
            mk_strv_release(&out);
            return mk_error_set(err, MK_ERR_USAGE, 0, "--build-context \"%s\": expected NAME=VALUE",
                                spec);
        }
        _cleanup_free_ char *name = mk_xstrndup(spec, (size_t)(eq - spec));
        _cleanup_free_ char *key = context_key(name);
        _cleanup_free_ char *value = NULL;
        char *tmpdir = key ? layerstore_tmpdir(store, "named-context-", err) : NULL;
        int r = !key      ? mk_error_set(err, MK_ERR_USAGE, 0, "invalid context name \"%s\"", name)
                : !tmpdir ? -1
                          : named_context_value(store, tmpdir, eq + 1, ropts, &value, err);
        if (tmpdir)
            layerstore_tmpdir_remove(store, tmpdir, NULL);
        free(tmpdir);
        if (r < 0) {
            mk_strv_release(&out);
            return mk_error_wrap(err, "--build-context \"%s\"", spec);
        }
        mk_strv_env_set(&out, key, value);
    }
    *ret = out;
    return 0;
}

const char *builder_named_context(const struct mk_strv *contexts, const char *name)
{
    if (!contexts || !contexts->n)
        return NULL;
    _cleanup_free_ char *key = context_key(name);
    return key ? mk_strv_env_get(contexts, key) : NULL;
}
