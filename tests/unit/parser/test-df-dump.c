/* Dump and JSON details the conformance files do not pin down: NULs inside exec-form
 * arguments (a fuzzer find), upstream's byte-as-rune flag handling, the JSON document. */
#include <jansson.h>
#include <string.h>

#include "parser/parser.h"
#include "tap.h"

static char *dump(const char *text, size_t len)
{
    struct mk_df *df = NULL;
    struct mk_buf out = MK_BUF_INIT;
    struct mk_error *err = NULL;
    if (mk_df_parse(text, len, "Dockerfile", &df, &err) < 0) {
        char *msg = mk_xasprintf("error: %s", err->msg);
        mk_error_free(err);
        return msg;
    }
    mk_df_dump(df, &out);
    mk_df_free(df);
    return mk_buf_detach(&out);
}

#define DUMP(lit) dump((lit), sizeof(lit) - 1)

int main(void)
{
    _cleanup_free_ char *a = DUMP("ENTRYPOINT [ \"/us\\u0000r/bin/x\" ]\n");
    tap_is_str(a, "(entrypoint \"/us\\x00r/bin/x\")\n", "NUL inside a JSON string dumps as \\x00");
    _cleanup_free_ char *b = DUMP("RUN a\0b\n");
    tap_is_str(b, "(run \"a\\x00b\")\n", "raw NUL byte inside a shell-form line");
    /* extractBuilderFlags appends each byte as a rune: UTF-8 input comes out re-encoded. */
    _cleanup_free_ char *c = DUMP("COPY --chown=\xc3\xa9 a b\n");
    tap_is_str(c, "(copy [\"--chown=Ã©\"] \"a\" \"b\")\n", "flag bytes re-encoded like upstream");
    _cleanup_free_ char *d = DUMP("CMD [\"a\", 1e999]\n");
    tap_is_str(d, "(cmd \"[\\\"a\\\", 1e999]\")\n", "float64 overflow falls back to shell form");
    _cleanup_free_ char *e = DUMP("CMD [\"\\ud800\", \"\\ud83d\\ude00\"]\n");
    tap_is_str(e, "(cmd \"\xef\xbf\xbd\" \"\xf0\x9f\x98\x80\")\n", "lone and paired surrogates");
    _cleanup_free_ char *f = DUMP("ONBUILD --x ONBUILD RUN [\"a\"]\n");
    tap_is_str(f, "(onbuild [\"--x\"] (onbuild (run \"a\")))\n", "nested ONBUILD");
    _cleanup_free_ char *g = DUMP("RUN \\\n\\\n");
    tap_is_str(g, "(run)\n", "continuations to EOF leave an empty RUN");

    /* The JSON document is valid JSON, even for control bytes and invalid UTF-8. */
    static const char text[] =
        "ARG V=1\nFROM a:$V AS b\nRUN \x01\xff\nONBUILD COPY <<EOF /x\nhi\nEOF\n";
    struct mk_df *df = NULL;
    struct mk_buf out = MK_BUF_INIT;
    tap_ok(mk_df_parse(text, sizeof(text) - 1, "Dockerfile", &df, NULL) == 0, "parse for JSON");
    if (df)
        mk_df_to_json(df, &out);
    json_t *doc = out.data ? json_loads(out.data, 0, NULL) : NULL;
    json_t *stages = json_object_get(doc, "stages");
    tap_ok(doc != NULL, "JSON document parses");
    tap_is_int(json_array_size(stages), 2, "global ARG stage plus one stage");
    tap_ok(json_is_null(json_object_get(json_array_get(stages, 0), "base")),
           "global stage base null");
    json_t *s1 = json_array_get(stages, 1);
    tap_is_str(json_string_value(json_object_get(s1, "name")), "b", "stage name");
    tap_is_str(json_string_value(json_object_get(s1, "base")), "a:$V", "stage base");
    json_t *run = json_array_get(json_object_get(s1, "instructions"), 1);
    tap_is_str(json_string_value(json_array_get(json_object_get(run, "args"), 0)),
               "\x01\xef\xbf\xbd", "control byte kept, invalid UTF-8 as U+FFFD");
    /* Like upstream, the bodies belong to the ONBUILD node itself. */
    json_t *ob = json_array_get(json_object_get(s1, "instructions"), 2);
    json_t *h = json_array_get(json_object_get(ob, "heredocs"), 0);
    tap_is_str(json_string_value(json_object_get(h, "content")), "hi\n", "ONBUILD heredoc body");
    tap_is_str(json_string_value(json_object_get(json_object_get(ob, "onbuild"), "keyword")),
               "copy", "ONBUILD trigger");
    tap_is_int(json_integer_value(json_object_get(
                   json_array_get(json_object_get(s1, "instructions"), 2), "end_line")),
               6, "ONBUILD heredoc end line");
    json_decref(doc);
    mk_buf_release(&out);
    mk_df_free(df);
    return tap_done();
}
