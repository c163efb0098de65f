#!/usr/bin/env bash
# Installs what rstlab needs on the host, from the distribution's packages (Debian/Ubuntu):
# iproute2 (ip, netns, veth), iptables, tcpdump, conntrack, util-linux (nsenter), procps
# (sysctl, pgrep), and for the Docker backend docker.io and debootstrap; for the tests of
# the teaching outputs chromium (report.html checked in a headless browser, never a
# downloaded one) and tshark (all.pcapng read back by Wireshark's own dissectors); then
# starts the Docker daemon if none is running. Changes nothing of the host's network.
#
# Run it as root (`bash lab/setup-host.sh`: a minimal Debian machine has no sudo), or as a
# user with sudo, which it then uses for itself; there is no sudo in the line to type.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-host: needs root: run it as root (su -c 'bash lab/setup-host.sh')" >&2; exit 3; }
  exec sudo bash "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  iproute2 iptables nftables tcpdump conntrack util-linux procps docker.io debootstrap ca-certificates chromium tshark >/dev/null
echo "setup-host: installed iproute2 iptables nftables tcpdump conntrack util-linux procps docker.io debootstrap chromium tshark"

if [ "${1:-}" != "--no-docker" ] && ! docker info >/dev/null 2>&1; then
  echo "setup-host: starting dockerd"
  nohup dockerd >/var/log/rstlab-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup-host: dockerd did not start (see /var/log/rstlab-dockerd.log)" >&2; exit 3; }
fi
echo "setup-host: ready"
