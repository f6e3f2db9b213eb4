"""Manifest files for apply, delete -f and lint: FILE, DIR (its *.yaml|*.yml|*.json, sorted) or - (stdin)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from edgekube.model.errors import ValidationError
from edgekube.model.manifest import Document, ManifestError, decode_documents, lint_manifests, load_manifests

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "STDIN"


@dataclass(frozen=True)
class Source:
    name: str  # the path as the user wrote it (joined for directory entries), or STDIN
    data: bytes

    @property
    def text(self) -> str:
        # Only called after validation, which already refused anything that is not UTF-8.
        return self.data.decode("utf-8")


def _files(arg: str) -> list[Path]:
    path = Path(arg)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not found:
            raise ValidationError(
                f"{arg}: no manifests in this directory (looked for {', '.join('*' + s for s in SUFFIXES)})"
            )
        return found
    if not path.exists():
        raise ValidationError(f'the path "{arg}" does not exist')
    return [path]


def _read(path: Path) -> Source:
    try:
        return Source(str(path), path.read_bytes())
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_sources(args: list[str], stdin: BinaryIO) -> Iterator[Source | ValidationError]:
    """Every manifest file named by `args`, or the error that stopped one being read (lint keeps going)."""
    stdin_used = False
    for arg in args:
        if arg == "-":
            if stdin_used:
                yield ValidationError("-f -: standard input can only be read once")
                continue
            stdin_used = True
            yield Source(STDIN, stdin.read())
            continue
        try:
            paths = _files(arg)
        except ValidationError as exc:
            yield exc
            continue
        for path in paths:
            try:
                yield _read(path)
            except ValidationError as exc:
                yield exc


def load_sources(args: list[str], stdin: BinaryIO) -> list[tuple[Source, list[Document]]]:
    """Read and validate every file before anything is sent; the first problem found is raised."""
    loaded = []
    for item in read_sources(args, stdin):
        if isinstance(item, ValidationError):
            raise item
        try:
            loaded.append((item, load_manifests(item.data, source=item.name)))
        except ManifestError as exc:
            exc.hint = f"run `ekctl lint {item.name if item.name != STDIN else '-'}` to list every problem"
            raise
    if not any(docs for _, docs in loaded):
        raise ValidationError("no objects passed to apply", hint="the files hold no YAML/JSON documents")
    return loaded


@dataclass
class LintReport:
    findings: list[str]
    documents: int = 0
    files: int = 0
    bad_files: int = 0
    #: Every file read and decoded: (source, its documents), for the label rules (model.lint) that look across files.
    decoded: list[tuple[Source, list[Any]]] = field(default_factory=list)


def finding_lines(exc: ValidationError) -> list[str]:
    """One line per problem: `FILE[doc INDEX]: field.path: rule`."""
    if isinstance(exc, ManifestError) and exc.index is not None:
        return [f"{exc.source}[doc {exc.index}]: {problem}" for problem in exc.problems]
    return [str(exc)]


def lint(args: list[str], stdin: BinaryIO) -> LintReport:
    report = LintReport(findings=[])
    for item in read_sources(args, stdin):
        report.files += 1
        if isinstance(item, ValidationError):
            report.bad_files += 1
            report.findings.extend(finding_lines(item))
            continue
        # A decoding error is counted by lint_manifests below, so it is not reported twice.
        with contextlib.suppress(ValidationError):
            documents = decode_documents(item.data, source=item.name)
            report.documents += len(documents)
            report.decoded.append((item, documents))
        found = [line for exc in lint_manifests(item.data, source=item.name) for line in finding_lines(exc)]
        report.bad_files += bool(found)
        report.findings.extend(found)
    return report
