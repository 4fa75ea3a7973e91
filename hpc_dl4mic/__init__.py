"""hpc-dl4mic: DL4MicEverywhere / ZeroCostDL4Mic notebooks on HPC clusters (Apptainer + SLURM)."""

__version__ = "0.1.0"
