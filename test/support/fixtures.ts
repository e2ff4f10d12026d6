/** Small records tests share. */
import type { Webhook } from "../../src/domain/webhooks.js";

/** An active webhook on user.created, with fixed fields around `id`. */
export function plainWebhook(id: string): Webhook {
  return {
    id,
    name: "a",
    url: "https://example.com",
    events: ["user.created"],
    secret: "s",
    active: true,
    createdAt: 1,
    updatedAt: 1,
  };
}
