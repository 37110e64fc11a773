#!/bin/sh
# The certificates of the three-host example (deploy/README.md), made on one trusted
# machine and copied to each host's /etc/muelle/tls (keys are written 0600).
set -eu
CA=./muelle-ca
muelle-certs ca "$CA" --name "muelle CA"
# Host A: the registry service.
muelle-certs issue "$CA" host-a --name registry-a --ip 10.0.0.1 --dns a.internal
# Hosts B and C: a gateway and an image store each.
for host in b:10.0.0.2 c:10.0.0.3; do
  name=${host%%:*} ip=${host#*:}
  muelle-certs issue "$CA" "host-$name/gateway" --name "gateway-$name" --ip "$ip" --dns "$name.internal"
  muelle-certs issue "$CA" "host-$name/imagestore" --name "imagestore-$name" --ip "$ip"
  muelle-certs issue "$CA" "host-$name/dockerapi" --name "dockerapi-$name" --ip "$ip" --dns "$name.internal"
done
# Host D: a person's client certificate (also for the docker CLI: DOCKER_CERT_PATH).
muelle-certs issue "$CA" client-alice --name client-alice --kind client
