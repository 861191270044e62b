"""Weight initialisation in a 10-layer net: 0.01·randn vanishes, calibrated rules keep the scale.

CS231n's experiment: unit-Gaussian data through 10 layers of 500 units. With
`small_random` (std 0.01) every layer shrinks the activations ~100x until they
are all ~0 (and so are the gradients); `lecun_normal` (std 1/√fan_in, the
Xavier rule for tanh) keeps tanh activations alive, and `he_normal`
(std √(2/fan_in)) does the same for ReLU, where lecun_normal halves the
variance at every layer.

    python examples/init_compare.py            # a few seconds
    python examples/init_compare.py --quick    # smoke run
"""
import argparse

import jax

import fnn
import fnn.plot
from fnn import diagnostics, initializers
from fnn.layers import Dense

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/init_compare", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="a narrow net (smoke test)")
args = parser.parse_args()
depth, width, n = (10, 64, 200) if args.quick else (10, 500, 1000)

x = jax.random.normal(jax.random.key(0), (n, width))
setups = [("tanh", "small_random"), ("tanh", "lecun_normal"), ("tanh", "he_normal"),
          ("relu", "small_random"), ("relu", "lecun_normal"), ("relu", "he_normal")]
if args.quick:
    setups = [("tanh", "small_random"), ("relu", "he_normal")]

stds = {}
for act, init in setups:
    layers = []
    for _ in range(depth):
        layers += [Dense(width, w_init=initializers.get(init)), fnn.activations.get(act)]
    model = fnn.serial(*layers)
    params, state = model.init(jax.random.key(1), (width,))
    stats = diagnostics.activation_stats(model, params, state, x)
    names = [k for k in stats if k.endswith("_" + act)]        # the activation outputs
    stds[f"{act} / {init}"] = [stats[k]["std"] for k in names]
    if (act, init) in [("tanh", "small_random"), ("tanh", "lecun_normal"), ("relu", "he_normal")]:
        acts = fnn.intermediates(model, params, state, x)
        fnn.plot.histograms({f"layer {i + 1}": acts[k] for i, k in enumerate(names)},
                            f"{args.out}/hist_{act}_{init}.png", bins=40, ncols=5, sharex=True,
                            title=f"{act} activations, {init} init", dpi=72)

print("std of each layer's activations (unit-Gaussian input, "
      f"{depth} layers of {width} units)")
print(diagnostics.format_table(
    {f"layer {i + 1}": {k: v[i] for k, v in stds.items()} for i in range(depth)},
    precision=3))
fnn.plot.curves({k: (range(1, depth + 1), v) for k, v in stds.items()},
                f"{args.out}/std_per_layer.png", xlabel="layer", ylabel="activation std",
                logy=True, title="activation std through depth", dpi=72)
print(f"wrote {args.out}/std_per_layer.png and hist_*.png")
