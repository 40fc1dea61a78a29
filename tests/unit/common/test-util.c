/* The error object, the capped buffer, string vectors and digests. */
#include <string.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/util.h"
#include "tap.h"

int main(void)
{
    struct mk_error *err = NULL;
    tap_is_int(mk_error_set(&err, MK_ERR_IO, 2, "opening \"%s\"", "x"), -1, "set returns -1");
    mk_error_set(&err, MK_ERR_PARSE, 0, "second");
    mk_error_wrap(&err, "reading %s", "config");
    mk_error_set_where(&err, "Dockerfile:7");
    char *s = mk_error_format(err);
    tap_is_str(s, "Dockerfile:7: reading config: opening \"x\": No such file or directory",
               "first cause wins, context and location added, strerror once");
    tap_is_int(err->code, MK_ERR_IO, "code of the first cause");
    free(s);
    mk_error_free(err);
    mk_error_free(NULL);

    struct mk_buf b = MK_BUF_INIT;
    mk_buf_init(&b, 8);
    err = NULL;
    tap_ok(mk_buf_puts(&b, "12345678", &err) == 0 && b.len == 8, "buffer fills to its cap");
    tap_ok(mk_buf_putc(&b, 'x', &err) < 0 && err && err->code == MK_ERR_INVALID,
           "appending past the cap fails");
    tap_is_str(b.data, "12345678", "nothing past the cap was written");
    mk_error_free(err);
    char *d = mk_buf_detach(&b);
    tap_is_str(d, "12345678", "detach hands out the data");
    free(d);
    d = mk_buf_detach(&b);
    tap_is_str(d, "", "detach of an empty buffer gives an empty string");
    free(d);

    struct mk_strv env = MK_STRV_INIT;
    mk_strv_push(&env, "A=1");
    mk_strv_push(&env, "B=2");
    mk_strv_push(&env, "EMPTY");
    mk_strv_env_set(&env, "A", "3");
    tap_is_str(env.v[0], "A=3", "env_set replaces in place");
    tap_is_str(mk_strv_env_get(&env, "B"), "2", "env_get");
    tap_is_str(mk_strv_env_get(&env, "EMPTY"), "", "a bare name is set to empty");
    tap_ok(mk_strv_env_get(&env, "AB") == NULL && mk_strv_env_get(&env, "") == NULL,
           "no prefix matches");
    tap_ok(env.v[env.n] == NULL, "vector stays NULL-terminated");
    mk_strv_release(&env);

    char dg[MK_DIGEST_SIZE];
    mk_sha256_buffer("", 0, dg);
    tap_is_str(dg, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "sha256 of nothing");
    tap_ok(mk_digest_valid(dg), "valid digest");
    tap_ok(!mk_digest_valid("sha256:E3B0") && !mk_digest_valid("md5:00") && !mk_digest_valid(NULL),
           "invalid digests refused");
    {
        char v[MK_DIGEST_SIZE + 2];
        snprintf(v, sizeof(v), "%s", dg);
        v[MK_DIGEST_LEN - 1] = '\0';
        bool short_bad = !mk_digest_valid(v);
        snprintf(v, sizeof(v), "%sa", dg);
        bool long_bad = !mk_digest_valid(v);
        snprintf(v, sizeof(v), "%s", dg);
        v[20] = 'E';
        bool upper_bad = !mk_digest_valid(v);
        v[20] = 'g';
        bool nonhex_bad = !mk_digest_valid(v);
        tap_ok(short_bad && long_bad && upper_bad && nonhex_bad && !mk_digest_valid("sha256:"),
               "one hex digit short or over, an upper-case or non-hex one: refused");
    }
    char chain[MK_DIGEST_SIZE];
    mk_chain_id("", dg, chain);
    tap_is_str(chain, dg, "chain id of a first layer is its diff id");
    uint64_t u;
    int i;
    tap_ok(mk_parse_u64("42", &u) == 0 && u == 42 && mk_parse_u64("-1", &u) < 0 &&
               mk_parse_u64("4x", &u) < 0 && mk_parse_u64("", &u) < 0,
           "strict unsigned parse");
    tap_ok(mk_parse_int("-7", &i) == 0 && i == -7 && mk_parse_int("99999999999", &i) < 0,
           "strict int parse");

    char *e = mk_str_escape_control("a\x1b[31mb\x07\tc\nd\x7f\xc3\xa9");
    tap_is_str(e, "a\\x1b[31mb\\x07\tc\nd\\x7f\xc3\xa9",
               "control bytes and DEL escaped; tab, newline and UTF-8 kept");
    free(e);
    static const char *const b64[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"hi\n", "aGkK"}};
    for (size_t k = 0; k < MK_ARRAY_SIZE(b64); k++) {
        char *enc = mk_base64(b64[k][0], strlen(b64[k][0]));
        tap_is_str(enc, b64[k][1], "base64 of %zu bytes", strlen(b64[k][0]));
        free(enc);
    }
    return tap_done();
}
