"""Any Lightning logger: CSV, MLflow (a local sqlite store), WandB offline and TensorBoard with CSV each fit,
validate and test the tiny classifier; the final scores and hyper-parameters reach each logger, figures reach those
that take images (one warning names the others), and the run's files stay apart from its evaluations'.

Nothing is downloaded and the network is blocked: a logger that phones home fails its test. A logger whose package
is not installed is skipped (the dev extra installs mlflow-skinny and wandb)."""

import csv
import json
import socket
import struct
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import yaml
from helpers import events, run_cli, tiny_classifier_fit, write_tinyimagenet30

from vlc.cli import main
from vlc.loggers import log_image, log_text

NAME = "runs"
"""The experiment name every logger is given."""
CSV = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir=logs"]
TB_CSV = [
    "--trainer.logger=["
    + ", ".join(
        f'{{"class_path": "lightning.pytorch.loggers.{kind}", "init_args": {{"save_dir": "logs", "name": "{NAME}"}}}}'
        for kind in ("TensorBoardLogger", "CSVLogger")
    )
    + "]"
]
FIGURE_WARNING = "CSVLogger takes no figures, images or text"
FIT_LIMITS = ["--trainer.limit_train_batches=2"]


def logger_args(kind: str, work: Path) -> list[str]:
    """The ``--trainer.logger`` options of one kind of logger, writing under ``work``."""
    if kind == "csv":
        return [*CSV, f"--trainer.logger.name={NAME}"]
    if kind == "tb+csv":
        return TB_CSV
    if kind == "mlflow":
        return [
            "--trainer.logger=lightning.pytorch.loggers.MLFlowLogger",
            f"--trainer.logger.tracking_uri=sqlite:///{work / 'mlflow.db'}",
            f"--trainer.logger.experiment_name={NAME}",
            f"--trainer.logger.artifact_location={work / 'mlartifacts'}",
        ]
    return [
        "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
        "--trainer.logger.offline=true",
        "--trainer.logger.save_dir=logs",
        f"--trainer.logger.project={NAME}",
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loggers") / "data"
    write_tinyimagenet30(root)
    return root


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No connection leaves this machine; WandB keeps to its offline mode and the test's folder."""
    connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family == getattr(socket, "AF_UNIX", None) or address[0] in ("127.0.0.1", "::1", "localhost"):
            return connect(sock, address)
        raise OSError(f"the test blocks the network: connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: local_only(sock, address) or 0)
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


def fit_validate_test(capsys, data: Path, args: list[str]) -> list[str]:
    """``vlc fit``, then ``vlc validate`` and ``vlc test`` of its last checkpoint: the stderr of each."""
    fit = tiny_classifier_fit(data, *args, *FIT_LIMITS)
    errors = []
    for command in ("fit", "validate", "test"):
        extra = [] if command == "fit" else ["--ckpt_path", "last", f"--data.test_labels={data / 'test_labels.csv'}"]
        code, err = run_cli(capsys, [command, *fit[1:], *extra])
        assert code == 0, err
        errors.append(err)
    return errors


def read_metrics(path: Path) -> dict[str, list[float]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows if row[key]] for key in rows[0]}


def stages_apart(run: Path) -> None:
    """The fit's files are the fit's; its evaluations' are in validate/ and test/."""
    assert yaml.safe_load((run / "run.yaml").read_text())["stage"] == "fit"
    for stage in ("validate", "test"):
        record = yaml.safe_load((run / stage / "run.yaml").read_text())
        assert record["stage"] == stage and record["status"] == "complete"


def test_csv_logger(data, offline, capsys):
    errors = fit_validate_test(capsys, data, logger_args("csv", Path.cwd()))
    run = Path("logs", NAME, "version_0")
    fit = read_metrics(run / "metrics.csv")
    assert fit["hp/val_acc"] == fit["val/acc"][-1:] and fit["hp/best_val_acc"]  # the final scores
    assert fit["params/trainable"] == [5227.0]
    assert yaml.safe_load((run / "hparams.yaml").read_text())["data.batch_size"] == 8  # the hyper-parameters
    assert read_metrics(run / "validate" / "metrics.csv")["val/acc"] == fit["val/acc"][-1:]
    assert read_metrics(run / "test" / "metrics.csv")["test/acc"]
    stages_apart(run)
    assert [err.count(FIGURE_WARNING) for err in errors] == [1, 1, 1]  # once per run, not per figure
    assert "add a TensorBoardLogger, MLFlowLogger or WandbLogger to see them" in errors[0]

    main(["compare", "logs"])  # read from metrics.csv
    (row,) = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(str(run))]
    assert row[1:3] == ["fit", "complete"] and float(row[3]) == pytest.approx(fit["val/acc"][-1], abs=1e-4)
    assert row[5] != "-"  # the test's accuracy, from test/metrics.csv

    longer = ["--trainer.max_epochs=2", "--ckpt_path=last"]  # Lightning's CSV logger would empty metrics.csv
    code, err = run_cli(capsys, tiny_classifier_fit(data, *logger_args("csv", Path.cwd()), *FIT_LIMITS, *longer))
    assert code == 0, err
    earlier, resumed = read_metrics(run / "metrics-0.csv"), read_metrics(run / "metrics.csv")
    assert earlier["val/acc"] == fit["val/acc"] and not earlier["hp/val_acc"]  # the final scores are the new ones
    assert resumed["epoch"] and min(resumed["epoch"]) == 1 and resumed["hp/val_acc"]
    main(["compare", "logs"])
    (row,) = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(str(run))]
    assert row[6] == "2" and float(row[4]) == pytest.approx(max(fit["val/acc"] + resumed["val/acc"]), abs=1e-4)


def test_tensorboard_and_csv_share_one_run_folder(data, offline, capsys):
    labels = data / "test_labels.csv"
    errors = fit_validate_test(capsys, data, logger_args("tb+csv", Path.cwd()))
    assert sorted(p.name for p in Path("logs", NAME).iterdir()) == ["version_0"]  # not a version per logger
    run = Path("logs", NAME, "version_0")
    fit = read_metrics(run / "metrics.csv")
    tags = events(run).Tags()
    assert "val/confusion_matrix" in tags["images"] and "val/acc" in tags["scalars"]
    assert fit["hp/val_acc"] == fit["val/acc"][-1:]
    assert read_metrics(run / "test" / "metrics.csv")["test/acc"] and any((run / "test").glob("events.*"))
    stages_apart(run)
    assert "they go to TensorBoardLogger only" in errors[0] and errors[0].count(FIGURE_WARNING) == 1

    main(["compare", "logs"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("logs/")]
    assert [row[0] for row in rows] == [str(run)]  # one row for the run, not one per logger
    assert rows[0][5] != "-"

    again = ["test", *tiny_classifier_fit(data, *TB_CSV)[1:], "--ckpt_path=last", f"--data.test_labels={labels}"]
    assert run_cli(capsys, again)[0] == 0  # another test of the run: the first one's rows are kept
    assert (
        read_metrics(run / "test" / "metrics-0.csv")["test/acc"]
        == read_metrics(run / "test" / "metrics.csv")["test/acc"]
    )


def test_mlflow_logger_with_a_sqlite_store(data, offline, capsys):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    errors = fit_validate_test(capsys, data, logger_args("mlflow", Path.cwd()))
    client = MlflowClient(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    metrics, params = run.data.metrics, run.data.params
    assert metrics["hp/val_acc"] == pytest.approx(metrics["val/acc"]) and "hp/best_val_acc" in metrics
    assert "test/acc" in metrics  # vlc test logged into the run it tested
    assert params["data.batch_size"] == "8" and params["model.backbone"] == "ResidualCNN"
    figures = [a.path for a in client.list_artifacts(run.info.run_id, "val/confusion_matrix")]
    assert figures and all(path.endswith(".png") for path in figures)
    assert (Path("mlartifacts") / run.info.run_id / "artifacts" / "test" / "roc").is_dir()
    stages_apart(Path("logs", NAME, run.info.run_id))  # vlc's own files of the run
    assert not any(FIGURE_WARNING.split()[1] in err for err in errors)  # no "takes no figures"

    final_step = max(m.step for m in client.get_metric_history(run.info.run_id, "hp/val_acc"))
    longer = ["--trainer.max_epochs=2", "--ckpt_path=last"]  # resumed: the same run; MLflow keeps its first params
    code, err = run_cli(capsys, tiny_classifier_fit(data, *logger_args("mlflow", Path.cwd()), *FIT_LIMITS, *longer))
    assert code == 0 and "MLflow kept this run's first hyper-parameters" in err
    (resumed,) = client.search_runs([run.info.experiment_id])
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.params["trainer.max_epochs"] == "1"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "hp/val_acc")) > final_step

    from lightning.pytorch.loggers import MLFlowLogger  # the captioner's text and images, sent as it sends them

    logger = MLFlowLogger(tracking_uri=f"sqlite:///{Path.cwd() / 'mlflow.db'}", run_id=run.info.run_id)
    trainer = L.Trainer(logger=logger, enable_checkpointing=False, enable_progress_bar=False)
    log_text(trainer, "val/captions", "| generated | references |", 3)
    log_image(trainer, "val/attention", np.zeros((8, 16, 3), dtype=np.uint8), 3)
    artifacts = Path("mlartifacts") / run.info.run_id / "artifacts" / "val"
    assert (artifacts / "captions" / "0003.md").read_text() == "| generated | references |"
    assert (artifacts / "attention" / "0003.png").is_file()


def wandb_records(folder: Path):
    """The records of an offline WandB run file (``run-<id>.wandb``): LevelDB-style blocks of protobuf records."""
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("*.wandb")
    data, position, pending = path.read_bytes(), 7, b""  # a 7-byte header (":W&B", magic, version)
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a record header: padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4) and pending:  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_run(folder: Path) -> tuple[dict, dict]:
    """The config and the summary (last value of each key) of an offline WandB run."""
    found = {"config": {}, "summary": {}}
    for record in wandb_records(folder):
        kind = record.WhichOneof("record_type")
        if kind in found:
            items = record.config.update if kind == "config" else record.summary.update
            found[kind].update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return found["config"], found["summary"]


def test_wandb_logger_offline(data, offline, capsys):
    pytest.importorskip("wandb")
    errors = fit_validate_test(capsys, data, logger_args("wandb", Path.cwd()))
    fit, validate, test = sorted(Path("logs", "wandb").glob("offline-run-*"))  # one per command, one run id
    run_id = fit.name.rsplit("-", 1)[1]
    assert validate.name.endswith(run_id) and test.name.endswith(run_id)
    config, summary = wandb_run(fit)
    assert config["data.batch_size"] == 8 and config["model.backbone"] == "ResidualCNN"
    assert summary["hp/val_acc"] == pytest.approx(summary["val/acc"]) and "hp/best_val_acc" in summary
    assert list((fit / "files" / "media" / "images" / "val").glob("confusion_matrix_*.png"))
    assert "test/acc" in wandb_run(test)[1] and list((test / "files" / "media" / "images" / "test").glob("roc_*.png"))
    stages_apart(Path("logs", NAME, run_id))
    assert not any(FIGURE_WARNING.split()[1] in err for err in errors)
