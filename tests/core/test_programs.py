"""The program registry, build_program, and compiled programs saved and loaded with their settings."""

import json

import dspy
import pytest

from spri_dspy import PROGRAMS, SPRI, SPRIJudge, build_program, load_program, save_program
from spri_dspy.core.baselines import MT_BENCH_RUBRIC, RubricJudge, SeedPrinciples
from spri_dspy.core.programs import program_settings, read_metadata

SEEDS = [{"query": "q1", "principles": "p1", "goal": "g"}, {"query": "q2", "principles": "p2"}]


def test_settings_and_compiled_demos_survive_a_save_and_load(tmp_path):
    """DSPy's own load into SPRI() brings back threshold 4 and 4 rounds; load_program restores the program."""
    program = SPRI(threshold=2, max_rounds=3, keep="best", max_words=None, framing="Reply as a haiku.")
    program.principle_critic.predict.demos = [dspy.Example(query="q", principles="p", feedback="f", score=2)]
    save_program(program, tmp_path / "p.json")
    loaded = load_program(tmp_path / "p.json")
    assert type(loaded) is SPRI
    assert (loaded.threshold, loaded.max_rounds, loaded.keep, loaded.max_words, loaded.framing) == (
        2, 3, "best", None, "Reply as a haiku.")
    assert (loaded.principles_stage.threshold, loaded.response_stage.max_rounds) == (2, 3)
    assert [dict(d) for d in loaded.principle_critic.predict.demos] == [
        {"query": "q", "principles": "p", "feedback": "f", "score": 2}]
    assert "Reply as a haiku." in loaded.responder.predict.signature.instructions
    metadata = read_metadata(tmp_path / "p.json")
    assert (metadata["kind"], metadata["program"], metadata["class"]) == ("response", "spri", "SPRI")
    assert metadata["version"] == "0.1.0"
    default = SPRI()
    default.load(str(tmp_path / "p.json"))  # DSPy's load still reads the file (state only)
    assert default.principle_critic.predict.demos[0]["feedback"] == "f"


@pytest.mark.parametrize("kind, name", list(PROGRAMS))
def test_every_program_round_trips(tmp_path, kind, name):
    # module: Situated's (a string signature, so the file alone rebuilds it); the other programs take none
    program = build_program(name, kind, seeds=SEEDS, threshold=3, max_rounds=2, keep="best", module="query -> response")
    save_program(program, tmp_path / "p.json")
    loaded = load_program(tmp_path / "p.json")
    assert type(loaded) is type(program)
    assert program_settings(loaded) == program_settings(program)
    assert read_metadata(tmp_path / "p.json")["program"] == name
    assert loaded.dump_state() == program.dump_state()


def test_build_program_takes_one_settings_dict_for_every_program():
    settings = {"threshold": 5, "max_rounds": 1, "seeds": SEEDS, "max_words": 64, "use_reference": False}
    spri = build_program("spri", **settings)
    assert (spri.threshold, spri.max_rounds, spri.max_words, len(spri.principle_generator.predict.demos)) == (5, 1, 64, 2)
    assert build_program("vanilla", **settings).max_words == 64
    seeded = build_program("seed-principles", **settings)
    assert isinstance(seeded, SeedPrinciples) and len(seeded.seeds) == 2
    judge = build_program("mt-bench", "judge", **settings)
    assert isinstance(judge, RubricJudge) and judge.rubric == MT_BENCH_RUBRIC and judge.seeds == []
    assert judge.use_reference is False
    assert isinstance(build_program("spri", "judge", **settings), SPRIJudge)


def test_build_program_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown response program 'nope'; known: spri, vanilla"):
        build_program("nope")
    with pytest.raises(ValueError, match="program 'seed-rubrics' needs seeds"):
        build_program("seed-rubrics", "judge")


def test_load_program_overrides_and_critic_lm(tmp_path, scripted):
    save_program(SPRI(threshold=2), tmp_path / "p.json")
    _, critic = scripted({}, model="scripted/critic")
    loaded = load_program(tmp_path / "p.json", critic_lm=critic, threshold=5)
    assert loaded.threshold == 5 and loaded.principle_critic.predict.lm is critic
    assert loaded.responder.predict.lm is None


def test_saved_files_hold_no_lm_and_no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123456")
    program = SPRI(framing="say sk-secret-123456")
    save_program(program, tmp_path / "p.json")
    text = (tmp_path / "p.json").read_text()
    assert "sk-secret-123456" not in text
    assert "lm" not in json.loads(text)["spri_dspy"]["settings"]


def test_not_a_saved_program(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a program saved by 'spri compile'"):
        load_program(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"spri_dspy": {"kind": "response", "program": "gone"}}))
    with pytest.raises(ValueError, match="unknown response program 'gone'"):
        load_program(tmp_path / "y.json")
    with pytest.raises(TypeError, match="not one of spri_dspy's programs"):
        save_program(dspy.Predict("a -> b"), tmp_path / "z.json")


def test_a_program_whose_critic_is_on_an_engine_lm_saves_without_any_lm(tmp_path):
    """DSPy cannot save an LM built on an engine (openai_lm's pooled one, which the CLI gives every openai/
    model): saving such a critic used to fail; the file holds no step LM, the critic is given again at load."""
    from spri_dspy import openai_lm

    critic = openai_lm("openai/critic", "http://127.0.0.1:9/v1", api_key="sk-never-saved-0123456789")
    program = SPRI(critic_lm=critic)
    save_program(program, tmp_path / "p.json")
    text = (tmp_path / "p.json").read_text()
    assert "sk-never" not in text and "openai/critic" not in text
    assert all(state.get("lm") is None for state in json.loads(text).values() if isinstance(state, dict))
    assert program.principle_critic.predict.lm is critic  # saving left the program as it was
    other = openai_lm("openai/other", "http://127.0.0.1:9/v1")
    loaded = load_program(tmp_path / "p.json", critic_lm=other)
    assert loaded.principle_critic.predict.lm is other and loaded.principle_generator.predict.lm is None
