"""Recurrent models: sequence classifiers and a character-level language model."""
from __future__ import annotations

from fnn._checks import check_flag, check_positive_int
from fnn.core import Layer, serial
from fnn.layers.dense import Dense
from fnn.layers.embedding import Embedding
from fnn.layers.recurrent import GRU, LSTM, Bidirectional, SimpleRNN

__all__ = ["rnn_classifier", "lstm_classifier", "char_lstm"]

_CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


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
    if not isinstance(cell, str) or cell not in _CELLS:
        raise ValueError(
            f"rnn_classifier: unknown cell {cell!r}; expected one of {sorted(_CELLS)}.")
    hidden = check_positive_int("rnn_classifier", "hidden", hidden)
    num_classes = check_positive_int("rnn_classifier", "num_classes", num_classes)
    num_layers = check_positive_int("rnn_classifier", "num_layers", num_layers)
    bidirectional = check_flag("rnn_classifier", "bidirectional", bidirectional)
    unroll = check_positive_int("rnn_classifier", "unroll", unroll)
    layers = []
    for i in range(num_layers):
        rnn = _CELLS[cell](hidden, return_sequences=i < num_layers - 1, unroll=unroll)
        layers.append(Bidirectional(rnn) if bidirectional else rnn)
    return serial(*layers, Dense(num_classes))


def lstm_classifier(hidden: int, num_classes: int, *, unroll: int = 1) -> Layer:
    """`serial(LSTM(hidden), Dense(num_classes))`: logits from the last hidden state.

    Params keyed `"0_LSTM"`, `"1_Dense"`. **Shapes:** `(N, T, F) -> (N, num_classes)`.
    """
    hidden = check_positive_int("lstm_classifier", "hidden", hidden)
    num_classes = check_positive_int("lstm_classifier", "num_classes", num_classes)
    unroll = check_positive_int("lstm_classifier", "unroll", unroll)
    return serial(LSTM(hidden, unroll=unroll), Dense(num_classes))


def char_lstm(vocab_size: int, hidden: int, *, features: int | None = None,
              unroll: int = 1) -> Layer:
    """A character-level language model: Embedding → LSTM (all steps) → Dense(vocab).

    `serial(Embedding(vocab_size, features), LSTM(hidden, return_sequences=True),
    Dense(vocab_size))` with `features` defaulting to `hidden`. Params keyed
    `"0_Embedding"`, `"1_LSTM"`, `"2_Dense"`.

    **Shapes:** integer ids `(N, T) -> (N, T, vocab_size)`: the logits at step `t`
    score the character at `t + 1` (train with `softmax_cross_entropy` on the
    flattened `(N·T, vocab)` logits against the shifted ids).
    """
    vocab_size = check_positive_int("char_lstm", "vocab_size", vocab_size)
    hidden = check_positive_int("char_lstm", "hidden", hidden)
    unroll = check_positive_int("char_lstm", "unroll", unroll)
    features = hidden if features is None else check_positive_int("char_lstm", "features",
                                                                    features)
    return serial(Embedding(vocab_size, features),
                  LSTM(hidden, return_sequences=True, unroll=unroll),
                  Dense(vocab_size))
