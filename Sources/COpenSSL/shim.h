#ifndef MESHD_COPENSSL_SHIM_H
#define MESHD_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Swift cannot import function-like macros; these wrap the ones meshd uses. */

static inline int meshd_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int meshd_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline long meshd_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

static inline long meshd_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}

static inline uint64_t meshd_SSL_CTX_set_options(SSL_CTX *ctx, uint64_t options) {
    return SSL_CTX_set_options(ctx, options);
}

/* The SSL_OP_* constants are built with a macro (SSL_OP_BIT), so Swift sees none of them. */
static inline uint64_t meshd_SSL_OP_defaults(void) {
    return SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
}

static inline long meshd_SSL_MODE_defaults(void) {
    return SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
}

static inline int meshd_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline int meshd_BIO_set_mem_eof_return(BIO *bio, int value) {
    return (int)BIO_set_mem_eof_return(bio, value);
}

static inline long meshd_BIO_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}

/* Certificate facts (the downstream TLS facts filters see): the subjectAltName stack and
   its union of name kinds, and the RFC 2253 print flags, are macros or unions Swift cannot use. */

static inline unsigned long meshd_XN_FLAG_RFC2253(void) {
    return XN_FLAG_RFC2253;
}

/* The certificate's subjectAltName entries (free with meshd_general_names_free), or NULL. */
static inline void *meshd_x509_subject_alt_names(X509 *cert) {
    return X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
}

static inline int meshd_general_names_count(void *names) {
    return sk_GENERAL_NAME_num((GENERAL_NAMES *)names);
}

/* Entry `i` when it is of `type` (GEN_DNS, GEN_URI: IA5 strings): its bytes and length; else NULL. */
static inline const unsigned char *meshd_general_name_text(void *names, int i, int type, int *length) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value((GENERAL_NAMES *)names, i);
    if (name == NULL || name->type != type) return NULL;
    const ASN1_IA5STRING *text = type == GEN_DNS ? name->d.dNSName : name->d.uniformResourceIdentifier;
    *length = ASN1_STRING_length(text);
    return ASN1_STRING_get0_data(text);
}

static inline void meshd_general_names_free(void *names) {
    GENERAL_NAMES_free((GENERAL_NAMES *)names);
}

#endif
