"""The built wheel is self-contained: it carries the JSON Schemas and the cdk8s app."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from .conftest import REPO_ROOT


def test_wheel_carries_the_schemas_and_the_cdk8s_app(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("image_factory-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {
            name.removeprefix("image_factory/schemas/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith("image_factory/schemas/")
        }
        package = REPO_ROOT / "action" / "image_factory"
        modules = {f"image_factory/{path.relative_to(package)}" for path in package.rglob("*.py")}
        assert modules <= set(archive.namelist()), "every module of every subpackage"
        assert "image_factory/cli/__main__.py" in modules
        site = REPO_ROOT / "action" / "image_factory" / "output" / "site"
        data = {
            f"image_factory/output/site/{path.relative_to(site)}"
            for folder in ("assets", "templates")
            for path in (site / folder).iterdir()
        }
        assert len(data) >= 5 and data <= set(archive.namelist()), "the site's assets and templates"
        app = {
            name.removeprefix("image_factory/cdk8s_app/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith("image_factory/cdk8s_app/")
        }
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt"))).decode()
    expected = {path.name: path.read_bytes() for path in (REPO_ROOT / "schemas").glob("*.json")}
    assert packaged == expected
    app_files = [p for p in (REPO_ROOT / "cdk8s").iterdir() if p.suffix in (".py", ".yaml")]
    assert app == {path.name: path.read_bytes() for path in app_files}
    assert "image-factory = image_factory.cli:main" in entry_points
