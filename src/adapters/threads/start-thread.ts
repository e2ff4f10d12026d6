/**
 * Starts a worker thread from a module next to the caller. Built code (`dist`) loads the `.js` file
 * directly; run from TypeScript sources (tests, development), the thread registers tsx first.
 */
import { Worker } from "node:worker_threads";

/** Starts the thread whose entry is `entry` (a `.ts` or `.js` URL), passing it `workerData`. */
export function startThread(entry: URL, workerData: unknown): Worker {
  if (!entry.pathname.endsWith(".ts")) return new Worker(entry, { workerData });
  const boot = `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

/** The URL of a sibling module of `base`, with the extension `base` itself was loaded with. */
export function siblingModule(base: string, name: string): URL {
  return new URL(`./${name}${base.endsWith(".ts") ? ".ts" : ".js"}`, base);
}
