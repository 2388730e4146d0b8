"""What every portal page must pass in the browser: axe (WCAG 2.1 AA, contrast AAA), a saved
screenshot, and a keyboard that reaches the skip link first with a visible focus.

Screenshots go to ``tests/artifacts/portal/<name>.png`` (git-ignored); the path is printed.
"""

from __future__ import annotations

from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "portal"
AXE_OPTIONS = {
    "resultTypes": ["violations"],
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    # AAA contrast (7:1), beyond AA's 4.5:1.
    "rules": {"color-contrast-enhanced": {"enabled": True}},
}
_AXE = Axe()


def axe_violations(page: Page) -> str:
    """Return axe's report of the page's violations ('' when there are none)."""
    results = _AXE.run(page, options=AXE_OPTIONS)
    return results.generate_report() if results.violations_count else ""


def save_screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``<ARTIFACTS>/<name>.png``; return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def focus_state(page: Page) -> dict[str, str]:
    """Return the focused element's tag, text, href and whether its focus ring shows."""
    result: dict[str, str] = page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2)
                || style.boxShadow !== 'none';
            const box = el.getBoundingClientRect();
            return {tag: el.tagName.toLowerCase(), text: (el.textContent || '').trim(),
                    href: el.getAttribute('href') || '', id: el.id || '',
                    ring: String(ring), visible: String(box.width > 0 && box.height > 0)};
        }"""
    )
    return result


def first_tab_reaches_skip_link(page: Page) -> None:
    """Assert the first Tab focuses the visible skip link and Enter moves focus to main."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Tab")
    state = focus_state(page)
    assert state["href"] == "#main", f"the first Tab reached {state}, not the skip link"
    assert state["ring"] == "true" and state["visible"] == "true", f"focus not visible: {state}"
    page.keyboard.press("Enter")
    assert focus_state(page)["id"] == "main"


def tab_to(page: Page, text: str, max_presses: int = 60) -> dict[str, str]:
    """Press Tab until the focused element's text is ``text``; return its focus state.

    Raises AssertionError if it is not reached, or reached without a visible focus ring.
    """
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        state = focus_state(page)
        if state["text"] == text:
            assert state["ring"] == "true", f"focus ring not visible on {state}"
            return state
    raise AssertionError(f"{text!r} not reached in {max_presses} Tab presses")


def check_page(page: Page, name: str) -> None:
    """Assert the page has no axe violations and a keyboard-first skip link; save its
    screenshot as ``name``."""
    save_screenshot(page, name)
    report = axe_violations(page)
    assert not report, f"axe found violations on {name}:\n{report}"
    first_tab_reaches_skip_link(page)
