"""Write tests/data/gpu_saxpy.ipynb: a notebook in ZeroCostDL4Mic layout whose cells compute
on the GPU through the CUDA driver API with ctypes (no CUDA toolkit or framework in the
image: the driver comes from ``apptainer --nv``), check the result against the CPU and save
it in the results folder. The kernel code is hpc-dl4mic's own GPU probe's
(``hpc_dl4mic/gpu/probe.py``), copied in. Deterministic: run
``python tests/data/make_gpu_saxpy.py``.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent.parent))

from hpc_dl4mic.gpu import probe  # noqa: E402

OUT = HERE / "gpu_saxpy.ipynb"


def md(text: str) -> tuple[str, str]:
    return ("markdown", text)


def code(text: str) -> tuple[str, str]:
    return ("code", text)


KERNEL = ("N = 4096\n"
          f"SAXPY_PTX = r'''{probe.SAXPY_PTX}'''\n\n\n"
          + inspect.getsource(probe.Driver) + "\n\n" + inspect.getsource(probe.saxpy))

CELLS = [
    md("# **GPU saxpy (ZeroCostDL4Mic layout)**\n\nA tiny notebook that computes on the GPU, "
       "for hpc-dl4mic's GPU tests."),
    md("# **0. Before getting started**\n---\n<font size = 4>It needs an NVIDIA GPU."),
    md("# **1. Install dependencies**\n---"),
    md("## **1.1. Install key dependencies**\n---"),
    code("#@markdown ##Install dependencies\n!pip install -q numpy\n"),
    md("## **1.2. Load key dependencies**\n---"),
    code("#@markdown ##Load key dependencies\n"
         "import ctypes\nimport json\nimport os\nimport shutil\nimport time\n"
         "from typing import Any\n\n" + KERNEL),
    md("# **2. Initialise the session**\n---"),
    md("## **2.1. Check for GPU access**\n---"),
    code("#@markdown ##Run this cell to check if you have GPU access\n"
         "print('nvidia-smi found:', bool(shutil.which('nvidia-smi')))\n"),
    md("# **3. Select your parameters and paths**\n---"),
    md("## **3.1. Parameters**\n---"),
    code("#@markdown ###Size of the computation:\n"
         "n_elements = 4096 #@param {type:\"integer\"}\n"
         "scale = 2.0 #@param {type:\"number\"}\n"
         "#@markdown ###Where to save the result:\n"
         "Result_folder = \"/content/results\" #@param {type:\"string\"}\n"),
    md("# **4. Compute on the GPU**\n---"),
    code("#@markdown ##Run the kernel\n"
         "cu = Driver()\n"
         "cu.call('cuInit', 0)\n"
         "device = ctypes.c_int()\n"
         "cu.call('cuDeviceGet', ctypes.byref(device), 0)\n"
         "name = ctypes.create_string_buffer(256)\n"
         "cu.call('cuDeviceGetName', name, 256, device)\n"
         "result = saxpy(cu, device, int(n_elements), float(scale))\n"
         "result['device'] = name.value.decode()\n"
         "print(result)\n"),
    md("# **5. Check against the CPU and save**\n---"),
    code("#@markdown ##Save the result\n"
         "os.makedirs(Result_folder, exist_ok=True)\n"
         "result.update(n_elements=int(n_elements), scale=float(scale))\n"
         "with open(os.path.join(Result_folder, 'gpu_result.json'), 'w') as f:\n"
         "    json.dump(result, f, indent=1, sort_keys=True)\n"
         "assert result['ok'], f\"{result['mismatches']} results differ from the CPU's\"\n"
         "print('GPU result matches the CPU:', result['device'])\n"),
    md("# **6. Version log**\n---\n**v1.0**: first version."),
]


def build() -> dict:
    cells = []
    for i, (kind, text) in enumerate(CELLS):
        cell = {"cell_type": kind, "metadata": {"id": f"gpu{i:02d}"},
                "source": text.splitlines(keepends=True)}
        if kind == "code":
            cell["metadata"]["cellView"] = "form"
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    return {"cells": cells,
            "metadata": {"colab": {"name": "gpu_saxpy.ipynb", "provenance": []},
                         "kernelspec": {"display_name": "Python 3", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 0}


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
