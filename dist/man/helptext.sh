#!/bin/sh
# The --help text of `PROGRAM [SUBCOMMAND]` in the shape help2man reads: it
# runs "helptext.sh PROGRAM [SUBCOMMAND]" (its --help-option) and takes the
# synopsis from "Usage: ..." and "  or: ..." lines. pcapd's usage block
# (up to the first empty line) says "usage:", wraps long lines with
# indented "[--flag ...]" continuations and lists alternatives as indented
# "pcapd ..." lines: here they become one line per alternative.
set -eu
"$@" --help | awk '
	function flush() { if (cur != "") print cur; cur = "" }
	NR == 1 && /^usage: / { sub(/^usage:/, "Usage:"); cur = $0; inusage = 1; next }
	inusage && /^[ \t]*$/ { flush(); inusage = 0; print; next }
	inusage && /^[ \t]+[[-]/ { line = $0; sub(/^[ \t]+/, "", line); cur = cur " " line; next }
	inusage && /^[ \t]+[a-z]/ { flush(); line = $0; sub(/^[ \t]+/, "", line); cur = "  or: " line; next }
	inusage { flush(); inusage = 0 }
	{ print }
	END { flush() }
'
