"""Every command of the README runs, in order, on a fresh copy of the repository.

The commands are the lines of README.md's ```bash blocks after the first (the first holds the set-up
commands CI runs itself, .ci/run). Each runs with bash from the copy's root, in order; nothing else is
set up beforehand except:
- the copy: the files git tracks (`git ls-files`, as committed or as edited in this checkout), no runs/;
- $SPIKEJAX_DATA_DIR: a fresh temporary folder (digits_events is simulated into it by the first command);
- a ```python block whose first line is `# NAME.py` is written to NAME.py at the copy's root (the README's
  my_losses.py, which `--import=my_losses` then finds);
- `--max_steps=20` is appended to every `experiments.train` and `experiments.compare_losses` command, so
  the whole test fits in about 3 minutes on 2 cores (the README says so).
A line whose comment says `not run in tests: REASON` is skipped with that reason; a comment ending in
`-> PATH` names a file the command must have written. Commands are separate tests, run in file order, so
one failure does not hide the next.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
SKIP = "not run in tests:"
BUDGET = "--max_steps=20"


def commands() -> list[tuple[str, str | None, str | None]]:
    """(command, skip reason or None, path it must write or None) for each command line, in order."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README, re.S | re.M)[1:]
    found = []
    for block in blocks:
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            command, _, comment = line.partition(" #")
            command = command.strip()
            if SKIP in comment:
                found.append((command, comment.split(SKIP, 1)[1].strip(), None))
                continue
            writes = re.search(r"->\s*(\S+)\s*$", comment)
            budgeted = re.search(r"-m experiments\.(train|compare_losses)\b", command)
            if budgeted and not re.search(r"--max_steps|--help\b", command):
                command = f"{command} {BUDGET}"
            found.append((command, None, writes.group(1) if writes else None))
    return found


COMMANDS = commands()


def test_the_readme_has_commands_to_run():
    assert any(skip is None for _, skip, _ in COMMANDS)
    assert any("experiments.train --seed=1" in command for command, _, _ in COMMANDS)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The tracked files copied into a fresh folder, the README's `# NAME.py` python blocks written beside
    them, and a fresh data folder."""
    root = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(root / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), root / name)
    for block in re.findall(r"^```python\n(.*?)^```", README, re.S | re.M):
        first = block.splitlines()[0].strip()
        if re.fullmatch(r"# \w+\.py", first):
            (root / first[2:]).write_text(block)
    env = {**os.environ, "SPIKEJAX_DATA_DIR": str(tmp_path_factory.mktemp("data")), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # conftest's four host devices are for the in-process tests
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # this venv's python
    return root, env


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[c[0][:70] for c in COMMANDS])
def test_readme_command_runs(index, clone):
    command, skip, writes = COMMANDS[index]
    if skip is not None:
        pytest.skip(f"{command}: {skip}")
    root, env = clone
    done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if writes is not None:
        assert os.path.isfile(root / writes), f"{command} did not write {writes}:\n{done.stdout[-2000:]}"
