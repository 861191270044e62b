"""`Bidirectional`: a sequence layer run forward in time and on the reversed sequence."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import example_shape, require_params, require_rank
from fnn._checks import BadType, BadValue, labelled, named, require_key, shape_str
from fnn.core import Layer, as_layer
from fnn.layers.recurrent import SEQUENCE_LAYOUT, sequence_lengths

__all__ = ["Bidirectional", "reverse_sequences"]


def reverse_sequences(x, lengths=None):
    """Reverse each sequence of `x: (N, T, ...)` in time.

    With `lengths: (N,)` only the valid prefix is reversed, and the padding stays
    in place: `y[n, t] = x[n, lengths[n] − 1 − t]` for `t < lengths[n]`, else `x[n, t]`.
    The map is its own inverse.
    """
    if lengths is None:
        return jnp.flip(x, axis=1)
    t = x.shape[1]
    steps = jnp.arange(t).reshape(1, t)
    lengths = lengths.reshape(-1, 1)
    idx = jnp.where(steps < lengths, lengths - 1 - steps, steps)          # (N, T)
    return jax.vmap(lambda xi, ii: jnp.take(xi, ii, axis=0))(x, idx)


_MERGES = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "mean": lambda a, b: 0.5 * (a + b),
}


@named("Bidirectional")
def Bidirectional(layer: Layer, merge: str = "concat") -> Layer:
    """Run `layer` forward in time and on the time-reversed sequence, then merge.

    The backward copy reads each sequence from its last valid step to its first
    (with `lengths`, only the valid prefix is reversed, so padding stays at the
    end). With `return_sequences`, the backward outputs are re-aligned to forward
    time, so `y[:, t]` combines the forward state after `x_0..x_t` and the
    backward state after `x_{L-1}..x_t`; otherwise the backward part is its final
    state (after reading `x_0`), as in PyTorch and Keras.

    **Arguments:**
    - `layer`: a recurrent layer (or a `serial` stack of them) taking `(N, T, F)`.
    - `merge`: `"concat"` (default, on the feature axis: `2H` features), `"sum"`,
      `"mul"` or `"mean"`.

    A wrapped layer built with `return_state=True` makes `apply` return
    `((y, (forward_carry, backward_carry)), state)`, the backward carry being the state
    after reading `x_0` (PyTorch's `h_n[1]`).

    **Params:** `{"forward": <layer params>, "backward": <layer params>}`, drawn
    with independent keys. **apply keyword:** `lengths: (N,)`, as for the layer.
    """
    if merge not in _MERGES:
        raise BadValue(f"unknown merge {merge!r}; expected one of {sorted(_MERGES)}.")
    merge_fn = _MERGES[merge]
    inner = as_layer(layer)
    takes_lengths = inner.keywords is None or "lengths" in inner.keywords

    @named("Bidirectional")
    def init(key, input_shape):
        input_shape = example_shape(input_shape, SEQUENCE_LAYOUT)
        labelled("Bidirectional.init", require_key, key)
        kf, kb = jax.random.split(key)
        pf, sf = inner.init(kf, input_shape)
        pb, sb = inner.init(kb, input_shape)
        params = {"forward": pf, "backward": pb} if (pf or pb) else {}
        state = {"forward": sf, "backward": sb} if (sf or sb) else {}
        return params, state

    @named("Bidirectional")
    def check(params, state, x, key, lengths):
        """`lengths` as a jax array (or None), after every argument is checked."""
        require_rank(x, 3, "(N, T, features) — batch, time, features")
        require_params(params, (), "Bidirectional")
        require_params(state, (), "Bidirectional", what="state")
        if key is not None:
            require_key(key)
        lengths = sequence_lengths(lengths, x.shape[0], x.shape[1])
        if lengths is not None and not takes_lengths:
            raise BadType(f"the wrapped layer {inner.name} does not accept lengths; wrap a "
                          "recurrent layer (SimpleRNN, LSTM, GRU) or a serial stack of them.")
        return lengths

    def apply(params, state, x, *, key=None, train=False, lengths=None):
        lengths = check(params, state, x, key, lengths)
        t = x.shape[1]
        extra = {} if lengths is None else {"lengths": lengths}
        kf, kb = (None, None) if key is None else tuple(jax.random.split(key))
        yf, sf = inner.apply(params.get("forward", {}), state.get("forward", {}), x,
                             key=kf, train=train, **extra)
        yb, sb = inner.apply(params.get("backward", {}), state.get("backward", {}),
                             reverse_sequences(x, lengths), key=kb, train=train, **extra)
        carries = None
        if isinstance(yf, tuple):   # a layer built with return_state=True: (y, final carry)
            (yf, cf), (yb, cb) = yf, yb
            carries = (cf, cb)
        if yb.ndim >= 3:
            if yb.shape[1] != t:   # known only now, from the wrapped layer's output
                raise ValueError(f"Bidirectional: expected the wrapped layer to return (N, T, "
                                 f"...) with T = {t} or a last state (N, H), got "
                                 f"{shape_str(yb.shape)}.")
            yb = reverse_sequences(yb, lengths)
        new_state = {"forward": sf, "backward": sb} if (sf or sb) else state
        y = merge_fn(yf, yb)
        return (y if carries is None else (y, carries)), new_state

    return Layer(init, apply, "Bidirectional", keywords=frozenset({"lengths"}))
