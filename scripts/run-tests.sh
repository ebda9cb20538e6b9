#!/bin/bash
# Runs the whole suite against one build directory: the unit tests and fuzz
# corpus replays (meson test; cmocka speaks TAP, so each test case counts; the
# db tests once per backend), then the integration tests (pytest, real
# binaries, real namespaces and traffic; test_api.py a second time with the
# controllers on PostgreSQL),
# then the SDK tests (node's test runner, TAP, against a stack.py deployment),
# then the browser tests of the web dashboard (Debian's chromium driven by
# playwright-core, node's test runner, against another stack.py deployment).
# Ends with one line "N passed, N failed".
set -u
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

passed=0
failed=0

# --- unit tests and fuzz replays
meson test -C "$build" --print-errorlogs --num-processes 2 >"$build/unit.out" 2>&1
urc=$?
cat "$build/unit.out"
log="$build/meson-logs/testlog.txt"
ok=$(grep -cE '^ok [0-9]+' "$log" 2>/dev/null)
nok=$(grep -cE '^not ok [0-9]+' "$log" 2>/dev/null)
mfail=$(awk '/^(Fail|Timeout|Unexpected Pass):/ {n += $NF} END {print n + 0}' "$build/unit.out")
if [ "$urc" -ne 0 ] && [ "$nok" -lt "$mfail" ]; then
	nok=$mfail # a crash or time-out ends a TAP stream without "not ok"
fi
[ "$urc" -ne 0 ] && [ "$nok" -eq 0 ] && nok=1
passed=$((passed + ok))
failed=$((failed + nok))
echo "unit: $ok passed, $nok failed"

# One pytest leg: pytest_leg NAME OUT ARGS... runs pytest-3 ARGS, keeps its
# output in OUT and adds its counts (a leg that fails without counting, e.g.
# a collection error, counts as one failure).
pytest_leg() {
	local name=$1 out=$2 start=$SECONDS prc summary p f
	shift 2
	if [ "$(id -u)" -ne 0 ]; then
		echo "$name: needs root (network namespaces); counted as failed"
		failed=$((failed + 1))
		return
	fi
	PCAPD_BUILD="$root/$build" pytest-3 -q -p no:cacheprovider "$@" 2>&1 | tee "$out"
	prc=${PIPESTATUS[0]}
	summary=$(tail -n 1 "$out")
	p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || true)
	f=$(grep -oE '[0-9]+ (failed|error|errors)' <<<"$summary" | awk '{n += $1} END {print n + 0}')
	p=${p:-0}
	f=${f:-0}
	if [ "$prc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # collection error, no tests run, or pytest itself failed
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "$name: $p passed, $f failed in $((SECONDS - start)) s"
}

# --- integration tests
pytest_leg integration "$build/integration.out" tests/integration

# --- the API suite again with the controllers on PostgreSQL: one real
# PostgreSQL 15 for the run (tests/integration/pgserver.py, Unix socket only),
# a database per stack, and two controllers over one database
# (test_replicas.py, skipped on SQLite). The db unit tests ran on both
# backends above; the rest of the integration suite runs on SQLite only, and this leg only in
# the build without sanitizers (the ASan leg already runs the db unit tests
# on PostgreSQL), to keep CI within its time.
sanitized=$(/usr/bin/python3 -c 'import json, sys
print(next((o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "b_sanitize"), "none"))' \
	"$build/meson-info/intro-buildoptions.json" 2>/dev/null)
if [ "${sanitized:-none}" = none ]; then
	pytest_leg integration-postgresql "$build/integration-pg.out" --db postgres tests/integration/test_api.py \
		tests/integration/test_replicas.py
else
	echo "integration-postgresql: left to the leg without sanitizers (this build has $sanitized)"
fi

# --- the official SDKs and the browser drive the same C paths as the
# integration suite, from outside clients; they run in the build without
# sanitizers only (the ASan leg runs the unit and integration suites above),
# to keep CI within its time.
if [ "${sanitized:-none}" != none ]; then
	echo "sdk, azure, web: left to the leg without sanitizers (this build has $sanitized)"
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
fi

# --- SDK tests: the official cloudflare npm SDK (tests/sdk, installed by
# install-deps.sh) against a real controller and agents that stack.py starts;
# node's test runner speaks TAP, so each test case counts.
if [ "$(id -u)" -ne 0 ]; then
	echo "sdk: needs root (network namespaces); counted as failed"
	failed=$((failed + 1))
else
	PCAPD_BUILD="$root/$build" /usr/bin/python3 tests/integration/stack.py run -- \
		node --test --test-concurrency=1 --test-reporter=tap tests/sdk/*.test.mjs 2>&1 | tee "$build/sdk.out"
	src=${PIPESTATUS[0]}
	p=$(grep -cE '^ok [0-9]+' "$build/sdk.out")
	f=$(grep -cE '^not ok [0-9]+' "$build/sdk.out")
	if [ "$src" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # the stack did not start, or node failed before reporting
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "sdk: $p passed, $f failed"
fi

# --- Azure SDK tests: the official @azure/arm-network (tests/azure, installed
# by install-deps.sh) against a stack.py deployment of its own (--azure: HTTPS,
# agents writing files below their --local-root).
if [ "$(id -u)" -ne 0 ]; then
	echo "azure: needs root (network namespaces); counted as failed"
	failed=$((failed + 1))
else
	PCAPD_BUILD="$root/$build" /usr/bin/python3 tests/integration/stack.py run --azure -- \
		node --test --test-concurrency=1 --test-reporter=tap tests/azure/*.test.mjs 2>&1 | tee "$build/azure.out"
	src=${PIPESTATUS[0]}
	p=$(grep -cE '^ok [0-9]+' "$build/azure.out")
	f=$(grep -cE '^not ok [0-9]+' "$build/azure.out")
	if [ "$src" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # the stack did not start, or node failed before reporting
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "azure: $p passed, $f failed"
fi

# --- browser tests: the web dashboard in Debian's chromium, driven headless
# by playwright-core (tests/web, installed by install-deps.sh), against a real
# controller and agents that stack.py starts, with real traffic. One node
# process, so chromium starts once; screenshots and downloaded captures are
# kept in $build/web-artifacts.
if [ "$(id -u)" -ne 0 ]; then
	echo "web: needs root (network namespaces); counted as failed"
	failed=$((failed + 1))
else
	rm -rf "$build/web-artifacts"
	start=$SECONDS
	PCAPD_BUILD="$root/$build" PCAPD_WEB_ARTIFACTS="$root/$build/web-artifacts" \
		/usr/bin/python3 tests/integration/stack.py run -- \
		node --test --test-concurrency=1 --test-reporter=tap tests/web/browser/ 2>&1 | tee "$build/web.out"
	wrc=${PIPESTATUS[0]}
	p=$(grep -cE '^ok [0-9]+' "$build/web.out")
	f=$(grep -cE '^not ok [0-9]+' "$build/web.out")
	if [ "$wrc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # the stack did not start, or node or chromium failed before reporting
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "web: $p passed, $f failed in $((SECONDS - start)) s (screenshots in $build/web-artifacts)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
