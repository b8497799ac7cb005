"""The GitHub workflows and the composite action, linted and run with act."""
