"""bbzip: lossless image compression with bits-back ANS on a learned VAE.

One distribution, one top-level package: bbzip.bbans (the entropy coder, numpy only),
bbzip.models (the VAEs, their training and their exact integer coding path) and bbzip.cli (the
command line). In the source tree they are the folders bbans/, models/ and cli/ beside this one
(pyproject.toml maps them).
"""
