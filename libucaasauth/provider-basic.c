/* The basic provider: "Authorization: Basic base64(APP_ID:APP_KEY)". */
#include <sodium.h>

#include "stack.h"

#define BASIC_PREFIX "Authorization: Basic "

int basic_header(const char *app_id, const char *app_key, char **ret,
                 size_t *ret_len)
{
	size_t id_len = strlen(app_id), key_len = strlen(app_key);
	size_t pair_len = id_len + 1 + key_len, prefix = strlen(BASIC_PREFIX);
	size_t b64 = sodium_base64_ENCODED_LEN(pair_len,
	                                       sodium_base64_VARIANT_ORIGINAL);
	char *pair, *header;

	/* Both the joined pair and the header are as secret as the key. */
	pair = sodium_malloc(pair_len);
	header = sodium_malloc(prefix + b64);
	if (!pair || !header) {
		sodium_free(pair);
		sodium_free(header);
		return fail(UCAASAUTH_E_NOMEM, "out of memory");
	}
	memcpy(pair, app_id, id_len);
	pair[id_len] = ':';
	memcpy(pair + id_len + 1, app_key, key_len);
	memcpy(header, BASIC_PREFIX, prefix);
	sodium_bin2base64(header + prefix, b64, (const unsigned char *)pair,
	                  pair_len, sodium_base64_VARIANT_ORIGINAL);
	sodium_free(pair);
	*ret = header;
	*ret_len = strlen(header);
	return 0;
}

static int basic_open(void **ret_state,
                      const struct ucaasauth_provider_args *args)
{
	struct ucaasauth *ua = provider_handle(args);
	size_t len;
	char *header;
	int r;

	r = basic_header(args->app_id, ua->secrets->app_key, &header, &len);
	if (r == 0)
		*ret_state = header;
	return r;
}

static int basic_fetch(void *state, char *buf, size_t size, size_t *ret_len,
                       long *ret_lifetime)
{
	*ret_lifetime = 0;
	return copy_out(state, strlen(state), buf, size, ret_len);
}

static void basic_close(void *state)
{
	if (state)
		sodium_free(state);
}

const struct ucaasauth_provider basic_provider = {
	.abi_version = UCAASAUTH_PROVIDER_ABI,
	.name = "basic",
	.open = basic_open,
	.fetch = basic_fetch,
	.close = basic_close,
};
