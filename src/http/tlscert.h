/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * TLS certificate helpers for the controller's HTTPS side: a self-signed
 * certificate made on first start (`pcapd up`), and PEM files read into
 * memory for HttpConfig.tls_cert_pem / tls_key_pem.
 *
 * The certificate is its own trust anchor: basicConstraints CA:TRUE,
 * keyUsage digitalSignature + keyCertSign, extendedKeyUsage serverAuth,
 * subject and authority key identifiers. Clients trust it by being given the
 * certificate file as their CA (curl --cacert, NODE_EXTRA_CA_CERTS,
 * requests' verify=), and check the host against its subjectAltName.
 */

#include <stddef.h>

#include "common/util.h"

#define TLSCERT_MAX_PEM (1024u * 1024) /* tlscert_load() refuses larger files */
#define TLSCERT_VALID_DAYS 3653        /* ten years */

/* Generates an ECDSA P-256 key and a self-signed X.509 v3 certificate for
 * common_name, valid from an hour ago for TLSCERT_VALID_DAYS, whose
 * subjectAltName lists alt_names[0..n_alt): IP literals ("127.0.0.1",
 * "::1") become IP entries, anything else a DNS entry. Both are PEM files,
 * each written under a temporary name, fsync()ed and renamed into place,
 * then the directory is fsync()ed. The key (PKCS#8) is written first, mode
 * 0600, the certificate last, mode 0600 too (DATA is private): a certificate file present means
 * its key is too. Returns 0 or -errno with err. */
int tlscert_selfsigned(const char *cert_path, const char *key_path, const char *common_name,
		       const char *const *alt_names, size_t n_alt, ErrBuf *err);

/* Reads the PEM file at path (a regular file of at most TLSCERT_MAX_PEM
 * bytes, -EFBIG beyond) into a malloc'd NUL-terminated string that the
 * caller frees. Returns 0 or -errno with err. */
int tlscert_load(const char *path, char **ret_pem, ErrBuf *err);
