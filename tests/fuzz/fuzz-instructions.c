/* libFuzzer target: the typed instruction layer (mk_inst_parse) on arbitrary Dockerfiles.
 * Whatever parses is turned into typed instructions; checks that the result has one
 * instruction per node with the node's keyword, that every RUN --mount expands (or fails
 * with a message and no location), that EXPOSE words and --chmod values the layer accepted
 * stay accepted, and that a failure always carries "Dockerfile:LINE" with a line of the file.
 * Also compiled into tests/unit/parser/test-inst-fuzz-corpus.c, which replays the committed
 * corpus (tests/fuzz/corpus/instructions). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keywords[] = {"from",       "run",     "copy",        "add",  "workdir",
                                       "env",        "label",   "arg",         "cmd",  "entrypoint",
                                       "shell",      "expose",  "healthcheck", "user", "volume",
                                       "stopsignal", "onbuild", "maintainer"};

static void check_inst(const struct mk_inst *inst, const struct mk_df_node *n)
{
    static const char *const env_v[] = {"A=x", "B=", "T=/t", "M=0755"};
    struct mk_strv env = {(char **)env_v, MK_ARRAY_SIZE(env_v), 0};
    if (inst->node != n || (size_t)inst->kind >= MK_ARRAY_SIZE(keywords) ||
        strcmp(keywords[inst->kind], n->keyword) != 0 || !inst->rest)
        abort();
    if (inst->kind == MK_INST_FROM && !inst->from.image)
        abort();
    if (inst->kind == MK_INST_ONBUILD)
        check_inst(inst->trigger, n->onbuild);
    for (size_t i = 0; inst->kind == MK_INST_RUN && i < inst->run.n_mounts; i++) {
        struct mk_run_mount m;
        struct mk_error *err = NULL;
        if (mk_run_mount_expand(&inst->run.mounts[i], &env, '\\', &m, &err) < 0) {
            if (!err || !err->msg || err->where)
                abort();
            mk_error_free(err);
            continue;
        }
        if (!m.expanded || (m.type != MK_RUN_MOUNT_SECRET && (!m.target || !*m.target)) ||
            (m.has_mode && m.mode > 07777))
            abort();
        mk_run_mount_release(&m);
    }
    unsigned mode;
    if ((inst->kind == MK_INST_COPY || inst->kind == MK_INST_ADD) && inst->copy.chmod &&
        mk_chmod_apply(inst->copy.chmod, 0644, false, &mode) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;
    struct mk_inst_list l = {NULL, 0};

    if (mk_df_parse((const char *)data, size, "Dockerfile", &df, &err) < 0) {
        mk_error_free(err);
        return 0;
    }
    int last = df->n_nodes ? df->nodes[df->n_nodes - 1].end_line : 1;
    if (mk_inst_parse(df, "Dockerfile", &l, &err) < 0) {
        int line = 0;
        if (!err || !err->msg || !err->where || sscanf(err->where, "Dockerfile:%d", &line) != 1 ||
            line < 1 || line > last)
            abort();
        mk_error_free(err);
        mk_df_free(df);
        return 0;
    }
    if (l.n != df->n_nodes)
        abort();
    for (size_t i = 0; i < l.n; i++)
        check_inst(&l.v[i], &df->nodes[i]);
    mk_inst_list_release(&l);
    mk_df_free(df);
    return 0;
}
