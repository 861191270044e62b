"""Layer constructors; each returns a `fnn.Layer` (see API.md §1 for layouts)."""
from fnn.layers._onednn_conv import use_onednn
from fnn.layers.activation import PReLU
from fnn.layers.attention import MultiHeadAttention, attention_weights
from fnn.layers.bidirectional import Bidirectional
from fnn.layers.cells import LSTMCarry, RNNCarry, gru_cell, lstm_cell, simple_rnn_cell
from fnn.layers.conv import Conv1D, Conv2D, Conv3D, conv_output_size
from fnn.layers.conv_transpose import (
    ConvTranspose1D,
    ConvTranspose2D,
    ConvTranspose3D,
    conv_transpose_output_size,
)
from fnn.layers.dense import Dense, Flatten, Maxout
from fnn.layers.dropout import Dropout
from fnn.layers.droppath import DropPath
from fnn.layers.embedding import Embedding
from fnn.layers.group_norm import GroupNorm, InstanceNorm
from fnn.layers.norm import BatchNorm, LayerNorm, RMSNorm
from fnn.layers.pool import (
    AvgPool,
    AvgPool1D,
    AvgPool3D,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    MaxPool1D,
    MaxPool3D,
)
from fnn.layers.positional import (
    PositionalEmbedding,
    SinusoidalEmbedding,
    rotary,
    sinusoidal_positions,
)
from fnn.layers.recurrent import GRU, LSTM, SimpleRNN
from fnn.layers.transformer import TransformerBlock
from fnn.layers.upsample import Upsample

__all__ = [
    "Conv2D", "conv_output_size", "MaxPool", "AvgPool", "GlobalAvgPool", "Dropout",
    "BatchNorm",
    "Dense", "Flatten", "LayerNorm", "Maxout", "PReLU", "Embedding",
    "SimpleRNN", "LSTM", "GRU", "Bidirectional", "RNNCarry", "LSTMCarry",
    "simple_rnn_cell", "lstm_cell", "gru_cell", "use_onednn",
    "MultiHeadAttention", "attention_weights", "TransformerBlock", "PositionalEmbedding",
    "SinusoidalEmbedding", "rotary", "sinusoidal_positions",
    "Conv1D", "Conv3D", "ConvTranspose1D", "ConvTranspose2D", "ConvTranspose3D",
    "conv_transpose_output_size", "Upsample", "MaxPool1D", "AvgPool1D", "MaxPool3D",
    "AvgPool3D", "GlobalMaxPool",
]
__all__ += ["GroupNorm", "InstanceNorm", "RMSNorm", "DropPath"]
