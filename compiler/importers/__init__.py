"""Importers: rule sets as real engines hold them, read back into rule tables."""
