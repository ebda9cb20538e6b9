#!/bin/sh
# Fails when a tracked C file differs from what clang-format (.clang-format,
# the style authority) makes of it. Speaks TAP, one test point.
set -eu
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
echo "1..1"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src tests -name '*.[ch]')
if out=$(echo "$files" | xargs clang-format --dry-run --Werror 2>&1); then
	echo "ok 1 - C sources are clang-formatted"
else
	echo "$out" | grep -E 'error:' | sed 's/^/# /' | head -20
	echo "not ok 1 - run: git ls-files '*.c' '*.h' | xargs clang-format -i"
fi
