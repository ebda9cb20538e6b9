/* SPDX-License-Identifier: MIT */
/* Capability reduction with libcap; policy in caps.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agent/caps.h"

static int fail(ErrBuf *err, const char *what)
{
	return errbuf_errno(err, "%s", what);
}

int agentcaps_restrict(ErrBuf *err)
{
	const cap_value_t keep[] = {CAP_NET_RAW};
	cap_flag_value_t raw = CAP_CLEAR, setpcap = CAP_CLEAR;
	cap_t caps;
	int r = 0;

	caps = cap_get_proc();
	if (!caps)
		return fail(err, "cap_get_proc");
	if (cap_get_flag(caps, CAP_NET_RAW, CAP_PERMITTED, &raw) < 0 ||
	    cap_get_flag(caps, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap) < 0) {
		r = fail(err, "cap_get_flag");
		goto out;
	}
	if (raw != CAP_SET) {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

		if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
			n = snprintf(exe, sizeof(exe), "<path to pcapd>");
		exe[n] = '\0';
		r = errbuf_set(err, -EPERM,
			       "the agent needs CAP_NET_RAW to capture: run it as root or grant it with "
			       "'sudo setcap cap_net_raw+ep %s'",
			       exe);
		goto out;
	}
	/* The bounding set first: dropping from it needs CAP_SETPCAP, which the
	 * next step removes. Without CAP_SETPCAP (an ordinary user with a file
	 * capability) the bounding set cannot change, and no_new_privs makes it
	 * moot. */
	if (setpcap == CAP_SET) {
		for (cap_value_t v = 0; v < (cap_value_t)cap_max_bits(); v++) {
			if (v == CAP_NET_RAW)
				continue;
			/* EINVAL: a capability this kernel does not know. */
			if (cap_drop_bound(v) < 0 && errno != EINVAL) {
				r = fail(err, "dropping capabilities from the bounding set");
				goto out;
			}
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = fail(err, "prctl(PR_SET_NO_NEW_PRIVS)");
		goto out;
	}
	if (cap_reset_ambient() < 0 && errno != EINVAL) {
		r = fail(err, "clearing ambient capabilities");
		goto out;
	}
	if (cap_clear(caps) < 0 || cap_set_flag(caps, CAP_PERMITTED, 1, keep, CAP_SET) < 0 ||
	    cap_set_flag(caps, CAP_EFFECTIVE, 1, keep, CAP_SET) < 0) {
		r = fail(err, "cap_set_flag");
		goto out;
	}
	if (cap_set_proc(caps) < 0)
		r = fail(err, "cap_set_proc");
out:
	cap_free(caps);
	return r;
}
