"""The typed critic score shared by every critique signature."""

from typing import Literal, get_args

Score = Literal[1, 2, 3, 4, 5]
"""A critic's rating on the paper's 1..5 scale; its JSON schema is ``{"enum": [1, 2, 3, 4, 5]}``."""

SCORE_RANGE: tuple[int, ...] = get_args(Score)
