"""Drives a live Reprise host with the official Durable Functions Python
client (PyPI azure-functions-durable, pinned in requirements.txt),
constructed as an Azure Functions app constructs it: from the durableClient
binding data, which the host serves at GET {base}/durableClient.

    python python_client.py http://127.0.0.1:PORT/runtime/webhooks/durabletask

The Python client calls the host on rpcBaseUrl only. The URLs it hands out
(create_check_status_response, create_http_management_payload) are followed
with plain HTTP. With an access key, set REPRISE_KEY: it is used to fetch the
binding only.

Every client method is called and its result checked; one line per check.
The first failure prints the check, what was expected and what came back,
and exits with code 1.

Needs the samples E1_HelloSequence, E3_Counter and FetchStatus (with no
allowed HTTP hosts, so that FetchStatus fails) on the host.
"""

import asyncio
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlsplit

import azure.functions as func
from azure.durable_functions import DurableOrchestrationClient, EntityId, OrchestrationRuntimeStatus

GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
# How long any awaited state may take to show.
DEADLINE_SECONDS = 30
FINISHED = [
    OrchestrationRuntimeStatus.Completed,
    OrchestrationRuntimeStatus.Failed,
    OrchestrationRuntimeStatus.Terminated,
]

if len(sys.argv) != 2 or not sys.argv[1].startswith("http"):
    print("usage: python python_client.py BASE_URL   (BASE_URL: http://HOST:PORT/runtime/webhooks/durabletask)",
          file=sys.stderr)
    sys.exit(2)
BASE = sys.argv[1].rstrip("/")
ORIGIN = "{0.scheme}://{0.netloc}".format(urlsplit(BASE))
KEY = os.environ.get("REPRISE_KEY", "")
# Unique per run, so that reruns against one host do not collide.
PREFIX = "py-rpc-{:x}-".format(int(time.time() * 1000))


class CheckFailed(Exception):
    pass


def show(value, limit=1500):
    if hasattr(value, "to_json") and hasattr(value, "runtime_status"):
        value = dict(vars(value))
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def fail(what, expected, got):
    raise CheckFailed("{}: expected {}; got {}".format(what, expected, got))


def expect(condition, what, expected, got):
    if not condition:
        fail(what, expected, got)


def expect_equal(got, expected, what):
    if got != expected:
        fail(what, show(expected), show(got))


async def expect_raises(awaitable, what):
    """Awaits `awaitable`, which must raise; returns the exception."""
    try:
        value = await awaitable
    except Exception as error:  # noqa: BLE001 - the client raises plain Exception
        return error
    fail(what, "an exception", "it returned " + show(value))


# The last plain HTTP exchanges, for failure reports.
exchanges = []


class Reply:
    def __init__(self, method, url, status, headers, body):
        self.method, self.url, self.status, self.headers, self.body = method, url, status, headers, body


def http(method, url, body=None, headers=None):
    """A plain HTTP request; the body parsed as JSON when it is."""
    data = None if body is None else body.encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, response_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, error.headers, error.read()
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    reply = Reply(method, url, status, response_headers, parsed)
    exchanges.append(reply)
    del exchanges[:-6]
    return reply


def fill(url, **values):
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


def send_event(instance_id, operation):
    """Raises an "operation" event with plain HTTP, on the instance's sendEventPostUri."""
    url = fill(client.create_http_management_payload(instance_id)["sendEventPostUri"], eventName="operation")
    reply = http("POST", url, json.dumps(operation))
    expect_equal(reply.status, 202, "POST sendEventPostUri " + operation)


def expect_error_body(reply, what):
    body = reply.body if isinstance(reply.body, dict) else {}
    for field in ("message", "Message", "ExceptionMessage"):
        expect(isinstance(body.get(field), str) and body[field], what,
               'an error body with "{}"'.format(field), show(reply.body))


checks = 0


async def check(name, body):
    """Runs one named check; the first failure ends the script."""
    global checks
    try:
        await body()
    except CheckFailed as error:
        report_failure(name, str(error))
    except Exception:  # noqa: BLE001 - any surprise is a failure of the check
        report_failure(name, "unexpected exception:\n" + traceback.format_exc())
    checks += 1
    print("ok [py rpc] " + name, flush=True)


def report_failure(name, message):
    print("FAIL [py rpc] " + name)
    print("  " + message.replace("\n", "\n  "))
    if exchanges:
        print("  last plain HTTP exchanges, oldest first:")
        for reply in exchanges:
            print("    {} {} -> {} {}".format(reply.method, reply.url, reply.status, show(reply.body, 300)))
    sys.stdout.flush()
    os._exit(1)


client = None
binding = None


def runtime_status(status):
    return status.runtime_status.value if status and status.runtime_status else None


async def wait_for(instance_id, what, done, **options):
    """Polls the client's get_status until `done` holds."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status = await client.get_status(instance_id, **options)
        if status and done(status):
            return status
        if time.monotonic() > deadline:
            fail("instance " + instance_id, what,
                 "after {} s: {}".format(DEADLINE_SECONDS, show(status)))
        await asyncio.sleep(0.05)


def wait_for_status(instance_id, wanted):
    return wait_for(instance_id, "runtimeStatus " + wanted, lambda status: runtime_status(status) == wanted)


def request_for(url):
    return func.HttpRequest(method="GET", url=url, body=b"")


def event_types(status):
    return [event.get("EventType") for event in getattr(status, "historyEvents", None) or []]


async def main():
    global client, binding

    async def fetch_binding():
        global binding
        reply = http("GET", BASE + "/durableClient", headers={"x-functions-key": KEY} if KEY else {})
        expect_equal(reply.status, 200, "GET durableClient status")
        binding = reply.body
        hub = binding.get("taskHubName")
        expect(isinstance(hub, str) and hub, "taskHubName", "a name", show(hub))
        required = binding.get("requiredQueryStringParameters", "")
        expect("taskHub=" + hub in required.split("&"), "requiredQueryStringParameters",
               "taskHub=" + hub, show(required))
        # With a key, the key is the URL's password: the client adds no query
        # string to rpcBaseUrl, and sends a URL's password as basic authentication.
        rpc_base = (BASE + "/").replace("://", "://reprise:" + quote(KEY, safe="") + "@") if KEY else BASE + "/"
        expect_equal(binding.get("rpcBaseUrl"), rpc_base, "rpcBaseUrl")
        expect_equal(binding["managementUrls"].get("id"), "INSTANCEID", "managementUrls.id")
        for name, url in list(binding["creationUrls"].items()) + list(binding["managementUrls"].items()):
            if name == "id":
                continue
            expect(url.startswith(BASE + "/"), name, "a URL under " + BASE, url)
            for pair in required.split("&"):
                expect(pair in url, name, "a URL carrying " + pair, url)
    await check("GET durableClient serves the binding data", fetch_binding)

    async def construct():
        global client
        client = DurableOrchestrationClient(json.dumps(binding))
        payload = client.create_http_management_payload("probe")
        expect_equal(payload["statusQueryGetUri"],
                     binding["managementUrls"]["statusQueryGetUri"].replace("INSTANCEID", "probe"),
                     "the client's statusQueryGetUri")
    await check("DurableOrchestrationClient builds on the binding", construct)

    t0 = datetime.now(timezone.utc)
    ids = {}

    async def start_new_plain():
        instance_id = await client.start_new("E1_HelloSequence")
        expect(isinstance(instance_id, str) and instance_id, "start_new", "a new instance ID", show(instance_id))
        status = await wait_for_status(instance_id, "Completed")
        expect_equal(status.output, GREETINGS, "the output of E1_HelloSequence")
        expect_equal(status.name, "E1_HelloSequence", "name")
        expect_equal(status.instance_id, instance_id, "instance_id")
        expect(status.last_updated_time >= status.created_time, "last_updated_time",
               "not before created_time " + str(status.created_time), str(status.last_updated_time))
        ids["hello"] = instance_id
    await check("start_new without an instance ID; it completes with the greetings", start_new_plain)

    async def start_new_counter():
        counter = PREFIX + "counter"
        # The client encodes the input twice: the host receives the JSON string "0".
        instance_id = await client.start_new("E3_Counter", counter, 0)
        expect_equal(instance_id, counter, "the ID start_new returns")
        status = await wait_for_status(counter, "Running")
        expect(status.input_ in (0, "0"), "the counter's input", '0 (or the string "0" the client sent)',
               show(status.input_))
        # The events go as plain HTTP here; raise_event has its own check below.
        for operation in ("incr", "incr", "end"):
            send_event(counter, operation)
        status = await wait_for_status(counter, "Completed")
        expect_equal(status.output, 2, "the count (from 0, after incr, incr, end)")
        ids["counter"] = counter
    await check('start_new("E3_Counter", id, 0) counts from 0: incr, incr, end completes with 2', start_new_counter)

    async def start_new_unknown():
        error = await expect_raises(client.start_new("NoSuchOrchestrator"), "start_new of an unknown orchestrator")
        expect("NoSuchOrchestrator" in str(error), "the exception",
               "the host's ExceptionMessage naming NoSuchOrchestrator", repr(error))
    await check("start_new of an unknown orchestrator raises the host's message", start_new_unknown)

    async def start_new_conflict():
        instance_id = PREFIX + "busy"
        await client.start_new("E3_Counter", instance_id)
        await wait_for_status(instance_id, "Running")
        error = await expect_raises(client.start_new("E3_Counter", instance_id), "a second start of a running ID")
        expect("already exists" in str(error), "the exception", "the host's 409 message", repr(error))
        ids["busy"] = instance_id
    await check("start_new under the ID of a running instance raises (409)", start_new_conflict)

    async def get_status_history():
        status = await client.get_status(ids["hello"], show_history=True, show_history_output=True)
        types = event_types(status)
        # As in Durable Functions, a finished activity is one entry: its TaskCompleted.
        for wanted in ("ExecutionStarted", "TaskCompleted", "ExecutionCompleted"):
            expect(wanted in types, "historyEvents", "an {} event".format(wanted), show(types))
        results = [event.get("Result") for event in status.historyEvents if event["EventType"] == "TaskCompleted"]
        expect_equal(results, GREETINGS, "the Result of the TaskCompleted events")
        status = await client.get_status(ids["hello"], show_history=True)
        with_result = [event for event in status.historyEvents if "Result" in event]
        expect_equal(with_result, [], "events with a Result without show_history_output")
        status = await client.get_status(ids["busy"], show_input=True)
        expect_equal(status.input_, None, "the input (null: started without one)")
        expect_equal(runtime_status(status), "Running", "runtimeStatus")
        plain = http("GET", client.create_http_management_payload(ids["busy"])["statusQueryGetUri"] + "&showInput=false")
        expect(isinstance(plain.body, dict) and "input" in plain.body and plain.body["input"] is None,
               "GET status with showInput=false", '"input": null', show(plain.body))
    await check("get_status with show_history, show_history_output, show_input", get_status_history)

    async def get_status_unknown():
        status = await client.get_status(PREFIX + "nobody")
        expect(not status, "get_status of an unknown instance", "an empty status (404)", show(status))
        expect(PREFIX + "nobody" in str(getattr(status, "message", "")), "its message",
               "the host's message naming the ID", show(status))
    await check("get_status of an unknown instance is empty (404)", get_status_unknown)

    async def raise_event_errors():
        error = await expect_raises(client.raise_event(ids["counter"], "operation", "incr"),
                                    "raise_event to a completed instance")
        expect("gone" in str(error), "the exception", "... is gone (410)", repr(error))
        error = await expect_raises(client.raise_event(PREFIX + "nobody", "operation", "incr"),
                                    "raise_event to an unknown instance")
        expect("No instance" in str(error), "the exception", "No instance with ID ... (404)", repr(error))
        error = await expect_raises(client.raise_event(ids["busy"], "operation", "end", task_hub_name="otherhub"),
                                    "raise_event with task_hub_name otherhub")
        expect("400" in str(error) or "application/json" in str(error), "the exception", "a 400", repr(error))
    await check("raise_event to a finished (410), unknown (404) instance or another task hub (400) raises",
                raise_event_errors)

    async def terminate():
        instance_id = PREFIX + "terminated"
        await client.start_new("E3_Counter", instance_id, 0)
        await wait_for_status(instance_id, "Running")
        reason = "stopped by the python client"
        await client.terminate(instance_id, reason)
        status = await wait_for_status(instance_id, "Terminated")
        expect_equal(status.output, reason, "the output of a terminated instance")
        await client.terminate(instance_id, "again")  # 410: the client returns
        error = await expect_raises(client.terminate(PREFIX + "nobody", "x"), "terminate of an unknown instance")
        expect("No instance" in str(error), "the exception", "No instance with ID ... (404)", repr(error))
        ids["terminated"] = instance_id
    await check("terminate: Terminated, with the reason as output", terminate)

    async def suspend_resume():
        instance_id = PREFIX + "suspended"
        await client.start_new("E3_Counter", instance_id, 0)
        await wait_for_status(instance_id, "Running")
        await client.suspend(instance_id, "paused by the python client")
        await wait_for_status(instance_id, "Suspended")
        send_event(instance_id, "incr")
        await client.resume(instance_id, "resumed by the python client")
        await wait_for(instance_id, "Running with the count 1",
                       lambda status: runtime_status(status) == "Running" and status.input_ == 1)
        send_event(instance_id, "end")
        status = await wait_for_status(instance_id, "Completed")
        expect_equal(status.output, 1, "the count")
        for method in (client.suspend, client.resume):
            error = await expect_raises(method(PREFIX + "nobody", "x"), method.__name__ + " of an unknown instance")
            expect("No instance" in str(error), "the exception", "No instance with ID ... (404)", repr(error))
    await check("suspend then resume: Suspended, then Running; an event sent meanwhile is kept", suspend_resume)

    async def rewind():
        instance_id = PREFIX + "rewound"
        # No host is allowed: the activity's request is denied and the instance fails.
        await client.start_new("FetchStatus", instance_id, "http://127.0.0.1:9/denied")
        await wait_for_status(instance_id, "Failed")
        await client.rewind(instance_id, "try again")

        def failed_again(status):
            types = event_types(status)
            return (runtime_status(status) == "Failed" and "ExecutionRewound" in types
                    and "TaskFailed" in types[types.index("ExecutionRewound"):])
        await wait_for(instance_id, "Failed again after an ExecutionRewound", failed_again, show_history=True)
        error = await expect_raises(client.rewind(ids["busy"], "not failed"), "rewind of a running instance")
        expect("412" in str(error), "the exception", "the host's 412", repr(error))
        error = await expect_raises(client.rewind(PREFIX + "nobody", "x"), "rewind of an unknown instance")
        expect("No instance" in str(error), "the exception", "No instance with ID ... (404)", repr(error))
        ids["rewound"] = instance_id
    await check("rewind: a failed instance runs again (and fails again); a running one raises (412)", rewind)

    async def restart():
        result = await client.restart(ids["hello"])
        # The host answers with the check-status payload of the new instance.
        new_id = result["id"] if isinstance(result, dict) else result
        expect(isinstance(new_id, str) and new_id != ids["hello"], "restart", "a new instance ID", show(result))
        status = await wait_for_status(new_id, "Completed")
        expect_equal(status.output, GREETINGS, "the output of the restarted instance")
        def generation():
            # Times have one-second resolution; the generation (a Reprise
            # extension) tells a rerun under the same ID apart.
            url = BASE + "/instances/" + quote(ids["hello"], safe="") + "?showReplayHistory=true"
            return http("GET", url, headers={"x-functions-key": KEY} if KEY else {}).body["generation"]
        before = generation()
        result = await client.restart(ids["hello"], restart_with_new_instance_id=False)
        same_id = result["id"] if isinstance(result, dict) else result
        expect_equal(same_id, ids["hello"], "restart with restart_with_new_instance_id=False: the ID")
        status = await wait_for(ids["hello"], "Completed again (a later generation after the restart)",
                                lambda status: runtime_status(status) == "Completed" and generation() > before)
        expect_equal(status.output, GREETINGS, "the output of the instance restarted under its ID")
        error = await expect_raises(client.restart(PREFIX + "nobody"), "restart of an unknown instance")
        expect("No instance" in str(error), "the exception", "No instance with ID ... (404)", repr(error))
        ids["restarted"] = new_id
    await check("restart with a new ID, with the same ID, and of an unknown instance (404)", restart)

    async def get_status_all_and_by():
        mine = {ids[name] for name in ("hello", "counter", "busy", "terminated", "rewound", "restarted")}
        every = await client.get_status_all()
        found = {status.instance_id for status in every}
        expect_equal(sorted(mine - found), [], "instances missing from get_status_all")
        completed = await client.get_status_by(created_time_from=t0, created_time_to=datetime.now(timezone.utc),
                                               runtime_status=[OrchestrationRuntimeStatus.Completed])
        completed_ids = {status.instance_id for status in completed}
        expect_equal(completed_ids, {ids["hello"], ids["counter"], ids["restarted"], PREFIX + "suspended"},
                     "get_status_by Completed since the script started")
        running = await client.get_status_by(created_time_from=t0, runtime_status=[OrchestrationRuntimeStatus.Running])
        expect_equal([status.instance_id for status in running], [ids["busy"]], "get_status_by Running")
        every_name = list(OrchestrationRuntimeStatus)
        anything = await client.get_status_by(created_time_from=t0, runtime_status=every_name)
        expect(len(anything) >= len(mine), "get_status_by runtime_status=" + ",".join(s.value for s in every_name),
               "at least {} instances".format(len(mine)), str(len(anything)))
        prefixed = await client.get_status_by(instance_id_prefix=PREFIX)
        expect_equal(sorted(status.instance_id for status in prefixed),
                     sorted(i for i in found | mine if i.startswith(PREFIX)), "get_status_by instance_id_prefix")
        earlier = await client.get_status_by(created_time_from=t0 - timedelta(hours=1),
                                             created_time_to=t0 - timedelta(milliseconds=1))
        expect_equal([s.instance_id for s in earlier if s.instance_id in mine], [],
                     "instances of this run created before it started")
    await check("get_status_all and get_status_by (times, runtime_status, instance_id_prefix)", get_status_all_and_by)

    async def purge_one():
        purged = await client.purge_instance_history(ids["counter"])
        expect_equal(purged.instances_deleted, 1, "instances_deleted for a completed instance")
        gone = await client.get_status(ids["counter"])
        expect(not gone, "get_status of a purged instance", "an empty status (404)", show(gone))
        unknown = await client.purge_instance_history(PREFIX + "nobody")
        expect_equal(unknown.instances_deleted, 0, "instances_deleted for an unknown instance")
        error = await expect_raises(client.purge_instance_history(ids["busy"]),
                                    "purge_instance_history of a running instance")
        expect("412" in str(error), "the exception", "the host's 412", repr(error))
    await check("purge_instance_history: a finished instance (1), an unknown one (0), a running one raises (412)",
                purge_one)

    async def wait_completed():
        instance_id = await client.start_new("E1_HelloSequence")
        response = await client.wait_for_completion_or_create_check_status_response(
            request_for(ORIGIN + "/api/start"), instance_id, DEADLINE_SECONDS * 1000, 50)
        expect_equal(response.status_code, 200, "the response status")
        expect_equal(json.loads(response.get_body()), GREETINGS, "the response body")
    await check("wait_for_completion_or_create_check_status_response: 200 with the output once completed",
                wait_completed)

    async def wait_running():
        instance_id = PREFIX + "waiting"
        await client.start_new("E3_Counter", instance_id, 0)
        response = await client.wait_for_completion_or_create_check_status_response(
            request_for(ORIGIN + "/api/start"), instance_id, 300, 100)
        expect_equal(response.status_code, 202, "the response status")
        payload = json.loads(response.get_body())
        expect_equal(payload["id"], instance_id, "the payload's id")
        expect_equal(response.headers.get("Location"), payload["statusQueryGetUri"], "the Location header")
        reply = http("GET", payload["statusQueryGetUri"])
        expect_equal([reply.status, (reply.body or {}).get("runtimeStatus")], [202, "Running"],
                     "following statusQueryGetUri")
        await client.terminate(instance_id, "done")
        await wait_for_status(instance_id, "Terminated")
    await check("wait_for_completion_or_create_check_status_response: 202 with the payload while it runs",
                wait_running)

    async def check_status_links():
        instance_id = PREFIX + "links"
        await client.start_new("E3_Counter", instance_id, 0)
        response = client.create_check_status_response(request_for(ORIGIN + "/api/start"), instance_id)
        expect_equal(response.status_code, 202, "the response status")
        links = json.loads(response.get_body())
        expect_equal(response.headers.get("Location"), links["statusQueryGetUri"], "the Location header")
        expect_equal(sorted(links), sorted(binding["managementUrls"]), "the payload's fields")
        for name, url in links.items():
            if name != "id":
                expect(url.startswith(BASE + "/instances/" + instance_id), name,
                       "a URL of instance {} under {}".format(instance_id, BASE), url)
        reply = http("GET", links["statusQueryGetUri"])
        expect_equal([reply.status, reply.body.get("instanceId")], [202, instance_id], "GET statusQueryGetUri")
        reply = http("POST", fill(links["sendEventPostUri"], eventName="operation"), json.dumps("incr"))
        expect_equal(reply.status, 202, "POST sendEventPostUri")
        await wait_for(instance_id, "the count 1", lambda status: status.input_ == 1)
        reply = http("POST", fill(links["suspendPostUri"], text="paused via the URL"))
        expect_equal(reply.status, 202, "POST suspendPostUri")
        await wait_for_status(instance_id, "Suspended")
        reply = http("POST", fill(links["resumePostUri"], text="resumed via the URL"))
        expect_equal(reply.status, 202, "POST resumePostUri")
        await wait_for_status(instance_id, "Running")
        reply = http("POST", fill(links["rewindPostUri"], text="not failed"))
        expect_equal(reply.status, 412, "POST rewindPostUri of a running instance")
        expect_error_body(reply, "the 412 body")
        reply = http("DELETE", links["purgeHistoryDeleteUri"])
        expect_equal(reply.status, 412, "DELETE purgeHistoryDeleteUri of a running instance")
        reply = http("POST", fill(links["terminatePostUri"], text="stopped via the URL"))
        expect_equal(reply.status, 202, "POST terminatePostUri")
        status = await wait_for_status(instance_id, "Terminated")
        expect_equal(status.output, "stopped via the URL", "the termination reason")
        reply = http("POST", links["restartPostUri"])
        expect_equal(reply.status, 202, "POST restartPostUri")
        new_id = (reply.body or {}).get("id")
        expect(isinstance(new_id, str) and new_id != instance_id, "the restart's payload", "a new instance ID",
               show(reply.body))
        status = await wait_for_status(new_id, "Running")
        expect(status.input_ in (0, "0"), "the restarted instance's input", 'the original one, 0 (sent as "0")',
               show(status.input_))
        await client.terminate(new_id, "done")
        await wait_for_status(new_id, "Terminated")
        reply = http("DELETE", links["purgeHistoryDeleteUri"])
        expect_equal([reply.status, reply.body], [200, {"instancesDeleted": 1}], "DELETE purgeHistoryDeleteUri")
        reply = http("GET", links["statusQueryGetUri"])
        expect_equal(reply.status, 404, "GET statusQueryGetUri of a purged instance")
        expect_error_body(reply, "the 404 body")
    await check("create_check_status_response: every URL works when followed", check_status_links)

    async def management_payload():
        instance_id = PREFIX + "payload"
        await client.start_new("E3_Counter", instance_id, 7)
        payload = client.create_http_management_payload(instance_id)
        for name, template in binding["managementUrls"].items():
            expect_equal(payload[name], template.replace("INSTANCEID", instance_id), name)
        reply = http("GET", payload["statusQueryGetUri"])
        expect_equal(reply.status, 202, "GET statusQueryGetUri")
        reply = http("POST", fill(payload["sendEventPostUri"], eventName="operation"), json.dumps("end"))
        expect_equal(reply.status, 202, "POST sendEventPostUri")
        status = await wait_for_status(instance_id, "Completed")
        expect_equal(status.output, 7, "the count")
        reply = http("POST", binding["managementUrls"]["restartPostUri"].replace("INSTANCEID", PREFIX + "nobody"))
        expect_equal(reply.status, 404, "POST restartPostUri of an unknown instance")
    await check("create_http_management_payload: the binding's URLs for the instance, and they work",
                management_payload)

    async def entities():
        entity = EntityId("Counter", PREFIX + "one")
        before = await client.read_entity_state(entity)
        expect_equal(before.entity_exists, False, "read_entity_state of a counter never signalled: entity_exists")
        # The client encodes the input twice (the host receives "\"5\""); the SDK decodes it.
        await client.signal_entity(entity, "add", 5)
        # A falsy input is sent as no body at all: the entity gets null.
        await client.signal_entity(entity, "incr", 0)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            read = await client.read_entity_state(entity)
            if read.entity_exists and read.entity_state == 6:
                break
            if time.monotonic() > deadline:
                fail("read_entity_state", "the counter at 6 after add 5, incr",
                     "{} {}".format(read.entity_exists, show(read.entity_state)))
            await asyncio.sleep(0.05)
        await expect_raises(client.signal_entity(EntityId("Nope", "x"), "add", 1),
                            "signal_entity of an entity no component exports")
    await check("signal_entity and read_entity_state: a Counter entity, created by its first signal", entities)

    async def raise_event():
        instance_id = PREFIX + "raised"
        await client.start_new("E3_Counter", instance_id, 0)
        await wait_for_status(instance_id, "Running")
        # The client encodes each payload twice: the host receives the JSON string "\"incr\"".
        await client.raise_event(instance_id, "operation", "incr")
        await wait_for(instance_id, "the count 1 after raise_event incr",
                       lambda status: runtime_status(status) == "Running" and status.input_ == 1)
        await client.raise_event(instance_id, "operation", "incr")
        await client.raise_event(instance_id, "operation", "end")
        status = await wait_for_status(instance_id, "Completed")
        expect_equal(status.output, 2, "the count after raise_event incr, incr, end")
    await check("raise_event incr, incr, end: the counter completes with 2", raise_event)

    async def purge_by():
        await client.terminate(ids["busy"], "done")
        await wait_for_status(ids["busy"], "Terminated")
        kept = PREFIX + "kept"
        await client.start_new("E3_Counter", kept, 0)
        await wait_for_status(kept, "Running")
        until = datetime.now(timezone.utc)
        selected = await client.get_status_by(created_time_from=t0, created_time_to=until, runtime_status=FINISHED)
        expect(len(selected) >= 5, "the finished instances of this run", "at least 5", str(len(selected)))
        purged = await client.purge_instance_history_by(created_time_from=t0, created_time_to=until,
                                                        runtime_status=FINISHED)
        expect_equal(purged.instances_deleted, len(selected), "instances_deleted (as many as get_status_by selected)")
        left = await client.get_status_by(created_time_from=t0)
        expect_equal([status.instance_id for status in left], [kept], "the instances of this run left")
        none = await client.purge_instance_history_by(created_time_from=t0, runtime_status=FINISHED)
        expect_equal(none.instances_deleted, 0, "instances_deleted when nothing matches")
        await client.terminate(kept, "done")
    await check("purge_instance_history_by deletes the finished instances selected, and only those", purge_by)

    print("PASS [py rpc] {} checks".format(checks), flush=True)


async def run():
    try:
        await main()
    finally:
        # The client keeps one aiohttp session for the process; close it quietly.
        try:
            from azure.durable_functions.models.utils import http_utils
            await http_utils._close_session()
        except Exception:  # noqa: BLE001 - only tidiness
            pass


if __name__ == "__main__":
    asyncio.run(run())
