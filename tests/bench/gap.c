/*
 * Where the product's hot path spends what the floor does not: the
 * product's own pieces, called in-process from the static library the
 * product is built from, so that each step between the floor and
 * ucaasauth_header() through the PLT can be timed on its own.
 *
 * This is the one file of the benchmark that knows the segment's layout
 * (libucaasauth/cache.h): when the hot path changes, this follows it.
 */
#include "cache.h"
#include "gap.h"

const void *gap_segment(struct ucaasauth *ua)
{
	return atomic_load_explicit(&ua->view, memory_order_acquire);
}

/* The hot path's core, and nothing else: the product's seqlock read of
 * its segment (all the fields it loads, the word-by-word copy, the checks
 * of its private copy), its coarse clock in milliseconds, the freshness
 * checks ucaasauth_header() makes (libucaasauth/header.c), the NUL. No
 * entry checks, no Basic branch, no handle: the segment is passed in. */
__attribute__((noinline)) size_t gap_segment_read(const void *seg, char *buf,
                                                  size_t size)
{
	struct snapshot snap;
	int64_t now;

	if (!segment_read(seg, buf, size, &snap) || snap.len == 0)
		return 0;
	now = now_ms();
	if (snap.issued_ms > now || now >= snap.fresh_ms || snap.len >= size)
		return 0;
	buf[snap.len] = 0;
	return snap.len;
}
