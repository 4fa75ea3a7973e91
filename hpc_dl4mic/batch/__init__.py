"""Batch runs: a notebook over a sweep of parameters, as SLURM job arrays (issue 10)."""
