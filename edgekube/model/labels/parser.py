"""Parser of k8s' label-selector strings (``labels.Parse``) into a Selector; used by the master API and ekctl -l."""

from __future__ import annotations

from edgekube.model.errors import ValidationError
from edgekube.model.labels.lexer import Item, Token, lex
from edgekube.model.labels.selector import Operator, Requirement, Selector
from edgekube.model.labels.validation import key_errors, quote, value_errors

__all__ = ["parse_selector"]

_SELECTOR_HINT = "selector syntax: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; ',' means AND"
_BINARY = {
    Token.IN: Operator.IN,
    Token.NOT_IN: Operator.NOT_IN,
    Token.EQUALS: Operator.EQUALS,
    Token.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
    Token.NOT_EQUALS: Operator.NOT_EQUALS,
}


class _Reject(Exception):
    """A syntax error inside one requirement; the parser prefixes it the way k8s does."""


def _found(item: Item) -> str:
    shown = "end of string" if item.token is Token.END else f"'{item.literal}'"
    return f"found {shown} at position {item.position}"


class _Parser:
    """k8s' recursive-descent parser; ``in``/``notin`` count as identifiers wherever a value may appear."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = lex(text)
        self.index = 0

    def _peek(self, as_value: bool = True) -> Item:
        item = self.items[self.index]
        if as_value and item.token in (Token.IN, Token.NOT_IN):
            return item._replace(token=Token.IDENTIFIER)
        return item

    def _next(self, as_value: bool = True) -> Item:
        item = self._peek(as_value)
        self.index = min(self.index + 1, len(self.items) - 1)
        return item

    def _error(self, message: str) -> ValidationError:
        return ValidationError(f"selector {quote(self.text)}: {message}", hint=_SELECTOR_HINT)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            item = self._peek()
            if item.token is Token.END:
                return requirements
            if item.token not in (Token.IDENTIFIER, Token.NOT):
                raise self._error(f"{_found(item)}, expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except _Reject as exc:
                raise self._error(f"unable to parse requirement: {exc}") from None
            item = self._next()
            if item.token is Token.END:
                return requirements
            if item.token is not Token.COMMA:
                raise self._error(f"{_found(item)}, expected: ',' or 'end of string'")
            item = self._peek()
            if item.token not in (Token.IDENTIFIER, Token.NOT):
                raise self._error(f"{_found(item)}, expected: identifier after ','")

    def _requirement(self) -> Requirement:
        item = self._next()
        operator: Operator | None = None
        if item.token is Token.NOT:
            operator = Operator.DOES_NOT_EXIST
            item = self._next()
        if item.token is not Token.IDENTIFIER:
            raise _Reject(f"{_found(item)}, expected: identifier")
        key = item.literal
        if errs := key_errors(key):
            raise _Reject(f"invalid key {quote(key)} at position {item.position}: {'; '.join(errs)}")
        if operator is None and self._peek().token in (Token.END, Token.COMMA):
            operator = Operator.EXISTS
        if operator is not None:
            # "!x=a" stops here too: the "=" then fails as "expected ',' or 'end of string'", as in k8s.
            return Requirement(key, operator)
        item = self._next(as_value=False)
        if item.token not in _BINARY:
            unsupported = item.token in (Token.GREATER, Token.LESS)
            why = " (the Gt/Lt operators are not supported)" if unsupported else ""
            raise _Reject(f"{_found(item)}, expected: in, notin, =, ==, !={why}")
        operator = _BINARY[item.token]
        values = self._set_values() if operator in (Operator.IN, Operator.NOT_IN) else self._exact_value()
        for value, position in values:
            if errs := value_errors(value):
                raise _Reject(
                    f"invalid value {quote(value)} for key {quote(key)} at position {position}: {'; '.join(errs)}"
                )
        return Requirement(key, operator, tuple(value for value, _ in values))

    def _exact_value(self) -> list[tuple[str, int]]:
        item = self._peek()
        if item.token in (Token.END, Token.COMMA):
            return [("", item.position)]
        item = self._next()
        if item.token is not Token.IDENTIFIER:
            raise _Reject(f"{_found(item)}, expected: identifier")
        return [(item.literal, item.position)]

    def _set_values(self) -> list[tuple[str, int]]:
        item = self._next()
        if item.token is not Token.OPEN_PAREN:
            raise _Reject(f"{_found(item)}, expected: '('")
        item = self._peek()
        if item.token is Token.CLOSE_PAREN:
            # k8s reads "()" as the one-element set {""}, not as an empty (invalid) set.
            self._next()
            return [("", item.position)]
        if item.token not in (Token.IDENTIFIER, Token.COMMA):
            raise _Reject(f"{_found(item)}, expected: ',', ')' or identifier")
        values = self._identifier_list()
        self._next()
        return values

    def _identifier_list(self) -> list[tuple[str, int]]:
        """Port parseIdentifiersList with its quirks: "(a,)" and "(,a)" add "", "(a,,)" is refused."""
        values: list[tuple[str, int]] = []
        while True:
            item = self._next()
            if item.token is Token.IDENTIFIER:
                values.append((item.literal, item.position))
                after = self._peek()
                if after.token is Token.CLOSE_PAREN:
                    return values
                if after.token is not Token.COMMA:
                    raise _Reject(f"{_found(after)}, expected: ',' or ')'")
            elif item.token is Token.COMMA:
                if not values:
                    values.append(("", item.position))
                after = self._peek()
                if after.token is Token.CLOSE_PAREN:
                    values.append(("", after.position))
                    return values
                if after.token is Token.COMMA:
                    self._next()
                    values.append(("", after.position))
            else:
                raise _Reject(f"{_found(item)}, expected: ',', or identifier")


def parse_selector(text: str) -> Selector:
    """Parse k8s label-selector syntax (``labels.Parse``); "" gives the selector that matches everything."""
    if not isinstance(text, str):
        raise ValidationError(f"selector must be a string, got {type(text).__name__}", hint=_SELECTOR_HINT)
    return Selector(tuple(_Parser(text).parse()))
