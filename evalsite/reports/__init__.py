"""The reports app."""
