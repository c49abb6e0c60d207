"""Every public class documents its arguments and shows a runnable example, as DSPy's own modules do."""

import inspect
import re

import pytest

import spri_dspy

EXAMPLE = re.compile(r"\n    Example:\n        ```python\n(.*?)\n        ```", re.S)
PUBLIC_CLASSES = [name for name in spri_dspy.__all__ if inspect.isclass(getattr(spri_dspy, name))
                  and not issubclass(getattr(spri_dspy, name), (Exception, dict))]


def example_of(name):
    match = EXAMPLE.search(inspect.getdoc(getattr(spri_dspy, name)).replace("\n", "\n    "))
    assert match, f"{name} has no Example block"
    return "\n".join(line[8:] for line in match.group(1).split("\n"))


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_public_class_has_args_and_an_example_that_compiles(name):
    doc = inspect.getdoc(getattr(spri_dspy, name))
    assert "\nArgs:\n" in doc or "Takes no arguments" in doc, name
    compile(example_of(name), f"<{name} example>", "exec")


def test_every_public_name_has_a_docstring():
    for name in spri_dspy.__all__:
        value = getattr(spri_dspy, name)
        if callable(value) and not isinstance(value, str):
            assert inspect.getdoc(value), name


@pytest.mark.embedded
@pytest.mark.parametrize("name", ["Vanilla", "PrincipleCritic"])
def test_examples_run_on_the_embedded_model(name, capsys):
    import dspy

    before = dspy.settings.lm, dspy.settings.adapter
    try:
        exec(compile(example_of(name), f"<{name} example>", "exec"), {})
    finally:
        dspy.configure(lm=before[0], adapter=before[1])
    assert capsys.readouterr().out.strip()
