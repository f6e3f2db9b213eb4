"""Shell completion scripts for `ekctl completion bash|zsh`, generated from ekctl's argparse parser (cli/parser.py).

Subcommands, their flags, flag choices (`-o`, `--cascade`...) and resource types come from the parser and
cli/kinds.py; object names are asked of the cluster at completion time (`ekctl get TYPE -o custom-columns=...`),
so a new flag or command completes without touching this file. zsh runs the same function through bashcompinit.
"""

from __future__ import annotations

import argparse
import shlex

from edgekube.cli.kinds import _ALIASES
from edgekube.cli.output import FORMATS

#: Commands whose first positional is a resource TYPE (then names of that type).
_TYPED = ("get", "describe", "delete", "scale", "label", "annotate")
#: Commands whose positionals are pod or node names.
_POD_NAMES = ("logs", "exec")
_NODE_NAMES = ("cordon", "uncordon", "drain")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public walk of its subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Every flag, those that take a value, and the fixed choices of those that have them."""
    flags: list[str] = []
    valued: list[str] = []
    choices: dict[str, list[str]] = {}
    for action in parser._actions:
        if not action.option_strings:
            continue
        flags += action.option_strings
        if action.nargs != 0:
            valued += action.option_strings
            if action.choices:
                for option in action.option_strings:
                    choices[option] = [str(c) for c in action.choices]
    choices.setdefault("-o", [*FORMATS, "jsonpath=", "custom-columns="])
    choices.setdefault("--output", choices["-o"])
    return flags, valued, choices


def _positional_choices(parser: argparse.ArgumentParser) -> list[str]:
    found: list[str] = []
    for action in parser._actions:
        if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
            found += [str(c) for c in action.choices]
    return found


def _words(items: list[str]) -> str:
    return shlex.quote(" ".join(sorted(set(items))))


def bash(parser: argparse.ArgumentParser) -> str:
    commands = _subparsers(parser)
    top_flags, top_valued, _ = _flags(parser)
    valued = set(top_valued)
    cases = []
    for name, sub in sorted(commands.items()):
        flags, sub_valued, choices = _flags(sub)
        valued.update(sub_valued)
        nested = sorted(_subparsers(sub))
        choice_cases = "".join(
            f'            {option}) COMPREPLY=($(compgen -W {_words(values)} -- "$cur")); return;;\n'
            for option, values in sorted(choices.items())
        )
        kind = "typed" if name in _TYPED else "pods" if name in _POD_NAMES else "nodes" if name in _NODE_NAMES else ""
        if name == "explain":
            kind = "kinds"
        words = [*nested, *_positional_choices(sub)]
        kind = kind or "''"
        cases.append(
            f"        {name})\n"
            f"            flags={_words(flags)}; words={_words(words)}; kind={kind}\n"
            f'            case "$prev" in\n{choice_cases}'
            f"            esac;;\n"
        )
    types = sorted(_ALIASES)
    return f"""# bash completion for ekctl (ekctl completion bash), load with: source <(ekctl completion bash)
_ekctl_names() {{
    # Object names from the cluster; silent and empty when it cannot be reached.
    ekctl get "$1" -o 'custom-columns=NAME:.metadata.name' --no-headers --timeout 2 2>/dev/null
}}

_ekctl() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local valued={_words(sorted(valued))}
    local cmd="" i word skip="" positionals=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ -n "$skip" ]]; then skip=""; continue; fi
        if [[ "$word" == -* ]]; then
            [[ "$word" != *=* && " $valued " == *" $word "* ]] && skip=1
            continue
        fi
        if [[ -z "$cmd" ]]; then cmd="$word"; else positionals+=("$word"); fi
    done
    COMPREPLY=()
    if [[ -z "$cmd" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W {_words(top_flags)} -- "$cur"))
        elif [[ " $valued " != *" $prev "* || $COMP_CWORD -eq 1 ]]; then
            COMPREPLY=($(compgen -W {_words(list(commands))} -- "$cur"))
        fi
        return
    fi
    local flags="" words="" kind=""
    case "$cmd" in
{"".join(cases)}    esac
    case "$prev" in
        -f|--filename) COMPREPLY=($(compgen -f -- "$cur")); return;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    [[ " $valued " == *" $prev "* ]] && return
    local types={_words(types)}
    case "$kind" in
        typed)
            if [[ ${{#positionals[@]}} -eq 0 ]]; then
                COMPREPLY=($(compgen -W "$types" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$(_ekctl_names "${{positionals[0]}}")" -- "$cur"))
            fi;;
        pods) [[ ${{#positionals[@]}} -eq 0 ]] && COMPREPLY=($(compgen -W "$(_ekctl_names pods)" -- "$cur"));;
        nodes) COMPREPLY=($(compgen -W "$(_ekctl_names nodes)" -- "$cur"));;
        kinds) COMPREPLY=($(compgen -W "$types" -- "$cur"));;
        *) [[ ${{#positionals[@]}} -eq 0 ]] && COMPREPLY=($(compgen -W "$words" -- "$cur"));;
    esac
}}
complete -F _ekctl ekctl
"""


def zsh(parser: argparse.ArgumentParser) -> str:
    """The bash function under zsh's bashcompinit: one generator, the same answers in both shells."""
    return (
        "#compdef ekctl\n"
        "# zsh completion for ekctl (generated: ekctl completion zsh); load with: source <(ekctl completion zsh)\n"
        "autoload -U +X compinit && compinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash(parser).split("\n", 1)[1]
    )


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    return bash(parser) if shell == "bash" else zsh(parser)
