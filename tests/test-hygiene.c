/*
 * Secret hygiene, tested on outcomes a user (or an attacker) can see:
 *
 *  - after ucaasauth_close(), no copy of the App Key, the password, the
 *    master key or the Basic header is left in the process's memory, for
 *    a Basic profile, a login profile that logged in, and failed logins;
 *    while a handle is open the same scan does find them, in guarded
 *    memory, so the scan can fail;
 *  - no secret in argv or the environment, of a library user or of
 *    `ucaas-auth store` while it reads its secrets;
 *  - no secret in ucaasauth_last_error() after every failure the test can
 *    provoke, nor in any output of the CLI but the header and the token
 *    that `header` and `token` exist to print;
 *  - a core dump (gcore) of a process holding a token, a password and an
 *    App Key holds none of them, but does hold what that process kept in
 *    ordinary memory.
 *
 * The test must not hold the secrets it looks for, or it would find
 * itself: they are random, kept XOR-masked, and unmasked only into one
 * scratch mapping that every scan skips and that is wiped after each use.
 * Each memory scenario runs in a child forked from a parent shown clean by
 * a first scan, so one scenario's leftovers are never blamed on another.
 *
 * usage: test-hygiene PATH-TO-ucaas-auth
 *        (without it, the CLI checks are skipped with a note)
 */
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "fixture.h"
#include "internal.h"
#include "test.h"

#define APP_ID "hyg-app-7"
#define EMAIL "hygiene@example.com"
#define SECRET_LEN 32
#define NEEDLE_MAX 128
/* Every secret is searched as windows of WIN bytes, overlapping by half:
 * a partial copy (a freed block whose first bytes the allocator reused)
 * is found as surely as a whole one. */
#define WIN 16
#define MAX_COPIES 8
#define CHUNK (1u << 20)
/* Only sanitizer shadow memory is this large (ASan reserves terabytes);
 * it holds no application bytes. */
#define HUGE_MAPPING (64ull << 30)

enum {
	S_APP_KEY,
	S_PASSWORD,
	S_MASTER_KEY,
	S_MASTER_HEX,
	S_BASIC,      /* base64(APP_ID:APP_KEY), the Basic header's payload */
	S_KEY2,       /* the key made by `ucaas-auth keygen` */
	S_TOKEN_A,    /* tokens the core-dump child holds */
	S_TOKEN_B,
	S_PLAIN_MARK, /* strdup()ed by that child: must be in its core */
	S_GUARD_MARK, /* sodium_malloc()ed by it: must not */
	N_IDS
};

static const char *const id_names[N_IDS] = {
	"App Key",   "password",  "master key",    "master key (hex)",
	"Basic header payload",   "keygen's key",  "token A",
	"token B",   "plain marker", "guarded marker",
};

/* The secrets: data ^ mask, never the plain bytes. */
static struct masked {
	size_t len; /* 0: not known yet */
	uint8_t mask[NEEDLE_MAX];
	uint8_t data[NEEDLE_MAX];
} sec[N_IDS];

/* The one place plain secrets are written to, skipped by every scan. */
static struct scratch {
	uint8_t needle[N_IDS][NEEDLE_MAX];
	char text[4096];
	uint8_t chunk[CHUNK + WIN];
} *scr;

struct copy_found {
	unsigned copies;               /* distinct copies */
	uintptr_t at[MAX_COPIES];      /* where each starts */
	char map[96];                  /* the mapping of the first */
	char before[64];               /* what precedes the first, printable */
};

struct scan {
	struct copy_found f[N_IDS];
	uint64_t bytes;   /* read and searched */
	uint64_t skipped; /* in mappings only sanitizer shadow is as big as */
	unsigned errors;  /* ranges that could not be read */
};

struct needles {
	struct {
		int id;
		size_t offset; /* of this window in its secret */
	} n[N_IDS * NEEDLE_MAX / (WIN / 2)];
	size_t count;
};

static char dir[] = "/tmp/test-hygiene.XXXXXX";
static char conf_path[PATH_MAX], key_path[PATH_MAX], runtime[PATH_MAX];
static struct mock mock;
static const char *cli;
static pid_t main_pid;
static int down_port;

/* ---- masked secrets ---- */

static void mask_from(int id, const void *plain, size_t len)
{
	const uint8_t *p = plain;

	assert(len >= WIN && len <= NEEDLE_MAX);
	randombytes_buf(sec[id].mask, sizeof(sec[id].mask));
	for (size_t i = 0; i < len; i++)
		sec[id].data[i] = p[i] ^ sec[id].mask[i];
	sec[id].len = len;
}

/* A random secret of letters and digits: nothing JSON, base64 or a
 * terminal would transform, so every copy is byte for byte the same. */
static void make_secret(int id)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789";

	randombytes_buf(sec[id].mask, sizeof(sec[id].mask));
	for (size_t i = 0; i < SECRET_LEN; i++)
		sec[id].data[i] = (uint8_t)abc[randombytes_uniform(
		                          sizeof(abc) - 1)] ^
		                  sec[id].mask[i];
	sec[id].len = SECRET_LEN;
}

/* Writes the plain secret to dst (NUL-terminated): scratch or guarded
 * memory only. Returns its length. */
static size_t unmask_to(int id, void *dst)
{
	uint8_t *d = dst;

	for (size_t i = 0; i < sec[id].len; i++)
		d[i] = sec[id].data[i] ^ sec[id].mask[i];
	d[sec[id].len] = 0;
	return sec[id].len;
}

static const char *plain(int id)
{
	unmask_to(id, scr->needle[id]);
	return (const char *)scr->needle[id];
}

/* Needles and chunk: after every search. */
static void wipe_needles(void)
{
	sodium_memzero(scr->needle, sizeof(scr->needle));
	sodium_memzero(scr->chunk, sizeof(scr->chunk));
}

/* Everything, the text being built included. */
static void wipe_scratch(void)
{
	sodium_memzero(scr, sizeof(*scr));
}

/* Unmasks every known secret in `ids` into scratch and lists its
 * windows. The caller wipes the scratch when done. */
static void arm(unsigned ids, struct needles *nd)
{
	nd->count = 0;
	for (int id = 0; id < N_IDS; id++) {
		size_t len = sec[id].len, o = 0;

		if (!(ids & 1u << id) || len == 0)
			continue;
		unmask_to(id, scr->needle[id]);
		for (;;) {
			if (o + WIN > len)
				o = len - WIN;
			nd->n[nd->count].id = id;
			nd->n[nd->count].offset = o;
			nd->count++;
			if (o + WIN >= len)
				break;
			o += WIN / 2;
		}
	}
}

#define SECRETS                                                          \
	(1u << S_APP_KEY | 1u << S_PASSWORD | 1u << S_MASTER_KEY |       \
	 1u << S_MASTER_HEX | 1u << S_BASIC | 1u << S_KEY2)

/* ---- searching ---- */

static void record(struct scan *out, int id, uintptr_t start,
                   const uint8_t *buf, size_t pos, const char *map)
{
	struct copy_found *f = &out->f[id];
	size_t n = f->copies < MAX_COPIES ? f->copies : MAX_COPIES, k = 0;

	for (size_t i = 0; i < n; i++)
		if (f->at[i] == start)
			return; /* another window of a copy already counted */
	if (f->copies < MAX_COPIES)
		f->at[f->copies] = start;
	if (f->copies++ == 0) {
		/* What precedes the first copy tells whose buffer it is. */
		size_t from = pos > 48 ? pos - 48 : 0;
		for (size_t i = from; i < pos && k + 1 < sizeof(f->before); i++)
			f->before[k++] = isprint(buf[i]) ? (char)buf[i] : '.';
		f->before[k] = 0;
		snprintf(f->map, sizeof(f->map), "%s", map);
	}
}

/* buf[0..len) is what lies at address (or file offset) base. */
static void search(const struct needles *nd, const uint8_t *buf, size_t len,
                   uintptr_t base, const char *map, struct scan *out)
{
	for (size_t i = 0; i < nd->count; i++) {
		const uint8_t *w = scr->needle[nd->n[i].id] + nd->n[i].offset;
		const uint8_t *p = buf, *end = buf + len, *hit;

		while (p < end &&
		       (hit = memmem(p, (size_t)(end - p), w, WIN)) != NULL) {
			size_t pos = (size_t)(hit - buf);
			uintptr_t at = base + pos - nd->n[i].offset;

			record(out, nd->n[i].id, at, buf,
			       pos >= nd->n[i].offset ? pos - nd->n[i].offset
			                              : 0,
			       map);
			p = hit + 1;
		}
	}
}

static char *read_all(const char *path, size_t *ret_len)
{
	size_t len = 0, size = 65536;
	char *buf = malloc(size + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		ssize_t n;

		if (len == size) {
			char *p = realloc(buf, 2 * size + 1);
			if (!p)
				break;
			buf = p;
			size *= 2;
		}
		n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	if (ret_len)
		*ret_len = len;
	return buf;
}

/* Reads [start, end) through /proc/self/mem (never faults, and sanitizers
 * do not see it as a wild read) and searches it. */
static void scan_run(int mem, const struct needles *nd, uintptr_t start,
                     uintptr_t end, const char *map, struct scan *out)
{
	size_t keep = 0;

	for (uintptr_t a = start; a < end;) {
		size_t want = end - a < CHUNK ? end - a : CHUNK;
		ssize_t n = pread(mem, scr->chunk + keep, want, (off_t)a);

		if (n <= 0) {
			out->errors++;
			return;
		}
		search(nd, scr->chunk, keep + (size_t)n, a - keep, map, out);
		out->bytes += (uint64_t)n;
		a += (uintptr_t)n;
		/* A window cut by the chunk's end is found in the next. */
		if (keep + (size_t)n >= WIN - 1) {
			memmove(scr->chunk, scr->chunk + keep + n - (WIN - 1),
			        WIN - 1);
			keep = WIN - 1;
		} else {
			keep += (size_t)n;
		}
	}
}

/* Every readable mapping of this process, but the scratch; only pages
 * that are present or swapped (pagemap), since one never touched holds
 * nothing, and faulting in the terabytes a sanitizer reserves would take
 * hours. */
static void scan_memory(unsigned ids, struct scan *out)
{
	uintptr_t xs = (uintptr_t)scr, xe = xs + sizeof(*scr);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct needles nd;
	char *maps, *line, *save = NULL;
	int mem, pm;

	memset(out, 0, sizeof(*out));
	maps = read_all("/proc/self/maps", NULL);
	mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (!maps || mem < 0) {
		out->errors = 1000;
		goto out;
	}
	arm(ids, &nd);
	for (line = strtok_r(maps, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long start, end;
		char perms[8], map[96];
		int name = 0;
		const char *path;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end,
		           perms, &name) < 3)
			continue;
		path = name > 0 ? line + name : "";
		if (perms[0] != 'r' || strncmp(path, "[vvar", 5) == 0 ||
		    strcmp(path, "[vsyscall]") == 0)
			continue;
		if (end - start >= HUGE_MAPPING) {
			out->skipped += end - start;
			continue;
		}
		snprintf(map, sizeof(map), "%lx-%lx %s %s", start, end, perms,
		         path[0] ? path : "[anon]");
		for (uintptr_t a = start; a < end;) {
			uint64_t ent[512];
			size_t n = (end - a) / page, got;
			ssize_t r = -1;

			n = n < 512 ? n : 512;
			if (pm >= 0)
				r = pread(pm, ent, n * 8, (off_t)(a / page * 8));
			got = r > 0 ? (size_t)r / 8 : 0;
			if (got == 0) {
				/* No pagemap: read everything. */
				for (size_t i = 0; i < n; i++)
					ent[i] = 1ull << 63;
				got = n;
			}
			for (size_t i = 0; i < got;) {
				uintptr_t rs = a + i * page;
				size_t j = i;

				while (j < got && ent[j] >> 62 &&
				       !(a + j * page >= xs && a + j * page < xe))
					j++;
				if (j > i)
					scan_run(mem, &nd, rs, a + j * page, map,
					         out);
				i = j > i ? j : i + 1;
			}
			a += got * page;
		}
	}
out:
	wipe_needles();
	free(maps);
	if (mem >= 0)
		close(mem);
	if (pm >= 0)
		close(pm);
}

/* Searches text (a message, an output, argv) for the secrets in ids. */
static unsigned text_copies(const void *text, size_t len, unsigned ids,
                            int *ret_id)
{
	struct needles nd;
	struct scan s;
	unsigned total = 0;

	memset(&s, 0, sizeof(s));
	arm(ids, &nd);
	search(&nd, text, len, 0, "text", &s);
	wipe_needles();
	for (int id = 0; id < N_IDS; id++)
		if (s.f[id].copies) {
			total += s.f[id].copies;
			if (ret_id)
				*ret_id = id;
		}
	return total;
}

/* The check every message and output goes through. */
#define CHECK_CLEAN(text, len, ids, what)                                \
	do {                                                             \
		int id_ = -1;                                            \
		unsigned n_ = text_copies((text), (len), (ids), &id_);   \
		if (n_)                                                  \
			fprintf(stderr, "%s holds the %s\n", (what),     \
			        id_names[id_]);                          \
		CHECK_INT(n_, 0);                                        \
	} while (0)

/* Where the copies are, and what precedes the first: enough to tell
 * whose buffer holds it (unless that too holds a secret). */
static void print_found(const char *when, const struct scan *s)
{
	for (int id = 0; id < N_IDS; id++) {
		const struct copy_found *f = &s->f[id];
		const char *before = f->before;

		if (!f->copies)
			continue;
		if (text_copies(before, strlen(before), SECRETS, NULL))
			before = "(withheld: it holds a secret)";
		fprintf(stderr, "%s: %u cop%s of the %s, first at %#lx in %s, "
		        "after \"%s\"\n",
		        when, f->copies, f->copies == 1 ? "y" : "ies",
		        id_names[id], (unsigned long)f->at[0], f->map, before);
	}
}

static unsigned copies_within(const struct scan *s, int id, const void *p,
                              size_t len)
{
	uintptr_t a = (uintptr_t)p;
	size_t n = s->f[id].copies < MAX_COPIES ? s->f[id].copies
	                                        : MAX_COPIES;
	unsigned k = 0;

	for (size_t i = 0; i < n; i++)
		if (s->f[id].at[i] >= a && s->f[id].at[i] < a + len)
			k++;
	return k;
}

/* The VmFlags of the mapping holding p ("rd wr mr mw me dd lo ..."). */
static void vmflags_of(const void *p, char *buf, size_t size)
{
	char *smaps = read_all("/proc/self/smaps", NULL), *line, *save = NULL;
	uintptr_t a = (uintptr_t)p;
	bool inside = false;

	buf[0] = 0;
	if (!smaps)
		return;
	for (line = strtok_r(smaps, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		unsigned long start, end;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			inside = a >= start && a < end;
		else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(buf, size, "%s ", line + 8);
			break;
		}
	}
	free(smaps);
}

/* ---- the test world ---- */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	return remove(path);
}

static void teardown(void)
{
	if (getpid() != main_pid)
		return;
	mock_stop(&mock);
	if (dir[0] == '/')
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_config(const char *extra)
{
	char tmp[PATH_MAX + 8];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.new", conf_path);
	fp = fopen(tmp, "w");
	CHECK(fp != NULL);
	fprintf(fp,
	        "default_profile = tok\n"
	        "[profile srv]\n"
	        "api_base = %s\napp_id = " APP_ID "\nprovider = basic\n"
	        "[profile tok]\n"
	        "api_base = %s\napp_id = " APP_ID "\nprovider = login\n"
	        "cache = process\ntimeout = 2\nconnect_timeout = 1\n"
	        "[profile shr]\n"
	        "api_base = %s\napp_id = " APP_ID "\nprovider = login\n"
	        "cache = shared\ntimeout = 2\nconnect_timeout = 1\n"
	        "[profile down]\n"
	        "api_base = http://127.0.0.1:%d/ucaas/v1\n"
	        "app_id = " APP_ID "\nprovider = login\n"
	        "cache = process\ntimeout = 2\nconnect_timeout = 1\n"
	        "%s",
	        mock.base, mock.base, mock.base, down_port,
	        extra ? extra : "");
	CHECK_INT(fclose(fp), 0);
	CHECK_INT(rename(tmp, conf_path), 0);
}

/* Encrypts the secrets for a profile straight from the masked copies into
 * guarded memory. */
static void store(const char *name)
{
	struct config *config = NULL;
	const struct profile *p;
	struct secrets *s = secrets_new();

	CHECK(s != NULL);
	CHECK_INT(config_load(conf_path, &config), 0);
	CHECK_INT(config_find(config, name, &p), 0);
	if (p->provider == PROVIDER_BASIC) {
		unmask_to(S_APP_KEY, s->app_key);
	} else {
		snprintf(s->email, sizeof(s->email), "%s", EMAIL);
		unmask_to(S_PASSWORD, s->password);
	}
	CHECK_INT(cred_store(p, s), 0);
	secrets_free(s);
	config_free(config);
}

/* A new cache directory: a shared cache left backing off by a refused
 * login does not hold up what follows. */
static void new_runtime(const char *name)
{
	snprintf(runtime, sizeof(runtime), "%s/%s", dir, name);
	setenv("UCAASAUTH_RUNTIME_DIR", runtime, 1);
}

static int closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0);
	CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_INT(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Reads a key file into scratch and keeps it masked, raw and in hex. */
static void learn_key(const char *path, int id, int hex_id)
{
	uint8_t *raw = scr->needle[id];
	char *hex = (char *)scr->needle[N_IDS - 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	/* read(2), not stdio: a FILE would keep a copy in its buffer. */
	CHECK_INT(read(fd, raw, MASTER_KEY_BYTES), MASTER_KEY_BYTES);
	close(fd);
	mask_from(id, raw, MASTER_KEY_BYTES);
	if (hex_id >= 0) {
		sodium_bin2hex(hex, 2 * MASTER_KEY_BYTES + 1, raw,
		               MASTER_KEY_BYTES);
		mask_from(hex_id, hex, 2 * MASTER_KEY_BYTES);
	}
	wipe_scratch();
}

static void setup(void)
{
	char *pair = scr->text, *b64 = (char *)scr->needle[S_BASIC];
	size_t n;

	umask(077);
	/* As in ucaas-auth and ucaas-authd, the library starts libcurl
	 * (the mock's client would otherwise, without wiping frees). */
	CHECK_INT(login_start(), 0);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(conf_path, sizeof(conf_path), "%s/ucaasauth.conf", dir);
	snprintf(key_path, sizeof(key_path), "%s/master.key", dir);
	setenv("UCAASAUTH_CONFIG", conf_path, 1);
	new_runtime("run");
	setenv("no_proxy", "*", 1);
	unsetenv("CREDENTIALS_DIRECTORY");

	make_secret(S_APP_KEY);
	make_secret(S_PASSWORD);
	/* The Basic header's payload, base64(APP_ID:APP_KEY). */
	n = (size_t)snprintf(pair, 64, "%s:", APP_ID);
	n += unmask_to(S_APP_KEY, pair + n);
	sodium_bin2base64(b64, NEEDLE_MAX, (const uint8_t *)pair, n,
	                  sodium_base64_VARIANT_ORIGINAL);
	mask_from(S_BASIC, b64, strlen(b64));
	wipe_scratch();

	/* The mock learns them from its argv: its process, not ours. */
	CHECK_INT(mock_start(&mock, APP_ID, plain(S_APP_KEY), EMAIL,
	                     plain(S_PASSWORD), 900, NULL),
	          0);
	wipe_scratch();
	down_port = closed_port();
	write_config(NULL);
	CHECK_INT(key_generate(key_path), 0);
	learn_key(key_path, S_MASTER_KEY, S_MASTER_HEX);
	store("srv");
	store("tok");
	store("shr");
	store("down");
}

/* ---- memory after close ---- */

struct scenario {
	int open_status, header_status;
	struct scan open_scan;   /* while the handle is open */
	struct scan closed_scan; /* after ucaasauth_close() */
	unsigned guarded[N_IDS]; /* open_scan copies inside the handle's
	                          * sodium_malloc blocks */
	char vmflags[160];       /* of the block holding the secrets */
	bool argv_env_clean;
};

static bool self_argv_env_clean(void)
{
	static const char *const files[] = {"/proc/self/cmdline",
	                                    "/proc/self/environ"};
	bool clean = true;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t len;
		char *text = read_all(files[i], &len);

		clean = clean && text && len > 0 &&
		        text_copies(text, len, SECRETS, NULL) == 0;
		free(text);
	}
	return clean;
}

/* In a child, so that its leftovers are its own: open the profile, get a
 * header, scan, close, scan again. */
static void scenario_child(const char *profile, struct scenario *out)
{
	struct ucaasauth *ua = NULL;
	char buf[4096];
	size_t len;

	memset(out, 0, sizeof(*out));
	out->open_status = ucaasauth_open(&ua, profile, 0);
	if (out->open_status < 0)
		return;
	out->header_status = ucaasauth_header(ua, buf, sizeof(buf), &len);
	/* The caller's copy of the header is the caller's to wipe. */
	sodium_memzero(buf, sizeof(buf));
	scan_memory(SECRETS, &out->open_scan);
	for (int id = 0; id < N_IDS; id++) {
		if (ua->secrets)
			out->guarded[id] += copies_within(
				&out->open_scan, id, ua->secrets,
				sizeof(*ua->secrets));
		if (ua->basic)
			out->guarded[id] += copies_within(
				&out->open_scan, id, ua->basic, ua->basic_len);
	}
	if (ua->secrets)
		vmflags_of(ua->secrets, out->vmflags, sizeof(out->vmflags));
	out->argv_env_clean = self_argv_env_clean();
	ucaasauth_close(ua);
	scan_memory(SECRETS, &out->closed_scan);
}

static void run_scenario(const char *profile, struct scenario *out)
{
	int pfd[2], status;
	size_t got = 0;
	pid_t pid;

	CHECK_INT(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		static struct scenario s;
		const char *p = (const char *)&s;
		size_t left = sizeof(s);

		close(pfd[0]);
		scenario_child(profile, &s);
		while (left > 0) {
			ssize_t n = write(pfd[1], p, left);
			if (n <= 0)
				_exit(3);
			p += n;
			left -= (size_t)n;
		}
		_exit(0);
	}
	close(pfd[1]);
	while (got < sizeof(*out)) {
		ssize_t n = read(pfd[0], (char *)out + got, sizeof(*out) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(got, sizeof(*out));
	CHECK_INT(out->open_status, 0);
	CHECK_INT(out->open_scan.errors, 0);
	CHECK_INT(out->closed_scan.errors, 0);
	CHECK(out->open_scan.bytes > 1000000);
}

/* Results kept for the checks main() runs last (see there). */
static struct scenario basic_run, login_run, denied_run, down_run;

static void test_memory(void)
{
	struct scan base;
	struct scenario *s;

	/* The premise: before any handle, the test holds no secret (they
	 * are masked), so whatever a scan finds later is the library's. */
	scan_memory(SECRETS, &base);
	print_found("before any handle", &base);
	CHECK_INT(base.errors, 0);
	CHECK(base.bytes > 1000000);
	for (int id = 0; id < N_IDS; id++)
		CHECK_INT(base.f[id].copies, 0);
	if (base.skipped)
		printf("note: skipped %llu GiB of sanitizer shadow memory "
		       "(mappings of 64 GiB or more)\n",
		       (unsigned long long)(base.skipped >> 30));

	/* A Basic profile. While open, the scan finds the App Key and its
	 * header (the scan can see secrets: this test can fail), and only
	 * inside the handle's guarded blocks, marked MADV_DONTDUMP. */
	s = &basic_run;
	run_scenario("srv", s);
	print_found("basic, open", &s->open_scan);
	print_found("basic, closed", &s->closed_scan);
	CHECK_INT(s->header_status, 0);
	CHECK(s->open_scan.f[S_APP_KEY].copies >= 1);
	CHECK_INT(s->guarded[S_APP_KEY], s->open_scan.f[S_APP_KEY].copies);
	CHECK(s->open_scan.f[S_BASIC].copies >= 1);
	CHECK_INT(s->guarded[S_BASIC], s->open_scan.f[S_BASIC].copies);
	CHECK(strstr(s->vmflags, " dd ") != NULL);
	/* The master key was needed only to decrypt, and is gone. */
	CHECK_INT(s->open_scan.f[S_MASTER_KEY].copies, 0);
	CHECK_INT(s->open_scan.f[S_MASTER_HEX].copies, 0);
	CHECK(s->argv_env_clean);

	/* A login profile that logged in: the password went through
	 * json-c and libcurl. */
	s = &login_run;
	run_scenario("tok", s);
	print_found("login, open", &s->open_scan);
	print_found("login, closed", &s->closed_scan);
	CHECK_INT(s->header_status, 0);
	CHECK(s->open_scan.f[S_PASSWORD].copies >= 1);
	CHECK(s->guarded[S_PASSWORD] >= 1);
	CHECK(strstr(s->vmflags, " dd ") != NULL);
	CHECK_INT(s->open_scan.f[S_MASTER_KEY].copies, 0);
	CHECK(s->argv_env_clean);

	/* A login the server refuses. */
	CHECK_INT(mock_config(&mock, "{\"password\": \"not-the-stored-one\"}"),
	          0);
	s = &denied_run;
	run_scenario("tok", s);
	print_found("denied, closed", &s->closed_scan);
	CHECK_INT(s->header_status, UCAASAUTH_E_DENIED);
	CHECK_INT(mock_reset(&mock), 0);

	/* A login that never reaches a server. */
	s = &down_run;
	run_scenario("down", s);
	print_found("down, closed", &s->closed_scan);
	CHECK_INT(s->header_status, UCAASAUTH_E_UNAVAILABLE);
	for (int id = 0; id < N_IDS; id++)
		CHECK_INT(s->closed_scan.f[id].copies, 0);

	/* Closed: nothing left of the App Key or the master key; the
	 * password is checked last, in main(). */
	for (int id = 0; id < N_IDS; id++) {
		CHECK_INT(basic_run.closed_scan.f[id].copies, 0);
		if (id == S_PASSWORD)
			continue;
		CHECK_INT(login_run.closed_scan.f[id].copies, 0);
		CHECK_INT(denied_run.closed_scan.f[id].copies, 0);
	}
}

/* ---- error messages ---- */

#define CHECK_MSG_CLEAN(what)                                            \
	do {                                                             \
		const char *m_ = ucaasauth_last_error();                 \
		CHECK(m_ != NULL);                                       \
		CHECK_CLEAN(m_, strlen(m_), SECRETS, (what));            \
	} while (0)

/* One header call on a new handle; the status. */
static int header_status(const char *profile)
{
	char buf[4096];
	int r = header_once(profile, buf, sizeof(buf));

	sodium_memzero(buf, sizeof(buf));
	return r;
}

/* tok.cred holding these lines (the password field is written as is,
 * newlines and all, so it can smuggle whole lines in). */
static void write_tok_cred(const char *password_field)
{
	struct secrets *s = secrets_new();
	uint8_t *key = NULL, *data = NULL;
	char path[PATH_MAX];
	size_t len;

	CHECK(s != NULL);
	snprintf(s->email, sizeof(s->email), "%s", EMAIL);
	snprintf(s->password, sizeof(s->password), "%s", password_field);
	CHECK_INT(key_load(key_path, &key), 0);
	CHECK_INT(cred_encrypt(s, "tok", key, &data, &len), 0);
	snprintf(path, sizeof(path), "%s/tok.cred", dir);
	write_file(path, data, len, 0600);
	free(data);
	sodium_free(key);
	secrets_free(s);
}

static void test_messages(void)
{
	static const struct {
		const char *config;
		int status;
	} answers[] = {
		{"{\"password\": \"not-the-stored-one\"}", UCAASAUTH_E_DENIED},
		{"{\"login_status\": 401}", UCAASAUTH_E_DENIED},
		{"{\"login_status\": 500}", UCAASAUTH_E_UNAVAILABLE},
		{"{\"login_status\": 404}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"not json\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"{\\\"token\\\": \\\"a\\\\r\\\\nX: 1\\\"}\"}",
		 UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"{\\\"token\\\": 7}\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_body\": \"{\\\"token\\\": \\\"t\\\", "
		 "\\\"expires_in\\\": -1}\"}",
		 UCAASAUTH_E_PROTOCOL},
		{"{\"login_fault\": \"redirect\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_fault\": \"huge\"}", UCAASAUTH_E_PROTOCOL},
		{"{\"login_fault\": \"drop\"}", UCAASAUTH_E_UNAVAILABLE},
	};
	char path[PATH_MAX], other[PATH_MAX], saved[PATH_MAX];
	struct ucaasauth *ua;
	uint8_t *cred;
	size_t len;
	char *line;

	/* Arguments. */
	CHECK_INT(ucaasauth_open(&ua, "tok", 1), UCAASAUTH_E_INVALID);
	CHECK_MSG_CLEAN("flags");
	CHECK_INT(ucaasauth_open(&ua, "no/such", 0), UCAASAUTH_E_INVALID);
	CHECK_MSG_CLEAN("bad name");
	CHECK_INT(ucaasauth_open(&ua, "nosuch", 0), UCAASAUTH_E_CONFIG);
	CHECK_MSG_CLEAN("no profile");
	CHECK_INT(ucaasauth_open(&ua, "srv", 0), 0);
	CHECK_INT(ucaasauth_header(ua, NULL, 0, &len), UCAASAUTH_E_TOOSMALL);
	CHECK_MSG_CLEAN("too small, basic");
	CHECK_INT(ucaasauth_header(ua, NULL, 5, &len), UCAASAUTH_E_INVALID);
	CHECK_MSG_CLEAN("NULL buffer");
	ucaasauth_close(ua);

	/* Every answer the server can give. */
	for (size_t i = 0; i < ARRAY_SIZE(answers); i++) {
		CHECK_INT(mock_reset(&mock), 0);
		CHECK_INT(mock_config(&mock, answers[i].config), 0);
		CHECK_INT(header_status("tok"), answers[i].status);
		CHECK_MSG_CLEAN(answers[i].config);
	}
	/* The shared cache keeps the failure for every process during the
	 * backoff: that text too. */
	CHECK_INT(mock_reset(&mock), 0);
	CHECK_INT(mock_config(&mock, "{\"password\": \"not-the-stored-one\"}"),
	          0);
	CHECK_INT(header_status("shr"), UCAASAUTH_E_DENIED);
	CHECK_MSG_CLEAN("denied, shared");
	CHECK_INT(header_status("shr"), UCAASAUTH_E_DENIED);
	CHECK_ERROR_HAS("next login attempt");
	CHECK_MSG_CLEAN("denied, backing off");
	CHECK_INT(mock_reset(&mock), 0);
	new_runtime("run2");
	CHECK_INT(header_status("down"), UCAASAUTH_E_UNAVAILABLE);
	CHECK_MSG_CLEAN("server down");

	/* The credential file, broken every way. */
	snprintf(path, sizeof(path), "%s/tok.cred", dir);
	CHECK_INT(file_read(path, "credential file", OWNER_SELF, 65536, false,
	                    UCAASAUTH_E_CREDENTIALS, &cred, &len),
	          0);
	cred[len - 1] ^= 1;
	write_file(path, cred, len, 0600);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("flipped bit");
	cred[len - 1] ^= 1;
	write_file(path, cred, len / 2, 0600);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("truncated");
	write_file(path, cred, len, 0644);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("mode 0644");
	write_file(path, cred, len, 0600);
	CHECK_INT(header_status("tok"), 0);
	/* Another profile's file under this one's name. */
	snprintf(other, sizeof(other), "%s/srv.cred", dir);
	snprintf(saved, sizeof(saved), "%s/tok.cred.saved", dir);
	CHECK_INT(rename(path, saved), 0);
	CHECK_INT(link(other, path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("swapped file");
	CHECK_INT(unlink(path), 0);
	CHECK_INT(symlink(other, path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("symlink");
	CHECK_INT(unlink(path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("missing");
	CHECK_INT(rename(saved, path), 0);
	/* Another master key; a key file of the wrong size. */
	snprintf(saved, sizeof(saved), "%s/master.key.saved", dir);
	CHECK_INT(rename(key_path, saved), 0);
	CHECK_INT(key_generate(key_path), 0);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("another key");
	write_file(key_path, "short", 5, 0600);
	CHECK_INT(header_status("srv"), UCAASAUTH_E_CREDENTIALS);
	CHECK_MSG_CLEAN("short key");
	CHECK_INT(rename(saved, key_path), 0);
	CHECK_INT(header_status("tok"), 0);

	/* Lines that decrypt but do not parse, carrying a secret: the
	 * message names the line and the key, never the value. */
	line = scr->text;
	snprintf(line, 80, "x\n");
	unmask_to(S_APP_KEY, line + 2); /* a line without '=' */
	write_tok_cred(line);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("line 3");
	CHECK_MSG_CLEAN("line without '='");
	snprintf(line, 80, "x\nbogus=");
	unmask_to(S_APP_KEY, line + 8);
	write_tok_cred(line);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("unknown key");
	CHECK_MSG_CLEAN("unknown key");
	snprintf(line, 80, "x\npassword=");
	unmask_to(S_PASSWORD, line + 11);
	write_tok_cred(line);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("duplicate");
	CHECK_MSG_CLEAN("duplicate key");
	len = unmask_to(S_PASSWORD, line);
	line[len] = '\a';
	line[len + 1] = 0;
	write_tok_cred(line);
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CREDENTIALS);
	CHECK_ERROR_HAS("control character");
	CHECK_MSG_CLEAN("control character");
	wipe_scratch();
	store("tok");
	CHECK_INT(header_status("tok"), 0);

	/* A secret pasted into the configuration, where none belongs. */
	line = scr->text;
	snprintf(line, 40, "password = ");
	unmask_to(S_PASSWORD, line + strlen(line));
	strcat(line, "\n");
	write_config(line);
	wipe_scratch();
	CHECK_INT(header_status("tok"), UCAASAUTH_E_CONFIG);
	CHECK_ERROR_HAS("unknown key");
	CHECK_MSG_CLEAN("password in the configuration");
	write_config(NULL);
	CHECK_INT(header_status("tok"), 0);
	free(cred);
}

/* ---- the CLI ---- */

struct run {
	int status;
	char *out, *err; /* wiped and freed by run_free */
	size_t out_len, err_len;
	bool proc_checked, proc_clean; /* its cmdline and environ */
};

static void run_free(struct run *r)
{
	if (r->out)
		sodium_memzero(r->out, r->out_len);
	if (r->err)
		sodium_memzero(r->err, r->err_len);
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* True once pid sleeps in read(0): from /proc/PID/syscall, or where that
 * is not readable (ptrace restrictions), once it has exec()ed and
 * sleeps. */
static bool waits_for_stdin(pid_t pid, const char *own_cmdline)
{
	char path[64], *s, *cmd;
	long nr = -1;
	unsigned long fd = 1;
	bool yes;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	s = read_all(path, NULL);
	if (s && s[0]) {
		yes = sscanf(s, "%ld %lx", &nr, &fd) == 2 && nr == SYS_read &&
		      fd == 0;
		free(s);
		return yes;
	}
	free(s);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	cmd = read_all(path, NULL);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = read_all(path, NULL);
	yes = cmd && s && strcmp(cmd, own_cmdline) != 0 && strchr(s, ')') &&
	      strncmp(strrchr(s, ')'), ") S", 3) == 0;
	free(cmd);
	free(s);
	return yes;
}

/* Its cmdline and environ, once it waits in read(0) for its secrets. */
static void inspect(pid_t pid, struct run *r)
{
	static const char *const files[] = {"cmdline", "environ"};
	char path[64], *own = read_all("/proc/self/cmdline", NULL);
	int64_t deadline = ms_now() + 10000;

	CHECK(own != NULL);
	while (!waits_for_stdin(pid, own) && ms_now() < deadline)
		ms_sleep(5);
	free(own);
	r->proc_checked = ms_now() < deadline;
	r->proc_clean = true;
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		size_t len;
		char *text;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		text = read_all(path, &len);
		r->proc_clean = r->proc_clean && text && len > 0 &&
		                text_copies(text, len, SECRETS, NULL) == 0;
		free(text);
	}
}

static void drain(int fd, char **buf, size_t *len)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n <= 0)
		return;
	*buf = realloc(*buf, *len + (size_t)n + 1);
	if (!*buf)
		test_fail_("out of memory");
	memcpy(*buf + *len, tmp, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = 0;
	sodium_memzero(tmp, sizeof(tmp));
}

/*
 * Runs the CLI with args; with `input` (from scratch), stdin is a pipe
 * held open until the process waits for it, its /proc entries are
 * inspected, then input is written and the pipe closed.
 */
static void run_cli(const char *const *args, const char *input,
                    struct run *r)
{
	int in[2], out[2], err[2], status;
	const char *argv[16];
	size_t n = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	argv[n++] = cli;
	for (; args[n - 1] && n < ARRAY_SIZE(argv) - 1; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	CHECK_INT(pipe2(in, O_CLOEXEC), 0);
	CHECK_INT(pipe2(out, O_CLOEXEC), 0);
	CHECK_INT(pipe2(err, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		execv(cli, (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (input) {
		size_t len = strlen(input);

		inspect(pid, r);
		CHECK_INT(write(in[1], input, len), (long long)len);
	}
	close(in[1]);
	for (int open_fds = 2; open_fds > 0;) {
		struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};

		if (poll(p, 2, 20000) <= 0)
			test_fail_("ucaas-auth %s: no output for 20 s", args[0]);
		open_fds = 0;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0)
				continue;
			if (p[i].revents) {
				size_t before = i ? r->err_len : r->out_len;
				drain(p[i].fd, i ? &r->err : &r->out,
				      i ? &r->err_len : &r->out_len);
				if (before == (i ? r->err_len : r->out_len)) {
					close(p[i].fd);
					if (i)
						err[0] = -1;
					else
						out[0] = -1;
					continue;
				}
			}
			open_fds++;
		}
	}
	CHECK_INT(waitpid(pid, &status, 0), pid);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	if (!r->out)
		r->out = calloc(1, 1);
	if (!r->err)
		r->err = calloc(1, 1);
}

#define CHECK_EXIT(r, want)                                              \
	do {                                                             \
		if ((r)->status != (want))                               \
			fprintf(stderr, "ucaas-auth: exit %d\n%s%s\n",    \
			        (r)->status, (r)->out, (r)->err);        \
		CHECK_INT((r)->status, (want));                          \
	} while (0)

/* Every byte it printed, but the header or token `allowed` stands for. */
static void check_outputs(const struct run *r, unsigned allowed,
                          const char *what)
{
	CHECK_CLEAN(r->out, r->out_len, SECRETS & ~allowed, what);
	CHECK_CLEAN(r->err, r->err_len, SECRETS, what);
}

static void test_cli(void)
{
	char key2[PATH_MAX], *token;
	struct run r;

	if (!cli || access(cli, X_OK) != 0) {
		printf("note: no ucaas-auth given (argv[1]): CLI checks "
		       "skipped\n");
		return;
	}
	snprintf(key2, sizeof(key2), "%s/second.key", dir);

	{
		const char *args[] = {"keygen", "--key-file", key2, NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		learn_key(key2, S_KEY2, -1);
		check_outputs(&r, 0, "keygen");
		run_free(&r);
		/* Refusing to overwrite it, say so without the key. */
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 1);
		check_outputs(&r, 0, "keygen again");
		run_free(&r);
	}

	/* store: the secrets come on stdin, never argv or environ. */
	{
		const char *args[] = {"store", "srv", NULL};
		char *in = scr->text;

		strcpy(in, "app_key=");
		unmask_to(S_APP_KEY, in + strlen(in));
		strcat(in, "\n");
		run_cli(args, in, &r);
		wipe_scratch();
		CHECK_EXIT(&r, 0);
		CHECK(r.proc_checked);
		CHECK(r.proc_clean);
		check_outputs(&r, 0, "store srv");
		run_free(&r);
	}
	{
		const char *args[] = {"store", "tok", NULL};
		char *in = scr->text;

		strcpy(in, "email=" EMAIL "\npassword=");
		unmask_to(S_PASSWORD, in + strlen(in));
		strcat(in, "\n");
		run_cli(args, in, &r);
		wipe_scratch();
		CHECK_EXIT(&r, 0);
		CHECK(r.proc_checked);
		CHECK(r.proc_clean);
		check_outputs(&r, 0, "store tok");
		run_free(&r);
	}
	/* Refused input, a secret in it: never echoed. */
	{
		static const char *const bad[] = {"password=%s\a\n", "%s\n",
		                                  "bogus=%s\n",
		                                  "password=x\npassword=%s\n"};
		const char *args[] = {"store", "tok", NULL};

		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			char *in = scr->text, *pw = in + 2048;
			const char *fmt = bad[i];
			size_t k = 0;

			unmask_to(S_PASSWORD, pw);
			/* bad[i] with %s replaced, without printf's own
			 * buffers seeing the secret. */
			for (const char *f = fmt; *f; f++) {
				if (f[0] == '%' && f[1] == 's') {
					memcpy(in + k, pw, SECRET_LEN);
					k += SECRET_LEN;
					f++;
				} else {
					in[k++] = *f;
				}
			}
			in[k] = 0;
			run_cli(args, in, &r);
			wipe_scratch();
			CHECK_EXIT(&r, 1);
			CHECK(r.proc_clean);
			check_outputs(&r, 0, "store, refused input");
			run_free(&r);
		}
	}

	{
		const char *args[] = {"header", "srv", NULL};
		char *want = scr->text;

		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		/* The Basic header is what `header` is for, and the secrets
		 * the store above wrote. */
		snprintf(want, 64, "Authorization: Basic ");
		unmask_to(S_BASIC, want + strlen(want));
		strcat(want, "\n");
		CHECK(strcmp(r.out, want) == 0);
		wipe_scratch();
		check_outputs(&r, 1u << S_BASIC, "header srv");
		run_free(&r);
	}
	{
		const char *args[] = {"header", "tok", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		CHECK(strncmp(r.out, "Authorization: Token ", 21) == 0);
		check_outputs(&r, 0, "header tok");
		run_free(&r);
	}
	{
		const char *args[] = {"token", "shr", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		check_outputs(&r, 0, "token shr");
		run_free(&r);
	}
	{
		const char *args[] = {"token", "--json", "shr", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		check_outputs(&r, 0, "token --json shr");
		run_free(&r);
	}
	/* status shows the cache, never the token. */
	token = mock_stat_str(&mock, "current_token");
	CHECK(token != NULL && strlen(token) >= WIN);
	mask_from(S_TOKEN_A, token, strlen(token));
	sodium_memzero(token, strlen(token));
	free(token);
	{
		const char *args[] = {"status", "shr", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		check_outputs(&r, 0, "status shr");
		CHECK_CLEAN(r.out, r.out_len, 1u << S_TOKEN_A, "status shr");
		run_free(&r);
	}
	{
		const char *args[] = {"status", "srv", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		check_outputs(&r, 0, "status srv");
		run_free(&r);
	}
	{
		const char *args[] = {"flush", "shr", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		check_outputs(&r, 0, "flush shr");
		run_free(&r);
	}
	/* Failures: refused, then backing off (status shows the error). */
	CHECK_INT(mock_config(&mock, "{\"password\": \"not-the-stored-one\"}"),
	          0);
	{
		const char *args[] = {"header", "shr", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 1);
		CHECK(strstr(r.err, "refused") != NULL);
		check_outputs(&r, 0, "header shr, denied");
		run_free(&r);
	}
	{
		const char *args[] = {"status", "shr", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 0);
		CHECK(strstr(r.out, "last error") != NULL);
		check_outputs(&r, 0, "status shr, after a refusal");
		run_free(&r);
	}
	{
		const char *args[] = {"token", "down", NULL};
		run_cli(args, NULL, &r);
		CHECK_EXIT(&r, 1);
		check_outputs(&r, 0, "token down");
		run_free(&r);
	}
	CHECK_INT(mock_reset(&mock), 0);
	sec[S_TOKEN_A].len = 0;
	new_runtime("run3");
}

/* ---- core dumps ---- */

/* The markers, made from the nonce on the child's command line so that
 * neither is in argv, the binary, or the parent's memory. */
static void markers(const char *nonce, char *plain_mark, char *guard_mark)
{
	size_t n = strlen(nonce);

	for (size_t i = 0; i < n; i++) {
		plain_mark[i] = (char)('G' + (nonce[i] & 15));
		guard_mark[i] = (char)('g' + (nonce[i] & 15));
	}
	plain_mark[n] = guard_mark[n] = 0;
}

/* The process gcore looks at: a Basic handle, two token handles
 * (process cache and shared cache), every header got and the caller's
 * copies wiped, and two markers. Stops after each login so that the
 * parent can learn the token the mock issued. */
/* Escape, so that no compiler drops them. */
static char *volatile kept_marker, *volatile guarded_marker;

static int core_child(const char *nonce)
{
	struct ucaasauth *srv, *tok, *shr;
	char buf[4096], plain_mark[64], *guard_mark;
	size_t len;

	if (strlen(nonce) != 32)
		return 2;
	/* Yama (ptrace_scope 1) lets only ancestors attach: gdb is a child
	 * of our parent, not an ancestor of ours. Fails harmlessly
	 * without Yama. */
	prctl(PR_SET_PTRACER, (unsigned long)getppid(), 0, 0, 0);
	guard_mark = sodium_malloc(64);
	if (!guard_mark)
		return 2;
	markers(nonce, plain_mark, guard_mark);
	guarded_marker = guard_mark;
	kept_marker = strdup(plain_mark);
	sodium_memzero(plain_mark, sizeof(plain_mark));
	if (!kept_marker || ucaasauth_open(&srv, "srv", 0) < 0 ||
	    ucaasauth_header(srv, buf, sizeof(buf), &len) < 0)
		return 3;
	if (ucaasauth_open(&tok, "tok", 0) < 0 ||
	    ucaasauth_header(tok, buf, sizeof(buf), &len) < 0)
		return 4;
	sodium_memzero(buf, sizeof(buf));
	raise(SIGSTOP);
	if (ucaasauth_open(&shr, "shr", 0) < 0 ||
	    ucaasauth_header(shr, buf, sizeof(buf), &len) < 0)
		return 5;
	sodium_memzero(buf, sizeof(buf));
	raise(SIGSTOP);
	for (;;)
		pause();
}

static bool have_gcore(void)
{
	return system("command -v gcore >/dev/null 2>&1 && "
	              "command -v gdb >/dev/null 2>&1") == 0;
}

static int wait_stopped(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, WUNTRACED) != pid)
		return -1;
	if (!WIFSTOPPED(status)) {
		fprintf(stderr, "core child: %s %d\n",
		        WIFEXITED(status) ? "exit" : "signal",
		        WIFEXITED(status) ? WEXITSTATUS(status)
		                          : WTERMSIG(status));
		return -1;
	}
	return 0;
}

static void learn_token(int id)
{
	char *token = mock_stat_str(&mock, "current_token");

	CHECK(token != NULL && strlen(token) >= WIN &&
	      strlen(token) <= NEEDLE_MAX);
	mask_from(id, token, strlen(token));
	sodium_memzero(token, strlen(token));
	free(token);
}

/* gcore -o prefix pid, bounded; 0, or -1 with its log on stderr. */
static int gcore(pid_t pid, const char *prefix, const char *log)
{
	char pidtext[16];
	int64_t deadline = ms_now() + 30000;
	int status = 0;
	pid_t g;

	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	fflush(NULL);
	g = fork();
	if (g < 0)
		return -1;
	if (g == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execlp("gcore", "gcore", "-o", prefix, pidtext, (char *)NULL);
		_exit(127);
	}
	while (waitpid(g, &status, WNOHANG) == 0) {
		if (ms_now() > deadline) {
			kill(g, SIGKILL);
			waitpid(g, &status, 0);
			fprintf(stderr, "gcore took more than 30 s\n");
			return -1;
		}
		ms_sleep(20);
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static struct scan core_scan, regs_scan;
static bool core_taken;

/* Register state: what a thread had in its registers when it stopped. */
static bool register_note(uint32_t type)
{
	return type == NT_PRSTATUS || type == NT_PRFPREG ||
	       type == NT_PRXFPREG || type == NT_X86_XSTATE;
}

/*
 * Searches a core file by its program headers: every PT_LOAD segment (the
 * process's memory) and every note but the register ones go to core_scan,
 * which must hold no secret; the register notes go to regs_scan, which is
 * only reported. Which vector registers still hold fragments of the last
 * strings copied depends on the CPU and on the string functions glibc
 * picked for it: see docs/security.md, "Core dumps".
 */
static void scan_core(const uint8_t *core, size_t size, struct needles *nd)
{
	const Elf64_Ehdr *eh = (const void *)core;

	CHECK(size >= sizeof(*eh) && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0);
	CHECK_INT(eh->e_ident[EI_CLASS], ELFCLASS64);
	CHECK(eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) <= size);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph =
			(const void *)(core + eh->e_phoff + i * sizeof(*ph));
		uint64_t off = ph->p_offset, end = off + ph->p_filesz;

		CHECK(end >= off && end <= size);
		if (ph->p_type == PT_LOAD) {
			search(nd, core + off, end - off, (uintptr_t)off,
			       "core (memory)", &core_scan);
			core_scan.bytes += end - off;
			continue;
		}
		if (ph->p_type != PT_NOTE)
			continue;
		while (off + sizeof(Elf64_Nhdr) <= end) {
			const Elf64_Nhdr *nh = (const void *)(core + off);
			uint64_t desc = off + sizeof(*nh) +
			                ((nh->n_namesz + 3) & ~3u);
			uint64_t next = desc + ((nh->n_descsz + 3) & ~3u);

			CHECK(next <= end);
			search(nd, core + off, desc - off, (uintptr_t)off,
			       "core (note name)", &core_scan);
			search(nd, core + desc, nh->n_descsz, (uintptr_t)desc,
			       register_note(nh->n_type) ? "core (registers)"
			                                 : "core (note)",
			       register_note(nh->n_type) ? &regs_scan
			                                 : &core_scan);
			off = next;
		}
	}
}

static void test_core(const char *self)
{
	char nonce[33], plain_mark[64], guard_mark[64], prefix[PATH_MAX],
		core[PATH_MAX + 16], log[PATH_MAX];
	uint8_t rnd[16];
	struct needles nd;
	struct stat st;
	uint8_t *map;
	int fd;
	pid_t pid;

	if (!have_gcore()) {
		printf("note: gdb (gcore) is not installed: core dump checks "
		       "skipped (tools/install-deps should install gdb)\n");
		return;
	}
	if (TEST_ASAN) {
		/* gcore of an ASan process (terabytes of reserved shadow
		 * memory) did not finish within a minute when tried; the
		 * plain build runs these checks. */
		printf("note: AddressSanitizer build: core dump checks "
		       "skipped (gcore of an ASan process does not finish "
		       "within a minute); the plain build runs them\n");
		return;
	}
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(nonce, sizeof(nonce), rnd, sizeof(rnd));
	markers(nonce, plain_mark, guard_mark);
	mask_from(S_PLAIN_MARK, plain_mark, strlen(plain_mark));
	mask_from(S_GUARD_MARK, guard_mark, strlen(guard_mark));

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* A new image: nothing of this test's memory in its core. */
		execl(self, self, "--core-child", nonce, (char *)NULL);
		_exit(127);
	}
	CHECK_INT(wait_stopped(pid), 0);
	learn_token(S_TOKEN_A);
	CHECK_INT(kill(pid, SIGCONT), 0);
	CHECK_INT(wait_stopped(pid), 0);
	learn_token(S_TOKEN_B);

	snprintf(prefix, sizeof(prefix), "%s/core", dir);
	snprintf(core, sizeof(core), "%s.%d", prefix, (int)pid);
	snprintf(log, sizeof(log), "%s/gcore.log", dir);
	if (gcore(pid, prefix, log) < 0) {
		char *text = read_all(log, NULL);

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (text && strstr(text, "ptrace: Operation not permitted")) {
			printf("note: ptrace is not permitted here: core dump "
			       "checks skipped\n");
			free(text);
			return;
		}
		fprintf(stderr, "gcore failed:\n%s\n", text ? text : "");
		free(text);
		CHECK(!"gcore failed");
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	fd = open(core, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_INT(fstat(fd, &st), 0);
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(map != MAP_FAILED);
	close(fd);
	memset(&core_scan, 0, sizeof(core_scan));
	memset(&regs_scan, 0, sizeof(regs_scan));
	arm(SECRETS | 1u << S_TOKEN_A | 1u << S_TOKEN_B |
	            1u << S_PLAIN_MARK | 1u << S_GUARD_MARK,
	    &nd);
	scan_core(map, (size_t)st.st_size, &nd);
	munmap(map, (size_t)st.st_size);
	wipe_scratch();
	unlink(core);
	core_taken = true;
	if (regs_scan.f[S_TOKEN_A].copies || regs_scan.f[S_TOKEN_B].copies ||
	    regs_scan.f[S_PASSWORD].copies)
		printf("note: the saved registers hold fragments of the last "
		       "strings copied (not a failure, see docs/security.md):\n");
	print_found("core registers", &regs_scan);
	print_found("core dump", &core_scan);

	/* The core is real: it holds what the child kept in plain memory,
	 * and gdb left out what was marked MADV_DONTDUMP. */
	CHECK(core_scan.bytes > 100000);
	CHECK(core_scan.f[S_PLAIN_MARK].copies >= 1);
	CHECK_INT(core_scan.f[S_GUARD_MARK].copies, 0);
	CHECK_INT(core_scan.f[S_APP_KEY].copies, 0);
	CHECK_INT(core_scan.f[S_BASIC].copies, 0);
	CHECK_INT(core_scan.f[S_MASTER_KEY].copies, 0);
	CHECK_INT(core_scan.f[S_MASTER_HEX].copies, 0);
	/* The password and the tokens: checked last, in main(). */
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0)
		return 1;
	if (argc == 3 && strcmp(argv[1], "--core-child") == 0)
		return core_child(argv[2]);
	/* meson sets MALLOC_PERTURB_, with which glibc fills some freed
	 * blocks: it would wipe what the library left behind, and hide it.
	 * malloc reads it at start-up: run again without it. */
	if (getenv("MALLOC_PERTURB_")) {
		unsetenv("MALLOC_PERTURB_");
		execv("/proc/self/exe", argv);
		return 1;
	}
	main_pid = getpid();
	cli = argc > 1 ? argv[1] : NULL;
	scr = mmap(NULL, sizeof(*scr), PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(scr != MAP_FAILED);
	atexit(teardown);
	setup();

	test_memory();
	test_messages();
	test_cli();
	test_core("/proc/self/exe");
	teardown();
	/* What test.h shows next to a failed check below. */
	fail(UCAASAUTH_E_INVALID, "(none: the copies a failed check counts "
	                          "are listed above)");
	/*
	 * Regressions of two leaks found and fixed in login.c:
	 * - libcurl copies the request body (the password) into a buffer it
	 *   frees unwiped: the library now starts libcurl with allocators
	 *   that wipe before freeing (curl_start());
	 * - json-c's tokener collects the token in a printbuf it frees
	 *   unwiped: login_parse() wipes it first.
	 */
	CHECK_INT(login_run.closed_scan.f[S_PASSWORD].copies, 0);
	CHECK_INT(denied_run.closed_scan.f[S_PASSWORD].copies, 0);
	if (core_taken) {
		CHECK_INT(core_scan.f[S_PASSWORD].copies, 0);
		CHECK_INT(core_scan.f[S_TOKEN_A].copies, 0);
		CHECK_INT(core_scan.f[S_TOKEN_B].copies, 0);
	}
	TEST_DONE();
}
