/* layerstore/filters.c - which compressions the layerstore reads, and only in-process.
 *
 * libarchive decodes some formats by running a program from $PATH when it has no library
 * for them (lrzip, lzop, grzip always; gzip, zstd, xz, bzip2, lz4 when built without zlib,
 * libzstd, ...), and archive_read_support_filter_all() enables all of those. Every reader of
 * input we did not write (layers, `load` archives, ADD sources) enables an explicit list
 * here; a filter that libarchive could only run as a program (it answers ARCHIVE_WARN) is an
 * error, never a process.
 */
#include <archive.h>
#include <string.h>

#include "layerstore/internal.h"

static const struct {
    unsigned bit;
    const char *name;
    int (*enable)(struct archive *);
} filters[] = {
    {LS_FILTER_GZIP, "gzip", archive_read_support_filter_gzip},
    {LS_FILTER_ZSTD, "zstd", archive_read_support_filter_zstd},
    {LS_FILTER_XZ, "xz", archive_read_support_filter_xz},
    {LS_FILTER_LZMA, "lzma", archive_read_support_filter_lzma},
    {LS_FILTER_BZIP2, "bzip2", archive_read_support_filter_bzip2},
    {LS_FILTER_LZ4, "lz4", archive_read_support_filter_lz4},
};

int ls_read_filters(struct archive *a, unsigned which, struct mk_error **err)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        if (!(which & filters[i].bit))
            continue;
        int r = filters[i].enable(a);
        if (r == ARCHIVE_WARN)
            return mk_error_set(err, MK_ERR_FAILED, 0,
                                "this libarchive decodes %s only by running an external "
                                "program, which mkimg does not do",
                                filters[i].name);
        if (r != ARCHIVE_OK)
            return mk_error_set(err, MK_ERR_FAILED, 0, "enabling %s decoding: %s", filters[i].name,
                                archive_error_string(a));
    }
    return 0;
}

/* Magic numbers of compressions we do not read, to name them in the error. */
static const struct {
    const char *name;
    const char *magic;
    size_t len;
} foreign[] = {
    {"lrzip", "LRZI", 4},
    {"lzop", "\x89LZO\0\r\n\x1a\n", 9},
    {"grzip", "GRZipII\0\x02\x04:)", 12},
    {"lzip", "LZIP", 4},
    {"xz",
     "\xfd"
     "7zXZ\0",
     6},
    {"bzip2", "BZh", 3},
    {"lz4", "\x04\x22\x4d\x18", 4},
    {"compress (.Z)", "\x1f\x9d", 2},
    {"gzip", "\x1f\x8b", 2},
    {"zstd", "\x28\xb5\x2f\xfd", 4},
};

const char *ls_compression_name(const void *head, size_t len)
{
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
        if (len >= foreign[i].len && memcmp(head, foreign[i].magic, foreign[i].len) == 0)
            return foreign[i].name;
    return NULL;
}
