import os as _hpc_os

HPC_DL4MIC_DATA_DIR = '/data'
HPC_DL4MIC_RESULTS_DIR = '/results'
try:
    _hpc_os.makedirs(HPC_DL4MIC_RESULTS_DIR, exist_ok=True)
except OSError:
    pass
if not _hpc_os.access(_hpc_os.getcwd(), _hpc_os.W_OK) \
        and _hpc_os.path.isdir(HPC_DL4MIC_RESULTS_DIR):
    _hpc_os.chdir(HPC_DL4MIC_RESULTS_DIR)  # opened inside the read-only image: write to results
