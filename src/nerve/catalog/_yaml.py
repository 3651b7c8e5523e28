"""YAML loading that remembers the line of every mapping key, for errors that name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nerve.errors import CatalogError, Location


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows the 1-based line of each key (``lines``) and itself."""

    lines: dict[str, int]
    line: int


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.lines = {}
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise yaml.MarkedYAMLError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """A date or datetime; one that matches the pattern but not the calendar
    (``2026-13-01``) is an error at its line, not a crash."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a valid date ({exc})", node.start_mark,
        ) from exc


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


#: the bracket that closes the flow collection a syntax error was found in
_FLOW_CLOSE = {"while parsing a flow sequence": "]", "while parsing a flow mapping": "}"}


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; syntax errors become a CatalogError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogError([(Location(path), f"not UTF-8 text ({exc})")]) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        raise CatalogError([_syntax_error(path, text, exc)]) from exc
    except yaml.YAMLError as exc:
        raise CatalogError([(Location(path), f"invalid YAML: {exc}")]) from exc


def _syntax_error(path: Path, text: str, exc: yaml.MarkedYAMLError) -> tuple[Location, str]:
    """Where a YAML syntax error is, and what: the parser's problem, and what it was
    reading when it found it (``while scanning a quoted scalar at line 3, column 7``).

    A construct left open (a quote, a bracket) is only found at the end of the file; the
    problem's own place is then the last line, which says nothing, so the error points
    at the start of the construct instead."""
    mark, context = exc.problem_mark, exc.context_mark
    message = f"invalid YAML: {exc.problem}"
    if exc.problem is not None and "'\\t'" in exc.problem:
        message += " (YAML indents with spaces: replace the tab)"
    if exc.problem == "mapping values are not allowed here" and mark is not None:
        message += _mapping_value_hint(text, mark.line, mark.column)
    if mark is not None and context is not None:
        message += _mixed_block_hint(text, exc.problem, exc.context, mark.line, context.line)
    if exc.context and context is not None:
        message += f" ({exc.context} at line {context.line + 1}, column {context.column + 1})"
        if mark is None or not text[mark.index:].strip():
            mark = context
        elif exc.context == "while scanning a simple key":
            # a key written without its ':' (``reason`` above ``type: string``)
            lines = text.splitlines()
            words = lines[context.line][context.column:].split() \
                if context.line < len(lines) else []
            if words:
                message += f" (is the ':' after {words[0]!r} missing?)"
            mark = context
        elif exc.context in _FLOW_CLOSE and context.line < mark.line:
            # a bracket left open: the parser reads on into the lines below
            message += f" (is its closing '{_FLOW_CLOSE[exc.context]}' missing?)"
            mark = context
    if mark is None:
        return Location(path), message
    start = _quote_left_open(text, mark)
    if start is not None:
        message += (f" (the quoted value opened at line {start.line + 1}, column "
                    f"{start.column + 1} runs on to line {mark.line + 1}: is its closing "
                    "quote missing?)")
        mark = start
    return Location(path, mark.line + 1, mark.column + 1), message


def _mapping_value_hint(text: str, line: int, column: int) -> str:
    """Why a ``key: value`` is where YAML expected the rest of a value: a second ``: `` in
    one line, or a line indented deeper than the one above it (a field of a property
    written one level too far left just before it)."""
    lines = text.splitlines()
    if line >= len(lines):
        return ""
    if ": " in lines[line][:column]:
        return " (a value with ': ' in it must be quoted)"
    above = next((n for n in range(line - 1, -1, -1) if lines[n].strip()
                  and not lines[n].lstrip().startswith("#")), None)
    if above is None:
        return ""

    def indent(n: int) -> int:
        return len(lines[n]) - len(lines[n].lstrip(" "))

    key = lines[above].strip()
    if ":" not in key and not key.startswith(("-", "[", "{")) and indent(line) > indent(above):
        return (f" (line {above + 1}, {key!r}, has no ':': write '{key}:' if it names a "
                "property)")

    if indent(line) <= indent(above):
        return ""
    return (f" (line {line + 1} is indented deeper than line {above + 1}, so YAML reads it "
            f"as the rest of line {above + 1}'s value: indent the two alike if they are "
            "fields of the same property)")


#: what YAML's parser calls a key and an item where a block mixes the two
_MIXED = {("expected <block end>, but found '?'", "while parsing a block collection"): "key",
          ("expected <block end>, but found '-'", "while parsing a block mapping"): "item"}


def _mixed_block_hint(text: str, problem: str | None, context: str | None, line: int,
                      start: int) -> str:
    """Why YAML "found '?'" or "found '-'": one block with both ``- `` items and ``key:``
    entries at one indentation (properties written partly as ``- name:`` items, or a
    field lined up with the items of the list above it)."""
    found = _MIXED.get((problem or "", context or ""))
    lines = text.splitlines()
    if found is None or line >= len(lines):
        return ""
    what = (f"a key, {lines[line].strip()!r}, among the '- ' items of the list"
            if found == "key" else "a '- ' item among the keys of the mapping")
    return (f" (line {line + 1} is {what} that starts at line {start + 1}: write every "
            "entry alike (a property is its name and ':', its fields indented under it, "
            "not a '- name:' item), or indent the line as the fields of its own key)")


def _quote_left_open(text: str, mark: yaml.Mark) -> yaml.Mark | None:
    """The start of a quoted value that spans lines and ends on the error's line: a quote
    left open, closed by the next value's opening quote (``pattern: "^[A-Z]{3}$`` then,
    lines later, ``pattern: "...``), so the parser stumbles there, far from the cause."""
    found = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= mark.index:
                break
            if (isinstance(token, yaml.ScalarToken) and token.style in ('"', "'")
                    and token.start_mark.line < token.end_mark.line == mark.line):
                found = token.start_mark
    except yaml.YAMLError:
        pass  # the scanner's own error comes after the tokens that matter
    return found
