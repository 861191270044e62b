"""Recurrent models: sequence classifiers and a character-level language model."""
from __future__ import annotations

from fnn._checks import BadValue, checked, flag, positive_int
from fnn.core import Layer, serial
from fnn.layers.bidirectional import Bidirectional
from fnn.layers.dense import Dense
from fnn.layers.embedding import Embedding
from fnn.layers.recurrent import GRU, LSTM, SimpleRNN

__all__ = ["rnn_classifier", "lstm_classifier", "char_lstm"]

_CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def _cell(name: str, value) -> str:
    """A key of `_CELLS` (else `BadValue`)."""
    if not isinstance(value, str) or value not in _CELLS:
        raise BadValue(f"unknown {name} {value!r}; expected one of {sorted(_CELLS)}.")
    return value


@checked("rnn_classifier", cell=_cell, hidden=positive_int, num_classes=positive_int,
         num_layers=positive_int, bidirectional=flag, unroll=positive_int)
def rnn_classifier(hidden: int, num_classes: int, cell: str = "rnn", *, num_layers: int = 1,
                   bidirectional: bool = False, unroll: int = 1) -> Layer:
    """A sequence classifier: recurrent layer(s), then `Dense(num_classes)` on the last state.

    **Arguments:**
    - `hidden`: state size of each recurrent layer.
    - `num_classes`: number of output logits.
    - `cell`: `"rnn"` (`SimpleRNN`, the default), `"lstm"` or `"gru"`.
    - `num_layers`: stacked recurrent layers (all but the last return sequences).
    - `bidirectional`: wrap each recurrent layer in `Bidirectional` (concat merge).
    - `unroll`: passed to each recurrent layer.

    **Shapes:** `(N, T, F) -> (N, num_classes)` logits. Accepts `lengths=` in `apply`.
    """
    layers = []
    for i in range(num_layers):
        rnn = _CELLS[cell](hidden, return_sequences=i < num_layers - 1, unroll=unroll)
        layers.append(Bidirectional(rnn) if bidirectional else rnn)
    return serial(*layers, Dense(num_classes))


@checked("lstm_classifier", hidden=positive_int, num_classes=positive_int, unroll=positive_int)
def lstm_classifier(hidden: int, num_classes: int, *, unroll: int = 1) -> Layer:
    """`serial(LSTM(hidden), Dense(num_classes))`: logits from the last hidden state.

    Params keyed `"0_LSTM"`, `"1_Dense"`. **Shapes:** `(N, T, F) -> (N, num_classes)`.
    """
    return serial(LSTM(hidden, unroll=unroll), Dense(num_classes))


@checked("char_lstm", vocab_size=positive_int, hidden=positive_int, unroll=positive_int,
         return_state=flag)
def char_lstm(vocab_size: int, hidden: int, *, features: int | None = None,
              unroll: int = 1, return_state: bool = False) -> Layer:
    """A character-level language model: Embedding → LSTM (all steps) → Dense(vocab).

    `serial(Embedding(vocab_size, features), LSTM(hidden, return_sequences=True),
    Dense(vocab_size))` with `features` defaulting to `hidden`. Params keyed
    `"0_Embedding"`, `"1_LSTM"`, `"2_Dense"`.

    **Shapes:** integer ids `(N, T) -> (N, T, vocab_size)`: the logits at step `t`
    score the character at `t + 1` (train with `softmax_cross_entropy` on the
    flattened `(N·T, vocab)` logits against the shifted ids).

    `return_state=True` gives a model with the same params whose `apply` takes
    `initial_state=` (the LSTM carry `(h, c)`, default zeros) and returns
    `((logits, (h, c)), state)`: for sampling one character at a time
    (`fnn.models.generate`) or reading a long text in pieces.
    """
    features = hidden if features is None else positive_int("features", features)
    model = serial(Embedding(vocab_size, features),
                   LSTM(hidden, return_sequences=True, unroll=unroll),
                   Dense(vocab_size))
    return _with_state(model, unroll) if return_state else model


def _with_state(model: Layer, unroll: int) -> Layer:
    """`char_lstm(..., return_state=True)`: the same params as `model` (Embedding, LSTM,
    Dense), `apply(..., initial_state=None)` returning `((logits, (h, c)), state)`."""
    (_, embed), (_, lstm), (_, dense) = model.children

    def apply(params, state, x, *, key=None, train=False, initial_state=None):
        h, _ = embed.apply(params["0_Embedding"], {}, x, key=key, train=train)
        size = params["1_LSTM"]["w_h"].shape[0]
        stateful = LSTM(size, return_sequences=True, return_state=True, unroll=unroll)
        (h, carry), _ = stateful.apply(params["1_LSTM"], {}, h, initial_state=initial_state)
        logits, _ = dense.apply(params["2_Dense"], {}, h)
        return (logits, carry), state

    return Layer(model.init, apply, "CharLSTM", keywords=frozenset({"initial_state"}),
                 input_dtype=model.input_dtype)
