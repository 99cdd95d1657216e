import math
import warnings
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from torchmetrics import MetricCollection

import vlc.metrics.meteor as meteor_module
from vlc.data.vocab import Vocabulary, tokenize
from vlc.metrics.bleu import CorpusBLEU
from vlc.metrics.caption_cosine import CaptionCosineSimilarity
from vlc.metrics.cider import CIDErD
from vlc.metrics.meteor import Meteor, meteor_available
from vlc.metrics.rouge import RougeL

PREDS = [
    "A red circle above a blue square.",
    "a small green star to the left of a yellow ring",
    "A purple cross.",
    "two blue squares next to each other",
    "a big yellow triangle below a red star",
]
TARGETS = [
    ["a red circle above a blue square", "A red circle is above a large blue square."],
    ["a small green star to the left of a yellow ring", "a green star left of a ring", "a star and a ring"],
    ["a purple cross on grey", "purple cross"],
    ["a blue square to the right of a blue square", "two squares"],
    ["a yellow triangle above a red star", "a large yellow triangle below a small red star"],
]
# Hypotheses of at most 3 words and no matching 3-gram: BLEU-3 and BLEU-4 have no match.
SHORT_PREDS = ["a red circle", "blue square", "green star"]
SHORT_TARGETS = [["a red square"], ["a blue square"], ["a green star"]]


def coco_inputs(preds, targets):
    gts = {i: [" ".join(tokenize(ref)) for ref in refs] for i, refs in enumerate(targets)}
    res = {i: [" ".join(tokenize(pred))] for i, pred in enumerate(preds)}
    return gts, res


def nltk_bleu(preds, targets, n=4):
    hyps = [tokenize(pred) for pred in preds]
    refs = [[tokenize(ref) for ref in refs] for refs in targets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns about orders with no match
        return [nltk_corpus_bleu(refs, hyps, weights=(1 / k,) * k) for k in range(1, n + 1)]


def compute(metric_cls, preds, targets, **kwargs):
    metric = metric_cls(**kwargs)
    metric.update(preds, targets)
    return metric.compute()


def bleu_values(result):
    return [result[f"bleu_{k}"].item() for k in range(1, len(result) + 1)]


# ---------------------------------------------------------------- BLEU


def test_bleu_matches_pycocoevalcap():
    ours = bleu_values(compute(CorpusBLEU, PREDS, TARGETS))
    coco, _ = Bleu(4).compute_score(*coco_inputs(PREDS, TARGETS), verbose=0)
    assert ours == pytest.approx(coco, abs=1e-6)
    # by hand: 32 of 36 words match; closest reference lengths sum to 37
    assert ours[0] == pytest.approx(math.exp(1 - 37 / 36) * 32 / 36, abs=1e-6)
    assert ours == pytest.approx([0.864537, 0.789847, 0.748929, 0.709162], abs=1e-5)


def test_bleu_matches_nltk_when_hypotheses_have_n_words():
    long = [i for i, pred in enumerate(PREDS) if len(tokenize(pred)) >= 4]
    preds, targets = [PREDS[i] for i in long], [TARGETS[i] for i in long]
    assert bleu_values(compute(CorpusBLEU, preds, targets)) == pytest.approx(nltk_bleu(preds, targets), abs=1e-6)
    # with the 3-word "a purple cross", nltk counts one phantom 4-gram in the denominator
    ours, reference = bleu_values(compute(CorpusBLEU, PREDS, TARGETS)), nltk_bleu(PREDS, TARGETS)
    assert ours[:3] == pytest.approx(reference[:3], abs=1e-6) and ours[3] > reference[3] + 1e-3


def test_bleu_short_corpus_keeps_low_orders_and_zeroes_unmatched_ones():
    ours = bleu_values(compute(CorpusBLEU, SHORT_PREDS, SHORT_TARGETS))
    reference = nltk_bleu(SHORT_PREDS, SHORT_TARGETS)
    coco, _ = Bleu(4).compute_score(*coco_inputs(SHORT_PREDS, SHORT_TARGETS), verbose=0)
    # 6 of 7 words and 3 of 4 bigrams match; 9 reference words: brevity penalty exp(1 - 9/7)
    brevity = math.exp(1 - 9 / 7)
    assert ours[0] == pytest.approx(brevity * 6 / 7, abs=1e-6)
    assert ours[1] == pytest.approx(brevity * math.sqrt(6 / 7 * 3 / 4), abs=1e-6)
    assert ours[2:] == [0.0, 0.0]
    assert ours[:2] == pytest.approx(reference[:2], abs=1e-6) and max(reference[2:]) < 1e-50
    assert ours[:2] == pytest.approx(coco[:2], abs=1e-6)
    # pycocoevalcap's epsilon guard gives a tiny arbitrary non-zero BLEU-3/4 instead
    assert 0 < coco[2] < 1e-4 and 0 < coco[3] < 1e-4


def test_bleu_corpus_without_four_grams():
    preds, targets = ["a red circle", "blue square"], [["a red circle"], ["blue square"]]
    assert bleu_values(compute(CorpusBLEU, preds, targets)) == [1.0, 1.0, 1.0, 0.0]
    coco, _ = Bleu(4).compute_score(*coco_inputs(preds, targets), verbose=0)
    assert coco[:3] == pytest.approx([1.0] * 3) and coco[3] == pytest.approx(1e-6**0.25, rel=1e-3)  # ~0.03
    assert nltk_bleu(preds, targets)[3] < 1e-50


def test_bleu_four_gram_order_without_match():
    preds, targets = ["a red circle above it"], [["a red circle below it"]]
    ours = bleu_values(compute(CorpusBLEU, preds, targets))
    assert ours[:3] == pytest.approx([0.8, math.sqrt(0.8 * 2 / 4), (0.8 * 2 / 4 * 1 / 3) ** (1 / 3)], abs=1e-6)
    assert ours[3] == 0.0
    assert ours == pytest.approx(nltk_bleu(preds, targets), abs=1e-6)


def test_bleu_perfect_and_unrelated_captions():
    perfect = compute(CorpusBLEU, [refs[0] for refs in TARGETS], TARGETS)
    assert bleu_values(perfect) == pytest.approx([1.0] * 4, abs=1e-6)
    unrelated = compute(CorpusBLEU, ["one dog sleeps in my house"] * len(TARGETS), TARGETS)
    assert bleu_values(unrelated) == [0.0] * 4


def test_bleu_n_and_empty_inputs():
    assert list(compute(CorpusBLEU, PREDS, TARGETS, n=2)) == ["bleu_1", "bleu_2"]
    assert bleu_values(compute(CorpusBLEU, ["", "..."], [["a cat"], ["a dog"]])) == [0.0] * 4
    with pytest.raises(ValueError, match="n must be"):
        CorpusBLEU(n=0)


# ---------------------------------------------------------------- CIDEr-D, ROUGE-L


def test_cider_matches_pycocoevalcap():
    ours = compute(CIDErD, PREDS, TARGETS).item()
    coco, _ = Cider().compute_score(*coco_inputs(PREDS, TARGETS))
    assert ours == pytest.approx(coco, rel=1e-6)
    assert ours == pytest.approx(4.0594, abs=1e-3)  # not bounded by 1


def test_cider_perfect_unrelated_and_degenerate_corpora():
    perfect = compute(CIDErD, [refs[0] for refs in TARGETS], TARGETS).item()
    unrelated = compute(CIDErD, ["one dog sleeps in my house"] * len(TARGETS), TARGETS).item()
    assert perfect == pytest.approx(5.7535, abs=1e-3) and unrelated == 0.0
    assert compute(CIDErD, PREDS[:1], TARGETS[:1]).item() == 0.0  # one image: every idf is log(1) = 0
    assert compute(CIDErD, ["a cat", "a dog"], [["..."], ["!"]]).item() == 0.0  # no reference word


def test_rouge_matches_pycocoevalcap():
    ours = compute(RougeL, PREDS, TARGETS).item()
    coco, _ = Rouge().compute_score(*coco_inputs(PREDS, TARGETS))
    assert ours == pytest.approx(coco, abs=1e-6)
    assert ours == pytest.approx(0.8717, abs=1e-4)


def test_rouge_perfect_and_unrelated():
    assert compute(RougeL, [refs[0] for refs in TARGETS], TARGETS).item() == pytest.approx(1.0)
    assert compute(RougeL, ["one dog sleeps"] * len(TARGETS), TARGETS).item() == 0.0
    # lcs("a red circle", "a blue circle") = 2: P = R = 2/3
    assert compute(RougeL, ["a red circle"], [["a blue circle"]]).item() == pytest.approx(2 / 3, abs=1e-6)


# ---------------------------------------------------------------- cosine similarity


@pytest.fixture
def vocab():
    return Vocabulary.build([ref for refs in TARGETS for ref in refs])


def test_cosine_one_hot_embedding_gives_bag_of_words_cosine(vocab):
    one_hot = torch.eye(len(vocab))
    # mean("a red circle") . mean("a blue circle") = 2/3; "grey giraffe" -> only "grey" is known
    value = compute(
        CaptionCosineSimilarity,
        ["a red circle", "grey giraffe!", "zebra"],
        [["a blue circle", "A red circle."], ["grey", "purple cross"], ["a star"]],
        embedding=one_hot,
        vocab=vocab,
    )
    assert value.item() == pytest.approx(((2 / 3 + 1) / 2 + (1 + 0) / 2 + 0) / 3, abs=1e-6)


def test_cosine_perfect_and_unrelated(vocab):
    embedding = torch.randn(len(vocab), 16, generator=torch.Generator().manual_seed(0))
    perfect = compute(
        CaptionCosineSimilarity,
        [refs[0] for refs in TARGETS],
        [refs[:1] for refs in TARGETS],
        embedding=embedding,
        vocab=vocab,
    )
    assert perfect.item() == pytest.approx(1.0, abs=1e-5)
    unrelated = compute(
        CaptionCosineSimilarity, ["one dog sleeps"] * len(TARGETS), TARGETS, embedding=embedding, vocab=vocab
    )
    assert unrelated.item() == 0.0  # no known word: contributes 0
    swapped = compute(
        CaptionCosineSimilarity,
        [refs[0] for refs in TARGETS[1:] + TARGETS[:1]],
        TARGETS,
        embedding=embedding,
        vocab=vocab,
    )
    assert swapped.item() == pytest.approx(0.2896, abs=1e-3)  # captions of other images: low


def test_cosine_embedding_is_live_and_not_state(vocab):
    weight = torch.nn.Parameter(torch.eye(len(vocab)))
    metric = CaptionCosineSimilarity(weight, vocab)
    assert list(metric.parameters()) == [] and list(metric.state_dict()) == []
    metric.update(["red"], [["blue"]])
    assert metric.compute().item() == 0.0
    with torch.no_grad():  # an in-place optimiser step is seen at the next compute
        weight[vocab.index("blue")] = weight[vocab.index("red")]
    metric.reset()
    metric.update(["red"], [["blue"]])
    assert metric.compute().item() == pytest.approx(1.0)
    metric.embedding = torch.eye(len(vocab))  # reassigning works too
    metric.update(["red"], [["blue"]])
    assert metric.compute().item() == 0.0
    with pytest.raises(ValueError, match="embedding must be"):
        metric.embedding = torch.zeros(3, 2)


# ---------------------------------------------------------------- accumulation, reset, validation


def all_metrics(vocab):
    embedding = torch.randn(len(vocab), 8, generator=torch.Generator().manual_seed(1))
    return [CorpusBLEU(), CIDErD(), RougeL(), CaptionCosineSimilarity(embedding, vocab)]


def values(result):
    return bleu_values(result) if isinstance(result, dict) else [result.item()]


def test_several_updates_equal_one_update(vocab):
    for one, many in zip(all_metrics(vocab), all_metrics(vocab), strict=True):
        one.update(PREDS, TARGETS)
        for start in range(0, len(PREDS), 2):
            many.update(PREDS[start : start + 2], TARGETS[start : start + 2])
        assert values(many.compute()) == pytest.approx(values(one.compute()), abs=1e-6), type(one).__name__


def test_reset_clears_the_captions(vocab):
    for fresh, reused in zip(all_metrics(vocab), all_metrics(vocab), strict=True):
        reused.update(["a cat"] * 3, [["a dog"]] * 3)
        reused.compute()
        reused.reset()
        assert reused.preds == [] and reused.targets == []
        reused.update(PREDS, TARGETS)
        fresh.update(PREDS, TARGETS)
        assert values(reused.compute()) == pytest.approx(values(fresh.compute()), abs=1e-6)


def test_forward_returns_batch_value_and_accumulates():
    metric = RougeL()
    batch = metric(["a red circle"], [["a blue circle"]])
    assert batch.item() == pytest.approx(2 / 3, abs=1e-6)
    metric(["a red circle"], [["a red circle"]])
    assert len(metric.preds) == 2 and metric.compute().item() == pytest.approx((2 / 3 + 1) / 2, abs=1e-6)


def test_metric_collection_with_compute_groups(vocab):
    # torchmetrics compares the states of metrics to group them; strings must not break it
    collection = MetricCollection(
        {"bleu": CorpusBLEU(), "bleu2": CorpusBLEU(n=2), "cider": CIDErD(), "rouge": RougeL()}
    )
    for start in range(0, len(PREDS), 2):
        collection.update(PREDS[start : start + 2], TARGETS[start : start + 2])
    result = collection.compute()
    assert result["bleu2_bleu_2"].item() == pytest.approx(bleu_values(compute(CorpusBLEU, PREDS, TARGETS))[1])
    assert result["cider"].item() == pytest.approx(compute(CIDErD, PREDS, TARGETS).item())
    assert result["rouge"].item() == pytest.approx(compute(RougeL, PREDS, TARGETS).item())
    collection.reset()
    assert all(metric.preds == [] for metric in collection.values())


def test_clone_and_state_dict(vocab):
    metric = CaptionCosineSimilarity(torch.nn.Parameter(torch.eye(len(vocab))), vocab)
    metric.update(["red"], [["red circle"]])
    clone = metric.clone()
    assert clone.preds == ["red"] and clone.compute().item() == pytest.approx(metric.compute().item())
    parent = torch.nn.Module()
    parent.metric = metric
    assert list(parent.state_dict()) == []


def test_update_validates_inputs():
    metric = CorpusBLEU()
    with pytest.raises(ValueError, match="one per image"):
        metric.update(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="one per image"):
        metric.update("a cat", [["a cat"]])
    with pytest.raises(ValueError, match="non-empty list"):
        metric.update(["a"], [[]])
    with pytest.raises(ValueError, match="non-empty list"):
        metric.update(["a"], ["a cat"])
    with pytest.raises(ValueError, match="must be a string"):
        metric.update([3], [["a"]])


def test_device_moves_ignore_strings():
    metric = CorpusBLEU()
    metric.update(PREDS, TARGETS)
    metric.to(torch.float64).to("cpu")
    assert metric.preds == PREDS and bleu_values(metric.compute())[0] > 0.8


# ---------------------------------------------------------------- distributed syncing


def _ddp_worker(rank, world_size, init_file, queue):
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=60),
    )
    try:
        cider, bleu = CIDErD(), CorpusBLEU()
        half = slice(0, 3) if rank == 0 else slice(3, None)
        cider.update(PREDS[half], TARGETS[half])
        if rank == 0:  # rank 1 has no caption at all for BLEU
            bleu.update(PREDS, TARGETS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compute before update on rank 1
            values = (cider.compute().item(), bleu_values(bleu.compute()))
        queue.put((rank, values, len(cider.preds), len(bleu.preds)))
    finally:
        dist.destroy_process_group()


def test_compute_gathers_captions_across_processes(tmp_path):
    queue = mp.get_context("fork").SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, tmp_path / "init", queue), nprocs=2, start_method="fork")
    results = sorted(queue.get() for _ in range(2))
    cider = compute(CIDErD, PREDS, TARGETS).item()
    bleu = bleu_values(compute(CorpusBLEU, PREDS, TARGETS))
    for _, (cider_value, bleu_value), _, _ in results:
        assert cider_value == pytest.approx(cider, rel=1e-6) and bleu_value == pytest.approx(bleu, abs=1e-6)
    assert [result[2:] for result in results] == [(3, 5), (2, 0)]  # local states restored after compute


# ---------------------------------------------------------------- METEOR


def test_meteor_without_java_returns_nan(monkeypatch):
    monkeypatch.setattr(meteor_module, "meteor_available", lambda: False)
    metric = Meteor()
    metric.update(PREDS, TARGETS)
    with pytest.warns(RuntimeWarning, match="Java"):
        assert math.isnan(metric.compute().item())


@pytest.mark.slow
@pytest.mark.skipif(not meteor_available(), reason="METEOR needs Java")
def test_meteor_matches_pycocoevalcap():
    from pycocoevalcap.meteor.meteor import Meteor as CocoMeteor

    preds = PREDS + ["one dog sleeps"]
    targets = TARGETS + [["a red circle"]]
    ours = compute(Meteor, preds, targets).item()
    coco, _ = CocoMeteor().compute_score(*coco_inputs(preds, targets))
    assert ours == pytest.approx(coco, abs=1e-6)
    assert 0.3 < ours < 1.0


@pytest.mark.slow
@pytest.mark.skipif(not meteor_available(), reason="METEOR needs Java")
def test_meteor_perfect_captions():
    assert compute(Meteor, [refs[0] for refs in TARGETS], TARGETS).item() == pytest.approx(1.0, abs=1e-6)
