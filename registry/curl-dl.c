/* registry/curl-dl.c - libcurl, loaded when the first transfer needs it.
 *
 * libcurl and the thirty libraries it pulls in (Kerberos, LDAP, ICU, GnuTLS, ...) cost about
 * 25 ms of dynamic loading per process start, which every mkimg command paid, although only
 * pull, push, login and builds that fetch use them. This file defines the handful of curl_*
 * functions the registry code calls; the first call dlopen()s libcurl and binds them.
 * Nothing else changes: the callers keep using <curl/curl.h>.
 *
 * When libcurl cannot be loaded, curl_easy_init() returns NULL and curl_global_init() an
 * error, which the callers report as any other failure to set up a transfer.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} fn;
static bool loaded;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
        /* Function pointers from dlsym: POSIX guarantees the conversion. */
#define BIND(field, name)                                                                          \
    do {                                                                                           \
        void *p_ = dlsym(h, name);                                                                 \
        if (!p_)                                                                                   \
            return;                                                                                \
        memcpy(&fn.field, &p_, sizeof(p_));                                                        \
    } while (0)
    BIND(global_init, "curl_global_init");
    BIND(easy_init, "curl_easy_init");
    BIND(easy_cleanup, "curl_easy_cleanup");
    BIND(easy_reset, "curl_easy_reset");
    BIND(easy_perform, "curl_easy_perform");
    BIND(easy_setopt, "curl_easy_setopt");
    BIND(easy_getinfo, "curl_easy_getinfo");
    BIND(easy_strerror, "curl_easy_strerror");
    BIND(easy_escape, "curl_easy_escape");
    BIND(free, "curl_free");
    BIND(slist_append, "curl_slist_append");
    BIND(slist_free_all, "curl_slist_free_all");
#undef BIND
    loaded = true;
}

static bool ready(void)
{
    pthread_once(&load_once, load);
    return loaded;
}

CURLcode curl_global_init(long flags)
{
    return ready() ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void)
{
    return ready() ? fn.easy_init() : NULL;
}

/* The functions below take a handle or string that only a loaded libcurl gave out. */
void curl_easy_cleanup(CURL *c)
{
    if (c && ready())
        fn.easy_cleanup(c);
}

void curl_easy_reset(CURL *c)
{
    if (ready())
        fn.easy_reset(c);
}

CURLcode curl_easy_perform(CURL *c)
{
    return ready() ? fn.easy_perform(c) : CURLE_FAILED_INIT;
}

/* An option's argument type is given by its number range (curl.h's CURLOPTTYPE_*): long,
 * object pointer, function pointer or curl_off_t; it is passed on with that type. */
#undef curl_easy_setopt
CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
    if (!ready())
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, opt);
    CURLcode r;
    if (opt < CURLOPTTYPE_OBJECTPOINT) {
        long v = va_arg(ap, long);
        r = fn.easy_setopt(c, opt, v);
    } else if (opt < CURLOPTTYPE_FUNCTIONPOINT) {
        void *v = va_arg(ap, void *);
        r = fn.easy_setopt(c, opt, v);
    } else if (opt < CURLOPTTYPE_OFF_T) {
        void (*v)(void) = va_arg(ap, void (*)(void));
        r = fn.easy_setopt(c, opt, v);
    } else if (opt < CURLOPTTYPE_BLOB) {
        curl_off_t v = va_arg(ap, curl_off_t);
        r = fn.easy_setopt(c, opt, v);
    } else {
        void *v = va_arg(ap, void *);
        r = fn.easy_setopt(c, opt, v);
    }
    va_end(ap);
    return r;
}

/* Every CURLINFO takes one pointer to where the answer goes. */
#undef curl_easy_getinfo
CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
    if (!ready())
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    void *p = va_arg(ap, void *);
    va_end(ap);
    return fn.easy_getinfo(c, info, p);
}

const char *curl_easy_strerror(CURLcode code)
{
    return ready() ? fn.easy_strerror(code) : "libcurl.so.4 could not be loaded";
}

char *curl_easy_escape(CURL *c, const char *s, int len)
{
    return ready() ? fn.easy_escape(c, s, len) : NULL;
}

void curl_free(void *p)
{
    if (p && ready())
        fn.free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return ready() ? fn.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (l && ready())
        fn.slist_free_all(l);
}
