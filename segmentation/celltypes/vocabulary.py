"""The cell-type vocabulary: a hierarchy of terms with synonyms and descriptions.

Tags are stored under a term's canonical name, so that "SST", "sst" and "Martinotti
cell" are one cell type, and searching for "inhibitory" finds every interneuron below
it. The vocabulary is data, not code: ``default_vocabulary.json`` ships with the
package, ``<home>/vocabulary.json`` extends it for an installation and
``<home>/vocabularies/<dataset>.json`` for one dataset (``Vocabulary.for_dataset``).

File format::

    {"allow_free_terms": false,
     "terms": [{"name": "L2/3 pyramidal", "parent": "pyramidal",
                "synonyms": ["L23 pyramidal", "L2/3 PC"], "description": "..."}, ...]}

In a complete vocabulary an omitted ``parent`` means a top-level term. In an extending
file (home or dataset) a term that already exists is overridden field by field: only
the fields the file gives replace the existing ones (``"parent": null`` moves a term to
the top; a ``synonyms`` list replaces the old list), so ``{"name": "basket",
"description": "..."}`` changes only the description.

Pure Python: no Flask, no database.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import Invalid

__all__ = ["Term", "UnknownTerm", "Vocabulary"]

DEFAULT_RESOURCE = "default_vocabulary.json"
# The vocabularies a dataset may start from (``add-dataset --vocabulary NAME``); None: the default.
BASES = {"mouse-cortex": DEFAULT_RESOURCE, "fly": "fly_vocabulary.json"}
DEFAULT_BASE = "mouse-cortex"
MAX_SUGGESTIONS = 5
_FIELDS = ("name", "parent", "synonyms", "description")
_TOP_LEVEL_KEYS = ("allow_free_terms", "terms")
# The dataset registry's rule (segmentation.datasets.NAME_PATTERN), repeated so that this
# module stays free of the database; it also keeps dataset names from escaping <home>.
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SIMILARITY_CUTOFF = 0.6


def how_to_add(term: str, dataset: str | None) -> str:
    """The exact way to make ``term`` known (what an unknown-term refusal tells the user)."""
    where = f"<home>/vocabularies/{dataset}.json" if dataset else "<home>/vocabulary.json"
    entry = json.dumps({"terms": [{"name": term, "parent": "<a known term, or null>", "synonyms": []}]})
    return (
        f"to add {term!r}, an admin of this server writes {entry} into {where} "
        "(read again within seconds; the format is in docs/vocabulary.md)"
    )


class UnknownTerm(Invalid):
    """A cell type that is not in the vocabulary, with the nearest known terms to offer."""

    def __init__(self, term: str, suggestions: Iterable[str] = ()):
        self.term = term
        self.suggestions = list(suggestions)
        message = f"unknown cell type {term!r}"
        if self.suggestions:
            message += f"; did you mean: {', '.join(self.suggestions)}?"
        super().__init__(message)

    def __reduce__(self):  # keep it picklable across processes despite the custom __init__
        return (type(self), (self.term, self.suggestions))


@dataclass(frozen=True)
class Term:
    """One cell type; ``name`` is what tags store, ``synonyms`` are what people type."""

    name: str
    parent: str | None
    synonyms: tuple[str, ...]
    description: str


def _normalise(text: str) -> str:
    """Collapse runs of whitespace and strip, so "L2/3  pyramidal " is "L2/3 pyramidal"."""
    return " ".join(text.split())


def _key(text: str) -> str:
    """The lookup key: whitespace-normalised and case-folded."""
    return _normalise(text).casefold()


def _prefixed(source: str | None, message: str) -> str:
    return f"{source}: {message}" if source else message


def _parse(data: Any, source: str | None) -> tuple[bool | None, list[dict]]:
    """Check a file's structure; return its allow_free_terms (None if absent) and its entries.

    Each entry keeps only the fields the file gives (normalised), which is what lets an
    extending file override one field of an existing term and leave the others alone.
    """
    if not isinstance(data, dict):
        raise ValueError(_prefixed(source, f"a vocabulary is a JSON object, not {type(data).__name__}"))
    extra = sorted(set(data) - set(_TOP_LEVEL_KEYS))
    if extra:
        raise ValueError(
            _prefixed(source, f"unknown key(s) {', '.join(map(repr, extra))}; expected {', '.join(_TOP_LEVEL_KEYS)}")
        )
    allow = data.get("allow_free_terms")
    if allow is not None and not isinstance(allow, bool):
        raise ValueError(_prefixed(source, f"allow_free_terms must be true or false, not {allow!r}"))
    raw_terms = data.get("terms", [])
    if not isinstance(raw_terms, list):
        raise ValueError(_prefixed(source, "'terms' must be a list of term objects"))
    entries: list[dict] = []
    seen: dict[str, str] = {}
    for position, raw in enumerate(raw_terms):
        where = f"term #{position + 1}"
        if not isinstance(raw, dict):
            raise ValueError(_prefixed(source, f"{where} must be an object with a name"))
        name = raw.get("name")
        if not isinstance(name, str) or not _normalise(name):
            raise ValueError(_prefixed(source, f"{where} has an empty or missing name"))
        name = _normalise(name)
        where = f"term {name!r}"
        extra = sorted(set(raw) - set(_FIELDS))
        if extra:
            raise ValueError(
                _prefixed(
                    source, f"{where} has unknown field(s) {', '.join(map(repr, extra))}; expected {', '.join(_FIELDS)}"
                )
            )
        if _key(name) in seen:
            raise ValueError(
                _prefixed(
                    source, f"duplicate term name {name!r} (also {seen[_key(name)]!r}; names are case-insensitive)"
                )
            )
        seen[_key(name)] = name
        entry: dict[str, Any] = {"name": name}
        if "parent" in raw:
            parent = raw["parent"]
            if parent is not None and (not isinstance(parent, str) or not _normalise(parent)):
                raise ValueError(_prefixed(source, f"{where}: parent must be a term name or null, not {parent!r}"))
            entry["parent"] = _normalise(parent) if parent is not None else None
        if "synonyms" in raw:
            synonyms = raw["synonyms"]
            if not isinstance(synonyms, list):  # a bare string would silently become its letters
                raise ValueError(_prefixed(source, f"{where}: synonyms must be a list of strings"))
            cleaned = []
            for synonym in synonyms:
                if not isinstance(synonym, str) or not _normalise(synonym):
                    raise ValueError(_prefixed(source, f"{where} has an empty or non-text synonym {synonym!r}"))
                cleaned.append(_normalise(synonym))
            entry["synonyms"] = cleaned
        if "description" in raw:
            description = raw["description"]
            if description is None:
                description = ""
            if not isinstance(description, str):
                raise ValueError(_prefixed(source, f"{where}: description must be text"))
            entry["description"] = description.strip()
        entries.append(entry)
    return allow, entries


class Vocabulary:
    """An immutable hierarchy of cell-type terms; resolves what people type to canonical names.

    ``allow_free_terms`` lets a dataset accept tags outside the vocabulary (they are
    kept as typed) instead of rejecting them with suggestions.
    """

    def __init__(
        self,
        entries: list[dict],
        allow_free_terms: bool = False,
        *,
        free_terms_given: bool = False,
        source: str | None = None,
    ):
        """Build and validate from parsed entries; use from_dict/load/default rather than this."""
        self._allow_free_terms = bool(allow_free_terms)
        self._free_terms_given = free_terms_given
        self._build(entries, source)

    # -- construction ------------------------------------------------------------------

    def _build(self, entries: list[dict], source: str | None) -> None:
        names: dict[str, str] = {}  # key -> canonical name
        for entry in entries:
            name = entry["name"]
            if _key(name) in names:
                raise ValueError(
                    _prefixed(
                        source, f"duplicate term name {name!r} (also {names[_key(name)]!r}; names are case-insensitive)"
                    )
                )
            names[_key(name)] = name
        index = dict(names)  # key -> canonical name, for names and synonyms
        owner_kind: dict[str, str] = {key: "name" for key in names}
        synonyms_of: dict[str, tuple[str, ...]] = {}
        for entry in entries:
            name = entry["name"]
            kept: list[str] = []
            for synonym in entry.get("synonyms", ()):
                key = _key(synonym)
                if key == _key(name) or any(_key(k) == key for k in kept):
                    continue  # a synonym repeating the term's own name or another synonym says nothing
                other = index.get(key)
                if other is not None and other != name:
                    what = f"the name of term {other!r}" if owner_kind[key] == "name" else f"a synonym of {other!r}"
                    raise ValueError(
                        _prefixed(
                            source,
                            f"synonym {synonym!r} of term {name!r} clashes with {what} "
                            "(names and synonyms are case-insensitive)",
                        )
                    )
                index[key] = name
                owner_kind[key] = "synonym"
                kept.append(synonym)
            synonyms_of[name] = tuple(kept)

        terms: dict[str, Term] = {}
        given: dict[str, frozenset[str]] = {}
        for entry in entries:
            name = entry["name"]
            parent_text = entry.get("parent")
            parent = None
            if parent_text is not None:
                parent = index.get(_key(parent_text))
                if parent is None:
                    hint = self._suggest_from(parent_text, index, list(names.values()))
                    message = f"term {name!r} has unknown parent {parent_text!r}"
                    if hint:
                        message += f"; did you mean: {', '.join(hint)}?"
                    raise ValueError(_prefixed(source, message))
            terms[name] = Term(
                name=name, parent=parent, synonyms=synonyms_of[name], description=entry.get("description", "")
            )
            given[name] = frozenset(entry)

        for name in terms:  # every chain of parents must reach the top
            chain = [name]
            parent = terms[name].parent
            while parent is not None:
                if parent in chain:
                    cycle = chain[chain.index(parent) :] + [parent]
                    raise ValueError(_prefixed(source, "cycle in the cell-type hierarchy: " + " -> ".join(cycle)))
                chain.append(parent)
                parent = terms[parent].parent

        children: dict[str | None, list[str]] = {None: []}
        for term in terms.values():
            children.setdefault(term.name, [])
            children.setdefault(term.parent, []).append(term.name)
        self._terms = terms
        self._given = given
        self._index = index
        self._children = children

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        """A complete vocabulary from the file format; raises ValueError saying what is wrong."""
        return cls._from_data(data, None)

    @classmethod
    def _from_data(cls, data: Any, source: str | None) -> Vocabulary:
        allow, entries = _parse(data, source)
        return cls(entries, bool(allow), free_terms_given=allow is not None, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """A complete vocabulary from a JSON file (errors name the file)."""
        return cls._from_data(_read_json(path), os.fspath(path))

    @classmethod
    def default(cls) -> Vocabulary:
        """The vocabulary shipped with axonlink (parsed once; vocabularies are immutable)."""
        return _default_vocabulary()

    @classmethod
    def base(cls, name: str | None) -> Vocabulary:
        """One of the shipped vocabularies by name (``BASES``; None or "default": mouse cortex)."""
        if name in (None, "default"):
            name = DEFAULT_BASE
        if name not in BASES:
            raise ValueError(f"no vocabulary named {name!r}; axonlink ships {', '.join(sorted(BASES))}")
        return _shipped(BASES[name])

    @classmethod
    def for_dataset(cls, home: str | os.PathLike, dataset: str | None = None, base: str | None = None) -> Vocabulary:
        """The vocabulary a dataset's tags are checked against.

        The dataset's ``base`` (a shipped vocabulary, e.g. "fly"; None: mouse cortex), extended
        or overridden by ``<home>/vocabulary.json`` (for the whole installation) and then by
        ``<home>/vocabularies/<dataset>.json`` (a user's own terms for one dataset). Either file
        may be missing; both may refer to terms defined before them (e.g. a new term whose
        parent is "pyramidal").
        """
        vocabulary = cls.base(base)
        paths = [os.path.join(home, "vocabulary.json")]
        if dataset is not None:
            if not isinstance(dataset, str) or not _DATASET_NAME.match(dataset):
                raise ValueError(f"bad dataset name {dataset!r}")
            paths.append(os.path.join(home, "vocabularies", f"{dataset}.json"))
        for path in paths:
            if os.path.isfile(path):
                allow, entries = _parse(_read_json(path), path)
                vocabulary = vocabulary._overlay(entries, allow, path)
        return vocabulary

    def merged(self, other: Vocabulary) -> Vocabulary:
        """This vocabulary with other's terms added or overriding (field by field, as given in
        other's source); other's allow_free_terms wins only if its file set it."""
        entries = [
            {field: value for field, value in other._entry(term).items() if field in other._given[term.name]}
            for term in other._terms.values()
        ]
        allow = other._allow_free_terms if other._free_terms_given else None
        return self._overlay(entries, allow, None)

    def _overlay(self, entries: list[dict], allow: bool | None, source: str | None) -> Vocabulary:
        """A new vocabulary: ``entries`` (only given fields) laid over this one's terms."""
        combined = {_key(name): self._entry(term) for name, term in self._terms.items()}
        given = {_key(name): set(fields) for name, fields in self._given.items()}
        for entry in entries:
            key = _key(entry["name"])
            if key in combined:
                combined[key].update(entry)  # the extending file's spelling of the name wins too
                given[key] |= set(entry)
            else:
                combined[key] = dict(entry)
                given[key] = set(entry)
        result = Vocabulary(
            list(combined.values()),
            self._allow_free_terms if allow is None else allow,
            free_terms_given=self._free_terms_given or allow is not None,
            source=source,
        )
        # Remember which fields were ever given, so this result overlays correctly in turn.
        result._given = {name: frozenset(given[_key(name)]) for name in result._terms}
        return result

    @staticmethod
    def _entry(term: Term) -> dict:
        return {
            "name": term.name,
            "parent": term.parent,
            "synonyms": list(term.synonyms),
            "description": term.description,
        }

    def to_dict(self) -> dict:
        """The file format; ``Vocabulary.from_dict(v.to_dict())`` gives the same vocabulary."""
        return {
            "allow_free_terms": self._allow_free_terms,
            "terms": [self._entry(term) for term in self._terms.values()],
        }

    # -- queries -----------------------------------------------------------------------

    @property
    def allow_free_terms(self) -> bool:
        """Whether tags outside the vocabulary are accepted as typed (read-only: the default is shared)."""
        return self._allow_free_terms

    def resolve(self, text: str) -> str:
        """The canonical name for what someone typed (name or synonym, any case or spacing).

        Unknown text raises UnknownTerm with suggestions, unless free terms are allowed:
        then it is returned stripped, as typed.
        """
        if not isinstance(text, str):
            raise TypeError(f"a cell type is text, not {type(text).__name__}")
        if not _normalise(text):
            raise ValueError("a cell type must not be empty")
        name = self._index.get(_key(text))
        if name is not None:
            return name
        if self._allow_free_terms:
            return text.strip()
        raise UnknownTerm(text.strip(), self.suggest(text))

    def suggest(self, text: str, limit: int = MAX_SUGGESTIONS) -> list[str]:
        """Canonical names nearest to ``text``, best first: close spellings and substring matches."""
        return self._suggest_from(text, self._index, list(self._terms), limit)

    @staticmethod
    def _suggest_from(text: str, index: dict[str, str], order: list[str], limit: int = MAX_SUGGESTIONS) -> list[str]:
        query = _key(text)
        if not query:
            return []
        labels = list(index)  # case-folded names and synonyms
        scores: dict[str, float] = {}

        def offer(label: str, score: float) -> None:
            name = index[label]
            scores[name] = max(scores.get(name, 0.0), score)

        for label in difflib.get_close_matches(query, labels, n=len(labels), cutoff=_SIMILARITY_CUTOFF):
            offer(label, difflib.SequenceMatcher(None, query, label).ratio())
        for label in labels:
            if len(query) >= 2 and query in label:  # "pyr" -> the pyramidal terms, shortest first
                offer(label, 0.6 + 0.4 * len(query) / len(label))
            elif len(label) >= 3 and _contains_word(query, label):  # "chandelier neuron" -> chandelier
                offer(label, 0.6 + 0.4 * len(label) / len(query))
        position = {name: i for i, name in enumerate(order)}
        ranked = sorted(scores, key=lambda name: (-scores[name], position.get(name, len(position))))
        return ranked[:limit]

    def __contains__(self, text: object) -> bool:
        """Whether ``text`` is a known name or synonym (free terms are never "in" the vocabulary)."""
        return isinstance(text, str) and _key(text) in self._index

    def get(self, name: str) -> Term:
        """The term for a name or synonym; UnknownTerm if it is not in the vocabulary."""
        canonical = self.resolve(name)
        term = self._terms.get(canonical)
        if term is None:  # a free term: accepted as a tag, but it has no entry
            raise UnknownTerm(canonical, self.suggest(canonical))
        return term

    def terms(self) -> list[Term]:
        """All terms, in file order (parents are not necessarily first)."""
        return list(self._terms.values())

    def children(self, term: str | None) -> list[str]:
        """Canonical names directly below ``term`` (None: the top-level terms), in file order."""
        if term is None:
            return list(self._children[None])
        return list(self._children.get(self.resolve(term), ()))

    def descendants(self, term: str) -> set[str]:
        """The term and everything below it: what a search for ``term`` should match."""
        root = self.resolve(term)
        found = {root}
        stack = [root]
        while stack:
            for child in self._children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def ancestors(self, term: str) -> list[str]:
        """The path from the top of the hierarchy down to the term itself."""
        name = self.resolve(term)
        path = [name]
        current = self._terms.get(name)
        while current is not None and current.parent is not None:
            path.append(current.parent)
            current = self._terms[current.parent]
        return path[::-1]

    def __len__(self) -> int:
        return len(self._terms)

    def __repr__(self) -> str:
        return f"<Vocabulary {len(self._terms)} terms, allow_free_terms={self._allow_free_terms}>"


def _contains_word(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` on word boundaries (so "opc" is not found in "topcoat")."""
    start = text.find(word)
    while start != -1:
        end = start + len(word)
        before_ok = start == 0 or not text[start - 1].isalnum()
        after_ok = end == len(text) or not text[end].isalnum()
        if before_ok and after_ok:
            return True
        start = text.find(word, start + 1)
    return False


def _read_json(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{os.fspath(path)}: not valid JSON: {error}") from None


def _default_vocabulary() -> Vocabulary:
    return _shipped(DEFAULT_RESOURCE)


@functools.cache
def _shipped(resource: str) -> Vocabulary:
    text = resources.files(__package__).joinpath(resource).read_text(encoding="utf-8")
    return Vocabulary._from_data(json.loads(text), resource)
