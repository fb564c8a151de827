"""`tl.nn.functional` (import as F): the functional forms of the layers and losses, and the tensor-level
functions PyTorch users reach for under F (pad, unfold, fold, softmax, ...)."""
from ..functional import pad, unfold, fold, windows, logsumexp  # noqa: F401
from .activation import relu, leaky_relu, gelu, sigmoid, tanh, softmax, log_softmax  # noqa: F401
from .activation_extra import (silu, mish, elu, selu, celu, softplus, hardtanh, relu6, hardsigmoid,  # noqa: F401
                               hardswish, logsigmoid, softsign, tanhshrink, threshold, glu, softmin, prelu)
from .linear import linear  # noqa: F401
from .conv import conv1d, conv2d  # noqa: F401
from .pooling import max_pool2d, avg_pool2d  # noqa: F401
from .adaptive import adaptive_avg_pool2d, adaptive_max_pool2d  # noqa: F401
from .norm import batch_norm, layer_norm  # noqa: F401
from .groupnorm import group_norm, instance_norm  # noqa: F401
from .dropout import dropout, dropout1d, dropout2d  # noqa: F401
from .embedding import embedding  # noqa: F401
from .loss import cross_entropy, nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits  # noqa: F401
from .one_hot import one_hot  # noqa: F401
from .loss_regression import mse_loss, l1_loss, smooth_l1_loss, huber_loss  # noqa: F401
from .loss_likelihood import poisson_nll_loss, gaussian_nll_loss  # noqa: F401
from .loss_margin import (soft_margin_loss, hinge_embedding_loss, margin_ranking_loss,  # noqa: F401
                          cosine_embedding_loss, multilabel_soft_margin_loss, multi_margin_loss,
                          multilabel_margin_loss, triplet_margin_loss, triplet_margin_with_distance_loss)
from .divergence import kl_div  # noqa: F401
from .distance import cosine_similarity, normalize, pairwise_distance  # noqa: F401
from .attention import scaled_dot_product_attention, multi_head_attention_forward  # noqa: F401

__all__ = ["pad", "unfold", "fold", "windows", "logsumexp", "relu", "leaky_relu", "gelu", "sigmoid", "tanh",
           "softmax", "log_softmax", "silu", "mish", "elu", "selu", "celu", "softplus", "hardtanh", "relu6",
           "hardsigmoid", "hardswish", "logsigmoid", "softsign", "tanhshrink", "threshold", "glu", "softmin", "prelu",
           "linear", "conv1d", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
           "adaptive_max_pool2d", "batch_norm", "layer_norm", "group_norm", "instance_norm", "dropout", "dropout1d",
           "dropout2d", "embedding", "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "one_hot", "smooth_l1_loss", "huber_loss", "kl_div",
           "poisson_nll_loss", "gaussian_nll_loss", "soft_margin_loss", "hinge_embedding_loss", "margin_ranking_loss",
           "cosine_embedding_loss", "multilabel_soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss",
           "triplet_margin_loss", "triplet_margin_with_distance_loss", "cosine_similarity", "normalize",
           "pairwise_distance", "scaled_dot_product_attention",
           "multi_head_attention_forward"]
