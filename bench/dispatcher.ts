/**
 * The baseline: a naive in-memory dispatcher. It takes the same trigger request as Herald, answers
 * 200 at once, then POSTs the signed payload to every target with undici (fire and forget: no
 * persistence, no retries).
 */
import { listenAndAnnounce } from "./shared.js";
import { answer, createSend, readSettings, triggerServer } from "./trigger-dispatch.js";

const settings = readSettings();
const send = createSend(settings);

listenAndAnnounce(
  triggerServer(settings, ({ eventId, body, res }) => {
    answer(res, 200, { success: true, eventId, deliveries: settings.targets.length });
    for (let i = 0; i < settings.targets.length; i++) send(i, body);
  }),
);
