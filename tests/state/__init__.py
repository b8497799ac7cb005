"""State files, the index, atomic writes, the state cache and git."""
