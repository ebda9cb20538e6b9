#!/bin/sh
# Installs the Debian packages pcapd's build, tests and benchmarks need, only when
# one is missing. Idempotent and quick (one dpkg query) when everything is there.
set -eu

PKGS="build-essential pkg-config meson ninja-build libpcap-dev libcmocka-dev
      tcpdump tshark wireshark-common netsniff-ng iproute2 iputils-ping procps
      python3-pytest python3-scapy clang clang-format libclang-rt-14-dev time"

missing=""
for p in $PKGS; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

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
