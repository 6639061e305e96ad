"""Browser tests drive Debian's real headless Chromium (/usr/bin/chromium, installed by .ci/run
from Debian's packages; never a downloaded browser) through Playwright against the real stack.
Screenshots of the main views land in DATA_DIR/screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_client, new_project_key

# Playwright's sync API keeps an event loop running in this thread; the ORM assertions of these
# tests are plain blocking calls all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="package")
def chromium():
    """Package-scoped: Playwright's sync API runs an event loop in this thread while it lives,
    which would break every later asyncio.run() in the session."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def origin(stack) -> str:
    return f"http://{stack.host}:{stack.port}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ["DATA_DIR"]) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def project_key(stack) -> str:
    """A project of the module's own, so lists the browser shows hold only its objects."""
    return new_project_key(stack)


@pytest.fixture
def sdk(api_base, project_key):
    client = make_client(api_base, project_key)
    yield client
    client.close()


class Watched:
    """A page, and every request it made and console error it logged."""

    def __init__(self, page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def foreign_requests(self) -> list[str]:
        return [url for url in self.urls
                if not url.startswith((self.origin + "/", "blob:", "data:"))]


@pytest.fixture
def browser_page(chromium, origin):
    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    watched = Watched(page, origin)
    yield watched
    assert not watched.errors, watched.errors
    context.close()


@pytest.fixture
def playground(browser_page, origin, project_key):
    """The Playground, signed in with the module's project key through the sign-in form."""
    page = browser_page.page
    page.goto(f"{origin}/playground/")
    page.get_by_label("API key", exact=True).fill(project_key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name="New thread", exact=True).wait_for()
    page.locator("body[data-ready=true]").wait_for(state="attached")
    return browser_page


def shoot(page, screenshots: Path, name: str, view: str | None = None) -> None:
    """The view at desktop and phone sizes (on a phone one pane shows at a time)."""
    if view:
        page.locator(f'.tabs button[data-view="{view}"]').click()
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(screenshots / f"{name}-1280x800.png"))
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(screenshots / f"{name}-390x844.png"))
    page.set_viewport_size(DESKTOP)
