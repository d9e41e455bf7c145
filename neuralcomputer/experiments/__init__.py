"""Reproductions of the paper's tables (each trains, evaluates and writes a table)."""
