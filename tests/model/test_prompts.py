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
    assert resolve_description("Metal_Nut", dataset="mvtec") == "metal nut which has four notched edges"
    assert resolve_description("Retina_RESC_AD") == "scan"  # BMAD's folder names
    for name in ("Brain_AD", "Liver_AD", "Retina_RESC_AD", "Retina_OCT2017_AD"):
        assert resolve_description(name, dataset="bmad") == "scan"
    for name in ("Kvasir", "CVC-ClinicDB", "CVC-ColonDB", "CVC-300", "Kvasir-SEG"):
        assert resolve_description(name, dataset="polyp") == "colon endoscopy image"


# The class descriptions of the published runs (spec section 11), written out independently of the
# registry files: the text anchors, and so every zero-shot number, depend on these exact strings.
PUBLISHED = {
    "mvtec": {
        "bottle": "dark bottle",
        "cable": "top view of three cables",
        "capsule": "black and orange capsule",
        "carpet": "gray carpet",
        "grid": "metal or plastic mesh",
        "hazelnut": "single brown hazelnut",
        "leather": "brown leather",
        "metal_nut": "metal nut which has four notched edges",
        "pill": "oval white pill with small red speckles and the letters 'FF' engraved",
        "screw": "screw",
        "tile": "speckled tile surface",
        "transistor": "a three-legged transistor placed vertically",
        "toothbrush": "toothbrush head",
        "wood": "wood surface",
        "zipper": "a black zipper",
    },
    "visa": {
        "candle": "candle",
        "capsules": "capsules",
        "cashew": "cashew nut",
        "chewinggum": "chewing gum",
        "fryum": "wheel-shaped fryum snack",
        "macaroni1": "orange macaroni",
        "macaroni2": "scattered yellow macaroni",
        "pcb1": "dual ultrasonic distance sensor pcb module",
        "pcb2": "integrated circuits board",
        "pcb3": "infrared sensor pcb module",
        "pcb4": "battery charging pcb module",
        "pipe_fryum": "pipe-shaped fryum",
    },
    "mpdd": {
        "bracket_black": "black ornamental metal bracket with spiral design attached to a rectangular frame",
        "bracket_brown": "brown L-shaped metal bracket with smooth, glossy finish and multiple mounting holes "
                         "along its arms",
        "bracket_white": "white, elongated triangular metal bracket with a smooth, matte finish",
        "connector": "metal clamps with black adjustment knobs",
        "metal_plate": "blue rectangular metal plate with a notch on one side",
        "tubes": "scattered metal objects",
    },
    "btad": {
        "01": "Bright concentric rings in neon yellow and blue tones against a dark blue background, resembling a "
              "stylized wave or energy field radiating outward.",
        "02": "vertical fabric lines in warm, dusty pink and beige tones",
        "03": "oval concentric circular rings in gradient shades of blue and white",
    },
}


@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
def test_registries_hold_the_published_strings(dataset):
    assert get_descriptions(dataset) == PUBLISHED[dataset]
    for class_name, text in PUBLISHED[dataset].items():
        assert resolve_description(class_name, dataset=dataset) == text
        assert resolve_description(class_name) == text  # no other registry shadows it


def test_published_descriptions_can_be_overridden():
    assert resolve_description("bottle", {"bottle": "green glass bottle"}, dataset="mvtec") == "green glass bottle"
    assert resolve_description("bottle", {"cable": "x"}, dataset="mvtec") == "dark bottle"
