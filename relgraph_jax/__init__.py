"""relgraph_jax: relational graphs as block-sparse layers, trained many at a time in JAX."""

__version__ = "0.1.0"
