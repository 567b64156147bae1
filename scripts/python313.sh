#!/usr/bin/env bash
# Prints the path of a working CPython 3.13 (Blender 5.1 to 5.3 run Python 3.13), finding or making one:
#   1. $MARIONETTE_PYTHON313, if set;
#   2. one already built by this script (cached in $MARIONETTE_CACHE/python3.13);
#   3. a pyenv or system python3.13 that runs and has ssl, sqlite3, ctypes, venv and ensurepip;
#   4. Debian 13 or later: apt-get install python3.13 python3.13-venv;
#   5. Debian 12: Debian 13's own python3.13 source package (upstream source and Debian's upstream fixes),
#      built into the cache (about 3 minutes), fetched through a private apt state so the system's apt
#      sources are never touched.
# Everything it says goes to stderr; stdout is the path alone. Exits non-zero when nothing works.
set -euo pipefail
CACHE=${MARIONETTE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/marionette}
PREFIX="$CACHE/python3.13"

works() {  # python: runs, and has what venv + pip + requests + bpy need
  [ -n "$1" ] && [ -x "$1" ] || return 1
  "$1" -c 'import sys, ssl, sqlite3, ctypes, venv, ensurepip, lzma, bz2, zlib
assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && "$1" -m ensurepip --version >/dev/null 2>&1
}
found() { echo "$1"; exit 0; }
say() { echo "python3.13: $*" >&2; }

works "${MARIONETTE_PYTHON313:-}" && found "$MARIONETTE_PYTHON313"
works "$PREFIX/bin/python3.13" && found "$PREFIX/bin/python3.13"
for candidate in "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13; do
  works "$candidate" && found "$candidate"
done

. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" = debian ] && [ "${VERSION_ID:-0}" -ge 13 ] 2>/dev/null; then
  say "installing Debian's python3.13"
  apt-get update -qq >&2 && apt-get install -y -qq python3.13 python3.13-venv >&2
  works /usr/bin/python3.13 && found /usr/bin/python3.13
fi

[ "${ID:-}" = debian ] || { say "no Python 3.13 found; set MARIONETTE_PYTHON313"; exit 1; }
say "building Debian 13's python3.13 into $PREFIX (once; about 3 minutes on 2 cores)"
apt-get update -qq >&2 || true
apt-get install -y -qq build-essential pkg-config xz-utils patch libssl-dev zlib1g-dev libffi-dev libbz2-dev \
  liblzma-dev libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev libgdbm-compat-dev \
  libexpat1-dev >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/sources"
# The mirror the system already uses (deb822 or one-line form), else Debian's own.
mirror=$( { sed -nE 's/^\s*URIs:\s*(\S+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null
  sed -nE 's/^\s*deb\s+(\[[^]]*\]\s+)?(\S+).*/\2/p' /etc/apt/sources.list 2>/dev/null; } \
  | grep -v security | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
cat >"$work/apt/sources/trixie.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/sources"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
apt-get "${apt_private[@]}" update -qq >&2
(cd "$work" && apt-get "${apt_private[@]}" source --download-only python3.13 >&2)

src="$work/src"
mkdir -p "$src"
tar -xf "$(ls "$work"/python3.13_*.orig.tar.xz | head -n 1)" -C "$src" --strip-components=1
tar -xf "$(ls "$work"/python3.13_*.debian.tar.xz | head -n 1)" -C "$src"
(
  cd "$src"
  if [ -f debian/patches/series ]; then
    grep -vE '^\s*(#|$)' debian/patches/series | while read -r p _; do
      # The upstream fixes (*.patch: security and crash fixes) are what is wanted; Debian's packaging
      # changes (*.diff: install layout, multiarch, ensurepip disabled since pip comes from apt there)
      # would leave a Python that cannot make a venv with pip.
      case "$p" in *.patch) ;; *) continue ;; esac
      patch -p1 -s <"debian/patches/$p" >&2 || say "patch $p did not apply; building without it"
    done
  fi
  ./configure --prefix="$PREFIX" --with-ensurepip=install --disable-test-modules >"$work/configure.log" 2>&1 \
    || { tail -n 30 "$work/configure.log" >&2; exit 1; }
  make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
  make install >"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; exit 1; }
)
works "$PREFIX/bin/python3.13" && found "$PREFIX/bin/python3.13"
say "the build finished but $PREFIX/bin/python3.13 does not work"
exit 1
