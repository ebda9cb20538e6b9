/* SPDX-License-Identifier: MIT */
#include "tlscert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "common/io.h"

#define TLSCERT_BACKDATE_S 3600 /* tolerate clients whose clock is a little behind */

/* Writes data to path atomically: a temporary file beside it (created
 * afresh, so with exactly mode), fsync, rename over path. The caller
 * fsyncs the directory. */
static int write_atomic(const IoOps *ops, const char *path, const void *data, size_t len, mode_t mode, ErrBuf *err)
{
	char tmp[4096];
	struct iovec iov = {(void *)data, len};
	size_t written;
	int n, fd, r;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return errbuf_set(err, -ENAMETOOLONG, "path too long: %s", path);
	/* A leftover from a crash could carry another mode: start afresh. */
	r = ops->unlink(ops, tmp);
	if (r < 0 && r != -ENOENT)
		return errbuf_set(err, r, "removing %s: %s", tmp, strerror(-r));
	fd = ops->open(ops, tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
	if (fd < 0)
		return errbuf_set(err, fd, "creating %s: %s", tmp, strerror(-fd));
	r = io_writev_all(ops, fd, &iov, 1, &written);
	if (r < 0) {
		errbuf_set(err, r, "writing %s: %s", tmp, strerror(-r));
		goto fail;
	}
	r = ops->fsync(ops, fd);
	if (r < 0) {
		errbuf_set(err, r, "fsync %s: %s", tmp, strerror(-r));
		goto fail;
	}
	r = ops->close(ops, fd);
	fd = -1;
	if (r < 0) {
		errbuf_set(err, r, "closing %s: %s", tmp, strerror(-r));
		goto fail;
	}
	r = ops->rename(ops, tmp, path);
	if (r < 0) {
		errbuf_set(err, r, "renaming %s to %s: %s", tmp, path, strerror(-r));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		ops->close(ops, fd);
	ops->unlink(ops, tmp);
	return r;
}

static int add_alt_name(gnutls_x509_crt_t crt, const char *name)
{
	unsigned char ip[16];

	if (inet_pton(AF_INET, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4, GNUTLS_FSAN_APPEND);
	if (inet_pton(AF_INET6, name, ip) == 1)
		return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16, GNUTLS_FSAN_APPEND);
	return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name),
						    GNUTLS_FSAN_APPEND);
}

/* Everything but the signature. Returns a GnuTLS code; *what names the step. */
static int fill_cert(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *common_name,
		     const char *const *alt_names, size_t n_alt, const char **what)
{
	unsigned char serial[16], keyid[64];
	size_t keyid_len = sizeof(keyid);
	time_t now = time(NULL);
	int g;

	*what = "version";
	if ((g = gnutls_x509_crt_set_version(crt, 3)) < 0)
		return g;
	/* A random positive serial, as RFC 5280 asks (at most 20 bytes). */
	*what = "serial";
	if ((g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial))) < 0)
		return g;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	if ((g = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0)
		return g;
	*what = "validity";
	if ((g = gnutls_x509_crt_set_activation_time(crt, now - TLSCERT_BACKDATE_S)) < 0)
		return g;
	if ((g = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)TLSCERT_VALID_DAYS * 86400)) < 0)
		return g;
	*what = "common name";
	if ((g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, common_name,
					       (unsigned)strlen(common_name))) < 0)
		return g;
	*what = "public key";
	if ((g = gnutls_x509_crt_set_key(crt, key)) < 0)
		return g;
	*what = "subjectAltName";
	for (size_t i = 0; i < n_alt; i++)
		if ((g = add_alt_name(crt, alt_names[i])) < 0)
			return g;
	*what = "extensions";
	if ((g = gnutls_x509_crt_set_basic_constraints(crt, 1, -1)) < 0)
		return g;
	if ((g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN)) < 0)
		return g;
	if ((g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0)
		return g;
	*what = "key identifier";
	if ((g = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, keyid, &keyid_len)) < 0)
		return g;
	if ((g = gnutls_x509_crt_set_subject_key_id(crt, keyid, keyid_len)) < 0)
		return g;
	/* OpenSSL's strict mode (Python 3.13's default) wants it even here. */
	if ((g = gnutls_x509_crt_set_authority_key_id(crt, keyid, keyid_len)) < 0)
		return g;
	return 0;
}

int tlscert_selfsigned(const char *cert_path, const char *key_path, const char *common_name,
		       const char *const *alt_names, size_t n_alt, ErrBuf *err)
{
	const IoOps *ops = &io_posix;
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t key_pem = {NULL, 0}, crt_pem = {NULL, 0};
	const char *what = "key";
	int g, r;

	if (!cert_path || !key_path || !common_name || !*common_name || (n_alt > 0 && !alt_names))
		return errbuf_set(err, -EINVAL, "certificate: missing path or name");
	for (size_t i = 0; i < n_alt; i++)
		if (!alt_names[i] || !*alt_names[i])
			return errbuf_set(err, -EINVAL, "certificate: empty subjectAltName");

	if ((g = gnutls_x509_privkey_init(&key)) < 0)
		goto gnutls_fail;
	if ((g = gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
					       0, NULL, 0)) < 0)
		goto gnutls_fail;
	what = "certificate";
	if ((g = gnutls_x509_crt_init(&crt)) < 0)
		goto gnutls_fail;
	if ((g = fill_cert(crt, key, common_name, alt_names, n_alt, &what)) < 0)
		goto gnutls_fail;
	what = "signature";
	if ((g = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0)
		goto gnutls_fail;
	what = "PEM export";
	if ((g = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &key_pem)) < 0)
		goto gnutls_fail;
	if ((g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem)) < 0)
		goto gnutls_fail;

	r = write_atomic(ops, key_path, key_pem.data, key_pem.size, 0600, err);
	if (r < 0)
		goto out;
	r = write_atomic(ops, cert_path, crt_pem.data, crt_pem.size, 0600, err);
	if (r < 0)
		goto out;
	r = io_fsync_parent_dir(ops, key_path);
	if (r == 0)
		r = io_fsync_parent_dir(ops, cert_path);
	if (r < 0)
		errbuf_set(err, r, "fsync directory of %s: %s", cert_path, strerror(-r));
	goto out;

gnutls_fail:
	r = errbuf_set(err, g == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EIO, "certificate %s: %s", what,
		       gnutls_strerror(g));
out:
	if (key_pem.data) {
		/* the private key leaves no copy behind in freed memory */
		explicit_bzero(key_pem.data, key_pem.size);
		gnutls_free(key_pem.data);
	}
	gnutls_free(crt_pem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return r;
}

int tlscert_load(const char *path, char **ret_pem, ErrBuf *err)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errbuf_errno(err, "opening %s", path);
	if (fstat(fd, &st) < 0) {
		r = errbuf_errno(err, "stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = errbuf_set(err, -EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > TLSCERT_MAX_PEM) {
		r = errbuf_set(err, -EFBIG, "%s: larger than %u bytes", path, TLSCERT_MAX_PEM);
		goto out;
	}
	/* One byte more than the limit, to notice a file that grew since. */
	buf = malloc(TLSCERT_MAX_PEM + 2);
	if (!buf) {
		r = errbuf_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, TLSCERT_MAX_PEM + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = errbuf_errno(err, "reading %s", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > TLSCERT_MAX_PEM) {
			r = errbuf_set(err, -EFBIG, "%s: larger than %u bytes", path, TLSCERT_MAX_PEM);
			goto out;
		}
	}
	if (memchr(buf, '\0', len)) {
		r = errbuf_set(err, -EINVAL, "%s: not a PEM file (NUL byte)", path);
		goto out;
	}
	buf[len] = '\0';
	{
		char *shrunk = realloc(buf, len + 1);

		if (shrunk)
			buf = shrunk;
	}
	*ret_pem = buf;
	buf = NULL;
	r = 0;
out:
	if (buf) {
		explicit_bzero(buf, len); /* it may have been a private key */
		free(buf);
	}
	close(fd);
	return r;
}
