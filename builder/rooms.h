/* builder/rooms.h - what the build driver (builder/build.c) and its rooms share: the build and
 * stage state and each room's entry points. Not a public API; only the rooms include it.
 * builder/README.md says which room holds what. */
#ifndef MK_BUILDER_ROOMS_H
#define MK_BUILDER_ROOMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "builder/internal.h"
#include "common/digest.h"
#include "parser/parser.h"

#define MK_DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct copy_key {
    struct build *b;
    struct mk_sha256 *h;
    int srcfd; /* -1: the build context */
    /* When set, the digest of a regular file of the context (else the hash cache's):
     * step-copy.c's speculative copy gives the digests of the bytes it copied. */
    int (*file_digest)(struct copy_key *k, const char *rel, const struct stat *st, const char *dest,
                       char out[MK_DIGEST_SIZE], struct mk_error **err);
    void *arg;
};

struct stage {
    char *name; /* AS name (lowercase) or NULL */
    size_t index;
    size_t first, end; /* nodes [first, end) of the Dockerfile, first is the FROM */
    bool needed;
    bool built;
    /* result */
    struct mk_image_config config;
    struct mk_layer_desc *layers;
    size_t n_layers;
    char chain[MK_DIGEST_SIZE]; /* chain id of all layers, "" for none */
    struct mk_strv lowerdirs;   /* snapshot dirs, top-most first */
    struct mk_strv args;        /* declared ARGs "K=V" (stage scope) */
    struct mk_strv arg_names;   /* every ARG the stage declared, valued or not, in order */
    bool cmd_set;
    char *base_name; /* the FROM image as written after expansion */
    /* The external image the stage's chain of FROMs starts at (fully qualified) and its
     * manifest digest, for the base.name/base.digest annotations; NULL for scratch. */
    char *base_ref;
    char base_digest[MK_DIGEST_SIZE];
    /* How many layers and history entries come from that external image (--squash keeps
     * them and merges the rest). */
    size_t n_base_layers, n_base_history;
    size_t step0;  /* steps of the needed stages before this one (for "[step/n]") */
    bool prebuilt; /* --jobs: built by a helper process; this pass only collects it */
    size_t *deps;  /* the stages this one uses (FROM, --from, --mount from=) */
    size_t n_deps;
    struct mk_platform platform; /* what it runs on: FROM --platform, its base stage's, or
                                  * the target platform */
    bool pinned;                 /* its platform is FROM --platform's (or its base stage's) */
};

struct build {
    struct mk_store *store;
    const struct mk_build_opts *opts;
    struct mk_df *df;
    struct mk_inst_list insts; /* insts.v[i] is df->nodes[i], typed and checked */
    char *df_name;             /* for error locations: "Dockerfile" as the user named it */
    char *df_path; /* what is read (builder_dockerfile_path); its ignore file goes by it */
    struct mk_context *ctx;
    struct mk_strv meta_args;  /* global ARGs (before the first FROM), "K=V" */
    struct mk_strv build_args; /* --build-arg, resolved "K=V" */
    struct mk_strv used_build_args;
    struct stage *stages;
    size_t n_stages;
    size_t target;
    size_t step, n_steps;
    char *created; /* RFC 3339 of opts->epoch, else of the build's start */
    char *tmp;     /* current step's tmpdir, removed on every path */
    struct mk_hashcache *hc;
    size_t cached_steps;
    char *df_abs; /* the Dockerfile's absolute path: names step positions for --explain-cache */
    struct mk_progress_ui *ui;
    bool silent; /* collecting a stage a helper process built and showed already */
    /* --jobs: trying a stage in this process with cache hits only (workers.c): a step that
     * would do work (a miss, a pull, a download, a mount of a source root) fails instead. */
    bool probing;
    /* --jobs: a helper process reports the cache keys it stored on result_fd; the parent
     * keeps them in fresh_keys, the entries this build made (hits even with --no-cache). */
    int result_fd;
    struct mk_strv fresh_keys;
    struct mk_platform target_platform; /* --platform, else the host's (TARGETPLATFORM) */
    struct rcache *rc;                  /* --cache-from/--cache-to, or NULL (remote-cache.c) */
    struct pending_snap *snaps;         /* snapshots not in the store (step-cache.c) */
    size_t n_snaps;
    /* The running instruction is the target stage's last that can add a layer: nothing of
     * this build mounts what it adds (step_commit may consume its tree). */
    bool last_layer_step;
};

/* A layer of this build whose snapshot is not in the store: committed with its tree left in
 * its step's tmpdir (layerstore_layer_commit_blob), or a cache hit on a layer whose snapshot
 * an earlier build dropped. step-cache.c: snapshots_ensure makes it before anything mounts
 * it; snapshots_settle decides the rest when the stages are built. */
struct pending_snap {
    char chain[MK_DIGEST_SIZE], parent[MK_DIGEST_SIZE], diff_id[MK_DIGEST_SIZE];
    uint64_t size; /* of the layer's tar */
    char *path;    /* the snapshot dir, as the stages' lowerdirs name it */
    char *tmp;     /* the tmpdir whose upper/ is the tree, or NULL: unpacked from the blob */
    bool done;     /* in the store now, or settled */
};

struct src_root {
    char *tmp;
    int fd;
};

/* step.c */
char *where_of(struct build *b, const struct mk_df_node *n);
__attribute__((format(printf, 4, 5))) int node_error(struct build *b, const struct mk_df_node *n,
                                                     struct mk_error **err, const char *fmt, ...);
int node_where(struct build *b, const struct mk_df_node *n, struct mk_error **err);
void logf_(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void stage_expand_env(const struct stage *s, struct mk_strv *env);
int expand_word(struct build *b, const struct stage *s, const struct mk_df_node *n,
                const char *word, char **ret, struct mk_error **err);
void history(struct build *b, struct stage *s, const char *created_by, bool empty);
void stage_release(struct stage *s);
void stage_add_layer(struct stage *s, const struct mk_layer_desc *d, const char *chain,
                     const char *snapshot);
bool strv_has(const struct mk_strv *l, const char *v);
void split_kv(const char *spec, struct mk_strv *out);
char *go_list(const struct mk_strv *l, bool quote);
void strv_add_unique(struct mk_strv *l, const char *v);

/* stages.c */
void src_root_release(struct build *b, struct src_root *r);
int src_root_open(struct build *b, const struct mk_strv *lowerdirs, struct src_root *r,
                  struct mk_error **err);
int from_lowerdirs(struct build *b, struct stage *s, const struct mk_df_node *n, const char *from,
                   struct mk_strv *ret, struct mk_error **err);
int stage_from(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err);
int run_onbuild(struct build *b, struct stage *s, const struct mk_df_node *from,
                struct mk_error **err);
void predefined_args(struct build *b);
int split_stages(struct build *b, struct mk_error **err);
int stage_platforms(struct build *b, struct mk_error **err);
/* Back to what split_stages and stage_platforms made of s: its build's result dropped. */
void stage_reset(struct stage *s);
/* b->probing: the error that stops a probe where the stage would do work. */
int probe_stop(struct mk_error **err);
size_t keep_pinned(struct build *b);

/* remote-cache.c: --cache-from/--cache-to (docs/remote-cache.md) */
/* Checks the specs (MK_ERR_USAGE) and reads every cache source's records but those whose
 * index is set in skip; a source that cannot be read is one warning line on the log and left
 * out. */
int rcache_open(struct build *b, uint64_t skip, struct mk_error **err);
void rcache_free(struct rcache *rc);
/* After a local miss: a source's record of key that fits on s is added to s like a local
 * hit (its layer not fetched yet). Returns the source's spec, or NULL for a miss. */
const char *rcache_lookup(struct build *b, struct stage *s, const char *key,
                          const char *created_by);
/* key was a step of s in this build (for --cache-to). */
void rcache_note(struct build *b, const struct stage *s, const char *key);
/* Fetches (verified) the layers among lowerdirs (a stage's, a --from source's) that came
 * from a cache source and are not in the store yet: before they are mounted. */
int rcache_fetch(struct build *b, const struct mk_strv *lowerdirs, struct mk_error **err);
/* --cache-to type=inline: appends "KEY=VALUE", the annotation that carries the final stage's
 * records in the image manifest, to notes (nothing without one). */
int rcache_inline_annotation(struct build *b, struct mk_strv *notes, struct mk_error **err);
/* RUN --mount=type=cache: the mount id (digest) whose data dir is dir, locked by the
 * caller: noted for cache-mounts=true, and when dir does not exist yet, restored from a
 * cache source that has it (a warning when that fails: the mount starts empty). */
void rcache_mount(struct build *b, const char *id, const char *dir);
/* Only the noting part of rcache_mount (cache-mounts=true): also what a --jobs helper
 * reported (workers.c); a helper reports it on result_fd. */
void rcache_mount_note(struct build *b, const char *id, const char *dir);
/* After a failed build: the --cache-from index of the source whose layer could not be
 * fetched (after one warning line saying so), or -1. */
int rcache_broken(const struct rcache *rc, const struct mk_build_opts *opts);
/* opts->lazy_push: the target's layers that came from a registry source and are not
 * fetched yet are recorded as lazy layers of img instead (local sources: fetched). 1 when
 * img is lazy, 0 when every layer is in the store. */
int rcache_defer(struct build *b, const struct mk_image *img, struct mk_error **err);
/* Writes every --cache-to. */
int rcache_export(struct build *b, struct mk_error **err);

/* step-cache.c */
void explain_begin(bool on);
void explain_stage_begin(void);
void explain_release(void);
__attribute__((format(printf, 1, 2))) void key_part(const char *fmt, ...);
void key_add(struct mk_sha256 *h, const char *s);
struct mk_sha256 *key_begin(const struct build *b, const struct stage *s, const char *kind);
void key_add_strv(struct mk_sha256 *h, const struct mk_strv *l);
/* Snapshot dirs by name (their chain IDs), never by path: a key means the same in every
 * store. */
void key_add_lowers(struct mk_sha256 *h, const struct mk_strv *lowerdirs);
int cache_lookup(struct build *b, struct stage *s, const char *key, const char *created_by,
                 bool *ret_hit);
void cache_store(struct build *b, const struct stage *s, const char *key, bool empty);
int step_begin(struct build *b, struct stage *s, char **ret_upper, char **ret_work,
               struct mk_error **err);
/* Puts the snapshots among lowerdirs (NULL: all) that this build has not in the store into
 * it: before they are mounted or read. */
int snapshots_ensure(struct build *b, const struct mk_strv *lowerdirs, struct mk_error **err);
/* When the stages are built (before the window's syncfs): each tree still in a tmpdir
 * becomes its snapshot, but, with drop, those of big layers are removed (nothing of this
 * build mounted them: their data need never reach the disk). Best effort: a snapshot that
 * fails to settle is unpacked from its blob when needed. */
void snapshots_settle(struct build *b, bool drop);
/* A --jobs helper: the trees it inherited are the parent's to settle. */
void snapshots_forget_trees(struct build *b);
void snapshots_release(struct build *b);
void step_end(struct build *b);
int step_commit(struct build *b, struct stage *s, const char *upper, const char *created_by,
                struct mk_error **err);
/* step_commit for an upperdir that shares files with the snapshot of like_chain (NULL:
 * none): their entries are copied from that layer (layerstore_layer_commit_dir_like). */
int step_commit_like(struct build *b, struct stage *s, const char *upper, const char *created_by,
                     const char *like_chain, struct mk_error **err);
int copy_key_visit(const char *rel, const struct stat *st, const char *dest, void *arg,
                   struct mk_error **err);
int key_context_tree(struct build *b, struct mk_sha256 *h, const char *rel, struct mk_error **err);
void image_reuse_key(const struct stage *t, const struct mk_strv *notes, int64_t epoch,
                     char out[MK_DIGEST_SIZE]);
void image_reuse_lookup(struct build *b, const char *key, struct mk_image **ret);

/* step-run.c */
void sandbox_spec_init(struct mk_sandbox_spec *spec, struct stage *s, const char *upper,
                       const char *work);
int do_run(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err);

/* step-copy.c */
int do_copy(struct build *b, struct stage *s, const struct mk_inst *in, bool is_add,
            struct mk_error **err);

/* step-meta.c */
int do_arg(struct build *b, struct stage *s, struct mk_strv *scope, const struct mk_inst *in,
           struct mk_error **err);
/* Every instruction but FROM, RUN, COPY and ADD, dispatched from a table. */
int do_meta(struct build *b, struct stage *s, const struct mk_inst *in, struct mk_error **err);

/* workers.c */
bool stages_parallel(const struct build *b);
int prebuild_stages(struct build *b, unsigned jobs, struct mk_error **err);

/* build.c */
int run_instruction(struct build *b, struct stage *s, const struct mk_inst *in,
                    struct mk_error **err);
int build_stage(struct build *b, struct stage *s, struct mk_error **err);

#endif
