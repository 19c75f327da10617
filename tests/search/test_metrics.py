from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from search import metrics as M


def _t(a):
    return torch.tensor(a, dtype=torch.float32)


Y = _t([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
S = _t([[2.0, -1.0, 0.5], [0.3, -0.2, 9.0], [-1.0, -2.0, -3.0], [5.0, -1.0, 1.0]])


def test_route_acc_ignores_unobserved() -> None:
    # q0 -> model 0 (correct); q1 -> model 0 since model 2 is unobserved (wrong);
    # q2 -> model 0 (wrong); q3 -> model 2 since model 0 is unobserved (wrong).
    assert M.route_acc(S, Y, MASK) == pytest.approx(0.25)


def test_route_acc_skips_questions_without_observations() -> None:
    mask = MASK.clone()
    mask[2] = False
    assert M.route_acc(S, Y, mask) == pytest.approx(1 / 3)


def test_correctness_acc() -> None:
    # observed pairs: 10; predictions logit>0
    pred = (S > 0).float()
    expected = float(((pred == Y) & MASK).sum()) / float(MASK.sum())
    assert M.correctness_acc(S, Y, MASK) == pytest.approx(expected)


def test_masked_bce_matches_manual() -> None:
    manual = torch.nn.functional.binary_cross_entropy_with_logits(S[MASK], Y[MASK])
    assert float(M.masked_bce(S, Y, MASK)) == pytest.approx(float(manual), rel=1e-6)


def test_auc_against_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=(30, 4)).astype(np.float32)  # many ties
    y = (rng.random((30, 4)) < 0.4).astype(np.float32)
    m = rng.random((30, 4)) < 0.8
    pos, neg = s[m & (y == 1)], s[m & (y == 0)]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert M.auc(s, y, m) == pytest.approx(pairwise)


def test_auc_perfect_and_degenerate() -> None:
    y = _t([[1, 0], [0, 1]])
    assert M.auc(y * 2 - 1, y, torch.ones(2, 2, dtype=torch.bool)) == 1.0
    assert math.isnan(M.auc(y, torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool)))


def test_single_best_and_oracle() -> None:
    y_train = _t([[1, 0, 1], [1, 0, 0], [1, 1, 1]])
    m_train = torch.ones(3, 3, dtype=torch.bool)
    # best on train: model 0 (3/3), then model 2 (2/3): q0 -> 0 (right), q1 -> 0 (wrong),
    # q2 -> 0 (wrong), q3 -> model 0 unobserved, so model 2 (wrong)
    assert M.single_best_route_acc(y_train, m_train, Y, MASK) == pytest.approx(0.25)
    # model 1 now ties model 0 (the first wins): q0 right; q3 skips unobserved model 0 for
    # model 1, right
    y_train[:, 1] = 1.0
    assert M.single_best_route_acc(y_train, m_train, Y, MASK) == pytest.approx(0.5)
    # oracle: q0 yes, q1 yes, q2 no, q3 yes (model 1)
    assert M.oracle_route_acc(Y, MASK) == pytest.approx(0.75)


def test_numpy_inputs() -> None:
    assert M.route_acc(S.numpy(), Y.numpy(), MASK.numpy()) == pytest.approx(0.25)


def test_paired_bootstrap_textbook_cases() -> None:
    # identical differences everywhere: the interval is that difference, no spread
    a, b = torch.ones(50), torch.zeros(50)
    assert M.paired_bootstrap(a, b) == (1.0, 1.0, 1.0)
    # a large sample: the percentile interval is the normal one, mean +- 1.96 sd / sqrt(n)
    gen = torch.Generator().manual_seed(1)
    a = (torch.rand(4000, generator=gen) < 0.72).double()
    b = (torch.rand(4000, generator=gen) < 0.70).double()
    diff, low, high = M.paired_bootstrap(a, b, samples=4000)
    d = a - b
    half = 1.96 * float(d.std()) / math.sqrt(d.numel())
    assert diff == pytest.approx(float(d.mean()))
    assert low == pytest.approx(diff - half, abs=0.004) and high == pytest.approx(diff + half, abs=0.004)
    # pairing: a shared component cancels (b = a except on 10 questions): a narrow interval
    a = (torch.rand(1000, generator=gen) < 0.5).double()
    b = a.clone()
    b[:10] = 1 - b[:10]
    _, low, high = M.paired_bootstrap(a, b)
    assert high - low < 0.02
    assert M.paired_bootstrap(a, b, seed=3) == M.paired_bootstrap(a, b, seed=3)  # reproducible


def test_verdict_words() -> None:
    assert M.verdict(0.001, 0.02) == "better"
    assert M.verdict(-0.02, -0.001) == "worse"
    assert M.verdict(-0.01, 0.01) == "not distinguishable"
    with pytest.raises(ValueError, match="equal, non-empty"):
        M.paired_bootstrap(torch.ones(3), torch.ones(4))


def test_route_acc_with_a_margin_and_tune_margin() -> None:
    # LLM 0 is right on q0, q1; LLM 1 on q1, q2 (predicted 0.6 vs 0.55/0.9)
    p = torch.tensor([[0.60, 0.55], [0.60, 0.65], [0.50, 0.90]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    mask = torch.ones(3, 2, dtype=torch.bool)
    logits = torch.logit(p)
    assert M.route_acc(logits, y, mask) == pytest.approx(1.0)
    assert M.route_acc(logits, y, mask, [0.5, 0.0]) == pytest.approx(2 / 3)  # always LLM 0
    offsets, margin, acc = M.tune_margin(logits, y, mask, anchor=0, grid=(0.0, 0.1, 0.5))
    assert (margin, acc) == (0.0, 1.0) and offsets == [0.0, 0.0]  # ties go to plain argmax
