"""Test helpers for rgmorph (stand-in services)."""
