/* libFuzzer target: arbitrary bytes through the deflate block walker (ls_deflate_scan), checked
 * against zlib. Besides never reading out of bounds: a stream zlib inflates to its end must
 * scan, ending in the byte where zlib stopped; any scan that succeeds puts the last header
 * before the end, inside the input. The input also goes through libdeflate at a level picked
 * by its first byte, and the compressed stream must scan to its very last byte, as the gzip
 * joiner (compress-stream.c) relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <libdeflate.h>
#include <zlib.h>

#include "common/util.h"
#include "layerstore/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* How many bytes of data zlib's raw inflate consumes to the end of the stream, or 0 when
 * the stream is malformed or incomplete. */
static size_t zlib_stream_length(const uint8_t *data, size_t size)
{
    z_stream z = {0};
    if (inflateInit2(&z, -15) != Z_OK)
        abort();
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    unsigned char out[16384];
    int r;
    do {
        z.next_out = out;
        z.avail_out = sizeof(out);
        r = inflate(&z, Z_NO_FLUSH);
    } while (r == Z_OK && z.avail_in > 0);
    if (r == Z_OK) { /* input consumed: anything still held is flushed by a last call */
        z.next_out = out;
        z.avail_out = sizeof(out);
        r = inflate(&z, Z_FINISH);
    }
    size_t used = size - z.avail_in;
    inflateEnd(&z);
    return r == Z_STREAM_END ? used : 0;
}

static void check_scan(const uint8_t *data, size_t size)
{
    uint64_t last = 0, end = 0;
    int r = ls_deflate_scan(data, size, &last, &end);
    if (r == 0 && !(last < end && end <= 8 * (uint64_t)size))
        abort();
    size_t used = size < (1u << 20) ? zlib_stream_length(data, size) : 0;
    if (used && (r != 0 || (end + 7) / 8 != used))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_scan(data, size);
    if (size == 0)
        return 0;
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(data[0] % 12 + 1);
    if (!c)
        abort();
    size_t cap = libdeflate_deflate_compress_bound(c, size - 1);
    uint8_t *out = mk_xmalloc(cap);
    size_t n = libdeflate_deflate_compress(c, data + 1, size - 1, out, cap);
    uint64_t last = 0, end = 0;
    if (n == 0 || ls_deflate_scan(out, n, &last, &end) < 0 || (end + 7) / 8 != n)
        abort();
    free(out);
    libdeflate_free_compressor(c);
    return 0;
}
