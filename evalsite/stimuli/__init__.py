"""The stimuli app."""
