"""Data specs: the one string that says what to train on.

Grammar::

    UNION  := SPEC ("+" SPEC)*
    SPEC   := BUILTIN [":" CLASSES] ["@" SPLIT] | PATH
    CLASSES:= NAME ("," NAME)*

Examples: ``mnist``, ``mnist:0,1``, ``fashion-mnist@test``, ``emoji:Animals,Food``,
``openclipart:shapes``, ``./data/102flowers``, ``openclipart+icons``. A spec that is not a
built-in name is read as a path to an image folder (flat, or one sub-folder per class). A union
holds the images of all its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import GanMemoryError

BUILTIN_NAMES = ("mnist", "fashion-mnist", "emoji", "openclipart", "icons")


@dataclass(frozen=True)
class DataSpec:
    kind: str  # "builtin" or "folder"
    name: str  # built-in name, or the folder path as given
    classes: tuple[str, ...] | None = None  # None: every class
    split: str | None = None  # None: the dataset's default split

    def __str__(self) -> str:
        if self.kind == "folder":
            return self.name
        out = self.name
        if self.classes:
            out += ":" + ",".join(self.classes)
        if self.split:
            out += "@" + self.split
        return out


def parse_spec(text: str) -> DataSpec:
    """Parse a data spec; raise :class:`GanMemoryError` naming the spec when it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise GanMemoryError("empty data spec: give a built-in dataset "
                             f"({', '.join(BUILTIN_NAMES)}) or a path to an image folder")
    text = text.strip()
    head = text.split("@", 1)[0].split(":", 1)[0]
    if head in BUILTIN_NAMES:
        rest = text[len(head):]
        split = None
        if "@" in rest:
            rest, split = rest.split("@", 1)
            if not split:
                raise GanMemoryError(f"data spec '{text}': empty split after '@'")
        classes = None
        if rest.startswith(":"):
            names = tuple(c.strip() for c in rest[1:].split(","))
            if not names or any(not c for c in names):
                raise GanMemoryError(f"data spec '{text}': empty class name in the list after ':'")
            classes = names
        elif rest:
            raise GanMemoryError(f"data spec '{text}': unexpected '{rest}' after '{head}'")
        return DataSpec("builtin", head, classes, split)
    looks_like_path = ("/" in text) or text.startswith(".") or Path(text).exists()
    if not looks_like_path:
        raise GanMemoryError(
            f"unknown dataset '{text}': not a built-in dataset ({', '.join(BUILTIN_NAMES)}) "
            "and no folder of that name exists")
    return DataSpec("folder", text)


def parse_union(text: str) -> tuple[DataSpec, ...]:
    """Parse a ``+``-joined union of specs (one spec gives a one-tuple). An existing path is
    one folder even if its name holds a ``+``."""
    if isinstance(text, str) and "+" in text and not Path(text.strip()).exists():
        parts = tuple(parse_spec(t) for t in text.split("+"))
        names = [str(p) for p in parts]
        if len(set(names)) != len(names):
            raise GanMemoryError(f"data spec '{text.strip()}': a part is listed twice")
        return parts
    return (parse_spec(text),)
