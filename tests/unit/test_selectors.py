"""Spec of label selectors, ported from k8s apimachinery pkg/labels/selector_test.go; run by pytest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from edgekube.labels import Operator, Requirement, Selector, parse_selector
from edgekube.model.errors import ValidationError
from edgekube.model.labels.lexer import Token, lex

IN, NOT_IN, EXISTS, ABSENT = Operator.IN, Operator.NOT_IN, Operator.EXISTS, Operator.DOES_NOT_EXIST
EQ, DEQ, NEQ = Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS


def req(key: str, operator: Operator, *values: str) -> Requirement:
    return Requirement(key, operator, values)


def sel(*requirements: Requirement) -> Selector:
    return Selector(requirements)


# --- TestLexer / TestLexerSequence / TestParserLookahead ------------------------------------------

LEXER_SINGLE = [
    ("", Token.END),
    (",", Token.COMMA),
    ("notin", Token.NOT_IN),
    ("in", Token.IN),
    ("=", Token.EQUALS),
    ("==", Token.DOUBLE_EQUALS),
    (">", Token.GREATER),
    ("<", Token.LESS),
    # The lexer returns the longest valid token found.
    ("!", Token.NOT),
    ("!=", Token.NOT_EQUALS),
    ("(", Token.OPEN_PAREN),
    (")", Token.CLOSE_PAREN),
    # Non-"special" characters are part of an identifier.
    ("~", Token.IDENTIFIER),
    ("||", Token.IDENTIFIER),
]


@pytest.mark.parametrize(("text", "token"), LEXER_SINGLE)
def test_lexer_single_token(text: str, token: Token) -> None:
    first = lex(text)[0]
    assert (first.token, first.literal) == (token, text)


ID, COMMA, OPAR, CPAR, END = Token.IDENTIFIER, Token.COMMA, Token.OPEN_PAREN, Token.CLOSE_PAREN, Token.END
DEQ_T = Token.DOUBLE_EQUALS
LEXER_SEQUENCES = [
    ("key in ( value )", [ID, Token.IN, OPAR, ID, CPAR]),
    ("key notin ( value )", [ID, Token.NOT_IN, OPAR, ID, CPAR]),
    ("key in ( value1, value2 )", [ID, Token.IN, OPAR, ID, COMMA, ID, CPAR]),
    ("key", [ID]),
    ("!key", [Token.NOT, ID]),
    ("()", [OPAR, CPAR]),
    ("", []),
    ("x in (),y", [ID, Token.IN, OPAR, CPAR, COMMA, ID]),
    ("== != (), = notin", [DEQ_T, Token.NOT_EQUALS, OPAR, CPAR, COMMA, Token.EQUALS, Token.NOT_IN]),
    ("key>2", [ID, Token.GREATER, ID]),
    ("key<1", [ID, Token.LESS, ID]),
    ("a===b", [ID, DEQ_T, Token.EQUALS, ID]),
    ("!!a", [Token.NOT, Token.NOT, ID]),
    ("x\t\r\nin", [ID, Token.IN]),
]


@pytest.mark.parametrize(("text", "tokens"), LEXER_SEQUENCES)
def test_lexer_sequence_ends_with_end_of_string(text: str, tokens: list[Token]) -> None:
    assert [item.token for item in lex(text)] == [*tokens, END]


def test_lexer_records_token_positions() -> None:
    assert [(i.literal, i.position) for i in lex(" a in (b, c)")] == [
        ("a", 1), ("in", 3), ("(", 6), ("b", 7), (",", 8), ("c", 10), (")", 11), ("", 12),
    ]  # fmt: skip


# --- TestSelectorParse / TestDeterministicParse ---------------------------------------------------

# Round trip: String() equals the input without spaces.
GOOD_STRINGS = ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x"]
BAD_STRINGS = ["x=a||y=b", "x==a==b", "!x=a", "x<a", "x>1", "x>1,z<5", "a=b=c", "a=b,", "x,,y", ",x,y"]


@pytest.mark.parametrize("text", GOOD_STRINGS)
def test_good_selector_restrings_to_input_without_spaces(text: str) -> None:
    assert str(parse_selector(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", BAD_STRINGS)
def test_bad_selector_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match=r'^selector ".*": '):
        parse_selector(text)


def test_parse_is_deterministic() -> None:
    assert parse_selector("x=a,a=x") == parse_selector("a=x,x=a")
    assert str(parse_selector("x=a,a=x")) == "a=x,x=a"


# --- TestSetSelectorParser ------------------------------------------------------------------------

SET_PARSER_GOOD = [
    ("", sel()),
    ("\rx", sel(req("x", EXISTS))),
    ("this-is-a-dns.domain.com/key-with-dash", sel(req("this-is-a-dns.domain.com/key-with-dash", EXISTS))),
    (
        "this-is-another-dns.domain.com/key-with-dash in (so,what)",
        sel(req("this-is-another-dns.domain.com/key-with-dash", IN, "so", "what")),
    ),
    (
        "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
        sel(req("0.1.2.domain/99", NOT_IN, "10.10.100.1", "tick.tack.clock")),
    ),
    ("foo  in\t (abc)", sel(req("foo", IN, "abc"))),
    ("x notin\n (abc)", sel(req("x", NOT_IN, "abc"))),
    ("x  notin\t\t\t(abc,def)", sel(req("x", NOT_IN, "abc", "def"))),
    ("x in (abc,def)", sel(req("x", IN, "abc", "def"))),
    ("x in (abc,)", sel(req("x", IN, "abc", ""))),
    # k8s reads "()" as the set {""}; only NewRequirement with no values at all is an error.
    ("x in ()", sel(req("x", IN, ""))),
    (
        "x notin (abc,,def),bar,z in (),w",
        sel(req("bar", EXISTS), req("w", EXISTS), req("x", NOT_IN, "abc", "", "def"), req("z", IN, "")),
    ),
    ("x,y in (a)", sel(req("y", IN, "a"), req("x", EXISTS))),
    ("x=a", sel(req("x", EQ, "a"))),
    ("x=a,y!=b", sel(req("x", EQ, "a"), req("y", NEQ, "b"))),
    ("x=a,y!=b,z in (h,i,j)", sel(req("x", EQ, "a"), req("y", NEQ, "b"), req("z", IN, "h", "i", "j"))),
    ("x notin ( )", sel(req("x", NOT_IN, ""))),
    ("x notin (, a)", sel(req("x", NOT_IN, "", "a"))),
    ("a ", sel(req("a", EXISTS))),
    # "in" and "notin" are plain identifiers wherever a key or value is expected.
    ("a in (x,y,notin, z,in)", sel(req("a", IN, "in", "notin", "x", "y", "z"))),
    ("in in (in),notin notin (notin)", sel(req("in", IN, "in"), req("notin", NOT_IN, "notin"))),
    ("notin=in", sel(req("notin", EQ, "in"))),
    ("x==a", sel(req("x", DEQ, "a"))),
    ("x!=", sel(req("x", NEQ, ""))),
    ("x==", sel(req("x", DEQ, ""))),
    ("x in (,,,)", sel(req("x", IN, ""))),
    ("x in (b,a,b)", sel(req("x", IN, "a", "b"))),
    ("x,x", sel(req("x", EXISTS), req("x", EXISTS))),
    ("  ", sel()),
]


@pytest.mark.parametrize(("text", "expected"), SET_PARSER_GOOD)
def test_set_selector_parser_accepts(text: str, expected: Selector) -> None:
    assert parse_selector(text) == expected


SET_PARSER_BAD = [
    "x=a||y=b",
    "x,,y",
    ",x,y",
    "x nott in (y)",
    "a in (xyz),",
    "a in (xyz)b notin ()",
    "a in (xyz abc)",  # no comma
    "a notin(",  # badly formed
    "a (",  # cpar
    "(",  # opar
    "x in (a,,)",  # k8s quirk: "(a,)" and "(a,,b)" parse, "(a,,)" does not
    "x in (a",
    "x in a",
    "x in",
    "x notin (a)(b)",
    "x=(a)",
    "!",
    "!!x",
    "!x in (a)",
    "x y",
    "=a",
    "a,",
    ",",
]


@pytest.mark.parametrize("text", SET_PARSER_BAD)
def test_set_selector_parser_refuses(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_selector(text)


# Each error quotes the selector, says where it went wrong and what was expected, as k8s' messages do.
PARSE_ERRORS = [
    ("a in (b", "unable to parse requirement: found end of string at position 7, expected: ',' or ')'"),
    ("a=b,", "found end of string at position 4, expected: identifier after ','"),
    (",x", "found ',' at position 0, expected: !, identifier, or 'end of string'"),
    ("a=b=c", "found '=' at position 3, expected: ',' or 'end of string'"),
    ("x==a==b", "found '==' at position 4, expected: ',' or 'end of string'"),
    ("!x=a", "found '=' at position 2, expected: ',' or 'end of string'"),
    ("a (", "unable to parse requirement: found '(' at position 2, expected: in, notin, =, ==, !="),
    ("x nott in (y)", "found 'nott' at position 2, expected: in, notin, =, ==, !="),
    ("x>1", "found '>' at position 1, expected: in, notin, =, ==, != (the Gt/Lt operators are not"),
    ("a notin(", "found end of string at position 8, expected: ',', ')' or identifier"),
    ("a notin(,", "found end of string at position 9, expected: ',', or identifier"),
    ("a in x", "found 'x' at position 5, expected: '('"),
    ("a in (=)", "found '=' at position 6, expected: ',', ')' or identifier"),
    ("a in (xyz abc)", "found 'abc' at position 10, expected: ',' or ')'"),
    ("x in (a,,)", "found ')' at position 9, expected: ',', or identifier"),
    ("x=(a)", "found '(' at position 2, expected: identifier"),
    ("!", "unable to parse requirement: found end of string at position 1, expected: identifier"),
    ("x=a,Foo/y", 'invalid key "Foo/y" at position 4: prefix part a DNS-1123 subdomain must consist of'),
    ("a/b/c", 'invalid key "a/b/c" at position 0: a qualified name must consist of'),
    ("k" * 64, "at position 0: name part must be no more than 63 characters"),
    ("x in (ok, b~d)", 'invalid value "b~d" for key "x" at position 10: a valid label must be'),
    ("x=" + "v" * 64, 'for key "x" at position 2: must be no more than 63 characters'),
]


@pytest.mark.parametrize(("text", "fragment"), PARSE_ERRORS)
def test_parse_error_names_position_and_expectation(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_selector(text)
    message = str(caught.value)
    assert message.startswith(f'selector "{text}": ')
    assert fragment in message
    assert caught.value.hint.startswith("selector syntax:")


def test_parse_refuses_a_non_string() -> None:
    with pytest.raises(ValidationError, match="selector must be a string, got int"):
        parse_selector(3)  # type: ignore[arg-type]


# --- TestRequirementConstructor -------------------------------------------------------------------

REQUIREMENT_CONSTRUCTOR = [
    ("x", IN, (), "values: for 'in', 'notin' operators, values set can't be empty"),
    ("x", NOT_IN, (), "values set can't be empty"),
    ("x", IN, ("foo",), None),
    ("x", NOT_IN, ("foo",), None),
    ("x", EXISTS, (), None),
    ("x", ABSENT, (), None),
    ("1foo", IN, ("bar",), None),
    ("1234", IN, ("bar",), None),
    ("a" * 254, EXISTS, (), "name part must be no more than 63 characters"),  # and > 253 for a DNS name
    ("x", EQ, (), "exact-match compatibility requires one single value, got 0"),
    ("x", NEQ, ("a", "b"), "exact-match compatibility requires one single value, got 2"),
    ("x", EXISTS, ("a",), "values set must be empty for exists and does not exist"),
    ("x", IN, ("a", "b c"), 'values[1]: invalid value "b c"'),
    ("x", "in", ("a",), None),
    ("x", ">", ("1",), 'operator: Unsupported value: ">"'),
]


@pytest.mark.parametrize(("key", "operator", "values", "error"), REQUIREMENT_CONSTRUCTOR)
def test_requirement_constructor(key: str, operator: Operator, values: tuple[str, ...], error: str | None) -> None:
    if error is None:
        assert Requirement(key, operator, values).operator == Operator(operator)
    else:
        with pytest.raises(ValidationError) as caught:
            Requirement(key, operator, values)
        assert error in str(caught.value)


# --- TestToString ---------------------------------------------------------------------------------

TO_STRING = [
    (
        [req("x", IN, "abc", "def"), req("y", NOT_IN, "jkl"), req("z", EXISTS)],
        "x in (abc,def),y notin (jkl),z",
    ),
    ([req("x", NOT_IN, "abc", "def"), req("y", NEQ, "jkl"), req("z", ABSENT)], "x notin (abc,def),y!=jkl,!z"),
    (
        [req("x", NOT_IN, "abc"), req("y", IN, "jkl", "mno"), req("z", NOT_IN, "")],
        "x notin (abc),y in (jkl,mno),z notin ()",
    ),
    (
        [req("x", EQ, "abc"), req("y", DEQ, "jkl"), req("z", NEQ, "a"), req("z", EXISTS)],
        "x=abc,y==jkl,z!=a,z",
    ),
    ([req("z", EXISTS), req("a", IN, "b", "a"), req("m", EQ, "")], "a in (a,b),m=,z"),
    ([req("x", IN, "", "b")], "x in (,b)"),
    ([], ""),
]


@pytest.mark.parametrize(("requirements", "text"), TO_STRING)
def test_to_string_is_canonical_and_round_trips(requirements: list[Requirement], text: str) -> None:
    selector = Selector(tuple(requirements))
    assert str(selector) == text
    assert parse_selector(text) == selector


ROUND_TRIPS = [
    "x in (b,a),!y,z notin (q, ,p)",
    "a.b/c==d, a.b/c!=e",
    "in in (notin),notin",
    "x in (,a)",
    "x notin ()",
    "k=,k2==,k3!=",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_str_then_parse_gives_the_same_selector(text: str) -> None:
    selector = parse_selector(text)
    assert parse_selector(str(selector)) == selector
    assert str(parse_selector(str(selector))) == str(selector)


# --- TestSelectorMatches / TestRequirementSelectorMatching ----------------------------------------

SELECTOR_MATCHES = [
    ("", {"x": "y"}, True),
    ("x=y", {"x": "y"}, True),
    ("x=y,z=w", {"x": "y", "z": "w"}, True),
    ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
    ("notin=in", {"notin": "in"}, True),
    ("x", {"x": "z"}, True),
    ("!x", {"y": "z"}, True),
    ("x=z", {}, False),
    ("x=y", {"x": "z"}, False),
    ("x=y,z=w", {"x": "w", "z": "w"}, False),
    ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
    ("x", {"y": "z"}, False),
    ("!x", {"x": "z"}, False),
    ("foo=bar", {"foo": "bar", "baz": "blah"}, True),
    ("baz=blah", {"foo": "bar", "baz": "blah"}, True),
    ("foo=bar,baz=blah", {"foo": "bar", "baz": "blah"}, True),
    ("foo=blah", {"foo": "bar", "baz": "blah"}, False),
    ("baz=bar", {"foo": "bar", "baz": "blah"}, False),
    ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}, False),
    # Negative operators match objects lacking the key; "in" requires it.
    ("x!=y", {}, True),
    ("x notin (a)", {}, True),
    ("x in (a)", {}, False),
    ("x in ()", {"x": ""}, True),
    ("x in ()", {}, False),
    ("x=", {"x": ""}, True),
    ("x==y", {"x": "y"}, True),
    ("x in (a,b)", {"x": "b"}, True),
    ("x notin (a,b)", {"x": "b"}, False),
    ("x,x=a", {"x": "b"}, False),
]


@pytest.mark.parametrize(("text", "labels", "expected"), SELECTOR_MATCHES)
def test_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


REQUIREMENT_SELECTOR_MATCHING = [
    ({"x": "foo", "y": "baz"}, sel(req("x", IN, "foo"), req("y", NOT_IN, "alpha")), True),
    ({"x": "foo", "y": "baz"}, sel(req("x", IN, "foo"), req("y", IN, "alpha")), False),
    ({"y": ""}, sel(req("x", NOT_IN, ""), req("y", EXISTS)), True),
    ({"y": ""}, sel(req("x", ABSENT), req("y", EXISTS)), True),
    ({"y": ""}, sel(req("x", NOT_IN, ""), req("y", ABSENT)), False),
    ({"y": "baz"}, sel(req("x", IN, "")), False),
]


@pytest.mark.parametrize(("labels", "selector", "expected"), REQUIREMENT_SELECTOR_MATCHING)
def test_requirement_selector_matching(labels: dict[str, str], selector: Selector, expected: bool) -> None:
    assert selector.matches(labels) is expected


# --- Everything / empty / from_set (TestEverything, TestSetMatches, TestNilMapIsValid, TestSetIsEmp


@pytest.mark.parametrize(
    "selector",
    [Selector.everything(), Selector.empty(), Selector(), Selector.from_set({}), Selector.from_set(None),
     parse_selector(""), Selector.from_match_labels(), Selector.from_match_labels({}, [])],
)  # fmt: skip
def test_empty_selectors_match_everything(selector: Selector) -> None:
    assert selector.is_empty()
    assert selector == Selector.everything()
    assert selector.matches({"x": "y"})
    assert selector.matches({})
    assert str(selector) == ""


SET_MATCHES = [
    ({}, True),
    ({"foo": "bar"}, True),
    ({"baz": "blah"}, True),
    ({"foo": "bar", "baz": "blah"}, True),
    ({"foo": "blah"}, False),
    ({"foo": "bar", "foobar": "bar", "baz": "blah"}, False),
]


@pytest.mark.parametrize(("match", "expected"), SET_MATCHES)
def test_from_set_matches_exactly_the_set(match: dict[str, str], expected: bool) -> None:
    assert Selector.from_set(match).matches({"foo": "bar", "baz": "blah"}) is expected


def test_from_set_is_an_equality_selector_sorted_by_key() -> None:
    selector = Selector.from_set({"tier": "web", "app": "shop"})
    assert str(selector) == "app=shop,tier=web"
    assert selector == parse_selector("tier=web,app=shop")


# TestValidatedSelectorFromSet
def test_from_set_validates() -> None:
    value = "axahm2EJ8Phiephe2eixohbee9eGeiyees1thuozi1xoh0GiuH3diewi8iem7Nui"
    with pytest.raises(ValidationError) as caught:
        Selector.from_set({"Key": value})
    assert str(caught.value).startswith(f'spec.selector["Key"]: invalid value "{value}": must be no more than 63')


# --- TestAdd / TestRequiresExactMatch -------------------------------------------------------------


def test_add_returns_a_new_sorted_selector() -> None:
    base = sel(req("key", IN, "value"))
    added = base.add(req("a", EQ, "b"), req("key2", EQ, "value2"))
    assert added == sel(req("a", EQ, "b"), req("key", IN, "value"), req("key2", EQ, "value2"))
    assert [r.key for r in added] == ["a", "key", "key2"]
    assert base == sel(req("key", IN, "value"))


REQUIRES_EXACT_MATCH = [
    (sel(req("key", IN, "value")), "key", "value"),
    (sel(req("key", IN, "value", "value2")), "key", None),
    (sel(req("key", IN, "value", "value1"), req("key2", IN, "value2")), "key2", "value2"),
    (sel(req("key", EQ, "value")), "key", "value"),
    (sel(req("key", DEQ, "value")), "key", "value"),
    (sel(req("key", NEQ, "value")), "key", None),
    (sel(req("key", IN, "value"), req("key2", IN, "value2")), "key", "value"),
    (sel(req("key", EXISTS)), "key", None),
    (sel(), "key", None),
]


@pytest.mark.parametrize(("selector", "key", "expected"), REQUIRES_EXACT_MATCH)
def test_requires_exact_match(selector: Selector, key: str, expected: str | None) -> None:
    assert selector.requires_exact_match(key) == expected


# --- as_match_labels ------------------------------------------------------------------------------

AS_MATCH_LABELS = [
    ("", {}),
    ("app=web,tier==front", {"app": "web", "tier": "front"}),
    ("app in (web)", {"app": "web"}),
    ("app=web,app in (web)", {"app": "web"}),
    ("app=", {"app": ""}),
    ("app=web,app=db", None),  # can never match; no dict says that
    ("app in (web,db)", None),
    ("app!=web", None),
    ("app", None),
    ("!app", None),
    ("app notin (web)", None),
]


@pytest.mark.parametrize(("text", "expected"), AS_MATCH_LABELS)
def test_as_match_labels(text: str, expected: dict[str, str] | None) -> None:
    selector = parse_selector(text)
    assert selector.as_match_labels() == expected
    if expected is not None:
        assert Selector.from_set(expected).matches(expected)
        assert selector.matches(expected)


# --- from_match_labels (LabelSelectorAsSelector) --------------------------------------------------

MatchLabels = Mapping[str, str] | None
MatchExpressions = Sequence[Mapping[str, object]] | None
FROM_MATCH_LABELS_GOOD: list[tuple[MatchLabels, MatchExpressions, str]] = [
    (None, None, ""),
    ({"app": "web"}, None, "app=web"),
    ({"app": "web"}, [{"key": "tier", "operator": "In", "values": ["b", "a"]}], "app=web,tier in (a,b)"),
    (None, [{"key": "tier", "operator": "NotIn", "values": ["a"]}], "tier notin (a)"),
    (None, [{"key": "gpu", "operator": "Exists"}], "gpu"),
    (None, [{"key": "gpu", "operator": "DoesNotExist", "values": []}], "!gpu"),
    (None, [{"key": "x", "operator": "In", "values": [""]}], "x in ()"),
    ({"x": "a"}, [{"key": "x", "operator": "In", "values": ["a", "b"]}], "x in (a,b),x=a"),
]


@pytest.mark.parametrize(("match_labels", "match_expressions", "text"), FROM_MATCH_LABELS_GOOD)
def test_from_match_labels(match_labels: MatchLabels, match_expressions: MatchExpressions, text: str) -> None:
    selector = Selector.from_match_labels(match_labels, match_expressions)
    assert str(selector) == text
    assert selector == parse_selector(text)


FROM_MATCH_LABELS_BAD: list[tuple[object, object, list[str]]] = [
    (None, [{"key": "x", "operator": "In", "values": []}],
     ["spec.selector.matchExpressions[0].values: for 'in', 'notin' operators, values set can't be empty"]),
    (None, [{"key": "a", "operator": "Exists"}, {"key": "x", "operator": "NotIn"}],
     ["spec.selector.matchExpressions[1].values: for 'in', 'notin' operators, values set can't be empty"]),
    (None, [{"key": "x", "operator": "Exists", "values": ["a"]}],
     ["matchExpressions[0].values: values set must be empty for exists and does not exist"]),
    (None, [{"key": "x", "operator": "Gt", "values": ["1"]}],
     ['matchExpressions[0].operator: Unsupported value: "Gt": supported values: "In", "NotIn", "Exists"']),
    (None, [{"key": "x", "operator": "in", "values": ["a"]}], ['operator: Unsupported value: "in"']),
    (None, [{"key": "x"}], ["matchExpressions[0].operator: Unsupported value: None"]),
    (None, [{"operator": "Exists"}], ["matchExpressions[0].key: Required value"]),
    (None, [{"key": "x y", "operator": "Exists"}], ['matchExpressions[0].key: invalid key "x y": name part']),
    (None, [{"key": "x", "operator": "In", "values": ["ok", "n o"]}],
     ['matchExpressions[0].values[1]: invalid value "n o": a valid label']),
    (None, [{"key": "x", "operator": "In", "values": "a"}], ["matchExpressions[0].values: must be a list"]),
    (None, [{"key": "x", "operator": "Exists", "value": "a"}], ['[0]: unknown field "value"']),
    (None, ["x=a"], ["spec.selector.matchExpressions[0]: must be a mapping"]),
    (None, {"key": "x"}, ["spec.selector.matchExpressions: must be a list, got dict"]),
    ({"bad key": "v"}, None, ['spec.selector.matchLabels["bad key"]: invalid key: name part']),
    ({"app": "no good"}, None, ['spec.selector.matchLabels["app"]: invalid value "no good"']),
    ({"app": "-"}, [{"key": "x", "operator": "In"}], ['matchLabels["app"]', "matchExpressions[0].values"]),
]  # fmt: skip


@pytest.mark.parametrize(("match_labels", "match_expressions", "fragments"), FROM_MATCH_LABELS_BAD)
def test_from_match_labels_errors_name_the_field(
    match_labels: object, match_expressions: object, fragments: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        Selector.from_match_labels(match_labels, match_expressions)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_from_match_labels_uses_the_given_path() -> None:
    with pytest.raises(ValidationError, match=r"^spec\.template\.spec\.x\.matchExpressions\[0\]\.values: "):
        Selector.from_match_labels(None, [{"key": "x", "operator": "In"}], path="spec.template.spec.x")


# --- value semantics ------------------------------------------------------------------------------


def test_selector_is_an_immutable_hashable_sequence() -> None:
    selector = parse_selector("b=2,a in (x)")
    assert len(selector) == 2
    assert selector[0] == req("a", IN, "x")
    assert selector[-1].key == "b"
    assert selector[:1] == (req("a", IN, "x"),)
    assert list(selector) == [req("a", IN, "x"), req("b", EQ, "2")]
    assert req("b", EQ, "2") in selector
    assert {selector: 1}[parse_selector("a in (x),b=2")] == 1
    assert repr(selector) == "Selector('a in (x),b=2')"
    with pytest.raises(AttributeError):
        selector.requirements = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        selector[0].key = "c"  # type: ignore[misc]


def test_requirement_values_are_a_sorted_set() -> None:
    assert req("x", IN, "b", "a", "b").values == ("a", "b")
    assert hash(req("x", IN, "b", "a")) == hash(req("x", IN, "a", "b"))


def test_operator_values_are_the_k8s_spellings() -> None:
    assert [op.value for op in Operator] == ["in", "notin", "=", "==", "!=", "exists", "!"]
