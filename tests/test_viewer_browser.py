"""The interactive 3D view in a real browser: headless Chromium (Debian's) with software WebGL2.

Proves what a person opening a report sees: the canvas shows the asset in its texture colours (the
screenshot agrees with csdkit's own MeshRenderer render of the same camera), a drag orbits, the
wheel zooms, a double-click resets, the toggles change the picture, linked views move together,
a malformed GLB shows a message, and no request leaves the page (CSP, resource timing, CDP log).

Needs /usr/bin/chromium and /usr/bin/chromedriver (`make browser-deps`; CI installs them) and the
pip package selenium. Under CI a missing browser fails instead of skipping.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import tempfile

import numpy as np
import pytest
import torch
from viewer_scenes import (
    band_fractions,
    banded_sphere,
    chromium_available,
    foreground,
    png_to_float,
    remove_profile,
    start_chromium,
)

from csdkit.geometry.mesh import Mesh
from csdkit.io import save_glb
from csdkit.render.cameras import Cameras
from csdkit.render.mesh_renderer import MeshRenderer
from csdkit.viewer import ViewerCamera, viewer_html

CAM = ViewerCamera(elevation=15.0, azimuth=30.0, distance=3.0, fov_y=45.0, target=(0.0, 0.0, 0.0))
SIZE = 256


def _require_browser():
    missing = []
    if not chromium_available():
        missing.append("/usr/bin/chromium + /usr/bin/chromedriver (apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the pip package selenium")
    if missing:
        msg = "browser test needs " + " and ".join(missing) + "; `make browser-deps` installs them"
        if os.environ.get("CI"):
            pytest.fail(msg)  # CI installs them: a missing browser there is a broken setup, not a skip
        pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    profile = tempfile.mkdtemp(prefix="csdkit-chromium-")
    driver = start_chromium(profile)
    try:
        yield driver
    finally:
        driver.quit()
        remove_profile(profile)


def open_page(driver, path) -> dict:
    """Load ``path`` and wait until every view has loaded (or failed) and drawn."""
    driver.get_log("performance")  # drop earlier events
    driver.get_log("browser")
    driver.get(path.resolve().as_uri())
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function wait() {
          if (window.csdkitViewer && csdkitViewer.ready) {
            csdkitViewer.ready.then(() => requestAnimationFrame(() => requestAnimationFrame(() => done({
              state: document.documentElement.dataset.csdkitViewer,
              views: csdkitViewer.groups.flatMap((g) => g.views.map((v) => ({error: v.error, info: v.info,
                                                                             frames: v.frames})))}))));
          } else if (Date.now() - t0 > 20000) { done({state: 'no viewer script ran'}); }
          else { setTimeout(wait, 50); }
        })();""")


def settle(driver) -> None:
    driver.execute_async_script("const d = arguments[arguments.length - 1];"
                                "requestAnimationFrame(() => requestAnimationFrame(() => d()));")


def canvas_image(driver, index: int = 0) -> np.ndarray:
    """Screenshot of the index-th canvas, its 1 px CSS border cropped: ``[H, W, 3]`` in [0, 1]."""
    canvas = driver.find_elements("css selector", ".csdkit-viewer canvas")[index]
    img = png_to_float(canvas.screenshot_as_png)
    w, h = driver.execute_script("return [arguments[0].width, arguments[0].height]", canvas)
    oy, ox = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[oy:oy + h, ox:ox + w]


def csdkit_render(mesh: Mesh, cam: ViewerCamera, size: int, shading: str = "lambertian") -> np.ndarray:
    """csdkit's own render of the viewer's starting view (same camera, light, weights, background)."""
    cams = Cameras.from_spherical(cam.elevation, cam.azimuth, cam.distance, fov_y=cam.fov_y, target=cam.target)
    light = torch.nn.functional.normalize(cams.position - torch.tensor(cam.target), dim=-1)
    out = MeshRenderer(size).render(mesh, cams, shading=shading, background=0.6, light_dir=light,
                                    ambient=0.5, diffuse=0.5)
    return out["rgb"][0].double().numpy()


def compare(shot: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(IoU of the foreground masks, mean absolute difference on pixels both cover)."""
    a, b = foreground(shot), foreground(ref)
    both = a & b
    return float(both.sum() / max((a | b).sum(), 1)), float(np.abs(shot - ref)[both].mean())


@pytest.fixture(scope="module")
def sphere_page(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    mesh = banded_sphere()
    glb = save_glb(mesh, d / "sphere.glb").read_bytes()
    page = d / "sphere.html"
    page.write_text(viewer_html({"left": glb, "right": glb}, camera=CAM, size=(SIZE, SIZE)))
    return page, mesh


def test_canvas_shows_the_texture_like_csdkit_renders_it(browser, sphere_page):
    page, mesh = sphere_page
    status = open_page(browser, page)
    assert status["state"] == "ready", status
    assert [v["info"]["texture"] for v in status["views"]] == [[128, 64], [128, 64]]
    assert all(v["info"]["triangles"] == mesh.num_faces for v in status["views"])
    shot, ref = canvas_image(browser, 0), csdkit_render(mesh, CAM, SIZE)
    iou, mad = compare(shot, ref)
    assert iou > 0.98 and mad < 0.02, (iou, mad)
    fa, fb = band_fractions(shot, foreground(shot)), band_fractions(ref, foreground(ref))
    assert np.abs(fa - fb).max() < 0.02, (fa, fb)
    assert fa[0] > 0.3 and fa[4] > 0.1  # red faces this camera; the white cap is on top
    top, bottom = foreground(shot)[: SIZE // 4], foreground(shot)[-SIZE // 4:]
    assert shot[: SIZE // 4][top].mean() > shot[-SIZE // 4:][bottom].mean() + 0.2  # cap at the top: v not flipped
    # the camera the viewer used is csdkit's Cameras.from_spherical(...)
    m = browser.execute_script("return csdkitViewer.groups[0].views[0].matrices()")
    cams = Cameras.from_spherical(CAM.elevation, CAM.azimuth, CAM.distance, fov_y=CAM.fov_y)
    np.testing.assert_allclose(np.array(m["c2w"]), cams.c2w[0].double().numpy(), atol=1e-5)
    p = cams.proj(1.0)[0].double().numpy()
    np.testing.assert_allclose(np.array(m["proj"])[[0, 1, 3], [0, 1, 2]], p[[0, 1, 3], [0, 1, 2]], atol=1e-6)


def test_toggles_albedo_uv_checker_wireframe(browser, sphere_page):
    page, mesh = sphere_page
    assert open_page(browser, page)["state"] == "ready"
    lit = canvas_image(browser)
    buttons = {b.text: b for b in browser.find_elements("css selector", ".csdkit-viewer-bar button")}
    buttons["albedo"].click()
    settle(browser)
    albedo = canvas_image(browser)
    iou, mad = compare(albedo, csdkit_render(mesh, CAM, SIZE, shading="albedo"))
    assert iou > 0.98 and mad < 0.02, (iou, mad)
    assert albedo[foreground(albedo)].mean() > lit[foreground(lit)].mean() + 0.03  # unlit is brighter
    buttons["uv checker"].click()
    settle(browser)
    checker = canvas_image(browser)
    fg = foreground(checker)
    lum = checker[fg].mean(-1)
    assert (lum < 0.2).mean() > 0.2 and (lum > 0.45).mean() > 0.2  # dark and light squares
    assert band_fractions(checker, fg)[0] < 0.2  # the red texture is gone
    buttons["lit"].click()
    buttons["wireframe"].click()
    settle(browser)
    wire = canvas_image(browser)
    dark = lambda im: float((im[foreground(im)].max(-1) < 0.15).mean())  # noqa: E731
    assert dark(lit) < 0.005 and dark(wire) > 0.055, (dark(lit), dark(wire))  # the whole grid, no z-fighting
    assert browser.find_elements("css selector", ".csdkit-viewer canvas")[1].get_attribute("data-frames")


def test_drag_orbits_wheel_zooms_double_click_resets_linked_views(browser, sphere_page):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    page, _ = sphere_page
    assert open_page(browser, page)["state"] == "ready"
    canvases = browser.find_elements("css selector", ".csdkit-viewer canvas")
    before = canvas_image(browser, 0)
    ActionChains(browser).move_to_element(canvases[0]).click_and_hold().move_by_offset(60, 0) \
        .move_by_offset(40, 0).release().perform()
    settle(browser)
    after, other = canvas_image(browser, 0), canvas_image(browser, 1)
    assert np.abs(after - before).mean() > 0.03  # the view turned
    assert np.abs(after - other).mean() < 0.002  # linked: the second view turned with it
    cam = browser.execute_script("return csdkitViewer.groups[0].views[1].matrices().camera")
    assert cam["azimuth"] == pytest.approx(CAM.azimuth - 100 * 0.5, abs=1.0)  # drag right: 0.5 degree per pixel
    # the red band moved away and the next band (towards -x: yellow) came round
    fb, fa = band_fractions(before, foreground(before)), band_fractions(after, foreground(after))
    assert fa[0] < fb[0] - 0.1 and fa[3] > fb[3] + 0.1, (fb, fa)

    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvases[0]), 0, 400).perform()
    settle(browser)
    zoomed = canvas_image(browser, 0)
    assert foreground(zoomed).sum() < 0.8 * foreground(after).sum()  # wheel down: further away
    ActionChains(browser).double_click(canvases[0]).perform()
    settle(browser)
    assert np.abs(canvas_image(browser, 0) - before).mean() < 0.002  # reset to the first view

    browser.find_element("css selector", ".csdkit-viewer-bar input[type=checkbox]").click()  # unlink
    ActionChains(browser).move_to_element(canvases[1]).click_and_hold().move_by_offset(0, 50).release().perform()
    settle(browser)
    assert np.abs(canvas_image(browser, 0) - before).mean() < 0.002
    assert np.abs(canvas_image(browser, 1) - before).mean() > 0.02


def _network_requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


@pytest.fixture(scope="module")
def texturing_run(tmp_path_factory):
    from csdkit.geometry.primitives import icosphere
    from csdkit.pipelines.texture import texture

    out = tmp_path_factory.mktemp("texrun") / "run"
    res = texture(icosphere(3), "a blue sphere", steps=30, texture_size=128, seed=0, out_dir=out,
                  progress=False, quiet=True)
    return res


def test_texturing_report_shows_the_result_and_loads_nothing(browser, texturing_run):
    report = texturing_run.files["report"]
    html_text = report.read_text()
    assert 'alt="Turntable"' in html_text  # the static turntable stays
    status = open_page(browser, report)
    assert status["state"] == "ready" and len(status["views"]) == 1, status
    requests = _network_requests(browser)
    assert requests and all(u == report.resolve().as_uri() or u.startswith("data:") for u in requests), requests
    entries = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert all(e.startswith("data:") for e in entries), entries
    assert browser.execute_script("return csdkitViewer.cspViolations") == []
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no console errors

    cfg = json.loads(re.search(r'data-config="([^"]+)"', html_text).group(1).replace("&quot;", '"'))
    cam = ViewerCamera(**{k: (tuple(v) if k == "target" else v) for k, v in cfg["camera"].items()})
    size = cfg["size"]
    assert size[0] == size[1]
    mesh = Mesh.load(texturing_run.files["glb"])
    shot, ref = canvas_image(browser), csdkit_render(mesh, cam, size[0])
    iou, mad = compare(shot, ref)
    assert iou > 0.97 and mad < 0.03, (iou, mad)
    # the job's texture colours: the mean foreground colour agrees with csdkit's render
    np.testing.assert_allclose(shot[foreground(shot)].mean(0), ref[foreground(ref)].mean(0), atol=0.02)

    # a page script cannot reach the network either: the CSP blocks it and says so
    result = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('http://127.0.0.1:9/csdkit-probe').then(() => done('loaded'), (e) => done('blocked'));""")
    assert result == "blocked"
    settle(browser)
    violations = browser.execute_script("return csdkitViewer.cspViolations")
    assert violations and "connect-src" in violations[0]


def test_malformed_glb_in_a_page_shows_a_message(browser, sphere_page, tmp_path):
    page, _ = sphere_page
    text = page.read_text()
    junk = base64.b64encode(b"glTF\x02\x00\x00\x00\xff\xff\x00\x00" + b"\0" * 20).decode()
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r'(base64">)[^<]*', lambda m: m.group(1) + junk, text, count=1))
    status = open_page(browser, broken)
    assert status["state"] == "error"
    assert "truncated GLB" in status["views"][0]["error"] and status["views"][1]["error"] is None
    msg = browser.find_element("css selector", ".csdkit-viewer-error").text
    assert msg.startswith("cannot show left:") and "truncated GLB" in msg
    assert math.isfinite(canvas_image(browser, 0).mean())  # the second view still draws


def test_csdkit_view_of_an_obj_frames_and_textures_it(browser, tmp_path, capsys):
    from csdkit.cli import main as cli_main
    from csdkit.io import save_obj

    mesh = banded_sphere()
    obj = save_obj(mesh, tmp_path / "ball.obj")  # OBJ + MTL + PNG: through csdkit.io, exported as a GLB
    assert cli_main(["view", str(obj), "--size", "200", "200"]) == 0
    page = tmp_path / "ball.view.html"
    assert capsys.readouterr().out.strip() == str(page)
    assert open_page(browser, page)["state"] == "ready"
    # the default view: elevation 15, azimuth 0, the bounding sphere (radius 1) framed with a 15% margin
    auto = ViewerCamera(elevation=15.0, azimuth=0.0, distance=1.15 / math.sin(math.radians(25.0)), fov_y=50.0,
                        target=(0.0, 0.0, 0.0))
    shot = canvas_image(browser)
    iou, mad = compare(shot, csdkit_render(mesh, auto, 200))
    assert iou > 0.97 and mad < 0.03, (iou, mad)
    assert band_fractions(shot, foreground(shot))[0] > 0.3  # azimuth 0 faces the red band (u in [0, 0.25))
