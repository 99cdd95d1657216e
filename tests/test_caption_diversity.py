import warnings
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics import MetricCollection

from vlc.metrics.bleu import CorpusBLEU
from vlc.metrics.caption_cosine import CaptionCosineSimilarity
from vlc.metrics.cider import CIDErD
from vlc.metrics.diversity import CaptionDiversity
from vlc.metrics.rouge import RougeL
from vlc.vocabulary import Vocabulary

GENERATED = ["A dog runs.", "a dog runs", "a cat sleeps on a mat"]
REFERENCES = [["a dog running"], ["a dog runs on grass"], ["a cat on a mat"]]
ENDED = torch.tensor([True, False, True])


def values(result):
    return {key: value.item() for key, value in result.items()}


def test_exact_values_on_a_tiny_batch():
    metric = CaptionDiversity()
    metric.update(GENERATED, REFERENCES, ended=ENDED)
    # "A dog runs." and "a dog runs" are one caption; words: a dog runs cat sleeps on mat
    assert values(metric.compute()) == pytest.approx({"distinct_captions": 2 / 3, "ended": 2 / 3, "vocabulary_used": 7})


def test_collapsed_model_gives_one_over_n():
    metric = CaptionDiversity()
    n = 8
    for _ in range(2):
        metric.update(["a man riding a horse"] * (n // 2), ended=[True] * (n // 2))
    assert values(metric.compute()) == pytest.approx({"distinct_captions": 1 / n, "ended": 1.0, "vocabulary_used": 4})


def test_before_any_update_and_after_reset_all_zero():
    metric = CaptionDiversity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        assert values(metric.compute()) == {"distinct_captions": 0.0, "ended": 0.0, "vocabulary_used": 0.0}
        metric.update(GENERATED, ended=ENDED)
        metric.reset()
        assert metric.preds == [] and values(metric.compute())["vocabulary_used"] == 0.0


def test_update_validates_inputs():
    metric = CaptionDiversity()
    with pytest.raises(ValueError, match="one flag per caption"):
        metric.update(GENERATED, ended=[True])
    with pytest.raises(ValueError, match="one flag per caption"):
        metric.update(GENERATED, ended=ENDED[None])
    with pytest.raises(ValueError, match="list of captions"):
        metric.update("a dog", ended=[True])
    with pytest.raises(ValueError, match="targets must be"):
        metric.update(GENERATED, REFERENCES[:1], ended=ENDED)
    with pytest.raises(TypeError, match="ended"):
        metric.update(GENERATED, REFERENCES)


def test_in_a_collection_with_the_reference_metrics():
    vocab = Vocabulary.build([ref for refs in REFERENCES for ref in refs])
    collection = MetricCollection(
        {
            "bleu": CorpusBLEU(4),
            "cider_d": CIDErD(),
            "rouge_l": RougeL(),
            "caption_cosine": CaptionCosineSimilarity(torch.eye(len(vocab)), vocab),
            "diversity": CaptionDiversity(),
        },
        prefix="val/",
    )
    for start in range(0, 3, 2):  # the reference metrics get no `ended`, the diversity metric gets it
        batch = slice(start, start + 2)
        collection.update(GENERATED[batch], REFERENCES[batch], ended=ENDED[batch])
    result = collection.compute()
    assert sorted(result) == [
        "val/bleu_1",
        "val/bleu_2",
        "val/bleu_3",
        "val/bleu_4",
        "val/caption_cosine",
        "val/cider_d",
        "val/distinct_captions",
        "val/ended",
        "val/rouge_l",
        "val/vocabulary_used",
    ]
    rouge = RougeL()
    rouge.update(GENERATED, REFERENCES)
    assert result["val/rouge_l"].item() == pytest.approx(rouge.compute().item())
    assert result["val/distinct_captions"].item() == pytest.approx(2 / 3)


def test_forward_and_clone():
    metric = CaptionDiversity()
    batch = metric(["a dog", "a dog"], ended=[True, True])
    assert values(batch) == pytest.approx({"distinct_captions": 0.5, "ended": 1.0, "vocabulary_used": 2})
    metric(["a cat"], ended=[False])
    clone = metric.clone()
    assert values(clone.compute()) == pytest.approx({"distinct_captions": 2 / 3, "ended": 2 / 3, "vocabulary_used": 3})


def _ddp_worker(rank, world_size, init_file, queue):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    try:
        both, rank_zero_only = CaptionDiversity(), CaptionDiversity()
        if rank == 0:
            both.update(["a dog runs", "a cat"], ended=torch.tensor([True, False]))
            rank_zero_only.update(["a dog", "a dog"], ended=torch.tensor([True, True]))
        else:  # the same caption as on rank 0: counted once over the gathered epoch
            both.update(["A dog runs."], ended=torch.tensor([True]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compute before update on rank 1
            queue.put((rank, values(both.compute()), values(rank_zero_only.compute())))
    finally:
        dist.destroy_process_group()


def test_compute_gathers_captions_across_processes(tmp_path):
    queue = mp.get_context("fork").SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, tmp_path / "init", queue), nprocs=2, start_method="fork")
    for _, both, rank_zero_only in sorted(queue.get() for _ in range(2)):
        assert both == pytest.approx({"distinct_captions": 2 / 3, "ended": 2 / 3, "vocabulary_used": 4})
        assert rank_zero_only == pytest.approx({"distinct_captions": 0.5, "ended": 1.0, "vocabulary_used": 2})
