#!/bin/sh
# Builds the lab's base image from Debian packages, for machines with no image registry
# (where `FROM debian:bookworm-slim` cannot be pulled): debootstrap a minimal bookworm
# root file system and `docker import` it. Usage: build-base-image.sh [TAG]
#
# The mirror is the one apt already uses on this machine (so it works wherever apt does);
# RSTLAB_DEBIAN_MIRROR overrides it.
set -eu

tag=${1:-rstlab-base:bookworm}
suite=bookworm

find_mirror() {
  # deb822 sources first (URIs: line of a stanza whose Suites include $suite), then one-line ones.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }
    ' "$f" | head -n 1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v suite="$suite" '$1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) == suite) { print $i; exit }
    }' "$f"
  done
}

mirror=${RSTLAB_DEBIAN_MIRROR:-$(find_mirror | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null 2>&1 || { echo "build-base-image: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "build-base-image: debootstrap needs root" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/rstlab-rootfs.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

echo "build-base-image: debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$dir" "$mirror"
# A smaller image, and apt inside it uses the same mirror as debootstrap did.
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
echo "deb $mirror $suite main" > "$dir/etc/apt/sources.list"
echo "build-base-image: docker import -> $tag"
tar -C "$dir" -c . | docker import --change 'CMD ["bash"]' - "$tag"
