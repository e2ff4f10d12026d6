/** Small records tests share. */
import type { Store } from "../../src/domain/ports.js";
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

/**
 * Stores webhook `wh_<name>` (see plainWebhook) and one event `evt_<name>` for it, so that one
 * delivery, `del_<name>`, is due from time 1.
 */
export async function storeOneDelivery(store: Store, name: string): Promise<void> {
  await store.insertWebhook(plainWebhook(`wh_${name}`));
  await store.enqueueEvent(
    { id: `evt_${name}`, type: "user.created", body: "{}", createdAt: 1 },
    (active) => [...active],
    () => `del_${name}`,
  );
}
