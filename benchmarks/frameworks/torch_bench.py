"""PyTorch eager, written as the PyTorch tutorials write it: `nn.Sequential`/`nn.Module`
models (NCHW), `nn.LSTM(batch_first=True)`, `torch.optim.Adam`, `F.cross_entropy`,
`zero_grad` / `backward` / `step`.

Variants (`--variant`): `eager` (default, NCHW) and `channels_last` (the
convolution models and their input in `torch.channels_last` memory format,
which oneDNN prefers on CPU and cuDNN on GPU); `tf32`: `eager` with float32
matrix products in TF32 as well (`torch.set_float32_matmul_precision("high")`),
the arithmetic JAX uses for float32 on NVIDIA GPUs by default; PyTorch's own
default keeps products in full float32 and only convolutions in TF32. On CPU
`tf32` changes nothing. `torch.set_num_threads(BENCH_THREADS)`.

The model and batch live on the GPU when `torch.cuda.is_available()` (like JAX,
which takes the accelerator when there is one), and every timed step ends with
`torch.cuda.synchronize()`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import workloads
from benchmarks.frameworks import PRECISION, THREADS
from benchmarks.frameworks._common import Bench, main


class PadShortcut(nn.Module):
    """Option A: subsample by `stride`, zero-pad the new channels."""

    def __init__(self, stride, extra):
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x):
        e = self.extra
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, e // 2, e - e // 2))


class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        change = stride != 1 or c_in != c_out
        self.shortcut = PadShortcut(stride, c_out - c_in) if change else nn.Identity()

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


def resnet(depth, num_classes):
    n = (depth - 2) // 6
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for c_out in (16, 32, 64):
        for i in range(n):
            layers.append(Block(c_in, c_out, 2 if (i == 0 and c_out != 16) else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
    return model


class LSTMClassifier(nn.Module):
    def __init__(self, n_in, hidden, num_classes):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, batch_first=True)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.out(out[:, -1])


class TransformerClassifier(nn.Module):
    """`nn.TransformerEncoderLayer(norm_first=True, activation="gelu")` blocks, eager."""

    def __init__(self, f, blocks, heads, width, num_classes):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(f, heads, width, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(blocks))
        self.norm, self.out = nn.LayerNorm(f), nn.Linear(f, num_classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x).mean(dim=1))


def make_model(w: workloads.Workload) -> nn.Module:
    if w.name == "mlp":
        sizes = [w.input_shape[0], *w.config["features"]]
        layers = []
        for a, b in zip(sizes, sizes[1:], strict=False):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers[:-1])
    if w.name == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
            nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, w.num_classes))
    if w.name.startswith("lstm"):
        return LSTMClassifier(w.input_shape[-1], w.config["hidden"], w.num_classes)
    if w.name == "transformer":
        c = w.config
        return TransformerClassifier(w.input_shape[-1], c["blocks"], c["heads"], c["mlp"],
                                     w.num_classes)
    return resnet(w.config["depth"], w.num_classes)


def build(w: workloads.Workload, variant: str) -> Bench:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if variant == "tf32":
        torch.set_float32_matmul_precision("high")
    x, y = workloads.synthetic_batch(w)
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    model = make_model(w)
    if x.ndim == 4:
        x = x.permute(0, 3, 1, 2).contiguous()      # NHWC -> NCHW
        if variant == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
            model = model.to(memory_format=torch.channels_last)
    x, y, model = x.to(device), y.to(device), model.to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    autocast = PRECISION == "mixed_bfloat16"   # torch's own mixed precision on the CPU

    def step(state):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return state, loss.detach()

    def sync(obj):
        if device.type == "cuda":
            torch.cuda.synchronize()
        return obj

    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    return Bench(step, None, sync,
                 {"torch": torch.__version__, "device": f"{device.type}:{name}",
                  "mkldnn": bool(torch.backends.mkldnn.is_available()),
                  "float32_matmul_precision": torch.get_float32_matmul_precision()})


if __name__ == "__main__":
    main(build, "torch", ("eager", "channels_last", "tf32"))
