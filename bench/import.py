"""Import throughput and memory: ``axonlink import`` of generated volumes, against igneous (issue 18).

``import`` is a Python keyword: ``python -m bench.import`` runs this file, but no module can
``import`` it by name (nothing does).

For each size asked (x×y×z voxels; default 256³ and 1024×1024×256, about 270 M voxels):

- **volumes**: the demo phantom (``make_phantom``, 512×512×128, 48 neurons) tiled to the size, every
  other tile mirrored along each axis (so neurites continue across seams) and each tile's labels
  offset (so they stay distinct), written tile by tile into ``image.npy`` (uint8) and ``labels.npy``
  (``--label-dtype``, uint64 by default) indexed [z, y, x] through ``np.lib.format.open_memmap``: the
  whole volume is never in memory. Cached under ``--scratch``; a re-run skips the generation.
- **axonlink**: ``axonlink import bench --image image.npy --segmentation labels.npy --voxel-size 8,8,40
  --workers N`` (default chunk, mips, graph, meshes) as a subprocess with a fresh home and SQLite
  database under ``--scratch``. Its JSON summary gives the seconds per stage; figures are MVx/s per
  stage (mip-0 voxels ÷ the stage's seconds, also for the passes that read a higher mip). While it
  runs, the whole process tree (the command, its Dask workers, meshing processes, any other child) is
  sampled every 50 ms: RSS summed over the processes, and anonymous memory (arrays, heaps: what the
  kernel cannot take back, unlike mapped files) summed separately, both from ``/proc/<pid>/status``;
  and PSS (``/proc/<pid>/smaps_rollup``: pages shared by several processes, such as libraries or a
  mapped file, split among them) every 250 ms, as the kernel walks every page table to answer it
  (at 50 ms the sampling took a fifth of a core; now about 5 %). The tree itself is found again
  every 500 ms: it means reading a file per thread of each process (a Dask worker has a dozen), and
  finding it every sample cost more with axonlink's seven processes than with igneous' two. The
  peaks of the three sums are reported, overall and by phase (the last progress bar the command printed on stderr: time before
  the first bar, Dask starting included, is ``start``; registering the dataset counts to the last
  pyramid pass), with the CPU seconds of the measured processes per phase and the CPU seconds the
  machine spent outside them meanwhile (``other_cpu_s``: this sampling, and anything else running
  on a shared machine, which on 2 cores slows the measured command). Lines the command logged as
  errors or warnings are kept (``stderr_problems``).
- **igneous** (``--igneous PATH`` to its ``igneous`` command, ``none`` to skip), on the same voxels:
  axonlink's mip-0 image and segmentation copied into scratch layers whose info has scale 0 only,
  then ``igneous image downsample --mip 0 --num-mips K`` (K = axonlink's mips - 1, igneous' default
  2×2×1 factor, its own task shape) on each, ``igneous mesh forge`` (``bench.meshes.igneous_forge``)
  and ``igneous mesh merge`` on the segmentation. Each queue is run by ``igneous execute -x``
  processes, N of them but at most one per core, as ``igneous -p N`` runs it (its own cap).
  axonlink's import caps its CPU-bound tasks the same way (``segmentation.parallel``).
  ``igneous_forge`` deletes its copy when done, so merge needs fragments forged again in the scratch layer: that second forge is timed
  too (``forge_repeat_s``: how much forge times vary) but counted nowhere. igneous' processes (every
  descendant of this one) are sampled the same way.
- **ratios** axonlink ÷ igneous: downsampling = axonlink's pyramid stages of both layers (which also
  read and convert the source and write mip 0) against igneous downsample of both layers; meshing =
  axonlink's ``meshes`` stage against igneous forge + merge. As seconds (below 1: axonlink faster),
  as MVx/s (above 1: axonlink faster) and as CPU seconds of the measured processes during those
  phases (``cpu_s``; what other work on a shared machine changes least; igneous' include starting
  its processes, axonlink's exclude starting Dask, which is its ``start`` phase).

Targets (issue 18): not slower than igneous; peak RSS ≤ 2 GB at 4 workers; peak RSS not growing with
the volume beyond a small margin (``rss_growth``: at the largest size ÷ at the smallest).

    python -m bench.import [--sizes 256x256x256,1024x1024x256] [--workers 4]
        [--scratch DIR] [--igneous /work/.venv-igneous/bin/igneous | none] [--label-dtype uint64]
        [--keep] [--trace]

Prints one line per figure and, last, one JSON line with every figure (and the commit measured).
Without ``--scratch`` the volumes go to a new temporary folder (kept: give it as ``--scratch`` to skip
generating them again). The import's home and igneous' layers are removed after each size unless
``--keep``; a failed import keeps its home and log for inspection. ``--trace`` writes every memory
sample (the sums, and each process' RSS and anonymous memory) to ``<scratch>/trace-<size>-<tool>.jsonl``.
``bench.fresh.fresh_settings`` is not used: the import runs in a subprocess that migrates its own
database, and its home belongs under ``--scratch``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np
import psutil

from bench.meshes import igneous_forge
from segmentation.config import sqlite_url
from segmentation.parallel import pool_processes

ROOT = Path(__file__).resolve().parents[1]
TILE = (512, 512, 128)  # the phantom's shape, x, y, z
DEFAULT_SIZES = "256x256x256,1024x1024x256"
VOXEL_SIZE = "8,8,40"
SAMPLE_SECONDS = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PSS_EVERY = 5  # samples: PSS every 250 ms (reading it costs the kernel a walk of every page table)
TREE_EVERY = 10  # samples: the process tree found again every 500 ms (a read per thread of each process)
NAME = "bench"
PYRAMID_STAGE = re.compile(r"^(image|segmentation) mips? \d+(-\d+)?$")
PHASE = re.compile(r"^\s*((?:image|segmentation) mips? \d+(?:-\d+)?|region graph|meshes):")
PROBLEM = re.compile(r" - (ERROR|WARNING|CRITICAL) - |Traceback|Error:")  # what Dask and Python log
NOT_THROUGHPUT = ("check", "register")  # bookkeeping stages: no MVx/s


# ---- volumes ------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int, int]]:
    """``256x256x256,1024x1024x256`` → [(256, 256, 256), (1024, 1024, 256)] (x, y, z)."""
    sizes = []
    for size in text.split(","):
        try:
            values = tuple(int(v) for v in size.lower().split("x"))
        except ValueError:
            values = ()
        if len(values) != 3 or min(values) < 1:
            raise argparse.ArgumentTypeError(f"a size is X×Y×Z voxels, e.g. 1024x1024x256, not {size!r}")
        sizes.append(values)
    return sizes


def size_name(size) -> str:
    return "x".join(map(str, size))


@cache
def phantom(seed: int):
    from segmentation.demo.phantom import make_phantom

    return make_phantom(seed, neuron_count=48, shape=TILE)


def volumes(scratch: Path, size, seed: int, label_dtype: str) -> tuple[Path, Path]:
    """``image.npy`` and ``labels.npy`` of ``size`` (x, y, z) voxels, indexed [z, y, x]: generated
    tile by tile into memory-mapped files, or found from an earlier run."""
    folder = scratch / f"phantom-{size_name(size)}-seed{seed}-{label_dtype}"
    image_path, labels_path = folder / "image.npy", folder / "labels.npy"
    if (folder / "complete").is_file():
        return image_path, labels_path
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tile = phantom(seed)
    stride = int(tile.labels.max()) + 1  # label offset from one tile to the next
    if stride * math.prod(math.ceil(s / t) for s, t in zip(size, TILE)) >= np.iinfo(label_dtype).max:
        raise SystemExit(f"{size_name(size)} has too many labels for {label_dtype}")
    shape = tuple(reversed(size))  # z, y, x
    image = np.lib.format.open_memmap(folder / "image.tmp.npy", mode="w+", dtype=np.uint8, shape=shape)
    labels = np.lib.format.open_memmap(folder / "labels.tmp.npy", mode="w+", dtype=label_dtype, shape=shape)
    counts = [math.ceil(s / t) for s, t in zip(size, TILE)]
    for number, index in enumerate(np.ndindex(*counts)):
        start = [i * t for i, t in zip(index, TILE)]
        stop = [min(a + t, s) for a, t, s in zip(start, TILE, size)]
        crop = tuple(slice(0, b - a) for a, b in zip(start, stop))
        mirror = tuple(axis for axis, i in enumerate(index) if i % 2)  # neighbours meet at the same plane
        tile_image = np.flip(tile.image, mirror)[crop] if mirror else tile.image[crop]
        tile_labels = np.flip(tile.labels, mirror)[crop] if mirror else tile.labels[crop]
        tile_labels = np.where(tile_labels != 0, tile_labels + number * stride, 0).astype(label_dtype)
        box = tuple(slice(a, b) for a, b in zip(reversed(start), reversed(stop)))
        image[box] = tile_image.transpose(2, 1, 0)
        labels[box] = tile_labels.transpose(2, 1, 0)
    image.flush()
    labels.flush()
    del image, labels
    os.replace(folder / "image.tmp.npy", image_path)
    os.replace(folder / "labels.tmp.npy", labels_path)
    (folder / "complete").write_text("done\n")
    print(f"{size_name(size)}: volumes generated in {time.perf_counter() - started:.1f} s ({folder})", flush=True)
    return image_path, labels_path


# ---- memory of a process tree -------------------------------------------------------------------


def resident(pid: int) -> tuple[int, int]:
    """(RSS, anonymous resident bytes) of a process, from the kernel's counters (cheap to read).
    Anonymous pages are the heap, arrays and the like; the rest of RSS is mapped files (libraries, a
    memory-mapped source), pages the kernel can take back."""
    rss = anonymous = 0
    with open(f"/proc/{pid}/status") as lines:
        for line in lines:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anonymous = int(line.split()[1]) * 1024
    return rss, anonymous


def pss_bytes(pid: int) -> int:
    """The process' proportional set size: pages shared by several processes split among them. The
    kernel walks the process' page tables to answer (about 2 ms for a 300 MB process)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as lines:
            for line in lines:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from the kernel's per-thread lists of children (reading them is
    much cheaper than scanning every process for its parent)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as listing:
                    children = [int(child) for child in listing.read().split()]
            except FileNotFoundError:
                continue
            found += children
            todo += children
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds the process has used (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def busy_cpu_seconds() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class TreeMemory:
    """Peaks of the summed RSS, PSS and anonymous memory of process ``root`` and all its descendants
    (or its descendants only), sampled every :data:`SAMPLE_SECONDS` in a thread; the peaks per phase
    (whatever ``phase`` is set to meanwhile); the most processes seen at once; and the CPU seconds the
    machine spent outside the tree meanwhile (other work on a shared machine, this benchmark's own
    sampling: on 2 cores, what slows the measured command). ``trace``: a file to write every sample to
    (JSON lines)."""

    def __init__(self, root: int, include_root: bool = True, trace: Path | None = None):
        self.root, self.include_root = root, include_root
        self.phase = "start"
        self.peak_rss = self.peak_pss = self.peak_anonymous = self.most_processes = self.samples = 0
        self.by_phase: dict[str, dict] = {}  # phase -> peaks (bytes) and CPU seconds
        self.tree_cpu = self.other_cpu = 0.0
        self._cpu: dict[int, float] = {}  # pid -> CPU seconds at the last sample
        self._processes: list[int] = []  # the tree, found again every TREE_EVERY samples
        self._busy = busy_cpu_seconds()
        self._trace = open(trace, "w") if trace else None
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self._trace:
            self._trace.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        if self.samples % TREE_EVERY == 0 or not self._processes:
            self._processes = descendants(self.root) + ([self.root] if self.include_root else [])
        processes = self._processes
        rss = pss = anonymous = tree_cpu = 0
        with_pss = self.samples % PSS_EVERY == 0
        cpu: dict[int, float] = {}
        each = []
        for pid in processes:
            try:
                cpu[pid] = cpu_seconds(pid)
                size, anon = resident(pid)
            except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
                continue
            tree_cpu += cpu[pid] - self._cpu.get(pid, 0.0)
            rss, anonymous = rss + size, anonymous + anon
            pss += pss_bytes(pid) if with_pss else 0
            each.append((pid, mb(size), mb(anon)))
        busy = busy_cpu_seconds()
        other_cpu = max(0.0, busy - self._busy - tree_cpu)
        self.tree_cpu, self.other_cpu = self.tree_cpu + tree_cpu, self.other_cpu + other_cpu
        self._busy, self._cpu = busy, cpu
        self.samples += 1
        self.most_processes = max(self.most_processes, len(each))
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_anonymous = max(self.peak_anonymous, anonymous)
        phase = self.by_phase.setdefault(self.phase, dict(rss=0, pss=None, anonymous=0, cpu=0.0, other_cpu=0.0))
        phase.update(rss=max(phase["rss"], rss), anonymous=max(phase["anonymous"], anonymous))
        if with_pss:  # a phase shorter than PSS_EVERY samples may have none
            phase["pss"] = max(phase["pss"] or 0, pss)
        phase["cpu"] += tree_cpu
        phase["other_cpu"] += other_cpu
        if self._trace:
            record = {"t": round(time.perf_counter() - self._started, 3), "phase": self.phase, "rss_mb": mb(rss)}
            record.update(pss_mb=mb(pss) if with_pss else None, anonymous_mb=mb(anonymous))
            record.update(cpu_s=round(tree_cpu, 3), other_cpu_s=round(other_cpu, 3), processes=each)
            self._trace.write(json.dumps(record) + "\n")

    def figures(self) -> dict:
        return {
            "peak_rss_mb": mb(self.peak_rss),
            "peak_pss_mb": mb(self.peak_pss),
            "peak_anonymous_mb": mb(self.peak_anonymous),
            "by_phase": {
                name: {
                    "peak_rss_mb": mb(phase["rss"]),
                    "peak_pss_mb": None if phase["pss"] is None else mb(phase["pss"]),
                    "peak_anonymous_mb": mb(phase["anonymous"]),
                    "cpu_s": round(phase["cpu"], 1),
                    "other_cpu_s": round(phase["other_cpu"], 1),
                }
                for name, phase in self.by_phase.items()
            },
            "most_processes": self.most_processes,
            "samples": self.samples,
            "cpu_s": round(self.tree_cpu, 1),
            "other_cpu_s": round(self.other_cpu, 1),
        }


def mb(n: int) -> float:
    return round(n / 2**20, 1)


# ---- axonlink import ----------------------------------------------------------------------------


def run_import(image: Path, labels: Path, run: Path, workers: int, trace: Path | None = None) -> dict:
    """``axonlink import`` in a subprocess with a fresh home under ``run``: its summary and memory."""
    home = run / "home"
    shutil.rmtree(run, ignore_errors=True)
    home.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "server.cli",
        "import",
        NAME,
        "--image",
        str(image),
        "--segmentation",
        str(labels),
        "--voxel-size",
        VOXEL_SIZE,
        "--workers",
        str(workers),
        "--home",
        str(home),
        "--database-url",
        sqlite_url(home / "axonlink.sqlite"),
    ]
    log_path, out_path = run / "import.log", run / "import.json"
    started = time.perf_counter()
    with open(out_path, "wb") as out, open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.PIPE)
        with TreeMemory(process.pid, trace=trace) as memory:
            reader = threading.Thread(target=follow_phases, args=(process.stderr, log, memory), daemon=True)
            reader.start()
            code = process.wait()
            reader.join()
    wall = time.perf_counter() - started
    if code:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"axonlink import failed (exit {code}): {' '.join(command)}\n…{tail}\n(log: {log_path})")
    text = out_path.read_text()
    summary = json.loads(text[text.index("{") :])
    lines = re.split(r"[\r\n]", log_path.read_text(errors="replace"))
    problems = [line.strip() for line in lines if PROBLEM.search(line)]
    return {"summary": summary, "wall_s": round(wall, 2), "memory": memory.figures(), "problems": problems[:10]}


def follow_phases(stream, log, memory: TreeMemory) -> None:
    """Copy the command's stderr to ``log`` and set ``memory.phase`` to each progress bar it starts."""
    pending = ""
    while chunk := stream.read1(65536):
        text = chunk.decode(errors="replace")
        log.write(text)
        pending += text
        *lines, pending = re.split(r"[\r\n]", pending)
        for line in [*lines, pending]:  # a bar's first line ends with no \r or \n until it is redrawn
            if found := PHASE.match(line):
                memory.phase = found.group(1)


def stage_figures(seconds: dict, voxels: int) -> dict:
    """MVx/s per stage: mip-0 voxels ÷ the stage's seconds."""
    return {stage: round(voxels / 1e6 / s, 2) for stage, s in seconds.items() if s > 0 and stage not in NOT_THROUGHPUT}


# ---- igneous ------------------------------------------------------------------------------------


def mip0_copy(layer: Path, to: Path) -> Path:
    """A layer holding ``layer``'s mip 0 only (its info lists scale 0 alone), for igneous to build on."""
    info = json.loads((layer / "info").read_text())
    info["scales"] = info["scales"][:1]
    info.pop("mesh", None)
    shutil.rmtree(to, ignore_errors=True)
    shutil.copytree(layer / info["scales"][0]["key"], to / info["scales"][0]["key"])
    (to / "info").write_text(json.dumps(info))
    return to


def igneous_execute(igneous: str, queue: Path, processes: int, log: Path) -> None:
    """Run the tasks of a local queue with ``processes`` ``igneous execute -x`` processes."""
    with open(log, "a") as out:
        runs = [
            subprocess.Popen([igneous, "execute", "-x", "-q", f"fq://{queue}"], stdout=out, stderr=out)
            for _ in range(processes)
        ]
        codes = [run.wait() for run in runs]
    if any(codes):
        raise SystemExit(f"igneous execute -q {queue} failed (exit codes {codes}; log: {log})")


def igneous_run(igneous: str, arguments: list[str], log: Path) -> None:
    with open(log, "a") as out:
        done = subprocess.run([igneous, *arguments], stdout=out, stderr=out)
    if done.returncode:
        raise SystemExit(f"igneous {' '.join(arguments)} failed (exit {done.returncode}; log: {log})")


def run_igneous(
    igneous: str, layers: dict, mips: int, voxels: int, processes: int, work: Path, trace: Path | None = None
) -> dict:
    """igneous' downsample of both layers and forge + merge of the segmentation, from mip-0 copies."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "igneous.log"
    copies = {kind: mip0_copy(Path(url.removeprefix("file://")), work / kind) for kind, url in layers.items()}
    out: dict = {"processes": processes, "downsample_s": {}}
    with TreeMemory(os.getpid(), include_root=False, trace=trace) as memory:
        for kind, copy in copies.items():
            memory.phase = f"downsample {kind}"
            queue = work / f"queue-downsample-{kind}"
            started = time.perf_counter()
            igneous_run(
                igneous,
                ["image", "downsample", f"file://{copy}", "--mip", "0", "--num-mips", str(mips - 1)]
                + ["--queue", f"fq://{queue}"],
                log,
            )
            igneous_execute(igneous, queue, processes, log)
            out["downsample_s"][kind] = round(time.perf_counter() - started, 2)
        memory.phase = "mesh forge"
        forged = igneous_forge(igneous, f"file://{copies['segmentation']}", voxels, processes)
        out["forge_s"] = forged["seconds"]
        out["forge_fragment_files"] = forged["fragment_files"]
        memory.phase = "mesh forge again"  # igneous_forge removes what it forged: merge needs fragments
        queue = work / "queue-forge"
        started = time.perf_counter()
        igneous_run(
            igneous,
            ["mesh", "forge", f"file://{copies['segmentation']}", "--mip", "0", "--queue", f"fq://{queue}"],
            log,
        )
        igneous_execute(igneous, queue, processes, log)
        out["forge_repeat_s"] = round(time.perf_counter() - started, 2)
        memory.phase = "mesh merge"
        queue = work / "queue-merge"
        started = time.perf_counter()
        igneous_run(igneous, ["mesh", "merge", f"file://{copies['segmentation']}", "--queue", f"fq://{queue}"], log)
        igneous_execute(igneous, queue, processes, log)
        out["merge_s"] = round(time.perf_counter() - started, 2)
    info = json.loads((copies["segmentation"] / "info").read_text())
    mesh_dir = copies["segmentation"] / info.get("mesh", "mesh")
    out["mesh_manifests"] = sum(1 for p in mesh_dir.glob("*:0") if p.is_file())
    out["mips"] = {kind: len(json.loads((copy / "info").read_text())["scales"]) for kind, copy in copies.items()}
    out["downsample_total_s"] = round(sum(out["downsample_s"].values()), 2)
    out["mesh_total_s"] = round(out["forge_s"] + out["merge_s"], 2)
    out["downsample_mvx_s"] = round(len(layers) * voxels / 1e6 / out["downsample_total_s"], 2)
    out["mesh_mvx_s"] = round(voxels / 1e6 / out["mesh_total_s"], 2)
    out.update(memory.figures())
    return out


def ratio(axonlink_s: float, igneous_s: float, axonlink_cpu: float, igneous_cpu: float) -> dict:
    """axonlink ÷ igneous, as seconds (below 1: axonlink faster), as MVx/s (above 1: faster) and as CPU
    seconds (what other work on the machine changes least)."""
    return {
        "seconds": round(axonlink_s / igneous_s, 3),
        "mvx_s": round(igneous_s / axonlink_s, 3),
        "cpu_s": round(axonlink_cpu / igneous_cpu, 3) if igneous_cpu else None,
    }


def phase_cpu(memory: dict, matches) -> float:
    """CPU seconds of the measured processes in the phases ``matches`` accepts."""
    return round(sum(phase["cpu_s"] for name, phase in memory["by_phase"].items() if matches(name)), 1)


# ---- one size, then all -------------------------------------------------------------------------


def bench_size(size, args, scratch: Path) -> dict:
    name = size_name(size)
    voxels = math.prod(size)
    image, labels = volumes(scratch, size, args.seed, args.label_dtype)
    run = scratch / f"run-{name}"
    trace = {tool: scratch / f"trace-{name}-{tool}.jsonl" if args.trace else None for tool in ("axonlink", "igneous")}
    result = run_import(image, labels, run, args.workers, trace["axonlink"])
    summary, memory = result["summary"], result["memory"]
    seconds = summary["seconds"]
    pyramid_s = sum(s for stage, s in seconds.items() if PYRAMID_STAGE.match(stage))
    figures = {
        "voxels": voxels,
        "stage_mvx_s": stage_figures(seconds, voxels),
        "seconds": seconds,
        "wall_s": result["wall_s"],
        "pyramid_s": round(pyramid_s, 2),
        "pyramid_mvx_s": round(2 * voxels / 1e6 / pyramid_s, 2),  # both layers' mip-0 voxels
        "pyramid_cpu_s": phase_cpu(memory, PYRAMID_STAGE.match),
        "meshes_cpu_s": phase_cpu(memory, lambda phase: phase == "meshes"),
        **memory,
        "stderr_problems": result["problems"],
        "mips": summary["layers"]["image"]["mips"],
        "bytes_on_disk": {kind: layer["bytes_on_disk"] for kind, layer in summary["layers"].items()},
        "meshes": summary.get("meshes"),
    }
    for stage, s in seconds.items():
        rate = figures["stage_mvx_s"].get(stage)
        print(f"{name} axonlink {stage}: {s} s" + (f", {rate} MVx/s" if rate else ""), flush=True)
    print(f"{name} axonlink pyramid (both layers): {figures['pyramid_s']} s, {figures['pyramid_mvx_s']} MVx/s")
    print(f"{name} axonlink wall time of the command: {figures['wall_s']} s")
    print(f"{name} axonlink CPU: pyramid {figures['pyramid_cpu_s']} s, meshes {figures['meshes_cpu_s']} s")
    print_memory(f"{name} axonlink", memory)
    for line in figures["stderr_problems"]:
        print(f"{name} axonlink import logged: {line}")

    figures["igneous"] = figures["ratio_downsample"] = figures["ratio_mesh"] = None
    if args.igneous != "none":
        layers = {kind: summary["layers"][kind]["url"] for kind in ("image", "segmentation")}
        work = scratch / f"igneous-{name}"
        processes = pool_processes(args.workers)  # igneous -p N: at most one process per core
        ig = run_igneous(args.igneous, layers, figures["mips"], voxels, processes, work, trace["igneous"])
        figures["igneous"] = ig
        ig["downsample_cpu_s"] = phase_cpu(ig, lambda phase: phase.startswith("downsample"))
        ig["mesh_cpu_s"] = phase_cpu(ig, lambda phase: phase in ("mesh forge", "mesh merge"))
        figures["ratio_downsample"] = ratio(
            pyramid_s, ig["downsample_total_s"], figures["pyramid_cpu_s"], ig["downsample_cpu_s"]
        )
        if "meshes" in seconds:
            figures["ratio_mesh"] = ratio(
                seconds["meshes"], ig["mesh_total_s"], figures["meshes_cpu_s"], ig["mesh_cpu_s"]
            )
        for kind, s in ig["downsample_s"].items():
            print(f"{name} igneous downsample {kind} ({ig['mips'][kind]} mips): {s} s, {voxels / 1e6 / s:.2f} MVx/s")
        print(f"{name} igneous downsample (both layers): {ig['downsample_total_s']} s, {ig['downsample_mvx_s']} MVx/s")
        print(f"{name} igneous mesh forge: {ig['forge_s']} s (again for merge: {ig['forge_repeat_s']} s)")
        print(f"{name} igneous mesh merge: {ig['merge_s']} s ({ig['mesh_manifests']} manifests)")
        print(f"{name} igneous forge + merge: {ig['mesh_total_s']} s, {ig['mesh_mvx_s']} MVx/s ({processes} processes)")
        print(f"{name} igneous CPU: downsample {ig['downsample_cpu_s']} s, forge + merge {ig['mesh_cpu_s']} s")
        print_memory(f"{name} igneous", ig)
        print(f"{name} ratio downsample axonlink/igneous: {figures['ratio_downsample']}")
        print(f"{name} ratio mesh axonlink/igneous: {figures['ratio_mesh']}", flush=True)
    if not args.keep:
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(scratch / f"igneous-{name}", ignore_errors=True)
    return figures


def print_memory(who: str, memory: dict) -> None:
    print(f"{who} peak RSS (process tree): {memory['peak_rss_mb']} MB")
    print(f"{who} peak PSS (process tree): {memory['peak_pss_mb']} MB")
    print(f"{who} peak anonymous memory (process tree): {memory['peak_anonymous_mb']} MB")
    for name, phase in memory["by_phase"].items():
        pss = "not sampled" if phase["peak_pss_mb"] is None else f"{phase['peak_pss_mb']} MB"
        print(
            f"{who} during {name}: peak RSS {phase['peak_rss_mb']} MB, PSS {pss}, anonymous "
            f"{phase['peak_anonymous_mb']} MB; CPU {phase['cpu_s']} s (elsewhere {phase['other_cpu_s']} s)"
        )
    print(
        f"{who} CPU: {memory['cpu_s']} s in its processes, {memory['other_cpu_s']} s elsewhere on the machine meanwhile"
    )
    print(f"{who} processes at most: {memory['most_processes']} ({memory['samples']} samples)", flush=True)


def checkout() -> str:
    """The commit measured, and whether the checkout differs from it (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "segmentation", "server"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=parse_sizes, default=DEFAULT_SIZES, help="X×Y×Z voxels, comma-separated (e.g. 256x256x256)"
    )
    parser.add_argument("--workers", type=int, default=4, help="axonlink import --workers, and igneous processes")
    parser.add_argument(
        "--scratch", type=Path, help="where volumes are cached and runs happen (default: a new temp dir)"
    )
    parser.add_argument(
        "--igneous",
        default=os.environ.get("AXONLINK_IGNEOUS", "/work/.venv-igneous/bin/igneous"),
        help="igneous' command, in a venv of its own (default $AXONLINK_IGNEOUS or /work/.venv-igneous/bin/igneous); "
        "none: no baseline",
    )
    parser.add_argument("--label-dtype", choices=("uint32", "uint64"), default="uint64")
    parser.add_argument("--seed", type=int, default=0, help="the phantom's seed")
    parser.add_argument("--keep", action="store_true", help="keep each size's import home and igneous layers")
    parser.add_argument("--trace", action="store_true", help="write every memory sample to <scratch>/trace-*.jsonl")
    args = parser.parse_args()
    if args.igneous != "none" and not Path(args.igneous).exists():
        parser.error(f"no igneous at {args.igneous} (give --igneous PATH, or none)")
    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="bench-import-"))).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    commit = checkout()
    print(f"scratch: {scratch}; workers: {args.workers}; cores: {os.cpu_count()}; commit: {commit}", flush=True)
    results = {size_name(size): bench_size(size, args, scratch) for size in args.sizes}
    smallest = min(results.values(), key=lambda r: r["voxels"])
    largest = max(results.values(), key=lambda r: r["voxels"])
    figures = {
        "sizes": results,
        "workers": args.workers,
        "commit": commit,
        "rss_growth": round(largest["peak_rss_mb"] / smallest["peak_rss_mb"], 3),
        "pss_growth": round(largest["peak_pss_mb"] / smallest["peak_pss_mb"], 3),
        "anonymous_growth": round(largest["peak_anonymous_mb"] / smallest["peak_anonymous_mb"], 3),
    }
    print(
        f"peak growth, largest / smallest size: RSS {figures['rss_growth']}, PSS {figures['pss_growth']}, "
        f"anonymous {figures['anonymous_growth']}"
    )
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
