/* layerstore/deflate-scan.c - where the last block of a raw deflate stream starts and ends.
 *
 * libdeflate compresses a whole buffer into a complete deflate stream whose last block has
 * BFINAL set, and it has no flush or dictionary interface. To join such streams into one
 * (compress-stream.c), the BFINAL bit of each but the last is cleared and, when the stream
 * does not end on a byte boundary, an empty stored block realigns it; both need the bit
 * position of the last block's header and of its end, which only a walk over every block's
 * codes can tell. This walks them the way an inflater does, without producing output: a
 * 10-bit lookup table for short codes and the canonical bit-by-bit decode for longer ones.
 * Every read is bounds-checked, so a malformed stream is an error, never an overread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "layerstore/internal.h"

#define FAST_BITS 10
#define MAX_BITS 15

struct bitreader {
    const uint8_t *p;
    size_t n;
    uint64_t pos; /* in bits */
    bool overrun;
};

/* The next k (<= 32) bits, least significant first; zeros past the end (and overrun set
 * once they are consumed). */
static uint32_t peek(const struct bitreader *b, unsigned k)
{
    size_t byte = (size_t)(b->pos >> 3);
    uint64_t v = 0;
    if (byte + 8 <= b->n) {
        memcpy(&v, b->p + byte, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
#endif
    } else {
        for (size_t i = 0; byte + i < b->n && i < 8; i++)
            v |= (uint64_t)b->p[byte + i] << (8 * i);
    }
    v >>= b->pos & 7;
    return (uint32_t)(v & ((1ull << k) - 1));
}

static void skip(struct bitreader *b, unsigned k)
{
    b->pos += k;
    if (b->pos > (uint64_t)b->n * 8)
        b->overrun = true;
}

static uint32_t take(struct bitreader *b, unsigned k)
{
    uint32_t v = peek(b, k);
    skip(b, k);
    return v;
}

struct huffman {
    uint16_t count[MAX_BITS + 1];  /* codes of each length */
    uint16_t symbol[288];          /* symbols in canonical order */
    uint16_t fast[1 << FAST_BITS]; /* (symbol << 4) | length for codes of <= FAST_BITS bits */
};

/* -1 for an over-subscribed code or one with no symbol at all. */
static int huffman_build(struct huffman *h, const uint8_t *lengths, unsigned n)
{
    memset(h->count, 0, sizeof(h->count));
    memset(h->fast, 0, sizeof(h->fast));
    for (unsigned s = 0; s < n; s++)
        h->count[lengths[s]]++;
    if (h->count[0] == n)
        return -1;
    int left = 1;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        left = 2 * left - h->count[len];
        if (left < 0)
            return -1;
    }
    uint16_t offs[MAX_BITS + 2];
    unsigned code[MAX_BITS + 2];
    offs[1] = 0;
    code[1] = 0;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
        code[len + 1] = (code[len] + h->count[len]) << 1;
    }
    for (unsigned s = 0; s < n; s++) {
        unsigned len = lengths[s];
        if (len == 0)
            continue;
        h->symbol[offs[len]++] = (uint16_t)s;
        unsigned c = code[len]++;
        if (len > FAST_BITS)
            continue;
        /* Codes are sent most significant bit first: the table is indexed by them reversed. */
        unsigned rev = 0;
        for (unsigned i = 0; i < len; i++)
            rev |= ((c >> i) & 1) << (len - 1 - i);
        for (unsigned i = rev; i < (1u << FAST_BITS); i += 1u << len)
            h->fast[i] = (uint16_t)(s << 4 | len);
    }
    return 0;
}

static int decode(struct bitreader *b, const struct huffman *h)
{
    uint16_t e = h->fast[peek(b, FAST_BITS)];
    if (e) {
        skip(b, e & 15);
        return e >> 4;
    }
    int code = 0, first = 0, index = 0;
    for (unsigned len = 1; len <= MAX_BITS; len++) {
        code |= (int)take(b, 1);
        int count = h->count[len];
        if (code - count < first)
            return h->symbol[index + (code - first)];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

static const uint8_t length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int codes(struct bitreader *b, const struct huffman *lit, const struct huffman *dist)
{
    for (;;) {
        int s = decode(b, lit);
        if (s < 0 || b->overrun)
            return -1;
        if (s < 256)
            continue;
        if (s == 256)
            return 0;
        if (s > 285)
            return -1;
        skip(b, length_extra[s - 257]);
        int d = decode(b, dist);
        if (d < 0 || d > 29)
            return -1;
        skip(b, dist_extra[d]);
    }
}

static int dynamic_tables(struct bitreader *b, struct huffman *lit, struct huffman *dist)
{
    static const uint8_t order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                      11, 4,  12, 3, 13, 2, 14, 1, 15};
    unsigned nlen = take(b, 5) + 257, ndist = take(b, 5) + 1, ncode = take(b, 4) + 4;
    if (nlen > 286 || ndist > 30)
        return -1;
    uint8_t lengths[288 + 32] = {0};
    for (unsigned i = 0; i < ncode; i++)
        lengths[order[i]] = (uint8_t)take(b, 3);
    struct huffman lencode;
    if (huffman_build(&lencode, lengths, 19) < 0)
        return -1;
    unsigned i = 0;
    while (i < nlen + ndist) {
        int s = decode(b, &lencode);
        if (s < 0 || b->overrun)
            return -1;
        if (s < 16) {
            lengths[i++] = (uint8_t)s;
            continue;
        }
        uint8_t v = 0;
        unsigned rep;
        if (s == 16) {
            if (i == 0)
                return -1;
            v = lengths[i - 1];
            rep = 3 + take(b, 2);
        } else if (s == 17) {
            rep = 3 + take(b, 3);
        } else {
            rep = 11 + take(b, 7);
        }
        if (i + rep > nlen + ndist)
            return -1;
        while (rep--)
            lengths[i++] = v;
    }
    if (lengths[256] == 0 || huffman_build(lit, lengths, nlen) < 0)
        return -1;
    /* A stream with literals only may have one distance code, or none. */
    if (huffman_build(dist, lengths + nlen, ndist) < 0)
        memset(dist, 0, sizeof(*dist));
    return 0;
}

static void fixed_tables(struct huffman *lit, struct huffman *dist)
{
    uint8_t lengths[288];
    memset(lengths, 8, 144);
    memset(lengths + 144, 9, 112);
    memset(lengths + 256, 7, 24);
    memset(lengths + 280, 8, 8);
    huffman_build(lit, lengths, 288);
    memset(lengths, 5, 30);
    huffman_build(dist, lengths, 30);
}

int ls_deflate_scan(const void *data, size_t n, uint64_t *ret_last_header, uint64_t *ret_end)
{
    struct bitreader b = {.p = data, .n = n};
    struct huffman *lit = mk_xmalloc(sizeof(*lit)), *dist = mk_xmalloc(sizeof(*dist));
    int r = -1;
    for (;;) {
        uint64_t header = b.pos;
        unsigned final = take(&b, 1), type = take(&b, 2);
        if (type == 0) {
            b.pos = (b.pos + 7) & ~(uint64_t)7;
            unsigned len = take(&b, 16), nlen = take(&b, 16);
            if (b.overrun || (len ^ 0xffffu) != nlen)
                break;
            skip(&b, 8 * len);
        } else if (type == 1) {
            fixed_tables(lit, dist);
            if (codes(&b, lit, dist) < 0)
                break;
        } else if (type == 2) {
            if (dynamic_tables(&b, lit, dist) < 0 || codes(&b, lit, dist) < 0)
                break;
        } else {
            break;
        }
        if (b.overrun)
            break;
        if (final) {
            *ret_last_header = header;
            *ret_end = b.pos;
            r = 0;
            break;
        }
    }
    free(lit);
    free(dist);
    return r;
}
