/* cli/cli.h - shared by the subcommands: global options, the store, error printing.
 *
 * Each subcommand is `int cmd_NAME(struct mk_cli *cli, int argc, char **argv)` in
 * cli/NAME.c; argv[0] is the subcommand's name. It returns the process exit status:
 * 0 success, 1 failure, 2 usage error (after printing one "mkimg: ..." line).
 */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stdbool.h>

#include "common/error.h"
#include "layerstore/layerstore.h"

struct mk_cli {
    char *root;             /* --root / MKIMG_ROOT / default */
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

int cmd_build(struct mk_cli *cli, int argc, char **argv);
int cmd_parse(struct mk_cli *cli, int argc, char **argv);
int cmd_import(struct mk_cli *cli, int argc, char **argv);
int cmd_images(struct mk_cli *cli, int argc, char **argv);
int cmd_inspect(struct mk_cli *cli, int argc, char **argv);
int cmd_rmi(struct mk_cli *cli, int argc, char **argv);
int cmd_tag(struct mk_cli *cli, int argc, char **argv);

/* ---- store maintenance and archives (cli/save.c, load.c, prune.c, fsck.c, df.c) ---- */
int cmd_save(struct mk_cli *cli, int argc, char **argv);
int cmd_load(struct mk_cli *cli, int argc, char **argv);
int cmd_prune(struct mk_cli *cli, int argc, char **argv);
int cmd_fsck(struct mk_cli *cli, int argc, char **argv);
int cmd_df(struct mk_cli *cli, int argc, char **argv);
/* Decimal units with three significant digits ("4.27 MB"), like podman. Caller frees. */
char *cli_human_size(uint64_t n);

#endif
