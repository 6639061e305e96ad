"""Cold load of /playground/ in Debian's headless Chromium: time to interactive (the page has
signed in with a stored key, listed the assistants and filled the builder: the
`playground-interactive` performance mark) and bytes transferred, with an empty cache each time."""

from __future__ import annotations

import statistics
import sys

from _stack import bench_stack, percentile

LOADS = 15
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
MEASURE = """() => {
  const mark = performance.getEntriesByName("playground-interactive")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const assets = resources.filter((r) => r.name.includes("/playground/"));
  const api = resources.filter((r) => r.name.includes("/v1/"));
  const sum = (list, field) => list.reduce((total, r) => total + r[field], 0);
  return {interactive: mark ? mark.startTime : null, dcl: nav.domContentLoadedEventEnd,
          page: nav.transferSize, assets: sum(assets, "transferSize"), api: sum(api, "transferSize"),
          decoded: nav.decodedBodySize + sum(assets, "decodedBodySize"), requests: resources.length + 1};
}"""


def cold_loads(browser, url: str, key: str | None) -> list[dict]:
    results = []
    for _ in range(LOADS + 1):
        context = browser.new_context(viewport={"width": 1280, "height": 800})  # empty cache
        if key:
            context.add_init_script(f"localStorage.setItem('playground.apiKey', {key!r})")
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("() => performance.getEntriesByName('playground-interactive').length > 0")
        results.append(page.evaluate(MEASURE))
        context.close()
    return results[1:]  # the first load also warms the server's own caches


def floor(browser, url: str) -> list[float]:
    """The same cold navigation to a tiny JSON answer (/healthz): what the browser and server
    cost before the Playground does anything, on this machine as loaded as it is now."""
    times = []
    for _ in range(LOADS):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        times.append(page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd"))
        context.close()
    return times


def report(label: str, results: list[dict]) -> None:
    tti = [r["interactive"] for r in results]
    first = results[0]
    transfer = first["page"] + first["assets"]
    print(f"{label}: time to interactive p50 {statistics.median(tti):.0f} ms, "
          f"p99 {percentile(tti, 99):.0f} ms (DOMContentLoaded p50 "
          f"{statistics.median(r['dcl'] for r in results):.0f} ms); transfer {transfer / 1024:.1f} KB "
          f"of page and assets ({first['decoded'] / 1024:.1f} KB uncompressed) + "
          f"{first['api'] / 1024:.1f} KB of API answers, {first['requests']} requests")


def main() -> int:
    from playwright.sync_api import sync_playwright

    with bench_stack() as (stack, upstream, api_base, key), sync_playwright() as playwright:
        import openai

        client = openai.OpenAI(base_url=api_base, api_key=key)
        client.beta.assistants.create(model="gpt-4o", name="Bench", tools=[{"type": "code_interpreter"}])
        url = f"http://{stack.host}:{stack.port}/playground/"
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        try:
            report("signed in", cold_loads(browser, url, key))
            report("sign-in form", cold_loads(browser, url, None))
            base = floor(browser, f"http://{stack.host}:{stack.port}/healthz")
            print(f"floor (cold load of /healthz in a new context): p50 {statistics.median(base):.0f} ms, "
                  f"p99 {percentile(base, 99):.0f} ms")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
