"""The retrieval app."""
