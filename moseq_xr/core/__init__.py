"""The JAX model core: pure functions over NamedTuple pytrees.

Nothing here imports xarray. Every stochastic function takes an explicit PRNG
key and splits it for each draw. ``moseq_xr.fitting.bridge`` converts between pose
Datasets and the arrays these functions take.
"""
