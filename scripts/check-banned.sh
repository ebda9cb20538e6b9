#!/bin/sh
# Fails when product code (src/) calls a function docs/STYLE.md bans: unbounded or
# unchecked string and number handling. Run as the 'style' test suite.
# Speaks TAP (two test points) like every test in the suite.
set -eu
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
echo "1..2"
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|atoll|gets|strncpy|strncat|alloca|tmpnam|mktemp)[[:space:]]*\('
if grep -rnE "$banned" "$root/src" --include='*.c' --include='*.h'; then
	echo "not ok 1 - banned calls above (docs/STYLE.md, 'Strings carry their length')"
else
	echo "ok 1 - no banned calls"
fi
# Every open()/socket()/accept() must be close-on-exec: flag calls that lack it.
if grep -rnE '\b(socket|accept4?|open|openat|epoll_create1?|eventfd|pipe2?)[[:space:]]*\(' "$root/src" --include='*.c' |
	grep -vE 'CLOEXEC|ops->open|->open\(|io_posix|posix_open|//|/\*|^[^:]+:[0-9]+:[[:space:]]*\*'; then
	echo "not ok 2 - descriptors above are opened without O_CLOEXEC/SOCK_CLOEXEC"
else
	echo "ok 2 - every descriptor is close-on-exec"
fi
