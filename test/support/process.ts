/** Runs Herald as a separate process (`src/main.ts`), as a user would, for crash and scale-out tests. */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The JSON log lines in what a Herald process printed (plain lines on stderr left out). */
export function logLines(output: string): Array<{ level: string; time: string; msg: string }> {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: string; time: string; msg: string });
}

export interface HeraldProcess {
  process: ChildProcess;
  port: number;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last 20 KB the process printed. */
  output(): string;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, then wait for the exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

/**
 * Starts `src/main.ts` on 127.0.0.1:`port` with `env` over this process's environment, less the
 * Herald settings of the shell that runs the tests (they would add lines and behaviour of their
 * own), but for the test database's URL.
 */
function spawnMain(env: Record<string, string>, port: number, options: SpawnOptions = {}) {
  const inherited = Object.entries(process.env).filter(
    ([name]) =>
      name !== "NODE_TEST_CONTEXT" &&
      (!name.startsWith("HERALD_") || name === "HERALD_TEST_PG_URL"),
  );
  return spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: { ...Object.fromEntries(inherited), HOST: "127.0.0.1", PORT: String(port), ...env },
    stdio: ["ignore", "pipe", "pipe"],
    ...options,
  });
}

/** Runs Herald until it exits (it is expected to refuse to start); resolves with what it printed. */
export async function runHeraldToExit(
  env: Record<string, string>,
  options: { uid?: number; gid?: number } = {},
): Promise<{ code: number | null; output: string }> {
  const child = spawnMain(env, await freePort(), options);
  let output = "";
  const keep = (chunk: Buffer) => {
    output += chunk.toString("utf8");
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  return { code, output };
}

/** Spawns Herald with `env` (on a free port unless `env.PORT` names one) and resolves once /healthz answers. */
export async function spawnHerald(env: Record<string, string>): Promise<HeraldProcess> {
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const proc = spawnMain(env, port);
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-20_000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const child: HeraldProcess = {
    process: proc,
    port,
    url: `http://127.0.0.1:${port}`,
    exited,
    output: () => output,
    async kill() {
      if (running()) proc.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (running()) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!running()) throw new Error(`Herald exited before it was ready:\n${output}`);
    try {
      const response = await fetch(`${child.url}/healthz`);
      await response.body?.cancel();
      if (response.ok) return child;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await child.kill();
      throw new Error(`Herald did not become ready within 30 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
