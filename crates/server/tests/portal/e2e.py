"""The developer portal in a real browser: headless Chromium driven by
Selenium (WebDriver), through the flows a third-party developer follows.
axe-core checks each page for accessibility problems. Prints one JSON line:
the server time of each page (Navigation Timing) and the screenshots taken.

    python3 e2e.py '{"url": "http://127.0.0.1:PORT", "project": "payments",
                     "admin": {"email": "…", "password": "…"},
                     "screenshots": "DIR", "axe": "path/to/axe.min.js"}'
"""

import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from standardwebhooks.webhooks import Webhook
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

config = json.loads(sys.argv[1])
URL = config["url"]
SHOTS = config["screenshots"]
AXE = open(config["axe"], encoding="utf-8").read()
os.makedirs(SHOTS, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)
# Generous: CI runs this beside the rest of the suite on two cores.
wait = WebDriverWait(driver, 20)
timings = {}
shots = []


def server_ms():
    """How long the server took to answer the page just loaded."""
    return driver.execute_script(
        "const t = performance.getEntriesByType('navigation')[0];"
        "return t.responseStart - t.requestStart;"
    )


def page(name, element=None):
    """Records the page's timing, checks it with axe-core, takes its
    picture: the whole page (up to a height), or one element of it."""
    timings[name] = round(server_ms(), 1)
    driver.execute_script(AXE)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))));"
    )
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not serious, f"{name}: accessibility violations {serious}"
    path = os.path.join(SHOTS, f"{name}.png")
    if element is not None:
        width = driver.get_window_size()["width"]
        driver.set_window_size(width, 2400)
        driver.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(path)
        driver.set_window_size(width, 900)
    else:
        width = driver.get_window_size()["width"]
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(height + 140, 2400))
        driver.save_screenshot(path)
        driver.set_window_size(width, 900)
    shots.append(os.path.basename(path))


def field(name):
    return driver.find_element(By.NAME, name)


def submit(form_action):
    driver.find_element(By.CSS_SELECTOR, f"form[action='{form_action}'] button[type=submit]").click()


def text():
    """The page's text; empty while a new page replaces it."""
    try:
        return driver.execute_script("return document.body ? document.body.innerText : ''")
    except WebDriverException:
        return ""


def sign_up(email):
    driver.get(f"{URL}/portal/signup")
    field("email").send_keys(email)
    field("password").send_keys("correct horse battery")
    submit("/portal/signup")
    wait.until(ready.url_to_be(f"{URL}/"))


def send_from_explorer(operation, expect_status):
    article = driver.find_element(By.ID, f"op-{operation}")
    article.find_element(By.CSS_SELECTOR, "form.try button[type=submit]").click()
    status = article.find_element(By.CSS_SELECTOR, "[data-status]")
    wait.until(lambda _: status.text.startswith(str(expect_status)))
    wait.until(lambda _: "contract:" in article.find_element(By.CSS_SELECTOR, "[data-verdict]").text)
    return article


try:
    # A visitor is sent to sign in; from there, to sign up.
    driver.get(URL)
    wait.until(ready.url_contains("/portal/signin"))
    page("signin")
    driver.find_element(By.LINK_TEXT, "Sign up").click()
    wait.until(ready.url_contains("/portal/signup"))
    # A password too short: said beside the field, the email kept.
    field("email").send_keys("ada@example.com")
    field("password").send_keys("short")
    submit("/portal/signup")
    assert "must be" in wait.until(ready.presence_of_element_located((By.ID, "e-password"))).text
    assert field("email").get_attribute("value") == "ada@example.com"
    page("signup-error")
    field("password").send_keys("correct horse battery")
    submit("/portal/signup")
    wait.until(ready.url_to_be(f"{URL}/"))
    assert "ada@example.com" in driver.find_element(By.CSS_SELECTOR, "[data-testid=signed-in-as]").text
    page("dashboard")

    # Create a sandbox: its page shows the key once, and this browser keeps it.
    Select(field("project")).select_by_value(config["project"])
    field("label").send_keys("checkout tests")
    field("ttl").send_keys("7d")
    submit("/portal/sandboxes")
    wait.until(ready.presence_of_element_located((By.ID, "new-key")))
    assert "TEST ONLY" in text()
    key = driver.find_element(By.ID, "new-key").text
    assert key.startswith("sk_test_"), key
    sandbox_url = driver.find_element(By.LINK_TEXT, "Open the API explorer").get_attribute("href").rsplit("/explorer", 1)[0]
    page("sandbox")

    # The explorer, key filled in: a call answers 201 and passes its contract.
    driver.find_element(By.LINK_TEXT, "Open the API explorer").click()
    wait.until(ready.url_contains("/explorer"))
    assert driver.find_element(By.ID, "x-key").get_attribute("value") == key
    article = send_from_explorer("createPayment", 201)
    assert "contract: valid" in article.find_element(By.CSS_SELECTOR, "[data-verdict]").text
    assert '"status"' in article.find_element(By.CSS_SELECTOR, "[data-response-body]").text
    article.find_element(By.CSS_SELECTOR, "[data-snippet=curl]").click()
    snippet = article.find_element(By.CSS_SELECTOR, "[data-snippet-text]")
    wait.until(lambda _: snippet.text.startswith("curl"))
    page("explorer", article)

    # A scenario pressed on the sandbox page: the same call is declined.
    driver.get(sandbox_url)
    driver.find_element(By.CSS_SELECTOR, "button[data-scenario=card_declined]").click()
    wait.until(lambda _: "Every call now answers as card_declined" in text())
    driver.find_element(By.LINK_TEXT, "Open the API explorer").click()
    wait.until(ready.url_contains("/explorer"))
    article = send_from_explorer("createPayment", 402)
    assert "declined" in article.find_element(By.CSS_SELECTOR, "[data-response-body]").text
    # The failed call explained: the log says why it answered so.
    explain = article.find_element(By.CSS_SELECTOR, "[data-explain]").get_attribute("href")
    page("explorer-declined", article)
    driver.get(explain)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=verdict]")))
    assert "card_declined" in text(), text()[:500]
    assert driver.find_element(By.CSS_SELECTOR, "[data-testid=status]").text == "402"
    page("request")

    # The log's live tail shows a call made elsewhere as it happens.
    driver.get(f"{sandbox_url}/logs")
    driver.find_element(By.CSS_SELECTOR, "[data-live-tail]").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-live-tail][data-following]")))
    base = driver.find_element(By.CSS_SELECTOR, "[data-testid=log]")
    before = len(base.find_elements(By.CSS_SELECTOR, "tbody tr"))
    urllib.request.urlopen(urllib.request.Request(
        f"{URL}/sbx/{sandbox_url.rsplit('/', 1)[1]}/v1/balance", headers={"Authorization": f"Bearer {key}"}))
    wait.until(lambda _: len(driver.find_elements(By.CSS_SELECTOR, "[data-testid=log] tbody tr")) > before)
    assert "/balance" in driver.find_element(By.CSS_SELECTOR, "[data-testid=log] tbody tr").text
    page("logs")

    # The clock advanced thirty days with one press.
    driver.get(sandbox_url)
    before = driver.find_element(By.CSS_SELECTOR, "[data-testid=clock-now]").get_attribute("datetime")
    driver.find_element(By.CSS_SELECTOR, "button[data-advance=P30D]").click()
    wait.until(lambda _: "The clock moved" in text())
    after = driver.find_element(By.CSS_SELECTOR, "[data-testid=clock-now]").get_attribute("datetime")
    assert after[:7] != before[:7] or after[8:10] != before[8:10], (before, after)
    page("clock")
    driver.get(f"{sandbox_url}/timeline")
    assert "clock: advance P30D" in text(), text()[:500]
    page("timeline")
    driver.get(sandbox_url)

    # A bad duration: said beside the field, what was typed kept.
    advance = driver.find_element(By.ID, "f-advance")
    advance.send_keys("thirty days")
    advance.submit()
    wait.until(ready.presence_of_element_located((By.ID, "e-advance")))
    assert driver.find_element(By.ID, "f-advance").get_attribute("value") == "thirty days"

    # A test webhook to the built-in receiver, its signature checked with
    # the Standard Webhooks reference library.
    driver.get(f"{sandbox_url}/webhooks")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=use-receiver]").click()
    secret = wait.until(ready.presence_of_element_located((By.ID, "new-secret"))).text
    assert secret.startswith("whsec_"), secret
    driver.find_element(By.CSS_SELECTOR, "button[data-send-event='payment.succeeded']").click()
    wait.until(lambda _: "The test event is emitted" in text())
    # The receiver holds the request before the delivery is marked
    # delivered (its answer has to come back first): wait for both.
    for _ in range(50):
        received = driver.find_elements(By.CSS_SELECTOR, "[data-testid=received]")
        deliveries = driver.find_elements(By.CSS_SELECTOR, "[data-testid=delivery]")
        if received and deliveries and "delivered" in deliveries[0].text:
            break
        time.sleep(0.2)
        driver.refresh()
    assert received, "the receiver got the delivery"
    lines = received[0].find_element(By.CSS_SELECTOR, "[data-received-headers]").text.splitlines()
    sent_headers = dict(line.split(": ", 1) for line in lines)
    body = received[0].find_element(By.CSS_SELECTOR, "[data-received-body]").text
    Webhook(secret).verify(body, sent_headers)
    assert json.loads(body)["type"] == "payment.succeeded"
    deliveries = driver.find_elements(By.CSS_SELECTOR, "[data-testid=delivery]")
    assert deliveries and "delivered" in deliveries[0].text, [d.text for d in deliveries]
    page("webhooks")

    driver.get(f"{URL}/portal/account")
    page("account")
    driver.get(f"{URL}/portal/activity")
    assert "POST /api/v1/sandboxes" in text(), text()[:300]
    page("activity")

    # On a phone's width every page still reads.
    phone = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    for path in [sandbox_url, f"{URL}/", f"{sandbox_url}/explorer", f"{URL}/portal/account"]:
        driver.get(path)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways on a phone: {width} px"
    driver.get(sandbox_url)
    driver.save_screenshot(os.path.join(SHOTS, "sandbox-phone.png"))
    shots.append("sandbox-phone.png")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # Signing out ends the session.
    driver.get(f"{URL}/")
    submit("/portal/signout")
    wait.until(ready.url_contains("/portal/signin"))
    driver.get(sandbox_url)
    wait.until(ready.url_contains("/portal/signin"))

    # Another developer cannot see the first one's sandbox.
    sign_up("bob@example.com")
    assert "checkout tests" not in text()
    driver.get(sandbox_url)
    assert "does not exist" in text(), text()[:300]

    # The developer runs code from the console: its output arrives on the
    # run's event stream as it is printed, the file it wrote is listed, and
    # ending the session (confirmed) leaves none live.
    driver.get(f"{URL}/portal/sessions")
    page("sessions")
    Select(driver.find_element(By.ID, "f-template")).select_by_value("python")
    submit("/portal/sessions")
    wait.until(lambda _: "The session is ready" in text())
    code = driver.find_element(By.ID, "f-code")
    code.send_keys(
        "import time\nfor i in range(3):\n    print(i * 21, flush=True)\n    time.sleep(0.3)\n"
        "open('answer.txt', 'w').write('42')\n"
    )
    code.submit()
    output = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-output][data-ended]")))
    assert output.get_attribute("data-ended") == "ok", output.get_attribute("outerHTML")
    assert output.text.split() == ["0", "21", "42"], output.text
    page("session")
    driver.refresh()
    files = driver.find_element(By.CSS_SELECTOR, "[data-testid=files]").text
    assert "answer.txt" in files, files
    driver.find_element(By.CSS_SELECTOR, "form[action$='/end'] button").click()
    driver.switch_to.alert.accept()
    wait.until(lambda _: "The session ended" in text())
    assert "No live session" in text(), text()[:300]

    # An admin edits the project's fixtures: a YAML mistake is shown at its
    # line, nothing published; the fix is a new revision, listed with its
    # author; the diff says what clients would notice (nothing).
    driver.get(f"{URL}/")
    submit("/portal/signout")
    wait.until(ready.url_contains("/portal/signin"))
    field("email").send_keys(config["admin"]["email"])
    field("password").send_keys(config["admin"]["password"])
    submit("/portal/signin")
    wait.until(ready.url_to_be(f"{URL}/"))
    driver.get(f"{URL}/portal/projects")
    page("projects")
    project = config["project"]
    driver.get(f"{URL}/portal/projects/{project}/files/fixtures/accounts")
    editor = driver.find_element(By.ID, "f-text")
    written = editor.get_attribute("value")
    assert written.startswith("# "), "the file opens as written, comments kept"
    editor.send_keys("\n- id: [acct_broken\n")
    editor.submit()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=bad-line]")))
    assert driver.find_element(By.ID, "f-text").get_attribute("value").endswith("[acct_broken\n")
    page("editor-error")
    editor = driver.find_element(By.ID, "f-text")
    editor.clear()
    editor.send_keys(written + "- id: acct_portal\n  status: active\n")
    editor.submit()
    wait.until(lambda _: "is live." in text())
    driver.get(f"{URL}/portal/projects/{project}")
    history = driver.find_element(By.CSS_SELECTOR, "[data-testid=revisions]").text
    assert config["admin"]["email"] in history, history
    page("project")
    driver.find_element(By.LINK_TEXT, "from revision 1").click()
    wait.until(ready.url_contains("/diff"))
    assert "the same operations" in text(), text()[:300]
    assert "fixtures/accounts changed" in text(), text()[:600]
    page("diff")
finally:
    driver.quit()

print(json.dumps({"timings_ms": timings, "screenshots": shots}))
