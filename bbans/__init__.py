"""bbans: a bits-back ANS engine on a vectorised numpy rANS stack (numpy only)."""
from .codecs import (
    Bernoulli,
    BucketedGaussian,
    BucketPrior,
    Categorical,
    Codec,
    DiscretisedLogistic,
    DiscretisedLogisticRGB,
    Uniform,
    bits_back,
    from_distribution,
    parallel,
    repeat,
    serial,
)
from .errors import BBANSError, CorruptStream, InvalidParameters, StreamExhausted
from .message import Message
from .normal import bucket_centres, bucket_edges

__all__ = [
    "BBANSError", "Bernoulli", "BucketPrior", "BucketedGaussian", "Categorical", "Codec",
    "CorruptStream", "DiscretisedLogistic", "DiscretisedLogisticRGB", "InvalidParameters",
    "Message", "StreamExhausted", "Uniform", "bits_back", "bucket_centres", "bucket_edges",
    "from_distribution", "parallel", "repeat", "serial",
]
