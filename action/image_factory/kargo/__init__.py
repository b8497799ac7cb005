"""The Kargo side: which Stages rebuild what, object names and labels, what the cluster must have,
and `synth`, which runs the cdk8s app."""
