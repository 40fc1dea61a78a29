/* mk_shell_word_keep_quotes: the expansion of a COPY heredoc body (BuildKit's ExpandRaw, a
 * lexer with SkipProcessQuotes and '\\' as escape). Expected values are what BuildKit writes
 * for the same body (issue 13, reproducer 8). */
#include "parser/parser.h"
#include "tap.h"

static void check(const char *body, const char *want, const char *name)
{
    struct mk_strv env = MK_STRV_INIT;
    mk_strv_push(&env, "APP=demo");
    mk_strv_push(&env, "EMPTY=");
    char *got = NULL;
    struct mk_error *err = NULL;
    int r = mk_shell_word_keep_quotes(body, &env, &got, &err);
    tap_ok(r == 0, "%s: expands", name);
    tap_is_str(got, want, "%s", name);
    free(got);
    mk_error_free(err);
    mk_strv_release(&env);
}

int main(void)
{
    tap_tmpdir();
    check("app=\"$APP\"\n", "app=\"demo\"\n", "double quotes kept around a variable");
    check("name='${APP}-x'\n", "name='demo-x'\n",
          "single quotes kept, the variable inside expanded");
    check("v=${UNSET:-\"d\"}\n", "v=\"d\"\n", "quotes kept in a default word");
    check("e=[$EMPTY]\n", "e=[]\n", "an empty variable");
    check("cost=\\$5 path=a\\\\b\n", "cost=$5 path=a\\b\n", "backslash escapes taken");
    struct mk_strv env = MK_STRV_INIT;
    char *got = NULL;
    struct mk_error *err = NULL;
    tap_ok(mk_shell_word_keep_quotes("${APP", &env, &got, &err) < 0 && err,
           "an unterminated ${ is an error");
    mk_error_free(err);
    free(got);
    return tap_done();
}
