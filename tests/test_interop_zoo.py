"""Whole models across frameworks: torchvision's ResNet-18 and AlexNet layouts, and a
model trained by `fnn train` run in PyTorch.

torchvision itself is not used: its wheels for torch 2.13 do not load beside the CPU
build of torch in this environment (`torchvision::nms does not exist`), so the torch
twins below are written here with torchvision's module names and order
(`torchvision/models/resnet.py`, `alexnet.py`); their `state_dict()` keys are exactly
torchvision's.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import fnn  # noqa: E402
from fnn.interop import from_torch, to_torch  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's `resnet18(num_classes=...)`: the same modules under the same names."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, planes in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(inplanes, planes, stride),
                                                         BasicBlock(planes, planes)))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class AlexNet(nn.Module):
    """torchvision's `alexnet(num_classes=...)`: the same modules under the same names."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _random_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm affine params and running statistics (torch's own init elsewhere),
    so that eval mode really uses the converted statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return module.eval()


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _check_logits_and_round_trip(model, module, shape, batch):
    state_dict = module.state_dict()
    params, state = from_torch(model, state_dict, shape)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (batch, *shape)), np.float32)
    logits = np.asarray(model.apply(params, state, x)[0])
    with torch.no_grad():
        expected = module(_nchw(x)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    back = to_torch(model, params, state, shape)      # torchvision's names, no `like`
    assert list(back) == list(state_dict)
    for key, t in state_dict.items():
        assert back[key].dtype == t.dtype and torch.equal(back[key], t), key


def test_resnet18_torchvision_layout_same_logits_and_exact_round_trip():
    torch.manual_seed(0)
    module = _random_batchnorm(ResNet18(num_classes=10))
    assert len(module.state_dict()) == 122          # torchvision's resnet18: 122 entries
    _check_logits_and_round_trip(fnn.models.resnet18(10), module, (64, 64, 3), batch=2)


def test_alexnet_torchvision_layout_same_logits_and_exact_round_trip():
    torch.manual_seed(1)
    module = AlexNet(num_classes=10).eval()
    # 224x224 is the size at which torchvision's AdaptiveAvgPool2d((6, 6)) is the identity
    _check_logits_and_round_trip(fnn.models.alexnet(10), module, (224, 224, 3), batch=1)


# ---------------------------------------------------------------------------
# a model trained by `fnn train`, run in PyTorch


def _lenet5_twin(pad: int) -> nn.Module:
    """torch LeNet-5 in fnn's layer order, for images zero-padded by `pad` to 32×32."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=pad), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10)).eval()


def test_model_trained_by_fnn_train_predicts_the_same_classes_in_torch(tmp_path, monkeypatch):
    from fnn import cli, train
    from fnn.checkpoint import CheckpointManager
    from fnn.cli import runs

    monkeypatch.setenv("FNN_CACHE_DIR", "off")
    code = cli.main(["train", "--model", "lenet5", "--dataset", "digits", "--limit", "400",
                     "--epochs", "1", "--batch-size", "16", "--lr", "0.005", "--no-progress",
                     "--out", str(tmp_path), "--name", "run"])
    assert code == 0
    run = os.path.join(tmp_path, "run")
    with open(os.path.join(run, "config.json")) as f:
        config = json.load(f)
    data, _, _, model, shape = runs.prepare(config)
    optimizer = runs.make_optimizer(config["optimizer"], config["lr"])
    like = {"train_state": train.init_train_state(model, optimizer, jax.random.key(0), shape)}
    manager = CheckpointManager(os.path.join(run, "checkpoints"))
    ts = train.restore_tree(manager, runs.latest_epoch(run), like)["train_state"]

    assert shape == (8, 8, 1)                        # scikit-learn's digits
    module = _lenet5_twin(pad=12)
    module.load_state_dict(to_torch(model, ts.params, ts.model_state, shape))
    x, _ = data.test
    x = np.asarray(x, np.float32)
    logits = np.asarray(model.apply(ts.params, ts.model_state, x)[0])
    with torch.no_grad():
        torch_logits = module(_nchw(x)).numpy()
    np.testing.assert_allclose(torch_logits, logits, rtol=1e-4, atol=1e-5)
    assert (torch_logits.argmax(-1) == logits.argmax(-1)).all()
    assert len(np.unique(logits.argmax(-1))) > 1    # a trained model, not a constant one
