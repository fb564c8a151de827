"""`tl.nn`: Module, Parameter, containers, layers and losses (PyTorch's names, arguments and numbers), each
layer a composition of differentiable primitives; `tl.nn.functional` and `tl.nn.init`."""
from .module import Module
from .parameter import Parameter
from .container import Sequential, ModuleList, ModuleDict
from .linear import Linear
from .conv import Conv2d
from .pooling import MaxPool2d, AvgPool2d
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .dropout import Dropout
from .embedding import Embedding
from .rnn import RNNBase, RNN, LSTM, GRU
from .activation import ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, Flatten, Identity
from .loss import MSELoss, L1Loss, CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss
from . import functional, init

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear", "Conv2d", "MaxPool2d",
           "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "Embedding", "RNNBase", "RNN", "LSTM",
           "GRU", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "Flatten", "Identity",
           "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "functional", "init"]
