"""How to run each real ZeroCostDL4Mic notebook headless on small synthetic data: which
data it expects, the tiny training settings, the sections a batch run leaves out and where
its predictions land. Used by the CI tier (tests/e2e/test_real_notebooks_real.py) and by
bench/notebook_matrix.py, so both run a notebook the same way.

Paths: the recipe's data is uploaded to ``DATA/<upload>`` (``/data/<upload>`` in the
container); every task works in its own ``/results`` folder, fetched by ``batch fetch``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seeddata import COLAB_NOTEBOOKS as NOTEBOOKS
from seeddata import REQUIREMENTS
from synthdata import write_scenes


@dataclass(frozen=True)
class Recipe:
    """One real notebook, ready for ``hpc-dl4mic batch``."""

    config: str                    # DL4MicEverywhere config name (configs/**/NAME)
    notebook: str                  # file in the seed Colab_notebooks folder
    requirements: str              # file in the seed requirements_files folder
    framework: str                 # tensorflow | pytorch | ...
    make_data: Callable[[Path], None]
    params: dict[str, object]
    skip_sections: tuple[str, ...] = ()
    predictions: str = "predictions/*.tif"  # glob under the task's results folder
    prediction_section: str = ""   # the section that writes them
    suite: str = "bookworm"        # offline Debian base whose python3 is the config's
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def upload(self) -> str:
        return f"nbm-{self.config}"

    @property
    def data(self) -> str:
        return f"/data/{self.upload}"

    def notebook_path(self) -> Path:
        return NOTEBOOKS / self.notebook

    def requirements_path(self) -> Path:
        return REQUIREMENTS / self.requirements

    def batch_args(self) -> list[str]:
        """The ``batch submit`` arguments of this recipe (no profile, base or upload)."""
        args = ["--notebook", str(self.notebook_path()),
                "--requirements", str(self.requirements_path())]
        for name, value in self.params.items():
            text = value if isinstance(value, str) else repr(value)
            args += ["-p", name, str(text).replace("{data}", self.data)]
        if self.skip_sections:
            args += ["--skip-sections", " ".join(self.skip_sections)]
        return args


def _instance_data(root: Path, *, size: int = 128, train: int = 6, test: int = 2) -> None:
    """Images + uint16 instance label masks (StarDist, SplineDist, Cellpose, EmbedSeg)."""
    write_scenes({"image": root / "train" / "images", "labels": root / "train" / "masks"},
                 train, seed=1, size=size)
    write_scenes({"image": root / "test" / "images", "labels": root / "test" / "masks"},
                 test, seed=2, size=size, prefix="test")


def _registration_data(root: Path, *, size: int = 256, moving: int = 2) -> None:
    """One fixed image and moving images shifted by a few pixels (DRMIME)."""
    write_scenes({"image": root / "fixed"}, 1, seed=3, size=size, prefix="fixed")
    write_scenes({"shifted": root / "moving"}, moving, seed=3, size=size, prefix="fixed")


STARDIST_2D = Recipe(
    config="StarDist_2D_DL4Mic", notebook="StarDist_2D_ZeroCostDL4Mic.ipynb",
    requirements="StarDist_2D_requirements_simple.txt", framework="tensorflow",
    make_data=_instance_data,
    params={"Training_source": "{data}/train/images", "Training_target": "{data}/train/masks",
            "model_name": "nbm_stardist", "model_path": "/results/models",
            "number_of_epochs": 1, "Use_Default_Advanced_Parameters": False,
            "batch_size": 2, "number_of_steps": 2, "patch_size": 64,
            "Use_Data_augmentation": False,
            "Source_QC_folder": "{data}/test/images", "Target_QC_folder": "{data}/test/masks",
            "Data_folder": "{data}/test/images", "Results_folder": "/results/predictions"},
    # 5.3. BioImage.io export needs a person (empty name/authors); 6.2. is the tiled
    # "big data" variant of 6.1. (the same Data_folder/Results_folder names)
    skip_sections=("5.3.", "6.2."), prediction_section="6.1.", suite="bookworm")

DRMIME_2D = Recipe(
    config="DRMIME_2D_DL4Mic", notebook="DRMIME_2D_ZeroCostDL4Mic.ipynb",
    requirements="DRMIME_2D_requirements_simple.txt", framework="pytorch",
    make_data=_registration_data,
    params={"Fixed_image_folder": "{data}/fixed", "Moving_image_folder": "{data}/moving",
            "Result_folder": "/results/registered", "model_name": "nbm_drmime",
            "number_of_iteration": 5, "nb_images_pyramid": 3},
    predictions="registered/nbm_drmime/*_registered.tif", prediction_section="4.2.",
    suite="bullseye")



def _restoration_3d_data(root: Path, *, size: int = 128, depth: int = 8, train: int = 3,
                         test: int = 1) -> None:
    """Noisy and clean stacks with the same names (CARE 3D, 3D U-Net-style pairs)."""
    write_scenes({"image": root / "train" / "low", "clean": root / "train" / "high"},
                 train, seed=4, size=size, depth=depth)
    write_scenes({"image": root / "test" / "low", "clean": root / "test" / "high"},
                 test, seed=5, size=size, depth=depth, prefix="test")


def _denoiseg_data(root: Path, *, size: int = 128, noisy: int = 8, labelled: int = 4) -> None:
    """Noisy images, instance labels for the first few of them only (DenoiSeg trains on
    both), and a test set with labels and clean images."""
    write_scenes({"image": root / "train" / "noisy"}, noisy, seed=6, size=size)
    write_scenes({"labels": root / "train" / "labels"}, labelled, seed=6, size=size)
    write_scenes({"image": root / "test" / "noisy", "labels": root / "test" / "labels",
                  "clean": root / "test" / "clean"}, 2, seed=7, size=size, prefix="test")


SPLINEDIST_2D = Recipe(
    config="SplineDist_2D_DL4Mic", notebook="SplineDist_2D_ZeroCostDL4Mic.ipynb",
    requirements="SplineDist_2D_requirements_simple.txt", framework="tensorflow",
    make_data=_instance_data,
    params={"Training_source": "{data}/train/images", "Training_target": "{data}/train/masks",
            "model_name": "nbm_splinedist", "model_path": "/results",
            "number_of_epochs": 1, "Use_Default_Advanced_Parameters": False,
            "batch_size": 2, "number_of_steps": 2, "patch_size": 64,
            "number_of_control_points": 8,
            "Source_QC_folder": "{data}/test/images", "Target_QC_folder": "{data}/test/masks",
            "Data_folder": "{data}/test/images", "Results_folder": "/results"},
    # 6.1. chdir()s into Results_folder without creating it: the task's own /results exists
    predictions="test_*.tif", prediction_section="6.1.", suite="bullseye")

CARE_3D = Recipe(
    config="CARE_3D_DL4Mic", notebook="CARE_3D_ZeroCostDL4Mic.ipynb",
    requirements="CARE_3D_requirements_simple.txt", framework="tensorflow",
    make_data=_restoration_3d_data,
    params={"Training_source": "{data}/train/low", "Training_target": "{data}/train/high",
            "model_name": "nbm_care3d", "model_path": "/results",
            "number_of_epochs": 1, "patch_size": 32, "patch_height": 4,
            "number_of_patches": 4, "Use_Default_Advanced_Parameters": False,
            "batch_size": 2, "number_of_steps": 2,
            "Source_QC_folder": "{data}/test/low", "Target_QC_folder": "{data}/test/high",
            "Data_folder": "{data}/test/low", "Result_folder": "/results"},
    # 6.1. writes into Result_folder without creating it
    predictions="test_*.tif", prediction_section="6.1.", suite="bullseye")

DENOISEG = Recipe(
    config="DenoiSeg_DL4Mic", notebook="DenoiSeg_ZeroCostDL4Mic.ipynb",
    requirements="Denoiseg_requirements_simple.txt", framework="tensorflow",
    make_data=_denoiseg_data,
    params={"Training_source": "{data}/train/noisy", "Training_target": "{data}/train/labels",
            "model_name": "nbm_denoiseg", "model_path": "/results",
            "number_of_epochs": 1, "Use_Default_Advanced_Parameters": False,
            "batch_size": 2, "number_of_steps": 2,
            "Source_QC_folder": "{data}/test/noisy",
            "Target_Denoising_folder": "{data}/test/clean",
            "Target_Segmentation_folder": "{data}/test/labels",
            "Data_folder": "{data}/test/noisy", "Result_folder": "/results"},
    # 6.1. writes into Result_folder without creating it
    predictions="Predicted_segmentation_*.tif", prediction_section="6.1.", suite="bullseye")

RECIPES: dict[str, Recipe] = {r.config: r for r in (STARDIST_2D, DRMIME_2D, SPLINEDIST_2D,
                                                   CARE_3D, DENOISEG)}
