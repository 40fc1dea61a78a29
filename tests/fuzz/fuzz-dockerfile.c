/* libFuzzer target: the Dockerfile parser on arbitrary bytes. Parses, then dumps, encodes as
 * JSON and validates whatever parsed; checks that a successful parse has sane line ranges
 * and that a failure always carries a location. Also compiled into
 * tests/unit/parser/test-df-fuzz-corpus.c, which replays the committed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;

    if (mk_df_parse((const char *)data, size, "Dockerfile", &df, &err) < 0) {
        if (!err || !err->where || !err->msg)
            abort();
        mk_error_free(err);
        return 0;
    }
    int prev_end = 0;
    for (size_t i = 0; i < df->n_nodes; i++) {
        const struct mk_df_node *n = &df->nodes[i];
        if (n->start_line <= prev_end || n->end_line < n->start_line)
            abort();
        prev_end = n->end_line;
    }
    struct mk_buf out = MK_BUF_INIT;
    mk_df_dump(df, &out);
    if (df->n_nodes > 0 && (out.len == 0 || out.data[out.len - 1] != '\n'))
        abort();
    mk_buf_reset(&out);
    mk_df_to_json(df, &out);
    mk_buf_release(&out);
    if (mk_df_validate(df, "Dockerfile", &err) < 0) {
        if (!err || !err->where)
            abort();
        mk_error_free(err);
    }
    mk_df_free(df);
    return 0;
}
