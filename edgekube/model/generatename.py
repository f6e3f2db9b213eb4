"""metadata.generateName: Kubernetes' name generator and the prefix's rule; for ObjectMeta, the master's create, RCs.

apiserver's names.SimpleNameGenerator: the prefix cut to 58 characters, then 5 random characters from an alphabet
without vowels (no words) or look-alikes, so the name fits a 63-character label. ValidateObjectMeta checks the
prefix with the kind's name rule in prefix mode, where a trailing `-` is allowed (maskTrailingDash).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from edgekube.model.errors import ValidationError
from edgekube.model.names import check_dns1123_subdomain

#: k8s.io/apimachinery/pkg/util/rand's alphanums.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
RANDOM_LENGTH = 5
#: maxNameLength (63) less the random part.
MAX_GENERATED_PREFIX = 63 - RANDOM_LENGTH

_RNG = random.Random()


def generate(prefix: str, rng: random.Random | None = None) -> str:
    """SimpleNameGenerator.GenerateName: `prefix` (cut to 58 characters) and 5 random characters."""
    chooser = rng or _RNG
    return prefix[:MAX_GENERATED_PREFIX] + "".join(chooser.choice(ALPHABET) for _ in range(RANDOM_LENGTH))


def fresh(prefix: str, taken: Callable[[str], bool], rng: random.Random | None = None) -> str:
    """A generated name no object holds yet (`taken` says which are), as the API server retries a clash."""
    while True:
        name = generate(prefix, rng)
        if not taken(name):
            return name


def check_prefix(value: str) -> str:
    """NameIsDNSSubdomain(prefix=true): the rule for names, a trailing `-` allowed (errors relative to the field)."""
    masked = value[:-1] + "a" if len(value) > 1 and value.endswith("-") else value
    try:
        check_dns1123_subdomain(masked, "")
    except ValidationError as exc:
        text = str(exc)
        for shown in (json.dumps(masked), repr(masked)):
            text = text.replace(shown, json.dumps(value) if shown.startswith('"') else repr(value))
        raise ValidationError(text) from None
    return value
