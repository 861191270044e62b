"""Data sets: generated ones (no download), readers for the classic files, and the
registry of named classification sets (`REGISTRY`, what `fnn train --dataset` reads)."""
from fnn.datasets.cifar import CIFAR10_CLASSES, cifar10, read_cifar_batch
from fnn.datasets.digits import digits
from fnn.datasets.download import download
from fnn.datasets.fashion import FASHION_MNIST_CLASSES, fashion_mnist, fashion_mnist_files
from fnn.datasets.mnist import mnist, mnist_files, mnist_source, read_idx
from fnn.datasets.registry import REGISTRY, NamedDataSet
from fnn.datasets.sequences import adding_problem, image_rows, sine_sequences
from fnn.datasets.synthetic import blobs, planar_flower, spiral, xor

__all__ = ["blobs", "planar_flower", "spiral", "xor",
           "adding_problem", "sine_sequences", "image_rows"]
__all__ += ["digits", "mnist", "mnist_source", "read_idx", "cifar10", "read_cifar_batch",
            "CIFAR10_CLASSES", "download"]
__all__ += ["REGISTRY", "NamedDataSet"]
__all__ += ["fashion_mnist", "fashion_mnist_files", "FASHION_MNIST_CLASSES", "mnist_files"]
