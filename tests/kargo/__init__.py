"""Generated Kargo manifests: schemas, Kargo's runtime model, synth."""
