/* Compressed copies of layers: readable by gzip/zstd, deterministic, cached, parallel, and
 * one stream compressed on several cores. */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/fsutil.h"
#include "layerstore/internal.h"
#include "tap.h"

/* Pseudo-random but compressible bytes, different per seed. */
static char *make_data(unsigned seed, size_t n)
{
    char *p = mk_xmalloc(n);
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (char)('a' + ((x >> 16) % 8));
    }
    return p;
}

/* sha256 of what `TOOL -dc PATH` prints (the independent reader), "" when it fails. */
static void decoded_digest(const char *tool, const char *path, char out[MK_DIGEST_SIZE])
{
    char *cmd = mk_xasprintf("%s -dc '%s'", tool, path);
    FILE *f = popen(cmd, "r");
    out[0] = '\0';
    if (f) {
        struct mk_sha256 *h = mk_sha256_new();
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            mk_sha256_update(h, buf, n);
        if (pclose(f) == 0)
            mk_sha256_final(h, out);
        mk_sha256_free(h);
    }
    free(cmd);
}

static void decompressed_digest(struct mk_store *st, const char *tool, const char *blob,
                                char out[MK_DIGEST_SIZE])
{
    char *path = layerstore_blob_path(st, blob);
    decoded_digest(tool, path, out);
    free(path);
}

/* ---- one stream on several cores (compress-stream.c) ---- */

/* Compressible text with stretches of noise, so blocks differ and matches cross them. */
static char *make_mixed_data(size_t n)
{
    char *p = mk_xmalloc(n + 1);
    unsigned x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        bool noise = (i / 50000) % 3 == 2;
        p[i] = noise ? (char)(x >> 16) : (char)('a' + ((x >> 16) % 4) + (i % 97 == 0));
    }
    return p;
}

struct mem {
    const char *data;
    size_t len, pos;
    unsigned step;
};

/* Hands out uneven pieces, as a pipe or a decoder would. */
static ssize_t mem_read(void *ctx, void *buf, size_t n, struct mk_error **err)
{
    (void)err;
    struct mem *m = ctx;
    size_t want = 1 + (m->step++ * 7919u) % 300000u;
    if (want > n)
        want = n;
    if (want > m->len - m->pos)
        want = m->len - m->pos;
    memcpy(buf, m->data + m->pos, want);
    m->pos += want;
    return (ssize_t)want;
}

static int compress_to(const char *path, const char *data, size_t len, enum mk_compression c,
                       int level, unsigned threads, char digest[MK_DIGEST_SIZE])
{
    struct mem m = {data, len, 0, 0};
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct mk_error *err = NULL;
    uint64_t size = 0;
    int r = ls_compress_stream(mem_read, &m, fd, c, level, threads, digest, &size, &err);
    if (r < 0)
        tap_diag("compress: %s", err->msg);
    mk_error_free(err);
    struct stat st;
    if (r == 0 && (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size))
        r = -1;
    close(fd);
    return r;
}

/* gzip (independent blocks with dictionaries) and zstd (libzstd workers) give the same bytes
 * whatever the thread count, and gzip(1)/zstd(1) read them. */
static void stream_tests(void)
{
    static const size_t sizes[] = {0, 1, 131072, 131073, 1572864 + 123};
    static const struct {
        enum mk_compression c;
        int level;
        const char *tool;
    } algos[] = {{MK_COMPRESS_GZIP, 1, "gzip"},
                 {MK_COMPRESS_GZIP, 6, "gzip"},
                 {MK_COMPRESS_GZIP, 9, "gzip"},
                 {MK_COMPRESS_ZSTD, 1, "zstd"},
                 {MK_COMPRESS_ZSTD, 3, "zstd"}};
    static const unsigned threads[] = {1, 3, 8};
    char *data = make_mixed_data(sizes[MK_ARRAY_SIZE(sizes) - 1]);
    tap_ok(ls_zstd_has_threads(), "Debian's libzstd has worker threads");
    for (size_t s = 0; s < MK_ARRAY_SIZE(sizes); s++) {
        char want[MK_DIGEST_SIZE];
        mk_sha256_buffer(data, sizes[s], want);
        for (size_t a = 0; a < MK_ARRAY_SIZE(algos); a++) {
            char first[MK_DIGEST_SIZE] = "", got[MK_DIGEST_SIZE];
            bool same = true, ok = true;
            for (size_t t = 0; t < MK_ARRAY_SIZE(threads); t++) {
                char path[64];
                snprintf(path, sizeof(path), "out-%zu", t);
                if (compress_to(path, data, sizes[s], algos[a].c, algos[a].level, threads[t], got) <
                    0) {
                    ok = false;
                    break;
                }
                if (t == 0)
                    memcpy(first, got, MK_DIGEST_SIZE);
                else
                    same = same && strcmp(first, got) == 0;
            }
            tap_ok(ok && same, "%s -%d of %zu bytes: same bytes on 1, 3 and 8 threads",
                   algos[a].tool, algos[a].level, sizes[s]);
            decoded_digest(algos[a].tool, "out-0", got);
            tap_ok(strcmp(got, want) == 0, "%s -dc gives the %zu bytes back", algos[a].tool,
                   sizes[s]);
        }
    }
    /* The blocks really are compressed with the level asked for. */
    char d[MK_DIGEST_SIZE];
    struct stat s1, s9;
    compress_to("l1", data, sizes[4], MK_COMPRESS_GZIP, 1, 2, d);
    compress_to("l9", data, sizes[4], MK_COMPRESS_GZIP, 9, 2, d);
    tap_ok(stat("l1", &s1) == 0 && stat("l9", &s9) == 0 && s9.st_size < s1.st_size &&
               s1.st_size < (off_t)sizes[4],
           "gzip -9 is smaller than -1, both smaller than the input");
    if (s1.st_size)
        tap_diag("gzip -1: %lld bytes, -9: %lld bytes of %zu", (long long)s1.st_size,
                 (long long)s9.st_size, sizes[4]);
    free(data);
}

/* Bytes no compressor can shrink. */
static char *make_noise(unsigned seed, size_t n)
{
    char *p = mk_xmalloc(n + 1);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)(x >> 32);
    }
    return p;
}

static char *read_all(const char *path, size_t *ret_len)
{
    char *data = NULL;
    if (mk_read_file_at(AT_FDCWD, path, 64u << 20, &data, ret_len, NULL) < 0)
        return NULL;
    return data;
}

/* Whether path is exactly one gzip member (zlib stops at the end of the first). */
static bool one_gzip_member(const char *path)
{
    size_t len = 0;
    char *data = read_all(path, &len);
    if (!data)
        return false;
    z_stream z;
    memset(&z, 0, sizeof(z));
    bool ok = inflateInit2(&z, 31) == Z_OK;
    char buf[65536];
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    int r = Z_OK;
    while (ok && r == Z_OK) {
        z.next_out = (Bytef *)buf;
        z.avail_out = sizeof(buf);
        r = inflate(&z, Z_NO_FLUSH);
    }
    ok = ok && r == Z_STREAM_END && z.avail_in == 0;
    inflateEnd(&z);
    free(data);
    return ok;
}

/* A raw deflate stream of data made by zlib with the given level and strategy. */
static size_t zlib_raw(const char *data, size_t n, int level, int strategy, char **ret)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, level, Z_DEFLATED, -15, 8, strategy);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    char *out = mk_xmalloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    *ret = out;
    return len;
}

/* deflate-scan.c finds the last block of streams of every block type, and refuses what is
 * cut short or not deflate. */
static void scan_tests(void)
{
    char *text = make_mixed_data(300000);
    char *noise = make_noise(1, 100000);
    static const struct {
        const char *what;
        int level, strategy;
        bool noise;
        size_t len;
    } cases[] = {{"empty", 6, Z_DEFAULT_STRATEGY, false, 0},
                 {"fixed codes", 6, Z_FIXED, false, 300000},
                 {"dynamic codes, several blocks", 9, Z_DEFAULT_STRATEGY, false, 300000},
                 {"literals only (no distance code)", 6, Z_HUFFMAN_ONLY, false, 3000},
                 {"stored blocks", 6, Z_DEFAULT_STRATEGY, true, 100000}};
    for (size_t c = 0; c < MK_ARRAY_SIZE(cases); c++) {
        char *raw = NULL;
        size_t n = zlib_raw(cases[c].noise ? noise : text, cases[c].len, cases[c].level,
                            cases[c].strategy, &raw);
        uint64_t hdr = 0, end = 0;
        int r = ls_deflate_scan(raw, n, &hdr, &end);
        tap_ok(r == 0 && (end + 7) / 8 == n && end > hdr && (raw[hdr / 8] >> (hdr % 8) & 1),
               "scan: %s: the last block has BFINAL and ends in the last byte", cases[c].what);
        tap_ok(n < 2 || ls_deflate_scan(raw, n - 1, &hdr, &end) < 0, "scan: %s cut short: refused",
               cases[c].what);
        free(raw);
    }
    uint64_t hdr, end;
    tap_ok(ls_deflate_scan("\x07\x00", 2, &hdr, &end) < 0, "scan: block type 3 is refused");
    tap_ok(ls_deflate_scan("\x00\x05\x00\x00\x00", 5, &hdr, &end) < 0,
           "scan: a stored block whose NLEN is not ~LEN is refused");
    bool none_crash = true;
    for (unsigned seed = 1; seed < 200; seed++) {
        char *junk = make_noise(seed, 1000);
        none_crash &= ls_deflate_scan(junk, 1000, &hdr, &end) <= 0;
        free(junk);
    }
    tap_ok(none_crash, "scan: random bytes give an answer or -1, without reading past them");
    free(text);
    free(noise);
}

/* Incompressible blocks go out stored, compressible ones between them compressed, and the
 * parts make one gzip member. */
/* Whether data compresses to the same bytes (into path) on 1 to max_threads threads. */
static bool same_on_threads(const char *path, const char *data, size_t n, enum mk_compression c,
                            int level, unsigned max_threads)
{
    char first[MK_DIGEST_SIZE] = "", d[MK_DIGEST_SIZE];
    bool same = true;
    for (unsigned t = 1; t <= max_threads; t++) {
        same &= compress_to(path, data, n, c, level, t, d) == 0;
        if (t == 1)
            memcpy(first, d, MK_DIGEST_SIZE);
        same &= strcmp(first, d) == 0;
    }
    return same;
}

static void stored_tests(void)
{
    const size_t n = 3u << 20;
    char *data = make_noise(7, n);
    char want[MK_DIGEST_SIZE], got[MK_DIGEST_SIZE], d[MK_DIGEST_SIZE];
    mk_sha256_buffer(data, n, want);
    struct stat st;
    tap_ok(compress_to("noise.gz", data, n, MK_COMPRESS_GZIP, 6, 2, d) == 0 &&
               stat("noise.gz", &st) == 0,
           "gzip of %zu incompressible bytes", n);
    /* Stored blocks of up to 64 KiB cost 5 bytes each, the gzip frame 18; zlib's level 6
     * stores 16 KiB at a time and its sync flushes add 5 bytes per block on top. */
    size_t bound = n + 18 + 5 * (n / 32768 + 1);
    tap_ok((size_t)st.st_size <= bound,
           "incompressible input is stored in large blocks: %lld bytes for %zu (bound %zu)",
           (long long)st.st_size, n, bound);
    decoded_digest("gzip", "noise.gz", got);
    tap_is_str(got, want, "gzip -dc gives the incompressible bytes back");
    tap_ok(one_gzip_member("noise.gz"), "one gzip member");
    /* Noise, text, noise, text ...: stored and compressed parts joined. */
    char *text = make_mixed_data(n);
    for (size_t off = 0; off < n; off += 1u << 20)
        memcpy(data + off + (512u << 10), text + off, 512u << 10);
    mk_sha256_buffer(data, n, want);
    tap_ok(same_on_threads("both.gz", data, n, MK_COMPRESS_GZIP, 6, 4),
           "stored and compressed parts: the same bytes on 1 to 4 threads");
    decoded_digest("gzip", "both.gz", got);
    tap_is_str(got, want, "gzip -dc gives stored and compressed parts back");
    tap_ok(stat("both.gz", &st) == 0 && (size_t)st.st_size < n * 3 / 4 &&
               one_gzip_member("both.gz"),
           "the text parts are compressed, into one gzip member");
    free(text);
    free(data);
}

/* zstd: a run of incompressible slots (1 MiB each) becomes a frame of raw blocks once four
 * in a row are; compressible slots around it stay compressed, each side a frame of its own. */
static void raw_frame_tests(void)
{
    const size_t mib = 1u << 20, n = 12 * mib;
    char *data = make_data(5, n);
    char *noise = make_noise(11, 8 * mib);
    memcpy(data + 2 * mib, noise, 8 * mib); /* text 0-2 MiB, noise 2-10, text 10-12 */
    free(noise);
    char want[MK_DIGEST_SIZE], got[MK_DIGEST_SIZE];
    mk_sha256_buffer(data, n, want);
    tap_ok(same_on_threads("raw.zst", data, n, MK_COMPRESS_ZSTD, 3, 3),
           "zstd with an incompressible run: the same bytes on 1 to 3 workers");
    decoded_digest("zstd", "raw.zst", got);
    tap_is_str(got, want, "zstd -dc gives text, noise and text back");
    size_t len = 0, off = 0, frames = 0, raw_size = 0;
    char *z = read_all("raw.zst", &len);
    bool checksums[4] = {false};
    while (z && off < len && frames < 4) {
        size_t fl = ZSTD_findFrameCompressedSize(z + off, len - off);
        if (ZSTD_isError(fl) || fl < 5)
            break;
        checksums[frames] = (unsigned char)z[off + 4] >> 2 & 1; /* Content_Checksum_flag */
        if (frames == 1)
            raw_size = fl;
        off += fl;
        frames++;
    }
    /* Slots 2-4 precede the fourth incompressible one and are compressed as before; slots
     * 5-9 are 40 raw blocks of 128 KiB (3 bytes of header each), after a 6-byte frame
     * header, with a 3-byte empty last block. */
    tap_ok(off == len && frames == 3 && checksums[0] && !checksums[1] && checksums[2] &&
               raw_size == 5 * mib + 6 + 40 * 3 + 3,
           "three frames: compressed, 5 MiB raw (%zu bytes, no checksum), compressed (%zu in all)",
           raw_size, frames);
    free(z);
    free(data);
}

struct writes {
    uint64_t last;
    size_t n, small; /* writes, and writes under 1 MiB */
};

static int count_write(void *ctx, uint64_t written)
{
    struct writes *w = ctx;
    if (written - w->last < (1u << 20))
        w->small++;
    w->n++;
    w->last = written;
    return 0;
}

/* Both compressors write in 1 MiB pieces (the last excepted): 10,000 small write()s per GiB
 * are what made a copy slow. */
static void write_tests(void)
{
    const size_t n = 48u << 20;
    char *data = make_mixed_data(n);
    static const enum mk_compression algos[] = {MK_COMPRESS_GZIP, MK_COMPRESS_ZSTD};
    for (size_t a = 0; a < MK_ARRAY_SIZE(algos); a++) {
        struct mem m = {data, n, 0, 0};
        struct writes w = {0, 0, 0};
        int fd = open("w.out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char d[MK_DIGEST_SIZE];
        uint64_t size = 0;
        int r = ls_compress_stream_progress(mem_read, &m, fd, algos[a], 3, 2, true, count_write, &w,
                                            d, &size, NULL);
        close(fd);
        tap_ok(r == 0 && w.last == size && w.n > 1 && w.small <= 1,
               "%s output goes out in 1 MiB writes (%zu writes, %zu smaller)",
               algos[a] == MK_COMPRESS_GZIP ? "gzip" : "zstd", w.n, w.small);
    }
    free(data);
}

/* A source that fails after `left` bytes. */
struct failing {
    struct mem m;
    size_t left;
};

static ssize_t failing_read(void *ctx, void *buf, size_t n, struct mk_error **err)
{
    struct failing *f = ctx;
    if (f->m.pos >= f->left)
        return mk_error_set(err, MK_ERR_IO, EIO, "reading the layer");
    return mem_read(&f->m, buf, n, err);
}

/* The reading, hashing and writing threads: a source failing half way and an output that
 * cannot be written each end the stream with their own error, for both algorithms. */
static void pipeline_error_tests(void)
{
    const size_t n = 12u << 20;
    char *data = make_mixed_data(n);
    static const enum mk_compression algos[] = {MK_COMPRESS_GZIP, MK_COMPRESS_ZSTD};
    for (size_t a = 0; a < MK_ARRAY_SIZE(algos); a++) {
        const char *name = algos[a] == MK_COMPRESS_GZIP ? "gzip" : "zstd";
        struct failing f = {{data, n, 0, 0}, 5u << 20};
        int fd = open("e.out", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char d[MK_DIGEST_SIZE];
        uint64_t size = 0;
        struct mk_error *err = NULL;
        int r = ls_compress_stream(failing_read, &f, fd, algos[a], 3, 2, d, &size, &err);
        close(fd);
        tap_ok(r < 0 && err && err->code == MK_ERR_IO && strstr(err->msg, "reading the layer"),
               "%s: a source failing after 5 MiB fails the stream with its error", name);
        mk_error_free(err);
        err = NULL;
        struct mem m = {data, n, 0, 0};
        fd = open("e.out", O_RDONLY | O_CLOEXEC);
        r = ls_compress_stream(mem_read, &m, fd, algos[a], 3, 2, d, &size, &err);
        close(fd);
        tap_ok(r < 0 && err && err->code == MK_ERR_IO && err->sys_errno == EBADF,
               "%s: an output that cannot be written fails the stream with the write's error",
               name);
        mk_error_free(err);
    }
    free(data);
}

/* zstd's workers stay within a bounded RSS: checked first, in a child, as the peak RSS a
 * process inherits is its parent's. */
static void rss_test(void)
{
    const size_t n = 48u << 20;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char *data = make_mixed_data(n);
        struct mem m = {data, n, 0, 0};
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        char d[MK_DIGEST_SIZE];
        uint64_t size = 0;
        struct rusage ru;
        long pages = 0, resident = -1;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
            _exit(255);
        fclose(f);
        if (ls_compress_stream(mem_read, &m, fd, MK_COMPRESS_ZSTD, 3, 2, d, &size, NULL) < 0 ||
            getrusage(RUSAGE_SELF, &ru) < 0)
            _exit(255);
        /* Peak RSS above what the process held before, in MiB. */
        long extra = (ru.ru_maxrss - resident * (sysconf(_SC_PAGESIZE) >> 10)) >> 10;
        _exit(extra < 0 ? 0 : extra > 254 ? 254 : (int)extra);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int mib = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
    tap_ok(mib < 40, "zstd on 2 workers: %d MiB of peak RSS for the compressor", mib);
}

/* A layer kept only compressed (as pulled): decoded on the fly, checked against its diff_id
 * (gz: its gzip copy, layer: the plain one). */
static void pulled_layer_tests(struct mk_store *st, const struct mk_layer_desc *gz,
                               const struct mk_layer_desc *layer)
{
    struct mk_error *err = NULL, *e2 = NULL;
    struct mk_layer_desc pulled = *gz;
    char *plain = layerstore_blob_path(st, layer->diff_id);
    char *plain_saved = mk_xasprintf("%s.saved", plain);
    rename(plain, plain_saved);
    struct mk_layer_desc *z2 = NULL;
    tap_ok(layerstore_layers_compress(st, &pulled, 1, MK_COMPRESS_ZSTD, 7, &z2, &err) == 0,
           "zstd from a gzip-only layer");
    char got[MK_DIGEST_SIZE] = "";
    if (z2)
        decompressed_digest(st, "zstd -q", z2[0].digest, got);
    tap_is_str(got, layer->diff_id, "its zstd copy decodes to the diff_id");
    layerstore_layer_descs_free(z2, 1);
    z2 = NULL;
    snprintf(pulled.diff_id, MK_DIGEST_SIZE, "sha256:%064d", 0);
    e2 = NULL;
    tap_ok(layerstore_layers_compress(st, &pulled, 1, MK_COMPRESS_ZSTD, 8, &z2, &e2) < 0 && e2 &&
               e2->code == MK_ERR_DIGEST,
           "a compressed layer that is not its diff_id is refused");
    if (e2)
        tap_diag("%d %s", e2->code, e2->msg);
    layerstore_layer_descs_free(z2, 1);
    mk_error_free(e2);
    rename(plain_saved, plain);
    free(plain);
    free(plain_saved);
    mk_error_free(err);
}

int main(void)
{
    const char *top = tap_tmpdir();
    rss_test();
    struct mk_store *st = NULL;
    struct mk_error *err = NULL;
    if (layerstore_open("store", &st, &err) < 0)
        return 1;

    enum { N = 5 };
    struct mk_layer_desc layers[N];
    memset(layers, 0, sizeof(layers));
    for (unsigned i = 0; i < N; i++) {
        size_t len = (size_t)(i + 1) * 300000;
        char *data = make_data(i, len);
        layerstore_blob_put_buf(st, data, len, layers[i].digest, NULL);
        memcpy(layers[i].diff_id, layers[i].digest, MK_DIGEST_SIZE);
        layers[i].size = len;
        layers[i].media_type = (char *)MK_MEDIA_OCI_LAYER;
        free(data);
    }

    tap_is_int(layerstore_compression_parse("gzip"), MK_COMPRESS_GZIP, "parse gzip");
    tap_is_int(layerstore_compression_parse("zstd"), MK_COMPRESS_ZSTD, "parse zstd");
    tap_is_int(layerstore_compression_parse("none"), MK_COMPRESS_NONE, "parse none");
    tap_is_int(layerstore_compression_parse("bzip2"), -1, "parse rejects bzip2");

    struct mk_layer_desc *gz = NULL;
    tap_ok(layerstore_layers_compress(st, layers, N, MK_COMPRESS_GZIP, 0, &gz, &err) == 0,
           "gzip %d layers", N);
    bool all_ok = gz != NULL;
    for (unsigned i = 0; gz && i < N; i++) {
        char got[MK_DIGEST_SIZE];
        decompressed_digest(st, "gzip", gz[i].digest, got);
        all_ok &= strcmp(got, layers[i].diff_id) == 0;
        all_ok &= strcmp(gz[i].diff_id, layers[i].diff_id) == 0;
        all_ok &= strcmp(gz[i].media_type, MK_MEDIA_OCI_LAYER_GZIP) == 0;
        all_ok &= gz[i].size < layers[i].size;
        char *path = layerstore_blob_path(st, gz[i].digest);
        struct stat sb;
        all_ok &= stat(path, &sb) == 0 && (uint64_t)sb.st_size == gz[i].size;
        free(path);
    }
    tap_ok(all_ok, "gzip -dc reads every copy back to its diff_id; sizes and media types right");

    /* Header: magic, deflate, no FNAME flag, zero mtime. */
    char *path = layerstore_blob_path(st, gz[0].digest);
    unsigned char hdr[10] = {0};
    int fd = open(path, O_RDONLY);
    tap_ok(fd >= 0 && read(fd, hdr, 10) == 10 && hdr[0] == 0x1f && hdr[1] == 0x8b && hdr[2] == 8 &&
               (hdr[3] & 0x08) == 0 && !hdr[4] && !hdr[5] && !hdr[6] && !hdr[7],
           "gzip header carries no name and no mtime");
    if (fd >= 0)
        close(fd);

    /* Second call: served from the cache, even with the copy made unreadable to
     * compression (the source blob gone proves no recompression happened). */
    char *src0 = layerstore_blob_path(st, layers[0].diff_id);
    char *src0_saved = mk_xasprintf("%s.saved", src0);
    rename(src0, src0_saved);
    struct mk_layer_desc *gz2 = NULL;
    tap_ok(layerstore_layers_compress(st, layers, N, MK_COMPRESS_GZIP, 6, &gz2, &err) == 0 &&
               strcmp(gz2[0].digest, gz[0].digest) == 0 && strcmp(gz2[4].digest, gz[4].digest) == 0,
           "second gzip (level 6 = default) comes from the cache without the source");
    layerstore_layer_descs_free(gz2, N);
    gz2 = NULL;

    /* A cache entry whose blob went away is not trusted. */
    unlink(path);
    struct mk_error *e2 = NULL;
    tap_ok(layerstore_layers_compress(st, layers, 1, MK_COMPRESS_GZIP, 0, &gz2, &e2) < 0 && e2 &&
               e2->code == MK_ERR_NOT_FOUND,
           "copy gone and source gone: a not-found error, not a dangling digest");
    mk_error_free(e2);
    rename(src0_saved, src0);
    tap_ok(layerstore_layers_compress(st, layers, 1, MK_COMPRESS_GZIP, 0, &gz2, &err) == 0 &&
               strcmp(gz2[0].digest, gz[0].digest) == 0 && layerstore_blob_exists(st, gz[0].digest),
           "recompressing gives the same bytes (deterministic)");
    layerstore_layer_descs_free(gz2, 1);
    free(src0);
    free(src0_saved);
    free(path);

    struct mk_layer_desc *g1 = NULL;
    tap_ok(layerstore_layers_compress(st, layers, 1, MK_COMPRESS_GZIP, 1, &g1, &err) == 0 &&
               strcmp(g1[0].digest, gz[0].digest) != 0,
           "another level is another copy");
    layerstore_layer_descs_free(g1, 1);

    struct mk_layer_desc *zs = NULL;
    tap_ok(layerstore_layers_compress(st, layers, N, MK_COMPRESS_ZSTD, 0, &zs, &err) == 0,
           "zstd %d layers", N);
    all_ok = zs != NULL;
    for (unsigned i = 0; zs && i < N; i++) {
        char got[MK_DIGEST_SIZE];
        decompressed_digest(st, "zstd -q", zs[i].digest, got);
        all_ok &= strcmp(got, layers[i].diff_id) == 0;
        all_ok &= strcmp(zs[i].media_type, MK_MEDIA_OCI_LAYER_ZSTD) == 0;
    }
    tap_ok(all_ok, "zstd -dc reads every copy back to its diff_id");

    char key[MK_DIGEST_SIZE];
    struct ls_compressed_record rec;
    ls_compress_cache_key(layers[2].diff_id, MK_COMPRESS_ZSTD, 3, key);
    tap_ok(ls_compressed_get(st, key, &rec, NULL) == 0, "the mapping is in the cache");
    tap_ok(strcmp(rec.diff_id, layers[2].diff_id) == 0 && strcmp(rec.blob, zs[2].digest) == 0 &&
               rec.size == zs[2].size,
           "cache record names diff_id, blob and size");

    struct mk_layer_desc *none = NULL;
    tap_ok(layerstore_layers_compress(st, layers, N, MK_COMPRESS_NONE, 0, &none, &err) == 0 &&
               strcmp(none[3].digest, layers[3].digest) == 0 &&
               strcmp(none[3].media_type, MK_MEDIA_OCI_LAYER) == 0,
           "none returns the layers as they are");
    layerstore_layer_descs_free(none, N);

    struct mk_layer_desc *bad = NULL;
    e2 = NULL;
    tap_ok(layerstore_layers_compress(st, layers, N, MK_COMPRESS_GZIP, 12, &bad, &e2) < 0 && e2 &&
               e2->code == MK_ERR_INVALID && strstr(e2->msg, "level 12"),
           "gzip level 12 is refused");
    mk_error_free(e2);

    pulled_layer_tests(st, &gz[3], &layers[3]);

    layerstore_layer_descs_free(gz, N);
    layerstore_layer_descs_free(zs, N);
    if (err)
        tap_diag("error: %s", err->msg);
    mk_error_free(err);
    layerstore_free(st);
    stream_tests();
    scan_tests();
    stored_tests();
    raw_frame_tests();
    write_tests();
    pipeline_error_tests();
    mk_rm_rf(top, NULL);
    return tap_done();
}
