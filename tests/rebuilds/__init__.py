"""Planning, dispatching, recording and rolling back rebuilds."""
