"""summary.html in a real browser: headless Chromium opens the page at 1,400 px, and the test
asserts that the page does not overflow sideways, that no table leaves the page (a wide one
scrolls inside its own box), that the zero-shot table's top-1 and top-5 columns are on screen
without scrolling, and that every <img> loaded (naturalWidth > 0) and fits the page.

Two pages: one the report library builds here from hand-made results (long names, Table 1
with the ablation's columns, an explanation picture), and the demo's own
artifacts/report/summary.html where `make demo` made it (CI runs it first). Each page's
screenshot is kept as a CI artifact: artifacts/ci/summary-1400.png (the demo's) and
artifacts/ci/summary-1400-test.png.

Chromium is Debian's `chromium-headless-shell` (or any `chromium`), driven by its own command
line (`--dump-dom` after a measuring script, `--screenshot`): no driver package, nothing
downloaded at test time. `make test` installs it first (`make browser`, root only, a no-op
when present); without one these tests skip and say why.
"""

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO
from PIL import Image

WIDTH = 1400
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
SCREENSHOTS = REPO / "artifacts" / "ci"
DEMO_PAGE = REPO / "artifacts" / "report" / "cub" / "summary.html"


def find_browser() -> str | None:
    """$FGVC_CHROMIUM, else the first headless-capable Chromium on PATH."""
    if os.environ.get("FGVC_CHROMIUM"):
        return shutil.which(os.environ["FGVC_CHROMIUM"])
    return next(filter(None, map(shutil.which, BROWSERS)), None)


BROWSER = find_browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium on PATH (chromium-headless-shell or chromium; "
    "`make browser` installs Debian's chromium-headless-shell as root)")

# Runs in the page after everything (the inlined PNGs too) loaded; writes what it measured
# into <pre id="fgvc-layout"> for --dump-dom to return.
MEASURE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement, view = root.clientWidth;
  const rect = el => el.getBoundingClientRect();
  const tables = [...document.querySelectorAll("table")].map(table => {
    const box = table.closest("div.scroll") || table;
    return {head: [...table.querySelectorAll("th")].map(th => th.textContent.trim()).join("|"),
            box_left: rect(box).left, box_right: rect(box).right, right: rect(table).right,
            in_box: box !== table, box_scrolls: box.scrollWidth > box.clientWidth,
            top_k_right: [...table.querySelectorAll("th")]
              .filter(th => /^top-[15]$/.test(th.textContent.trim())).map(th => rect(th).right)};
  });
  const images = [...document.images].map(img => ({
    alt: img.alt, complete: img.complete, natural_width: img.naturalWidth,
    left: rect(img).left, right: rect(img).right}));
  const out = document.createElement("pre");
  out.id = "fgvc-layout";
  out.textContent = JSON.stringify({inner_width: window.innerWidth, view, tables, images,
    scroll_width: root.scrollWidth, height: root.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, height: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
         f"--window-size={WIDTH},{height}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120)


def measure(page: Path, tmp_path: Path) -> dict:
    """The page's layout at WIDTH px, as MEASURE found it in Chromium."""
    probe = tmp_path / f"probe-{page.parent.name}.html"
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    result = chromium("--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="fgvc-layout">(.*?)</pre>', result.stdout, re.S)
    assert found, f"Chromium returned no measurement: {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, height: int, name: str) -> Path:
    """The whole page at WIDTH px, kept under artifacts/ci/ (a CI artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    tmp = path.with_suffix(".tmp.png")
    result = chromium(f"--screenshot={tmp}", page.as_uri(), height=min(height, 16000))
    assert tmp.is_file(), f"Chromium wrote no screenshot: {result.stderr[-2000:]}"
    tmp.replace(path)
    return path


def assert_fits(layout: dict, page: str) -> None:
    view = layout["view"]
    assert layout["inner_width"] == WIDTH
    assert layout["scroll_width"] <= view, "the page scrolls sideways"
    assert layout["tables"], "no table on the page"
    for table in layout["tables"]:
        name = table["head"][:60]
        assert table["in_box"], f"table {name!r} is not in a scrolling box"
        assert 0 <= table["box_left"] and table["box_right"] <= view + 0.5, (
            f"table {name!r} leaves the page ({table['box_right']:.0f} > {view} px)")
        assert table["right"] <= table["box_right"] + 0.5 or table["box_scrolls"], name
    zero_shot = [t for t in layout["tables"] if "source / prompt" in t["head"]]
    assert zero_shot, "no zero-shot table"
    for table in zero_shot:  # top-1 and top-5 on screen, without scrolling the box
        assert len(table["top_k_right"]) == 2
        assert max(table["top_k_right"]) <= table["box_right"] + 0.5, table["top_k_right"]
    assert len(layout["images"]) == page.count("<img ") > 0
    for image in layout["images"]:
        assert image["complete"] and image["natural_width"] > 0, f"{image['alt']} did not load"
        assert 0 <= image["left"] and image["right"] <= view + 0.5, f"{image['alt']} too wide"


def made_report(tmp_path: Path) -> Path:
    """A summary.html of the report library, from hand-made results with long names."""
    from test_report import baseline_rows, fake_results, few_shot_rows

    from pipeline.report import ZeroShotRun, build_report
    from pipeline.report.settings import Report
    from pipeline.zeroshot.pictures import explanation_picture

    backbone = "ViT-L-14-336-quickgelu-long-name"
    linear = fake_results(seeds=(0, 1)).assign(method="linear", text_mapping="qformer")
    text = linear[linear["text_source"] != "none"]
    results = pd.concat([linear, text.assign(text_mapping="none"), few_shot_rows()],
                        ignore_index=True)
    described = {"attributes": {"backend": "attributes", "prompt": "4 attribute(s) per sentence"},
                 "gpt_cbd_domain_background_long_set_name": {"backend": "openai",
                                                             "prompt": "prompt cbd"}}
    rows = baseline_rows(backbone, "ViT-L-14-336-quickgelu", "openai", {s: 55.0 for s in described})
    for row in rows:
        row.update(source="LLM descriptions of every class, asked once per sample, answered "
                   "by a local server", prompt="prompt cbd_domain_background with examples")
    picture_rows = pd.DataFrame({
        "image_id": 3, "role": ["predicted", "predicted"], "correct": True, "rank": [1, 2],
        "class_score": 0.61, "class_name": "Least Flycatcher", "similarity": [0.616, 0.613],
        "descriptor": ["Least Flycatcher, which has a white eye-ring and two pale wing bars "
                       "and a short primary projection that separates it from its siblings",
                       "Least Flycatcher, which has a small bill"]})
    image = tmp_path / "bird.png"
    Image.new("RGB", (64, 48), (120, 140, 90)).save(image)
    run = {"dataset": "demo world (20 made-up bird species, drawn)", "classes": 20,
           "test_images": 600, "templates": {"paper": 1}, "descriptions": described,
           "pictures": [{"file": "3.png", "image_id": 3}], "backbone": backbone,
           "model": "ViT-L-14-336-quickgelu", "pretrained": "openai"}
    report = build_report(
        {backbone: results},
        {backbone: ZeroShotRun(pd.DataFrame(rows), run, {
            "3.png": explanation_picture(image, picture_rows, title="test image 3")})},
        described, "attributes", paper=True, settings=Report(), reference_only=True,
        made_by={"gpt_cbd_domain_background_long_set_name": {
            "backend": "openai", "prompt": "prompt cbd", "model": "qwen2.5-72b-instruct-awq",
            "server": "llm.lab.example.org:8000", "temperature": 0.7, "samples_per_class": 10}})
    report.save(tmp_path / "report")
    return tmp_path / "report" / "summary.html"


def test_the_report_librarys_page_fits_1400_px_in_chromium(tmp_path):
    page = made_report(tmp_path)
    layout = measure(page, tmp_path)
    assert_fits(layout, page.read_text())
    # Table 1 with the ablation's columns is wider than the page: it scrolls inside its box
    wide = [t for t in layout["tables"] if "no Q-Former" in t["head"]]
    assert wide and all(t["box_scrolls"] and t["right"] > layout["view"] for t in wide)
    assert screenshot(page, layout["height"], "summary-1400-test.png").stat().st_size > 10_000


@pytest.mark.skipif(not DEMO_PAGE.is_file(), reason="no demo report: `make demo` makes "
                    "artifacts/report/summary.html")
def test_the_demos_summary_fits_1400_px_in_chromium(tmp_path):
    layout = measure(DEMO_PAGE, tmp_path)
    assert_fits(layout, DEMO_PAGE.read_text())
    shot = screenshot(DEMO_PAGE, layout["height"], "summary-1400.png")
    with Image.open(shot) as image:
        assert image.width == WIDTH
