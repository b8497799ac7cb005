"""Models of GitHub Actions behaviour act cannot show, built from GitHub's documentation."""
