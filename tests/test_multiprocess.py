"""Multi-process (multi-host) training and evaluation, emulated on one machine.

Each "host" is a subprocess running the real command line (`train.py`,
`evaluate.py run`) joined through `jax.distributed` on localhost (a free
port) with 2 forced CPU devices; JAX's gloo CPU collectives carry the
all-reduces. Every launch has a hard timeout, and when one process fails
the others are killed (by their pid) after a short grace period, so a
broken collective fails the test instead of hanging it. The processes share
a persistent compilation cache, so only the first launch of each program
compiles.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs/globaltrack_r50_fpn.py:tiny")
TIMEOUT_S = 900  # per launch (all its processes); compiles dominate
GRACE_S = 60  # after one process fails, the others get this long


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int, cache: str) -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_COMPILATION_CACHE_DIR=cache,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  for k in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "JAX_COORDINATOR_ADDRESS",
            "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS"):
    env.pop(k, None)
  return env


def launch(argvs: list[list[str]], devices: int, cache: str, logdir: str,
           timeout: float = TIMEOUT_S) -> list[str]:
  """Runs the processes together; returns their outputs (stdout+stderr).

  Fails (never hangs) if any exits non-zero or the launch runs past
  `timeout`; the remaining processes are then killed.
  """
  os.makedirs(logdir, exist_ok=True)
  procs, logs = [], []
  for i, argv in enumerate(argvs):
    path = os.path.join(logdir, f"p{i}.log")
    f = open(path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    logs.append((path, f))
    procs.append(subprocess.Popen([sys.executable] + argv, cwd=ROOT,
                                  env=_env(devices, cache), stdout=f,
                                  stderr=subprocess.STDOUT))
  deadline = time.time() + timeout
  failed_at = None
  try:
    while any(p.poll() is None for p in procs):
      now = time.time()
      if failed_at is None and any(p.poll() not in (None, 0) for p in procs):
        failed_at = now
      if now > deadline or (failed_at is not None
                            and now > failed_at + GRACE_S):
        break
      time.sleep(0.5)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait(timeout=30)
    for _, f in logs:
      f.close()
  outs = []
  for path, _ in logs:
    with open(path, encoding="utf-8") as f:
      outs.append(f.read())
  codes = [p.returncode for p in procs]
  assert codes == [0] * len(procs), (
      f"exit codes {codes}\n" +
      "\n".join(f"--- process {i}:\n{o[-2500:]}" for i, o in enumerate(outs)))
  return outs


def hosts(argv: list[str], n: int = 2) -> list[list[str]]:
  """`argv` once per process, with the coordinator flags."""
  addr = f"localhost:{free_port()}"
  return [argv + ["--coordinator_address", addr, "--num_processes", str(n),
                  "--process_id", str(i)] for i in range(n)]


def metrics(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(l) for l in f if l.strip()]


def loss_rows(workdir: str) -> np.ndarray:
  keys = ("step", "loss", "loss_rpn_cls", "loss_rpn_bbox", "loss_cls",
          "loss_bbox")
  return np.array([[r[k] for k in keys] for r in metrics(workdir)])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
  """A generated synthetic dataset and a compilation cache for every run."""
  from gt_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.mktemp("mp")
  synthetic.generate(str(base / "data" / "synthetic"), verbose=False)
  return dict(data=str(base / "data"), cache=str(base / "jax_cache"),
              base=base)


def train_argv(workdir: str, data: str, script: list[str] | None = None
               ) -> list[str]:
  return (script or ["train.py"]) + [
      "--config", TINY, "--workdir", workdir, "--no_progress",
      "--config.global_batch_size=4", "--config.total_steps=6",
      "--config.log_every=1", "--config.checkpoint_every=100",
      f"--config.data.cache_dir={data}"]


# Process 1 sends itself SIGTERM after dispatching step 3 (a real signal to
# one host only); every process must then stop and save step 3 together.
_SIGTERM_ONE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import jax
    import train
    from gt_jax.training import loop
    _train = loop.train
    def _hooked(cfg, workdir, **kw):
      def on_step(step):
        if step == 3 and jax.process_index() == 1:
          os.kill(os.getpid(), signal.SIGTERM)
      return _train(cfg, workdir, on_step=on_step, **kw)
    loop.train = _hooked
    sys.exit(train.main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_two_processes_train_like_one_and_resume_after_sigterm(shared):
  base, data, cache = shared["base"], shared["data"], shared["cache"]
  # Reference: 1 process x 4 devices.
  one = str(base / "one")
  launch([train_argv(one, data)], 4, cache, str(base / "log1"))
  # 2 processes x 2 devices, straight to step 6.
  two = str(base / "two")
  outs = launch(hosts(train_argv(two, data)), 2, cache, str(base / "log2"))
  assert os.path.isdir(os.path.join(two, "model"))
  assert sum("final weights written" in o for o in outs) == 1  # process 0
  # The processes agreed on instance buckets, some smaller than all slots
  # (the tiny config's 2; the videos' pairs have one instance).
  slots = [(int(a), int(b)) for a, b in re.findall(
      r"train step compiled for (\d+) instance slot\(s\) of (\d+)",
      outs[0])]
  assert any(a < b for a, b in slots), outs[0][-2000:]
  ref, got = loss_rows(one), loss_rows(two)
  np.testing.assert_array_equal(got[:, 0], np.arange(1, 7))
  np.testing.assert_allclose(got, ref, rtol=1e-4)
  assert len(set(np.round(ref[:, 1], 6))) == 6  # the losses do change

  # SIGTERM to process 1 alone at step 3: both save step 3 and exit 0.
  split = str(base / "split")
  script = ["-c", _SIGTERM_ONE.format(root=ROOT)]
  outs = launch(hosts(train_argv(split, data, script)), 2, cache,
                str(base / "log3"))
  assert "(stopped by signal)" in outs[0] and "(stopped by signal)" in outs[1]
  assert os.listdir(os.path.join(split, "checkpoints")) == ["3"]
  assert not os.path.exists(os.path.join(split, "model"))
  # Each process saved its own data iterator state.
  data_dir = os.path.join(split, "checkpoints", "3", "data")
  assert sorted(f for f in os.listdir(data_dir) if f.startswith("process")) \
      == ["process_0-of-2.json", "process_1-of-2.json"]
  # The same commands again resume and finish; the losses are the straight
  # run's.
  launch(hosts(train_argv(split, data)), 2, cache, str(base / "log4"))
  resumed = loss_rows(split)
  np.testing.assert_array_equal(resumed[:, 0], np.arange(1, 7))
  np.testing.assert_allclose(resumed, got, rtol=1e-6)
  assert os.path.isdir(os.path.join(split, "model"))
  # And once more: a finished run is a no-op.
  outs = launch(hosts(train_argv(split, data)), 2, cache, str(base / "log5"))
  assert "run already finished at step 6" in outs[0]
  assert len(metrics(split)) == 6


def _bench(base) -> tuple[str, str]:
  """A 2-sequence LaSOT-layout benchmark and a tiny random checkpoint."""
  sys.path.insert(0, os.path.join(ROOT, "tests"))
  from dataset_fixtures import make_lasot  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
  from gt_jax.model.build import build_model, init_variables  # pylint: disable=g-import-not-at-top
  root = make_lasot(str(base / "lasot"))
  cfg = load_config(TINY)
  variables = init_variables(build_model(cfg.model), jax.random.PRNGKey(4))
  ckpt = str(base / "ckpt")
  checkpoint.save_variables(ckpt, variables)
  return root, ckpt


@pytest.mark.slow
def test_two_process_evaluation_matches_one(shared):
  base, cache = shared["base"], shared["cache"]
  root, ckpt = _bench(base)

  def argv(results):
    return ["evaluate.py", "run", "--benchmark", "lasot", "--root", root,
            "--subset", "airplane-1,bear-2",
            "--config", TINY, "--checkpoint", ckpt, "--results", results,
            "--workers", "1", "--no-progress"]

  one, two = str(base / "res1"), str(base / "res2")
  launch([argv(one)], 2, cache, str(base / "elog1"))
  outs = launch(hosts(argv(two)), 2, cache, str(base / "elog2"))
  files1 = sorted(os.listdir(os.path.join(one, "GlobalTrack")))
  files2 = sorted(os.listdir(os.path.join(two, "GlobalTrack")))
  assert files1 == files2 and "airplane-1.txt" in files1
  for name in files1:
    if name == "times":  # wall-clock times differ by nature
      continue
    if name.endswith(".json"):  # provenance.json: the same run settings
      with open(os.path.join(one, "GlobalTrack", name)) as f1, open(
          os.path.join(two, "GlobalTrack", name)) as f2:
        assert json.load(f1) == json.load(f2), name
      continue
    a = np.loadtxt(os.path.join(one, "GlobalTrack", name), delimiter=",",
                   ndmin=1)
    b = np.loadtxt(os.path.join(two, "GlobalTrack", name), delimiter=",",
                   ndmin=1)
    np.testing.assert_allclose(a, b, atol=1e-3, err_msg=name)
  # Each process tracked its own share; exactly one wrote the report.
  tracked = [int(o.split("tracked ")[1].split(" ")[0]) for o in outs]
  assert tracked == [1, 1]
  assert sum("report.json" in o for o in outs) == 1
  assert "report.json" in outs[0]
  assert os.path.isfile(os.path.join(two, "report", "report.json"))
