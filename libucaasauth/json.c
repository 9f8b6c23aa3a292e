/*
 * JSON whose strings may be secret: a login answer, an exec command's
 * output. Parsed and freed here and nowhere else, so that json-c's
 * failures map to statuses in one place, and every string json-c made of
 * the text is wiped before it is freed.
 */
#include <errno.h>

#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <sodium.h>

#include "internal.h"

/* json-c 0.16 has no json_tokener_error_memory: an allocation that fails
 * inside its parser ends the parse as if the text stopped there, or drops
 * a piece of a string, with no error. malloc's ENOMEM is the only trace,
 * so errno is cleared before parsing. */
static bool out_of_memory(struct json_tokener *tok)
{
#if JSON_C_VERSION_NUM >= (17 << 8)
	if (json_tokener_get_error(tok) == json_tokener_error_memory)
		return true;
#endif
	return errno == ENOMEM;
}

/* Every string json-c made of the text: string values, member names, and
 * the digits it keeps of a decimal number to print it back. */
static void wipe_value(struct json_object *v, int depth)
{
	char *digits;

	if (!v || depth > JSON_TOKENER_DEFAULT_DEPTH + 1)
		return;
	switch (json_object_get_type(v)) {
	case json_type_string:
		sodium_memzero((char *)json_object_get_string(v),
		               (size_t)json_object_get_string_len(v));
		break;
	case json_type_double:
		digits = json_object_get_userdata(v);
		if (digits)
			sodium_memzero(digits, strlen(digits));
		break;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			wipe_value(json_object_array_get_idx(v, i), depth + 1);
		break;
	case json_type_object: {
		/* Only freed afterwards: lh_table frees its names without
		 * hashing them again. */
		json_object_object_foreach(v, name, member) {
			wipe_value(member, depth + 1);
			sodium_memzero(name, strlen(name));
		}
		break;
	}
	default: /* booleans, integers, null: nothing kept as text */
		break;
	}
}

/* What the tokener still holds after a parse (after a failed one,
 * partial objects and a member name; after any, the buffer in which it
 * collected each string), which json_tokener_free() frees unwiped. */
static void tokener_free(struct json_tokener *tok)
{
	for (int i = 0; i <= tok->depth && i < tok->max_depth; i++) {
		wipe_value(tok->stack[i].current, 0);
		if (tok->stack[i].obj_field_name)
			sodium_memzero(tok->stack[i].obj_field_name,
			               strlen(tok->stack[i].obj_field_name));
	}
	if (tok->pb && tok->pb->buf)
		sodium_memzero(tok->pb->buf, (size_t)tok->pb->size);
	json_tokener_free(tok);
}

int json_parse_object(const char *text, size_t len, const char *what,
                      struct json_object **ret)
{
	struct json_tokener *tok;
	struct json_object *obj;
	int r = 0;

	if (len > INT32_MAX)
		return fail(UCAASAUTH_E_PROTOCOL, "%s is too long", what);
	tok = json_tokener_new();
	/* The tokener collects each string in a buffer that grows by
	 * realloc(), which frees the old one unwiped: made as large as the
	 * text now, it never grows. */
	if (!tok || printbuf_memset(tok->pb, 0, 0, (int)len + 1) < 0) {
		if (tok)
			json_tokener_free(tok);
		return fail(UCAASAUTH_E_NOMEM, "%s: out of memory", what);
	}
	printbuf_reset(tok->pb);
	errno = 0;
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (out_of_memory(tok))
		r = fail(UCAASAUTH_E_NOMEM, "%s: out of memory", what);
	else if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	         json_tokener_get_parse_end(tok) != len)
		r = fail(UCAASAUTH_E_PROTOCOL, "%s is not one JSON document",
		         what);
	else if (!json_object_is_type(obj, json_type_object))
		r = fail(UCAASAUTH_E_PROTOCOL, "%s is not a JSON object", what);
	tokener_free(tok);
	if (r < 0) {
		json_free_wiped(obj);
		return r;
	}
	*ret = obj;
	return 0;
}

void json_free_wiped(struct json_object *obj)
{
	wipe_value(obj, 0);
	json_object_put(obj);
}

bool json_get_string(struct json_object *obj, const char *key, const char **ret,
                     size_t *ret_len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return false;
	*ret = json_object_get_string(v);
	*ret_len = (size_t)json_object_get_string_len(v);
	return true;
}
