#!/bin/sh
# nginx in compose: fill in the shared site template (ops/nginx/catalog.conf.template, the one
# ops/dev renders) and run nginx in the foreground. Works on the official nginx image and on the
# Debian-built base image: needs only sh, awk, envsubst and nginx.
#
# The app's address is looked up through the engine's DNS (Docker's 127.0.0.11, podman's
# aardvark-dns on the network gateway: whatever resolv.conf names), again once an answer is older
# than $CATALOG_RESOLVE_VALID, so a restarted app container is found at its new address.
set -eu
dns=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)
case "$dns" in
    *:*) dns="[$dns]" ;;  # an IPv6 resolver
    "") echo "nginx-entrypoint: no nameserver in /etc/resolv.conf" >&2; exit 1 ;;
esac
export CATALOG_RESOLVER="resolver $dns valid=${CATALOG_RESOLVE_VALID:-2s} ipv6=off;"
export CATALOG_UPSTREAM="# no fixed group: \$catalog_backend is resolved per request"
: "${CATALOG_BACKEND:=app:8000}"
export CATALOG_BACKEND

# Only our own placeholders: every other $word in the template is nginx's.
placeholders=$(env | sed -n 's/^\(CATALOG_[A-Z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
rm -f /etc/nginx/conf.d/default.conf /etc/nginx/sites-enabled/default
envsubst "$placeholders" < /etc/nginx/templates/catalog.conf.template > /etc/nginx/conf.d/catalog.conf
if grep -n '\${CATALOG_[A-Z_]*}' /etc/nginx/conf.d/catalog.conf >&2; then
    echo "nginx-entrypoint: placeholders above are not set in the environment" >&2
    exit 1
fi
exec nginx -g 'daemon off;'
