"""How to run each real ZeroCostDL4Mic notebook headless on small synthetic data: which
data it expects, the tiny training settings, the sections a batch run leaves out and where
its predictions land. Used by the CI tier (tests/e2e/test_real_notebooks_real.py) and by
bench/notebook_matrix.py, so both run a notebook the same way.

Paths: the recipe's data is uploaded to ``DATA/<upload>`` (``/data/<upload>`` in the
container); every task works in its own ``/results`` folder, fetched by ``batch fetch``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from seeddata import COLAB_NOTEBOOKS as NOTEBOOKS
from seeddata import REQUIREMENTS
from synthdata import write_scenes, write_smlm, write_sr_pairs


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
    # an upstream defect worked around as a user would: pip requirements added through the
    # config's hpc_dl4mic.extra_pip (a copy of the config), and the reason, shown in the row
    extra_pip: tuple[str, ...] = ()
    workaround: str = ""

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
            "Data_folder": "{data}/test/images", "Results_folder": "/results"},
    # 6.1. chdir()s into Results_folder without creating it: the task's own /results exists
    skip_sections=("5.2.",), predictions="test_*.tif", prediction_section="6.1.",
    suite="bullseye",
    note="5.2. (quality control) left out: it calls imsave(name, labels, details), which "
         "tifffile refuses (TypeError: 1 to 2 positional arguments), a bug of the notebook; "
         "6.1. does not need it",
    extra_pip=("tifffile==2022.4.8",),
    workaround="6.1. calls imsave(..., compress=ZIP_DEFLATED); the tifffile it pins "
               "(2023.2.27) no longer takes compress (removed in 2022.4.22): "
               "tifffile==2022.4.8 added with hpc_dl4mic.extra_pip")

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
    predictions="Predicted_segmentation_*.tif", prediction_section="6.1.", suite="bullseye",
    extra_pip=("memory_profiler==0.61.0",),
    workaround="1.3. imports memory_profiler, which the notebook pip-installs in 1.1. (a "
               "section its config removes) and its requirements file does not list: added "
               "with hpc_dl4mic.extra_pip")



def _smlm_data(root: Path) -> None:
    """SMLM movies with their localisation CSVs (Deep-STORM): one to load in 3.1. a), one
    for the quality control (image and CSV in two folders, paired by order) and one to
    predict."""
    write_smlm(root / "train" / "movie.tif", root / "train" / "movie.csv", seed=8)
    write_smlm(root / "qc" / "images" / "qc.tif", root / "qc" / "locs" / "qc.csv", seed=9)
    write_smlm(root / "test" / "movie.tif", root / "test" / "movie.csv", seed=10)


def _segmentation_3d_data(root: Path, *, size: int = 128, depth: int = 40) -> None:
    """Stacks and binary (0/255) masks (3D U-Net: it takes the validation patches from the
    last ``validation_split`` of each stack's planes, so 25 % of them must exceed the
    patch depth of 8)."""
    write_scenes({"image": root / "train" / "images", "mask": root / "train" / "masks"},
                 3, seed=11, size=size, depth=depth)
    write_scenes({"image": root / "test" / "images", "mask": root / "test" / "masks"},
                 1, seed=12, size=size, depth=depth, prefix="test")


DEEP_STORM_2D = Recipe(
    config="Deep-STORM_2D_DL4Mic", notebook="Deep-STORM_2D_ZeroCostDL4Mic.ipynb",
    requirements="DeepSTORM_requirements_simple.txt", framework="tensorflow",
    make_data=_smlm_data,
    params={"ImageData_path": "{data}/train/movie.tif",
            "LocalizationData_path": "{data}/train/movie.csv",
            "get_pixel_size_from_file": False, "pixel_size": 100,
            "FOV_size": 3200, "number_of_frames": 4, "Save_path": "/results/simulated",
            "patch_size": 16, "upsampling_factor": 4, "num_patches_per_frame": 10,
            "min_number_of_emitters_per_patch": 1, "max_num_patches": 40,
            "model_path": "/results", "model_name": "nbm_deepstorm", "number_of_epochs": 1,
            "batch_size": 4, "number_of_steps": 2,
            "QC_image_folder": "{data}/qc/images", "QC_loc_folder": "{data}/qc/locs",
            "Data_folder": "{data}/test", "Result_folder": "/results/predictions"},
    # 3.1. has two parts with one number, a) load and b) simulate: both run (b's simulated
    # movie is what 3.2. cuts into patches). 6.2. (drift correction) and 6.3.
    # (visualisation) post-process a localisation file of 6.1. named by hand.
    skip_sections=("6.2.", "6.3."), predictions="predictions/*", prediction_section="6.1.",
    suite="bookworm",
    note="6.2. drift correction and 6.3. visualisation left out: they post-process a "
         "localisation file from 6.1. whose path a person types in")

UNET_3D = Recipe(
    config="U-Net_3D_DL4Mic", notebook="U-Net_3D_ZeroCostDL4Mic.ipynb",
    requirements="3D_UNet_requirements_simple.txt", framework="tensorflow",
    make_data=_segmentation_3d_data,
    params={"training_source": "{data}/train/images", "training_target": "{data}/train/masks",
            "model_name": "nbm_unet3d", "model_path": "/results", "number_of_epochs": 1,
            "use_default_advanced_parameters": False, "batch_size": 1,
            "patch_size": [64, 64, 8], "validation_split_in_percent": 25,
            "testing_source": "{data}/test/images/test_00.tif",
            "testing_target": "{data}/test/masks/test_00.tif",
            "source_path": "{data}/test/images/test_00.tif",
            "output_directory": "/results/predictions"},
    # 4.2. zips the model for a Colab download; 5.4. (BioImage.io export) needs a person
    skip_sections=("4.2.", "5.4."), predictions="predictions/*_predicted.tif",
    prediction_section="6.1.", suite="bookworm",
    note="4.2. (zip the model for a Colab download) and 5.4. (BioImage.io export: model "
         "name, authors, description by a person) left out")



def _super_resolution_data(root: Path, *, size: int = 128, factor: int = 2) -> None:
    """Low-resolution images and their high-resolution targets ``factor`` times larger, same
    names (DFCAN, WGAN)."""
    write_sr_pairs(root / "train" / "low", root / "train" / "high", 6, seed=13, size=size,
                   factor=factor)
    write_sr_pairs(root / "test" / "low", root / "test" / "high", 2, seed=14, size=size,
                   factor=factor, prefix="test")


def _images_only(root: Path, *, size: int = 128) -> None:
    """Images alone (generative models: Diffusion SMLM)."""
    write_scenes({"image": root / "train"}, 6, seed=15, size=size)


DFCAN = Recipe(
    config="DFCAN_DL4Mic", notebook="DFCAN_ZeroCostDL4Mic.ipynb",
    requirements="DFCAN_requirements_simple.txt", framework="tensorflow",
    # its MS-SSIM loss needs high-resolution patches of at least 11 * 2**4 = 176 px, and it
    # cuts patches strictly smaller than the source images
    make_data=partial(_super_resolution_data, size=256),
    params={"Training_source": "{data}/train/low", "Training_target": "{data}/train/high",
            "model_name": "nbm_dfcan", "model_path": "/results", "down_factor": 2,
            "number_of_epochs": 1, "Use_Default_Advanced_Parameters": False,
            "batch_size": 2, "number_of_patches": 2, "source_patch_size": 96,
            "Source_QC_folder": "{data}/test/low", "Target_QC_folder": "{data}/test/high",
            "Data_folder": "{data}/test/low", "Result_folder": "/results"},
    # 6.1. writes into Result_folder without creating it
    predictions="test_*.tif", prediction_section="6.1.", suite="bullseye")

EMBEDSEG = Recipe(
    config="Embedseg_DL4Mic", notebook="EmbedSeg_2D_ZeroCostDL4Mic.ipynb",
    requirements="EmbedSeg_2D_requirements_simple.txt", framework="pytorch",
    make_data=_instance_data,
    params={"Training_source": "{data}/train/images", "Training_target": "{data}/train/masks",
            "model_name": "nbm_embedseg", "model_path": "/results", "number_of_epochs": 1,
            "Use_Default_Advanced_Parameters": False, "Nb_images_for_test": 1,
            "number_of_steps": 2, "patch_size": 64, "batch_size": 2,
            "QC_model_folder": "/results/nbm_embedseg",
            "Prediction_model_folder": "/results/nbm_embedseg",
            "Source_QC_folder": "{data}/test/images", "Target_QC_folder": "{data}/test/masks",
            "Data_folder": "{data}/test/images", "Results_folder": "/results/embedseg_out"},
    # 6.1. reads its checkpoint from Prediction_model_folder even with "use the current
    # model", so both model folders are given
    predictions="embedseg_out/predictions/*.tif", prediction_section="6.1.", suite="bullseye")

WGAN = Recipe(
    config="WGAN_DL4Mic", notebook="WGAN_ZeroCostDL4Mic.ipynb",
    requirements="WGAN_requirements_simple.txt", framework="both",
    make_data=_super_resolution_data,
    params={"Training_source": "{data}/train/low", "Training_target": "{data}/train/high",
            "Model_name": "nbm_wgan", "Model_path": "/results", "Down_factor": 2,
            "Number_of_epochs": 1, "Use_Default_Advanced_Parameters": False,
            "Batch_size": 2, "Source_patch_size": 32, "Use_Data_augmentation": False,
            "Source_QC_folder": "{data}/test/low", "Target_QC_folder": "{data}/test/high",
            "Data_folder": "{data}/test/low", "Result_folder": "/results/predictions"},
    predictions="predictions/test_*.tif", prediction_section="6.1.", suite="bullseye",
    extra_pip=("pytorch-lightning==1.6.4",),
    workaround="the config's requirements_url names SplineDist 2D's requirements file, "
               "which lacks torch and torchvision: built with the notebook's own "
               "WGAN_requirements_simple.txt (--requirements), plus the "
               "pytorch-lightning==1.6.4 that its 1. pip-installs (hpc_dl4mic.extra_pip)")

DIFFUSION_SMLM = Recipe(
    config="Diffusion_SMLM_DL4Mic", notebook="Diffusion_Model_SMLM_ZeroCostDL4Mic.ipynb",
    requirements="Diffusion_model_SMLM_requirements.txt", framework="pytorch",
    make_data=_images_only,
    params={"Training_source": "{data}/train", "model_name": "nbm_diffusion",
            "model_path": "/results", "number_of_epochs": 2, "image_size": "32",
            "save_interval": 1, "Use_Default_Advanced_Parameters": False,
            # 6.1.'s image_sample.main builds its model with its own defaults (64 channels,
            # 1000 diffusion steps), so training must use them: GroupNorm(32) needs a
            # multiple of 32 anyway
            "number_of_diffusion_steps": 1000, "batch_size": 2, "num_channels": 64,
            "Saving_path_patches": "/results/patches",
            "Use_Data_augmentation": False, "Result_folder": "/results/generated",
            # 6.2. shows 8 of them, drawn from all but the last; a batch of 10 costs no
            # more than one sample (image_sample draws batches of 10)
            "num_samples": 10},
    predictions="generated/generated_image_*.tif", prediction_section="6.1.",
    suite="bullseye", skip_sections=("5.1.",),
    note="3.2. calls os.makedirs(Saving_path_patches) before looking at Save_patches, so "
         "its empty default fails (in Colab too): the recipe gives a folder. 5.1. (loss "
         "plot) left out: it looks for the loss CSV in model_path, while training writes "
         "progress.csv into model_path/model_name, so it opens a folder (IsADirectoryError, "
         "in Colab too), a bug of the notebook. Its 4.1. PDF report fails on a name it "
         "never defines (number_of_channels): the batch run records that and goes on")

RECIPES: dict[str, Recipe] = {r.config: r for r in (
    STARDIST_2D, DRMIME_2D, SPLINEDIST_2D, CARE_3D, DENOISEG, DEEP_STORM_2D, UNET_3D, DFCAN,
    EMBEDSEG, WGAN, DIFFUSION_SMLM)}
