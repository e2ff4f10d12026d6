/** Wakes the delivery loop in this process when a trigger commits. Other processes poll. */
import type { WakeSignal } from "../domain/ports.js";

/** An in-process wake signal. */
export function createLocalWakeSignal(): WakeSignal {
  const listeners = new Set<(changedWebhook?: string) => void>();
  return {
    notify(changedWebhook) {
      for (const listener of listeners) listener(changedWebhook);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
