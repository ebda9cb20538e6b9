#!/bin/sh
# Installs the Debian packages pcapd's build, tests and benchmarks need, only when
# one is missing, then the npm packages of the SDK tests (tests/sdk, tests/azure)
# when they are missing or not the pinned version. Idempotent and quick (one dpkg query,
# one file read) when everything is there.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)

PKGS="build-essential pkg-config meson ninja-build libpcap-dev libcmocka-dev
      libmicrohttpd-dev libjansson-dev libcurl4-gnutls-dev libgnutls28-dev
      libsqlite3-dev libcap-dev
      tcpdump tshark wireshark-common netsniff-ng iproute2 iputils-ping procps
      python3-pytest python3-scapy clang clang-format libclang-rt-14-dev time
      openssl wrk stress-ng"
# node v20+ may come from outside Debian (nodesource, a tarball); Debian's
# nodejs and npm only when there is no node at all.
if ! command -v node >/dev/null 2>&1; then
	PKGS="$PKGS nodejs npm"
fi

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "install-deps: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer once, non-interactively.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- the official Cloudflare SDK, pinned in tests/sdk/package.json and its lock
sdk="$root/tests/sdk"
want=$(sed -n 's/.*"cloudflare": *"\([^"]*\)".*/\1/p' "$sdk/package.json" | head -n 1)
have=""
if [ -f "$sdk/node_modules/cloudflare/package.json" ]; then
	have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$sdk/node_modules/cloudflare/package.json" | head -n 1)
fi
if [ "$have" != "$want" ]; then
	echo "install-deps: installing the cloudflare SDK $want (npm ci in tests/sdk)" >&2
	(cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# --- the official Azure SDK (@azure/arm-network), pinned in tests/azure/package.json and its lock
az="$root/tests/azure"
want=$(sed -n 's/.*"@azure\/arm-network": *"\([^"]*\)".*/\1/p' "$az/package.json" | head -n 1)
have=""
if [ -f "$az/node_modules/@azure/arm-network/package.json" ]; then
	have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$az/node_modules/@azure/arm-network/package.json" | head -n 1)
fi
if [ "$have" != "$want" ]; then
	echo "install-deps: installing @azure/arm-network $want (npm ci in tests/azure)" >&2
	(cd "$az" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
