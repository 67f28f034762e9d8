#!/usr/bin/env bash
# Build (or reuse) a pjsua2 wheel with call-center limits and install it into a venv.
#
# Usage: scripts/build_pjsua2.sh VENV_PYTHON
#
# The source is the pjproject tree Debian ships inside its asterisk source package
# (see ../shared/PJSIP.md). It is fetched with a private apt sources list so the
# system's apt configuration is untouched. The wheel is cached under
# $CALLCENTER_CACHE (default ~/.cache/callcenter) keyed by pjproject version and the
# sha256 of config_site.h, scripts/pjproject-*.patch and the C flags, so the 5-minute build happens once per machine.
set -euo pipefail

PY="${1:?usage: build_pjsua2.sh VENV_PYTHON}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${CALLCENTER_CACHE:-$HOME/.cache/callcenter}"
# Compiler flags for the C libraries. -O3 lets GCC vectorise the conference bridge's per-sample loops
# (level sums, 16/32-bit copies): its get_frame went from 8.9% to 5.3% of a worker's samples at 1000
# concurrent calls (bench/RESULTS.md, "Session 8"). The SWIG wrapper stays at -O2.
PJ_CFLAGS="-O3 -fPIC"
# The cache key covers config_site.h, our source patches (scripts/pjproject-*.patch) and the flags.
SITE_HASH="$( (cat "$HERE/config_site.h" "$HERE"/pjproject-*.patch; echo "CFLAGS=$PJ_CFLAGS") | sha256sum | cut -c1-12)"
mkdir -p "$CACHE"

log() { echo "[pjsua2] $*" >&2; }

PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

# Already installed from this config: nothing to do.
if "$PY" -c "import pjsua2, sys; sys.exit(0 if pjsua2.UaConfig().maxCalls >= 1024 else 1)" 2>/dev/null \
   && [[ -f "$("$PY" -c 'import sys; print(sys.prefix)')/.pjsua2-$SITE_HASH" ]]; then
    exit 0
fi

mark_installed() { touch "$("$PY" -c 'import sys; print(sys.prefix)')/.pjsua2-$SITE_HASH"; }

# A cached wheel for this config hash and Python (any pjproject version) is reused.
existing="$(ls -1 "$CACHE"/wheels/*/"$SITE_HASH"/pjsua2-*-"$PYTAG"-*.whl 2>/dev/null | sort -V | tail -1 || true)"
if [[ -n "$existing" ]]; then
    log "reusing cached wheel $existing"
    "$PY" -m pip install -q --force-reinstall --no-deps "$existing"
    mark_installed
    exit 0
fi

SRC="$CACHE/src"
mkdir -p "$SRC/apt/lists/partial" "$SRC/apt/archives/partial"
echo "deb-src http://deb.debian.org/debian sid main" > "$SRC/apt/sources.list"
APT_OPTS=(-o Dir::Etc::SourceList="$SRC/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o Dir::State::Lists="$SRC/apt/lists" -o Dir::Cache="$SRC/apt" -o APT::Sandbox::User=root)
tarball="$(ls -1 "$SRC"/asterisk_*.orig-*pjproject.tar.* 2>/dev/null | tail -1 || true)"
if [[ -z "$tarball" ]]; then
    log "fetching the asterisk source package (carries pjproject) from Debian sid"
    apt-get "${APT_OPTS[@]}" update -qq
    (cd "$SRC" && apt-get "${APT_OPTS[@]}" source --download-only asterisk >/dev/null)
    tarball="$(ls -1 "$SRC"/asterisk_*.orig-*pjproject.tar.* | tail -1)"
fi
log "source: $tarball"

BUILD="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT
tar -xf "$tarball" -C "$BUILD"
PJ="$(find "$BUILD" -maxdepth 2 -name aconfigure -printf '%h\n' | head -1)"
PJVER="$(cat "$PJ/version.mak" | sed -n 's/^export PJ_VERSION_MAJOR *:= *//p;s/^export PJ_VERSION_MINOR *:= *//p;s/^export PJ_VERSION_REV *:= *//p' | paste -sd. - | sed 's/\.$//')"
log "pjproject $PJVER in $PJ"

cp "$HERE/config_site.h" "$PJ/pjlib/include/pj/config_site.h"
cd "$PJ"
for p in "$HERE"/pjproject-*.patch; do
    log "applying $(basename "$p")"
    patch -s -p1 --forward < "$p"
done
# Debian dropped the bdimad sound device sources; the makefile still lists them.
sed -i 's/ bdimad_dev\.o//' pjmedia/build/Makefile
./configure -q --disable-video --disable-sound --enable-epoll --disable-libwebrtc \
    --disable-libyuv --disable-v4l2 --disable-opencore-amr --disable-ssl --disable-gsm-codec \
    --disable-speex-codec --disable-speex-aec --disable-ilbc-codec --disable-g7221-codec \
    --disable-libsrtp --disable-resample --disable-bcg729 --disable-silk --disable-opus \
    --disable-lyra --disable-upnp --disable-ffmpeg --disable-sdl --disable-openh264 \
    CFLAGS="$PJ_CFLAGS" CXXFLAGS="-O2 -fPIC" >/dev/null
JOBS="$(nproc)"
log "make dep && make lib (-j$JOBS)"
make -s dep >/dev/null 2>&1
make -s -j"$JOBS" lib >/dev/null
log "building the SWIG python module"
cd pjsip-apps/src/swig/python
"$PY" -m pip install -q setuptools wheel
make -s PYTHON_EXE="$PY" wheel >/dev/null 2>"$BUILD/swig.log" || { tail -30 "$BUILD/swig.log" >&2; exit 1; }
OUT="$CACHE/wheels/$PJVER/$SITE_HASH"
mkdir -p "$OUT"
cp dist/pjsua2-*.whl "$OUT/"
whl="$(ls -1 "$OUT"/pjsua2-*.whl | tail -1)"
log "cached $whl"
"$PY" -m pip install -q --force-reinstall --no-deps "$whl"
mark_installed
