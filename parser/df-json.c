/* parser/df-json.c - JSON as the Dockerfile parser sees it: exec-form arrays and the
 * whole-file {"syntax": ...} directive.
 *
 * Go's encoding/json decides what falls back to shell form, so its exact grammar matters:
 * invalid UTF-8 inside strings is accepted (and becomes U+FFFD), lone surrogates become U+FFFD,
 * numbers too large for a float64 fail decoding, and nesting deeper than 10000 is an error.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parser/internal.h"

struct jp {
    const char *s;
    size_t len, pos;
    bool overflow; /* a number does not fit a float64: Go's Unmarshal fails */
};

static void jp_ws(struct jp *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int jp_u4(struct jp *p, size_t at)
{
    if (at + 4 > p->len)
        return -1;
    int r = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = hexval(p->s[at + i]);
        if (h < 0)
            return -1;
        r = r * 16 + h;
    }
    return r;
}

/* A string at p->pos (which is '"'); decoded into out when out is not NULL. */
static int jp_string(struct jp *p, struct mk_buf *out)
{
    p->pos++;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (p->pos + 1 >= p->len)
                return -1;
            char e = p->s[p->pos + 1];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = strchr(from, e);
            if (e != 'u' && (!hit || e == 0))
                return -1;
            if (e != 'u') {
                if (out)
                    mk_buf_addc(out, to[hit - from]);
                p->pos += 2;
                continue;
            }
            int r = jp_u4(p, p->pos + 2);
            if (r < 0)
                return -1;
            p->pos += 6;
            if (r >= 0xD800 && r < 0xE000) {
                /* Go pairs a high surrogate with a following \u low one, else U+FFFD. */
                int r2 = -1;
                if (p->pos + 1 < p->len && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u')
                    r2 = jp_u4(p, p->pos + 2);
                if (r < 0xDC00 && r2 >= 0xDC00 && r2 < 0xE000) {
                    r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                    p->pos += 6;
                } else {
                    r = 0xFFFD;
                }
            }
            if (out)
                parser_df_encode_rune(out, (uint32_t)r);
            continue;
        }
        size_t w;
        uint32_t r = (uint32_t)parser_utf8_decode(p->s + p->pos, p->len - p->pos, &w);
        if (out) {
            if (r == 0xFFFD && w == 1)
                parser_df_encode_rune(out, r);
            else
                mk_buf_add(out, p->s + p->pos, w);
        }
        p->pos += w;
    }
    return -1;
}

static bool isdig(struct jp *p, size_t at)
{
    return at < p->len && p->s[at] >= '0' && p->s[at] <= '9';
}

static int jp_number(struct jp *p)
{
    size_t start = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    if (!isdig(p, p->pos))
        return -1;
    if (p->s[p->pos] == '0')
        p->pos++;
    else
        while (isdig(p, p->pos))
            p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!isdig(p, p->pos))
            return -1;
        while (isdig(p, p->pos))
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!isdig(p, p->pos))
            return -1;
        while (isdig(p, p->pos))
            p->pos++;
    }
    _cleanup_free_ char *num = mk_xstrndup(p->s + start, p->pos - start);
    if (isinf(strtod(num, NULL)))
        p->overflow = true;
    return 0;
}

static int jp_scalar(struct jp *p)
{
    static const char *const lits[] = {"true", "false", "null"};
    if (p->pos >= p->len)
        return -1;
    char c = p->s[p->pos];
    if (c == '"')
        return jp_string(p, NULL);
    if (c == '-' || (c >= '0' && c <= '9'))
        return jp_number(p);
    for (size_t i = 0; i < MK_ARRAY_SIZE(lits); i++) {
        size_t n = strlen(lits[i]);
        if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[i], n) == 0) {
            p->pos += n;
            return 0;
        }
    }
    return -1;
}

/* Any value, iteratively so that hostile nesting cannot exhaust the stack. depth is the
 * nesting level of the container holding the value. */
static int jp_value(struct jp *p, int depth)
{
    _cleanup_free_ char *stack = mk_xmalloc(MK_DF_JSON_MAX_DEPTH + 1);
    int top = 0;
    for (;;) {
        jp_ws(p);
        if (p->pos >= p->len)
            return -1;
        char c = p->s[p->pos];
        if (c == '[' || c == '{') {
            if (depth + top + 1 > MK_DF_JSON_MAX_DEPTH)
                return -1;
            stack[top++] = c;
            p->pos++;
            jp_ws(p);
            if (p->pos < p->len && p->s[p->pos] == (c == '[' ? ']' : '}')) {
                p->pos++;
                top--;
            } else if (c == '{') {
                if (p->pos >= p->len || p->s[p->pos] != '"' || jp_string(p, NULL) < 0)
                    return -1;
                jp_ws(p);
                if (p->pos >= p->len || p->s[p->pos++] != ':')
                    return -1;
                continue;
            } else {
                continue;
            }
        } else if (jp_scalar(p) < 0) {
            return -1;
        }
        /* A value ended: close containers or move to the next element. */
        for (;;) {
            if (top == 0)
                return 0;
            jp_ws(p);
            if (p->pos >= p->len)
                return -1;
            c = p->s[p->pos++];
            if (c == ',') {
                if (stack[top - 1] == '{') {
                    jp_ws(p);
                    if (p->pos >= p->len || p->s[p->pos] != '"' || jp_string(p, NULL) < 0)
                        return -1;
                    jp_ws(p);
                    if (p->pos >= p->len || p->s[p->pos++] != ':')
                        return -1;
                }
                break;
            }
            if (c != (stack[top - 1] == '[' ? ']' : '}'))
                return -1;
            top--;
        }
    }
}

int parser_df_json_array(const char *s, size_t len, struct mk_strv *ret_values, size_t **ret_lens)
{
    struct jp p = {s, len, 0, false};
    struct mk_strv values = MK_STRV_INIT;
    _cleanup_free_ size_t *lens = NULL;
    bool nonstring = false;
    int r = 1;

    /* Callers pass left-trimmed text: the array must open at once. */
    if (len == 0 || s[0] != '[')
        return 1;
    p.pos = 1;
    jp_ws(&p);
    if (p.pos < len && s[p.pos] == ']') {
        p.pos++;
    } else {
        for (;;) {
            jp_ws(&p);
            if (p.pos < len && s[p.pos] == '"') {
                struct mk_buf b = MK_BUF_INIT;
                mk_buf_add(&b, "", 0);
                if (jp_string(&p, &b) < 0) {
                    mk_buf_release(&b);
                    goto out;
                }
                lens = mk_xreallocarray(lens, values.n + 1, sizeof(*lens));
                lens[values.n] = b.len;
                mk_strv_push_take(&values, mk_buf_detach(&b));
            } else {
                nonstring = true;
                if (jp_value(&p, 1) < 0)
                    goto out;
            }
            jp_ws(&p);
            if (p.pos >= len)
                goto out;
            char c = s[p.pos++];
            if (c == ']')
                break;
            if (c != ',')
                goto out;
        }
    }
    jp_ws(&p);
    if (p.pos != len || p.overflow)
        goto out;
    if (nonstring) {
        r = -1;
        goto out;
    }
    /* Moved, not copied: mk_strv_copy would stop at an embedded NUL. */
    for (size_t i = 0; i < values.n; i++)
        mk_strv_push_take(ret_values, MK_TAKE_PTR(values.v[i]));
    values.n = 0;
    *ret_lens = MK_TAKE_PTR(lens);
    r = 0;
out:
    mk_strv_release(&values);
    return r;
}

/* The whole-file {"syntax": "..."} form of the syntax directive. Go's json.Unmarshal into a
 * struct matches member names case-insensitively and the last match wins. */
bool parser_df_json_syntax(const char *s, size_t len, char **ret_value)
{
    struct jp p = {s, len, 0, false};
    _cleanup_free_ char *value = NULL;
    bool bad_type = false;

    jp_ws(&p);
    if (p.pos >= len || s[p.pos] != '{')
        return false;
    p.pos++;
    jp_ws(&p);
    if (p.pos < len && s[p.pos] == '}') {
        p.pos++;
    } else {
        for (;;) {
            struct mk_buf key = MK_BUF_INIT;
            mk_buf_add(&key, "", 0);
            jp_ws(&p);
            if (p.pos >= len || s[p.pos] != '"' || jp_string(&p, &key) < 0) {
                mk_buf_release(&key);
                return false;
            }
            bool is_syntax = strcasecmp(key.data, "syntax") == 0 && key.len == 6;
            mk_buf_release(&key);
            jp_ws(&p);
            if (p.pos >= len || s[p.pos++] != ':')
                return false;
            jp_ws(&p);
            if (is_syntax && p.pos < len && s[p.pos] == '"') {
                struct mk_buf v = MK_BUF_INIT;
                mk_buf_add(&v, "", 0);
                if (jp_string(&p, &v) < 0) {
                    mk_buf_release(&v);
                    return false;
                }
                free(value);
                value = mk_buf_detach(&v);
            } else {
                if (is_syntax && !(len - p.pos >= 4 && memcmp(s + p.pos, "null", 4) == 0))
                    bad_type = true;
                if (jp_value(&p, 1) < 0)
                    return false;
            }
            jp_ws(&p);
            if (p.pos >= len)
                return false;
            char c = s[p.pos++];
            if (c == '}')
                break;
            if (c != ',')
                return false;
        }
    }
    jp_ws(&p);
    if (p.pos != len || p.overflow || bad_type || !value || !*value)
        return false;
    *ret_value = MK_TAKE_PTR(value);
    return true;
}
