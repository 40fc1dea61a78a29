/* mk_df_validate: BuildKit's instruction-level errors (message and line) and acceptance of
 * valid files, including every conformance testfile that is a complete build. */
#include <string.h>

#include "parser/parser.h"
#include "tap.h"

/* Returns the error as "LINE: message", or "ok"; "parse: ..." when parsing failed. */
static char *check(const char *text)
{
    struct mk_df *df = NULL;
    struct mk_error *err = NULL;
    char *out;
    if (mk_df_parse(text, strlen(text), "Dockerfile", &df, &err) < 0) {
        out = mk_xasprintf("parse: %s", err->msg);
    } else if (mk_df_validate(df, "Dockerfile", &err) < 0) {
        const char *line = err->where && mk_str_has_prefix(err->where, "Dockerfile:")
                               ? err->where + strlen("Dockerfile:")
                               : "?";
        out = mk_xasprintf("%s: %s", line, err->msg);
    } else {
        out = mk_xstrdup("ok");
    }
    mk_error_free(err);
    mk_df_free(df);
    return out;
}

static const struct {
    const char *text, *want;
} cases[] = {
    {"FROM alpine\nRUNN echo\n", "2: unknown instruction \"RUNN\" (did you mean \"RUN\"?)"},
    {"FROM alpine\ncopi a b\n", "2: unknown instruction \"copi\" (did you mean \"COPY\"?)"},
    {"FROM alpine\nFROBNICATE x\n", "2: unknown instruction \"FROBNICATE\""},
    {"FROM alpine\nRUN --foo=bar echo\n", "2: unknown flag: --foo"},
    {"FROM alpine\nCMD --doit [\"a\"]\n", "2: unknown flag: --doit"},
    {"FROM --platform=linux/amd64 alpine\nCOPY --from=a --chown=1:2 x /y\n", "ok"},
    {"FROM --platfrom=linux/amd64 alpine\n", "1: unknown flag: --platfrom"},
    {"FROM alpine\nCOPY --link=maybe a b\n",
     "2: expecting boolean value for flag link, not: maybe"},
    {"FROM alpine\nCOPY --from a b\n", "2: missing a value on flag: from"},
    {"FROM alpine\nCOPY --from=a --from=b x y\n", "2: duplicate flag specified: from"},
    {"FROM alpine\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true\n", "ok"},
    {"FROM alpine\nADD --checksum=sha256:"
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --keep-git-dir "
     "--unpack=true a b\n",
     "ok"},
    {"FROM alpine\nADD --from=x a b\n", "2: unknown flag: --from"},
    {"FROM\n", "1: FROM requires either one or three arguments"},
    {"FROM a b\n", "1: FROM requires either one or three arguments"},
    {"FROM a AS b c\n", "1: FROM requires either one or three arguments"},
    {"FROM a AS 1x\n", "1: invalid name for build stage: \"1x\", name can't start with a number "
                       "or contain symbols"},
    {"FROM a AS x\nFROM b as X\n", "2: duplicate stage name \"x\""},
    {"FROM alpine\n\nCOPY onlyone\n", "3: COPY requires at least two arguments"},
    {"FROM alpine\nADD\n", "2: ADD requires at least two arguments"},
    {"FROM alpine\nUSER\n", "2: USER requires exactly one argument"},
    {"FROM alpine\nUSER a b\n", "ok"},
    {"FROM alpine\nWORKDIR\n", "2: WORKDIR requires exactly one argument"},
    {"FROM alpine\nRUN\n", "2: RUN requires at least one argument"},
    {"FROM alpine\nEXPOSE\n", "2: EXPOSE requires at least one argument"},
    {"FROM alpine\nVOLUME [\"\"]\n", "2: VOLUME specified can not be an empty string"},
    {"FROM alpine\nONBUILD ONBUILD RUN x\n",
     "2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
    {"FROM alpine\nONBUILD FROM x\n", "2: FROM isn't allowed as an ONBUILD trigger"},
    {"FROM alpine\nONBUILD maintainer me\n", "2: MAINTAINER isn't allowed as an ONBUILD trigger"},
    {"FROM alpine\nONBUILD RUN echo\n", "ok"},
    {"FROM alpine\nSHELL /bin/sh -c\n", "2: SHELL requires the arguments to be in JSON form"},
    {"FROM alpine\nSHELL []\n", "2: SHELL requires at least one argument"},
    {"FROM alpine\nSHELL [\"/bin/bash\", \"-c\"]\n", "ok"},
    {"FROM alpine\nHEALTHCHECK CONNECT TCP 7000\n",
     "2: Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"},
    {"FROM alpine\nHEALTHCHECK NONE x\n", "2: HEALTHCHECK NONE takes no arguments"},
    {"FROM alpine\nHEALTHCHECK CMD\n", "2: Missing command after HEALTHCHECK CMD"},
    {"FROM alpine\nHEALTHCHECK --interval=5x CMD true\n", "2: time: invalid duration \"5x\""},
    {"FROM alpine\nHEALTHCHECK --timeout=-1s CMD true\n",
     "2: Interval \"timeout\" cannot be negative"},
    {"FROM alpine\nHEALTHCHECK --interval=10us CMD true\n",
     "2: Interval \"interval\" cannot be less than 1ms"},
    {"FROM alpine\nHEALTHCHECK --retries=-2 CMD true\n", "2: --retries cannot be negative (-2)"},
    {"FROM alpine\nHEALTHCHECK --retries=x CMD true\n",
     "2: strconv.ParseInt: parsing \"x\": invalid syntax"},
    {"FROM alpine\nHEALTHCHECK --interval=1m30s --timeout=0 --start-period=1.5s --retries=3 "
     "CMD [\"true\"]\n",
     "ok"},
    {"FROM alpine\nHEALTHCHECK NONE\n", "ok"},
    {"ARG V=1\nFROM alpine:$V\nARG V\nRUN echo\n", "ok"},
    {"ARG V=1\nRUN echo\nFROM alpine\n", "2: no build stage in current context"},
    {"ARG V=1\n", "1: dockerfile contains no stages to build"},
    {"# escape=`\nFROM alpine\nRUN echo `\n  hi\nMAINTAINER me\nSTOPSIGNAL SIGTERM\n", "ok"},
    {"FROM alpine\nENV A=1 B=2\nLABEL x=y\nCOPY <<EOF /dst\nhi\nEOF\n", "ok"},
};

int main(void)
{
    for (size_t i = 0; i < MK_ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *got = check(cases[i].text);
        tap_is_str(got, cases[i].want, "validate case %zu", i);
    }
    /* Suggestions: edit distance up to 2, none beyond. */
    tap_is_str(mk_df_suggest_keyword("RUNN"), "run", "suggest RUNN");
    tap_is_str(mk_df_suggest_keyword("entrypont"), "entrypoint", "suggest entrypont");
    tap_ok(mk_df_suggest_keyword("xyzzy") == NULL, "no suggestion for xyzzy");
    /* Flag lookup: last occurrence wins, bare flag has no value. */
    {
        struct mk_df *df = NULL;
        const char *text = "FROM a\nCOPY --from=x --link --from=y a b\n";
        const char *v = "unset";
        tap_ok(mk_df_parse(text, strlen(text), "Dockerfile", &df, NULL) == 0, "parse flags");
        tap_ok(df && mk_df_node_flag(&df->nodes[1], "from", &v) && v && !strcmp(v, "y"),
               "last --from wins");
        tap_ok(df && mk_df_node_flag(&df->nodes[1], "link", &v) && v == NULL, "bare --link");
        tap_ok(df && !mk_df_node_flag(&df->nodes[1], "chown", &v), "absent --chown");
        tap_ok(df && mk_df_node_flag(&df->nodes[1], "from", NULL), "presence check, no value");
        tap_ok(df && !mk_df_node_flag(&df->nodes[1], "fro", NULL), "no prefix match");
        mk_df_free(df);
    }
    return tap_done();
}
