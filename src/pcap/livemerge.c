/* SPDX-License-Identifier: MIT */
/* The live merge's decision (livemerge.h). */
#include "livemerge.h"

LiveMergeStep livemerge_step(LiveInput *in, size_t n, int64_t now, int64_t window_ns, size_t *ret_input,
			     int64_t *ret_until)
{
	int64_t until = INT64_MAX;
	size_t c = n;
	bool ended = true, blocked = false;

	for (size_t i = 0; i < n; i++) {
		ended = ended && in[i].ended && !in[i].has_head;
		if (in[i].has_head && (c == n || in[i].head_ts < in[c].head_ts))
			c = i;
	}
	if (c == n) {
		/* Nothing queued: an input passed over stays so (it sent nothing),
		 * and no other can be blocking. */
		*ret_until = INT64_MAX;
		return ended ? LIVEMERGE_DONE : LIVEMERGE_WAIT;
	}
	for (size_t i = 0; i < n; i++) {
		LiveInput *j = &in[i];

		if (i == c || j->ended || j->has_head || j->watermark_ns >= in[c].head_ts) {
			j->blocking_since = 0;
			continue;
		}
		if (j->blocking_since == 0)
			j->blocking_since = now;
		if (now - j->blocking_since >= window_ns)
			continue; /* passed over until it sends something */
		blocked = true;
		if (j->blocking_since + window_ns < until)
			until = j->blocking_since + window_ns;
	}
	if (blocked) {
		*ret_until = until;
		return LIVEMERGE_WAIT;
	}
	*ret_input = c;
	return LIVEMERGE_EMIT;
}
