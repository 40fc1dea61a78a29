/* parser/df-unicode.c - the few Go string primitives the dump must reproduce byte for byte:
 * utf8.DecodeRune, unicode.IsSpace, strconv.Quote and strings.ToLower. */
#include <stdint.h>
#include <string.h>

#include "parser/internal.h"

#include "parser/df-unicode-tables.h"

void parser_df_encode_rune(struct mk_buf *out, uint32_t r)
{
    char b[4];
    if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        r = 0xFFFD;
    if (r < 0x80) {
        mk_buf_addc(out, (char)r);
    } else if (r < 0x800) {
        b[0] = (char)(0xC0 | (r >> 6));
        b[1] = (char)(0x80 | (r & 0x3F));
        mk_buf_add(out, b, 2);
    } else if (r < 0x10000) {
        b[0] = (char)(0xE0 | (r >> 12));
        b[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        b[2] = (char)(0x80 | (r & 0x3F));
        mk_buf_add(out, b, 3);
    } else {
        b[0] = (char)(0xF0 | (r >> 18));
        b[1] = (char)(0x80 | ((r >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((r >> 6) & 0x3F));
        b[3] = (char)(0x80 | (r & 0x3F));
        mk_buf_add(out, b, 4);
    }
}

bool parser_df_is_space(uint32_t r)
{
    switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return r >= 0x2000 && r <= 0x200A;
    }
}

static bool in_ranges(const uint32_t (*tab)[2], size_t n, uint32_t r, size_t *ret_index)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r < tab[mid][0])
            hi = mid;
        else if (r > tab[mid][1])
            lo = mid + 1;
        else {
            if (ret_index)
                *ret_index = mid;
            return true;
        }
    }
    return false;
}

static bool is_print(uint32_t r)
{
    return in_ranges(df_print_ranges, MK_ARRAY_SIZE(df_print_ranges), r, NULL);
}

static uint32_t to_lower(uint32_t r)
{
    size_t lo = 0, hi = MK_ARRAY_SIZE(df_lower_map);
    if (r < 0x80)
        return r >= 'A' && r <= 'Z' ? r + 32 : r;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r < df_lower_map[mid][0])
            hi = mid;
        else if (r > df_lower_map[mid][0])
            lo = mid + 1;
        else
            return df_lower_map[mid][1];
    }
    return r;
}

void parser_df_go_quote(struct mk_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    mk_buf_addc(out, '"');
    for (size_t i = 0; i < len;) {
        size_t w;
        uint32_t r = (uint32_t)parser_utf8_decode(s + i, len - i, &w);
        if (r == 0xFFFD && w == 1) {
            unsigned char b = (unsigned char)s[i];
            mk_buf_addf(out, "\\x%c%c", hex[b >> 4], hex[b & 15]);
            i++;
            continue;
        }
        if (r == '"' || r == '\\') {
            mk_buf_addc(out, '\\');
            mk_buf_addc(out, (char)r);
        } else if (is_print(r)) {
            mk_buf_add(out, s + i, w);
        } else {
            switch (r) {
            case '\a':
                mk_buf_adds(out, "\\a");
                break;
            case '\b':
                mk_buf_adds(out, "\\b");
                break;
            case '\f':
                mk_buf_adds(out, "\\f");
                break;
            case '\n':
                mk_buf_adds(out, "\\n");
                break;
            case '\r':
                mk_buf_adds(out, "\\r");
                break;
            case '\t':
                mk_buf_adds(out, "\\t");
                break;
            case '\v':
                mk_buf_adds(out, "\\v");
                break;
            default:
                if (r < ' ' || r == 0x7F)
                    mk_buf_addf(out, "\\x%c%c", hex[r >> 4], hex[r & 15]);
                else if (r < 0x10000)
                    mk_buf_addf(out, "\\u%04x", (unsigned)r);
                else
                    mk_buf_addf(out, "\\U%08x", (unsigned)r);
            }
        }
        i += w;
    }
    mk_buf_addc(out, '"');
}

char *parser_df_go_lower(const char *s, size_t len)
{
    struct mk_buf b = MK_BUF_INIT;
    mk_buf_add(&b, "", 0);
    bool ascii = true;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            ascii = false;
    for (size_t i = 0; i < len;) {
        size_t w = 1;
        uint32_t r = ascii ? (unsigned char)s[i] : (uint32_t)parser_utf8_decode(s + i, len - i, &w);
        parser_df_encode_rune(&b, to_lower(r));
        i += w;
    }
    return mk_buf_detach(&b);
}
