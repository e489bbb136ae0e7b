#ifndef VAKTPOST_CLIBCRYPTO_SHIM_H
#define VAKTPOST_CLIBCRYPTO_SHIM_H
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#endif
