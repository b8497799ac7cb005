"""From Dockerfiles to base images and to state: BuildKit's Dockerfile parser, the merge of config,
discoveries and old state, and the `discover` job that writes it."""
