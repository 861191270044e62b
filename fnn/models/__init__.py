"""The model zoo: functions returning a whole model as a `fnn.Layer`."""
from fnn.models.alexnet import alexnet
from fnn.models.generate import generate
from fnn.models.inception import inception_block, inception_net
from fnn.models.lenet import lenet5
from fnn.models.mlp import mlp
from fnn.models.recurrent import char_lstm, lstm_classifier, rnn_classifier
from fnn.models.registry import REGISTRY as REGISTRY  # zoo models by name (fnn train)
from fnn.models.resnet import resnet, resnet18
from fnn.models.small_cnn import small_cnn
from fnn.models.transformer import char_transformer

__all__ = [
    "lenet5", "alexnet", "inception_block", "inception_net", "resnet", "resnet18",
    "mlp", "rnn_classifier", "lstm_classifier", "char_lstm",
    "char_transformer", "generate", "small_cnn"]
