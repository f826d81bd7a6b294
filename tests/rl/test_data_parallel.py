"""Data parallelism on emulated CPU devices, each case in a fresh process (device count is fixed at
JAX start-up)."""

import os
import re
import socket
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(script, *args, devices=None, timeout=240):
    env = dict(os.environ, PYTHONPATH=ROOT)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.Popen([sys.executable, os.path.join(SCRIPTS, script), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_sharded_update_on_two_devices_equals_single_device_update(algorithm):
    proc = run("sharded_update.py", algorithm, devices=2)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    found = re.findall(r"split=(\w+) max_param_diff=(\S+) loss_diff=(\S+)", out)
    assert [m for m, _, _ in found] == ["one", "micro", "shared"], out
    for _, diff, loss_diff in found:
        assert float(diff) < 1e-5 and float(loss_diff) < 1e-5, out


def test_two_processes_on_localhost_complete_a_step():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [run("distributed_step.py", port, i) for i in range(2)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240)[0])
        finally:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    sums = [re.search(r"loss=(\S+) checksum=(\S+)", o).groups() for o in outs]
    assert sums[0] == sums[1]  # both processes hold the same updated parameters
