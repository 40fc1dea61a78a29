/* builder/internal.h - the services the builder's files share (sandbox, context, copy engine,
 * progress, users, squash). Not a public API. The build driver's own state and its rooms'
 * entry points are in builder/rooms.h. */
#ifndef MK_BUILDER_INTERNAL_H
#define MK_BUILDER_INTERNAL_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "builder/builder.h"
#include "parser/parser.h"

/* ---- RUN sandbox (builder/sandbox.c) ------------------------------------------------------ */

enum mk_sandbox_mount_type { MK_MOUNT_BIND, MK_MOUNT_TMPFS, MK_MOUNT_OVERLAY };

struct mk_sandbox_mount {
    enum mk_sandbox_mount_type type;
    const char *source; /* host path for binds (also what messages name) */
    const char *target; /* absolute path inside the rootfs */
    bool readonly;
    /* MK_MOUNT_BIND: when has_source_fd, source_fd (an fd the caller resolved safely, e.g.
     * inside the build context, and keeps open) is the source, and source is only its name.
     * The sandbox clones the tree from the fd itself: it is never looked up by path again. */
    bool has_source_fd;
    int source_fd;
    /* MK_MOUNT_OVERLAY: an overlay of lowerdirs (top-most first; NULL or none: empty) over
     * upperdir/workdir (where writes go); subpath (NULL = the root), resolved inside it,
     * is what appears at target. When has_lower_fd, lower_fd (kept open by the caller) is
     * one more lowerdir below them all, taken by fd as source_fd is. */
    const struct mk_strv *lowerdirs;
    const char *upperdir, *workdir, *subpath;
    bool has_lower_fd;
    int lower_fd;
};

struct mk_sandbox_spec {
    /* Root file system: overlay of lowerdirs (top-most first; may be empty for scratch)
     * with upperdir/workdir (both inside one store tmpdir). */
    const struct mk_strv *lowerdirs;
    const char *upperdir;
    const char *workdir;
    /* The process (only for builder_sandbox_run). */
    char *const *argv;
    const struct mk_strv *env; /* "K=V" */
    const char *cwd;           /* inside the rootfs; created when missing */
    const char *user;          /* "name", "uid", "name:group", "uid:gid"; NULL = root */
    const char *hostname;      /* NULL = "mkimg" */
    enum mk_network network;
    const struct mk_sandbox_mount *mounts;
    size_t n_mounts;
    int stdout_fd, stderr_fd; /* the RUN's output (-1: discarded); stdin is /dev/null */
    /* RUN --security=insecure (allowed by the user): every capability of mkimg's own user
     * namespace, no seccomp filter, nothing masked, /sys and /proc/sys writable. */
    bool insecure;
};

/* Scratch space for one overlay mount: a store tmpdir holding upper/ and work/. */
struct mk_workspace {
    char *tmp, *upper, *work;
};
/* Creates it (ret zeroed first); on failure nothing is left behind. */
int builder_workspace_new(struct mk_store *store, const char *prefix, struct mk_workspace *ret,
                          struct mk_error **err);
/* Removes the tmpdir and frees the paths; accepts a zeroed workspace. */
void builder_workspace_release(struct mk_store *store, struct mk_workspace *ws);

/* ---- progress (progress.c) ---- */
struct mk_progress_ui;
/* fd < 0: quiet, nothing is shown. */
struct mk_progress_ui *builder_progress_new(int fd, enum mk_progress mode);
void builder_progress_free(struct mk_progress_ui *p);
/* Plain result lines name their step ("#3 => done 1.2s"): for stages shown interleaved. */
void builder_progress_tag_results(struct mk_progress_ui *p);
/* A step starts: "[step/n_steps] text". timed: plain mode prints its time when it ends. */
void builder_progress_step(struct mk_progress_ui *p, size_t step, size_t n_steps, const char *text,
                           bool timed);
/* The step ends: result NULL = it ran (its time is shown), else e.g. "CACHED", "ERROR". A
 * second call for the same step does nothing. */
void builder_progress_done(struct mk_progress_ui *p, const char *result);
/* A message between the step lines (text ends with a newline). */
void builder_progress_log(struct mk_progress_ui *p, const char *text);
/* The fd a RUN writes its stdout and stderr to (lines shown behind the step's prefix), or
 * -1 when quiet; output_end waits until all of it is shown. */
int builder_progress_output_begin(struct mk_progress_ui *p);
void builder_progress_output_end(struct mk_progress_ui *p);

/* --squash: merges overlay-format snapshot dirs (bottom-most first) into the empty upper
 * directory dest, so that dest is the diff of all of them (whiteouts and opaque directories
 * kept). Files are hard-linked from the snapshots. */
int builder_squash_snapshots(const struct mk_strv *snapshots, const char *dest,
                             struct mk_error **err);
/* Keeps a lowerdir list (top-most first) within what one overlay mount takes: past the
 * limit, the bottom part becomes one merged directory (made once, under ROOT/flat). */
int builder_fit_lowerdirs(struct mk_store *store, struct mk_strv *lowerdirs, struct mk_error **err);
/* An image's snapshots as lowerdirs for one overlay mount (top-most first, fitted). */
int builder_image_lowerdirs(struct mk_store *store, const struct mk_image *img, struct mk_strv *ret,
                            struct mk_error **err);

/* Runs spec->argv in a new container. Its pid 1 (in new mount, pid, ipc and uts namespaces,
 * and net for MK_NET_NONE, but in mkimg's own user namespace) puts the root together: the
 * overlay, /proc, a minimal /dev (null zero full random urandom tty, pts, shm), /sys
 * read-only, the host's resolv.conf, a hosts file, the spec's mounts, runc's masked and
 * read-only paths; then it starts the command in a new user namespace (the identity map of
 * our own ids) with a mount namespace of its own, so the kernel locks every mount flag set
 * above it: the command cannot unmount, remount writable or uncover anything. The command
 * runs with env, cwd and user applied, Docker's default capabilities, the seccomp filter and
 * no_new_privs (builder/confine.c). Mount points the sandbox had to create in the rootfs
 * are removed from the upperdir again if they stayed empty.
 * *ret_status is the command's exit status (128+N when killed by signal N).
 * A SIGINT/SIGTERM to mkimg (mk_interrupted) kills the container and fails with
 * MK_ERR_INTERRUPTED. The child dies with mkimg (PR_SET_PDEATHSIG). */
int builder_sandbox_run(const struct mk_sandbox_spec *spec, int *ret_status, struct mk_error **err);
/* builder_sandbox_run returns once the command and all it started are gone, while the
 * container's pid 1 may still be exiting (its mounts going): this waits for that one, if
 * any. Called before the next container, before --jobs helpers are forked and at the end of
 * a build. */
void builder_sandbox_reap(void);

/* Mounts the same root file system in a child process (user + mount namespace only) and
 * calls fn(rootfd, arg, err) there, with rootfd an O_PATH fd of the merged root; used by
 * COPY, WORKDIR and the user lookup. fn's error is carried back to the caller. */
typedef int (*mk_sandbox_fn)(int rootfd, void *arg, struct mk_error **err);
int builder_sandbox_call(const struct mk_sandbox_spec *spec, mk_sandbox_fn fn, void *arg,
                         struct mk_error **err);
/* Tests only: mount the overlay with mount(2) as on kernels before 6.8 ("lowerdir+"). */
extern bool builder_sandbox_legacy_mount;

/* ---- confinement of a RUN process (builder/confine.c) ---- */
/* runc's default masked paths (a file gets /dev/null, a directory an empty read-only tmpfs)
 * and read-only paths; NULL-terminated. */
extern const char *const builder_masked_paths[];
extern const char *const builder_readonly_paths[];
/* Docker's default capability set, as a bit mask. */
uint64_t builder_default_caps(void);
/* Drops every other capability from the bounding set and clears the ambient set (needs
 * CAP_SETPCAP: call before switching to the command's user). */
int builder_confine_bounding(struct mk_error **err);
/* Cuts the permitted, effective and inheritable sets to the default set. */
int builder_confine_caps(struct mk_error **err);
/* Compiles the seccomp filter once for this process (and the children it forks), so that
 * builder_confine_seccomp only loads it. */
int builder_confine_seccomp_prepare(struct mk_error **err);
/* Loads the seccomp filter into this thread (after no_new_privs): the prepared program, or
 * one compiled here. */
int builder_confine_seccomp(struct mk_error **err);

/* Resolves USER ("name[:group]" / "uid[:gid]") through rootfd's /etc/passwd and
 * /etc/group: uid, primary gid, supplementary groups. A numeric uid without an entry is
 * accepted (gid = uid's entry or 0); an unknown name is MK_ERR_NOT_FOUND. */
int builder_resolve_user(int rootfd, const char *user, uid_t *ret_uid, gid_t *ret_gid,
                         struct mk_error **err);
/* Same, plus the supplementary groups (groups whose member list names the user; caller
 * frees *ret_groups, NULL when there are none) and the home directory ("/" without a passwd
 * entry; caller frees). ret_groups/ret_n_groups and ret_home may be NULL. */
int builder_resolve_user_groups(int rootfd, const char *user, uid_t *ret_uid, gid_t *ret_gid,
                                gid_t **ret_groups, size_t *ret_n_groups, char **ret_home,
                                struct mk_error **err);

/* ---- build context (builder/context.c) ---------------------------------------------------- */

struct mk_context;

/* The Dockerfile's name in a context dir when -f names none: "Dockerfile", or
 * "Containerfile" (buildah, podman) when the context has that and no Dockerfile. */
const char *builder_dockerfile_default(int ctx_dirfd);
/* The path of the Dockerfile a build of context_dir reads: dockerfile (-f) when not NULL,
 * else CONTEXT/ + builder_dockerfile_default. Resolved once per build and carried: the
 * ignore file beside it goes by the same path. Caller frees. */
char *builder_dockerfile_path(const char *context_dir, const char *dockerfile);

/* Opens the context dir; reads DOCKERFILE.dockerignore beside the Dockerfile (if present)
 * else CONTEXT/.dockerignore (resolved inside the context). dockerfile is the path
 * builder_dockerfile_path gave (NULL: that of the context's own). A malformed ignore file (a
 * lone "!", a bad pattern) fails with MK_ERR_PARSE. Free with builder_context_free. */
int builder_context_open(const char *dir, const char *dockerfile, struct mk_context **ret,
                         struct mk_error **err);
/* Same, with ignorefile (when not NULL; a host path that must exist) used instead of the
 * context's ignore files. Without it, DOCKERFILE.dockerignore, then CONTEXT/.containerignore
 * (buildah's name), then CONTEXT/.dockerignore is used. */
int builder_context_open_with(const char *dir, const char *dockerfile, const char *ignorefile,
                              struct mk_context **ret, struct mk_error **err);
void builder_context_free(struct mk_context *ctx);
/* O_PATH dir fd of the context, owned by ctx. */
int builder_context_dirfd(const struct mk_context *ctx);
/* Is relpath ("a/b", "./a/b/" ...) excluded by .dockerignore (it or a parent matches)? */
bool builder_context_excluded(const struct mk_context *ctx, const char *relpath);
/* Walks relpath (a file or directory inside the context; "." for all) depth-first in
 * sorted order, calling fn for every entry that is not excluded, with its
 * context-relative path and lstat; relpath itself comes first ("." included).
 * Excluded directories are skipped without descending unless an exception pattern may
 * re-include something below them (then only the re-included entries and their parent dirs
 * are reported). Symlinks are reported, never followed. fn returning < 0 stops the walk
 * with that error. A missing relpath is MK_ERR_NOT_FOUND. */
typedef int (*mk_context_walk_fn)(const char *relpath, const struct stat *st, void *arg,
                                  struct mk_error **err);
int builder_context_walk(const struct mk_context *ctx, const char *relpath, mk_context_walk_fn fn,
                         void *arg, struct mk_error **err);

/* ---- filtered walk (builder/context.c): fsutil's FilterOpt ------------------------------- */

/* One fsutil filter layer. include (IncludePatterns): when not empty, only matching paths
 * are sent, each with every parent directory on the way to it; "!" exceptions allowed.
 * exclude (ExcludePatterns): .dockerignore semantics. follow_paths (FollowPaths): the named
 * paths, and the targets of the symlinks they pass through (resolved inside the root), are
 * added to include; a path that resolves to the root lifts the include filter. Any may be
 * NULL. */
struct mk_walk_filter {
    const struct mk_strv *include, *exclude, *follow_paths;
};

/* Walks relpath below rootfd (an O_PATH dir fd; relpath "." for all) like
 * builder_context_walk (same order, callback, containment and errors), through the filters
 * stacked innermost first: each layer only sees what the layers before it sent, so a later
 * layer's exception cannot undo an earlier one's exclusion. The start entry is reported
 * first and unfiltered when it is "."; otherwise it is filtered like any entry. A bad
 * pattern is MK_ERR_PARSE. n == 0 walks everything. */
int builder_context_walk_filtered(int rootfd, const char *relpath,
                                  const struct mk_walk_filter *filters, size_t n,
                                  mk_context_walk_fn fn, void *arg, struct mk_error **err);
/* Opens relpath below rootfd (mk_open_in_root flags) if every filter lets it through (fsutil
 * filterFS.Open: it or a parent is included and not excluded); MK_ERR_NOT_FOUND if not. */
int builder_context_open_filtered(int rootfd, const char *relpath,
                                  const struct mk_walk_filter *filters, size_t n, int flags,
                                  struct mk_error **err);

/* ---- end of filtered walk ------------------------------------------------------------------ */

/* ---- COPY / ADD (builder/copy.c) ---------------------------------------------------------- */

struct mk_context;

struct mk_copy_spec {
    const struct mk_context *ctx;    /* source: the build context (honours .dockerignore), or */
    int src_rootfd;                  /* another root (COPY --from), when ctx is NULL */
    const struct mk_strv *sources;   /* after expansion; may hold wildcards */
    const char *dest;                /* absolute path inside the destination root */
    bool dest_is_dir;                /* written with a trailing '/' */
    const char *chown;               /* NULL: 0:0 */
    const char *chmod;               /* NULL, octal or symbolic (mk_chmod_apply) */
    bool extract;                    /* ADD: local tar archives are unpacked into dest */
    bool parents;                    /* --parents: a source's path (after a "/./") kept */
    const struct mk_ignore *exclude; /* --exclude patterns (relative to each source), or NULL */
    /* When set, nothing is copied: visit is called for every source entry COPY would copy
     * (for cache keys); rootfd is then unused. */
    int (*visit)(const char *relpath, const struct stat *st, const char *dest, void *arg,
                 struct mk_error **err);
    void *visit_arg;
    /* An earlier build of this COPY on the same parent (issue 19): the destinations of
     * regular files whose source digest is the one copied then (sorted by strcmp), that
     * build's snapshot (reuse_fd) and the upperdir below the root (upper_fd). A file whose
     * snapshot copy has what this copy would give it is linked from there into the upperdir
     * instead of copied. NULL: everything is copied (the fds are then unused). */
    const struct mk_strv *reuse_dests;
    int reuse_fd, upper_fd;
    /* direct: direct_fd is the upperdir below the root (an O_PATH fd), where what the walk
     * puts into a directory it created itself is created without the overlay (copy.c,
     * direct_parent). */
    bool direct;
    int direct_fd;
    /* That snapshot's files known to have no xattrs (NULL: each one is asked). */
    const struct mk_snapshot_files *reuse_files;
    /* digests: every regular file copied is hashed while its bytes are written (issue 19:
     * the key of a cold COPY from the context needs no read pass of its own), and a record
     * (struct mk_copy_digest, then the source path) is appended to digest_fd for each. */
    bool digests;
    int digest_fd;
};

/* A record of spec->digest_fd: the source's stat before the copy, whether it was the same
 * after (stable: the digest can go into the hash cache), and the sha256 of what was
 * written. rel_len bytes of the source path (context-relative) follow. */
struct mk_copy_digest {
    uint64_t size, mtime_ns, ino;
    uint32_t mode, rel_len;
    uint32_t stable;
    char digest[MK_DIGEST_SIZE];
};

/* Creates directory path and its missing parents (mode, owned by uid:gid) below rootfd,
 * following symlinks (dangling ones included) inside the root, as COPY, WORKDIR and VOLUME
 * do: "VOLUME /link/x" with /link -> /data/log creates /data/log/x. A symlink loop fails
 * with ELOOP ("too many levels of symbolic links"), a non-directory component with ENOTDIR.
 * Returns an O_PATH fd of the directory; *ret_created (may be NULL) says whether anything
 * was created. */
int builder_mkdir_follow(int rootfd, const char *path, mode_t mode, uid_t uid, gid_t gid,
                         bool *ret_created, struct mk_error **err);

/* "/a/./b/" -> "a/b", "" -> "."; with dotdot, ".." drops the component before it (never
 * above the top, like path.Join("/", p)). Caller frees. */
char *builder_path_clean(const char *p, bool dotdot);

/* Copies the sources into rootfd (runs in builder_sandbox_call's child). */
int builder_copy_into(int rootfd, const struct mk_copy_spec *spec, struct mk_error **err);

/* ---- RUN --mount=type=bind from the context (builder/runmount.c) --------------------------- */

/* Fills maskdir (an empty directory) with the overlay layer that hides, below the context
 * directory rel (normalized as builder_context_walk reports it), every entry .dockerignore
 * excludes; *ret_any says whether there was any. */
int builder_context_mask(const struct mk_context *ctx, const char *rel, const char *maskdir,
                         bool *ret_any, struct mk_error **err);

/* ---- ADD <url> (builder/addurl.c) --------------------------------------------------------- */

/* git@..., git://, ssh://, and http(s) URLs whose path ends in ".git" (BuildKit's rule). */
bool builder_is_git_url(const char *s);
/* http:// or https:// and not a git repository. */
bool builder_is_http_url(const char *s);
/* The name ADD gives a URL's file under a directory: the last component of the decoded URL
 * path, "__unnamed__" when there is none. Caller frees. */
char *builder_url_filename(const char *url);
/* Downloads url into relpath below dirfd (parents created), mode 0600, mtime from
 * Last-Modified when sent; ret_digest is the content's sha256. */
int builder_url_fetch(const char *url, const struct registry_opts *opts, int dirfd,
                      const char *relpath, char ret_digest[MK_DIGEST_SIZE], struct mk_error **err);

/* ---- git checkouts (builder/source.c) and ADD <git URL> (builder/addgit.c) ---- */

/* A shallow checkout of spec ("URL#ref:subdir", as builder_source_is_git takes it) made with the
 * git program in the new directory dest; tmpdir (a store tmpdir) holds git's log. ret_dir is
 * the subdir, resolved inside the checkout, or dest; ret_commit the commit checked out (both
 * caller frees). .git is removed unless keep_git_dir. kind ("git context", "git repository")
 * is what messages call it. */
int builder_git_checkout(const char *spec, const char *kind, const char *tmpdir, const char *dest,
                         bool keep_git_dir, char **ret_dir, char **ret_commit,
                         struct mk_error **err);
/* The image reference that the named context name (a stage or image name as a Dockerfile
 * writes it) stands for, or NULL when there is none. */
const char *builder_named_context(const struct mk_strv *contexts, const char *name);
/* ADD <git URL>: the checkout of url as the directory name below root (a store tmpdir) and
 * git's log there; ret_rel is what to copy, relative to root ("name" or "name/subdir"),
 * ret_commit the commit (both caller frees). */
int builder_add_git(const char *url, bool keep_git_dir, const char *root, const char *name,
                    char **ret_rel, char **ret_commit, struct mk_error **err);
/* A full commit ID (40 hex digits, 64 for sha256 repositories): ADD --checksum for git. */
bool builder_git_commit_valid(const char *s);

/* ---- build cache (builder/cache.c) -------------------------------------------------------- */

/* File digests of a build context, reused while size, mtime and inode are unchanged. */
struct mk_hashcache;
int builder_hashcache_open(struct mk_store *store, const char *context_dir,
                           struct mk_hashcache **ret, struct mk_error **err);
/* sha256 of the regular file rel (inside ctxfd) whose lstat is st. */
int builder_hashcache_file(struct mk_hashcache *hc, int ctxfd, const char *rel,
                           const struct stat *st, char out[MK_DIGEST_SIZE], struct mk_error **err);
/* Whether the cache held nothing when opened (a first build of this context). */
bool builder_hashcache_was_empty(const struct mk_hashcache *hc);
/* The digest the cache holds for rel when st (size, mtime, inode) is what it was made from;
 * false, out untouched, when it holds none. Reads nothing. */
bool builder_hashcache_known(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                             char out[MK_DIGEST_SIZE]);
/* Records digest as the content of rel while it has st (a digest found elsewhere, e.g. by a
 * copy that hashed the bytes it wrote). */
void builder_hashcache_put(struct mk_hashcache *hc, const char *rel, const struct stat *st,
                           const char digest[MK_DIGEST_SIZE]);
int builder_hashcache_save(struct mk_hashcache *hc, struct mk_error **err);
void builder_hashcache_free(struct mk_hashcache *hc);

/* ---- platforms (builder/platform.c) ---- */

/* 0 when this host can run programs of platform p: its own, or one that QEMU user
 * emulation is registered for in binfmt_misc, enabled and with the F flag. Otherwise
 * MK_ERR_UNSUPPORTED naming the platform and the package to install. */
int builder_platform_check_run(const struct mk_platform *p, struct mk_error **err);

#endif
