"""The report page in headless Chromium: the DOM it renders and a screenshot.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped without it, except
under CI. Set ``NPLUSONE_SCREENSHOT_DIR`` to keep the screenshot.
"""
import os
import shutil
import struct
import subprocess
import threading
import zlib
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.test import Client

from django_rustpg.nplusone.report import history

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1280,900",
    "--virtual-time-budget=3000",
]

if not CHROMIUM:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is required under CI (apt-get install -y chromium)")
    pytest.skip("chromium is not installed", allow_module_level=True)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """The project's WSGI app on a free port, in a thread (the page needs no database)."""
    from django.core.wsgi import get_wsgi_application

    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=WSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def recorded(data):
    history.clear()
    client = Client()
    client.get("/books/")
    client.get("/books/", {"fix": 'select_related("author")'})
    client.get("/clean/")
    yield
    history.clear()


def chromium(tmp_path, *args):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    return proc


def test_dom(server, recorded, tmp_path):
    proc = chromium(tmp_path, "--dump-dom", f"{server}/__nplusone__/")
    dom = proc.stdout
    assert "<h1>N+1 queries</h1>" in dom, proc.stderr[-2000:]
    assert dom.count('class="req"') == 3
    assert dom.count('data-kind="n_plus_one"') == 1
    assert 'select_related("author")' in dom
    assert "shop.Book.author" in dom and "shop/books.html:3" in dom
    assert '<b id="total-findings">1</b>' in dom
    assert "How to read this page" in dom and "no safe fix found" in dom
    assert dom.count('class="explain"') == 1  # one finding, one EXPLAIN button


def test_explain_button_shows_the_plan(server, recorded, tmp_path):
    """The page's script runs the EXPLAIN (a link to #explain-... opens that plan)."""
    (item,) = [i for i in history.items() if i["findings"]]
    anchor = f"explain-{item['id']}-findings-0"
    proc = chromium(tmp_path, "--dump-dom", f"{server}/__nplusone__/#{anchor}")
    dom = proc.stdout
    start = dom.index(f'id="{anchor}-plan"')
    plan = dom[start:dom.index("</pre>", start)]
    assert "hidden" not in plan.split(">", 1)[0], plan
    assert "shop_author" in plan and "Scan" in plan, plan


def read_png(path):
    """(width, height, rows of RGB(A) tuples) for an 8-bit RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def test_screenshot(server, recorded, tmp_path):
    png = tmp_path / "report.png"
    proc = chromium(tmp_path, f"--screenshot={png}", f"{server}/__nplusone__/")
    assert png.exists(), proc.stderr[-2000:]
    if os.environ.get("NPLUSONE_SCREENSHOT_DIR"):
        shutil.copy(png, os.path.join(os.environ["NPLUSONE_SCREENSHOT_DIR"], "nplusone_report.png"))
    width, height, bpp, rows = read_png(png)
    assert (width, height) == (1280, 900)

    def pixel(x, y):
        return tuple(rows[y][x * bpp:x * bpp + 3])

    # The dark header band across the top.
    assert pixel(640, 10) == (0x1D, 0x23, 0x30)
    colors = {}
    for y in range(0, height, 3):
        for x in range(0, width, 3):
            p = pixel(x, y)
            colors[p] = colors.get(p, 0) + 1
    # A rendered page, not a blank one: many colors, light background dominant.
    assert len(colors) > 50
    assert max(colors, key=colors.get) in ((0xF6, 0xF7, 0xF9), (0xFF, 0xFF, 0xFF))
    # The N+1 finding's red accents and the green fix / "clean" badges are on screen.
    reds = sum(n for (r, g, b), n in colors.items() if r > 170 and g < 90 and b < 90)
    greens = sum(n for (r, g, b), n in colors.items() if g > 100 and r < 80 and b < 100)
    assert reds > 20, reds
    assert greens > 5, greens
