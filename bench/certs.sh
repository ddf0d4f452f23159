# SPDX-License-Identifier: Apache-2.0
# Sourced by bench/run and bench/profile: mint_all DIR writes an
# independent CA (openssl, P-256) and two X.509-SVIDs into DIR:
# ca.crt, server.{crt,key,pem} (spiffe://bench.local/ns/bench/sa/server),
# client.{crt,key,pem} (.../sa/client).  *.pem = certificate + key (HAProxy).
mint_svid() { # mint_svid DIR NAME SPIFFE_ID
  local d=$1
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/$2.key" 2>/dev/null
  openssl req -new -key "$d/$2.key" -subj "/O=SPIFFE" -out "$d/$2.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:%s\n' "$3" > "$d/$2.ext"
  openssl x509 -req -in "$d/$2.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 1 -sha256 -extfile "$d/$2.ext" -out "$d/$2.crt" 2>/dev/null
  cat "$d/$2.crt" "$d/$2.key" > "$d/$2.pem"
}
mint_all() { # mint_all DIR
  local d=$1
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -subj "/O=bench CA" -days 1 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectAltName=URI:spiffe://bench.local" -out "$d/ca.crt" 2>/dev/null
  mint_svid "$d" server spiffe://bench.local/ns/bench/sa/server
  mint_svid "$d" client spiffe://bench.local/ns/bench/sa/client
}
