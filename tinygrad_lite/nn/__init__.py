"""`tl.nn`: Module, Parameter, containers, layers and losses (PyTorch's names, arguments and numbers), each
layer a composition of differentiable primitives; `tl.nn.functional`, `tl.nn.init` and
`tl.nn.utils` (gradient clipping, parameters <-> vector)."""
from .module import Module
from .parameter import Parameter
from .container import Sequential, ModuleList, ModuleDict
from .linear import Linear
from .conv import Conv1d, Conv2d
from .pooling import MaxPool2d, AvgPool2d
from .adaptive import AdaptiveAvgPool2d, AdaptiveMaxPool2d
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .groupnorm import GroupNorm, InstanceNorm1d, InstanceNorm2d
from .dropout import Dropout, Dropout1d, Dropout2d
from .embedding import Embedding
from .rnn import RNNBase, RNN, LSTM, GRU
from .rnn_cells import RNNCellBase, RNNCell, LSTMCell, GRUCell
from .activation import ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, LogSoftmax, Flatten, Identity
from .activation_extra import (SiLU, Mish, ELU, SELU, CELU, Softplus, Hardtanh, ReLU6, Hardsigmoid, Hardswish,
                               LogSigmoid, Softsign, Tanhshrink, Threshold, GLU, Softmin, PReLU)
from .loss import CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss
from .loss_regression import MSELoss, L1Loss, SmoothL1Loss, HuberLoss
from .loss_likelihood import PoissonNLLLoss, GaussianNLLLoss
from .loss_margin import (SoftMarginLoss, HingeEmbeddingLoss, MarginRankingLoss, CosineEmbeddingLoss,
                          MultiLabelSoftMarginLoss, MultiMarginLoss, MultiLabelMarginLoss, TripletMarginLoss,
                          TripletMarginWithDistanceLoss)
from .divergence import KLDivLoss
from .distance import CosineSimilarity, PairwiseDistance
from .multihead import MultiheadAttention
from .transformer import (Transformer, TransformerEncoder, TransformerDecoder, TransformerEncoderLayer,
                          TransformerDecoderLayer)
from . import functional, init, utils, parallel

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear", "Conv1d", "Conv2d", "MaxPool2d",
           "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
           "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Dropout", "Dropout1d", "Dropout2d", "Embedding", "RNNBase",
           "RNN", "LSTM",
           "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU",
           "Softmax", "LogSoftmax", "Flatten", "Identity", "SiLU", "Mish", "ELU", "SELU", "CELU", "Softplus",
           "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish", "LogSigmoid", "Softsign", "Tanhshrink", "Threshold", "GLU",
           "Softmin", "PReLU", "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss",
           "BCELoss", "BCEWithLogitsLoss", "SmoothL1Loss", "HuberLoss", "KLDivLoss", "PoissonNLLLoss", "GaussianNLLLoss",
           "SoftMarginLoss", "HingeEmbeddingLoss", "MarginRankingLoss", "CosineEmbeddingLoss",
           "MultiLabelSoftMarginLoss", "MultiMarginLoss", "MultiLabelMarginLoss", "TripletMarginLoss",
           "TripletMarginWithDistanceLoss", "CosineSimilarity", "PairwiseDistance",
           "MultiheadAttention", "Transformer", "TransformerEncoder", "TransformerDecoder",
           "TransformerEncoderLayer", "TransformerDecoderLayer",
           "functional", "init", "utils", "parallel"]
