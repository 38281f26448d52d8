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
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>

/* Swift cannot import function-like macros; these wrap the ones meshd uses. */

static inline int meshd_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int meshd_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline int meshd_SSL_set_min_proto_version(SSL *ssl, int version) {
    return (int)SSL_set_min_proto_version(ssl, version);
}

static inline int meshd_SSL_set_max_proto_version(SSL *ssl, int version) {
    return (int)SSL_set_max_proto_version(ssl, version);
}

/* Adds `cert` (up-referenced) to the chain of the certificate set last on `ctx`. */
static inline int meshd_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *cert) {
    return (int)SSL_CTX_add1_chain_cert(ctx, cert);
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


/* The mesh CA and proxies' CSRs: X.509 extensions go through a config context whose
   setup is a macro, and the extension stacks are sk_ macros. */

static inline EVP_PKEY *meshd_ec_p256_key(void) {
    return EVP_EC_gen("P-256");
}

/* Adds extension `nid` written in OpenSSL's config syntax (e.g. "critical,CA:TRUE"). */
static inline int meshd_x509_add_extension(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Asks for a subjectAltName (config syntax, e.g. "URI:spiffe://td/ns/a/sa/b") in a CSR. */
static inline int meshd_x509_req_add_subject_alt_name(X509_REQ *req, const char *value) {
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, value);
    if (ext == NULL) return 0;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    if (exts == NULL) { X509_EXTENSION_free(ext); return 0; }
    sk_X509_EXTENSION_push(exts, ext);
    int ok = X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return ok;
}

/* The CSR's requested subjectAltName entries (free with meshd_general_names_free), or NULL. */
static inline void *meshd_x509_req_subject_alt_names(X509_REQ *req) {
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    if (exts == NULL) return NULL;
    void *names = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return names;
}

#endif
