/* p11shim: test-only PKCS#11 module that forwards every call to a real one
 * (SoftHSM2 by default) and, as P11SHIM_* variables ask, lies about PIN state,
 * mechanisms, slots, objects, lengths and signatures or injects failures,
 * hangs, crashes and a card pulled mid-login.
 *
 * Every knob is off while its variable is unset or empty (but
 * P11SHIM_PRESENCE_LABEL, which must not be empty), and any of them
 * combine.  A value the shim cannot parse fails C_Initialize with
 * CKR_GENERAL_ERROR and says why on stderr and in the log.  Lists are
 * separated by commas.  RV is a CKR_* name or a number (0x32); N counts the
 * calls of one function since C_Initialize, from 1, including calls that
 * fail and size queries.  "Real" below means what SoftHSM holds.
 *
 * P11SHIM_TARGET=PATH  the module to forward to (default: SoftHSM2).
 * P11SHIM_LOG=PATH     appends a "process ..." line at C_Initialize, then
 *                      "C_Name [extra ]rv=0x..." for every call, "C_Name lie:
 *                      ..." for every lie told and "C_Name [extra ]hang",
 *                      "crash" and "card removed" events.
 * P11SHIM_PIN=PIN      the PIN the PIN pad types and that the shim's own
 *                      logins check (context-specific, fake tokens); 123456.
 * P11SHIM_PIN_FLAGS=count_low,final_try,locked,to_be_changed
 *                      ORed into the real tokens' C_GetTokenInfo flags;
 *                      "locked" also makes C_Login(CKU_USER) CKR_PIN_LOCKED.
 * P11SHIM_LOGIN_RV=already_logged_in
 *                      C_Login(CKU_USER) answers CKR_USER_ALREADY_LOGGED_IN
 *                      without logging in, until the first C_Logout (which
 *                      then succeeds).
 * P11SHIM_PROTECTED_AUTH=1
 *                      real tokens claim a PIN pad: C_Login with a PIN is
 *                      CKR_ARGUMENTS_BAD, with NULL the pad types P11SHIM_PIN.
 * P11SHIM_ALWAYS_AUTH=1
 *                      private keys claim CKA_ALWAYS_AUTHENTICATE; after
 *                      C_SignInit, signing needs C_Login(CKU_CONTEXT_SPECIFIC)
 *                      with P11SHIM_PIN or is CKR_USER_NOT_LOGGED_IN.
 * P11SHIM_MECHS=CKM_...,...|none
 *                      C_GetMechanismList/Info and C_SignInit know only these.
 * P11SHIM_FAIL=C_Name:RV[:N],...
 *                      C_Name returns RV without reaching the target: on
 *                      every call, or only on its Nth.  Any function but
 *                      C_GetFunctionList, any RV (CKR_OK included).  When
 *                      RV ends a signing operation for the caller (C_Sign,
 *                      C_SignUpdate, C_SignFinal), the shim ends the
 *                      target's too.
 * P11SHIM_HANG=C_Name[:N],...   C_Name (its Nth call) sleeps forever.
 * P11SHIM_CRASH=C_Name[:N],...  C_Name (its Nth call) dies of SIGSEGV.
 *                      Of several rules matching one call the last one
 *                      listed wins, FAIL before HANG before CRASH.
 * P11SHIM_REMOVED_AFTER=C_Name[:N]
 *                      once C_Name has returned CKR_OK for a real slot or
 *                      session (on its Nth call or later), the real tokens
 *                      are gone: C_GetSlotList(TRUE) omits the real slots,
 *                      C_GetSlotInfo clears CKF_TOKEN_PRESENT; C_GetTokenInfo,
 *                      C_OpenSession, C_InitToken and C_GetMechanismList/Info
 *                      return CKR_TOKEN_NOT_PRESENT; every other call that
 *                      names a session returns P11SHIM_REMOVED_RV.
 *                      C_CloseSession, C_CloseAllSessions, C_GetInfo and
 *                      C_Finalize still reach the target, so callers can
 *                      clean up.  Fake slots stay.
 *                      Lasts until C_Finalize; counts as "absent" below.
 * P11SHIM_REMOVED_RV=RV  default CKR_DEVICE_REMOVED; CKR_SESSION_HANDLE_INVALID
 *                      is what PKCS#11 itself prescribes.  OpenSC answers
 *                      both: CKR_DEVICE_REMOVED from a call that reaches the
 *                      card before the module has noticed the removal, and
 *                      CKR_SESSION_HANDLE_INVALID once a slot call
 *                      (C_GetSlotList, C_GetSlotInfo, C_WaitForSlotEvent) has
 *                      noticed it and closed the slot's sessions.
 * P11SHIM_PRESENCE_FILE=PATH
 *                      where the real card is, read again (a few bytes) by
 *                      every call that depends on it, so a test can pull it
 *                      at any moment.  Missing, empty, "present" or anything
 *                      else (a trailing newline is allowed): in its reader.
 *                      "absent": gone, as with P11SHIM_REMOVED_AFTER above:
 *                      C_GetSlotList(TRUE) omits the real slots (FALSE lists
 *                      them), C_GetSlotInfo clears CKF_TOKEN_PRESENT,
 *                      C_GetTokenInfo and C_OpenSession return
 *                      CKR_TOKEN_NOT_PRESENT and calls on sessions
 *                      P11SHIM_REMOVED_RV.  "other": another card is in the
 *                      reader: C_GetTokenInfo of every real slot says label
 *                      "other card", serial "OTHERCARD0000001"; C_FindObjects
 *                      finds nothing, C_GetAttributeValue, C_GetObjectSize,
 *                      C_SetAttributeValue, C_CopyObject and C_DestroyObject
 *                      return CKR_OBJECT_HANDLE_INVALID and the C_*Init of
 *                      key operations, C_DigestKey and C_DeriveKey
 *                      CKR_KEY_HANDLE_INVALID.  Sessions belong to the card
 *                      they were opened on: once a call has seen the state
 *                      change, calls on sessions opened before return
 *                      P11SHIM_REMOVED_RV (C_CloseSession still works), and
 *                      the first C_OpenSession after it logs the token out,
 *                      so no login outlives its card.  Each change seen is
 *                      logged as "C_Name presence=STATE".  Replace the file
 *                      (write another, mv it over): "echo absent >FILE"
 *                      empties it first, and a call may read it empty.
 * P11SHIM_PRESENCE_LABEL=LABEL
 *                      two cards in two readers, only one of them pulled
 *                      or replaced: the state above (the presence file's,
 *                      and P11SHIM_REMOVED_AFTER's removal) applies only to
 *                      the real slots whose token label, as the target's
 *                      C_GetTokenInfo says it (asked once per slot, trailing
 *                      spaces removed), is LABEL; all the other real slots
 *                      stay present whatever the file says.  So
 *                      C_GetSlotList(TRUE) omits, C_GetSlotInfo,
 *                      C_GetTokenInfo and C_OpenSession refuse or lie about
 *                      only those slots; only the sessions opened on them
 *                      go stale or fail (sessions on other slots keep
 *                      working and their logins stay), and
 *                      C_WaitForSlotEvent names the first of them.  Empty,
 *                      longer than 32 bytes, ending in a blank or without
 *                      P11SHIM_PRESENCE_FILE or P11SHIM_REMOVED_AFTER: a
 *                      configuration error.
 * P11SHIM_SLOT_EVENTS=1
 *                      the shim answers C_WaitForSlotEvent with events.
 *                      Without it, C_WaitForSlotEvent is always
 *                      CKR_FUNCTION_NOT_SUPPORTED and never reaches the
 *                      target (SoftHSM2 2.6 answers that only when asked to
 *                      block, CKR_NO_EVENT to CKF_DONT_BLOCK, which
 *                      P11SHIM_FAIL=C_WaitForSlotEvent:CKR_NO_EVENT can
 *                      imitate).  An event is a change of
 *                      the card's state (present, absent, other) that any
 *                      call has seen since the previous C_WaitForSlotEvent
 *                      reported one (or since C_Initialize); it names the
 *                      first real slot with an initialized token (with
 *                      P11SHIM_PRESENCE_LABEL: with that label).  With
 *                      CKF_DONT_BLOCK: CKR_NO_EVENT or CKR_OK.  Without: the
 *                      presence file is read every 50 ms until a change; a
 *                      C_Finalize from another thread makes the call return
 *                      CKR_CRYPTOKI_NOT_INITIALIZED (C_Finalize waits up to
 *                      2 s for it to leave).  A NULL pSlot is
 *                      CKR_ARGUMENTS_BAD.  Logged as "C_WaitForSlotEvent
 *                      slot=0x... rv=0x0" when it reports one.
 * P11SHIM_FAULT_FILE=PATH
 *                      read by every call (C_GetFunctionList aside) before
 *                      anything else, and every 50 ms by a blocked
 *                      C_WaitForSlotEvent: "crash" makes it die of SIGSEGV
 *                      and "hang" sleep forever, logged as with
 *                      P11SHIM_CRASH and P11SHIM_HANG, so a test can break
 *                      a process that is already running.  Missing, empty
 *                      or anything else: nothing.
 * P11SHIM_ATTR_LEN=huge|unavailable|zero|NUMBER|grow|shrink|underfill
 *                      lies about the length of CKA_VALUE of certificates
 *                      (fake ones included).  huge (0x7fffffff),
 *                      unavailable (CK_UNAVAILABLE_INFORMATION with CKR_OK),
 *                      zero and NUMBER: the size query (pValue NULL) reports
 *                      that, reads are answered truly.  The others answer the
 *                      size query truly (L) and a read into a big enough
 *                      buffer of B bytes with CKR_OK and: grow: L bytes
 *                      written, length B+1 reported (more than the buffer);
 *                      shrink: L/2 bytes written and reported; underfill:
 *                      L/2 bytes written, L reported, the rest of the buffer
 *                      left as it was.
 * P11SHIM_CERT=truncated|garbage|other:PATH
 *                      CKA_VALUE of every real certificate is its first half,
 *                      as many pseudo-random bytes (the same every run), or
 *                      the DER file PATH (read at C_Initialize, up to 1 MiB).
 *                      Only CKA_VALUE changes (CKA_SUBJECT and the like stay
 *                      the real ones); ATTR_LEN then lies about this value.
 * P11SHIM_SIG=short|long|zeros|other
 *                      C_Sign and C_SignFinal, when they return a signature
 *                      of L bytes: short reports L-1; long reports L+1 (the
 *                      extra byte, 0, written only if the buffer has room);
 *                      zeros overwrites it with L zero bytes; other signs,
 *                      with the real key and mechanism, the caller's data
 *                      with its last byte inverted (C_Sign; a 1-byte message
 *                      for empty data) or with "p11shim" appended
 *                      (C_SignFinal), a valid signature of another message.
 *                      Size queries are answered truly.
 * P11SHIM_SLOTS=N[:first|:last]
 *                      N more slots (up to 1024), listed before (default) or
 *                      after the real ones, each holding an initialized,
 *                      empty token "p11shim empty I" that opens sessions,
 *                      takes P11SHIM_PIN, offers no mechanism and finds no
 *                      object.  Other calls naming their sessions are
 *                      forwarded, and the target rejects the handle.
 * P11SHIM_OBJECTS=N[:first|:last][:PATH]
 *                      C_FindObjects on real tokens also finds N (up to
 *                      65535) X.509 certificate objects answered by the shim,
 *                      after (default) or before the real ones, if they
 *                      match the template: CKA_ID f1 HH LL (I = 0x HHLL),
 *                      CKA_LABEL "p11shim extra certificate I", CKA_VALUE
 *                      768 pseudo-random bytes (distinct for each) or the
 *                      DER file PATH.
 * Fake slots are 0xf1510000 + I, fake sessions 0xf15e0000 + I, fake objects
 * 0xf10b0000 + I.  Should the target hand out one of those handles itself,
 * the call fails with CKR_GENERAL_ERROR rather than mix the two up. */

#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define SHIM_DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"
#define SHIM_DEFAULT_PIN "123456"
#define SHIM_MAX_MECHS 64
#define SHIM_MAX_SIGN_OPS 64
#define SHIM_MAX_PIN 256
#define SHIM_MAX_LIST 4096
#define SHIM_MAX_RULES 64
#define SHIM_MAX_DER (1024UL * 1024UL)
#define SHIM_MAX_FAKE_SLOTS 1024UL
#define SHIM_MAX_FAKE_SESSIONS 1024UL
#define SHIM_MAX_FAKE_OBJECTS 65535UL
#define SHIM_MAX_FINDS 64
#define SHIM_MAX_LABEL_SLOTS 64
#define SHIM_GARBAGE_LEN 768UL
#define SHIM_ATTR_HUGE 0x7fffffffUL

/* Far from SoftHSM's handles (small counters); collisions are checked. */
#define SHIM_FAKE_SLOT_BASE 0xf1510000UL
#define SHIM_FAKE_SESSION_BASE 0xf15e0000UL
#define SHIM_FAKE_OBJECT_BASE 0xf10b0000UL

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
    X(C_GetSlotList, (CK_BBOOL present, CK_SLOT_ID_PTR list,                   \
                      CK_ULONG_PTR count))                                     \
    X(C_GetSlotInfo, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info))                 \
    X(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info))               \
    X(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,        \
                           CK_ULONG_PTR count))                                \
    X(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type,            \
                           CK_MECHANISM_INFO_PTR info))                        \
    X(C_OpenSession, (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,        \
                      CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session))        \
    X(C_CloseSession, (CK_SESSION_HANDLE session))                             \
    X(C_CloseAllSessions, (CK_SLOT_ID slot))                                   \
    X(C_GetSessionInfo, (CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info)) \
    X(C_Login, (CK_SESSION_HANDLE session, CK_USER_TYPE user,                  \
                CK_UTF8CHAR_PTR pin, CK_ULONG pin_len))                        \
    X(C_Logout, (CK_SESSION_HANDLE session))                                   \
    X(C_GetAttributeValue, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE obj,   \
                            CK_ATTRIBUTE_PTR tmpl, CK_ULONG count))            \
    X(C_FindObjectsInit, (CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl,    \
                          CK_ULONG count))                                     \
    X(C_FindObjects, (CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objs,    \
                      CK_ULONG max, CK_ULONG_PTR found))                       \
    X(C_FindObjectsFinal, (CK_SESSION_HANDLE session))                         \
    X(C_SignInit, (CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,           \
                   CK_OBJECT_HANDLE key))                                      \
    X(C_Sign, (CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, \
               CK_BYTE_PTR sig, CK_ULONG_PTR sig_len))                         \
    X(C_SignUpdate, (CK_SESSION_HANDLE session, CK_BYTE_PTR part,              \
                     CK_ULONG part_len))                                       \
    X(C_SignFinal, (CK_SESSION_HANDLE session, CK_BYTE_PTR sig,                \
                    CK_ULONG_PTR sig_len))                                     \
    X(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot,                \
                           CK_VOID_PTR reserved))

#define SHIM_FORWARDED(X)                                                      \
    X(C_GetInfo, (CK_INFO_PTR info), (info))                                   \
    X(C_InitToken, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,    \
                    CK_UTF8CHAR_PTR label), (slot, pin, pin_len, label))       \
    X(C_InitPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len), \
      (s, pin, pin_len))                                                       \
    X(C_SetPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old_pin,                 \
                 CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len), \
      (s, old_pin, old_len, new_pin, new_len))                                 \
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

struct fault_rule {
    enum shim_fn fn;
    enum fault_kind kind;
    CK_RV rv;
    unsigned long nth; /* 0: every call */
};

enum attr_len_lie {
    ATTR_LEN_TRUE,
    ATTR_LEN_SIZE, /* the size query reports attr_size */
    ATTR_LEN_GROW,
    ATTR_LEN_SHRINK,
    ATTR_LEN_UNDERFILL,
};

enum cert_lie { CERT_TRUE, CERT_TRUNCATED, CERT_GARBAGE, CERT_OTHER };

enum sig_lie { SIG_TRUE, SIG_SHORT, SIG_LONG, SIG_ZEROS, SIG_OTHER };

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
    size_t n_rules;
    struct fault_rule rules[SHIM_MAX_RULES];
    bool removed_after;
    enum shim_fn removed_fn;
    unsigned long removed_nth;
    CK_RV removed_rv;
    enum attr_len_lie attr_len;
    CK_ULONG attr_size;
    enum cert_lie cert;
    CK_BYTE_PTR cert_der; /* heap; P11SHIM_CERT=other:PATH */
    CK_ULONG cert_der_len;
    enum sig_lie sig;
    CK_ULONG fake_slots;
    bool fake_slots_last;
    CK_ULONG fake_objects;
    bool fake_objects_first;
    CK_BYTE_PTR object_der; /* heap; P11SHIM_OBJECTS=N:PATH */
    CK_ULONG object_der_len;
    char presence_path[4096]; /* P11SHIM_PRESENCE_FILE */
    char fault_path[4096];    /* P11SHIM_FAULT_FILE */
    char presence_label[33];  /* P11SHIM_PRESENCE_LABEL; "": every slot */
    bool slot_events;
};

/* Where the real card is (P11SHIM_PRESENCE_FILE, P11SHIM_REMOVED_AFTER). */
enum presence { PRESENCE_PRESENT, PRESENCE_ABSENT, PRESENCE_OTHER };

/* A session on a real token while P11SHIM_PRESENCE_FILE or
 * P11SHIM_PRESENCE_LABEL is on, the card state (epoch) it was opened in
 * and its slot. */
struct real_session {
    CK_SESSION_HANDLE handle;
    unsigned long epoch;
    CK_SLOT_ID slot;
};

/* P11SHIM_PRESENCE_LABEL: whether a real slot's token has the label. */
struct slot_label {
    CK_SLOT_ID slot;
    bool matches;
};

/* A C_SignInit on a session whose operation has not ended yet; only kept
 * while P11SHIM_ALWAYS_AUTH is on, to demand the context-specific login. */
struct sign_op {
    bool used;
    bool context_login;
    CK_SESSION_HANDLE session;
};

/* A session on one of the P11SHIM_SLOTS tokens; its handle is
 * SHIM_FAKE_SESSION_BASE plus its index. */
struct fake_session {
    bool used;
    bool finding;
    CK_SLOT_ID slot;
    CK_FLAGS flags;
};

/* A C_FindObjectsInit on a real session while P11SHIM_OBJECTS is on: the
 * fake objects that matched its template, served before or after the
 * target's own. */
struct object_find {
    bool used;
    bool target_done;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE_PTR matches; /* heap */
    CK_ULONG n_matches;
    CK_ULONG next;
};

static struct {
    pthread_mutex_t lock;
    void *dl;
    CK_FUNCTION_LIST_PTR target;
    bool initialized;
    bool fake_login_pending;
    bool card_removed;
    unsigned long calls[SHIM_FN_COUNT];
    struct shim_config cfg;
    struct sign_op ops[SHIM_MAX_SIGN_OPS];
    struct fake_session fake_sessions[SHIM_MAX_FAKE_SESSIONS];
    bool fake_logged_in[SHIM_MAX_FAKE_SLOTS];
    struct object_find finds[SHIM_MAX_FINDS];
    /* The card state last seen, and how many changes were seen since
     * C_Initialize; what C_WaitForSlotEvent last reported and which epoch
     * C_OpenSession last logged the token out in. */
    enum presence presence;
    unsigned long epoch;
    unsigned long wait_epoch;
    unsigned long logout_epoch;
    CK_SLOT_ID event_slot;
    struct real_session *sessions; /* heap */
    size_t n_sessions;
    size_t cap_sessions;
    struct slot_label labels[SHIM_MAX_LABEL_SLOTS];
    size_t n_labels;
} shim = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* For a C_WaitForSlotEvent blocked in another thread, which C_Finalize must
 * wake without taking shim.lock from under it: live is cleared first, then
 * C_Finalize waits for the waiters to leave before it resets anything. */
static struct {
    atomic_bool live;
    atomic_int waiters;
} slot_wait;

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

/* Every lie is logged, so a test can tell that its fault really fired. */
__attribute__((format(printf, 2, 3)))
static void log_lie(enum shim_fn fn, const char *fmt, ...)
{
    char what[200] = "lie: ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what + 5, sizeof what - 5, fmt, ap);
    va_end(ap);
    log_event(fn, NULL, what);
}

/* P11SHIM_REMOVED_AFTER: the card goes once the named call has succeeded. */
static void note_success(enum shim_fn fn, const char *extra)
{
    if (!shim.cfg.removed_after || fn != shim.cfg.removed_fn)
        return;
    pthread_mutex_lock(&shim.lock);
    bool now = !shim.card_removed && shim.calls[fn] >= shim.cfg.removed_nth;
    if (now)
        shim.card_removed = true;
    pthread_mutex_unlock(&shim.lock);
    if (now)
        log_event(fn, extra, "card removed");
}

/* For the answers of fake slots and sessions, which have no card to pull. */
static CK_RV log_fake(enum shim_fn fn, const char *extra, CK_RV rv)
{
    char what[32];
    snprintf(what, sizeof what, "rv=0x%lx", rv);
    log_event(fn, extra, what);
    return rv;
}

static CK_RV log_call(enum shim_fn fn, const char *extra, CK_RV rv)
{
    log_fake(fn, extra, rv);
    if (rv == CKR_OK)
        note_success(fn, extra);
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

/* The content of a small file without trailing blanks and newlines, for
 * P11SHIM_PRESENCE_FILE and P11SHIM_FAULT_FILE; false if it cannot be
 * read.  Cheap enough for every call, and errno is the caller's. */
static bool read_word(const char *path, char *buf, size_t size)
{
    int saved_errno = errno;
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        do
            n = read(fd, buf, size - 1);
        while (n < 0 && errno == EINTR);
        close(fd);
    }
    errno = saved_errno;
    if (n < 0)
        return false;
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL)
        n--;
    buf[n] = '\0';
    return true;
}

/* P11SHIM_FAULT_FILE: a hang or crash asked for while the process runs. */
static void fault_file_check(enum shim_fn fn, const char *extra)
{
    char word[16];
    if (shim.cfg.fault_path[0] == '\0' ||
        !read_word(shim.cfg.fault_path, word, sizeof word))
        return;
    if (strcmp(word, "hang") == 0) {
        log_event(fn, extra, "hang");
        hang_forever();
    }
    if (strcmp(word, "crash") == 0) {
        log_event(fn, extra, "crash");
        crash_now();
    }
}

/* Counts the call, then: true when a fault rule answers it; *rv is then
 * the answer.  Every shim_C_* function starts here. */
static bool fault_intercept(enum shim_fn fn, const char *extra, CK_RV *rv)
{
    pthread_mutex_lock(&shim.lock);
    unsigned long call = ++shim.calls[fn];
    pthread_mutex_unlock(&shim.lock);
    fault_file_check(fn, extra);

    const struct fault_rule *hit = NULL;
    for (size_t i = 0; i < shim.cfg.n_rules; i++) {
        const struct fault_rule *r = &shim.cfg.rules[i];
        if (r->fn == fn && (r->nth == 0 || r->nth == call))
            hit = r;
    }
    if (hit == NULL)
        return false;
    switch (hit->kind) {
    case FAULT_NONE:
        break;
    case FAULT_FAIL:
        *rv = hit->rv;
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

/* What the presence file says, P11SHIM_REMOVED_AFTER overriding it.
 * Expects shim.lock held, so that calls in several threads see the
 * changes in the order the file went through them. */
static enum presence presence_read_locked(void)
{
    char word[16];
    if (shim.card_removed)
        return PRESENCE_ABSENT;
    if (shim.cfg.presence_path[0] == '\0' ||
        !read_word(shim.cfg.presence_path, word, sizeof word))
        return PRESENCE_PRESENT;
    if (strcmp(word, "absent") == 0)
        return PRESENCE_ABSENT;
    if (strcmp(word, "other") == 0)
        return PRESENCE_OTHER;
    return PRESENCE_PRESENT;
}

static const char *const presence_events[] = {
    [PRESENCE_PRESENT] = "presence=present",
    [PRESENCE_ABSENT] = "presence=absent",
    [PRESENCE_OTHER] = "presence=other",
};

/* Where the card is now; a change is counted in shim.epoch and logged.
 * *epoch (if not NULL) is the count after this look. */
static enum presence presence_now(enum shim_fn fn, unsigned long *epoch)
{
    pthread_mutex_lock(&shim.lock);
    enum presence p = presence_read_locked();
    bool changed = p != shim.presence;
    if (changed) {
        shim.presence = p;
        shim.epoch++;
    }
    if (epoch != NULL)
        *epoch = shim.epoch;
    pthread_mutex_unlock(&shim.lock);
    if (changed && shim.cfg.presence_path[0] != '\0')
        log_event(fn, NULL, presence_events[p]);
    return p;
}

/* Where the card was at the last look, without looking again. */
static enum presence presence_seen(void)
{
    pthread_mutex_lock(&shim.lock);
    enum presence p = shim.presence;
    pthread_mutex_unlock(&shim.lock);
    return p;
}

/* Whether the session was opened on a card that has left since (only
 * sessions opened while P11SHIM_PRESENCE_FILE is on are known). */
static bool session_stale(CK_SESSION_HANDLE session, unsigned long epoch)
{
    bool stale = false;
    pthread_mutex_lock(&shim.lock);
    for (size_t i = 0; i < shim.n_sessions; i++) {
        if (shim.sessions[i].handle == session) {
            stale = shim.sessions[i].epoch != epoch;
            break;
        }
    }
    pthread_mutex_unlock(&shim.lock);
    return stale;
}

/* Whether the card's state applies to this real slot: always, unless
 * P11SHIM_PRESENCE_LABEL names another token than the one the target has
 * in it.  The target is asked once per slot (labels do not change while
 * the tests run); a slot it cannot answer for does not match. */
static bool label_matches(CK_SLOT_ID slot)
{
    const char *label = shim.cfg.presence_label;
    if (label[0] == '\0')
        return true;
    pthread_mutex_lock(&shim.lock);
    for (size_t i = 0; i < shim.n_labels; i++) {
        if (shim.labels[i].slot == slot) {
            bool matches = shim.labels[i].matches;
            pthread_mutex_unlock(&shim.lock);
            return matches;
        }
    }
    pthread_mutex_unlock(&shim.lock);

    CK_TOKEN_INFO info;
    if (FORWARD(C_GetTokenInfo, (slot, &info)) != CKR_OK)
        return false;
    size_t len = sizeof info.label;
    while (len > 0 && (info.label[len - 1] == ' ' || info.label[len - 1] == '\0'))
        len--;
    bool matches = len == strlen(label) && memcmp(info.label, label, len) == 0;

    pthread_mutex_lock(&shim.lock);
    bool known = false;
    for (size_t i = 0; i < shim.n_labels; i++)
        known |= shim.labels[i].slot == slot;
    if (!known && shim.n_labels < SHIM_MAX_LABEL_SLOTS)
        shim.labels[shim.n_labels++] = (struct slot_label){ slot, matches };
    pthread_mutex_unlock(&shim.lock);
    return matches;
}

/* Whether the card's state applies to this session: always without
 * P11SHIM_PRESENCE_LABEL; with it, if the session was opened on a slot
 * with that label (a handle the shim never handed out is the target's to
 * reject). */
static bool session_follows_card(CK_SESSION_HANDLE session)
{
    if (shim.cfg.presence_label[0] == '\0')
        return true;
    bool known = false;
    CK_SLOT_ID slot = 0;
    pthread_mutex_lock(&shim.lock);
    for (size_t i = 0; i < shim.n_sessions; i++) {
        if (shim.sessions[i].handle == session) {
            known = true;
            slot = shim.sessions[i].slot;
            break;
        }
    }
    pthread_mutex_unlock(&shim.lock);
    return known && label_matches(slot);
}

/* True when this call cannot reach the real card: it is gone
 * (P11SHIM_REMOVED_AFTER, P11SHIM_PRESENCE_FILE "absent"), it is not the
 * card the session was opened on, or it is the other card, which has none
 * of the first one's objects; *rv is then the answer.  handle is the slot
 * for C_GetTokenInfo, C_GetMechanismList/Info, C_InitToken and
 * C_OpenSession and the session for the calls that name one; with
 * P11SHIM_PRESENCE_LABEL, only the slots with that label and the sessions
 * on them follow the card.  Calls for fake slots and sessions are answered
 * before this is asked. */
static bool card_gone(enum shim_fn fn, CK_ULONG handle, CK_RV *rv)
{
    switch (fn) {
    case SHIM_FN_C_Initialize:
    case SHIM_FN_C_Finalize:
    case SHIM_FN_C_GetInfo:
    case SHIM_FN_C_GetSlotList:   /* answered by hand */
    case SHIM_FN_C_GetSlotInfo:   /* answered by hand */
    case SHIM_FN_C_WaitForSlotEvent:
    case SHIM_FN_C_CloseSession:  /* the target must forget the session */
    case SHIM_FN_C_CloseAllSessions:
        return false;
    default:
        break;
    }
    unsigned long epoch;
    enum presence p = presence_now(fn, &epoch);
    switch (fn) {
    case SHIM_FN_C_GetTokenInfo:
    case SHIM_FN_C_GetMechanismList:
    case SHIM_FN_C_GetMechanismInfo:
    case SHIM_FN_C_InitToken:
    case SHIM_FN_C_OpenSession:
        if (p != PRESENCE_ABSENT || !label_matches(handle))
            return false;
        *rv = CKR_TOKEN_NOT_PRESENT;
        return true;
    default:
        break;
    }
    if ((p == PRESENCE_ABSENT || session_stale(handle, epoch)) &&
        session_follows_card(handle)) {
        *rv = shim.cfg.removed_rv;
        return true;
    }
    if (p != PRESENCE_OTHER || !session_follows_card(handle))
        return false;
    switch (fn) {
    case SHIM_FN_C_GetAttributeValue:
    case SHIM_FN_C_SetAttributeValue:
    case SHIM_FN_C_GetObjectSize:
    case SHIM_FN_C_CopyObject:
    case SHIM_FN_C_DestroyObject:
        *rv = CKR_OBJECT_HANDLE_INVALID;
        return true;
    case SHIM_FN_C_SignInit:
    case SHIM_FN_C_SignRecoverInit:
    case SHIM_FN_C_VerifyInit:
    case SHIM_FN_C_VerifyRecoverInit:
    case SHIM_FN_C_EncryptInit:
    case SHIM_FN_C_DecryptInit:
    case SHIM_FN_C_DigestKey:
    case SHIM_FN_C_DeriveKey:
        *rv = CKR_KEY_HANDLE_INVALID;
        return true;
    default:
        return false;
    }
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

static bool parse_path(const char *env, const char *value, char *path,
                       size_t size, char *err, size_t errlen)
{
    if (strlen(value) >= size) {
        snprintf(err, errlen, "%s: path too long", env);
        return false;
    }
    strcpy(path, value);
    return true;
}

static bool parse_log(struct shim_config *cfg, const char *env,
                      const char *value, char *err, size_t errlen)
{
    return parse_path(env, value, cfg->log_path, sizeof cfg->log_path, err,
                      errlen);
}

static bool parse_presence_file(struct shim_config *cfg, const char *env,
                                const char *value, char *err, size_t errlen)
{
    return parse_path(env, value, cfg->presence_path,
                      sizeof cfg->presence_path, err, errlen);
}

/* Called with an empty value too, which would match no token. */
static bool parse_presence_label(struct shim_config *cfg, const char *env,
                                 const char *value, char *err, size_t errlen)
{
    size_t len = strlen(value);
    if (len == 0) {
        snprintf(err, errlen, "%s: empty label", env);
        return false;
    }
    if (len >= sizeof cfg->presence_label) {
        snprintf(err, errlen, "%s: label longer than 32 bytes", env);
        return false;
    }
    if (value[len - 1] == ' ') {
        snprintf(err, errlen, "%s: label '%.32s' ends in a blank", env, value);
        return false;
    }
    memcpy(cfg->presence_label, value, len + 1);
    return true;
}

static bool parse_fault_file(struct shim_config *cfg, const char *env,
                             const char *value, char *err, size_t errlen)
{
    return parse_path(env, value, cfg->fault_path, sizeof cfg->fault_path,
                      err, errlen);
}

static bool parse_slot_events(struct shim_config *cfg, const char *env,
                              const char *value, char *err, size_t errlen)
{
    return parse_bool(env, value, &cfg->slot_events, err, errlen);
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


/* A decimal count in [min, max]. */
static bool parse_count(const char *text, unsigned long min, unsigned long max,
                        unsigned long *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Cuts item at each ':' into at most max fields; returns how many there
 * were, which is more than max when there were too many. */
static size_t split_fields(char *item, char **fields, size_t max)
{
    size_t n = 0;
    for (char *p = item;; n++) {
        char *colon = strchr(p, ':');
        if (n < max)
            fields[n] = p;
        if (colon == NULL)
            return n + 1;
        *colon = '\0';
        p = colon + 1;
    }
}

/* "C_Name[:N]" for hangs and crashes, "C_Name:RV[:N]" for failures. */
static bool parse_fault_item(struct shim_config *cfg, const char *env,
                             char *item, enum fault_kind kind, char *err,
                             size_t errlen)
{
    char *fields[3];
    size_t rv_fields = kind == FAULT_FAIL ? 1 : 0;
    size_t n = split_fields(item, fields, 3);
    int fn = lookup_fn(fields[0]);
    if (fn < 0) {
        snprintf(err, errlen, "%s: unknown function '%.64s'", env, fields[0]);
        return false;
    }
    if (n < 1 + rv_fields || n > 2 + rv_fields) {
        snprintf(err, errlen, "%s: expected %s, got '%.64s...'", env,
                 kind == FAULT_FAIL ? "C_Name:CKR_...[:N]" : "C_Name[:N]",
                 fields[0]);
        return false;
    }
    struct fault_rule r = { .fn = (enum shim_fn)fn, .kind = kind };
    if (kind == FAULT_FAIL &&
        !lookup_value(rv_names, ARRAY_LEN(rv_names), fields[1], &r.rv)) {
        snprintf(err, errlen, "%s: unknown return value '%.64s'", env,
                 fields[1]);
        return false;
    }
    if (n == 2 + rv_fields &&
        !parse_count(fields[n - 1], 1, ULONG_MAX, &r.nth)) {
        snprintf(err, errlen, "%s: bad call number '%.64s'", env,
                 fields[n - 1]);
        return false;
    }
    if (cfg->n_rules >= SHIM_MAX_RULES) {
        snprintf(err, errlen, "%s: too many rules", env);
        return false;
    }
    cfg->rules[cfg->n_rules++] = r;
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

static bool parse_removed_after(struct shim_config *cfg, const char *env,
                                const char *value, char *err, size_t errlen)
{
    char buf[128];
    char *fields[2];
    if (strlen(value) >= sizeof buf) {
        snprintf(err, errlen, "%s: value too long", env);
        return false;
    }
    strcpy(buf, value);
    size_t n = split_fields(buf, fields, 2);
    int fn = lookup_fn(fields[0]);
    if (fn < 0 || n > 2) {
        snprintf(err, errlen, "%s: expected C_Name[:N], got '%.64s'", env,
                 value);
        return false;
    }
    cfg->removed_nth = 1;
    if (n == 2 && !parse_count(fields[1], 1, ULONG_MAX, &cfg->removed_nth)) {
        snprintf(err, errlen, "%s: bad call number '%.64s'", env, fields[1]);
        return false;
    }
    cfg->removed_after = true;
    cfg->removed_fn = (enum shim_fn)fn;
    return true;
}

static bool parse_removed_rv(struct shim_config *cfg, const char *env,
                             const char *value, char *err, size_t errlen)
{
    if (!lookup_value(rv_names, ARRAY_LEN(rv_names), value, &cfg->removed_rv)) {
        snprintf(err, errlen, "%s: unknown return value '%.64s'", env, value);
        return false;
    }
    return true;
}

/* A whole DER file into a fresh heap buffer; the size cap keeps a wrong
 * path (a disk image, /dev/zero) from eating the test machine. */
static bool read_der(const char *env, const char *path, CK_BYTE_PTR *out,
                     CK_ULONG *out_len, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open '%.128s': %s", env, path,
                 strerror(errno));
        return false;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (unsigned long long)st.st_size > SHIM_MAX_DER) {
        snprintf(err, errlen, "%s: '%.128s' is not a regular file of 1 byte "
                 "to 1 MiB", env, path);
        close(fd);
        return false;
    }
    size_t len = (size_t)st.st_size, got = 0;
    CK_BYTE_PTR buf = malloc(len);
    while (buf != NULL && got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL || got != len) {
        snprintf(err, errlen, "%s: cannot read '%.128s'", env, path);
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = len;
    return true;
}

static bool parse_attr_len(struct shim_config *cfg, const char *env,
                           const char *value, char *err, size_t errlen)
{
    cfg->attr_len = ATTR_LEN_SIZE;
    if (strcmp(value, "huge") == 0)
        cfg->attr_size = SHIM_ATTR_HUGE;
    else if (strcmp(value, "unavailable") == 0)
        cfg->attr_size = CK_UNAVAILABLE_INFORMATION;
    else if (strcmp(value, "zero") == 0)
        cfg->attr_size = 0;
    else if (strcmp(value, "grow") == 0)
        cfg->attr_len = ATTR_LEN_GROW;
    else if (strcmp(value, "shrink") == 0)
        cfg->attr_len = ATTR_LEN_SHRINK;
    else if (strcmp(value, "underfill") == 0)
        cfg->attr_len = ATTR_LEN_UNDERFILL;
    else if (!lookup_value(NULL, 0, value, &cfg->attr_size)) {
        snprintf(err, errlen, "%s: unknown value '%.64s'", env, value);
        return false;
    }
    return true;
}

static bool parse_cert(struct shim_config *cfg, const char *env,
                       const char *value, char *err, size_t errlen)
{
    if (strcmp(value, "truncated") == 0) {
        cfg->cert = CERT_TRUNCATED;
    } else if (strcmp(value, "garbage") == 0) {
        cfg->cert = CERT_GARBAGE;
    } else if (strncmp(value, "other:", 6) == 0 && value[6] != '\0') {
        if (!read_der(env, value + 6, &cfg->cert_der, &cfg->cert_der_len, err,
                      errlen))
            return false;
        cfg->cert = CERT_OTHER;
    } else {
        snprintf(err, errlen, "%s: unknown value '%.64s'", env, value);
        return false;
    }
    return true;
}

static bool parse_sig(struct shim_config *cfg, const char *env,
                      const char *value, char *err, size_t errlen)
{
    static const struct name_value sig_names[] = {
        { "short", SIG_SHORT }, { "long", SIG_LONG },
        { "zeros", SIG_ZEROS }, { "other", SIG_OTHER },
    };
    for (size_t i = 0; i < ARRAY_LEN(sig_names); i++) {
        if (strcmp(value, sig_names[i].name) == 0) {
            cfg->sig = (enum sig_lie)sig_names[i].value;
            return true;
        }
    }
    snprintf(err, errlen, "%s: unknown value '%.64s'", env, value);
    return false;
}

/* "N[:first|:last]" and what follows after one more ':' into *rest (NULL
 * if nothing does); *first is left alone unless the value says. */
static bool parse_fake_count(const char *env, const char *value,
                             unsigned long max, CK_ULONG *count, bool *first,
                             const char **rest, char *err, size_t errlen)
{
    char digits[16];
    size_t n = strcspn(value, ":");
    if (n == 0 || n >= sizeof digits) {
        snprintf(err, errlen, "%s: expected a count, got '%.64s'", env, value);
        return false;
    }
    memcpy(digits, value, n);
    digits[n] = '\0';
    if (!parse_count(digits, 0, max, count)) {
        snprintf(err, errlen, "%s: count must be 0 to %lu, got '%.16s'", env,
                 max, digits);
        return false;
    }
    const char *p = value + n;
    *rest = NULL;
    if (*p == '\0')
        return true;
    p++;
    static const char *const places[] = { "first", "last" };
    for (size_t i = 0; i < ARRAY_LEN(places); i++) {
        size_t len = strlen(places[i]);
        if (strncmp(p, places[i], len) == 0 &&
            (p[len] == '\0' || p[len] == ':')) {
            *first = i == 0;
            p += len;
            if (*p == '\0')
                return true;
            p++;
            break;
        }
    }
    *rest = p;
    return true;
}

static bool parse_slots(struct shim_config *cfg, const char *env,
                        const char *value, char *err, size_t errlen)
{
    bool first = true;
    const char *rest = NULL;
    if (!parse_fake_count(env, value, SHIM_MAX_FAKE_SLOTS, &cfg->fake_slots,
                          &first, &rest, err, errlen))
        return false;
    if (rest != NULL) {
        snprintf(err, errlen, "%s: unexpected '%.64s'", env, rest);
        return false;
    }
    cfg->fake_slots_last = !first;
    return true;
}

static bool parse_objects(struct shim_config *cfg, const char *env,
                          const char *value, char *err, size_t errlen)
{
    bool first = false;
    const char *path = NULL;
    if (!parse_fake_count(env, value, SHIM_MAX_FAKE_OBJECTS,
                          &cfg->fake_objects, &first, &path, err, errlen))
        return false;
    cfg->fake_objects_first = first;
    if (path != NULL &&
        !read_der(env, path, &cfg->object_der, &cfg->object_der_len, err,
                  errlen))
        return false;
    return true;
}

/* P11SHIM_LOG comes first so that errors in the others reach the log; of
 * the fault variables the later row wins for a call two rules match. */
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
    { "P11SHIM_REMOVED_AFTER", parse_removed_after },
    { "P11SHIM_REMOVED_RV", parse_removed_rv },
    { "P11SHIM_ATTR_LEN", parse_attr_len },
    { "P11SHIM_CERT", parse_cert },
    { "P11SHIM_SIG", parse_sig },
    { "P11SHIM_SLOTS", parse_slots },
    { "P11SHIM_OBJECTS", parse_objects },
    { "P11SHIM_PRESENCE_FILE", parse_presence_file },
    { "P11SHIM_PRESENCE_LABEL", parse_presence_label },
    { "P11SHIM_SLOT_EVENTS", parse_slot_events },
    { "P11SHIM_FAULT_FILE", parse_fault_file },
};

static void config_defaults(struct shim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->pin, SHIM_DEFAULT_PIN, sizeof SHIM_DEFAULT_PIN - 1);
    cfg->pin_len = sizeof SHIM_DEFAULT_PIN - 1;
    cfg->removed_rv = CKR_DEVICE_REMOVED;
}

static void config_free(struct shim_config *cfg)
{
    free(cfg->cert_der);
    free(cfg->object_der);
    config_defaults(cfg);
}

/* A typo in a test's environment must not silently test nothing, so any
 * unknown name fails C_Initialize and says why on stderr and in the log. */
static bool load_config(void)
{
    struct shim_config cfg;
    char err[320] = "";
    bool ok = true;
    config_defaults(&cfg);
    for (size_t i = 0; ok && i < ARRAY_LEN(settings); i++) {
        const char *value = getenv(settings[i].env);
        /* An empty label is an error, not the knob off. */
        bool empty_too = settings[i].parse == parse_presence_label;
        if (value == NULL || (value[0] == '\0' && !empty_too))
            continue;
        ok = settings[i].parse(&cfg, settings[i].env, value, err, sizeof err);
    }
    /* A label with nothing to apply to would silently test nothing. */
    if (ok && cfg.presence_label[0] != '\0' && cfg.presence_path[0] == '\0' &&
        !cfg.removed_after) {
        snprintf(err, sizeof err, "P11SHIM_PRESENCE_LABEL needs "
                 "P11SHIM_PRESENCE_FILE or P11SHIM_REMOVED_AFTER");
        ok = false;
    }
    if (!ok) {
        char line[400];
        snprintf(line, sizeof line, "p11shim: config error: %s\n", err);
        fputs(line, stderr);
        append_text(cfg.log_path, line);
        config_free(&cfg);
        return false;
    }
    config_free(&shim.cfg);
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
 * Forwarded functions: fault table, card removal, target, log.
 * ------------------------------------------------------------------------ */

/* The first argument: the session of all of them but C_GetInfo, for which
 * card_gone does not look at it, and C_InitToken, whose slot it is. */
#define SHIM_FIRST_ARG_(first, ...) first
#define SHIM_FIRST_ARG(...) SHIM_FIRST_ARG_(__VA_ARGS__, 0)
#define SHIM_SESSION_ARG(args) ((CK_SESSION_HANDLE)(uintptr_t)(SHIM_FIRST_ARG args))

#define SHIM_DEFINE_FORWARDER(name, params, args)                              \
    static CK_RV shim_##name params                                            \
    {                                                                          \
        CK_RV rv;                                                              \
        if (!fault_intercept(SHIM_FN_##name, NULL, &rv) &&                     \
            !card_gone(SHIM_FN_##name, SHIM_SESSION_ARG(args), &rv))           \
            rv = FORWARD(name, args);                                          \
        return log_call(SHIM_FN_##name, NULL, rv);                             \
    }
SHIM_FORWARDED(SHIM_DEFINE_FORWARDER)

/* ------------------------------------------------------------------------
 * Made-up bytes, the same every run so that a failure can be replayed.
 * ------------------------------------------------------------------------ */

#define SHIM_SEED_CERT 0x9e3779b97f4a7c15ULL
#define SHIM_SEED_OBJECT 0x70313173686d0000ULL

static void fill_garbage(CK_BYTE_PTR out, CK_ULONG len, uint64_t seed)
{
    uint64_t x = seed != 0 ? seed : SHIM_SEED_CERT;
    for (CK_ULONG i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (CK_BYTE)(x >> 56);
    }
}

/* Scratch copies of card data are wiped before they are freed: glibc hands
 * a freed block straight back to the caller's next malloc, and a stale
 * copy of the real certificate there would turn "underfill" into a
 * complete, valid read.  Called through a volatile pointer so the compiler
 * cannot drop the wipe as a dead store. */
static void *(*const volatile wipe_memory)(void *, int, size_t) = memset;

static void free_wiped(void *p, size_t len)
{
    if (p != NULL)
        wipe_memory(p, 0, len);
    free(p);
}

/* Token and slot strings are space-padded, not NUL-terminated. */
static void pad_text(CK_UTF8CHAR *dst, size_t size, const char *text)
{
    size_t len = strlen(text);
    memset(dst, ' ', size);
    memcpy(dst, text, len < size ? len : size);
}

/* ------------------------------------------------------------------------
 * Fake slots (P11SHIM_SLOTS): each holds an initialized token without
 * objects or mechanisms, so a caller walks every one of them all the way
 * to an empty C_FindObjects.
 * ------------------------------------------------------------------------ */

static bool is_fake_slot(CK_SLOT_ID slot)
{
    return shim.cfg.fake_slots > 0 && slot >= SHIM_FAKE_SLOT_BASE &&
           slot - SHIM_FAKE_SLOT_BASE < shim.cfg.fake_slots;
}

/* True for every handle in the fake range, valid or not: those are never
 * the target's to judge. */
static bool fake_session_index(CK_SESSION_HANDLE session, size_t *index)
{
    if (shim.cfg.fake_slots == 0 || session < SHIM_FAKE_SESSION_BASE ||
        session - SHIM_FAKE_SESSION_BASE >= SHIM_MAX_FAKE_SESSIONS)
        return false;
    *index = session - SHIM_FAKE_SESSION_BASE;
    return true;
}

static bool is_fake_object(CK_OBJECT_HANDLE obj)
{
    return shim.cfg.fake_objects > 0 && obj >= SHIM_FAKE_OBJECT_BASE &&
           obj - SHIM_FAKE_OBJECT_BASE < shim.cfg.fake_objects;
}

static CK_RV fake_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    char text[64];
    if (info == NULL)
        return CKR_ARGUMENTS_BAD;
    memset(info, 0, sizeof *info);
    snprintf(text, sizeof text, "p11shim fake slot %lu",
             slot - SHIM_FAKE_SLOT_BASE);
    pad_text(info->slotDescription, sizeof info->slotDescription, text);
    pad_text(info->manufacturerID, sizeof info->manufacturerID, "p11shim");
    info->flags = CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
    info->hardwareVersion.major = 1;
    info->firmwareVersion.major = 1;
    return CKR_OK;
}

static CK_RV fake_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    char text[64];
    CK_ULONG index = slot - SHIM_FAKE_SLOT_BASE;
    if (info == NULL)
        return CKR_ARGUMENTS_BAD;
    memset(info, 0, sizeof *info);
    snprintf(text, sizeof text, "p11shim empty %lu", index);
    pad_text(info->label, sizeof info->label, text);
    pad_text(info->manufacturerID, sizeof info->manufacturerID, "p11shim");
    pad_text(info->model, sizeof info->model, "empty token");
    snprintf(text, sizeof text, "f1510000%08lx", index);
    pad_text(info->serialNumber, sizeof info->serialNumber, text);
    pad_text(info->utcTime, sizeof info->utcTime, "");
    info->flags = CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED |
                  CKF_USER_PIN_INITIALIZED;
    info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
    info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
    info->ulMaxPinLen = SHIM_MAX_PIN - 1;
    info->ulMinPinLen = 4;
    info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->hardwareVersion.major = 1;
    info->firmwareVersion.major = 1;
    return CKR_OK;
}

static CK_RV fake_open_session(CK_SLOT_ID slot, CK_FLAGS flags,
                               CK_SESSION_HANDLE_PTR session)
{
    if (session == NULL)
        return CKR_ARGUMENTS_BAD;
    if (!(flags & CKF_SERIAL_SESSION))
        return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    CK_RV rv = CKR_SESSION_COUNT;
    pthread_mutex_lock(&shim.lock);
    for (size_t i = 0; i < SHIM_MAX_FAKE_SESSIONS; i++) {
        struct fake_session *s = &shim.fake_sessions[i];
        if (!s->used) {
            *s = (struct fake_session){ .used = true, .slot = slot,
                                        .flags = flags };
            *session = SHIM_FAKE_SESSION_BASE + i;
            rv = CKR_OK;
            break;
        }
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

/* Expects shim.lock held.  A token forgets its login with its last
 * session. */
static void fake_session_drop(size_t index)
{
    CK_SLOT_ID slot = shim.fake_sessions[index].slot;
    memset(&shim.fake_sessions[index], 0, sizeof shim.fake_sessions[index]);
    for (size_t i = 0; i < SHIM_MAX_FAKE_SESSIONS; i++) {
        if (shim.fake_sessions[i].used && shim.fake_sessions[i].slot == slot)
            return;
    }
    shim.fake_logged_in[slot - SHIM_FAKE_SLOT_BASE] = false;
}

static CK_RV fake_close_session(size_t index)
{
    CK_RV rv = CKR_SESSION_HANDLE_INVALID;
    pthread_mutex_lock(&shim.lock);
    if (shim.fake_sessions[index].used) {
        fake_session_drop(index);
        rv = CKR_OK;
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

static CK_RV fake_close_all(CK_SLOT_ID slot)
{
    pthread_mutex_lock(&shim.lock);
    for (size_t i = 0; i < SHIM_MAX_FAKE_SESSIONS; i++) {
        if (shim.fake_sessions[i].used && shim.fake_sessions[i].slot == slot)
            fake_session_drop(i);
    }
    pthread_mutex_unlock(&shim.lock);
    return CKR_OK;
}

/* if_valid for a session that exists, or why it does not. */
static CK_RV fake_session_rv(size_t index, CK_RV if_valid)
{
    pthread_mutex_lock(&shim.lock);
    bool used = shim.fake_sessions[index].used;
    pthread_mutex_unlock(&shim.lock);
    return used ? if_valid : CKR_SESSION_HANDLE_INVALID;
}

static CK_RV fake_session_info(size_t index, CK_SESSION_INFO_PTR info)
{
    CK_RV rv = CKR_SESSION_HANDLE_INVALID;
    pthread_mutex_lock(&shim.lock);
    const struct fake_session *s = &shim.fake_sessions[index];
    if (s->used && info == NULL) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (s->used) {
        bool user = shim.fake_logged_in[s->slot - SHIM_FAKE_SLOT_BASE];
        bool rw = (s->flags & CKF_RW_SESSION) != 0;
        memset(info, 0, sizeof *info);
        info->slotID = s->slot;
        info->state = rw ? (user ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION)
                         : (user ? CKS_RO_USER_FUNCTIONS : CKS_RO_PUBLIC_SESSION);
        info->flags = s->flags;
        rv = CKR_OK;
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

static CK_RV fake_login(size_t index, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                        CK_ULONG pin_len)
{
    CK_RV rv = CKR_SESSION_HANDLE_INVALID;
    pthread_mutex_lock(&shim.lock);
    const struct fake_session *s = &shim.fake_sessions[index];
    if (s->used) {
        bool *logged_in = &shim.fake_logged_in[s->slot - SHIM_FAKE_SLOT_BASE];
        if (user == CKU_CONTEXT_SPECIFIC)
            rv = CKR_OPERATION_NOT_INITIALIZED;
        else if (user != CKU_USER)
            rv = CKR_USER_TYPE_INVALID;
        else if (*logged_in)
            rv = CKR_USER_ALREADY_LOGGED_IN;
        else if (!pin_matches(pin, pin_len))
            rv = CKR_PIN_INCORRECT;
        else {
            *logged_in = true;
            rv = CKR_OK;
        }
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

static CK_RV fake_logout(size_t index)
{
    CK_RV rv = CKR_SESSION_HANDLE_INVALID;
    pthread_mutex_lock(&shim.lock);
    const struct fake_session *s = &shim.fake_sessions[index];
    if (s->used) {
        bool *logged_in = &shim.fake_logged_in[s->slot - SHIM_FAKE_SLOT_BASE];
        rv = *logged_in ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
        *logged_in = false;
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

/* The three C_FindObjects* calls on a fake session, which never finds
 * anything. */
static CK_RV fake_find(size_t index, enum shim_fn fn, CK_ATTRIBUTE_PTR tmpl,
                       CK_ULONG count, CK_OBJECT_HANDLE_PTR objs,
                       CK_ULONG_PTR found)
{
    CK_RV rv = CKR_SESSION_HANDLE_INVALID;
    pthread_mutex_lock(&shim.lock);
    struct fake_session *s = &shim.fake_sessions[index];
    if (!s->used) {
        /* rv stays */
    } else if (fn == SHIM_FN_C_FindObjectsInit) {
        if (tmpl == NULL && count > 0)
            rv = CKR_ARGUMENTS_BAD;
        else if (s->finding)
            rv = CKR_OPERATION_ACTIVE;
        else {
            s->finding = true;
            rv = CKR_OK;
        }
    } else if (fn == SHIM_FN_C_FindObjects) {
        if (objs == NULL || found == NULL)
            rv = CKR_ARGUMENTS_BAD;
        else if (!s->finding)
            rv = CKR_OPERATION_NOT_INITIALIZED;
        else {
            *found = 0;
            rv = CKR_OK;
        }
    } else {
        rv = s->finding ? CKR_OK : CKR_OPERATION_NOT_INITIALIZED;
        s->finding = false;
    }
    pthread_mutex_unlock(&shim.lock);
    return rv;
}

/* ------------------------------------------------------------------------
 * Fake objects (P11SHIM_OBJECTS): X.509 certificates that live on every
 * real token and nowhere else, built from their index on demand.
 * ------------------------------------------------------------------------ */

struct fake_object {
    CK_OBJECT_CLASS cls;
    CK_CERTIFICATE_TYPE cert_type;
    CK_ULONG category;
    CK_BBOOL yes;
    CK_BBOOL no;
    CK_BYTE id[3];
    char label[48];
    CK_BYTE garbage[SHIM_GARBAGE_LEN];
    const CK_BYTE *value;
    CK_ULONG value_len;
};

/* The value is only made up when with_value says it will be read. */
static void fake_object_build(struct fake_object *o, CK_ULONG index,
                              bool with_value)
{
    o->cls = CKO_CERTIFICATE;
    o->cert_type = CKC_X_509;
    o->category = 0; /* unspecified */
    o->yes = CK_TRUE;
    o->no = CK_FALSE;
    o->id[0] = 0xf1;
    o->id[1] = (CK_BYTE)(index >> 8);
    o->id[2] = (CK_BYTE)index;
    snprintf(o->label, sizeof o->label, "p11shim extra certificate %lu", index);
    if (shim.cfg.object_der != NULL) {
        o->value = shim.cfg.object_der;
        o->value_len = shim.cfg.object_der_len;
    } else {
        if (with_value)
            fill_garbage(o->garbage, SHIM_GARBAGE_LEN, SHIM_SEED_OBJECT + index);
        o->value = o->garbage;
        o->value_len = SHIM_GARBAGE_LEN;
    }
}

static bool fake_object_attr(const struct fake_object *o,
                             CK_ATTRIBUTE_TYPE type, const void **value,
                             CK_ULONG *len)
{
    switch (type) {
    case CKA_CLASS:
        *value = &o->cls;
        *len = sizeof o->cls;
        return true;
    case CKA_CERTIFICATE_TYPE:
        *value = &o->cert_type;
        *len = sizeof o->cert_type;
        return true;
    case CKA_CERTIFICATE_CATEGORY:
        *value = &o->category;
        *len = sizeof o->category;
        return true;
    case CKA_TOKEN:
        *value = &o->yes;
        *len = sizeof o->yes;
        return true;
    case CKA_PRIVATE:
    case CKA_MODIFIABLE:
    case CKA_TRUSTED:
        *value = &o->no;
        *len = sizeof o->no;
        return true;
    case CKA_ID:
        *value = o->id;
        *len = sizeof o->id;
        return true;
    case CKA_LABEL:
        *value = o->label;
        *len = strlen(o->label);
        return true;
    case CKA_VALUE:
        *value = o->value;
        *len = o->value_len;
        return true;
    default:
        return false;
    }
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

static bool fake_object_matches(CK_ULONG index, CK_ATTRIBUTE_PTR tmpl,
                                CK_ULONG count, bool with_value)
{
    struct fake_object o;
    fake_object_build(&o, index, with_value);
    for (CK_ULONG i = 0; i < count; i++) {
        const void *value;
        CK_ULONG len;
        if (!fake_object_attr(&o, tmpl[i].type, &value, &len) ||
            len != tmpl[i].ulValueLen ||
            (len > 0 && (tmpl[i].pValue == NULL ||
                         memcmp(value, tmpl[i].pValue, len) != 0)))
            return false;
    }
    return true;
}

/* Expects shim.lock held. */
static struct object_find *find_lookup(CK_SESSION_HANDLE session)
{
    for (size_t i = 0; i < SHIM_MAX_FINDS; i++) {
        if (shim.finds[i].used && shim.finds[i].session == session)
            return &shim.finds[i];
    }
    return NULL;
}

/* Expects shim.lock held. */
static void find_end(CK_SESSION_HANDLE session)
{
    struct object_find *f = find_lookup(session);
    if (f != NULL) {
        free(f->matches);
        memset(f, 0, sizeof *f);
    }
}

/* After the target's C_FindObjectsInit succeeded: which fake objects the
 * template selects, decided now as a token would. */
static CK_RV find_start(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl,
                        CK_ULONG count)
{
    CK_ULONG n = 0;
    CK_OBJECT_HANDLE_PTR matches =
        malloc(shim.cfg.fake_objects * sizeof *matches);
    if (matches == NULL)
        return CKR_HOST_MEMORY;
    bool with_value = template_has(tmpl, count, CKA_VALUE);
    for (CK_ULONG i = 0; i < shim.cfg.fake_objects; i++) {
        if (fake_object_matches(i, tmpl, count, with_value))
            matches[n++] = SHIM_FAKE_OBJECT_BASE + i;
    }

    CK_RV rv = CKR_HOST_MEMORY;
    pthread_mutex_lock(&shim.lock);
    find_end(session);
    for (size_t i = 0; i < SHIM_MAX_FINDS; i++) {
        struct object_find *f = &shim.finds[i];
        if (!f->used) {
            *f = (struct object_find){ .used = true, .session = session,
                                       .matches = matches, .n_matches = n };
            matches = NULL;
            rv = CKR_OK;
            break;
        }
    }
    pthread_mutex_unlock(&shim.lock);
    free(matches);
    if (rv == CKR_OK)
        log_lie(SHIM_FN_C_FindObjectsInit, "%lu fake objects match", n);
    return rv;
}

/* Up to max fake objects still to be found on the session. */
static CK_ULONG find_serve(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objs,
                           CK_ULONG max)
{
    CK_ULONG n = 0;
    pthread_mutex_lock(&shim.lock);
    struct object_find *f = find_lookup(session);
    if (f != NULL) {
        n = f->n_matches - f->next;
        if (n > max)
            n = max;
        memcpy(objs, f->matches + f->next, n * sizeof *objs);
        f->next += n;
    }
    pthread_mutex_unlock(&shim.lock);
    return n;
}

/* ------------------------------------------------------------------------
 * Attributes the shim answers itself, by the C_GetAttributeValue rules.
 * ------------------------------------------------------------------------ */

static CK_RV answer_attribute(CK_ATTRIBUTE_PTR a, const void *value,
                              CK_ULONG len)
{
    if (a->pValue == NULL) {
        a->ulValueLen = len;
        return CKR_OK;
    }
    if (a->ulValueLen < len) {
        a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (len > 0)
        memcpy(a->pValue, value, len);
    a->ulValueLen = len;
    return CKR_OK;
}

/* CKA_VALUE of a certificate, with the P11SHIM_ATTR_LEN lie if any. */
static CK_RV answer_cert_value(CK_ATTRIBUTE_PTR a, const CK_BYTE *value,
                               CK_ULONG len)
{
    const enum shim_fn fn = SHIM_FN_C_GetAttributeValue;
    CK_ULONG buf_len = a->ulValueLen, half = len / 2;

    switch (shim.cfg.attr_len) {
    case ATTR_LEN_TRUE:
        break;
    case ATTR_LEN_SIZE:
        if (a->pValue != NULL)
            break;
        a->ulValueLen = shim.cfg.attr_size;
        log_lie(fn, "CKA_VALUE of %lu bytes: size query says 0x%lx", len,
                a->ulValueLen);
        return CKR_OK;
    case ATTR_LEN_GROW:
        if (a->pValue == NULL || buf_len < len)
            break;
        memcpy(a->pValue, value, len);
        a->ulValueLen = buf_len == ULONG_MAX ? buf_len : buf_len + 1;
        log_lie(fn, "CKA_VALUE of %lu bytes into %lu: read says %lu", len,
                buf_len, a->ulValueLen);
        return CKR_OK;
    case ATTR_LEN_SHRINK:
        if (a->pValue == NULL || buf_len < len)
            break;
        memcpy(a->pValue, value, half);
        a->ulValueLen = half;
        log_lie(fn, "CKA_VALUE of %lu bytes: read gives and says %lu", len,
                half);
        return CKR_OK;
    case ATTR_LEN_UNDERFILL:
        if (a->pValue == NULL || buf_len < len)
            break;
        memcpy(a->pValue, value, half);
        a->ulValueLen = len;
        log_lie(fn, "CKA_VALUE of %lu bytes: read gives %lu, says %lu", len,
                half, len);
        return CKR_OK;
    }
    return answer_attribute(a, value, len);
}

typedef CK_RV (*attr_answer_fn)(CK_ATTRIBUTE_PTR a, const void *ctx);

static bool per_attribute_rv(CK_RV rv)
{
    return rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE ||
           rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_BUFFER_TOO_SMALL;
}

/* The target is asked only for the other attributes, so its return value
 * describes exactly those; the entries of type synth are then answered by
 * answer.  Expects synth in the template. */
static CK_RV get_attributes_split(CK_SESSION_HANDLE session,
                                  CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,
                                  CK_ULONG count, CK_ATTRIBUTE_TYPE synth,
                                  attr_answer_fn answer, const void *ctx)
{
    CK_ATTRIBUTE_PTR rest = calloc(count, sizeof *rest);
    if (rest == NULL)
        return CKR_HOST_MEMORY;
    CK_ULONG n = 0;
    for (CK_ULONG i = 0; i < count; i++) {
        if (tmpl[i].type != synth)
            rest[n++] = tmpl[i];
    }
    CK_RV rv = CKR_OK;
    if (n > 0)
        rv = FORWARD(C_GetAttributeValue, (session, obj, rest, n));
    if (!per_attribute_rv(rv)) {
        free(rest);
        return rv;
    }

    CK_RV own = CKR_OK;
    for (CK_ULONG i = 0, j = 0; i < count; i++) {
        if (tmpl[i].type != synth) {
            tmpl[i].ulValueLen = rest[j++].ulValueLen;
        } else {
            CK_RV one = answer(&tmpl[i], ctx);
            if (own == CKR_OK)
                own = one;
        }
    }
    free(rest);
    return rv == CKR_OK ? own : rv;
}

static CK_RV answer_always_auth(CK_ATTRIBUTE_PTR a, const void *ctx)
{
    static const CK_BBOOL yes = CK_TRUE;
    (void)ctx;
    return answer_attribute(a, &yes, sizeof yes);
}

struct cert_value {
    const CK_BYTE *value;
    CK_ULONG len;
};

static CK_RV answer_cert(CK_ATTRIBUTE_PTR a, const void *ctx)
{
    const struct cert_value *v = ctx;
    return answer_cert_value(a, v->value, v->len);
}

static bool object_class_is(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE obj,
                            CK_OBJECT_CLASS want)
{
    CK_OBJECT_CLASS cls = 0;
    CK_ATTRIBUTE attr = { CKA_CLASS, &cls, sizeof cls };
    return FORWARD(C_GetAttributeValue, (session, obj, &attr, 1)) == CKR_OK &&
           attr.ulValueLen == sizeof cls && cls == want;
}

/* The target's CKA_VALUE with the two-call size query, bounded. */
static CK_RV fetch_value(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE obj,
                         CK_BYTE_PTR *out, CK_ULONG *out_len)
{
    CK_ATTRIBUTE attr = { CKA_VALUE, NULL, 0 };
    CK_RV rv = FORWARD(C_GetAttributeValue, (session, obj, &attr, 1));
    if (rv != CKR_OK)
        return rv;
    if (attr.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
        attr.ulValueLen > SHIM_MAX_DER)
        return CKR_GENERAL_ERROR;
    CK_ULONG len = attr.ulValueLen;
    attr.pValue = malloc(len > 0 ? len : 1);
    if (attr.pValue == NULL)
        return CKR_HOST_MEMORY;
    rv = FORWARD(C_GetAttributeValue, (session, obj, &attr, 1));
    if (rv == CKR_OK && attr.ulValueLen > len)
        rv = CKR_GENERAL_ERROR;
    if (rv != CKR_OK) {
        free_wiped(attr.pValue, len);
        return rv;
    }
    *out = attr.pValue;
    *out_len = attr.ulValueLen;
    return CKR_OK;
}

/* A real certificate under P11SHIM_CERT and P11SHIM_ATTR_LEN.  Should its
 * value be unreadable, the target answers the whole call as it would. */
static CK_RV get_attributes_cert(CK_SESSION_HANDLE session,
                                 CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,
                                 CK_ULONG count)
{
    const enum shim_fn fn = SHIM_FN_C_GetAttributeValue;
    CK_BYTE_PTR real = NULL, garbage = NULL;
    CK_ULONG real_len = 0;
    if (fetch_value(session, obj, &real, &real_len) != CKR_OK)
        return FORWARD(C_GetAttributeValue, (session, obj, tmpl, count));

    struct cert_value v = { real, real_len };
    switch (shim.cfg.cert) {
    case CERT_TRUE:
        break;
    case CERT_TRUNCATED:
        v.len = real_len / 2;
        log_lie(fn, "certificate of %lu bytes truncated to %lu", real_len,
                v.len);
        break;
    case CERT_GARBAGE:
        garbage = malloc(real_len > 0 ? real_len : 1);
        if (garbage == NULL) {
            free_wiped(real, real_len);
            return CKR_HOST_MEMORY;
        }
        fill_garbage(garbage, real_len, SHIM_SEED_CERT);
        v.value = garbage;
        log_lie(fn, "certificate of %lu bytes replaced by garbage", real_len);
        break;
    case CERT_OTHER:
        v.value = shim.cfg.cert_der;
        v.len = shim.cfg.cert_der_len;
        log_lie(fn, "certificate of %lu bytes replaced by another of %lu",
                real_len, v.len);
        break;
    }
    CK_RV rv = get_attributes_split(session, obj, tmpl, count, CKA_VALUE,
                                    answer_cert, &v);
    free_wiped(garbage, real_len);
    free_wiped(real, real_len);
    return rv;
}

/* A fake object answers only through a session the target knows. */
static CK_RV fake_object_attributes(CK_SESSION_HANDLE session,
                                    CK_OBJECT_HANDLE obj,
                                    CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    CK_SESSION_INFO info;
    CK_RV rv = FORWARD(C_GetSessionInfo, (session, &info));
    if (rv != CKR_OK)
        return rv;

    struct fake_object o;
    fake_object_build(&o, obj - SHIM_FAKE_OBJECT_BASE, true);
    for (CK_ULONG i = 0; i < count; i++) {
        CK_ATTRIBUTE_PTR a = &tmpl[i];
        const void *value;
        CK_ULONG len;
        CK_RV one;
        if (!fake_object_attr(&o, a->type, &value, &len)) {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            one = CKR_ATTRIBUTE_TYPE_INVALID;
        } else if (a->type == CKA_VALUE) {
            one = answer_cert_value(a, value, len);
        } else {
            one = answer_attribute(a, value, len);
        }
        if (rv == CKR_OK)
            rv = one;
    }
    return rv;
}

/* ------------------------------------------------------------------------
 * Overridden functions.  Each one: fault table, then fake slots and
 * sessions, then card removal, then the target.
 * ------------------------------------------------------------------------ */

static void reset_state(void)
{
    pthread_mutex_lock(&shim.lock);
    shim.initialized = false;
    shim.fake_login_pending = false;
    shim.card_removed = false;
    memset(shim.calls, 0, sizeof shim.calls);
    config_free(&shim.cfg);
    memset(shim.ops, 0, sizeof shim.ops);
    memset(shim.fake_sessions, 0, sizeof shim.fake_sessions);
    memset(shim.fake_logged_in, 0, sizeof shim.fake_logged_in);
    for (size_t i = 0; i < SHIM_MAX_FINDS; i++)
        free(shim.finds[i].matches);
    memset(shim.finds, 0, sizeof shim.finds);
    shim.presence = PRESENCE_PRESENT;
    shim.epoch = shim.wait_epoch = shim.logout_epoch = 0;
    shim.event_slot = 0;
    free(shim.sessions);
    shim.sessions = NULL;
    shim.n_sessions = shim.cap_sessions = 0;
    memset(shim.labels, 0, sizeof shim.labels);
    shim.n_labels = 0;
    pthread_mutex_unlock(&shim.lock);
}

/* The slot C_WaitForSlotEvent names: the first real one with an
 * initialized token (with P11SHIM_PRESENCE_LABEL, the first with that
 * label, if any), asked once while C_Initialize has the module to
 * itself. */
static CK_SLOT_ID find_event_slot(void)
{
    CK_SLOT_ID slots[64], found = 0;
    CK_ULONG n = 64;
    if (FORWARD(C_GetSlotList, (CK_TRUE, slots, &n)) != CKR_OK || n == 0)
        return 0;
    if (shim.cfg.presence_label[0] != '\0') {
        for (CK_ULONG i = 0; i < n; i++) {
            if (label_matches(slots[i]))
                return slots[i];
        }
    }
    found = slots[0];
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        if (FORWARD(C_GetTokenInfo, (slots[i], &info)) == CKR_OK &&
            (info.flags & CKF_TOKEN_INITIALIZED) != 0) {
            found = slots[i];
            break;
        }
    }
    return found;
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
    /* whether the PIN (P11SHIM_PIN's, the tests' PIN) is anywhere in this
     * process's environment or command line, and the core size limit */
    int pin_in_environ = 0, pin_in_argv = 0;
    struct rlimit core = { 0, 0 };
    const char *pin = shim.cfg.pin[0] ? (const char *)shim.cfg.pin : SHIM_DEFAULT_PIN;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        pin_in_environ |= strstr(*e, pin) != NULL;
    {
        char cmdline[4096];
        ssize_t len = 0;
        int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            len = read(fd, cmdline, sizeof cmdline - 1);
            close(fd);
        }
        for (ssize_t i = 0; i < len; i++)
            if (cmdline[i] == '\0')
                cmdline[i] = ' ';
        cmdline[len > 0 ? len : 0] = '\0';
        pin_in_argv = strstr(cmdline, pin) != NULL;
    }
    getrlimit(RLIMIT_CORE, &core);
    n += (size_t)snprintf(line, sizeof line, "process pin_in_environ=%d pin_in_argv=%d "
                          "rlimit_core=%llu\n", pin_in_environ, pin_in_argv,
                          (unsigned long long)core.rlim_cur);
    n += (size_t)snprintf(line + n, sizeof line - n, "process uid=%u euid=%u dumpable=%d environ=",
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
        CK_SLOT_ID event_slot = shim.cfg.slot_events ? find_event_slot() : 0;
        pthread_mutex_lock(&shim.lock);
        shim.initialized = true;
        shim.fake_login_pending = shim.cfg.login_already_logged_in;
        memset(shim.ops, 0, sizeof shim.ops);
        /* Where the card is now is no event. */
        shim.presence = presence_read_locked();
        enum presence p = shim.presence;
        shim.epoch = shim.wait_epoch = shim.logout_epoch = 0;
        shim.event_slot = event_slot;
        pthread_mutex_unlock(&shim.lock);
        atomic_store(&slot_wait.live, true);
        if (p != PRESENCE_PRESENT)
            log_event(SHIM_FN_C_Initialize, NULL, presence_events[p]);
    }
    return log_call(SHIM_FN_C_Initialize, NULL, rv);
}

static CK_RV shim_C_Finalize(CK_VOID_PTR reserved)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_Finalize, NULL, &rv))
        return log_call(SHIM_FN_C_Finalize, NULL, rv);
    /* A waiter leaves within one 50 ms round; one that hangs on purpose
     * never does, hence the bound. */
    bool was_live = atomic_exchange(&slot_wait.live, false);
    for (int i = 0; i < 200 && atomic_load(&slot_wait.waiters) > 0; i++) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    rv = FORWARD(C_Finalize, (reserved));
    /* Logged before the reset forgets where the log is. */
    log_call(SHIM_FN_C_Finalize, NULL, rv);
    if (rv == CKR_OK || rv == CKR_CRYPTOKI_NOT_INITIALIZED)
        reset_state();
    else if (was_live)
        atomic_store(&slot_wait.live, true);
    return rv;
}

/* The target's slots, none of them (with P11SHIM_PRESENCE_LABEL, none of
 * those with the label) once the card is gone and only slots with a token
 * are asked for, and the fake ones before or after them. */
static CK_RV merged_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list,
                              CK_ULONG_PTR count, bool gone)
{
    if (count == NULL)
        return CKR_ARGUMENTS_BAD;

    CK_SLOT_ID_PTR real = NULL;
    CK_ULONG n_real = 0;
    CK_RV rv = CKR_OK;
    bool all_gone = gone && shim.cfg.presence_label[0] == '\0';
    for (int attempt = 0; !all_gone; attempt++) {
        rv = FORWARD(C_GetSlotList, (present, NULL, &n_real));
        if (rv != CKR_OK)
            break;
        free(real);
        real = calloc(n_real > 0 ? n_real : 1, sizeof *real);
        if (real == NULL) {
            rv = CKR_HOST_MEMORY;
            break;
        }
        rv = FORWARD(C_GetSlotList, (present, real, &n_real));
        if (rv != CKR_BUFFER_TOO_SMALL || attempt >= 3)
            break;
    }
    for (CK_ULONG i = 0; rv == CKR_OK && i < n_real; i++) {
        if (is_fake_slot(real[i])) {
            log_event(SHIM_FN_C_GetSlotList, NULL,
                      "target slot id in the fake range");
            rv = CKR_GENERAL_ERROR;
        }
    }
    if (rv != CKR_OK) {
        free(real);
        return rv;
    }
    if (gone) {
        CK_ULONG kept = 0;
        for (CK_ULONG i = 0; i < n_real; i++) {
            if (!label_matches(real[i]))
                real[kept++] = real[i];
        }
        n_real = kept;
    }

    CK_ULONG n_fake = shim.cfg.fake_slots, total = n_fake + n_real;
    if (list != NULL && *count < total) {
        rv = CKR_BUFFER_TOO_SMALL;
    } else if (list != NULL) {
        CK_SLOT_ID_PTR fake = list + (shim.cfg.fake_slots_last ? n_real : 0);
        if (n_real > 0)
            memcpy(list + (shim.cfg.fake_slots_last ? 0 : n_fake), real,
                   n_real * sizeof *real);
        for (CK_ULONG i = 0; i < n_fake; i++)
            fake[i] = SHIM_FAKE_SLOT_BASE + i;
    }
    *count = total;
    free(real);
    if (n_fake > 0 || gone)
        log_lie(SHIM_FN_C_GetSlotList, "%lu fake and %lu real slots", n_fake,
                n_real);
    return rv;
}

static CK_RV shim_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list,
                                CK_ULONG_PTR count)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_GetSlotList, NULL, &rv))
        return log_call(SHIM_FN_C_GetSlotList, NULL, rv);
    bool gone = present &&
                presence_now(SHIM_FN_C_GetSlotList, NULL) == PRESENCE_ABSENT;
    if (shim.cfg.fake_slots > 0 || gone)
        rv = merged_slot_list(present, list, count, gone);
    else
        rv = FORWARD(C_GetSlotList, (present, list, count));
    return log_call(SHIM_FN_C_GetSlotList, NULL, rv);
}

static CK_RV shim_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_GetSlotInfo, NULL, &rv))
        return log_call(SHIM_FN_C_GetSlotInfo, NULL, rv);
    if (is_fake_slot(slot))
        return log_fake(SHIM_FN_C_GetSlotInfo, NULL, fake_slot_info(slot, info));
    rv = FORWARD(C_GetSlotInfo, (slot, info));
    bool gone = presence_now(SHIM_FN_C_GetSlotInfo, NULL) == PRESENCE_ABSENT;
    if (rv == CKR_OK && info != NULL && gone && label_matches(slot)) {
        info->flags &= ~CKF_TOKEN_PRESENT;
        info->flags |= CKF_REMOVABLE_DEVICE;
    }
    return log_call(SHIM_FN_C_GetSlotInfo, NULL, rv);
}

static CK_RV shim_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_GetTokenInfo, NULL, &rv))
        return log_call(SHIM_FN_C_GetTokenInfo, NULL, rv);
    if (is_fake_slot(slot))
        return log_fake(SHIM_FN_C_GetTokenInfo, NULL, fake_token_info(slot, info));
    if (card_gone(SHIM_FN_C_GetTokenInfo, slot, &rv))
        return log_call(SHIM_FN_C_GetTokenInfo, NULL, rv);
    rv = FORWARD(C_GetTokenInfo, (slot, info));
    if (rv == CKR_OK && info != NULL) {
        info->flags |= shim.cfg.pin_flags;
        if (shim.cfg.protected_auth)
            info->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
        if (presence_seen() == PRESENCE_OTHER && label_matches(slot)) {
            pad_text(info->label, sizeof info->label, "other card");
            pad_text(info->serialNumber, sizeof info->serialNumber,
                     "OTHERCARD0000001");
            log_lie(SHIM_FN_C_GetTokenInfo, "other card in slot 0x%lx", slot);
        }
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
        if (rv != CKR_OK) {
            free(all);
            return rv;
        }
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
    if (is_fake_slot(slot)) {
        rv = CKR_ARGUMENTS_BAD;
        if (count != NULL) {
            *count = 0;
            rv = CKR_OK;
        }
        return log_fake(SHIM_FN_C_GetMechanismList, NULL, rv);
    }
    if (card_gone(SHIM_FN_C_GetMechanismList, slot, &rv))
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
    if (is_fake_slot(slot))
        return log_fake(SHIM_FN_C_GetMechanismInfo, extra,
                        CKR_MECHANISM_INVALID);
    if (card_gone(SHIM_FN_C_GetMechanismInfo, slot, &rv))
        return log_call(SHIM_FN_C_GetMechanismInfo, extra, rv);
    if (!mech_allowed(type))
        rv = CKR_MECHANISM_INVALID;
    else
        rv = FORWARD(C_GetMechanismInfo, (slot, type, info));
    return log_call(SHIM_FN_C_GetMechanismInfo, extra, rv);
}

/* Remembers which card and slot a new real session belongs to; false if
 * out of memory.  Only while P11SHIM_PRESENCE_FILE or
 * P11SHIM_PRESENCE_LABEL is on. */
static bool session_track(CK_SESSION_HANDLE session, CK_SLOT_ID slot)
{
    bool ok = true;
    pthread_mutex_lock(&shim.lock);
    size_t i = 0;
    while (i < shim.n_sessions && shim.sessions[i].handle != session)
        i++;
    if (i == shim.n_sessions && shim.n_sessions == shim.cap_sessions) {
        size_t cap = shim.cap_sessions > 0 ? 2 * shim.cap_sessions : 16;
        struct real_session *grown =
            realloc(shim.sessions, cap * sizeof *grown);
        if (grown == NULL) {
            ok = false;
        } else {
            shim.sessions = grown;
            shim.cap_sessions = cap;
        }
    }
    if (ok) {
        if (i == shim.n_sessions)
            shim.n_sessions++;
        shim.sessions[i] = (struct real_session){ session, shim.epoch, slot };
    }
    pthread_mutex_unlock(&shim.lock);
    return ok;
}

/* Expects shim.lock held. */
static void session_forget(CK_SESSION_HANDLE session)
{
    for (size_t i = 0; i < shim.n_sessions; i++) {
        if (shim.sessions[i].handle == session) {
            shim.sessions[i] = shim.sessions[--shim.n_sessions];
            return;
        }
    }
}

/* SoftHSM keeps a login as long as one session of the application is
 * open; a card that left took its login along.  So before the first
 * session on a card that came (back), the sessions still open on an
 * earlier one are logged out.  With P11SHIM_PRESENCE_LABEL, only sessions
 * on the slot being opened count: the other card never left. */
static void logout_stale_sessions(CK_SLOT_ID slot)
{
    bool stale = false, per_slot = shim.cfg.presence_label[0] != '\0';
    CK_SESSION_HANDLE session = 0;
    pthread_mutex_lock(&shim.lock);
    if (shim.logout_epoch != shim.epoch) {
        for (size_t i = 0; !stale && i < shim.n_sessions; i++) {
            stale = shim.sessions[i].epoch != shim.epoch &&
                    (!per_slot || shim.sessions[i].slot == slot);
            session = shim.sessions[i].handle;
        }
        shim.logout_epoch = shim.epoch;
    }
    pthread_mutex_unlock(&shim.lock);
    if (stale && FORWARD(C_Logout, (session)) == CKR_OK)
        log_lie(SHIM_FN_C_OpenSession, "logged out the card that left");
}

static CK_RV shim_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags,
                                CK_VOID_PTR app, CK_NOTIFY notify,
                                CK_SESSION_HANDLE_PTR session)
{
    CK_RV rv;
    size_t index;
    if (fault_intercept(SHIM_FN_C_OpenSession, NULL, &rv))
        return log_call(SHIM_FN_C_OpenSession, NULL, rv);
    if (is_fake_slot(slot))
        return log_fake(SHIM_FN_C_OpenSession, NULL,
                        fake_open_session(slot, flags, session));
    if (card_gone(SHIM_FN_C_OpenSession, slot, &rv))
        return log_call(SHIM_FN_C_OpenSession, NULL, rv);
    bool track = shim.cfg.presence_path[0] != '\0' ||
                 shim.cfg.presence_label[0] != '\0';
    if (track && label_matches(slot))
        logout_stale_sessions(slot);
    rv = FORWARD(C_OpenSession, (slot, flags, app, notify, session));
    if (rv == CKR_OK && session != NULL &&
        fake_session_index(*session, &index)) {
        FORWARD(C_CloseSession, (*session));
        log_event(SHIM_FN_C_OpenSession, NULL,
                  "target session handle in the fake range");
        rv = CKR_GENERAL_ERROR;
    } else if (rv == CKR_OK && session != NULL) {
        /* The target may reuse a handle whose close we never saw. */
        pthread_mutex_lock(&shim.lock);
        op_end(*session);
        find_end(*session);
        pthread_mutex_unlock(&shim.lock);
        if (track && !session_track(*session, slot)) {
            FORWARD(C_CloseSession, (*session));
            rv = CKR_HOST_MEMORY;
        }
    }
    return log_call(SHIM_FN_C_OpenSession, NULL, rv);
}

static CK_RV shim_C_CloseSession(CK_SESSION_HANDLE session)
{
    CK_RV rv;
    size_t index;
    if (fault_intercept(SHIM_FN_C_CloseSession, NULL, &rv))
        return log_call(SHIM_FN_C_CloseSession, NULL, rv);
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_CloseSession, NULL,
                        fake_close_session(index));
    rv = FORWARD(C_CloseSession, (session));
    if (rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID) {
        pthread_mutex_lock(&shim.lock);
        op_end(session);
        find_end(session);
        session_forget(session);
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_CloseSession, NULL, rv);
}

static CK_RV shim_C_CloseAllSessions(CK_SLOT_ID slot)
{
    CK_RV rv;
    if (fault_intercept(SHIM_FN_C_CloseAllSessions, NULL, &rv))
        return log_call(SHIM_FN_C_CloseAllSessions, NULL, rv);
    if (is_fake_slot(slot))
        return log_fake(SHIM_FN_C_CloseAllSessions, NULL, fake_close_all(slot));
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
        for (size_t i = 0; i < SHIM_MAX_FINDS; i++) {
            CK_SESSION_INFO info;
            if (shim.finds[i].used &&
                FORWARD(C_GetSessionInfo, (shim.finds[i].session, &info)) !=
                    CKR_OK)
                find_end(shim.finds[i].session);
        }
        for (size_t i = shim.n_sessions; i-- > 0;) {
            CK_SESSION_INFO info;
            if (FORWARD(C_GetSessionInfo, (shim.sessions[i].handle, &info)) !=
                CKR_OK)
                shim.sessions[i] = shim.sessions[--shim.n_sessions];
        }
        pthread_mutex_unlock(&shim.lock);
    }
    return log_call(SHIM_FN_C_CloseAllSessions, NULL, rv);
}

static CK_RV shim_C_GetSessionInfo(CK_SESSION_HANDLE session,
                                   CK_SESSION_INFO_PTR info)
{
    CK_RV rv;
    size_t index;
    if (fault_intercept(SHIM_FN_C_GetSessionInfo, NULL, &rv))
        return log_call(SHIM_FN_C_GetSessionInfo, NULL, rv);
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_GetSessionInfo, NULL,
                        fake_session_info(index, info));
    if (!card_gone(SHIM_FN_C_GetSessionInfo, session, &rv))
        rv = FORWARD(C_GetSessionInfo, (session, info));
    return log_call(SHIM_FN_C_GetSessionInfo, NULL, rv);
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
    size_t index;
    char extra[40];
    snprintf(extra, sizeof extra, "user=%lu", user);
    if (fault_intercept(SHIM_FN_C_Login, extra, &rv))
        return log_call(SHIM_FN_C_Login, extra, rv);
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_Login, extra,
                        fake_login(index, user, pin, pin_len));
    if (card_gone(SHIM_FN_C_Login, session, &rv))
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
    size_t index;
    if (fault_intercept(SHIM_FN_C_Logout, NULL, &rv))
        return log_call(SHIM_FN_C_Logout, NULL, rv);
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_Logout, NULL, fake_logout(index));
    if (card_gone(SHIM_FN_C_Logout, session, &rv))
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

static bool cert_lies(void)
{
    return shim.cfg.cert != CERT_TRUE || shim.cfg.attr_len != ATTR_LEN_TRUE;
}

static CK_RV shim_C_GetAttributeValue(CK_SESSION_HANDLE session,
                                      CK_OBJECT_HANDLE obj,
                                      CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    const enum shim_fn fn = SHIM_FN_C_GetAttributeValue;
    CK_RV rv;
    size_t index;
    if (fault_intercept(fn, NULL, &rv))
        return log_call(fn, NULL, rv);
    if (tmpl == NULL && count > 0)
        return log_call(fn, NULL, CKR_ARGUMENTS_BAD);
    if (fake_session_index(session, &index))
        return log_fake(fn, NULL,
                        fake_session_rv(index, CKR_OBJECT_HANDLE_INVALID));
    if (card_gone(fn, session, &rv))
        return log_call(fn, NULL, rv);

    if (is_fake_object(obj))
        rv = fake_object_attributes(session, obj, tmpl, count);
    else if (shim.cfg.always_auth &&
             template_has(tmpl, count, CKA_ALWAYS_AUTHENTICATE) &&
             object_class_is(session, obj, CKO_PRIVATE_KEY))
        rv = get_attributes_split(session, obj, tmpl, count,
                                  CKA_ALWAYS_AUTHENTICATE, answer_always_auth,
                                  NULL);
    else if (cert_lies() && template_has(tmpl, count, CKA_VALUE) &&
             object_class_is(session, obj, CKO_CERTIFICATE))
        rv = get_attributes_cert(session, obj, tmpl, count);
    else
        rv = FORWARD(C_GetAttributeValue, (session, obj, tmpl, count));
    return log_call(fn, NULL, rv);
}

static CK_RV shim_C_FindObjectsInit(CK_SESSION_HANDLE session,
                                    CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    const enum shim_fn fn = SHIM_FN_C_FindObjectsInit;
    CK_RV rv;
    size_t index;
    if (fault_intercept(fn, NULL, &rv))
        return log_call(fn, NULL, rv);
    if (fake_session_index(session, &index))
        return log_fake(fn, NULL, fake_find(index, fn, tmpl, count, NULL, NULL));
    if (card_gone(fn, session, &rv))
        return log_call(fn, NULL, rv);
    if (tmpl == NULL && count > 0)
        return log_call(fn, NULL, CKR_ARGUMENTS_BAD);
    rv = FORWARD(C_FindObjectsInit, (session, tmpl, count));
    if (rv == CKR_OK && shim.cfg.fake_objects > 0) {
        rv = find_start(session, tmpl, count);
        if (rv != CKR_OK)
            FORWARD(C_FindObjectsFinal, (session));
    }
    return log_call(fn, NULL, rv);
}

/* The target's objects, checked not to look like ours. */
static CK_RV target_find_objects(CK_SESSION_HANDLE session,
                                 CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
                                 CK_ULONG_PTR found)
{
    CK_RV rv = FORWARD(C_FindObjects, (session, objs, max, found));
    for (CK_ULONG i = 0; rv == CKR_OK && i < *found && i < max; i++) {
        if (is_fake_object(objs[i])) {
            log_event(SHIM_FN_C_FindObjects, NULL,
                      "target object handle in the fake range");
            rv = CKR_GENERAL_ERROR;
        }
    }
    return rv;
}

static CK_RV shim_C_FindObjects(CK_SESSION_HANDLE session,
                                CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
                                CK_ULONG_PTR found)
{
    const enum shim_fn fn = SHIM_FN_C_FindObjects;
    CK_RV rv;
    size_t index;
    if (fault_intercept(fn, NULL, &rv))
        return log_call(fn, NULL, rv);
    if (fake_session_index(session, &index))
        return log_fake(fn, NULL, fake_find(index, fn, NULL, 0, objs, found));
    if (card_gone(fn, session, &rv))
        return log_call(fn, NULL, rv);
    if (objs == NULL || found == NULL)
        return log_call(fn, NULL, CKR_ARGUMENTS_BAD);
    if (presence_seen() == PRESENCE_OTHER && session_follows_card(session)) {
        /* The target still checks the session and the operation. */
        rv = FORWARD(C_FindObjects, (session, objs, max, found));
        if (rv == CKR_OK && *found > 0)
            log_lie(fn, "other card: %lu objects hidden", *found);
        if (rv == CKR_OK)
            *found = 0;
        return log_call(fn, NULL, rv);
    }

    pthread_mutex_lock(&shim.lock);
    struct object_find *f = find_lookup(session);
    bool faking = f != NULL, target_done = f != NULL && f->target_done;
    pthread_mutex_unlock(&shim.lock);

    if (!faking) {
        rv = target_find_objects(session, objs, max, found);
    } else if (shim.cfg.fake_objects_first) {
        *found = find_serve(session, objs, max);
        rv = CKR_OK;
        if (*found == 0)
            rv = target_find_objects(session, objs, max, found);
    } else {
        rv = CKR_OK;
        *found = 0;
        if (!target_done)
            rv = target_find_objects(session, objs, max, found);
        if (rv == CKR_OK && *found == 0) {
            pthread_mutex_lock(&shim.lock);
            f = find_lookup(session);
            if (f != NULL)
                f->target_done = true;
            pthread_mutex_unlock(&shim.lock);
            *found = find_serve(session, objs, max);
        }
    }
    return log_call(fn, NULL, rv);
}

static CK_RV shim_C_FindObjectsFinal(CK_SESSION_HANDLE session)
{
    const enum shim_fn fn = SHIM_FN_C_FindObjectsFinal;
    CK_RV rv;
    size_t index;
    if (fault_intercept(fn, NULL, &rv))
        return log_call(fn, NULL, rv);
    if (fake_session_index(session, &index))
        return log_fake(fn, NULL, fake_find(index, fn, NULL, 0, NULL, NULL));
    if (card_gone(fn, session, &rv))
        return log_call(fn, NULL, rv);
    rv = FORWARD(C_FindObjectsFinal, (session));
    pthread_mutex_lock(&shim.lock);
    find_end(session);
    pthread_mutex_unlock(&shim.lock);
    return log_call(fn, NULL, rv);
}

static CK_RV shim_C_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech,
                             CK_OBJECT_HANDLE key)
{
    CK_RV rv;
    size_t index;
    char extra[40] = "mech=none";
    if (mech != NULL)
        snprintf(extra, sizeof extra, "mech=0x%lx", mech->mechanism);
    if (fault_intercept(SHIM_FN_C_SignInit, extra, &rv))
        return log_call(SHIM_FN_C_SignInit, extra, rv);
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_SignInit, extra,
                        fake_session_rv(index, CKR_KEY_HANDLE_INVALID));
    if (card_gone(SHIM_FN_C_SignInit, session, &rv))
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

/* A return value injected into C_Sign, C_SignUpdate or C_SignFinal ends
 * the operation for the caller as a real one would (anything but
 * CKR_BUFFER_TOO_SMALL, success unless only the length was asked for or
 * it was an update), so the target's must end too: a caller that starts
 * over must not meet CKR_OPERATION_ACTIVE. */
static void injected_sign_end(enum shim_fn fn, CK_SESSION_HANDLE session,
                              CK_RV rv, bool size_query, CK_BYTE_PTR data,
                              CK_ULONG data_len)
{
    if (rv == CKR_BUFFER_TOO_SMALL || (rv == CKR_OK && size_query) ||
        (rv == CKR_OK && fn == SHIM_FN_C_SignUpdate))
        return;
    target_sign_abort(session, data, data_len, fn == SHIM_FN_C_Sign);
    pthread_mutex_lock(&shim.lock);
    op_end(session);
    pthread_mutex_unlock(&shim.lock);
}

/* P11SHIM_SIG short, long and zeros, on the *sig_len bytes the target has
 * just written into a buffer of buf_len. */
static void sig_tamper(enum shim_fn fn, CK_BYTE_PTR sig, CK_ULONG buf_len,
                       CK_ULONG_PTR sig_len)
{
    CK_ULONG real = *sig_len;
    if (real > buf_len)
        return; /* the target overran the buffer: nothing to make worse */
    switch (shim.cfg.sig) {
    case SIG_TRUE:
    case SIG_OTHER:
        break;
    case SIG_SHORT:
        if (real == 0)
            break;
        *sig_len = real - 1;
        log_lie(fn, "signature of %lu bytes said to have %lu", real, *sig_len);
        break;
    case SIG_LONG:
        if (real == ULONG_MAX)
            break;
        if (real < buf_len)
            sig[real] = 0;
        *sig_len = real + 1;
        log_lie(fn, "signature of %lu bytes into %lu said to have %lu", real,
                buf_len, *sig_len);
        break;
    case SIG_ZEROS:
        memset(sig, 0, real);
        log_lie(fn, "signature of %lu bytes zeroed", real);
        break;
    }
}

/* P11SHIM_SIG=other on C_Sign: the same mechanism and key over data of
 * the same length (raw mechanisms take nothing else) with its last byte
 * inverted, so the signature is valid, just not for the caller's data. */
static CK_RV sign_other(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                        CK_ULONG data_len, CK_BYTE_PTR sig,
                        CK_ULONG_PTR sig_len)
{
    CK_BYTE one_byte = 0xa5;
    CK_BYTE_PTR other = &one_byte;
    CK_ULONG other_len = 1;
    if (data == NULL && data_len > 0) /* the target says what is wrong */
        return FORWARD(C_Sign, (session, data, data_len, sig, sig_len));
    if (data_len > 0) {
        other = malloc(data_len);
        if (other == NULL) {
            target_sign_abort(session, data, data_len, true);
            return CKR_HOST_MEMORY;
        }
        memcpy(other, data, data_len);
        other[data_len - 1] = (CK_BYTE)~other[data_len - 1];
        other_len = data_len;
    }
    CK_RV rv = FORWARD(C_Sign, (session, other, other_len, sig, sig_len));
    if (other != &one_byte)
        free_wiped(other, other_len);
    if (rv == CKR_OK && sig != NULL)
        log_lie(SHIM_FN_C_Sign, "signed %lu other bytes instead of %lu",
                other_len, data_len);
    return rv;
}

static CK_RV shim_C_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                         CK_ULONG data_len, CK_BYTE_PTR sig,
                         CK_ULONG_PTR sig_len)
{
    CK_RV rv;
    size_t index;
    if (fault_intercept(SHIM_FN_C_Sign, NULL, &rv)) {
        injected_sign_end(SHIM_FN_C_Sign, session, rv, sig == NULL, data, data_len);
        return log_call(SHIM_FN_C_Sign, NULL, rv);
    }
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_Sign, NULL,
                        fake_session_rv(index, CKR_OPERATION_NOT_INITIALIZED));
    if (card_gone(SHIM_FN_C_Sign, session, &rv))
        return log_call(SHIM_FN_C_Sign, NULL, rv);
    if (op_blocks_signing(session, sig == NULL)) {
        sign_refuse(session, data, data_len, true);
        return log_call(SHIM_FN_C_Sign, NULL, CKR_USER_NOT_LOGGED_IN);
    }
    CK_ULONG buf_len = sig_len != NULL ? *sig_len : 0;
    if (shim.cfg.sig == SIG_OTHER)
        rv = sign_other(session, data, data_len, sig, sig_len);
    else
        rv = FORWARD(C_Sign, (session, data, data_len, sig, sig_len));
    if (rv == CKR_OK && sig != NULL && sig_len != NULL)
        sig_tamper(SHIM_FN_C_Sign, sig, buf_len, sig_len);
    op_after_sign(session, rv, sig == NULL);
    return log_call(SHIM_FN_C_Sign, NULL, rv);
}

static CK_RV shim_C_SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                               CK_ULONG part_len)
{
    CK_RV rv;
    size_t index;
    if (fault_intercept(SHIM_FN_C_SignUpdate, NULL, &rv)) {
        injected_sign_end(SHIM_FN_C_SignUpdate, session, rv, false, NULL, 0);
        return log_call(SHIM_FN_C_SignUpdate, NULL, rv);
    }
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_SignUpdate, NULL,
                        fake_session_rv(index, CKR_OPERATION_NOT_INITIALIZED));
    if (card_gone(SHIM_FN_C_SignUpdate, session, &rv))
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
    size_t index;
    if (fault_intercept(SHIM_FN_C_SignFinal, NULL, &rv)) {
        injected_sign_end(SHIM_FN_C_SignFinal, session, rv, sig == NULL, NULL, 0);
        return log_call(SHIM_FN_C_SignFinal, NULL, rv);
    }
    if (fake_session_index(session, &index))
        return log_fake(SHIM_FN_C_SignFinal, NULL,
                        fake_session_rv(index, CKR_OPERATION_NOT_INITIALIZED));
    if (card_gone(SHIM_FN_C_SignFinal, session, &rv))
        return log_call(SHIM_FN_C_SignFinal, NULL, rv);
    if (op_blocks_signing(session, sig == NULL)) {
        sign_refuse(session, NULL, 0, false);
        return log_call(SHIM_FN_C_SignFinal, NULL, CKR_USER_NOT_LOGGED_IN);
    }
    if (shim.cfg.sig == SIG_OTHER && sig != NULL) {
        /* The message so far cannot be taken back, only added to. */
        CK_BYTE tail[] = { 'p', '1', '1', 's', 'h', 'i', 'm' };
        rv = FORWARD(C_SignUpdate, (session, tail, sizeof tail));
        if (rv != CKR_OK) {
            op_after_sign(session, rv, false);
            return log_call(SHIM_FN_C_SignFinal, NULL, rv);
        }
        log_lie(SHIM_FN_C_SignFinal, "appended \"p11shim\" to the message");
    }
    CK_ULONG buf_len = sig_len != NULL ? *sig_len : 0;
    rv = FORWARD(C_SignFinal, (session, sig, sig_len));
    if (rv == CKR_OK && sig != NULL && sig_len != NULL)
        sig_tamper(SHIM_FN_C_SignFinal, sig, buf_len, sig_len);
    op_after_sign(session, rv, sig == NULL);
    return log_call(SHIM_FN_C_SignFinal, NULL, rv);
}

/* P11SHIM_SLOT_EVENTS: the shim's own slot events, from the card's state
 * as calls (this one included) have seen it. */
static CK_RV wait_slot_event(CK_FLAGS flags, CK_SLOT_ID_PTR slot)
{
    const enum shim_fn fn = SHIM_FN_C_WaitForSlotEvent;
    if (slot == NULL)
        return CKR_ARGUMENTS_BAD;
    for (;;) {
        if (!atomic_load(&slot_wait.live))
            return CKR_CRYPTOKI_NOT_INITIALIZED;
        unsigned long epoch;
        presence_now(fn, &epoch);
        pthread_mutex_lock(&shim.lock);
        bool event = epoch != shim.wait_epoch;
        if (event)
            shim.wait_epoch = epoch;
        CK_SLOT_ID event_slot = shim.event_slot;
        pthread_mutex_unlock(&shim.lock);
        if (event) {
            *slot = event_slot;
            return CKR_OK;
        }
        if (flags & CKF_DONT_BLOCK)
            return CKR_NO_EVENT;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        fault_file_check(fn, NULL);
    }
}

static CK_RV shim_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot,
                                     CK_VOID_PTR reserved)
{
    const enum shim_fn fn = SHIM_FN_C_WaitForSlotEvent;
    CK_RV rv;
    (void)reserved;
    if (!shim.cfg.slot_events) {
        if (!fault_intercept(fn, NULL, &rv))
            rv = CKR_FUNCTION_NOT_SUPPORTED;
        return log_call(fn, NULL, rv);
    }
    /* Counted until the shim is done with its state, log included. */
    atomic_fetch_add(&slot_wait.waiters, 1);
    char extra[40];
    bool reported = false;
    if (!fault_intercept(fn, NULL, &rv)) {
        rv = wait_slot_event(flags, slot);
        reported = rv == CKR_OK;
    }
    if (reported)
        snprintf(extra, sizeof extra, "slot=0x%lx", *slot);
    log_call(fn, reported ? extra : NULL, rv);
    atomic_fetch_sub(&slot_wait.waiters, 1);
    return rv;
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
