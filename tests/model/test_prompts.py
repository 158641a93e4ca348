import pytest

from aaclip_med.prompts import (
    DEFAULT_PROMPTS,
    PromptSet,
    get_descriptions,
    list_description_sets,
    resolve_description,
)


def test_default_prompt_ensemble_sentences():
    normal, anomalous = DEFAULT_PROMPTS.sentences("bottle")
    assert normal == ["bottle.", "a photo of bottle.", "a bottle.", "a photo of a bottle.", "the bottle.",
                      "a photo of the bottle."]
    assert len(anomalous) == 10
    assert "a damaged bottle." in anomalous and "a photo of a bottle with defect." in anomalous
    assert set(anomalous) == {
        t.format(s.format("bottle"))
        for s in ("a damaged {}", "a broken {}", "a {} with flaw", "a {} with defect", "a {} with damage")
        for t in ("{}.", "a photo of {}.")
    }


def test_prompt_set_validation_and_override():
    custom = PromptSet.from_dict({"templates": ["a picture of {}."], "anomalous": ["a corrupted {}"]})
    normal, anomalous = custom.sentences("scan")
    assert anomalous == ["a picture of a corrupted scan."]
    assert len(normal) == 3
    with pytest.raises(ValueError, match="placeholder"):
        PromptSet(templates=("no placeholder",))
    with pytest.raises(ValueError, match="Unknown prompt keys"):
        PromptSet.from_dict({"tempaltes": ["{}"]})
    with pytest.raises(ValueError, match="non-empty"):
        DEFAULT_PROMPTS.sentences("  ")


def test_description_registries():
    assert {"mvtec", "visa", "btad", "mpdd", "bmad", "polyp"} <= set(list_description_sets())
    assert len(get_descriptions("mvtec")) == 15
    assert len(get_descriptions("visa")) == 12
    assert len(get_descriptions("btad")) == 3
    assert len(get_descriptions("mpdd")) == 6
    assert set(get_descriptions("bmad").values()) == {"scan"}
    assert set(get_descriptions("polyp").values()) == {"colon endoscopy image"}
    registry = get_descriptions("mvtec")
    registry["bottle"] = "changed"
    assert get_descriptions("mvtec")["bottle"] != "changed"  # copies, not the registry itself


def test_resolve_description_order_and_errors():
    assert resolve_description("bottle", {"bottle": "mine"}) == "mine"
    assert resolve_description("brain", dataset="bmad") == "scan"
    assert resolve_description("kvasir") == "colon endoscopy image"
    with pytest.raises(ValueError, match="No description for class 'alien'.*--description"):
        resolve_description("alien")
    with pytest.raises(ValueError, match="available"):
        get_descriptions("nope")


def test_folder_name_variants_resolve():
    assert resolve_description("CVC-ClinicDB") == "colon endoscopy image"
    assert resolve_description("cvc_300") == "colon endoscopy image"
    assert resolve_description("brainmri", dataset="bmad") == "scan"
    assert resolve_description("Metal_Nut", dataset="mvtec") == "silver metal nut"
