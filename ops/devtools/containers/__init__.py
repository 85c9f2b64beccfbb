"""``ops/compose``: the stack in containers (compose.yaml) on Docker or podman, with base images
built from Debian packages where no registry is reachable, and a smoke check of the whole path."""
