/* common/cleanup.h - scope-bound cleanup for memory, fds and handles.
 *
 * Variables declared with these attributes are released when they leave scope.
 * Hand ownership out with MK_TAKE_PTR / MK_TAKE_FD, which reset the variable so the
 * cleanup becomes a no-op. Every cleanup function accepts NULL / -1.
 */
#ifndef MK_COMMON_CLEANUP_H
#define MK_COMMON_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void mk_freep(void *p)
{
    free(*(void **)p);
}

/* Closes *fd (if open) and sets it to -1, so that a variable closed early and closed again
 * by its cleanup (or a struct field closed twice) never closes a number reused meanwhile. */
static inline void mk_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}

static inline void mk_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

static inline void mk_closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(mk_freep)
#define _cleanup_close_ _cleanup_(mk_closep)
#define _cleanup_fclose_ _cleanup_(mk_fclosep)
#define _cleanup_closedir_ _cleanup_(mk_closedirp)

/* MK_DEFINE_CLEANUP(type, func): defines func##p(type **) for _cleanup_(func##p). */
#define MK_DEFINE_CLEANUP(type, func)                                                              \
    static inline void func##p(type **p)                                                           \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

#define MK_TAKE_PTR(p)                                                                             \
    ({                                                                                             \
        __typeof__(p) _taken = (p);                                                                \
        (p) = NULL;                                                                                \
        _taken;                                                                                    \
    })

#define MK_TAKE_FD(fd)                                                                             \
    ({                                                                                             \
        int _taken = (fd);                                                                         \
        (fd) = -1;                                                                                 \
        _taken;                                                                                    \
    })

#endif
