"""The studies app."""
