/* cli/cli.h - shared by the subcommands: global options, the store, error printing.
 *
 * Each subcommand is `const struct cli_cmd cli_cmd_NAME` in cli/NAME.c (cli/options.h: its
 * option table, help, man page and completion), whose fn is `int cmd_NAME(struct mk_cli *cli,
 * int argc, char **argv)`; argv[0] is the subcommand's name. It returns the process exit
 * status: 0 success, 1 failure, 2 usage error (after printing one "mkimg: ..." line).
 */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stdbool.h>
#include <time.h>

#include "cli/options.h"
#include "common/error.h"
#include "layerstore/layerstore.h"

struct mk_cli {
    char *root;             /* --root / MKIMG_ROOT / default */
    bool root_given;        /* root came from --root on the command line */
    struct mk_store *store; /* opened lazily by cli_store() */
};

/* Opens the store (entering the rootless user namespace first when needed). NULL after
 * printing the error. */
struct mk_store *cli_store(struct mk_cli *cli);

/* Prints "mkimg: WHERE: WHAT[: reason]" and returns the exit status for the error (1, 2
 * for usage errors, the RUN's status for failed RUNs is still 1). Frees err. */
int cli_fail(struct mk_error *err);
/* Prints "mkimg: <fmt>" (usage problems) and returns 2. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --log-level / --debug: debug lines are printed at CLI_LOG_DEBUG only; pull and push progress
 * (info) is dropped from CLI_LOG_WARN on, warnings at CLI_LOG_ERROR. */
enum cli_log_level { CLI_LOG_DEBUG, CLI_LOG_INFO, CLI_LOG_WARN, CLI_LOG_ERROR };
extern enum cli_log_level cli_log_level;
/* "mkimg: debug: ..." on stderr when the level is debug. */
void cli_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* `mkimg __generate man DIR | bash | zsh` (cli/generate.c): the man pages into DIR, or a
 * completion script on stdout, from the option tables. Returns the exit status. */
int cli_generate(int argc, char **argv);

extern const struct cli_cmd cli_cmd_build, cli_cmd_run, cli_cmd_parse, cli_cmd_import,
    cli_cmd_images, cli_cmd_inspect, cli_cmd_history, cli_cmd_rmi, cli_cmd_tag, cli_cmd_save,
    cli_cmd_load, cli_cmd_prune, cli_cmd_fsck, cli_cmd_df, cli_cmd_pull, cli_cmd_push,
    cli_cmd_manifest, cli_cmd_login, cli_cmd_logout, cli_cmd_version;
/* A name an image is about to get (build -t, tag TARGET): a valid reference without a digest,
 * checked before any work. 0, or prints why and returns 1. */
int cli_check_new_name(const char *name);

/* The name to look name up by: the manifest digest (in buf) of a lazy image
 * (docs/remote-cache.md), else name itself. For commands that only read the image's JSON. */
const char *cli_lazy_name(struct mk_store *store, const char *name, char buf[MK_DIGEST_SIZE]);
/* The build epoch of a command that writes created times or layers: value when not NULL
 * (from --build-arg SOURCE_DATE_EPOCH=N or --timestamp; what names it), else
 * $SOURCE_DATE_EPOCH; MK_EPOCH_NONE when neither. Prints the error and returns 2 for a value
 * that is not one (as buildx refuses it). */
int cli_epoch(const char *value, const char *what, int64_t *ret);

int cmd_build(struct mk_cli *cli, int argc, char **argv);
/* build --platform A,B (cli/build-platforms.c): a usage error for outputs it cannot write
 * (0 when fine), then the builds, outputs and pushes; both return the exit code. */
struct mk_build_opts;
struct registry_opts;
/* Writes the archive of names (layerstore_save) to dest: "-" is stdout, an oci-dir the
 * directory dest, anything else a file that appears only complete (common/atomic-file.h).
 * save, build -o type=oci|docker and build --platform A,B -o type=oci all write through here.
 * Errors name dest (not for stdout). */
int cli_save_archive(struct mk_store *store, const char *const *names, size_t n,
                     enum mk_archive_format f, enum mk_compression c, int level, const char *dest,
                     struct mk_error **err);
int cli_build_platforms_check(const struct mk_build_opts *opts, const struct mk_strv *outputs);
int cli_build_platforms(struct mk_store *store, const struct mk_build_opts *opts,
                        const struct mk_strv *outputs, bool push, const struct registry_opts *ropts,
                        const char *manifest_list, const char *iidfile);
int cmd_run(struct mk_cli *cli, int argc, char **argv);
int cmd_parse(struct mk_cli *cli, int argc, char **argv);
int cmd_import(struct mk_cli *cli, int argc, char **argv);
int cmd_images(struct mk_cli *cli, int argc, char **argv);
int cmd_inspect(struct mk_cli *cli, int argc, char **argv);
int cmd_history(struct mk_cli *cli, int argc, char **argv);
int cmd_rmi(struct mk_cli *cli, int argc, char **argv);
int cmd_tag(struct mk_cli *cli, int argc, char **argv);

/* ---- registry commands (cli/pull.c, cli/push.c, cli/login.c) ---- */
int cmd_pull(struct mk_cli *cli, int argc, char **argv);
int cmd_push(struct mk_cli *cli, int argc, char **argv);
int cmd_login(struct mk_cli *cli, int argc, char **argv);
int cmd_logout(struct mk_cli *cli, int argc, char **argv);

/* ---- manifest lists (cli/manifest.c) ---- */
int cmd_manifest(struct mk_cli *cli, int argc, char **argv);
/* Adds images[0..n) (each replacing the entry of its platform) to the manifest list list,
 * made anew when create, else created when missing; ret_digest gets the list's digest. */
int cli_manifest_add(struct mk_store *store, const char *list, const char *const *images,
                     size_t n_images, bool create, char ret_digest[MK_DIGEST_SIZE],
                     struct mk_error **err);
/* The options every registry command takes (cli_registry_opts in cli/options.h, ids
 * CLI_REG_FIRST..CLI_REG_LAST): 0, or prints a usage error and returns 2. */
struct registry_opts;
int cli_registry_opt(struct registry_opts *o, int id, const char *arg);

/* A --platform value parsed into ret: 0, or the exit status after printing why not. */
struct mk_platform;
int cli_platform_value(const char *v, struct mk_platform *ret);
/* What --platform completes to. */
extern const char cli_platform_words[];

/* ---- store maintenance and archives (cli/save.c, load.c, prune.c, fsck.c, df.c) ---- */
int cmd_save(struct mk_cli *cli, int argc, char **argv);
int cmd_load(struct mk_cli *cli, int argc, char **argv);
int cmd_prune(struct mk_cli *cli, int argc, char **argv);
int cmd_fsck(struct mk_cli *cli, int argc, char **argv);
int cmd_df(struct mk_cli *cli, int argc, char **argv);
/* Decimal units with three significant digits ("4.27 MB"), like podman. Caller frees. */
char *cli_human_size(uint64_t n);
/* An image's "created" (RFC 3339) as seconds, -1 when unreadable (cli/images.c); as docker's
 * CreatedAt ("2024-01-02 15:04:05 +0000 UTC") and CreatedSince ("5 minutes ago"). Callers
 * free the strings. */
time_t cli_created_time(const char *created);
char *cli_created_at(const char *created);
char *cli_human_ago(const char *created);
/* "500MB", "2GiB", "1.5G", "4096": a byte count with an optional unit, decimal (kB, MB, GB,
 * TB; the B may be left out) or binary (KiB, MiB, GiB, TiB), case-insensitive. -1 when
 * malformed or past 2^64. */
int cli_parse_size(const char *s, uint64_t *ret);

#endif
