#!/usr/bin/env bash
# Writes the malformed / foreign X.509-SVID fixtures of test/fixtures/x509/ with openssl, for what
# the in-memory test CA (test/helpers/test-ca.ts) does not make: certificates shaped by another
# toolchain. Keys and signatures are random, so each run gives new bytes; the committed files are
# the reference. Regenerate with:  bash scripts/make-x509-fixtures.sh
# Validity is ten years from the run; the tests pick `now` from each certificate's own dates.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/test/fixtures/x509"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
days=3650
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# root.pem: a SPIRE-shaped root for example.org (EC P-256, self-signed, URI SAN of the trust domain).
ec root.key
openssl req -x509 -new -key root.key -sha256 -days "$days" -subj "/C=US/O=SPIFFE/CN=fixture root" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectAltName=URI:spiffe://example.org" -addext "subjectKeyIdentifier=hash" -out root.pem

# leaf NAME KEYFILE EXTENSIONS [CA CAKEY] [extra openssl x509 args]: a leaf signed by CA (default root).
leaf() {
  local name="$1" key="$2" exts="$3" ca="${4:-root.pem}" cakey="${5:-root.key}"
  shift 5 2>/dev/null || shift $#
  printf '%b\n' "[v3]\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n$exts" > "$name.cnf"
  openssl req -new -key "$key" -subj "/C=US/O=SPIRE" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA "$ca" -CAkey "$cakey" -CAcreateserial -days "$days" -sha256 \
    -extfile "$name.cnf" -extensions v3 -out "$name.pem" "$@" 2>/dev/null
}
good='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth'

ec leaf.key
# leaf-good.pem: valid, SPIRE-shaped (subject C=US, O=SPIRE; keyEncipherment and keyAgreement).
leaf leaf-good leaf.key "$good\nsubjectAltName=URI:spiffe://example.org/workload"
# leaf-two-uris.pem: two URI SANs (X509-SVID section 2: exactly one).
leaf leaf-two-uris leaf.key "$good\nsubjectAltName=URI:spiffe://example.org/a,URI:spiffe://example.org/b"
# leaf-ca.pem: a "leaf" with cA=true and keyCertSign (section 4.1, 5.2).
leaf leaf-ca leaf.key "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nsubjectAltName=URI:spiffe://example.org/workload"
# leaf-non-spiffe-uri.pem: an https URI SAN.
leaf leaf-non-spiffe-uri leaf.key "$good\nsubjectAltName=URI:https://example.org/workload"
# leaf-no-path.pem: the trust domain's ID as a leaf's ID (section 3.1).
leaf leaf-no-path leaf.key "$good\nsubjectAltName=URI:spiffe://example.org"
# leaf-rsa.pem: a valid leaf with an RSA 2048 key (the standard allows any key type).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
leaf leaf-rsa rsa.key "$good\nsubjectAltName=URI:spiffe://example.org/rsa"

# inter-pathlen0.pem -> inter2.pem -> leaf-deep.pem: a CA with pathLenConstraint 0 above another CA.
ec inter.key
leaf inter-pathlen0 inter.key "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectAltName=URI:spiffe://example.org"
ec inter2.key
openssl req -new -key inter2.key -subj "/C=US/O=SPIFFE/CN=fixture inter2" -out inter2.csr
printf '[v3]\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > inter2.cnf
openssl x509 -req -in inter2.csr -CA inter-pathlen0.pem -CAkey inter.key -CAcreateserial -days "$days" -sha256 -extfile inter2.cnf -extensions v3 -out inter2.pem 2>/dev/null
leaf leaf-deep leaf.key "$good\nsubjectAltName=URI:spiffe://example.org/deep" inter2.pem inter2.key

# rsa-root.pem + leaf-pss.pem: a leaf signed with RSASSA-PSS, an algorithm tidegate does not accept.
openssl req -x509 -new -key rsa.key -sha256 -days "$days" -subj "/C=US/O=SPIFFE/CN=fixture rsa root" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out rsa-root.pem
leaf leaf-pss leaf.key "$good\nsubjectAltName=URI:spiffe://example.org/pss" rsa-root.pem rsa.key -sigopt rsa_padding_mode:pss

for f in root leaf-good leaf-two-uris leaf-ca leaf-non-spiffe-uri leaf-no-path leaf-rsa inter-pathlen0 inter2 leaf-deep rsa-root leaf-pss; do
  openssl x509 -in "$f.pem" -out "$out/$f.pem"
done
echo "wrote $(ls "$out" | wc -l) files to $out"
