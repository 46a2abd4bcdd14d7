/* p11shim: test-only PKCS#11 module that forwards every call to a real one
 * (SoftHSM2 by default) and, as P11SHIM_* variables ask, lies about PIN state,
 * mechanisms and authentication or injects failures, hangs and crashes. */

#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define SHIM_DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"
#define SHIM_DEFAULT_PIN "123456"
#define SHIM_MAX_MECHS 64
#define SHIM_MAX_SIGN_OPS 64
#define SHIM_MAX_PIN 256
#define SHIM_MAX_LIST 4096

/* ------------------------------------------------------------------------
 * Function table.  One X-macro line per PKCS#11 function (C_GetFunctionList
 * aside, which is always the shim's own), so that fault injection, logging
 * and the exported CK_FUNCTION_LIST cover every function without a
 * hand-written case per function.  SHIM_FORWARDED functions get a generated
 * body; SHIM_OVERRIDDEN ones are written by hand further down.
 * ------------------------------------------------------------------------ */

#define SHIM_OVERRIDDEN(X)                                                     \
    X(C_Initialize, (CK_VOID_PTR init_args))                                   \
    X(C_Finalize, (CK_VOID_PTR reserved))                                      \
    X(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info))               \
    X(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,        \
                           CK_ULONG_PTR count))                                \
    X(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type,            \
                           CK_MECHANISM_INFO_PTR info))                        \
    X(C_OpenSession, (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,        \
                      CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session))        \
    X(C_CloseSession, (CK_SESSION_HANDLE session))                             \
    X(C_CloseAllSessions, (CK_SLOT_ID slot))                                   \
    X(C_Login, (CK_SESSION_HANDLE session, CK_USER_TYPE user,                  \
                CK_UTF8CHAR_PTR pin, CK_ULONG pin_len))                        \
    X(C_Logout, (CK_SESSION_HANDLE session))                                   \
    X(C_GetAttributeValue, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE obj,   \
                            CK_ATTRIBUTE_PTR tmpl, CK_ULONG count))            \
    X(C_SignInit, (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,           \
                   CK_OBJECT_HANDLE key))                                      \
    X(C_Sign, (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, \
               CK_BYTE_PTR sig, CK_ULONG_PTR sig_len))                         \
    X(C_SignUpdate, (CK_SESSION_HANDLE session, CK_BYTE_PTR part,              \
                     CK_ULONG part_len))                                       \
    X(C_SignFinal, (CK_SESSION_HANDLE session, CK_BYTE_PTR sig,                \
                    CK_ULONG_PTR sig_len))

#define SHIM_FORWARDED(X)                                                      \
    X(C_GetInfo, (CK_INFO_PTR info), (info))                                   \
    X(C_GetSlotList, (CK_BBOOL present, CK_SLOT_ID_PTR list,                   \
                      CK_ULONG_PTR count), (present, list, count))             \
    X(C_GetSlotInfo, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))   \
    X(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot,                \
                           CK_VOID_PTR reserved), (flags, slot, reserved))     \
    X(C_InitToken, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,    \
                    CK_UTF8CHAR_PTR label), (slot, pin, pin_len, label))       \
    X(C_InitPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len), \
      (s, pin, pin_len))                                                       \
    X(C_SetPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old_pin,                 \
                 CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len), \
      (s, old_pin, old_len, new_pin, new_len))                                 \
    X(C_GetSessionInfo, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info),       \
      (s, info))                                                               \
    X(C_GetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state,            \
                            CK_ULONG_PTR state_len), (s, state, state_len))    \
    X(C_SetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state,            \
                            CK_ULONG state_len, CK_OBJECT_HANDLE enc_key,      \
                            CK_OBJECT_HANDLE auth_key),                        \
      (s, state, state_len, enc_key, auth_key))                                \
    X(C_CreateObject, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl,             \
                       CK_ULONG count, CK_OBJECT_HANDLE_PTR obj),              \
      (s, tmpl, count, obj))                                                   \
    X(C_CopyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,                \
                     CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,                    \
                     CK_OBJECT_HANDLE_PTR new_obj),                            \
      (s, obj, tmpl, count, new_obj))                                          \
    X(C_DestroyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj), (s, obj))  \
    X(C_GetObjectSize, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,             \
                        CK_ULONG_PTR size), (s, obj, size))                    \
    X(C_SetAttributeValue, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj,         \
                            CK_ATTRIBUTE_PTR tmpl, CK_ULONG count),            \
      (s, obj, tmpl, count))                                                   \
    X(C_FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR tmpl,          \
                          CK_ULONG count), (s, tmpl, count))                   \
    X(C_FindObjects, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR objs,          \
                      CK_ULONG max, CK_ULONG_PTR found), (s, objs, max, found))\
    X(C_FindObjectsFinal, (CK_SESSION_HANDLE s), (s))                          \
    X(C_EncryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,              \
                      CK_OBJECT_HANDLE key), (s, mech, key))                   \
    X(C_Encrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,        \
                  CK_BYTE_PTR out, CK_ULONG_PTR out_len),                      \
      (s, in, in_len, out, out_len))                                           \
    X(C_EncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,  \
                        CK_BYTE_PTR out, CK_ULONG_PTR out_len),                \
      (s, in, in_len, out, out_len))                                           \
    X(C_EncryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out,                   \
                       CK_ULONG_PTR out_len), (s, out, out_len))               \
    X(C_DecryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,              \
                      CK_OBJECT_HANDLE key), (s, mech, key))                   \
    X(C_Decrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,        \
                  CK_BYTE_PTR out, CK_ULONG_PTR out_len),                      \
      (s, in, in_len, out, out_len))                                           \
    X(C_DecryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,  \
                        CK_BYTE_PTR out, CK_ULONG_PTR out_len),                \
      (s, in, in_len, out, out_len))                                           \
    X(C_DecryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out,                   \
                       CK_ULONG_PTR out_len), (s, out, out_len))               \
    X(C_DigestInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech), (s, mech))   \
    X(C_Digest, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,         \
                 CK_BYTE_PTR out, CK_ULONG_PTR out_len),                       \
      (s, in, in_len, out, out_len))                                           \
    X(C_DigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len),  \
      (s, in, in_len))                                                         \
    X(C_DigestKey, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key), (s, key))      \
    X(C_DigestFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out,                    \
                      CK_ULONG_PTR out_len), (s, out, out_len))                \
    X(C_SignRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,          \
                          CK_OBJECT_HANDLE key), (s, mech, key))               \
    X(C_SignRecover, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,    \
                      CK_BYTE_PTR out, CK_ULONG_PTR out_len),                  \
      (s, in, in_len, out, out_len))                                           \
    X(C_VerifyInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,               \
                     CK_OBJECT_HANDLE key), (s, mech, key))                    \
    X(C_Verify, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len,         \
                 CK_BYTE_PTR sig, CK_ULONG sig_len),                           \
      (s, in, in_len, sig, sig_len))                                           \
    X(C_VerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len),  \
      (s, in, in_len))                                                         \
    X(C_VerifyFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len), \
      (s, sig, sig_len))                                                       \
    X(C_VerifyRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,        \
                            CK_OBJECT_HANDLE key), (s, mech, key))             \
    X(C_VerifyRecover, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig,                  \
                        CK_ULONG sig_len, CK_BYTE_PTR out,                     \
                        CK_ULONG_PTR out_len), (s, sig, sig_len, out, out_len))\
    X(C_DigestEncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in,             \
                              CK_ULONG in_len, CK_BYTE_PTR out,                \
                              CK_ULONG_PTR out_len),                           \
      (s, in, in_len, out, out_len))                                           \
    X(C_DecryptDigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in,             \
                              CK_ULONG in_len, CK_BYTE_PTR out,                \
                              CK_ULONG_PTR out_len),                           \
      (s, in, in_len, out, out_len))                                           \
    X(C_SignEncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in,               \
                            CK_ULONG in_len, CK_BYTE_PTR out,                  \
                            CK_ULONG_PTR out_len),                             \
      (s, in, in_len, out, out_len))                                           \
    X(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in,             \
                              CK_ULONG in_len, CK_BYTE_PTR out,                \
                              CK_ULONG_PTR out_len),                           \
      (s, in, in_len, out, out_len))                                           \
    X(C_GenerateKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,              \
                      CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,                   \
                      CK_OBJECT_HANDLE_PTR key), (s, mech, tmpl, count, key))  \
    X(C_GenerateKeyPair, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,          \
                          CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_count,       \
                          CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_count,     \
                          CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv),\
      (s, mech, pub_tmpl, pub_count, priv_tmpl, priv_count, pub, priv))        \
    X(C_WrapKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,                  \
                  CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,             \
                  CK_BYTE_PTR out, CK_ULONG_PTR out_len),                      \
      (s, mech, wrapping, key, out, out_len))                                  \
    X(C_UnwrapKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,                \
                    CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in,               \
                    CK_ULONG in_len, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,    \
                    CK_OBJECT_HANDLE_PTR key),                                 \
      (s, mech, unwrapping, in, in_len, tmpl, count, key))                     \
    X(C_DeriveKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech,                \
                    CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR tmpl,              \
                    CK_ULONG count, CK_OBJECT_HANDLE_PTR key),                 \
      (s, mech, base, tmpl, count, key))                                       \
    X(C_SeedRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR seed, CK_ULONG len),     \
      (s, seed, len))                                                          \
    X(C_GenerateRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG len),  \
      (s, out, len))                                                           \
    X(C_GetFunctionStatus, (CK_SESSION_HANDLE s), (s))                         \
    X(C_CancelFunction, (CK_SESSION_HANDLE s), (s))

#define SHIM_ENUM_OVERRIDDEN(name, params) SHIM_FN_##name,
#define SHIM_ENUM_FORWARDED(name, params, args) SHIM_FN_##name,
enum shim_fn {
    SHIM_OVERRIDDEN(SHIM_ENUM_OVERRIDDEN)
    SHIM_FORWARDED(SHIM_ENUM_FORWARDED)
    SHIM_FN_COUNT
};

#define SHIM_NAME_OVERRIDDEN(name, params) [SHIM_FN_##name] = #name,
#define SHIM_NAME_FORWARDED(name, params, args) [SHIM_FN_##name] = #name,
static const char *const shim_fn_names[SHIM_FN_COUNT] = {
    SHIM_OVERRIDDEN(SHIM_NAME_OVERRIDDEN)
    SHIM_FORWARDED(SHIM_NAME_FORWARDED)
};

/* ------------------------------------------------------------------------
 * Name tables, so tests can write symbolic names in the environment.
 * ------------------------------------------------------------------------ */

struct name_value {
    const char *name;
    CK_ULONG value;
};

#define NV(x) { #x, x }

static const struct name_value rv_names[] = {
    NV(CKR_OK), NV(CKR_CANCEL), NV(CKR_HOST_MEMORY), NV(CKR_SLOT_ID_INVALID),
    NV(CKR_GENERAL_ERROR), NV(CKR_FUNCTION_FAILED), NV(CKR_ARGUMENTS_BAD),
    NV(CKR_NO_EVENT), NV(CKR_NEED_TO_CREATE_THREADS), NV(CKR_CANT_LOCK),
    NV(CKR_ATTRIBUTE_READ_ONLY), NV(CKR_ATTRIBUTE_SENSITIVE),
    NV(CKR_ATTRIBUTE_TYPE_INVALID), NV(CKR_ATTRIBUTE_VALUE_INVALID),
    NV(CKR_ACTION_PROHIBITED), NV(CKR_DATA_INVALID), NV(CKR_DATA_LEN_RANGE),
    NV(CKR_DEVICE_ERROR), NV(CKR_DEVICE_MEMORY), NV(CKR_DEVICE_REMOVED),
    NV(CKR_ENCRYPTED_DATA_INVALID), NV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    NV(CKR_FUNCTION_CANCELED), NV(CKR_FUNCTION_NOT_PARALLEL),
    NV(CKR_FUNCTION_NOT_SUPPORTED), NV(CKR_KEY_HANDLE_INVALID),
    NV(CKR_KEY_SIZE_RANGE), NV(CKR_KEY_TYPE_INCONSISTENT),
    NV(CKR_KEY_NOT_NEEDED), NV(CKR_KEY_CHANGED), NV(CKR_KEY_NEEDED),
    NV(CKR_KEY_INDIGESTIBLE), NV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    NV(CKR_KEY_NOT_WRAPPABLE), NV(CKR_KEY_UNEXTRACTABLE),
    NV(CKR_MECHANISM_INVALID), NV(CKR_MECHANISM_PARAM_INVALID),
    NV(CKR_OBJECT_HANDLE_INVALID), NV(CKR_OPERATION_ACTIVE),
    NV(CKR_OPERATION_NOT_INITIALIZED), NV(CKR_PIN_INCORRECT),
    NV(CKR_PIN_INVALID), NV(CKR_PIN_LEN_RANGE), NV(CKR_PIN_EXPIRED),
    NV(CKR_PIN_LOCKED), NV(CKR_SESSION_CLOSED), NV(CKR_SESSION_COUNT),
    NV(CKR_SESSION_HANDLE_INVALID), NV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    NV(CKR_SESSION_READ_ONLY), NV(CKR_SESSION_EXISTS),
    NV(CKR_SESSION_READ_ONLY_EXISTS), NV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    NV(CKR_SIGNATURE_INVALID), NV(CKR_SIGNATURE_LEN_RANGE),
    NV(CKR_TEMPLATE_INCOMPLETE), NV(CKR_TEMPLATE_INCONSISTENT),
    NV(CKR_TOKEN_NOT_PRESENT), NV(CKR_TOKEN_NOT_RECOGNIZED),
    NV(CKR_TOKEN_WRITE_PROTECTED), NV(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    NV(CKR_UNWRAPPING_KEY_SIZE_RANGE), NV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    NV(CKR_USER_ALREADY_LOGGED_IN), NV(CKR_USER_NOT_LOGGED_IN),
    NV(CKR_USER_PIN_NOT_INITIALIZED), NV(CKR_USER_TYPE_INVALID),
    NV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN), NV(CKR_USER_TOO_MANY_TYPES),
    NV(CKR_WRAPPED_KEY_INVALID), NV(CKR_WRAPPED_KEY_LEN_RANGE),
    NV(CKR_WRAPPING_KEY_HANDLE_INVALID), NV(CKR_WRAPPING_KEY_SIZE_RANGE),
    NV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT), NV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    NV(CKR_RANDOM_NO_RNG), NV(CKR_DOMAIN_PARAMS_INVALID),
    NV(CKR_CURVE_NOT_SUPPORTED), NV(CKR_BUFFER_TOO_SMALL),
    NV(CKR_SAVED_STATE_INVALID), NV(CKR_INFORMATION_SENSITIVE),
    NV(CKR_STATE_UNSAVEABLE), NV(CKR_CRYPTOKI_NOT_INITIALIZED),
    NV(CKR_CRYPTOKI_ALREADY_INITIALIZED), NV(CKR_MUTEX_BAD),
    NV(CKR_MUTEX_NOT_LOCKED), NV(CKR_NEW_PIN_MODE), NV(CKR_NEXT_OTP),
    NV(CKR_EXCEEDED_MAX_ITERATIONS), NV(CKR_FIPS_SELF_TEST_FAILED),
    NV(CKR_LIBRARY_LOAD_FAILED), NV(CKR_PIN_TOO_WEAK),
    NV(CKR_PUBLIC_KEY_INVALID), NV(CKR_FUNCTION_REJECTED),
    NV(CKR_VENDOR_DEFINED),
};

/* Only the mechanisms a PIV login can plausibly touch; any other one can
 * still be given as a number. */
static const struct name_value mech_names[] = {
    NV(CKM_RSA_PKCS_KEY_PAIR_GEN), NV(CKM_RSA_PKCS), NV(CKM_RSA_9796),
    NV(CKM_RSA_X_509), NV(CKM_MD5_RSA_PKCS), NV(CKM_SHA1_RSA_PKCS),
    NV(CKM_RSA_PKCS_OAEP), NV(CKM_RSA_PKCS_PSS), NV(CKM_SHA1_RSA_PKCS_PSS),
    NV(CKM_SHA224_RSA_PKCS), NV(CKM_SHA256_RSA_PKCS), NV(CKM_SHA384_RSA_PKCS),
    NV(CKM_SHA512_RSA_PKCS), NV(CKM_SHA224_RSA_PKCS_PSS),
    NV(CKM_SHA256_RSA_PKCS_PSS), NV(CKM_SHA384_RSA_PKCS_PSS),
    NV(CKM_SHA512_RSA_PKCS_PSS), NV(CKM_DSA), NV(CKM_DSA_SHA1),
    NV(CKM_MD5), NV(CKM_SHA_1), NV(CKM_SHA224), NV(CKM_SHA256),
    NV(CKM_SHA384), NV(CKM_SHA512), NV(CKM_SHA256_HMAC),
    NV(CKM_EC_KEY_PAIR_GEN), NV(CKM_ECDSA), NV(CKM_ECDSA_SHA1),
    NV(CKM_ECDSA_SHA224), NV(CKM_ECDSA_SHA256), NV(CKM_ECDSA_SHA384),
    NV(CKM_ECDSA_SHA512), NV(CKM_ECDH1_DERIVE), NV(CKM_ECDH1_COFACTOR_DERIVE),
    NV(CKM_EDDSA), NV(CKM_AES_KEY_GEN), NV(CKM_AES_ECB), NV(CKM_AES_CBC),
    NV(CKM_AES_CBC_PAD), NV(CKM_AES_GCM), NV(CKM_DES3_ECB), NV(CKM_DES3_CBC),
};

static const struct name_value pin_flag_names[] = {
    { "count_low", CKF_USER_PIN_COUNT_LOW },
    { "final_try", CKF_USER_PIN_FINAL_TRY },
    { "locked", CKF_USER_PIN_LOCKED },
    { "to_be_changed", CKF_USER_PIN_TO_BE_CHANGED },
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Symbolic name from the table, or a C number (0x... for hex). */
static bool lookup_value(const struct name_value *table, size_t n,
                         const char *text, CK_ULONG *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, text) == 0) {
            *out = table[i].value;
            return true;
        }
    }
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = v;
    return true;
}

static int lookup_fn(const char *name)
{
    for (int i = 0; i < SHIM_FN_COUNT; i++) {
        if (strcmp(shim_fn_names[i], name) == 0)
            return i;
    }
    return -1;
}

/* ------------------------------------------------------------------------
 * Module state.  A PKCS#11 module is a process-wide singleton by nature, so
 * all of it lives in this one struct.  The configuration is only written by
 * C_Initialize/C_Finalize, which PKCS#11 forbids to run concurrently with
 * other calls; the lock guards what ordinary calls change.
 * ------------------------------------------------------------------------ */

enum fault_kind { FAULT_NONE, FAULT_FAIL, FAULT_HANG, FAULT_CRASH };

struct fault {
    enum fault_kind kind;
    CK_RV rv;
};

struct shim_config {
    char log_path[4096];
    CK_UTF8CHAR pin[SHIM_MAX_PIN];
    CK_ULONG pin_len;
    CK_FLAGS pin_flags;
    bool login_already_logged_in;
    bool protected_auth;
    bool always_auth;
    bool mech_filter;
    size_t n_mechs;
    CK_MECHANISM_TYPE mechs[SHIM_MAX_MECHS];
    struct fault faults[SHIM_FN_COUNT];
};

/* A C_SignInit on a session whose operation has not ended yet; only kept
 * while P11SHIM_ALWAYS_AUTH is on, to demand the context-specific login. */
struct sign_op {
    bool used;
    bool context_login;
    CK_SESSION_HANDLE session;
};

static struct {
    pthread_mutex_t lock;
    void *dl;
    CK_FUNCTION_LIST_PTR target;
    bool initialized;
    bool fake_login_pending;
    struct shim_config cfg;
    struct sign_op ops[SHIM_MAX_SIGN_OPS];
} shim = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Some modules leave slots of their list NULL; the caller must not crash. */
#define FORWARD(name, args)                                                    \
    (shim.target->name != NULL ? shim.target->name args                        \
                               : CKR_FUNCTION_NOT_SUPPORTED)

/* ------------------------------------------------------------------------
 * Logging.  The file is reopened with O_APPEND for every line so that lines
 * survive the loading process being killed at any moment and stay whole
 * when several processes share one log.
 * ------------------------------------------------------------------------ */

static void append_text(const char *path, const char *text)
{
    if (path[0] == '\0')
        return;
    int saved_errno = errno;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, text, strlen(text));
        (void)written;
        close(fd);
    }
    errno = saved_errno;
}

static void log_event(enum shim_fn fn, const char *extra, const char *what)
{
    char line[512];
    snprintf(line, sizeof line, "%s%s%s %s\n", shim_fn_names[fn],
             extra != NULL ? " " : "", extra != NULL ? extra : "", what);
    append_text(shim.cfg.log_path, line);
}

static CK_RV log_call(enum shim_fn fn, const char *extra, CK_RV rv)
{
    char what[32];
    snprintf(what, sizeof what, "rv=0x%lx", rv);
    log_event(fn, extra, what);
    return rv;
}

/* ------------------------------------------------------------------------
 * Generic faults, applied before anything else a function does.
 * ------------------------------------------------------------------------ */

static _Noreturn void hang_forever(void)
{
    /* Sleep rather than spin: a hung token costs the test machine nothing,
     * and the helper stays killable by the watchdog under test. */
    for (;;) {
        struct timespec ts = { .tv_sec = 3600, .tv_nsec = 0 };
        nanosleep(&ts, NULL);
    }
}

static _Noreturn void crash_now(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGSEGV);
    /* The application's handler returned; a real fault would re-fault, so
     * make sure the process still dies of SIGSEGV. */
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    abort();
}

/* True when the fault table answers the call; *rv is then the answer. */
static bool fault_intercept(enum shim_fn fn, const char *extra, CK_RV *rv)
{
    const struct fault *f = &shim.cfg.faults[fn];
    switch (f->kind) {
    case FAULT_NONE:
        break;
    case FAULT_FAIL:
        *rv = f->rv;
        return true;
    case FAULT_HANG:
        log_event(fn, extra, "hang");
        hang_forever();
    case FAULT_CRASH:
        log_event(fn, extra, "crash");
        crash_now();
    }
    return false;
}

/* ------------------------------------------------------------------------
 * Configuration from the environment.  One row per variable; parsers get
 * the non-empty value and report problems in err.
 * ------------------------------------------------------------------------ */

typedef bool (*item_parser)(struct shim_config *cfg, const char *env,
                            char *item, char *err, size_t errlen);

static bool for_each_item(struct shim_config *cfg, const char *env,
                          const char *value, item_parser parse, char *err,
                          size_t errlen)
{
    char buf[SHIM_MAX_LIST];
    if (strlen(value) >= sizeof buf) {
        snprintf(err, errlen, "%s: value too long", env);
        return false;
    }
    strcpy(buf, value);
    char *save = NULL;
    for (char *item = strtok_r(buf, ", \t", &save); item != NULL;
         item = strtok_r(NULL, ", \t", &save)) {
        if (!parse(cfg, env, item, err, errlen))
            return false;
    }
    return true;
}

static bool parse_bool(const char *env, const char *value, bool *out,
                       char *err, size_t errlen)
{
    if (strcmp(value, "1") == 0 || strcmp(value, "yes") == 0 ||
        strcmp(value, "true") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(value, "0") == 0 || strcmp(value, "no") == 0 ||
        strcmp(value, "false") == 0) {
        *out = false;
        return true;
    }
    snprintf(err, errlen, "%s: expected 1 or 0, got '%.64s'", env, value);
    return false;
}

static bool parse_log(struct shim_config *cfg, const char *env,
                      const char *value, char *err, size_t errlen)
{
    if (strlen(value) >= sizeof cfg->log_path) {
        snprintf(err, errlen, "%s: path too long", env);
        return false;
    }
    strcpy(cfg->log_path, value);
    return true;
}

static bool parse_pin(struct shim_config *cfg, const char *env,
                      const char *value, char *err, size_t errlen)
{
    size_t len = strlen(value);
    if (len >= sizeof cfg->pin) {
        snprintf(err, errlen, "%s: PIN too long", env);
        return false;
    }
    memcpy(cfg->pin, value, len);
    cfg->pin_len = len;
    return true;
}

static bool parse_pin_flag_item(struct shim_config *cfg, const char *env,
                                char *item, char *err, size_t errlen)
{
    CK_ULONG flag;
    if (!lookup_value(pin_flag_names, ARRAY_LEN(pin_flag_names), item, &flag)) {
        snprintf(err, errlen, "%s: unknown flag '%.64s'", env, item);
        return false;
    }
    cfg->pin_flags |= flag;
    return true;
}

static bool parse_pin_flags(struct shim_config *cfg, const char *env,
                            const char *value, char *err, size_t errlen)
{
    return for_each_item(cfg, env, value, parse_pin_flag_item, err, errlen);
}

static bool parse_login_rv(struct shim_config *cfg, const char *env,
                           const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "already_logged_in") == 0) {
        cfg->login_already_logged_in = true;
        return true;
    }
    snprintf(err, errlen, "%s: unknown value '%.64s'", env, value);
    return false;
}

static bool parse_protected_auth(struct shim_config *cfg, const char *env,
                                 const char *value, char *err, size_t errlen)
{
    return parse_bool(env, value, &cfg->protected_auth, err, errlen);
}

static bool parse_always_auth(struct shim_config *cfg, const char *env,
                              const char *value, char *err, size_t errlen)
{
    return parse_bool(env, value, &cfg->always_auth, err, errlen);
}

static bool parse_mech_item(struct shim_config *cfg, const char *env,
                            char *item, char *err, size_t errlen)
{
    CK_ULONG mech;
    /* "none" lets a test offer a token with no usable mechanism at all. */
    if (strcmp(item, "none") == 0)
        return true;
    if (!lookup_value(mech_names, ARRAY_LEN(mech_names), item, &mech)) {
        snprintf(err, errlen, "%s: unknown mechanism '%.64s'", env, item);
        return false;
    }
    if (cfg->n_mechs >= SHIM_MAX_MECHS) {
        snprintf(err, errlen, "%s: too many mechanisms", env);
        return false;
    }
    cfg->mechs[cfg->n_mechs++] = mech;
    return true;
}

static bool parse_mechs(struct shim_config *cfg, const char *env,
                        const char *value, char *err, size_t errlen)
{
    cfg->mech_filter = true;
    return for_each_item(cfg, env, value, parse_mech_item, err, errlen);
}

/* "C_Name" or, for kinds that need one, "C_Name:CKR_NAME". */
static bool parse_fault_item(struct shim_config *cfg, const char *env,
                             char *item, enum fault_kind kind, char *err,
                             size_t errlen)
{
    char *colon = strchr(item, ':');
    if (colon != NULL)
        *colon = '\0';
    int fn = lookup_fn(item);
    if (fn < 0) {
        snprintf(err, errlen, "%s: unknown function '%.64s'", env, item);
        return false;
    }
    struct fault f = { .kind = kind, .rv = CKR_OK };
    if (kind == FAULT_FAIL) {
        if (colon == NULL) {
            snprintf(err, errlen, "%s: '%.64s' needs ':CKR_...'", env, item);
            return false;
        }
        if (!lookup_value(rv_names, ARRAY_LEN(rv_names), colon + 1, &f.rv)) {
            snprintf(err, errlen, "%s: unknown return value '%.64s'", env,
                     colon + 1);
            return false;
        }
    } else if (colon != NULL) {
        snprintf(err, errlen, "%s: '%.64s' takes no value", env, item);
        return false;
    }
    cfg->faults[fn] = f;
    return true;
}

static bool parse_fail_item(struct shim_config *cfg, const char *env,
                            char *item, char *err, size_t errlen)
{
    return parse_fault_item(cfg, env, item, FAULT_FAIL, err, errlen);
}

static bool parse_hang_item(struct shim_config *cfg, const char *env,
                            char *item, char *err, size_t errlen)
{
    return parse_fault_item(cfg, env, item, FAULT_HANG, err, errlen);
}

static bool parse_crash_item(struct shim_config *cfg, const char *env,
                             char *item, char *err, size_t errlen)
{
    return parse_fault_item(cfg, env, item, FAULT_CRASH, err, errlen);
}

static bool parse_fail(struct shim_config *cfg, const char *env,
                       const char *value, char *err, size_t errlen)
{
    return for_each_item(cfg, env, value, parse_fail_item, err, errlen);
}

static bool parse_hang(struct shim_config *cfg, const char *env,
                       const char *value, char *err, size_t errlen)
{
    return for_each_item(cfg, env, value, parse_hang_item, err, errlen);
}

static bool parse_crash(struct shim_config *cfg, const char *env,
                        const char *value, char *err, size_t errlen)
{
    return for_each_item(cfg, env, value, parse_crash_item, err, errlen);
}

/* P11SHIM_LOG comes first so that errors in the others reach the log; of
 * the fault variables the later row wins for a function named twice. */
static const struct setting {
    const char *env;
    bool (*parse)(struct shim_config *cfg, const char *env, const char *value,
                  char *err, size_t errlen);
} settings[] = {
    { "P11SHIM_LOG", parse_log },
    { "P11SHIM_PIN", parse_pin },
    { "P11SHIM_PIN_FLAGS", parse_pin_flags },
    { "P11SHIM_LOGIN_RV", parse_login_rv },
    { "P11SHIM_PROTECTED_AUTH", parse_protected_auth },
    { "P11SHIM_ALWAYS_AUTH", parse_always_auth },
    { "P11SHIM_MECHS", parse_mechs },
    { "P11SHIM_FAIL", parse_fail },
    { "P11SHIM_HANG", parse_hang },
    { "P11SHIM_CRASH", parse_crash },
};

static void config_defaults(struct shim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->pin, SHIM_DEFAULT_PIN, sizeof SHIM_DEFAULT_PIN - 1);
    cfg->pin_len = sizeof SHIM_DEFAULT_PIN - 1;
}

/* A typo in a test's environment must not silently test nothing, so any
 * unknown name fails C_Initialize and says why on stderr and in the log. */
static bool load_config(void)
{
    struct shim_config cfg;
    char err[256] = "";
    config_defaults(&cfg);
    for (size_t i = 0; i < ARRAY_LEN(settings); i++) {
        const char *value = getenv(settings[i].env);
        if (value == NULL || value[0] == '\0')
            continue;
        if (!settings[i].parse(&cfg, settings[i].env, value, err, sizeof err)) {
            char line[320];
            snprintf(line, sizeof line, "p11shim: config error: %s\n", err);
            fputs(line, stderr);
            append_text(cfg.log_path, line);
            return false;
        }
    }
    shim.cfg = cfg;
    return true;
}

static bool mech_allowed(CK_MECHANISM_TYPE mech)
{
    if (!shim.cfg.mech_filter)
        return true;
    for (size_t i = 0; i < shim.cfg.n_mechs; i++) {
        if (shim.cfg.mechs[i] == mech)
            return true;
    }
    return false;
}

static bool pin_matches(CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
    return pin != NULL && pin_len == shim.cfg.pin_len &&
           memcmp(pin, shim.cfg.pin, pin_len) == 0;
}

/* ------------------------------------------------------------------------
 * Sign operations awaiting a context-specific login (P11SHIM_ALWAYS_AUTH).
 * op_find/op_start/op_end expect shim.lock held; the helpers after them
 * take it themselves.
 * ------------------------------------------------------------------------ */

static struct sign_op *op_find(CK_SESSION_HANDLE session)
{
    for (size_t i = 0; i < SHIM_MAX_SIGN_OPS; i++) {
        if (shim.ops[i].used && shim.ops[i].session == session)
            return &shim.ops[i];
    }
    return NULL;
}

static bool op_start(CK_SESSION_HANDLE session)
{
    struct sign_op *op = op_find(session);
    for (size_t i = 0; op == NULL && i < SHIM_MAX_SIGN_OPS; i++) {
        if (!shim.ops[i].used)
            op = &shim.ops[i];
    }
    if (op == NULL)
        return false;
    op->used = true;
    op->session = session;
    op->context_login = false;
    return true;
}

static void op_end(CK_SESSION_HANDLE session)
{
    struct sign_op *op = op_find(session);
    if (op != NULL)
        memset(op, 0, sizeof *op);
}

/* A signature call "uses the key" unless it only asks for the length:
 * OpenSC answers that query for PIV cards without touching the card, so a
 * caller may ask before its context-specific login. */
static bool op_blocks_signing(CK_SESSION_HANDLE session, bool size_query)
{
    if (!shim.cfg.always_auth || size_query)
        return false;
    pthread_mutex_lock(&shim.lock);
    struct sign_op *op = op_find(session);
    bool blocked = op != NULL && !op->context_login;
    pthread_mutex_unlock(&shim.lock);
    return blocked;
}

/* PKCS#11 ends the operation on any error but CKR_BUFFER_TOO_SMALL and on
 * success unless only the length was asked for. */
static void op_after_sign(CK_SESSION_HANDLE session, CK_RV rv, bool size_query)
{
    if (!shim.cfg.always_auth)
        return;
    if (rv == CKR_BUFFER_TOO_SMALL || (rv == CKR_OK && size_query))
        return;
    pthread_mutex_lock(&shim.lock);
    op_end(session);
    pthread_mutex_unlock(&shim.lock);
}

/* Our refusal ends the operation for the application, so the target's
 * operation must end too, or the next C_SignInit would get
 * CKR_OPERATION_ACTIVE.  PKCS#11 2.40 has no cancel call: finish it into a
 * scratch buffer (an error also ends it). */
static void target_sign_abort(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                              CK_ULONG data_len, bool single_part)
{
    CK_ULONG len = 0;
    CK_RV rv = single_part
                   ? FORWARD(C_Sign, (session, data, data_len, NULL, &len))
                   : FORWARD(C_SignFinal, (session, NULL, &len));
    if (rv != CKR_OK)
        return;
    CK_BYTE_PTR buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return;
    if (single_part)
        FORWARD(C_Sign, (session, data, data_len, buf, &len));
    else
        FORWARD(C_SignFinal, (session, buf, &len));
    free(buf);
}

static void sign_refuse(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                        CK_ULONG data_len, bool single_part)
{
    target_sign_abort(session, data, data_len, single_part);
    pthread_mutex_lock(&shim.lock);
    op_end(session);
    pthread_mutex_unlock(&shim.lock);
}

/* ------------------------------------------------------------------------
 * Forwarded functions: fault table, target, log.
 * ------------------------------------------------------------------------ */

#define SHIM_DEFINE_FORWARDER(name, params, args)                              \
    static CK_RV shim_##name params                                            \
    {                                                                          \
        CK_RV rv;                                                              \
        if (!fault_intercept(SHIM_FN_##name, NULL, &rv))                       \
            rv = FORWARD(name, args);                                          \
        return log_call(SHIM_FN_##name, NULL, rv);                             \
    }
SHIM_FORWARDED(SHIM_DEFINE_FORWARDER)

/* ------------------------------------------------------------------------
 * Overridden functions.
 * ------------------------------------------------------------------------ */

static void reset_state(void)
{
    pthread_mutex_lock(&shim.lock);
    shim.initialized = false;
    shim.fake_login_pending = false;
    config_defaults(&shim.cfg);
    memset(shim.ops, 0, sizeof shim.ops);
    pthread_mutex_unlock(&shim.lock);
}

extern char **environ;

/* One line about the process that loaded us: the names (never the values)
 * of its environment variables, its ids and whether it can dump core, so
 * tests can check how pam_piv starts its card helper. */
static void log_process(void)
{
    char line[4096];
    size_t n = 0;

    if (shim.cfg.log_path[0] == '\0')
        return;
    n += (size_t)snprintf(line, sizeof line, "process uid=%u euid=%u dumpable=%d environ=",
                          (unsigned)getuid(), (unsigned)geteuid(),
                          prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    for (char **e = environ; e != NULL && *e != NULL && n < sizeof line - 2; e++) {
        size_t name_len = strcspn(*e, "=");
        if (n + name_len + 2 >= sizeof line)
            break;
        memcpy(line + n, *e, name_len);
        n += name_len;
        line[n++] = ',';
    }
    line[n++] = '\n';
    line[n] = '\0';
    append_text(shim.cfg.log_path, line);
}

static CK_RV shim_C_Initialize(CK_VOID_PTR init_args)
{
    CK_RV rv;
    pthread_mutex_lock(&shim.lock);
    bool fresh = !shim.initialized;
    pthread_mutex_unlock(&shim.lock);

    /* A second C_Initialize keeps the configuration of the first. */
    if (fresh && !load_config())
        return log_call(SHIM_FN_C_Initialize, NULL, CKR_GENERAL_ERROR);
    if (fresh)
        log_process();
    if (fault_intercept(SHIM_FN_C_Initialize, NULL, &rv))
        return log_call(SHIM_FN_C_Initialize, NULL, rv);

    rv = FORWARD(C_Initialize, (init_args));
    if (rv == CKR_OK && fresh) {
        pthread_mutex_lock(&shim.lock);
        shim.initialized = true;
        shim.fake_login_pending = shim.cfg.login_already_logged_in;
        memset(shim.ops, 0, sizeof shim.ops);
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_Initialize, NULL, rv);
}

static CK_RV shim_C_Finalize(CK_VOID_PTR reserved)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_Finalize, NULL, &rv))
        return log_call(SHIM_FN_C_Finalize, NULL, rv);
    rv = FORWARD(C_Finalize, (reserved));
    /* Logged before the reset forgets where the log is. */
    log_call(SHIM_FN_C_Finalize, NULL, rv);
    if (rv == CKR_OK || rv == CKR_CRYPTOKI_NOT_INITIALIZED)
        reset_state();
    return rv;
}

static CK_RV shim_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_GetTokenInfo, NULL, &rv))
        return log_call(SHIM_FN_C_GetTokenInfo, NULL, rv);
    rv = FORWARD(C_GetTokenInfo, (slot, info));
    if (rv == CKR_OK && info != NULL) {
        info->flags |= shim.cfg.pin_flags;
        if (shim.cfg.protected_auth)
            info->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
    }
    return log_call(SHIM_FN_C_GetTokenInfo, NULL, rv);
}

static CK_RV filtered_mechanism_list(CK_SLOT_ID slot,
                                     CK_MECHANISM_TYPE_PTR list,
                                     CK_ULONG_PTR count)
{
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;

    CK_MECHANISM_TYPE_PTR all = NULL;
    CK_ULONG n = 0;
    CK_RV rv;
    /* The target's list could change between the size query and the
     * fetch; retry a few times like any careful caller would. */
    for (int attempt = 0;; attempt++) {
        rv = FORWARD(C_GetMechanismList, (slot, NULL, &n));
        if (rv != CKR_OK)
            return rv;
        free(all);
        all = calloc(n > 0 ? n : 1, sizeof *all);
        if (all == NULL)
            return CKR_HOST_MEMORY;
        rv = FORWARD(C_GetMechanismList, (slot, all, &n));
        if (rv != CKR_BUFFER_TOO_SMALL || attempt >= 3)
            break;
    }
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }

    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        if (mech_allowed(all[i]))
            all[kept++] = all[i];
    }
    if (list == NULL) {
        rv = CKR_OK;
    } else if (*count < kept) {
        rv = CKR_BUFFER_TOO_SMALL;
    } else {
        memcpy(list, all, kept * sizeof *all);
        rv = CKR_OK;
    }
    *count = kept;
    free(all);
    return rv;
}

static CK_RV shim_C_GetMechanismList(CK_SLOT_ID slot,
                                     CK_MECHANISM_TYPE_PTR list,
                                     CK_ULONG_PTR count)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_GetMechanismList, NULL, &rv))
        return log_call(SHIM_FN_C_GetMechanismList, NULL, rv);
    if (shim.cfg.mech_filter)
        rv = filtered_mechanism_list(slot, list, count);
    else
        rv = FORWARD(C_GetMechanismList, (slot, list, count));
    return log_call(SHIM_FN_C_GetMechanismList, NULL, rv);
}

static CK_RV shim_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                     CK_MECHANISM_INFO_PTR info)
{
    CK_RV rv;
    char extra[40];
    snprintf(extra, sizeof extra, "mech=0x%lx", type);
    if (fault_intercept(SHIM_FN_C_GetMechanismInfo, extra, &rv))
        return log_call(SHIM_FN_C_GetMechanismInfo, extra, rv);
    if (!mech_allowed(type))
        rv = CKR_MECHANISM_INVALID;
    else
        rv = FORWARD(C_GetMechanismInfo, (slot, type, info));
    return log_call(SHIM_FN_C_GetMechanismInfo, extra, rv);
}

static CK_RV shim_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags,
                                CK_VOID_PTR app, CK_NOTIFY notify,
                                CK_SESSION_HANDLE_PTR session)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_OpenSession, NULL, &rv))
        return log_call(SHIM_FN_C_OpenSession, NULL, rv);
    rv = FORWARD(C_OpenSession, (slot, flags, app, notify, session));
    if (rv == CKR_OK && session != NULL) {
        /* The target may reuse a handle whose close we never saw. */
        pthread_mutex_lock(&shim.lock);
        op_end(*session);
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_OpenSession, NULL, rv);
}

static CK_RV shim_C_CloseSession(CK_SESSION_HANDLE session)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_CloseSession, NULL, &rv))
        return log_call(SHIM_FN_C_CloseSession, NULL, rv);
    rv = FORWARD(C_CloseSession, (session));
    if (rv == CKR_OK) {
        pthread_mutex_lock(&shim.lock);
        op_end(session);
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_CloseSession, NULL, rv);
}

static CK_RV shim_C_CloseAllSessions(CK_SLOT_ID slot)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_CloseAllSessions, NULL, &rv))
        return log_call(SHIM_FN_C_CloseAllSessions, NULL, rv);
    rv = FORWARD(C_CloseAllSessions, (slot));
    if (rv == CKR_OK) {
        /* Only the target knows which sessions belonged to the slot: keep
         * the ones it still knows. */
        pthread_mutex_lock(&shim.lock);
        for (size_t i = 0; i < SHIM_MAX_SIGN_OPS; i++) {
            CK_SESSION_INFO info;
            if (shim.ops[i].used &&
                FORWARD(C_GetSessionInfo, (shim.ops[i].session, &info)) !=
                    CKR_OK)
                memset(&shim.ops[i], 0, sizeof shim.ops[i]);
        }
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_CloseAllSessions, NULL, rv);
}

static CK_RV user_login(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin,
                        CK_ULONG pin_len)
{
    /* Checked first: sending a PIN to a PIN-pad token is the caller's bug
     * whatever state the token is in, and tests look for exactly that. */
    if (shim.cfg.protected_auth && pin != NULL)
        return CKR_ARGUMENTS_BAD;
    if (shim.cfg.pin_flags & CKF_USER_PIN_LOCKED)
        return CKR_PIN_LOCKED;

    pthread_mutex_lock(&shim.lock);
    bool fake = shim.fake_login_pending;
    pthread_mutex_unlock(&shim.lock);
    if (fake)
        return CKR_USER_ALREADY_LOGGED_IN;

    if (shim.cfg.protected_auth) {
        /* The "PIN pad" types the configured PIN. */
        CK_UTF8CHAR pad[SHIM_MAX_PIN];
        memcpy(pad, shim.cfg.pin, shim.cfg.pin_len);
        return FORWARD(C_Login, (session, CKU_USER, pad, shim.cfg.pin_len));
    }
    return FORWARD(C_Login, (session, CKU_USER, pin, pin_len));
}

/* SoftHSM has no always-authenticate keys, so the shim plays the token's
 * part of the context-specific login itself. */
static CK_RV context_login(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin,
                           CK_ULONG pin_len)
{
    if (shim.cfg.protected_auth && pin != NULL)
        return CKR_ARGUMENTS_BAD;

    CK_RV rv;
    pthread_mutex_lock(&shim.lock);
    struct sign_op *op = op_find(session);
    if (op == NULL)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (!shim.cfg.protected_auth && !pin_matches(pin, pin_len))
        rv = CKR_PIN_INCORRECT;
    else {
        op->context_login = true;
        rv = CKR_OK;
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

static CK_RV shim_C_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user,
                          CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
    CK_RV rv;
    char extra[40];
    snprintf(extra, sizeof extra, "user=%lu", user);
    if (fault_intercept(SHIM_FN_C_Login, extra, &rv))
        return log_call(SHIM_FN_C_Login, extra, rv);

    if (user == CKU_USER)
        rv = user_login(session, pin, pin_len);
    else if (user == CKU_CONTEXT_SPECIFIC && shim.cfg.always_auth)
        rv = context_login(session, pin, pin_len);
    else
        rv = FORWARD(C_Login, (session, user, pin, pin_len));
    return log_call(SHIM_FN_C_Login, extra, rv);
}

static CK_RV shim_C_Logout(CK_SESSION_HANDLE session)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_Logout, NULL, &rv))
        return log_call(SHIM_FN_C_Logout, NULL, rv);

    pthread_mutex_lock(&shim.lock);
    bool fake = shim.fake_login_pending;
    pthread_mutex_unlock(&shim.lock);

    /* Still forwarded, so a bad session handle is reported as usual. */
    rv = FORWARD(C_Logout, (session));
    if (fake && rv == CKR_USER_NOT_LOGGED_IN)
        rv = CKR_OK;
    if (fake && rv == CKR_OK) {
        pthread_mutex_lock(&shim.lock);
        shim.fake_login_pending = false;
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_Logout, NULL, rv);
}

static bool is_private_key(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE obj)
{
    CK_OBJECT_CLASS cls = 0;
    CK_ATTRIBUTE attr = { CKA_CLASS, &cls, sizeof cls };
    return FORWARD(C_GetAttributeValue, (session, obj, &attr, 1)) == CKR_OK &&
           attr.ulValueLen == sizeof cls && cls == CKO_PRIVATE_KEY;
}

static bool template_has(CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
                         CK_ATTRIBUTE_TYPE type)
{
    for (CK_ULONG i = 0; tmpl != NULL && i < count; i++) {
        if (tmpl[i].type == type)
            return true;
    }
    return false;
}

static bool per_attribute_rv(CK_RV rv)
{
    return rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE ||
           rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_BUFFER_TOO_SMALL;
}

/* The target is asked only for the other attributes, so its return value
 * describes exactly those; CKA_ALWAYS_AUTHENTICATE is then answered here
 * following the C_GetAttributeValue rules for one attribute. */
static CK_RV get_attributes_always_auth(CK_SESSION_HANDLE session,
                                        CK_OBJECT_HANDLE obj,
                                        CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    CK_ATTRIBUTE_PTR rest = calloc(count, sizeof *rest);
    if (rest == NULL)
        return CKR_HOST_MEMORY;
    CK_ULONG n = 0;
    for (CK_ULONG i = 0; i < count; i++) {
        if (tmpl[i].type != CKA_ALWAYS_AUTHENTICATE)
            rest[n++] = tmpl[i];
    }
    CK_RV rv = CKR_OK;
    if (n > 0)
        rv = FORWARD(C_GetAttributeValue, (session, obj, rest, n));
    if (!per_attribute_rv(rv)) {
        free(rest);
        return rv;
    }

    bool too_small = false;
    for (CK_ULONG i = 0, j = 0; i < count; i++) {
        CK_ATTRIBUTE_PTR a = &tmpl[i];
        if (a->type != CKA_ALWAYS_AUTHENTICATE) {
            a->ulValueLen = rest[j++].ulValueLen;
        } else if (a->pValue == NULL) {
            a->ulValueLen = sizeof(CK_BBOOL);
        } else if (a->ulValueLen < sizeof(CK_BBOOL)) {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            too_small = true;
        } else {
            *(CK_BBOOL *)a->pValue = CK_TRUE;
            a->ulValueLen = sizeof(CK_BBOOL);
        }
    }
    free(rest);
    if (rv == CKR_OK && too_small)
        rv = CKR_BUFFER_TOO_SMALL;
    return rv;
}

static CK_RV shim_C_GetAttributeValue(CK_SESSION_HANDLE session,
                                      CK_OBJECT_HANDLE obj,
                                      CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_GetAttributeValue, NULL, &rv))
        return log_call(SHIM_FN_C_GetAttributeValue, NULL, rv);
    if (shim.cfg.always_auth &&
        template_has(tmpl, count, CKA_ALWAYS_AUTHENTICATE) &&
        is_private_key(session, obj))
        rv = get_attributes_always_auth(session, obj, tmpl, count);
    else
        rv = FORWARD(C_GetAttributeValue, (session, obj, tmpl, count));
    return log_call(SHIM_FN_C_GetAttributeValue, NULL, rv);
}

static CK_RV shim_C_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
                             CK_OBJECT_HANDLE key)
{
    CK_RV rv;
    char extra[40] = "mech=none";
    if (mech != NULL)
        snprintf(extra, sizeof extra, "mech=0x%lx", mech->mechanism);
    if (fault_intercept(SHIM_FN_C_SignInit, extra, &rv))
        return log_call(SHIM_FN_C_SignInit, extra, rv);

    if (mech != NULL && !mech_allowed(mech->mechanism))
        return log_call(SHIM_FN_C_SignInit, extra, CKR_MECHANISM_INVALID);

    rv = FORWARD(C_SignInit, (session, mech, key));
    if (rv == CKR_OK && shim.cfg.always_auth) {
        pthread_mutex_lock(&shim.lock);
        bool tracked = op_start(session);
        pthread_mutex_unlock(&shim.lock);
        if (!tracked) {
            /* Never let a signature through unchecked. */
            target_sign_abort(session, NULL, 0, false);
            rv = CKR_DEVICE_MEMORY;
        }
    }
    return log_call(SHIM_FN_C_SignInit, extra, rv);
}

static CK_RV shim_C_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                         CK_ULONG data_len, CK_BYTE_PTR sig,
                         CK_ULONG_PTR sig_len)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_Sign, NULL, &rv))
        return log_call(SHIM_FN_C_Sign, NULL, rv);
    if (op_blocks_signing(session, sig == NULL)) {
        sign_refuse(session, data, data_len, true);
        return log_call(SHIM_FN_C_Sign, NULL, CKR_USER_NOT_LOGGED_IN);
    }
    rv = FORWARD(C_Sign, (session, data, data_len, sig, sig_len));
    op_after_sign(session, rv, sig == NULL);
    return log_call(SHIM_FN_C_Sign, NULL, rv);
}

static CK_RV shim_C_SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                               CK_ULONG part_len)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_SignUpdate, NULL, &rv))
        return log_call(SHIM_FN_C_SignUpdate, NULL, rv);
    if (op_blocks_signing(session, false)) {
        sign_refuse(session, NULL, 0, false);
        return log_call(SHIM_FN_C_SignUpdate, NULL, CKR_USER_NOT_LOGGED_IN);
    }
    rv = FORWARD(C_SignUpdate, (session, part, part_len));
    /* An update that succeeded leaves the operation running. */
    if (rv != CKR_OK)
        op_after_sign(session, rv, false);
    return log_call(SHIM_FN_C_SignUpdate, NULL, rv);
}

static CK_RV shim_C_SignFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR sig,
                              CK_ULONG_PTR sig_len)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_SignFinal, NULL, &rv))
        return log_call(SHIM_FN_C_SignFinal, NULL, rv);
    if (op_blocks_signing(session, sig == NULL)) {
        sign_refuse(session, NULL, 0, false);
        return log_call(SHIM_FN_C_SignFinal, NULL, CKR_USER_NOT_LOGGED_IN);
    }
    rv = FORWARD(C_SignFinal, (session, sig, sig_len));
    op_after_sign(session, rv, sig == NULL);
    return log_call(SHIM_FN_C_SignFinal, NULL, rv);
}

/* ------------------------------------------------------------------------
 * Entry point.
 * ------------------------------------------------------------------------ */

#define SHIM_LIST_OVERRIDDEN(name, params) .name = shim_##name,
#define SHIM_LIST_FORWARDED(name, params, args) .name = shim_##name,
static CK_FUNCTION_LIST shim_function_list = {
    .version = { 2, 40 },
    .C_GetFunctionList = C_GetFunctionList,
    SHIM_OVERRIDDEN(SHIM_LIST_OVERRIDDEN)
    SHIM_FORWARDED(SHIM_LIST_FORWARDED)
};

_Static_assert(sizeof(void *) == sizeof(CK_C_GetFunctionList),
               "dlsym result must fit a function pointer");

/* Loaded here and not in C_Initialize because p11-kit and others fetch the
 * function list first.  Never unloaded: SoftHSM (OpenSSL) does not survive
 * dlclose/dlopen cycles, and the list handed out must stay valid. */
static bool load_target(void)
{
    pthread_mutex_lock(&shim.lock);
    if (shim.target == NULL) {
        const char *path = getenv("P11SHIM_TARGET");
        if (path == NULL || path[0] == '\0')
            path = SHIM_DEFAULT_TARGET;
        void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (dl == NULL) {
            fprintf(stderr, "p11shim: cannot load %s: %s\n", path, dlerror());
        } else {
            void *sym = dlsym(dl, "C_GetFunctionList");
            CK_C_GetFunctionList get = NULL;
            CK_FUNCTION_LIST_PTR list = NULL;
            if (sym != NULL)
                memcpy(&get, &sym, sizeof get);
            /* Pointing P11SHIM_TARGET at the shim would recurse forever. */
            if (get == NULL || get == C_GetFunctionList ||
                get(&list) != CKR_OK || list == NULL) {
                fprintf(stderr, "p11shim: %s is not a usable PKCS#11 module\n",
                        path);
                dlclose(dl);
            } else {
                shim.dl = dl;
                shim.target = list;
            }
        }
    }
    bool ok = shim.target != NULL;
    pthread_mutex_unlock(&shim.lock);
    return ok;
}

/* Exported even if the build hides symbols by default: it is the one name
 * a PKCS#11 loader looks up. */
__attribute__((visibility("default")))
CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (list == NULL)
        return CKR_ARGUMENTS_BAD;
    if (!load_target())
        return CKR_GENERAL_ERROR;
    *list = &shim_function_list;
    return CKR_OK;
}
