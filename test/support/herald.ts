/** Starts a real Herald on a free port with its own data directory, for tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config.js";
import { createHerald, type Herald, type HeraldOverrides } from "../../src/herald.js";

export const TEST_API_KEY = "test-api-key-0123456789abcdef";

export interface RunningHerald {
  herald: Herald;
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  dataDir: string;
  /** Calls the API with the test key; `body` is sent as JSON. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** Starts Herald with test settings; `env` adds or replaces settings. */
export async function startHerald(
  env: Record<string, string> = {},
  overrides: HeraldOverrides = {},
): Promise<RunningHerald> {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-test-"));
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    LOG_LEVEL: "silent",
    ...env,
  });
  const herald = await createHerald(config, overrides);
  const url = await herald.start();
  return {
    herald,
    url,
    dataDir,
    async api(method, path, body) {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${TEST_API_KEY}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    async stop() {
      await herald.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
