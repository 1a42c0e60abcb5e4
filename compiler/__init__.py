"""Lowering of checked policies into flat, ordered match-rule tables, and the table file format."""
