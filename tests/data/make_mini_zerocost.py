"""Write tests/data/mini_zerocost.ipynb: a small notebook in ZeroCostDL4Mic layout.

It mimics the real notebooks' quirks on a few cells: bold numbered headings (one without a
trailing dot), Colab cell ids, ``!pip install`` lines, a 1.3 cell whose version check
fetches a CSV from raw.githubusercontent.com and defines functions after it, a Google
Drive mount, ``#@param`` fields of every type (no space before ``#@param``, a trailing
comment, an indented field, a commented-out field), a name repeated in sections 5 and 6.1
with different defaults, and cells that compute from the fields and write into the
model/results folders. Deterministic: run ``python tests/data/make_mini_zerocost.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("mini_zerocost.ipynb")

VERSION_URL = ("https://raw.githubusercontent.com/HenriquesLab/ZeroCostDL4Mic/master/"
               "Colab_notebooks/Latest_Notebook_versions.csv")


def md(text: str) -> tuple[str, str]:
    return ("markdown", text)


def code(text: str) -> tuple[str, str]:
    return ("code", text)


CELLS = [
    md("# **Mini ZeroCostDL4Mic**\n\nA tiny notebook in the ZeroCostDL4Mic layout, for tests."),
    md("# **0. Before getting started**\n---\n<font size = 4>Nothing to prepare."),
    md("# **1. Install Mini and dependencies**\n---"),
    md("## **1.1. Install key dependencies**\n---"),
    code("#@markdown ##Install dependencies\n\n"
         "!pip install -q tifffile # tools for tiff files\n"
         "!pip install fpdf2\n"
         "%pip install wget==3.2\n"
         "print('Dependencies installed')\n"),
    md("## **1.2. Restart your runtime**\n---\n<font size = 4>Restart the runtime now."),
    md("## **1.3. Load key dependencies**\n---"),
    code("#@markdown ##Load key dependencies\n"
         "Notebook_version = '1.0'\n"
         "Network = 'Mini'\n\n"
         "import csv\nimport io\nimport json\nimport os\nimport urllib.request\n\n\n"
         "def get_requirements_path():\n"
         "    # Store requirements file in 'contents' directory\n"
         "    current_dir = os.getcwd()\n"
         "    dir_count = current_dir.count('/') - 1\n"
         "    path = '../' * (dir_count) + 'requirements.txt'\n"
         "    return path\n\n\n"
         "# Check if this is the latest version of the notebook\n"
         "All_notebook_versions = list(csv.DictReader(io.TextIOWrapper(urllib.request.urlopen(\n"
         f"    \"{VERSION_URL}\"), encoding='utf-8')))\n"
         "print('Notebook version: ' + Notebook_version)\n"
         "Latest_Notebook_version = [r['Version'] for r in All_notebook_versions\n"
         "                           if r['Notebook'] == Network][0]\n"
         "print('Latest notebook version: ' + Latest_Notebook_version)\n"
         "if Notebook_version == Latest_Notebook_version:\n"
         "  print(\"This notebook is up-to-date.\")\n"
         "else:\n"
         "  print(\"A new version of this notebook has been released.\")\n\n"
         "!pip freeze > requirements.txt\n\n"
         "#Create a report with the training summary\n\n"
         "def pdf_export(trained=False, folder='.'):\n"
         "  \"\"\"Stand-in for the PDF report: a small text file next to the model.\"\"\"\n"
         "  path = os.path.join(folder, model_name + '_report.txt')\n"
         "  with open(path, 'w') as f:\n"
         "    f.write('Network: ' + Network + ' version ' + Notebook_version + '\\n')\n"
         "    f.write('trained: ' + str(trained) + '\\n')\n"
         "  return path\n"),
    md("# **2. Initialise the Colab session**\n---"),
    md("## **2.1. Check for GPU access**\n---"),
    code("#@markdown ##Run this cell to check if you have GPU access\n"
         "import shutil\n"
         "print('GPU tools found:', bool(shutil.which('nvidia-smi')))\n"),
    md("## **2.2 Mount your Google Drive**\n---"),
    code("#@markdown ##Play the cell to connect your Google Drive to Colab\n"
         "from google.colab import drive\n"
         "drive.mount('/content/gdrive')\n"),
    md("# **3. Select your parameters and paths**\n---"),
    md("## **3.1. Setting main training parameters**\n---"),
    code("#@markdown ###Path to training images:\n"
         "Training_source = \"/content/gdrive/MyDrive/train_images\" #@param {type:\"string\"}\n\n"
         "#@markdown ###Name of the model and path to model folder:\n"
         "model_name = \"mini_model\" #@param {type:\"string\"}\n"
         "model_path = \"/content\" #@param {type:\"string\"}\n\n"
         "#@markdown ### Training parameters\n"
         "#@markdown Number of epochs:\n"
         "number_of_epochs =  10#@param {type:\"number\"}\n"
         "patch_size =  64#@param {type:\"number\"} # in pixels\n"
         "batch_size = 4 #@param {type:\"integer\"}\n"
         "Use_Default_Advanced_Parameters = True #@param {type:\"boolean\"}\n"
         "Multiply_dataset_by = 4 #@param {type:\"slider\", min:1, max:30, step:1}\n"
         "flip_probability = 0.5 #@param {type:\"slider\", min:0, max:1, step:0.1}\n"
         "Weights_choice = \"best\" #@param [\"last\", \"best\"]\n"
         "Normalisation = \"percentile\" #@param [\"percentile\", \"minmax\"] {allow-input: true}\n"
         "Single_Images = 1\n"
         "Stacks = 2\n"
         "Data_type = Single_Images #@param [\"Single_Images\", \"Stacks\"] {type:\"raw\"}\n"
         "pooling_steps = 2 #@param [1,2,3,4]{type:\"raw\"}\n"
         "Acquisition_date = \"2024-01-31\" #@param {type:\"date\"}\n"
         "#Old_parameter = 3 #@param {type:\"number\"}\n\n"
         "#@markdown ###If not, please input:\n"
         "if not Use_Default_Advanced_Parameters:\n"
         "  initial_learning_rate = 0.0003 #@param {type:\"number\"}\n"
         "else:\n"
         "  initial_learning_rate = 0.0004\n"
         "print('Parameters set for', model_name)\n"),
    md("# **4. Train the network**\n---"),
    md("## **4.1. Start Training**\n---"),
    code("#@markdown ##Start training\n"
         "full_model_path = os.path.join(model_path, model_name)\n"
         "os.makedirs(full_model_path, exist_ok=True)\n"
         "summary = {\n"
         "    'Training_source': Training_source, 'model_name': model_name,\n"
         "    'number_of_epochs': number_of_epochs, 'patch_size': patch_size,\n"
         "    'batch_size': batch_size,\n"
         "    'Use_Default_Advanced_Parameters': Use_Default_Advanced_Parameters,\n"
         "    'Multiply_dataset_by': Multiply_dataset_by, 'flip_probability': flip_probability,\n"
         "    'Weights_choice': Weights_choice, 'Normalisation': Normalisation,\n"
         "    'Data_type': Data_type, 'pooling_steps': pooling_steps,\n"
         "    'Acquisition_date': Acquisition_date,\n"
         "    'initial_learning_rate': initial_learning_rate,\n"
         "    'total_steps': number_of_epochs * Multiply_dataset_by * batch_size,\n"
         "    'requirements_path': get_requirements_path(),\n"
         "}\n"
         "with open(os.path.join(full_model_path, 'training_summary.json'), 'w') as f:\n"
         "    json.dump(summary, f, indent=1, sort_keys=True)\n"
         "with open('training_log.txt', 'w') as f:\n"
         "    f.write('trained ' + model_name + '\\n')\n"
         "report = pdf_export(trained=True, folder=full_model_path)\n"
         "print('Training done, report in', report)\n"),
    md("# **5. Evaluate your model**\n---"),
    code("#@markdown ###Do you want to assess the model you just trained ?\n"
         "Use_the_current_trained_model = True #@param {type:\"boolean\"}\n\n"
         "#@markdown ###If not, please provide the path to the model folder:\n"
         "QC_model_folder = \"\" #@param {type:\"string\"}\n\n"
         "if Use_the_current_trained_model:\n"
         "  QC_model_folder = full_model_path\n"
         "qc_used_current_model = Use_the_current_trained_model\n"),
    md("# **6. Using the trained model**\n---"),
    md("## **6.1. Generate prediction(s) from unseen dataset**\n---"),
    code("#@markdown ### Provide the path to your dataset and to the output folder\n"
         "Data_folder = \"/content/test_images\" #@param {type:\"string\"}\n"
         "Result_folder = \"/content/results\" #@param {type:\"string\"}\n\n"
         "#@markdown ###Do you want to use the current trained model?\n"
         "Use_the_current_trained_model = False #@param {type:\"boolean\"}\n\n"
         "os.makedirs(Result_folder, exist_ok=True)\n"
         "with open(os.path.join(Result_folder, 'predictions.json'), 'w') as f:\n"
         "    json.dump({'Data_folder': Data_folder, 'QC_model_folder': QC_model_folder,\n"
         "               'section_5_used_current_model': qc_used_current_model,\n"
         "               'section_6_1_used_current_model': Use_the_current_trained_model},\n"
         "              f, indent=1, sort_keys=True)\n"
         "print('Predictions saved in', Result_folder)\n"),
    md("## **6.2. Download your predictions**\n---"),
    code("#@markdown ##Download the predictions\n"
         "from google.colab import files\n"
         "files.download(os.path.join(Result_folder, 'predictions.json'))\n"),
    md("# **7. Version log**\n---\n**v1.0**: first version."),
    md("# **Thank you for using Mini!**"),
]


def build() -> dict:
    """The notebook as a dict (nbformat 4.0, like the Colab notebooks)."""
    cells = []
    for i, (kind, text) in enumerate(CELLS):
        lines = text.splitlines(keepends=True)
        cell = {"cell_type": kind, "metadata": {"id": f"mini{i:02d}"}, "source": lines}
        if kind == "code":
            cell["metadata"]["cellView"] = "form"
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "colab": {"name": "mini_zerocost.ipynb", "provenance": []},
            "kernelspec": {"display_name": "Python 3", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 0,
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
