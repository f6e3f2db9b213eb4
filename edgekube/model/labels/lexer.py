"""Lexer of k8s' label-selector syntax (``pkg/labels/selector.go`` Lexer); parser.py is its only caller."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

__all__ = ["Item", "Token", "lex"]


class Token(StrEnum):
    """Lexer token kinds of k8s' selector grammar (Gt/Lt are lexed only to be refused clearly)."""

    END = "end of string"
    CLOSE_PAREN = ")"
    COMMA = ","
    NOT = "!"
    DOUBLE_EQUALS = "=="
    EQUALS = "="
    GREATER = ">"
    IDENTIFIER = "identifier"
    IN = "in"
    LESS = "<"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    OPEN_PAREN = "("


class Item(NamedTuple):
    """One token: its kind, its text and where it starts in the selector string."""

    token: Token
    literal: str
    position: int


_KEYWORDS = {t.value: t for t in Token if t not in (Token.END, Token.IDENTIFIER)}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")


def lex(text: str) -> list[Item]:
    """Tokenise like k8s' Lexer: identifiers run to the next special symbol or whitespace."""
    items: list[Item] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos == end:
            items.append(Item(Token.END, "", end))
            return items
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of special symbols that still spells a token, so "!=" wins over "!" then "=".
            pos += 1
            while pos < end and text[pos] in _SPECIAL and text[start : pos + 1] in _KEYWORDS:
                pos += 1
        else:
            while pos < end and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                pos += 1
        literal = text[start:pos]
        items.append(Item(_KEYWORDS.get(literal, Token.IDENTIFIER), literal, start))
