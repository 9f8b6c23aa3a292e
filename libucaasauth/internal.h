/*
 * Internals shared by the library, the CLI, the daemon and the tests (all
 * link the static ucaasauth-private library). Nothing here is exported.
 */
#ifndef UCAASAUTH_INTERNAL_H
#define UCAASAUTH_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <sys/types.h>

#include "ucaasauth.h"

#define EXPORT __attribute__((visibility("default")))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* error.c: record this thread's detail text; both return `status`. */
int fail(int status, const char *fmt, ...) PRINTF(2, 3);
int fail_errno(int status, int err, const char *what, const char *path);

/* A buffer too small for a header of len bytes: UCAASAUTH_E_TOOSMALL
 * with the length the caller needs. */
static inline int fail_too_small(size_t len, size_t *ret_len)
{
	*ret_len = len;
	return fail(UCAASAUTH_E_TOOSMALL,
	            "the header is %zu bytes, the buffer holds less (%zu bytes "
	            "are needed with the NUL)",
	            len, len + 1);
}

/* Copies a header out to the caller as ucaasauth_header() promises. Here,
 * below every file that hands a header out (the hot path, the daemon
 * client, the basic provider), so that none of them calls back up. */
static inline int copy_out(const char *header, size_t len, char *buf,
                           size_t size, size_t *ret_len)
{
	if (len >= size)
		return fail_too_small(len, ret_len);
	memcpy(buf, header, len);
	buf[len] = 0;
	*ret_len = len;
	return UCAASAUTH_OK;
}

/* file.c: files that hold secrets or decide where secrets go or what
 * runs. */
enum file_owner {
	OWNER_SELF, /* owned by the effective uid, no access for others */
	OWNER_SELF_OR_ROOT, /* owned by us or root, writable by nobody else */
	/* $CREDENTIALS_DIRECTORY: owned by us or root, no access for others
	 * (group bits may show an ACL's mask) */
	OWNER_CREDENTIALS_DIR,
	/* owned by us or root, whatever the mode: a symbolic link, a sticky
	 * directory (file_open_trusted() checks what it holds) */
	OWNER_SELF_OR_ROOT_ANY_MODE
};
#define NO_UID ((uid_t)-1)
struct stat;
/*
 * The one owner and mode check: st must be of `type` (S_IFREG, S_IFDIR),
 * owned by the effective uid, by `also` (NO_UID: nobody else) or, where
 * the rule allows it, root, without the mode bits the rule forbids.
 * Failures return `status`, the detail naming what, path, the owner or
 * mode found and the one expected.
 */
int file_check(const struct stat *st, mode_t type, enum file_owner owner,
               uid_t also, const char *what, const char *path, int status);
/*
 * Opens a module or command that only root or we could have written:
 * path (absolute) is resolved one name at a time, following links, and
 * every directory on the way, every link and the regular file at the end
 * must be owned by root or us and not writable by group or others (a
 * sticky directory such as /tmp may be). *ret_fd gets the file opened with
 * O_PATH | O_CLOEXEC: use it, not the name, which may lead elsewhere by
 * then. Failures are UCAASAUTH_E_CONFIG, the detail naming `what`, the
 * path and what on the way was refused.
 */
int file_open_trusted(const char *path, const char *what, int *ret_fd);
/*
 * Reads a whole regular file of at most `max` bytes, after checking its
 * type, owner and mode the way ssh checks a private key. With `secret`
 * the buffer comes from sodium_malloc (free with sodium_free), else from
 * malloc. Failures return `status` with the file, its mode and the mode
 * expected in the detail text.
 */
int file_read(const char *path, const char *what, enum file_owner owner,
              size_t max, bool secret, int status, uint8_t **ret_data,
              size_t *ret_len);
/* Writes data to a temporary file with `mode`, fsyncs, renames it over
 * path and fsyncs the directory: the old file stays whole on failure. */
int file_write_atomic(const char *path, const char *what, const void *data,
                      size_t len, mode_t mode, int status);
/* Creates the parent directory of path (one level) with mode 0700 if it
 * is missing. */
int file_make_parent(const char *path, int status);

/* config.c */
enum cache_mode {
	CACHE_SHARED,
	CACHE_PROCESS,
	CACHE_DAEMON
};
enum provider_kind {
	PROVIDER_BASIC,
	PROVIDER_LOGIN,
	PROVIDER_EXEC,
	PROVIDER_MODULE, /* a shared object from module_dir */
	PROVIDER_STACK,  /* a profile's several providers */
};
/* pam.d's control words; NONE: a one-provider stack without one. */
enum control {
	CONTROL_NONE,
	CONTROL_REQUIRED,
	CONTROL_REQUISITE,
	CONTROL_SUFFICIENT,
	CONTROL_OPTIONAL,
};

#define STACK_MAX 8
#define STACK_ARGS_MAX 16

/* One `provider =` line. */
struct stack_entry {
	enum control control;
	enum provider_kind kind;
	char *name;  /* basic, login, exec or the module's name */
	char **argv; /* the words after the name, NULL-terminated */
	int argc;
	int line;
};

#define PROFILE_NAME_MAX 64

struct profile {
	char *name;
	char *api_base; /* no trailing slash */
	char *app_id;
	char *credentials; /* absolute path */
	char *key_file;    /* absolute path */
	char *ca_file;     /* absolute path or NULL */
	char *socket;      /* the daemon's socket, absolute path */
	char *allow_users; /* who the daemon serves: names or uids */
	char *allow_groups;
	char *daemon_user; /* who clients accept as the daemon: name or uid */
	char *module_dir;  /* absolute */
	char *exec_env;    /* names of variables passed to exec commands */
	struct stack_entry *stack;
	size_t n_stack;
	enum provider_kind provider; /* the one provider's, or STACK */
	enum cache_mode cache;
	int token_ttl, refresh_ahead, expiry_margin; /* seconds */
	int wait_timeout, connect_timeout, timeout;  /* seconds */
	int reject_min_age; /* seconds: a younger token's reject backs off */
	int line;           /* where its section starts, for messages */
};

struct config {
	char *path;
	char *default_profile;
	int default_line;
	struct profile *profiles;
	size_t n_profiles;
};

/* The configuration file the library reads: $UCAASAUTH_CONFIG, then the
 * user's, then the system's. Writes at most size bytes. */
int config_path(char *buf, size_t size);
/* Parses a configuration file's text; `path` names it in messages and
 * anchors relative paths. */
int config_parse(const char *text, size_t len, const char *path,
                 struct config **ret);
int config_load(const char *path, struct config **ret);
void config_free(struct config *config);
/* NULL name: the default profile. */
int config_find(const struct config *config, const char *name,
                const struct profile **ret);
bool profile_name_valid(const char *name);
const char *provider_name(enum provider_kind kind);
const char *control_name(enum control control);

/* credstore.c */
#define MASTER_KEY_BYTES 32
#define SECRET_MAX 1024

/* Decrypted secrets: one sodium_malloc block, wiped by secrets_free. */
struct secrets {
	char app_key[SECRET_MAX + 1];
	char email[SECRET_MAX + 1];
	char password[SECRET_MAX + 1];
};

struct secrets *secrets_new(void);
void secrets_free(struct secrets *secrets);
/* Parses "key=value" lines (app_key, email, password) into secrets. */
int secrets_parse(struct secrets *secrets, const char *text, size_t len,
                  const char *what);

/* The master key: $CREDENTIALS_DIRECTORY/ucaasauth.key when that exists,
 * else key_file. *ret is sodium_malloc'd MASTER_KEY_BYTES. */
int key_load(const char *key_file, uint8_t **ret);
int key_generate(const char *path);

int cred_encrypt(const struct secrets *secrets, const char *profile,
                 const uint8_t *key, uint8_t **ret_data, size_t *ret_len);
int cred_decrypt(const uint8_t *data, size_t len, const char *profile,
                 const uint8_t *key, const char *path, struct secrets **ret);
int cred_load(const struct profile *profile, struct secrets **ret);
int cred_store(const struct profile *profile, const struct secrets *secrets);
/* What a profile's built-in providers need from the store (basic: the
 * App Key; login: email and password), and the first of it missing, or
 * NULL if all is there. */
enum {
	NEEDS_APP_KEY = 1,
	NEEDS_LOGIN = 2
};
unsigned profile_needs(const struct profile *p);
const char *secrets_missing(const struct secrets *secrets, unsigned needs);

/* json.c: JSON whose strings may be secret. json_parse_object() parses
 * text as exactly one JSON object: 0 and *ret (free it with
 * json_free_wiped()), UCAASAUTH_E_PROTOCOL ("WHAT is not one JSON
 * document", "... is not a JSON object") or UCAASAUTH_E_NOMEM. Whatever
 * the outcome, every string the parse made is wiped before it is freed.
 * json_get_string(): obj's member `key` if it is a string. */
struct json_object;
int json_parse_object(const char *text, size_t len, const char *what,
                      struct json_object **ret);
void json_free_wiped(struct json_object *obj);
bool json_get_string(struct json_object *obj, const char *key, const char **ret,
                     size_t *ret_len);

/* provider-basic.c: "Authorization: Basic base64(app_id:app_key)" in
 * sodium_malloc memory. */
int basic_header(const char *app_id, const char *app_key, char **ret,
                 size_t *ret_len);

/* login.c: the login provider. */
#define TOKEN_MAX 2048
#define ANSWER_MAX (64 * 1024)

struct login {
	void *easy; /* CURL *, reused for keep-alive; one per process */
	pid_t pid;  /* the process that made it: never used across fork */
};

/* POSTs the login and writes the token (NUL-terminated) into
 * token[0..TOKEN_MAX]; *ret_ttl gets its lifetime in seconds. */
int login_fetch(struct login *login, const struct profile *profile,
                const struct secrets *secrets, char *token, int *ret_ttl);
/* Judges one login answer: status, body; the URL names it in messages. */
int login_parse(long http_status, const char *body, size_t len, const char *url,
                int default_ttl, char *token, int *ret_ttl);
void login_free(struct login *login);
/* Loads libcurl.so.4 with dlopen() and starts it, once per process,
 * wiping what it frees if no one started it before (then this code stays
 * loaded for good). 0, or UCAASAUTH_E_CONFIG (libcurl missing: the last
 * error names it and says why) or UCAASAUTH_E_NOMEM; a failure is final
 * for the process. */
int login_start(void);

/* handle.c */
struct segment;
struct provider;
struct ucaasauth {
	struct config *config;
	const struct profile *profile;
	struct secrets *secrets; /* NULL for daemon clients */
	char *basic; /* Basic profiles: the whole header, sodium_malloc */
	size_t basic_len;
	/* Where the header is read: the shared, process or daemon segment.
	 * A daemon client swaps it when the daemon restarts. */
	const struct segment *_Atomic view;
	struct segment *seg; /* the same, writable; NULL for daemon clients */
	int memfd;           /* ucaas-authd: the fd handed to clients */
	int64_t wait_ms;
	struct login login;
	struct provider *providers; /* the opened stack */
	size_t n_providers;
	pthread_mutex_t lock;           /* guards retired and moves */
	const struct segment **retired; /* views replaced, unmapped at close */
	size_t n_retired;
	char *identity;    /* who shares the segment (shared cache) */
	_Atomic pid_t pid; /* the process that last used seg (process cache) */
	pthread_mutex_t fork_lock;
};

/* serve: open a `cache = daemon` profile as ucaas-authd does, with the
 * credentials and a sealed segment of its own. */
int handle_open(struct ucaasauth **ret, const char *profile, bool serve);

/*
 * ucaas-authd's side of a handle opened with `serve`. handle_segment():
 * the writable segment and, in *ret_fd, the sealed memfd handed to
 * clients. handle_publish_basic(): a Basic profile's header, published for
 * the longest life a segment holds (1: not a Basic profile).
 *
 * handle_swap(): a reload. `ua` takes the settings, secrets, Basic header
 * and provider stack of `fresh` (opened with `serve` for the same
 * profile, with the same providers), and `fresh` the old ones, to be
 * freed by ucaasauth_close(fresh). The segment and its token stay, unless
 * `move` is set or the account (api_base, app_id, email) changed: then
 * `ua` moves to fresh's sealed segment (the token carried over when the
 * account is the same) and the old one is wiped and retired, so that the
 * clients still mapping it hold no token and must attach again. Returns
 * SWAP_* flags. The caller keeps other threads off the handle, and off
 * the old segment and memfd, which close with `fresh`.
 */
enum {
	SWAP_MOVED = 1,
	SWAP_DROPPED = 2
};
const struct profile *handle_profile(const struct ucaasauth *ua);
struct segment *handle_segment(const struct ucaasauth *ua, int *ret_fd);
int handle_publish_basic(struct ucaasauth *ua);
int handle_swap(struct ucaasauth *ua, struct ucaasauth *fresh, bool move);

/*
 * What `ucaas-auth status`, `token --json` and `check` show of a handle,
 * read without copying the token out: handle_info() fills every field
 * (the refresh state only when `attached`).
 */
struct handle_info {
	const struct profile *profile;
	const char *config_path;
	bool basic;    /* a static Basic header, nothing cached */
	bool attached; /* a segment is mapped (daemon: the daemon is up) */
	uint64_t generation;
	bool valid;            /* a token usable now */
	bool holds_header;     /* anything cached at all */
	int64_t expires_in_ms; /* when valid */
	pid_t lease_holder;    /* a process refreshing now, or 0 */
	pid_t daemon_pid;
	int64_t heartbeat_age_ms, next_refresh_in_ms;
	struct refresh_state *state; /* the caller's, filled in */
};
void handle_info(struct ucaasauth *ua, struct handle_info *ret);
/* `ucaas-auth flush`: a shared segment rebuilt (whatever its damage, the
 * backoff goes with it); the daemon's current token rejected; nothing for
 * a Basic or process handle. */
int handle_flush(struct ucaasauth *ua);

/* daemon-client.c */
int daemon_attach(struct ucaasauth *ua);
int daemon_header(struct ucaasauth *ua, char *buf, size_t size,
                  size_t *ret_len);
int daemon_reject(struct ucaasauth *ua, uint64_t generation);

/* view.c: moves the handle off a segment that cannot be used (its lock or layout
 * is broken, or it was retired): to the one another process rebuilt, or
 * to one it rebuilds. The old mapping stays until close (other threads
 * may be reading it). */
int handle_move(struct ucaasauth *ua, struct segment *broken);
/* Keeps a replaced view mapped until close; needs ua->lock. */
int handle_retire(struct ucaasauth *ua, const struct segment *old);

/* header.c: fetches a token under a refresh lease and publishes it. */
struct lease;
int refresh(struct ucaasauth *ua, struct segment *seg,
            const struct lease *lease);
/* Takes the lease and refreshes: 1 when another refresher holds it. */
int refresh_now(struct ucaasauth *ua);

#endif
