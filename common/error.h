/* common/error.h - the one error object every fallible function fills.
 *
 * Contract: a fallible function returns 0 (or a non-NULL pointer) on success and a negative
 * value (or NULL) on failure, and takes `struct mk_error **err` as its last parameter. On
 * failure it stores a new error in *err (when err is not NULL and *err is NULL; an existing
 * error is kept, the first cause wins). Callers add context with mk_error_wrap(). Code below
 * cli/ never prints: the CLI formats the error once with mk_error_format().
 */
#ifndef MK_COMMON_ERROR_H
#define MK_COMMON_ERROR_H

#include <stdarg.h>

enum mk_error_code {
    MK_ERR_FAILED = 1,  /* the operation failed (exit 1) */
    MK_ERR_USAGE = 2,   /* the user's command line is wrong (exit 2) */
    MK_ERR_NOT_FOUND,   /* an image, file, blob or stage does not exist */
    MK_ERR_PARSE,       /* malformed Dockerfile, JSON, reference, tar */
    MK_ERR_INVALID,     /* well-formed but not acceptable input */
    MK_ERR_IO,          /* a system call failed (sys_errno says why) */
    MK_ERR_RUN,         /* a RUN command exited non-zero (status holds its status) */
    MK_ERR_INTERRUPTED, /* a signal asked us to stop */
    MK_ERR_UNSUPPORTED, /* the kernel or machine lacks something we need */
    MK_ERR_EXISTS,
    MK_ERR_DIGEST, /* content did not match its digest */
};

struct mk_error {
    int code;      /* enum mk_error_code */
    int sys_errno; /* 0, or the errno of the failed system call */
    int status;    /* MK_ERR_RUN: the command's exit status */
    char *where;   /* NULL, or "Dockerfile:7", "hello:latest", "sha256:..." */
    char *msg;     /* lowercase, no final period; never NULL */
};

/* Sets *err (if err && !*err) and returns -1. errnum is 0 or an errno value. */
int mk_error_set(struct mk_error **err, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int mk_error_setv(struct mk_error **err, int code, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
/* Same, with a location such as "Dockerfile:7" or "Dockerfile:7:5". */
int mk_error_set_at(struct mk_error **err, int code, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* mk_error_set(err, MK_ERR_IO, errno, ...): the usual system-call failure. */
#define mk_error_errno(err, ...) mk_error_set((err), MK_ERR_IO, errno, __VA_ARGS__)

/* Prefixes the message with context: "pulling x" + "y" -> "pulling x: y". Returns -1. */
int mk_error_wrap(struct mk_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sets the location if the error has none yet. Returns -1. */
int mk_error_set_where(struct mk_error **err, const char *where);

/* "WHERE: WHAT[: strerror]" in a new string; caller frees. */
char *mk_error_format(const struct mk_error *e);

void mk_error_free(struct mk_error *e);

/* Internal invariant broken: prints and aborts. Never for bad input. */
#define MK_BUG(msg) mk_bug(__FILE__, __LINE__, (msg))
__attribute__((noreturn)) void mk_bug(const char *file, int line, const char *msg);

#endif
