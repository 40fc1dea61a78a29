/* registry/parallel.c - a few transfers at once, each thread on its own clone of the client.
 *
 * Jobs are handed out in index order, so the first layers arrive first and the caller can
 * consume them in order while later ones are still on the wire. The first job to fail
 * cancels the rest (their curl transfers and backoffs stop through the clients' shared
 * cancel flag) and its error is the one reported; what the cancelled jobs say is dropped. */
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "registry/internal.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct worker {
    struct reg_pool *p;
    struct reg_client *c;
    pthread_t thread;
};

struct reg_pool {
    reg_pool_fn fn;
    void *ctx;
    size_t n, next;
    enum job_state *state;
    struct worker *workers;
    size_t n_workers;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a job finished, or the pool failed */
    atomic_bool cancel;
    bool failed;
    struct mk_error *err; /* the first failure */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct reg_pool *p = w->p;
    pthread_mutex_lock(&p->lock);
    while (!p->failed && p->next < p->n) {
        size_t i = p->next++;
        p->state[i] = JOB_RUNNING;
        pthread_mutex_unlock(&p->lock);
        struct mk_error *e = NULL;
        int r = p->fn(p->ctx, w->c, i, &e);
        pthread_mutex_lock(&p->lock);
        if (r == 0) {
            mk_error_free(e);
            p->state[i] = JOB_DONE;
        } else if (!p->failed) {
            if (!e)
                mk_error_set(&e, MK_ERR_FAILED, 0, "a transfer failed");
            p->failed = true;
            p->err = e;
            atomic_store(&p->cancel, true);
        } else {
            mk_error_free(e); /* most likely "cancelled": the first failure tells why */
        }
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int reg_pool_start(struct reg_client *c, size_t n, size_t max_threads, reg_pool_fn fn, void *ctx,
                   struct reg_pool **ret, struct mk_error **err)
{
    struct reg_pool *p = mk_xcalloc(1, sizeof(*p));
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->state = mk_xcalloc(n + 1, sizeof(*p->state));
    atomic_init(&p->cancel, false);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    size_t want = n < max_threads ? n : max_threads;
    if (want == 0)
        want = 1;
    p->workers = mk_xcalloc(want, sizeof(*p->workers));
    /* Signals go to the calling thread, whose blocking calls they must interrupt; workers
     * see mk_interrupted within a progress tick of their transfers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (; p->n_workers < want; p->n_workers++) {
        struct worker *w = &p->workers[p->n_workers];
        w->p = p;
        w->c = reg_client_clone(c);
        w->c->cancel = &p->cancel;
        rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            reg_client_free(w->c);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (p->n_workers == 0) {
        reg_pool_finish(p, true, NULL);
        return mk_error_set(err, MK_ERR_FAILED, rc, "cannot start a transfer thread");
    }
    *ret = p;
    return 0;
}

int reg_pool_wait(struct reg_pool *p, size_t i)
{
    pthread_mutex_lock(&p->lock);
    while (!p->failed && p->state[i] != JOB_DONE)
        pthread_cond_wait(&p->cond, &p->lock);
    bool ok = p->state[i] == JOB_DONE;
    pthread_mutex_unlock(&p->lock);
    return ok ? 0 : -1;
}

int reg_pool_finish(struct reg_pool *p, bool cancel, struct mk_error **err)
{
    if (!p)
        return 0;
    if (cancel)
        atomic_store(&p->cancel, true);
    for (size_t t = 0; t < p->n_workers; t++) {
        pthread_join(p->workers[t].thread, NULL);
        reg_client_free(p->workers[t].c);
    }
    int r = 0;
    if (p->failed) {
        r = -1;
        if (err && !*err)
            *err = MK_TAKE_PTR(p->err);
    }
    mk_error_free(p->err);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->state);
    free(p->workers);
    free(p);
    return r;
}
