/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/ifaces.h"
#include "capture/capture.h"

void ifaces_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool is_up(int sock, const char *name)
{
	struct ifreq ifr = {0};
	size_t n = strlen(name);

	if (n >= sizeof(ifr.ifr_name))
		return false;
	memcpy(ifr.ifr_name, name, n + 1);
	return ioctl(sock, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
}

int ifaces_up(char ***ret, size_t *ret_n, ErrBuf *err)
{
	struct if_nameindex *all;
	char **v = NULL;
	size_t n = 0, cap = 0;
	int sock, r = 0;

	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return errbuf_errno(err, "socket for interface flags");
	all = if_nameindex();
	if (!all) {
		r = errbuf_errno(err, "listing interfaces");
		goto out;
	}
	for (struct if_nameindex *i = all; i->if_index != 0 && i->if_name; i++) {
		ErrBuf ignored;
		uint32_t lt;

		if (!is_up(sock, i->if_name) || capture_iface_linktype(i->if_name, &lt, &ignored) < 0)
			continue; /* down, gone since the listing, or a link type we cannot capture */
		if (n == CAPTURE_MAX_IFACES) {
			r = errbuf_set(err, -E2BIG, "more than %u interfaces are up: name them with -i",
				       CAPTURE_MAX_IFACES);
			goto out;
		}
		if (n == cap) {
			char **nv = realloc(v, (cap ? cap * 2 : 8) * sizeof(*v));

			if (!nv)
				goto oom;
			v = nv;
			cap = cap ? cap * 2 : 8;
		}
		v[n] = strdup(i->if_name);
		if (!v[n])
			goto oom;
		n++;
	}
	if (n == 0) {
		r = errbuf_set(err, -ENODEV, "no interface is up");
		goto out;
	}
	*ret = v;
	*ret_n = n;
	v = NULL;
	goto out;
oom:
	r = errbuf_set(err, -ENOMEM, "out of memory");
out:
	ifaces_free(v, n);
	if (all)
		if_freenameindex(all);
	close(sock);
	return r;
}
