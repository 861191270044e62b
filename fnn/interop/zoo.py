"""torchvision's module names for the zoo models with a torchvision twin.

`fnn.models.resnet18` ↔ `torchvision.models.resnet18` and `fnn.models.alexnet`
(ImageNet layout) ↔ `torchvision.models.alexnet`: their layers with parameters come
in the same order, so `from_torch` needs no names; `to_torch` writes these.
"""
from __future__ import annotations

import re

from fnn.interop.converters import Site

__all__ = ["torchvision_name", "TORCHVISION_MODELS"]

# resnet18's serial: 0 conv1, 1 bn1, 4..11 the eight BasicBlocks, 13 fc
_RESNET_STEM = {"0_Conv2D": "conv1", "1_BatchNorm": "bn1", "13_Dense": "fc"}
# inside a BasicBlock: serial(residual(block, shortcut), relu)
_RESNET_BLOCK = {("block", "0_Conv2D"): "conv1", ("block", "1_BatchNorm"): "bn1",
                 ("block", "3_Conv2D"): "conv2", ("block", "4_BatchNorm"): "bn2",
                 ("shortcut", "0_Conv2D"): "downsample.0",
                 ("shortcut", "1_BatchNorm"): "downsample.1"}
# alexnet's serial index -> torchvision's features.i / classifier.j
_ALEXNET = {0: "features.0", 3: "features.3", 6: "features.6", 8: "features.8",
            10: "features.10", 15: "classifier.1", 18: "classifier.4", 20: "classifier.6"}


def _resnet18(path: tuple[str, ...]) -> str | None:
    if len(path) == 1:
        return _RESNET_STEM.get(path[0])
    found = re.fullmatch(r"(\d+)_BasicBlock", path[0])
    if found is None or len(path) != 4:
        return None
    index = int(found.group(1)) - 4
    inner = _RESNET_BLOCK.get(path[2:])
    if inner is None or not 0 <= index < 8:
        return None
    return f"layer{index // 2 + 1}.{index % 2}.{inner}"


def _alexnet(path: tuple[str, ...]) -> str | None:
    found = re.fullmatch(r"(\d+)_\w+", path[0]) if len(path) == 1 else None
    return _ALEXNET.get(int(found.group(1))) if found else None


TORCHVISION_MODELS = {"ResNet18": _resnet18, "AlexNet": _alexnet}


def torchvision_name(model_name: str, site: Site) -> str | None:
    """torchvision's module name for `site` of the zoo model `model_name`, else None."""
    names = TORCHVISION_MODELS.get(model_name)
    return None if names is None else names(site.path)
