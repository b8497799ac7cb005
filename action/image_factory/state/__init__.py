"""State in git: one YAML file per image and per watched image, the merge that makes it, the index
that lets an event read only its own files, atomic writes, the state lock and git commits."""
