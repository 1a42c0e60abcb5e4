"""Backends: one module per target, each writing a rule table in a real engine's language."""
