// A receiver for Herald's deliveries: it checks both signatures on the raw body, answers 200 at
// once and ignores repeats of a delivery it has already taken.
//
//   WEBHOOK_SECRET=<the secret Herald returned when the webhook was registered> node examples/receiver.mjs
//
// It listens on port 4000 (RECEIVER_PORT to change it); register http://localhost:4000/webhook.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const secret = process.env.WEBHOOK_SECRET;
const port = Number(process.env.RECEIVER_PORT ?? 4000);
if (!secret) {
  console.error(
    "Set WEBHOOK_SECRET to the secret Herald returned when the webhook was registered, then start the receiver again.",
  );
  process.exit(1);
}

/** Compares in constant time, so an attacker learns nothing from how long a refusal takes. */
function sameText(received, expected) {
  const a = Buffer.from(received ?? "", "utf8");
  const b = Buffer.from(expected, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

/** X-Webhook-Signature: hex HMAC-SHA256 of the body, keyed with the secret as text. */
function verifyWebhook(rawBody, signature) {
  return sameText(signature, createHmac("sha256", secret).update(rawBody).digest("hex"));
}

/**
 * The Standard Webhooks key: the secret as text, as above, unless it is in the standard's own form,
 * whsec_ and base64, which stands for the key the base64 encodes.
 */
const whsec = /^whsec_((?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)$/.exec(
  secret,
);
const standardKey = whsec?.[1] ? Buffer.from(whsec[1], "base64") : secret;

/**
 * Standard Webhooks: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`. The timestamp lets a
 * receiver refuse a delivery replayed later: here, over 5 minutes off.
 */
function verifyStandardWebhook(rawBody, headers) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  if (!id || !timestamp || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = createHmac("sha256", standardKey)
    .update(`${id}.${timestamp}.`)
    .update(rawBody)
    .digest("base64");
  return (headers["webhook-signature"] ?? "")
    .split(" ")
    .some((signature) => signature.startsWith("v1,") && sameText(signature.slice(3), expected));
}

// Delivery ids already taken. A real receiver keeps them in its database.
const taken = new Set();

createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    // Verify the bytes as they came, before parsing: parsed and serialized again, they may differ.
    const rawBody = Buffer.concat(chunks);
    if (
      !verifyWebhook(rawBody, req.headers["x-webhook-signature"]) ||
      !verifyStandardWebhook(rawBody, req.headers)
    ) {
      console.log("Refused a delivery: its signature does not match. Check WEBHOOK_SECRET.");
      res.writeHead(401).end();
      return;
    }
    // Answer first; slow work comes after, so Herald's attempt does not time out.
    res.writeHead(200).end("ok");
    const deliveryId = req.headers["x-webhook-delivery"];
    if (taken.has(deliveryId)) {
      console.log(`Delivery ${deliveryId} came again (at-least-once delivery): ignored.`);
      return;
    }
    taken.add(deliveryId);
    const { event, data } = JSON.parse(rawBody.toString("utf8"));
    console.log(`Verified delivery ${deliveryId}: ${event} ${JSON.stringify(data)}`);
  });
}).listen(port, () => console.log(`Receiving webhooks at http://localhost:${port}/webhook`));
