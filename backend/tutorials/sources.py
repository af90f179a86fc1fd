"""YAML read with its line numbers, so that every content problem names ``path:line``."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

Loc = tuple[int | str, ...]

FRONT_MATTER = "---"
# Markdown images, ![text](target).
IMAGE = re.compile(r"!\[[^\]]*\]\((?P<target>[^)]*)\)")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a content file, at a line (1-based) of that file."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def dotted(loc: Loc) -> str:
    """``("figures", 0, "id")`` -> ``figures[0].id``: a field as an author would look for it."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _message(error: ErrorDetails) -> str:
    """A pydantic error in an author's words, prefixed by the field it is about."""
    where = dotted(error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    if error["type"] == "missing":
        return f"missing field {where!r}"
    text = error["msg"].removeprefix("Value error, ")
    return f"{where}: {text}" if where else text


@dataclass(frozen=True)
class Source:
    """A YAML document of a content file: its data, its node tree, and its first line's offset."""

    path: str
    data: Any
    node: yaml.Node | None
    # Lines of the file above the YAML text: 1 for a lesson's front matter (its opening ---).
    offset: int = 0

    def line(self, loc: Loc) -> int:
        """The file line of the key or item ``loc`` names, or of the nearest one that exists."""
        node = self.node
        if node is None:
            return self.offset + 1
        line = node.start_mark.line
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = [(k, v) for k, v in node.value if getattr(k, "value", None) == str(part)]
                if not found:
                    break  # a missing field: the mapping that lacks it
                key, node = found[-1]  # the value YAML kept when a key repeats
                # The key's line: a block value (a list, a mapping) starts on the line below.
                line = key.start_mark.line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line
            else:
                break
        return self.offset + line + 1

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at the line of ``loc``."""
        return Problem(self.path, self.line(loc), message)

    def invalid(self, error: ValidationError) -> list[Problem]:
        """Each error of a pydantic validation, at the line of the field it is about."""
        return [self.problem(e["loc"], _message(e)) for e in error.errors()]


def _duplicate_keys(node: yaml.Node | None) -> list[tuple[int, str]]:
    """``(line, key)`` of each key a mapping repeats (YAML loaders keep the last silently)."""
    found: list[tuple[int, str]] = []
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                name = str(getattr(key, "value", ""))
                if name in seen:
                    found.append((key.start_mark.line, name))
                seen.add(name)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return sorted(found)


def parse_yaml(text: str, path: str, offset: int = 0) -> tuple[Source | None, list[Problem]]:
    """Parse one YAML document: its source, or no source and the syntax problem."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = offset + (mark.line + 1 if mark else 1)
        context = error.context or ""
        if error.context_mark and error.context and error.context_mark.line + offset + 1 != line:
            # An unclosed quote or bracket fails at the end: say where it was opened.
            context += f" (from line {error.context_mark.line + offset + 1})"
        what = ": ".join(part for part in (context, error.problem) if part)
        return None, [Problem(path, line, f"YAML syntax: {what or error}")]
    except yaml.YAMLError as error:
        # Not marked: a character YAML does not allow (ReaderError), which has a position.
        position = getattr(error, "position", 0)
        line = offset + text[:position].count("\n") + 1
        return None, [Problem(path, line, f"YAML: {error}")]
    finally:
        loader.dispose()
    repeated = [
        Problem(path, offset + line + 1, f"duplicate key {name!r}")
        for line, name in _duplicate_keys(node)
    ]
    return Source(path, data, node, offset), repeated


def read_text(path: Path, rel: str) -> tuple[str | None, list[Problem]]:
    """A file's text with ``\\n`` line ends, or the line where it stops being UTF-8."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, [Problem(rel, raw[: error.start].count(b"\n") + 1, "not UTF-8 text")]
    return text.replace("\r\n", "\n"), []


def split_front_matter(text: str, rel: str) -> tuple[str, str, int] | Problem:
    """``(front matter, body, the body's first line)`` of a Markdown file, or what is wrong."""
    lines = text.split("\n")
    if lines[0].rstrip() != FRONT_MATTER:
        return Problem(rel, 1, "a lesson starts with front matter: a line '---'")
    end = next((i for i, line in enumerate(lines) if i and line.rstrip() == FRONT_MATTER), None)
    if end is None:
        return Problem(rel, 1, "the front matter is never closed by a line '---'")
    return "\n".join(lines[1:end]), "\n".join(lines[end + 1 :]), end + 2


def images(body: str, first_line: int) -> list[tuple[int, str]]:
    """``(line, target)`` of every Markdown image in ``body``, which starts at ``first_line``."""
    return [
        (number, match["target"].strip())
        for number, line in enumerate(body.split("\n"), start=first_line)
        for match in IMAGE.finditer(line)
    ]
