"""Typed seams to the outside systems drkit talks to (one module per system)."""
