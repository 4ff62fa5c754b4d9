"""Screenshots of every dashboard of a running site, for docs/: `python -m tests.browser.screenshots --url
http://127.0.0.1:8000 --password <admin password> [--out docs/screenshots] [--range -1h]`.

With `--range`, each dashboard opens at that range (`?from=-1h&to=now`) instead of its saved one, and the file
names end in the range (`executive-1h-desktop.png`).

Headless Chromium (Debian's chromium and chromium-driver) at 1440x900 and 390x844 signs in as admin, opens each
dashboard, waits for the mark the page sets once every panel has drawn, lets live data settle a moment, and saves
what the window shows as PNG (reduced to 256 colours when Pillow is installed, to keep docs/ small).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import tempfile
import time
from pathlib import Path

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


def _driver(profile: str, width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    # --window-size sets the outer window; make the page's viewport exactly the size asked for.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 768},
    )
    return driver


def _small_png(data: bytes) -> bytes:
    try:
        from PIL import Image
    except ImportError:
        return data
    image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    output = io.BytesIO()
    image.save(output, format="PNG", optimize=True)
    return output.getvalue()


def screenshots(
    *, url: str, password: str, out: Path, settle_seconds: float = 3.0, time_range: str | None = None
) -> list[Path]:
    """Save a PNG per dashboard and size into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for size_name, (width, height) in SIZES.items():
        with tempfile.TemporaryDirectory() as profile:
            driver = _driver(profile, width, height)
            try:
                driver.get(f"{url}/accounts/login/")
                driver.find_element("name", "username").send_keys("admin")
                driver.find_element("name", "password").send_keys(password)
                driver.find_element("css selector", "form [type=submit]").click()
                time.sleep(1)
                driver.get(f"{url}/api/v1/dashboards/?limit=100")
                listing = json.loads(driver.find_element("tag name", "body").text)
                for dashboard in listing["results"]:
                    query = f"?from={time_range}&to=now" if time_range else ""
                    driver.get(f"{url}/dashboards/{dashboard['uid']}/{query}")
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and not driver.execute_script(
                        "return document.getElementById('dashboard').dataset.panelsDrawn;"
                    ):
                        time.sleep(0.1)
                    time.sleep(settle_seconds)
                    slug = re.sub(r"[^a-z0-9]+", "-", f"{dashboard['title']} {time_range or ''}".lower()).strip("-")
                    path = out / f"{slug}-{size_name}.png"
                    path.write_bytes(_small_png(driver.get_screenshot_as_png()))
                    saved.append(path)
            finally:
                driver.quit()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--password", required=True, help="The demo admin's password (DEMO_PASSWORD).")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--range", dest="time_range", help="Open every dashboard at this range, e.g. -1h.")
    arguments = parser.parse_args()
    saved = screenshots(
        url=arguments.url, password=arguments.password, out=arguments.out, time_range=arguments.time_range
    )
    for path in saved:
        print(f"{path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
