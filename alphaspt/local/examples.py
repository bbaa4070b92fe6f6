"""``alphaspt init DIR``: the example manifests and replay file, shipped in the package.

The files are package data (``alphaspt/local/example_manifests``, the clone's ``examples/``),
so ``init`` works from an installed wheel anywhere, without a clone.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from alphaspt.exceptions import InvalidConfiguration

PACKAGE = "alphaspt.local"
DATA_DIR = "example_manifests"


def example_files() -> dict[str, bytes]:
    """Relative path → content of every shipped example (YAML manifests, replay CSV)."""
    root = resources.files(PACKAGE) / DATA_DIR
    found: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, f"{rel}/")
            elif child.name.endswith((".yaml", ".yml", ".csv")):
                found[rel] = child.read_bytes()

    walk(root, "")
    return found


def write_examples(directory: Path) -> list[Path]:
    """Write the examples into ``directory`` (created if needed); refuses to overwrite."""
    files = example_files()
    if not files:
        raise InvalidConfiguration("this installation ships no examples (broken package?)")
    clashes = sorted(str(directory / rel) for rel in files if (directory / rel).exists())
    if clashes:
        raise InvalidConfiguration(
            f"{clashes[0]} exists already; choose an empty or new directory")
    written = []
    for rel, content in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written
