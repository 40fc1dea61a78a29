/* builder/builder.h - turns a Dockerfile and a build context into an image in the store.
 *
 * The builder owns the build semantics (stages, instructions, cache), the RUN sandbox
 * (user, mount, pid, ipc and uts namespaces over overlayfs) and the rootless entry into a
 * user namespace. It never prints on its own: progress and RUN output go to opts->log_fd,
 * errors come back through common/error.h.
 *
 * Inside, builder/build.c is the driver and the rest lives in rooms named after what they hold
 * (stages.c, workers.c, step-cache.c, step-run.c, step-copy.c, step-meta.c, step.c; shared
 * state in builder/rooms.h). builder/README.md walks through one build and says where a new
 * instruction goes.
 */
#ifndef MK_BUILDER_H
#define MK_BUILDER_H

#include <stdbool.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "layerstore/layerstore.h"
#include "registry/registry.h"

enum mk_network { MK_NET_HOST = 0, MK_NET_NONE };

/* auto: tty when log_fd is a terminal, plain otherwise. tty keeps one live status line with
 * the running step's time; plain prints a line per step and per step result. rawjson: one
 * JSON object per line as BuildKit's `--progress=rawjson` (its SolveStatus: "vertexes" with
 * digest, name, started, completed, cached, error; "logs" with vertex, stream, base64 data,
 * timestamp). */
enum mk_progress { MK_PROGRESS_AUTO = 0, MK_PROGRESS_PLAIN, MK_PROGRESS_TTY, MK_PROGRESS_RAWJSON };

struct mk_build_opts {
    const char *context_dir;   /* the build context (required) */
    const char *dockerfile;    /* path; NULL = CONTEXT/Dockerfile */
    const char *df_name;       /* what messages call it; NULL = the path as given */
    struct mk_strv tags;       /* -t, as given */
    struct mk_strv build_args; /* "K=V", or "K" (value from the environment) */
    struct mk_strv secrets;    /* --secret values: "id=x,src=PATH" or "id=x,env=VAR" */
    const char *target;        /* --target stage, or NULL */
    const char *ignorefile;    /* --ignorefile: replaces the context's .dockerignore; or NULL */
    bool no_cache;
    bool explain_cache; /* say, for each step that misses the cache, which input changed */
    enum registry_pull_policy pull;       /* for FROM and COPY --from images */
    const struct registry_opts *registry; /* NULL = defaults */
    enum mk_network network;
    int log_fd; /* progress and RUN output */
    bool quiet;
    enum mk_progress progress;     /* how steps are shown on log_fd */
    struct mk_strv labels;         /* --label "K=V": set on the final image's config */
    struct mk_strv annotations;    /* --annotation "K=V": on the final image's manifest */
    const char *platform;          /* --platform: the one target platform, or NULL (the host's) */
    bool squash;                   /* one layer for everything this build adds to the base */
    unsigned jobs;                 /* stages built at once; 0 = one per core */
    bool allow_insecure;           /* --allow security.insecure: RUN --security=insecure may run */
    bool plan_only;                /* stop before the first stage runs (checks only; no image) */
    bool no_tag;                   /* no index.json entry for the image: the caller tags it */
    bool pinned_only;              /* build only the stages FROM --platform fixes (no image) */
    struct mk_strv named_contexts; /* --build-context, from builder_named_contexts_prepare */
    /* SOURCE_DATE_EPOCH (common/epoch.h): MK_EPOCH_NONE (-1; 0 is 1970) or seconds. The
     * created times of the image, and no mtime in a layer later than it. The caller decides
     * it (the CLI: --build-arg SOURCE_DATE_EPOCH=N, else --timestamp, else the environment);
     * the builder reads no environment variable for it. */
    int64_t epoch;
    struct mk_strv cache_from; /* --cache-from specs (docs/remote-cache.md) */
    struct mk_strv cache_to;   /* --cache-to specs */
    /* The image is only pushed (build --push, docs/remote-cache.md "Lazy images"): final
     * layers that a registry cache source holds are not fetched; the image is then lazy,
     * named in ROOT/lazy/refs/ instead of index.json, until builder_lazy_complete. */
    bool lazy_push;
    /* An output reads the image's root file system (-o type=local|tar, builder_export): the
     * build keeps every snapshot (builder/step-cache.c drops big unmounted ones otherwise). */
    bool export_rootfs;
};

/* A lazy image (layerstore/cache-lazy.c) named name: its layers fetched from the registry
 * caches that hold them (each verified, unpacked to its snapshot), then name moved into
 * index.json. 0 (nothing done) when name is not lazy. Fails naming the cache source when a
 * layer cannot be fetched; the image stays lazy then. */
int builder_lazy_complete(struct mk_store *store, const char *name,
                          const struct registry_opts *ropts, struct mk_error **err);

/* Builds; on success the image is written and tagged with every opts->tags entry, and
 * ret_image receives it (caller frees). On failure nothing is tagged and every temp dir
 * and mount is gone. */
int builder_build(struct mk_store *store, const struct mk_build_opts *opts,
                  struct mk_image **ret_image, struct mk_error **err);

/* `build --platform A,B,...`: builds opts once per platform (opts->platform is ignored),
 * in that order, after checking all of them (a platform whose RUN needs an emulator that is
 * missing fails before anything is built), and points every opts->tags entry at an OCI
 * index of the results, in that order (a single platform: the image itself). ret_images
 * receives the n images (caller frees each and the array), ret_index the digest of the
 * index (or of the image, for one platform). */
int builder_build_platforms(struct mk_store *store, const struct mk_build_opts *opts,
                            const struct mk_strv *platforms, struct mk_image ***ret_images,
                            char ret_index[MK_DIGEST_SIZE], struct mk_error **err);

/* `mkimg run`: runs the image's Entrypoint + Cmd (args, when given, replace Cmd) in a
 * throwaway container with the image's Env, WorkingDir and User; stdout/stderr are ours.
 * Nothing the command writes is kept. *ret_status is its exit status. */
int builder_run_image(struct mk_store *store, const struct mk_image *img, char *const *args,
                      enum mk_network network, int *ret_status, struct mk_error **err);

/* `build --output type=tar|local,dest=PATH`: the image's root file system as a tar file
 * ("-" = stdout) or unpacked into the directory dest (created when missing); no mtime later
 * than epoch (MK_EPOCH_NONE: as they are). */
int builder_export(struct mk_store *store, const struct mk_image *img, const char *type,
                   const char *dest, int64_t epoch, struct mk_error **err);

/* ---- contexts that are not a local directory (builder/source.c) ---- */

/* A context made from "-" (a tar, plain or compressed, on stdin), an http(s) tarball URL or a
 * git URL ("https://host/repo.git#ref:subdir", "git@host:repo", "git://..."), and/or a
 * Dockerfile read from stdin ("-f -"), in a private temp dir of the store. */
struct builder_source {
    struct mk_store *store;
    char *tmpdir;      /* NULL when the context is a local directory and -f is not "-" */
    char *context_dir; /* what to pass as mk_build_opts.context_dir */
    char *dockerfile;  /* NULL = opts as given; else a private copy to pass as .dockerfile */
};
/* Whether s names a git repository, as docker decides: git://, git@, ssh://, github.com/, or
 * an http(s) URL whose path ends in ".git". */
bool builder_source_is_git(const char *s);
/* "-", a git URL or an http(s) URL. */
bool builder_source_is_remote(const char *s);
/* Materializes context (and dockerfile when it is "-"; for a remote context dockerfile is a
 * path inside it, default Dockerfile or Containerfile). A tar is unpacked with every entry
 * resolved inside the new context; a "-" or URL whose content is not a tar is the Dockerfile of
 * an empty context, as with docker. git contexts run the git program (a shallow fetch of the
 * ref, .git removed). ropts (may be NULL) is for downloads. ret is filled only on success and
 * released with builder_source_release, which removes the temp dir. */
int builder_source_prepare(struct mk_store *store, const char *context, const char *dockerfile,
                           const struct registry_opts *ropts, struct builder_source *ret,
                           struct mk_error **err);
void builder_source_release(struct builder_source *src);
void builder_source_releasep(struct builder_source **src);

/* --build-context NAME=VALUE (specs, as given), as buildx takes them: VALUE a directory, an
 * http(s) tarball or git URL (fetched as a context is), oci-layout://PATH[:TAG|@DIGEST] or
 * docker-image://REF. The first three become untagged images in the store now (by ID, the
 * same tree the same ID); a docker-image stays a reference, resolved (pulled) as a FROM is.
 * ret (caller releases) gets "NAME=REF" with NAME normalized (lookup through
 * builder_named_context), for mk_build_opts.named_contexts. MK_ERR_USAGE for a spec without
 * "=", an invalid name or an unknown scheme; temp dirs are gone on return. */
int builder_named_contexts_prepare(struct mk_store *store, const struct mk_strv *specs,
                                   const struct registry_opts *ropts, struct mk_strv *ret,
                                   struct mk_error **err);

/* Rootless entry: when not running as root, moves this process into a new user namespace
 * (mapping 0 to the caller and 1..N to its /etc/subuid and /etc/subgid ranges through
 * newuidmap/newgidmap) and a private mount namespace, so that the store can hold files of
 * every id an image uses. *ret_single_id is set when no subordinate range was available
 * and only the caller's own id is mapped. No-op as root. */
int builder_enter_userns(bool *ret_single_id, struct mk_error **err);

#endif
