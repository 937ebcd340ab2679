"""Hookspecs and built-in task plugins."""
