"""Write the legacy checkpoints that ``tests/test_legacy_checkpoints.py`` loads, with the vlc on ``sys.path``.

Run once per vlc version worth keeping, from a checkout of that version (its ``vlc`` package first on the path):

    git worktree add /tmp/vlc-old COMMIT
    cd /tmp/vlc-old && PYTHONPATH=/tmp/vlc-old python /work/main/tests/legacy/make_checkpoints.py OUT_DIR LAYOUT

LAYOUT names the command-line keys of that version: ``net`` (1769cae, b42ee2e) or ``name`` (1005777); ``caption``
(1005777 too, into ``tests/legacy/1005777-caption``) writes a captioner with its flat decoding and scoring arguments.

Each checkpoint is a tiny network trained for one short epoch on the embedded shapes data; beside it the predictions
that version made for ``images/`` (``<name>.csv``), which a later vlc must reproduce from the same file.
"""

import os
import shutil
import sys
from pathlib import Path

from vlc.cli import main

HERE = Path(__file__).resolve().parent
CONFIGS = Path.cwd() / "configs"


def airbench(key: str) -> list[str]:
    """A tiny airbench network for ``model.<key>`` (``backbone`` or ``encoder``) in the ``name`` layout."""
    return [f"--model.{key}.{arg}" for arg in ("name=airbench", "widths=[8, 16, 16]", "identity_init=true")]


COMMON = ["--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--seed_everything=0"]
NET_RUNS = {  # 1769cae, b42ee2e: the classifier's ``net``, the captioner's flat decoder arguments
    "classifier": [
        "--config",
        str(CONFIGS / "demo" / "classify.yaml"),
        "--model.net.widths=[8, 16]",
        "--model.net.stem_width=8",
        "--model.freeze=blocks:1",
        "--model.flip_average=true",
        "--data.num_images=256",
        "--data.num_test=64",
        "--data.batch_size=32",
    ],
    "captioner-lstm": [
        "--config",
        str(CONFIGS / "demo" / "caption.yaml"),
        "--model.encoder.widths=[8, 16]",
        "--model.encoder.stem_width=8",
        "--model.decoder=lstm",
        "--model.hidden_dim=32",
        "--model.num_layers=2",
        "--model.train_embeddings=false",
        "--model.glove_path=GLOVE",
        "--trainer.precision=32-true",
        "--data.num_images=256",
        "--data.batch_size=32",
    ],
    "captioner-attention": [
        "--config",
        str(CONFIGS / "demo" / "caption.yaml"),
        "--model.encoder.widths=[8, 16]",
        "--model.encoder.stem_width=8",
        "--model.hidden_dim=32",
        "--model.embed_dim=16",
        "--model.attention_dim=16",
        "--data.num_images=256",
        "--data.batch_size=32",
    ],
}
NAME_RUNS = {  # 1005777: ``model.backbone``/``model.encoder`` an ImageBackbone chosen by ``name``, decoder classes
    "classifier": [
        "--config",
        str(CONFIGS / "demo" / "classify.yaml"),
        "--model.backbone.widths=[8, 16]",
        "--model.backbone.stem_width=8",
        "--model.freeze=blocks:1",
        "--model.flip_average=true",
        "--data.num_images=256",
        "--data.num_test=64",
        "--data.batch_size=32",
    ],
    "classifier-airbench": [
        "--config",
        str(CONFIGS / "demo" / "classify.yaml"),
        *airbench("backbone"),
        "--model.backbone.whiten=true",
        "--model.backbone.bn_scale=false",  # bn_momentum and bn_eps keep the values a network named airbench had
        "--data.num_images=256",
        "--data.num_test=64",
        "--data.batch_size=32",
    ],
    "captioner-lstm": [
        "--config",
        str(CONFIGS / "demo" / "caption.yaml"),
        *airbench("encoder"),
        "--model.encoder.stem_stride=2",  # no whitening: the captioning data modules cannot sample images (1005777)
        "--model.decoder=vlc.models.LSTMDecoder",
        "--model.decoder.embed_dim=8",
        "--model.decoder.hidden_dim=32",
        "--model.decoder.num_layers=2",
        "--model.train_embeddings=false",
        "--model.glove_path=GLOVE",
        "--trainer.precision=32-true",
        "--data.num_images=256",
        "--data.batch_size=32",
    ],
    "captioner-attention": [
        "--config",
        str(CONFIGS / "demo" / "caption.yaml"),
        "--model.encoder.widths=[8, 16]",
        "--model.encoder.stem_width=8",
        "--model.decoder.hidden_dim=32",
        "--model.decoder.embed_dim=16",
        "--model.decoder.attention_dim=16",
        "--data.num_images=256",
        "--data.batch_size=32",
    ],
}
CAPTION_RUNS = {
    "captioner-lstm": [
        "--config",
        str(CONFIGS / "demo" / "caption.yaml"),
        "--model.encoder.widths=[8, 16]",
        "--model.encoder.stem_width=8",
        "--model.decoder=vlc.models.LSTMDecoder",
        "--model.decoder.embed_dim=8",
        "--model.decoder.hidden_dim=32",
        "--model.glove_path=GLOVE",
        "--model.train_embeddings=false",
        "--model.decoding=beam",
        "--model.beam_width=3",
        "--model.length_penalty=0.5",
        "--model.max_len=12",
        "--model.no_repeat_ngram=2",
        "--model.banned_endings=[a, the]",
        "--model.num_captions=2",
        "--model.num_samples=2",
        "--model.baselines=false",
        "--trainer.precision=32-true",
        "--data.num_images=256",
        "--data.batch_size=32",
    ],
}
RUNS = {"net": NET_RUNS, "name": NAME_RUNS, "caption": CAPTION_RUNS}
WORDS = "a an the red green blue yellow circle square triangle left right of above below to is and small big"


def run(name: str, args: list[str], out: Path, work: Path) -> None:
    """Train ``name`` in ``work``, copy its last.ckpt to ``out`` and predict ``images/`` into ``out/<name>.csv``."""
    os.chdir(work)
    main(["fit", *args, *COMMON])
    ckpt = next(Path("checkpoints").rglob("last.ckpt"))
    shutil.copy(ckpt, out / f"{name}.ckpt")
    task = "classify" if name.startswith("classifier") else "caption"
    main(
        [
            "predict",
            "--config",
            str(CONFIGS / "predict" / f"{task}.yaml"),
            f"--ckpt_path={out / f'{name}.ckpt'}",
            f"--data.predict_dir={HERE / 'images'}",
            "--data.image_size=64",
            f"--writer.output={out / f'{name}.csv'}",
        ]
    )


if __name__ == "__main__":
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for name, args in RUNS[sys.argv[2]].items():
        work = Path(f"/tmp/legacy-{name}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        glove = work / "glove.txt"
        glove.write_text(
            "".join(
                f"{w} {' '.join(str((i * 7 + j) % 5 / 10) for j in range(8))}\n" for i, w in enumerate(WORDS.split())
            )
        )
        run(name, [a.replace("GLOVE", str(glove)) for a in args], out, work)
