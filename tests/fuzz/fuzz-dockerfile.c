/* libFuzzer target: the Dockerfile parser on arbitrary bytes. Parses, then dumps, encodes as
 * JSON and validates whatever parsed; checks that a successful parse has sane line ranges,
 * that the JSON document is valid JSON with one entry per instruction, and that a failure
 * always carries a location. Also compiled into
 * tests/unit/parser/test-df-fuzz-corpus.c, which replays the committed corpus. */
#include <jansson.h>
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
    json_t *doc = json_loadb(out.data, out.len, JSON_ALLOW_NUL, NULL);
    size_t count = 0, i;
    json_t *stage;
    if (!doc)
        abort();
    json_array_foreach(json_object_get(doc, "stages"), i, stage) count +=
        json_array_size(json_object_get(stage, "instructions"));
    if (count != df->n_nodes)
        abort();
    json_decref(doc);
    mk_buf_release(&out);
    if (mk_df_validate(df, "Dockerfile", &err) < 0) {
        if (!err || !err->where)
            abort();
        mk_error_free(err);
    }
    mk_df_free(df);
    return 0;
}
