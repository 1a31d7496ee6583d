"""csn_model: the Conditional Similarity Network, its data, training, benchmark and inference.

This package never imports Django (tests/test_project.py enforces it).
"""

CONDITIONS: tuple[str, ...] = ("drums", "bass", "piano", "guitar", "others")

__version__ = "0.2.0"
