"""Two "nodes" of one process each, started by torchrun on this machine (gloo over loopback), and SLURM's variables.

Each node is its own ``torchrun ... -m vlc fit`` command, as on two machines: one run folder, equal weights, a SIGTERM
on one node stopping both with a checkpoint that resumes, an error on one node stopping the other in one line, nodes
that see different checkpoints stopping before they train. Then two processes with the variables ``srun`` sets: SLURM's
SIGUSR1 requeue (Lightning's) and SIGTERM.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from faults import weights_hash
from helpers import CONFIGS, REPO, TINY_NET, run_cli

from vlc import checkpoints

pytestmark = pytest.mark.slow

RUN = Path("checkpoints/demo-classify")
RECORD = Path("logs/demo-classify/version_0/run.yaml")


SHRUNK = [
    "fit",
    "--config",
    str(CONFIGS / "demo" / "classify.yaml"),
    "--data.num_images=128",
    "--data.num_test=32",
    "--data.image_size=16",
    "--data.batch_size=16",
    "--trainer.max_epochs=2",
    "--trainer.enable_progress_bar=false",
    "--trainer.accelerator=cpu",
    *TINY_NET,
]
"""``vlc fit`` of the demo classifier shrunk: 128 shapes at 16 px, the tiny network, 2 epochs, on the CPU."""


def fit_args(tmp_path: Path, *extra: str) -> list[str]:
    """:data:`SHRUNK` on 2 nodes of 1 process each, with a :class:`faults.Probe` writing into ``tmp_path/probe``."""
    nodes = ["--trainer.num_nodes=2", "--trainer.devices=1", "--trainer.strategy=ddp"]
    return [
        *SHRUNK,
        *nodes,
        "--trainer.callbacks+=faults.Probe",
        f"--trainer.callbacks.folder={tmp_path / 'probe'}",
        *extra,
    ]


@dataclass
class Node:
    """One node's launch: its process, and the folder of torchrun's logs (None: the process is vlc itself, srun's)."""

    process: subprocess.Popen
    output: Path
    logs: Path | None = None

    @property
    def agent(self) -> str:
        return self.output.read_text()

    @property
    def worker(self) -> str:
        """vlc's output (stdout and stderr)."""
        if self.logs is None:
            return self.output.read_text()
        return "".join(f.read_text() for f in sorted(self.logs.rglob("attempt_0/0/std*.log")))  # torchrun's layout

    def exit_code(self) -> int:
        """vlc's exit code: torchrun's 0, or the one torchrun reports for its worker."""
        if self.logs is None or self.process.returncode == 0:
            return self.process.returncode
        found = re.findall(r"exitcode\s*:\s*(-?\d+)", self.agent)
        assert found, self.agent
        return int(found[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict[str, str]:
    """This environment without SLURM's variables, with vlc's source and the tests on the PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    path = [str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")]
    env.update(PYTHONPATH=os.pathsep.join(path), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    return env


def start(command: list[str], cwd: Path, env: dict[str, str], output: Path, logs: Path | None = None) -> Node:
    with open(output, "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out, start_new_session=True)
    return Node(process, output, logs)


def launch(tmp_path: Path, args: list[str], name: str, folders: tuple[Path, Path] | None = None) -> list[Node]:
    """Start ``vlc ARGS`` as two torchrun nodes in ``tmp_path`` (or node ``i`` in ``folders[i]``)."""
    port, nodes = free_port(), []
    for rank in (0, 1):
        logs = tmp_path / f"{name}-node{rank}"
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
        command += [f"--node-rank={rank}", "--master-addr=127.0.0.1", f"--master-port={port}"]
        command += [f"--log-dir={logs}", "--redirects=3", "-m", "vlc", *args]
        nodes.append(
            start(command, folders[rank] if folders else tmp_path, environment(), logs.with_suffix(".out"), logs)
        )
    return nodes


def srun(tmp_path: Path, args: list[str], name: str) -> list[Node]:
    """Start ``vlc ARGS`` as the two tasks of a SLURM job on two nodes, with the variables ``srun`` sets, and a
    stand-in for SLURM's ``scontrol`` on the PATH that appends what it is asked to ``tmp_path/scontrol.txt``."""
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir(exist_ok=True)
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.txt"}\n')
    scontrol.chmod(0o755)
    env = {**environment(), "PATH": f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    slurm = {"JOB_ID": "4242", "JOB_NAME": "vlc-fit", "NODELIST": "localhost", "NTASKS": "2", "NTASKS_PER_NODE": "1"}
    nodes = []
    for rank in (0, 1):
        tasks = {**slurm, "PROCID": str(rank), "NODEID": str(rank), "LOCALID": "0"}
        task_env = {**env, **{f"SLURM_{key}": value for key, value in tasks.items()}}
        command = [sys.executable, "-m", "vlc", *args]
        nodes.append(start(command, tmp_path, task_env, tmp_path / f"{name}-task{rank}.out"))
    return nodes


def finish(nodes: list[Node], timeout: float = 90) -> list[Node]:
    """Wait for both nodes; a node still running after ``timeout`` seconds (a hang) fails the test."""
    deadline = time.monotonic() + timeout
    try:
        for node in nodes:
            node.process.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        for node in nodes:
            if node.process.poll() is None:
                os.killpg(node.process.pid, signal.SIGKILL)
        pytest.fail("a node hung:\n" + "\n".join(node.agent + node.worker for node in nodes))
    return nodes


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    time.sleep(0.1)  # written: read it whole
    return path.read_text()


def hashes(tmp_path: Path, last: Path) -> tuple[str, str, str]:
    """The weights' hash on rank 0 and rank 1 at the end of training, and that of ``last``'s same entries."""
    rank0, rank1 = ((tmp_path / "probe" / f"rank{r}.hash").read_text().splitlines() for r in (0, 1))
    state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    names = rank0[1:]
    assert names  # the parameters' names
    return rank0[0], rank1[0], weights_hash([(name, state[name]) for name in names])


def test_two_nodes_train_one_run_stop_together_on_sigterm_and_resume_to_the_same_weights(tmp_path):
    slow = ["--trainer.callbacks.delay=0.3"]  # each step takes 0.3 s: the run is still training when signalled
    nodes = launch(tmp_path, fit_args(tmp_path, *slow), "fit")
    os.kill(int(wait_for(tmp_path / "probe" / "rank1.started")), signal.SIGTERM)  # node 1's vlc, after step 1
    finish(nodes)
    assert [node.exit_code() for node in nodes] == [143, 143], nodes[0].worker + nodes[1].worker
    assert "SIGTERM received: stopping after the current batch" in nodes[1].worker
    stopped = re.search(
        r"vlc: interrupted by SIGTERM at epoch 0, step (\d+); the progress is saved in (\S+)", nodes[0].worker
    )
    assert stopped, nodes[0].worker
    assert stopped[2] == "checkpoints/demo-classify/version_0/last.ckpt"
    assert "resume with (through the same torchrun command, on every node): vlc fit" in nodes[0].worker
    last = tmp_path / stopped[2]
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == int(stopped[1]) > 0
    assert [p.name for p in (tmp_path / RUN).iterdir()] == ["version_0"]  # rank 1 claimed no folder of its own
    assert [p.relative_to(tmp_path) for p in (tmp_path / "logs").rglob("run.yaml")] == [RECORD]
    assert yaml.safe_load((tmp_path / RECORD).read_text())["status"] == "interrupted"
    assert "Traceback" not in nodes[0].worker + nodes[1].worker

    nodes = finish(launch(tmp_path, fit_args(tmp_path, "--ckpt_path=last"), "resume"))
    assert [node.exit_code() for node in nodes] == [0, 0], nodes[0].worker + nodes[1].worker
    assert [p.name for p in (tmp_path / RUN).iterdir()] == ["version_0"]
    assert [p.relative_to(tmp_path) for p in (tmp_path / "logs").rglob("run.yaml")] == [RECORD]
    record = yaml.safe_load((tmp_path / RECORD).read_text())
    assert (record["status"], record["epochs"], len(record["sessions"])) == ("complete", 2, 2)
    assert record["sessions"][1]["checkpoint"].endswith("checkpoints/demo-classify/version_0/last.ckpt")
    rank0, rank1, saved = hashes(tmp_path, last)
    assert rank0 == rank1 == saved
    assert "last checkpoint: checkpoints/demo-classify/version_0/last.ckpt" in nodes[0].worker
    assert "last checkpoint" not in nodes[1].worker  # rank 0 alone reports
    assert "Traceback" not in nodes[0].worker + nodes[1].worker


def test_an_error_on_one_node_stops_the_other_in_one_line(tmp_path):
    fault = ["--trainer.callbacks+=faults.Fault", "--trainer.callbacks.step=2", "--trainer.callbacks.fault=user_error"]
    nodes = finish(launch(tmp_path, fit_args(tmp_path, *fault, "--trainer.callbacks.rank=1"), "fit"))
    assert [node.exit_code() for node in nodes] == [1, 2], nodes[0].worker + nodes[1].worker
    errors = [re.findall(r"^vlc: error: .*$", node.worker, re.MULTILINE) for node in nodes]
    assert errors[1] == ["vlc: error: a fault injected at step 2 on rank 1"]
    assert len(errors[0]) == 1 and "another process of this run stopped first, so this one (rank 0)" in errors[0][0]
    assert "Traceback" not in nodes[0].worker + nodes[1].worker


def test_nodes_that_see_different_checkpoints_stop_in_one_line(tmp_path, monkeypatch, capsys):
    folders = tmp_path / "machine0", tmp_path / "machine1"  # two working folders: no shared filesystem
    for folder in folders:
        folder.mkdir()
    monkeypatch.chdir(folders[0])
    code, err = run_cli(capsys, [*SHRUNK, "--trainer.max_epochs=1"])  # a run only node 0 sees
    assert code == 0, err
    nodes = finish(launch(tmp_path, fit_args(tmp_path, "--ckpt_path=auto"), "fit", folders))
    assert [node.exit_code() for node in nodes] == [2, 2], nodes[0].worker + nodes[1].worker
    last = (folders[0] / RUN / "version_0" / "last.ckpt").resolve()
    expected = f"vlc: error: --ckpt_path: the processes of this run start from different checkpoints (rank 0: {last}; "
    for node in nodes:
        errors = re.findall(r"^vlc: error: .*$", node.worker, re.MULTILINE)
        assert len(errors) == 1 and errors[0].startswith(expected + "rank 1: none); every node must see"), errors
        assert "Traceback" not in node.worker


def test_under_slurm_lightning_requeues_on_sigusr1_and_sigterm_still_stops_both_tasks_with_a_checkpoint(tmp_path):
    """Two SLURM tasks (what ``srun`` starts): ``--signal=SIGUSR1@90 --requeue`` works as Lightning does it (an
    ``hpc_ckpt_1.ckpt``, ``scontrol requeue``), SLURM's SIGTERM then stops vlc on both after a batch with
    ``last.ckpt``, which the requeued job's ``--ckpt_path auto`` resumes from (not the older ``hpc_ckpt``)."""
    faults = []
    for step, fault in ((2, "SIGUSR1"), (3, "SIGTERM")):  # each task signals itself, as SLURM signals every task
        faults += ["--trainer.callbacks+=faults.Fault", f"--trainer.callbacks.step={step}"]
        faults += [f"--trainer.callbacks.fault={fault}"]
    nodes = finish(srun(tmp_path, fit_args(tmp_path, *faults, "--ckpt_path=auto"), "fit"))
    assert [node.exit_code() for node in nodes] == [143, 143], nodes[0].worker + nodes[1].worker
    assert "resume with (through the same srun command, on every node): vlc fit" in nodes[0].worker
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "4242"]  # once: rank 0
    hpc = torch.load(tmp_path / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)  # Lightning's, at step 2
    last = torch.load(tmp_path / RUN / "version_0" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (hpc["global_step"], last["global_step"]) == (2, 4)  # SIGTERM during step 3: stopped after it
    assert "Traceback" not in nodes[0].worker + nodes[1].worker
    # what the requeued job's --ckpt_path auto resumes from (a resume of two processes: the torchrun test above)
    assert checkpoints.resolve("auto", tmp_path / RUN, "fit") == str(tmp_path / RUN / "version_0" / "last.ckpt")
