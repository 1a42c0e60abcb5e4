"""Front end: source text to a typed policy (parsing, imports, names, types, schema)."""
