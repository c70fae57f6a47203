"""deepretrieval: train language models to search with reinforcement learning on real retrieval results."""

__version__ = "0.1.0"
