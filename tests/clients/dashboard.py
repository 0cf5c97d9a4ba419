"""Clicks through the Reprise web dashboard against a live host, in headless
Chromium driven by Playwright for Python (sync API).

    python dashboard.py --url http://127.0.0.1:PORT --key KEY \
        --chromium /usr/bin/chromium [--screenshots DIR] [--scenario all]

The host must run with the access key KEY and the samples E1_HelloSequence,
Approval and E3_Counter loaded. Instances are created under an ID prefix
unique to the run, so reruns against one host do not collide; the run purges
what it created (through the dashboard) at the end.

Test data may be created through the HTTP API (urllib); everything the
dashboard is for is done through the page: signing in, starting an
instance, filtering the list, going to an instance, raising an event,
terminating, seeing a refused action's message, and a bulk purge. How the
page follows a bulk job through failed polls, a new sign-in, a job the host
lost and one that stopped early is checked with faked API answers
(Playwright routes). Every wait is on an observable condition, with a
deadline.

With --screenshots DIR, saves instances-light.png, instance-dark.png and
functions-light.png (1280x800) for the README.

Prints one line per step; on failure prints the step, what went wrong, and
the page's console errors, saves failure.png in a new temporary folder (not
DIR: that is the README's screenshots folder) when DIR is given and prints
its path, and exits with code 1.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode, urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

TIMEOUT_MS = 15_000
API = "/runtime/webhooks/durabletask"
SCENARIOS = ["login", "start", "instance", "list", "approval", "refused", "terminate", "failed", "screenshots", "paging", "bulk"]


class Failed(Exception):
    pass


# ---------------------------------------------------------------- HTTP API


class Host:
    """The host's HTTP API, for test data and for checking what the page did."""

    def __init__(self, url, key):
        self.base = url.rstrip("/") + API
        self.key = key
        # Every instance the run made, to check the final purge.
        self.created = set()

    def request(self, method, path, body=None, query=None):
        url = self.base + path + ("?" + urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("x-functions-key", self.key)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, text

    def start(self, name, instance_id, payload=None):
        status, body = self.request("POST", f"/orchestrators/{quote(name, safe='')}/{quote(instance_id, safe='')}", payload)
        if status != 202:
            raise Failed(f"starting {name} as {instance_id}: HTTP {status} {body}")
        self.created.add(instance_id)
        return instance_id

    def status(self, instance_id):
        return self.request("GET", f"/instances/{quote(instance_id, safe='')}")

    def wait_for(self, instance_id, predicate, what):
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            code, body = self.status(instance_id)
            if code in (200, 202) and predicate(body):
                return body
            if time.monotonic() > deadline:
                raise Failed(f"{instance_id} did not become {what} in time; last: HTTP {code} {body}")
            time.sleep(0.1)  # polling the API for test data, not waiting on the page

    def wait_status(self, instance_id, *statuses):
        return self.wait_for(instance_id, lambda body: body["runtimeStatus"] in statuses, "/".join(statuses))


# ---------------------------------------------------------------- helpers


def sel(test, **data):
    """A selector by data-test, with optional data-* attributes."""
    extra = "".join(f'[data-{name}="{value}"]' for name, value in data.items())
    return f'[data-test="{test}"]{extra}'


def step(name):
    print(f"... {name}", flush=True)


def ok(message):
    print(f"ok  {message}", flush=True)


def count_of(locator):
    """The number a count element shows, once it shows one (a placeholder
    stands there until the counts load)."""
    expect(locator).to_have_text(re.compile(r"^\d"), timeout=TIMEOUT_MS)
    return int(re.sub(r"\D", "", locator.inner_text()))


class Run:
    def __init__(self, args, page, host, console_errors):
        self.args = args
        self.page = page
        self.host = host
        # What the page logged; steps that provoke errors on purpose take
        # theirs out.
        self.console_errors = console_errors
        self.url = args.url.rstrip("/")
        self.prefix = "dash-{:x}-".format(int(time.time() * 1000))
        self.ids = {}

    def t(self, test, **data):
        return self.page.locator(sel(test, **data))

    def goto_hash(self, hash_):
        self.page.goto(f"{self.url}/{hash_}")

    def expect_hash(self, pattern):
        expect(self.page).to_have_url(re.compile(pattern), timeout=TIMEOUT_MS)

    def instance_status_is(self, status):
        expect(self.t("instance-status")).to_have_text(status, timeout=TIMEOUT_MS)

    def rows(self):
        return self.t("instance-row")

    def dismiss_toasts(self):
        for close in self.t("toast-close").all():
            try:
                close.click(timeout=1000)
            except PlaywrightError:
                pass  # it went away by itself
        expect(self.t("toast")).to_have_count(0)

    def set_theme(self, scheme):
        self.page.emulate_media(color_scheme=scheme)

    def screenshot(self, name):
        if not self.args.screenshots:
            return
        self.dismiss_toasts()
        self.page.mouse.move(0, 0)
        path = os.path.join(self.args.screenshots, name)
        self.page.screenshot(path=path)
        ok(f"screenshot {path}")

    # ------------------------------------------------------------ scenarios

    def login(self):
        step("sign in with the key")
        self.goto_hash("#/instances")
        expect(self.t("login-form")).to_be_visible(timeout=TIMEOUT_MS)
        self.t("login-key").fill("not-the-key")
        self.t("login-submit").click()
        expect(self.t("login-error")).to_contain_text("refused", timeout=TIMEOUT_MS)
        self.t("login-key").fill(self.args.key)
        self.t("login-key").press("Enter")
        expect(self.t("status-chips")).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.t("status-chip-all")).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.t("sign-out")).to_be_visible()
        ok("the sign-in form appears on 401, refuses a wrong key and takes the right one")

        step("a key in the URL (#code= or ?code=) is taken and removed from the address bar")
        key = quote(self.args.key, safe="")
        # (address, what it shows, how the address must end once the key is out)
        cases = [
            (f"/#code={key}", "status-chips", f"{self.url}/"),
            (f"/?code={key}#/functions", "functions-table", "/#/functions"),
            (f"/#/functions?code={key}", "functions-table", "/#/functions"),
        ]
        # How long a new tab's history is after one page load.
        other = self.page.context.new_page()
        try:
            other.goto(f"{self.url}/#/functions")
            expect(other.locator(sel("login-form"))).to_be_visible(timeout=TIMEOUT_MS)
            expect(other.locator(sel("login-link-hint"))).to_contain_text("#code=")
            one_load = other.evaluate("history.length")
        finally:
            other.close()
        for path, shown, end in cases:
            # A new tab: its sessionStorage has no key but the URL's.
            other = self.page.context.new_page()
            try:
                other.goto(self.url + path)
                expect(other.locator(sel(shown))).to_be_visible(timeout=TIMEOUT_MS)
                address = other.evaluate("location.href")
                if "code=" in address or not address.endswith(end):
                    raise Failed(f"{path}: the key stayed in the address bar, or the route was lost: {address}")
                if other.evaluate("history.length") != one_load:
                    raise Failed(f"{path}: the address with the key was kept in the history")
            finally:
                other.close()
        ok("#code=KEY and ?code=KEY sign in and leave the address bar")

    def make_data(self):
        step("create test data through the API")
        p = self.prefix
        for n in (1, 2, 3):
            self.ids[f"hello{n}"] = self.host.start("E1_HelloSequence", f"{p}hello-{n}")
        self.ids["approval"] = self.host.start("Approval", f"{p}approval", {"timeoutSeconds": 3600})
        self.ids["counter"] = self.host.start("E3_Counter", f"{p}counter")
        for n in (1, 2, 3):
            self.host.wait_status(self.ids[f"hello{n}"], "Completed")
        self.host.wait_for(self.ids["approval"], lambda b: b["customStatus"] == "waiting for approval", "waiting for approval")
        self.host.wait_status(self.ids["counter"], "Running")
        ok(f"5 instances under {p}")

    def start(self):
        step("start an instance from the Functions page")
        self.t("nav-functions").click()
        expect(self.t("functions-table")).to_be_visible(timeout=TIMEOUT_MS)
        for name in ("E1_HelloSequence", "Approval", "E3_Counter", "E1_SayHello"):
            expect(self.t("function-row", name=name)).to_be_visible()
        expect(self.t("function-row", name="E1_SayHello")).to_contain_text("activity")
        expect(self.t("versions-table")).to_be_visible(timeout=TIMEOUT_MS)
        self.t("start-name").select_option("E1_HelloSequence")
        new_id = f"{self.prefix}ui-start"
        self.t("start-id").fill(new_id)
        self.t("start-input").fill("{not json")
        expect(self.t("start-error")).to_contain_text("not valid JSON")
        self.t("start-submit").click()
        expect(self.t("start-error")).to_be_visible()
        if "#/functions" not in self.page.url:
            raise Failed("an invalid input was submitted")
        self.t("start-input").fill('"ignored"')
        expect(self.t("start-error")).to_be_hidden()
        self.t("start-submit").click()
        self.expect_hash(r"#/instance/" + re.escape(quote(new_id, safe="")) + "$")
        self.instance_status_is("Completed")
        self.ids["ui"] = new_id
        self.host.created.add(new_id)
        ok("started E1_HelloSequence from the form; it completed")

    def instance(self):
        step("an instance's timeline and raw history")
        self.goto_hash("#/instance/" + quote(self.ids["hello1"], safe=""))
        self.instance_status_is("Completed")
        expect(self.t("instance-name")).to_have_text("E1_HelloSequence")
        expect(self.t("instance-output")).to_contain_text("Hello Tokyo!")
        activities = self.t("timeline-row", kind="activity")
        expect(activities).to_have_count(3, timeout=TIMEOUT_MS)
        for index in range(3):
            expect(activities.nth(index)).to_contain_text("E1_SayHello")
            expect(activities.nth(index).locator(sel("timeline-bar"))).to_have_attribute("data-state", "done")
        expect(self.t("timeline-row", kind="orchestration")).to_have_count(1)
        expect(self.t("history-json")).to_be_hidden()
        self.t("history-toggle").click()
        expect(self.t("history-json")).to_be_visible()
        expect(self.t("history-json")).to_contain_text('"EventType": "TaskCompleted"')
        expect(self.t("history-json")).to_contain_text("Hello Seattle!")
        ok("3 E1_SayHello bars, done; the raw history opens")

    def filters(self):
        p = self.prefix
        step("the list: counts per status, filter by prefix, status and name")
        self.t("nav-instances").click()
        expect(self.t("status-chip", status="Completed")).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.t("status-chip", status="Running")).to_be_visible()
        completed = count_of(self.t("status-chip", status="Completed").locator(sel("status-count")))
        if completed < 4:
            raise Failed(f"the Completed chip counts {completed}, expected at least 4")

        self.t("filter-prefix").fill(p)
        self.t("filter-prefix").press("Enter")
        self.expect_hash(r"prefix=" + re.escape(quote(p, safe="")))
        expect(self.rows()).to_have_count(6, timeout=TIMEOUT_MS)
        expect(self.t("matching-count")).to_have_text("6 matching", timeout=TIMEOUT_MS)

        self.t("status-chip", status="Running").click()
        self.expect_hash(r"status=Running")
        expect(self.rows()).to_have_count(2, timeout=TIMEOUT_MS)
        for row in self.rows().all():
            expect(row.locator(sel("status-badge"))).to_have_text("Running")

        self.t("filter-name").select_option("Approval")
        self.expect_hash(r"name=Approval")
        expect(self.rows()).to_have_count(1, timeout=TIMEOUT_MS)
        expect(self.t("instance-row", id=self.ids["approval"])).to_be_visible()
        expect(self.t("matching-count")).to_have_text("1 matching", timeout=TIMEOUT_MS)
        ok("prefix → 6, Running → 2, Approval → 1, with matching counts")

        step("filters survive reload and back")
        self.page.reload()
        expect(self.rows()).to_have_count(1, timeout=TIMEOUT_MS)
        expect(self.t("filter-prefix")).to_have_value(p)
        expect(self.t("filter-name")).to_have_value("Approval")
        self.page.go_back()
        self.expect_hash(r"status=Running(?!.*name=)")
        expect(self.rows()).to_have_count(2, timeout=TIMEOUT_MS)
        ok("reload keeps the filter; back restores the previous one")

        step("created-time filter and clear filters")
        self.t("filter-from").fill("2000-01-01T00:00")
        self.expect_hash(r"from=\d{4}-\d\d-\d\dT")
        expect(self.rows()).to_have_count(2, timeout=TIMEOUT_MS)
        self.t("filter-to").fill("2000-01-02T00:00")
        expect(self.t("instances-empty")).to_be_visible(timeout=TIMEOUT_MS)
        self.t("filter-clear").click()
        self.expect_hash(r"#/instances$")
        expect(self.t("filter-prefix")).to_have_value("")
        expect(self.t("filter-from")).to_have_value("")
        expect(self.t("status-chip-all")).to_have_attribute("aria-pressed", "true")
        expect(self.rows().first).to_be_visible(timeout=TIMEOUT_MS)
        ok("a time range with nothing in it shows the empty state; Clear filters clears all")

    def paging(self):
        step("paging through more instances than a page holds")
        ids = [self.host.start("E1_HelloSequence", f"{self.prefix}page-{n:02}") for n in range(55)]
        for instance_id in ids:
            self.host.wait_status(instance_id, "Completed")
        self.goto_hash("#/instances?prefix=" + quote(f"{self.prefix}page-", safe=""))
        expect(self.rows()).to_have_count(50, timeout=TIMEOUT_MS)
        # Newest first.
        expect(self.rows().first).to_have_attribute("data-id", ids[-1])
        expect(self.t("page-prev")).to_be_disabled()
        self.t("page-next").click()
        expect(self.rows()).to_have_count(5, timeout=TIMEOUT_MS)
        expect(self.t("page-next")).to_be_disabled()
        expect(self.t("page-number")).to_have_text("Page 2")
        self.t("page-prev").click()
        expect(self.rows()).to_have_count(50, timeout=TIMEOUT_MS)
        ok("55 instances: 50 on page 1, 5 on page 2, newest first")

    def approval(self):
        step("go to an instance by ID with /")
        self.t("nav-instances").click()
        expect(self.t("status-chips")).to_be_visible()
        self.page.keyboard.press("/")
        expect(self.t("goto-input")).to_be_focused()
        self.page.keyboard.type(self.ids["approval"])
        self.page.keyboard.press("Enter")
        self.expect_hash(r"#/instance/" + re.escape(quote(self.ids["approval"], safe="")) + "$")
        self.instance_status_is("Running")
        expect(self.t("instance-custom-status")).to_have_text("waiting for approval")
        ok("/ focuses the box; Enter opens the instance")

    def refused(self):
        step("a refused action shows the host's message")
        # The message the host gives, asked directly (a refused rewind changes nothing).
        code, body = self.host.request("POST", f"/instances/{quote(self.ids['approval'], safe='')}/rewind")
        if code < 400 or not isinstance(body, dict) or not body.get("message"):
            raise Failed(f"expected the host to refuse rewinding a running instance, got HTTP {code} {body}")
        self.t("action-rewind").click()
        expect(self.t("dialog")).to_be_visible()
        self.t("dialog-confirm").click()
        expect(self.t("dialog-error")).to_have_text(body["message"], timeout=TIMEOUT_MS)
        self.page.keyboard.press("Escape")
        expect(self.t("dialog")).to_be_hidden()
        self.instance_status_is("Running")
        ok(f"rewind of a Running instance: “{body['message']}” (HTTP {code})")

    def raise_event(self):
        step("raise approval=true from the page")
        self.t("action-raise").click()
        expect(self.t("dialog")).to_be_visible()
        self.t("event-name").fill("approval")
        self.t("event-data").fill("tru")
        expect(self.t("dialog-error")).to_contain_text("not valid JSON")
        self.t("dialog-confirm").click()
        expect(self.t("dialog-error")).to_contain_text("not valid JSON")
        expect(self.t("dialog")).to_be_visible()
        self.t("event-data").fill("true")
        expect(self.t("dialog-error")).to_be_hidden()
        self.t("dialog-confirm").click()
        expect(self.t("dialog")).to_be_hidden(timeout=TIMEOUT_MS)
        self.instance_status_is("Completed")
        expect(self.t("instance-output")).to_have_text('"approved"', timeout=TIMEOUT_MS)
        expect(self.t("timeline-row", kind="event")).to_have_count(1)
        ok("the event was validated as JSON, sent, and the instance completed with \"approved\"")

    def terminate(self):
        step("terminate E3_Counter from the page, with confirmation")
        self.goto_hash("#/instance/" + quote(self.ids["counter"], safe=""))
        self.instance_status_is("Running")
        self.t("action-terminate").click()
        expect(self.t("dialog")).to_be_visible()
        self.page.keyboard.press("Escape")
        expect(self.t("dialog")).to_be_hidden()
        self.t("action-terminate").click()
        self.t("dialog-reason").fill("stopped from the dashboard test")
        self.t("dialog-confirm").click()
        expect(self.t("dialog")).to_be_hidden(timeout=TIMEOUT_MS)
        self.instance_status_is("Terminated")
        expect(self.t("instance-output")).to_contain_text("stopped from the dashboard test")
        ok("Esc cancels; confirming terminates it, with the reason as output")

    def theme(self):
        step("theme toggle")
        html = self.page.locator("html")
        self.t("theme-toggle").click()
        expect(html).to_have_attribute("data-theme", "light")
        self.t("theme-toggle").click()
        expect(html).to_have_attribute("data-theme", "dark")
        self.t("theme-toggle").click()
        expect(html).not_to_have_attribute("data-theme", re.compile(".*"))
        ok("auto → light → dark → auto")

    def failed(self):
        step("a failed instance shows its failure; more live instances")
        # Approval fails on an input it cannot read.
        self.ids["bad"] = self.host.start("Approval", f"{self.prefix}approval-bad", {"timeoutSeconds": "soon"})
        self.ids["approval2"] = self.host.start("Approval", f"{self.prefix}approval-2", {"timeoutSeconds": 3600})
        self.ids["counter2"] = self.host.start("E3_Counter", f"{self.prefix}counter-2")
        failure = self.host.wait_status(self.ids["bad"], "Failed")["output"]
        self.host.wait_status(self.ids["approval2"], "Running")
        self.host.wait_status(self.ids["counter2"], "Running")
        self.goto_hash("#/instance/" + quote(self.ids["bad"], safe=""))
        self.instance_status_is("Failed")
        output = self.t("instance-output")
        expect(output).to_have_class(re.compile(r"\bfailure\b"))
        expect(output).to_contain_text(failure if isinstance(failure, str) else json.dumps(failure)[:40])
        expect(self.t("timeline-row", kind="orchestration")).to_have_attribute("data-state", "failed")
        ok("failure details shown; 2 more live instances")

    def screenshots(self):
        if not self.args.screenshots:
            return
        step("screenshots")
        os.makedirs(self.args.screenshots, exist_ok=True)
        self.set_theme("light")
        self.goto_hash("#/instances")
        expect(self.rows().first).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.t("status-chip", status="Completed")).to_be_visible(timeout=TIMEOUT_MS)
        count_of(self.t("status-chip", status="Completed").locator(sel("status-count")))
        expect(self.t("matching-count")).to_have_text(re.compile(r"^\d"), timeout=TIMEOUT_MS)
        self.screenshot("instances-light.png")
        self.set_theme("dark")
        self.goto_hash("#/instance/" + quote(self.ids["approval"], safe=""))
        self.instance_status_is("Completed")
        expect(self.t("timeline-row", kind="event")).to_have_count(1, timeout=TIMEOUT_MS)
        self.screenshot("instance-dark.png")
        self.set_theme("light")
        self.goto_hash("#/functions")
        expect(self.t("functions-table")).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.t("versions-table")).to_be_visible(timeout=TIMEOUT_MS)
        self.screenshot("functions-light.png")

    def sign_out(self):
        step("sign out")
        self.t("sign-out").click()
        expect(self.t("login-form")).to_be_visible()
        self.page.reload()
        expect(self.t("login-form")).to_be_visible(timeout=TIMEOUT_MS)
        ok("signing out forgets the key")

    def confirm_bulk(self, action, expected):
        """Opens a bulk action's dialog on the current filter, checks its
        count and confirms it."""
        self.t(f"bulk-{action}").click()
        expect(self.t("dialog")).to_be_visible()
        expect(self.t("bulk-count")).to_have_text(str(expected), timeout=TIMEOUT_MS)
        expect(self.t("dialog-confirm")).to_be_enabled()
        self.t("dialog-confirm").click()
        expect(self.t("dialog")).to_be_hidden(timeout=TIMEOUT_MS)

    def bulk_action(self, action, expected):
        """Runs a bulk action on the current filter; returns its panel."""
        self.confirm_bulk(action, expected)
        panel = self.page.locator(sel("bulk-status", action=action))
        expect(panel).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
        expect(panel.locator(sel("bulk-succeeded"))).to_have_text(str(expected))
        expect(panel.locator(sel("bulk-failed"))).to_have_text("0")
        return panel

    def bulk(self):
        live = [self.ids[k] for k in ("approval2", "counter2") if k in self.ids]
        step("bulk terminate of the run's live instances")
        self.goto_hash("#/instances")
        self.t("filter-prefix").fill(self.prefix)
        self.t("filter-prefix").press("Enter")
        self.expect_hash(r"prefix=")
        expect(self.t("matching-count")).to_have_text(f"{len(self.host.created)} matching", timeout=TIMEOUT_MS)
        if live:
            self.bulk_action("terminate", len(live))
            for instance_id in live:
                self.host.wait_status(instance_id, "Terminated")
            self.t("bulk-dismiss").click()
            expect(self.t("bulk-status")).to_be_hidden()
            ok(f"terminated {len(live)}; the finished ones were skipped")

        step("bulk purge of the run's finished instances")
        for status in ("Completed", "Failed", "Terminated"):
            self.t("status-chip", status=status).click()
            self.expect_hash(r"status=[A-Za-z,]*" + status)
        expected = len(self.host.created)
        expect(self.t("matching-count")).to_have_text(f"{expected} matching", timeout=TIMEOUT_MS)
        self.bulk_faults(expected)
        self.bulk_action("purge", expected)
        expect(self.t("instances-empty")).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.t("matching-count")).to_have_text("0 matching", timeout=TIMEOUT_MS)
        for instance_id in sorted(self.host.created):
            code, body = self.host.status(instance_id)
            if code != 404:
                raise Failed(f"{instance_id} should be purged; got HTTP {code} {body}")
        ok(f"purged {expected} after confirming the count; the list is empty for the filter")


    def bulk_faults(self, expected):
        """How the page follows a bulk job when polling it goes wrong, with
        the host's answers to POST bulk and GET bulk/{id} faked: nothing is
        purged here."""
        step("bulk job polling: failed polls, a new sign-in, an early stop, a lost job (faked answers)")
        bulk_path = API + "/bulk"
        fake = {"start": None, "polls": []}

        def job(job_id, state, processed, **extra):
            return {"id": job_id, "action": "purge", "state": state, "processed": processed,
                    "succeeded": processed, "skipped": 0, "failed": 0, "errors": [], **extra}

        def matches(url):
            path = urlsplit(url).path
            return path == bulk_path or path.startswith(bulk_path + "/")

        def answer(route):
            if route.request.method == "POST":
                status, body = 202, fake["start"]
            else:
                # The last answer repeats.
                status, body = fake["polls"].pop(0) if len(fake["polls"]) > 1 else fake["polls"][0]
            route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

        mark = len(self.console_errors)
        self.page.route(matches, answer)
        panel = self.page.locator(sel("bulk-status", action="purge"))
        try:
            # Two failed polls (retried), a 401 (sign in again), then the
            # job goes on and stops early because the store failed.
            stopped = "listing the selection failed: database is locked"
            fake["start"] = job("fake-stopped", "running", 0)
            fake["polls"] = [
                (503, {"message": "the store is busy"}),
                (503, {"message": "the store is busy"}),
                (401, {"message": "an access key is required"}),
                (200, job("fake-stopped", "running", 1)),
                (200, job("fake-stopped", "done", 2, stopped=stopped)),
            ]
            self.confirm_bulk("purge", expected)
            expect(panel).to_have_attribute("data-state", "running")
            expect(panel.locator(sel("bulk-dismiss"))).to_be_visible()
            expect(panel.locator(sel("bulk-retrying"))).to_contain_text("the store is busy", timeout=TIMEOUT_MS)
            expect(self.t("login-form")).to_be_visible(timeout=TIMEOUT_MS)
            self.t("login-key").fill(self.args.key)
            self.t("login-key").press("Enter")
            expect(panel).to_have_attribute("data-state", "done", timeout=TIMEOUT_MS)
            expect(panel).to_have_attribute("data-outcome", "error")
            expect(panel.locator(sel("bulk-state"))).to_have_text("stopped early")
            expect(panel.locator(sel("bulk-stopped"))).to_contain_text(stopped)
            expect(panel.locator(sel("bulk-processed"))).to_have_text("2")
            expect(panel.locator(sel("bulk-retrying"))).to_have_count(0)
            expect(self.t("toast").filter(has_text=stopped)).to_have_attribute("data-kind", "error")
            panel.locator(sel("bulk-dismiss")).click()
            expect(self.t("bulk-status")).to_be_hidden()
            ok("failed polls are retried, polling resumes after signing in, an early stop is shown as an error")

            # Dismissing a running job stops following it; then a job the
            # host does not know (it restarted) ends as lost.
            fake["start"] = job("fake-running", "running", 0)
            fake["polls"] = [(200, job("fake-running", "running", 0))]
            self.confirm_bulk("purge", expected)
            expect(panel).to_have_attribute("data-state", "running")
            panel.locator(sel("bulk-dismiss")).click()
            expect(self.t("bulk-status")).to_be_hidden()
            lost = "no bulk job fake-lost on this host"
            fake["start"] = job("fake-lost", "running", 0)
            fake["polls"] = [(404, {"message": lost})]
            self.confirm_bulk("purge", expected)
            expect(panel).to_have_attribute("data-state", "lost", timeout=TIMEOUT_MS)
            expect(panel).to_have_attribute("data-outcome", "error")
            expect(panel.locator(sel("bulk-lost"))).to_contain_text(lost)
            expect(self.t("toast").filter(has_text="no longer knows")).to_have_attribute("data-kind", "error")
            panel.locator(sel("bulk-dismiss")).click()
            expect(self.t("bulk-status")).to_be_hidden()
            ok("a running job can be dismissed; a job the host lost ends as lost, with its message")
        finally:
            self.page.unroute(matches, answer)
        # The faked 503s were logged by the page, as they should be.
        self.console_errors[mark:] = [e for e in self.console_errors[mark:] if "status of 503" not in e]
        for instance_id in sorted(self.host.created):
            code, body = self.host.status(instance_id)
            if code not in (200, 202):
                raise Failed(f"{instance_id} should still be there after the faked jobs; got HTTP {code} {body}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the host's root, http://127.0.0.1:PORT")
    parser.add_argument("--key", required=True, help="the host's access key")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    parser.add_argument("--screenshots", help="save screenshots for the README into this folder")
    parser.add_argument("--scenario", default="all", choices=["all"] + SCENARIOS,
                        help="run everything (default), or the steps up to and including one")
    return parser.parse_args()


def main():
    args = parse_args()
    host = Host(args.url, args.key)
    wanted = SCENARIOS if args.scenario == "all" else SCENARIOS[: SCENARIOS.index(args.scenario) + 1]
    console_errors = []
    with sync_playwright() as p:
        # No sandbox: CI containers run as root, where Chromium's sandbox
        # cannot start; /dev/shm is small there.
        browser = p.chromium.launch(executable_path=args.chromium, headless=True, chromium_sandbox=False,
                                    args=["--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.on("pageerror", lambda error: console_errors.append(f"page error: {error}"))
        page.on("console", lambda message: message.type == "error" and console_errors.append(f"console: {message.text}"))
        run = Run(args, page, host, console_errors)
        steps = {
            "login": run.login,
            "start": lambda: (run.make_data(), run.start()),
            "instance": run.instance,
            "list": run.filters,
            "paging": run.paging,
            "approval": run.approval,
            "refused": run.refused,
            "terminate": lambda: (run.raise_event(), run.terminate(), run.theme()),
            "failed": run.failed,
            "screenshots": run.screenshots,
            "bulk": lambda: (run.bulk(), run.sign_out()),
        }
        current = None
        try:
            for name in wanted:
                current = name
                steps[name]()
            # Errors the page logged that no step noticed (401s are expected
            # before signing in, and a refused action logs its HTTP status).
            unexpected = [e for e in console_errors if not re.search(r"status of (401|404|409|410|412)", e)]
            if unexpected:
                raise Failed("the page logged errors:\n  " + "\n  ".join(unexpected))
        except (Failed, AssertionError, PlaywrightError) as error:
            print(f"\nFAILED in scenario '{current}': {error}", file=sys.stderr)
            if not isinstance(error, Failed):
                traceback.print_exc()
            print(f"page: {page.url}", file=sys.stderr)
            for line in console_errors[-20:]:
                print(f"  {line}", file=sys.stderr)
            if args.screenshots:
                path = os.path.join(tempfile.mkdtemp(prefix="reprise-dashboard-"), "failure.png")
                try:
                    page.screenshot(path=path)
                    print(f"screenshot of the failure: {path}", file=sys.stderr)
                except PlaywrightError as shot_error:
                    print(f"no screenshot of the failure: {shot_error}", file=sys.stderr)
            browser.close()
            sys.exit(1)
        browser.close()
    print(f"\nall {len(wanted)} scenarios passed", flush=True)


if __name__ == "__main__":
    main()
