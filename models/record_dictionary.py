"""The preset dictionary a model stream record's header is deflated with (since archive format 7).

A header is a few hundred bytes of JSON (the model and its config, the coding settings, counts)
that deflate alone shrinks by a third, which every archive pays (README, "The archive format" has
what it costs and saves). Primed with typical headers, deflate keeps mostly what differs (the model's sha256, the
counts). zlib names the dictionary in its own stream (the FDICT flag and the dictionary's
Adler-32), so a reader tells the headers that need it from those written before it.

These bytes are part of the format: never change them (tests/test_api.py pins their sha256).
The most typical header comes last, where deflate's distances are shortest.
"""
from __future__ import annotations

RECORD_DICTIONARY = b"".join([
    b'{"block_digest":"index+images","block_images":8192,"coding":{"batch_size":100,"bucket_bits":12,'
    b'"k_steps":7,"likelihood_precision":24,"lr":0.005,"posterior_precision":24,"seed":0},"image_shape":[32,32],'
    b'"images":10000,"model":{"architecture":"conv-vae","config":{"blocks":2,"channels":3,"filters":64,'
    b'"height":32,"latent_channels":4,"likelihood":"logistic","width":32},"name":"conv-photo-patches-rha",'
    b'"sha256":""},"numerics":1,"scale":1}',
    b'{"block_digest":"index+images","block_images":16384,"coding":{"batch_size":20,"bucket_bits":10,'
    b'"k_steps":0,"likelihood_precision":24,"lr":0.005,"posterior_precision":22,"seed":0},"images":1000,'
    b'"model":{"architecture":"mlp-vae","config":{"height":28,"hidden":500,"latent":10,"likelihood":"bernoulli",'
    b'"width":28},"name":"mlp-binary-mnist-rha","sha256":""},"numerics":1,"scale":255}',
    b'{"block_digest":"index+images","block_images":8192,"coding":{"batch_size":16,"bucket_bits":12,'
    b'"k_steps":0,"likelihood_precision":24,"lr":0.005,"posterior_precision":24,"seed":0},"images":100,'
    b'"model":{"architecture":"local-ar-vae","config":{"features":4,"head":32,"height":28,"hidden":500,"latent":10,'
    b'"likelihood":"logistic","radius":2,"width":28},"name":"ar-mnist-rha","sha256":""},"numerics":1,"scale":1}',
    b'{"block_digest":"index+images","block_images":128,"block_tiles":"coded-square","coding":{"batch_size":16,"bucket_bits":12,'
    b'"k_steps":0,"likelihood_precision":24,"lr":0.005,"posterior_precision":24,"seed":0},"images":12,'
    b'"model":{"architecture":"tiled-ar-vae","config":{"channels":3,"features":4,"head":48,"hidden":64,'
    b'"latent_channels":0,"likelihood":"logistic","mixtures":3,"radius":2,"stride":4,"tile":128},'
    b'"name":"tiled-grey-photos","sha256":""},"numerics":1,"scale":1}',
    b'{"block_digest":"index+images","block_images":128,"block_tiles":"coded-square","coding":{"batch_size":16,"bucket_bits":12,'
    b'"k_steps":0,"likelihood_precision":24,"lr":0.005,"posterior_precision":24,"seed":0},"images":12,'
    b'"model":{"architecture":"tiled-ar-vae","config":{"channels":3,"features":4,"head":48,"hidden":64,'
    b'"latent_channels":0,"likelihood":"logistic","radius":2,"stride":4,"tile":128},'
    b'"name":"tiled-rgb-photos","sha256":""},"numerics":1,"scale":1}',
])
