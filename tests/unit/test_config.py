"""Loading, validating and normalising DL4MicEverywhere configuration files."""

from __future__ import annotations

from pathlib import Path

import pytest
from seeddata import CONFIGS, SEED_CONFIGS, config_paths

from hpc_dl4mic.catalogue.config import (
    SECTION_TOKEN,
    catalogue,
    load_config,
    parse_base,
    resolve_target,
)
from hpc_dl4mic.errors import ConfigError, InputError

BAD = Path(__file__).resolve().parent.parent / "data" / "bad_configs"

# file -> (key or fragment the one-line message must name, what is allowed / wrong)
BAD_CASES = {
    "config_is_list.yaml": ("config:", "not a mapping"),
    "cuda_version_bad_format.yaml": ("config.dl4miceverywhere.cuda_version", "11.8.0"),
    "cudnn_version_list.yaml": ("config.dl4miceverywhere.cudnn_version", "8.6.0.163"),
    "description_empty.yaml": ("config.dl4miceverywhere.description", "non-empty"),
    "empty_file.yaml": ("empty_file.yaml", "YAML mapping"),
    "hpc_accept_python_string.yaml": ("config.hpc_dl4mic.accept_system_python", "true or false"),
    "hpc_base_bad.yaml": ("config.hpc_dl4mic.base", "docker://IMAGE"),
    "hpc_block_unknown_key.yaml": ("config.hpc_dl4mic.gpus", "allowed: base"),
    "hpc_dockerfile_missing.yaml": ("config.hpc_dl4mic.dockerfile", "file not found"),
    "hpc_extra_pip_option.yaml": ("config.hpc_dl4mic.extra_pip", "options are not allowed"),
    "hpc_ports_bad.yaml": ("config.hpc_dl4mic.extra_ports", "1-65535"),
    "missing_cuda_version.yaml": ("config.dl4miceverywhere.cuda_version", "required"),
    "missing_notebook_url.yaml": ("config.dl4miceverywhere.notebook_url", "required"),
    "missing_sections_to_remove.yaml": ("config.dl4miceverywhere.sections_to_remove", "required"),
    "misspelt_key.yaml": ("config.dl4miceverywhere.cuda_verison", "did you mean cuda_version"),
    "no_config_block.yaml": ("config:", "config.dl4miceverywhere"),
    "no_dl4miceverywhere_block.yaml": ("config.dl4miceverywhere", "missing"),
    "not_utf8.yaml": ("not_utf8.yaml", "UTF-8"),
    "not_yaml.yaml": ("not valid YAML", "not_yaml.yaml:3:1:"),
    "notebook_url_not_url.yaml": ("config.dl4miceverywhere.notebook_url", "URL"),
    "notebook_version_bool.yaml": ("config.dl4miceverywhere.notebook_version", "version string"),
    "python_version_bad.yaml": ("config.dl4miceverywhere.python_version", "'3.10'"),
    "python_version_two.yaml": ("config.dl4miceverywhere.python_version", "'3.10'"),
    "python_version_unquoted.yaml": ("config.dl4miceverywhere.python_version", "quoted"),
    "sections_bad_token.yaml": ("config.dl4miceverywhere.sections_to_remove", "'1.1'"),
    "sections_letters.yaml": ("config.dl4miceverywhere.sections_to_remove", "'A.'"),
    "sections_mapping.yaml": ("config.dl4miceverywhere.sections_to_remove", "space-separated"),
    "tabs_indent.yaml": ("not valid YAML", "tabs_indent.yaml:2:"),
    "top_level_list.yaml": ("top_level_list.yaml", "YAML mapping"),
    "ubuntu_unquoted_float.yaml": ("config.dl4miceverywhere.ubuntu_version", "'22.04'"),
    "ubuntu_unsupported.yaml": ("config.dl4miceverywhere.ubuntu_version", "'20.04', '22.04'"),
    "unknown_cuda_combination.yaml": ("config.dl4miceverywhere.cuda_version",
                                      "config.hpc_dl4mic.base"),
}


def test_configs_folder_holds_the_32_real_configs_with_the_same_layout():
    shipped = {p.relative_to(CONFIGS) for p in config_paths()}
    seed = {p.relative_to(SEED_CONFIGS) for p in SEED_CONFIGS.glob("*/*/configuration.yaml")}
    assert len(shipped) == 32
    assert shipped == seed
    for rel in shipped:
        assert (CONFIGS / rel).read_bytes() == (SEED_CONFIGS / rel).read_bytes()


@pytest.mark.parametrize("path", config_paths(), ids=lambda p: p.parent.name)
def test_every_real_config_loads_and_is_normalised(path):
    cfg = load_config(path)
    assert isinstance(cfg.notebook_version, str) and cfg.notebook_version
    assert isinstance(cfg.python_version, str) and cfg.python_version.startswith("3.")
    assert isinstance(cfg.sections_to_remove, tuple)
    assert all(SECTION_TOKEN.match(t) for t in cfg.sections_to_remove)
    assert cfg.ubuntu_version in ("20.04", "22.04")
    assert len(cfg.sha256) == 64


def test_quirks_of_the_real_configs_are_survived():
    assert load_config(CONFIGS / "External_notebooks/FRUNet-Exosomes/configuration.yaml") \
        .sections_to_remove == ()
    assert load_config(CONFIGS / "ZeroCostDL4Mic_notebooks/Diffusion_SMLM_DL4Mic/"
                                 "configuration.yaml").notebook_version == "1.12"
    assert load_config(CONFIGS / "ZeroCostDL4Mic_notebooks/U-Net_2D_Multilabel_DL4Mic/"
                                 "configuration.yaml").notebook_version == "2.2,0"
    care = load_config(CONFIGS / "ZeroCostDL4Mic_notebooks/CARE_2D_DL4Mic/configuration.yaml")
    assert care.sections_to_remove == ("1.1.", "1.2.", "2.", "6.3.")


def test_configs_without_top_level_name_use_the_folder_name():
    sisr = resolve_target("SISR_Metric_Calculation")
    assert sisr.title == "SISR_Metric_Calculation"


def test_catalogue_lists_32_names_sorted_case_insensitively():
    names = [e.name for e in catalogue()]
    assert len(names) == 32
    assert names == sorted(names, key=str.lower)


@pytest.mark.parametrize("query,name", [
    ("CARE_2D_DL4Mic", "CARE_2D_DL4Mic"), ("care_2d_dl4mic", "CARE_2D_DL4Mic"),
    ("care_2", "CARE_2D_DL4Mic"), ("u-net_3d", "U-Net_3D_DL4Mic"),
    ("StarDist_2", "StarDist_2D_DL4Mic"),
])
def test_target_by_name_is_case_insensitive_and_accepts_unique_prefixes(query, name):
    assert resolve_target(query).name == name


def test_ambiguous_prefix_lists_the_candidates():
    with pytest.raises(InputError, match="ambiguous: CARE_2D_DL4Mic, CARE_3D_DL4Mic"):
        resolve_target("care")


def test_unknown_name_suggests_close_names():
    with pytest.raises(InputError, match="did you mean"):
        resolve_target("CARE_2D_DL4Mc")


def test_target_by_path_to_file_or_folder(tmp_path):
    src = CONFIGS / "ZeroCostDL4Mic_notebooks/CARE_2D_DL4Mic/configuration.yaml"
    assert resolve_target(str(src)).name == "CARE_2D_DL4Mic"
    assert resolve_target(str(src.parent)).name == "CARE_2D_DL4Mic"
    with pytest.raises(InputError, match="no such configuration file"):
        resolve_target(str(tmp_path / "missing.yaml"))


def test_bad_config_catalogue_is_complete():
    assert len(BAD_CASES) >= 20
    assert {p.name for p in BAD.glob("*.yaml")} == set(BAD_CASES)


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_config_gives_one_line_naming_file_and_key(name):
    key, allowed = BAD_CASES[name]
    with pytest.raises(ConfigError) as info:
        load_config(BAD / name)
    message = str(info.value)
    assert "\n" not in message
    assert str(BAD / name) in message or name in message
    assert key in message
    assert allowed in message


def test_hpc_block_is_read_and_paths_are_relative_to_the_config(tmp_path):
    cfg = load_config(Path(__file__).resolve().parent.parent / "data" / "custom_dockerfile"
                      / "configuration.yaml")
    assert cfg.hpc.dockerfile is not None and cfg.hpc.dockerfile.is_file()
    assert cfg.hpc.extra_ports == (6006,)
    assert cfg.hpc.extra_pip == ("tensorboard==2.15.1",)


@pytest.mark.parametrize("text,kind,ref", [
    ("docker://nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04", "docker",
     "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"),
    ("localimage:/srv/base.sif", "localimage", "/srv/base.sif"),
    ("debootstrap:bookworm", "debootstrap", "bookworm"),
])
def test_base_forms(text, kind, ref):
    base = parse_base(text)
    assert (base.kind, base.ref) == (kind, ref)
    assert str(base) == text


def test_debootstrap_base_with_mirror():
    base = parse_base("debootstrap:bookworm@http://mirror.example/debian")
    assert base.mirror == "http://mirror.example/debian"


@pytest.mark.parametrize("text", ["ubuntu:22.04", "docker://", "debootstrap:Book worm", ""])
def test_bad_base_is_an_input_error_naming_the_forms(text):
    with pytest.raises(InputError, match="docker://IMAGE"):
        parse_base(text) if "Book" not in text else parse_base("nonsense:" + text)
