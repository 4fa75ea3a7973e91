"""Small synthetic microscopy data for running the real notebooks headless (CI tier and
bench/notebook_matrix.py), written without numpy: the test venv has none.

`write_tiff` writes uncompressed grayscale TIFFs (one page per plane: a stack is a
multi-page file with an ImageJ description, so tifffile reads it as (Z, Y, X)). The
generators draw bright discs ("nuclei") on a noisy background, seeded, so the same call
always gives the same bytes."""

from __future__ import annotations

import os
import random
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

_TYPES = {"uint8": ("B", 8), "uint16": ("H", 16)}


@dataclass
class Plane:
    """One 2D image: row-major pixels in an ``array`` of the dtype's typecode."""

    width: int
    height: int
    dtype: str
    pixels: array

    @classmethod
    def zeros(cls, width: int, height: int, dtype: str = "uint8") -> Plane:
        code = _TYPES[dtype][0]
        return cls(width, height, dtype, array(code, bytes(width * height * array(code).itemsize)))

    def get(self, x: int, y: int) -> int:
        return self.pixels[y * self.width + x]


def write_tiff(path: str | os.PathLike, planes: list[Plane]) -> Path:
    """Write ``planes`` (same size and dtype) as one little-endian TIFF; several planes make
    a stack. Written to a temporary name, then renamed."""
    if not planes:
        raise ValueError("write_tiff: no planes")
    first = planes[0]
    if any((p.width, p.height, p.dtype) != (first.width, first.height, first.dtype)
           for p in planes):
        raise ValueError("write_tiff: planes differ in size or dtype")
    bits = _TYPES[first.dtype][1]
    description = (f"ImageJ=1.11a\nimages={len(planes)}\nslices={len(planes)}\n\0".encode()
                   if len(planes) > 1 else b"")
    out = bytearray(b"II*\0" + struct.pack("<I", 0))
    ifd_offsets = []
    for plane in planes:
        data = plane.pixels
        if data.itemsize > 1 and struct.pack("=H", 1) != struct.pack("<H", 1):
            data = array(data.typecode, data)
            data.byteswap()
        strip = len(out)
        out += data.tobytes()
        desc_at = 0
        if description:
            desc_at = len(out)
            out += description
        if len(out) % 2:
            out += b"\0"
        tags = [(256, 4, 1, plane.width), (257, 4, 1, plane.height), (258, 3, 1, bits),
                (259, 3, 1, 1), (262, 3, 1, 1)]
        if description:
            tags.append((270, 2, len(description), desc_at))
        tags += [(273, 4, 1, strip), (277, 3, 1, 1), (278, 4, 1, plane.height),
                 (279, 4, 1, len(data) * data.itemsize), (284, 3, 1, 1), (339, 3, 1, 1)]
        ifd_offsets.append(len(out))
        out += struct.pack("<H", len(tags))
        for tag, kind, count, value in tags:
            packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, count) + packed
        out += struct.pack("<I", 0)  # next IFD, patched below
    struct.pack_into("<I", out, 4, ifd_offsets[0])
    for here, nxt in zip(ifd_offsets, ifd_offsets[1:]):
        count = struct.unpack_from("<H", out, here)[0]
        struct.pack_into("<I", out, here + 2 + 12 * count, nxt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(bytes(out))
    os.replace(tmp, path)
    return path


def read_tiff_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """(pages, width, height) of a TIFF (any byte order): enough to check a prediction."""
    data = Path(path).read_bytes()
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack_from(order + "H", data, 2)[0] != 42:
        raise ValueError(f"{path}: not a TIFF")
    offset = struct.unpack_from(order + "I", data, 4)[0]
    pages, size = 0, (0, 0)
    while offset:
        count = struct.unpack_from(order + "H", data, offset)[0]
        found = {}
        for i in range(count):
            tag, kind, _n, raw = struct.unpack_from(order + "HHI4s", data, offset + 2 + 12 * i)
            if tag in (256, 257):
                found[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), raw)[0]
        if pages == 0:
            size = (found.get(256, 0), found.get(257, 0))
        pages += 1
        offset = struct.unpack_from(order + "I", data, offset + 2 + 12 * count)[0]
    return pages, size[0], size[1]


@dataclass
class Disc:
    x: float
    y: float
    z: float
    r: float
    brightness: int


def _discs(rng: random.Random, size: int, depth: int, count: int) -> list[Disc]:
    r_min, r_max = max(3.0, size / 20), max(5.0, size / 10)
    return [Disc(rng.uniform(r_max, size - r_max), rng.uniform(r_max, size - r_max),
                 rng.uniform(0, depth - 1) if depth > 1 else 0.0, rng.uniform(r_min, r_max),
                 rng.randint(140, 230)) for _ in range(count)]


def _render(discs: list[Disc], size: int, depth: int, z: int, *, dx: float = 0.0,
            dy: float = 0.0, noise: float, rng: random.Random,
            labels: bool = False, binary: bool = False, dtype: str = "uint8") -> Plane:
    plane = Plane.zeros(size, size, "uint16" if labels else dtype)
    px = plane.pixels
    if not labels and not binary:
        for i in range(size * size):
            px[i] = max(0, min(255, int(20 + rng.gauss(0, noise))))
    for index, d in enumerate(discs, start=1):
        rz = d.r * 0.6 if depth > 1 else d.r
        dz = (z - d.z) if depth > 1 else 0.0
        if abs(dz) >= rz:
            continue
        r = (rz * rz - dz * dz) ** 0.5 * (d.r / rz)
        cx, cy = d.x + dx, d.y + dy
        for y in range(max(0, int(cy - r)), min(size, int(cy + r) + 2)):
            for x in range(max(0, int(cx - r)), min(size, int(cx + r) + 2)):
                if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                    i = y * size + x
                    if labels:
                        px[i] = index
                    elif binary:
                        px[i] = 255
                    else:
                        px[i] = max(0, min(255, int(d.brightness + rng.gauss(0, noise))))
    return plane


def blobs(seed: int, size: int = 128, depth: int = 1, count: int = 8, *,
          noise: float = 12.0) -> dict[str, list[Plane]]:
    """One scene: ``image`` (noisy uint8), ``clean`` (the same, nearly noise-free),
    ``labels`` (uint16 instance labels), ``mask`` (uint8 0/255), ``shifted`` (the noisy
    image moved by a few pixels: a registration pair); each a list of ``depth`` planes."""
    rng = random.Random(seed)
    discs = _discs(rng, size, depth, count)
    shift = (rng.uniform(2, 5), rng.uniform(-5, -2))
    scene: dict[str, list[Plane]] = {k: [] for k in ("image", "clean", "labels", "mask",
                                                     "shifted")}
    for z in range(depth):
        scene["image"].append(_render(discs, size, depth, z, noise=noise, rng=rng))
        scene["clean"].append(_render(discs, size, depth, z, noise=1.0, rng=rng))
        scene["labels"].append(_render(discs, size, depth, z, labels=True, noise=0, rng=rng))
        scene["mask"].append(_render(discs, size, depth, z, binary=True, noise=0, rng=rng))
        scene["shifted"].append(_render(discs, size, depth, z, dx=shift[0], dy=shift[1],
                                        noise=noise, rng=rng))
    return scene


def write_scenes(folders: dict[str, str | os.PathLike], count: int, *, seed: int = 0,
                 size: int = 128, depth: int = 1, blobs_per_image: int = 8,
                 prefix: str = "img") -> list[str]:
    """Write ``count`` scenes; ``folders`` maps a layer of :func:`blobs` (``image``,
    ``labels``, ...) to the folder its files go to (same file names in every folder, as the
    notebooks pair them by name). Returns the file names."""
    names = []
    for n in range(count):
        scene = blobs(seed * 1000 + n, size, depth, blobs_per_image)
        name = f"{prefix}_{n:02d}.tif"
        for layer, folder in folders.items():
            write_tiff(Path(folder) / name, scene[layer])
        names.append(name)
    return names


def write_smlm(tif: str | os.PathLike, csv: str | os.PathLike, *, frames: int = 10,
               size: int = 64, pixel_nm: float = 100.0, emitters: int = 12,
               seed: int = 0) -> int:
    """A single-molecule localisation movie: ``frames`` uint16 frames of ``size`` px with
    blinking Gaussian spots (sigma ~1.1 px) on an offset of 100 counts plus noise, and its
    ground truth as a ThunderSTORM-style CSV (``id,frame,x [nm],y [nm],sigma [nm],
    intensity [photon]``; frames count from 1). Returns the number of localisations."""
    rng = random.Random(seed)
    planes, rows = [], []
    for f in range(1, frames + 1):
        plane = Plane.zeros(size, size, "uint16")
        px = plane.pixels
        for i in range(size * size):
            px[i] = max(0, int(100 + rng.gauss(0, 4)))
        for _ in range(emitters):
            x, y = rng.uniform(2, size - 2), rng.uniform(2, size - 2)
            photons, sigma = rng.uniform(800, 1500), 1.1
            for yy in range(max(0, int(y) - 4), min(size, int(y) + 5)):
                for xx in range(max(0, int(x) - 4), min(size, int(x) + 5)):
                    d2 = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2
                    i = yy * size + xx
                    px[i] = min(65535, px[i] + int(photons / (6.2832 * sigma * sigma)
                                                   * 2.71828 ** (-d2 / (2 * sigma * sigma))))
            rows.append((f, x * pixel_nm, y * pixel_nm, sigma * pixel_nm, photons))
        planes.append(plane)
    write_tiff(tif, planes)
    lines = ['"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]"']
    lines += [f"{n},{f},{x:.2f},{y:.2f},{s:.2f},{p:.1f}"
              for n, (f, x, y, s, p) in enumerate(rows, start=1)]
    path = Path(csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return len(rows)


def downsample(plane: Plane, factor: int) -> Plane:
    """``plane`` averaged over ``factor`` x ``factor`` blocks (a low-resolution copy)."""
    w, h = plane.width // factor, plane.height // factor
    out = Plane.zeros(w, h, plane.dtype)
    for y in range(h):
        for x in range(w):
            total = sum(plane.get(x * factor + i, y * factor + j)
                        for j in range(factor) for i in range(factor))
            out.pixels[y * w + x] = total // (factor * factor)
    return out


def write_sr_pairs(low: str | os.PathLike, high: str | os.PathLike, count: int, *,
                   seed: int = 0, size: int = 128, factor: int = 2,
                   prefix: str = "img") -> list[str]:
    """Super-resolution pairs with the same names: ``high`` gets the nearly noise-free
    ``size`` px scene, ``low`` the noisy one averaged down by ``factor``."""
    names = []
    for n in range(count):
        scene = blobs(seed * 1000 + n, size)
        name = f"{prefix}_{n:02d}.tif"
        write_tiff(Path(high) / name, scene["clean"])
        write_tiff(Path(low) / name, [downsample(p, factor) for p in scene["image"]])
        names.append(name)
    return names
