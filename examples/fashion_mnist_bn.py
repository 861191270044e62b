"""Fashion-MNIST with a small BatchNorm CNN, random crops and flips on the device, and a
cosine learning-rate decay: the README's "BatchNorm CNN with crop and flip" recipe.

    python examples/fashion_mnist_bn.py [EPOCHS]     # default 24: 93.37 % test accuracy

Reads the files where `fnn.datasets.fashion_mnist` finds them (e.g. Debian's
/usr/share/datasets/fashion-mnist, or $FNN_DATA_DIR).
"""
import functools
import sys
import time

import jax

from fnn import augment, losses, optim, train
from fnn.datasets import fashion_mnist
from fnn.models import small_cnn

epochs, batch_size = int(sys.argv[1]) if len(sys.argv) > 1 else 24, 128
(x, y), (x_test, y_test) = fashion_mnist("train"), fashion_mnist("test")
model = small_cnn(10, width=32, batch_norm=True)
optimizer = optim.adam(optim.schedules.cosine_decay(2e-3, epochs * (len(y) // batch_size)))
crop_and_flip = augment.chain(functools.partial(augment.random_crop, padding=2),
                              augment.random_flip)

start = time.perf_counter()
ts, history = train.fit(model, optimizer, losses.softmax_cross_entropy, (x, y), epochs=epochs,
                        batch_size=batch_size, key=jax.random.key(0), augment=crop_and_flip,
                        on_epoch_end=lambda e, logs: print(e, logs, flush=True))
seconds = time.perf_counter() - start
test = train.evaluate(model, ts.params, ts.model_state, losses.softmax_cross_entropy,
                      x_test, y_test, batch_size=500)
print(f"{epochs} epochs in {seconds:.0f} s: test accuracy {test['accuracy']:.4f}")
