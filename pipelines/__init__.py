"""Thin DVC stages: read params, load inputs, call pure functions, write outputs."""
