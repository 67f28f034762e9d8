#!/usr/bin/env bash
# Build (or reuse) the Asterisk benchmark peer from Debian's asterisk source package.
#
# Usage: bench/asterisk/build.sh            # prints the install prefix on stdout
#
# The source is the same Debian sid package our pjproject comes from (scripts/build_pjsua2.sh),
# fetched with a private apt sources list so the system's apt configuration is untouched; the
# download is shared with that script ($CALLCENTER_CACHE/src). It is unpacked with Debian's
# patches under $CALLCENTER_CACHE/asterisk-src and installed into the prefix
# $CALLCENTER_CACHE/asterisk/<version>/ (never into the repo). Asterisk's bundled pjproject is built
# from Debian's pjproject component tarball, repacked the way debian/rules does it. Only the modules
# the two bench scenarios need are built. A second run only checks the prefix.
#
# Build deps (Debian): build-essential libedit-dev libjansson-dev libxml2-dev uuid-dev
# libsqlite3-dev libssl-dev libncurses-dev pkg-config bzip2 patch dpkg-dev (sox for the prompts).
set -euo pipefail

CACHE="${CALLCENTER_CACHE:-$HOME/.cache/callcenter}"
SRC="$CACHE/src"
JOBS="${JOBS:-$(nproc)}"
log() { echo "[asterisk] $*" >&2; }

# The modules the bench configs load (bench/asterisk/modules.conf); everything else is left out so
# Asterisk's cost is the cost of these scenarios, not of 200 idle modules.
MODULES=(
    chan_pjsip res_pjsip res_pjsip_session res_pjsip_sdp_rtp res_pjsip_endpoint_identifier_ip
    res_pjsip_endpoint_identifier_anonymous res_pjsip_endpoint_identifier_user res_pjsip_caller_id
    res_pjsip_rfc3326 res_pjsip_pubsub res_pjsip_outbound_authenticator_digest res_pjsip_authenticator_digest
    res_pjsip_dtmf_info res_pjsip_nat res_pjsip_dialog_info_body_generator
    res_pjproject res_sorcery_config res_sorcery_memory res_sorcery_astdb res_sorcery_realtime
    res_sorcery_memory_cache res_rtp_asterisk res_timing_timerfd res_musiconhold res_format_attr_opus
    app_queue app_playback app_read app_dial app_verbose app_echo pbx_config
    codec_ulaw codec_alaw codec_a_mu format_wav format_pcm format_sln
    func_callerid func_strings func_logic func_math func_global func_channel func_cut func_rand
    bridge_simple bridge_native_rtp bridge_holding
)

fetch_sources() {
    mkdir -p "$SRC/apt/lists/partial" "$SRC/apt/archives/partial"
    echo "deb-src http://deb.debian.org/debian sid main" > "$SRC/apt/sources.list"
    local opts=(-o Dir::Etc::SourceList="$SRC/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o Dir::State::Lists="$SRC/apt/lists" -o Dir::Cache="$SRC/apt" -o APT::Sandbox::User=root)
    if ! ls "$SRC"/asterisk_*.dsc >/dev/null 2>&1 || ! ls "$SRC"/asterisk_*.orig.tar.* >/dev/null 2>&1; then
        log "fetching the asterisk source package from Debian sid"
        apt-get "${opts[@]}" update -qq
        (cd "$SRC" && apt-get "${opts[@]}" source --download-only asterisk >/dev/null)
    fi
}

fetch_sources
DSC="$(ls -1 "$SRC"/asterisk_*.dsc | sort -V | tail -1)"
DEBVER="$(sed -n 's/^Version: //p' "$DSC")"
VERSION="${DEBVER#*:}"; VERSION="${VERSION%%+*}"   # 1:22.10.1+dfsg+~cs... -> 22.10.1
PREFIX="$CACHE/asterisk/$VERSION"

if [[ -x "$PREFIX/sbin/asterisk" && -f "$PREFIX/.modules" ]] \
   && [[ "$(cat "$PREFIX/.modules")" == "${MODULES[*]}" ]] \
   && "$PREFIX/sbin/asterisk" -V >/dev/null 2>&1; then
    log "cached: $PREFIX ($("$PREFIX/sbin/asterisk" -V))"
    echo "$PREFIX"
    exit 0
fi

# No epoch colon in the path: make rejects it in target patterns.
TREE="$CACHE/asterisk-src/asterisk-$VERSION"
if [[ ! -f "$TREE/.unpacked" ]]; then
    log "unpacking $DSC with Debian's patches"
    rm -rf "$TREE"
    mkdir -p "$CACHE/asterisk-src"
    dpkg-source --no-check -x "$DSC" "$TREE" >/dev/null
    touch "$TREE/.unpacked"
fi
cd "$TREE"

# debian/rules' way: the pjproject component (Xpjproject) repacked as the tarball Asterisk's bundled
# build expects in its download cache, with a matching md5 so nothing is downloaded.
PJVER="$(sed -n 's/^export PJ_VERSION_MAJOR *:= *//p;s/^export PJ_VERSION_MINOR *:= *//p;s/^export PJ_VERSION_REV *:= *//p' \
    Xpjproject/version.mak | paste -sd. - | sed 's/\.$//')"
DL="$TREE/debian/build-pjproject"
if [[ ! -f "$DL/pjproject-$PJVER.tar.bz2" ]]; then
    log "repacking Debian's pjproject $PJVER for the bundled build"
    mkdir -p "$DL"
    ln -sfn ../../Xpjproject "$DL/pjproject-$PJVER"
    (cd "$DL" && tar --create --dereference "pjproject-$PJVER" | bzip2 --fast > "pjproject-$PJVER.tar.bz2")
    (cd "$DL" && md5sum "pjproject-$PJVER.tar.bz2") > "third-party/pjproject/pjproject-$PJVER.tar.bz2.md5"
fi

if [[ ! -f config.status ]] || ! grep -q -- "--prefix=$PREFIX" config.status; then
    log "configure (prefix $PREFIX, bundled pjproject)"
    EXTERNALS_CACHE_DIR="$DL" PATH="$PATH:$TREE/debian/dummyprogs" ./configure -q --prefix="$PREFIX" \
        --with-pjproject-bundled --with-jansson --without-dahdi --without-pri --without-ss7 \
        --without-gsm --without-speex --without-ogg --without-vorbis --without-sdl --without-x11 \
        --without-unixodbc --without-postgres --without-mysqlclient --without-netsnmp \
        --without-radius --without-ldap --without-tds --without-iksemel --without-jack \
        --without-portaudio --without-srtp >/dev/null
fi

log "menuselect: only the bench's modules"
# Debian patches configure.ac for AMR/Opus without regenerating configure: menuselect warns about those.
make -s menuselect.makeopts 2>&1 | grep -v "Unknown value" >&2 || true
MS=menuselect/menuselect
for cat in MENUSELECT_ADDONS MENUSELECT_APPS MENUSELECT_BRIDGES MENUSELECT_CDR MENUSELECT_CEL \
           MENUSELECT_CHANNELS MENUSELECT_CODECS MENUSELECT_FORMATS MENUSELECT_FUNCS MENUSELECT_PBX \
           MENUSELECT_RES MENUSELECT_TESTS MENUSELECT_CORE_SOUNDS MENUSELECT_MOH MENUSELECT_EXTRA_SOUNDS \
           MENUSELECT_UTILS; do
    "$MS" --disable-category "$cat" menuselect.makeopts >/dev/null
done
"$MS" --disable BUILD_NATIVE --disable DONT_OPTIMIZE menuselect.makeopts >/dev/null
for m in "${MODULES[@]}"; do "$MS" --enable "$m" menuselect.makeopts >/dev/null; done
"$MS" --check-deps menuselect.makeopts

log "make -j$JOBS (logs in $TREE/build.log)"
EXTERNALS_CACHE_DIR="$DL" make -j"$JOBS" NOISY_BUILD= >"$TREE/build.log" 2>&1 \
    || { tail -40 "$TREE/build.log" >&2; exit 1; }
make install >"$TREE/install.log" 2>&1 || { tail -40 "$TREE/install.log" >&2; exit 1; }
echo "${MODULES[*]}" > "$PREFIX/.modules"
log "installed $PREFIX ($("$PREFIX/sbin/asterisk" -V))"
echo "$PREFIX"
