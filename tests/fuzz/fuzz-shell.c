/* libFuzzer target: word expansion of arbitrary bytes with a fixed environment. The first
 * byte picks the escape token and the entry point; the rest is the word (cut at a NUL, as
 * the Dockerfile parser hands over C strings). Checks that success and failure are
 * reported consistently and that ProcessWord and ProcessWords agree on failing. Also
 * compiled into tests/unit/parser/test-shell-fuzz-corpus.c, which replays the corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_shell_env[] = {
    "PWD=/home", "SPACE=a  b ", "EMPTY=",    "UNSETLIKE", "KOREAN=한국어",
    "STAR=*x*",  "SLASH=/a/b/", "DOLLAR=$X", "NL=a\nb",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char escape = (data[0] & 1) ? '`' : '\\';
    char *word = strndup((const char *)data + 1, size - 1);
    struct mk_strv env = MK_STRV_INIT, used = MK_STRV_INIT, words = MK_STRV_INIT;
    for (size_t i = 0; i < sizeof(fuzz_shell_env) / sizeof(fuzz_shell_env[0]); i++)
        mk_strv_push(&env, fuzz_shell_env[i]);

    char *out = NULL;
    struct mk_error *err = NULL, *err2 = NULL;
    int r1 = mk_shell_word_used(word, &env, escape, &out, &used, &err);
    if (r1 == 0 && (!out || err))
        abort();
    if (r1 < 0 && (!err || !err->msg || err->code != MK_ERR_PARSE || out))
        abort();
    int r2 = mk_shell_words(word, &env, escape, &words, &err2);
    if ((r1 < 0) != (r2 < 0))
        abort();
    for (size_t i = 0; i < words.n; i++)
        if (!words.v[i][0])
            abort(); /* an empty word is never produced */
    /* Names reported as used are names: never empty. */
    for (size_t i = 0; i < used.n; i++)
        if (!used.v[i][0])
            abort();
    free(out);
    free(word);
    mk_error_free(err);
    mk_error_free(err2);
    mk_strv_release(&env);
    mk_strv_release(&used);
    mk_strv_release(&words);
    return 0;
}
