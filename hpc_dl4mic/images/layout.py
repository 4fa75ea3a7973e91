"""The build-context layout: where each input file sits, relative to the context folder.

Used by the recipes (:mod:`.render`), the context writers (:mod:`.context`) and the build
inputs (:mod:`.inputs`), so the three always agree::

    DIR/<name>.def            Apptainer definition
    DIR/Dockerfile            Dockerfile (docker:// bases)
    DIR/notebooks/*.ipynb     the notebooks, copied to /opt/hpc-dl4mic/notebooks/
    DIR/requirements.txt      the requirements file
    DIR/ca-certs/*.crt        site CA certificates
"""

from __future__ import annotations

NOTEBOOKS = "notebooks"
CA_CERTS = "ca-certs"
REQUIREMENTS = "requirements.txt"
DOCKERFILE = "Dockerfile"


def notebook_file(name: str) -> str:
    """Context path of a notebook."""
    return f"{NOTEBOOKS}/{name}"


def ca_cert_file(name: str) -> str:
    """Context path of a CA certificate."""
    return f"{CA_CERTS}/{name}"


def definition_file(image_name: str) -> str:
    """Context path of the Apptainer definition of ``image_name``."""
    return f"{image_name}.def"


def notebook_names_in(files: dict[str, bytes] | list[str]) -> list[str]:
    """The notebook names among context paths."""
    prefix = f"{NOTEBOOKS}/"
    return [path[len(prefix):] for path in files if path.startswith(prefix)]
