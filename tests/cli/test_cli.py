"""The ``facelift`` console script: results on success, one-line errors and no leftovers on failure."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facelift.gaussians import load_ply

from _cli_helpers import listing as _listing
from _cli_helpers import run_cli as _run

TINY = ["--resolution", "32", "--frames", "3", "--device", "cpu"]
DEMO_TINY = [*TINY, "--num-gaussians", "2000"]
ENTRYPOINT = [sys.executable, "-c", "from facelift.cli.main import entrypoint; entrypoint()"]
RESULT_FILES = ["gaussians.ply", "gaussians.splat", "multiview.png", "summary.json", "turntable.mp4", "views"]


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny ``facelift demo`` run, shared: its output folder and the JSON line it printed."""
    out = tmp_path_factory.mktemp("cli") / "demo"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = _run(["demo", "--out", str(out), *DEMO_TINY])
    assert code == 0
    lines = stdout.getvalue().strip().splitlines()
    assert len(lines) == 1, lines
    return out, json.loads(lines[0])


@pytest.fixture(scope="module")
def demo_ply(demo_result) -> Path:
    return demo_result[0] / "gaussians.ply"


# success -----------------------------------------------------------------------------------------------


def test_demo_writes_the_result_files_and_a_json_line(demo_result):
    out, summary = demo_result
    assert sorted(p.name for p in out.iterdir()) == RESULT_FILES
    assert len(list((out / "views").glob("*.png"))) == 6
    assert summary["out"] == str(out) and summary["resolution"] == 32
    assert summary["num_gaussians"] == load_ply(out / "gaussians.ply").num > 1000
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no staging folder left beside it


def test_render_on_the_demo_ply(demo_ply, tmp_path, capsys):
    out = tmp_path / "render"
    assert _run(["render", str(demo_ply), "--out", str(out), *TINY]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["num_gaussians"] == load_ply(demo_ply).num
    assert sorted(p.name for p in out.iterdir()) == RESULT_FILES
    # The same Gaussians at the same settings give the same front view as the demo.
    assert (out / "views" / "000_front.png").read_bytes() == (demo_ply.parent / "views" / "000_front.png").read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["render"]


def test_render_a_splat_file(demo_result, tmp_path, capsys):
    demo_out, demo_summary = demo_result
    out = tmp_path / "render"
    assert _run(["render", str(demo_out / "gaussians.splat"), "-o", str(out), *TINY]) == 0
    assert json.loads(capsys.readouterr().out)["num_gaussians"] == demo_summary["num_gaussians"]
    assert (out / "gaussians.ply").is_file() and (out / "multiview.png").is_file()


def test_render_from_a_camera_file(demo_ply, tmp_path, capsys):
    from facelift.cameras import orbit_cameras, read_opencv_cameras, write_opencv_cameras

    cams = orbit_cameras(torch.tensor([0.0, 120.0]), torch.tensor([15.0, 0.0]), width=20, height=16)
    write_opencv_cameras(tmp_path / "mine.json", cams, file_paths=["shots/left.jpg", "shots/right.jpg"])
    out = tmp_path / "render"
    args = ["render", str(demo_ply), "-o", str(out), "--cameras", str(tmp_path / "mine.json"), "--turntable-elevation", "20"]
    assert _run([*args, *TINY]) == 0
    assert json.loads(capsys.readouterr().out)["files"].endswith("cameras/")
    back, files, _ = read_opencv_cameras(out / "cameras" / "opencv_cameras.json")
    assert files == ["left.png", "right.png"] and back.width == 20
    from PIL import Image

    with Image.open(out / "cameras" / "right.png") as im:
        assert (im.mode, im.size) == ("RGBA", (20, 16))


def test_missing_output_parents_are_created(demo_ply, tmp_path, capsys):
    # The README's command writes to outputs/demo in a fresh clone, where outputs/ does not exist yet.
    out = tmp_path / "outputs" / "nested" / "render"
    assert _run(["render", str(demo_ply), "-o", str(out), *TINY]) == 0
    assert (out / "gaussians.ply").is_file() and (out / "turntable.mp4").is_file()


def test_render_overwrite_replaces_an_existing_result(demo_ply, tmp_path, capsys):
    out = tmp_path / "render"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert _run(["render", str(demo_ply), "--out", str(out), "--overwrite", "--resolution", "16", "--frames", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gaussians.ply", "gaussians.splat", "multiview.png", "summary.json", "views"]
    assert [p.name for p in tmp_path.iterdir()] == ["render"]  # no .old or .partial folders


def test_help_exits_zero(capsys):
    assert _run(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert _run(["render", "--help"]) == 0
    assert "--overwrite" in capsys.readouterr().out


def test_version(capsys):
    import facelift

    assert _run(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"facelift {facelift.__version__} (torch {torch.__version__}, "), line


def readme_command_lines() -> list[list[str]]:
    """The README's command-line block as argument lists: optional ``[...]`` parts included, every ``a|b|c``
    alternative tried in turn, ``...`` and comments dropped."""
    import re
    import shlex

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.strip().splitlines():
        tokens = [t for t in shlex.split(re.sub(r"\s+#.*$", "", line).replace("[", " ").replace("]", " ")) if t != "..."]
        assert tokens[0] == "facelift", line
        for k in range(max(len(t.split("|")) for t in tokens)):
            lines.append([t.split("|")[min(k, len(t.split("|")) - 1)] for t in tokens[1:]])
    return lines


def parse_error(args: list[str]) -> str | None:
    """What the CLI's parser says about ``facelift ARGS`` (None: it parses; nothing runs)."""
    import tyro

    from facelift.cli.main import COMMANDS

    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        try:
            tyro.extras.subcommand_cli_from_dict(COMMANDS, args=args, prog="facelift")
        except SystemExit:
            return err.getvalue() or "does not parse"
    return None


def test_the_readme_command_lines_parse():
    lines = readme_command_lines()
    assert len(lines) > 15 and ["--version"] in lines
    for args in lines:
        if args != ["--version"] and (error := parse_error(args)) is not None:
            pytest.fail(f"README line does not parse: facelift {' '.join(args)}\n{error}")


def documented_commands() -> list[tuple[str, list[str]]]:
    """Complete ``facelift ...`` commands quoted in backticks in the README, docs/ and the model card: ``(file,
    args)`` for those with at least two options and no placeholders (``[...]``, ``a|b``, ``DIR``, ``...``)."""
    import re
    import shlex

    root = Path(__file__).parents[2]
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "src/facelift/weights/default/README.md"]
    found = []
    for path in files:
        for command in re.findall(r"`((?:[A-Z_]+=\S+ )*facelift [^`]+)`", path.read_text()):
            command = re.sub(r"^(?:[A-Z_]+=\S+ )*", "", command)  # OMP_NUM_THREADS=2 facelift ...
            if re.search(r"[\[\]|<>]|\.\.\.", command):
                continue
            args = shlex.split(command)[1:]
            if sum(a.startswith("--") for a in args) >= 2 and not any(re.fullmatch(r"[A-Z][A-Z_0-9]*", a) for a in args):
                found.append((path.name, args))
    return found


def test_the_commands_the_docs_quote_still_parse():
    # The model card and docs record the exact command of every run; an option renamed since fails here.
    commands = documented_commands()
    assert len(commands) >= 30  # the scraper still finds the run commands (40 when the history was condensed)
    for name, args in commands:
        if (error := parse_error(args)) is not None:
            pytest.fail(f"{name}: the command does not parse: facelift {' '.join(args)}\n{error}")


def test_usage_errors_exit_two(capsys):
    assert _run([]) == 2
    assert _run(["render"]) == 2  # no PLY
    assert _run(["demo", "--resolution", "abc"]) == 2


# failures ----------------------------------------------------------------------------------------------


def _bad_inputs(folder: Path, demo_ply: Path) -> dict[str, Path]:
    data = demo_ply.read_bytes()
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    n = load_ply(demo_ply).num
    files = {
        "text.ply": b"these are not Gaussians\n",
        "empty.ply": b"",
        "truncated.ply": data[:100],
        "cut.ply": data[: header_end + 1000],  # the header is whole, the data is not
        "zero.ply": data[:header_end].replace(f"element vertex {n}\n".encode(), b"element vertex 0\n"),
        "odd.splat": bytes(33),
        "huge.json": json.dumps({"frames": [{"w": 100000, "h": 64, "fx": 50.0, "fy": 50.0, "cx": 50000.0, "cy": 32.0,
                                             "w2c": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]}]}).encode(),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in files}


ERROR_CASES = {
    # name: (argv with {ply}, {out}, {inputs} placeholders, words the message must contain)
    "missing ply": (["render", "{inputs}/nope.ply", "--out", "{out}"], ["nope.ply", "not found"]),
    "text file named .ply": (["render", "{inputs}/text.ply", "--out", "{out}"], ["text.ply", "not a readable PLY"]),
    "empty file": (["render", "{inputs}/empty.ply", "--out", "{out}"], ["empty.ply", "not a readable PLY"]),
    "truncated header": (["render", "{inputs}/truncated.ply", "--out", "{out}"], ["truncated.ply", "not a readable PLY"]),
    "truncated data": (["render", "{inputs}/cut.ply", "--out", "{out}"], ["cut.ply", "end-of-file"]),
    "no gaussians": (["render", "{inputs}/zero.ply", "--out", "{out}"], ["zero.ply", "no Gaussians"]),
    "folder as ply": (["render", "{inputs}", "--out", "{out}"], ["not found"]),
    "render output not empty": (["render", "{ply}", "--out", "{inputs}"], ["not empty", "--overwrite"]),
    "demo output not empty": (["demo", "--out", "{inputs}"], ["not empty", "--overwrite"]),
    "output is a file": (["demo", "--out", "{inputs}/text.ply", "--overwrite"], ["text.ply", "not a folder"]),
    "output parent is a file": (["demo", "--out", "{inputs}/text.ply/out"], ["text.ply", "not a folder"]),
    "demo resolution 0": (["demo", "--out", "{out}", "--resolution", "0"], ["--resolution"]),
    "render resolution 0": (["render", "{ply}", "--out", "{out}", "--resolution", "0"], ["--resolution"]),
    "negative frames": (["demo", "--out", "{out}", "--frames", "-1"], ["--frames"]),
    "too few gaussians": (["demo", "--out", "{out}", "--num-gaussians", "10"], ["--num-gaussians"]),
    "unknown device": (["demo", "--out", "{out}", "--device", "bogus"], ["bogus"]),
    "meta device": (["render", "{ply}", "--out", "{out}", "--device", "meta"], ["meta"]),
    "cuda unavailable": (["render", "{ply}", "--out", "{out}", "--device", "cuda"], ["cuda", "not available"]),
    "missing splat": (["render", "{inputs}/nope.splat", "--out", "{out}"], ["nope.splat", "not found"]),
    "splat of the wrong size": (["render", "{inputs}/odd.splat", "--out", "{out}"], ["odd.splat", "not a .splat file"]),
    "missing camera file": (["render", "{ply}", "--out", "{out}", "--cameras", "{inputs}/cams.json"], ["cams.json", "not found"]),
    "camera file not JSON": (["render", "{ply}", "--out", "{out}", "--cameras", "{inputs}/text.ply"], ["text.ply", "JSON"]),
    "camera image too large": (["render", "{ply}", "--out", "{out}", "--cameras", "{inputs}/huge.json"], ["huge.json", "8192"]),
    "turntable straight down": (["render", "{ply}", "--out", "{out}", "--turntable-elevation", "90"], ["--turntable-elevation"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_inputs_give_one_line_and_leave_nothing(case, demo_ply, tmp_path, capsys, monkeypatch):
    argv, words = ERROR_CASES[case]
    if case == "cuda unavailable" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    _bad_inputs(inputs, demo_ply)
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    fill = {"{ply}": str(demo_ply), "{out}": str(tmp_path / "out"), "{inputs}": str(inputs)}
    args = [fill.get(arg, arg.replace("{inputs}", str(inputs))) for arg in argv]
    if args[0] == "demo":  # keep the cases that would get past the checks tiny
        args += [flag for flag in ("--num-gaussians", "2000") if "--num-gaussians" not in args]
        args += [flag for flag in ("--frames", "2") if "--frames" not in args]
    assert _run(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facelift: error: "), captured.err
    assert "Traceback" not in captured.err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert _listing(tmp_path) == before  # no output folder, no staging folder, no temporary file


def test_failure_during_export_leaves_no_folder(demo_ply, tmp_path, capsys, monkeypatch):
    import facelift.pipeline.export as export

    def broken_write_video(path, frames, fps=30):
        Path(path).write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(export, "write_video", broken_write_video)
    assert _run(["render", str(demo_ply), "--out", str(tmp_path / "out"), *TINY]) == 1
    err = capsys.readouterr().err
    assert err == "facelift: error: No space left on device\n"
    assert list(tmp_path.iterdir()) == []


def test_failure_during_overwrite_keeps_the_previous_result(demo_ply, tmp_path, capsys, monkeypatch):
    import facelift.pipeline.export as export

    out = tmp_path / "out"
    out.mkdir()
    (out / "previous.txt").write_text("previous")
    def broken_save_splat(path, g):
        raise OSError("disk error")

    monkeypatch.setattr(export, "save_splat", broken_save_splat)
    assert _run(["render", str(demo_ply), "--out", str(out), "--overwrite", *TINY]) == 1
    assert capsys.readouterr().err == "facelift: error: disk error\n"
    assert _listing(tmp_path) == ["out", "out/previous.txt"]


# as a separate process ---------------------------------------------------------------------------------


def _subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*ENTRYPOINT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_subprocess_demo_then_bad_render(tmp_path):
    done = _subprocess(["demo", "--out", "result", *DEMO_TINY], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["out"] == "result"
    assert sorted(p.name for p in (tmp_path / "result").iterdir()) == RESULT_FILES

    (tmp_path / "x.ply").write_text("not a ply\n")
    failed = _subprocess(["render", "x.ply", "--out", "rendered", *TINY], tmp_path)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.startswith("facelift: error: x.ply") and failed.stderr.count("\n") == 1, failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result", "x.ply"]


def test_installed_script_help(tmp_path):
    # The script beside this interpreter (a pyenv shim on PATH would add seconds of start-up).
    beside = Path(sys.executable).parent / "facelift"
    script = str(beside) if beside.is_file() else shutil.which("facelift")
    if script is None:
        pytest.skip("the facelift console script is not on PATH")
    done = subprocess.run([script, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout and "render" in done.stdout
