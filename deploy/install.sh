#!/usr/bin/env bash
# Installs the agent on a Debian hub: builds a release binary (static Swift stdlib) and installs
# it with its systemd unit, user, directories, udev rules and the example config. Run from the
# repository root as root. It does not start the agent: edit the config first.
#
#   sudo deploy/install.sh            PREFIX=/usr/local
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo deploy/install.sh"; exit 1; }

echo "== system packages"
apt-get install -y libudev1 libsqlite3-0 libcurl4 libssl3 tzdata logrotate >/dev/null

echo "== building (release, static Swift stdlib)"
swift build -c release --product vaktpost -Xswiftc -static-stdlib
BIN=$(swift build -c release --show-bin-path)
install -D -m 0755 -s "$BIN/vaktpost" "$PREFIX/bin/vaktpost" 2>/dev/null || install -D -m 0755 "$BIN/vaktpost" "$PREFIX/bin/vaktpost"

echo "== user, directories, unit, udev rules, log rotation"
install -D -m 0644 deploy/sysusers.d/vaktpost.conf /etc/sysusers.d/vaktpost.conf
install -D -m 0644 deploy/tmpfiles.d/vaktpost.conf /etc/tmpfiles.d/vaktpost.conf
install -D -m 0644 deploy/logrotate.d/vaktpost /etc/logrotate.d/vaktpost
if command -v systemd-sysusers >/dev/null; then systemd-sysusers vaktpost.conf; else
    getent group vaktpost >/dev/null || groupadd --system vaktpost
    getent passwd vaktpost >/dev/null || useradd --system -g vaktpost -d /var/lib/vaktpost -s /usr/sbin/nologin vaktpost
fi
if command -v systemd-tmpfiles >/dev/null; then systemd-tmpfiles --create vaktpost.conf; else
    install -d -m 0770 -o root -g vaktpost /etc/vaktpost
    install -d -m 0750 -o vaktpost -g vaktpost /var/lib/vaktpost /var/log/vaktpost /run/vaktpost
fi
sed "s|/usr/local/bin/vaktpost|$PREFIX/bin/vaktpost|" deploy/vaktpost.service > /etc/systemd/system/vaktpost.service
install -D -m 0644 udev/99-vaktpost.rules /etc/udev/rules.d/99-vaktpost.rules
command -v udevadm >/dev/null && udevadm control --reload && udevadm trigger --subsystem-match=tty || true

if [ ! -e /etc/vaktpost/vaktpost.toml ]; then
    install -m 0640 -o root -g vaktpost deploy/vaktpost.example.toml /etc/vaktpost/vaktpost.toml
    echo "installed the example config: /etc/vaktpost/vaktpost.toml"
else
    echo "kept the existing /etc/vaktpost/vaktpost.toml"
fi
[ -d /run/systemd/system ] && systemctl daemon-reload

cat <<NEXT

Installed $PREFIX/bin/vaktpost ($("$PREFIX/bin/vaktpost" --version)). Next:
  1. Put the platform's CA and this hub's certificate and key in /etc/vaktpost
     (key: chown vaktpost:vaktpost, chmod 600) and edit /etc/vaktpost/vaktpost.toml.
  2. vaktpost config check
  3. systemctl enable --now vaktpost
  4. vaktpost check            (every line PASS before you leave the home)
  5. vaktpost test-alarm
NEXT
