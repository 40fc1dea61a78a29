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
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builder/internal.h"
#include "common/fsutil.h"

#define SOURCE_MAX (64ull << 30)        /* a context archive: layerstore_extract's own data cap */
#define DOCKERFILE_COPY_MAX (16u << 20) /* as the builder's cap on a Dockerfile */
#define GIT_ERR_MAX 4096

bool builder_source_is_git(const char *s)
{
    if (mk_str_has_prefix(s, "git://") || mk_str_has_prefix(s, "git@") ||
        mk_str_has_prefix(s, "ssh://") || mk_str_has_prefix(s, "github.com/"))
        return true;
    if (!mk_str_has_prefix(s, "https://") && !mk_str_has_prefix(s, "http://"))
        return false;
    size_t n = strcspn(s, "#?");
    return n >= 4 && memcmp(s + n - 4, ".git", 4) == 0;
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

static int fetch_git(const char *spec, const char *tmpdir, const char *ctx, char **ret_subdir,
                     struct mk_error **err)
{
    _cleanup_free_ char *url = NULL, *ref = NULL, *subdir = NULL;
    split_git_url(spec, &url, &ref, &subdir);
    _cleanup_free_ char *shown = redact_url(url);
    _cleanup_free_ char *what = mk_xasprintf("fetching git context \"%s\"", shown);
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
    if (run_git(init, NULL, log_path, what, err) < 0 ||
        run_git(fetch, ctx, log_path, what, err) < 0 ||
        run_git(checkout, ctx, log_path, what, err) < 0)
        return -1;
    _cleanup_free_ char *gitmodules = mk_xasprintf("%s/.gitmodules", ctx);
    if (access(gitmodules, F_OK) == 0 && run_git(submodules, ctx, log_path, what, err) < 0)
        return -1;
    /* BuildKit leaves .git out of the context (its --keep-git-dir is for ADD only). */
    _cleanup_close_ int dfd = open(ctx, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || mk_rm_rf_at(dfd, ".git", err) < 0)
        return dfd < 0 ? mk_error_errno(err, "opening \"%s\"", ctx) : -1;
    *ret_subdir = MK_TAKE_PTR(subdir);
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
    _cleanup_free_ char *subdir = NULL;
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
    if (mkdir(ctx, 0755) < 0)
        return mk_error_errno(err, "creating \"%s\"", ctx);
    bool is_dockerfile = false;
    if (builder_source_is_git(context)) {
        if (fetch_git(context, src->tmpdir, ctx, &subdir, err) < 0)
            return -1;
    } else {
        _cleanup_free_ char *input = mk_xasprintf("%s/input", src->tmpdir);
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
        if (unpack_input(fd, input, ctx, df_path, &is_dockerfile, err) < 0)
            return -1;
        if (is_dockerfile) {
            if (src->dockerfile)
                return mk_error_set(err, MK_ERR_USAGE, 0,
                                    "the build context is not a tar archive (a Dockerfile given "
                                    "as the context needs no -f)");
            src->dockerfile = mk_xstrdup(df_path);
        }
    }
    if (subdir) {
        /* Resolved inside the checkout: "../x" or a symlink cannot leave it. */
        _cleanup_close_ int root = open(ctx, O_PATH | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int sfd =
            root < 0 ? -1 : mk_open_in_root(root, subdir, O_PATH | O_DIRECTORY, 0, err);
        if (sfd < 0)
            return root < 0 ? mk_error_errno(err, "opening \"%s\"", ctx)
                            : mk_error_wrap(err, "the git context's subdirectory \"%s\"", subdir);
        char link[64], real[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", sfd);
        ssize_t n = readlink(link, real, sizeof(real) - 1);
        if (n < 0)
            return mk_error_errno(err, "resolving \"%s\"", subdir);
        real[n] = '\0';
        src->context_dir = mk_xstrdup(real);
    } else {
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
