import argparse

import numpy as np
import pytest

from experiments.copy_drills import SHIPPED_TOKENIZER, batch, parse_plan
from orchestra.model.chat import load_tokenizer
from orchestra.rl.curriculum import copy_vocabulary


def test_plans_parse_and_bad_phases_name_themselves():
    assert parse_plan("bare:400,framed:250") == [("bare", 400), ("framed", 250)]
    for bad in ("bare", "chat:10", "whole:0", "framed:x"):
        with pytest.raises(argparse.ArgumentTypeError, match=bad.split(",")[0]):
            parse_plan(bad)


def test_drill_kinds_differ_only_in_the_frame_around_the_pieces():
    tokenizer = load_tokenizer(SHIPPED_TOKENIZER)
    pieces = copy_vocabulary(tokenizer)
    frame = {}
    for kind in ("bare", "framed", "whole"):
        tokens, mask, segments = batch(kind, pieces, tokenizer, 16, 128, np.random.default_rng(0))
        n = mask.sum(1) - 1  # the loss is on the second copy of the pieces and <|im_end|>
        assert (mask[:, 0] == 0).all() and (segments.sum(1) > 2 * n + 1).all()
        frame[kind] = segments.sum(1) - 2 * n - 1  # tokens around the two copies
    # bare: a start token and a newline; whole: the whole chat frame; framed: in between
    assert (frame["bare"] == 2).all()
    assert (frame["whole"] == frame["whole"][0]).all() and frame["whole"][0] > 50
    assert (frame["framed"] >= 2).all() and (frame["framed"] <= frame["whole"]).all()
    assert len(set(frame["framed"].tolist())) > 5
