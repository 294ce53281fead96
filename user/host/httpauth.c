#include "host/httpauth.h"

#include <crypt.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>

#include "util/report.h"

#define DIGEST_LEN 32		/* SHA-256 */
#define SALT_LEN 16
#define NO_USER SIZE_MAX

struct auth_job {
	struct auth_job *next;
	void *token;		/* NULL once cancelled */
	size_t user;		/* NO_USER: unknown, checked all the same */
	char *password;
	uint8_t digest[DIGEST_LEN];
	bool ok;
	uint64_t cpu_ns;
};

struct remembered {
	bool valid;
	uint8_t digest[DIGEST_LEN];
};

struct http_auth {
	const struct web_config *cfg;
	int wake_fd;
	uint8_t salt[SALT_LEN];
	struct remembered *passed;	/* per user */
	/* The loop's alone. */
	int64_t budget_ns;
	uint64_t refilled_ns;
	unsigned pending;		/* taken by httpauth_take only */
	struct auth_counts counts;
	/* Shared with the thread, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct auth_job *queue, *running, *done;
	bool stop;
	pthread_t thread;
	bool started;
};

bool httpauth_equal(const void *a, const void *b, size_t len)
{
	const volatile uint8_t *x = a, *y = b;
	uint8_t diff = 0;

	for (size_t i = 0; i < len; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

static void free_job(struct auth_job *job)
{
	if (!job)
		return;
	explicit_bzero(job->password, strlen(job->password));
	free(job->password);
	free(job);
}

static void free_jobs(struct auth_job *list)
{
	while (list) {
		struct auth_job *next = list->next;
		free_job(list);
		list = next;
	}
}

/* An unknown user's password is checked against the first user's hash,
 * and fails: the answer takes as long as for a known one. */
static void verify(const struct web_config *cfg, struct auth_job *job, struct crypt_data *cd)
{
	const char *hash = cfg->users[job->user == NO_USER ? 0 : job->user].hash;
	const char *out = crypt_r(job->password, hash, cd);

	job->ok = job->user != NO_USER && out && strlen(out) == strlen(hash) &&
		  httpauth_equal(out, hash, strlen(hash));
}

static struct auth_job *next_job(struct http_auth *a)
{
	struct auth_job *job = NULL;

	pthread_mutex_lock(&a->lock);
	while (!a->stop && !a->queue)
		pthread_cond_wait(&a->wake, &a->lock);
	if (!a->stop) {
		job = a->queue;
		a->queue = job->next;
		a->running = job;
	}
	pthread_mutex_unlock(&a->lock);
	return job;
}

static void *checker(void *arg)
{
	struct http_auth *a = arg;
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	struct auth_job *job;

	while ((job = next_job(a))) {
		uint64_t start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		if (cd)
			verify(a->cfg, job, cd);
		job->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - start;
		pthread_mutex_lock(&a->lock);
		a->running = NULL;
		job->next = a->done;
		a->done = job;
		pthread_mutex_unlock(&a->lock);
		eventfd_write(a->wake_fd, 1);
	}
	free(cd);
	return NULL;
}

/* The thread takes no signal: memwatch reads them from a signalfd. */
static int start_thread(struct http_auth *a)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&a->thread, NULL, checker, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	a->started = !err;
	if (!err)
		pthread_setname_np(a->thread, "memwatch-auth");
	return err;
}

int httpauth_start(struct http_auth **out, const struct web_config *cfg, int wake_fd)
{
	struct http_auth *a = calloc(1, sizeof(*a));
	int err;

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->cfg = cfg;
	a->wake_fd = wake_fd;
	a->budget_ns = AUTH_BURST_MS * 1000000ll;
	a->refilled_ns = clock_ns(CLOCK_MONOTONIC);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	a->passed = calloc(cfg->nusers ? cfg->nusers : 1, sizeof(*a->passed));
	if (!a->passed || getrandom(a->salt, sizeof(a->salt), 0) != sizeof(a->salt))
		err = a->passed ? -EIO : -ENOMEM;
	else
		err = cfg->nusers ? start_thread(a) : 0;
	if (err) {
		httpauth_stop(a);
		return err;
	}
	*out = a;
	return 0;
}

void httpauth_stop(struct http_auth *a)
{
	if (!a)
		return;
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_cond_signal(&a->wake);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
	}
	free_jobs(a->queue);
	free_jobs(a->done);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
	explicit_bzero(a->passed, (a->cfg->nusers ? a->cfg->nusers : 1) * sizeof(*a->passed));
	free(a->passed);
	free(a);
}

static int digest_of(const struct http_auth *a, const char *password, uint8_t *out)
{
	size_t len = strlen(password);
	uint8_t *buf = malloc(SALT_LEN + len);
	int r;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, a->salt, SALT_LEN);
	memcpy(buf + SALT_LEN, password, len);
	r = gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, SALT_LEN + len, out);
	explicit_bzero(buf, SALT_LEN + len);
	free(buf);
	return r < 0 ? -EIO : 0;
}

static size_t user_index(const struct web_config *cfg, const char *user)
{
	for (size_t i = 0; i < cfg->nusers; i++)
		if (!strcmp(cfg->users[i].name, user))
			return i;
	return NO_USER;
}

/* Over the budget, or as many checks as may wait: not now. */
static bool over_budget(struct http_auth *a)
{
	uint64_t now = clock_ns(CLOCK_MONOTONIC);

	a->budget_ns += (int64_t)((now - a->refilled_ns) * AUTH_CPU_SHARE / 100);
	if (a->budget_ns > AUTH_BURST_MS * 1000000ll)
		a->budget_ns = AUTH_BURST_MS * 1000000ll;
	a->refilled_ns = now;
	return a->budget_ns <= 0 || a->pending >= AUTH_MAX_PENDING;
}

static enum auth_verdict enqueue(struct http_auth *a, size_t user, const char *password,
				 const uint8_t *digest, void *token)
{
	struct auth_job *job = calloc(1, sizeof(*job));

	if (!job || !(job->password = strdup(password))) {
		free(job);
		return AUTH_BUSY;
	}
	job->token = token;
	job->user = user;
	memcpy(job->digest, digest, DIGEST_LEN);
	pthread_mutex_lock(&a->lock);
	job->next = a->queue;
	a->queue = job;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	a->pending++;
	return AUTH_PENDING;
}

enum auth_verdict httpauth_check(struct http_auth *a, const char *user, const char *password, void *token)
{
	uint8_t digest[DIGEST_LEN];
	size_t i;

	if (!user || !password || !a->cfg->nusers)
		return AUTH_DENIED;
	i = user_index(a->cfg, user);
	if (digest_of(a, password, digest))
		return AUTH_BUSY;
	if (i != NO_USER && a->passed[i].valid && httpauth_equal(a->passed[i].digest, digest, DIGEST_LEN)) {
		a->counts.remembered++;
		return AUTH_OK;
	}
	if (over_budget(a)) {
		a->counts.refused++;
		return AUTH_BUSY;
	}
	return enqueue(a, i, password, digest, token);
}

bool httpauth_take(struct http_auth *a, void **token, bool *ok)
{
	for (;;) {
		struct auth_job *job;

		pthread_mutex_lock(&a->lock);
		job = a->done;
		if (job)
			a->done = job->next;
		pthread_mutex_unlock(&a->lock);
		if (!job)
			return false;
		a->pending--;
		a->budget_ns -= (int64_t)job->cpu_ns;
		if (job->ok)
			a->counts.passed++;
		else
			a->counts.failed++;
		if (job->ok) {
			a->passed[job->user].valid = true;
			memcpy(a->passed[job->user].digest, job->digest, DIGEST_LEN);
		}
		*token = job->token;
		*ok = job->ok;
		free_job(job);
		if (*token)
			return true;
	}
}

void httpauth_counts(const struct http_auth *a, struct auth_counts *out)
{
	*out = a->counts;
}

static void cancel_in(struct auth_job *list, void *token)
{
	for (; list; list = list->next)
		if (list->token == token)
			list->token = NULL;
}

void httpauth_cancel(struct http_auth *a, void *token)
{
	pthread_mutex_lock(&a->lock);
	cancel_in(a->queue, token);
	if (a->running && a->running->token == token)
		a->running->token = NULL;
	cancel_in(a->done, token);
	pthread_mutex_unlock(&a->lock);
}

int httpauth_client_cert(gnutls_session_t session, enum client_auth mode)
{
	unsigned int n = 0, status = 0;

	if (mode == CLIENT_CERT_NONE)
		return 0;
	if (!gnutls_certificate_get_peers(session, &n) || n == 0)
		return mode == CLIENT_CERT_REQUIRED ? -ENOENT : 0;
	if (gnutls_certificate_verify_peers2(session, &status) < 0 || status)
		return -EACCES;
	return 0;
}
