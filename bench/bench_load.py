"""Benchmark: training images/s while eight browser sessions watch the Training page, vs none.

    .venv/bin/python bench/bench_load.py                    # 3 alternating pairs, 8 tabs, simple_cnn 32 px
    .venv/bin/python bench/bench_load.py --repeats 1 --tabs 4 --epochs 12
    .venv/bin/python bench/bench_load.py --recipe fast_cifar10 --tabs 1 --repeats 1 --epochs 8   # vs the CLI

The requirement: eight browser sessions open on the Training page while a run trains, each
rendering its live chart, and training keeps at least 80% of its undisturbed images/s.

Set-up. The real server (`streamlit run app.py`, `tests.e2e.conftest.AppServer`) on a free port
with a temporary workspace holding a split demo set (`make_split`), and Debian's Chromium,
headless, with the tests' flags (`CHROMIUM_ARGS`) and a fresh profile. Every run is started the
way a user starts it: a tab opens the Training page, fills the form (model, image size, batch,
epochs) and presses Start, so the run trains in the server's background thread.

Undisturbed vs loaded, alternating (`--repeats` pairs, the order swapped every pair so a load
spike from other work on the shared machine does not land on one side only):
  * undisturbed: the starting tab navigates away (about:blank) right after Start, so no
    Streamlit session is left and the run trains with nobody watching. This, rather than a CLI
    run, is the baseline because it is the same process, the same thread, the same code path and
    the same Python interpreter (the GIL shared with the server's Tornado loop) as the loaded
    run: the only difference left is the watching. A CLI run of the same settings is trained
    once first, for reference (and to build the decode-once cache the server runs then reuse).
  * loaded: the starting tab stays on the run, and `--tabs - 1` more tabs open
    `/training?run=<id>`: `--tabs` Streamlit sessions, each redrawing its live fragments (the
    steps every 2 s per tab watching, the epochs and the run list five times less often). Each
    tab must show the live loss chart with points (`chart_points`), more points later than when
    first checked, and no exception box.
The figure: the train-loop images/s of each epoch (`img_per_s` of the `epoch` records in the
run's metrics.jsonl, validation excluded), combined (total images / total seconds) over the
same epochs in every run: from the second epoch after every tab of the slowest loaded run drew
its chart, to the last. Epochs that overlap page loads are left out of both sides alike.

Where things run: the server, the training thread and the eight Chromium tabs all share this
machine's cores (2 on the dev VM), as on a user's laptop with the app and its tabs open; the
browser's own CPU use is part of what is measured, and printed (cores used by the server
process and by Chromium during the window). Other people's work on a shared machine adds noise:
compare the medians and the ratio printed in one run. `--browser-nice 19` runs Chromium at the
lowest CPU priority, to see what is left of the browser's cost when the desktop favours training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import i18n  # noqa: E402
from core import runs  # noqa: E402
from core.training.threads import usable_cores  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, AppServer, cli, make_split  # noqa: E402
from tests.e2e.streamlit_ui import (  # noqa: E402
    COUNT_RUNS, chart_points, click, exceptions, fill_number, open_page, runs_started, select,
)

BAR = 0.80
CHART = i18n.t("training.chart.iter_loss", "en")
TICK = os.sysconf("SC_CLK_TCK")


def en(key: str) -> str:
    return i18n.t(key, "en")


# --- CPU seconds from /proc (read only) -------------------------------------------------------
def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def browser_pids(profile: Path) -> list[int]:
    """The Chromium processes of our own profile folder (the renderers inherit no profile flag,
    so children of those are included too)."""
    mine: set[int] = set()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry.name)] = ppid
        if str(profile) in cmdline:
            mine.add(int(entry.name))
    grew = True
    while grew:
        kids = {pid for pid, ppid in parents.items() if ppid in mine and pid not in mine}
        mine |= kids
        grew = bool(kids)
    return sorted(mine)


def renice(profile: Path, niceness: int) -> None:
    """Lower our Chromium's CPU priority (`--browser-nice`): its processes and the renderers the
    next tabs fork inherit it. Lowering one's own priority needs no privileges."""
    if niceness:
        for pid in browser_pids(profile):
            try:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)
            except OSError:
                pass  # a renderer that closed meanwhile


class CpuMeter:
    """Cores used by the server process and by our Chromium between `start` and `stop`."""

    def __init__(self, server_pid: int, profile: Path) -> None:
        self.server_pid, self.profile = server_pid, profile

    def _sample(self) -> tuple[float, float, float]:
        return time.monotonic(), cpu_of(self.server_pid), sum(cpu_of(p) for p in browser_pids(self.profile))

    def start(self) -> None:
        self.t0 = self._sample()

    def stop(self) -> dict:
        t1 = self._sample()
        wall = max(1e-6, t1[0] - self.t0[0])
        # Renderers closed during the window would make the browser's sum drop: never below 0.
        return {"server_cores": (t1[1] - self.t0[1]) / wall, "browser_cores": max(0.0, t1[2] - self.t0[2]) / wall}


# --- one run -----------------------------------------------------------------------------------
def epoch_rates(run_dir: Path) -> list[float]:
    return [r["img_per_s"] for r in runs.read_metrics(run_dir, "epoch")]


def status(run_dir: Path) -> str:
    return runs.read_summary(run_dir).get("status", "queued")


def wait_until(check, timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def start_from_page(context, server: AppServer, args) -> tuple[object, Path]:
    """A tab opens the Training page, fills the form and presses Start; (the tab, the run folder)."""
    before = {p.name for p in server.workspace.joinpath("runs").iterdir()}
    page = context.new_page()
    open_page(page, server.url, "training")
    if args.recipe:  # the recipe fills the form; only the epochs are the bench's
        select(page, en("recipes.page.pick"), f"{en(f'recipes.{args.recipe}.title')} · {args.recipe}")
    else:
        select(page, en("training.model"), args.model, rerun=False)
        fill_number(page, en("training.img_size"), args.img_size)
        fill_number(page, en("training.batch_size"), args.batch)
    fill_number(page, en("training.epochs"), args.epochs)
    click(page, en("training.start"))
    new = [p for p in server.workspace.joinpath("runs").iterdir() if p.name not in before]
    if len(new) != 1:
        raise RuntimeError(f"pressing Start made {len(new)} runs: {new}; page errors: {exceptions(page)}")
    return page, new[0]


def tab_state(page) -> dict:
    return {"points": chart_points(page, CHART), "runs": runs_started(page), "exceptions": len(exceptions(page)),
            "visible": page.evaluate("() => document.visibilityState")}


def stop_run(context, server: AppServer, run_dir: Path) -> None:
    """Press the run's Stop button, as a user would (the bench's time limit was reached)."""
    page = context.new_page()
    open_page(page, server.url, "training", f"?run={run_dir.name}")
    click(page, en("training.stop"))
    page.close()


def one_run(context, server: AppServer, meter: CpuMeter, args, loaded: bool) -> dict:
    """Train one run (watched by `args.tabs` tabs when `loaded`); its per-epoch images/s and checks."""
    starter, run_dir = start_from_page(context, server, args)
    deadline = time.monotonic() + args.max_run_s
    tabs = [starter]
    result: dict = {"run": run_dir.name, "loaded": loaded}
    if loaded:
        for _ in range(args.tabs - 1):
            tab = context.new_page()
            tab.goto(f"{server.url}/training?run={run_dir.name}", wait_until="commit")
            tabs.append(tab)
        # Every tab draws the live chart (all loading at once, as when a user restores a window of tabs).
        t0 = time.monotonic()
        try:
            renice(meter.profile, args.browser_nice)  # the new tabs' renderers
            wait_until(lambda: all(chart_points(t, CHART) > 0 for t in tabs), args.tab_timeout,
                       f"{len(tabs)} tabs to draw {CHART!r}")
        except RuntimeError as err:
            print(f"  {err}: {[chart_points(t, CHART) for t in tabs]} points", flush=True)
        result["tabs_drawn_s"] = time.monotonic() - t0
        print(f"  {sum(chart_points(t, CHART) > 0 for t in tabs)}/{len(tabs)} tabs draw the live chart "
              f"{result['tabs_drawn_s']:.1f} s after opening, at epoch {len(epoch_rates(run_dir)) + 1}/{args.epochs}",
              flush=True)
        first = [tab_state(t) for t in tabs]
    else:
        starter.goto("about:blank")  # its Streamlit session ends: nobody watches this run
        first = []
    if status(run_dir) not in ("queued", "running"):
        raise RuntimeError("the run ended before the measurement began: train longer (--epochs)")
    result["ready_epochs"] = len(epoch_rates(run_dir))
    meter.start()
    t0 = time.monotonic()
    # Until the last epoch is under way (or the time limit), then look at every tab again while it trains.
    while (len(epoch_rates(run_dir)) < args.epochs - 1 and status(run_dir) in ("queued", "running")
           and time.monotonic() < deadline):
        time.sleep(0.5)
    result["window_s"] = time.monotonic() - t0
    result["cpu"] = meter.stop()
    if loaded:
        result["checked_while_training"] = status(run_dir) == "running"
        last = [tab_state(t) for t in tabs]
        result["tabs"] = [{"points_first": a["points"], "points_last": b["points"],
                           "redraws_per_s": (b["runs"] - a["runs"]) / result["window_s"],
                           "exceptions": b["exceptions"], "visible": b["visible"],
                           "ok": a["points"] > 0 and b["points"] > a["points"] and b["exceptions"] == 0}
                          for a, b in zip(first, last)]
    if time.monotonic() >= deadline and status(run_dir) == "running":
        result["stopped_at_limit"] = True
        print(f"  {args.max_run_s:.0f} s limit reached at epoch {len(epoch_rates(run_dir)) + 1}: stopping it", flush=True)
        stop_run(context, server, run_dir)
    wait_until(lambda: status(run_dir) not in ("queued", "running"), 600, "the run to end")
    for tab in tabs:
        tab.close()
    summary = runs.read_summary(run_dir)
    if summary.get("status") not in ("finished", "stopped"):
        raise RuntimeError(f"{run_dir.name} ended {summary.get('status')}: {summary.get('message')}")
    result |= {"epoch_img_per_s": epoch_rates(run_dir), "summary_img_per_s": summary.get("img_per_s")}
    return result


def window_rate(rates: list[float], first_epoch: int) -> float:
    """Images/s over epochs `first_epoch`.. (1-based): the same images each epoch, so the number of
    epochs over the sum of their times; 0 when none of them was trained (a run stopped at the limit)."""
    chosen = rates[first_epoch - 1:]
    return len(chosen) / sum(1 / r for r in chosen) if chosen else 0.0


def cli_reference(workspace: Path, split: Path, args) -> list[float]:
    what = (["--recipe", args.recipe] if args.recipe else
            ["--model", args.model, "--img-size", str(args.img_size), "--batch-size", str(args.batch)])
    records = cli("train", "--data", str(split), *what, "--epochs", str(args.epochs), workspace=workspace,
                  timeout=args.epochs * 60)
    return [r["img_per_s"] for r in records if "epoch" in r and "img_per_s" in r]


def server_env(options: list[str]) -> dict[str, str]:
    """`section.option=value` -> Streamlit's environment variable for it (STREAMLIT_SECTION_OPTION)."""
    from streamlit.config_option import ConfigOption

    env = {}
    for option in options:
        key, _, value = option.partition("=")
        env[ConfigOption(key, description="", default_val=None).env_var] = value
    return env


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating undisturbed/loaded pairs")
    parser.add_argument("--tabs", type=int, default=8, help="browser sessions watching a loaded run")
    parser.add_argument("--model", default="simple_cnn")
    parser.add_argument("--recipe", help="start every run from this recipe on the page (and the CLI reference "
                                         "with --recipe): --model, --img-size and --batch are then the recipe's")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=1000, help="demo images per class (60%% train)")
    parser.add_argument("--side", type=int, default=64, help="side of the generated JPEGs")
    parser.add_argument("--tab-timeout", type=float, default=90, help="seconds for every tab to draw its chart")
    parser.add_argument("--max-run-s", type=float, default=180, help="a run still training then is stopped")
    parser.add_argument("--server-config", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="a Streamlit option for the server, over .streamlit/config.toml "
                             "(e.g. runner.postScriptGC=true to measure the old default)")
    parser.add_argument("--browser-nice", type=int, default=0, metavar="N",
                        help="run Chromium at this niceness (19: lowest priority), as when the tabs are on other "
                             "machines or the desktop favours the training; 0 (default): same priority")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI reference run")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # `finally` stops the server
    if not CHROMIUM:
        sys.exit("Debian's chromium is not installed (scripts/test.sh installs it with apt)")

    machine = {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
               "usable_cores": usable_cores(), "python": platform.python_version(),
               "load_avg_at_start": os.getloadavg()}
    print(f"machine: {machine}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_load_"))
    server = None
    results: dict = {"machine": machine, "args": vars(args), "bar": BAR}
    try:
        workspace = work / "workspace"
        split = make_split(workspace, classes=args.classes, per_class=args.per_class, size=args.side)
        if not args.no_cli:
            rates = cli_reference(workspace, split, args)
            results["cli_epoch_img_per_s"] = rates
            print(f"cli reference (no server, no browser): epochs {' '.join(f'{x:.0f}' for x in rates)} img/s",
                  flush=True)
        os.environ.update(server_env(args.server_config))  # AppServer passes our environment on
        server = AppServer(workspace, work).start()
        from playwright.sync_api import sync_playwright

        profile = work / "chromium-profile"
        pairs = []
        with sync_playwright() as driver:
            context = driver.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                locale="en-US", viewport=VIEWPORT)
            context.set_default_timeout(60_000)
            context.add_init_script(COUNT_RUNS)
            renice(profile, args.browser_nice)
            meter = CpuMeter(server.proc.pid, profile)
            try:
                for r in range(args.repeats):
                    pair = {}
                    for loaded in ((False, True) if r % 2 == 0 else (True, False)):
                        pair["loaded" if loaded else "undisturbed"] = res = one_run(context, server, meter, args, loaded)
                        tabs = res.get("tabs", [])
                        print(f"pair {r + 1} {'loaded' if loaded else 'undisturbed':<11} {res['run']}: epochs "
                              f"{' '.join(f'{x:.0f}' for x in res['epoch_img_per_s'])} img/s; server "
                              f"{res['cpu']['server_cores']:.2f} cores, browser {res['cpu']['browser_cores']:.2f} cores"
                              + (f"; tabs ok {sum(t['ok'] for t in tabs)}/{len(tabs)}, chart points "
                                 f"{[t['points_last'] for t in tabs]}, redraws/s "
                                 f"{[round(t['redraws_per_s'], 2) for t in tabs]}" if loaded else ""), flush=True)
                    # Both runs of a pair are measured over the same epochs: from the second after all
                    # of the loaded run's tabs drew their chart (at least the second: the first warms up).
                    first = max(2, pair["loaded"]["ready_epochs"] + 2)
                    pair["first_epoch"] = first
                    for res in (pair["undisturbed"], pair["loaded"]):
                        res["window_img_per_s"] = window_rate(res["epoch_img_per_s"], first)
                    pair["ratio"] = pair["loaded"]["window_img_per_s"] / pair["undisturbed"]["window_img_per_s"]
                    print(f"pair {r + 1} epochs {first}-{args.epochs}: undisturbed "
                          f"{pair['undisturbed']['window_img_per_s']:.0f} img/s, loaded "
                          f"{pair['loaded']['window_img_per_s']:.0f} img/s ({100 * pair['ratio']:.0f}%)", flush=True)
                    pairs.append(pair)
            finally:
                context.close()
        undisturbed = [p["undisturbed"]["window_img_per_s"] for p in pairs]
        loaded = [p["loaded"]["window_img_per_s"] for p in pairs]
        tabs = [t for p in pairs for t in p["loaded"]["tabs"]]
        ratio = median(loaded) / median(undisturbed)
        results |= {
            "undisturbed_img_per_s": median(undisturbed), "loaded_img_per_s": median(loaded),
            "ratio": ratio, "meets_bar": ratio >= BAR, "pair_ratios": [p["ratio"] for p in pairs],
            "tabs_ok": sum(t["ok"] for t in tabs), "tabs_checked": len(tabs),
            "tabs_visible": all(t["visible"] == "visible" for t in tabs),
            "redraws_per_s_per_tab": median([t["redraws_per_s"] for t in tabs]),
            "checked_while_training": all(p["loaded"]["checked_while_training"] for p in pairs),
            "server_cores": {k: median([p[k]["cpu"]["server_cores"] for p in pairs]) for k in ("undisturbed", "loaded")},
            "browser_cores": {k: median([p[k]["cpu"]["browser_cores"] for p in pairs]) for k in ("undisturbed", "loaded")},
            "load_avg_at_end": os.getloadavg(),
            "pairs": pairs,
        }
        if "cli_epoch_img_per_s" in results:
            results["cli_img_per_s"] = window_rate(results["cli_epoch_img_per_s"], 2)
            results["loaded_over_cli"] = median(loaded) / results["cli_img_per_s"]
            print(f"cli reference {results['cli_img_per_s']:.0f} img/s (epochs 2-): {args.tabs} tab(s) watching "
                  f"{100 * results['loaded_over_cli']:.0f}% of it, nobody watching "
                  f"{100 * median(undisturbed) / results['cli_img_per_s']:.0f}%", flush=True)
        print(f"undisturbed {results['undisturbed_img_per_s']:.0f} img/s, {args.tabs} tabs watching "
              f"{results['loaded_img_per_s']:.0f} img/s (medians of {len(pairs)} pairs): {100 * ratio:.0f}% "
              f"({'meets' if ratio >= BAR else 'misses'} the {100 * BAR:.0f}% bar); live chart drawn and growing in "
              f"{results['tabs_ok']}/{results['tabs_checked']} tabs, {results['redraws_per_s_per_tab']:.2f} "
              f"redraws/s per tab; server {results['server_cores']['loaded']:.2f} cores, browser "
              f"{results['browser_cores']['loaded']:.2f} cores while watched", flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
