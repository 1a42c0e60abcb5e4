"""Verification: z3 encodings, invariant and test checking, translation validation, reports."""
