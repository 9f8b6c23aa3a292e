/*
 * Secret hygiene: the scanner and the world the test-hygiene-* programs
 * share, one program per suite (memory, messages, cli, core), so that the
 * first failure of one does not hide the others.
 *
 * The tests must not hold the secrets they look for, or they would find
 * themselves: the secrets are random, kept XOR-masked, and unmasked only
 * into one scratch mapping that every scan skips and that is wiped after
 * each use.
 *
 * Setup failures end the test (exit 1) with a message, as the fixture's
 * do; what a suite asserts on is returned, for it to CHECK.
 */
#ifndef UCAASAUTH_TESTS_HYGIENE_H
#define UCAASAUTH_TESTS_HYGIENE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixture.h"

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

enum {
	S_APP_KEY,
	S_PASSWORD,
	S_MASTER_KEY,
	S_MASTER_HEX,
	S_BASIC,   /* base64(APP_ID:APP_KEY), the Basic header's payload */
	S_KEY2,    /* the key made by `ucaas-auth keygen` */
	S_TOKEN_A, /* tokens the core-dump child holds */
	S_TOKEN_B,
	S_PLAIN_MARK, /* strdup()ed by that child: must be in its core */
	S_GUARD_MARK, /* sodium_malloc()ed by it: must not */
	N_IDS
};

#define SECRETS                                                                \
	(1u << S_APP_KEY | 1u << S_PASSWORD | 1u << S_MASTER_KEY |             \
	 1u << S_MASTER_HEX | 1u << S_BASIC | 1u << S_KEY2)

extern const char *const id_names[N_IDS];

/* The one place plain secrets are written to, skipped by every scan. */
struct scratch {
	uint8_t needle[N_IDS][NEEDLE_MAX];
	char text[4096];
	uint8_t chunk[CHUNK + WIN];
};
extern struct scratch *scr;

struct copy_found {
	unsigned copies;          /* distinct copies */
	uintptr_t at[MAX_COPIES]; /* where each starts */
	char map[96];             /* the mapping of the first */
	char before[64];          /* what precedes the first, printable */
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

/* ---- masked secrets ---- */

/* Keeps plain[0..len) masked as secret id (WIN <= len <= NEEDLE_MAX). */
void mask_from(int id, const void *plain, size_t len);
/* Writes the plain secret to dst (NUL-terminated): scratch or guarded
 * memory only. Returns its length. */
size_t unmask_to(int id, void *dst);
/* Writes fmt to dst (scratch or guarded memory only), each %s in it
 * replaced by secret id without printf's buffers seeing it. Returns the
 * length. */
size_t unmask_fmt(char *dst, const char *fmt, int id);
/* Everything in the scratch, the text being built included. */
void wipe_scratch(void);
/*
 * The mock's current token kept masked as secret id: its length, or -1
 * when the mock has none. Outside WIN..NEEDLE_MAX it is not kept, for the
 * caller's check to say so.
 */
long learn_token(int id);
/* A key file's 32 bytes kept masked as id, and in hex as hex_id (unless
 * negative): the bytes read, or -1 when it cannot be opened. */
long learn_key(const char *path, int id, int hex_id);

/* ---- searching ---- */

/* Unmasks every known secret in `ids` into scratch and lists its
 * windows. The caller wipes the scratch when done. */
void arm(unsigned ids, struct needles *nd);
/* Searches buf[0..len), which lies at address (or file offset) base of
 * `map`, adding what it finds to out. */
void search(const struct needles *nd, const uint8_t *buf, size_t len,
            uintptr_t base, const char *map, struct scan *out);
/* Every readable mapping of this process, but the scratch and sanitizer
 * shadow. */
void scan_memory(unsigned ids, struct scan *out);
/* Copies of the secrets in ids in text (a message, an output, argv); the
 * last secret found in *ret_id unless NULL. */
unsigned text_copies(const void *text, size_t len, unsigned ids, int *ret_id);
/* Copies of id that a scan found within [p, p + len). */
unsigned copies_within(const struct scan *s, int id, const void *p, size_t len);
/* Where the copies are, and what precedes the first (unless that holds
 * a secret too), on stderr. */
void print_found(const char *when, const struct scan *s);
/* The VmFlags of the mapping holding p ("rd wr mr mw me dd lo ..."). */
void vmflags_of(const void *p, char *buf, size_t size);
/* Its argv and environment can be read and hold no secret. */
bool proc_clean(pid_t pid);

/* The check every message and output goes through (for programs that
 * include test.h). */
#define CHECK_CLEAN(text, len, ids, what)                                      \
	do {                                                                   \
		int id_ = -1;                                                  \
		unsigned n_ = text_copies((text), (len), (ids), &id_);         \
		if (n_)                                                        \
			fprintf(stderr, "%s holds the %s\n", (what),           \
			        id_names[id_]);                                \
		CHECK_INT(n_, 0);                                              \
	} while (0)

/* Learns the mock's current token as secret id: there must be one. */
#define CHECK_LEARN_TOKEN(id)                                                  \
	do {                                                                   \
		long n_ = learn_token(id);                                     \
		CHECK_MSG(n_ >= WIN && n_ <= NEEDLE_MAX,                       \
		          "the mock's token: %ld bytes", n_);                  \
	} while (0)

/* ---- the world ---- */

/*
 * The fixture's directory and configuration, the mock (which learns the
 * secrets from its argv: its process, not ours) and a master key, with
 * profiles srv (basic), tok (login, process cache), shr (login, shared
 * cache) and down (login, to a port nothing listens on), their secrets
 * stored.
 */
extern struct fixture world;

/*
 * Builds the world (run again without MALLOC_PERTURB_ first, from argv:
 * with it glibc fills some freed blocks, which would wipe what the
 * library left behind and hide it), and removes it at exit.
 */
void hygiene_start(char **argv);
/* Removes the world; the last error is a note, for the checks after. */
void hygiene_stop(void);
/* Rewrites the configuration, with `extra` lines after the profiles. */
void world_config(const char *extra);
/* Stores secret id for a profile, straight from its masked copy: as the
 * App Key (S_APP_KEY), or else as the password, with EMAIL. */
void world_store(const char *profile, int id);
/* A new cache directory: a shared cache left backing off by a refused
 * login does not hold up what follows. */
void world_runtime(const char *name);

#endif
