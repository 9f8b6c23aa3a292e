/* Who may use a served profile: allow_users and allow_groups. */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "authd.h"

/* Names or numbers, commas or spaces. */
static int resolve_ids(const char *list, bool users, unsigned *out, size_t *n,
                       const char *profile)
{
	char word[64];

	*n = 0;
	while (list && *list) {
		size_t len;
		char *end;
		unsigned long id;

		list += strspn(list, ", \t");
		len = strcspn(list, ", \t");
		if (len == 0)
			break;
		snprintf(word, sizeof(word), "%.*s", (int)len, list);
		list += len;
		id = strtoul(word, &end, 10);
		if (*end) {
			struct passwd *pw = users ? getpwnam(word) : NULL;
			struct group *gr = users ? NULL : getgrnam(word);
			if (!pw && !gr) {
				log_msg(LOG_ERR,
				        "profile '%s': no %s named '%s'",
				        profile, users ? "user" : "group",
				        word);
				return -1;
			}
			id = pw ? pw->pw_uid : gr->gr_gid;
		}
		if (*n == MAX_IDS) {
			log_msg(LOG_ERR, "profile '%s': more than %d ids",
			        profile, MAX_IDS);
			return -1;
		}
		out[(*n)++] = (unsigned)id;
	}
	return 0;
}

int allow_resolve(const struct profile *p, struct allow *ret)
{
	unsigned uids[MAX_IDS], gids[MAX_IDS];
	size_t nu, ng;

	if (resolve_ids(p->allow_users, true, uids, &nu, p->name) < 0 ||
	    resolve_ids(p->allow_groups, false, gids, &ng, p->name) < 0)
		return -1;
	for (size_t i = 0; i < nu; i++)
		ret->uids[i] = uids[i];
	for (size_t i = 0; i < ng; i++)
		ret->gids[i] = gids[i];
	ret->n_uids = nu;
	ret->n_gids = ng;
	return 0;
}

bool allow_peer(const struct allow *a, const struct peer *peer)
{
	if (peer->uid == geteuid())
		return true;
	for (size_t i = 0; i < a->n_uids; i++)
		if (peer->uid == a->uids[i])
			return true;
	for (size_t i = 0; i < a->n_gids; i++) {
		if (peer->gid == a->gids[i])
			return true;
		for (int j = 0; j < peer->n_groups; j++)
			if (peer->groups[j] == a->gids[i])
				return true;
	}
	return false;
}

static bool has(const unsigned *ids, size_t n, unsigned id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

bool allow_narrower(const struct allow *before, const struct allow *now)
{
	for (size_t i = 0; i < before->n_uids; i++)
		if (!has(now->uids, now->n_uids, before->uids[i]))
			return true;
	for (size_t i = 0; i < before->n_gids; i++)
		if (!has(now->gids, now->n_gids, before->gids[i]))
			return true;
	return false;
}
