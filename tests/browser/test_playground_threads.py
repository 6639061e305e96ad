"""Finding threads and managing storage in the Playground, in a real Chromium."""

from __future__ import annotations

from tests.browser.conftest import PHONE, shoot


def test_an_old_thread_is_found_by_search_and_by_paging(playground, sdk, screenshots):
    old = sdk.beta.threads.create(metadata={"ticket": "T-1001"},
                                  messages=[{"role": "user", "content": "My kayak order never arrived"}])
    for n in range(9):  # newer threads push the old one past the first page (8 a page)
        sdk.beta.threads.create(messages=[{"role": "user", "content": f"Newer question {n}"}])
    page = playground.page
    page.reload()
    items = page.locator(".thread-item")
    items.first.wait_for()
    assert items.count() == 8
    assert page.locator(f'.thread-item[data-thread-id="{old.id}"]').count() == 0
    page.get_by_role("button", name="Older threads", exact=True).click()
    found = page.locator(f'.thread-item[data-thread-id="{old.id}"]')
    found.filter(has_text="kayak order").wait_for()  # its first message, fetched for the row
    page.get_by_role("button", name="Newer threads", exact=True).click()
    page.locator(f'.thread-item[data-thread-id="{old.id}"]').wait_for(state="detached")

    search = page.get_by_label("Search threads", exact=True)
    search.fill("kayak")
    found.wait_for()
    assert items.count() == 1
    search.fill("T-1001")  # metadata
    page.wait_for_timeout(400)
    found.wait_for()
    assert items.count() == 1
    found.click()
    page.locator("article.message.user").filter(has_text="My kayak order never arrived").wait_for()
    assert page.locator("#thread-current").inner_text() == old.id
    search.fill("no such words anywhere")
    page.get_by_text("No thread matches.").wait_for()
    shoot(page, screenshots, "thread-list", view="thread")


def test_files_and_vector_stores_are_managed_and_searched(playground, sdk, screenshots):
    page = playground.page
    page.locator('.tabs button[data-view="storage"]').click()
    page.get_by_label("Purpose", exact=True).select_option("assistants")
    page.get_by_label("Upload file", exact=True).set_input_files(
        [{"name": "reef.txt", "mimeType": "text/plain",
          "buffer": b"Coral reefs grow in warm shallow seas and shelter many fish."}])
    row = page.locator("#file-rows tr").filter(has_text="reef.txt")
    row.wait_for()
    assert "assistants" in row.inner_text()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download reef.txt", exact=True).click()
    assert download.value.suggested_filename == "reef.txt"

    reef = next(f for f in sdk.files.list().data if f.filename == "reef.txt")
    page.get_by_label("Store name", exact=True).fill("reefs")
    page.get_by_role("button", name="Create vector store", exact=True).click()
    page.get_by_label("Add files to vector store", exact=True).set_input_files(
        [{"name": "lagoon.txt", "mimeType": "text/plain",
          "buffer": b"A lagoon is calm water behind a reef, sheltered from waves."}])
    detail = page.locator("#store-detail")
    detail.filter(has_text="lagoon.txt").wait_for()
    for _ in range(50):
        if "1 completed" in detail.inner_text():
            break
        page.locator(".store-item").filter(has_text="reefs").click()
        page.wait_for_timeout(200)
    assert "1 completed, 0 in progress" in detail.inner_text() and "expires" in detail.inner_text()
    page.get_by_label("Search vector store", exact=True).fill("calm water behind a reef")
    page.get_by_role("button", name="Search", exact=True).click()
    result = page.locator("#store-detail ol.results li").first
    result.filter(has_text="lagoon.txt").wait_for()
    assert "score" in result.inner_text() and "calm water" in result.inner_text()
    shoot(page, screenshots, "storage", view="storage")

    page.get_by_role("button", name="Delete reef.txt", exact=True).click()
    row.wait_for(state="detached")
    assert reef.id not in [f.id for f in sdk.files.list().data]


def test_the_phone_layout_shows_one_pane_at_a_time(playground):
    page = playground.page
    page.set_viewport_size(PHONE)
    thread = page.locator("#thread")
    builder = page.locator("#builder")
    assert thread.is_visible() and not builder.is_visible()
    page.locator('.tabs button[data-view="builder"]').click()
    assert builder.is_visible() and not thread.is_visible()
    assert page.get_by_label("Name", exact=True).bounding_box()["width"] <= PHONE["width"]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]  # nothing scrolls sideways
    page.keyboard.press("Tab")  # keyboard-usable: focus moves to a control
    assert page.evaluate("document.activeElement.tagName") in ("BUTTON", "INPUT", "SELECT", "TEXTAREA", "A")
    assert not playground.foreign_requests()


def test_a_message_carries_its_attachments(playground, sdk, fake_upstream):
    fake_upstream.reset()
    sdk.beta.assistants.create(model="gpt-4o", name="Reader", tools=[{"type": "code_interpreter"}])
    page = playground.page
    page.reload()
    page.get_by_role("button", name="New thread", exact=True).wait_for()
    page.get_by_role("button", name="New thread", exact=True).click()
    page.get_by_label("Attach files", exact=True).set_input_files(
        [{"name": "numbers.csv", "mimeType": "text/csv", "buffer": b"n\n1\n2\n"}])
    page.get_by_label("Attach for", exact=True).select_option("code_interpreter")
    page.get_by_label("Message", exact=True).fill("Sum the numbers")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("article.message.user").filter(has_text="Attached: numbers.csv").wait_for()
    page.locator("#run-status").filter(has_text=": completed").wait_for()
    thread_id = page.locator("#thread-current").inner_text()
    sent = sdk.beta.threads.messages.list(thread_id, order="asc").data[0]
    assert sent.attachments[0].tools[0].type == "code_interpreter"
    assert sdk.files.retrieve(sent.attachments[0].file_id).filename == "numbers.csv"
