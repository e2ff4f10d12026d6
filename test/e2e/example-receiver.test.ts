/** The README's receiver (examples/receiver.mjs), run as a user would, against a real Herald. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { startHerald } from "../support/herald.js";

const RECEIVER = join(import.meta.dirname, "..", "..", "examples", "receiver.mjs");

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** Starts the receiver with `secret`; resolves once it listens, with a way to await its lines. */
async function startReceiver(secret: string, port: number) {
  const child: ChildProcess = spawn(process.execPath, [RECEIVER], {
    env: { ...process.env, WEBHOOK_SECRET: secret, RECEIVER_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const saw = async (pattern: RegExp) => {
    const deadline = Date.now() + 10_000;
    while (!pattern.test(output)) {
      if (Date.now() > deadline) assert.fail(`the receiver never printed ${pattern}:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  await saw(/Receiving webhooks at/);
  return { saw, output: () => output, stop: () => child.kill() };
}

test("the example receiver verifies a real delivery, ignores its repeat, and refuses a wrong secret", async (t) => {
  const herald = await startHerald({ HERALD_RETRY_SCHEDULE: "none" });
  t.after(() => herald.stop());
  const port = await freePort();
  const registered = await herald.api("POST", "/api/webhooks", {
    name: "Example receiver",
    url: `http://localhost:${port}/webhook`,
    events: ["user.created"],
  });
  assert.equal(registered.status, 201);
  const { id, secret } = registered.body.webhook;
  const receiver = await startReceiver(secret, port);
  t.after(() => receiver.stop());

  await herald.api("POST", "/api/webhooks/trigger", {
    event: "user.created",
    data: { userId: "123" },
  });
  await receiver.saw(/Verified delivery del_\S+: user\.created \{"userId":"123"\}/);
  const deliveryId = /Verified delivery (del_\S+):/.exec(receiver.output())?.[1];
  // Sent again by hand: the same X-Webhook-Delivery, which the receiver has taken already.
  const again = await herald.api("POST", `/api/webhooks/${id}/deliveries/${deliveryId}/retry`);
  assert.ok(again.status < 300, JSON.stringify(again.body));
  await receiver.saw(new RegExp(`Delivery ${deliveryId} came again`));

  // Another webhook to the same receiver has another secret: its deliveries are refused.
  const other = await herald.api("POST", "/api/webhooks", {
    name: "Wrong secret",
    url: `http://localhost:${port}/webhook`,
    events: ["user.updated"],
  });
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.updated", data: {} });
  await receiver.saw(/Refused a delivery: its signature does not match/);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const history = await herald.api("GET", `/api/webhooks/${other.body.webhook.id}/deliveries`);
    const [delivery] = history.body.deliveries;
    if (delivery?.status === "failed") {
      assert.equal(delivery.response.status, 401);
      break;
    }
    assert.ok(Date.now() < deadline, JSON.stringify(history.body));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

test("the example receiver verifies a delivery for a secret chosen in whsec_ form", async (t) => {
  const herald = await startHerald({ HERALD_RETRY_SCHEDULE: "none" });
  t.after(() => herald.stop());
  const port = await freePort();
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const registered = await herald.api("POST", "/api/webhooks", {
    name: "Standard form",
    url: `http://localhost:${port}/webhook`,
    events: ["user.created"],
    secret,
  });
  assert.equal(registered.status, 201, JSON.stringify(registered.body));
  const receiver = await startReceiver(secret, port);
  t.after(() => receiver.stop());
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.created", data: { n: 1 } });
  await receiver.saw(/Verified delivery del_\S+: user\.created \{"n":1\}/);
});
