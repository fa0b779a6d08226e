"""`--help` of every entry point exits 0 and lists the flags users type, each with its help text."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = ["--config", "--dataset", "--loss", "--window", "--import", "--workdir", "--data_dir", "--epochs",
       "--batch_size", "--seed", "--max_steps"]
MULTI_PROCESS = ["--coordinator_address", "--num_processes", "--process_id", "--[no]distributed"]
# per program: the flags its --help must list (shared and its own), and shared ones it must not (it refuses them)
EXPECTED = {
    "train": (RUN + MULTI_PROCESS, []),
    "compare_losses": ([f for f in RUN if f not in ("--loss", "--window")] + MULTI_PROCESS
                       + ["--sweep", "--seeds", "--[no]quick"], ["--loss", "--window"]),
    "evaluate": (["--workdir", "--data_dir"] + MULTI_PROCESS, ["--loss", "--dataset", "--epochs"]),
    "export": (["--workdir", "--dt", "--[no]approximate", "--out"], ["--loss", "--dataset"]),
    "inspect_data": (["--config", "--dataset", "--data_dir", "--split", "--index", "--out"], ["--loss", "--epochs"]),
    "plot": (["--workdir", "--data_dir", "--out", "--index"], ["--loss", "--dataset", "--epochs"]),
    "results": (["--results_dir", "--results_md", "--[no]print"], ["--loss", "--dataset", "--workdir"]),
}


def test_help_exits_0_and_lists_the_flags():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    started = {name: subprocess.Popen([sys.executable, "-m", f"experiments.{name}", "--help"], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in EXPECTED}  # side by side: each is mostly import time
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name} --help: exit {process.returncode}\n{out}\n{err}"
        listed = {line.split(":")[0].strip() for line in out.splitlines() if line.startswith("  --")}
        shown, hidden = EXPECTED[name]
        assert not set(shown) - listed, f"{name} --help lacks {sorted(set(shown) - listed)}:\n{out}"
        assert not set(hidden) & listed, f"{name} --help lists {sorted(set(hidden) & listed)}, which it refuses"
        assert "--helpfull" in out, out


def test_short_h_and_helpfull_exit_0():
    for flag in ("-h", "--helpfull"):
        done = subprocess.run([sys.executable, "-m", "experiments.train", flag], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "--max_steps" in done.stdout
