"""The cell-type vocabulary: hierarchy, synonyms, suggestions, per-dataset extension, validation."""

from __future__ import annotations

import json
import pickle
from importlib import resources

import pytest

from segmentation.celltypes.vocabulary import Term, UnknownTerm, Vocabulary


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.default()


def small(**extra) -> dict:
    """A tiny complete vocabulary to validate variations of."""
    data = {
        "terms": [
            {"name": "neuron", "parent": None, "synonyms": [], "description": "A neuron."},
            {"name": "pyramidal", "parent": "neuron", "synonyms": ["PC"], "description": "A pyramidal cell."},
            {"name": "basket", "parent": "neuron", "synonyms": ["PV"], "description": "A basket cell."},
        ]
    }
    data.update(extra)
    return data


def write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


# -- the shipped vocabulary ----------------------------------------------------------------


def test_default_ships_as_package_data_and_is_cached():
    text = resources.files("segmentation.celltypes").joinpath("default_vocabulary.json").read_text("utf-8")
    data = json.loads(text)
    assert data["allow_free_terms"] is False
    assert Vocabulary.from_dict(data).to_dict() == Vocabulary.default().to_dict()
    assert Vocabulary.default() is Vocabulary.default()
    with pytest.raises(AttributeError):
        Vocabulary.default().allow_free_terms = True  # shared: must not be changed in place


def test_default_has_the_expected_tree(vocabulary):
    assert vocabulary.children(None) == ["neuron", "glia", "non-neuronal"]
    assert vocabulary.children("neuron") == ["excitatory", "inhibitory"]
    assert vocabulary.children("excitatory") == ["pyramidal", "spiny stellate"]
    assert vocabulary.children("pyramidal") == [
        "L2/3 pyramidal",
        "L4 pyramidal",
        "L5 IT",
        "L5 ET",
        "L5 NP",
        "L6 IT",
        "L6 CT",
    ]
    assert vocabulary.children("inhibitory") == ["basket", "chandelier", "Martinotti", "bipolar", "neurogliaform"]
    assert vocabulary.children("glia") == ["astrocyte", "oligodendrocyte", "microglia", "OPC"]
    assert vocabulary.children("non-neuronal") == ["pericyte", "endothelial cell"]
    assert vocabulary.children("L2/3 pyramidal") == []
    for term in vocabulary.terms():
        assert isinstance(term, Term)
        assert term.description.endswith("."), term.name


def test_hierarchy(vocabulary):
    excitatory = vocabulary.descendants("excitatory")
    assert "L2/3 pyramidal" in excitatory and "spiny stellate" in excitatory and "excitatory" in excitatory
    assert "basket" not in excitatory
    assert vocabulary.descendants("L5 ET") == {"L5 ET"}
    assert vocabulary.descendants("neuron") >= excitatory | vocabulary.descendants("inhibitory")
    assert vocabulary.ancestors("L2/3 pyramidal") == ["neuron", "excitatory", "pyramidal", "L2/3 pyramidal"]
    assert vocabulary.ancestors("glia") == ["glia"]
    assert vocabulary.ancestors("PV+") == ["neuron", "inhibitory", "basket"]  # resolved first


@pytest.mark.parametrize(
    "typed, canonical",
    [
        ("L2/3 pyramidal", "L2/3 pyramidal"),
        ("l23 PYRAMIDAL", "L2/3 pyramidal"),
        ("  layer   2/3 pyramidal ", "L2/3 pyramidal"),
        ("L2/3 PC", "L2/3 pyramidal"),
        ("L5 thick-tufted", "L5 ET"),
        ("l5 pt", "L5 ET"),
        ("PV basket", "basket"),
        ("pv+", "basket"),
        ("sst", "Martinotti"),
        ("martinotti", "Martinotti"),
        ("VIP", "bipolar"),
        ("Astro", "astrocyte"),
        ("oligodendrocyte precursor cell", "OPC"),
        ("opc", "OPC"),
    ],
)
def test_synonyms_and_case_resolve(vocabulary, typed, canonical):
    assert vocabulary.resolve(typed) == canonical
    assert typed in vocabulary
    assert vocabulary.get(typed).name == canonical


def test_unknown_term_suggests_nearest(vocabulary):
    with pytest.raises(UnknownTerm) as caught:
        vocabulary.resolve("pyramidl")
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.term == "pyramidl"
    assert error.suggestions[0] == "pyramidal"
    assert len(error.suggestions) <= 5 and len(set(error.suggestions)) == len(error.suggestions)
    assert str(error).startswith("unknown cell type 'pyramidl'; did you mean: pyramidal, ")
    assert pickle.loads(pickle.dumps(error)).suggestions == error.suggestions
    assert "pyramidl" not in vocabulary


def test_suggestions_map_synonyms_and_substrings(vocabulary):
    def suggestions(text):
        with pytest.raises(UnknownTerm) as caught:
            vocabulary.resolve(text)
        return caught.value.suggestions

    pyr = suggestions("pyr")
    assert pyr[0] == "pyramidal" and "L2/3 pyramidal" in pyr
    assert suggestions("astrocite") == ["astrocyte"]
    assert suggestions("chandelier neuron")[0] == "chandelier"
    assert suggestions("SST cell")[0] == "Martinotti"  # a synonym's term, not the synonym
    assert set(suggestions("L5")) == {"L5 IT", "L5 ET", "L5 NP"}
    assert suggestions("qwertyuiop") == []
    assert str(UnknownTerm("qwertyuiop", [])) == "unknown cell type 'qwertyuiop'"


def test_empty_and_non_text_are_rejected(vocabulary):
    with pytest.raises(ValueError, match="empty"):
        vocabulary.resolve("   ")
    with pytest.raises(TypeError):
        vocabulary.resolve(None)
    assert None not in vocabulary


def test_free_terms_when_allowed():
    free = Vocabulary.from_dict(small(allow_free_terms=True))
    assert free.allow_free_terms
    assert free.resolve("  my odd cell ") == "my odd cell"
    assert free.resolve("pc") == "pyramidal"  # known terms still resolve
    assert "my odd cell" not in free
    assert free.descendants("my odd cell") == {"my odd cell"}
    assert free.ancestors("my odd cell") == ["my odd cell"]
    assert free.children("my odd cell") == []
    with pytest.raises(UnknownTerm):
        free.get("my odd cell")
    strict = Vocabulary.from_dict(small())
    assert not strict.allow_free_terms
    with pytest.raises(UnknownTerm):
        strict.resolve("my odd cell")


# -- per-installation and per-dataset vocabularies ------------------------------------------


def test_for_dataset_without_files_is_the_default(tmp_path):
    assert Vocabulary.for_dataset(tmp_path).to_dict() == Vocabulary.default().to_dict()
    assert Vocabulary.for_dataset(tmp_path, "mouse_v1").to_dict() == Vocabulary.default().to_dict()


def test_for_dataset_merges_home_then_dataset(tmp_path):
    write(
        tmp_path / "vocabulary.json",
        {
            "terms": [
                {
                    "name": "L2/3 pyramidal type A",
                    "parent": "L2/3 pyramidal",
                    "synonyms": ["23P-A"],
                    "description": "A lab's own subtype.",
                },
                {"name": "basket", "description": "Home description."},
            ]
        },
    )
    write(
        tmp_path / "vocabularies" / "mouse_v1.json",
        {
            "allow_free_terms": True,
            "terms": [
                {"name": "basket", "description": "Dataset description."},
                {"name": "my interneuron", "parent": "inhibitory"},
            ],
        },
    )
    other = Vocabulary.for_dataset(tmp_path, "other_dataset")
    assert "L2/3 pyramidal type A" in other.descendants("excitatory")
    assert other.resolve("23p-a") == "L2/3 pyramidal type A"
    assert other.get("basket").description == "Home description."
    assert "my interneuron" not in other and not other.allow_free_terms

    mine = Vocabulary.for_dataset(tmp_path, "mouse_v1")
    assert "my interneuron" in mine.descendants("inhibitory")
    assert mine.ancestors("my interneuron") == ["neuron", "inhibitory", "my interneuron"]
    basket = mine.get("basket")
    assert basket.description == "Dataset description."
    assert basket.parent == "inhibitory" and "PV+" in basket.synonyms  # fields not given are kept
    assert mine.allow_free_terms
    assert Vocabulary.default().get("basket").description != "Dataset description."  # cache untouched


def test_for_dataset_reports_the_bad_file(tmp_path):
    write(tmp_path / "vocabularies" / "broken.json", {"terms": [{"name": "x", "parent": "no such parent"}]})
    with pytest.raises(ValueError, match=r"broken\.json.*unknown parent 'no such parent'"):
        Vocabulary.for_dataset(tmp_path, "broken")
    (tmp_path / "vocabularies" / "garbled.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"garbled\.json: not valid JSON"):
        Vocabulary.for_dataset(tmp_path, "garbled")
    with pytest.raises(ValueError, match="bad dataset name"):
        Vocabulary.for_dataset(tmp_path, "../escape")


def test_merged_overrides_terms_and_free_flag():
    base = Vocabulary.from_dict(small())
    extra = Vocabulary.from_dict(
        {
            "allow_free_terms": True,
            "terms": [
                {"name": "chandelier", "parent": None, "synonyms": ["ChC"], "description": "A chandelier cell."},
                {"name": "Basket", "description": "Overridden."},
            ],
        }
    )
    merged = base.merged(extra)
    assert merged.allow_free_terms
    assert merged.resolve("chc") == "chandelier"
    assert merged.get("pv").description == "Overridden."
    assert merged.ancestors("basket") == ["neuron", "Basket"]  # parent kept, name respelled
    assert base.resolve("basket") == "basket"  # merged() makes a new vocabulary
    unset = Vocabulary.from_dict({"terms": [{"name": "x"}]})
    assert not Vocabulary.from_dict(small(allow_free_terms=False)).merged(unset).allow_free_terms
    assert Vocabulary.from_dict(small(allow_free_terms=True)).merged(unset).allow_free_terms


def test_load_reads_a_file(tmp_path):
    write(tmp_path / "v.json", small())
    assert Vocabulary.load(tmp_path / "v.json").resolve("PC") == "pyramidal"
    write(tmp_path / "bad.json", small(terms=[{"name": ""}]))
    with pytest.raises(ValueError, match=r"bad\.json: term #1 has an empty or missing name"):
        Vocabulary.load(tmp_path / "bad.json")


# -- validation and the file format ---------------------------------------------------------


@pytest.mark.parametrize(
    "terms, message",
    [
        (
            [{"name": "a", "parent": "b"}, {"name": "b", "parent": "a"}],
            r"cycle in the cell-type hierarchy: a -> b -> a",
        ),
        ([{"name": "a", "parent": "a"}], r"cycle.*a -> a"),
        ([{"name": "a", "parent": "nope"}], r"term 'a' has unknown parent 'nope'"),
        (
            [{"name": "a", "synonyms": ["x"]}, {"name": "b", "synonyms": ["X"]}],
            r"synonym 'X' of term 'b' clashes with a synonym of 'a'",
        ),
        (
            [{"name": "a"}, {"name": "b", "synonyms": ["A"]}],
            r"synonym 'A' of term 'b' clashes with the name of term 'a'",
        ),
        ([{"name": "a"}, {"name": " A "}], r"duplicate term name 'A'"),
        ([{"name": "  "}], r"empty or missing name"),
        ([{"parent": None}], r"empty or missing name"),
        ([{"name": "a", "synonyms": [""]}], r"empty or non-text synonym"),
        ([{"name": "a", "synonyms": "x"}], r"synonyms must be a list"),
        ([{"name": "a", "synonym": ["x"]}], r"unknown field\(s\) 'synonym'"),
    ],
)
def test_validation_errors(terms, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_dict({"terms": terms})


def test_validation_of_the_top_level():
    with pytest.raises(ValueError, match="allow_free_terms must be true or false"):
        Vocabulary.from_dict(small(allow_free_terms="yes"))
    with pytest.raises(ValueError, match="unknown key"):
        Vocabulary.from_dict(small(term=[]))
    with pytest.raises(ValueError, match="JSON object"):
        Vocabulary.from_dict([])


def test_a_merge_that_makes_a_cycle_is_rejected():
    base = Vocabulary.from_dict(small())
    with pytest.raises(ValueError, match="cycle"):
        # Valid alone (pyramidal is top-level there), but pyramidal keeps its parent "neuron" here.
        base.merged(Vocabulary.from_dict({"terms": [{"name": "neuron", "parent": "pyramidal"}, {"name": "pyramidal"}]}))


def test_to_dict_round_trips(vocabulary):
    data = vocabulary.to_dict()
    assert set(data) == {"allow_free_terms", "terms"}
    assert set(data["terms"][0]) == {"name", "parent", "synonyms", "description"}
    again = Vocabulary.from_dict(json.loads(json.dumps(data)))
    assert again.to_dict() == data
    assert again.terms() == vocabulary.terms()
    free = Vocabulary.from_dict(small(allow_free_terms=True))
    assert Vocabulary.from_dict(free.to_dict()).to_dict() == free.to_dict()
    # Synonyms repeating the name or each other are dropped; parents may be given as a synonym.
    tidy = Vocabulary.from_dict({"terms": [{"name": "a", "synonyms": ["A", "x", "X "]}, {"name": "b", "parent": "x"}]})
    assert tidy.to_dict()["terms"] == [
        {"name": "a", "parent": None, "synonyms": ["x"], "description": ""},
        {"name": "b", "parent": "a", "synonyms": [], "description": ""},
    ]
