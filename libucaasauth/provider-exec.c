/*
 * The exec provider (kubectl's exec credential plugins, the AWS CLI's
 * credential_process): runs a configured command, without a shell, in a
 * clean environment, within a hard time limit, and reads its answer as
 * JSON:
 *   {"token": "...", "expires_at": "RFC 3339"}   or
 *   {"header": "Authorization: ...", "expires_in": SECONDS}
 * Its stderr becomes the detail text of a failure.
 *
 * Three processes take part:
 *
 *   caller --clone, no exit signal--> waiter --clone, SIGCHLD--> command
 *
 * The caller reads the command's output and decides; it never waits for
 * the command itself. The waiter reaps the command and reports how it
 * ended, whatever the program does with SIGCHLD. It is a child subreaper,
 * so whatever the command leaves behind (a double fork, a session of its
 * own, a process group it moved to) is its child, and it kills all of that
 * on the caller's word, or when the caller is gone. Whatever the
 * command does (leave its process group, keep its output open, sleep where
 * SIGKILL cannot reach it: a hung NFS or FUSE mount), the caller returns
 * within timeout + GRACE_MS: it waits that long at most for the waiter,
 * and the waiter gives what it killed REAP_MS to die, then exits. A
 * process still not dead then goes to init (or to the program, if the
 * program is itself a subreaper), which reaps it when it dies at last.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "cache.h"
#include "stack.h"

#define OUT_MAX (64 * 1024)
#define ERR_MAX 512
#define ENV_MAX 32
/* After the deadline, the caller waits this long at most for the waiter to
 * kill the command's tree and exit: the documented grace. */
#define GRACE_MS 500
/* ...of which the waiter gives the processes it killed this long to die. */
#define REAP_MS 250
/* Processes of a command's tree the waiter follows when it kills it. */
#define TREE_MAX 512
/* Waiters that outlived the grace, reaped by later calls. */
#define PENDING_MAX 8

struct exec_state {
	char *const *argv;
	char *env[ENV_MAX + 1];
	int timeout_ms;
	const char *profile;
};

static void free_state(struct exec_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->env[i]; i++)
		free(s->env[i]);
	free(s);
}

static int add_env(struct exec_state *s, size_t *n, const char *name,
                   const char *value)
{
	size_t len = strlen(name);

	/* Named twice (exec_env = PATH): the later value replaces. */
	for (size_t i = 0; i < *n; i++)
		if (strncmp(s->env[i], name, len) == 0 &&
		    s->env[i][len] == '=') {
			free(s->env[i]);
			s->env[i] = s->env[--*n];
			s->env[*n] = NULL;
			break;
		}
	if (*n == ENV_MAX)
		return fail(UCAASAUTH_E_CONFIG,
		            "exec_env: more than %d variables", ENV_MAX - 4);
	if (asprintf(&s->env[*n], "%s=%s", name, value) < 0) {
		s->env[*n] = NULL;
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	(*n)++;
	return 0;
}

static int exec_open(void **ret_state,
                     const struct ucaasauth_provider_args *args)
{
	const struct profile *p = provider_handle(args)->profile;
	struct exec_state *s;
	char names[1100], *save = NULL;
	size_t n = 0;
	int r, fd;

	/* The command runs with our privileges: only root or we may have
	 * written it, as for modules. Checked now, to fail early, and again
	 * before each run. */
	r = file_open_trusted(args->argv[0], "exec command", &fd);
	if (r < 0)
		return r;
	close(fd);
	if (access(args->argv[0], X_OK) < 0)
		return fail(UCAASAUTH_E_CONFIG, "exec command %s: %s",
		            args->argv[0], strerror(errno));
	s = calloc(1, sizeof(*s));
	if (!s)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	s->argv = (char *const *)args->argv;
	s->timeout_ms = args->timeout * 1000;
	s->profile = args->profile;
	/* A clean environment: what the command needs to know, and the
	 * variables the profile names, nothing else of ours. */
	r = add_env(s, &n, "PATH", "/usr/local/bin:/usr/bin:/bin");
	if (r == 0)
		r = add_env(s, &n, "UCAASAUTH_PROFILE", args->profile);
	if (r == 0)
		r = add_env(s, &n, "UCAASAUTH_API_BASE", args->api_base);
	if (r == 0)
		r = add_env(s, &n, "UCAASAUTH_APP_ID", args->app_id);
	snprintf(names, sizeof(names), "%s", p->exec_env ? p->exec_env : "");
	for (char *v = strtok_r(names, " \t", &save); v && r == 0;
	     v = strtok_r(NULL, " \t", &save)) {
		const char *value = secure_getenv(v);
		if (value)
			r = add_env(s, &n, v, value);
	}
	if (r < 0) {
		free_state(s);
		return r;
	}
	*ret_state = s;
	return 0;
}

/* "2026-11-28T10:15:00Z", "...T10:15:00.123+01:00": Unix time, or -1. */
static time_t parse_rfc3339(const char *s)
{
	struct tm tm = {0};
	const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	long offset = 0;
	time_t t;

	if (!rest)
		return -1;
	if (*rest == '.')
		while (*++rest >= '0' && *rest <= '9')
			;
	if (*rest == 'Z' || *rest == 'z') {
		rest++;
	} else if (*rest == '+' || *rest == '-') {
		int h, m, n = 0;
		if (sscanf(rest + 1, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 ||
		    h > 23 || m > 59)
			return -1;
		offset = (h * 3600L + m * 60) * (*rest == '+' ? 1 : -1);
		rest += 6;
	} else {
		return -1;
	}
	if (*rest)
		return -1;
	t = timegm(&tm);
	return t == -1 ? -1 : t - offset;
}

int exec_parse(const char *out, size_t len, const char *cmd, char *buf,
               size_t size, size_t *ret_len, long *ret_lifetime)
{
	struct json_object *obj, *v;
	const char *s, *prefix;
	char what[PATH_MAX + 32];
	long lifetime = 0;
	size_t slen;
	int r;

	snprintf(what, sizeof(what), "exec command %s: its output", cmd);
	r = json_parse_object(out, len, what, &obj);
	if (r < 0)
		return r;
	if (json_get_string(obj, "header", &s, &slen)) {
		prefix = "";
	} else if (json_get_string(obj, "token", &s, &slen)) {
		prefix = TOKEN_PREFIX;
	} else {
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: no \"token\" or \"header\" string",
		         cmd);
		goto out;
	}
	/* The rest (CR, LF, control characters) is judged for every
	 * provider by the stack. */
	if (slen == 0 || strlen(s) != slen || strlen(prefix) + slen >= size ||
	    (*prefix && strpbrk(s, " \t"))) {
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: an empty, overlong or unsafe token "
		         "or header",
		         cmd);
		goto out;
	}
	snprintf(buf, size, "%s%s", prefix, s);
	if (json_object_object_get_ex(obj, "expires_at", &v)) {
		time_t t = json_object_is_type(v, json_type_string)
		                   ? parse_rfc3339(json_object_get_string(v))
		                   : -1;
		lifetime = t == -1 ? -1 : (long)(t - time(NULL));
		if (lifetime <= 0) {
			r = fail(UCAASAUTH_E_PROTOCOL,
			         "exec command %s: \"expires_at\" is not a "
			         "future RFC 3339 time",
			         cmd);
			goto out;
		}
	} else if (json_object_object_get_ex(obj, "expires_in", &v)) {
		lifetime = json_object_is_type(v, json_type_int)
		                   ? (long)json_object_get_int64(v)
		                   : -1;
		if (lifetime <= 0) {
			r = fail(
				UCAASAUTH_E_PROTOCOL,
				"exec command %s: \"expires_in\" is not a number "
				"of seconds",
				cmd);
			goto out;
		}
	}
	*ret_len = strlen(buf);
	*ret_lifetime = lifetime;
	r = 0;
out:
	if (r < 0)
		sodium_memzero(buf, size);
	json_free_wiped(obj);
	return r;
}

/* The first line of what the command said on stderr, printable. */
static const char *said(char *err, size_t len)
{
	size_t i;

	err[len] = 0;
	for (i = 0; i < len && err[i] != '\n'; i++)
		if ((unsigned char)err[i] < ' ' || err[i] == 0x7f)
			err[i] = '?';
	err[i] = 0;
	return i ? err : "(nothing on stderr)";
}

/*
 * Everything below, up to the pending list, runs in the waiter or in the
 * command between clone() and execve(). The program may have threads, so
 * only async-signal-safe calls (no malloc, no stdio, no locks), and system
 * calls are made directly, not through libc's wrappers: an interposer of
 * those (a sanitizer, a tool in LD_PRELOAD) may take a lock that another
 * thread of the program held at clone() time and wait for ever, and
 * ThreadSanitizer would take these processes for threads of the program.
 * close_range() alone goes through libc, so that a test can make it fail.
 */

/*
 * What the waiter needs. The caller speaks to it by closing one of two
 * pipes, never by writing (a write to a waiter that died would raise
 * SIGPIPE in the program): `rel` to let the rest of the tree be, `kil` to
 * kill it all; both close when the caller dies, and kill wins. (Pipes,
 * not a socketpair: a program confined to some address families, as
 * systemd's RestrictAddressFamilies= does, may not create AF_UNIX ones.)
 */
struct run {
	const struct exec_state *s;
	int in, out, err; /* the command's stdin, stdout and stderr */
	int exe;          /* the command, checked: O_PATH */
	int rep;          /* the waiter's reports, to the caller */
	int rel, kil;     /* the caller's word, read ends */
	int64_t deadline;
};

/* From the waiter to the caller, one message on `rep`. */
enum {
	MSG_STATUS = 1,
	MSG_NOSTART
};
struct msg {
	int kind;
	int value; /* a wait status; errno for MSG_NOSTART */
};

/* _exit(), without an interposer's exit-time work (ThreadSanitizer's
 * sleeps a second). */
static _Noreturn void leave(int status)
{
	for (;;)
		syscall(SYS_exit_group, status);
}

static void sys_close(int fd)
{
	syscall(SYS_close, fd);
}

static int sys_poll(struct pollfd *pfd, int n, int64_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	return (int)syscall(SYS_ppoll, pfd, n, &ts, NULL, 0);
}

static pid_t sys_reap(pid_t pid, int *status)
{
	return (pid_t)syscall(SYS_wait4, pid, status, WNOHANG | __WALL, NULL);
}

static bool kept(int fd, const int *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

/* One by one: the names in /proc/self/fd, or, without /proc, every
 * number below the descriptor limit. */
static void close_each(int lowest, const int *keep, size_t nkeep)
{
	char buf[2048] __attribute__((aligned(8)));
	struct rlimit rl;
	long n = -1;
	int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd",
	                       O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dir >= 0) {
		while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0)
			for (long off = 0; off < n;) {
				struct dirent64 *d = (void *)(buf + off);
				int fd = 0;

				off += d->d_reclen;
				if (d->d_name[0] < '0' || d->d_name[0] > '9')
					continue;
				for (const char *c = d->d_name; *c; c++)
					fd = fd * 10 + (*c - '0');
				if (fd >= lowest && fd != dir &&
				    !kept(fd, keep, nkeep))
					sys_close(fd);
			}
		if (!kept(dir, keep, nkeep))
			sys_close(dir);
		if (n == 0)
			return;
	}
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) < 0 ||
	    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1 << 20))
		rl.rlim_max = 1 << 20; /* the kernel's default nr_open */
	for (int fd = lowest; fd < (int)rl.rlim_max; fd++)
		if (!kept(fd, keep, nkeep))
			sys_close(fd);
}

/* Closes every descriptor from `lowest` up but keep[] (ascending):
 * close_range(2) where the kernel has it (5.9) and no filter refuses it,
 * one by one otherwise. */
static void close_fds(int lowest, const int *keep, size_t nkeep)
{
	unsigned int from = (unsigned int)lowest;

	for (size_t i = 0; i <= nkeep; i++) {
		unsigned int to = i < nkeep ? (unsigned int)keep[i] : ~0U;

		if (to > from &&
		    close_range(from, i < nkeep ? to - 1 : to, 0) < 0) {
			close_each(lowest, keep, nkeep);
			return;
		}
		if (i < nkeep && to + 1 > from)
			from = to + 1;
	}
}

static _Noreturn void run_command(const struct run *run, pid_t waiter)
{
	sigset_t none;
	int fds[4] = {run->in, run->out, run->err, run->exe};

	/* Above 3 first: a descriptor that already is 0 to 3 (where the
	 * program had closed its own) would keep FD_CLOEXEC through a dup2()
	 * onto itself and be closed by execve(), or be overwritten by
	 * another's dup2() before its own. */
	for (int i = 0; i < 4; i++) {
		fds[i] = (int)syscall(SYS_fcntl, fds[i], F_DUPFD, 4);
		if (fds[i] < 0)
			leave(126);
	}
	for (int i = 0; i < 4; i++)
		if (syscall(SYS_dup3, fds[i], i, i == 3 ? O_CLOEXEC : 0) < 0)
			leave(126);
	close_fds(4, NULL, 0);
	/* A process group of its own: the terminal's signals to the
	 * program's group are not for it. */
	syscall(SYS_setpgid, 0, 0);
	/* It dies with the waiter, whatever kills that. */
	if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 ||
	    syscall(SYS_getppid) != waiter)
		leave(126);
	sigemptyset(&none);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
	/* The file checked, not its name, which may lead elsewhere by now.
	 * A script ("#!") fails with ENOENT while 3 is close-on-exec: its
	 * interpreter reads it as /dev/fd/3, so 3 stays open for it. */
	syscall(SYS_execveat, 3, "", run->s->argv, run->s->env, AT_EMPTY_PATH);
	if (errno == ENOENT && syscall(SYS_fcntl, 3, F_SETFD, 0) == 0)
		syscall(SYS_execveat, 3, "", run->s->argv, run->s->env,
		        AT_EMPTY_PATH);
	leave(127);
}

static void drain(int sfd)
{
	struct signalfd_siginfo si[4];

	while (syscall(SYS_read, sfd, si, sizeof(si)) > 0)
		;
}

/* Reaps every child that has ended; true if `cmd` was one, its status in
 * *ret_status. */
static bool reap_children(pid_t cmd, int *ret_status)
{
	bool found = false;
	int st;
	pid_t w;

	while ((w = sys_reap(-1, &st)) > 0 || (w < 0 && errno == EINTR))
		if (w == cmd && cmd > 0) {
			*ret_status = st;
			found = true;
		}
	return found;
}

/* The parent of /proc/NAME, or -1. */
static pid_t parent_of(int proc, const char *name)
{
	char path[32], text[512], *p;
	size_t len = strlen(name);
	pid_t ppid = 0;
	ssize_t n;
	int fd;

	if (len + sizeof("/stat") > sizeof(path))
		return -1;
	memcpy(path, name, len);
	memcpy(path + len, "/stat", sizeof("/stat"));
	fd = (int)syscall(SYS_openat, proc, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = syscall(SYS_read, fd, text, sizeof(text) - 1);
	sys_close(fd);
	if (n <= 0)
		return -1;
	text[n] = 0;
	/* "PID (COMM) STATE PPID ...", where COMM may hold anything. */
	p = strrchr(text, ')');
	if (!p || p[1] != ' ' || !p[2] || p[3] != ' ')
		return -1;
	for (p += 4; *p >= '0' && *p <= '9'; p++)
		ppid = ppid * 10 + (*p - '0');
	return *p == ' ' ? ppid : -1;
}

static bool in_tree(const pid_t *tree, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (tree[i] == pid)
			return true;
	return false;
}

/*
 * SIGKILL to the command and every descendant of the waiter, wherever it
 * moved: top down, so that each is killed before its children are looked
 * for (a killed process forks no more, and cannot reap a child whose PID
 * could then be reused), until a pass over /proc finds none left.
 * /proc/PID/stat is read, never cmdline or environ, which wait for the
 * memory lock of a process stuck in the kernel.
 */
static void kill_tree(pid_t self, pid_t cmd)
{
	char buf[2048] __attribute__((aligned(8)));
	pid_t tree[TREE_MAX];
	size_t n = 0;
	bool grew = true;

	tree[n++] = self;
	if (cmd > 0) {
		tree[n++] = cmd;
		/* Not reaped yet, so neither number can be anyone else's. */
		syscall(SYS_kill, cmd, SIGKILL);
		syscall(SYS_kill, -cmd, SIGKILL);
	}
	for (int pass = 0; grew && pass < 64; pass++) {
		int proc = (int)syscall(SYS_openat, AT_FDCWD, "/proc",
		                        O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		long len;

		grew = false;
		if (proc < 0)
			return;
		while ((len = syscall(SYS_getdents64, proc, buf, sizeof(buf))) >
		       0)
			for (long off = 0; off < len;) {
				struct dirent64 *d = (void *)(buf + off);
				pid_t pid = 0;
				const char *c;

				off += d->d_reclen;
				for (c = d->d_name; *c >= '0' && *c <= '9'; c++)
					pid = pid * 10 + (*c - '0');
				if (*c || pid <= 0 || in_tree(tree, n, pid) ||
				    !in_tree(tree, n,
				             parent_of(proc, d->d_name)))
					continue;
				syscall(SYS_kill, pid, SIGKILL);
				grew = true;
				if (n < TREE_MAX)
					tree[n++] = pid;
			}
		sys_close(proc);
	}
}

/* Reaps what was killed, for `ms` at most: a process in uninterruptible
 * sleep dies only when it wakes up. */
static void reap_for(int sfd, int ms)
{
	int64_t end = now_ms() + ms;
	int st;

	for (;;) {
		struct pollfd pfd = {sfd, POLLIN, 0};
		int64_t left;
		pid_t w = sys_reap(-1, &st);

		if (w > 0 || (w < 0 && errno == EINTR))
			continue;
		left = end - now_ms();
		if (w < 0 || left <= 0)
			return; /* ECHILD: all gone */
		sys_poll(&pfd, 1, left);
		drain(sfd);
	}
}

static _Noreturn void run_waiter(const struct run *run)
{
	static const int quiet[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM,
	                            SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};
	struct msg m = {MSG_STATUS, 0};
	bool done = false;
	sigset_t chld;
	int sfd, keep[4], why;
	pid_t cmd, self = (pid_t)syscall(SYS_getpid);

	/* The program's signal settings are not the command's: an ignored
	 * SIGCHLD would lose its exit status and break its shell's waits, a
	 * blocked SIGTERM (ucaas-authd blocks it) its shutdown. SIGCHLD is
	 * read from a signalfd here, and unblocked in the command. (libc's
	 * sigaction(): the kernel's structure differs between machines.) */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &chld, NULL, _NSIG / 8);
	sfd = (int)syscall(SYS_signalfd4, -1, &chld, _NSIG / 8,
	                   SFD_NONBLOCK | SFD_CLOEXEC);
	/* The orphans of the command's tree come to us, not to init
	 * (Linux 3.4; before it, only the command and its process group
	 * can be killed). */
	syscall(SYS_prctl, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	cmd = sfd < 0 ? -1
	              : (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, NULL,
	                               NULL, NULL, NULL);
	why = errno;
	if (cmd == 0)
		run_command(run, self);
	/* Only the caller's word, or its end, stops us: not the terminal's
	 * signals to its process group, nor a SIGPIPE if it is gone. */
	for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++)
		signal(quiet[i], SIG_IGN);
	if (cmd < 0) {
		m = (struct msg){MSG_NOSTART, why};
		syscall(SYS_write, run->rep, &m, sizeof(m));
		leave(0);
	}
	/* Nothing of the program's stays open here, not even its stdout:
	 * a shell's $(...) would wait for it. */
	keep[0] = run->rep;
	keep[1] = run->rel;
	keep[2] = run->kil;
	keep[3] = sfd;
	for (int i = 1; i < 4; i++)
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	close_fds(0, keep, 4);
	for (;;) {
		struct pollfd pfd[3] = {{run->kil, POLLIN, 0},
		                        {run->rel, POLLIN, 0},
		                        {sfd, POLLIN, 0}};
		/* The caller speaks by its deadline; past that and the grace,
		 * it is as good as gone (a fork of it may hold its ends). */
		int64_t left = run->deadline + GRACE_MS - now_ms();

		if (left <= 0 || (sys_poll(pfd, 3, left) < 0 && errno != EINTR))
			break;
		if (pfd[2].revents) {
			drain(sfd);
			if (reap_children(done ? 0 : cmd, &m.value) && !done) {
				done = true;
				if (syscall(SYS_write, run->rep, &m,
				            sizeof(m)) < 0)
					break;
			}
		}
		if (pfd[0].revents)
			break; /* kill, or the caller is gone */
		if (pfd[1].revents) {
			/* Released. What the command left and that let go of
			 * its output lives on, as before: adopted by init. */
			reap_children(0, &m.value);
			leave(0);
		}
	}
	kill_tree(self, done ? 0 : cmd);
	reap_for(sfd, REAP_MS);
	leave(0);
}

/*
 * Waiters that did not exit within the grace (a loaded machine, one
 * stopped by a debugger): reaped by the next fetch or close of any exec
 * profile in this process. Each entry is (pid of the process whose child
 * it is << 32 | its pid): after fork(), the child drops its parent's.
 * Atomics, not a mutex, so that a fork while another thread holds it
 * cannot leave the child locked out.
 */
static _Atomic uint64_t pending[PENDING_MAX];

static void pending_add(pid_t pid)
{
	uint64_t e = (uint64_t)(uint32_t)getpid() << 32 | (uint32_t)pid;

	for (size_t i = 0; i < PENDING_MAX; i++) {
		uint64_t none = 0;
		if (atomic_compare_exchange_strong(&pending[i], &none, e))
			return;
	}
	/* Eight stuck at once: this one stays a zombie until we exit. */
}

static void pending_reap(void)
{
	uint32_t self = (uint32_t)getpid();

	for (size_t i = 0; i < PENDING_MAX; i++) {
		uint64_t e = atomic_load(&pending[i]);
		int st;

		if (!e)
			continue;
		if ((uint32_t)(e >> 32) == self) {
			pid_t w = waitpid((pid_t)(uint32_t)e, &st,
			                  WNOHANG | __WALL);
			if (w == 0 || (w < 0 && errno == EINTR))
				continue; /* still running */
		}
		atomic_compare_exchange_strong(&pending[i], &e, 0);
	}
}

/* The waiter exits at once when released, within REAP_MS when told to
 * kill: its `rep` closes as it does, a moment before it can be reaped.
 * Bounded by `end` all the same. */
static void reap_waiter(pid_t pid, int rep, int64_t end)
{
	for (;;) {
		struct pollfd pfd = {rep, POLLIN, 0};
		char sink[64];
		int64_t left;
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG | __WALL);

		/* ECHILD: someone's waitpid(-1, __WALL) took it. */
		if (w == pid || (w < 0 && errno != EINTR))
			return;
		left = end - now_ms();
		if (left <= 0) {
			pending_add(pid);
			return;
		}
		if (rep < 0) {
			nanosleep(&(struct timespec){0, 1000000}, NULL);
		} else if (poll(&pfd, 1, (int)left) > 0 &&
		           read(rep, sink, sizeof(sink)) <= 0) {
			rep = -1; /* closed: it is exiting */
		}
	}
}

static int exec_fetch(void *state, char *buf, size_t size, size_t *ret_len,
                      long *ret_lifetime)
{
	struct exec_state *s = state;
	const char *cmd = s->argv[0];
	struct run run = {.s = s, .in = -1, .exe = -1};
	char *out, err[ERR_MAX + 1];
	size_t out_len = 0, err_len = 0;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1},
	    rel[2] = {-1, -1}, kil[2] = {-1, -1};
	struct msg m = {0, 0};
	enum {
		RUNNING,
		ENDED,
		TIMED_OUT,
		TOO_BIG,
		BROKEN
	} end = RUNNING;
	int poll_errno = 0, r;
	pid_t pid;

	pending_reap();
	/* Checked right before it runs: what was fine at open may not be
	 * now. */
	r = file_open_trusted(cmd, "exec command", &run.exe);
	if (r < 0)
		return r;
	out = sodium_malloc(OUT_MAX + 1); /* it holds the token */
	if (!out) {
		close(run.exe);
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	run.deadline = now_ms() + s->timeout_ms;
	run.in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (run.in < 0 || pipe2(outp, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0 ||
	    pipe2(rel, O_CLOEXEC) < 0 || pipe2(kil, O_CLOEXEC) < 0) {
		r = fail(UCAASAUTH_E_NOMEM, "exec: %s", strerror(errno));
		goto out;
	}
	run.out = outp[1];
	run.err = errp[1];
	run.rep = rep[1];
	run.rel = rel[0];
	run.kil = kil[0];
	/* fork() without SIGCHLD, and without the program's atfork
	 * handlers: its own SIGCHLD handler never hears of the waiter, and
	 * only waitpid(__WALL) for this very PID reaps it. */
	pid = (pid_t)syscall(SYS_clone, 0UL, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		r = fail(UCAASAUTH_E_NOMEM, "exec: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		run_waiter(&run);
	close(run.in);
	close(outp[1]);
	close(errp[1]);
	close(rep[1]);
	close(rel[0]);
	close(kil[0]);
	run.in = outp[1] = errp[1] = rep[1] = rel[0] = kil[0] = -1;

	/* Its output, until it closes both, by the deadline. */
	while (end == RUNNING && (outp[0] >= 0 || errp[0] >= 0)) {
		struct pollfd pfd[2] = {{outp[0], POLLIN, 0},
		                        {errp[0], POLLIN, 0}};
		int64_t left = run.deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			end = TIMED_OUT;
			break;
		}
		if (poll(pfd, 2, (int)left) < 0) {
			if (errno != EINTR) {
				poll_errno = errno;
				end = BROKEN;
			}
			continue;
		}
		if (pfd[0].revents) {
			n = read(outp[0], out + out_len, OUT_MAX + 1 - out_len);
			if (n > 0)
				out_len += (size_t)n;
			if (out_len > OUT_MAX)
				end = TOO_BIG;
			if (n == 0) {
				close(outp[0]);
				outp[0] = -1;
			}
		}
		if (pfd[1].revents) {
			char sink[512];
			n = err_len < ERR_MAX
			            ? read(errp[0], err + err_len,
			                   ERR_MAX - err_len)
			            : read(errp[0], sink, sizeof(sink));
			if (n > 0 && err_len < ERR_MAX)
				err_len += (size_t)n;
			if (n == 0) {
				close(errp[0]);
				errp[0] = -1;
			}
		}
	}
	/* Its output is closed, but it may linger: its status, by the
	 * deadline. */
	while (end == RUNNING) {
		struct pollfd pfd = {rep[0], POLLIN, 0};
		int64_t left = run.deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			end = TIMED_OUT;
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0) {
			if (errno != EINTR) {
				poll_errno = errno;
				end = BROKEN;
			}
			continue;
		}
		if (!pfd.revents)
			continue;
		n = read(rep[0], &m, sizeof(m));
		if (n == sizeof(m) || n == 0)
			end = ENDED; /* 0: the waiter died, m.kind is 0 */
		else if (n < 0 && errno != EINTR)
			end = ENDED;
	}
	/* The waiter lets the rest of the tree be when the command ended,
	 * kills all of it otherwise; then it is reaped, within the grace. */
	if (end == ENDED) {
		close(rel[1]);
		rel[1] = -1;
	} else {
		close(kil[1]);
		kil[1] = -1;
	}
	reap_waiter(pid, rep[0], now_ms() + GRACE_MS);

	if (end == TIMED_OUT)
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: no answer within %d s, killed", cmd,
		         s->timeout_ms / 1000);
	else if (end == TOO_BIG)
		r = fail(UCAASAUTH_E_PROTOCOL,
		         "exec command %s: printed more than %d bytes, killed",
		         cmd, OUT_MAX);
	else if (end == BROKEN)
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: poll: %s, killed", cmd,
		         strerror(poll_errno));
	else if (m.kind == MSG_NOSTART)
		r = fail(UCAASAUTH_E_NOMEM,
		         "exec command %s: cannot start it: %s", cmd,
		         strerror(m.value));
	else if (m.kind != MSG_STATUS)
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: its waiter process died: no exit "
		         "status",
		         cmd);
	else if (WIFSIGNALED(m.value))
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: killed by signal %d: %s", cmd,
		         WTERMSIG(m.value), said(err, err_len));
	else if (WEXITSTATUS(m.value) != 0)
		r = fail(UCAASAUTH_E_UNAVAILABLE,
		         "exec command %s: exit status %d: %s", cmd,
		         WEXITSTATUS(m.value), said(err, err_len));
	else
		r = exec_parse(out, out_len, cmd, buf, size, ret_len,
		               ret_lifetime);
out:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (rep[i] >= 0)
			close(rep[i]);
		if (rel[i] >= 0)
			close(rel[i]);
		if (kil[i] >= 0)
			close(kil[i]);
	}
	if (run.in >= 0)
		close(run.in);
	close(run.exe);
	sodium_free(out);
	return r;
}

static void exec_close(void *state)
{
	pending_reap();
	free_state(state);
}

const struct ucaasauth_provider exec_provider = {
	.abi_version = UCAASAUTH_PROVIDER_ABI,
	.name = "exec",
	.open = exec_open,
	.fetch = exec_fetch,
	.close = exec_close,
};
