"""2 nodes x 2 ranks: two torchrun launchers (``--nnodes 2 --node_rank {0,1}``, static
rendezvous on 127.0.0.1, gloo) train one run on the demo data. The global batch, each rank's
own crops and shard, the step's shared lambda and box, a SIGTERM to one node and
``--resume auto`` hold across nodes as they do on one (``test_train.py``).

    pytest -m slow tests/training/test_multinode.py -s   # prints what it checked

Each launcher stands for a node of its own; the run folder is shared, as a cluster's file
system would be.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import torch

from tests.training.test_train import REPO, SHORT

# slow, not `trains`: nothing here depends on the arithmetic of one CPU's kernels
pytestmark = pytest.mark.slow
NODES, PER_NODE = 2, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_nodes(*arguments) -> list[subprocess.Popen]:
    """One torchrun launcher per node, each running ``train.py arguments``."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    return [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(NODES),
         "--nproc_per_node", str(PER_NODE), "--node_rank", str(node), "--master_addr",
         "127.0.0.1", "--master_port", str(port), str(REPO / "train.py"), *arguments],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in range(NODES)]


def finish(nodes, timeout=300) -> list[tuple[int, str]]:
    """Each launcher's exit status and the rest of its output."""
    outputs = [node.communicate(timeout=timeout)[0] for node in nodes]
    return [(node.returncode, output) for node, output in zip(nodes, outputs)]


def test_two_nodes_share_the_step_and_split_the_data(tmp_path):
    out = tmp_path / "run"
    args = [*SHORT, "--max-steps-per-epoch", "2", "--epochs", "1", "--warmup", "0",
            "--debug-shards", "--output", str(out)]
    results = finish(launch_nodes(*args))
    for status, output in results:
        assert status == 0, output
    metrics = json.loads((out / "metrics.json").read_text())
    world = NODES * PER_NODE
    assert metrics["world_size"] == world
    assert (metrics["global_batch"], metrics["rank_batch"]) == (16, 16 // world)
    steps = [json.loads((out / f"step_rank{r}.json").read_text()) for r in range(world)]
    box, lam = steps[0]["box"][0], steps[0]["lam"][0]
    assert all(s["box"] == [box] * s["rank_batch"] and s["lam"] == steps[0]["lam"]
               for s in steps) and lam < 1  # one lambda and box per step, on every node
    sums = [set(s["image_sums"]) for s in steps]  # each rank's own images and crops
    assert all(not a & b for i, a in enumerate(sums) for b in sums[i + 1:])
    shards = [set(json.loads((out / f"shard_rank{r}.json").read_text())["0"])
              for r in range(world)]
    assert all(not a & b for i, a in enumerate(shards) for b in shards[i + 1:])
    assert len(set().union(*shards)) == 740  # every sample of P once per epoch
    print(f"\n{results[0][1].splitlines()[0]}\nglobal batch {metrics['global_batch']} = "
          f"{world} ranks x {metrics['rank_batch']} on {NODES} nodes; step 1's box {box} and "
          f"lambda {lam:.4f} on every rank; image sums and epoch-1 shards disjoint, "
          f"{len(set().union(*shards))} samples")


def test_sigterm_to_one_node_checkpoints_the_run_and_resume_auto_finishes_it(tmp_path):
    out = tmp_path / "run"
    args = [*SHORT, "--max-steps-per-epoch", "0", "--epochs", "1", "--print-every", "0",
            "--output", str(out)]
    nodes = launch_nodes(*args)
    lines = []
    for line in nodes[0].stdout:  # rank 0 (node 0) reports each batch: stop node 1 after one
        lines.append(line)
        if re.match(r"epoch 1/1: 1/\d+ batches", line):
            nodes[1].send_signal(signal.SIGTERM)
        if line.startswith("resume with:"):  # node 0's ranks have stopped too; its launcher
            break  # would wait for node 1's at torchrun's exit barrier: end it, as a job's end
    nodes[0].send_signal(signal.SIGTERM)
    try:  # a launcher inside torchrun's exit barrier may not heed SIGTERM: a scheduler kills it
        nodes[0].wait(timeout=30)
    except subprocess.TimeoutExpired:
        nodes[0].kill()
    (status0, rest0), (status1, output1) = finish(nodes)
    output0 = "".join(lines) + rest0
    stopped = re.search(r"stopped by another rank's signal in epoch 1 after batch (\d+): "
                        r"checkpoint written", output0)
    assert stopped and status0 != 0 and status1 != 0, f"{output0}\n{output1}"
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    world = NODES * PER_NODE
    assert state["world_size"] == world and len(state["iterators"]) == world
    positions = {it["position"] for it in state["iterators"]}
    assert positions == {int(stopped.group(1))}  # every rank stopped after the same batch

    results = finish(launch_nodes(*args, "--resume", "auto"))
    for status, output in results:
        assert status == 0, output
    resumed = re.search(r"resuming from .*", results[0][1])
    assert resumed and json.loads((out / "metrics.json").read_text())["world_size"] == world
    print(f"\n{stopped.group(0)} (SIGTERM to node 1; launchers exit {status0}, {status1})\n"
          f"{resumed.group(0)}\nresumed run finished: exit 0 on both nodes")
