/* The module exports only the pam_sm_* entry points: a test dlopens the
 * built pam_piv.so and looks for the library's internal symbols. */
#include "config.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

static void *
open_module(void)
{
	const char *path = getenv("PIV_MODULE");
	void *h;

	assert_non_null(path);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL)
		fail_msg("dlopen %s: %s", path, dlerror());
	return h;
}

static void
test_entry_points_visible(void **state)
{
	void *h = open_module();

	(void)state;
	assert_non_null(dlsym(h, "pam_sm_authenticate"));
	assert_non_null(dlsym(h, "pam_sm_setcred"));
	assert_non_null(dlsym(h, "pam_sm_acct_mgmt"));
	assert_non_null(dlsym(h, "pam_sm_open_session"));
	assert_non_null(dlsym(h, "pam_sm_close_session"));
	dlclose(h);
}

static void
test_internals_hidden(void **state)
{
	static const char *const internal[] = {
		"piv_conf_load", "piv_authenticate", "piv_validate", "piv_escape",
		"piv_msg_recv", "piv_card_open", "piv_map_cert", "piv_status_pam_code",
	};
	void *h = open_module();

	(void)state;
	for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
		if (dlsym(h, internal[i]) != NULL)
			fail_msg("pam_piv.so exports %s", internal[i]);
	dlclose(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_points_visible),
		cmocka_unit_test(test_internals_hidden),
	};
	return cmocka_run_group_tests_name("exports", tests, NULL, NULL);
}
