#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "hygiene.h"
#include "internal.h"

/* Only sanitizer shadow memory is this large (ASan reserves terabytes);
 * it holds no application bytes. */
#define HUGE_MAPPING (64ull << 30)

const char *const id_names[N_IDS] = {
	"App Key",
	"password",
	"master key",
	"master key (hex)",
	"Basic header payload",
	"keygen's key",
	"token A",
	"token B",
	"plain marker",
	"guarded marker",
};

/* The secrets: data ^ mask, never the plain bytes. */
static struct masked {
	size_t len; /* 0: not known yet */
	uint8_t mask[NEEDLE_MAX];
	uint8_t data[NEEDLE_MAX];
} sec[N_IDS];

struct scratch *scr;
struct fixture world;
static pid_t main_pid;
static int down_port;

/* ---- masked secrets ---- */

void mask_from(int id, const void *plain, size_t len)
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
		sec[id].data[i] =
			(uint8_t)abc[randombytes_uniform(sizeof(abc) - 1)] ^
			sec[id].mask[i];
	sec[id].len = SECRET_LEN;
}

size_t unmask_to(int id, void *dst)
{
	uint8_t *d = dst;

	for (size_t i = 0; i < sec[id].len; i++)
		d[i] = sec[id].data[i] ^ sec[id].mask[i];
	d[sec[id].len] = 0;
	return sec[id].len;
}

size_t unmask_fmt(char *dst, const char *fmt, int id)
{
	size_t k = 0;

	for (const char *f = fmt; *f; f++) {
		if (f[0] == '%' && f[1] == 's') {
			k += unmask_to(id, dst + k);
			f++;
		} else {
			dst[k++] = *f;
		}
	}
	dst[k] = 0;
	return k;
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

void wipe_scratch(void)
{
	sodium_memzero(scr, sizeof(*scr));
}

long learn_token(int id)
{
	char *token = mock_stat_str(&world.mock, "current_token");
	size_t len;

	if (!token)
		return -1;
	len = strlen(token);
	if (len >= WIN && len <= NEEDLE_MAX)
		mask_from(id, token, len);
	sodium_memzero(token, len);
	free(token);
	return (long)len;
}

long learn_key(const char *path, int id, int hex_id)
{
	uint8_t *raw = scr->needle[id];
	char *hex = (char *)scr->needle[N_IDS - 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	/* read(2), not stdio: a FILE would keep a copy in its buffer. */
	n = read(fd, raw, MASTER_KEY_BYTES);
	close(fd);
	if (n == MASTER_KEY_BYTES) {
		mask_from(id, raw, MASTER_KEY_BYTES);
		if (hex_id >= 0) {
			sodium_bin2hex(hex, 2 * MASTER_KEY_BYTES + 1, raw,
			               MASTER_KEY_BYTES);
			mask_from(hex_id, hex, 2 * MASTER_KEY_BYTES);
		}
	}
	wipe_scratch();
	return (long)n;
}

void arm(unsigned ids, struct needles *nd)
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

void search(const struct needles *nd, const uint8_t *buf, size_t len,
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

/* Only pages that are present or swapped (pagemap) are read, since one
 * never touched holds nothing, and faulting in the terabytes a sanitizer
 * reserves would take hours. */
void scan_memory(unsigned ids, struct scan *out)
{
	uintptr_t xs = (uintptr_t)scr, xe = xs + sizeof(*scr);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct needles nd;
	char *maps, *line, *save = NULL;
	int mem, pm;

	memset(out, 0, sizeof(*out));
	maps = read_text("/proc/self/maps", NULL);
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
				r = pread(pm, ent, n * 8,
				          (off_t)(a / page * 8));
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
				       !(a + j * page >= xs &&
				         a + j * page < xe))
					j++;
				if (j > i)
					scan_run(mem, &nd, rs, a + j * page,
					         map, out);
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

unsigned text_copies(const void *text, size_t len, unsigned ids, int *ret_id)
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

void print_found(const char *when, const struct scan *s)
{
	for (int id = 0; id < N_IDS; id++) {
		const struct copy_found *f = &s->f[id];
		const char *before = f->before;

		if (!f->copies)
			continue;
		if (text_copies(before, strlen(before), SECRETS, NULL))
			before = "(withheld: it holds a secret)";
		fprintf(stderr,
		        "%s: %u cop%s of the %s, first at %#lx in %s, "
		        "after \"%s\"\n",
		        when, f->copies, f->copies == 1 ? "y" : "ies",
		        id_names[id], (unsigned long)f->at[0], f->map, before);
	}
}

unsigned copies_within(const struct scan *s, int id, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	size_t n = s->f[id].copies < MAX_COPIES ? s->f[id].copies : MAX_COPIES;
	unsigned k = 0;

	for (size_t i = 0; i < n; i++)
		if (s->f[id].at[i] >= a && s->f[id].at[i] < a + len)
			k++;
	return k;
}

void vmflags_of(const void *p, char *buf, size_t size)
{
	char *smaps = read_text("/proc/self/smaps", NULL), *line, *save = NULL;
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

bool proc_clean(pid_t pid)
{
	static const char *const files[] = {"cmdline", "environ"};
	bool clean = true;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char path[64], *text;
		size_t len = 0;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		text = read_text(path, &len);
		clean = clean && text && len > 0 &&
		        text_copies(text, len, SECRETS, NULL) == 0;
		free(text);
	}
	return clean;
}

/* ---- the world ---- */

static void teardown(void)
{
	/* Not in the children a suite forks, which exit too. */
	if (getpid() == main_pid)
		fixture_stop(&world);
}

void world_config(const char *extra)
{
	const char *base = world.mock.base;

	conf_reset();
	conf_add("default_profile = tok\n"
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
	         base, base, base, down_port, extra ? extra : "");
	conf_write(&world, 0600);
}

/* Unmasked into guarded memory only. */
void world_store(const char *profile, int id)
{
	struct secrets *s = secrets_new();

	if (!s)
		fatal("out of memory");
	if (id == S_APP_KEY) {
		unmask_to(id, s->app_key);
	} else {
		snprintf(s->email, sizeof(s->email), "%s", EMAIL);
		unmask_to(id, s->password);
	}
	fixture_store_secrets(profile, s);
	secrets_free(s);
}

void world_runtime(const char *name)
{
	snprintf(world.runtime, sizeof(world.runtime), "%s/%s", world.dir,
	         name);
	setenv("UCAASAUTH_RUNTIME_DIR", world.runtime, 1);
}

static int closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		fatal("cannot find a free port");
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

void hygiene_start(char **argv)
{
	char *pair, *b64;
	size_t n;
	long got;

	if (sodium_init() < 0)
		fatal("sodium_init");
	if (getenv("MALLOC_PERTURB_")) {
		/* malloc reads it at start-up: run again without it. */
		unsetenv("MALLOC_PERTURB_");
		execv("/proc/self/exe", argv);
		fatal("cannot run again without MALLOC_PERTURB_");
	}
	main_pid = getpid();
	scr = mmap(NULL, sizeof(*scr), PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scr == MAP_FAILED)
		fatal("mmap");
	atexit(teardown);
	umask(077);
	/* As in ucaas-auth and ucaas-authd, the library starts libcurl
	 * (the mock's client would otherwise, without wiping frees). */
	if (login_start() < 0)
		fatal("login_start");
	fixture_start_empty(&world);
	setenv("no_proxy", "*", 1);

	make_secret(S_APP_KEY);
	make_secret(S_PASSWORD);
	/* The Basic header's payload, base64(APP_ID:APP_KEY). */
	pair = scr->text;
	b64 = (char *)scr->needle[S_BASIC];
	n = (size_t)snprintf(pair, 64, "%s:", APP_ID);
	n += unmask_to(S_APP_KEY, pair + n);
	sodium_bin2base64(b64, NEEDLE_MAX, (const uint8_t *)pair, n,
	                  sodium_base64_VARIANT_ORIGINAL);
	mask_from(S_BASIC, b64, strlen(b64));
	wipe_scratch();

	/* The mock learns them from its argv: its process, not ours. */
	if (mock_start(&world.mock, APP_ID, plain(S_APP_KEY), EMAIL,
	               plain(S_PASSWORD), 900, NULL) < 0)
		fatal("cannot start the mock server");
	world.has_mock = true;
	wipe_scratch();
	down_port = closed_port();
	world_config(NULL);
	if (key_generate(world.key) < 0)
		fatal("cannot make a key");
	got = learn_key(world.key, S_MASTER_KEY, S_MASTER_HEX);
	if (got != MASTER_KEY_BYTES)
		fatal("%s: %ld bytes read, not %d", world.key, got,
		      MASTER_KEY_BYTES);
	world_store("srv", S_APP_KEY);
	world_store("tok", S_PASSWORD);
	world_store("shr", S_PASSWORD);
	world_store("down", S_PASSWORD);
}

void hygiene_stop(void)
{
	teardown();
	/* What test.h shows next to a failed check after this. */
	fail(UCAASAUTH_E_INVALID, "(none: the copies a failed check counts "
	                          "are listed above)");
}
