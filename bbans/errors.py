"""Error types raised by the engine. Every decode-side failure is one of these."""


class BBANSError(Exception):
    """Base class of every error the engine raises."""


class StreamExhausted(BBANSError):
    """A pop needed more words than the stream holds (truncated or corrupt input)."""


class CorruptStream(BBANSError):
    """The bytes cannot be a message this engine wrote, or decoding ended in a wrong state."""


class InvalidParameters(BBANSError):
    """A codec was given parameters it cannot code with (wrong shape, precision out of range)."""
