import math
import shutil
import subprocess
import warnings
from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from torchmetrics import MetricCollection

import vlc.metrics.meteor as meteor_module
import vlc.metrics.ptb as ptb_module
from vlc.errors import UserError
from vlc.metrics.bleu import CorpusBLEU, corpus_bleu
from vlc.metrics.caption_cosine import CaptionCosineSimilarity
from vlc.metrics.cider import CIDErD
from vlc.metrics.meteor import Meteor, meteor_available
from vlc.metrics.ptb import ptb_tokenize
from vlc.metrics.rouge import RougeL
from vlc.vocabulary import Vocabulary, tokenize

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
        weighting="mean",
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
        weighting="mean",
    )
    assert perfect.item() == pytest.approx(1.0, abs=1e-5)
    unrelated = compute(
        CaptionCosineSimilarity,
        ["one dog sleeps"] * len(TARGETS),
        TARGETS,
        embedding=embedding,
        vocab=vocab,
        weighting="mean",
    )
    assert unrelated.item() == 0.0  # no known word: contributes 0
    swapped = compute(
        CaptionCosineSimilarity,
        [refs[0] for refs in TARGETS[1:] + TARGETS[:1]],
        TARGETS,
        embedding=embedding,
        vocab=vocab,
        weighting="mean",
    )
    assert swapped.item() == pytest.approx(0.2896, abs=1e-3)  # captions of other images: low


def test_cosine_embedding_is_live_and_not_state(vocab):
    weight = torch.nn.Parameter(torch.eye(len(vocab)))
    metric = CaptionCosineSimilarity(weight, vocab, weighting="mean")  # idf: one image weighs every word 0
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


# IDF weighting: three images; "a" and "the" are in every image's references (idf 0), "on" in two (log 3/2).
IDF_TARGETS = [
    ["a dog on the grass", "a brown dog on a lawn"],
    ["a cat on the sofa", "the cat sleeping on a couch"],
    ["a bird in the sky", "a bird flying in a blue sky"],
]
IDF_PREDS = ["a brown dog on the grass", "a cat on a couch", "a bird in a sky"]
FUNCTION_WORDS = ("a", "the", "on", "in")


def function_word_embedding(vocab):
    """Content words: a unit vector each, all orthogonal; function words: length ~3.2, mostly one shared axis."""
    content = [word for word in vocab.words[len(Vocabulary.SPECIALS) :] if word not in FUNCTION_WORDS]
    embedding = torch.zeros(len(vocab), 1 + len(FUNCTION_WORDS) + len(content))
    for k, word in enumerate(FUNCTION_WORDS):
        embedding[vocab.index(word), [0, 1 + k]] = torch.tensor([3.0, 1.0])
    for k, word in enumerate(content):
        embedding[vocab.index(word), 1 + len(FUNCTION_WORDS) + k] = 1.0
    return embedding


def numpy_cosine(preds, targets, embedding, vocab, weighting):
    """The metric by hand: weighted means of word vectors, idf = log(N / df) over the images' reference sets."""
    df = Counter(word for refs in targets for word in {word for ref in refs for word in ref.split()})

    def vector(caption):
        words = [word for word in caption.split() if word in vocab]
        weights = [math.log(len(targets) / df[word]) if weighting == "idf" else 1.0 for word in words]
        return sum(w * embedding[vocab.index(word)] for w, word in zip(weights, words)) / sum(weights)

    def cosine(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    return np.mean([np.mean([cosine(vector(pred), vector(ref)) for ref in refs]) for pred, refs in zip(preds, targets)])


@pytest.mark.parametrize(("weighting", "own", "unrelated"), [("mean", 0.98482, 0.95626), ("idf", 0.85917, 0.43784)])
def test_cosine_own_and_unrelated_references(weighting, own, unrelated):
    vocab = Vocabulary.build([ref for refs in IDF_TARGETS for ref in refs])
    embedding = function_word_embedding(vocab)
    shifted = IDF_PREDS[1:] + IDF_PREDS[:1]  # each image gets the caption of the next one
    kwargs = {"embedding": embedding, "vocab": vocab, "weighting": weighting}
    ours = compute(CaptionCosineSimilarity, IDF_PREDS, IDF_TARGETS, **kwargs).item()
    ours_unrelated = compute(CaptionCosineSimilarity, shifted, IDF_TARGETS, **kwargs).item()
    by_hand = numpy_cosine(IDF_PREDS, IDF_TARGETS, embedding.double().numpy(), vocab, weighting)
    by_hand_unrelated = numpy_cosine(shifted, IDF_TARGETS, embedding.double().numpy(), vocab, weighting)
    assert ours == pytest.approx(by_hand, abs=1e-6) and ours_unrelated == pytest.approx(by_hand_unrelated, abs=1e-6)
    assert (ours, ours_unrelated) == pytest.approx((own, unrelated), abs=1e-5)


def test_cosine_idf_separates_better_than_mean():
    vocab = Vocabulary.build([ref for refs in IDF_TARGETS for ref in refs])
    embedding = function_word_embedding(vocab)
    shifted = IDF_PREDS[1:] + IDF_PREDS[:1]
    margins = {}
    for weighting in ("mean", "idf"):
        kwargs = {"embedding": embedding, "vocab": vocab, "weighting": weighting}
        own = compute(CaptionCosineSimilarity, IDF_PREDS, IDF_TARGETS, **kwargs).item()
        margins[weighting] = own - compute(CaptionCosineSimilarity, shifted, IDF_TARGETS, **kwargs).item()
    assert margins["mean"] == pytest.approx(0.02856, abs=1e-4) and margins["idf"] == pytest.approx(0.42133, abs=1e-4)


def test_cosine_idf_is_the_default_and_ignores_words_in_every_image():
    vocab = Vocabulary.build(["a red circle", "a blue square"])
    metric = CaptionCosineSimilarity(torch.eye(len(vocab)), vocab)
    assert metric.weighting == "idf"
    # "a" is in both images' references: weight 0. Left: only "red" counts; "green" is unknown.
    metric.update(["a red", "a green"], [["a red circle"], ["a blue square"]])
    assert metric.compute().item() == pytest.approx((1 / math.sqrt(2) + 0.0) / 2, abs=1e-6)
    single = CaptionCosineSimilarity(torch.eye(len(vocab)), vocab)
    single.update(["a red circle"], [["a red circle"]])
    assert single.compute().item() == 0.0  # one image: every idf is log(1) = 0
    with pytest.raises(ValueError, match="weighting must be"):
        CaptionCosineSimilarity(torch.eye(len(vocab)), vocab, weighting="tfidf")


# ---------------------------------------------------------------- PTB tokenization (the COCO evaluation's)

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the PTB tokenizer needs Java on the PATH")

PTB_PREDS = [
    "A man's well-known dog & a cat at 5:30, sleeping.",
    "A two-story house, with a red-brick roof.",
    "People's bikes & cars parked on the street at 10:45",
    "A black-and-white photo of a man's face, smiling!",
]
PTB_TARGETS = [
    ["A man's well-known dog and a cat at 5:30 in the morning.", "The man's dog & a cat, at 5:30."],
    ["A Two-Story house with a red-brick roof.", "a two-story brick house, red roof"],
    ["Bikes & cars parked on the street at 10:45.", "People's bikes and cars on a street"],
    ["A black-and-white photo of a man's face.", "a man's face, smiling, in black-and-white"],
]


def official_coco_scores(preds, targets):
    """BLEU-1..4, CIDEr-D and ROUGE-L as pycocoevalcap's COCOEvalCap computes them, with its tokenized inputs."""
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": ref} for ref in refs] for i, refs in enumerate(targets)})
    res = tokenizer.tokenize({i: [{"caption": pred}] for i, pred in enumerate(preds)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    return [*bleu, float(cider), float(rouge)], (gts, res)


def scores(tokenizer):
    collection = MetricCollection(
        {
            "bleu": CorpusBLEU(tokenizer=tokenizer),
            "cider": CIDErD(tokenizer=tokenizer),
            "rouge": RougeL(tokenizer=tokenizer),
        }
    )
    collection.update(PTB_PREDS, PTB_TARGETS)
    result = collection.compute()
    return [result[key].item() for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider", "rouge")]


@needs_java
def test_ptb_scores_equal_the_official_coco_evaluation():
    official, coco_inputs_ = official_coco_scores(PTB_PREDS, PTB_TARGETS)
    metric = CorpusBLEU(tokenizer="ptb")
    metric.update(PTB_PREDS, PTB_TARGETS)
    assert metric.coco_inputs() == coco_inputs_  # the same token strings
    gts, res = coco_inputs_
    ours_float64 = corpus_bleu([res[i][0] for i in res], [gts[i] for i in res])
    assert ours_float64 == pytest.approx(official[:4], abs=1e-9, rel=0)  # pycocoevalcap's 1e-9 guards aside
    # the metrics return float32: the official values rounded to float32
    assert scores("ptb") == pytest.approx(torch.tensor(official).float().tolist(), abs=1e-7, rel=0)
    assert scores("ptb")[4:] == torch.tensor(official[4:]).float().tolist()  # same scorer, same inputs: exact


@needs_java
def test_vlc_tokenizer_scores_differ_from_the_official_on_tricky_captions():
    official, _ = official_coco_scores(PTB_PREDS, PTB_TARGETS)
    differences = [abs(ours - coco) for ours, coco in zip(scores("vlc"), official, strict=True)]
    assert min(differences) > 1e-3, differences


@needs_java
def test_ptb_tokenize_like_pycocoevalcap():
    captions = ["A man's well-known dog & cat at 5:30.", "", "  ", "(A) 5 1/2, e.g. U.S.A.", ""]
    official = PTBTokenizer().tokenize({i: [{"caption": caption}] for i, caption in enumerate(captions)})
    assert (
        ptb_tokenize(captions)
        == [official[i][0] for i in range(len(captions))]
        == [
            "a man 's well-known dog & cat at 5:30",
            "",
            "",
            "-lrb- a -rrb- 5\xa01/2 e.g. u.s.a.",  # lower-case brackets survive, as in the COCO evaluation
            "",
        ]
    )
    assert ptb_tokenize([]) == []


@needs_java
def test_ptb_line_breaks_inside_a_caption_do_not_shift_the_others():
    assert ptb_tokenize(["a red\rcircle", "two\u2028lines\nhere", "a dog"]) == [
        "a red circle",
        "two lines here",
        "a dog",
    ]


@needs_java
def test_ptb_one_java_process_for_a_collection(monkeypatch):
    runs = []
    real_run = subprocess.run

    def counting_run(command, *args, **kwargs):
        runs.append(command)
        return real_run(command, *args, **kwargs)

    ptb_module._ptb_tokenize.cache_clear()
    monkeypatch.setattr(ptb_module.subprocess, "run", counting_run)
    collection = MetricCollection({"bleu": CorpusBLEU(tokenizer="ptb"), "cider": CIDErD(tokenizer="ptb")})
    for start in range(0, len(PTB_PREDS), 2):
        collection.update(PTB_PREDS[start : start + 2], PTB_TARGETS[start : start + 2])
    collection.compute()
    assert [command[-3:] for command in runs if "-cp" in command] == [list(ptb_module.PTB_COMMAND)]


def test_ptb_without_java_is_a_user_error(monkeypatch):
    monkeypatch.setattr(ptb_module, "ptb_available", lambda: False)
    with pytest.raises(UserError, match="needs Java"):
        CorpusBLEU(tokenizer="ptb")
    with pytest.raises(UserError, match="needs Java"):
        ptb_tokenize(["a cat"])
    CorpusBLEU(tokenizer="vlc")  # the default needs no Java
    with pytest.raises(ValueError, match="tokenizer must be"):
        RougeL(tokenizer="nltk")


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
