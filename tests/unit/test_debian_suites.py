"""Offline Python fidelity: the Debian suite whose python3 is the config's python_version
(3.9 bullseye, 3.11 bookworm, 3.13 trixie), for `base` and the `debootstrap` base; other
versions are an error saying which bases would do."""

from __future__ import annotations

import pytest

from hpc_dl4mic.catalogue.config import (
    Base,
    catalogue,
    debian_suite_for,
    load_config,
    parse_base,
    resolve_target,
)
from hpc_dl4mic.errors import ConfigError, InputError
from hpc_dl4mic.images.render import make_spec, render_definition
from hpc_dl4mic.images.targets import base_suite


def test_the_suite_of_each_python():
    assert [debian_suite_for(v) for v in ("3.9", "3.11", "3.13", "3.10")] == [
        "bullseye", "bookworm", "trixie", None]


def test_nineteen_configs_get_their_own_python_from_a_debian_base():
    configs = [load_config(e.path, name=e.name, group=e.group) for e in catalogue()]
    fitting = [c.name for c in configs if debian_suite_for(c.python_version)]
    assert len(configs) == 32 and len(fitting) == 19


def test_a_bare_debootstrap_base_takes_the_suite_of_the_configs_python():
    assert parse_base("debootstrap") == Base("debootstrap", "")
    care = resolve_target("CARE_3D_DL4Mic")
    assert care.python_version == "3.9"
    spec = make_spec(care, base=parse_base("debootstrap:"))
    assert spec.base.ref == "bullseye" and spec.python == "3.9"
    assert "OSVersion: bullseye" in render_definition(spec)


def test_a_python_no_suite_has_names_the_bases_that_would_do():
    config = next(c for c in (load_config(e.path, name=e.name, group=e.group)
                              for e in catalogue()) if c.python_version == "3.10")
    with pytest.raises(ConfigError, match=r"3\.10: no Debian suite has it .*3\.9 "
                                          r"\(debootstrap:bullseye\).*docker://"):
        make_spec(config, base=parse_base("debootstrap"))
    with pytest.raises(ConfigError, match="use --base debootstrap:bullseye"):
        make_spec(resolve_target("CARE_3D_DL4Mic"), base=parse_base("debootstrap:bookworm"))


def test_base_picks_its_suite_from_python_or_a_target():
    assert base_suite() == "bookworm"
    assert base_suite(python="3.13") == "trixie"
    assert base_suite(target="CARE_3D_DL4Mic") == "bullseye"
    assert base_suite("bookworm") == "bookworm"
    with pytest.raises(InputError, match="--python 3.8: no Debian suite has Python 3.8"):
        base_suite(python="3.8")
    with pytest.raises(InputError, match="--suite and --python: give one of"):
        base_suite("bookworm", python="3.9")


def _base_sif(tmp_path, suite: str | None):
    import json

    sif = tmp_path / f"debian-{suite}-base-0123.sif"
    sif.write_bytes(b"not really a sif")
    if suite:
        (tmp_path / f"debian-{suite}-base-0123.json").write_text(json.dumps(dict(
            name=f"debian-{suite}-base", key="k" * 64, sha256="a" * 64,
            size=sif.stat().st_size, created=0.0, base=f"debootstrap:{suite}",
            tool_version="0", labels={"org.hpc-dl4mic.debian-suite": suite}, inputs={})))
    return sif


def test_a_localimage_base_from_hpc_dl4mic_base_brings_its_suites_python(tmp_path):
    from hpc_dl4mic.images.inputs import prepare_notebook_image

    care = resolve_target("CARE_3D_DL4Mic")  # asks for 3.9
    from seeddata import COLAB_NOTEBOOKS

    nb = COLAB_NOTEBOOKS / "CARE_3D_ZeroCostDL4Mic.ipynb"
    req = tmp_path / "req.txt"
    req.write_text("tifffile\n")
    bullseye = _base_sif(tmp_path, "bullseye")
    inputs = prepare_notebook_image(care, notebook=nb, requirements=req,
                                    base=f"localimage:{bullseye}")
    assert inputs.inputs["base-sha256"] == "a" * 64  # the record's digest, read once
    bookworm = _base_sif(tmp_path, "bookworm")
    with pytest.raises(ConfigError, match=r"3\.9 is not available .* \(it has Python 3\.11\)"):
        prepare_notebook_image(care, notebook=nb, requirements=req,
                               base=f"localimage:{bookworm}")
    (tmp_path / "site").mkdir()
    unknown = _base_sif(tmp_path / "site", None)  # a site's SIF: no record
    with pytest.raises(ConfigError, match=r"it has Python 3\.11"):  # taken to be bookworm's
        prepare_notebook_image(care, notebook=nb, requirements=req,
                               base=f"localimage:{unknown}")
