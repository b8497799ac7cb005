"""From Dockerfiles to base images: Docker's reference grammar, BuildKit's Dockerfile parser, and the
`discover` job that brings state/ in line with images.yaml and the Dockerfiles."""
