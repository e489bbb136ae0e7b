#!/usr/bin/env bash
# The footprint with a libcurl that speaks HTTPS only, for the team's decision on the idle RSS
# target (docs/benchmarks.md, Footprint). Debian's libcurl4 is built for every protocol and
# brings ~25 shared libraries (LDAP, Kerberos, SSH, RTMP with GnuTLS, IDN, PSL, brotli, zstd)
# that the agent never calls but loads and relocates at every start. This builds Debian's own
# curl source (the release the machine has, with its security patches) with HTTP and HTTPS over
# the system's OpenSSL and nghttp2 and nothing else, into a directory of its own, and runs
# footprint.sh with the agent loading it (LD_LIBRARY_PATH). Nothing is installed system-wide
# and the apt configuration is not touched: the source comes through a private sources list.
# Needs build tools and libnghttp2-dev (installed if missing).
#
#   Benchmarks/libcurl_https_only.sh [RUNS]          the same arguments and variables as footprint.sh
#   IDLE=600 Benchmarks/libcurl_https_only.sh 3
#   IDLE=600 PLATFORM=1 Benchmarks/libcurl_https_only.sh 3
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CURL_DIR:-/tmp/vaktpost-libcurl-https-only}
if [[ ! -e "$dir/lib/libcurl.so.4" ]]; then
    dpkg -s libnghttp2-dev >/dev/null 2>&1 || apt-get install -y libnghttp2-dev >/dev/null
    src="$dir/src"
    mkdir -p "$src/lists/partial"
    . /etc/os-release
    echo "deb-src http://deb.debian.org/debian $VERSION_CODENAME main" > "$src/sources.list"
    apt_opts=(-o "Dir::Etc::SourceList=$src/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$src/lists")
    apt-get "${apt_opts[@]}" update >/dev/null
    # The source of the libcurl4 the machine has installed, Debian's patches applied.
    version=$(dpkg-query -W -f '${Version}' libcurl4)
    (cd "$src" && apt-get "${apt_opts[@]}" source --download-only "curl=$version" >/dev/null 2>&1)
    tar xzf "$src"/curl_*.orig.tar.gz -C "$src"
    tree=$(find "$src" -maxdepth 1 -type d -name 'curl-*' | head -1)
    tar xJf "$src"/curl_*.debian.tar.xz -C "$tree"
    while read -r patch; do
        [[ -z "$patch" || "$patch" == \#* ]] || patch -d "$tree" -p1 -s < "$tree/debian/patches/$patch"
    done < "$tree/debian/patches/series"
    (cd "$tree" && ./configure --prefix="$dir" --disable-static --with-openssl --with-nghttp2 --enable-versioned-symbols \
        --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet \
        --disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp --disable-gopher --disable-mqtt \
        --disable-manual --disable-ntlm --disable-alt-svc --disable-hsts \
        --without-libssh2 --without-libssh --without-librtmp --without-libidn2 --without-libpsl --without-brotli \
        --without-zstd --without-gssapi --without-zlib >/dev/null)
    # Debian names the symbol version after the soname (CURL_OPENSSL_4), upstream after the
    # libtool age (CURL_OPENSSL_3); the agent was linked against Debian's.
    sed -i 's/CURL_OPENSSL_[0-9]*/CURL_OPENSSL_4/' "$tree/lib/libcurl.vers"
    make -C "$tree" -j"$(nproc)" >/dev/null
    make -C "$tree" install >/dev/null
fi
echo "libcurl, HTTPS only: $dir/lib/libcurl.so.4 (needs: $(readelf -d "$dir/lib/libcurl.so.4" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | paste -sd ' '))"
LD_LIBRARY_PATH="$dir/lib" exec Benchmarks/footprint.sh "$@"
