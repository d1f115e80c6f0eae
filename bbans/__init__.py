"""bbans: a bits-back ANS engine on a vectorised numpy rANS stack (numpy only).

Distribution parameters are integers in fixed point, and every nonlinear function that shapes a
frequency table is an integer lookup table (lookup.py), so tables are bit-identical on every
machine. Float callers convert with `to_fixed`.
"""
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
    pop_interval,
    pop_intervals,
    pop_symbol,
    push_intervals,
    repeat,
    serial,
)
from .errors import BBANSError, CorruptStream, InvalidParameters, StreamExhausted
from .lookup import bucket_centres, bucket_edges
from .message import Message
from .tables import to_fixed

__all__ = [
    "BBANSError", "Bernoulli", "BucketPrior", "BucketedGaussian", "Categorical", "Codec",
    "CorruptStream", "DiscretisedLogistic", "DiscretisedLogisticRGB", "InvalidParameters",
    "Message", "StreamExhausted", "Uniform", "bits_back", "bucket_centres", "bucket_edges",
    "from_distribution", "parallel", "pop_interval", "pop_intervals", "pop_symbol", "push_intervals", "repeat",
    "serial", "to_fixed",
]
