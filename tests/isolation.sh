#!/bin/sh
# SPEC §1 "Isolation": the PAM module itself never loads PKCS#11 code. It
# links p11-kit only to parse PKCS#11 URIs, so none of the module-loading
# entry points (nor dlopen) may be referenced by pam_piv.so.
set -eu
: "${PIV_MODULE:?run through make check}"
bad=$(nm -D --undefined-only "$PIV_MODULE" |
	grep -E ' (p11_kit_module_load|p11_kit_modules_load|p11_kit_module_initialize|p11_kit_modules_load_and_initialize|C_GetFunctionList|dlopen)' || true)
if [ -n "$bad" ]; then
	echo "pam_piv.so references PKCS#11 loading:" >&2
	echo "$bad" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
nm -D --undefined-only "$PIV_MODULE" | grep -q ' p11_kit_uri_parse' ||
	{ echo "expected pam_piv.so to use p11_kit_uri_parse (is nm output sane?)" >&2; exit 1; }
echo "isolation: pam_piv.so loads no PKCS#11 module"
# ...and the card helper, the process that does, carries none of the
# module's mapping, directory or PAM code: it needs p11-kit, libcrypto and
# the C library (a sanitizer build adds its runtimes).
: "${PIV_HELPER:?run through make check}"
needed=$(readelf -d "$PIV_HELPER" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
	grep -v -E '^(libp11-kit|libcrypto|libc|libasan|libubsan|libm|libgcc_s|libstdc\+\+|libdl|libpthread)\.so' || true)
if [ -n "$needed" ]; then
	echo "pam_piv_helper links more than p11-kit and libcrypto:" >&2
	echo "$needed" >&2
	exit 1
fi
echo "isolation: pam_piv_helper links p11-kit and libcrypto only"
# The card removal watcher loads PKCS#11 code too (in a child process of
# its own) and speaks D-Bus: p11-kit, libcrypto and libsystemd, nothing of
# the module's mapping, directory or PAM code.
: "${PIV_WATCHER:?run through make check}"
needed=$(readelf -d "$PIV_WATCHER" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
	grep -v -E '^(libp11-kit|libcrypto|libsystemd|libc|libasan|libubsan|libm|libgcc_s|libstdc\+\+|libdl|libpthread)\.so' || true)
if [ -n "$needed" ]; then
	echo "pam-piv-watch links more than p11-kit, libcrypto and libsystemd:" >&2
	echo "$needed" >&2
	exit 1
fi
echo "isolation: pam-piv-watch links p11-kit, libcrypto and libsystemd only"
