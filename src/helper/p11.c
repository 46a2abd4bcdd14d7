/* PKCS#11 access for the card helper (see p11.h). Every CK_RV is checked
 * and logged by name; every length comes from the two-call size query and
 * is bounded before anything is allocated. */
#include "config.h"
#include "helper/p11.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <p11-kit/uri.h>

#define MAX_SLOTS 1024 /* a module with more slots holding tokens is broken */
#define MAX_OBJECTS 64
#define MAX_ATTR_LEN (64 * 1024)

#define LOG(ctx, prio, ...) \
	do { if ((ctx)->log) (ctx)->log((ctx)->ud, (prio), __VA_ARGS__); } while (0)

const char *
p11_rv_name(CK_RV rv, char *buf, size_t size)
{
	static const struct { CK_RV rv; const char *name; } names[] = {
#define N(x) { x, #x }
		N(CKR_OK), N(CKR_CANCEL), N(CKR_HOST_MEMORY), N(CKR_SLOT_ID_INVALID),
		N(CKR_GENERAL_ERROR), N(CKR_FUNCTION_FAILED), N(CKR_ARGUMENTS_BAD),
		N(CKR_ATTRIBUTE_SENSITIVE), N(CKR_ATTRIBUTE_TYPE_INVALID),
		N(CKR_ATTRIBUTE_VALUE_INVALID), N(CKR_DATA_INVALID), N(CKR_DATA_LEN_RANGE),
		N(CKR_DEVICE_ERROR), N(CKR_DEVICE_MEMORY), N(CKR_DEVICE_REMOVED),
		N(CKR_FUNCTION_CANCELED), N(CKR_FUNCTION_NOT_SUPPORTED), N(CKR_KEY_HANDLE_INVALID),
		N(CKR_KEY_TYPE_INCONSISTENT), N(CKR_KEY_FUNCTION_NOT_PERMITTED),
		N(CKR_MECHANISM_INVALID), N(CKR_MECHANISM_PARAM_INVALID),
		N(CKR_OBJECT_HANDLE_INVALID), N(CKR_OPERATION_ACTIVE),
		N(CKR_OPERATION_NOT_INITIALIZED), N(CKR_PIN_INCORRECT), N(CKR_PIN_INVALID),
		N(CKR_PIN_LEN_RANGE), N(CKR_PIN_EXPIRED), N(CKR_PIN_LOCKED),
		N(CKR_SESSION_CLOSED), N(CKR_SESSION_COUNT), N(CKR_SESSION_HANDLE_INVALID),
		N(CKR_TOKEN_NOT_PRESENT), N(CKR_TOKEN_NOT_RECOGNIZED), N(CKR_USER_ALREADY_LOGGED_IN),
		N(CKR_USER_NOT_LOGGED_IN), N(CKR_USER_PIN_NOT_INITIALIZED),
		N(CKR_USER_TYPE_INVALID), N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
		N(CKR_BUFFER_TOO_SMALL), N(CKR_CRYPTOKI_NOT_INITIALIZED),
		N(CKR_CRYPTOKI_ALREADY_INITIALIZED), N(CKR_SIGNATURE_INVALID),
		N(CKR_SIGNATURE_LEN_RANGE), N(CKR_TEMPLATE_INCOMPLETE),
		N(CKR_TEMPLATE_INCONSISTENT), N(CKR_USER_TOO_MANY_TYPES),
#undef N
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].rv == rv)
			return names[i].name;
	snprintf(buf, size, "CKR_0x%08lx", (unsigned long)rv);
	return buf;
}

/* Log a failed call by name with p11-kit's description. */
static void
log_rv(struct p11_ctx *ctx, int prio, const char *call, CK_RV rv)
{
	char buf[32];

	LOG(ctx, prio, "%s: %s (%s)", call, p11_rv_name(rv, buf, sizeof(buf)),
	    p11_kit_strerror(rv));
}

int
p11_load(struct p11_ctx *ctx, const char *module, p11_log_fn log, void *ud)
{
	CK_RV rv;

	memset(ctx, 0, sizeof(*ctx));
	ctx->log = log;
	ctx->ud = ud;
	p11_kit_be_quiet();

	if (strcmp(module, "p11-kit") == 0) {
		CK_FUNCTION_LIST **all = p11_kit_modules_load_and_initialize(0);
		size_t n = 0, kept = 0;
		if (all == NULL) {
			LOG(ctx, LOG_ERR, "p11-kit: cannot load the registered modules: %s",
			    p11_kit_message() ? p11_kit_message() : "unknown error");
			return -1;
		}
		while (all[n] != NULL)
			n++;
		ctx->loaded = all;
		ctx->all_initialized = true;
		ctx->modules = calloc(n + 1, sizeof(*ctx->modules));
		if (ctx->modules == NULL)
			return -1;
		for (size_t i = 0; i < n; i++) {
			char *name = p11_kit_module_get_name(all[i]);
			/* Trust-policy modules hold anchors, not cards. */
			if (p11_kit_module_get_flags(all[i]) & P11_KIT_MODULE_TRUSTED) {
				LOG(ctx, LOG_DEBUG, "skipping trust-policy module %s", name ? name : "?");
			} else {
				ctx->modules[kept++] = all[i];
			}
			free(name);
		}
		return 0;
	}

	if (strchr(module, '/') != NULL) {
		/* A fresh process of our own: no other user of the module to share
		 * it with, so skip p11-kit's managed wrapper. */
		ctx->single = p11_kit_module_load(module, P11_KIT_MODULE_UNMANAGED);
		if (ctx->single == NULL) {
			LOG(ctx, LOG_ERR, "cannot load PKCS#11 module %s: %s", module,
			    p11_kit_message() ? p11_kit_message() : "unknown error");
			return -1;
		}
	} else {
		CK_FUNCTION_LIST **all = p11_kit_modules_load(NULL, 0);
		for (size_t i = 0; all != NULL && all[i] != NULL; i++) {
			char *name = p11_kit_module_get_name(all[i]);
			if (name != NULL && strcmp(name, module) == 0)
				ctx->single = all[i];
			free(name);
		}
		ctx->loaded = all;
		if (ctx->single == NULL) {
			LOG(ctx, LOG_ERR, "no PKCS#11 module named '%s' is registered with p11-kit", module);
			return -1;
		}
	}
	rv = p11_kit_module_initialize(ctx->single);
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_ERR, "C_Initialize", rv);
		if (ctx->loaded == NULL)
			p11_kit_module_release(ctx->single);
		ctx->single = NULL;
		return -1;
	}
	ctx->modules = calloc(2, sizeof(*ctx->modules));
	if (ctx->modules == NULL)
		return -1;
	ctx->modules[0] = ctx->single;
	return 0;
}

void
p11_unload(struct p11_ctx *ctx)
{
	if (ctx->single != NULL) {
		p11_kit_module_finalize(ctx->single);
		if (ctx->loaded == NULL)
			p11_kit_module_release(ctx->single);
	}
	if (ctx->loaded != NULL) {
		if (ctx->all_initialized)
			p11_kit_modules_finalize_and_release(ctx->loaded);
		else
			p11_kit_modules_release(ctx->loaded);
	}
	free(ctx->modules);
	memset(ctx, 0, sizeof(*ctx));
}

/* Read one attribute with the two-call size query. */
static int
get_attr(struct p11_ctx *ctx, CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
         CK_ATTRIBUTE_TYPE type, uint8_t **out, size_t *out_len)
{
	CK_ATTRIBUTE attr = { type, NULL, 0 };
	CK_ULONG want;
	CK_RV rv;

	rv = m->C_GetAttributeValue(s, o, &attr, 1);
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_DEBUG, "C_GetAttributeValue(size)", rv);
		return -1;
	}
	if (attr.ulValueLen == CK_UNAVAILABLE_INFORMATION || attr.ulValueLen == 0 ||
	    attr.ulValueLen > MAX_ATTR_LEN) {
		LOG(ctx, LOG_WARNING, "attribute 0x%lx has an unusable length %lu",
		    (unsigned long)type, (unsigned long)attr.ulValueLen);
		return -1;
	}
	want = attr.ulValueLen;
	attr.pValue = calloc(1, want);
	if (attr.pValue == NULL)
		return -1;
	rv = m->C_GetAttributeValue(s, o, &attr, 1);
	/* PKCS#11: the size query gives the exact length; a value that
	 * changed between the two calls is not the value we asked about */
	if (rv != CKR_OK || attr.ulValueLen != want) {
		if (rv != CKR_OK)
			log_rv(ctx, LOG_WARNING, "C_GetAttributeValue", rv);
		else
			LOG(ctx, LOG_WARNING, "attribute 0x%lx changed length between reads",
			    (unsigned long)type);
		free(attr.pValue);
		return -1;
	}
	*out = attr.pValue;
	*out_len = attr.ulValueLen;
	return 0;
}

static int
get_bool_attr(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
              CK_ATTRIBUTE_TYPE type, bool *value)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE attr = { type, &b, sizeof(b) };
	CK_RV rv = m->C_GetAttributeValue(s, o, &attr, 1);

	if (rv != CKR_OK || attr.ulValueLen != sizeof(b))
		return -1;
	*value = b == CK_TRUE;
	return 0;
}

/* C_FindObjects with a bound; C_FindObjectsFinal always runs. */
static int
find_objects(struct p11_ctx *ctx, CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s,
             CK_ATTRIBUTE *tmpl, CK_ULONG n_tmpl, CK_OBJECT_HANDLE *found, CK_ULONG max,
             CK_ULONG *n_found)
{
	CK_RV rv;
	CK_ULONG got = 0;

	*n_found = 0;
	rv = m->C_FindObjectsInit(s, tmpl, n_tmpl);
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_ERR, "C_FindObjectsInit", rv);
		return -1;
	}
	while (*n_found < max) {
		rv = m->C_FindObjects(s, found + *n_found, max - *n_found, &got);
		if (rv != CKR_OK) {
			log_rv(ctx, LOG_ERR, "C_FindObjects", rv);
			break;
		}
		if (got == 0 || got > max - *n_found)
			break;
		*n_found += got;
	}
	rv = m->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		log_rv(ctx, LOG_WARNING, "C_FindObjectsFinal", rv);
	return 0;
}

void
p11_copy_padded(char *dst, size_t dst_size, const unsigned char *src, size_t src_size)
{
	size_t len = p11_kit_space_strlen(src, src_size);

	if (len >= dst_size)
		len = dst_size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

void
p11_cand_free(struct p11_cand *cand)
{
	free(cand->cert.data);
	for (size_t i = 0; i < cand->n_extra; i++)
		free(cand->extra[i].data);
	memset(cand, 0, sizeof(*cand));
}

/* Certificates on one token: those matching the cert URI become
 * candidates, the rest travel with them as possible intermediates. */
static void
scan_token(struct p11_ctx *ctx, CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_TOKEN_INFO *ti,
           P11KitUri *cert_uri, struct p11_cand *cands, size_t max, size_t *n)
{
	CK_OBJECT_CLASS cert_class = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE x509 = CKC_X_509;
	CK_ATTRIBUTE tmpl[16];
	CK_ULONG n_tmpl = 0, n_uri = 0, n_sel = 0, n_all = 0;
	CK_ATTRIBUTE_PTR uri_attrs = p11_kit_uri_get_attributes(cert_uri, &n_uri);
	CK_OBJECT_HANDLE sel[PIV_MAX_CANDIDATES], all[MAX_OBJECTS];
	CK_SESSION_HANDLE s;
	size_t first = *n;
	CK_RV rv;

	rv = m->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_ERR, "C_OpenSession", rv);
		return;
	}
	tmpl[n_tmpl++] = (CK_ATTRIBUTE){ CKA_CLASS, &cert_class, sizeof(cert_class) };
	tmpl[n_tmpl++] = (CK_ATTRIBUTE){ CKA_CERTIFICATE_TYPE, &x509, sizeof(x509) };
	for (CK_ULONG i = 0; i < n_uri && n_tmpl < 16; i++)
		if (uri_attrs[i].type != CKA_CLASS)
			tmpl[n_tmpl++] = uri_attrs[i];
	if (find_objects(ctx, m, s, tmpl, n_tmpl, sel, PIV_MAX_CANDIDATES, &n_sel) != 0 ||
	    find_objects(ctx, m, s, tmpl, 2, all, MAX_OBJECTS, &n_all) != 0)
		goto out;
	{
		char label[33];
		p11_copy_padded(label, sizeof(label), ti->label, sizeof(ti->label));
		LOG(ctx, LOG_DEBUG, "token '%s': %lu matching certificate(s), %lu in all", label,
		    (unsigned long)n_sel, (unsigned long)n_all);
	}
	for (CK_ULONG i = 0; i < n_sel && *n < max; i++) {
		struct p11_cand *c = &cands[*n];
		uint8_t *id = NULL;
		size_t id_len = 0;

		memset(c, 0, sizeof(*c));
		if (get_attr(ctx, m, s, sel[i], CKA_VALUE, &c->cert.data, &c->cert.len) != 0)
			continue;
		if (get_attr(ctx, m, s, sel[i], CKA_ID, &id, &id_len) != 0 || id_len > sizeof(c->id)) {
			LOG(ctx, LOG_WARNING, "certificate without a usable CKA_ID skipped");
			free(id);
			p11_cand_free(c);
			continue;
		}
		memcpy(c->id, id, id_len);
		c->id_len = id_len;
		free(id);
		c->module = m;
		c->slot = slot;
		c->token_flags = ti->flags;
		p11_copy_padded(c->label, sizeof(c->label), ti->label, sizeof(ti->label));
		p11_copy_padded(c->serial, sizeof(c->serial), ti->serialNumber, sizeof(ti->serialNumber));
		(*n)++;
	}
	/* The other certificates of the card, shared by its candidates. */
	for (CK_ULONG j = 0; j < n_all; j++) {
		bool selected = false;
		uint8_t *der = NULL;
		size_t len = 0;
		for (CK_ULONG i = 0; i < n_sel; i++)
			selected |= all[j] == sel[i];
		if (selected || get_attr(ctx, m, s, all[j], CKA_VALUE, &der, &len) != 0)
			continue;
		for (size_t k = first; k < *n; k++) {
			struct p11_cand *c = &cands[k];
			if (c->n_extra >= PIV_MAX_EXTRA_CERTS)
				continue;
			c->extra[c->n_extra].data = malloc(len);
			if (c->extra[c->n_extra].data == NULL)
				continue;
			memcpy(c->extra[c->n_extra].data, der, len);
			c->extra[c->n_extra].len = len;
			c->n_extra++;
		}
		free(der);
	}
out:
	rv = m->C_CloseSession(s);
	if (rv != CKR_OK)
		log_rv(ctx, LOG_WARNING, "C_CloseSession", rv);
}

static P11KitUri *
parse_uri(struct p11_ctx *ctx, const char *text, P11KitUriType type)
{
	P11KitUri *uri = p11_kit_uri_new();
	int rc;

	if (uri == NULL)
		return NULL;
	rc = p11_kit_uri_parse(text && *text ? text : "pkcs11:", type, uri);
	if (rc != P11_KIT_URI_OK) {
		LOG(ctx, LOG_ERR, "bad PKCS#11 URI: %s", p11_kit_uri_message(rc));
		p11_kit_uri_free(uri);
		return NULL;
	}
	return uri;
}

/* The slots of a module that hold a token (NULL: none, or the module
 * failed, or reports more than MAX_SLOTS). Two-call size query; the list
 * may change between the calls (a card inserted), so ask again when it
 * grew. */
static CK_SLOT_ID *
slot_list(struct p11_ctx *ctx, CK_FUNCTION_LIST *m, CK_ULONG *n_slots)
{
	CK_SLOT_ID *slots = NULL;
	CK_RV rv = CKR_OK;

	*n_slots = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		CK_SLOT_ID *grown;
		rv = m->C_GetSlotList(CK_TRUE, NULL, n_slots);
		if (rv != CKR_OK || *n_slots == 0 || *n_slots > MAX_SLOTS)
			break;
		grown = realloc(slots, *n_slots * sizeof(*slots));
		if (grown == NULL) {
			rv = CKR_HOST_MEMORY;
			break;
		}
		slots = grown;
		rv = m->C_GetSlotList(CK_TRUE, slots, n_slots);
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_WARNING, "C_GetSlotList", rv);
		free(slots);
		return NULL;
	}
	if (*n_slots > MAX_SLOTS) {
		LOG(ctx, LOG_WARNING, "module reports %lu slots with a token, more than %d: "
		    "skipping it", (unsigned long)*n_slots, MAX_SLOTS);
		free(slots);
		return NULL;
	}
	if (*n_slots == 0) {
		free(slots);
		return NULL;
	}
	return slots;
}

int
p11_find(struct p11_ctx *ctx, const char *token_uri, const char *cert_uri,
         struct p11_cand *cands, size_t max, size_t *n, size_t *tokens_seen)
{
	P11KitUri *turi = parse_uri(ctx, token_uri, P11_KIT_URI_FOR_TOKEN | P11_KIT_URI_FOR_MODULE);
	P11KitUri *curi = parse_uri(ctx, cert_uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE);
	int ret = -1;

	*n = 0;
	*tokens_seen = 0;
	if (turi == NULL || curi == NULL)
		goto out;
	for (size_t mi = 0; ctx->modules[mi] != NULL; mi++) {
		CK_FUNCTION_LIST *m = ctx->modules[mi];
		CK_SLOT_ID *slots;
		CK_ULONG n_slots = 0;
		CK_INFO info;
		CK_RV rv;

		rv = m->C_GetInfo(&info);
		if (rv != CKR_OK) {
			log_rv(ctx, LOG_WARNING, "C_GetInfo", rv);
			continue;
		}
		{
			/* what the administrator sees with debug (and pam-piv-check) */
			char desc[sizeof(info.libraryDescription) + 1], manuf[sizeof(info.manufacturerID) + 1];
			snprintf(desc, sizeof(desc), "%.*s",
			         (int)p11_kit_space_strlen(info.libraryDescription,
			                                   sizeof(info.libraryDescription)),
			         (const char *)info.libraryDescription);
			snprintf(manuf, sizeof(manuf), "%.*s",
			         (int)p11_kit_space_strlen(info.manufacturerID, sizeof(info.manufacturerID)),
			         (const char *)info.manufacturerID);
			LOG(ctx, LOG_DEBUG, "module %zu: '%s' by '%s', version %u.%u", mi + 1, desc, manuf,
			    info.libraryVersion.major, info.libraryVersion.minor);
		}
		if (!p11_kit_uri_match_module_info(turi, &info) ||
		    !p11_kit_uri_match_module_info(curi, &info)) {
			LOG(ctx, LOG_DEBUG, "module %zu does not match the token or cert URI", mi + 1);
			continue;
		}
		if ((slots = slot_list(ctx, m, &n_slots)) == NULL)
			continue;
		for (CK_ULONG si = 0; si < n_slots && *n < max; si++) {
			CK_TOKEN_INFO ti;
			rv = m->C_GetTokenInfo(slots[si], &ti);
			if (rv != CKR_OK) {
				log_rv(ctx, LOG_DEBUG, "C_GetTokenInfo", rv);
				continue;
			}
			if (!(ti.flags & CKF_TOKEN_INITIALIZED))
				continue;
			{
				char label[sizeof(ti.label) + 1], serial[sizeof(ti.serialNumber) + 1];
				snprintf(label, sizeof(label), "%.*s",
				         (int)p11_kit_space_strlen(ti.label, sizeof(ti.label)),
				         (const char *)ti.label);
				snprintf(serial, sizeof(serial), "%.*s",
				         (int)p11_kit_space_strlen(ti.serialNumber, sizeof(ti.serialNumber)),
				         (const char *)ti.serialNumber);
				LOG(ctx, LOG_DEBUG, "module %zu slot %lu: token '%s' serial '%s'%s", mi + 1,
				    (unsigned long)slots[si], label, serial,
				    (ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH) ? " (PIN pad)" : "");
			}
			if (!p11_kit_uri_match_token_info(turi, &ti) ||
			    !p11_kit_uri_match_token_info(curi, &ti)) {
				LOG(ctx, LOG_DEBUG, "token in slot %lu does not match the token or cert URI",
				    (unsigned long)slots[si]);
				continue;
			}
			(*tokens_seen)++;
			scan_token(ctx, m, slots[si], &ti, curi, cands, max, n);
		}
		free(slots);
	}
	ret = 0;
out:
	p11_kit_uri_free(turi);
	p11_kit_uri_free(curi);
	return ret;
}

static void
refresh_flags(struct p11_ctx *ctx, const struct p11_cand *cand, struct p11_sign_out *out)
{
	CK_TOKEN_INFO ti;
	CK_RV rv = cand->module->C_GetTokenInfo(cand->slot, &ti);

	if (rv == CKR_OK)
		out->token_flags = ti.flags;
	else
		log_rv(ctx, LOG_DEBUG, "C_GetTokenInfo", rv);
}

static void
login_failed(struct p11_ctx *ctx, const struct p11_cand *cand, CK_RV rv, struct p11_sign_out *out)
{
	char buf[32];

	switch (rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
		out->status = PIV_H_PIN_INCORRECT;
		break;
	case CKR_PIN_LEN_RANGE:
		out->status = PIV_H_PIN_LEN;
		break;
	case CKR_PIN_LOCKED:
		out->status = PIV_H_PIN_LOCKED;
		break;
	default:
		out->status = PIV_H_ERROR;
		break;
	}
	snprintf(out->message, sizeof(out->message), "C_Login: %s", p11_rv_name(rv, buf, sizeof(buf)));
	refresh_flags(ctx, cand, out);
}

/* C_Login that really checks the PIN: a token that claims the user is
 * already logged in has checked nothing in this call, so log out and log
 * in again (SPEC §1). */
static CK_RV
login_user(struct p11_ctx *ctx, CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, const char *pin)
{
	CK_UTF8CHAR_PTR p = (CK_UTF8CHAR_PTR)pin;
	CK_ULONG len = pin ? (CK_ULONG)strlen(pin) : 0;
	CK_RV rv = m->C_Login(s, CKU_USER, p, len);

	if (rv == CKR_USER_ALREADY_LOGGED_IN) {
		CK_RV lrv = m->C_Logout(s);
		LOG(ctx, LOG_NOTICE, "token claims an existing login; logging out and in again");
		if (lrv != CKR_OK)
			log_rv(ctx, LOG_WARNING, "C_Logout", lrv);
		rv = m->C_Login(s, CKU_USER, p, len);
		if (rv == CKR_USER_ALREADY_LOGGED_IN)
			rv = CKR_GENERAL_ERROR; /* it still will not check the PIN */
	}
	if (rv != CKR_OK)
		log_rv(ctx, rv == CKR_PIN_INCORRECT ? LOG_NOTICE : LOG_ERR, "C_Login", rv);
	return rv;
}

struct mech_try {
	CK_MECHANISM_TYPE type;
	bool pss;
	enum { DATA_MESSAGE, DATA_DIGEST, DATA_DIGEST_INFO } data;
};

static bool
mech_listed(const CK_MECHANISM_TYPE *list, CK_ULONG n, CK_MECHANISM_TYPE type)
{
	if (list == NULL)
		return true; /* the token would not say; just try */
	for (CK_ULONG i = 0; i < n; i++)
		if (list[i] == type)
			return true;
	return false;
}

static CK_MECHANISM_TYPE *
mech_list(struct p11_ctx *ctx, const struct p11_cand *cand, CK_ULONG *n)
{
	CK_FUNCTION_LIST *m = cand->module;
	CK_MECHANISM_TYPE *list;
	CK_RV rv = m->C_GetMechanismList(cand->slot, NULL, n);

	if (rv != CKR_OK || *n == 0 || *n > 1024) {
		if (rv != CKR_OK)
			log_rv(ctx, LOG_DEBUG, "C_GetMechanismList(size)", rv);
		return NULL;
	}
	list = calloc(*n, sizeof(*list));
	if (list == NULL)
		return NULL;
	rv = m->C_GetMechanismList(cand->slot, list, n);
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_DEBUG, "C_GetMechanismList", rv);
		free(list);
		return NULL;
	}
	return list;
}

static CK_OBJECT_HANDLE
find_key(struct p11_ctx *ctx, const struct p11_cand *cand, CK_SESSION_HANDLE s, int *count)
{
	CK_OBJECT_CLASS key_class = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &key_class, sizeof(key_class) },
		{ CKA_ID, (void *)cand->id, cand->id_len },
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;

	*count = -1; /* the search itself failed (a card pulled, say) */
	if (find_objects(ctx, cand->module, s, tmpl, 2, found, 2, &n) != 0)
		return CK_INVALID_HANDLE;
	*count = (int)n;
	return n == 1 ? found[0] : CK_INVALID_HANDLE;
}

/* The mechanisms to try, best first, for a key type and the hash the
 * module asks for (NULL: none; the module only asks RSA for SHA-256). */
static const struct mech_try *
mech_tries(bool is_ec, enum piv_hash hash, size_t *n)
{
	static const struct mech_try rsa_tries[] = {
		{ CKM_SHA256_RSA_PKCS, false, DATA_MESSAGE },
		{ CKM_RSA_PKCS, false, DATA_DIGEST_INFO },
		{ CKM_SHA256_RSA_PKCS_PSS, true, DATA_MESSAGE },
		{ CKM_RSA_PKCS_PSS, true, DATA_DIGEST },
	};
	static const struct mech_try ec_tries_256[] = {
		{ CKM_ECDSA, false, DATA_DIGEST },
		{ CKM_ECDSA_SHA256, false, DATA_MESSAGE },
	};
	static const struct mech_try ec_tries_384[] = {
		{ CKM_ECDSA, false, DATA_DIGEST },
		{ CKM_ECDSA_SHA384, false, DATA_MESSAGE },
	};

	if (is_ec) {
		*n = 2;
		return hash == PIV_HASH_SHA384 ? ec_tries_384 : ec_tries_256;
	}
	*n = sizeof(rsa_tries) / sizeof(rsa_tries[0]);
	return hash == PIV_HASH_SHA256 ? rsa_tries : NULL;
}

/* A PIN of a length the token cannot have would only cost a try (some
 * cards count it): refuse it without asking the card. A pin pad (pin NULL)
 * is the reader's business. */
static bool
pin_length_refused(struct p11_ctx *ctx, const struct p11_cand *cand, const char *pin,
                   struct p11_sign_out *out)
{
	CK_TOKEN_INFO ti;
	size_t plen;

	if (pin == NULL || cand->module->C_GetTokenInfo(cand->slot, &ti) != CKR_OK)
		return false;
	plen = strlen(pin);
	if (ti.ulMaxPinLen < ti.ulMinPinLen || ti.ulMaxPinLen == CK_UNAVAILABLE_INFORMATION ||
	    (plen >= ti.ulMinPinLen && plen <= ti.ulMaxPinLen))
		return false;
	LOG(ctx, LOG_NOTICE, "PIN of %zu characters refused without trying it: the token "
	    "takes %lu to %lu", plen, (unsigned long)ti.ulMinPinLen, (unsigned long)ti.ulMaxPinLen);
	out->status = PIV_H_PIN_LEN;
	out->token_flags = ti.flags;
	snprintf(out->message, sizeof(out->message), "PIN length outside the token's range");
	return true;
}

enum sign_step { SIGN_DONE, SIGN_NEXT };

/* One signature with one mechanism: SIGN_NEXT when the token turns the
 * mechanism down (try the next), SIGN_DONE when it signed (out->status
 * PIV_H_OK) or failed (out says why). An always-authenticate key gets the
 * PIN again (context_login) for this very operation. */
static enum sign_step
sign_with(struct p11_ctx *ctx, const struct p11_cand *cand, CK_SESSION_HANDLE s,
          CK_OBJECT_HANDLE key, const struct mech_try *try, const uint8_t *data, size_t data_len,
          const char *pin, bool context_login, struct p11_sign_out *out)
{
	CK_FUNCTION_LIST *m = cand->module;
	CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
	CK_MECHANISM mech = { try->type, NULL, 0 };
	CK_ULONG sig_len = 0, buf_len;
	CK_RV rv;

	if (try->pss) {
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
	}
	rv = m->C_SignInit(s, &mech, key);
	if (rv == CKR_MECHANISM_INVALID || rv == CKR_MECHANISM_PARAM_INVALID ||
	    rv == CKR_KEY_TYPE_INCONSISTENT || rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
		log_rv(ctx, LOG_DEBUG, "C_SignInit", rv);
		return SIGN_NEXT;
	}
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_ERR, "C_SignInit", rv);
		snprintf(out->message, sizeof(out->message), "C_SignInit failed");
		return SIGN_DONE;
	}
	if (context_login) {
		CK_ULONG plen = pin ? (CK_ULONG)strlen(pin) : 0;
		rv = m->C_Login(s, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR_PTR)pin, plen);
		if (rv != CKR_OK) {
			log_rv(ctx, LOG_ERR, "C_Login(CKU_CONTEXT_SPECIFIC)", rv);
			login_failed(ctx, cand, rv, out);
			return SIGN_DONE;
		}
	}
	rv = m->C_Sign(s, (CK_BYTE_PTR)data, (CK_ULONG)data_len, NULL, &sig_len);
	if (rv != CKR_OK || sig_len == 0 || sig_len > PIV_MAX_SIG_LEN) {
		if (rv != CKR_OK)
			log_rv(ctx, LOG_ERR, "C_Sign(size)", rv);
		snprintf(out->message, sizeof(out->message), "C_Sign reported a bad length");
		return SIGN_DONE;
	}
	out->sig = calloc(1, sig_len);
	if (out->sig == NULL)
		return SIGN_DONE;
	buf_len = sig_len;
	rv = m->C_Sign(s, (CK_BYTE_PTR)data, (CK_ULONG)data_len, out->sig, &sig_len);
	/* never more than the buffer the size query asked for */
	if (rv != CKR_OK || sig_len == 0 || sig_len > buf_len) {
		if (rv != CKR_OK)
			log_rv(ctx, LOG_ERR, "C_Sign", rv);
		snprintf(out->message, sizeof(out->message), "C_Sign failed");
		free(out->sig);
		out->sig = NULL;
		return SIGN_DONE;
	}
	out->sig_len = sig_len;
	out->mechanism = try->type;
	out->status = PIV_H_OK;
	LOG(ctx, LOG_DEBUG, "signed with mechanism 0x%lx", (unsigned long)try->type);
	return SIGN_DONE;
}

void
p11_sign(struct p11_ctx *ctx, const struct p11_cand *cand, const char *pin,
         const uint8_t *challenge, size_t challenge_len, bool is_ec, enum piv_hash hash,
         struct p11_sign_out *out)
{
	const struct mech_try *tries;
	size_t n_tries;
	CK_FUNCTION_LIST *m = cand->module;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE key;
	CK_MECHANISM_TYPE *mechs = NULL;
	CK_ULONG n_mechs = 0;
	CK_KEY_TYPE key_type = 0;
	CK_ATTRIBUTE kt = { CKA_KEY_TYPE, &key_type, sizeof(key_type) };
	uint8_t digest[64], dinfo[128];
	size_t dinfo_len;
	bool always_auth = false, logged_in = false;
	int key_count = 0;
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	out->status = PIV_H_ERROR;
	out->token_flags = cand->token_flags;
	tries = mech_tries(is_ec, hash, &n_tries);
	if (tries == NULL)
		goto out;
	if (piv_digest(hash, challenge, challenge_len, digest) != 0)
		goto out;
	dinfo_len = piv_digest_info(hash, digest, piv_hash_len(hash), dinfo, sizeof(dinfo));

	rv = m->C_OpenSession(cand->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		log_rv(ctx, LOG_ERR, "C_OpenSession", rv);
		snprintf(out->message, sizeof(out->message), "cannot open a session");
		goto out;
	}
	if (pin_length_refused(ctx, cand, pin, out))
		goto out;
	rv = login_user(ctx, m, s, pin);
	if (rv != CKR_OK) {
		login_failed(ctx, cand, rv, out);
		goto out;
	}
	logged_in = true;
	refresh_flags(ctx, cand, out);

	key = find_key(ctx, cand, s, &key_count);
	if (key == CK_INVALID_HANDLE) {
		out->status = key_count == 0 ? PIV_H_NO_KEY : PIV_H_ERROR;
		snprintf(out->message, sizeof(out->message), "%s",
		         key_count == 0 ? "no private key with the certificate's CKA_ID"
		         : key_count < 0 ? "cannot search the card for the private key"
		         : "more than one private key with the certificate's CKA_ID");
		goto out;
	}
	rv = m->C_GetAttributeValue(s, key, &kt, 1);
	if (rv != CKR_OK || kt.ulValueLen != sizeof(key_type) ||
	    key_type != (is_ec ? CKK_EC : CKK_RSA)) {
		snprintf(out->message, sizeof(out->message),
		         "private key type does not match the certificate");
		goto out;
	}
	if (get_bool_attr(m, s, key, CKA_ALWAYS_AUTHENTICATE, &always_auth) != 0)
		always_auth = false;
	mechs = mech_list(ctx, cand, &n_mechs);

	for (size_t i = 0; i < n_tries; i++) {
		const uint8_t *data = challenge;
		size_t data_len = challenge_len;

		if (!mech_listed(mechs, n_mechs, tries[i].type))
			continue;
		if (tries[i].data == DATA_DIGEST) {
			data = digest;
			data_len = piv_hash_len(hash);
		} else if (tries[i].data == DATA_DIGEST_INFO) {
			data = dinfo;
			data_len = dinfo_len;
		}
		if (sign_with(ctx, cand, s, key, &tries[i], data, data_len, pin, always_auth, out) !=
		    SIGN_NEXT)
			goto out;
	}
	snprintf(out->message, sizeof(out->message), "the token offers no usable signature mechanism");
out:
	free(mechs);
	piv_wipe(digest, sizeof(digest));
	if (s != CK_INVALID_HANDLE) {
		if (logged_in) {
			rv = m->C_Logout(s);
			if (rv != CKR_OK)
				log_rv(ctx, LOG_DEBUG, "C_Logout", rv);
		}
		rv = m->C_CloseSession(s);
		if (rv != CKR_OK)
			log_rv(ctx, LOG_DEBUG, "C_CloseSession", rv);
	}
}
