#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "internal.h"

#define die(...)                                                       \
	do {                                                           \
		fprintf(stderr, "fixture: " __VA_ARGS__);              \
		fprintf(stderr, " (%s)\n", ucaasauth_last_error()      \
		                                   ? ucaasauth_last_error() \
		                                   : "");              \
		exit(1);                                               \
	} while (0)

int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ms_sleep(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void fixture_write_config(struct fixture *f, const char *tok_extra)
{
	const char *base = f->has_mock ? f->mock.base
	                               : "http://127.0.0.1:9/ucaas/v1";
	char tmp[400];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.new", f->conf);
	fp = fopen(tmp, "w");
	if (!fp)
		die("cannot write %s", tmp);
	fprintf(fp,
	        "default_profile = tok\n"
	        "[profile tok]\n"
	        "api_base = %s\n"
	        "app_id = " FIX_APP_ID "\n"
	        "provider = login\n"
	        "%s"
	        "[profile srv]\n"
	        "api_base = %s\n"
	        "app_id = " FIX_APP_ID "\n"
	        "provider = basic\n",
	        base, tok_extra ? tok_extra : "", base);
	if (fclose(fp) != 0 || rename(tmp, f->conf) != 0)
		die("cannot write %s", f->conf);
}

static void store(const char *name, const char *app_key, const char *email,
                  const char *password)
{
	struct config *config;
	const struct profile *p;
	struct secrets *s = secrets_new();

	if (!s || config_load(getenv("UCAASAUTH_CONFIG"), &config) < 0 ||
	    config_find(config, name, &p) < 0)
		die("cannot load the configuration");
	snprintf(s->app_key, sizeof(s->app_key), "%s", app_key ? app_key : "");
	snprintf(s->email, sizeof(s->email), "%s", email ? email : "");
	snprintf(s->password, sizeof(s->password), "%s",
	         password ? password : "");
	if (cred_store(p, s) < 0)
		die("cannot store profile %s", name);
	secrets_free(s);
	config_free(config);
}

void fixture_store_password(struct fixture *f, const char *password)
{
	store("tok", NULL, FIX_EMAIL, password);
}

void fixture_start(struct fixture *f, int server_ttl, const char *tok_extra)
{
	char key[400];

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/ucaasauth-test-XXXXXX");
	if (!mkdtemp(f->dir))
		die("mkdtemp");
	snprintf(f->conf, sizeof(f->conf), "%s/ucaasauth.conf", f->dir);
	snprintf(f->runtime, sizeof(f->runtime), "%s/run", f->dir);
	setenv("UCAASAUTH_CONFIG", f->conf, 1);
	setenv("UCAASAUTH_RUNTIME_DIR", f->runtime, 1);
	unsetenv("CREDENTIALS_DIRECTORY");
	if (server_ttl > 0) {
		if (mock_start(&f->mock, FIX_APP_ID, FIX_APP_KEY, FIX_EMAIL,
		               FIX_PASSWORD, server_ttl, NULL) < 0)
			die("cannot start the mock server");
		f->has_mock = true;
	}
	fixture_write_config(f, tok_extra);
	snprintf(key, sizeof(key), "%s/master.key", f->dir);
	if (key_generate(key) < 0)
		die("cannot make a key");
	store("tok", NULL, FIX_EMAIL, FIX_PASSWORD);
	store("srv", FIX_APP_KEY, NULL, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	remove(path);
	return 0;
}

void fixture_stop(struct fixture *f)
{
	if (f->has_mock)
		mock_stop(&f->mock);
	f->has_mock = false;
	if (f->dir[0])
		nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	f->dir[0] = 0;
}

int run_workers(int n, int (*fn)(void *arg, int i), void *arg)
{
	pid_t *pids = calloc(n, sizeof(*pids));
	int go[2], ok = 0;

	if (!pids || pipe(go) < 0)
		die("run_workers");
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			char c;
			close(go[1]);
			/* Released together when the parent closes the pipe. */
			while (read(go[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(fn(arg, i));
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < n; i++) {
		int status;
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
		else
			fprintf(stderr, "worker %d: %s %d\n", i,
			        WIFEXITED(status) ? "exit" : "signal",
			        WIFEXITED(status) ? WEXITSTATUS(status)
			                          : WTERMSIG(status));
	}
	free(pids);
	return ok;
}
