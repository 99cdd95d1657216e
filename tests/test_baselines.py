import math
import random
from collections import defaultdict

import pytest
import torch
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import precook

from vlc.metrics.baselines import constant_caption, nearest_neighbour_captions
from vlc.vocabulary import tokenize

DOG = [  # "a dog runs on the grass" shares most n-grams with most images' references
    ["A dog runs on the grass.", "a brown dog runs on the grass", "a dog is running on green grass"],
    ["a dog runs on the grass", "a small dog runs across the grass", "the dog runs on grass"],
    ["a black dog runs on the grass", "a dog runs on the grass outside", "dog running on the grass"],
    ["a white dog runs on the grass", "a dog runs fast on the grass", "a happy dog on the grass"],
    ["a dog runs on the grass with a ball", "a puppy runs on the grass", "a dog playing on the grass"],
    ["a cat sleeps on a sofa", "a grey cat asleep on the couch", "a cat lying on a sofa"],
    ["two men play chess in a park", "people playing chess outdoors", "two men playing a game of chess"],
    ["a plate of pasta with tomato sauce", "a bowl of spaghetti", "pasta on a white plate"],
]
BUS = [  # four agreeing captions, the first the most central, and an outlier
    "a red bus on a street",
    "a red bus driving down a street",
    "a red double decker bus on a street",
    "the red bus parked on a street",
    "vehicle outdoors near buildings",
]
CAT = ["a cat sleeps on a sofa", "a grey cat on a couch", "a cat lying on a sofa", "a cat asleep", "cat on sofa"]
WORDS = "a the dog cat man woman runs sits on in grass table red blue big small with of near".split()


@pytest.fixture(autouse=True)
def one_thread():
    """Small sparse ops: with a busy 2-core machine, more threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_references(seed, images, max_refs=5):
    rng = random.Random(seed)
    return [
        [" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) + rng.choice(["", ".", "!"]) for _ in range(n)]
        for n in (rng.randint(1, max_refs) for _ in range(images))
    ]


def constant_cider_d(caption, references):
    """pycocoevalcap's CIDEr-D with ``caption`` as the caption of every image."""
    gts = {i: [" ".join(tokenize(ref)) for ref in refs] for i, refs in enumerate(references)}
    return Cider().compute_score(gts, {i: [" ".join(tokenize(caption))] for i in gts})[0]


def consensus(candidates, references):
    """Brute force: the first candidate with the highest mean n-gram TF-IDF cosine to the other candidates."""
    df = defaultdict(int)
    for refs in references:
        for gram in {gram for ref in refs for gram in precook(" ".join(tokenize(ref)))}:
            df[gram] += 1

    def vectors(caption):
        per_order = [{} for _ in range(4)]
        for gram, count in precook(" ".join(tokenize(caption))).items():
            per_order[len(gram) - 1][gram] = count * (math.log(len(references)) - math.log(df[gram]))
        return per_order

    def similarity(a, b):
        cosines = []
        for x, y in zip(a, b):
            norm = math.sqrt(sum(v * v for v in x.values())) * math.sqrt(sum(v * v for v in y.values()))
            cosines.append(sum(v * y.get(g, 0.0) for g, v in x.items()) / norm if norm else 0.0)
        return sum(cosines) / 4

    vecs = [vectors(c) for c in candidates]
    scores = [sum(similarity(v, w) for j, w in enumerate(vecs) if j != i) for i, v in enumerate(vecs)]
    best = max(scores)
    return candidates[next(i for i, s in enumerate(scores) if s >= best - 1e-9)]


# ------------------------------------------------------------------------------------------- constant caption
def test_constant_caption_is_the_known_best_and_the_exact_cider_d_argmax():
    chosen = constant_caption(DOG)
    assert chosen == "A dog runs on the grass."  # the first of the two identically tokenized copies, as written
    scores = {caption: constant_cider_d(caption, DOG) for refs in DOG for caption in refs}
    assert max(scores, key=scores.get) in {"A dog runs on the grass.", "a dog runs on the grass"}
    assert scores[chosen] == max(scores.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_constant_caption_matches_brute_force_cider_d_on_random_corpora(seed):
    references = random_references(seed, images=30)
    references[0].append("...")  # a caption without words
    scores = [constant_cider_d(caption, references) for refs in references for caption in refs]
    chosen = constant_caption(references)
    assert constant_cider_d(chosen, references) == pytest.approx(max(scores), abs=1e-12)
    assert constant_caption(references) == chosen  # deterministic
    assert constant_caption(references, rescore=1) in {c for refs in references for c in refs}


def test_constant_caption_rejects_bad_input():
    for bad in ([], [["a dog"], []], ["a dog"]):
        with pytest.raises(ValueError):
            constant_caption(bad)
    with pytest.raises(ValueError):
        constant_caption(DOG, rescore=0)


# ------------------------------------------------------------------------------------------- nearest neighbour
def test_nearest_neighbour_k1_takes_the_consensus_of_the_nearest_image():
    references = [BUS, CAT, DOG[0], DOG[5]]
    train = torch.eye(4, 6)
    queries = torch.tensor([[0.9, 0.1, 0, 0, 0, 0], [0.1, 1.0, 0.2, 0, 0, 0.3], [0, 0, 0.2, 0, 1, 1]])
    chosen = nearest_neighbour_captions(queries, train, references, k=1)
    assert chosen[0] == "a red bus on a street"  # not the outlier
    assert chosen[1] == consensus(CAT, references) and chosen[1] in CAT
    assert chosen[2] == consensus(DOG[0], references) and chosen[2] in DOG[0]


def test_nearest_neighbour_prefers_the_agreeing_nearest_images():
    bus = [
        BUS[:4],
        ["a red bus driving on a street", "a bus on the street", "a red bus in the street"],
        ["a red bus on a city street", "a big red bus on a street", "a red bus stopped on a street"],
    ]
    references = [*bus, ["a cat sleeps on a sofa", "a grey cat on a couch"], ["a cat asleep on a sofa", "a cat"]]
    train = torch.tensor([[1.0, 0.1], [1.0, 0.2], [1.0, 0.3], [0.2, 1.0], [0.3, 1.0]])
    query = torch.tensor([[1.0, 0.0]])
    for k in (3, 5, 100):  # 100: capped at the 5 images
        (chosen,) = nearest_neighbour_captions(query, train, references, k=k)
        assert chosen in {c for refs in bus for c in refs}
        candidates = [c for refs in references[:k] for c in refs]
        assert chosen == consensus(candidates, references)
    (chosen,) = nearest_neighbour_captions(torch.tensor([[0.0, 1.0]]), train, references, k=2)
    assert chosen in references[3] + references[4]


def test_nearest_neighbour_matches_brute_force_and_does_not_depend_on_chunks():
    references = random_references(3, images=40)
    generator = torch.Generator().manual_seed(0)
    train, queries = torch.randn(40, 16, generator=generator), torch.randn(23, 16, generator=generator)
    chosen = nearest_neighbour_captions(queries, train, references, k=7, chunk_size=1000)
    for chunk_size in (1, 5):
        assert nearest_neighbour_captions(queries, train, references, k=7, chunk_size=chunk_size) == chosen
    nearest = (torch.nn.functional.normalize(queries) @ torch.nn.functional.normalize(train).T).topk(7).indices
    for caption, images in zip(chosen, nearest.tolist()):
        assert caption == consensus([c for i in images for c in references[i]], references)
    # default k: min(60, max(1, N // 100)) = 1 for 40 images
    assert nearest_neighbour_captions(queries, train, references) == nearest_neighbour_captions(
        queries, train, references, k=1
    )


def test_nearest_neighbour_rejects_bad_input():
    train = torch.zeros(2, 3)
    with pytest.raises(ValueError):
        nearest_neighbour_captions(torch.zeros(1, 4), train, [["a"], ["b"]])
    with pytest.raises(ValueError):
        nearest_neighbour_captions(torch.zeros(1, 3), train, [["a"]])
    with pytest.raises(ValueError):
        nearest_neighbour_captions(torch.zeros(1, 3), train, [["a"], ["b"]], k=0)
    with pytest.raises(ValueError):
        nearest_neighbour_captions(torch.zeros(1, 3), train, [["a"], []])
