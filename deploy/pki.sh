#!/usr/bin/env bash
# A development PKI for the hub uplink: NOT for production (keys are unencrypted, the CA lives
# in the same folder). Production hubs get keys generated on the device and certificates from
# the platform's issuing CA.
#
#   deploy/pki.sh DIR [HUB_ID ...]        default hub: hub-0001
#
# Writes to DIR:
#   ca.pem, ca.key                 the dev CA (the platform's `ca_file` and the receiver's client CA)
#   server.pem, server.key         the platform's certificate: localhost, 127.0.0.1, ::1
#   <hub-id>.pem, <hub-id>.key     a hub's identity for mutual TLS: CN and DNS SAN = the hub id
#   other-ca.pem, other-ca.key     an unrelated CA, for "wrong CA" tests
#   expired-server.pem/.key        a server certificate that expired in 2020
#   wrong-host-server.pem/.key     a server certificate for platform.invalid only
#   server.pin, other.pin          SPKI pins (sha256//...) of server.key and other-ca.key
set -euo pipefail
dir=${1:?usage: deploy/pki.sh DIR [HUB_ID ...]}
shift
hubs=("${@:-hub-0001}")
mkdir -p "$dir"
cd "$dir"
export OPENSSL_CONF=/dev/null  # the system's config must not change what is generated

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
ca() {  # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "$2" -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
leaf() {  # name subject san usage [days]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days "${5:-825}" -out "$1.pem" \
        -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=critical,CA:FALSE\n' "$3" "$4") 2>/dev/null
    rm -f "$1.csr"
}
pin() { openssl pkey -in "$1" -pubout -outform der 2>/dev/null | openssl dgst -sha256 -binary | base64 | sed 's|^|sha256//|'; }

ca ca "/CN=Vaktpost dev CA"
ca other-ca "/CN=Some other CA"
leaf server "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
leaf wrong-host-server "/CN=platform.invalid" "DNS:platform.invalid" serverAuth
for hub in "${hubs[@]}"; do leaf "$hub" "/CN=$hub" "DNS:$hub" clientAuth; done

# Expired: `openssl ca` is the one tool here that sets both dates explicitly.
key expired-server.key
openssl req -new -key expired-server.key -subj "/CN=localhost" -out expired.csr
mkdir -p .ca && : > .ca/index.txt && echo 01 > .ca/serial
cat > .ca/ca.cnf <<CNF
[ca]
default_ca = dev
[dev]
database = .ca/index.txt
serial = .ca/serial
new_certs_dir = .ca
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = ext
[any]
commonName = supplied
[ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
CNF
openssl ca -batch -config .ca/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired-server.pem \
    -startdate 20200101000000Z -enddate 20200102000000Z -notext >/dev/null 2>&1
rm -rf .ca expired.csr ca.srl

pin server.key > server.pin
pin other-ca.key > other.pin
echo "dev PKI in $dir: ca.pem, server.pem, ${hubs[*]/%/.pem}, other-ca.pem, expired-server.pem, wrong-host-server.pem"
