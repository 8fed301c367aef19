"""``facelift eval`` (the held-out set, resumable) and ``facelift bench`` (per-stage latency and memory)."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from facelift.cli.common import OutPath, resolve_device
from facelift.evaluation.bench import BenchSettings
from facelift.evaluation.runner import EvalSettings


@dataclass
class EvalCommand:
    """Evaluate weights on the 40 held-out procedural heads: results.json, results.md (the paper's table),
    per-subject rows and previews, worst.png. Reruns resume. --compare DIR ... prints finished runs side by
    side; --ablation NAME applies one of the ready ablation configurations (--list-ablations)."""

    settings: Annotated[EvalSettings, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=EvalSettings)
    out: OutPath = Path("outputs/eval")
    """Result folder."""
    overwrite: bool = False
    """Discard earlier results in the folder instead of resuming."""
    compare: list[Path] = dataclasses.field(default_factory=list)
    """Result folders (or results.json files) to print side by side; nothing is evaluated."""
    group: Literal["novel", "six", "generated"] = "novel"
    """Views whose metrics --compare shows."""
    list_ablations: bool = False
    """Print the ready ablation configurations and exit."""
    progress: bool = True
    """Progress bar on stderr."""

    def run(self) -> int:
        from facelift.evaluation.ablations import ABLATIONS
        from facelift.evaluation.runner import (
            compare_table,
            evaluate,
            load_results,
            paired_differences,
            results_markdown,
            with_ablation,
        )

        if self.list_ablations:
            for a in ABLATIONS.values():
                print(f"{a.name}: {a.description}" + (f" [weights: {a.training}]" if a.training else ""))
            return 0
        if self.compare:
            runs = [load_results(p) for p in self.compare]
            print(compare_table(runs, self.group), end="")
            if len(runs) > 1:
                print("\nPaired per-subject differences from the first run (mean ± standard error):\n")
                print(paired_differences(runs, self.group), end="")
            return 0
        settings = self.settings
        if settings.device != "auto":
            resolve_device(settings.device)  # a clear message for a device that is not there
        if settings.ablation is not None:
            settings = with_ablation(settings, settings.ablation)
        results = evaluate(settings, self.out, overwrite=self.overwrite, progress=self.progress)
        table = results_markdown(results).split("\n## Per subject")[0]
        print(table.rstrip())
        print(f"\nwritten: {self.out}/results.json, results.md, worst.png, subjects/", file=sys.stderr)
        return 0


@dataclass
class BenchCommand:
    """Per-stage latency (median over repeats after warm-up) and peak memory of photo -> 3D on one device,
    as a table and JSON; --random official times the authors' model sizes with random weights."""

    settings: Annotated[BenchSettings, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=BenchSettings)
    json_out: Path | None = None
    """Also write the report as JSON to this file."""

    def run(self) -> int:
        from facelift.evaluation.bench import bench_table, run_bench
        from facelift.utils.io import atomic_write_text

        device = resolve_device(self.settings.device)
        if self.settings.photo is not None and not Path(self.settings.photo).is_file():
            raise FileNotFoundError(f"photo {self.settings.photo} not found")
        report = run_bench(self.settings, device)
        print(bench_table(report), end="")
        if self.json_out is not None:
            atomic_write_text(self.json_out, json.dumps(report, indent=2) + "\n")
        return 0
