#!/usr/bin/env python3
"""Builds dist/flexsp-<version>-py3-none-<platform>.whl: the runtime package with the planner inside.

The planner (`flexsp`, Swift) is linked with the Swift standard library and Foundation statically
(`--static-swift-stdlib`) and with COIN-OR CBC and CLP, their COIN-OR dependencies, reference
LAPACK/BLAS, zlib and bzip2 statically from Debian's archives (a pkg-config directory of our own
points the link at a folder that holds only those archives). LAPACK's Fortran runtime
(libgfortran, libquadmath) has no usable static archive here and libquadmath is LGPL, so those two
are bundled as shared libraries next to the binary, found through its `$ORIGIN` DT_RPATH (an RPATH,
not a RUNPATH, so that it also applies to libgfortran's own libquadmath dependency). What remains
dynamic is glibc, libstdc++ and libgcc_s, which every manylinux system provides; the script stops
if `ldd` shows anything else.

The wheel itself is setuptools' pure wheel of python/ (metadata, the `flexsp` console script),
repacked with the planner under flexsp/_planner/, the licence of everything linked into it or
bundled under the .dist-info's licenses/, a platform tag from the newest glibc symbol version the
binaries need, and a fresh RECORD. Usage: build-wheel.py [--python PY] [--out dist].
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".build" / "wheel"
DEPS = ROOT / ".build" / "wheel-deps"
MULTIARCH = Path("/usr/lib/x86_64-linux-gnu")

# Linked statically, in link order (each archive before the ones it uses).
STATIC_ARCHIVES = ["CbcSolver", "Cbc", "Cgl", "OsiClp", "ClpSolver", "Clp", "Osi", "CoinUtils",
                   "lapack", "blas", "bz2", "z"]
# Shared libraries every manylinux platform provides (PEP 600's baseline); anything else the
# binary needs must be bundled.
SYSTEM_LIBRARIES = re.compile(r"^(?:/\S*/)?(linux-vdso|ld-linux-x86-64|libc|libm|libpthread|librt|libdl|"
                              r"libutil|libstdc\+\+|libgcc_s)\.so")
BUNDLED = ["libgfortran.so.5", "libquadmath.so.0"]


def run(command: list[str], **kwargs) -> str:
    return subprocess.run(command, check=True, text=True, stdout=subprocess.PIPE, **kwargs).stdout


def debian_package(path: Path) -> str:
    """The Debian package that installed `path` (after resolving alternatives' symlinks)."""
    return run(["dpkg", "-S", str(path.resolve())]).split(":", 1)[0]


def static_link_setup() -> None:
    """A folder with only the static archives (so `-lCbc` finds libCbc.a, not libCbc.so) and
    cbc.pc/clp.pc that put it first and name every archive in link order."""
    libs = DEPS / "lib"
    shutil.rmtree(DEPS, ignore_errors=True)
    libs.mkdir(parents=True)
    for name in STATIC_ARCHIVES:
        archive = MULTIARCH / f"lib{name}.a"
        if not archive.exists():
            sys.exit(f"build-wheel: {archive} is missing: the static archives come with Debian's "
                     "-dev packages (apt-get install coinor-libcbc-dev zlib1g-dev)")
        (libs / archive.name).symlink_to(archive.resolve())
    # LAPACK is Fortran: its runtime is linked dynamically and bundled (see the docstring).
    (libs / "libgfortran.so").symlink_to(MULTIARCH / "libgfortran.so.5")
    cflags = run(["pkg-config", "--cflags", "cbc", "clp"]).strip()
    link = " ".join(f"-l{name}" for name in STATIC_ARCHIVES) + " -lgfortran -lpthread -lrt -lm"
    (DEPS / "pkgconfig").mkdir()
    for module in ("cbc", "clp"):
        (DEPS / "pkgconfig" / f"{module}.pc").write_text(
            f"Name: {module}\nDescription: COIN-OR {module}, static (flexsp wheel)\n"
            f"Version: 0\nLibs: -L{libs} {link}\nCflags: {cflags}\n")


def build_planner() -> Path:
    static_link_setup()
    env = dict(os.environ, PKG_CONFIG_PATH=str(DEPS / "pkgconfig"))
    subprocess.run(["swift", "build", "-c", "release", "--product", "flexsp",
                    "--scratch-path", str(SCRATCH), "--static-swift-stdlib",
                    "-Xlinker", "--disable-new-dtags"], check=True, cwd=ROOT, env=env)
    return SCRATCH / "release" / "flexsp"


def needed_libraries(binary: Path) -> dict[str, str]:
    """soname -> resolved path, from ldd."""
    found = {}
    for line in run(["ldd", str(binary)]).splitlines():
        match = re.match(r"\s*(\S+)(?: => (\S+))?", line)
        if match:
            found[match.group(1)] = match.group(2) or ""
    return found


def glibc_tag(files: list[Path]) -> str:
    """manylinux_2_N_x86_64 for the newest GLIBC_2.N symbol version any of `files` needs."""
    newest = 17
    for path in files:
        for minor in re.findall(r"GLIBC_2\.(\d+)", run(["objdump", "-T", str(path)])):
            newest = max(newest, int(minor))
    return f"manylinux_2_{newest}_x86_64"


def stage_planner(binary: Path, planner_dir: Path, licenses: Path) -> list[Path]:
    """Copies the stripped binary and its bundled libraries into planner_dir and every licence
    into licenses; returns the ELF files staged."""
    planner_dir.mkdir(parents=True)
    licenses.mkdir(parents=True)
    staged = planner_dir / "flexsp"
    shutil.copy2(binary, staged)
    run(["strip", "--strip-unneeded", str(staged)])
    elves = [staged]
    needed = needed_libraries(binary)
    unexpected = [name for name in needed
                  if not SYSTEM_LIBRARIES.match(name) and name not in BUNDLED]
    if unexpected:
        sys.exit(f"build-wheel: the planner still links {', '.join(unexpected)} dynamically; "
                 "expected only glibc, libstdc++, libgcc_s and " + ", ".join(BUNDLED))
    static_packages = {debian_package(MULTIARCH / f"lib{name}.a") for name in STATIC_ARCHIVES}
    bundled_packages = set()
    for name in BUNDLED:
        if name in needed:
            source = Path(needed[name])
            shutil.copy2(source.resolve(), planner_dir / name)
            elves.append(planner_dir / name)
            bundled_packages.add(debian_package(source))
    for package in sorted(static_packages | bundled_packages):
        shutil.copy2(Path("/usr/share/doc") / package / "copyright",
                     licenses / f"{package}.copyright")
    swift = Path(shutil.which("swift") or "swift").resolve()
    shutil.copy2(swift.parents[1] / "share" / "swift" / "LICENSE.txt", licenses / "swift.LICENSE.txt")
    shutil.copy2(SCRATCH / "checkouts" / "swift-argument-parser" / "LICENSE.txt",
                 licenses / "swift-argument-parser.LICENSE.txt")
    # Static Foundation carries ICU's code and data (swift-foundation-icu); the toolchain ships no
    # licence file for it, so the wheel takes upstream ICU's terms from Debian's ICU package.
    icu = sorted(Path("/usr/share/doc").glob("libicu[0-9]*/copyright"))
    if not icu:
        sys.exit("build-wheel: no ICU licence found (/usr/share/doc/libicu*/copyright); "
                 "install Debian's libicu package so the wheel can carry ICU's licence")
    shutil.copy2(icu[-1], licenses / "icu.copyright")
    (licenses / "README").write_text(
        "flexsp/_planner/flexsp, the planner, contains, linked statically: the Swift standard\n"
        "library and Foundation (swift.LICENSE.txt) with the ICU code and data Foundation uses\n"
        "(icu.copyright: upstream ICU's licence, as Debian ships it), swift-argument-parser\n"
        "(swift-argument-parser.LICENSE.txt), and the code of the Debian packages\n"
        + ", ".join(sorted(static_packages)) + ".\n"
        "Bundled next to it as shared libraries, from " + ", ".join(sorted(bundled_packages))
        + ": " + ", ".join(n for n in BUNDLED if n in needed) + ".\n"
        "Each <package>.copyright is that Debian package's copyright file.\n")
    return elves


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(pure: Path, extra: Path, tag: str, out_dir: Path) -> Path:
    """The pure wheel plus every file under `extra` (paths relative to it), as a platform wheel."""
    name, version = pure.name.split("-")[:2]
    dist_info = f"{name}-{version}.dist-info"
    out = out_dir / f"{name}-{version}-py3-none-{tag}.whl"
    records = []
    with zipfile.ZipFile(pure) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        def add(arcname: str, data: bytes, mode: int = 0o644) -> None:
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
            records.append(record_line(arcname, data))
        for item in source.infolist():
            if item.filename in (f"{dist_info}/RECORD", f"{dist_info}/WHEEL"):
                continue
            add(item.filename, source.read(item))
        for path in sorted(p for p in extra.rglob("*") if p.is_file()):
            add(path.relative_to(extra).as_posix(), path.read_bytes(),
                0o755 if os.access(path, os.X_OK) else 0o644)
        add(f"{dist_info}/WHEEL", (
            "Wheel-Version: 1.0\nGenerator: flexsp build-wheel.py\nRoot-Is-Purelib: false\n"
            f"Tag: py3-none-{tag}\n").encode())
        records.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        wheel.writestr(info, "\n".join(records) + "\n", zipfile.ZIP_DEFLATED)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable,
                        help="a Python with pip and setuptools>=61 (builds the pure wheel)")
    parser.add_argument("--out", default=str(ROOT / "dist"))
    args = parser.parse_args()
    if sys.platform != "linux" or platform.machine() != "x86_64":
        sys.exit(f"build-wheel: builds Linux x86_64 wheels only (Debian's multiarch archives); "
                 f"this is {sys.platform} {platform.machine()}")
    binary = build_planner()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flexsp-wheel-") as tmp:
        tmp = Path(tmp)
        # A copy of python/, so that setuptools' build/ and egg-info stay out of the checkout.
        source = tmp / "src"
        shutil.copytree(ROOT / "python", source, ignore=shutil.ignore_patterns(
            "tests", "__pycache__", "*.egg-info", "build"))
        # The Python's own setuptools when it has one (no index needed), else pip fetches it.
        has_setuptools = subprocess.run([args.python, "-c", "import setuptools"],
                                        capture_output=True).returncode == 0
        subprocess.run([args.python, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        *(["--no-build-isolation"] if has_setuptools else []),
                        "-w", str(tmp / "pure"), str(source)], check=True)
        pure = next((tmp / "pure").glob("flexsp-*.whl"))
        version = pure.name.split("-")[1]
        extra = tmp / "extra"
        elves = stage_planner(binary, extra / "flexsp" / "_planner",
                              extra / f"flexsp-{version}.dist-info" / "licenses")
        tag = glibc_tag(elves)
        for old in out_dir.glob("flexsp-*.whl"):
            old.unlink()
        wheel = repack(pure, extra, tag, out_dir)
    print(f"build-wheel: {wheel.relative_to(ROOT) if wheel.is_relative_to(ROOT) else wheel} "
          f"({wheel.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
