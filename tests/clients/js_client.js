// Drives a live Reprise host with the official Durable Functions JavaScript
// client (npm durable-functions, pinned in package.json), constructed as an
// Azure Functions app constructs it: from the durableClient binding data,
// which the host serves at GET {base}/durableClient.
//
//   node js_client.js http://127.0.0.1:PORT/runtime/webhooks/durabletask rpc|webhook
//
// rpc: the binding as served; the client builds its requests on rpcBaseUrl.
// webhook: the binding without rpcBaseUrl; the client fills in the
// creation and management URL templates instead.
// With an access key, set REPRISE_KEY: it is used to fetch the binding only;
// everything else must work from the URLs the binding hands out.
//
// Every client method is called and its result checked; one line per check.
// The first failure prints the check, what was expected, what came back and
// the last HTTP exchanges, and exits with code 1.
//
// Needs the samples E1_HelloSequence, E3_Counter and FetchStatus (with no
// allowed HTTP hosts, so that FetchStatus fails) on the host.

"use strict";

const { isDeepStrictEqual } = require("node:util");
const df = require("durable-functions");
const { HttpRequest, InvocationContext } = require("@azure/functions");

const GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"];
/** How long any awaited state may take to show. */
const DEADLINE_MS = 30_000;
/** How many instances the paging check starts: more than one page of 100. */
const PAGED_INSTANCES = 105;
const FINISHED = [
  df.OrchestrationRuntimeStatus.Completed,
  df.OrchestrationRuntimeStatus.Failed,
  df.OrchestrationRuntimeStatus.Terminated,
];

const [base, mode] = process.argv.slice(2);
if (!base || !["rpc", "webhook"].includes(mode)) {
  console.error("usage: node js_client.js BASE_URL rpc|webhook   (BASE_URL: http://HOST:PORT/runtime/webhooks/durabletask)");
  process.exit(2);
}
const origin = new URL(base).origin;
const key = process.env.REPRISE_KEY || "";
// Unique per run, so that modes and reruns against one host do not collide.
const prefix = `js-${mode}-${Date.now().toString(36)}-`;

class CheckFailed extends Error {}

/** The last HTTP exchanges (the client's and our own), for failure reports. */
const exchanges = [];
/** Every URL the client requested, to check the mode's URLs were used. */
const clientUrls = [];
/** How many client requests carried a continuation token. */
let continuationRequests = 0;

function remember(exchange) {
  exchanges.push(exchange);
  if (exchanges.length > 8) exchanges.shift();
}

function lastExchange() {
  return exchanges[exchanges.length - 1];
}

function show(value, limit = 1500) {
  if (value === undefined) return "undefined";
  if (value instanceof Error) return `${value.constructor.name}: ${value.message}`;
  try {
    const text = JSON.stringify(value);
    return text.length > limit ? `${text.slice(0, limit)}...` : text;
  } catch {
    return String(value);
  }
}

function fail(what, expected, got) {
  throw new CheckFailed(`${what}: expected ${expected}; got ${got}`);
}

function expect(condition, what, expected, got) {
  if (!condition) fail(what, expected, got);
}

function expectEqual(got, expected, what) {
  if (!isDeepStrictEqual(got, expected)) fail(what, show(expected), show(got));
}

/** Awaits `promise`, which must reject; returns the error. */
async function expectRejects(promise, what) {
  let value;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  return fail(what, "a rejection", `it resolved with ${show(value)}`);
}

function expectLastStatus(status, what) {
  const last = lastExchange();
  expect(
    last && last.status === status,
    what,
    `the host to answer ${status}`,
    last ? `${last.status} ${show(last.body)}` : "no request",
  );
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let checks = 0;

/** Runs one named check; the first failure ends the script. */
async function check(name, body) {
  try {
    await body();
  } catch (error) {
    console.log(`FAIL [js ${mode}] ${name}`);
    console.log(`  ${error instanceof CheckFailed ? error.message : `unexpected error: ${error && error.stack ? error.stack : show(error)}`}`);
    if (exchanges.length > 0) {
      console.log("  last HTTP exchanges, oldest first:");
      for (const exchange of exchanges) {
        console.log(`    ${exchange.method} ${exchange.url} -> ${exchange.status} ${show(exchange.body, 300)}`);
      }
    }
    process.exit(1);
  }
  checks += 1;
  console.log(`ok [js ${mode}] ${name}`);
}

/** A plain HTTP request (not through the client); the body parsed as JSON when it is. */
async function http(method, url, body, headers = {}) {
  const response = await fetch(url, { method, body, headers });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  const exchange = { method, url, status: response.status, headers: response.headers, body: parsed };
  remember(exchange);
  return exchange;
}

/** `url` with `{placeholder}`s filled in. */
function fill(url, values) {
  let filled = url;
  for (const [name, value] of Object.entries(values)) {
    filled = filled.split(`{${name}}`).join(encodeURIComponent(value));
  }
  return filled;
}

function expectErrorBody(exchange, what) {
  const body = exchange.body || {};
  for (const field of ["message", "Message", "ExceptionMessage"]) {
    expect(
      typeof body[field] === "string" && body[field].length > 0,
      what,
      `an error body with "${field}"`,
      show(body),
    );
  }
}

let binding;
let client;

/** Polls the client's getStatus until `done` holds. */
async function waitForStatus(id, what, done, options = {}) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const status = await client.getStatus(id, options);
    if (done(status)) return status;
    if (Date.now() > deadline) {
      fail(`instance ${id}`, what, `after ${DEADLINE_MS / 1000} s: ${show(status)}`);
    }
    await sleep(50);
  }
}

function waitForRuntimeStatus(id, runtimeStatus) {
  return waitForStatus(id, `runtimeStatus ${runtimeStatus}`, (status) => status.runtimeStatus === runtimeStatus);
}

/** The historyEvents of the response the client got last (the client's status object drops them). */
function lastHistoryEvents(what) {
  const events = lastExchange() && lastExchange().body && lastExchange().body.historyEvents;
  expect(Array.isArray(events), what, "the response to carry historyEvents", show(lastExchange() && lastExchange().body));
  return events;
}

function httpRequestFor(url) {
  return new HttpRequest({ method: "GET", url });
}

async function main() {
  await check("GET durableClient serves the binding data", async () => {
    const reply = await http("GET", `${base}/durableClient`, undefined, key ? { "x-functions-key": key } : {});
    expectEqual(reply.status, 200, "GET durableClient status");
    binding = reply.body;
    expect(typeof binding.taskHubName === "string" && binding.taskHubName.length > 0, "taskHubName", "a name", show(binding.taskHubName));
    const required = binding.requiredQueryStringParameters;
    expect(
      typeof required === "string" && required.split("&").includes(`taskHub=${binding.taskHubName}`),
      "requiredQueryStringParameters",
      `taskHub=${binding.taskHubName}`,
      show(required),
    );
    if (key) {
      expect(required.split("&").some((pair) => pair.startsWith("code=")), "requiredQueryStringParameters with a key", "code=...", show(required));
    }
    expectEqual(binding.baseUrl, base, "baseUrl");
    // With a key, the key is the URL's password: the client adds no query
    // string to rpcBaseUrl, and sends a URL's password as basic authentication.
    const rpcBase = key ? `${base}/`.replace("://", `://reprise:${encodeURIComponent(key)}@`) : `${base}/`;
    expectEqual(binding.rpcBaseUrl, rpcBase, "rpcBaseUrl");
    expectEqual(binding.managementUrls.id, "INSTANCEID", "managementUrls.id");
    for (const [name, url] of [...Object.entries(binding.creationUrls), ...Object.entries(binding.managementUrls)]) {
      if (name === "id") continue;
      expect(url.startsWith(`${base}/`), `${name}`, `a URL under ${base}`, url);
      for (const pair of required.split("&")) {
        expect(url.includes(pair), `${name}`, `a URL carrying ${pair}`, url);
      }
    }
    expect(
      binding.creationUrls.createNewInstancePostUri.includes("{functionName}[/{instanceId}]"),
      "createNewInstancePostUri",
      "the {functionName}[/{instanceId}] template",
      binding.creationUrls.createNewInstancePostUri,
    );
  });

  await check("df.getClient builds a client on the binding", async () => {
    // As Azure sets it; without it getClient points every URL at localhost:7071.
    process.env.WEBSITE_HOSTNAME = new URL(base).host;
    const data = JSON.parse(JSON.stringify(binding));
    if (mode === "webhook") delete data.rpcBaseUrl;
    const input = df.input.durableClient();
    const context = new InvocationContext({ options: { extraInputs: [input] } });
    context.extraInputs.set(input, data);
    client = df.getClient(context);
    // Observe (never change) the client's HTTP traffic, for checks on what
    // the host answered and for failure reports.
    client.axiosInstance.interceptors.response.use((response) => {
      const url = response.config.url;
      clientUrls.push(url);
      const headers = response.config.headers || {};
      if (headers["x-ms-continuation-token"]) continuationRequests += 1;
      remember({
        method: String(response.config.method).toUpperCase(),
        url,
        status: response.status,
        headers: response.headers,
        body: response.data,
      });
      return response;
    });
    const payload = client.createHttpManagementPayload("probe");
    expectEqual(payload.statusQueryGetUri, binding.managementUrls.statusQueryGetUri.replace("INSTANCEID", "probe"), "the client's statusQueryGetUri");
  });

  const t0 = new Date();
  let helloId;
  await check("startNew without an instance ID starts it; it completes with the greetings", async () => {
    helloId = await client.startNew("E1_HelloSequence");
    expect(typeof helloId === "string" && helloId.length > 0, "startNew", "a new instance ID", show(helloId));
    const started = lastExchange();
    expectEqual(started.status, 202, "the start's status code");
    expect(started.headers["retry-after"] !== undefined, "the start's 202", "a Retry-After header", show(started.headers));
    expect(started.headers.location !== undefined, "the start's 202", "a Location header", show(started.headers));
    const status = await waitForRuntimeStatus(helloId, "Completed");
    expectEqual(status.output, GREETINGS, "the output of E1_HelloSequence");
    expectEqual(status.name, "E1_HelloSequence", "name");
    expectEqual(status.instanceId, helloId, "instanceId");
    expectEqual(lastExchange().status, 200, "GET status of a completed instance");
    expect(status.createdTime instanceof Date && !Number.isNaN(status.createdTime.getTime()), "createdTime", "a date", show(status.createdTime));
    expect(status.lastUpdatedTime >= status.createdTime, "lastUpdatedTime", `not before createdTime ${status.createdTime.toISOString()}`, status.lastUpdatedTime.toISOString());
  });

  const counterId = `${prefix}counter`;
  await check("startNew with an instance ID and input 0", async () => {
    const id = await client.startNew("E3_Counter", { instanceId: counterId, input: 0 });
    expectEqual(id, counterId, "the ID startNew returns");
    const status = await waitForRuntimeStatus(counterId, "Running");
    expectEqual(status.input, 0, "the counter's input");
    expectEqual(lastExchange().status, 202, "GET status of a running instance");
  });

  await check("startNew under the ID of a running instance is refused (409)", async () => {
    await expectRejects(client.startNew("E3_Counter", { instanceId: counterId, input: 5 }), "a second start of a running ID");
    expectLastStatus(409, "a second start of a running ID");
  });

  await check("startNew of an unknown orchestrator rejects (400, naming it)", async () => {
    const error = await expectRejects(client.startNew("NoSuchOrchestrator"), "startNew of an unknown orchestrator");
    expectLastStatus(400, "startNew of an unknown orchestrator");
    expect(error.message.includes("NoSuchOrchestrator"), "the rejection", "a message naming NoSuchOrchestrator", error.message);
    expectErrorBody(lastExchange(), "the 400 body");
  });

  await check("getStatus with showHistory and showHistoryOutput returns historyEvents with results", async () => {
    const status = await client.getStatus(helloId, { showHistory: true, showHistoryOutput: true });
    expectEqual(status.runtimeStatus, "Completed", "runtimeStatus");
    const events = lastHistoryEvents("showHistory=true");
    const types = events.map((event) => event.EventType);
    // As in Durable Functions, a finished activity is one entry: its TaskCompleted.
    for (const type of ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]) {
      expect(types.includes(type), "historyEvents", `an ${type} event`, show(types));
    }
    const completed = events.filter((event) => event.EventType === "TaskCompleted");
    expectEqual(completed.length, 3, "TaskCompleted events");
    expectEqual(completed.map((event) => event.Result), GREETINGS, "the Result of the TaskCompleted events");
  });

  await check("getStatus with showHistory only leaves out the results", async () => {
    await client.getStatus(helloId, { showHistory: true });
    const events = lastHistoryEvents("showHistory=true");
    const withResult = events.filter((event) => event.Result !== undefined);
    expectEqual(withResult, [], "events with a Result without showHistoryOutput");
  });

  await check("getStatus with showInput false still constructs a status", async () => {
    const status = await client.getStatus(counterId, { showInput: false });
    expectEqual(status.runtimeStatus, "Running", "runtimeStatus");
    if (mode === "webhook") {
      // The templates send showInput=false; the rpc client leaves it out.
      expect(lastExchange().url.includes("showInput=false"), "the request", "showInput=false in the URL", lastExchange().url);
      expectEqual(status.input, null, "input with showInput=false");
    }
    const plain = await http("GET", `${client.createHttpManagementPayload(counterId).statusQueryGetUri}&showInput=false`);
    expect(plain.body && "input" in plain.body && plain.body.input === null, "GET status with showInput=false", '"input": null', show(plain.body));
  });

  await check("getStatus of an unknown instance rejects (404)", async () => {
    const error = await expectRejects(client.getStatus(`${prefix}nobody`), "getStatus of an unknown instance");
    expectLastStatus(404, "getStatus of an unknown instance");
    expect(error.message.includes("404"), "the rejection", "a message with 404", error.message);
  });

  await check("raiseEvent incr, incr, end: the counter completes with 2", async () => {
    for (const operation of ["incr", "incr", "end"]) {
      await client.raiseEvent(counterId, "operation", operation);
      expectLastStatus(202, `raiseEvent ${operation}`);
    }
    const status = await waitForRuntimeStatus(counterId, "Completed");
    expectEqual(status.output, 2, "the count");
  });

  await check("raiseEvent to a finished instance resolves (410), to an unknown one rejects (404)", async () => {
    await client.raiseEvent(counterId, "operation", "incr");
    expectLastStatus(410, "raiseEvent to a completed instance");
    const error = await expectRejects(client.raiseEvent(`${prefix}nobody`, "operation", "incr"), "raiseEvent to an unknown instance");
    expect(error.message.includes("No instance"), "the rejection", "No instance with ID ...", error.message);
  });

  await check("a request naming another task hub is refused (400)", async () => {
    const id = `${prefix}hub`;
    await client.startNew("E3_Counter", { instanceId: id });
    await expectRejects(client.raiseEvent(id, "operation", "end", { taskHubName: "otherhub" }), "raiseEvent with taskHubName otherhub");
    expectLastStatus(400, "raiseEvent with taskHubName otherhub");
    expect(lastExchange().url.includes("taskHub=otherhub"), "the request", "taskHub=otherhub in the URL", lastExchange().url);
    expectErrorBody(lastExchange(), "the 400 body");
    await client.raiseEvent(id, "operation", "end");
    await waitForRuntimeStatus(id, "Completed");
  });

  await check("terminate: Terminated, with the reason as output", async () => {
    const id = `${prefix}terminated`;
    await client.startNew("E3_Counter", { instanceId: id, input: 0 });
    await waitForRuntimeStatus(id, "Running");
    const reason = "stopped by the js client";
    await client.terminate(id, reason);
    expectLastStatus(202, "terminate");
    const status = await waitForRuntimeStatus(id, "Terminated");
    expectEqual(status.output, reason, "the output of a terminated instance");
    await client.terminate(id, "again");
    expectLastStatus(410, "terminate of a terminated instance (the client resolves)");
    await expectRejects(client.terminate(`${prefix}nobody`, "x"), "terminate of an unknown instance");
    expectLastStatus(404, "terminate of an unknown instance");
  });

  await check("suspend then resume: Suspended, then Running; an event sent meanwhile is kept", async () => {
    const id = `${prefix}suspended`;
    await client.startNew("E3_Counter", { instanceId: id, input: 0 });
    await waitForRuntimeStatus(id, "Running");
    await client.suspend(id, "paused by the js client");
    expectLastStatus(202, "suspend");
    await waitForRuntimeStatus(id, "Suspended");
    await client.raiseEvent(id, "operation", "incr");
    expectLastStatus(202, "raiseEvent to a suspended instance");
    await client.resume(id, "resumed by the js client");
    expectLastStatus(202, "resume");
    await waitForStatus(id, "Running with the count 1", (status) => status.runtimeStatus === "Running" && status.input === 1);
    await client.raiseEvent(id, "operation", "end");
    const status = await waitForRuntimeStatus(id, "Completed");
    expectEqual(status.output, 1, "the count");
    await expectRejects(client.suspend(`${prefix}nobody`, "x"), "suspend of an unknown instance");
    await expectRejects(client.resume(`${prefix}nobody`, "x"), "resume of an unknown instance");
  });

  await check("rewind of a failed instance resolves; it runs again and fails again", async () => {
    const id = `${prefix}rewound`;
    // No host is allowed: the activity's request is denied and the instance fails.
    await client.startNew("FetchStatus", { instanceId: id, input: "http://127.0.0.1:9/denied" });
    const failed = await waitForRuntimeStatus(id, "Failed");
    expect(show(failed.output).includes("HttpRequestDenied"), "the failure", "HttpRequestDenied", show(failed.output));
    await client.rewind(id, "try again");
    expectLastStatus(202, "rewind");
    await waitForStatus(id, "Failed again after an ExecutionRewound", (status) => {
      if (status.runtimeStatus !== "Failed") return false;
      const types = (lastExchange().body.historyEvents || []).map((event) => event.EventType);
      const rewound = types.indexOf("ExecutionRewound");
      return rewound >= 0 && types.slice(rewound).includes("TaskFailed");
    }, { showHistory: true });
  });

  let runningId;
  await check("rewind of a running instance rejects (412)", async () => {
    runningId = `${prefix}running`;
    await client.startNew("E3_Counter", { instanceId: runningId, input: 0 });
    await waitForRuntimeStatus(runningId, "Running");
    await expectRejects(client.rewind(runningId, "not failed"), "rewind of a running instance");
    expectLastStatus(412, "rewind of a running instance");
    await expectRejects(client.rewind(`${prefix}nobody`, "x"), "rewind of an unknown instance");
    expectLastStatus(404, "rewind of an unknown instance");
  });

  await check("purgeInstanceHistory: a finished instance (1), an unknown one (0), a running one rejects (412)", async () => {
    const purged = await client.purgeInstanceHistory(helloId);
    expectEqual(purged.instancesDeleted, 1, "instancesDeleted for a completed instance");
    await expectRejects(client.getStatus(helloId), "getStatus of a purged instance");
    expectLastStatus(404, "getStatus of a purged instance");
    const unknown = await client.purgeInstanceHistory(`${prefix}nobody`);
    expectEqual(unknown.instancesDeleted, 0, "instancesDeleted for an unknown instance");
    await expectRejects(client.purgeInstanceHistory(runningId), "purgeInstanceHistory of a running instance");
    expectLastStatus(412, "purgeInstanceHistory of a running instance");
  });

  const pagedIds = [];
  const tPaged = new Date();
  await check(`${PAGED_INSTANCES} instances: getStatusAll and getStatusBy follow the continuation token`, async () => {
    for (let index = 0; index < PAGED_INSTANCES; index += 1) {
      pagedIds.push(`${prefix}page-${String(index).padStart(3, "0")}`);
    }
    for (let at = 0; at < pagedIds.length; at += 15) {
      await Promise.all(pagedIds.slice(at, at + 15).map((instanceId) => client.startNew("E1_HelloSequence", { instanceId })));
    }
    const filter = { createdTimeFrom: tPaged, runtimeStatus: [df.OrchestrationRuntimeStatus.Completed] };
    const deadline = Date.now() + 2 * DEADLINE_MS;
    let completed = [];
    for (;;) {
      const page = await client.getStatusBy(filter);
      completed = page.filter((status) => status.instanceId.startsWith(`${prefix}page-`));
      if (completed.length === PAGED_INSTANCES) break;
      if (Date.now() > deadline) fail("the paged instances", `${PAGED_INSTANCES} Completed`, `${completed.length}`);
      await sleep(100);
    }
    for (const status of completed) {
      expectEqual(status.output, GREETINGS, `the output of ${status.instanceId}`);
    }
    const tokensBefore = continuationRequests;
    const all = await client.getStatusAll();
    expect(continuationRequests > tokensBefore, "getStatusAll", "a request with x-ms-continuation-token (a second page)", `${continuationRequests - tokensBefore} such requests`);
    const allIds = new Set(all.map((status) => status.instanceId));
    const missing = pagedIds.filter((id) => !allIds.has(id));
    expectEqual(missing, [], "paged instances missing from getStatusAll");
    expectEqual(allIds.size, all.length, "distinct IDs in getStatusAll (no instance twice)");
    const byTime = await client.getStatusBy({ createdTimeFrom: tPaged, createdTimeTo: new Date() });
    const byTimeIds = byTime.map((status) => status.instanceId).sort();
    expectEqual(byTimeIds, [...pagedIds].sort(), "getStatusBy createdTimeFrom/To over the paged instances");
  });

  await check("getStatusBy runtimeStatus and time filters", async () => {
    const running = await client.getStatusBy({ createdTimeFrom: t0, runtimeStatus: [df.OrchestrationRuntimeStatus.Running] });
    expectEqual(running.map((status) => status.instanceId), [runningId], "Running instances since the script started");
    const failed = await client.getStatusBy({ createdTimeFrom: t0, runtimeStatus: [df.OrchestrationRuntimeStatus.Failed, df.OrchestrationRuntimeStatus.Terminated] });
    expectEqual(failed.map((status) => status.instanceId).sort(), [`${prefix}rewound`, `${prefix}terminated`], "Failed or Terminated instances since the script started");
    const everyName = Object.values(df.OrchestrationRuntimeStatus);
    const any = await client.getStatusBy({ createdTimeFrom: t0, runtimeStatus: everyName });
    expect(any.length >= PAGED_INSTANCES, `getStatusBy runtimeStatus=${everyName.join(",")}`, `at least ${PAGED_INSTANCES} instances`, `${any.length}`);
    const before = await client.getStatusBy({ createdTimeFrom: new Date(t0.getTime() - 3_600_000), createdTimeTo: new Date(t0.getTime() - 1) });
    const mine = before.filter((status) => status.instanceId.startsWith(prefix));
    expectEqual(mine, [], "instances of this run created before it started");
  });

  await check("waitForCompletionOrCreateCheckStatusResponse: 200 with the output once completed", async () => {
    const id = await client.startNew("E1_HelloSequence");
    const response = await client.waitForCompletionOrCreateCheckStatusResponse(httpRequestFor(`${origin}/api/start`), id, {
      timeoutInMilliseconds: DEADLINE_MS,
      retryIntervalInMilliseconds: 50,
    });
    expectEqual(response.status, 200, "the response status");
    expectEqual(await response.json(), GREETINGS, "the response body");
  });

  await check("waitForCompletionOrCreateCheckStatusResponse: 202 with the check-status payload while it runs", async () => {
    const id = `${prefix}waiting`;
    await client.startNew("E3_Counter", { instanceId: id, input: 0 });
    const response = await client.waitForCompletionOrCreateCheckStatusResponse(httpRequestFor(`${origin}/api/start`), id, {
      timeoutInMilliseconds: 300,
      retryIntervalInMilliseconds: 100,
    });
    expectEqual(response.status, 202, "the response status");
    const payload = await response.json();
    expectEqual(payload.id, id, "the payload's id");
    expectEqual(response.headers.get("location"), payload.statusQueryGetUri, "the Location header");
    const status = await http("GET", payload.statusQueryGetUri);
    expectEqual([status.status, status.body.runtimeStatus], [202, "Running"], "following statusQueryGetUri");
    await client.terminate(id, "done");
    await waitForRuntimeStatus(id, "Terminated");
  });

  await check("createCheckStatusResponse: every URL works when followed", async () => {
    const id = `${prefix}links`;
    await client.startNew("E3_Counter", { instanceId: id, input: 0 });
    const response = client.createCheckStatusResponse(httpRequestFor(`${origin}/api/start`), id);
    expectEqual(response.status, 202, "the response status");
    const links = await response.json();
    expectEqual(response.headers.get("location"), links.statusQueryGetUri, "the Location header");
    expectEqual(Object.keys(links).sort(), Object.keys(binding.managementUrls).sort(), "the payload's fields");
    expectEqual(links.id, id, "the payload's id");
    for (const [name, url] of Object.entries(links)) {
      if (name === "id") continue;
      expect(url.startsWith(`${base}/instances/${id}`), name, `a URL of instance ${id} under ${base}`, url);
    }
    const status = await http("GET", links.statusQueryGetUri);
    expectEqual(status.status, 202, "GET statusQueryGetUri of a running instance");
    expectEqual(status.body.instanceId, id, "instanceId");
    const raised = await http("POST", fill(links.sendEventPostUri, { eventName: "operation" }), JSON.stringify("incr"), { "content-type": "application/json" });
    expectEqual(raised.status, 202, "POST sendEventPostUri");
    await waitForStatus(id, "the count 1", (current) => current.input === 1);
    const suspended = await http("POST", fill(links.suspendPostUri, { text: "paused via the URL" }));
    expectEqual(suspended.status, 202, "POST suspendPostUri");
    await waitForRuntimeStatus(id, "Suspended");
    const resumed = await http("POST", fill(links.resumePostUri, { text: "resumed via the URL" }));
    expectEqual(resumed.status, 202, "POST resumePostUri");
    await waitForRuntimeStatus(id, "Running");
    const rewound = await http("POST", fill(links.rewindPostUri, { text: "not failed" }));
    expectEqual(rewound.status, 412, "POST rewindPostUri of a running instance");
    expectErrorBody(rewound, "the 412 body");
    const early = await http("DELETE", links.purgeHistoryDeleteUri);
    expectEqual(early.status, 412, "DELETE purgeHistoryDeleteUri of a running instance");
    const terminated = await http("POST", fill(links.terminatePostUri, { text: "stopped via the URL" }));
    expectEqual(terminated.status, 202, "POST terminatePostUri");
    const done = await waitForRuntimeStatus(id, "Terminated");
    expectEqual(done.output, "stopped via the URL", "the termination reason");
    const restarted = await http("POST", links.restartPostUri);
    expectEqual(restarted.status, 202, "POST restartPostUri");
    const newId = restarted.body && restarted.body.id;
    expect(typeof newId === "string" && newId !== id, "the restart's payload", "a new instance ID", show(restarted.body));
    const again = await waitForRuntimeStatus(newId, "Running");
    expectEqual(again.input, 0, "the restarted instance's input (the original one)");
    await client.terminate(newId, "done");
    await waitForRuntimeStatus(newId, "Terminated");
    const purged = await http("DELETE", links.purgeHistoryDeleteUri);
    expectEqual([purged.status, purged.body], [200, { instancesDeleted: 1 }], "DELETE purgeHistoryDeleteUri");
    const gone = await http("GET", links.statusQueryGetUri);
    expectEqual(gone.status, 404, "GET statusQueryGetUri of a purged instance");
    expectErrorBody(gone, "the 404 body");
  });

  await check("createHttpManagementPayload: the binding's URLs for the instance, and they work", async () => {
    const id = `${prefix}payload`;
    await client.startNew("E3_Counter", { instanceId: id, input: 7 });
    const payload = client.createHttpManagementPayload(id);
    for (const [name, template] of Object.entries(binding.managementUrls)) {
      expectEqual(payload[name], template.split("INSTANCEID").join(id), name);
    }
    const status = await http("GET", payload.statusQueryGetUri);
    expectEqual([status.status, status.body.input], [202, 7], "GET statusQueryGetUri: status code and input");
    // Operation names are matched case-insensitively, trailing slashes ignored.
    const [path, query] = fill(payload.sendEventPostUri, { eventName: "operation" }).split("?");
    const shouty = `${path.replace("/instances/", "/Instances/").replace("/raiseEvent/", "/RaiseEvent/")}/?${query}`;
    const raised = await http("POST", shouty, JSON.stringify("end"), { "content-type": "application/json" });
    expectEqual(raised.status, 202, "POST .../Instances/{id}/RaiseEvent/operation/");
    const done = await waitForRuntimeStatus(id, "Completed");
    expectEqual(done.output, 7, "the count");
    const unknown = await http("POST", binding.managementUrls.restartPostUri.replace("INSTANCEID", `${prefix}nobody`));
    expectEqual(unknown.status, 404, "POST restartPostUri of an unknown instance");
  });

  await check("createAndWaitOnNewInstancePostUri: 200 with the output", async () => {
    const url = fill(binding.creationUrls.createAndWaitOnNewInstancePostUri.replace("[/{instanceId}]", `/${prefix}waited`), {
      functionName: "E1_HelloSequence",
      timeoutInSeconds: "30",
      intervalInSeconds: "1",
    });
    const reply = await http("POST", url);
    expectEqual([reply.status, reply.body], [200, GREETINGS], "start and wait");
  });

  await check("signalEntity and readEntityState: a Counter entity, created by its first signal", async () => {
    const entity = new df.EntityId("Counter", `${prefix}one`);
    const before = await client.readEntityState(entity);
    expectEqual(before.entityExists, false, "readEntityState of a counter never signalled: entityExists");
    await client.signalEntity(entity, "add", 5);
    expectLastStatus(202, "signalEntity");
    await client.signalEntity(entity, "incr");
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const read = await client.readEntityState(entity);
      if (read.entityExists && read.entityState === 6) break;
      if (Date.now() > deadline) fail("readEntityState", "the counter at 6 after add 5, incr", show(read));
      await sleep(50);
    }
    await expectRejects(client.signalEntity(new df.EntityId("Nope", "x"), "add", 1), "signalEntity of an entity no component exports");
    expectLastStatus(400, "signalEntity of an entity no component exports");
  });

  await check("purgeInstanceHistoryBy deletes the finished instances selected, and only those", async () => {
    await client.terminate(runningId, "done");
    await waitForRuntimeStatus(runningId, "Terminated");
    const keepId = `${prefix}kept`;
    await client.startNew("E3_Counter", { instanceId: keepId, input: 0 });
    await waitForRuntimeStatus(keepId, "Running");
    const filter = { createdTimeFrom: t0, createdTimeTo: new Date(), runtimeStatus: FINISHED };
    const selected = await client.getStatusBy(filter);
    expect(selected.length > PAGED_INSTANCES, "the finished instances of this run", `more than ${PAGED_INSTANCES}`, `${selected.length}`);
    const purged = await client.purgeInstanceHistoryBy(filter);
    expectEqual(purged.instancesDeleted, selected.length, "instancesDeleted (as many as getStatusBy selected)");
    const left = await client.getStatusBy({ createdTimeFrom: t0 });
    expectEqual(left.map((status) => status.instanceId), [keepId], "the instances of this run left");
    const none = await client.purgeInstanceHistoryBy(filter);
    expectEqual(none.instancesDeleted, 0, "instancesDeleted when nothing matches");
    await client.terminate(keepId, "done");
  });

  await check(`the client used the ${mode} URLs`, async () => {
    // Less the one request made to another task hub on purpose.
    const wrong = clientUrls.filter((url) => !url.includes("taskHub=otherhub")).filter((url) =>
      mode === "rpc"
        ? !url.startsWith(binding.rpcBaseUrl)
        : !binding.requiredQueryStringParameters.split("&").every((pair) => url.includes(pair)),
    );
    expectEqual(wrong, [], `client requests not made on the ${mode} URLs`);
  });

  console.log(`PASS [js ${mode}] ${checks} checks`);
}

main().catch((error) => {
  console.log(`FAIL [js ${mode}] unexpected error: ${error && error.stack ? error.stack : show(error)}`);
  process.exit(1);
});
