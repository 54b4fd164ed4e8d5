"""Fitting orchestration: the only package that imports both xarray and JAX.

:mod:`moseq_xr.fitting.bridge` converts pose Datasets to the arrays the model core
takes and puts per-frame results back on the Dataset's grid.
"""
