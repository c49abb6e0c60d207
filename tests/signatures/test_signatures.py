"""Signatures: typed, range-carrying scores and the fields each step reads and writes."""

import pydantic
import pytest

from spri_dspy import signatures
from spri_dspy.signatures import Score


@pytest.mark.parametrize("signature", [signatures.CritiquePrinciples, signatures.CritiqueResponse])
def test_critic_score_schema_carries_the_range(signature):
    assert list(signature.output_fields) == ["feedback", "score"]
    adapter_model = pydantic.create_model("Out", score=(signature.output_fields["score"].annotation, ...))
    assert adapter_model.model_json_schema()["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    with pytest.raises(pydantic.ValidationError):
        adapter_model(score=6)


def test_every_signature_has_its_own_instruction_and_optional_goal():
    names = ["GeneratePrinciples", "CritiquePrinciples", "RefinePrinciples", "Respond", "CritiqueResponse", "RefineResponse"]
    instructions = {getattr(signatures, n).instructions for n in names}
    assert len(instructions) == 6
    for name in names:
        signature = getattr(signatures, name)
        assert list(signature.input_fields)[:2] == ["query", "goal"]
        assert signature.input_fields["goal"].annotation == (str | None)


def test_score_is_the_five_point_scale():
    assert Score.__args__ == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("signature, field", [(signatures.RefinePrinciples, "principles"),
                                              (signatures.RefineResponse, "response"),
                                              (signatures.RefineDirectly, "response"),
                                              (signatures.RefineRubric, "rubric")])
def test_refiners_read_a_draft_and_write_the_stage_field(signature, field):
    # the answer key is the stage's own field, never "refined_*" (a small model wrote "Refine ..." after it)
    assert list(signature.output_fields) == [field]
    assert f"draft_{field}" in signature.input_fields and "feedback" in signature.input_fields
