"""State in git: one YAML file per image and per watched image (its model, reading and writing),
what events do to runtime records, the dependency graph, the index that lets an event read only
its own files, atomic writes, the state cache, the state lock and git commits."""
