/* common/error.c - the error object. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"

int mk_error_setv(struct mk_error **err, int code, int errnum, const char *fmt, va_list ap)
{
    if (!err || *err)
        return -1;
    struct mk_error *e = mk_xcalloc(1, sizeof(*e));
    e->code = code;
    e->sys_errno = errnum;
    e->msg = mk_xvasprintf(fmt, ap);
    *err = e;
    return -1;
}

int mk_error_set(struct mk_error **err, int code, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mk_error_setv(err, code, errnum, fmt, ap);
    va_end(ap);
    return -1;
}

int mk_error_set_at(struct mk_error **err, int code, const char *where, const char *fmt, ...)
{
    if (!err || *err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    mk_error_setv(err, code, 0, fmt, ap);
    va_end(ap);
    if (where)
        (*err)->where = mk_xstrdup(where);
    return -1;
}

int mk_error_wrap(struct mk_error **err, const char *fmt, ...)
{
    if (!err || !*err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = mk_xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = mk_xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = msg;
    return -1;
}

int mk_error_set_where(struct mk_error **err, const char *where)
{
    if (err && *err && !(*err)->where && where)
        (*err)->where = mk_xstrdup(where);
    return -1;
}

char *mk_error_format(const struct mk_error *e)
{
    if (!e)
        return mk_xstrdup("unknown error");
    const char *sys = e->sys_errno ? strerror(e->sys_errno) : NULL;
    return mk_xasprintf("%s%s%s%s%s", e->where ? e->where : "", e->where ? ": " : "", e->msg,
                        sys ? ": " : "", sys ? sys : "");
}

void mk_error_free(struct mk_error *e)
{
    if (!e)
        return;
    free(e->where);
    free(e->msg);
    free(e);
}

void mk_bug(const char *file, int line, const char *msg)
{
    fprintf(stderr, "mkimg: BUG at %s:%d: %s\n", file, line, msg);
    abort();
}
