"""models: the paper's VAEs in PyTorch, their training, K-step inference, evaluation and weights."""
