"""Write tests/data/mini_sweep.ipynb: the mini notebook (make_mini_zerocost.py) made for
batch sweeps, as the real notebooks behave in their training section: it deletes an
existing model folder of the same name (as ZeroCostDL4Mic's "Model folder already exists
and has been removed" cells do), fails on purpose for ``number_of_epochs == 13``, sleeps
``sleep_seconds`` (for walltime tests) and writes a per-epoch
``<model>/Quality Control/training_evaluation.csv`` (loss, val_loss, learning rate).
Deterministic: run ``python tests/data/make_mini_sweep.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "mini_zerocost.ipynb"
OUT = HERE / "mini_sweep.ipynb"

SLEEP_FIELD = 'sleep_seconds = 0 #@param {type:"number"}\n'

TRAINING = """\
#@markdown ##Start training
import shutil
import time

full_model_path = os.path.join(model_path, model_name)
if os.path.exists(full_model_path):
  print('!! WARNING: Model folder already exists and has been removed !!')
  shutil.rmtree(full_model_path)
os.makedirs(full_model_path)
if number_of_epochs == 13:
  raise ValueError('13 epochs: this combination fails on purpose')
time.sleep(sleep_seconds)
os.makedirs(os.path.join(full_model_path, 'Quality Control'))
with open(os.path.join(full_model_path, 'Quality Control', 'training_evaluation.csv'), 'w',
          newline='') as f:
  writer = csv.writer(f)
  writer.writerow(['loss', 'val_loss', 'learning rate'])
  for epoch in range(int(number_of_epochs)):
    loss = 1.0 / (1 + epoch * flip_probability)
    writer.writerow([loss, loss * 1.1, initial_learning_rate])
summary = {
    'Training_source': Training_source, 'model_name': model_name,
    'number_of_epochs': number_of_epochs, 'flip_probability': flip_probability,
    'Weights_choice': Weights_choice, 'sleep_seconds': sleep_seconds,
    'cwd': os.getcwd(),
}
with open(os.path.join(full_model_path, 'training_summary.json'), 'w') as f:
  json.dump(summary, f, indent=1, sort_keys=True)
print('Training done in', full_model_path)
"""


def build() -> dict:
    nb = json.loads(SOURCE.read_text())
    nb["cells"][0]["source"] = ["# **Mini sweep ZeroCostDL4Mic**\n", "\n",
                                "The mini notebook, made for batch sweeps (tests)."]
    params = nb["cells"][15]
    text = "".join(params["source"])
    marker = 'batch_size = 4 #@param {type:"integer"}\n'
    assert marker in text
    params["source"] = text.replace(marker, marker + SLEEP_FIELD).splitlines(keepends=True)
    training = nb["cells"][18]
    assert "".join(training["source"]).startswith("#@markdown ##Start training")
    training["source"] = TRAINING.splitlines(keepends=True)
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("id"):
            cell["metadata"]["id"] = "sweep-" + cell["metadata"]["id"]
    return nb


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
