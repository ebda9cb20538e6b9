#!/bin/sh
# Installs the Debian packages pcapd's build, tests and benchmarks need (among
# them chromium for the browser tests, radosgw for the S3 store tests and
# rclone for the upload benchmark), only when one is missing, then the npm
# packages of the SDK tests (tests/sdk, tests/azure), the store tests
# (tests/stores: Azurite, @azure/storage-blob) and the browser tests
# (tests/web) when they are missing or not the pinned version. Idempotent and
# quick (one dpkg query, a few file reads) when everything is there.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)

PKGS="build-essential pkg-config meson ninja-build libpcap-dev libcmocka-dev
      libmicrohttpd-dev libjansson-dev libcurl4-gnutls-dev libgnutls28-dev
      libsqlite3-dev libpq-dev postgresql libcap-dev
      tcpdump tshark wireshark-common netsniff-ng iproute2 iputils-ping procps
      python3-pytest python3-scapy clang clang-format libclang-rt-14-dev time
      openssl wrk stress-ng rclone chromium help2man python3-prometheus-client
      systemd man-db groff-base
      ceph-mon ceph-osd radosgw ceph-common python3-boto3"
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

# --- npm packages, each pinned in its package.json and lock: the official
# Cloudflare SDK (tests/sdk), the official Azure SDK (@azure/arm-network,
# tests/azure), playwright-core (tests/web; it drives Debian's chromium and
# downloads no browser of its own), Azurite and @azure/storage-blob (tests/stores).
npm_pinned() { # DIR PACKAGE: npm ci in DIR unless PACKAGE is there at its pinned version
	dir="$root/$1"
	want=$(sed -n "s|.*\"$2\": *\"\([^\"]*\)\".*|\1|p" "$dir/package.json" | head -n 1) # "|": a name may hold "/"
	have=""
	if [ -f "$dir/node_modules/$2/package.json" ]; then
		have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dir/node_modules/$2/package.json" | head -n 1)
	fi
	if [ "$have" != "$want" ]; then
		echo "install-deps: installing $2 $want (npm ci in $1)" >&2
		(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	fi
}
npm_pinned tests/sdk cloudflare
npm_pinned tests/azure @azure/arm-network
npm_pinned tests/web playwright-core
npm_pinned tests/stores azurite
npm_pinned tests/stores @azure/storage-blob
