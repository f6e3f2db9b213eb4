"""Build the Kubernetes example corpus: every Pod/RC/RS document of kubernetes/website's and kubernetes/examples' git.

Run: .venv/bin/python benchmarks/k8s_examples.py [--out tests/corpus/k8s-examples] REPO=GITDIR[@REV]...
e.g. `kubernetes/examples=/path/to/examples.git kubernetes/website=/path/to/website.git`.

Reads the repositories with git (a bare clone is enough: `git ls-tree`, `git show`), takes every .yaml/.yml/.json
file (for kubernetes/website only the English examples, content/en/examples/), and writes one file per source
file that holds at least one document of kind Pod, ReplicationController or ReplicaSet, with only those
documents (verbatim where the file splits cleanly on `---`, else re-dumped from what YAML parsed), under a header
naming the repository, path, commit and licence. Files that are not YAML (templates with `{{ }}`) are counted and
skipped. The corpus is not committed (it is the repositories' content); tests/corpus/README.md says why and how
benchmarks/lint_corpus.py and tests/unit/test_corpus_lint.py use it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "corpus" / "k8s-examples"
KINDS = frozenset({"Pod", "ReplicationController", "ReplicaSet"})
SUFFIXES = (".yaml", ".yml", ".json")
#: Only these folders of a repository (all of it when absent), and the prefix dropped from output names.
SCOPES = {"kubernetes/website": "content/en/examples/"}
#: The licence of each repository's content (their LICENSE files: website content CC BY 4.0, examples Apache-2.0).
LICENCES = {"kubernetes/website": "CC-BY-4.0", "kubernetes/examples": "Apache-2.0"}
_SEPARATOR = re.compile(r"(?m)^---[ \t]*(?:#.*)?$")


@dataclass(frozen=True)
class Source:
    repo: str  # owner/name
    gitdir: Path
    rev: str


def git(source: Source, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(source.gitdir), *args], capture_output=True, text=True, check=True
    ).stdout


def _selected(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") in KINDS


def _flatten(docs: list[Any]) -> list[Any]:
    """`kind: List` documents become their items, as ekctl reads them."""
    flat: list[Any] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            flat.extend(doc["items"])
        elif doc is not None:
            flat.append(doc)
    return flat


@dataclass(frozen=True)
class Extract:
    body: str  # the selected documents, YAML
    count: int
    total: int  # documents in the source file
    verbatim: bool  # as written in the source, else re-serialised from what YAML parsed


def extract(text: str, *, json_file: bool) -> Extract | None:
    """The file's documents of the corpus kinds, or None when the file is not YAML/JSON."""
    try:
        parsed = [json.loads(text)] if json_file else list(yaml.safe_load_all(text))
    except (ValueError, yaml.YAMLError):
        return None
    docs = _flatten(parsed)
    chosen = [d for d in docs if _selected(d)]
    if not chosen:
        return Extract("", 0, len(docs), verbatim=True)
    if not json_file and len(docs) == len(parsed):
        chunks = [c for c in _SEPARATOR.split(text) if c.strip()]
        try:
            loaded = [yaml.safe_load(c) for c in chunks]
        except yaml.YAMLError:
            loaded = []
        pairs = [(c, d) for c, d in zip(chunks, loaded, strict=False) if d is not None]
        if [d for _, d in pairs] == docs:  # the split is faithful: keep each document as written
            body = "---\n".join(c.strip("\n") + "\n" for c, d in pairs if _selected(d))
            return Extract(body, len(chosen), len(docs), verbatim=True)
    return Extract(yaml.safe_dump_all(chosen, sort_keys=False), len(chosen), len(docs), verbatim=False)


def output_name(source: Source, path: str) -> str:
    short = source.repo.split("/", 1)[1]
    inner = path.removeprefix(SCOPES.get(source.repo, ""))
    return f"{short}__{inner.replace('/', '__').rsplit('.', 1)[0]}.yaml"


def build(sources: list[Source], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yaml"):
        old.unlink()
    for source in sources:
        commit = git(source, "rev-parse", f"{source.rev}^{{commit}}").strip()
        scope = SCOPES.get(source.repo, "")
        paths = [p for p in git(source, "ls-tree", "-r", "--name-only", commit).splitlines() if p.startswith(scope)]
        files = documents = skipped = 0
        for path in sorted(p for p in paths if p.endswith(SUFFIXES)):
            raw = subprocess.run(
                ["git", "--git-dir", str(source.gitdir), "show", f"{commit}:{path}"], capture_output=True, check=True
            ).stdout
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            found = extract(text, json_file=path.endswith(".json"))
            if found is None:
                skipped += 1
                continue
            if not found.count:
                continue
            how = "as written" if found.verbatim else "re-serialised from the parsed YAML"
            header = (
                f"# source: {source.repo} {path}\n# commit: {commit}\n"
                f"# licence: {LICENCES.get(source.repo, 'see the repository')} (tests/corpus/README.md)\n"
                f"# documents: the {found.count} of {found.total} of kind Pod, ReplicationController or ReplicaSet, "
                f"{how}\n"
            )
            (out / output_name(source, path)).write_text(header + found.body, encoding="utf-8")
            files += 1
            documents += found.count
        print(f"{source.repo} {commit[:12]}: {documents} documents in {files} files ({skipped} files not YAML)")


def parse_source(arg: str) -> Source:
    repo, _, rest = arg.partition("=")
    gitdir, _, rev = rest.partition("@")
    if "/" not in repo or not gitdir:
        raise argparse.ArgumentTypeError(f"{arg!r}: expected OWNER/NAME=GITDIR[@REV]")
    path = Path(gitdir)
    if (path / ".git").is_dir():  # a work tree: its repository
        path = path / ".git"
    return Source(repo, path, rev or "HEAD")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("sources", nargs="+", type=parse_source, metavar="OWNER/NAME=GITDIR[@REV]")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    build(args.sources, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
