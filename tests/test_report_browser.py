"""The report page in a real browser: headless Chromium opens index.html from disk, every
image loads, and a full-page screenshot shows something. Skipped, saying why, where no
Chromium is installed (`.ci/run` installs Debian's `chromium` before the tests)."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from gansweep.analysis.report import SECTIONS, write_report
from tests.report_helpers import real_sweeps

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (CI installs Debian's `chromium`; "
                             "`apt-get install -y chromium` to run this test here)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# A page that loads the report in a frame and, once everything has loaded, writes how many of
# its images decoded (file:// frames are readable with --allow-file-access-from-files).
PROBE = """<!DOCTYPE html><html><body>
<iframe id="r" src="{src}" width="1400" height="900"></iframe><pre id="result">pending</pre>
<script>
window.addEventListener("load", function () {{
  var out = document.getElementById("result");
  try {{
    var doc = document.getElementById("r").contentDocument, imgs = doc.images, bad = 0;
    for (var i = 0; i < imgs.length; i++)
      if (!imgs[i].complete || imgs[i].naturalWidth === 0) bad++;
    out.textContent = "images=" + imgs.length + " broken=" + bad
      + " h2=" + doc.getElementsByTagName("h2").length;
  }} catch (e) {{ out.textContent = "error=" + e; }}
}});
</script></body></html>"""


@pytest.fixture(scope="module")
def page(ray_local, tmp_path_factory):
    s = real_sweeps(tmp_path_factory)
    out = tmp_path_factory.mktemp("browser-report")
    return write_report([s["gan"], s["som"], s["half"]], out)


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          check=False, capture_output=True, text=True, timeout=180)


def test_every_image_loads_in_chromium(page, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE.format(src=page.as_uri()))
    proc = chromium(tmp_path, "--allow-file-access-from-files", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="result">([^<]*)</pre>', proc.stdout)
    assert found, proc.stderr[-2000:]
    html = page.read_text()
    n_img = html.count("<img ")
    assert found.group(1) == f"images={n_img} broken=0 h2={len(SECTIONS) + 1}"
    assert n_img >= 10


def test_screenshot_of_the_page(page, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,4000",
                    page.as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    im = np.asarray(Image.open(shot).convert("RGB"))
    assert im.shape[:2] == (4000, 1400)
    ink = (im.min(axis=2) < 200).mean()  # share of pixels that are not near-white
    assert ink > 0.02, ink
    assert len(np.unique(im.reshape(-1, 3)[::50], axis=0)) > 50  # text, tables and plots
