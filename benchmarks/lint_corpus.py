"""How many Kubernetes example documents `ekctl lint` accepts, and why it rejects the others (a histogram).

Run: .venv/bin/python benchmarks/lint_corpus.py [--corpus DIR] [--write] [--documents]

The corpus (tests/corpus/k8s-examples/, built by benchmarks/k8s_examples.py) holds every Pod, ReplicationController
and ReplicaSet document of kubernetes/website's and kubernetes/examples' examples. Prints `accepted: A of N`,
then one line per reason category (field path with list indexes as `[]` + Kubernetes' error type): the documents
with that problem anywhere, and those whose first problem it is. `--write` updates the expectations that
tests/unit/test_corpus_lint.py pins (tests/corpus/k8s-examples.expected); `--documents` lists each rejected one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from tests.support.corpus import CORPUS, EXPECTED, corpus_files, corpus_sources, expectations_text, lint_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--write", action="store_true", help=f"update {EXPECTED.relative_to(EXPECTED.parents[2])}")
    parser.add_argument("--documents", action="store_true", help="list every rejected document and its reasons")
    args = parser.parse_args(argv)
    if not corpus_files(args.corpus):
        print(f"{args.corpus}: no corpus; build it with benchmarks/k8s_examples.py", file=sys.stderr)
        return 2
    result = lint_corpus(args.corpus)
    print(f"accepted: {result.accepted} of {result.documents} documents ({len(corpus_files(args.corpus))} files)")
    print(f"\n{'docs':>5} {'first':>5}  reason (documents with it anywhere / as their first problem)")
    for reason, anywhere, first in result.histogram():
        print(f"{anywhere:5d} {first:5d}  {reason}")
    if args.documents:
        print()
        for doc, reasons in sorted(result.rejected.items()):
            print(f"{doc}: {'; '.join(dict.fromkeys(reasons))}")
    if args.write:
        EXPECTED.write_text(expectations_text(result, corpus_sources(args.corpus)), encoding="utf-8")
        print(f"\nwrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
