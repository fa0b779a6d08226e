"""griffe extension for the API reference: the docstrings' indented blocks shown as code.

spikejax's docstrings write equations, tables and usage lines as blocks indented by two spaces after a
blank line (`  v[t] = beta*v[t-1] + I[t] - threshold*s[t-1]`). Markdown would run such lines together
into one paragraph (and read `*` as emphasis), so each block is fenced as text, as it reads in the source.
Indented lines that follow their paragraph directly (list continuations, Google-style `Args:` entries) are
left to Markdown and the docstring parser. Outside code, `a[i][j]` would read as a Markdown reference link
(`[i][j]`, an unresolved cross-reference in strict mode) and `beta*v` as emphasis: both are escaped.
"""
from __future__ import annotations

import re

import griffe

SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Attributes|Examples?|Notes?):\s*$")


def _escape(line: str, in_section: bool) -> str:
    """Outside backtick spans: `][` escaped as `]\\[`, so that `x[a][b]` stays text, and, in prose outside
    Google sections, every `*` but a list marker escaped, so that `beta*v[t-1]` is not emphasis."""
    marker = re.match(r"^\s*\* ", line)
    head, line = (line[:marker.end()], line[marker.end():]) if marker else ("", line)
    parts = line.split("`")
    for k in range(0, len(parts), 2):
        parts[k] = parts[k].replace("][", "]\\[")
        if not in_section:
            parts[k] = parts[k].replace("*", "\\*")
    return head + "`".join(parts)


def fence_indented_blocks(text: str) -> str:
    """`text` with every indented block that follows a blank line (outside Google sections) fenced."""
    lines, out, i, in_section = text.splitlines(), [], 0, False
    while i < len(lines):
        line = lines[i]
        if SECTION.match(line):
            in_section = True
        elif line and not line[0].isspace():
            in_section = False
        starts_block = (line.startswith(" ") and line.strip() and not in_section
                        and (i == 0 or not lines[i - 1].strip()))
        if not starts_block:
            out.append(_escape(line, in_section))
            i += 1
            continue
        block = []
        while i < len(lines) and (lines[i].startswith(" ") or (
                not lines[i].strip() and i + 1 < len(lines) and lines[i + 1].startswith(" "))):
            block.append(lines[i])
            i += 1
        indent = min(len(b) - len(b.lstrip(" ")) for b in block if b.strip())
        out.extend(["```text", *(b[indent:] for b in block), "```"])
    return "\n".join(out)


class FenceIndentedBlocks(griffe.Extension):
    """Fences the indented blocks of every docstring griffe loads (`fence_indented_blocks`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_indented_blocks(obj.docstring.value)
