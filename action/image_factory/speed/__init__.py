"""Speed helpers for large fleets: work in a second process, the cycle collector paused."""
