"""The UI in a real browser (headless Chromium driven by Selenium) against the stack's api-server.

The Add Connection form offers the ``brain`` type with the provider's labels and placeholders; the
page of a finished transcribe task shows the provider's extra link, pointing at that asset; no page
shows a password, token or presigned signature. Screenshots of both pages go to
``test-artifacts/deployment/``.
"""

from __future__ import annotations

import shutil

import pytest

from deploy.stack import ADMIN_PASSWORD, ADMIN_USER, BRAIN_PASSWORD, REPO_ROOT
from tests.deployment.conftest import brain_assets, follow, trigger

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(300)]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "deployment"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
SECRETS = (BRAIN_PASSWORD, "X-Amz-Signature", "Signature=", "X-Amz-Credential")


@pytest.fixture
def browser(stack):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (scripts/setup.sh does)"
    options = Options()
    for flag in (*CHROMIUM_FLAGS, "--window-size=1400,1000"):
        options.add_argument(flag)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        driver.set_page_load_timeout(60)
        driver.get(stack.api + "/")
        wait(driver).until(lambda d: d.find_elements(By.NAME, "username"))
        driver.find_element(By.NAME, "username").send_keys(ADMIN_USER)
        driver.find_element(By.NAME, "password").send_keys(ADMIN_PASSWORD, Keys.ENTER)
        wait(driver).until(lambda d: "/auth/login" not in d.current_url)
        yield driver
    finally:
        driver.quit()


def wait(driver, seconds: float = 30):
    """Wait for a condition on a React page, whose elements re-render (and go stale) while it loads."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, ignored_exceptions=(StaleElementReferenceException,))


def assert_no_secrets(driver, stack) -> None:
    page = driver.page_source + driver.find_element("tag name", "body").text
    for secret in (*SECRETS, stack.token()):
        assert secret not in page, f"{driver.current_url} shows {secret[:12]}..."


def test_connection_form_offers_brain_with_the_providers_labels(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(stack.api + "/connections")
    add = wait(browser).until(
        lambda d: [b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Add Connection"]
    )
    add[0].click()
    wait(browser).until(lambda d: d.find_elements(By.NAME, "connection_id"))
    browser.find_element(By.NAME, "connection_id").send_keys("brain_ui")
    kind = browser.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    kind.click()
    kind.send_keys("Brain")
    wait(browser).until(lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == "Brain"])
    kind.send_keys(Keys.ENTER)
    wait(browser).until(lambda d: d.find_elements(By.NAME, "host"))

    text = browser.find_element(By.TAG_NAME, "body").text
    for label in ("Base URL", "API ID / username", "API token / password"):
        assert label in text
    placeholders = {
        name: browser.find_element(By.NAME, name).get_attribute("placeholder") for name in ("host", "login", "password")
    }
    assert placeholders == {
        "host": "https://brain.deepgram.com",
        "login": "API ID or username",
        "password": "API token or password",
    }
    assert not browser.find_elements(By.NAME, "schema") and not browser.find_elements(By.NAME, "port")
    # The provider's own extra fields, from conn-fields.
    for name in ("element_timeout", "element_verify", "element_max_retries"):
        assert browser.find_elements(By.NAME, name), name
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "connection-form.png"))
    assert_no_secrets(browser, stack)


def test_task_page_links_to_the_brain_asset_and_shows_no_secret(stack, browser, upload_audio):
    from selenium.webdriver.common.by import By

    uris = upload_audio(1)
    run_id = trigger(stack, "brain_deploy_mapped", {"s3_uris": uris})
    assert follow(stack, "brain_deploy_mapped", run_id, timeout=180).state == "success"
    (asset,) = brain_assets(stack, uris)

    task_page = f"{stack.api}/dags/brain_deploy_mapped/runs/{run_id}/tasks/transcribe/mapped/0"
    browser.get(task_page + "/details")
    links = wait(browser).until(
        lambda d: [a.get_attribute("href") for a in d.find_elements(By.TAG_NAME, "a") if a.text == "Brain asset"]
    )
    assert links == [f"{stack.brain_url}/assets/{asset['asset_id']}"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "task-page.png"))
    assert_no_secrets(browser, stack)
    for tab in ("", "/rendered_templates", "/xcom"):
        browser.get(task_page + tab)
        wait(browser).until(lambda d: "transcribe" in d.find_element(By.TAG_NAME, "body").text)
        assert_no_secrets(browser, stack)

    # The log tab shows the task's own lines (from the S3 log bucket), the submission with its source.
    browser.get(task_page)
    wait(browser, 60).until(
        lambda d: f"to Brain as asset {asset['asset_id']}" in d.find_element(By.TAG_NAME, "body").text
    )
    assert uris[0] in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(ARTIFACTS / "task-log.png"))
    assert_no_secrets(browser, stack)
