/*
 * Which segment a handle reads, and its moves: off a segment whose lock or
 * layout is broken, or that was retired, to the one that replaces it. Used
 * by the hot path's slow side (header.c) and the daemon client, below
 * both, so that neither calls back up into handle.c.
 */
#include <stdlib.h>

#include "cache.h"

int handle_retire(struct ucaasauth *ua, const struct segment *old)
{
	const struct segment **v =
		realloc(ua->retired, (ua->n_retired + 1) * sizeof(*v));

	if (!v)
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	v[ua->n_retired++] = old;
	ua->retired = v;
	return 0;
}

int handle_move(struct ucaasauth *ua, struct segment *broken)
{
	struct segment *seg = NULL;
	int r = 0;

	pthread_mutex_lock(&ua->lock);
	if (ua->seg != broken)
		goto out; /* another thread moved already */
	if (ua->profile->cache == CACHE_SHARED)
		r = cache_rebuild(ua->identity, broken, &seg);
	else
		r = cache_open(CACHE_PROCESS, NULL, &seg);
	if (r == 0 && (r = handle_retire(ua, broken)) < 0)
		cache_close(seg);
	if (r < 0)
		goto out;
	ua->seg = seg;
	atomic_store(&ua->view, seg);
out:
	pthread_mutex_unlock(&ua->lock);
	return r;
}
