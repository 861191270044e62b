"""Data sets: generated ones (no download) and readers for the classic files."""
from fnn.datasets.sequences import adding_problem, image_rows, sine_sequences
from fnn.datasets.synthetic import blobs, planar_flower, spiral, xor

__all__ = ["blobs", "planar_flower", "spiral", "xor",
           "adding_problem", "sine_sequences", "image_rows"]
