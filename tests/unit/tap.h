/* tests/unit/tap.h - a tiny TAP-like harness for unit tests.
 *
 * Each unit test binary prints "ok N - name" / "not ok N - name" lines and exits 0 when
 * all passed, 1 otherwise, 77 when skipped as a whole. The runner (tests/run.sh) counts the
 * lines. Each binary runs in a fresh temporary directory (tap_tmpdir()).
 */
#ifndef MK_TESTS_TAP_H
#define MK_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3))) static inline int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond)
        tap_failed++;
    fflush(stdout);
    return cond;
}

__attribute__((format(printf, 1, 2))) static inline void tap_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ok %d - # SKIP ", ++tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

__attribute__((format(printf, 1, 2))) static inline void tap_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

#define tap_is_str(got, want, ...)                                                                 \
    do {                                                                                           \
        const char *_g = (got), *_w = (want);                                                      \
        if (!tap_ok(_g && _w && strcmp(_g, _w) == 0, __VA_ARGS__))                                 \
            tap_diag("  got:  \"%s\"\n#   want: \"%s\"", _g ? _g : "(null)", _w ? _w : "(null)");  \
    } while (0)

#define tap_is_int(got, want, ...)                                                                 \
    do {                                                                                           \
        long long _g = (long long)(got), _w = (long long)(want);                                   \
        if (!tap_ok(_g == _w, __VA_ARGS__))                                                        \
            tap_diag("  got: %lld, want: %lld", _g, _w);                                           \
    } while (0)

/* Creates and enters a fresh temp dir; returns its path (static storage). */
static inline const char *tap_tmpdir(void)
{
    static char path[] = "/tmp/mkimg-unit-XXXXXX";
    if (!mkdtemp(path) || chdir(path) < 0) {
        perror("tap_tmpdir");
        exit(1);
    }
    return path;
}

/* The conformance data: $MKIMG_CONFORMANCE or ../shared/conformance from the project root. */
static inline const char *tap_conformance_dir(void)
{
    const char *d = getenv("MKIMG_CONFORMANCE");
    return d && *d ? d : "../shared/conformance";
}

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
