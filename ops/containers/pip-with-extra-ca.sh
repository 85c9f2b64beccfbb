#!/bin/sh
# pip, trusting one more CA when the build was given the `extra_ca` secret (a TLS-intercepting
# proxy's): pip's own bundle plus that file, in a temporary file removed when pip ends. Without
# the secret (or with an empty one) this is plain pip.
set -eu
secret=/run/secrets/extra_ca
if [ -s "$secret" ]; then
    bundle=$(mktemp)
    trap 'rm -f "$bundle"' EXIT
    cat "$(python -c 'import pip._vendor.certifi as c; print(c.where())')" "$secret" > "$bundle"
    PIP_CERT="$bundle" pip "$@"
else
    pip "$@"
fi
