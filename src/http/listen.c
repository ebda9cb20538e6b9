/* SPDX-License-Identifier: MIT */
/* The server's listening sockets (listen.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"

/* "ADDR:PORT": an IPv4 literal, "[IPv6]", "localhost" (127.0.0.1), or ""/"*"
 * for every IPv4 address. "[::]" listens on IPv6 and IPv4 (dual stack). */
static int parse_addr(const char *spec, struct sockaddr_storage *ret_sa, socklen_t *ret_len, bool *ret_dual,
		      ErrBuf *err)
{
	struct sockaddr_storage sa = {0};
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs, *he;
	uint64_t port;
	socklen_t len;
	bool dual = false;

	if (spec[0] == '[') {
		hs = spec + 1;
		he = strchr(hs, ']');
		if (!he || he[1] != ':')
			return errbuf_set(err, -EINVAL, "bad address '%s': expected [IPV6]:PORT", spec);
		colon = he + 1;
	} else {
		hs = spec;
		colon = strrchr(spec, ':');
		if (!colon || memchr(spec, ':', (size_t)(colon - spec)))
			return errbuf_set(err, -EINVAL, "bad address '%s': expected ADDR:PORT", spec);
		he = colon;
	}
	if (parse_u64(colon + 1, strlen(colon + 1), 0, 65535, &port) < 0)
		return errbuf_set(err, -EINVAL, "bad port in '%s': expected 0..65535", spec);
	if ((size_t)(he - hs) >= sizeof(host))
		return errbuf_set(err, -EINVAL, "bad address '%s'", spec);
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';

	if (spec[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return errbuf_set(err, -EINVAL, "bad IPv6 address in '%s'", spec);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		dual = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;

		if (host[0] == '\0' || strcmp(host, "*") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (strcmp(host, "localhost") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return errbuf_set(err, -EINVAL, "bad IPv4 address in '%s'", spec);
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		len = sizeof(*s4);
	}
	*ret_sa = sa;
	*ret_len = len;
	*ret_dual = dual;
	return 0;
}

/* The listening socket is ours rather than MHD's (MHD_OPTION_LISTEN_SOCKET
 * instead of MHD_OPTION_SOCK_ADDR) so that a failure to bind comes back as
 * its own errno (-EADDRINUSE, -EACCES, ...), not as a line in MHD's log.
 * SO_REUSEADDR lets a restarted controller bind at once past connections in
 * TIME_WAIT; SO_REUSEPORT (what MHD_OPTION_LISTENING_ADDRESS_REUSE=1 turns
 * on) is deliberately not set: it would let a second controller bind the
 * same port silently and share the traffic. */
int http_listen_socket(const char *spec, bool *ret_v6, int *ret_fd, ErrBuf *err)
{
	struct sockaddr_storage sa;
	socklen_t len = 0;
	bool dual = false;
	int fd, one = 1, r;

	r = parse_addr(spec, &sa, &len, &dual, err);
	if (r < 0)
		return r;
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errbuf_errno(err, "socket for %s", spec);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		r = errbuf_errno(err, "SO_REUSEADDR on %s", spec);
		goto fail;
	}
	if (sa.ss_family == AF_INET6) {
		int v6only = dual ? 0 : 1;

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0) {
			r = errbuf_errno(err, "IPV6_V6ONLY on %s", spec);
			goto fail;
		}
	}
	if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		r = errbuf_errno(err, "bind %s", spec);
		goto fail;
	}
	if (listen(fd, SOMAXCONN) < 0) {
		r = errbuf_errno(err, "listen on %s", spec);
		goto fail;
	}
	*ret_v6 = sa.ss_family == AF_INET6;
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}
