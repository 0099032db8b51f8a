"""Regenerate the `miniwob` task pack from the installed `miniwob` package: `python tasks/miniwob/build.py`.

One record per task page (`miniwob/<task>.html`): task_id (the MiniWoB task name), page, title (the page's own
<title>), expert (a scripted expert exists), expert_success (measured by benchmarks/web_experts.py, read from
`expert_success.json` beside this file), reload (its page must be reloaded every episode: measured by
benchmarks/web_probe_tasks.py, read from `probe.json`). Tasks the probe found not to start, or not to be
deterministic under a seed, are left out, with the reason in the manifest's `excluded`. Split `train` holds every
task; split `expert` the tasks whose expert reaches at least 95% success.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

EXPERT_BAR = 0.95
# Pages the probe passed but `check_env`'s determinism test (random clicks, then the same clicks again) did not:
# tests/envs/web/test_miniwob.py::test_check_env_every_id, run with -m slow.
CHECKER_EXCLUDED = {
    "simon-says": "not reproducible from a seed: the button sequence is shown on a timer, so what a click does "
    "depends on wall-clock time",
    "click-pie-nodelay": "flaky under check_env's determinism test: after a click the pie menu's SVG is sometimes "
    "still in the page when the episode has ended (timing of the menu's collapse)",
    "terminal": "not reproducible from a seed: whether the terminal's input has the focus after a reset depends on "
    "page-load timing",
}


def _excluded(probe: dict) -> dict[str, str]:
    out = {}
    for task, p in sorted(probe.items()):
        if not p["starts"]:
            out[task] = f"does not start headless: {p['error']}"
        elif not p["deterministic"]:
            out[task] = (
                "not reproducible from a seed: its page changes with wall-clock time (animation/timers), "
                "so two loads with the same seed differ"
            )
    out.update(CHECKER_EXCLUDED)
    return out


def main() -> None:
    from turngym.envs.web.experts import EXPERTS
    from turngym.tasks.pack import write_pack

    spec = importlib.util.find_spec("miniwob")
    assert spec and spec.submodule_search_locations, "pip install miniwob"
    html = Path(list(spec.submodule_search_locations)[0]) / "html" / "miniwob"
    measured = json.loads((HERE / "expert_success.json").read_text())
    probe = json.loads((HERE / "probe.json").read_text())
    excluded = _excluded(probe)
    records = []
    for page in sorted(html.glob("*.html")):
        name = page.stem
        if name in excluded:
            continue
        m = re.search(r"<title>(.*?)</title>", page.read_text(encoding="utf-8", errors="replace"), re.S)
        rec = {"task_id": name, "page": f"miniwob/{name}.html", "title": (m.group(1).strip() if m else name)}
        rec["expert"] = name in EXPERTS
        if name in measured:
            rec["expert_success"] = measured[name]
        rec["reload"] = not probe.get(name, {}).get("reuse_ok", False)
        records.append(rec)
    good = [r for r in records if r["expert"] and r.get("expert_success", 0) >= EXPERT_BAR]
    manifest = {
        "name": "miniwob",
        "version": "1.1.0",
        "family": "web",
        "schema_version": 1,
        "license": "MIT (MiniWoB++ task pages, Farama Foundation)",
        "source": "the `miniwob` PyPI package (1.1.0), html/miniwob/*.html",
        "description": "MiniWoB++ web tasks; each record is one task, seeds pick the instance.",
        "excluded": excluded,
    }
    write_pack(HERE, manifest, {"train": records, "expert": good})
    print(f"{len(records)} tasks, {len(good)} with experts >= {EXPERT_BAR:.0%}, {len(excluded)} excluded")


if __name__ == "__main__":
    main()
