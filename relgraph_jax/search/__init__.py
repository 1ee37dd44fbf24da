"""Early-stopping search over graphs: successive halving, shared by the trainer's live
search and the replay on recorded runs (`experiments.replay_search`)."""
from relgraph_jax.search.halving import Decision, HalvingPolicy, model_epochs, rank

__all__ = ["Decision", "HalvingPolicy", "model_epochs", "rank"]
