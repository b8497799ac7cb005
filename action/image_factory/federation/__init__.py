"""Team repositories proposing their images to the central factory: the proposal and its pull request."""
